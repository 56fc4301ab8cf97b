# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""prune_releases through AnsibleModule: what goes and what stays, on real release trees."""

from __future__ import annotations

import os
import subprocess

import pytest

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
