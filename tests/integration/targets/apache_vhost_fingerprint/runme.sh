#!/usr/bin/env bash
# The apache_vhost role's fast path (the record of its last set-up, cutover.web.vhost_fingerprint) with
# the real Apache and PHP-FPM, through the deploy playbook as users run it: a redeploy with nothing
# changed skips the set-up; a vhost file edited or removed by hand, a module disabled by hand, a Listen
# line removed by hand and a changed setting are each put right (or applied) by the next deploy; --check
# reports the repair and changes nothing.
set -eu -o pipefail

URL=http://127.0.0.1:18151
SITE=/etc/apache2/sites-available/cutover-itfp.conf
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=/dev/null
source "$HERE/../setup_collection/collection.sh"
OUT=$(mktemp -d)
cleanup() {
    forget_site itfp 18151
    a2enmod -q rewrite headers >/dev/null 2>&1 || true
    apachectl graceful >/dev/null 2>&1 || true
    rm -rf /srv/cutover-it-fp "$OUT"
}
trap cleanup EXIT
export ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1
rm -rf /srv/cutover-it-fp /var/lib/cutover-web/apache_vhost/itfp.json
mkdir -p /srv/cutover-it-fp

play() { ansible-playbook -i "$HERE/inventory.ini" cutover.web.deploy "$@" 2>&1 | tee "$OUT/last"; }
expect_page() { # PATH TEXT
    local body
    body=$(curl -sS --max-time 10 "$URL/$1")
    [[ $body == *"$2"* ]] || fail "GET /$1 answered '$body', expected '$2'"
}
expect_status() { # PATH STATUS
    local status
    status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$URL/$1")
    [[ $status == "$2" ]] || fail "GET /$1 answered $status, expected $2"
}
# The set-up's tasks show in the output only when the set-up runs.
SETUP_TASK='TASK \[cutover.web.apache_vhost : Find whether the packages are installed\]'
expect_setup() { grep -q "$SETUP_TASK" "$OUT/last" || fail "the deploy did not set the site up again"; }
expect_no_setup() { ! grep -q "$SETUP_TASK" "$OUT/last" || fail "the deploy set up a site nothing had changed in"; }
expect_site_as_made() { cmp -s "$OUT/site.conf" "$SITE" || fail "$SITE is not the vhost the role writes: $(diff "$OUT/site.conf" "$SITE" || true)"; }

step "first deploy: the role sets the site up"
play -e deploy_src="$HERE/files/v1"
expect_setup
expect_page "" "release v1"
expect_status secret/note.txt 200
cp "$SITE" "$OUT/site.conf"

step "redeploy with nothing in the site changed: the set-up is skipped, the new release serves"
play -e deploy_src="$HERE/files/v2"
expect_no_setup
expect_page "" "release v2"
expect_site_as_made

step "the vhost file edited by hand: --check reports it and changes nothing"
sed -i 's/^    DirectoryIndex .*/    DirectoryIndex hand-edited.html/' "$SITE"
cp "$SITE" "$OUT/edited.conf"
play --check --diff -e deploy_src="$HERE/files/v1"
expect_setup
grep -q -- '-    DirectoryIndex hand-edited.html' "$OUT/last" || fail "--check --diff did not show the repair of the vhost"
cmp -s "$OUT/edited.conf" "$SITE" || fail "--check changed $SITE"

step "the vhost file edited by hand: the next deploy writes it again"
play -e deploy_src="$HERE/files/v1"
expect_setup
expect_site_as_made
expect_page "" "release v1"

step "the vhost file removed by hand: the next deploy writes it again"
rm "$SITE"
play -e deploy_src="$HERE/files/v2"
expect_setup
expect_site_as_made
expect_page "" "release v2"

step "a module the vhost needs disabled by hand (no reload): the next deploy enables it again"
a2dismod -q -f rewrite
play -e deploy_src="$HERE/files/v1"
expect_setup
[[ -L /etc/apache2/mods-enabled/rewrite.load ]] || fail "the deploy did not enable rewrite again"
expect_page "" "release v1"

step "the Listen line removed by hand (no reload): the next deploy adds it again"
sed -i '/^Listen 18151$/d' /etc/apache2/ports.conf
play -e deploy_src="$HERE/files/v2"
expect_setup
grep -qx 'Listen 18151' /etc/apache2/ports.conf || fail "the deploy did not add the Listen line again"
expect_page "" "release v2"

step "a changed setting takes effect: apache_vhost_deny"
play -e deploy_src="$HERE/files/v3" -e '{"apache_vhost_deny": ["/secret/"]}'
expect_setup
grep -q 'LocationMatch "^/secret/"' "$SITE" || fail "the vhost does not deny /secret/"
expect_page "" "release v3"
expect_status secret/note.txt 403

step "the same setting again, nothing changed by hand: the set-up is skipped"
play -e deploy_src="$HERE/files/v2" -e '{"apache_vhost_deny": ["/secret/"]}'
expect_no_setup
expect_page "" "release v2"
expect_status secret/note.txt 403

step "the setting back to its default takes effect"
play -e deploy_src="$HERE/files/v1"
expect_setup
expect_site_as_made
expect_status secret/note.txt 200
echo "apache_vhost_fingerprint: all steps passed"
