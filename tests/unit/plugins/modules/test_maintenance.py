# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""maintenance through AnsibleModule: the page file turned on and off in a real root."""

from __future__ import annotations

import os
import stat

from ansible_collections.cutover.web.plugins.modules import maintenance
from ansible_collections.cutover.web.tests.unit.helpers import read, run_module, snapshot


def test_on_off_check_mode_real_and_again(root, capsys):
    os.makedirs(root)
    page = os.path.join(root, 'maintenance.html')
    on = dict(root=root, content='<p>Back soon</p>')
    planned = run_module(maintenance, on, capsys, check_mode=True)
    assert planned['changed'] is True and planned['active'] is True and planned['was_active'] is False
    assert os.listdir(root) == []

    turned_on = run_module(maintenance, on, capsys)
    assert turned_on['changed'] is True and turned_on['diff']['after'] == '<p>Back soon</p>'
    assert read(page) == b'<p>Back soon</p>' and stat.S_IMODE(os.stat(page).st_mode) == 0o644
    assert os.listdir(root) == ['maintenance.html']  # no temporary file left beside it
    assert run_module(maintenance, on, capsys)['changed'] is False

    off = dict(root=root, state='absent')
    before = snapshot(root)
    assert run_module(maintenance, off, capsys, check_mode=True)['changed'] is True
    assert snapshot(root) == before
    lifted = run_module(maintenance, off, capsys)
    assert lifted['changed'] is True and lifted['was_active'] is True and not os.path.lexists(page)
    assert run_module(maintenance, off, capsys)['changed'] is False


def test_a_page_that_is_a_symlink_is_refused_naming_it(root, tmp_path, capsys):
    os.makedirs(root)
    elsewhere = tmp_path / 'elsewhere.html'
    elsewhere.write_text('x')
    page = os.path.join(root, 'maintenance.html')
    os.symlink(str(elsewhere), page)
    failed = run_module(maintenance, dict(root=root), capsys)
    assert failed['rc'] == 1 and failed['failed_path'] == page
    assert failed['msg'] == '%s is a symlink; cutover.web never follows links inside the root.' % page
    assert os.readlink(page) == str(elsewhere) and elsewhere.read_text() == 'x'
