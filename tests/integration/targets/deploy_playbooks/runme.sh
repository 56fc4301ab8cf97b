#!/usr/bin/env bash
# The collection's playbooks end to end on this host, with a real Apache and PHP-FPM:
# deploy v1, v2, v2 again (no change), --check, rollback (twice), rollback with nothing
# to go back to, a failing build command, a failing live probe, a broken vhost template,
# deploys with migrations (SQLite), one of which fails halfway.
set -eu -o pipefail

ROOT=/srv/cutover-it/site
URL=http://127.0.0.1:18080
# public/media is shared; var/cache (the release's own, with a file the build makes there as root, as a
# cache warm-up would) and public/media are writable for the web server user (write.php writes there).
SHARED='{"deploy_shared_dirs": ["public/media"], "deploy_writable_dirs": ["var/cache", "public/media"],
  "deploy_build_commands": ["mkdir -p var/cache/warm && echo warmed > var/cache/warm/compiled.php"]}'
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=/dev/null
source "$HERE/../setup_collection/collection.sh"
OUT=$(mktemp -d)
# Whatever happens, this host's Apache is left without the test's site (a failed step would
# otherwise leave it enabled for the tests after it).
cleanup() {
    forget_site it 18080
    forget_site it-copy
    rm -f /etc/apache2/sites-enabled/000-it-shadow.conf /etc/apache2/sites-enabled/zzz-it-address.conf
    apachectl graceful >/dev/null 2>&1 || true
    rm -rf /srv/cutover-it "$OUT"
}
trap cleanup EXIT
export ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1

rm -rf /srv/cutover-it
mkdir -p /srv/cutover-it

