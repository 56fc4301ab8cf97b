# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The deploy lock: a real lock file, real competing processes, real dead and live holders."""

from __future__ import annotations

import json
import multiprocessing
import os
import shlex
import socket
import subprocess
import time

import pytest

from ansible_collections.cutover.web.plugins.module_utils import _lock
from ansible_collections.cutover.web.plugins.module_utils._lock import (acquire, holder_is_dead, holding, process_start,
                                                                        read_lock, release)
from ansible_collections.cutover.web.plugins.module_utils._releases import CutoverError, Layout
from ansible_collections.cutover.web.tests.unit.helpers import read, snapshot


def lock_owner(layout):
    with open(layout.lock_file) as f:
        return json.load(f)['owner']


def test_acquire_writes_the_holder(layout):
    result = acquire(layout, 'alice@ctl', run_id='run-1', ttl=600, host='ctl', pid=4242, now=1700000000)
    assert result['changed'] is True and result['took_over'] is None
    assert result['lock'] == os.path.join(layout.root, '.cutover', 'deploy.lock')
    on_disk = read_lock(layout)
    assert on_disk == result['holder']
    assert on_disk == {
        'owner': 'alice@ctl', 'run_id': 'run-1', 'host': 'ctl', 'pid': 4242,
        'since': '2023-11-14T22:13:20Z', 'since_epoch': 1700000000,
        'expires': '2023-11-14T22:23:20Z', 'expires_epoch': 1700000600,
    }
    assert [n for n in os.listdir(layout.state_dir) if n.endswith('.tmp')] == []


def test_same_owner_and_run_again_changes_nothing(layout):
    acquire(layout, 'alice', run_id='run-1')
    before = snapshot(layout.root)
    result = acquire(layout, 'alice', run_id='run-1')
    assert result['changed'] is False
    assert result['holder']['owner'] == 'alice'
    assert snapshot(layout.root) == before


@pytest.mark.parametrize('owner, run_id', [('bob', 'run-2'), ('bob', 'run-1'), ('alice', 'run-2'), ('alice', None)])
def test_other_holder_is_refused_naming_the_holder(layout, owner, run_id):
    acquire(layout, 'alice', run_id='run-1', host='ctl-a', pid=11, now=time.time())
    holder = read_lock(layout)
    before = snapshot(layout.root)
    with pytest.raises(CutoverError) as exc:
        acquire(layout, owner, run_id=run_id, ad_hoc='ansible ctl-b')
    command = ('ansible ctl-b -m cutover.web.deploy_lock -a \'{"force": true, "owner": "alice", "root": "%s", '
               '"state": "absent"}\'' % layout.root)
    assert exc.value.msg == ('The deploy lock %s is held by alice (run run-1, host ctl-a, pid 11, since %s) until %s; '
                             'once that run is surely gone, free the lock with: %s'
                             % (layout.lock_file, holder['since'], holder['expires'], command))
    assert exc.value.path == layout.lock_file
    assert exc.value.details == {'holder': holder, 'lock_busy': True}
    assert snapshot(layout.root) == before


def test_the_freeing_command_in_a_refusal_frees_the_lock(layout):
    """The command a refusal names, run as a shell would split it, removes the lock."""
    acquire(layout, "o'brien", run_id='run-1', ttl=600)
    with pytest.raises(CutoverError) as exc:
        acquire(layout, 'bob', run_id='run-2', ad_hoc="ansible -i 'my hosts.ini' web1 --become")
    command = shlex.split(exc.value.msg.split('free the lock with: ', 1)[1])
    assert command[:8] == ['ansible', '-i', 'my hosts.ini', 'web1', '--become', '-m', 'cutover.web.deploy_lock', '-a']
    args = json.loads(command[8])
    assert args == {'root': layout.root, 'owner': "o'brien", 'state': 'absent', 'force': True}
    release(layout, args['owner'], force=args['force'])
    assert not os.path.exists(layout.lock_file)


def test_expired_lock_is_taken_over(layout):
    acquire(layout, 'alice', run_id='run-1', ttl=60, now=1700000000)
    stale = read_lock(layout)
    result = acquire(layout, 'bob', run_id='run-2', ttl=60, now=1700000060)  # the moment it expires
    assert result['changed'] is True
    assert result['took_over'] == stale
    assert lock_owner(layout) == 'bob'
    assert read_lock(layout)['expires_epoch'] == 1700000120


