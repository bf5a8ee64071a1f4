#!/usr/bin/env bash
# A PostgreSQL server for skillopt's tests, and for trying a team ledger by hand.
#
#   eval "$(bash scripts/postgres.sh)"   # start (installing the server first if need be) and
#                                        # export SKILLOPT_TEST_PG_URL=postgresql+psycopg://...
#   bash scripts/postgres.sh url         # print the export line of a running server
#   bash scripts/postgres.sh stop        # stop it (its data stays; start reuses it)
#
# A private cluster of its own (never the distribution's `main` cluster): data, socket and log
# in $SKILLOPT_PG_DIR (default /tmp/skillopt-postgres-$UID), listening on 127.0.0.1 only, on
# port $SKILLOPT_PG_PORT (default 54329; another free port when that one is taken). It holds
# a user `skillopt` (with CREATEDB: each test creates its own database and drops it) with a
# random password kept in the directory, and a database `skillopt`. Idempotent: a running
# server is reused, a stopped one restarted, a broken or outdated directory made anew.
# Without a server binary it installs Debian's `postgresql` package (as root: apt-get).
# Only the export line goes to stdout; progress and errors go to stderr.
set -euo pipefail

action=${1:-start}
DIR=${SKILLOPT_PG_DIR:-/tmp/skillopt-postgres-$(id -u)}
DATA=$DIR/data
ROLE=skillopt

say() { echo "postgres.sh: $*" >&2; }

server_bin() {  # the directory of pg_ctl and postgres: Debian's newest, else the PATH's
    local d
    for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
        if [[ -x $d/pg_ctl && -x $d/postgres && -x $d/initdb ]]; then
            echo "$d"
            return 0
        fi
    done
    if command -v pg_ctl >/dev/null && command -v postgres >/dev/null; then
        dirname "$(command -v pg_ctl)"
        return 0
    fi
    return 1
}

install_server() {
    if [[ $(id -u) != 0 ]]; then
        say "no PostgreSQL server found: install one (Debian: sudo apt-get install postgresql)"
        exit 1
    fi
    say "installing PostgreSQL from the distribution's packages"
    export DEBIAN_FRONTEND=noninteractive
    local try
    for try in 1 2 3; do  # a mirror's hiccup is not a failed build
        if apt-get update -qq >&2 && apt-get install -y -qq postgresql >&2; then
            return 0
        fi
        say "apt-get failed (try $try of 3)"
        sleep $((try * 5))
    done
    return 1
}

BIN=$(server_bin) || {
    [[ $action == stop ]] && exit 0
    install_server || { say "could not install PostgreSQL (apt-get)"; exit 1; }
    BIN=$(server_bin) || { say "apt-get installed no PostgreSQL server"; exit 1; }
}

# The server refuses to run as root: root runs it as the `postgres` user.
OWNER=$(id -un)
if [[ $(id -u) == 0 ]]; then
    OWNER=postgres
    id postgres >/dev/null 2>&1 || useradd --system --user-group --no-create-home postgres
fi
as_owner() {
    if [[ $(id -u) == 0 ]]; then
        runuser -u "$OWNER" -- "$@"
    else
        "$@"
    fi
}

running() { as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }
running_port() { sed -n 4p "$DATA/postmaster.pid" 2>/dev/null; }
ready() { "$BIN/pg_isready" -q -h "$DIR" -p "$1" -t 2 >/dev/null 2>&1; }

port_free() {
    python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds it
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
}

