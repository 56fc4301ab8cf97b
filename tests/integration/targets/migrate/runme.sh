#!/usr/bin/env bash
# The migrate role against real databases: SQLite, a PostgreSQL server this test starts
# (a cluster of its own in a temporary directory, on 127.0.0.1:55433) and a MariaDB server it
# starts likewise (its own datadir and socket, on 127.0.0.1:55434). For each engine:
# expand migrations in check mode (listed, none run), for real (applied, schema version
# recorded), again (no change, no backup), a release with one more migration (backed up
# first), and a release whose second new migration fails (the database as it was, rows
# written before intact, the error naming the migration, the password never shown), the
# migrate playbook alone, rollbacks with down migrations, refused and forced. For MariaDB also
# the bad input: a wrong password, a dump tool missing, a dump failing halfway. On SQLite, the
# contract's fallbacks (a program without pending, version, down or irreversible), the program
# run as another user, a set of two database files, and deploy --check listing what a new
# release would run.
set -eu -o pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=/dev/null
source "$HERE/../setup_collection/collection.sh"

OUT=$(mktemp -d)
chmod 755 "$OUT"
PGBIN=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -1)
PGPORT=55433
PASSWORD='sécret pw 8731'
MYPORT=55434
MARIADB=$HERE/../setup_mariadb/mariadb.sh
cleanup() {
    if [[ -f $OUT/pg/data/postmaster.pid ]]; then
        runuser -u postgres -- "$PGBIN/pg_ctl" -D "$OUT/pg/data" -m fast -w stop >/dev/null || true
    fi
    "$MARIADB" stop "$OUT/mariadb" || true
    userdel cutover-mig-it 2>/dev/null || true
    rm -rf "$OUT"
}
trap cleanup EXIT
export ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1

# The application: the example shop's migration adapter (yoyo-migrations) and a set of migrations.
for v in v1 v2 v3 v4; do
    mkdir -p "$OUT/src/$v/bin"
    cp -a "$HERE/files/$v/migrations" "$OUT/src/$v/"
    cp "$COLL/examples/shop/v1/bin/migrate" "$HERE/files/limited" "$HERE/files/writer" "$OUT/src/$v/bin/"
done

# play ENGINE RID SRC [ARGS...]: run migrate.yml; the output goes to $OUT/last.
play() {
    local engine=$1 rid=$2 src=$3
    shift 3
    ansible-playbook -i "$HERE/inventory.ini" "$HERE/migrate.yml" -e "@$OUT/$engine.json" \
        -e rid="$rid" -e src="$OUT/src/$src" "$@" 2>&1 | tee "$OUT/last"
}
expect_output() { grep -q -- "$1" "$OUT/last" || fail "expected '$1' in the output"; }
no_secret() { ! grep -q -- "$PASSWORD" "$OUT/last" || fail "the database password appeared in the output"; }
# rollback ENGINE [ARGS...]: the collection's rollback playbook with the database going back.
rollback() {
    local engine=$1
    shift
    ansible-playbook -i "$HERE/inventory.ini" cutover.web.rollback -e "@$OUT/$engine.json" \
        -e rollback_root="$ROOT" -e rollback_migrate=true -e migrate_command=bin/migrate "$@" 2>&1 | tee "$OUT/last"
}
switch() { ansible -i "$HERE/inventory.ini" testhost -m cutover.web.atomic_symlink -a "root=$ROOT release=$1" >/dev/null; }
current() { basename "$(readlink "$ROOT/current")"; }
has_column() { # COLUMN: 1 when products has it
    sql "$engine" "SELECT count(*) FROM information_schema.columns WHERE table_name = 'products' AND column_name = '$1'"
}
schema_of() { # RID: the schema version release_info reports
    ansible -i "$HERE/inventory.ini" testhost -m cutover.web.release_info -a "root=$ROOT" -o 2>/dev/null |
        sed 's/^[^{]*//' | python3 -c '
import json, sys
info = json.load(sys.stdin)
print(next((r["schema_version"] for r in info["releases"] if r["id"] == sys.argv[1]), "missing"))' "$1"
}

