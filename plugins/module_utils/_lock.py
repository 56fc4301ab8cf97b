# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The deploy lock: one deploy at a time per root.

The lock file is written complete under a temporary name and then hardlinked to
``.cutover/deploy.lock``; link(2) fails when the name exists, so taking the lock is atomic and a
reader never sees a half-written holder. The holder record names owner, run id, the controller's
host name, the pid of its ansible-playbook and that process's start (``pid_start``, so that a
reused pid is not taken for the holder), the time taken and the expiry (the TTL).

A lock is taken over, with a warning, when it has expired, when its record is not valid (a torn or
hand-edited file: every deploy would fail on it otherwise), or when the caller names its run as dead
(``take_over_dead``). Only the controller can tell a dead holder (the action plugins of this
collection do, for holders on their own host); here that word is taken, but only for the record
still in the lock. Any other refusal names the command that frees the lock.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shlex
import socket
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.warnings import warn

from ansible_collections.cutover.web.plugins.module_utils._module import run
from ansible_collections.cutover.web.plugins.module_utils._releases import CutoverError, fsync_dir, iso

# The fields of a holder record: name, type, and whether it may be null or missing.
_FIELDS = (
    ('owner', str, False), ('run_id', str, True), ('host', str, True), ('pid', int, True),
    ('pid_start', str, True), ('since', str, True), ('since_epoch', float, True), ('expires', str, True),
    ('expires_epoch', float, False),
)


# How long a lock is held (seconds) when the caller does not say: long enough for a big site's first
# deploy; a lock whose holder died is taken over at once anyway when it is this controller's.
DEFAULT_TTL = 1800


def _field_problem(record):
    """What is wrong with the first field of ``record`` that is not valid (``expires_epoch is "soon", not a number``),
    or None."""
    for name, kind, optional in _FIELDS:
        value = record.get(name)
        if value is None:
            if optional:
                continue
            return '%s is missing' % name
        if kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                return '%s is %s, not a number' % (name, json.dumps(value, ensure_ascii=False))
        elif kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                return '%s is %s, not a whole number' % (name, json.dumps(value, ensure_ascii=False))
        elif not isinstance(value, str):
            return '%s is %s, not a string' % (name, json.dumps(value, ensure_ascii=False))
    return None


def read_lock(layout):
    """The holder record of the lock, or None when there is no lock.

    A record that is not valid comes back as ``{'invalid': cause, 'raw': text}``: it counts as expired.
    """
    try:
        with open(layout.lock_file, 'rb') as f:
            data = f.read()
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise CutoverError('Cannot read the lock %s: %s.' % (layout.lock_file, exc.strerror), path=layout.lock_file)
    text = data.decode('utf-8', 'replace')
    try:
        holder = json.loads(text)
    except ValueError:
        return {'invalid': 'it is not JSON', 'raw': text[:200]}
    if not isinstance(holder, dict):
        return {'invalid': 'it is not a JSON object', 'raw': text[:200]}
    problem = _field_problem(holder)
    if problem:
        return {'invalid': problem, 'raw': text[:200]}
    return holder


def describe(holder):
    if holder.get('invalid'):
        return 'an invalid record (%s)' % holder['invalid']
    return '%s (run %s, host %s, pid %s, since %s)' % (
        holder.get('owner'), holder.get('run_id') or '-', holder.get('host') or '-', holder.get('pid') or '-',
        holder.get('since') or '-')


# -- the liveness rule, applied on the controller by the action plugins (plugin_utils/_controller.py) --
def _proc_stat(pid):
    """The fields of /proc/<pid>/stat after the command name (field 3, the state, first), or None."""
    try:
        with open('/proc/%d/stat' % pid, 'rb') as f:
            stat = f.read().decode('ascii', 'replace')
    except (OSError, ValueError):
        return None
    # The command name (field 2) is in parentheses and may hold spaces.
    fields = stat[stat.rfind(')') + 2:].split()
    return fields if len(fields) >= 20 else None


