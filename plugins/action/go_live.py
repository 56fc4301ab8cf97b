# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of cutover.web.go_live: with ``push``, the push of the release source from the controller first
(plugin_utils/_push.py); then the module, with the deploy lock's controller side (plugin_utils/_controller.py).

With ``push.take_lock``, a run that does not hold the deploy lock yet pushes while the lock is free and the module run
takes it; when the root is new, the lock holds another run's record or the staging area holds leftovers,
cutover.web.deploy_lock takes it first, here,
as the deploy role's own task would (making the root, clearing the staging area), and the push follows under it."""

from __future__ import annotations

from ansible.errors import AnsibleError
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.cutover.web.plugins.plugin_utils._controller import LockActionBase
from ansible_collections.cutover.web.plugins.plugin_utils._push import look, push, refusal, source


class ActionModule(LockActionBase):
    MODULE = 'cutover.web.go_live'
    LOCK_OPTION = 'lock'

    def before_module(self, args, task_vars):
        """Push the source (``push``, taken out of the module's options): None when the module is to run, else the
        task's result (a refusal, a failed push, or check mode, where nothing is pushed)."""
        options = args.pop('push', None)
        if options is None:
            return None
        root = args.get('root')
        why = refusal(root, args.get('release'), options, args.get('lock'))
        self._take = why is None and boolean(options.get('take_lock', False), strict=False)
        if why is None:
            try:
                src = source(self, options['src'])
            except AnsibleError as exc:
                why = str(exc.message)
        if why is None:
            # rsync would follow a symlink on its way into the staging area: the target is looked at first.
            why, compared, first = look(self, root, args['release']['src'], args['lock'], options.get('rsync_opts') or [],
                                        self._take)
        if why is not None:
            return self.stopped(why)
        if self._task.check_mode:
            return dict(changed=True, push=dict(src=options['src'], dest=args['release']['src'], changed=True),
                        msg='In check mode nothing is pushed into %s, and which release would go live is not known.'
                        % root)
        if first:
            taken = self.take_lock(root, options, args['lock'], task_vars)
            if taken.get('failed'):
                return dict(taken, changed=False, step='lock', lock_held=False)
            self._locked = taken
            why, compared, _again = look(self, root, args['release']['src'], args['lock'], options.get('rsync_opts') or [])
            if why is not None:
                return self.stopped(why)
        try:
            pushed = push(self, options, src, args['release']['src'], task_vars, compared)
        except AnsibleError as exc:
            return self.stopped(str(exc.message))
        if pushed.get('failed'):
            why = str(pushed.get('msg', '')).strip()
            return self.stopped('The push of %s into %s failed: %s' % (options['src'], args['release']['src'], why),
                                push=pushed['push'], rc=pushed.get('rc'))
        self._pushed = dict(pushed['push'], locked_first=first) if self._take else pushed['push']
        return None

    def stopped(self, why, **more):
        """The task's result when the push is refused or fails (the module does not run). With push.take_lock, it says
        whether this run holds the lock (taken by deploy_lock before the push), which the caller gives back."""
        result = dict(failed=True, changed=False, step='push', msg=why, **more)
        if self._take:
            result['lock_held'] = getattr(self, '_locked', None) is not None
        return result

    def take_lock(self, root, options, lock, task_vars):
        """cutover.web.deploy_lock's result, taking the lock of ``root`` for this run (go_live's ``lock`` option),
        making the root with ``push.root_mode`` when it is new and clearing the staging area, as the deploy role's
        task does."""
        args = dict(root=root, root_mode=options.get('root_mode') or '0755', clear_staging=True,
                    **dict((k, v) for k, v in lock.items() if k != 'give_back'))
        return self.execute_locked('cutover.web.deploy_lock', args, args, task_vars)

    def after_module(self, answer):
        """The module's result, or before_module's, with what this action did before: the push, and deploy_lock's run."""
        pushed = getattr(self, '_pushed', None)
        if pushed is not None:
            answer['push'] = pushed
        # What deploy_lock did first: a root it made or leftovers it cleared are changes, a lock it took over a warning.
        locked = getattr(self, '_locked', None)
        if locked is not None:
            answer['changed'] = bool(answer.get('changed') or locked.get('root_changed') or locked.get('removed_staging'))
            answer['warnings'] = list(locked.get('warnings') or []) + list(answer.get('warnings') or [])
        # The module refused a lock another run took after the push: this run does not hold it.
        if answer.get('failed') and answer.get('lock_busy'):
            answer.update(step='lock', lock_held=False)
        return answer
