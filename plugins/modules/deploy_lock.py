#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deploy_lock
short_description: Take or release the deploy lock of a deploy root
version_added: 0.1.0
description:
  - One deploy at a time per root. The lock C(<root>/.cutover/deploy.lock) is created atomically (written
    complete, then hardlinked into place, which fails if it exists) and records owner, run id, the controller's
    host name, the pid of its C(ansible-playbook) and that process's start, and the time it was taken and expires.
  - Taking a lock held by someone else fails with a message naming the holder and the C(ansible) command that
    frees it, unless the lock is taken over, with a warning, and the old holder returned in RV(took_over). A lock
    is taken over when it has expired (O(ttl)); when its record is not valid (not JSON, or a field of the wrong
    type, such as an C(expires_epoch) that is not a number); or when its holder is a run whose
    C(ansible-playbook) ran on this same controller host and is no longer running (killed, or the controller
    rebooted). The action plugin of this module tells that on the controller, by the recorded pid and its
    start time (a reused pid does not count as the holder), and then runs the module again with
    O(take_over_dead) naming that run; the module replaces the lock only if it still holds that run's record.
  - A holder on another controller host is never guessed dead; free its lock with the command the refusal names
    (O(state=absent) and O(force=true)) once that run is surely gone.
author:
  - cutover.web maintainers (@cutover-web)
extends_documentation_fragment:
  - cutover.web._root
  - cutover.web._attributes
  - cutover.web._vhost_record
  - cutover.web._attributes.full
attributes:
  idempotent:
    details:
      - Taking a lock already held by the same O(owner) and O(run_id) changes nothing.
