#!/usr/bin/env bash
# The maintenance window with the real Apache: a deploy whose (slow) migration runs with the
# window on answers 503 + Retry-After + the page to everyone but the allow-listed 127.0.0.2,
# which keeps getting 200; the switch lifts it. --check changes nothing. A deploy whose
# migration fails lifts it after the database was restored, the old release serving. A window
# left on by a killed run (the page file) is lifted by the next deploy's switch.
set -eu -o pipefail

ROOT=/srv/cutover-it-maint/site
DB=/srv/cutover-it-maint/shop.db
URL=http://127.0.0.1:18093
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=/dev/null
source "$HERE/../setup_collection/collection.sh"
OUT=$(mktemp -d)
cleanup() {
    forget_site itmaint 18093
    rm -f /etc/apache2/sites-available/cutover-itmaint-plain.conf
    apachectl graceful >/dev/null 2>&1 || true
    rm -rf /srv/cutover-it-maint "$OUT"
}
trap cleanup EXIT
export ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1
rm -rf /srv/cutover-it-maint
mkdir -p /srv/cutover-it-maint

step() { printf '\n=== %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }
migrate() {
    MIGRATE='{"deploy_migrate": true, "migrate_command": "bin/migrate", "migrate_engine": "sqlite",
      "migrate_sqlite_path": "'$DB'", "migrate_environment": {"DATABASE": "'$DB'", "MIGRATE_SECONDS": "'$1'"}}'
}
# After the first run, the deploy points the vhost it made (the apache_vhost role is not run again).
VHOST=(-e cutover_apache_vhost=true)
play() { ansible-playbook -i "$HERE/inventory.ini" "cutover.web.$1" -e "$MIGRATE" "${VHOST[@]}" "${@:2}" 2>&1 | tee "$OUT/last"; }
expect_page() { # CLIENT STATUS TEXT
    local answer
    answer=$(curl -sS --interface "$1" --max-time 10 -w ' %{http_code}' "$URL/")
    [[ $answer == *"$3"*" $2" ]] || fail "GET / from $1 answered '$answer', expected $2 '$3'"
}
# watched NAME ARGS...: run a playbook while watch.py asks the site from both clients; the answers
# go to $OUT/NAME.jsonl. Returns the playbook's exit status.
watched() {
    local name=$1 rc=0
    rm -f "$OUT/stop"
    python "$HERE/watch.py" 18093 "$OUT/stop" >"$OUT/$name.jsonl" &
    local watcher=$!
    sleep 0.3
    play "${@:2}" || rc=$?
    touch "$OUT/stop"
    wait "$watcher"
    return $rc
}
# answers NAME: what each client was answered, e.g. "127.0.0.1 200 release v1: 12" per line.
answers() {
    python - "$OUT/$1.jsonl" <<'PY'
import collections, json, sys
seen = collections.Counter()
for line in open(sys.argv[1]):
    r = json.loads(line)
    seen[(r['client'], r['status'], r.get('retry_after'), r.get('body', r.get('error', ''))[:80])] += 1
for key, n in sorted(seen.items(), key=str):
    print('%s %s retry_after=%s %s: %d' % (key + (n,)))
PY
}

step "a window left on by a killed run (its page file); the first deploy makes the vhost, and its switch lifts the window"
mkdir -p "$ROOT"
echo '<p>left by a killed run</p>' >"$ROOT/maintenance.html"
migrate 0
play deploy -e deploy_src="$HERE/files/v1"
grep -q 'RewriteCond "/srv/cutover-it-maint/site/maintenance.html" -f' /etc/apache2/sites-available/cutover-itmaint.conf ||
    fail "the vhost does not answer the maintenance window"
expect_page 127.0.0.1 200 "release v1"
[[ ! -e $ROOT/maintenance.html ]] || fail "the deploy did not lift the window left by a killed run"
grep -q "maintenance window of $ROOT (on since .*) was lifted after" "$OUT/last" || fail "the deploy did not say it lifted the window"
VHOST=(-e cutover_apache_vhost=false -e deploy_apache_vhost_name=itmaint)

step "deploy v2 with the window on during a 3 s migration, page from the controller"
migrate 3
watched v2 deploy -e deploy_src="$HERE/files/v2" -e deploy_maintenance=true \
    -e deploy_maintenance_page="$HERE/files/controller-page.html"
answers v2 | tee "$OUT/v2.txt"
grep -q "^127.0.0.1 503 retry_after=90 <!DOCTYPE html><title>Upgrade</title><p>The shop is being upgraded" "$OUT/v2.txt" ||
    fail "no 503 with Retry-After and the page was seen during the window"
