#!/usr/bin/env bash
# The framework recipes of examples/ (laravel/, symfony/: their group_vars, bin/cutover-migrate
# adapters and hooks), each run as a user would run it (examples/<fw>/deploy.yml and
# rollback.yml, only the root, port, vhost name and source changed) against a minimal app that
# exercises the same commands, built here on Debian's packaged frameworks (php-laravel-framework
# 8, php-symfony 5.4; composer install with nothing to fetch). Apache with PHP-FPM serves them.
# For each: v1 (build commands, expand migrations through the adapter on SQLite), v2 (a new
# expand and a contract migration), a rollback (both undone through the adapter), each checked
# over HTTP and in the database. Symfony's Doctrine Migrations is a stand-in (symfony/app/standin).
set -eu -o pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=/dev/null
source "$HERE/../setup_collection/collection.sh"
OUT=$(mktemp -d)
export ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1
# composer, run by the build commands as root here, asks nothing and fetches nothing (the apps
# require no package: the frameworks are Debian's).
export COMPOSER_ALLOW_SUPERUSER=1 COMPOSER_HOME=$OUT/composer COMPOSER_DISABLE_NETWORK=1
LV_ROOT=/srv/cutover-it-laravel
LV_PORT=18131
SF_ROOT=/srv/cutover-it-symfony
SF_PORT=18132

cleanup() {
    forget_site laravel-it "$LV_PORT"
    forget_site symfony-it "$SF_PORT"
    apachectl graceful >/dev/null 2>&1 || true
    rm -rf "$LV_ROOT" "$SF_ROOT" "$OUT"
}
trap cleanup EXIT
rm -rf "$LV_ROOT" "$SF_ROOT"

