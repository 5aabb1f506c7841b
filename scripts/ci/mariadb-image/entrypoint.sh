#!/bin/bash
# Entrypoint of the locally built MariaDB image (lifeguard-mariadb:10.11-bookworm, built by
# scripts/ci/build-mariadb-image.sh). It is installed as /usr/local/bin/docker-entrypoint.sh and
# mimics the official `mariadb` image closely enough for testcontainers:
#
#   - MARIADB_ROOT_PASSWORD (or MYSQL_ROOT_PASSWORD) is required unless
#     MARIADB_ALLOW_EMPTY_ROOT_PASSWORD or MARIADB_RANDOM_ROOT_PASSWORD is set (printed then,
#     as "GENERATED ROOT PASSWORD: ..."); MARIADB_ROOT_HOST (default %); MARIADB_DATABASE,
#     MARIADB_USER and MARIADB_PASSWORD (the user gets ALL on the database); each MYSQL_*
#     name works too.
#   - The data directory (/var/lib/mysql) is initialised once, on the first start (when
#     /var/lib/mysql/mysql is missing): mariadb-install-db as the mysql user, then a temporary
#     server on the unix socket only (--skip-networking) sets the passwords, creates the
#     database and the user and runs *.sql / *.sql.gz / *.sh in /docker-entrypoint-initdb.d.
#   - The server then listens on 0.0.0.0:3306 and runs as PID 1 under the mysql user, so
#     `docker stop` (SIGTERM) is a clean shutdown. "ready for connections" is logged by the
#     temporary server (port: 0) and by the real one (port: 3306), as in the official image.
#
# Arguments: like the official image, `mariadbd [server options...]` (the default command) or
# just server options (`--max-connections=50 ...`); anything else is exec'd as is.
set -euo pipefail

log() { printf 'lifeguard-mariadb entrypoint: %s\n' "$*"; }
die() {
  printf 'lifeguard-mariadb entrypoint: error: %s\n' "$*" >&2
  exit 1
}

