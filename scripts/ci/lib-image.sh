# shellcheck shell=bash
# Shared functions of the image builders (build-pg-image.sh, build-mariadb-image.sh): a Debian
# rootfs made with debootstrap, trimmed and cached as a tarball, plus an entrypoint, turned
# into a local image with `docker import` (no registry needed). Sourced, not run.
#
# The sourcing script sets, before calling image_main:
#   LOG_NAME          prefix of progress lines (e.g. build-pg-image)
#   SUITE             Debian suite (bookworm)
#   IMAGE, BASE_IMAGE image name:tag, and the imported rootfs without STOPSIGNAL/label
#   CACHE_DIR         where the rootfs tarball is cached
#   ROOTFS_TAR        the cached rootfs tarball
#   REBUILD           0, 1 (rebuild the image) or 2 (also redo debootstrap)
#   REBUILD_VAR       the name of the variable that sets REBUILD, for messages
#   DEBOOTSTRAP_TIMEOUT  seconds
#   ENTRYPOINT_SRC    installed as /usr/local/bin/docker-entrypoint.sh
#   CHANGES           array of `docker import --change` instructions
#   STOP_SIGNAL       the image's STOPSIGNAL
#   RECIPE_PARTS      array of lines that, with the entrypoint, identify the image recipe
#   IMPORT_MESSAGE    the `docker import --message`
# and defines build_rootfs_tar (debootstrap_rootfs + trim + tar_rootfs).

log() { printf '%s: %s\n' "$LOG_NAME" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$LOG_NAME" "$*" >&2
  exit 1
}
# Seconds since $1 (a $SECONDS value).
since() { echo "$((SECONDS - $1))s"; }

