# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The deploy lock: a real lock file, real competing processes."""

from __future__ import annotations

import json
import multiprocessing
import os
import time

import pytest

from ansible_collections.cutover.web.plugins.module_utils import _lock
from ansible_collections.cutover.web.plugins.module_utils._lock import acquire, holding, read_lock, release
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
        acquire(layout, owner, run_id=run_id)
    assert exc.value.msg == 'The deploy lock %s is held by alice (run run-1, host ctl-a, pid 11, since %s) until %s.' \
        % (layout.lock_file, holder['since'], holder['expires'])
    assert exc.value.path == layout.lock_file
    assert exc.value.details == {'holder': holder}
    assert snapshot(layout.root) == before


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


def test_unreadable_lock_file_counts_as_expired(layout):
    layout.ensure_dirs()
    with open(layout.lock_file, 'w') as f:
        f.write('{"owner": "alice", "exp')  # torn
    result = acquire(layout, 'bob')
    assert result['took_over'] == {'owner': '(unreadable lock file)', 'expires_epoch': 0}
    assert lock_owner(layout) == 'bob'


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
