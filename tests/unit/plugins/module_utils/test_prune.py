# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Pruning: what goes is decided by the history, never by file times, and nothing outside is touched."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from ansible_collections.cutover.web.plugins.module_utils._prune import plan, prune
from ansible_collections.cutover.web.plugins.module_utils._releases import CutoverError, staging_name
from ansible_collections.cutover.web.plugins.module_utils._switch import switch
from ansible_collections.cutover.web.tests.unit.helpers import mark, new_release, read, snapshot, write_tree


def make(layout, tmp_path, *ids, **extra_files):
    for rid in ids:
        files = {'index.html': 'release ' + rid}
        files.update(extra_files)
        new_release(layout, tmp_path / ('src-' + rid), files, release_id=rid)


def on_disk(layout):
    return sorted(os.listdir(layout.releases_dir))


def test_keeps_the_newest_by_deploy_order_not_by_mtime(layout, tmp_path):
    make(layout, tmp_path, 'r1', 'r2', 'r3', 'r4', 'r5')
    switch(layout, release='r5')
    # Make the oldest releases look newest on disk: a chmod or a restore must not save them.
    future = time.time() + 10 ** 6
    for rid in ('r1', 'r2'):
        path = layout.release_path(rid)
        os.utime(path, (future, future))
        os.chmod(path, 0o700)
        os.utime(os.path.join(path, 'index.html'), (future, future))

    result = prune(layout, keep=2)
    assert result['changed'] is True
    assert result['removed'] == ['r1', 'r2', 'r3']
    assert on_disk(layout) == ['r4', 'r5']
    assert result['kept_reasons'] == {'r5': 'current', 'r4': 'among the newest 2'}
    for rid in ('r1', 'r2', 'r3'):
        assert not os.path.exists(layout.manifest_path(rid))
    assert [e['release'] for e in layout.read_history() if e['event'] == 'removed'] == ['r1', 'r2', 'r3']
    assert os.listdir(layout.trash_dir) == []
    assert os.readlink(layout.current_link) == 'releases/r5'

    again = prune(layout, keep=2)
    assert again['changed'] is False and again['removed'] == []


def test_never_removes_current_or_rollback_target(layout, tmp_path):
    make(layout, tmp_path, 'r1', 'r2', 'r3', 'r4')
    switch(layout, release='r4')
    switch(layout, release='r1')  # rolled back to the oldest build: r1 current, r4 rollback target
    result = prune(layout, keep=1)
    assert result['removed'] == ['r2', 'r3']
    assert result['kept_reasons'] == {'r1': 'current', 'r4': 'rollback target'}
    assert on_disk(layout) == ['r1', 'r4']


def test_activation_counts_as_newer_than_a_later_build(layout, tmp_path):
    make(layout, tmp_path, 'r1', 'r2', 'r3')
    switch(layout, release='r2')
    switch(layout, release='r1')
    make(layout, tmp_path, 'r4')
    # Order: r4 (made last), r1 (live), r2 (was live), r3 (never live).
    assert [r.id for r in layout.ordered()] == ['r4', 'r1', 'r2', 'r3']
    result = prune(layout, keep=2)
    assert result['removed'] == ['r3']


def test_never_removes_protected_releases(layout, tmp_path):
    make(layout, tmp_path, 'r1', 'r2', 'r3')
    switch(layout, release='r3')
    result = prune(layout, keep=1, protect=['r1', 'no-such-release'])
    assert result['removed'] == ['r2']
    assert result['kept_reasons']['r1'] == 'protected'
    assert on_disk(layout) == ['r1', 'r3']


def test_never_touches_directories_the_history_does_not_know(layout, tmp_path):
    make(layout, tmp_path, 'r1', 'r2')
    switch(layout, release='r2')
    write_tree(os.path.join(layout.releases_dir, 'by-hand'), {'important.txt': 'keep me'})
    write_tree(os.path.join(layout.releases_dir, '.hidden'), {'x': 'x'})
    result = prune(layout, keep=1)
    assert result['removed'] == ['r1']
    assert result['kept_reasons']['by-hand'] == 'not made by cutover.web'
    assert read(os.path.join(layout.releases_dir, 'by-hand', 'important.txt')) == b'keep me'
    assert read(os.path.join(layout.releases_dir, '.hidden', 'x')) == b'x'


