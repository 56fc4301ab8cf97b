# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""prune_releases through AnsibleModule: what goes and what stays, on real release trees."""

from __future__ import annotations

import os

import pytest

from ansible_collections.cutover.web.plugins.modules import prune_releases
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
