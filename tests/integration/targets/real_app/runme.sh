#!/usr/bin/env bash
# A real PHP application nobody here wrote, deployed through the collection's playbooks as the
# README shows: DokuWiki from Debian's package, vendored into a self-contained release tree
# (cp -rL of /usr/share/dokuwiki and the /etc/dokuwiki, /var/lib/dokuwiki it links to), served
# by Apache with PHP-FPM on a port of its own, its user data shared (group_vars/web.yml says
# which and why). While two readers fetch a page and DokuWiki's compiled CSS and a writer saves
# pages through DokuWiki's own edit form: deploys of releases that change the template's footer
# and CSS, a rollback, pruning to 2. Asserted: no error and no connection error, no page of
# the wrong release once a deploy or rollback finished, every saved page there at the end with
# its text, DokuWiki's configuration and data never served, pruning bounds the releases.
set -eu -o pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=/dev/null
source "$HERE/../setup_collection/collection.sh"
OUT=$(mktemp -d)
ROOT=/srv/cutover-it-wiki
BUILD=/var/tmp/cutover-it-wiki-build
PORT=18113
URL=http://127.0.0.1:$PORT/
NAME=wiki-it
LOAD_PID=
export ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1

cleanup() {
    [[ -n $LOAD_PID ]] && kill "$LOAD_PID" 2>/dev/null
    forget_site "$NAME" "$PORT"
    apachectl graceful >/dev/null 2>&1 || true
    rm -rf "$ROOT" "$BUILD" "$OUT"
}
trap cleanup EXIT
rm -rf "$ROOT" "$BUILD"

# bug WHAT: a fault of the collection, shown at once and failing the test at the end; the test
# goes on with the workaround a user would apply, so the rest is still measured.
BUGS=()
bug() {
    printf 'FAILED (worked around to go on): %s\n' "$*" >&2
    BUGS+=("$*")
}

[[ -f /usr/share/dokuwiki/doku.php ]] || fail "DokuWiki is not installed (apt-get install dokuwiki; ./dev setup does)"

# build N: the release tree a user vendoring DokuWiki would deploy, with "cutover-release rN"
# in the template's footer and in its CSS (what visitors see change from release to release).
build() {
    local tree=$OUT/tree
    rm -rf "$tree" "$BUILD"
    cp -rL /usr/share/dokuwiki "$tree"
    cp -rL /etc/dokuwiki "$tree/conf"
    cp -rL /var/lib/dokuwiki/data "$tree/data"
    # Debian's preload.php points DokuWiki at /etc/dokuwiki; the vendored tree keeps its own conf/
    # and data/ (DokuWiki's defaults) instead. Debian's web server snippets are not the application.
    rm -f "$tree/inc/preload.php" "$tree/conf/apache.conf" "$tree/conf/lighttpd.conf"
    # Debian keeps data/ and the ACL files private to www-data; a vendored tree is root's and readable.
    chmod -R u+rwX,go+rX,go-w "$tree"
    sed -i "s|^\$conf\['savedir'\].*|\$conf['savedir'] = './data';|" "$tree/conf/dokuwiki.php"
    cat >"$tree/conf/local.php" <<'PHP'
<?php
$conf['title'] = 'cutover.web real_app';
$conf['useacl'] = 1;
$conf['superuser'] = '@admin';
PHP
    # Anyone may edit (the writer is anonymous); the admin's password hash must never be served.
    printf '# acl.auth.php\n# <?php exit()?>\n*\t@ALL\t8\n' >"$tree/conf/acl.auth.php"
    printf '# users.auth.php\n# <?php exit()?>\nadmin:%s:Admin:admin@example.org:admin,user\n' \
        "$(php -r 'echo password_hash("secret", PASSWORD_BCRYPT);')" >"$tree/conf/users.auth.php"
    printf '<div class="cutover-release">cutover-release %s</div>\n' "$1" >>"$tree/lib/tpl/dokuwiki/tpl_footer.php"
    printf '\n.cutover-release::after { content: "cutover-release %s"; }\n' "$1" >>"$tree/lib/tpl/dokuwiki/css/_links.css"
    mv "$tree" "$BUILD"
}

# play deploy|rollback ARGS...: the collection's playbook; its output goes to $OUT/last.
play() {
    local name=$1
    shift
    ansible-playbook -i "$HERE/inventory.ini" "cutover.web.$name" "$@" >"$OUT/last" 2>&1 || {
        cat "$OUT/last"
        return 1
    }
    grep -E '^localhost +:' "$OUT/last" | tail -1
}
page() { curl -sS --max-time 10 "${URL}doku.php?id=wiki:welcome"; }
css() { curl -sS --max-time 10 "${URL}lib/exe/css.php?t=dokuwiki"; }
current() { basename "$(readlink "$ROOT/current")"; }
expect() { printf '%s' "$1" >"$OUT/expect"; }
serves() { # serves rN: the page and the CSS show rN
    page | grep -q "cutover-release $1" || fail "the wiki page does not show release $1: $(page | grep -o 'cutover-release r[0-9]*')"
    css | grep -q "cutover-release $1" || fail "DokuWiki's CSS is not release $1's: $(css | grep -o 'cutover-release r[0-9]*')"
}

