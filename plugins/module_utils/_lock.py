# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The deploy lock: one deploy at a time per root.

The lock file is written complete under a temporary name and then hardlinked to
``.cutover/deploy.lock``; link(2) fails when the name exists, so taking the lock is atomic and a
reader never sees a half-written holder. The holder record names owner, run id, host, pid and the
time taken and expiry (the TTL); an expired lock may be taken over, and the takeover is reported.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time

from ansible_collections.cutover.web.plugins.module_utils._releases import CutoverError, fsync_dir, iso


def read_lock(layout):
    try:
        with open(layout.lock_file, 'rb') as f:
            data = f.read()
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise CutoverError('Cannot read the lock %s: %s.' % (layout.lock_file, exc.strerror), path=layout.lock_file)
    try:
        holder = json.loads(data.decode('utf-8', 'replace'))
        if isinstance(holder, dict):
            return holder
    except ValueError:
        pass
    return {'owner': '(unreadable lock file)', 'expires_epoch': 0}


def describe(holder):
    return '%s (run %s, host %s, pid %s, since %s)' % (
        holder.get('owner'), holder.get('run_id') or '-', holder.get('host'), holder.get('pid'), holder.get('since'))


def _same_holder(holder, owner, run_id):
    return holder.get('owner') == owner and holder.get('run_id') == run_id


def _takeover_guard(layout, stale_after=60):
    """Make the directory that lets one process at a time replace an expired lock; return its path."""
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


def check_ttl(layout, ttl):
    if ttl < 1:
        raise CutoverError('ttl is %d for the lock of %s, but it must be at least 1 second.' % (ttl, layout.root),
                           path=layout.root)


def acquire(layout, owner, run_id=None, ttl=3600, host=None, pid=None, check_mode=False, now=None):
    check_ttl(layout, ttl)
    now = time.time() if now is None else now
    holder = read_lock(layout)
    result = {'changed': False, 'lock': layout.lock_file, 'holder': holder, 'took_over': None}
    if holder is not None:
        if _same_holder(holder, owner, run_id):
            return result
        if holder.get('expires_epoch', 0) > now:
            raise CutoverError('The deploy lock %s is held by %s until %s.'
                               % (layout.lock_file, describe(holder), holder.get('expires')), path=layout.lock_file,
                               holder=holder)
        result['took_over'] = holder
    record = {
        'owner': owner, 'run_id': run_id, 'host': host or socket.gethostname(), 'pid': pid or os.getppid(),
        'since': iso(now), 'since_epoch': round(now, 3), 'expires': iso(now + ttl), 'expires_epoch': round(now + ttl, 3),
    }
    result.update(changed=True, holder=record)
    if check_mode:
        return result
    layout.ensure_dirs()
    tmp = '%s.%d.tmp' % (layout.lock_file, os.getpid())
    with open(tmp, 'w') as f:
        json.dump(record, f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    try:
        if result['took_over'] is not None:
            # Only one taker at a time (mkdir is atomic), and only if the stale lock is still the one we read.
            guard = _takeover_guard(layout)
            try:
                if read_lock(layout) != holder:
                    raise CutoverError('The deploy lock %s changed hands while an expired lock was taken over; try '
                                       'again.' % layout.lock_file, path=layout.lock_file)
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
    return result


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
        os.unlink(layout.lock_file)
        fsync_dir(layout.state_dir)
    return result


# The ``lock`` option of the modules that can hold the lock for their own work (documented by the
# cutover.web._lock doc fragment).
LOCK_OPTION = dict(type='dict', options=dict(
    owner=dict(type='str', required=True),
    run_id=dict(type='str'),
    ttl=dict(type='int', default=600),
    give_back=dict(type='bool', default=False),
))


@contextlib.contextmanager
def holding(layout, owner, run_id=None, ttl=3600, give_back=False, check_mode=False):
    """Hold the deploy lock for the body of a ``with`` statement.

    A lock another run holds fails before the body runs. A lock this owner and run id already hold
    (a caller that took it for longer work) is left held unless ``give_back`` (the last step of
    that work); one taken here is given back afterwards. Either is given back also when the body
    fails.
    """
    layout.require_root()
    taken = acquire(layout, owner, run_id, ttl, check_mode=check_mode)
    try:
        yield taken
    finally:
        if (taken['changed'] or give_back) and not check_mode:
            release(layout, owner, run_id)


def with_lock_option(lock, layout, act, check_mode=False):
    """Return ``act(layout)``, run under the module option ``lock`` (a dict, or None for no lock).

    The result tells in ``lock_held`` whether this run still holds the lock after the task.
    """
    if lock is None:
        return act(layout)
    with holding(layout, lock['owner'], lock['run_id'], lock['ttl'], lock['give_back'], check_mode) as taken:
        result = act(layout)
    result['lock_held'] = not (taken['changed'] or lock['give_back'])
    return result