def test_failed_and_bad_releases_go_only_after_failed_older_than(layout, tmp_path):
    make(layout, tmp_path, 'r1', 'r2', 'r3', 'r4')
    switch(layout, release='r1')
    mark(layout, 'r3', 'failed')
    mark(layout, 'r4', 'bad')
    before = snapshot(layout.root)

    result = prune(layout, keep=5, failed_older_than=3600)
    assert result['changed'] is False and result['removed'] == []
    assert result['kept_reasons']['r3'] == 'failed less than 3600s ago'
    assert result['kept_reasons']['r4'] == 'bad less than 3600s ago'
    assert snapshot(layout.root) == before

    # An hour later they would go; the ready ones stay (keep=5).
    removed, _staging, _kept = plan(layout, keep=5, failed_older_than=3600, now=time.time() + 3601)
    assert removed == ['r3', 'r4']

    result = prune(layout, keep=5, failed_older_than=0)
    assert result['removed'] == ['r3', 'r4']
    assert on_disk(layout) == ['r1', 'r2']


def test_failed_release_is_kept_when_protected(layout, tmp_path):
    make(layout, tmp_path, 'r1', 'r2')
    switch(layout, release='r1')
    mark(layout, 'r2', 'failed')
    result = prune(layout, keep=1, protect=['r2'], failed_older_than=0)
    assert result['removed'] == []
    assert on_disk(layout) == ['r1', 'r2']


def test_staging_leftovers_go_by_the_start_time_in_their_name(layout, tmp_path):
    make(layout, tmp_path, 'r1')
    now = time.time()
    old = staging_name('r9', now=now - 7200)
    young = staging_name('r8', now=now - 60)
    for name in (old, young, 'no-start-time'):
        write_tree(os.path.join(layout.staging_dir, name), {'half.txt': 'half'})
    # File times say the opposite; they must not matter.
    os.utime(os.path.join(layout.staging_dir, old), (now, now))
    os.utime(os.path.join(layout.staging_dir, young), (now - 10 ** 6, now - 10 ** 6))

    result = prune(layout, keep=1, staging_older_than=3600)
    assert result['changed'] is True
    assert result['removed_staging'] == [old]
    assert sorted(os.listdir(layout.staging_dir)) == sorted([young, 'no-start-time'])
    assert on_disk(layout) == ['r1']


def test_staging_entries_that_are_not_directories_are_left_and_reported(layout, tmp_path):
    make(layout, tmp_path, 'r1', 'r2', 'r3')
    switch(layout, release='r3')
    long_ago = time.time() - 10 ** 5
    outside = write_tree(tmp_path / 'outside', {'precious.txt': 'precious'})
    link = staging_name('r7', now=long_ago)
    os.symlink(outside, os.path.join(layout.staging_dir, link))
    stray = staging_name('r6', now=long_ago)
    with open(os.path.join(layout.staging_dir, stray), 'w') as f:
        f.write('a file')
    with open(os.path.join(layout.staging_dir, 'notes.txt'), 'w') as f:
        f.write('a file')
    stale = staging_name('r5', now=long_ago)
    os.makedirs(os.path.join(layout.staging_dir, stale))
    before = snapshot(outside)

    predicted = prune(layout, keep=1, staging_older_than=60, check_mode=True)
    result = prune(layout, keep=1, staging_older_than=60)
    for res in (predicted, result):
        assert res['removed'] == ['r1', 'r2']
        assert res['removed_staging'] == [stale]
        assert res['skipped_staging'] == {link: 'a symlink', stray: 'not a directory', 'notes.txt': 'not a directory'}
    assert sorted(os.listdir(layout.staging_dir)) == sorted([link, stray, 'notes.txt'])
    assert snapshot(outside) == before
    assert on_disk(layout) == ['r3']


