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
