# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The controller's side of the deploy lock, shared by the action plugins of the modules that take it.

A module runs on the target and cannot see the controller's processes, so the lock records who runs
the play as seen from here: this host's name, the pid of ansible-playbook (the parent of the worker
process an action plugin runs in) and that process's start. When the module refuses because the lock
is held, and the holder is a run of THIS controller host whose ansible-playbook is gone (or the pid
now belongs to a process that started at another time), the module is run once more naming that run
in ``take_over_dead``: it then takes the lock over, if the lock still holds that run's record, and
warns. A holder on another host is never guessed dead.
"""

from __future__ import annotations

import os
import shlex
import socket

from ansible import context
from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash

from ansible_collections.cutover.web.plugins.module_utils._lock import holder_is_dead, process_start


def identity():
    """This controller as the lock records it: host name, ansible-playbook's pid and its start."""
    pid = os.getppid()  # an action plugin runs in a worker forked by the ansible-playbook process
    return {'host': socket.gethostname(), 'pid': pid, 'pid_start': process_start(pid)}


def ad_hoc_prefix(task, play_context, task_vars):
    """The start of an ``ansible`` command line that reaches the target of ``task``, to paste into a shell."""
    words = ['ansible']
    for source in context.CLIARGS.get('inventory') or ():
        words += ['-i', os.path.abspath(source) if os.path.exists(source) else source]
    words.append(task.delegate_to or task_vars.get('inventory_hostname') or 'all')
    if play_context.become:
        words.append('--become')
        if play_context.become_user and play_context.become_user != 'root':
            words += ['--become-user', play_context.become_user]
    return ' '.join(shlex.quote(w) for w in words)


class LockActionBase(ActionBase):
    """Run ``MODULE`` with the controller's identity in its lock options, and take over a dead holder's lock.

    ``LOCK_OPTION`` names the module option that holds the lock options (a dict), or is None when
    they are the module's own options (deploy_lock).
    """

    MODULE = None
    LOCK_OPTION = None

    def run(self, tmp=None, task_vars=None):
        self._supports_check_mode = True
        result = super(LockActionBase, self).run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        args = dict(self._task.args)
        try:
            before = self.before_module(args, task_vars)
            if before is not None:
                return merge_hash(result, self.after_module(before))
            lock = args
            if self.LOCK_OPTION is not None:
                lock = args.get(self.LOCK_OPTION)
                lock = dict(lock) if isinstance(lock, dict) else None
                if lock is not None:
                    args[self.LOCK_OPTION] = lock
            answer = self.execute_locked(self.MODULE, args, lock, task_vars)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return merge_hash(result, self.after_module(answer))

    def execute_locked(self, module, args, lock, task_vars):
        """Run ``module`` with ``args``, whose lock options are the dict ``lock`` (or None: no lock), filled in here with
        this controller's identity; once more, taking the lock over, when a dead run of this host holds it."""
        me = identity()
        if lock is not None:
            if lock.get('pid') is None:
                lock['pid'] = me['pid']
                if me['pid_start'] is not None:
                    lock.setdefault('pid_start', me['pid_start'])
            lock.setdefault('host', me['host'])
            lock.setdefault('ad_hoc', ad_hoc_prefix(self._task, self._play_context, task_vars))
        answer = self._execute_module(module_name=module, module_args=args, task_vars=task_vars)
        if (lock is not None and answer.get('failed') and answer.get('lock_busy')
                and lock.get('take_over_dead') is None and holder_is_dead(answer.get('holder'), me['host'])):
            lock['take_over_dead'] = answer['holder']['run_id']
            answer = self._execute_module(module_name=module, module_args=args, task_vars=task_vars)
        return answer

    def before_module(self, args, task_vars):
        """What runs on the controller before the module, given its options (``args``, which it may change): None,
        or the task's result (given to after_module), and the module does not run."""
        return None

    def after_module(self, answer):
        """The task's result, from the module's (or before_module's, when the module did not run)."""
        return answer
