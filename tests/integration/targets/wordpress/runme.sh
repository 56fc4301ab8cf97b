#!/usr/bin/env bash
# WordPress, an application nobody here wrote, through the collection's playbooks under load: a
# short run of bench/wordpress.py. Debian's WordPress 6.1 vendored into a self-contained release on a
# MariaDB server of the test's own (127.0.0.1:55471), wp-content/uploads and wp-config.php shared,
# served by this machine's Apache with PHP-FPM on 127.0.0.1:18141 through the apache_vhost role,
# installed by posting its installer, pretty permalinks through its .htaccess. While two readers
# fetch the home page, a post by its permalink and the theme's style.css, and a writer uploads
# PNGs through the REST API with an application password: two deploys of a theme change that
# puts the release in the page, and a rollback, with cutover.web.deploy and cutover.web.rollback.
# Fails on any answer other than 2xx, connection error, page without its release marker, page of
# another release once a deploy or rollback finished, upload refused, upload missing from
# shared/wp-content/uploads or not served byte for byte at the end, a media library that does not
# count them all, or wp-config.php served.
set -eu -o pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=/dev/null
source "$HERE/../setup_collection/collection.sh"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

[[ -f /usr/share/wordpress/wp-settings.php ]] || { echo "WordPress is not installed (apt-get install wordpress; ./dev setup does)" >&2; exit 1; }

python "$COLL/bench/wordpress.py" --deploys 2 --rollbacks 1 --readers 2 --settle 2 \
    --port 18141 --db-port 55471 --workdir /var/tmp/cutover-it-wordpress --results "$OUT" \
    --venv "$(python -c 'import sys; print(sys.prefix)')" --collections "$ANSIBLE_COLLECTIONS_PATH" \
    --expect-zero
echo "wordpress: all steps passed"