# A writer as a busy site has one: it holds the SQLite database (an exclusive transaction of
# 0.3 s, free for 0.1 s, again and again) while the deploy backs it up. sqlite3 .backup without a busy timeout
# fails with "database is locked" at once; the backup must wait its turn instead.
writer_start() {
    python3 - "$OUT/sqlite-site/shop.sqlite" "$OUT/writer.stop" <<'PY' &
import os, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
db.execute('CREATE TABLE IF NOT EXISTS site_writes (n INTEGER)')
deadline = time.time() + 120
while not os.path.exists(sys.argv[2]) and time.time() < deadline:
    db.execute('BEGIN EXCLUSIVE')
    db.execute('INSERT INTO site_writes VALUES (1)')
    time.sleep(0.3)
    db.execute('COMMIT')
    time.sleep(0.1)
PY
    WRITER=$!
    sleep 0.5
}
writer_stop() {
    touch "$OUT/writer.stop"
    wait "$WRITER" || fail "the writer failed"
    rm -f "$OUT/writer.stop"
    [[ $(sql sqlite "SELECT count(*) FROM site_writes") -gt 0 ]] || fail "the writer wrote nothing"
}

run_engine() {
    local engine=$1
    ROOT=$OUT/$engine-site
    step "$engine: expand in check mode lists the migrations and runs none"
    ansible -i "$HERE/inventory.ini" testhost -m cutover.web.release_dir -a "root=$ROOT src=$OUT/src/v1 id=r1" >/dev/null
    play "$engine" r1 v1 --check
    expect_output '0001-expand-create-products'
    expect_output '0002-expand-seed-products'
    [[ $(sql "$engine" "SELECT count(*) FROM information_schema.tables WHERE table_name = 'products'") == 0 ]] ||
        fail "check mode created the products table"

    step "$engine: expand applies them and records the schema version"
    play "$engine" r1 v1
    expect_recap 'failed=0'
    [[ $(sql "$engine" "SELECT count(*) FROM products") == 3 ]] || fail "the products were not seeded"
    [[ $(schema_of r1) == 0002-expand-seed-products ]] || fail "r1's schema is $(schema_of r1)"

    step "$engine: again: nothing pending, no change, no backup"
    before=$(ls -A "$ROOT/.cutover/backups/r1" 2>/dev/null || true)
    play "$engine" r1 v1
    expect_recap 'changed=0'
    [[ $(ls -A "$ROOT/.cutover/backups/r1" 2>/dev/null || true) == "$before" ]] || fail "a backup was taken with nothing pending"

    step "$engine: a release with one more migration: backed up, then applied"
    sql "$engine" "INSERT INTO products (id, name, price_cents) VALUES (4, 'Written by v1', 100)" >/dev/null
    [[ $engine == sqlite ]] && writer_start
    play "$engine" r2 v2
    [[ $engine == sqlite ]] && writer_stop
    expect_recap 'failed=0'
    [[ -s $ROOT/.cutover/backups/r2/expand.$2 ]] || fail "no backup before r2's migrations"
    [[ ! -e $ROOT/.cutover/backups/r2/expand.$2.partial ]] || fail "a partial backup copy was left"
    [[ $(sql "$engine" "SELECT count(*) FROM products WHERE stock = 0") == 4 ]] || fail "stock was not added"
    [[ $(schema_of r2) == 0003-expand-add-stock ]] || fail "r2's schema is $(schema_of r2)"

    step "$engine: the second of two new migrations fails: database as before, the error names it"
    if play "$engine" r3 v3; then fail "the broken migration did not fail the play"; fi
    expect_output 'migration 0005-expand-broken failed'
    expect_output 'the database was restored from'
    no_secret
    [[ $(sql "$engine" "SELECT count(*) FROM information_schema.columns WHERE table_name = 'products' AND column_name = 'sku'") == 0 ]] ||
        fail "0004-expand-add-sku stayed applied after the failure"
    [[ $(sql "$engine" "SELECT count(*) FROM information_schema.tables WHERE table_name = 'sku_aliases'") == 0 ]] ||
        fail "the table 0004-expand-add-sku made stayed after the failure"
    [[ $(sql "$engine" "SELECT name FROM products WHERE id = 4") == 'Written by v1' ]] || fail "the row written before was lost"
    [[ $(sql "$engine" "SELECT count(*) FROM products") == 4 ]] || fail "rows changed"
    [[ $(schema_of r3) == None ]] || fail "r3 has a schema version recorded: $(schema_of r3)"

    step "$engine: the migrate playbook on its own, for the current release: nothing pending"
    switch r1
    switch r2
    ansible-playbook -i "$HERE/inventory.ini" cutover.web.migrate -e "@$OUT/$engine.json" \
        -e migrate_root="$ROOT" -e migrate_command=bin/migrate --check 2>&1 | tee "$OUT/last"
    expect_output 'nothing pending'
    expect_recap 'changed=0'

    step "$engine: rollback from r2 to r1 runs r2's down migration"
    rollback "$engine"
    expect_recap 'failed=0'
    no_secret
    [[ $(current) == r1 ]] || fail "current is $(current), expected r1"
    [[ $(has_column stock) == 0 ]] || fail "0003-expand-add-stock was not undone"
    [[ $(sql "$engine" "SELECT name FROM products WHERE id = 4") == 'Written by v1' ]] || fail "a row was lost"

    step "$engine: rollback again: already rolled back, the database is not touched"
    rollback "$engine"
    expect_recap 'changed=0'
    [[ $(current) == r1 ]] || fail "a second rollback moved current"

    step "$engine: rollback past an irreversible migration is refused, nothing changes"
    play "$engine" r4 v4
    switch r4
    play "$engine" r4 v4 -e phase=contract
    expect_output '0004-contract-purge-drafts'
    sql "$engine" "INSERT INTO products (id, name, price_cents) VALUES (5, 'Written by r4', 500)" >/dev/null
    if rollback "$engine"; then fail "the rollback past an irreversible migration did not fail"; fi
    expect_output 'would undo 0004-contract-purge-drafts, which cannot be undone; nothing was changed'
    expect_recap 'changed=0'
    [[ $(current) == r4 ]] || fail "the refused rollback moved current to $(current)"
    [[ $(has_column stock) == 1 ]] || fail "the refused rollback changed the schema"
    [[ ! -e $ROOT/.cutover/deploy.lock ]] || fail "the lock was not given back"

    step "$engine: forced, it restores the backup taken before r4's migrations"
    rollback "$engine" -e rollback_migrate_force=true
    expect_recap 'failed=0'
    no_secret
    [[ $(current) == r1 ]] || fail "current is $(current), expected r1"
    [[ $(has_column stock) == 0 ]] || fail "the backup was not restored (stock is still there)"
    [[ $(sql "$engine" "SELECT name FROM products WHERE id = 4") == 'Written by v1' ]] ||
        fail "the row written before r4's migrations was lost"
}

