# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The push of a directory of the controller into the deploy root's staging area, run by an action plugin before its
module (cutover.web.go_live's ``push`` option): ansible.posix.synchronize's action, run as a task of its own would run
it, with this task's connection, variables and privilege escalation, so that a deploy pushes and goes live in one task.

Only a new directory directly in ``<root>/.cutover/staging`` is pushed into, only by a run that holds the root's
deploy lock or, with ``push.take_lock``, finds it free and has the module run take it after the push (a run that takes
the lock meanwhile clears the staging area by moving each entry into the trash at once: a push it clears is gone from
its name, never half there, and the module run refuses the missing source), and only from a directory of the
controller: anything else is refused, having pushed nothing. rsync
follows a symlink on the way to its destination, so the target is looked at first (one shell command, no module run):
the state directory and the staging area must be real directories (the rule every module of the collection goes by,
Layout.check_state), the directory pushed into must not exist, and the lock must hold this run's record. A push that
fails leaves what it wrote for the caller to remove (its result names the directory), as a synchronize task would.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shlex

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.cutover.web.plugins.module_utils._lock import describe

STAGING = '.cutover/staging'
PLAIN = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]*$')


def refusal(root, release, push, lock):
    """Why the push cannot run, in one sentence naming the path, or None. ``release`` and ``lock`` are go_live's
    options of those names."""
    if not isinstance(root, str) or not root.startswith('/') or posixpath.normpath(root) != root.rstrip('/') or '//' in root:
        return 'The push needs root to be a normalized absolute path (it is "%s").' % (root,)
    root = root.rstrip('/') or '/'
    if not isinstance(push, dict) or not isinstance(push.get('src'), str) or not push['src']:
        return 'The push into %s needs push.src, the directory of the controller to push.' % root
    unknown = sorted(set(push) - {'src', 'checksum', 'rsync_opts', 'take_lock', 'root_mode'})
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
    if not isinstance(lock, dict) or not lock.get('owner'):
        return ('The push into %s needs the lock option: only a run that holds the deploy lock, or takes it after the '
                'push (push.take_lock), pushes into the staging area %s.' % (root, staging))
    return None


# Printed by the shell command that looks at the target: "basis" when a directory rsync is to compare the push with
# exists ($3 and on), else "none", and "empty" when the staging area holds nothing (else "held"); then a line whose
# first word says what it found. Before the lock's line it waits (flock(1), up to 300 s) for a process of an earlier
# run still deleting in the trash (_prune.deferring), so that the push never overlaps that deletion.
_LOOK = """
r=$1; t=$2; shift 2; b=none; for d in "$@"; do if [ -d "$d" ]; then b=basis; fi; done; set -- "$r" "$t"
if [ -z "$(ls -A "$1/.cutover/staging" 2>/dev/null | head -c 1)" ]; then echo "$b empty"; else echo "$b held"; fi
for p in "$1/.cutover" "$1/.cutover/staging" "$1/.cutover/deploy.lock"; do
  if [ -L "$p" ]; then printf 'link %s' "$p"; exit 0; fi
done
if [ ! -d "$1/.cutover/staging" ]; then echo staging; exit 0; fi
if [ -e "$2" ] || [ -L "$2" ]; then echo exists; exit 0; fi
if [ -d "$1/.cutover/trash" ] && [ ! -L "$1/.cutover/trash" ] && command -v flock >/dev/null 2>&1; then
  flock -w 300 "$1/.cutover/trash" true 2>/dev/null
fi
if [ ! -f "$1/.cutover/deploy.lock" ]; then echo unlocked; exit 0; fi
echo lock; head -c 65536 "$1/.cutover/deploy.lock"
"""

# The rsync options that name a directory the destination's files are compared with.
_BASIS = ('--link-dest', '--compare-dest', '--copy-dest')


def basis_dirs(rsync_opts, dest):
    """The directories rsync compares the push into ``dest`` with (its --link-dest, --compare-dest and --copy-dest in
    ``rsync_opts``, split as synchronize splits them; relative ones are relative to ``dest``), or None when the options
    cannot be read."""
    try:
        words = [w for opt in rsync_opts for w in shlex.split(opt)]
    except ValueError:
        return None
    found = []
    for i, word in enumerate(words):
        for name in _BASIS:
            if word.startswith(name + '='):
                found.append(word[len(name) + 1:])
            elif word == name and i + 1 < len(words):
                found.append(words[i + 1])
    return [posixpath.join(dest, d) for d in found if d]


