#!/usr/bin/env bash
# Zero downtime as users see it, in a short run of bench/zero_downtime.py: keep-alive clients
# and an uploader against the real Apache, with PHP-FPM and then with mod_php, while the
# deploy playbook deploys three new versions and rolls back once. Any non-2xx answer,
# connection error, MIXED or STALE response, failed or lost upload of cutover.web fails the
# test. The bare symlink switch runs beside it under the same load and must be caught
# serving stale, mixed or missing pages: proof that the load would see such faults.
set -eu -o pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=/dev/null
source "$HERE/../setup_collection/collection.sh"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

python "$COLL/bench/zero_downtime.py" \
    --php fpm,mod_php --methods cutover,symlink \
    --deploys 3 --rollbacks 1 --min-requests 1000 --clients 3 --settle 2 --media-files 200 \
    --port 18191 --workdir /var/tmp/cutover-it-zero-downtime --results "$OUT" \
    --venv "$(python -c 'import sys; print(sys.prefix)')" --collections "$ANSIBLE_COLLECTIONS_PATH" \
    --expect-zero

python - "$OUT" <<'PY'
import glob, json, sys
results = json.load(open(glob.glob(sys.argv[1] + '/zero_downtime-*.json')[0]))['results']
for r in results:
    faults = sum(r['non_2xx'].values()) + sum(r['connection_errors'].values()) + r['mixed'] + r['stale']
    print('%-8s %-8s requests=%d faults=%d uploads=%d lost=%d' % (
        r['php'], r['method'], r['requests'], faults, r['uploads'], r['uploads_lost']))
    if r['requests'] < 1000:
        sys.exit('%s/%s: only %d requests were made' % (r['php'], r['method'], r['requests']))
    if r['method'] == 'symlink' and not faults:
        sys.exit('%s: the bare symlink switch showed no fault, so this load would not catch one' % r['php'])
PY