def test_lock_not_yet_expired_is_not_taken_over(layout):
    acquire(layout, 'alice', ttl=60, now=1700000000)
    with pytest.raises(CutoverError, match='is held by alice'):
        acquire(layout, 'bob', ttl=60, now=1700000059)
    assert lock_owner(layout) == 'alice'


@pytest.mark.parametrize('content, cause', [
    ('{"owner": "alice", "exp', 'it is not JSON'),
    ('["alice"]', 'it is not a JSON object'),
    ('{"owner": "alice", "expires_epoch": "1700000600"}', 'expires_epoch is "1700000600", not a number'),
    ('{"owner": "alice", "expires_epoch": null}', 'expires_epoch is missing'),
    ('{"owner": "alice"}', 'expires_epoch is missing'),
    ('{"owner": "alice", "expires_epoch": true}', 'expires_epoch is true, not a number'),
    ('{"owner": null, "expires_epoch": 9999999999}', 'owner is missing'),
    ('{"owner": 7, "expires_epoch": 9999999999}', 'owner is 7, not a string'),
    ('{"owner": "alice", "expires_epoch": 9999999999, "pid": "12"}', 'pid is "12", not a whole number'),
    ('{"owner": "alice", "expires_epoch": 9999999999, "run_id": ["r"]}', 'run_id is ["r"], not a string'),
])
def test_an_invalid_lock_record_is_taken_over_with_a_warning(layout, content, cause):
    """A torn or hand-edited record would refuse every deploy (or crash it): it counts as expired."""
    layout.ensure_dirs()
    with open(layout.lock_file, 'w') as f:
        f.write(content)
    assert read_lock(layout) == {'invalid': cause, 'raw': content}
    result = acquire(layout, 'bob', run_id='run-2')
    assert result['changed'] is True
    assert result['took_over'] == {'invalid': cause, 'raw': content}
    assert result['warning'] == 'The deploy lock %s held no valid record (%s), so it was taken over.' \
        % (layout.lock_file, cause)
    assert lock_owner(layout) == 'bob'


def test_an_invalid_lock_record_is_refused_to_release_without_force(layout):
    layout.ensure_dirs()
    with open(layout.lock_file, 'w') as f:
        f.write('{"owner": "alice", "expires_epoch": "soon"}')
    with pytest.raises(CutoverError) as exc:
        release(layout, 'alice')
    assert exc.value.msg == ('The deploy lock %s is held by an invalid record (expires_epoch is "soon", not a number), '
                             'not by alice (run -); set force to remove it.' % layout.lock_file)
    assert release(layout, 'alice', force=True)['changed'] is True
    assert not os.path.exists(layout.lock_file)


def test_expired_lock_takeover_says_so(layout):
    acquire(layout, 'alice', run_id='run-1', ttl=60, host='ctl', pid=11, now=1700000000)
    result = acquire(layout, 'bob', run_id='run-2', now=1700000061)
    assert result['warning'] == ('Took over the deploy lock %s from alice (run run-1, host ctl, pid 11, since '
                                 '2023-11-14T22:13:20Z), which expired at 2023-11-14T22:14:20Z.' % layout.lock_file)


def test_a_dead_run_named_by_the_controller_is_taken_over(layout):
    acquire(layout, 'alice', run_id='run-1', host='ctl', pid=4242, pid_start='boot:99', now=time.time())
    dead = read_lock(layout)
    assert dead['pid_start'] == 'boot:99'
    result = acquire(layout, 'bob', run_id='run-2', host='ctl', pid=5151, pid_start='boot:120', take_over_dead='run-1')
    assert result['changed'] is True
    assert result['took_over'] == dead
    assert result['warning'] == ('Took over the deploy lock %s from alice (run run-1, host ctl, pid 4242, since %s), '
                                 'whose ansible-playbook (pid 4242 on ctl) is no longer running.'
                                 % (layout.lock_file, dead['since']))
    assert read_lock(layout) == result['holder']
    assert result['holder']['pid'] == 5151 and result['holder']['pid_start'] == 'boot:120'


def test_a_dead_run_is_taken_over_only_while_it_holds_the_lock(layout):
    """take_over_dead names a run: a lock another run holds meanwhile is refused as usual, and left as it is."""
    acquire(layout, 'carol', run_id='run-3', host='ctl', pid=77, now=time.time())
    before = snapshot(layout.root)
    with pytest.raises(CutoverError, match='is held by carol .*free the lock with') as exc:
        acquire(layout, 'bob', run_id='run-2', take_over_dead='run-1')
    assert exc.value.details['lock_busy'] is True
    assert snapshot(layout.root) == before


