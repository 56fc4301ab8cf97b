# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The push of a directory of the controller into the deploy root's staging area, run by an action plugin before its
module (cutover.web.go_live's ``push`` option): ansible.posix.synchronize's action, run as a task of its own would run
it, with this task's connection, variables and privilege escalation, so that a deploy pushes and goes live in one task.

Only a new directory directly in ``<root>/.cutover/staging`` is pushed into, and only from a directory of the
controller: anything else is refused, having run nothing. A push that fails leaves what it wrote for the caller to
remove (its result names the directory), as a synchronize task would.
"""

from __future__ import annotations

import os
import posixpath
import re

from ansible.errors import AnsibleError
from ansible.module_utils.parsing.convert_bool import boolean

STAGING = '.cutover/staging'
PLAIN = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]*$')


def refusal(root, release, push):
    """Why the push cannot run, in one sentence naming the path, or None. ``release`` is go_live's release option."""
    if not isinstance(root, str) or not root.startswith('/') or posixpath.normpath(root) != root.rstrip('/') or '//' in root:
        return 'The push needs root to be a normalized absolute path (it is "%s").' % (root,)
    root = root.rstrip('/') or '/'
    if not isinstance(push, dict) or not isinstance(push.get('src'), str) or not push['src']:
        return 'The push into %s needs push.src, the directory of the controller to push.' % root
    unknown = sorted(set(push) - {'src', 'checksum', 'rsync_opts'})
    if unknown:
        return 'The push into %s does not take push.%s.' % (root, ', push.'.join(unknown))
    opts = push.get('rsync_opts') or []
    if not isinstance(opts, list) or not all(isinstance(o, str) for o in opts):
        return 'The push into %s needs push.rsync_opts to be a list of strings.' % root
    dest = release.get('src') if isinstance(release, dict) else None
    staging = posixpath.join(root, STAGING)
    if (not isinstance(dest, str) or posixpath.dirname(dest) != staging
            or not PLAIN.match(posixpath.basename(dest)) or posixpath.normpath(dest) != dest):
        return ('The push into %s goes into a new directory of %s, named by release.src, which is "%s": a directory '
                'there with a plain name is needed.' % (root, staging, dest))
    if not boolean(release.get('move_source', False), strict=False):
        return ('The push into %s needs release.move_source=true: the pushed directory %s becomes the release.'
                % (root, dest))
    return None


def source(action, src):
    """The controller's directory ``src``, found as synchronize finds it (relative: the role's or play's files)."""
    path = os.path.expanduser(src)
    if not os.path.isabs(path):
        try:
            path = action._find_needle('files', path)
        except AnsibleError:
            path = os.path.abspath(path)
    if not os.path.isdir(path):
        raise AnsibleError('The push source %s is not a directory of the controller.' % src)
    return path


def push(action, push, dest, task_vars):
    """Run ansible.posix.synchronize from ``action``'s task: ``push['src']`` (a directory of the controller) into ``dest``
    on the target. Its result, with ``push`` saying what was pushed where."""
    src = source(action, push['src'])
    task = action._task.copy()
    task.args = dict(src=src.rstrip('/') + '/', dest=dest + '/', archive=True, checksum=boolean(push.get('checksum', False), strict=False),
                     # Into a scratch directory nobody serves: holding each file back to the end of the transfer
                     # (synchronize's default) protects nothing and costs a second rename per file.
                     delay_updates=False, rsync_opts=list(push.get('rsync_opts') or []))
    # synchronize may turn privilege escalation off, and point the module's interpreter at the controller's, for
    # its own run: on copies, so that the module run after it is not changed.
    sync = action._shared_loader_obj.action_loader.get(
        'ansible.posix.synchronize', task=task, connection=action._connection, play_context=action._play_context.copy(),
        loader=action._loader, templar=action._templar, shared_loader_obj=action._shared_loader_obj)
    if sync is None:
        raise AnsibleError('The push of %s needs the ansible.posix collection (its synchronize), which is not installed.'
                           % push['src'])
    try:
        answer = sync.run(task_vars=dict(task_vars))
    finally:
        sync.cleanup()
    answer = dict(answer)
    answer['push'] = dict(src=push['src'], dest=dest, changed=bool(answer.get('changed')))
    return answer
