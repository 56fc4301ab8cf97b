#!/usr/bin/env bash
# Zero downtime as users see it, in a short run of bench/zero_downtime.py: keep-alive clients
# and an uploader against the real Apache, with PHP-FPM and then with mod_php, while the
# deploy playbook deploys three new versions and rolls back once. Any non-2xx answer,
# connection error, MIXED or STALE response, failed or lost upload of cutover.web fails the
# test. The bare symlink switch runs beside it under the same load and must be caught
# serving stale, mixed or missing pages: proof that the load would see such faults.
# OPcache full: a 16 MiB OPcache and pages of 100 scripts, so that old releases fill it. With
# PHP-FPM, cutover.web must leave the live release's scripts cached and no other release's after
# every deploy and rollback; without its reset (cutover-keep-opcache) the cache must be seen full
# and the live release not all cached: proof that this case fills it. Under mod_php a graceful
# restart starts a new cache, so no other release's scripts may be cached even without the reset.
set -eu -o pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=/dev/null
source "$HERE/../setup_collection/collection.sh"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

python "$COLL/bench/zero_downtime.py" \
    --php fpm,mod_php --methods cutover,cutover-keep-opcache,symlink --opcache-mb 16 --filler 100 \
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
    after = r['opcache'][1:]  # what OPcache held after each deploy or rollback
    print('%-8s %-20s OPcache live=%s other=%s full=%s' % (
        r['php'], r['method'], [s.get('live') for s in after], [s.get('other') for s in after],
        [s.get('full') for s in after]))
    if r['method'] == 'cutover' or (r['php'] == 'mod_php' and r['method'] == 'cutover-keep-opcache'):
        if any(s.get('other') != 0 or (s.get('live') or 0) < 100 for s in after):
            sys.exit('%s/%s: OPcache held other releases, or not all of the live one, after a switch: %s'
                     % (r['php'], r['method'], json.dumps(after)))
    if r['php'] == 'fpm' and r['method'] == 'cutover-keep-opcache':
        if not any(s.get('full') for s in after) or all((s.get('live') or 0) >= 100 for s in after):
            sys.exit('fpm: without the reset OPcache never filled with old releases, so this case would not catch '
                     'a missing reset: %s' % json.dumps(after))
PY