def look(action, root, dest, lock, rsync_opts=(), take=False):
    """``(why, compared, first)``: why the target does not let the push into ``dest`` run (see the module's docstring),
    in one sentence, or None; whether rsync will have something there to compare the push with (a directory named by
    ``rsync_opts``, basis_dirs(), exists, or the options cannot be read: then contents are compared as asked); and,
    with ``take`` (push.take_lock), whether the lock must be taken before the push (a new root has no staging area,
    another run's record is in the lock, which only cutover.web.deploy_lock judges, or the staging area holds what a run
    that was killed left, which deploy_lock clears before the push needs the space) rather than by the module run after
    it (the lock is free, the staging area empty). ``lock`` is go_live's lock option (an owner and run id)."""
    root = root.rstrip('/') or '/'
    basis = basis_dirs(rsync_opts, dest)
    command = 'sh -c %s cutover-push %s' % (shlex.quote(_LOOK), ' '.join(shlex.quote(a) for a in [root, dest] + (basis or [])))
    answer = action._low_level_execute_command(command)
    out = to_text(answer.get('stdout', ''), errors='surrogate_or_strict')
    found, _sep, out = out.partition('\n')
    found = found.split()
    if answer.get('rc') != 0 or not out.strip():
        why = to_text(answer.get('stderr', ''), errors='surrogate_or_strict').strip() or 'exit code %s' % answer.get('rc')
        return 'Cannot look at the staging area of %s before the push: %s.' % (root, why.rstrip('.')), True, False
    compared = basis is None or found[:1] == ['basis']
    if take:
        word = out.split(None, 1)[0]
        if word == 'unlocked' and found[1:] == ['empty']:
            return None, compared, False
        # What a run that was killed left in the staging area is cleared before the push, which might not fit beside it.
        if word == 'unlocked':
            return None, compared, True
        if word == 'staging' or (word == 'lock' and _refusal(root, dest, lock, out) is not None):
            return None, compared, True
    return _refusal(root, dest, lock, out), compared, False


def _refusal(root, dest, lock, out):
    """Why the push cannot run, as the shell command's output ``out`` (after its first line) says, or None."""
    word, _sep, rest = out.partition('\n') if out.startswith('lock') else out.strip().partition(' ')
    if word == 'link':
        return '%s is a symlink; cutover.web never follows links inside the root.' % rest
    staging = posixpath.join(root, STAGING)
    if word == 'staging':
        return ('The push into %s needs its staging area %s, which is not a directory: take the deploy lock first '
                '(cutover.web.deploy_lock makes it).' % (root, staging))
    if word == 'exists':
        return 'The push into %s goes into a new directory, and %s exists.' % (root, dest)
    holder = None
    if word == 'lock':
        try:
            holder = json.loads(rest)
        except ValueError:
            holder = {'invalid': 'it is not JSON'}
        if not isinstance(holder, dict):
            holder = {'invalid': 'it is not a JSON object'}
        if not holder.get('invalid') and holder.get('owner') == lock['owner'] and holder.get('run_id') == lock.get('run_id'):
            return None
    return ('The push into %s needs the deploy lock held by this run (%s, run %s), and %s: take it with '
            'cutover.web.deploy_lock first.' % (root, lock['owner'], lock.get('run_id') or '-',
                                                'it is held by %s' % describe(holder) if holder else 'it is not held'))


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


def push(action, push, src, dest, task_vars, compared=True):
    """Run ansible.posix.synchronize from ``action``'s task: ``src`` (the directory of the controller ``push['src']``
    names, as source() found it) into ``dest`` on the target. Its result, with ``push`` saying what was pushed where.
    When rsync has nothing to compare the new directory with (not ``compared``: no --link-dest directory exists, as
    on a first deploy), ``push['checksum']`` is not passed on: rsync would read every file of the source once more
    for nothing."""
    checksum = compared and boolean(push.get('checksum', False), strict=False)
    task = action._task.copy()
    task.args = dict(src=src.rstrip('/') + '/', dest=dest + '/', archive=True, checksum=checksum,
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
    answer['push'] = dict(src=push['src'], dest=dest, changed=bool(answer.get('changed')), checksum=checksum)
    return answer