def process_start(pid):
    """When process ``pid`` started, as 'BOOT_ID:TICKS' (stable for the life of that process), or None.

    None when there is no such process or /proc cannot tell (not Linux).
    """
    fields = _proc_stat(pid)
    try:
        with open('/proc/sys/kernel/random/boot_id', 'rb') as f:
            boot_id = f.read().decode('ascii', 'replace').strip()
    except OSError:
        return None
    return None if fields is None else '%s:%s' % (boot_id, fields[19])  # field 22, the start time


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno != errno.ESRCH  # EPERM: it exists, under another user
    return True


def holder_is_dead(holder, host):
    """Whether the lock ``holder`` (a record read from the lock) is a run on ``host`` that is gone.

    Gone: no process has its pid, or the one that has is a zombie or started at another time than the
    holder (``pid_start``: the pid was reused). Only a record made by this collection's action plugins
    can tell (pid and pid_start), and only on the host that ran it; anything else is not known dead.
    """
    if not isinstance(holder, dict) or holder.get('invalid') or holder.get('host') != host:
        return False
    pid, pid_start, run_id = holder.get('pid'), holder.get('pid_start'), holder.get('run_id')
    if not isinstance(pid, int) or isinstance(pid, bool) or pid < 1 or not pid_start or not run_id:
        return False
    if not _pid_alive(pid):
        return True
    fields = _proc_stat(pid)
    if fields is None:
        return False  # a live pid /proc does not show (say, mounted with hidepid) is not known dead
    return fields[0] in ('Z', 'X') or process_start(pid) != pid_start


def free_command(layout, holder, ad_hoc=None):
    """The ``ansible`` command that removes the lock ``holder`` holds, to paste into a shell.

    ``ad_hoc`` is the start of a command line that reaches the target (``ansible -i INV HOST -b``);
    the action plugins pass it in. Without it, the target's host name stands for the host.
    """
    args = {'root': layout.root, 'owner': holder.get('owner') or 'admin', 'state': 'absent', 'force': True}
    return '%s -m cutover.web.deploy_lock -a %s' % (
        ad_hoc or 'ansible %s' % shlex.quote(socket.gethostname()),
        shlex.quote(json.dumps(args, ensure_ascii=False, sort_keys=True)))


def _same_holder(holder, owner, run_id):
    return not holder.get('invalid') and holder.get('owner') == owner and holder.get('run_id') == run_id


def _takeover_guard(layout, stale_after=60):
    """Make the directory that lets one process at a time replace a lock; return its path."""
    guard = layout.lock_file + '.takeover'
    for attempt in (1, 2):
        try:
            os.mkdir(guard)
            return guard
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise
        try:
            # Left by a taker that died between mkdir and rmdir.
            if attempt == 1 and time.time() - os.stat(guard).st_mtime > stale_after:
                os.rmdir(guard)
                continue
        except OSError:
            continue
        break
    raise CutoverError('The deploy lock %s is being taken over by another run right now; try again.'
                       % layout.lock_file, path=layout.lock_file)


def _takeover_warning(layout, holder, why):
    if why == 'invalid':
        return ('The deploy lock %s held no valid record (%s), so it was taken over.'
                % (layout.lock_file, holder['invalid']))
    if why == 'dead':
        return ('Took over the deploy lock %s from %s, whose ansible-playbook (pid %s on %s) is no longer running.'
                % (layout.lock_file, describe(holder), holder.get('pid'), holder.get('host')))
    return 'Took over the deploy lock %s from %s, which expired at %s.' % (
        layout.lock_file, describe(holder), holder.get('expires') or iso(holder['expires_epoch']))


def check_ttl(layout, ttl):
    if ttl < 1:
        raise CutoverError('ttl is %d for the lock of %s, but it must be at least 1 second.' % (ttl, layout.root),
                           path=layout.root)