step "SQLite"
mkdir -p "$OUT/sqlite-site"
cat >"$OUT/sqlite.json" <<JSON
{"root": "$OUT/sqlite-site", "migrate_engine": "sqlite", "migrate_sqlite_path": "$OUT/sqlite-site/shop.sqlite",
 "migrate_environment": {"DATABASE_URL": "sqlite:///$OUT/sqlite-site/shop.sqlite"}}
JSON
sql() { # ENGINE QUERY (information_schema mapped to SQLite's own tables)
    local q=$2
    q=${q//"information_schema.tables WHERE table_name ="/sqlite_master WHERE type = 'table' AND name =}
    if [[ $q =~ information_schema.columns.*column_name\ =\ \'([a-z_]+)\' ]]; then
        q="SELECT count(*) FROM pragma_table_info('products') WHERE name = '${BASH_REMATCH[1]}'"
    fi
    local ro=()
    [[ $q == SELECT* ]] && ro=(-readonly)  # a query must not create the database
    sqlite3 "${ro[@]}" "$OUT/sqlite-site/shop.sqlite" "$q" 2>/dev/null || echo 0
}
run_engine sqlite sqlite3

# The contract as real tools have it, on SQLite: settings for a root of its own with a program
# that answers only some verbs (files/limited; migrate_verbs says which), its version being the
# database's (not the release's own newest migration).
fallback_json() { # VERBS...: the settings, the program having those verbs
    local verbs
    verbs=$(printf '"%s",' "$@")
    cat <<JSON
{"root": "$OUT/fb-site", "migrate_engine": "sqlite", "migrate_sqlite_path": "$OUT/fb-site/shop.sqlite",
 "command": "bin/limited", "migrate_verbs": [${verbs%,}],
 "migrate_environment": {"DATABASE_URL": "sqlite:///$OUT/fb-site/shop.sqlite", "VERBS": "$*",
                         "DB_VERSION": "$OUT/fb-site/shop.sqlite"}}
JSON
}
contract_cases() {
    ROOT=$OUT/fb-site
    local db=$ROOT/shop.sqlite sum backups
    has_stock() { sqlite3 "$db" "SELECT count(*) FROM pragma_table_info('products') WHERE name = 'stock'"; }
    mkdir -p "$ROOT"

    step "contract: a program without pending or version: backed up and run every time, no schema recorded, saying so"
    fallback_json pending apply version down irreversible >"$OUT/fb.json"
    play fb r1 v1
    fallback_json apply down irreversible >"$OUT/fb.json"
    play fb r1 v1
    expect_recap 'changed=[1-9]'
    expect_output 'has no pending verb (migrate_verbs), so the expand migrations of r1 cannot be listed'
    expect_output 'No schema version is recorded for r1: .* has no version verb (migrate_verbs), and without one a rollback to or from the release leaves the database as it is.'
    [[ -s $ROOT/.cutover/backups/r1/expand.sqlite3 ]] || fail "no backup before the apply that could not be listed"

    step "contract: redeploying an older release after a newer one keeps the schema it expects"
    fallback_json pending apply version down irreversible >"$OUT/fb.json"
    play fb r2 v2
    [[ $(has_stock) == 1 ]] || fail "r2's migration did not run"
    play fb r1 v1  # nothing pending, 0002 recorded before: kept, though the database's version is 0003
    expect_recap 'changed=0'
    local schemas
    schemas=$(schema_of r1)/$(schema_of r2)
    [[ $schemas == 0002-expand-seed-products/0003-expand-add-stock ]] ||
        fail "r1/r2 recorded $schemas after a redeploy of r1 (r1 must keep 0002, not take the schema r2 made)"
    switch r2

    step "contract: rollback with a program without down: refused, saying why, nothing changed"
    fallback_json pending apply version irreversible >"$OUT/fb.json"
    sqlite3 "$db" "INSERT INTO products (id, name, price_cents) VALUES (7, 'Written by r2', 700)"
    if rollback fb -e migrate_command=bin/limited -e rollback_to=r1; then fail "the rollback without down did not fail"; fi
    expect_output 'would undo every migration of r2 after 0002-expand-seed-products (migrate_verbs has no down), which cannot be undone; nothing was changed'
    expect_recap 'changed=0'
    [[ $(current) == r2 ]] || fail "the refused rollback moved current to $(current)"
    [[ $(has_stock) == 1 ]] || fail "the refused rollback changed the schema"

    step "contract: without irreversible, forced: the backup is restored, saying what is lost"
    fallback_json pending apply version down >"$OUT/fb.json"
    rollback fb -e migrate_command=bin/limited -e rollback_to=r1 -e rollback_migrate_force=true
    expect_recap 'failed=0'
    expect_output "before the migrations of r2) instead of undoing every migration of r2 after 0002-expand-seed-products (migrate_verbs has no irreversible): whatever was written to the database since then is lost"
    [[ $(current) == r1 ]] || fail "current is $(current), expected r1"
    [[ $(has_stock) == 0 ]] || fail "the backup was not restored (stock is still there)"
    [[ $(sqlite3 "$db" "SELECT count(*) FROM products WHERE id = 7") == 0 ]] || fail "the restore kept a row written since"

    step "contract: bad input: an unknown verb, a user that does not exist: one sentence, nothing changed"
    sum=$(sqlite3 "$db" .dump | md5sum)
    backups=$(find "$ROOT/.cutover/backups" | sort)
    if play fb r2 v2 -e '{"migrate_verbs": ["pending", "apply", "status"]}'; then fail "an unknown verb was taken"; fi
    expect_output 'migrate_verbs must name verbs of pending, apply, version, down and irreversible, apply among them (it names pending, apply, status), so the migrations of r2 did not run and nothing was changed.'
    if play fb r2 v2 -e migrate_user=no-such-user-it; then fail "a user that does not exist was taken"; fi
    expect_output "migrate_user no-such-user-it is not a user of testhost, so $ROOT/releases/r2/bin/limited did not run for r2 and nothing was changed."
    [[ $(sqlite3 "$db" .dump | md5sum) == "$sum" ]] || fail "the database changed"
    [[ $(find "$ROOT/.cutover/backups" | sort) == "$backups" ]] || fail "a backup was taken"

    step "contract: deploy --check lists the migrations a new release would run, and changes nothing"
    # The program answers pending only (VERBS): anything else the check ran would fail it.
    local before
    before=$(cd "$ROOT" && find . -path ./.cutover/deploy.lock -prune -o -printf '%p %s %Y\n' | sort | md5sum)
    ansible-playbook -i "$HERE/inventory.ini" cutover.web.deploy --check -e "@$OUT/fb.json" \
        -e '{"deploy_root": "'"$ROOT"'", "deploy_src": "'"$OUT/src/v4"'", "deploy_release_id": "r4", "deploy_migrate": true,
             "migrate_command": "bin/limited", "migrate_verbs": ["pending", "apply", "version", "down", "irreversible"]}' \
        -e '{"migrate_environment": {"DATABASE_URL": "sqlite:///'"$db"'", "VERBS": "pending"}}' 2>&1 | tee "$OUT/last"
    expect_recap 'failed=0'
    expect_output '"0003-expand-add-stock"'
    expect_output '"0004-contract-purge-drafts"'
    [[ $(sqlite3 "$db" .dump | md5sum) == "$sum" ]] || fail "deploy --check changed the database"
    [[ $(cd "$ROOT" && find . -path ./.cutover/deploy.lock -prune -o -printf '%p %s %Y\n' | sort | md5sum) == "$before" ]] ||
        fail "deploy --check changed the deploy root"

    step "contract: migrate_user runs the program; a set of two SQLite files, both restored after a failure"
    useradd --system --no-create-home --shell /bin/sh cutover-mig-it
    mkdir -p "$OUT/set-data"
    for f in wiki l10n; do
        sqlite3 "$OUT/set-data/$f.sqlite" "CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('before')"
    done
    chown -R cutover-mig-it "$OUT/set-data"
    cat >"$OUT/set.json" <<JSON
{"root": "$OUT/set-site", "migrate_engine": "sqlite", "command": "bin/writer", "migrate_verbs": ["pending", "apply", "version"],
 "migrate_user": "cutover-mig-it", "migrate_sqlite_path": ["$OUT/set-data/wiki.sqlite", "$OUT/set-data/l10n.sqlite"],
 "migrate_environment": {"MARK": "$OUT/set-data/mark", "DBS": "$OUT/set-data/wiki.sqlite $OUT/set-data/l10n.sqlite",
                         "FAIL": "on purpose"}}
JSON
    if play set r1 v1; then fail "the failing migration did not fail the play"; fi
    expect_output "migration 0001-expand-mark failed: \*\*\*\*\*\*\*\*); the databases were restored from $OUT/set-site/.cutover/backups/r1/expand.sqlite3, $OUT/set-site/.cutover/backups/r1/expand.1.sqlite3."
    [[ $(stat -c %U "$OUT/set-data/mark") == cutover-mig-it ]] ||
        fail "the migration ran as $(stat -c %U "$OUT/set-data/mark"), not as migrate_user"
    for f in wiki l10n; do
        [[ $(sqlite3 "$OUT/set-data/$f.sqlite" "SELECT group_concat(v) FROM t") == before ]] ||
            fail "$f.sqlite was not restored: $(sqlite3 "$OUT/set-data/$f.sqlite" "SELECT group_concat(v) FROM t")"
        [[ $(stat -c %U "$OUT/set-data/$f.sqlite") == cutover-mig-it ]] || fail "the restore changed the owner of $f.sqlite"
    done
    [[ -s $OUT/set-site/.cutover/backups/r1/expand.sqlite3 && -s $OUT/set-site/.cutover/backups/r1/expand.1.sqlite3 ]] ||
        fail "the two backups are not there: $(ls "$OUT/set-site/.cutover/backups/r1")"
}
contract_cases

step "PostgreSQL"
mkdir -p "$OUT/pg"
chown postgres "$OUT/pg"
runuser -u postgres -- "$PGBIN/initdb" -D "$OUT/pg/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 >/dev/null
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$OUT/pg/data" -l "$OUT/pg/log" -w \
    -o "-p $PGPORT -k $OUT/pg -c listen_addresses=127.0.0.1" start >/dev/null
psql -q -h "$OUT/pg" -p $PGPORT -U postgres -c "CREATE ROLE shop LOGIN PASSWORD '$PASSWORD'" -c "CREATE DATABASE shop OWNER shop"
cat >"$OUT/postgresql.json" <<JSON
{"root": "$OUT/postgresql-site", "migrate_engine": "postgresql",
 "migrate_pg_dsn": "host=127.0.0.1 port=$PGPORT dbname=shop user=shop",
 "migrate_environment": {"DATABASE_URL": "postgresql://shop@127.0.0.1:$PGPORT/shop", "PGPASSWORD": "$PASSWORD"}}
JSON
sql() { psql -qtA -h "$OUT/pg" -p $PGPORT -U postgres -d shop -c "$2"; }
run_engine postgresql pgdump

step "MariaDB"
"$MARIADB" start "$OUT/mariadb" $MYPORT || fail "the MariaDB server did not start"
root_sql() { mariadb --no-defaults --default-character-set=utf8mb4 --socket="$OUT/mariadb/sock" -u root -NB "$@"; }
root_sql -e "CREATE DATABASE shop; CREATE USER shop@'127.0.0.1' IDENTIFIED BY '$PASSWORD';
    GRANT ALL ON shop.* TO shop@'127.0.0.1';
    CREATE USER half@'127.0.0.1' IDENTIFIED BY '$PASSWORD';
    GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, LOCK TABLES, SHOW VIEW ON shop.* TO half@'127.0.0.1';"
mysql_json() { # USER PASSWORD [PATH]: the settings of the MariaDB runs
    local path=""
    [[ -z ${3:-} ]] || path=", \"PATH\": \"$3\""
    cat <<JSON
{"root": "$OUT/mysql-site", "migrate_engine": "mysql", "migrate_mysql_database": "shop",
 "migrate_mysql_host": "127.0.0.1", "migrate_mysql_port": $MYPORT, "migrate_mysql_user": "$1",
 "migrate_environment": {"DATABASE_URL": "mysql://$1@127.0.0.1:$MYPORT/shop", "MYSQL_PWD": "$2"$path}}
JSON
}
mysql_json shop "$PASSWORD" >"$OUT/mysql.json"
sql() { root_sql shop -e "$2"; }
run_engine mysql sql

# The bad input, each on a release r5 whose one pending migration (0003-expand-add-stock, gone
# with the forced restore above) must not run; no backup may be left.
unchanged() { # what nothing changed means here
    no_secret
    [[ $(has_column stock) == 0 ]] || fail "0003-expand-add-stock ran"
    [[ -z $(ls -A "$ROOT/.cutover/backups/r5" 2>/dev/null) ]] || fail "a backup was left: $(ls -A "$ROOT/.cutover/backups/r5")"
    [[ $(sql mysql "SELECT name FROM products WHERE id = 4") == 'Written by v1' ]] || fail "a row was lost"
}
engine=mysql
step "MariaDB: a wrong password: one sentence, nothing changed"
mysql_json shop 'not the password' >"$OUT/mysql-badpw.json"
if play mysql-badpw r5 v2; then fail "the wrong password did not fail the play"; fi
expect_output "cannot open the database: (1045, \"Access denied for user 'shop'@'127.0.0.1' (using password: YES)\")"
unchanged

step "MariaDB: the dump tool missing: one sentence, nothing changed"
mkdir "$OUT/nodump"
for tool in /usr/bin/* /bin/*; do
    [[ $tool == */mariadb-dump || $tool == */mysqldump ]] || ln -sf "$tool" "$OUT/nodump/"
