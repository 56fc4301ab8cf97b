#!/usr/bin/env bash
# Two real web hosts (network namespaces with sshd, each its own Apache and PHP-FPM, see
# tests/hosts/) and one PostgreSQL server both use, deployed over SSH one host at a time
# (cutover_serial 1) while clients keep reading both sites:
#   deploy v1; deploy v2, whose expand migration adds a column (v1 keeps answering on the
#   host not switched yet) and whose contract migration runs once both hosts serve v2;
#   deploy v2 again (no change, no backup); roll back to v1 (the contract undone before the
#   switch, the expand after it).
# The migrations run once per deploy, on one host (yoyo records the host that ran each), the
# backup sits beside the release on that host, and no client ever sees an error: neither one
# asking a host directly nor one asking through HAProxy in front of both, whose health checks
# (every 200 ms, each given 2 s, down at the first failure) never find a host down.
set -eu -o pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=/dev/null
source "$HERE/../setup_collection/collection.sh"
# shellcheck source=/dev/null
source "$HERE/../setup_load/load.sh"
OUT=$(mktemp -d)
chmod 755 "$OUT"
HOSTS=(web1 web2)
declare -A IP=([web1]=10.77.0.11 [web2]=10.77.0.12)
PGBIN=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -1)
PGHOST=10.77.0.1
PGPORT=55434
PASSWORD='pässword 4471'
ROOT=/srv/www/app
export ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1 ANSIBLE_HOST_KEY_CHECKING=False

