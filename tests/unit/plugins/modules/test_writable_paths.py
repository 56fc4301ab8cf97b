# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""writable_paths through AnsibleModule: a release directory given to the web server group, on a real tree."""

from __future__ import annotations

import grp
import os
import pwd
import stat

import pytest

from ansible_collections.cutover.web.plugins.modules import writable_paths
from ansible_collections.cutover.web.tests.unit.helpers import deploy, run_module, snapshot


@pytest.fixture
def site(root, tmp_path, capsys):
    """Releases A and B that went live in turn, B current."""
    return deploy(root, tmp_path, capsys, dict((rid, {'index.php': rid, 'var/cache/.keep': ''}) for rid in 'AB'))


def test_writable_paths_check_mode_real_and_again(site, capsys):
    if os.geteuid() != 0:
        pytest.skip('giving a directory to the web server group needs root')
    try:
        user = pwd.getpwnam('www-data')
    except KeyError:
        pytest.skip('no www-data user here')
    cache = os.path.join(site, 'releases', 'B', 'var', 'cache')
    args = dict(root=site, release='B', dirs=['var/cache'], user='www-data', method='group')
    before = snapshot(site)
    planned = run_module(writable_paths, args, capsys, check_mode=True)
    assert planned['changed'] is True and planned['group'] == grp.getgrgid(user.pw_gid).gr_name
    assert snapshot(site) == before

    done = run_module(writable_paths, args, capsys)
    assert done['changed'] is True
    st = os.stat(cache)
    assert st.st_gid == user.pw_gid and st.st_mode & stat.S_IWGRP and st.st_mode & stat.S_ISGID

    after = snapshot(site)
    assert run_module(writable_paths, args, capsys)['changed'] is False
    assert snapshot(site) == after

    unknown = run_module(writable_paths, dict(args, user='no such user here'), capsys)
    assert unknown['rc'] == 1 and 'no such user here' in unknown['msg']
