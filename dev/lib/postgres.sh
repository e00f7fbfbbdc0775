# PostgreSQL: Debian's server binaries, a throwaway cluster under $STATE/postgres.
# shellcheck shell=bash

PG_USER=vap
PG_PASSWORD=vap-local-only
PG_DB=vap

pg_bindir() {
  local dir
  if command -v pg_config >/dev/null && [[ -x $(pg_config --bindir)/initdb ]]; then pg_config --bindir; return; fi
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [[ -x $dir/initdb ]] && { echo "$dir"; return; }
  done
}

# initdb and postgres refuse to run as root: as root, run them as the `postgres` system user.
pg_as_owner() {
  if [[ $(id -u) -eq 0 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# The cluster lives in $STATE/postgres. As root the server runs as the `postgres` user, which may not
# be able to enter a private clone folder (e.g. one made by mktemp -d): then it lives in /var/tmp.
pg_paths() {
  PG_HOME=$STATE/postgres
  if [[ $(id -u) -eq 0 ]] && id postgres >/dev/null 2>&1 && ! (cd / && runuser -u postgres -- test -x "$STATE"); then
    PG_HOME=/var/tmp/vap-postgres-$(printf '%s' "$STATE" | sha256sum | cut -c1-12)
  fi
  PG_DATA=$PG_HOME/data
  PG_LOG=$PG_HOME/postgres.log
}
pg_paths

postgres_install() {
  [[ -n $(pg_bindir) ]] || apt_install postgresql
  [[ -n $(pg_bindir) ]] || die "PostgreSQL server binaries not found after installing"
  if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then useradd --system --no-create-home postgres; fi
  pg_paths
}

postgres_start() {
  local bin; bin=$(pg_bindir)
  mkdir -p "$PG_HOME"; touch "$PG_LOG"
  [[ $(id -u) -eq 0 ]] && chown postgres "$PG_HOME" "$PG_LOG"
  if [[ ! -f $PG_DATA/PG_VERSION ]]; then
    info "initdb (cluster in $PG_DATA)"
    local pwfile=$PG_HOME/pwfile
    echo "$PG_PASSWORD" >"$pwfile"; [[ $(id -u) -eq 0 ]] && chown postgres "$pwfile"
    pg_as_owner "$bin/initdb" -D "$PG_DATA" -U "$PG_USER" --pwfile="$pwfile" --auth-local=trust \
      --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >>"$PG_LOG" 2>&1 || die "initdb failed (log: $PG_LOG)"
    rm -f "$pwfile"
    # A throwaway cluster: durability of the server itself is not under test, speed is welcome.
    cat >>"$PG_DATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_HOME'
max_connections = 300
fsync = off
full_page_writes = off
shared_buffers = 256MB
CONF
  fi
  if pg_as_owner "$bin/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then
    info "already running"
  else
    pg_as_owner "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 start >/dev/null || die "postgres did not start (log: $PG_LOG)"
  fi
}

postgres_ready() { "$(pg_bindir)/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; }

postgres_create_db() {
  local bin; bin=$(pg_bindir)
  if ! "$bin/psql" -h "$PG_HOME" -p "$PG_PORT" -U "$PG_USER" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$PG_DB'" | grep -q 1; then
    "$bin/createdb" -h "$PG_HOME" -p "$PG_PORT" -U "$PG_USER" "$PG_DB"
    info "created database $PG_DB"
  fi
}

postgres_stop() {
  local bin; bin=$(pg_bindir)
  [[ -f $PG_DATA/PG_VERSION ]] || return 0
  if pg_as_owner "$bin/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then
    pg_as_owner "$bin/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null
  fi
}

postgres_status() {
  if postgres_ready 2>/dev/null; then echo "postgres   up    postgresql+psycopg2://$PG_USER:***@127.0.0.1:$PG_PORT/$PG_DB"; else echo "postgres   down"; fi
}
