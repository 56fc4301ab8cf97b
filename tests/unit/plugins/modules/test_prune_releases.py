# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""prune_releases through AnsibleModule: what goes and what stays, on real release trees."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from ansible_collections.cutover.web.plugins.module_utils import _prune
from ansible_collections.cutover.web.plugins.modules import prune_releases, release_info
from ansible_collections.cutover.web.tests.unit.helpers import deploy, run_module, snapshot


@pytest.fixture
def site(root, tmp_path, capsys):
    """Releases r1..r4 that each went live in turn (r4 is current, r3 the rollback target)."""
    return deploy(root, tmp_path, capsys, dict(('r%d' % n, {'index.html': 'r%d' % n}) for n in range(1, 5)))


def releases(site):
    return sorted(os.listdir(os.path.join(site, 'releases')))


def test_check_mode_real_and_again(site, capsys):
    args = dict(root=site, keep=2)
    before = snapshot(site)
    planned = run_module(prune_releases, args, capsys, check_mode=True)
    assert planned['changed'] is True and sorted(planned['removed']) == ['r1', 'r2']
    assert planned['kept_reasons']['r4'] == 'current'
    assert snapshot(site) == before

    pruned = run_module(prune_releases, args, capsys)
    assert pruned['changed'] is True and sorted(pruned['removed']) == ['r1', 'r2']
    assert releases(site) == ['r3', 'r4']
    assert os.readlink(os.path.join(site, 'current')) == 'releases/r4'

    after = snapshot(site)
    again = run_module(prune_releases, args, capsys)
    assert again['changed'] is False and again['removed'] == []
    assert snapshot(site) == after


def test_protected_and_unknown_releases_stay(site, capsys):
    os.mkdir(os.path.join(site, 'releases', 'by hand'))
    pruned = run_module(prune_releases, dict(root=site, keep=1, protect=['r1']), capsys)
    assert sorted(pruned['removed']) == ['r2']
    assert releases(site) == ['by hand', 'r1', 'r3', 'r4']


@pytest.mark.parametrize('keep', [0, -1])
def test_keep_below_one_is_refused_before_anything_changes(site, capsys, keep):
    before = snapshot(site)
    failed = run_module(prune_releases, dict(root=site, keep=keep), capsys)
    assert failed['rc'] == 1 and str(keep) in failed['msg']
    assert snapshot(site) == before


def _immutable(path, on=True):
    return subprocess.run(['chattr', '+i' if on else '-i', path], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, check=False).returncode == 0


def test_a_file_that_cannot_be_deleted_is_left_in_the_trash_and_deleted_by_the_next_run(site, capsys):
    """The release leaves releases/ and the history all the same; what is left of it is named in a warning and the
    next run deletes it."""
    stuck = os.path.join(site, 'releases', 'r1', 'index.html')
    if os.geteuid() != 0 or not _immutable(stuck):
        pytest.skip('needs root and a filesystem with the immutable attribute (chattr +i)')
    try:
        pruned = run_module(prune_releases, dict(root=site, keep=2), capsys)
    finally:
        trash = os.path.join(site, '.cutover', 'trash')
        for name in os.listdir(trash) if os.path.isdir(trash) else ():
            _immutable(os.path.join(trash, name, 'index.html'), on=False)
    assert pruned['rc'] == 0 and sorted(pruned['removed']) == ['r1', 'r2'] and releases(site) == ['r3', 'r4']
    left = os.listdir(os.path.join(site, '.cutover', 'trash'))
    assert len(left) == 1 and left[0].startswith('r1.')
    assert ('Could not delete all of %s (which was %s): %s: Operation not permitted.'
            % (os.path.join(site, '.cutover', 'trash', left[0]), os.path.join(site, 'releases', 'r1'),
               os.path.join(site, '.cutover', 'trash', left[0], 'index.html'))) in pruned['said']
    info = run_module(release_info, dict(root=site), capsys)
    assert sorted(r['id'] for r in info['releases']) == ['r3', 'r4']

    again = run_module(prune_releases, dict(root=site, keep=2), capsys)
    assert again['rc'] == 0 and again['changed'] is True and again['removed_trash'] == left
    assert os.listdir(os.path.join(site, '.cutover', 'trash')) == []
    assert run_module(prune_releases, dict(root=site, keep=2), capsys)['changed'] is False


