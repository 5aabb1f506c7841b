#!/usr/bin/env bash
# Build a local PostgreSQL image from Debian packages, for machines that can reach a Debian
# mirror but no container registry (see scripts/ci/README.md):
#
#   debootstrap --variant=minbase --include=postgresql-15 bookworm  ->  trimmed rootfs tarball
#   (cached in $LIFEGUARD_CI_CACHE_DIR)  +  pg-image/entrypoint.sh  ->  docker import
#
# The image behaves like the official `postgres` image as far as testcontainers'
# PostgreSqlContainer is concerned (POSTGRES_USER/PASSWORD/DB, port 5432, readiness).
#
# Usage (as root, with a running docker daemon, e.g. after scripts/ci/docker-up.sh):
#
#     LIFEGUARD_PG_IMAGE=$(scripts/ci/build-pg-image.sh | tail -1)
#
# Progress goes to stderr; the last line on stdout is the image name.
#
# Environment:
#   LIFEGUARD_PG_IMAGE_NAME   image name:tag to build (default lifeguard-postgres:15-bookworm)
#   LIFEGUARD_CI_CACHE_DIR    where the rootfs tarball is cached (default /var/cache/lifeguard-ci)
#   LIFEGUARD_DEBIAN_MIRROR   Debian mirror for debootstrap (default: the first one in
#                             /etc/apt/sources.list{,.d} serving bookworm, else deb.debian.org)
#   LIFEGUARD_PG_REBUILD      1: rebuild the image even if it is up to date;
#                             2: also redo the debootstrap (e.g. for new Debian point releases)
#   LIFEGUARD_DEBOOTSTRAP_TIMEOUT  seconds allowed for debootstrap (default 600)
set -euo pipefail

readonly SUITE=bookworm
readonly PG_MAJOR=15
readonly IMAGE=${LIFEGUARD_PG_IMAGE_NAME:-lifeguard-postgres:$PG_MAJOR-$SUITE}
readonly BASE_IMAGE=$IMAGE-base # the imported rootfs, without STOPSIGNAL
readonly CACHE_DIR=${LIFEGUARD_CI_CACHE_DIR:-/var/cache/lifeguard-ci}
readonly REBUILD=${LIFEGUARD_PG_REBUILD:-0}
readonly DEBOOTSTRAP_TIMEOUT=${LIFEGUARD_DEBOOTSTRAP_TIMEOUT:-600}
readonly ROOTFS_TAR=$CACHE_DIR/rootfs-$SUITE-postgresql-$PG_MAJOR.tar
SCRIPT_DIR=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
readonly SCRIPT_DIR
readonly ENTRYPOINT_SRC=$SCRIPT_DIR/pg-image/entrypoint.sh

# Image configuration, as `docker import --change` instructions. The entrypoint drops to the
# postgres user itself (like the official image), so there is no USER: it needs root to
# prepare PGDATA and /var/run/postgresql, e.g. on a fresh volume.
readonly CHANGES=(
  "ENV PATH=/usr/lib/postgresql/$PG_MAJOR/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
  "ENV PGDATA=/var/lib/postgresql/data"
  "ENV LANG=C.UTF-8"
  'ENTRYPOINT ["docker-entrypoint.sh"]'
  'CMD ["postgres"]'
  "EXPOSE 5432"
)

# shellcheck source=lib-image.sh
. "$SCRIPT_DIR/lib-image.sh"

readonly LOG_NAME=build-pg-image
readonly REBUILD_VAR=LIFEGUARD_PG_REBUILD
readonly STOP_SIGNAL=SIGINT
readonly RECIPE_PARTS=("$SUITE" "$PG_MAJOR")
readonly IMPORT_MESSAGE="lifeguard CI: debootstrap $SUITE + postgresql-$PG_MAJOR (scripts/ci/build-pg-image.sh)"

# debootstrap + trim -> $ROOTFS_TAR.
build_rootfs_tar() {
  local start=$SECONDS rootfs=$WORK_DIR/rootfs
  debootstrap_rootfs "postgresql-$PG_MAJOR"
  [[ -x $rootfs/usr/lib/postgresql/$PG_MAJOR/bin/postgres ]] ||
    die "debootstrap did not install /usr/lib/postgresql/$PG_MAJOR/bin/postgres"
  # Trim what a test database never needs: downloaded packages, apt lists, docs,
  # translations, and the default cluster that postgresql-common created (the entrypoint
  # creates its own in $PGDATA). /etc/resolv.conf etc. are replaced by docker at run time.
  rm -rf -- "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/usr/share/locale/* \
    "$rootfs/var/lib/postgresql/$PG_MAJOR" "$rootfs/etc/postgresql/$PG_MAJOR"
  tar_rootfs "$start"
}

image_main "$@"