# play NAME ARGS...: run a collection playbook; its output goes to $OUT/last.
play() {
    local name=$1
    shift
    ansible-playbook -i "$HERE/inventory.ini" "cutover.web.$name" "$@" 2>&1 | tee "$OUT/last"
}
expect_output() {
    grep -q -- "$1" "$OUT/last" || fail "expected '$1' in the playbook output"
}
page() { curl -sS --max-time 10 "$URL/$1"; }
expect_page() { # PATH TEXT
    local body
    body=$(page "$1")
    [[ $body == *"$2"* ]] || fail "GET /$1 answered '$body', expected '$2'"
}
expect_served() { # RELEASE: the release Apache's answer names in its X-Cutover-Release header
    local served
    served=$(curl -sS -o /dev/null -D - --max-time 10 "$URL/" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-cutover-release" {print $2}')
    [[ $served == "$1" ]] || fail "Apache answers with the release header '$served', expected '$1'"
}
expect_status() { # PATH STATUS
    local status
    status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$URL/$1")
    [[ $status == "$2" ]] || fail "GET /$1 answered $status, expected $2"
}
state_of() { # RELEASE_ID -> its state from release_info
    ansible -i "$HERE/inventory.ini" testhost -m cutover.web.release_info -a "root=$ROOT" -o 2>/dev/null |
        sed 's/^[^{]*//' | python3 -c '
import json, sys
info = json.load(sys.stdin)
print(next((r["state"] for r in info["releases"] if r["id"] == sys.argv[1]), "missing"))' "$1"
}
current() { basename "$(readlink "$ROOT/current")"; }
# after_failed_deploy RELEASE STATE LIVE PAGE: the deploy of RELEASE failed and left it STATE (failed or
# bad), LIVE is current and its PAGE text is served, the lock was given back.
after_failed_deploy() {
    [[ $(current) == "$3" ]] || fail "the failed deploy of $1 left current at $(current), expected $3"
    expect_page index.php "$4"
    [[ $(state_of "$1") == "$2" ]] || fail "$1 is $(state_of "$1"), expected $2"
    [[ ! -e $ROOT/.cutover/deploy.lock ]] || fail "the lock was not given back"
}
release_count() { find "$ROOT/releases" -mindepth 1 -maxdepth 1 | wc -l; }
tree_state() { # DIR: each entry's path, mode, owner, group and content (or link text), then every ACL
    (cd "$1" && find . -print0 | sort -z | while IFS= read -r -d '' p; do
        if [[ -L $p ]]; then echo "$p -> $(readlink "$p")"
        elif [[ -f $p ]]; then echo "$p $(stat -c '%A %U %G' "$p") $(sha256sum <"$p")"
        else echo "$p $(stat -c '%A %U %G' "$p")"; fi
    done && getfacl -R -P -p -n . 2>/dev/null)
}

step "deploy v1"
play deploy -e deploy_src="$HERE/files/v1" -e "$SHARED" -e deploy_probe_url=$URL/
expect_page index.php "page v1 part v1"
expect_page asset.txt "asset v1"
V1=$(current)
[[ ! -e $ROOT/.cutover/deploy.lock ]] || fail "the deploy did not give the lock back"

step "writable paths: PHP-FPM (www-data) writes into the release's own cache and the shared uploads"
T0=$SECONDS
expect_page "write.php?n=1" "wrote 1 in $V1"
for f in "$ROOT/releases/$V1/var/cache/page-1.txt" "$ROOT/releases/$V1/var/cache/sub-1/deep.txt" \
    "$ROOT/shared/public/media/upload-1.txt"; do
    [[ $(stat -c %U "$f") == www-data ]] || fail "$f is owned by $(stat -c %U "$f"), not by www-data"
done
grep -q 'touched by 1' "$ROOT/releases/$V1/var/cache/warm/compiled.php" || fail "PHP could not write the build's file"
V1_STATE=$(tree_state "$ROOT/releases/$V1")
WRITABLE_SECONDS=$((SECONDS - T0))

step "an upload survives the next deploys"
echo "uploaded by a user" >"$ROOT/shared/public/media/upload.txt"

step "deploy v2"
play deploy -e deploy_src="$HERE/files/v2" -e "$SHARED" -e deploy_probe_url=$URL/ -e deploy_probe_content='page v2'
expect_page index.php "page v2 part v2"
expect_page media/upload.txt "uploaded by a user"
expect_page media/bundled-v1.txt "bundled with v1"
V2=$(current)
[[ $V2 != "$V1" ]] || fail "v2 did not make a new release"

step "writable paths: v2 has a fresh cache of its own, v1 did not change"
T0=$SECONDS
[[ $(tree_state "$ROOT/releases/$V1") == "$V1_STATE" ]] ||
    fail "deploying v2 changed v1: $(diff <(echo "$V1_STATE") <(tree_state "$ROOT/releases/$V1") | head -5)"
[[ $(ls -A "$ROOT/releases/$V2/var/cache") == warm ]] || fail "v2's cache is not fresh: $(ls -A "$ROOT/releases/$V2/var/cache")"
expect_page "write.php?n=2" "wrote 2 in $V2"
[[ -f $ROOT/releases/$V2/var/cache/page-2.txt && ! -e $ROOT/releases/$V2/var/cache/page-1.txt ]] ||
    fail "the caches of v1 and v2 are mixed"
expect_page media/upload-1.txt "uploaded 1"
[[ -z $(find "$ROOT" -perm -0002 ! -type l) ]] || fail "world-writable: $(find "$ROOT" -perm -0002 ! -type l | head -3)"
WRITABLE_SECONDS=$((WRITABLE_SECONDS + SECONDS - T0))

step "deploy v2 again: no change, no new release"
count=$(release_count)
play deploy -e deploy_src="$HERE/files/v2" -e "$SHARED" -e deploy_probe_url=$URL/
expect_recap "changed=0"
[[ $(release_count) == "$count" ]] || fail "a repeated deploy made a new release"

step "deploy v2 again in check mode: nothing would change"
play deploy --check --diff -e deploy_src="$HERE/files/v2" -e "$SHARED"
expect_recap "changed=0"

step "deploy v3 in check mode: says what would go live, changes nothing"
play deploy --check --diff -e deploy_src="$HERE/files/v3" -e "$SHARED"
expect_output "(a new release from"
[[ $(current) == "$V2" ]] || fail "check mode moved current"
[[ $(release_count) == "$count" ]] || fail "check mode made a release"
[[ -z $(ls -A "$ROOT/.cutover/staging") ]] || fail "check mode left $(ls -A "$ROOT/.cutover/staging") in the staging area"
expect_page index.php "page v2"

step "writable paths: outside the release, through a symlink, an unknown user: refused, nothing changed"
T0=$SECONDS
mkdir -p "$OUT/outside"
ln -s "$OUT/outside" "$ROOT/releases/$V2/var/linked"
refused_state() { tree_state "$ROOT/releases"; tree_state "$ROOT/shared"; tree_state "$OUT/outside"; }
before=$(refused_state)
writable_paths() { # JSON ARGS: the module run on v2, expected to refuse
    if ansible -i "$HERE/inventory.ini" testhost -m cutover.web.writable_paths \
        -a '{"root": "'"$ROOT"'", "release": "'"$V2"'", "dirs": ["var/cache"], '"$1"'}' 2>&1 | tee "$OUT/last"; then
        fail "writable_paths $1 was not refused"
    fi
}
writable_paths '"user": "www-data", "files": ["../../../../outside/x"]'
expect_output "The writable path '../../../../outside/x' must be a relative path inside the release $ROOT/releases/$V2, and it has"
writable_paths '"user": "www-data", "dirs": ["var/cache", "var/linked/x"]'
expect_output "The writable path 'var/linked/x' cannot be made writable because $ROOT/releases/$V2/var/linked is a symlink"
writable_paths '"user": "no-such-user"'
expect_output "The web server user 'no-such-user' does not exist on this host, so no path was made writable for it"
[[ $(refused_state) == "$before" ]] || fail "a refusal changed something: $(diff <(echo "$before") <(refused_state) | head -5)"
rm "$ROOT/releases/$V2/var/linked"
echo "writable paths: $((WRITABLE_SECONDS + SECONDS - T0)) s of checks (and the writable step in each deploy)"

step "rollback: v1 serves again at once, v2 is marked bad"
play rollback
expect_page index.php "page v1 part v1"
[[ $(current) == "$V1" ]] || fail "rollback did not switch to $V1"
[[ $(state_of "$V2") == bad ]] || fail "$V2 is $(state_of "$V2"), expected bad"
expect_page media/upload.txt "uploaded by a user"

step "rollback again: already rolled back, no change"
play rollback
expect_recap "changed=0"
[[ $(current) == "$V1" ]] || fail "a second rollback moved current"

step "deploy v1 in check mode after the rollback: v1 is live, nothing would change"
play deploy --check --diff -e deploy_src="$HERE/files/v1" -e "$SHARED"
expect_recap "changed=0"

step "a failing build command: the old release keeps serving, the new one is failed, the lock is free"
play_fails deploy -e deploy_src="$HERE/files/v3" -e deploy_release_id=v3-build -e '{"deploy_build_commands": ["echo building", "exit 3"]}'
expect_output 'stopped at "Run the build commands"'
after_failed_deploy v3-build failed "$V1" "page v1"

step "a failing live probe: switched back at once, the new release is bad"
play_fails deploy -e deploy_src="$HERE/files/v3" -e deploy_release_id=v3-probe -e deploy_probe_url=$URL/ -e deploy_probe_content='no such text' -e deploy_probe_retries=1
expect_output "switched back to $V1"
after_failed_deploy v3-probe bad "$V1" "page v1"

step "a release without the directory the vhost serves: refused before current moves, marked failed"
mkdir -p "$OUT/noweb" && echo "no public dir" > "$OUT/noweb/index.html"
play_fails deploy -e deploy_src="$OUT/noweb" -e deploy_release_id=v3-noweb
expect_output "Before v3-noweb went live, .*has no directory $ROOT/releases/v3-noweb/public to serve"
expect_output "current was not switched to it, so nothing was switched back"
after_failed_deploy v3-noweb failed "$V1" "page v1"

step "a broken vhost template is rejected; the live config and the site stay"
conf=$(ls /etc/apache2/sites-available/cutover-it.conf)
before=$(sha256sum "$conf")
play_fails deploy -e deploy_src="$HERE/files/v2" -e '{"apache_vhost_extra": ["BogusDirective on"]}'
[[ $(sha256sum "$conf") == "$before" ]] || fail "the broken template reached $conf"
expect_page index.php "page v1"
# The task that pushed took the lock and found the site's set-up changed; the set-up failed under that lock.
[[ ! -e $ROOT/.cutover/deploy.lock ]] || fail "the deploy whose set-up failed kept its lock"
[[ -z $(ls -A "$ROOT/.cutover/staging") ]] || fail "the deploy whose set-up failed left $(ls -A "$ROOT/.cutover/staging") in the staging area"

step "two deploys in one play, the second stopping before it goes live: its lock is given back"
# The first goes live in one module run, which gives its lock back; the second must not take that result for its own.
cat >"$OUT/two-deploys.yml" <<EOF
- name: Deploy two roots in one play
  hosts: testhost
  gather_facts: false
  tasks:
    - name: Deploy another root, without a vhost
      ansible.builtin.include_role:
        name: cutover.web.deploy
      vars:
        deploy_root: /srv/cutover-it/other
        deploy_src: $HERE/files/v2
    - name: Deploy the site, its vhost set-up broken
      ansible.builtin.include_role:
        name: cutover.web.deploy
      vars:
        deploy_src: $HERE/files/v3
        deploy_apache_vhost_setup: true
        apache_vhost_extra: [BogusDirective on]
EOF
ansible-playbook -i "$HERE/inventory.ini" "$OUT/two-deploys.yml" 2>&1 | tee "$OUT/last" && fail "the play with a broken vhost passed"
expect_output "stopped at"
[[ $(cat /srv/cutover-it/other/current/public/index.php) == *"page v2"* ]] || fail "the first deploy of the play did not go live"
[[ ! -e /srv/cutover-it/other/.cutover/deploy.lock ]] || fail "the first deploy of the play kept its lock"
[[ ! -e $ROOT/.cutover/deploy.lock ]] || fail "the second deploy of the play, stopped before it went live, kept its lock"
[[ $(sha256sum "$conf") == "$before" ]] || fail "the broken template reached $conf"
[[ $(current) == "$V1" ]] || fail "the stopped deploy moved current to $(current)"
expect_page index.php "page v1"
rm -rf /srv/cutover-it/other

step "a host not of Debian's family is refused before anything changes"
# Such a host has no record of a set-up (the role refuses before it writes one); with the record of this Debian host's
# set-up in place, the deploy would rightly skip the set-up, checks and all, as that set-up passed them.
mv /var/lib/cutover-web/apache_vhost/it.json "$OUT/it-record-debian.json"
play_fails deploy -e deploy_src="$HERE/files/v3" -e '{"ansible_facts": {"os_family": "RedHat"}}'
mv "$OUT/it-record-debian.json" /var/lib/cutover-web/apache_vhost/it.json
expect_output "runs on Debian and its derivatives only"
[[ $(sha256sum "$conf") == "$before" ]] || fail "the refused run changed $conf"
[[ $(current) == "$V1" ]] || fail "the refused run moved current to $(current)"
expect_page index.php "page v1"

step "wrong vhost settings are refused in one sentence each, before anything changes"
play_fails deploy -e deploy_src="$HERE/files/v3" -e '{"apache_vhost_maintenance_allow": ["10.0.0.0/8", "everyone"]}'
expect_output "The maintenance window settings are wrong: apache_vhost_maintenance_allow must list IP addresses or networks such as 10.0.0.0/8 (not everyone)"
play_fails deploy -e deploy_src="$HERE/files/v3" -e apache_vhost_webroot=../up
expect_output "deploy_webroot (apache_vhost_webroot, which it defaults to) must be a path inside a release (it is \"../up\")"
[[ $(sha256sum "$conf") == "$before" ]] || fail "a refused run changed $conf"
[[ $(current) == "$V1" ]] || fail "a refused run moved current to $(current)"
expect_page index.php "page v1"

step "a site enabled before this one that Apache would send its requests to is refused, before anything changes"
# Enabled first (its file sorts first) on the same port: with no server name, every request of the port goes there;
# with one, the requests for that name. The record of the set-up lists the enabled sites, so the deploy sets up again.
SHADOW=/etc/apache2/sites-enabled/000-it-shadow.conf
printf '<VirtualHost *:18080>\n    ServerName localhost\n    DocumentRoot /var/www/html\n</VirtualHost>\n' >"$SHADOW"
play_fails deploy -e deploy_src="$HERE/files/v3"
expect_output "The site it would not be served: $SHADOW (localhost), enabled before it, has a vhost on port 18080 that Apache would send every request on that port to instead, as this site has no apache_vhost_server_name."
play_fails deploy -e deploy_src="$HERE/files/v3" -e '{"apache_vhost_server_aliases": ["www.it.localhost", "LOCALHOST"]}' -e apache_vhost_server_name=it.localhost
expect_output "vhost on port 18080 that Apache would send the requests for localhost to instead. Give apache_vhost_server_name"
# _default_:18080 is *:18080 to Apache 2.4 (apachectl -S lists it so). Without ServerName, it answers to the name Apache
# gives the server (its host name, or 127.0.0.1 when it finds none; apachectl -S says which): a site of that name too.
printf '<VirtualHost _default_:18080>\n    DocumentRoot /var/www/html\n</VirtualHost>\n' >"$SHADOW"
play_fails deploy -e deploy_src="$HERE/files/v3"
SERVER=$(apachectl -S 2>/dev/null | sed -n "s|.* \([^ ]*\) ($SHADOW:1)\$|\1|p" | head -n 1)
[[ -n $SERVER ]] || fail "apachectl -S does not list the vhost of $SHADOW"
expect_output "$SHADOW (no ServerName, so it answers to $SERVER), enabled before it, has a vhost on port 18080 that Apache would send every request on that port to instead"
play_fails deploy -e deploy_src="$HERE/files/v3" -e apache_vhost_server_name="$SERVER"
expect_output "$SHADOW (no ServerName, so it answers to $SERVER), enabled before it, has a vhost on port 18080 that Apache would send the requests for $SERVER to instead"
rm -f "$SHADOW"
[[ $(sha256sum "$conf") == "$before" ]] || fail "a refused run changed $conf"
[[ $(current) == "$V1" ]] || fail "a refused run moved current to $(current)"
expect_page index.php "page v1"

step "a vhost on an address of its own takes the requests to that address, whatever the order: refused when that is ours"
# Enabled after this one (its file sorts last): Apache sends every request to 127.0.0.1:18080 or 192.0.2.1 to the
# vhosts of those addresses, never to one on *:18080, whatever the names (seen with curl on this Apache).
SHADOW=/etc/apache2/sites-enabled/zzz-it-address.conf
printf '<VirtualHost 127.0.0.1:18080>\n    ServerName elsewhere.localhost\n    DocumentRoot /var/www/html\n</VirtualHost>\n' >"$SHADOW"
play_fails deploy -e deploy_src="$HERE/files/v3"
expect_output "The site it would not be served: $SHADOW (elsewhere.localhost) has a vhost on the address 127.0.0.1:18080, and Apache sends the requests to that address on port 18080 to its vhosts, never to one on \*:18080: every request to that address would go there instead, as this site has no apache_vhost_server_name."
play_fails deploy -e deploy_src="$HERE/files/v3" -e apache_vhost_server_name=it.localhost
expect_output "the deploy's requests for the release served (to 127.0.0.1) would go there instead. Give"
printf '<VirtualHost 192.0.2.1>\n    ServerName IT.localhost\n    DocumentRoot /var/www/html\n</VirtualHost>\n' >"$SHADOW"
play_fails deploy -e deploy_src="$HERE/files/v3" -e apache_vhost_server_name=it.localhost
expect_output "(it.localhost) has a vhost on the address 192.0.2.1, and Apache sends the requests to that address on port 18080 to its vhosts, never to one on \*:18080: the requests for it.localhost would go there instead."
[[ $(sha256sum "$conf") == "$before" ]] || fail "a refused run changed $conf"
[[ $(current) == "$V1" ]] || fail "a refused run moved current to $(current)"
# Not refused: another address's vhost that answers other names, a vhost on _default_:18080 read after this one, and
# one on * (any port), which takes only what no vhost of the port takes.
printf '%s\n' '<VirtualHost 192.0.2.1:18080 [2001:db8::1]:*>' '    ServerName elsewhere.localhost' '    DocumentRoot /var/www/html' \
    '</VirtualHost>' '<VirtualHost _default_:18080>' '    DocumentRoot /var/www/html' '</VirtualHost>' \
    '<VirtualHost *>' '    ServerName it.localhost' '    DocumentRoot /var/www/html' '</VirtualHost>' >"$SHADOW"
play deploy -e deploy_src="$HERE/files/v1" -e "$SHARED" -e apache_vhost_server_name=it.localhost
[[ $(current) == "$V1" ]] || fail "the deploy of v1 again moved current to $(current)"
# Asked for by its name: the vhost on _default_:18080, with no ServerName, answers the server's own name (127.0.0.1 here).
[[ $(curl -sS --max-time 10 -H 'Host: it.localhost' "$URL/index.php") == *"page v1"* ]] || fail "it.localhost is not served v1"
rm -f "$SHADOW"

step "deploy from an archive"
tar czf "$OUT/v3.tar.gz" -C "$HERE/files/v3" .
play deploy -e deploy_src="$OUT/v3.tar.gz" -e deploy_probe_url=$URL/ -e deploy_probe_content='page v3'
expect_page index.php "page v3 part v3"

step "deploy a git commit"
git init -q "$OUT/repo"
cp -a "$HERE/files/v2/." "$OUT/repo/"
git -C "$OUT/repo" add -A
git -C "$OUT/repo" -c user.name=test -c user.email=test@example.invalid commit -q -m v2
commit=$(git -C "$OUT/repo" rev-parse HEAD)
play deploy -e deploy_src= -e deploy_git_repo="file://$OUT/repo" -e deploy_git_version=HEAD
expect_page index.php "page v2 part v2"
[[ $(current) == *-"${commit:0:12}" ]] || fail "the git release $(current) does not carry the commit ${commit:0:12}"

step "hooks run after the switch (seeing the new release) and after pruning (still under the lock)"
play deploy -e deploy_src="$HERE/files/v1" -e '{"deploy_hooks": {"after_switch": "'"$HERE"'/files/hooks/after_switch.yml",
  "after_prune": "'"$HERE"'/files/hooks/after_prune.yml"}}'
