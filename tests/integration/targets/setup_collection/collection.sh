# shellcheck shell=bash
# Sourced by the script targets (their aliases say needs/target/setup_collection). ansible-test
# runs a copy of each target without the rest of the collection; this sets COLL to the
# cutover.web collection on ANSIBLE_COLLECTIONS_PATH, for the example shop, bench/ and tests/hosts/.
COLL=
IFS=: read -ra __cutover_paths <<<"${ANSIBLE_COLLECTIONS_PATH:-}"
for __p in "${__cutover_paths[@]}"; do
    if [[ -f $__p/ansible_collections/cutover/web/galaxy.yml ]]; then
        COLL=$__p/ansible_collections/cutover/web
        break
    fi
done
unset __cutover_paths __p
if [[ -z $COLL ]]; then
    echo "cutover.web is not on ANSIBLE_COLLECTIONS_PATH (${ANSIBLE_COLLECTIONS_PATH:-unset})" >&2
    exit 1
fi

# forget_site NAME [PORT...]: this host's Apache as it was before the target set up the apache_vhost role's site
# NAME listening on PORT...: no vhost, release pointer, record of the set-up or Listen line of the site left (the
# caller restarts Apache gracefully).
forget_site() {
    local name=$1 port
    shift
    a2dissite -q "cutover-$name" >/dev/null 2>&1 || true
    rm -f "/etc/apache2/sites-available/cutover-$name.conf" "/etc/apache2/cutover/$name-release.conf" \
        "/var/lib/cutover-web/apache_vhost/$name.json"
    for port in "$@"; do
        sed -i -E "/^\s*Listen\s+(127\.0\.0\.1:)?$port\s*$/d" /etc/apache2/ports.conf
    done
}

# What every script target says and checks the same way; each step shows the seconds since the
# script started, so a slow part of a slow target shows in the log.
step() { printf '\n=== [%ss] %s\n' "$SECONDS" "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }
# recap [HOST]: the PLAY RECAP counters of HOST (default testhost) in the last run's output ($OUT/last),
# e.g. "ok=12 changed=0 ...".
recap() { grep -E "^${1:-testhost} +:" "$OUT/last" | tail -1; }
# expect_recap PATTERN [HOST]: fail unless HOST's recap in the last run shows PATTERN ("changed=0").
expect_recap() { recap "${2:-testhost}" | grep -q -- "$1" || fail "expected $1 in ${2:-testhost}'s recap: $(recap "${2:-testhost}")"; }
# play_fails ARGS...: the target's own play ARGS..., which must fail.
play_fails() {
    if play "$@"; then
        fail "ansible-playbook ${1:-} should have failed"
    fi
}