options:
  state:
    description:
      - V(present) takes the lock, V(absent) releases it.
    type: str
    choices: [present, absent]
    default: present
  owner:
    description:
      - Who holds the lock, for example the user and controller host.
    type: str
    required: true
  run_id:
    description:
      - Identifies one deploy run, so that the same run taking the lock again is not refused.
    type: str
  ttl:
    description:
      - Seconds after which the lock is considered stale and may be taken over. At least 1.
    type: int
    default: 1800
  host:
    description:
      - The host the deploy runs from, recorded in the lock. The action plugin sets the controller's host name;
        without it, the target's host name is recorded.
    type: str
  pid:
    description:
      - The process id of the deploy, recorded in the lock. The action plugin sets the pid of the controller's
        C(ansible-playbook) (or C(ansible)) process.
    type: int
  pid_start:
    description:
      - When the process O(pid) started (boot id and start time from C(/proc/<pid>/stat)), recorded in the lock
        so that the controller can tell the holder from a later process that got the same pid. Set by the
        action plugin when it sets O(pid) (on a Linux controller); not for use by hand.
    type: str
  take_over_dead:
    description:
      - The run id of a holder known to be dead; its lock is taken over (with a warning) if the lock still holds
        that run's record. The action plugin sets it after it found the holder's C(ansible-playbook) gone on this
        controller; not for use by hand (use O(state=absent) with O(force=true) instead).
    type: str
  ad_hoc:
    description:
      - The start of an C(ansible) command line that reaches this target (inventory, host, become), used in a
        refusal to name the command that frees the lock. Set by the action plugin.
    type: str
  force:
    description:
      - With O(state=absent), remove the lock even if someone else holds it.
    type: bool
    default: false
  root_mode:
    description:
      - With O(state=present), make O(root) (and any missing parent) when it does not exist, with this mode,
        and give an existing root this mode, so that the first task of a deploy also prepares its root.
      - An octal mode, such as V('0755'). Without it, a missing root fails the task.
    type: raw
  clear_staging:
    description:
      - With O(state=present), once the lock is held, remove what earlier runs left in the staging area
        C(<root>/.cutover/staging/) (a push or a half-built release of a run that was killed or failed),
        whatever its age, since under the lock no other deploy writes there. A young check-mode push (check mode
        takes no lock) is left, and so is an entry that is not a directory, named in a warning. The same as
        M(cutover.web.prune_releases) with O(cutover.web.prune_releases#module:staging_all=true), in the run that
        takes the lock.
      - First it waits (up to 300 seconds, then it warns and goes on) for a process of an earlier run still deleting
        in C(.cutover/trash/) (O(cutover.web.go_live#module:delete_in_background)), so that the push that follows
        never overlaps that deletion.
    type: bool
    default: false
  vhost_record:
    description:
      - With O(state=present), also tell, in the same module run, whether the Apache site of the
        P(cutover.web.apache_vhost#role) role is as its last set-up left it, as M(cutover.web.vhost_fingerprint)
        with O(cutover.web.vhost_fingerprint#module:state=check) does with these options (RV(vhost_record)), so that
        a deploy that sets the site up skips the set-up without a module run of its own. Read-only, before the
        lock is asked.
seealso:
  - module: cutover.web.prune_releases
    description: Removes old releases and staging leftovers, and gives the lock back.
  - module: cutover.web.release_info
    description: Reports the current lock holder.
"""

EXAMPLES = r"""
---
- name: Take the deploy lock
  cutover.web.deploy_lock:
    root: /srv/www/shop
    owner: "{{ lookup('ansible.builtin.env', 'USER') }}@{{ lookup('ansible.builtin.pipe', 'hostname') }}"
    run_id: "{{ cutover_run_id }}"
    ttl: 1800

- name: Make the deploy root if need be, and take its lock, in one task
  cutover.web.deploy_lock:
    root: /srv/www/shop
    root_mode: "0755"
    owner: deploy@ci
    run_id: "{{ cutover_run_id }}"

- name: Release it
  cutover.web.deploy_lock:
    root: /srv/www/shop
    owner: "{{ lookup('ansible.builtin.env', 'USER') }}@{{ lookup('ansible.builtin.pipe', 'hostname') }}"
    run_id: "{{ cutover_run_id }}"
    state: absent
"""

RETURN = r"""
lock:
  description: The lock file.
  returned: always
  type: str
  sample: /srv/www/shop/.cutover/deploy.lock
root_changed:
  description: Whether O(root_mode) made the root or changed its mode (or would, in check mode).
  returned: always
  type: bool
holder:
  description: The lock record after the task (owner, run_id, host, pid, since, expires), or null.
  returned: always
  type: dict
took_over:
  description: The record of a lock that was taken over (expired, not valid, or held by a dead run), or null.
  returned: always
  type: dict
removed_staging:
  description: The staging leftovers removed by O(clear_staging) (or that would be, in check mode).
  returned: when O(clear_staging) is true and O(state=present)
  type: list
  elements: str
  sample: [push-20261204T101010123456Z-77.1764842210.0.ansible]
skipped_staging:
  description: Entries of the staging area that O(clear_staging) left in place because they are not directories, each with why.
  returned: when O(clear_staging) is true and O(state=present)
  type: dict
  sample: {notes.txt: not a directory}
vhost_record:
  description: With O(vhost_record), what M(cutover.web.vhost_fingerprint) with O(cutover.web.vhost_fingerprint#module:state=check) returns.
  returned: when O(vhost_record) is given and O(state=present)
  type: dict
  contains:
    unchanged:
      description: Whether the record exists, was made with the same settings, and the state found now is the one recorded.
      type: bool
    remembered:
      description: The values the record remembers, or an empty dict when there is none.
      type: dict
    fingerprint:
      description: The digest found now, or null when there is no record.
      type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.cutover.web.plugins.module_utils._fingerprint import RECORD_OPTION, check_record

from ansible_collections.cutover.web.plugins.module_utils._lock import CONTROLLER_OPTIONS, DEFAULT_TTL, acquire, check_ttl, release
from ansible_collections.cutover.web.plugins.module_utils._module import octal_mode, run
from ansible_collections.cutover.web.plugins.module_utils._prune import clear_staging, wait_for_deletion


def act(module, layout):
    p = module.params
    root_changed = False
    if p['state'] == 'present':
        # A record that cannot be checked (damaged, a probe's regular expression wrong) is one that says "set up again".
        vhost_record = check_record(p['vhost_record']['path'], p['vhost_record']['settings']) if p['vhost_record'] else None
        mode = octal_mode(p['root_mode'], 'root_mode', 'the root %s' % layout.root, layout.root)
        check_ttl(layout, p['ttl'])  # before the root is made: bad input changes nothing
        if mode is not None:
            root_changed = layout.make_root(mode, check_mode=module.check_mode)
        if not module.check_mode:
            layout.require_root()
        result = acquire(layout, p['owner'], p['run_id'], p['ttl'], p['host'], p['pid'], check_mode=module.check_mode,
                         pid_start=p['pid_start'], take_over_dead=p['take_over_dead'], ad_hoc=p['ad_hoc'])
        warning = result.pop('warning')
        if warning:
            module.warn(warning)
        before, after = result['took_over'] or ({} if result['changed'] else result['holder']), result['holder']
        # A new root (check mode did not make it) has no staging area.
        if p['clear_staging'] and os.path.isdir(layout.root):
            if not module.check_mode:
                wait_for_deletion(layout)
            try:
                result['removed_staging'], result['skipped_staging'] = clear_staging(layout, everything=True,
                                                                                     check_mode=module.check_mode)
            except BaseException:
                # The task fails: a lock it took would be left held, with no task to give it back.
                if result['changed'] and not module.check_mode:
                    release(layout, p['owner'], p['run_id'])
                raise
        if vhost_record is not None:
            result['vhost_record'] = vhost_record
    else:
        result = release(layout, p['owner'], p['run_id'], p['force'], check_mode=module.check_mode)
        before, after = result['holder'], None
        result['holder'] = None if result['changed'] else result['holder']
    result['diff'] = {'before': '%s\n' % ((before or {}).get('owner') or 'unlocked'),
                      'after': '%s\n' % ((after or {}).get('owner') or 'unlocked')}
    if root_changed:
        result['changed'] = True
        result['diff']['after'] += 'root %s mode %s\n' % (layout.root, p['root_mode'])
    if result.get('removed_staging'):
        result['changed'] = True
        result['diff']['before'] += ''.join('staging %s\n' % name for name in result['removed_staging'])
    result['root_changed'] = root_changed
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type='path', required=True),
            state=dict(type='str', default='present', choices=['present', 'absent']),
            owner=dict(type='str', required=True),
            run_id=dict(type='str'),
            ttl=dict(type='int', default=DEFAULT_TTL),
            force=dict(type='bool', default=False),
            root_mode=dict(type='raw'),
            clear_staging=dict(type='bool', default=False),
            vhost_record=RECORD_OPTION,
            **CONTROLLER_OPTIONS
        ),
        supports_check_mode=True,
    )
    run(module, lambda layout: act(module, layout))


if __name__ == '__main__':
    main()