expect_page index.php "page v1"
read -r hook_release hook_previous </srv/cutover-it/hook-after-switch.txt
[[ $hook_release == "$(current)" ]] || fail "the hook saw $hook_release, current is $(current)"
[[ $hook_previous == *-"${commit:0:12}" ]] || fail "the hook saw $hook_previous as the previous release"
[[ $(cat /srv/cutover-it/hook-after-prune.txt) == locked ]] || fail "the after_prune hook ran without the lock"
[[ ! -e $ROOT/.cutover/deploy.lock ]] || fail "the lock was not given back after the after_prune hook"

step "deploy with migrations: the expand migrations run before the switch, the schema is recorded"
# The application: the pages of v2 and v3 with the example shop's migration program (yoyo)
# and migrations; the SQLite database lives beside the root.
for v in v2 v3; do
    mkdir -p "$OUT/mig-$v"
    cp -a "$HERE/files/$v/." "$COLL/examples/shop/v2/bin" "$COLL/examples/shop/v2/migrations" "$OUT/mig-$v/"
done
echo 'ALTER TABLE products ADD COLUMN sku TEXT;' >"$OUT/mig-v3/migrations/0004-expand-add-sku.sql"
echo 'UPDATE no_such_table SET x = 1;' >"$OUT/mig-v3/migrations/0005-expand-broken.sql"
DB=/srv/cutover-it/shop.sqlite
MIGRATE='{"deploy_migrate": true, "migrate_command": "bin/migrate", "migrate_engine": "sqlite",
  "migrate_sqlite_path": "'$DB'", "migrate_environment": {"DATABASE_URL": "sqlite:///'$DB'"}}'