step() { printf '\n=== %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }

for f in /usr/share/php/Illuminate/autoload.php /usr/share/php/Symfony/Bundle/FrameworkBundle/autoload.php \
    /usr/share/php/Symfony/Component/Dotenv/autoload.php /usr/share/php/Symfony/Component/Filesystem/autoload.php; do
    [[ -f $f ]] || fail "$f is missing (apt-get install php-laravel-framework php-symfony composer; ./dev setup does)"
done
command -v composer >/dev/null || fail "composer is not installed (apt-get install composer; ./dev setup does)"

# build FW VERSION: the app's tree as a user's checkout has it: the fixture, v2's additions, the
# example's adapter copied to bin/cutover-migrate, RELEASE naming the version.
build() {
    local tree=$OUT/build-$1
    rm -rf "$tree"
    cp -r "$HERE/$1/app" "$tree"
    [[ $2 == v1 ]] || cp -r "$HERE/$1/$2/." "$tree/"
    mkdir -p "$tree/bin"
    cp "$COLL/examples/$1/bin/cutover-migrate" "$tree/bin/cutover-migrate"
    echo "$2" >"$tree/RELEASE"
}
# play FW deploy|rollback ROOT PORT: the example's playbook with its group_vars; only the root,
# the port, the vhost's name and the source differ. Output in $OUT/last-FW.
play() {
    local fw=$1 name=$2 root=$3 port=$4
    cat >"$OUT/vars-$fw.json" <<JSON
{"deploy_root": "$root", "apache_vhost_root": "$root", "apache_vhost_port": $port,
 "apache_vhost_listen_address": "127.0.0.1", "apache_vhost_switch_php_mode": true,
 "apache_vhost_name": "$fw-it", "apache_vhost_server_name": "$fw-it.localhost",
 "deploy_src": "$OUT/build-$fw", "deploy_probe_url": "http://127.0.0.1:$port/",
 "rollback_root": "$root", "rollback_apache_vhost_name": "$fw-it", "rollback_probe_url": "http://127.0.0.1:$port/"}
JSON
    local t0=$SECONDS
    ansible-playbook -i "$COLL/examples/$fw/inventory.ini" "$COLL/examples/$fw/$name.yml" -e "@$OUT/vars-$fw.json" \
        >"$OUT/last-$fw" 2>&1 || {
        cat "$OUT/last-$fw"
        fail "the $fw $name failed"
    }
    grep -q -E '^localhost +:.* failed=0' "$OUT/last-$fw" || fail "the $fw $name had failures"
    echo "$fw $name: $(grep -E '^localhost +:' "$OUT/last-$fw" | tail -1 | tr -s ' ') ($((SECONDS - t0)) s)"
}
current() { basename "$(readlink "$1/current")"; }
# has FW_PAGE LINE: the page has that exact line
has() { grep -qxF -- "$2" <<<"$1" || fail "the page lacks \"$2\":"$'\n'"$1"; }

# The Apache sites and the first releases are made one after the other (both change the server's
# configuration); the later deploys and rollbacks of the two apps run side by side.
# ---------------------------------------------------------------------------------------------
laravel_first() {
    step "Laravel v1: composer install, config:cache, storage:link, migrate (expand) through the adapter"
    LV_URL=http://127.0.0.1:$LV_PORT/
    LV_DB=$LV_ROOT/shared/database/database.sqlite
    # The host's .env, put in shared/ before the first deploy as the recipe says.
    mkdir -p "$LV_ROOT/shared"
    printf 'APP_KEY=base64:%s\nAPP_GREETING="hello from shared .env"\n' "$(head -c 32 /dev/urandom | base64)" \
        >"$LV_ROOT/shared/.env"
    build laravel v1
    play laravel deploy "$LV_ROOT" "$LV_PORT"
    LV1=$(current "$LV_ROOT")
    page=$(curl -sS --max-time 10 "$LV_URL")
    has "$page" "laravel release v1"
    has "$page" "config cached: yes"
    has "$page" "greeting: hello from shared .env"
    has "$page" "notes: written by the v1 migration"
    has "$page" "tags: no table"
    has "$page" "legacy table: yes"
    # The after_switch hook ran queue:restart once v1 served: the signal (a time) is in the shared cache.
    LV_RESTART1=$(sed -n 's/^queue restart: //p' <<<"$page")
    [[ $LV_RESTART1 =~ ^[0-9]+$ ]] || fail "queue:restart did not run after the switch (queue restart: $LV_RESTART1)"
    [[ -f $LV_ROOT/releases/$LV1/bootstrap/cache/config.php ]] || fail "config:cache left no bootstrap/cache/config.php"
    [[ -L $LV_ROOT/releases/$LV1/database/database.sqlite ]] || fail "the SQLite database is not the shared file"
    # storage:link --relative: the link names a path inside the release (then through the release's
    # storage link into shared/), never the directory it was made in.
    link=$(readlink "$LV_ROOT/releases/$LV1/public/storage")
    [[ $link == ../storage/app/public* ]] || fail "public/storage links to $link, not relatively into the release"
    [[ $(readlink -f "$LV_ROOT/releases/$LV1/public/storage") == "$LV_ROOT/shared/storage/app/public" ]] ||
        fail "public/storage does not resolve into shared/storage/app/public"
    [[ $(curl -sS --max-time 10 "${LV_URL}storage/hello.txt") == "storage for files the public may read" ]] ||
        fail "Apache does not serve storage/app/public through public/storage"
    [[ $(sqlite3 -readonly "$LV_DB" "SELECT group_concat(migration, ' ') FROM migrations") == \
        "2024_01_01_000000_create_notes_table 2024_01_01_000001_create_legacy_visits_table" ]] ||
        fail "the migrations table does not list v1's expand migrations"

    step "Laravel: .env changes reach the app at the next deploy (config:cache)"
    sed -i 's/hello from shared .env/hello again/' "$LV_ROOT/shared/.env"
    has "$(curl -sS --max-time 10 "$LV_URL")" "greeting: hello from shared .env"
}

laravel_later() {
    step "Laravel v2: a new expand migration before the switch, a contract one after, queue:restart after the switch"
    build laravel v2
    play laravel deploy "$LV_ROOT" "$LV_PORT"
    LV2=$(current "$LV_ROOT")
    [[ $LV2 != "$LV1" ]] || fail "v2 made no new release"
    page=$(curl -sS --max-time 10 "$LV_URL")
    has "$page" "laravel release v2"
    has "$page" "greeting: hello again"
    has "$page" "tags: written by the v2 migration"
    has "$page" "legacy table: no"
    restarted=$(sed -n 's/^queue restart: //p' <<<"$page")
    if ! [[ $restarted =~ ^[0-9]+$ ]] || ((restarted <= LV_RESTART1)); then
        fail "queue:restart did not run after v2's switch (queue restart: $restarted, after v1: $LV_RESTART1)"
    fi
    [[ -s $LV_ROOT/.cutover/backups/$LV2/expand.sqlite3 ]] || fail "no backup was taken before v2's expand migration"

    step "Laravel: roll back to v1; v2's migrations undone through the adapter (migrate:reset)"
    play laravel rollback "$LV_ROOT" "$LV_PORT"
    [[ $(current "$LV_ROOT") == "$LV1" ]] || fail "current is $(current "$LV_ROOT") after the rollback, not $LV1"
    page=$(curl -sS --max-time 10 "$LV_URL")
    has "$page" "laravel release v1"
    has "$page" "tags: no table"
    has "$page" "legacy table: yes"
    has "$page" "notes: written by the v1 migration"
    [[ $(sqlite3 -readonly "$LV_DB" "SELECT group_concat(migration, ' ') FROM migrations") == \
        "2024_01_01_000000_create_notes_table 2024_01_01_000001_create_legacy_visits_table" ]] ||
        fail "the migrations table still lists v2's migrations after the rollback"
}

# ---------------------------------------------------------------------------------------------
symfony_first() {
    step "Symfony v1: composer install, cache:clear and cache:warmup in the release, Doctrine migrations (expand)"
    SF_URL=http://127.0.0.1:$SF_PORT/
    SF_DB=$SF_ROOT/shared/var/data.db
    mkdir -p "$SF_ROOT/shared"
    printf 'APP_ENV=prod\nAPP_SECRET=%s\n' "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$SF_ROOT/shared/.env.local"
    build symfony v1
    play symfony deploy "$SF_ROOT" "$SF_PORT"
    SF1=$(current "$SF_ROOT")
    page=$(curl -sS --max-time 10 "$SF_URL")
    has "$page" "symfony release v1"
    has "$page" "messages: written by the v1 migration"
    has "$page" "labels: no table"
    has "$page" "legacy table: yes"
    # The page came from the container warmed at the build, in the release's own var/cache/prod,
    # which PHP-FPM could not have written.
    container=$(sed -n 's/^container: //p' <<<"$page")
    [[ $container == "$SF_ROOT/releases/$SF1/var/cache/prod/"*/App_KernelProdContainer.php ]] ||
        fail "the container was not loaded from the release's warmed cache: $container"
    ! runuser -u www-data -- test -w "$SF_ROOT/releases/$SF1/var/cache/prod" ||
        fail "var/cache/prod is writable by PHP-FPM: the page does not prove the cache was warmed"
    [[ $(sqlite3 -readonly "$SF_DB" "SELECT group_concat(version, ' ') FROM doctrine_migration_versions") == \
        'DoctrineMigrations\Expand\Version20240101000000' ]] || fail "doctrine_migration_versions does not list v1's migration"
}

symfony_later() {
    step "Symfony v2: a new expand migration before the switch, a contract one after"
    build symfony v2
    play symfony deploy "$SF_ROOT" "$SF_PORT"
    SF2=$(current "$SF_ROOT")
    [[ $SF2 != "$SF1" ]] || fail "v2 made no new release"
    page=$(curl -sS --max-time 10 "$SF_URL")
    has "$page" "symfony release v2"
    has "$page" "labels: written by the v2 migration"
    has "$page" "legacy table: no"
    [[ $(sed -n 's/^container: //p' <<<"$page") == "$SF_ROOT/releases/$SF2/var/cache/prod/"* ]] ||
        fail "v2 is not served from its own warmed cache"

    step "Symfony: roll back to v1; v2's versions executed down through the adapter"
    play symfony rollback "$SF_ROOT" "$SF_PORT"
    [[ $(current "$SF_ROOT") == "$SF1" ]] || fail "current is $(current "$SF_ROOT") after the rollback, not $SF1"
    page=$(curl -sS --max-time 10 "$SF_URL")
    has "$page" "symfony release v1"
    has "$page" "labels: no table"
    has "$page" "legacy table: yes"
    [[ $(sqlite3 -readonly "$SF_DB" "SELECT group_concat(version, ' ') FROM doctrine_migration_versions") == \
        'DoctrineMigrations\Expand\Version20240101000000' ]] || fail "doctrine_migration_versions still lists v2's versions"
}

# ---------------------------------------------------------------------------------------------
laravel_first
symfony_first
laravel_later >"$OUT/track-laravel" 2>&1 &
LV_PID=$!
symfony_later >"$OUT/track-symfony" 2>&1 &
SF_PID=$!
rc=0
wait "$LV_PID" || rc=1
wait "$SF_PID" || rc=1
cat "$OUT/track-laravel" "$OUT/track-symfony"
((rc == 0)) || fail "a later step failed (above)"
echo "framework_recipes: all steps passed ($SECONDS s)"
