#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: shared_links
short_description: Link shared directories and files into a release before it goes live
version_added: 0.1.0
description:
  - Data that must outlive releases (uploads, sessions, C(.env)) lives in C(<root>/shared/<path>). This module
    puts a relative symlink at C(<root>/releases/<id>/<path>) pointing there, in one call for all paths.
  - The first time a path is shared, what the release brings at that path seeds C(shared/<path>) (copied
    through a temporary name), so nothing the source ships is lost; otherwise an empty directory or file is
    made.
  - A real directory or file the release has at a shared path is swapped for the link in one
    C(renameat2(RENAME_EXCHANGE)), so the path never goes missing, even in a live release. Of what it held, only
    what the source shipped unchanged (same path and content as the release's manifest records) and what
    C(shared/) holds already, byte for byte, is dropped; everything else (uploads made while the release was
    live, files written after the build) is moved into C(shared/<path>). Where that name is taken by something
    else, it goes in as C(<name>.cutover-<release>) and the module warns, naming it (see RV(kept), RV(renamed)).
  - Both trees are walked without following any symlink. Refuses absolute paths, paths with C(..), paths under
    C(.cutover), one shared path inside another, a C(shared) directory that is a symlink, shared paths that are
    symlinks, and a symlink or a file where a directory leading to a shared path should be, in the release (for
    example a C(public -> /elsewhere) link the source ships) or under C(shared); a refusal changes nothing.
  - Meant for a release that is not live yet; the deploy role calls it between making the release and the switch.
    Run on a live release (a reused one), it keeps what users wrote there as described above.
author:
  - cutover.web maintainers (@cutover-web)
extends_documentation_fragment:
  - cutover.web._root
  - cutover.web._attributes
  - cutover.web._attributes.full
attributes:
  safe_file_operations:
    support: partial
    details:
      - Links are made as a temporary link renamed into place (swapped with a real directory or file by
        C(renameat2(RENAME_EXCHANGE))); seeded shared paths are copied under a temporary name and renamed. Data
        found in the release at a shared path is moved into C(shared/) by rename; only what the source shipped
        unchanged, or what C(shared/) holds already, is deleted.
options:
  release:
    description:
      - The id of the release to link the shared paths into.
    type: str
    required: true
  dirs:
    description:
      - Directories, relative to a release, to keep in C(<root>/shared), for example C(public/media).
    type: list
    elements: str
    default: []
  files:
    description:
      - Files, relative to a release, to keep in C(<root>/shared), for example C(.env).
    type: list
    elements: str
    default: []
  legacy:
    description:
      - Live directories of a legacy layout to adopt as shared directories the first time, a mapping from
        shared directory to legacy directory, for example C(public/media) to C(/var/www/shop/public_html/media)
        for a site still served from a real C(public_html).
      - The legacy directory is moved to C(<root>/shared/<path>) and a symlink to it left in its place by one
        C(renameat2(RENAME_EXCHANGE)), so nothing is copied and a file written while it happens lands in the
        shared directory through either path. Both must be on one filesystem; otherwise the module fails and
        changes nothing.
      - Once adopted (the shared directory exists), the legacy path is left alone.
    type: dict
    default: {}
  owner:
    description:
      - Owner of shared paths this module creates (existing ones are left as they are).
    type: str
  group:
    description:
      - Group of shared paths this module creates.
    type: str
  mode:
    description:
      - Mode of shared directories this module creates.
    type: raw
    default: '0755'
  file_mode:
    description:
      - Mode of empty shared files this module creates.
    type: raw
    default: '0640'
"""

EXAMPLES = r"""
---
- name: Keep uploads, sessions and the environment file across releases
  cutover.web.shared_links:
    root: /srv/www/shop
    release: "{{ release.id }}"
    dirs: [public/media, var/sessions]
    files: [.env]
    owner: www-data
    group: www-data
"""

RETURN = r"""
release_path:
  description: The release the paths were linked into.
  returned: always
  type: str
linked:
  description: Paths (relative to the release) that got a new link.
  returned: always
  type: list
  elements: str
  sample: [public/media]
adopted:
  description: Shared directories adopted from a legacy directory.
  returned: always
  type: list
  elements: str
seeded:
  description: Shared paths created from what the release brought.
  returned: always
  type: list
  elements: str
created:
  description: Shared paths created empty.
  returned: always
  type: list
  elements: str
kept:
  description:
    - Paths under C(<root>/shared) that data found in the release at a shared path was moved to (uploads, files
      written after the build; not what the source shipped unchanged). In check mode, what would be moved.
  returned: always
  type: list
  elements: str
  sample: [public/media/upload.jpg, public/media/logo.png.cutover-20261202T101500Z-1a2b3c4d5e6f]
renamed:
  description:
    - The paths of RV(kept) that got a new name, C(<name>.cutover-<release>), because C(shared/) holds something
      else under the name; each is also named in a warning.
  returned: always
  type: list
  elements: str
left:
  description:
    - Directories of the release that could not be emptied into C(shared/) because something kept writing into
      them; they are left beside the link, named in a warning, and the next run moves what is left.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.cutover.web.plugins.module_utils._module import run
from ansible_collections.cutover.web.plugins.module_utils._shared import SHARED_OPTIONS, link_shared


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type='path', required=True),
            release=dict(type='str', required=True),
            **SHARED_OPTIONS
        ),
        supports_check_mode=True,
    )

    run(module, lambda layout: link_shared(layout, module.params, module.check_mode, module.warn))


if __name__ == '__main__':
    main()