done
mysql_json shop "$PASSWORD" "$OUT/nodump" >"$OUT/mysql-nodump.json"
if play mysql-nodump r5 v2; then fail "the missing dump tool did not fail the play"; fi
expect_output 'mariadb-dump is not on the PATH of testhost (Debian package mariadb-client), so the expand migrations of r5 did not run and nothing was changed.'
unchanged

step "MariaDB: a dump failing halfway (no right to read the events): one sentence, no backup, nothing changed"
mysql_json half "$PASSWORD" >"$OUT/mysql-half.json"
if play mysql-half r5 v2; then fail "the dump failing halfway did not fail the play"; fi
expect_output "mariadb-dump could not back up the database shop before the expand migrations of r5, so none ran: mariadb-dump: Couldn't execute 'show events': Access denied for user 'half'@'127.0.0.1' to database 'shop' (1044)"
unchanged

step "MariaDB: a backup cut short is refused by the restore before anything is dropped"
mkdir -p "$ROOT/.cutover/backups/r6"
head -n 30 "$ROOT/.cutover/backups/r2/expand.sql" >"$ROOT/.cutover/backups/r6/expand.sql"
tables=$(sql mysql "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'shop'")
if ansible-playbook -i "$HERE/inventory.ini" "$HERE/restore.yml" -e "@$OUT/mysql.json" -e rid=r6 2>&1 | tee "$OUT/last"; then
    fail "the restore from a backup cut short did not fail"
fi
expect_output "The backup $ROOT/.cutover/backups/r6/expand.sql does not end with the \"-- Dump completed\" line mariadb-dump writes last, so the database shop was left as it is."
[[ $(sql mysql "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'shop'") == "$tables" ]] ||
    fail "the refused restore dropped tables"
[[ $(sql mysql "SELECT name FROM products WHERE id = 4") == 'Written by v1' ]] || fail "a row was lost"

echo "migrate: all steps passed"
