# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""shared_links through AnsibleModule: links, seeded and created shared paths, their modes, on real trees."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.cutover.web.plugins.modules import release_dir, shared_links
from ansible_collections.cutover.web.tests.unit.helpers import read, run_module, snapshot, write_tree


@pytest.fixture
def site(root, tmp_path, capsys):
    """A root with the release r1, which ships public/media/logo.png."""
    src = write_tree(tmp_path / 'src', {'index.php': '<?php', 'public/media/logo.png': 'png'})
    assert run_module(release_dir, dict(root=root, src=src, id='r1', sync=False), capsys)['changed'] is True
    return root


def link(site, capsys, check_mode=False, **args):
    return run_module(shared_links, dict(dict(root=site, release='r1', dirs=['public/media', 'var/sessions'],
                                              files=['.env']), **args), capsys, check_mode)


def test_check_mode_real_and_again(site, capsys):
    release = os.path.join(site, 'releases', 'r1')
    before = snapshot(site)
    planned = link(site, capsys, check_mode=True)
    assert planned['changed'] is True
    assert planned['linked'] == ['public/media', 'var/sessions', '.env']
    assert planned['seeded'] == ['public/media'] and planned['created'] == ['var/sessions', '.env']
    assert snapshot(site) == before

    done = link(site, capsys)
    assert done['changed'] is True and done['linked'] == planned['linked']
    assert os.readlink(os.path.join(release, 'public/media')) == '../../../shared/public/media'
    assert os.readlink(os.path.join(release, '.env')) == '../../shared/.env'
    assert read(os.path.join(site, 'shared/public/media/logo.png')) == b'png'
    assert stat.S_IMODE(os.stat(os.path.join(site, 'shared/var/sessions')).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(os.path.join(site, 'shared/.env')).st_mode) == 0o640

    after = snapshot(site)
    again = link(site, capsys)
    assert again['changed'] is False and again['linked'] == []
    assert snapshot(site) == after


@pytest.mark.parametrize('mode, file_mode', [('0770', '0600'), ('770', '600'), (0o770, 0o600)])
def test_modes_of_what_it_creates(site, capsys, mode, file_mode):
    assert link(site, capsys, mode=mode, file_mode=file_mode)['changed'] is True
    assert stat.S_IMODE(os.stat(os.path.join(site, 'shared/var/sessions')).st_mode) == 0o770
    assert stat.S_IMODE(os.stat(os.path.join(site, 'shared/.env')).st_mode) == 0o600


@pytest.mark.parametrize('option', ['mode', 'file_mode'])
@pytest.mark.parametrize('value', ['u=rwx', '0o755', '7', 0o10000])
def test_a_mode_that_is_not_octal_is_refused_before_anything_changes(site, capsys, option, value):
    before = snapshot(site)
    failed = link(site, capsys, **{option: value})
    shared = os.path.join(site, 'shared')
    assert failed['rc'] == 1 and failed['failed_path'] == shared
    assert failed['msg'] == ('%s is %r for the shared paths this module creates under %s, but it must be an octal '
                             'mode such as "0755".' % (option, value, shared))
    assert snapshot(site) == before


def test_an_unknown_owner_is_refused_before_anything_changes(site, capsys):
    before = snapshot(site)
    for kind in ('owner', 'group'):
        failed = link(site, capsys, **{kind: 'no such name here'})
        assert failed['rc'] == 1 and failed['failed_path'] == site
        assert failed['msg'] == ("The %s 'no such name here' of the shared paths under %s does not exist on this "
                                 "host, so nothing was linked." % (kind, os.path.join(site, 'shared')))
    assert snapshot(site) == before


def test_owner_and_group_of_what_it_creates(site, capsys):
    if os.geteuid() != 0:
        pytest.skip('giving files to another user needs root')
    assert link(site, capsys, owner='nobody', group='nogroup' if _group('nogroup') else 'nobody')['changed'] is True
    for rel in ('shared/var/sessions', 'shared/.env', 'shared/public/media', 'shared/public/media/logo.png'):
        assert os.stat(os.path.join(site, rel)).st_uid == _uid('nobody'), rel


def _uid(name):
    import pwd
    return pwd.getpwnam(name).pw_uid


def _group(name):
    import grp
    try:
        return grp.getgrnam(name)
    except KeyError:
        return None


def test_a_path_outside_the_release_is_refused_naming_the_shared_directory(site, capsys):
    before = snapshot(site)
    failed = link(site, capsys, dirs=['../escape'], files=[])
    assert failed['rc'] == 1 and failed['failed_path'] == os.path.join(site, 'shared')
    assert failed['msg'].startswith("The shared path '../escape' must be a relative path inside a release")
    assert snapshot(site) == before