free_port() {
    local want=${SKILLOPT_PG_PORT:-54329}
    if port_free "$want"; then
        echo "$want"
        return
    fi
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

export_line() {
    local port=$1 password
    password=$(cat "$DIR/password")
    echo "export SKILLOPT_TEST_PG_URL=postgresql+psycopg://$ROLE:$password@127.0.0.1:$port/$ROLE"
}

stop() {
    if [[ -d $DATA ]] && running; then
        as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
        say "stopped the server of $DATA"
    fi
}

init_cluster() {
    local major have
    major=$("$BIN/postgres" -V | awk '{print $3}' | cut -d. -f1)
    have=$(cat "$DATA/PG_VERSION" 2>/dev/null || true)
    if [[ -n $have && $have == "$major" && -f $DATA/postgresql.conf && -f $DIR/password ]]; then
        return  # a cluster of this server's version, made by this script
    fi
    say "creating a PostgreSQL $major cluster in $DATA"
    rm -rf "$DATA"
    od -An -N12 -tx1 /dev/urandom | tr -d ' \n' >"$DIR/password"
    chmod 600 "$DIR/password"
    chown "$OWNER" "$DIR/password"
    # Sockets trust the OS user (the directory is private); TCP needs the password.
    as_owner "$BIN/initdb" -D "$DATA" -U postgres -E UTF8 --no-locale \
        --auth-local=trust --auth-host=scram-sha-256 >"$DIR/initdb.log" 2>&1 || {
        cat "$DIR/initdb.log" >&2
        say "initdb failed"
        exit 1
    }
    # A throwaway test server: durability is not what is tested (a killed client is; the
    # server is never killed), so skip the syncs that make every commit wait for the disk.
    cat >>"$DATA/postgresql.conf" <<EOF

# scripts/postgres.sh
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DIR'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
}

start() {
    mkdir -p "$DIR"
    chmod 700 "$DIR"
    chown "$OWNER" "$DIR"
    cd "$DIR"  # the server's user may not read the caller's directory
    local port
    if running; then
        port=$(running_port)
        for _ in $(seq 1 30); do
            ready "$port" && break
            sleep 0.5
        done
        if ready "$port"; then
            say "reusing the server of $DATA on port $port"
        else
            say "the server of $DATA does not answer; restarting it"
            as_owner "$BIN/pg_ctl" -D "$DATA" -m immediate -w stop >/dev/null 2>&1 || true
            rm -f "$DATA/postmaster.pid"
            port=""
        fi
    fi
    if [[ -z ${port:-} ]] || ! running; then
        local attempt
        for attempt in 1 2; do
            init_cluster
            port=$(free_port)
            rm -f "$DIR/server.log"
            if as_owner "$BIN/pg_ctl" -D "$DATA" -l "$DIR/server.log" -w -t 60 \
                -o "-p $port" start >/dev/null; then
                break
            fi
            tail -n 30 "$DIR/server.log" >&2 || true
            if [[ $attempt == 2 ]]; then
                say "the server did not start (log: $DIR/server.log)"
                exit 1
            fi
            # A cluster left broken (a killed server, a full disk...): a test server's data
            # is disposable, so make it anew once.
            say "the server of $DATA did not start; making its cluster anew"
            as_owner "$BIN/pg_ctl" -D "$DATA" -m immediate -w stop >/dev/null 2>&1 || true
            rm -rf "$DATA"
            rm -f "$DIR"/.s.PGSQL.*  # a stale socket lock names a process that is gone
        done
        say "started PostgreSQL on 127.0.0.1:$port (data: $DATA)"
    fi
    local password
    password=$(cat "$DIR/password")
    psql_admin() {
        as_owner "$BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$DIR" -p "$port" \
            -U postgres -d postgres "$@"
    }
    psql_admin -c "DO \$\$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
            CREATE ROLE $ROLE LOGIN CREATEDB;
        END IF;
    END \$\$" >/dev/null
    psql_admin -c "ALTER ROLE $ROLE LOGIN CREATEDB PASSWORD '$password'" >/dev/null
    if [[ -z $(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$ROLE'") ]]; then
        psql_admin -c "CREATE DATABASE $ROLE OWNER $ROLE" >/dev/null
    fi
    export_line "$port"
}

case $action in
start) start ;;
stop) stop ;;
url)
    if [[ -d $DATA ]] && running; then
        export_line "$(running_port)"
    else
        say "not running (start it: bash scripts/postgres.sh)"
        exit 1
    fi
    ;;
*)
    say "usage: bash scripts/postgres.sh [start|url|stop]"
    exit 2
    ;;
esac