# `docker run IMAGE --foo=bar` means `mariadbd --foo=bar`.
if [[ $# -eq 0 || ${1:0:1} == - ]]; then
  set -- mariadbd "$@"
fi
if [[ $1 == mysqld ]]; then
  shift
  set -- mariadbd "$@"
fi
# Anything else (bash, mariadb, ...) runs as is.
if [[ $1 != mariadbd ]]; then
  exec "$@"
fi

readonly DATADIR=/var/lib/mysql
readonly SOCKET=/run/mysqld/mysqld.sock

# As root: prepare the directories, then run this script again as the mysql user.
if [[ $(id -u) == 0 ]]; then
  mkdir -p "$DATADIR" /run/mysqld
  chown mysql:mysql /run/mysqld
  # Only chown a data directory we do not own yet (a fresh volume), not on every start.
  if [[ $(stat -c %U "$DATADIR") != mysql ]]; then
    chown -R mysql:mysql "$DATADIR"
  fi
  export HOME=/var/lib/mysql
  exec setpriv --reuid=mysql --regid=mysql --init-groups -- "${BASH_SOURCE[0]}" "$@"
fi

# MARIADB_X, else MYSQL_X, else $2.
env_of() {
  local m=MARIADB_$1 y=MYSQL_$1
  if [[ -n ${!m:-} ]]; then
    printf '%s' "${!m}"
  elif [[ -n ${!y:-} ]]; then
    printf '%s' "${!y}"
  else
    printf '%s' "${2-}"
  fi
}

# A SQL string literal.
sql_string() {
  local s=${1//\\/\\\\}
  s=${s//\'/\\\'}
  printf "'%s'" "$s"
}
# A SQL identifier.
sql_ident() {
  printf '`%s`' "${1//\`/\`\`}"
}

init_datadir() {
  local root_password allow_empty random_root root_host database user password
  root_password=$(env_of ROOT_PASSWORD)
  allow_empty=$(env_of ALLOW_EMPTY_ROOT_PASSWORD)
  [[ -n $allow_empty ]] || allow_empty=$(env_of ALLOW_EMPTY_PASSWORD)
  random_root=$(env_of RANDOM_ROOT_PASSWORD)
  root_host=$(env_of ROOT_HOST %)
  database=$(env_of DATABASE)
  user=$(env_of USER)
  password=$(env_of PASSWORD)

  if [[ -z $root_password && -n $random_root ]]; then
    root_password=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
    log "GENERATED ROOT PASSWORD: $root_password"
  fi
  if [[ -z $root_password && -z $allow_empty ]]; then
    die "the database is uninitialized and no root password is set.
  Set MARIADB_ROOT_PASSWORD (or MYSQL_ROOT_PASSWORD), or MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1,
  or MARIADB_RANDOM_ROOT_PASSWORD=1."
  fi
  if [[ $user == root ]]; then
    die "MARIADB_USER=root: root is created anyway; use MARIADB_ROOT_PASSWORD for its password"
  fi
  if [[ -n $user && -z $password ]]; then
    die "MARIADB_USER is set but MARIADB_PASSWORD (or MYSQL_PASSWORD) is not"
  fi

  log "initialising $DATADIR (database '${database:-}', user '${user:-}', root@'$root_host')"
  mariadb-install-db --datadir="$DATADIR" --auth-root-authentication-method=normal \
    --skip-test-db --skip-name-resolve --rpm >/dev/null

  # Temporary server on the unix socket only, so nothing outside the container sees it
  # before the users exist.
  mariadbd --datadir="$DATADIR" --socket="$SOCKET" --skip-networking --skip-name-resolve "$@" &
  local pid=$! i
  for ((i = 0; i < 300; i++)); do
    if mariadb --protocol=socket --socket="$SOCKET" -uroot -e 'SELECT 1' >/dev/null 2>&1; then
      break
    fi
    kill -0 "$pid" 2>/dev/null || die "the temporary server exited during initialisation"
    sleep 0.1
  done
  ((i < 300)) || die "the temporary server did not answer within 30 s"

  local sql="SET @@SESSION.SQL_LOG_BIN=0;
DELETE FROM mysql.user WHERE User = 'root' AND Host NOT IN ('localhost');
DELETE FROM mysql.user WHERE User = '';
DELETE FROM mysql.proxies_priv WHERE Host NOT IN ('localhost');
ALTER USER 'root'@'localhost' IDENTIFIED BY $(sql_string "$root_password");"
  if [[ $root_host != localhost ]]; then
    sql+="
CREATE USER 'root'@$(sql_string "$root_host") IDENTIFIED BY $(sql_string "$root_password");
GRANT ALL ON *.* TO 'root'@$(sql_string "$root_host") WITH GRANT OPTION;
GRANT PROXY ON ''@'%' TO 'root'@$(sql_string "$root_host") WITH GRANT OPTION;"
  fi
  if [[ -n $database ]]; then
    sql+="
CREATE DATABASE IF NOT EXISTS $(sql_ident "$database");"
  fi
  if [[ -n $user ]]; then
    sql+="
CREATE USER $(sql_string "$user")@'%' IDENTIFIED BY $(sql_string "$password");"
    if [[ -n $database ]]; then
      sql+="
GRANT ALL ON $(sql_ident "$database").* TO $(sql_string "$user")@'%';"
    fi
  fi
  sql+="
FLUSH PRIVILEGES;"
  mariadb --protocol=socket --socket="$SOCKET" -uroot <<<"$sql"

  local client=(mariadb --protocol=socket --socket="$SOCKET" -uroot)
  [[ -z $root_password ]] || client+=("-p$root_password")
  [[ -z $database ]] || client+=("$database")
  local f
  for f in /docker-entrypoint-initdb.d/*; do
    [[ -e $f ]] || continue
    case $f in
      *.sh)
        log "running $f"
        # Sourced, as in the official image.
        # shellcheck disable=SC1090
        . "$f"
        ;;
      *.sql)
        log "running $f"
        "${client[@]}" <"$f"
        ;;
      *.sql.gz)
        log "running $f"
        gunzip -c "$f" | "${client[@]}"
        ;;
      *) log "ignoring $f" ;;
    esac
  done

  kill -TERM "$pid"
  for ((i = 0; i < 600; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  ! kill -0 "$pid" 2>/dev/null || die "the temporary server did not shut down within 60 s"
  wait "$pid" || true
  log "initialisation complete; starting the server"
}

shift # "mariadbd"
if [[ ! -d $DATADIR/mysql ]]; then
  init_datadir "$@"
else
  log "$DATADIR already initialised; starting the server"
fi

exec mariadbd --datadir="$DATADIR" --socket="$SOCKET" --bind-address=0.0.0.0 --port=3306 \
  --skip-name-resolve "$@"