def _hold_trash(site):
    """The trash's lock, held as the process of an earlier run deleting there holds it; returns its fd."""
    trash = os.path.join(site, '.cutover', 'trash')
    if not os.path.isdir(trash):
        os.mkdir(trash, 0o700)
    fd = os.open(trash, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _gone(paths, timeout=30):
    deadline = time.monotonic() + timeout
    while any(os.path.lexists(p) for p in paths):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_deleting_in_background_the_releases_leave_at_once_and_their_files_after_the_run(site, capsys, monkeypatch):
    """The test holds the trash's lock, as a process of an earlier run still deleting would: the run waits for it
    (here 0.2 s), says so and goes on; its own deletion waits for the lock, so the run has surely returned first."""
    monkeypatch.setattr(_prune, 'DELETION_WAIT', 0.2)
    held = _hold_trash(site)
    try:
        pruned = run_module(prune_releases, dict(root=site, keep=2, delete_in_background=True), capsys)
        assert pruned['rc'] == 0 and pruned['changed'] is True and sorted(pruned['removed']) == ['r1', 'r2']
        assert releases(site) == ['r3', 'r4']
        assert 'still deleting in %s after 0 s' % os.path.join(site, '.cutover', 'trash') in pruned['said']
        deleting = pruned['deleting']
        assert sorted(os.path.basename(p).split('.')[0] for p in deleting) == ['r1', 'r2']
        assert all(os.path.isfile(os.path.join(p, 'index.html')) for p in deleting)
        info = run_module(release_info, dict(root=site), capsys)
        assert info['trash'] == {'entries': sorted(os.path.basename(p) for p in deleting), 'deleting': True}
    finally:
        os.close(held)
    assert _gone(deleting), 'the release files were not deleted after the run'
    deadline = time.monotonic() + 30  # the process gives the lock back as it exits, just after its last deletion
    while run_module(release_info, dict(root=site), capsys)['trash'] != {'entries': [], 'deleting': False}:
        assert time.monotonic() < deadline, 'the deleting process still held the trash lock after 30 s'
        time.sleep(0.05)
    again = run_module(prune_releases, dict(root=site, keep=2, delete_in_background=True), capsys)
    assert again['changed'] is False and 'deleting' not in again and again['removed_trash'] == []
    assert os.listdir(os.path.join(site, '.cutover', 'trash')) == []


def test_a_run_deleting_in_background_waits_for_an_earlier_deletion_to_end(site, capsys):
    held = _hold_trash(site)
    threading.Timer(0.5, os.close, (held,)).start()
    started = time.monotonic()
    pruned = run_module(prune_releases, dict(root=site, keep=3, delete_in_background=True), capsys)
    assert time.monotonic() - started >= 0.5
    assert pruned['removed'] == ['r1'] and 'still deleting' not in pruned['said']
    assert _gone(pruned['deleting'])


def test_the_process_deleting_in_background_leaves_the_task_s_output(site, tmp_path):
    """Run as Ansible runs a module, with its output on a pipe: the run's output ends while its deleting process
    waits (the test holds the trash's lock), so the task's connection closes at once."""
    args = tmp_path / 'args.json'
    args.write_text(json.dumps({'ANSIBLE_MODULE_ARGS': dict(root=site, keep=2, delete_in_background=True)}))
    code = ('from ansible_collections.cutover.web.plugins.module_utils import _prune; _prune.DELETION_WAIT = 0; '
            'from ansible_collections.cutover.web.plugins.modules import prune_releases; prune_releases.main()')
    held = _hold_trash(site)
    try:
        done = subprocess.run([sys.executable, '-c', code, str(args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p)), timeout=20,
                              check=False)
        result = json.loads(done.stdout)
        assert done.returncode == 0 and sorted(result['removed']) == ['r1', 'r2']
        assert len(result['deleting']) == 2 and all(os.path.isdir(p) for p in result['deleting'])
    finally:
        os.close(held)
    assert _gone(result['deleting'])


def test_what_a_killed_deleting_process_left_goes_in_the_next_pruning(site, capsys):
    """A trash entry with no process holding the trash's lock was left by one that was killed: the next pruning
    deletes it before it returns, and says so (a change)."""
    os.mkdir(os.path.join(site, '.cutover', 'trash'), 0o700)
    left = os.path.join(site, '.cutover', 'trash', 'r0.1793520000.4242')
    os.makedirs(os.path.join(left, 'deep'))
    with open(os.path.join(left, 'deep', 'index.html'), 'w') as f:
        f.write('r0')
    pruned = run_module(prune_releases, dict(root=site, keep=4, delete_in_background=True), capsys)
    assert pruned['changed'] is True and pruned['removed_trash'] == ['r0.1793520000.4242'] and 'deleting' not in pruned
    assert not os.path.lexists(left)


def test_check_mode_deletes_nothing_in_background_either(site, capsys):
    before = snapshot(site)
    planned = run_module(prune_releases, dict(root=site, keep=2, delete_in_background=True), capsys, check_mode=True)
    assert sorted(planned['removed']) == ['r1', 'r2'] and 'deleting' not in planned
    assert snapshot(site) == before