def test_staging_all_removes_every_leftover_but_a_young_check_mode_push(layout, tmp_path):
    make(layout, tmp_path, 'r1', 'r2', 'r3')
    switch(layout, release='r3')
    now = time.time()
    names = {
        'push': 'push-20261204T101010123Z-1.%d.0.ansible' % now,
        'build': staging_name('r9', now=now),
        'nameless': 'no-start-time',
        'check_young': 'check-20261204T101010123Z-2.%d.0.ansible' % (now - 60),
        'check_old': 'check-20261204T101010123Z-3.%d.0.ansible' % (now - 7200),
        'check_nameless': 'check-no-start-time',
    }
    for name in names.values():
        write_tree(os.path.join(layout.staging_dir, name), {'half.txt': 'half'})

    result = prune(layout, keep=1, staging_older_than=3600, staging_all=True, releases=False)
    gone = ['push', 'build', 'nameless', 'check_old']
    assert result['changed'] is True
    assert result['removed_staging'] == sorted(names[k] for k in gone)
    assert result['removed'] == [] and result['kept'] == []
    assert sorted(os.listdir(layout.staging_dir)) == sorted([names['check_young'], names['check_nameless']])
    assert on_disk(layout) == ['r1', 'r2', 'r3']

    # Without staging_all, only age counts, as before.
    write_tree(os.path.join(layout.staging_dir, names['push']), {'half.txt': 'half'})
    assert prune(layout, keep=3, staging_older_than=3600)['removed_staging'] == []


def test_a_staging_area_that_is_a_symlink_is_refused_and_nothing_behind_it_goes(layout, tmp_path):
    make(layout, tmp_path, 'r1')
    outside = write_tree(tmp_path / 'outside', {staging_name('r9', now=time.time() - 10 ** 5) + '/x.txt': 'precious'})
    os.rmdir(layout.staging_dir)
    os.symlink(outside, layout.staging_dir)
    before = snapshot(outside)
    with pytest.raises(CutoverError) as exc:
        prune(layout, keep=1, staging_all=True)
    assert exc.value.msg == '%s is a symlink; cutover.web never follows links inside the root.' % layout.staging_dir
    assert snapshot(outside) == before


def test_check_mode_returns_exactly_what_would_go_and_removes_nothing(layout, tmp_path):
    make(layout, tmp_path, 'r1', 'r2', 'r3', 'r4')
    switch(layout, release='r4')
    mark(layout, 'r1', 'failed')
    stale = staging_name('r5', now=time.time() - 10 ** 5)
    os.makedirs(os.path.join(layout.staging_dir, stale))
    before = snapshot(layout.root)

    predicted = prune(layout, keep=2, failed_older_than=0, check_mode=True)
    assert snapshot(layout.root) == before
    assert predicted['changed'] is True
    assert predicted['removed'] == ['r1', 'r2']
    assert predicted['removed_staging'] == [stale]
    assert predicted['diff']['before'] == 'r1\nr2\nr3\nr4\n' and predicted['diff']['after'] == 'r3\nr4\n'

    real = prune(layout, keep=2, failed_older_than=0)
    assert (real['removed'], real['removed_staging']) == (predicted['removed'], predicted['removed_staging'])
    assert on_disk(layout) == ['r3', 'r4']
    assert os.listdir(layout.staging_dir) == []


@pytest.mark.parametrize('keep', [0, -1])
def test_keep_below_one_is_refused(layout, tmp_path, keep):
    make(layout, tmp_path, 'r1', 'r2')
    before = snapshot(layout.root)
    with pytest.raises(CutoverError) as exc:
        prune(layout, keep=keep)
    assert exc.value.msg == 'keep is %d for %s, but at least 1 release must be kept.' % (keep, layout.root)
    assert snapshot(layout.root) == before


