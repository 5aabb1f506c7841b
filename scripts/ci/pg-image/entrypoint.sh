#!/bin/bash
# Entrypoint of the locally built PostgreSQL image (lifeguard-postgres:15-bookworm, built by
# scripts/ci/build-pg-image.sh). It is installed as /usr/local/bin/docker-entrypoint.sh and
# mimics the official `postgres` image closely enough for testcontainers:
#
#   - POSTGRES_USER (default postgres), POSTGRES_PASSWORD (required unless
#     POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_DB (default $POSTGRES_USER),
#     POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD (default scram-sha-256), PGDATA.
#   - The cluster is initialised once, on the first start (when $PGDATA/PG_VERSION is missing):
#     initdb as the postgres user, local (unix socket) connections trusted, every TCP
#     connection authenticated with POSTGRES_HOST_AUTH_METHOD. POSTGRES_DB is created by a
#     temporary server that listens only on the unix socket, then *.sql / *.sh files in
#     /docker-entrypoint-initdb.d are applied, as in the official image.
#   - The server listens on all addresses; the entrypoint then execs it as PID 1, so
#     `docker stop` (STOPSIGNAL SIGINT = fast shutdown) reaches postgres directly.
#   - As in the official image, "database system is ready to accept connections" is logged
#     twice on the first start (temporary server, then the real one) and once on later starts.
#     testcontainers' PostgreSqlContainer (v11+) waits for a `pg_isready --host localhost`
#     health check and for the port; older versions waited for that log line twice.
#
# Arguments: like the official image, `postgres [server options...]` (the default command) or
# just server options (`-c fsync=off ...`); anything else is exec'd as is.
set -euo pipefail

log() { printf 'lifeguard-postgres entrypoint: %s\n' "$*"; }
die() {
  printf 'lifeguard-postgres entrypoint: error: %s\n' "$*" >&2
  exit 1
}

# `docker run IMAGE -c foo=bar` means `postgres -c foo=bar`.
if [[ $# -eq 0 || ${1:0:1} == - ]]; then
  set -- postgres "$@"
fi

# Anything else (bash, psql, ...) runs as is.
if [[ $1 != postgres ]]; then
  exec "$@"
fi

export PGDATA=${PGDATA:-/var/lib/postgresql/data}

# As root: prepare the directories, then run this script again as the postgres user.
if [[ $(id -u) == 0 ]]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chmod 2775 /var/run/postgresql
  chown postgres:postgres /var/run/postgresql
  # Only chown a data directory we do not own yet (a fresh volume), not on every start.
  if [[ $(stat -c %U "$PGDATA") != postgres ]]; then
    chown -R postgres:postgres "$PGDATA"
  fi
  chmod 700 "$PGDATA"
  export HOME=/var/lib/postgresql
  exec setpriv --reuid=postgres --regid=postgres --init-groups -- "${BASH_SOURCE[0]}" "$@"
fi

init_cluster() {
  local user=${POSTGRES_USER:-postgres}
  local db=${POSTGRES_DB:-$user}
  local auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
  local password=${POSTGRES_PASSWORD:-}

  if [[ -z $password && $auth != trust ]]; then
    die "the database is uninitialized and POSTGRES_PASSWORD is not set.
  Set POSTGRES_PASSWORD (e.g. -e POSTGRES_PASSWORD=secret), or POSTGRES_HOST_AUTH_METHOD=trust
  to allow every connection without a password (never do that outside a test)."
  fi

  log "initialising the cluster in $PGDATA (user '$user', database '$db', host auth '$auth')"
  local initdb_args=(
    --pgdata="$PGDATA"
    --username="$user"
    --encoding=UTF8
    --locale=C.UTF-8
    --auth-local=trust
    --auth-host="$auth"
  )
  local pwfile=
  if [[ -n $password ]]; then
    pwfile=$(mktemp)
    printf '%s\n' "$password" >"$pwfile"
    initdb_args+=(--pwfile="$pwfile")
  fi
  # POSTGRES_INITDB_ARGS is split on whitespace on purpose, as in the official image.
  # shellcheck disable=SC2086
  initdb "${initdb_args[@]}" ${POSTGRES_INITDB_ARGS:-}
  [[ -z $pwfile ]] || rm -f -- "$pwfile"

  # initdb only writes 127.0.0.1/::1 host lines; allow every address (the host reaches the
  # container through the docker bridge or docker-proxy).
  printf '\n# lifeguard-postgres: any address, password required\nhost all all all %s\n' \
    "$auth" >>"$PGDATA/pg_hba.conf"
  printf "\n# lifeguard-postgres\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

  # Temporary server on the unix socket only, so nothing outside the container (and no TCP
  # health check) sees it before the database exists.
  pg_ctl --pgdata="$PGDATA" --wait --timeout=60 \
    --options="-c listen_addresses='' -p 5432" start

  local psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --username="$user")
  if [[ $db != postgres ]]; then
    "${psql[@]}" --dbname=postgres --set=db="$db" <<<'CREATE DATABASE :"db";'
  fi

  local f
  for f in /docker-entrypoint-initdb.d/*; do
    [[ -e $f ]] || continue
    case $f in
      *.sh)
        log "running $f"
        # Sourced, as in the official image, so it sees POSTGRES_USER etc.
        # shellcheck disable=SC1090
        . "$f"
        ;;
      *.sql)
        log "running $f"
        "${psql[@]}" --dbname="$db" -f "$f"
        ;;
      *) log "ignoring $f" ;;
    esac
  done

  pg_ctl --pgdata="$PGDATA" --wait --timeout=60 --mode=fast stop
  log "initialisation complete; starting the server"
}

if [[ ! -s $PGDATA/PG_VERSION ]]; then
  init_cluster
else
  log "$PGDATA already initialised; starting the server"
fi

shift # "postgres"
# listen_addresses first, so a -c listen_addresses=... given by the caller still wins.
exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
