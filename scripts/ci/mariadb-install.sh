#!/usr/bin/env bash
# Make sure Debian's MariaDB server and client (mariadb-server, 10.11 in bookworm) are
# installed, for the MySQL/MariaDB suites (test/mysql, provider `private`: each test file
# starts its own private mariadbd from this binary on a free loopback port, see
# test/support/mariadb.ts). Idempotent: with mariadbd and mariadb-install-db already there it
# only prints the version.
#
# The package's own service is never left running: during the install a policy-rc.d forbids
# invoke-rc.d to start it (unless the machine already has a policy-rc.d), and afterwards the
# service is stopped and disabled if it runs anyway. Needs root for the install.
set -euo pipefail

log() { printf 'mariadb-install: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

find_bin() {
  local name
  for name in "$@"; do
    if command -v "$name" >/dev/null 2>&1; then
      command -v "$name"
      return 0
    fi
    [[ ! -x /usr/sbin/$name ]] || { echo "/usr/sbin/$name"; return 0; }
  done
  return 1
}

# Stop and disable the system service if the package (or anything else) started it.
stop_system_service() {
  if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    systemctl disable --now mariadb.service >/dev/null 2>&1 || true
  fi
  if [[ -x /etc/init.d/mariadb ]] && /etc/init.d/mariadb status >/dev/null 2>&1; then
    log "stopping the system mariadb service (we run private instances)"
    timeout 60s /etc/init.d/mariadb stop >/dev/null 2>&1 || true
  fi
  command -v update-rc.d >/dev/null 2>&1 && update-rc.d mariadb disable >/dev/null 2>&1 || true
  # A server on the package's data directory that is still there (no init script answered).
  local pid
  for pid in $(pgrep -x mariadbd 2>/dev/null || true); do
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- '/var/lib/mysql' ||
      [[ $(readlink "/proc/$pid/cwd" 2>/dev/null) == /var/lib/mysql ]]; then
      log "stopping the package's mariadbd (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      timeout 30s tail --pid="$pid" -f /dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
  done
}

version() {
  "$1" --version 2>/dev/null | head -n 1
}

if server=$(find_bin mariadbd) && find_bin mariadb-install-db >/dev/null && find_bin mariadb >/dev/null; then
  stop_system_service
  log "already installed: $(version "$server")"
  exit 0
fi

[[ $(id -u) == 0 ]] || die "mariadb-server is missing and installing it needs root (apt-get install mariadb-server mariadb-client)"
command -v apt-get >/dev/null || die "mariadb-server is missing and apt-get is not available to install it"

start=$SECONDS
policy=/usr/sbin/policy-rc.d
own_policy=0
if [[ ! -e $policy ]]; then
  # 101: "action forbidden by policy": the postinst does not start the service.
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  own_policy=1
fi
cleanup() { ((own_policy == 0)) || rm -f -- "$policy"; }
trap cleanup EXIT

out=
if ! out=$( (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends mariadb-server mariadb-client) 2>&1); then
  printf '%s\n' "$out" | tail -n 30 >&2
  die "could not install mariadb-server (apt output above)"
fi
stop_system_service
server=$(find_bin mariadbd) || die "mariadb-server is installed but mariadbd is not found"
log "installed $(version "$server") in $((SECONDS - start))s"