def test_a_read_only_root_is_refused_in_one_sentence(layout, mount):
    """EROFS while taking or giving back the lock: a clear sentence naming the lock, no traceback."""
    layout.ensure_dirs()
    acquire(layout, 'alice', run_id='run-1', ttl=60, now=1700000000)  # expired by now
    mount(layout.root, 'bind')
    subprocess.run(['mount', '-o', 'remount,ro,bind', layout.root], check=True)
    before = snapshot(layout.root)
    for attempt in (lambda: acquire(layout, 'bob', run_id='run-2'),
                    lambda: release(layout, 'alice', run_id='run-1')):
        with pytest.raises(CutoverError) as exc:
            attempt()
        assert exc.value.path == layout.lock_file
        assert exc.value.msg in ('Cannot write the deploy lock %s: Read-only file system.' % layout.lock_file,
                                 'Cannot remove the deploy lock %s: Read-only file system.' % layout.lock_file)
    assert snapshot(layout.root) == before


def test_release_by_the_holder(layout):
    acquire(layout, 'alice', run_id='run-1')
    result = release(layout, 'alice', run_id='run-1')
    assert result['changed'] is True
    assert not os.path.exists(layout.lock_file)
    again = release(layout, 'alice', run_id='run-1')
    assert again['changed'] is False and again['holder'] is None


def test_release_by_another_owner_needs_force(layout):
    acquire(layout, 'alice', run_id='run-1', host='ctl-a', pid=11)
    holder = read_lock(layout)
    before = snapshot(layout.root)
    with pytest.raises(CutoverError) as exc:
        release(layout, 'bob', run_id='run-2')
    assert exc.value.msg == ('The deploy lock %s is held by alice (run run-1, host ctl-a, pid 11, since %s), not by '
                             'bob (run run-2); set force to remove it.' % (layout.lock_file, holder['since']))
    assert snapshot(layout.root) == before

    result = release(layout, 'bob', run_id='run-2', force=True)
    assert result['changed'] is True and result['holder'] == holder
    assert not os.path.exists(layout.lock_file)


def test_check_mode_writes_nothing(layout):
    result = acquire(layout, 'alice', check_mode=True)
    assert result['changed'] is True and result['holder']['owner'] == 'alice'
    assert not os.path.exists(layout.root)

    acquire(layout, 'alice')
    lock_bytes = read(layout.lock_file)
    result = release(layout, 'alice', check_mode=True)
    assert result['changed'] is True
    assert read(layout.lock_file) == lock_bytes

    result = acquire(layout, 'bob', check_mode=True, now=time.time() + 10 ** 6)  # would take over
    assert result['changed'] is True and result['took_over']['owner'] == 'alice'
    assert read(layout.lock_file) == lock_bytes


def test_holding_takes_the_lock_for_the_body_and_gives_it_back(layout):
    os.makedirs(layout.root)
    with holding(layout, 'alice', run_id='run-1') as taken:
        assert taken['changed'] is True
        assert lock_owner(layout) == 'alice'
    assert not os.path.exists(layout.lock_file)


def test_holding_gives_the_lock_back_when_the_body_fails(layout):
    os.makedirs(layout.root)
    with pytest.raises(CutoverError, match='switch failed'):
        with holding(layout, 'alice', run_id='run-1'):
            raise CutoverError('switch failed')
    assert not os.path.exists(layout.lock_file)


def test_holding_a_lock_held_by_another_run_fails_before_the_body(layout):
    os.makedirs(layout.root)
    acquire(layout, 'bob', run_id='run-2')
    ran = []
    with pytest.raises(CutoverError, match='held by bob'):
        with holding(layout, 'alice', run_id='run-1'):
            ran.append(True)
    assert ran == [] and lock_owner(layout) == 'bob'


def test_holding_leaves_a_lock_the_same_run_holds_already(layout):
    os.makedirs(layout.root)
    acquire(layout, 'alice', run_id='run-1')
    with holding(layout, 'alice', run_id='run-1') as taken:
        assert taken['changed'] is False
    assert lock_owner(layout) == 'alice'


