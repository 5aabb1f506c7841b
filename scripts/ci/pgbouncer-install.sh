#!/usr/bin/env bash
# Make sure Debian's pgbouncer binary is installed, for the PgBouncer tests
# (test/faults/pgbouncer.test.ts, which start their own private PgBouncer processes).
# Idempotent: if pgbouncer is already on the machine, it does nothing. The package's own
# service is not used (and not started: there is no init system here); the tests run the
# binary themselves on free loopback ports.
set -euo pipefail

log() { printf 'pgbouncer-install: %s\n' "$*" >&2; }

if command -v pgbouncer >/dev/null 2>&1 || [[ -x /usr/sbin/pgbouncer ]]; then
  log "already installed: $( (pgbouncer --version 2>/dev/null || /usr/sbin/pgbouncer --version) | head -n 1)"
  exit 0
fi
command -v apt-get >/dev/null || { log "error: pgbouncer is missing and apt-get is not available to install it"; exit 1; }
start=$SECONDS
out=
if ! out=$( (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends pgbouncer) 2>&1); then
  printf '%s\n' "$out" | tail -n 30 >&2
  log "error: could not install pgbouncer (apt output above)"
  exit 1
fi
log "installed $(/usr/sbin/pgbouncer --version | head -n 1) in $((SECONDS - start))s"
