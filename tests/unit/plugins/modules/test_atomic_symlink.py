# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""atomic_symlink through AnsibleModule: the switch and the rollback on real links."""

from __future__ import annotations

import os

import pytest

from ansible_collections.cutover.web.plugins.modules import atomic_symlink
from ansible_collections.cutover.web.tests.unit.helpers import deploy, run_module, snapshot, write_tree


@pytest.fixture
def site(root, tmp_path, capsys):
    """A root with the releases A and B, nothing live."""
    return deploy(root, tmp_path, capsys, dict((rid, {'index.html': 'release ' + rid}) for rid in 'AB'), live=False)


def test_switch_check_mode_real_and_again(site, capsys):
    current = os.path.join(site, 'current')
    before = snapshot(site)
    planned = run_module(atomic_symlink, dict(root=site, release='A'), capsys, check_mode=True)
    assert planned['changed'] is True and planned['link_text'] == 'releases/A' and planned['previous'] is None
    assert planned['diff']['after'] == 'releases/A\n'
    assert snapshot(site) == before

    switched = run_module(atomic_symlink, dict(root=site, release='A'), capsys)
    assert switched['changed'] is True and switched['release'] == 'A'
    assert os.readlink(current) == 'releases/A'
    assert [n for n in os.listdir(site) if n.startswith('.current.')] == []  # no temporary link left

    after = snapshot(site)
    again = run_module(atomic_symlink, dict(root=site, release='A'), capsys)
    assert again['changed'] is False
    assert snapshot(site) == after

    to_b = run_module(atomic_symlink, dict(root=site, release='B'), capsys)
    assert to_b['changed'] is True and to_b['previous'] == 'releases/A' and to_b['previous_release'] == 'A'
    assert os.readlink(current) == 'releases/B'


def test_rollback_check_mode_real_and_again(site, capsys):
    for rid in ('A', 'B'):
        run_module(atomic_symlink, dict(root=site, release=rid), capsys)
    before = snapshot(site)
    planned = run_module(atomic_symlink, dict(root=site, rollback=True), capsys, check_mode=True)
    assert planned['changed'] is True and planned['release'] == 'A' and planned['rolled_back_from'] == 'B'
    assert snapshot(site) == before

    rolled = run_module(atomic_symlink, dict(root=site, rollback=True), capsys)
    assert rolled['changed'] is True and rolled['rolled_back_from'] == 'B'
    assert os.readlink(os.path.join(site, 'current')) == 'releases/A'

    again = run_module(atomic_symlink, dict(root=site, rollback=True), capsys)
    assert again['changed'] is False and again['already_rolled_back'] is True
    refused = run_module(atomic_symlink, dict(root=site, release='B'), capsys)
    assert refused['rc'] == 1
    assert refused['msg'] == ('The release %s is bad, not ready, so it cannot go live.'
                              % os.path.join(site, 'releases', 'B'))


def test_unknown_targets_are_refused_naming_them(site, capsys):
    os.mkdir(os.path.join(site, 'releases', 'by hand'))
    before = snapshot(site)
    failed = run_module(atomic_symlink, dict(root=site, release='by hand'), capsys)
    path = os.path.join(site, 'releases', 'by hand')
    assert failed['rc'] == 1 and failed['failed_path'] == path
    assert failed['msg'] == 'The target %s is not a release cutover.web made (the history does not know it).' % path
    missing = run_module(atomic_symlink, dict(root=site, release='C'), capsys)
    assert missing['msg'] == 'The target %s does not exist.' % os.path.join(site, 'releases', 'C')
    assert snapshot(site) == before


def test_a_directory_at_the_link_is_swapped_only_when_asked(site, capsys):
    legacy = write_tree(os.path.join(site, 'public_html'), {'old.html': 'old'})
    args = dict(root=site, target='releases/A', link=legacy)
    refused = run_module(atomic_symlink, args, capsys)
    assert refused['rc'] == 1 and refused['failed_path'] == legacy
    assert os.path.isdir(legacy) and not os.path.islink(legacy)

    args['convert_directory'] = True
    before = snapshot(site)
    assert run_module(atomic_symlink, args, capsys, check_mode=True)['changed'] is True
    assert snapshot(site) == before
    converted = run_module(atomic_symlink, args, capsys)
    assert converted['changed'] is True and os.readlink(legacy) == 'releases/A'
    with open(os.path.join(converted['converted'], 'old.html')) as f:
        assert f.read() == 'old'
    assert run_module(atomic_symlink, args, capsys)['changed'] is False
