#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_info
short_description: List the releases of a deploy root with their state and deploy order
version_added: 0.1.0
description:
  - Read-only. Lists every release with its state, deploy order and times, revision and fingerprint, and says
    which is current and which is the rollback target. Also reports the deploy lock holder and build
    leftovers in the staging area.
  - A root that does not exist yet is reported as empty.
author:
  - cutover.web maintainers (@cutover-web)
extends_documentation_fragment:
  - cutover.web._root
  - cutover.web._attributes
  - cutover.web._attributes.info_module
seealso:
  - module: cutover.web.prune_releases
"""

EXAMPLES = r"""
---
- name: Which release is live, and which would a rollback use?
  cutover.web.release_info:
    root: /srv/www/shop
  register: info

- name: Show them
  ansible.builtin.debug:
    msg: "live {{ info.current }}, rollback to {{ info.rollback_target }}"
"""

RETURN = r"""
current:
  description: The id of the release C(<root>/current) points at, or null.
  returned: always
  type: str
rollback_target:
  description: The release that was live before the current one and is still V(ready), or null.
  returned: always
  type: str
releases:
  description: Every directory in C(<root>/releases), newest deploy order first; ones the history does not know come last with state V(unknown).
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The release id.
      type: str
    path:
      description: The release directory.
      type: str
    state:
      description: V(ready), V(active), V(failed), V(bad) or V(unknown).
      type: str
    order:
      description: The deploy order (history sequence of its last activation, else of its creation).
      type: int
    created:
      description: When the release was made (UTC, ISO 8601).
      type: str
    activated:
      description: When the release last went live, or null.
      type: str
    revision:
      description: The git commit, for a git source.
      type: str
    fingerprint:
      description: The content fingerprint.
      type: str
    source:
      description: What the release was made from.
      type: str
    current:
      description: Whether C(current) points at it.
      type: bool
    rollback_target:
      description: Whether a rollback would go to it.
      type: bool
    schema_version:
      description: The database schema version the release expects, as recorded after its migrations, or null.
      type: str
staging:
  description: Builds in progress or left over in C(.cutover/staging).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The staging directory name.
      type: str
    started:
      description: When that build started (UTC, ISO 8601), from its name.
      type: str
trash:
  description:
    - What is in C(.cutover/trash/), the releases and pushes removed but not deleted yet, and whether a process is
      deleting there now (O(cutover.web.go_live#module:delete_in_background)). Entries with no process deleting were
      left by one that was killed, or could not be deleted; the next pruning deletes them.
  returned: always
  type: dict
  contains:
    entries:
      description: The names in the trash.
      type: list
      elements: str
    deleting:
      description: Whether a process holds the trash's lock, deleting there.
      type: bool
  sample: {"entries": ["20261101T090000Z-3f2a9c1d0b7e.1793520000.4242"], "deleting": true}
lock:
  description:
    - The deploy lock holder (owner, run_id, host, pid, pid_start, since, expires), or null when unlocked.
    - A lock file whose record is not valid is returned as C(invalid) (what is wrong with it) and C(raw) (the start
      of its text); the next deploy takes it over.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.cutover.web.plugins.module_utils._lock import read_lock
from ansible_collections.cutover.web.plugins.module_utils._module import run
from ansible_collections.cutover.web.plugins.module_utils._prune import trash_state
from ansible_collections.cutover.web.plugins.module_utils._releases import iso


def info(layout):
    releases = layout.releases()
    current = layout.current_id()
    rollback = layout.rollback_target(releases)
    rollback_id = rollback.id if rollback else None
    known = layout.ordered(releases)
    unknown = sorted(r.id for r in releases.values() if r.mark == 'unknown')
    return {
        'changed': False,
        'current': current,
        'rollback_target': rollback_id,
        'releases': [layout.describe(r, current, rollback_id) for r in known]
        + [layout.describe(releases[rid], current, rollback_id) for rid in unknown],
        'staging': [{'name': name, 'started': iso(started) if started else None}
                    for name, started, _path in layout.staging_entries()],
        'trash': trash_state(layout),
        'lock': read_lock(layout),
    }


def main():
    module = AnsibleModule(
        argument_spec=dict(root=dict(type='path', required=True)),
        supports_check_mode=True,
    )
    run(module, info)


if __name__ == '__main__':
    main()
