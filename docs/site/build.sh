#!/usr/bin/env bash
# Build the docs site into DEST/build/html (default: <repo>/.work/docsite), offline, every
# warning an error. Needs antsibull-docs, Sphinx and myst-parser (docs/site/requirements.txt) on
# PATH and the collection installed in ANSIBLE_COLLECTIONS_PATH (`./dev test docs` does both).
set -euo pipefail

SITE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd -- "$SITE/../.." && pwd)
DEST=${1:-$REPO/.work/docsite}

rm -rf "$DEST"
mkdir -p "$DEST/rst/docs"
cp "$SITE/conf.py" "$SITE/antsibull-docs.cfg" "$DEST/"
cp "$SITE/index.rst" "$SITE/ansible_docs.rst" "$DEST/rst/"
# The guides, where their relative links expect each other.
cp "$REPO/README.md" "$DEST/rst/"
cp "$REPO"/docs/*.md "$DEST/rst/docs/"
chmod og-w "$DEST/rst"  # antsibull-docs wants its output directory writable by itself only

antsibull-docs --config-file "$DEST/antsibull-docs.cfg" collection --use-current --dest-dir "$DEST/rst" cutover.web
# The module and role docs, and the extra docs in docs/docsite (their labels, the plugin and option
# names they cite, their RST), as antsibull-docs lints a collection for publication.
antsibull-docs lint-collection-docs --plugin-docs --check-extra-docs-refs --validate-collection-refs all --disallow-unknown-collection-refs "$REPO"
sphinx-build -q -b html -c "$DEST" -W --keep-going -n "$DEST/rst" "$DEST/build/html"
echo "docs site: $DEST/build/html/index.html"