# The first Debian mirror in the apt sources that serves $SUITE (one-line or deb822 format).
debian_mirror() {
  if [[ -n ${LIFEGUARD_DEBIAN_MIRROR:-} ]]; then
    echo "$LIFEGUARD_DEBIAN_MIRROR"
    return
  fi
  local files=() f uri
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -r $f ]] && files+=("$f")
  done
  if ((${#files[@]})); then
    # deb [opt=... ...] URI SUITE COMPONENT...
    uri=$(awk -v suite="$SUITE" '
      $1 == "deb" {
        i = 2
        if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        if ($(i + 1) == suite) { print $i; exit }
      }' "${files[@]}")
    [[ -n $uri ]] && echo "$uri" && return
  fi
  files=()
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -r $f ]] && files+=("$f")
  done
  if ((${#files[@]})); then
    # Paragraphs of "Field: value" lines; the first enabled "deb" paragraph listing $SUITE.
    uri=$(awk -v suite="$SUITE" '
      BEGIN { RS = ""; FS = "\n" }
      {
        types = uris = suites = ""; enabled = "yes"
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^#/) continue
          split($i, kv, /:[ \t]*/)
          key = tolower(kv[1]); value = substr($i, length(kv[1]) + 2); sub(/^[ \t]+/, "", value)
          if (key == "types") types = value
          else if (key == "uris") uris = value
          else if (key == "suites") suites = value
          else if (key == "enabled") enabled = tolower(value)
        }
        if (enabled != "no" && (" " types " ") ~ / deb / && (" " suites " ") ~ (" " suite " ")) {
          split(uris, u, /[ \t]+/); print u[1]; exit
        }
      }' "${files[@]}")
    [[ -n $uri ]] && echo "$uri" && return
  fi
  echo "http://deb.debian.org/debian"
}

# Unmount whatever debootstrap may have left mounted under $1 (if interrupted), then delete it.
remove_tree() {
  local dir=$1 mnt
  [[ -e $dir ]] || return 0
  while read -r mnt; do
    umount -l "$mnt" 2>/dev/null || true
  done < <(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r)
  rm -rf --one-file-system -- "$dir"
}

WORK_DIR=
cleanup() { [[ -z $WORK_DIR ]] || remove_tree "$WORK_DIR"; }
trap cleanup EXIT

# debootstrap_rootfs PACKAGES: debootstrap --variant=minbase --include=PACKAGES (comma-separated)
# into $WORK_DIR/rootfs, installing debootstrap first if needed.
debootstrap_rootfs() {
  local packages=$1
  [[ -n $WORK_DIR && -d $WORK_DIR ]] || die "internal error: no work directory"
  if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap"
    local out
    if ! out=$(apt-get update 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap 2>&1); then
      printf '%s\n' "$out" | tail -n 30 >&2
      die "could not install debootstrap (apt output above)"
    fi
  fi
  local mirror rootfs dlog start=$SECONDS
  mirror=$(debian_mirror)
  rootfs=$WORK_DIR/rootfs
  dlog=$CACHE_DIR/debootstrap.log
  log "debootstrap --variant=minbase --include=$packages $SUITE from $mirror (log: $dlog)"
  if ! timeout --kill-after=10s "${DEBOOTSTRAP_TIMEOUT}s" \
    debootstrap --variant=minbase --include="$packages" \
    "$SUITE" "$rootfs" "$mirror" >"$dlog" 2>&1; then
    tail -n 25 "$dlog" >&2
    [[ ! -f $rootfs/debootstrap/debootstrap.log ]] || tail -n 25 "$rootfs/debootstrap/debootstrap.log" >&2
    die "debootstrap failed or took longer than ${DEBOOTSTRAP_TIMEOUT}s (see above and $dlog)"
  fi
  log "debootstrap done in $(since "$start")"
}

# tar_rootfs START: trim what every image can do without, tar $WORK_DIR/rootfs into
# $ROOTFS_TAR (START: the $SECONDS value the build began at, for the log).
tar_rootfs() {
  local start=$1 rootfs=$WORK_DIR/rootfs
  : >"$rootfs/etc/resolv.conf"
  tar --numeric-owner --xattrs -C "$rootfs" \
    --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
    -cf "$WORK_DIR/rootfs.tar" .
  mv -f -- "$WORK_DIR/rootfs.tar" "$ROOTFS_TAR"
  log "cached $ROOTFS_TAR ($(du -h "$ROOTFS_TAR" | cut -f1)) in $(since "$start")"
}

# up_to_date RECIPE: whether $IMAGE exists and was built from RECIPE (and no rebuild was asked).
up_to_date() {
  local current
  current=$(docker image inspect --format '{{ index .Config.Labels "lifeguard.ci.recipe" }}' \
    "$IMAGE" 2>/dev/null || true)
  if [[ $current == "$1" && $REBUILD == 0 ]]; then
    log "$IMAGE is up to date (recipe $1); nothing to do"
    return 0
  fi
  return 1
}

image_main() {
  local start=$SECONDS
  docker info >/dev/null 2>&1 ||
    die "cannot talk to the docker daemon ('docker info' fails); run scripts/ci/docker-up.sh first"
  [[ -r $ENTRYPOINT_SRC ]] || die "missing $ENTRYPOINT_SRC"

  # The image is up to date if it was built from the same entrypoint and configuration.
  local recipe
  recipe=$(cat "$ENTRYPOINT_SRC" <(printf '%s\n' "${RECIPE_PARTS[@]}" "${CHANGES[@]}" STOPSIGNAL) |
    sha256sum | cut -c1-16)
  if up_to_date "$recipe"; then
    echo "$IMAGE"
    return
  fi

  [[ $(id -u) == 0 ]] || die "must run as root (debootstrap, and file ownership in the image)"
  mkdir -p -- "$CACHE_DIR"
  # One build at a time per cache directory; the one that waited may find the image built.
  exec 9>"$CACHE_DIR/.lock"
  flock -w 900 9 || die "timed out waiting for another build holding $CACHE_DIR/.lock"
  if up_to_date "$recipe"; then
    echo "$IMAGE"
    return
  fi
  log "building $IMAGE (recipe $recipe, $REBUILD_VAR=$REBUILD)"
  WORK_DIR=$(mktemp -d "$CACHE_DIR/build.XXXXXX")

  if [[ -s $ROOTFS_TAR && $REBUILD != 2 ]]; then
    log "using cached rootfs $ROOTFS_TAR ($REBUILD_VAR=2 to redo it)"
  else
    build_rootfs_tar
  fi

  # Image tarball = cached rootfs + the entrypoint.
  local t=$SECONDS
  mkdir -p "$WORK_DIR/extra/usr/local/bin"
  install -m 0755 "$ENTRYPOINT_SRC" "$WORK_DIR/extra/usr/local/bin/docker-entrypoint.sh"
  cp -- "$ROOTFS_TAR" "$WORK_DIR/image.tar"
  tar --numeric-owner --owner=0 --group=0 -C "$WORK_DIR/extra" \
    -rf "$WORK_DIR/image.tar" ./usr/local/bin/docker-entrypoint.sh

  # Docker 20.10 (Debian's docker.io) rejects STOPSIGNAL in `docker import --change`, so the
  # import makes "$BASE_IMAGE" and a one-step `docker build` (metadata only, nothing runs)
  # adds STOPSIGNAL and the recipe label on top of it. The classic builder is forced (a client
  # without buildx prints a deprecation notice; harmless).
  local change_args=() c old_ids
  for c in "${CHANGES[@]}"; do
    change_args+=(--change "$c")
  done
  old_ids=$(docker image inspect --format '{{ .Id }}' "$IMAGE" "$BASE_IMAGE" 2>/dev/null || true)
  log "docker import -> $BASE_IMAGE"
  docker import "${change_args[@]}" --message "$IMPORT_MESSAGE" \
    "$WORK_DIR/image.tar" "$BASE_IMAGE" >/dev/null
  log "imported in $(since "$t")"
  log "docker build -> $IMAGE (STOPSIGNAL $STOP_SIGNAL)"
  printf 'FROM %s\nSTOPSIGNAL %s\nLABEL lifeguard.ci.recipe=%s\n' "$BASE_IMAGE" "$STOP_SIGNAL" "$recipe" |
    DOCKER_BUILDKIT=0 docker build --quiet --tag "$IMAGE" - >/dev/null
  [[ $(docker image inspect --format '{{ .Config.StopSignal }}' "$IMAGE") == "$STOP_SIGNAL" ]] ||
    die "the STOPSIGNAL of $IMAGE is not $STOP_SIGNAL; the docker build step did not work"
  # Drop the images these replace (unless a container still uses them).
  local new_ids
  new_ids=$(docker image inspect --format '{{ .Id }}' "$IMAGE" "$BASE_IMAGE")
  for c in $old_ids; do
    [[ $new_ids == *"$c"* ]] || docker image rm "$c" >/dev/null 2>&1 || true
  done
  log "$IMAGE: $(docker image inspect --format '{{ .Id }}, {{ .Size }} bytes' "$IMAGE")"
  log "done in $(since "$start")"
  echo "$IMAGE"
}