def test_never_follows_a_symlink_inside_a_release(layout, tmp_path):
    outside = write_tree(tmp_path / 'outside', {'uploads/photo.jpg': 'photo', 'secret.txt': 'secret'})
    make(layout, tmp_path, 'r1', **{'uploads': ('link', os.path.join(outside, 'uploads')),
                                    'secret.txt': ('link', os.path.join(outside, 'secret.txt')),
                                    'abs': ('link', outside)})
    make(layout, tmp_path, 'r2')
    switch(layout, release='r2')
    before = snapshot(outside)

    result = prune(layout, keep=1)
    assert result['removed'] == ['r1']
    assert on_disk(layout) == ['r2']
    assert snapshot(outside) == before


def test_symlink_in_releases_stops_pruning_before_anything_goes(layout, tmp_path):
    make(layout, tmp_path, 'r1', 'r2', 'r3')
    switch(layout, release='r3')
    outside = write_tree(tmp_path / 'outside', {'data.txt': 'data'})
    evil = os.path.join(layout.releases_dir, 'evil')
    os.symlink(outside, evil)
    before = snapshot(layout.root)
    with pytest.raises(CutoverError) as exc:
        prune(layout, keep=1)
    assert exc.value.msg.startswith('%s is a symlink to %s;' % (evil, outside))
    assert snapshot(layout.root) == before
    assert read(os.path.join(outside, 'data.txt')) == b'data'


def test_nothing_to_prune_on_a_fresh_root(layout):
    result = prune(layout, keep=3)
    assert result['changed'] is False
    assert (result['removed'], result['removed_staging'], result['kept']) == ([], [], [])
    assert not os.path.exists(layout.root)


def test_database_backups_go_with_their_release_only(layout, tmp_path):
    make(layout, tmp_path, 'r1', 'r2', 'r3')
    switch(layout, release='r3')
    for rid in ('r1', 'r3'):
        write_tree(layout.backup_dir(rid), {'expand.sqlite3': 'backup before ' + rid})
    # A symlink where a backup directory would be is never followed.
    outside = write_tree(tmp_path / 'elsewhere', {'keep.txt': 'not ours'})
    os.symlink(outside, layout.backup_dir('r2'))

    before = snapshot(layout.root)
    message = '%s is a symlink; cutover.web never follows links inside the root.' % layout.backup_dir('r2')
    for check_mode in (True, False):
        with pytest.raises(CutoverError) as exc:
            prune(layout, keep=1, check_mode=check_mode)
        assert exc.value.msg == message
    # Refused before anything went.
    assert read(os.path.join(outside, 'keep.txt')) == b'not ours'
    assert snapshot(layout.root) == before
    os.unlink(layout.backup_dir('r2'))

    result = prune(layout, keep=1)
    assert result['removed'] == ['r1', 'r2']
    assert sorted(os.listdir(layout.backups_dir)) == ['r3']
    assert read(os.path.join(layout.backup_dir('r3'), 'expand.sqlite3')) == b'backup before r3'


@pytest.mark.parametrize('part', ['trash', 'backups'])
def test_symlinked_state_directory_stops_pruning_before_anything_goes(layout, tmp_path, part):
    make(layout, tmp_path, 'r1', 'r2', 'r3')
    switch(layout, release='r3')
    write_tree(layout.backup_dir('r1'), {'expand.sqlite3': 'backup before r1'})
    # trash/ or backups/ moved outside the root and linked back, with a directory named like a release there.
    path = os.path.join(layout.state_dir, part)
    outside = str(tmp_path / 'outside' / part)
    os.makedirs(os.path.dirname(outside))
    if os.path.lexists(path):
        shutil.move(path, outside)
    else:
        os.makedirs(outside)
    write_tree(outside, {'r2/precious.txt': 'not ours'})
    os.symlink(outside, path)
    before, outside_before = snapshot(layout.root), snapshot(outside)
    for check_mode in (True, False):
        with pytest.raises(CutoverError) as exc:
            prune(layout, keep=1, check_mode=check_mode)
        assert exc.value.msg == '%s is a symlink; cutover.web never follows links inside the root.' % path
    assert snapshot(layout.root) == before
    assert snapshot(outside) == outside_before
