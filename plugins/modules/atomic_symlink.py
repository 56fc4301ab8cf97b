#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: atomic_symlink
short_description: Switch a symlink to a new release with a single rename(2)
version_added: 0.1.0
description:
  - Points a link, by default C(<root>/current), at a release or another directory by creating a temporary
    symlink in the same directory and renaming it over the old link, then fsyncing the directory. Every
    request sees the old target or the new one; there is no instant without a link, as there is with
    C(rm) followed by C(ln).
  - When the link path is still a real directory (the legacy C(public_html) layout) and
    O(convert_directory=true), the directory and the new symlink are swapped with
    C(renameat2(RENAME_EXCHANGE)), so the path never goes missing either. The old directory is kept beside
    the link as C(<link>.pre-cutover-<UTC time>).
  - Switching C(<root>/current) records the activation in the history; that is where deploy order and the
    rollback target come from. The record is written before the link is renamed and counts only once
    C(current) points at it, so a run killed in between, or a rename that fails, leaves no trace of a switch
    that did not happen.
  - With O(lock), the switch holds the deploy lock itself, so a rollback with nothing else to do is one task.
author:
  - cutover.web maintainers (@cutover-web)
extends_documentation_fragment:
  - cutover.web._root
  - cutover.web._lock
  - cutover.web._attributes
  - cutover.web._attributes.full
attributes:
  diff_mode:
    details:
      - The diff shows the link text before and after.
  idempotent:
    details:
      - The link text is compared, not the resolved path.
options:
  release:
    description:
      - The id of the release to point at, C(<root>/releases/<release>). It must be V(ready) or already
        V(active); a V(failed) or V(bad) release, or a directory the history does not know, is refused.
    type: str
  target:
    description:
      - A directory to point at instead of a release. A relative path is taken relative to O(root).
      - A target outside O(root) is refused unless O(allow_outside_root=true).
    type: path
  link:
    description:
      - The symlink to switch. A relative path is taken relative to O(root).
      - Defaults to C(<root>/current).
    type: path
  relative:
    description:
      - Write a relative link text (C(releases/<id>)) rather than an absolute one. Relative links keep
        working when the root is moved or bind-mounted elsewhere.
    type: bool
    default: true
  allow_outside_root:
    description:
      - Allow a O(target) outside O(root).
    type: bool
    default: false
  convert_directory:
    description:
      - When the link path is a non-empty real directory, swap it for the symlink with
        C(renameat2(RENAME_EXCHANGE)) and keep the old directory beside it. Without this option such a
        directory is refused. An empty directory is always replaced.
      - Needs Linux 3.15 or later and a filesystem that supports the exchange (ext4, xfs, btrfs, tmpfs do);
        elsewhere the module fails and changes nothing.
    type: bool
    default: false
  rollback:
    description:
      - Switch C(<root>/current) back to O(release) when given, else to the release that was live before the
        current one and is still ready (the rollback target of M(cutover.web.release_info)).
      - The release left is marked O(mark_previous) in the same history record as the switch, so a crash can
        never leave the switch without the mark (and a later rollback put that release live again).
      - A rollback to the previous release is not repeated; when the current release went live by such a
        rollback (the release live just before it is marked V(bad)), nothing changes and
        RV(already_rolled_back) is true. Name a release in O(release) to go further back.
    type: bool
    default: false
  mark_previous:
    description:
      - With O(rollback), the state recorded for the release rolled back from; V(ready) leaves it as it is.
    type: str
    choices: [bad, failed, ready]
    default: bad
seealso:
  - module: cutover.web.release_dir
  - module: ansible.builtin.file
    description: Its O(ansible.builtin.file#module:state=link) also renames a temporary link into place, but
      neither checks release state nor records history.
"""

EXAMPLES = r"""
---
- name: Put a release live
  cutover.web.atomic_symlink:
    root: /srv/www/shop
    release: "{{ release.id }}"
  register: switch

- name: Switch back to what was live before
  cutover.web.atomic_symlink:
    root: /srv/www/shop
    release: "{{ switch.previous_release }}"

- name: Roll back to the release live before, marking the current one bad
  cutover.web.atomic_symlink:
    root: /srv/www/shop
    rollback: true

- name: Roll back under the deploy lock, taken and given back in this task
  cutover.web.atomic_symlink:
    root: /srv/www/shop
    rollback: true
    lock:
      owner: "{{ lookup('ansible.builtin.env', 'USER') }}@{{ lookup('ansible.builtin.pipe', 'hostname') }}"
- name: Turn the legacy document root into a link to current, with no gap
  cutover.web.atomic_symlink:
    root: /srv/www/shop
    link: /var/www/public_html
    target: /srv/www/shop/current
    relative: false
    convert_directory: true
"""

RETURN = r"""
link:
  description: The symlink that was switched.
  returned: always
  type: str
  sample: /srv/www/shop/current
target:
  description: The directory the link points at after the task.
  returned: always
  type: str
  sample: /srv/www/shop/releases/20261122T101500Z-3f2a9c1d0b7e
link_text:
  description: The text of the link after the task.
  returned: always
  type: str
  sample: releases/20261122T101500Z-3f2a9c1d0b7e
previous:
  description: The link text before the task, or null when there was no link.
  returned: always
  type: str
  sample: releases/20261121T090000Z-8d1c0b7e3f2a
release:
  description: The release id the link points at, when the target is a release.
  returned: always
  type: str
previous_release:
  description: The release that C(<root>/current) pointed at before the task (null for other links).
  returned: always
  type: str
rolled_back_from:
  description: With O(rollback), the release that was live before and is now marked O(mark_previous), or null.
  returned: always
  type: str
already_rolled_back:
  description: With O(rollback), whether the current release already went live by a rollback, so nothing changed.
  returned: always
  type: bool
converted:
  description: Where the real directory that stood at the link path was kept, when one was converted.
  returned: always
  type: str
  sample: /var/www/public_html.pre-cutover-20261122T101500Z
lock_held:
  description: With O(lock), whether this run still holds the deploy lock after the task.
  returned: when O(lock) is set
  type: bool
"""

from ansible_collections.cutover.web.plugins.module_utils._lock import lock_module, run_locked
from ansible_collections.cutover.web.plugins.module_utils._switch import rollback, switch


def main():
    module = lock_module(
        dict(
            release=dict(type='str'),
            target=dict(type='path'),
            link=dict(type='path'),
            relative=dict(type='bool', default=True),
            allow_outside_root=dict(type='bool', default=False),
            convert_directory=dict(type='bool', default=False),
            rollback=dict(type='bool', default=False),
            mark_previous=dict(type='str', default='bad', choices=['bad', 'failed', 'ready']),
        ),
        mutually_exclusive=[('release', 'target'), ('rollback', 'target'), ('rollback', 'link'),
                            ('rollback', 'convert_directory')],
        required_one_of=[('release', 'target', 'rollback')],
    )
    p = module.params

    def act(layout):
        if p['rollback']:
            return rollback(layout, release=p['release'],
                            mark_previous=None if p['mark_previous'] == 'ready' else p['mark_previous'],
                            check_mode=module.check_mode)
        result = switch(layout, target=p['target'], release=p['release'], link=p['link'], relative=p['relative'],
                        allow_outside_root=p['allow_outside_root'], convert_directory=p['convert_directory'],
                        check_mode=module.check_mode)
        result.update(rolled_back_from=None, already_rolled_back=False)
        return result

    run_locked(module, act)


if __name__ == '__main__':
    main()