play deploy -e deploy_src="$OUT/mig-v2" -e "$MIGRATE" -e deploy_probe_url=$URL/
expect_page index.php "page v2"
expect_output "applied 0003-expand-add-stock"
GOOD=$(current)
[[ $(sqlite3 "$DB" "SELECT count(*) FROM products WHERE stock = 12") == 3 ]] || fail "the migrations did not run"

step "a migration that fails halfway: database as before, the old release serves, the new one is failed"
sqlite3 "$DB" "INSERT INTO products (id, name, price_cents) VALUES (9, 'Written before', 100)"
play_fails deploy -e deploy_src="$OUT/mig-v3" -e "$MIGRATE" -e deploy_release_id=mig-broken
expect_output "migration 0005-expand-broken failed"
expect_output "the database was restored from"
after_failed_deploy mig-broken failed "$GOOD" "page v2"
[[ $(sqlite3 "$DB" "SELECT count(*) FROM pragma_table_info('products') WHERE name = 'sku'") == 0 ]] ||
    fail "0004-expand-add-sku stayed applied"
[[ $(sqlite3 "$DB" "SELECT name FROM products WHERE id = 9") == 'Written before' ]] || fail "a row written before was lost"

step "one webroot setting: apache_vhost_webroot '' in the inventory serves the release root for the vhost and the deploy"
# As a user's group_vars say it: the deploy and rollback roles take the vhost's webroot, and a
# rollback with no vhost named points the site that serves the root at the release gone back to.
{ grep -v '^rollback_apache_vhost_name=' "$HERE/inventory.ini"; echo 'apache_vhost_webroot=""'; } >"$OUT/flat.ini"
for v in 1 2; do
    mkdir -p "$OUT/flat$v"
    printf '<?php echo "flat v%s";\n' "$v" >"$OUT/flat$v/index.php"