# 127.0.0.1: only 200 (v1, then v2) and the window's 503s; 127.0.0.2: only 200.
if grep -qvE '^(127\.0\.0\.1 503 retry_after=90 <!DOCTYPE|127\.0\.0\.[12] 200 retry_after=None release v[12]:)' "$OUT/v2.txt"; then
    fail "answers other than 200 and the window's 503"
fi
python - "$OUT/v2.jsonl" <<'PY'
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
w = [r['time'] for r in rs if r['status'] == 503]
inside = [r for r in rs if r['client'] == '127.0.0.2' and w[0] <= r['time'] <= w[-1]]
print('window %.2f s, allow-listed answers inside it: %s' % (w[-1] - w[0], sorted({r['status'] for r in inside})))
assert w[-1] - w[0] >= 2.5, 'the window did not cover the 3 s migration'
assert inside and all(r['status'] == 200 for r in inside), 'the allow-listed client was not served in the window'
PY
expect_page 127.0.0.1 200 "release v2"
[[ ! -e $ROOT/maintenance.html ]] || fail "the window is still on after the deploy"

step "check mode: nothing changes, no window"
watched check deploy -e deploy_src="$HERE/files/v3" -e deploy_maintenance=true --check
answers check >"$OUT/check.txt"
if grep -qv ' 200 retry_after=None release v2:' "$OUT/check.txt"; then fail "check mode changed what visitors see"; fi
[[ $(cat "$ROOT/current/public/index.html") == "release v2" ]] || fail "check mode moved current"
[[ ! -e $ROOT/maintenance.html ]] || fail "check mode left a window"

step "settings a window cannot keep are refused before anything changes"
# refused WANT ARGS...: a deploy of v3 with ARGS must fail saying WANT, leaving v2 live, no window
# and no new release.
refused() {
    local want=$1 before
    before=$(ls "$ROOT/releases")
    play_fails deploy -e deploy_src="$HERE/files/v3" -e deploy_maintenance=true "${@:2}"
    grep -qF -- "$want" "$OUT/last" || fail "the refusal did not say: $want"
    [[ $(cat "$ROOT/current/public/index.html") == "release v2" ]] || fail "a refused deploy moved current"
    [[ ! -e $ROOT/maintenance.html ]] || fail "a refused deploy left a window"
    [[ $(ls "$ROOT/releases") == "$before" ]] || fail "a refused deploy made a release"
}
refused "deploy_maintenance needs deploy_migrate" -e deploy_migrate=false
refused "only one of deploy_maintenance_page and deploy_maintenance_release_page may be set" \
    -e deploy_maintenance_page="$HERE/files/controller-page.html" -e deploy_maintenance_release_page=public/down.html
refused "nowhere.html\\\" is not a file the controller has" \
    -e deploy_maintenance_page="$HERE/files/nowhere.html"
refused "deploy_maintenance_release_page must be a path inside the release" \
    -e deploy_maintenance_release_page=../down.html
# A root no Apache site serves: the window would be a file nobody answers.
refused "deploy_maintenance needs the Apache site that serves $ROOT-other" \
    -e deploy_apache_vhost_name= -e deploy_root="$ROOT-other"
[[ ! -e $ROOT-other ]] || fail "a refused deploy made $ROOT-other"
# A site written without the window's rule (by hand, or before the window existed).
printf '<VirtualHost *:18094>\n  DocumentRoot %s/current\n</VirtualHost>\n' "$ROOT" \
    >/etc/apache2/sites-available/cutover-itmaint-plain.conf
refused "The Apache site /etc/apache2/sites-available/cutover-itmaint-plain.conf does not answer the maintenance window of $ROOT" \
    -e deploy_apache_vhost_name=itmaint-plain
rm /etc/apache2/sites-available/cutover-itmaint-plain.conf

step "a migration that fails: database restored, then the window lifted, v2 serving"
migrate 0
if watched v3 deploy -e deploy_src="$HERE/files/v3" -e deploy_maintenance=true \
    -e deploy_maintenance_release_page=public/down.html; then
    fail "the deploy of v3 should have failed"
fi
answers v3 | tee "$OUT/v3.txt"
grep -q '^127.0.0.1 503 retry_after=90 <!DOCTYPE html><title>Upgrade</title><p>v3 ships this page' "$OUT/v3.txt" ||
    fail "the page of the release was not served in the window"
if grep -qvE '^(127\.0\.0\.1 503 retry_after=90 <!DOCTYPE|127\.0\.0\.[12] 200 retry_after=None release v2:)' "$OUT/v3.txt"; then
    fail "answers other than v2 and the window's 503"
fi
expect_page 127.0.0.1 200 "release v2"
[[ ! -e $ROOT/maintenance.html ]] || fail "the failed deploy left the window on"
[[ $(sqlite3 "$DB" "SELECT count(*) FROM sqlite_master WHERE name = 't3'") == 0 ]] || fail "the database was not restored"
