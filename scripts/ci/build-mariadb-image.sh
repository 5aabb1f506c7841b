#!/usr/bin/env bash
# Build a local MariaDB image from Debian packages, for machines that can reach a Debian
# mirror but no container registry (see scripts/ci/README.md), the same way as
# build-pg-image.sh (shared steps in lib-image.sh):
#
#   debootstrap --variant=minbase --include=mariadb-server,mariadb-client bookworm
#   ->  trimmed rootfs tarball (cached in $LIFEGUARD_CI_CACHE_DIR)
#   +   mariadb-image/entrypoint.sh  ->  docker import
#
# The image behaves like the official `mariadb` image as far as testcontainers is concerned
# (MARIADB_ROOT_PASSWORD / MARIADB_DATABASE / MARIADB_USER / MARIADB_PASSWORD or the MYSQL_*
# names, port 3306, "ready for connections" logged once the server is up).
#
# Usage (as root, with a running docker daemon, e.g. after scripts/ci/docker-up.sh):
#
#     LIFEGUARD_MARIADB_IMAGE=$(scripts/ci/build-mariadb-image.sh | tail -1)
#
# Progress goes to stderr; the last line on stdout is the image name.
#
# Environment:
#   LIFEGUARD_MARIADB_IMAGE_NAME  image name:tag to build (default lifeguard-mariadb:10.11-bookworm)
#   LIFEGUARD_CI_CACHE_DIR        where the rootfs tarball is cached (default /var/cache/lifeguard-ci)
#   LIFEGUARD_DEBIAN_MIRROR       Debian mirror for debootstrap (default: the first one in
#                                 /etc/apt/sources.list{,.d} serving bookworm, else deb.debian.org)
#   LIFEGUARD_MARIADB_REBUILD     1: rebuild the image even if it is up to date;
#                                 2: also redo the debootstrap
#   LIFEGUARD_DEBOOTSTRAP_TIMEOUT seconds allowed for debootstrap (default 600)
set -euo pipefail

readonly SUITE=bookworm
readonly MARIADB_VERSION=10.11 # what bookworm ships
readonly IMAGE=${LIFEGUARD_MARIADB_IMAGE_NAME:-lifeguard-mariadb:$MARIADB_VERSION-$SUITE}
readonly BASE_IMAGE=$IMAGE-base # the imported rootfs, without STOPSIGNAL
readonly CACHE_DIR=${LIFEGUARD_CI_CACHE_DIR:-/var/cache/lifeguard-ci}
readonly REBUILD=${LIFEGUARD_MARIADB_REBUILD:-0}
readonly DEBOOTSTRAP_TIMEOUT=${LIFEGUARD_DEBOOTSTRAP_TIMEOUT:-600}
readonly ROOTFS_TAR=$CACHE_DIR/rootfs-$SUITE-mariadb.tar
SCRIPT_DIR=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
readonly SCRIPT_DIR
readonly ENTRYPOINT_SRC=$SCRIPT_DIR/mariadb-image/entrypoint.sh

# Image configuration, as `docker import --change` instructions. The entrypoint drops to the
# mysql user itself (like the official image), so there is no USER.
readonly CHANGES=(
  "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
  "ENV LANG=C.UTF-8"
  'ENTRYPOINT ["docker-entrypoint.sh"]'
  'CMD ["mariadbd"]'
  "EXPOSE 3306"
)

# shellcheck source=lib-image.sh
. "$SCRIPT_DIR/lib-image.sh"

readonly LOG_NAME=build-mariadb-image
readonly REBUILD_VAR=LIFEGUARD_MARIADB_REBUILD
# mariadbd shuts down cleanly on SIGTERM (docker's default, said explicitly).
readonly STOP_SIGNAL=SIGTERM
readonly RECIPE_PARTS=("$SUITE" mariadb-server mariadb-client)
readonly IMPORT_MESSAGE="lifeguard CI: debootstrap $SUITE + mariadb-server (scripts/ci/build-mariadb-image.sh)"

# Processes running inside $1 (their root is the rootfs): a package's postinst may have
# started a server there.
kill_chroot_processes() {
  local rootfs pid root
  rootfs=$(readlink -f -- "$1")
  for pid in /proc/[0-9]*; do
    root=$(readlink "$pid/root" 2>/dev/null) || continue
    if [[ $root == "$rootfs" ]]; then
      log "stopping ${pid#/proc/} ($(tr '\0' ' ' <"$pid/cmdline" 2>/dev/null | cut -c1-80)) left running in the rootfs"
      kill -KILL "${pid#/proc/}" 2>/dev/null || true
    fi
  done
}

# debootstrap + trim -> $ROOTFS_TAR.
build_rootfs_tar() {
  local start=$SECONDS rootfs=$WORK_DIR/rootfs
  debootstrap_rootfs mariadb-server,mariadb-client
  kill_chroot_processes "$rootfs"
  [[ -x $rootfs/usr/sbin/mariadbd ]] || die "debootstrap did not install /usr/sbin/mariadbd"
  # Trim what a test database never needs: downloaded packages, apt lists, docs,
  # translations, and the data directory the package initialised (the entrypoint creates
  # its own in /var/lib/mysql on the first start).
  rm -rf -- "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/usr/share/locale/* "$rootfs"/var/lib/mysql/* "$rootfs"/var/log/mysql/*
  tar_rootfs "$start"
}

image_main "$@"