done
flat() { ansible-playbook -i "$OUT/flat.ini" "cutover.web.$1" "${@:2}" 2>&1 | tee "$OUT/last"; }
[[ -d $ROOT/releases/v3-build && -d $ROOT/releases/v3-probe && -d $ROOT/releases/v3-noweb ]] || fail "the failed and bad releases were pruned within a day"
flat deploy -e deploy_src="$OUT/flat1" -e deploy_release_id=flat1 -e deploy_keep_failed_for=0
expect_recap 'failed=0'
expect_page index.php "flat v1"
[[ ! -e $ROOT/releases/v3-build && ! -e $ROOT/releases/v3-noweb && ! -e $ROOT/releases/v3-probe && ! -e $ROOT/releases/mig-broken ]] ||
    fail "deploy_keep_failed_for=0 left failed or bad releases: $(ls "$ROOT/releases")"
flat deploy -e deploy_src="$OUT/flat2" -e deploy_release_id=flat2
expect_recap 'failed=0'
expect_page index.php "flat v2"

step "a rollback to a release without the directory to serve is refused before anything changes"
if flat rollback -e rollback_webroot=public; then fail "the rollback to a release without public/ went ahead"; fi
expect_output "has no directory $ROOT/releases/flat1/public to serve"
[[ $(current) == flat2 ]] || fail "the refused rollback moved current to $(current)"
[[ $(state_of flat2) == active ]] || fail "the refused rollback marked flat2 $(state_of flat2)"
expect_page index.php "flat v2"

