#!/usr/bin/env bash
# A MariaDB server of a test's or a benchmark's own: its own datadir, socket and pid file in DIR,
# on 127.0.0.1:PORT, no systemd, nothing of the host's MariaDB used or changed. root connects
# through DIR/sock (unix socket authentication); create the users the test needs with
#   mariadb --no-defaults --socket=DIR/sock -u root -e "CREATE USER ...".
# usage: mariadb.sh start DIR PORT   (DIR is made and given to the mysql user; waits until it answers)
#        mariadb.sh stop DIR         (waits until it is gone; nothing to do when it is not running)
# Used by the migrate target (needs/target/setup_mariadb) and bench/wordpress.py.
set -eu -o pipefail

start() {
    local dir=$1 port=$2
    mkdir -p "$dir"
    chown mysql "$dir"
    runuser -u mysql -- mariadb-install-db --no-defaults --datadir="$dir/data" --skip-test-db \
        --auth-root-authentication-method=socket >"$dir/install.log" 2>&1 ||
        { cat "$dir/install.log" >&2; echo "mariadb-install-db failed in $dir" >&2; exit 1; }
    runuser -u mysql -- mariadbd --no-defaults --datadir="$dir/data" --socket="$dir/sock" \
        --port="$port" --bind-address=127.0.0.1 --skip-name-resolve --pid-file="$dir/pid" \
        --log-error="$dir/error.log" --innodb-buffer-pool-size=32M </dev/null >/dev/null 2>&1 &
    local pid=$!
    for _ in $(seq 600); do
        mariadb-admin --no-defaults --socket="$dir/sock" -u root ping >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    tail -5 "$dir/error.log" >&2 || true
    echo "mariadbd did not answer on $dir/sock (port $port)" >&2
    exit 1
}

stop() {
    local dir=$1 pid
    [[ -f $dir/pid ]] || return 0
    pid=$(cat "$dir/pid")
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 150); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    echo "mariadbd ($pid) did not stop within 15 s" >&2
    exit 1
}

case ${1:-}:$# in
start:3) start "$2" "$3" ;;
stop:2) stop "$2" ;;
*)
    sed -n '2,8p' "$0" >&2
    exit 2
    ;;
esac