LB_ADDR=127.0.0.1:18091
LB=http://$LB_ADDR/
cleanup() {
    [[ -n $LOAD_PID ]] && kill "$LOAD_PID" 2>/dev/null
    [[ -f $OUT/haproxy/pid ]] && kill "$(cat "$OUT/haproxy/pid")" 2>/dev/null
    for h in "${HOSTS[@]}"; do "$COLL/tests/hosts/down.sh" "$h" >/dev/null; done
    if [[ -f $OUT/pg/data/postmaster.pid ]]; then
        (cd / && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$OUT/pg/data" -m fast -w stop >/dev/null) || true
    fi
    rm -rf "$OUT"
}
trap cleanup EXIT

step "two hosts with sshd, and a PostgreSQL server they both reach"
mkdir -p "$OUT/ssh"
ssh-keygen -q -t ed25519 -N '' -f "$OUT/ssh/key"
cp "$OUT/ssh/key.pub" "$OUT/ssh/authorized_keys"
for h in "${HOSTS[@]}"; do
    HOSTS_DIR=$OUT/hosts AUTHORIZED_KEYS=$OUT/ssh/authorized_keys "$COLL/tests/hosts/up.sh" "$h" "${IP[$h]}"
done
mkdir -p "$OUT/pg"
chown postgres "$OUT/pg"
runuser -u postgres -- "$PGBIN/initdb" -D "$OUT/pg/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 >/dev/null
echo "host all all 10.77.0.0/24 scram-sha-256" >>"$OUT/pg/data/pg_hba.conf"
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$OUT/pg/data" -l "$OUT/pg/log" -w \
    -o "-p $PGPORT -k $OUT/pg -c listen_addresses=$PGHOST" start >/dev/null
psql -q -h "$OUT/pg" -p $PGPORT -U postgres -c "CREATE ROLE shop LOGIN PASSWORD '$PASSWORD'" -c "CREATE DATABASE shop OWNER shop"
sql() { psql -qtA -h "$OUT/pg" -p $PGPORT -U postgres -d shop -c "$1"; }

# The application: its page (the same in both versions), code and migrations, and the example shop's migration program (yoyo).
for v in v1 v2; do
    mkdir -p "$OUT/src/$v/bin"
    cp -a "$HERE/files/common/." "$HERE/files/$v/." "$OUT/src/$v/"
    cp "$COLL/examples/shop/v1/bin/migrate" "$OUT/src/$v/bin/"
done
# Each host's shared config/db.ini, linked into every release (deploy_shared_files).
for h in "${HOSTS[@]}"; do
    mkdir -p "$OUT/hosts/$h/srv/www/app/shared/config"
    printf 'dsn = "pgsql:host=%s;port=%s;dbname=shop"\nuser = shop\npassword = "%s"\n' "$PGHOST" "$PGPORT" "$PASSWORD" \
        >"$OUT/hosts/$h/srv/www/app/shared/config/db.ini"
done

cat >"$OUT/inventory.ini" <<INI
[web]
web1 ansible_host=${IP[web1]}
web2 ansible_host=${IP[web2]}

[web:vars]
ansible_port=2222
ansible_user=root
ansible_ssh_private_key_file=$OUT/ssh/key
ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'
ansible_python_interpreter=/usr/bin/python3
ansible_pipelining=true
INI
cat >"$OUT/vars.json" <<JSON
{"cutover_serial": 1, "cutover_apache_vhost": true,
 "apache_vhost_name": "app", "apache_vhost_root": "$ROOT", "apache_vhost_port": 8080,
 "deploy_root": "$ROOT", "deploy_shared_files": ["config/db.ini"],
 "deploy_probe_url": "http://127.0.0.1:8080/",
 "deploy_migrate": true, "migrate_command": "bin/migrate", "migrate_engine": "postgresql",
 "migrate_pg_dsn": "host=$PGHOST port=$PGPORT dbname=shop user=shop",
 "migrate_environment": {"DATABASE_URL": "postgresql://shop@$PGHOST:$PGPORT/shop", "PGPASSWORD": "$PASSWORD"},
 "rollback_root": "$ROOT", "rollback_apache_vhost_name": "app", "rollback_migrate": true,
 "rollback_probe_url": "http://127.0.0.1:8080/"}
JSON

# play NAME ARGS...: a collection playbook against both hosts; the output goes to $OUT/last.
play() {
    local name=$1
    shift
    ansible-playbook -i "$OUT/inventory.ini" "cutover.web.$name" -e "@$OUT/vars.json" "$@" 2>&1 | tee "$OUT/last"
}
deploy() { play deploy -e "deploy_src=$OUT/src/$1" -e "deploy_probe_content=catalog $1 on"; }
no_secret() { ! grep -q -- "$PASSWORD" "$OUT/last" || fail "the database password appeared in the output"; }
page() { curl -sS --max-time 10 "http://${IP[$1]}:8080/"; }
site() { echo "$OUT/hosts/$1/srv/www/app"; }
current_of() { basename "$(readlink "$(site "$1")/current")"; }
# ran_on MIGRATION OPERATION: the hosts that ran it, as yoyo recorded them, one a line.
ran_on() { sql "SELECT hostname FROM _yoyo_log WHERE migration_id = '$1' AND operation = '$2' ORDER BY created_at_utc"; }
# logged_at MIGRATION OPERATION / activated_at HOST RELEASE: when (epoch seconds, the last time).
logged_at() {
    sql "SELECT max(extract(epoch FROM created_at_utc AT TIME ZONE 'UTC')) FROM _yoyo_log WHERE migration_id = '$1' AND operation = '$2'"
}
in_order() { python3 -c 'import sys; t = list(map(float, sys.argv[1:])); sys.exit(0 if t == sorted(t) else 1)' "$@"; }
activated_at() { from_history "$1" "$2" activated epoch; }
schema_of() { from_history "$1" "$2" schema version; } # HOST RELEASE: the schema version recorded
from_history() { # HOST RELEASE EVENT FIELD: FIELD of the last EVENT of RELEASE in HOST's history
    python3 -c '
import json, sys
path, release, event, field = sys.argv[1:]
found = [e[field] for e in map(json.loads, open(path)) if e.get("event") == event and e.get("release") == release]
print(found[-1] if found else "none")' "$(site "$1")/.cutover/history.jsonl" "$2" "$3" "$4"
}
step "deploy v1 to both hosts, one at a time"
deploy v1
expect_recap 'failed=0' web1
expect_recap 'failed=0' web2
no_secret
for h in "${HOSTS[@]}"; do
    page "$h" | grep -q "^catalog v1 on $h" || fail "$h does not serve v1: $(page "$h")"
done
V1=$(current_of web1)
[[ $(current_of web2) == "$V1" ]] || fail "the hosts have different release ids: $V1, $(current_of web2)"
[[ $(ran_on 0001-expand-create-products apply) == web1 ]] ||
    fail "0001 should have run once, on web1; it ran on: $(ran_on 0001-expand-create-products apply)"

step "a load balancer in front of both hosts: HAProxy, its health checks every 200 ms"
mkdir -p "$OUT/haproxy"
cat >"$OUT/haproxy/haproxy.cfg" <<CFG
global
  stats socket $OUT/haproxy/admin.sock mode 600 level admin
  log stdout format raw local0
defaults
  mode http
  log global
  option log-health-checks
  timeout connect 2s
  timeout client 10s
  timeout server 10s
  retries 0
  timeout check 2s
frontend fe
  bind $LB_ADDR
  default_backend app
backend app
  balance roundrobin
  option httpchk GET /
  server web1 ${IP[web1]}:8080 check inter 200 fall 1 rise 1
  server web2 ${IP[web2]}:8080 check inter 200 fall 1 rise 1
CFG
# In the foreground (its log, health checks included, on stdout), in the background of this script.
haproxy -f "$OUT/haproxy/haproxy.cfg" -db >"$OUT/haproxy/log" 2>&1 &
echo $! >"$OUT/haproxy/pid"
# lb_servers: each host as HAProxy saw it so far: status, health checks failed, times marked down, connection
# and response errors.
lb_servers() {
    python3 - "$OUT/haproxy/admin.sock" <<'PY'
import csv, io, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b'show stat\n')
data = b''.join(iter(lambda: s.recv(65536), b'')).decode()
for row in csv.DictReader(io.StringIO(data.lstrip('# '))):
    if row['pxname'] == 'app' and row['svname'] in ('web1', 'web2'):
        print('%s %s chkfail=%s chkdown=%s econ=%s eresp=%s'
              % (row['svname'], row['status'], row['chkfail'], row['chkdown'], row['econ'], row['eresp']))
PY
}
# lb_healthy WHAT: both hosts up, and never a failed check or an error since HAProxy started.
lb_healthy() {
    local seen
    seen=$(lb_servers)
    echo "HAProxy after $1: $seen" | tr '\n' ';'
    echo
    [[ $seen == "web1 UP chkfail=0 chkdown=0 econ=0 eresp=0"$'\n'"web2 UP chkfail=0 chkdown=0 econ=0 eresp=0" ]] ||
        fail "HAProxy saw a host fail during $1: $seen; its log: $(grep -i 'health check' "$OUT/haproxy/log" | tail -5)"
}
for _ in $(seq 50); do
    [[ $(lb_servers) == *"web1 UP"*"web2 UP"* ]] && break
    sleep 0.1