step "a rollback with no vhost named moves what Apache serves"
flat rollback
expect_recap 'failed=0'
[[ $(current) == flat1 ]] || fail "current is $(current), expected flat1"
expect_page index.php "flat v1"
expect_served flat1

step "a rollback naming the site serves it as the record of its set-up says; one whose wait for Apache times out fails after the switch, and says the release gone back to is live"
mkdir -p "$OUT/flat3"
printf '<?php echo "flat v3";\n' >"$OUT/flat3/index.php"
flat deploy -e deploy_src="$OUT/flat3" -e deploy_release_id=flat3
expect_recap 'failed=0'
expect_page index.php "flat v3"
# The record of the site's set-up says to wait on a port nothing answers on (the play's apache_vhost_port,
# the site's own 18080, does not count): the pointer is put in place and Apache restarted (the site serves
# flat1), but the release's header never comes there, so the module run fails after it switched current;
# the rollback's message says what is live.
RECORD=/var/lib/cutover-web/apache_vhost/it.json
cp "$RECORD" "$OUT/it-record.json"
python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); r["remember"]["serve"]["port"] = 18099; json.dump(r, open(sys.argv[1], "w"))' "$RECORD"
if flat rollback -e rollback_apache_vhost_name=it; then fail "the rollback that waited on a port nothing answers on succeeded"; fi
cp "$OUT/it-record.json" "$RECORD"
expect_output "Apache on port 18099 did not serve release flat1 within"
expect_output "The release live now is flat1, switched to by this rollback."
[[ $(current) == flat1 ]] || fail "current is $(current), expected flat1"
[[ $(state_of flat3) == bad ]] || fail "flat3 is $(state_of flat3) after the rollback from it"
expect_page index.php "flat v1"

step "a deploy with no vhost named, in a play without the apache_vhost role, points the site that serves the root at the new release"
# The play sets up no vhost: the deploy's one module run finds the site whose pointer serves the root and
# serves it as the record of its set-up says (its port, 18080, not the role's default).
mkdir -p "$OUT/flat4"
printf '<?php echo "flat v4";\n' >"$OUT/flat4/index.php"
flat deploy -e cutover_apache_vhost=false -e deploy_src="$OUT/flat4" -e deploy_release_id=flat4
expect_recap 'failed=0'
[[ $(current) == flat4 ]] || fail "current is $(current), expected flat4"
expect_page index.php "flat v4"
expect_served flat4

step "a deploy naming a site the play does not set up serves it as the record of its set-up says, not on the play's port"
mkdir -p "$OUT/named1"
printf '<?php echo "named v1";\n' >"$OUT/named1/index.php"
flat deploy -e cutover_apache_vhost=false -e deploy_apache_vhost_name=it -e apache_vhost_port=18099 \
    -e deploy_src="$OUT/named1" -e deploy_release_id=named1
expect_recap 'failed=0'
[[ $(current) == named1 ]] || fail "current is $(current), expected named1"
expect_page index.php "named v1"
expect_served named1
if flat deploy -e cutover_apache_vhost=false -e deploy_apache_vhost_name=nosuchsite -e deploy_src="$OUT/flat4" \
    -e deploy_release_id=flat4; then
    fail "a deploy naming a site this host does not have went ahead"
fi
expect_output "There is no Apache site nosuchsite (deploy_apache_vhost_name) of the apache_vhost role on this host"
[[ $(current) == named1 ]] || fail "the refused deploy moved current to $(current)"
flat deploy -e cutover_apache_vhost=false -e deploy_src="$OUT/flat4" -e deploy_release_id=flat4
expect_recap 'failed=0'
expect_served flat4

step "two sites serving the root: a deploy with no vhost named is refused before anything changes"
cp /etc/apache2/cutover/it-release.conf /etc/apache2/cutover/it-copy-release.conf
if flat deploy -e cutover_apache_vhost=false -e deploy_src="$OUT/flat3" -e deploy_release_id=flat5; then
    fail "a deploy to a root two sites serve went ahead"
