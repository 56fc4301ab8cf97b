# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of cutover.web.go_live: with ``push``, the push of the release source from the controller first
(plugin_utils/_push.py); then the module, with the deploy lock's controller side (plugin_utils/_controller.py)."""

from __future__ import annotations

from ansible.errors import AnsibleError

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
        if why is None:
            try:
                src = source(self, options['src'])
            except AnsibleError as exc:
                why = str(exc.message)
        if why is None:
            # rsync would follow a symlink on its way into the staging area: the target is looked at first.
            why, compared = look(self, root, args['release']['src'], args['lock'], options.get('rsync_opts') or [])
        if why is not None:
            return dict(failed=True, changed=False, step='push', msg=why)
        if self._task.check_mode:
            return dict(changed=True, push=dict(src=options['src'], dest=args['release']['src'], changed=True),
                        msg='In check mode nothing is pushed into %s, and which release would go live is not known.'
                        % root)
        try:
            pushed = push(self, options, src, args['release']['src'], task_vars, compared)
        except AnsibleError as exc:
            return dict(failed=True, changed=False, step='push', msg=str(exc.message))
        if pushed.get('failed'):
            why = str(pushed.get('msg', '')).strip()
            return dict(failed=True, changed=False, step='push', push=pushed['push'], rc=pushed.get('rc'),
                        msg='The push of %s into %s failed: %s' % (options['src'], args['release']['src'], why))
        self._pushed = pushed['push']
        return None

    def after_module(self, answer):
        pushed = getattr(self, '_pushed', None)
        if pushed is not None:
            answer['push'] = pushed
        return answer