def test_holding_with_give_back_gives_back_a_lock_the_same_run_held_before(layout):
    os.makedirs(layout.root)
    acquire(layout, 'alice', run_id='run-1')
    with holding(layout, 'alice', run_id='run-1', give_back=True) as taken:
        assert taken['changed'] is False
        assert lock_owner(layout) == 'alice'
    assert not os.path.exists(layout.lock_file)


def test_holding_with_give_back_gives_back_also_when_the_body_fails(layout):
    os.makedirs(layout.root)
    acquire(layout, 'alice', run_id='run-1')
    with pytest.raises(CutoverError, match='prune failed'):
        with holding(layout, 'alice', run_id='run-1', give_back=True):
            raise CutoverError('prune failed')
    assert not os.path.exists(layout.lock_file)


@pytest.mark.parametrize('held_before', [False, True])
def test_holding_with_keep_on_failure_keeps_the_lock_when_the_body_fails(layout, held_before):
    """Taken here or held before: the caller switches back or marks the release under it."""
    os.makedirs(layout.root)
    if held_before:
        acquire(layout, 'alice', run_id='run-1')
    with pytest.raises(CutoverError, match='switch failed'):
        with holding(layout, 'alice', run_id='run-1', give_back=True, keep_on_failure=True):
            raise CutoverError('switch failed')
    assert lock_owner(layout) == 'alice'


@pytest.mark.parametrize('held_before', [False, True])
def test_holding_with_keep_on_failure_gives_back_when_the_body_succeeds(layout, held_before):
    os.makedirs(layout.root)
    if held_before:
        acquire(layout, 'alice', run_id='run-1')
    with holding(layout, 'alice', run_id='run-1', give_back=True, keep_on_failure=True) as taken:
        assert taken['changed'] is not held_before
    assert not os.path.exists(layout.lock_file)


def test_holding_with_give_back_leaves_a_lock_another_run_holds(layout):
    os.makedirs(layout.root)
    acquire(layout, 'bob', run_id='run-2')
    with pytest.raises(CutoverError, match='held by bob'):
        with holding(layout, 'alice', run_id='run-1', give_back=True):
            pass
    assert lock_owner(layout) == 'bob'


def test_holding_in_check_mode_and_in_a_missing_root_writes_nothing(layout):
    with pytest.raises(CutoverError, match='does not exist'):
        with holding(layout, 'alice'):
            pass
    assert not os.path.exists(layout.root)
    os.makedirs(layout.root)
    with holding(layout, 'alice', check_mode=True) as taken:
        assert taken['changed'] is True
    assert os.listdir(layout.root) == []


def _contender(root, owner, barrier, queue):
    layout = Layout(root)
    barrier.wait()
    try:
        acquire(layout, owner, run_id=owner)
        queue.put((owner, 'won'))
    except CutoverError as exc:
        queue.put((owner, exc.msg))
    except Exception as exc:  # pragma: no cover - reported to the test below
        queue.put((owner, 'crashed: %r' % (exc,)))


@pytest.mark.parametrize('round_', range(3))
def test_concurrent_acquire_has_exactly_one_winner(layout, round_):
    ctx = multiprocessing.get_context('fork')
    barrier = ctx.Barrier(8)
    queue = ctx.Queue()
    owners = ['deployer-%d' % i for i in range(8)]
    procs = [ctx.Process(target=_contender, args=(layout.root, owner, barrier, queue)) for owner in owners]
    for p in procs:
        p.start()
    outcomes = dict(queue.get(timeout=30) for dummy_p in procs)
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0

    winners = [owner for owner, outcome in outcomes.items() if outcome == 'won']
    assert len(winners) == 1, outcomes
    assert lock_owner(layout) == winners[0]
    for owner, outcome in outcomes.items():
        if owner != winners[0]:
            assert outcome.startswith('The deploy lock %s ' % layout.lock_file), outcome
            assert winners[0] in outcome
    assert [n for n in os.listdir(layout.state_dir) if n.endswith('.tmp')] == []


def _rival(root, owner, queue):
    try:
        acquire(Layout(root), owner, ttl=60)
        queue.put('won')
    except CutoverError as exc:
        queue.put(exc.msg)