fi
rm /etc/apache2/cutover/it-copy-release.conf
expect_output "The Apache sites it, it-copy all serve releases of $ROOT; set deploy_apache_vhost_name to the one to point at the release."
[[ $(current) == flat4 && ! -e $ROOT/releases/flat5 ]] || fail "the refused deploy changed current ($(current)) or made flat5"
expect_page index.php "flat v4"

step "a deploy in one module run whose new release Apache never answers for is switched back with the site it found"
# The new release's .htaccess drops the release header, so the wait after the graceful restart times out
# after the switch: current and the site both go back to the release live before (one module run, with
# what the deploy's module run served the site with), and the new release is marked bad.
# A deploy of flat$1, with no vhost named, whose .htaccess drops the release header (Apache never answers for it):
# it fails after the switch, current and the site both go back to flat$2 (Apache on 18080 serves it) and flat$1 is
# marked bad. The rest are the deploy's own options.
expect_switched_back() { # NEW LIVE [OPTIONS...]
    local new=flat$1 live=flat$2
    mkdir -p "$OUT/$new"
    printf '<?php echo "flat v%s";\n' "$1" >"$OUT/$new/index.php"
    printf 'Header always unset X-Cutover-Release\n' >"$OUT/$new/.htaccess"
    if flat deploy -e cutover_apache_vhost=false -e deploy_src="$OUT/$new" -e deploy_release_id="$new" "${@:3}"; then
        fail "the deploy of $new, whose release Apache never answered for, succeeded"
    fi
    expect_output "Apache on port 18080 did not serve release $new within 10 s of a graceful restart; switched back to $live, and marked $new bad."
    [[ $(current) == "$live" ]] || fail "current is $(current), expected $live"
    [[ $(state_of "$new") == bad ]] || fail "$new is $(state_of "$new") after it was switched back from"
    expect_page index.php "flat v$2"
    expect_served "$live"
}
expect_switched_back 6 4

step "a deploy step by step (a build command) with no vhost named serves the site found on the port its set-up used"
# Given the role's default port (80) as a careless inventory would: the site found is served as the
# record of its set-up says (18080), by the module run that switches.
mkdir -p "$OUT/flat7"
printf '<?php echo "flat v7";\n' >"$OUT/flat7/index.php"
flat deploy -e cutover_apache_vhost=false -e apache_vhost_port=80 -e deploy_src="$OUT/flat7" -e deploy_release_id=flat7 \
    -e '{"deploy_build_commands": ["test -f index.php"]}'
expect_recap 'failed=0'
[[ $(current) == flat7 ]] || fail "current is $(current), expected flat7"
expect_page index.php "flat v7"
expect_served flat7

step "a deploy step by step whose new release Apache never answers for is switched back with the site found"
expect_switched_back 8 7 -e '{"deploy_build_commands": ["test -f index.php"]}'

step "build steps that edit files in place change the new release only (#13)"
# An application whose autoloader composer generated; the next release's build commands rewrite
# files in place (composer dump-autoload -o, PHP's file_put_contents), append, truncate, chmod,
# chown and touch. No other release may change (content, mode, owner), the live site serves the
# old files until the switch, and the files the build left alone are hardlinks of the live ones.
APP="$OUT/composer-app"
mkdir -p "$APP/src" "$APP/config" "$APP/vendor"
cp -a "$HERE/files/v1/." "$APP/"
printf '%s\n' '{"autoload": {"psr-4": {"App\\": "src/"}}}' >"$APP/composer.json"
echo '<?php namespace App; class Greeting { }' >"$APP/src/Greeting.php"
echo '<?php return [];' >"$APP/config/cache.php"
echo 'started' >"$APP/vendor/app.log"
if command -v composer >/dev/null; then
    (cd "$APP" && COMPOSER_ALLOW_SUPERUSER=1 composer dump-autoload --no-interaction -q)
    DUMP='"COMPOSER_ALLOW_SUPERUSER=1 composer dump-autoload -o --no-interaction -q",'
else
    echo "composer is not installed: the step runs without composer dump-autoload"
    mkdir -p "$APP/vendor/composer"
    echo '<?php // autoload' >"$APP/vendor/composer/autoload_classmap.php"
    DUMP='"php -r \"file_put_contents(\\\"vendor/composer/autoload_classmap.php\\\", \\\"<?php // optimized\\\");\"",'
fi
echo '<?php // autoload real' >"$APP/vendor/composer/autoload_real.php"
play deploy -e deploy_src="$APP" -e deploy_release_id=iso-1 -e deploy_keep=50
[[ $(current) == iso-1 ]] || fail "iso-1 did not go live"
echo 'a change' >"$APP/public/changed.txt"
# Every file of every release but the new one: path, sha256, mode, owner.
releases_state() {
    (cd "$ROOT/releases" && find . -path ./iso-2 -prune -o \( -type f -o -type l \) -print0 | sort -z |
        xargs -0 stat -c '%n %a %u %g %i' | while read -r path rest; do
            if [[ -L $path ]]; then echo "$path $rest $(readlink "$path")"; else echo "$path $rest $(sha256sum <"$path")"; fi
        done)
}
before=$(releases_state)
play deploy -e deploy_src="$APP" -e deploy_release_id=iso-2 -e deploy_keep=50 -e '{"deploy_build_commands": ['"$DUMP"'
  "php -r \"file_put_contents(\\\"vendor/composer/autoload_real.php\\\", \\\"<?php // regenerated\\\");\"",
  "printf edited 1<> public/asset.txt",
  "curl -sS --max-time 10 '"$URL"'/asset.txt | grep -qx \"asset v1\"",
  "echo built >> vendor/app.log", ": > config/cache.php", "chmod 600 lib/part.php",
  "chown nobody src/Greeting.php", "touch public/index.php"]}'
