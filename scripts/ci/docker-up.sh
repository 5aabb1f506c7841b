#!/usr/bin/env bash
# Make sure a docker daemon is running, for the testcontainers-based integration tests.
# Idempotent: if `docker info` already works, it does nothing.
#
# Otherwise (as root, on Debian) it installs Debian's docker.io if dockerd is missing, starts
# `dockerd --iptables=false` in the background, detached from the caller's session (so it
# outlives CI steps run under `timeout`), waits until it answers, and checks that a container
# can actually run. If none can with the storage driver dockerd picked (overlay2 normally),
# it restarts dockerd with --storage-driver=vfs (slow and disk-hungry, but works anywhere).
#
# Without iptables, docker publishes ports through its userland proxy (docker-proxy), so
# `docker run -p 127.0.0.1::5432` and testcontainers' port mapping work; containers are
# also reachable from the host at their bridge IP. They have no outbound network (no NAT).
#
# Environment:
#   LIFEGUARD_DOCKERD_LOG             dockerd's log file (default /var/log/dockerd-ci.log)
#   LIFEGUARD_DOCKERD_WAIT            seconds to wait for dockerd to answer (default 60)
#   LIFEGUARD_DOCKER_STORAGE_DRIVER   force a storage driver (e.g. vfs); default: dockerd's
#                                     choice, falling back to vfs if containers cannot run
#   LIFEGUARD_DOCKERD_ARGS            extra dockerd arguments (split on whitespace)
set -euo pipefail

readonly DOCKERD_LOG=${LIFEGUARD_DOCKERD_LOG:-/var/log/dockerd-ci.log}
readonly WAIT_SECONDS=${LIFEGUARD_DOCKERD_WAIT:-60}
readonly FORCED_DRIVER=${LIFEGUARD_DOCKER_STORAGE_DRIVER:-}
readonly SMOKE_IMAGE=lifeguard-ci-smoke:tini

log() { printf 'docker-up: %s\n' "$*" >&2; }
die() {
  printf 'docker-up: error: %s\n' "$*" >&2
  exit 1
}

docker_answers() { timeout 10 docker info >/dev/null 2>&1; }

describe_daemon() {
  docker info --format 'server {{ .ServerVersion }}, storage driver {{ .Driver }}, cgroup {{ .CgroupDriver }} v{{ .CgroupVersion }}, root {{ .DockerRootDir }}' 2>/dev/null ||
    echo "(docker info failed)"
}

install_docker() {
  local start=$SECONDS
  log "installing Debian's docker.io (apt-get update + install)"
  command -v apt-get >/dev/null || die "dockerd is missing and apt-get is not available to install docker.io"
  # --no-install-recommends: no apparmor, cgroupfs-mount, git, ... (iptables comes anyway:
  # docker.io depends on it, even though dockerd runs with --iptables=false here).
  local out
  if ! out=$(apt-get update 2>&1 &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker.io 2>&1); then
    printf '%s\n' "$out" | tail -n 30 >&2
    die "could not install docker.io (apt output above)"
  fi
  log "installed $(dockerd --version) in $((SECONDS - start))s"
}

DOCKERD_PID=
# start_dockerd [STORAGE_DRIVER]: start dockerd in its own session and wait until it answers.
start_dockerd() {
  local args=(--iptables=false)
  [[ -z ${1-} ]] || args+=(--storage-driver="$1")
  # shellcheck disable=SC2206 # split on whitespace on purpose
  args+=(${LIFEGUARD_DOCKERD_ARGS:-})
  mkdir -p -- "$(dirname -- "$DOCKERD_LOG")"
  printf '\n==== %s docker-up: dockerd %s\n' "$(date -Is)" "${args[*]}" >>"$DOCKERD_LOG"
  log "starting dockerd ${args[*]} (log: $DOCKERD_LOG)"
  setsid dockerd "${args[@]}" >>"$DOCKERD_LOG" 2>&1 </dev/null &
  DOCKERD_PID=$!
  wait_for_dockerd "$DOCKERD_PID"
}

# wait_for_dockerd PID: wait until `docker info` answers, failing fast if PID dies.
wait_for_dockerd() {
  local pid=$1 deadline=$((SECONDS + WAIT_SECONDS))
  until docker_answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$DOCKERD_LOG" >&2 || true
      die "dockerd (pid $pid) exited before answering; last lines of $DOCKERD_LOG above"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 30 "$DOCKERD_LOG" >&2 || true
      die "dockerd (pid $pid) did not answer 'docker info' within ${WAIT_SECONDS}s; last lines of $DOCKERD_LOG above"
    fi
    sleep 0.5
  done
}

stop_dockerd() {
  local pid=$1 i
  log "stopping dockerd (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 60; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.5
  done
  die "dockerd (pid $pid) did not stop within 30s"
}

# Can a container run? No registry is reachable, so the test image is made locally from the
# static tini that docker.io ships as docker-init (about 1 MB).
smoke_test() {
  if ! docker image inspect "$SMOKE_IMAGE" >/dev/null 2>&1; then
    local tini dir
    tini=$(command -v docker-init || true)
    [[ -n $tini ]] || tini=/usr/bin/tini-static
    if [[ ! -x $tini ]]; then
      log "no static tini to make a smoke-test image from; skipping the container check"
      return 0
    fi
    dir=$(mktemp -d)
    cp -L -- "$tini" "$dir/tini"
    tar --numeric-owner --owner=0 --group=0 -C "$dir" -cf - tini |
      docker import - "$SMOKE_IMAGE" >/dev/null || {
      rm -rf -- "$dir"
      return 1
    }
    rm -rf -- "$dir"
  fi
  docker run --rm --network none "$SMOKE_IMAGE" /tini --version >/dev/null 2>>"$DOCKERD_LOG"
}

main() {
  local start=$SECONDS
  if docker_answers; then
    log "docker is already running: $(describe_daemon); nothing to do"
    return 0
  fi

  [[ $(id -u) == 0 ]] || die "docker is not running, and starting it needs root"
  if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
    install_docker
    if docker_answers; then # e.g. started by systemd on a regular machine
      log "docker is running after the install: $(describe_daemon)"
      return 0
    fi
  fi

  # A dockerd that is still starting (e.g. a concurrent run): wait for it rather than
  # starting a second one on the same data root.
  local pid
  pid=$(cat /var/run/docker.pid 2>/dev/null || true)
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    log "dockerd (pid $pid) is running but not answering yet; waiting up to ${WAIT_SECONDS}s"
    wait_for_dockerd "$pid"
    log "docker is up: $(describe_daemon)"
    return 0
  fi

  start_dockerd "$FORCED_DRIVER"
  if ! smoke_test; then
    if [[ -n $FORCED_DRIVER ]]; then
      tail -n 30 "$DOCKERD_LOG" >&2 || true
      die "dockerd is up, but cannot run a container with LIFEGUARD_DOCKER_STORAGE_DRIVER=$FORCED_DRIVER (see $DOCKERD_LOG)"
    fi
    log "cannot run a container with storage driver $(docker info --format '{{ .Driver }}'); retrying with vfs"
    stop_dockerd "$DOCKERD_PID"
    start_dockerd vfs
    if ! smoke_test; then
      tail -n 30 "$DOCKERD_LOG" >&2 || true
      die "dockerd is up, but cannot run a container even with the vfs storage driver (see $DOCKERD_LOG)"
    fi
  fi
  log "docker is up in $((SECONDS - start))s (dockerd pid $DOCKERD_PID): $(describe_daemon)"
}

main "$@"
