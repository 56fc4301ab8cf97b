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
    complete, then hardlinked into place, which fails if it exists) and records owner, run id, host, pid and
    the time it was taken and expires.
  - Taking a lock held by someone else fails with a message naming the holder, unless it has expired
    (O(ttl)); an expired lock is taken over and the old holder is returned in RV(took_over).
author:
  - cutover.web maintainers (@cutover-web)
extends_documentation_fragment:
  - cutover.web._root
  - cutover.web._attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  safe_file_operations:
    support: full
  idempotent:
    support: full
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
    default: 3600
  host:
    description:
      - The host the deploy runs from, recorded in the lock. Defaults to the target's host name.
    type: str
  pid:
    description:
      - The process id of the deploy, recorded in the lock. Defaults to the module's parent process.
    type: int
  force:
    description:
      - With O(state=absent), remove the lock even if someone else holds it.
    type: bool
    default: false
seealso:
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
holder:
  description: The lock record after the task (owner, run_id, host, pid, since, expires), or null.
  returned: always
  type: dict
took_over:
  description: The record of an expired lock that was taken over, or null.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.cutover.web.plugins.module_utils._lock import acquire, release
from ansible_collections.cutover.web.plugins.module_utils._module import run


def act(module, layout):
    p = module.params
    if p['state'] == 'present':
        if not module.check_mode:
            layout.require_root()
        result = acquire(layout, p['owner'], p['run_id'], p['ttl'], p['host'], p['pid'], check_mode=module.check_mode)
        if result['took_over']:
            module.warn('Took over the expired deploy lock %s.' % layout.lock_file)
        before, after = result['took_over'] or ({} if result['changed'] else result['holder']), result['holder']
    else:
        result = release(layout, p['owner'], p['run_id'], p['force'], check_mode=module.check_mode)
        before, after = result['holder'], None
        result['holder'] = None if result['changed'] else result['holder']
    result['diff'] = {'before': '%s\n' % ((before or {}).get('owner') or 'unlocked'),
                      'after': '%s\n' % ((after or {}).get('owner') or 'unlocked')}
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type='path', required=True),
            state=dict(type='str', default='present', choices=['present', 'absent']),
            owner=dict(type='str', required=True),
            run_id=dict(type='str'),
            ttl=dict(type='int', default=3600),
            host=dict(type='str'),
            pid=dict(type='int'),
            force=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    run(module, lambda layout: act(module, layout))


if __name__ == '__main__':
    main()