done
lb_healthy "its start"
# lb_versions: the versions the client asking through HAProxy was answered by, during the last load.
lb_versions() {
    python3 -c 'import json, sys; print(" ".join(sorted(json.load(open(sys.argv[1]))[sys.argv[2]]["versions"])))' "$OUT/load.json" "$LB"
}

step "deploy v2 under load: expand before the switch, contract once both hosts serve v2"
sql "INSERT INTO products (id, name, price_cents) VALUES (3, 'Written by v1', 990)" >/dev/null
load_start "$OUT" '^catalog (v[0-9]+) on ' "http://${IP[web1]}:8080/" "http://${IP[web2]}:8080/" "$LB"
deploy v2
load_stop "the deploy of v2"
lb_healthy "the deploy of v2"
# One host at a time: through the load balancer, v1 and v2 both answered while the deploy ran.
[[ $(lb_versions) == "v1 v2" ]] || fail "through HAProxy the deploy was answered by $(lb_versions) only, not v1 and v2"
expect_recap 'failed=0' web1
expect_recap 'failed=0' web2
no_secret
V2=$(current_of web1)
[[ $V2 != "$V1" && $(current_of web2) == "$V2" ]] || fail "the hosts are on $(current_of web1) and $(current_of web2)"
for h in "${HOSTS[@]}"; do
    page "$h" | grep -q "^catalog v2 on $h" || fail "$h does not serve v2: $(page "$h")"