# Nothing of DokuWiki's configuration or data may be served: its .htaccess files deny them.
not_served() {
    local path code
    for path in conf/users.auth.php conf/local.php conf/acl.auth.php conf/dokuwiki.php \
        data/pages/wiki/welcome.txt data/meta/wiki/welcome.meta data/cache/ data/index/ \
        inc/init.php vendor/composer/installed.json bin/indexer.php "$@"; do
        code=$(curl -sS -o "$OUT/body" -w '%{http_code}' --max-time 10 "$URL$path")
        [[ $code == 403 || $code == 404 ]] || fail "GET /$path answered $code, not 403/404: $(head -c 200 "$OUT/body")"
        ! grep -q 'admin:' "$OUT/body" || fail "GET /$path served the admin's password hash"
    done
}

SECONDS_PER=()
deploy() { # deploy rN: build it and deploy it; it must serve when the playbook is done
    expect ''
    build "$1"
    local t0=$SECONDS
    play deploy -e "wiki_release=$1" || fail "the deploy of $1 failed"
    SECONDS_PER+=($((SECONDS - t0)))
    serves "$1"
    expect "$1"
}

step "deploy r1"
deploy r1
R1=$(current)
not_served
for path in data/pages data/meta data/attic data/locks data/index conf/users.auth.php conf/local.php; do
    [[ -L $ROOT/releases/$R1/$path ]] || fail "$path is not a shared link in the release"
    runuser -u www-data -- test -w "$ROOT/shared/$path" || fail "PHP-FPM (www-data) cannot write shared/$path"
done
# What the first deploy seeded from the release (DokuWiki's own pages, the configuration files)
# must be writable by PHP-FPM too: deploy_shared_owner names who writes the shared data.
for path in data/pages/wiki data/pages/wiki/welcome.txt data/meta; do
    if ! runuser -u www-data -- test -w "$ROOT/shared/$path"; then
        bug "shared/$path, seeded from the release, is $(stat -c %U:%G "$ROOT/shared/$path"), not deploy_shared_owner (www-data): DokuWiki cannot save it"
        chown -R www-data:www-data "$ROOT/shared"
        break
    fi
done
for path in data/cache data/tmp; do
    [[ -d $ROOT/releases/$R1/$path && ! -L $ROOT/releases/$R1/$path ]] || fail "$path is not the release's own directory"
    runuser -u www-data -- test -w "$ROOT/releases/$R1/$path" || fail "PHP-FPM (www-data) cannot write $path"
done

step "under load: deploy r2, r3, roll back to r2, deploy r4, r5 (pruning to 2)"
python3 "$HERE/wiki_load.py" run "$OUT" "$URL" &
LOAD_PID=$!
expect r1
sleep 3
deploy r2
R2=$(current)
deploy r3
expect ''
t0=$SECONDS
play rollback || fail "the rollback failed"
SECONDS_PER+=($((SECONDS - t0)))
[[ $(current) == "$R2" ]] || fail "current is $(current) after the rollback, expected $R2"
serves r2
expect r2
sleep 3
deploy r4
deploy r5
sleep 3
kill "$LOAD_PID"
wait "$LOAD_PID"
LOAD_PID=
python3 "$HERE/wiki_load.py" report "$OUT" || fail "the readers or the writer saw faults (above)"

step "every saved page is there with its text; nothing of DokuWiki's data is served"
python3 "$HERE/wiki_load.py" verify "$OUT" "$URL" "$ROOT/shared/data/pages" || fail "saved pages were lost (above)"
not_served data/pages/load/same.txt data/attic/ data/meta/load/same.changes
[[ -s $ROOT/shared/data/meta/load/same.changes ]] || fail "the page history of load:same is not in shared/data/meta"

step "pruning to deploy_keep (2): the live release and the one before it stay"
printf 'release directories left: %s; seconds per deploy or rollback: %s\n' \
    "$(find "$ROOT/releases" -mindepth 1 -maxdepth 1 | wc -l)" "${SECONDS_PER[*]}"
[[ -d $ROOT/releases/$(current) ]] || fail "the current release is gone"
for id in "$R1" "$R2"; do
    [[ ! -e $ROOT/releases/$id ]] || fail "$id was not pruned at deploy_keep 2"
done

if ((${#BUGS[@]})); then
    printf 'FAILED: %s\n' "${BUGS[@]}" >&2
    exit 1
fi
echo "real_app: all steps passed"
