# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""release_info through AnsibleModule: what it reads from a real root, which it never changes."""

from __future__ import annotations

import os

import pytest

from ansible_collections.cutover.web.plugins.modules import release_info
from ansible_collections.cutover.web.tests.unit.helpers import deploy, run_module, snapshot


@pytest.fixture
def site(root, tmp_path, capsys):
    """Releases A and B that went live in turn, B current."""
    return deploy(root, tmp_path, capsys, dict((rid, {'index.php': rid, 'var/cache/.keep': ''}) for rid in 'AB'))


def test_release_info_reads_and_changes_nothing(site, capsys):
    before = snapshot(site)
    for check_mode in (True, False):
        info = run_module(release_info, dict(root=site), capsys, check_mode=check_mode)
        assert info['changed'] is False and info['current'] == 'B' and info['rollback_target'] == 'A'
        assert [(r['id'], r['state']) for r in info['releases']] == [('B', 'active'), ('A', 'ready')]
        assert info['lock'] is None
    assert snapshot(site) == before


def test_release_info_refuses_a_history_that_is_not_one(site, capsys):
    history = os.path.join(site, '.cutover', 'history.jsonl')
    with open(history, 'ab') as f:
        f.write(b'not json\n{"seq": 99, "event": "marked"}\n')
    failed = run_module(release_info, dict(root=site), capsys)
    assert failed['rc'] == 1 and failed['failed_path'] == history
    assert failed['msg'].startswith('The history %s is corrupt at line ' % history)
