#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: prune_releases
short_description: Remove old releases, keeping the newest by recorded deploy order
version_added: 0.1.0
description:
  - Keeps the newest O(keep) ready releases by the deploy order recorded in the history (the last time each
    went live, else when it was made), never by file times.
  - Never removes the current release, the rollback target, ids in O(protect), or directories in
    C(releases/) that the history does not know.
  - Removes V(failed) and V(bad) releases marked longer ago than O(failed_older_than), and build and push
    leftovers in C(.cutover/staging/) older than O(staging_older_than) (or all of them, O(staging_all)).
  - An entry of C(.cutover/staging/) that is not a directory (a file, a symlink) is never removed; it is left
    in place, listed in RV(skipped_staging), and named in a warning.
  - A removed release goes with the database backups taken before its migrations, in
    C(<root>/.cutover/backups/<id>).
  - Never follows a symlink and never deletes anything outside C(<root>/releases),
    C(<root>/.cutover/staging) and C(<root>/.cutover/backups). A release is renamed out of C(releases/) in
    one step before it is deleted, so a half-deleted release is never visible there.
  - With O(lock) and O(lock.give_back=true), pruning is also the last step of a deploy under the lock and
    gives it back, so no separate task is needed for that.
author:
  - cutover.web maintainers (@cutover-web)
extends_documentation_fragment:
  - cutover.web._root
  - cutover.web._lock
  - cutover.web._delete_in_background
  - cutover.web._attributes
  - cutover.web._attributes.full
attributes:
  check_mode:
    details:
      - Check mode returns exactly the releases and staging leftovers it would remove.
  idempotent:
    details:
      - Ages are measured against the clock, so a failed release may become old enough between two runs.
options:
  keep:
    description:
      - How many ready releases to keep, the current one included. At least 1.
    type: int
    default: 5
  protect:
    description:
      - Release ids never to remove.
    type: list
    elements: str
    default: []
  failed_older_than:
    description:
      - Seconds after being marked V(failed) or V(bad) that a release may be removed. V(0) removes them at once.
    type: int
    default: 86400
  staging_older_than:
    description:
      - Seconds after a build or a push started that its leftover in the staging area may be removed.
    type: int
    default: 3600
  staging_all:
    description:
      - Remove every leftover in the staging area whatever its age, except a push made by a check-mode deploy
        (named C(check-*), made without the lock) younger than O(staging_older_than).
      - For a deploy holding the deploy lock, when no other deploy can be writing there; it frees the space a
        run that was killed or failed left behind. Needs O(lock).
    type: bool
    default: false
  releases:
    description:
      - Whether to prune releases. V(false) prunes only the staging area (a deploy does that before it pushes);
        O(keep), O(protect) and O(failed_older_than) are then not used.
    type: bool
    default: true
seealso:
  - module: cutover.web.release_info
"""

EXAMPLES = r"""
---
- name: Keep five releases
  cutover.web.prune_releases:
    root: /srv/www/shop
    keep: 5

- name: Prune as the last step of a deploy, and give back the lock the deploy took
  cutover.web.prune_releases:
    root: /srv/www/shop
    keep: 5
    lock:
      owner: deploy@ci
      run_id: "{{ cutover_run_id }}"
      give_back: true

- name: See what would go, changing nothing
  cutover.web.prune_releases:
    root: /srv/www/shop
    keep: 3
    protect: [v2.3.0]
  check_mode: true
  register: plan
"""

RETURN = r"""
deleting:
  description:
    - The releases and staging leftovers this run removed, renamed into C(.cutover/trash/), that a process
      detached from this run deletes after it (O(delete_in_background)).
  returned: when O(delete_in_background) left something to delete
  type: list
  elements: path
  sample: [/srv/www/shop/.cutover/trash/20261101T090000Z-3f2a9c1d0b7e.1793520000.4242]
removed:
  description: Release ids removed (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [20261101T090000Z-3f2a9c1d0b7e]
removed_trash:
  description:
    - What earlier runs left in C(.cutover/trash/) and this run deleted (or would). A release is renamed there out of
      C(releases/) before its files are deleted; a file that could not be deleted then (immutable, on a read-only
      mount) is named in a warning and deleted by the next run.
  returned: always
  type: list
  elements: str
removed_staging:
  description: Staging leftovers removed (or that would be).
  returned: always
  type: list
  elements: str
skipped_staging:
  description: Entries of the staging area left in place because they are not directories, each with why.
  returned: always
  type: dict
  sample: {"notes.txt": "not a directory"}
kept:
  description: Release ids kept.
  returned: always
  type: list
  elements: str
kept_reasons:
  description: For each kept release, why (current, rollback target, protected, among the newest N, ...).
  returned: always
  type: dict
  sample: {"20261122T101500Z-3f2a9c1d0b7e": "current"}
lock_held:
  description: With O(lock), whether this run still holds the deploy lock after the task.
  returned: when O(lock) is set
  type: bool
"""

from ansible_collections.cutover.web.plugins.module_utils._lock import lock_module, run_locked
from ansible_collections.cutover.web.plugins.module_utils._prune import DELETE_OPTION, PRUNE_OPTIONS, prune


def main():
    module = lock_module(
        dict(
            staging_older_than=dict(type='int', default=3600),
            staging_all=dict(type='bool', default=False),
            releases=dict(type='bool', default=True),
            delete_in_background=DELETE_OPTION,
            **PRUNE_OPTIONS
        ),
        required_if=[('staging_all', True, ['lock'])],
    )
    p = module.params

    run_locked(module, lambda layout: prune(layout, p['keep'], p['protect'], p['failed_older_than'], p['staging_older_than'],
                                            check_mode=module.check_mode, staging_all=p['staging_all'],
                                            releases=p['releases']))


if __name__ == '__main__':
    main()