done
page web2 | grep -q '^Written by v1 | 990 | 12$' || fail "the row written before the deploy is not served with its stock"
for m in 0002-expand-add-stock 0003-contract-stock-not-negative; do
    [[ $(ran_on "$m" apply) == web1 ]] || fail "$m should have run once, on web1; it ran on: $(ran_on "$m" apply)"
done
# Expand before either host switched, contract after both did.
expand=$(logged_at 0002-expand-add-stock apply)
contract=$(logged_at 0003-contract-stock-not-negative apply)
for h in "${HOSTS[@]}"; do
    switched=$(activated_at "$h" "$V2")
    in_order "$expand" "$switched" "$contract" ||
        fail "$h switched at $switched: the expand (at $expand) should come before and the contract (at $contract) after"
done
# The backup of each phase sits beside the release, on the host that ran the migrations only.
for phase in expand contract; do
    [[ -s $(site web1)/.cutover/backups/$V2/$phase.pgdump ]] || fail "no $phase backup of $V2 on web1"
done
[[ -z $(ls -A "$(site web2)/.cutover/backups/$V2" 2>/dev/null) ]] || fail "web2 took a backup too"
[[ $(sql "SELECT count(*) FROM pg_constraint WHERE conname = 'stock_not_negative'") == 1 ]] || fail "the contract migration is not in place"
for h in "${HOSTS[@]}"; do
    [[ $(schema_of "$h" "$V2") == 0003-contract-stock-not-negative ]] || fail "$h records schema $(schema_of "$h" "$V2") for $V2"
done

step "deploy v2 again: nothing changes, no backup"
backups() { { find "$(site web1)/.cutover/backups" "$(site web2)/.cutover/backups" 2>/dev/null || true; } | sort; }
before=$(backups)
deploy v2
expect_recap 'changed=0' web1
expect_recap 'changed=0' web2
[[ $(backups) == "$before" ]] || fail "a backup was taken"
[[ $(current_of web1) == "$V2" && $(current_of web2) == "$V2" ]] || fail "current moved"

step "roll back to v1 under load: the contract undone before the switch, the expand after"
load_start "$OUT" '^catalog (v[0-9]+) on ' "http://${IP[web1]}:8080/" "http://${IP[web2]}:8080/" "$LB"
play rollback
load_stop "the rollback"
lb_healthy "the rollback"
expect_recap 'failed=0' web1
expect_recap 'failed=0' web2
no_secret
for h in "${HOSTS[@]}"; do
    [[ $(current_of "$h") == "$V1" ]] || fail "$h is on $(current_of "$h"), expected $V1"
    page "$h" | grep -q "^catalog v1 on $h" || fail "$h does not serve v1: $(page "$h")"
done
for m in 0002-expand-add-stock 0003-contract-stock-not-negative; do
    [[ $(ran_on "$m" rollback) == web1 ]] || fail "$m should have been undone once, on web1: $(ran_on "$m" rollback)"
done
contract=$(logged_at 0003-contract-stock-not-negative rollback)
expand=$(logged_at 0002-expand-add-stock rollback)
for h in "${HOSTS[@]}"; do
    switched=$(activated_at "$h" "$V1")
    in_order "$contract" "$switched" "$expand" ||
        fail "$h switched back at $switched: the contract should be undone before (at $contract), the expand after (at $expand)"
done
[[ $(sql "SELECT count(*) FROM information_schema.columns WHERE table_name = 'products' AND column_name = 'stock'") == 0 ]] ||
    fail "the stock column is still there"
page web1 | grep -q '^Written by v1 | 990$' || fail "the row written before is gone"

echo "deploy_hosts: all steps passed"
