#!/usr/bin/env bash
# The example shop as the README's first command deploys it (examples/deploy.yml and its
# group_vars: Apache with PHP-FPM, SQLite, shared uploads, migrations by yoyo), in a root and
# on a port of its own, while clients keep reading the shop's page (which lists the products
# from the database):
#   v1; v2 under load (its expand migration adds the stock column while v1 still serves);
#   v2 again (no change, no backup); an upload; a rollback under load (the stock column is
#   dropped once v1 serves again); the upload is kept.
set -eu -o pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=/dev/null
source "$HERE/../setup_collection/collection.sh"
# shellcheck source=/dev/null
source "$HERE/../setup_load/load.sh"
OUT=$(mktemp -d)
ROOT=/srv/cutover-it-shop
PORT=18097
URL=http://127.0.0.1:$PORT/
NAME=example-it
DB=$ROOT/shared/var/shop.sqlite
export ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1

cleanup() {
    [[ -n $LOAD_PID ]] && kill "$LOAD_PID" 2>/dev/null
    forget_site "$NAME" "$PORT"
    apachectl graceful >/dev/null 2>&1 || true
    rm -rf "$ROOT" "$OUT"
}
trap cleanup EXIT
rm -rf "$ROOT"

# Everything as in examples/group_vars/web.yml but the root, the port and the vhost's name.
cat >"$OUT/vars.json" <<JSON
{"deploy_root": "$ROOT", "apache_vhost_root": "$ROOT", "apache_vhost_port": $PORT,
 "apache_vhost_name": "$NAME", "apache_vhost_server_name": "$NAME.localhost", "deploy_probe_url": "$URL",
 "rollback_root": "$ROOT", "rollback_apache_vhost_name": "$NAME", "rollback_probe_url": "$URL"}
JSON
# play deploy|rollback ARGS...: the example's playbook; the output goes to $OUT/last.
play() {
    local name=$1
    shift
    ansible-playbook -i "$COLL/examples/inventory.ini" "$COLL/examples/$name.yml" -e "@$OUT/vars.json" "$@" 2>&1 |
        tee "$OUT/last"
}
page() { curl -sS --max-time 10 "$URL"; }
current() { basename "$(readlink "$ROOT/current")"; }
has_stock() { sqlite3 -readonly "$DB" "SELECT count(*) FROM pragma_table_info('products') WHERE name = 'stock'"; }
backups() { { find "$ROOT/.cutover/backups" 2>/dev/null || true; } | sort; }
PAGE_VERSION='\((v[0-9]+)\), served from'

step "deploy v1"
play deploy
expect_recap 'failed=0' localhost
page | grep -q 'version 1 (v1)' || fail "the shop does not serve v1: $(page)"
[[ $(sqlite3 -readonly "$DB" "SELECT count(*) FROM products") == 3 ]] || fail "the products were not made"
[[ $(has_stock) == 0 ]] || fail "v1's schema has a stock column"
V1=$(current)
[[ ! -e $ROOT/.cutover/backups/$V1 ]] || fail "a backup directory was made for v1, with no database to back up"

step "deploy v2 under load: the expand migration runs while v1 serves"
load_start "$OUT" "$PAGE_VERSION" "$URL"
play deploy -e example_version=v2
load_stop "the deploy of v2"
expect_recap 'failed=0' localhost
page | grep -q 'version 2 (v2)' || fail "the shop does not serve v2: $(page)"
page | grep -q 'in stock' || fail "v2 does not show the stock: $(page)"
[[ $(has_stock) == 1 ]] || fail "the expand migration did not add the stock column"
V2=$(current)
[[ -s $ROOT/.cutover/backups/$V2/expand.sqlite3 ]] || fail "no backup was taken before v2's migration"

step "deploy v2 again: no change, no new release, no backup"
before=$(backups)
play deploy -e example_version=v2
expect_recap 'changed=0' localhost
[[ $(current) == "$V2" ]] || fail "current moved to $(current)"
[[ $(backups) == "$before" ]] || fail "a backup was taken with nothing to migrate"

step "an upload through the shop lands in the shared media folder"
printf 'a photo\n' >"$OUT/photo one.txt"
stored=$(curl -sS --max-time 10 -F "file=@$OUT/photo one.txt" "${URL}upload.php")
[[ $stored == "stored media/"* ]] || fail "the upload failed: $stored"
UPLOAD=${stored#stored media/}
[[ -f $ROOT/shared/public/media/$UPLOAD ]] || fail "the upload is not in shared/public/media: $stored"

step "roll back under load: v1 serves again, then its schema comes back"
load_start "$OUT" "$PAGE_VERSION" "$URL"
play rollback
load_stop "the rollback"
expect_recap 'failed=0' localhost
[[ $(current) == "$V1" ]] || fail "current is $(current), expected $V1"
page | grep -q 'version 1 (v1)' || fail "the shop does not serve v1 after the rollback: $(page)"
[[ $(has_stock) == 0 ]] || fail "the rollback did not drop the stock column"
[[ -f $ROOT/shared/public/media/$UPLOAD ]] || fail "the upload is gone after the rollback"
page | grep -qF "$UPLOAD" || fail "the upload is not listed after the rollback"

echo "example_shop: all steps passed"