[[ $(current) == iso-2 ]] || fail "iso-2 did not go live"
after=$(releases_state)
[[ $after == "$before" ]] || fail "the build of iso-2 changed another release: $(diff <(echo "$before") <(echo "$after") | head -5)"
expect_page asset.txt "edited"
I1=$ROOT/releases/iso-1
I2=$ROOT/releases/iso-2
same_inode() { [[ $(stat -c %i "$1") == $(stat -c %i "$2") ]]; }
for f in public/index.php composer.json public/media/bundled-v1.txt; do
    same_inode "$I1/$f" "$I2/$f" || fail "$f left alone by the build is not a hardlink of iso-1's after the seal"
done
for f in vendor/composer/autoload_real.php vendor/composer/autoload_classmap.php public/asset.txt vendor/app.log \
    config/cache.php lib/part.php src/Greeting.php; do
    ! same_inode "$I1/$f" "$I2/$f" || fail "$f, changed by the build, is shared with iso-1"
done
[[ $(stat -c '%a %U' "$I1/lib/part.php" "$I1/src/Greeting.php") == $'644 root\n644 root' ]] ||
    fail "the build's chmod or chown reached iso-1"
[[ $(cat "$I1/vendor/composer/autoload_real.php") == '<?php // autoload real' ]] || fail "iso-1's autoloader changed"
! cmp -s "$I1/vendor/composer/autoload_classmap.php" "$I2/vendor/composer/autoload_classmap.php" ||
    fail "the build's autoloader dump did not reach iso-2"

step "pruning that fails after the switch: the new release stays live and says so, nothing is switched back, the lock is free"
# Nothing runs between making, switching, serving and pruning here, so the deploy does them in one module
# run (cutover.web.go_live); an old release holding a file that cannot be removed makes its pruning fail.
play deploy -e deploy_src="$HERE/files/v2" -e deploy_release_id=prune-1 -e deploy_keep=50
[[ $(current) == prune-1 ]] || fail "prune-1 did not go live"
# An old release that cannot be renamed out of releases/ (immutable) makes its pruning fail.
if chattr +i "$I1"; then
    play_fails deploy -e deploy_src="$HERE/files/v3" -e deploy_release_id=prune-2 -e deploy_keep=2
    chattr -i "$I1"
    expect_output 'stopped at "Prune old releases, and give back the deploy lock": Cannot use '"$I1"
    expect_output "The release live now is prune-2, the new one: the step that failed came after the switch"
    [[ $(current) == prune-2 ]] || fail "current is $(current), expected prune-2"
    expect_page index.php "page v3"
    [[ $(state_of prune-2) == active ]] || fail "prune-2 is $(state_of prune-2), expected active"
    [[ ! -e $ROOT/.cutover/deploy.lock ]] || fail "the lock was not given back"
    play deploy -e deploy_src="$HERE/files/v3" -e deploy_release_id=prune-2 -e deploy_keep=2
    expect_recap 'failed=0'
    [[ ! -e $I1 && $(state_of iso-1) == missing ]] || fail "the next deploy did not prune iso-1 ($(state_of iso-1))"
else
    echo "chattr +i is not supported under $ROOT: the step is left out"
fi

step "old releases leave releases/ in the deploy; their files are deleted after it by a process of its own"
# The unit tests of prune_releases show that process outlives the module run; here the deploy role asks for it.
trash_empty() { # SECONDS: whether .cutover/trash/ is empty within that time
    local n
    for ((n = 0; n <= $1 * 10; n++)); do
        [[ -z $(ls -A "$ROOT/.cutover/trash" 2>/dev/null) ]] && return 0
        sleep 0.1
    done
    return 1
}
before=$(current)
play deploy -e deploy_src="$HERE/files/v1" -e deploy_release_id=bg-1 -e deploy_keep=1 -e deploy_keep_failed_for=0
expect_recap 'failed=0'
releases_left() { find "$ROOT/releases" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort | tr '\n' ' '; }
[[ $(releases_left) == "bg-1 $before " ]] || fail "keep 1 left $(releases_left), expected bg-1 and the rollback target $before"
expect_output '"deleting": \[$'
expect_output '"pruned": \[$'
trash_empty 60 || fail "the pruned releases' files were still in $ROOT/.cutover/trash a minute after the deploy"
play deploy -e deploy_src="$HERE/files/v2" -e deploy_release_id=bg-2 -e deploy_keep=1 -e deploy_delete_in_background=false
expect_recap 'failed=0'
expect_output '"deleting": \[\],'
trash_empty 0 || fail "deploy_delete_in_background=false returned before the pruned release was deleted"
[[ $(releases_left) == "bg-1 bg-2 " ]] || fail "keep 1 left $(releases_left), expected bg-2 and the rollback target bg-1"

step "rollback with nothing to go back to: a clear error"
rm -rf "$ROOT"
play deploy -e deploy_src="$HERE/files/v1"
play_fails rollback
expect_output "There is no release to roll back to in $ROOT/releases"
expect_page index.php "page v1"

echo "deploy_playbooks: all passed"