def test_takeover_of_an_expired_lock_has_one_winner(layout, monkeypatch):
    acquire(layout, 'alice', ttl=60, now=1700000000)
    real_rename = os.rename
    ctx = multiprocessing.get_context('fork')
    queue = ctx.Queue()
    outcomes = {}

    def rename_after_a_rival(src, dst):
        # bob has checked that alice's stale lock is still in place. Just now carol, another
        # process that read the same stale lock, takes it over; then bob's rename goes ahead.
        monkeypatch.setattr(_lock.os, 'rename', real_rename)
        proc = ctx.Process(target=_rival, args=(layout.root, 'carol', queue))
        proc.start()
        outcomes['carol'] = queue.get(timeout=30)
        proc.join(timeout=30)
        real_rename(src, dst)

    monkeypatch.setattr(_lock.os, 'rename', rename_after_a_rival)
    try:
        acquire(layout, 'bob', ttl=60)
        outcomes['bob'] = 'won'
    except CutoverError as exc:
        outcomes['bob'] = exc.msg
    winners = sorted(o for o, outcome in outcomes.items() if outcome == 'won')
    assert len(winners) == 1, outcomes
    assert lock_owner(layout) == winners[0]


# -- the liveness rule the action plugins apply on the controller, against real processes --

HOST = socket.gethostname()


@pytest.fixture
def sleeper():
    proc = subprocess.Popen(['sleep', '300'])
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def holder_for(pid, pid_start, host=HOST, run_id='run-1'):
    return {'owner': 'alice', 'run_id': run_id, 'host': host, 'pid': pid, 'pid_start': pid_start,
            'expires_epoch': 9999999999}


def test_process_start_is_stable_and_tells_processes_apart(sleeper):
    mine = process_start(os.getpid())
    assert mine is not None and mine == process_start(os.getpid())
    assert mine.split(':')[0] == open('/proc/sys/kernel/random/boot_id').read().strip()
    assert process_start(sleeper.pid) is not None
    assert process_start(2 ** 22 + 1) is None  # above pid_max: no such process


def test_a_running_holder_is_alive(sleeper):
    assert holder_is_dead(holder_for(sleeper.pid, process_start(sleeper.pid)), HOST) is False


def test_a_killed_holder_is_dead(sleeper):
    start = process_start(sleeper.pid)
    sleeper.kill()
    sleeper.wait()
    assert holder_is_dead(holder_for(sleeper.pid, start), HOST) is True


def test_a_holder_that_is_a_zombie_is_dead(sleeper):
    """Killed but not yet reaped (its parent is gone, and no one reaps orphans): it is dead all the same."""
    start = process_start(sleeper.pid)
    sleeper.send_signal(9)
    for dummy in range(200):
        with open('/proc/%d/stat' % sleeper.pid) as f:
            if f.read().rsplit(')', 1)[1].split()[0] == 'Z':
                break
        time.sleep(0.01)
    assert holder_is_dead(holder_for(sleeper.pid, start), HOST) is True


def test_a_reused_pid_does_not_keep_a_dead_holder_alive(sleeper):
    """The pid is there, but its process started at another time: the holder is gone."""
    start = process_start(sleeper.pid)
    boot, ticks = start.split(':')
    assert holder_is_dead(holder_for(sleeper.pid, '%s:%d' % (boot, int(ticks) - 1)), HOST) is True
    assert holder_is_dead(holder_for(sleeper.pid, 'another-boot:%s' % ticks), HOST) is True


@pytest.mark.parametrize('change', [
    {'host': 'another-controller'},  # another host's processes cannot be seen from here
    {'pid_start': None},  # a record that does not say when its process started
    {'pid': None},
    {'pid': '123'},
    {'run_id': None},  # nothing to name the run to take over
    {'invalid': 'it is not JSON'},
])
def test_a_holder_that_cannot_be_checked_is_never_guessed_dead(sleeper, change):
    start = process_start(sleeper.pid)
    sleeper.kill()
    sleeper.wait()
    holder = holder_for(sleeper.pid, start)
    holder.update(change)
    assert holder_is_dead(holder, HOST) is False
    assert holder_is_dead(None, HOST) is False


def test_the_record_acquire_writes_is_checked_by_the_rule(layout, sleeper):
    """What acquire() records with the controller's identity is what holder_is_dead() reads."""
    acquire(layout, 'alice', run_id='run-1', host=HOST, pid=sleeper.pid, pid_start=process_start(sleeper.pid))
    assert holder_is_dead(read_lock(layout), HOST) is False
    sleeper.kill()
    sleeper.wait()
    assert holder_is_dead(read_lock(layout), HOST) is True
