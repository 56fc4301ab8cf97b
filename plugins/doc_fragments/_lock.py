# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):

    # The lock option of modules that can hold the deploy lock for their own work.
    DOCUMENTATION = r"""
options:
  lock:
    description:
      - Hold the deploy lock of O(root) (the one M(cutover.web.deploy_lock) takes) for this task, so that no
        separate lock tasks are needed around it. A lock held by another run fails the task before anything
        changes. A lock this task takes is given back after it, also when the task fails.
      - A lock already held by the same O(lock.owner) and O(lock.run_id) (taken for longer work) is left
        held, unless O(lock.give_back=true).
      - A lock is taken over, with a warning, as M(cutover.web.deploy_lock) takes it over - expired, not valid,
        or held by a run whose C(ansible-playbook) ran on this controller host and is gone, which the action
        plugin of this module tells - and a refusal names the C(ansible) command that frees the lock.
    type: dict
    suboptions:
      owner:
        description:
          - Who holds the lock.
        type: str
        required: true
      run_id:
        description:
          - Identifies the run holding the lock.
        type: str
      ttl:
        description:
          - Seconds after which the lock counts as stale, should this task die holding it. At least 1.
        type: int
        default: 1800
      give_back:
        description:
          - Give the lock back after the task also when this run held it before, as the last step of a run
            that took it with M(cutover.web.deploy_lock). It is given back also when the task fails, except by
            M(cutover.web.go_live), which keeps it held then, for the caller to mark the release or switch back under it.
        type: bool
        default: false
      host:
        description:
          - The controller's host name, recorded in the lock. Set by the action plugin.
        type: str
      pid:
        description:
          - The pid of the controller's C(ansible-playbook), recorded in the lock. Set by the action plugin.
        type: int
      pid_start:
        description:
          - When the process O(lock.pid) started, so that a reused pid is not taken for the holder. Set by the
            action plugin; not for use by hand.
        type: str
      take_over_dead:
        description:
          - The run id of a holder the action plugin found dead; its lock is taken over if it still holds that
            run's record. Not for use by hand.
        type: str
      ad_hoc:
        description:
          - The start of an C(ansible) command line that reaches this target, used to name the command that
            frees a lock held by another run. Set by the action plugin.
        type: str
"""