def acquire(layout, owner, run_id=None, ttl=DEFAULT_TTL, host=None, pid=None, check_mode=False, now=None, pid_start=None,
            take_over_dead=None, ad_hoc=None):
    """Take the lock for ``owner`` and ``run_id``, or fail naming the holder and the command that frees it.

    ``result['took_over']`` is the record replaced (expired, invalid, or that of the dead run whose id
    is ``take_over_dead``), and ``result['warning']`` the sentence that says so.
    """
    check_ttl(layout, ttl)
    now = time.time() if now is None else now
    holder = read_lock(layout)
    result = {'changed': False, 'lock': layout.lock_file, 'holder': holder, 'took_over': None, 'warning': None}
    if holder is not None:
        if _same_holder(holder, owner, run_id):
            return result
        if holder.get('invalid'):
            why = 'invalid'
        elif holder['expires_epoch'] <= now:
            why = 'expired'
        elif take_over_dead is not None and holder.get('run_id') == take_over_dead:
            why = 'dead'
        else:
            raise CutoverError('The deploy lock %s is held by %s until %s; once that run is surely gone, free the '
                               'lock with: %s' % (layout.lock_file, describe(holder), holder.get('expires'),
                                                  free_command(layout, holder, ad_hoc)),
                               path=layout.lock_file, holder=holder, lock_busy=True)
        result.update(took_over=holder, warning=_takeover_warning(layout, holder, why))
    record = {
        'owner': owner, 'run_id': run_id, 'host': host or socket.gethostname(), 'pid': pid,
        'since': iso(now), 'since_epoch': round(now, 3), 'expires': iso(now + ttl), 'expires_epoch': round(now + ttl, 3),
    }
    if pid_start is not None:
        record['pid_start'] = pid_start
    result.update(changed=True, holder=record)
    if not check_mode:
        layout.ensure_dirs()
        try:
            _write(layout, record, holder if result['took_over'] is not None else None)
        except OSError as exc:
            raise CutoverError('Cannot write the deploy lock %s: %s.' % (layout.lock_file, exc.strerror),
                               path=layout.lock_file)
    return result


