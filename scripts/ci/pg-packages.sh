#!/usr/bin/env bash
# Debian's PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) and client (psql) for
# the multi-host suite (test/multihost): a primary and streaming standbys from one binary set,
# and libpq's choices to compare with. Idempotent: installs only what is missing.
set -euo pipefail
have_server() { compgen -G '/usr/lib/postgresql/*/bin/pg_basebackup' >/dev/null && compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; }
if have_server && command -v psql >/dev/null; then
  echo "PostgreSQL binaries present: $(ls -d /usr/lib/postgresql/*/bin | tr '\n' ' ')" >&2
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo 'pg-packages: PostgreSQL binaries missing and not root: apt-get install postgresql postgresql-client' >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
# No cluster of the package's own: the tests make theirs.
mkdir -p /etc/postgresql-common
grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf || echo 'create_main_cluster = false' >>/etc/postgresql-common/createcluster.conf
apt-get install -y -qq --no-install-recommends postgresql postgresql-client >&2
have_server
