#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: writable_paths
short_description: Make a few paths of a release writable for the web server user
version_added: 0.1.0
description:
  - Makes the directories and files listed (relative to a release) writable for the web server user (V(www-data)
    on Debian), so that PHP can write caches, compiled templates or logs there, and nothing else.
  - A path that is a shared path (listed in O(shared_dirs) or O(shared_files)), or lies inside a shared directory,
    is made writable in C(<root>/shared/<path>), where its data lives. Any other path belongs to the release
    alone, and is made (empty) in C(<root>/releases/<id>/<path>) when the release does not have it. Such a cache
    starts empty in each new release, so a release never reads another release's compiled files (a cache keyed
    without the release and judged fresh by file times would serve one build's output to the next).
  - Every directory and file in a writable path that the web server user does not own already is given read and
    write (and search on directories) for it, by O(method). Owners and the permissions of other users are never
    changed, so nothing becomes world-writable, and nothing outside the paths listed changes.
  - A file with other names (a release shares the files it did not change with other releases by hardlink) is
    first given a copy of its own, with the same content, mode, owner and times, by a rename over it, so no other
    release changes.
  - No symlink is followed. Refuses an absolute path, a path with C(..) or under C(.cutover), a symlink or a
    non-directory on the way to a path, a path that is a symlink or not of the kind listed, an unknown web server
    user or group, and the C(acl) method on a filesystem without POSIX ACLs; a refusal changes nothing. Symlinks
    inside a writable directory are left as they are, so a shared directory inside a writable one (a link in the
    release) is made writable only when it is listed too.
  - A file made writable loses its set-user-id and set-group-id bits.
  - The deploy role calls it after the build and after the new release is sealed, before the switch, so files the
    build made as another user (a C(cache:warmup) run as root) are writable too.
author:
  - cutover.web maintainers (@cutover-web)
extends_documentation_fragment:
  - cutover.web._root
  - cutover.web._attributes
  - cutover.web._attributes.full
attributes:
  diff_mode:
    details:
      - One line per path made and per entry changed.
  safe_file_operations:
    support: partial
    details:
      - Permissions are changed in place through descriptors opened without following links; a file with other
        names gets its own copy under a temporary name renamed over it first.
  idempotent:
    details:
      - Entries the web server user owns (what PHP wrote) are left as they are, so a live release run again
        reports no change.
options:
  release:
    description:
      - The id of the release whose paths are made writable.
    type: str
    required: true
  dirs:
    description:
      - Directories, relative to a release, the web server user must write to, for example C(var/cache).
    type: list
    elements: str
    default: []
  files:
    description:
      - Files, relative to a release, the web server user must write to.
    type: list
    elements: str
    default: []
  shared_dirs:
    description:
      - The shared directories of the site (the deploy role's C(deploy_shared_dirs)); a writable path equal to one
        or inside one is made writable in C(<root>/shared).
    type: list
    elements: str
    default: []
  shared_files:
    description:
      - The shared files of the site (C(deploy_shared_files)).
    type: list
    elements: str
    default: []
  user:
    description:
      - The web server user (PHP-FPM's pool user), for example V(www-data) on Debian, V(apache) on Red Hat.
    type: str
    required: true
  group:
    description:
      - The web server group for O(method=group). Default is the user's own group.
    type: str
  method:
    description:
      - V(acl) adds the POSIX ACL entry C(user:<user>:rwX) to each entry, and to each directory's default ACL so
        that what other users create there later is writable too. The filesystem must support POSIX ACLs (ext4,
        XFS, btrfs and tmpfs do); no C(setfacl) is needed.
      - V(group) gives each entry the group O(group), adds C(g+rwX), and sets the set-group-id bit of directories
        so what is made in them gets that group. Anyone in that group can then write there.
    type: str
    choices: [acl, group]
    default: acl
"""

EXAMPLES = r"""
---
- name: Let PHP write its caches (per release) and uploads (shared)
  cutover.web.writable_paths:
    root: /srv/www/shop
    release: "{{ release.id }}"
    dirs: [var/cache, public/media]
    shared_dirs: [public/media]
    user: www-data
"""

RETURN = r"""
release_path:
  description: The release whose paths were made writable.
  returned: always
  type: str
user:
  description: The web server user the paths are writable for.
  returned: always
  type: str
group:
  description: The web server group (used by O(method=group)).
  returned: always
  type: str
paths:
  description: One entry per writable path.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The path as listed, relative to the release.
      type: str
    location:
      description: Where it is on disk, in the release or under C(<root>/shared).
      type: str
    shared:
      description: Whether it lives under C(<root>/shared).
      type: bool
    created:
      description: Whether it was made (would be, in check mode).
      type: bool
    changed:
      description: How many directories and files in it were changed (would be, in check mode).
      type: int
    copied:
      description: How many files in it were first given a copy of their own (they had other names).
      type: int
  sample:
    - {path: var/cache, location: /srv/www/shop/releases/20261202T101500Z-1a2b3c4d5e6f/var/cache, shared: false,
       created: true, changed: 1, copied: 0}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.cutover.web.plugins.module_utils._module import run
from ansible_collections.cutover.web.plugins.module_utils._writable import make_writable, web_rule

DIFF_LINES = 200


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type='path', required=True),
            release=dict(type='str', required=True),
            dirs=dict(type='list', elements='str', default=[]),
            files=dict(type='list', elements='str', default=[]),
            shared_dirs=dict(type='list', elements='str', default=[]),
            shared_files=dict(type='list', elements='str', default=[]),
            user=dict(type='str', required=True),
            group=dict(type='str'),
            method=dict(type='str', choices=['acl', 'group'], default='acl'),
        ),
        supports_check_mode=True,
    )

    def action(layout):
        p = module.params
        rule = web_rule(p['method'], p['user'], p['group'])
        report = make_writable(layout, p['release'], p['dirs'], p['files'], rule, shared_dirs=p['shared_dirs'],
                               shared_files=p['shared_files'], check_mode=module.check_mode)
        lines = report['lines'][:DIFF_LINES]
        if len(report['lines']) > DIFF_LINES:
            lines.append('... and %d more' % (len(report['lines']) - DIFF_LINES))
        return {
            'changed': report['changed'],
            'release_path': layout.release_path(p['release']),
            'user': rule.user,
            'group': rule.group,
            'paths': report['paths'],
            'diff': {'before': '', 'after': ''.join('%s\n' % line for line in lines)},
        }

    run(module, action)


if __name__ == '__main__':
    main()