def _write(layout, record, replaces):
    """Put ``record`` in the lock: a new lock when ``replaces`` is None, else in place of that record."""
    tmp = '%s.%d.tmp' % (layout.lock_file, os.getpid())
    try:
        with open(tmp, 'w') as f:
            json.dump(record, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        if replaces is not None:
            # Only one taker at a time (mkdir is atomic), and only if the lock is still the one we read.
            guard = _takeover_guard(layout)
            try:
                if read_lock(layout) != replaces:
                    raise CutoverError('The deploy lock %s changed hands while it was taken over; try again.'
                                       % layout.lock_file, path=layout.lock_file)
                os.rename(tmp, layout.lock_file)
            finally:
                os.rmdir(guard)
        else:
            try:
                os.link(tmp, layout.lock_file)
            except OSError as exc:
                if exc.errno != errno.EEXIST:
                    raise
                raise CutoverError('The deploy lock %s was taken by %s a moment ago.'
                                   % (layout.lock_file, describe(read_lock(layout) or {})), path=layout.lock_file)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    fsync_dir(layout.state_dir)


def release(layout, owner, run_id=None, force=False, check_mode=False):
    holder = read_lock(layout)
    result = {'changed': False, 'lock': layout.lock_file, 'holder': holder, 'took_over': None}
    if holder is None:
        return result
    if not force and not _same_holder(holder, owner, run_id):
        raise CutoverError('The deploy lock %s is held by %s, not by %s (run %s); set force to remove it.'
                           % (layout.lock_file, describe(holder), owner, run_id or '-'), path=layout.lock_file,
                           holder=holder)
    result['changed'] = True
    if not check_mode:
        try:
            os.unlink(layout.lock_file)
            fsync_dir(layout.state_dir)
        except OSError as exc:
            raise CutoverError('Cannot remove the deploy lock %s: %s.' % (layout.lock_file, exc.strerror),
                               path=layout.lock_file)
    return result


# Who takes the lock, as the action plugins of this collection fill it in on the controller (documented
# by the deploy_lock module and, inside ``lock``, by the cutover.web._lock doc fragment).
CONTROLLER_OPTIONS = dict(
    host=dict(type='str'),
    pid=dict(type='int'),
    pid_start=dict(type='str'),
    take_over_dead=dict(type='str'),
    ad_hoc=dict(type='str'),
)

# The ``lock`` option of the modules that can hold the lock for their own work (documented by the
# cutover.web._lock doc fragment).
LOCK_OPTION = dict(type='dict', options=dict(
    owner=dict(type='str', required=True),
    run_id=dict(type='str'),
    ttl=dict(type='int', default=DEFAULT_TTL),
    give_back=dict(type='bool', default=False),
    **CONTROLLER_OPTIONS
))


@contextlib.contextmanager
def holding(layout, owner, run_id=None, ttl=DEFAULT_TTL, give_back=False, check_mode=False, keep_on_failure=False,
            **controller):
    """Hold the deploy lock for the body of a ``with`` statement.

    A lock another run holds fails before the body runs. A lock this owner and run id already hold
    (a caller that took it for longer work) is left held unless ``give_back`` (the last step of
    that work); one taken here is given back afterwards. Either is given back also when the body
    fails, unless ``keep_on_failure``: then the lock stays held, taken here or before, for the caller
    to act on the failure under it. A body that stopped short of the work, for the caller to do something
    first and come back under the same lock, sets ``keep`` in the dict it is given: the lock stays held.
    ``controller`` is passed on to :func:`acquire` (host, pid, pid_start, take_over_dead, ad_hoc).
    """
    layout.require_root()
    taken = acquire(layout, owner, run_id, ttl, check_mode=check_mode, **controller)
    try:
        yield taken
    except BaseException:
        if (taken['changed'] or give_back) and not keep_on_failure and not check_mode:
            release(layout, owner, run_id)
        raise
    if (taken['changed'] or give_back) and not taken.get('keep') and not check_mode:
        release(layout, owner, run_id)


def with_lock_option(lock, layout, act, check_mode=False, keep_on_failure=False):
    """Return ``act(layout)``, run under the module option ``lock`` (a dict, or None for no lock).

    The result tells in ``lock_held`` whether this run still holds the lock after the task; a lock
    taken over is said in a warning. With ``keep_on_failure``, the lock stays held when ``act`` fails
    (raising a CutoverError whose details then say ``lock_held``), so that a caller acts on the failure
    under it: a lock this run held before, and one taken here when the failure changed something
    (the error's ``changed`` detail). A result with ``keep_lock`` true (taken out of it) says that ``act`` stopped
    short of its work for the caller to do something under the lock first: the lock stays held.
    """
    if lock is None:
        result = act(layout)
        result.pop('keep_lock', None)
        return result
    controller = dict((k, lock.get(k)) for k in CONTROLLER_OPTIONS)
    with holding(layout, lock['owner'], lock['run_id'], lock['ttl'], lock['give_back'], check_mode, keep_on_failure,
                 **controller) as taken:
        if taken['warning']:
            warn(taken['warning'])
        try:
            result = act(layout)
        except CutoverError as exc:
            if keep_on_failure and not check_mode:
                # A lock taken here for a run that failed before changing anything is given back: there is nothing
                # to act on under it, and a refusal changes nothing.
                exc.details['lock_held'] = not taken['changed'] or bool(exc.details.get('changed'))
                if not exc.details['lock_held']:
                    release(layout, lock['owner'], lock['run_id'])
            raise
        taken['keep'] = bool(result.pop('keep_lock', False))
    result['lock_held'] = (taken['keep'] and not check_mode) or not (taken['changed'] or lock['give_back'])
    return result


def lock_module(argument_spec, **kwargs):
    """The AnsibleModule of a module that can hold the deploy lock for its own work: the options ``root`` and
    ``lock`` (LOCK_OPTION; the action plugin fills in the controller's part) and those of ``argument_spec``, in
    check mode too. ``kwargs`` go to AnsibleModule (mutually_exclusive, required_if, ...)."""
    spec = dict(root=dict(type='path', required=True), lock=LOCK_OPTION)
    spec.update(argument_spec)
    return AnsibleModule(argument_spec=spec, supports_check_mode=True, **kwargs)


def run_locked(module, act):
    """Exit ``module`` (made by lock_module) with ``act(layout)``, run under its ``lock`` option (see
    with_lock_option), or fail with one sentence."""
    run(module, lambda layout: with_lock_option(module.params['lock'], layout, act, module.check_mode))
