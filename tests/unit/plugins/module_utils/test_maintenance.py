# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The maintenance window: one page file in the deploy root, turned on by rename and off by unlink."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.cutover.web.plugins.module_utils._maintenance import DEFAULT_PAGE, MAX_PAGE_BYTES, window
from ansible_collections.cutover.web.plugins.module_utils._releases import CutoverError, Layout


@pytest.fixture
def site(layout):
    layout.ensure_dirs()
    return layout


def page_of(layout):
    with open(layout.maintenance_page, 'rb') as f:
        return f.read()


def listing(layout):
    return sorted(os.listdir(layout.root))


def test_on_off_idempotent_and_check_mode(site):
    before = listing(site)
    result = window(site, 'present', check_mode=True)
    assert result['changed'] and result['active'] and not result['was_active']
    assert not os.path.lexists(site.maintenance_page)
    assert listing(site) == before

    result = window(site, 'present')
    assert result['changed'] and result['active']
    assert page_of(site) == DEFAULT_PAGE.encode()
    # Apache's user reads it; no temporary file is left beside it.
    assert stat.S_IMODE(os.stat(site.maintenance_page).st_mode) == 0o644
    assert listing(site) == sorted(before + ['maintenance.html'])
    assert result['diff']['after'] == DEFAULT_PAGE and result['diff']['before'] == ''

    assert window(site, 'present')['changed'] is False

    result = window(site, 'absent', check_mode=True)
    assert result['changed'] and not result['active'] and result['was_active']
    assert os.path.exists(site.maintenance_page)

    result = window(site, 'absent')
    assert result['changed'] and result['seconds'] >= 0 and result['since']
    assert not os.path.lexists(site.maintenance_page)
    assert window(site, 'absent')['changed'] is False
    assert listing(site) == before


def test_page_from_content_and_from_a_file_of_the_release(site, tmp_path):
    window(site, 'present', content='<p>back at 10</p>')
    assert page_of(site) == b'<p>back at 10</p>'
    page = os.path.join(site.releases_dir, 'r1', 'public', 'maintenance.html')
    os.makedirs(os.path.dirname(page))
    with open(page, 'wb') as f:
        f.write(b'<p>from the release</p>\n')
    result = window(site, 'present', src=page)
    assert result['changed'] and result['diff']['before'] == '<p>back at 10</p>'
    assert page_of(site) == b'<p>from the release</p>\n'


def test_refuses_a_symlinked_page_source(site, tmp_path):
    secret = tmp_path / 'secret'
    secret.write_text('password')
    release = os.path.join(site.releases_dir, 'r1')
    os.makedirs(release)
    os.symlink(str(secret), os.path.join(release, 'maintenance.html'))
    with pytest.raises(CutoverError, match='reached through a symlink inside the deploy root'):
        window(site, 'present', src=os.path.join(release, 'maintenance.html'))
    # Outside the root, the file named must be the file itself.
    os.symlink(str(secret), str(tmp_path / 'page.html'))
    with pytest.raises(CutoverError, match='page.html is a symlink; give the file itself'):
        window(site, 'present', src=str(tmp_path / 'page.html'))
    # A directory on the way that is a link out of the root.
    (tmp_path / 'elsewhere').mkdir()
    (tmp_path / 'elsewhere' / 'page.html').write_text('<p>x</p>')
    os.symlink(str(tmp_path / 'elsewhere'), os.path.join(release, 'public'))
    with pytest.raises(CutoverError, match='reached through a symlink inside the deploy root'):
        window(site, 'present', src=os.path.join(release, 'public', 'page.html'))
    assert not os.path.lexists(site.maintenance_page)


@pytest.mark.parametrize('make, message', [
    (lambda p: None, 'No such file or directory'),
    (os.mkdir, 'is not a regular file'),
    (lambda p: open(p, 'wb').write(b'x' * (MAX_PAGE_BYTES + 1)), 'is larger than'),
    (lambda p: open(p, 'wb').write(b' \n'), 'is empty'),
])
def test_refuses_bad_pages_changing_nothing(site, tmp_path, make, message):
    src = str(tmp_path / 'page.html')
    make(src)
    with pytest.raises(CutoverError, match=message) as info:
        window(site, 'present', src=src)
    assert info.value.msg.count('. ') == 0
    assert not os.path.lexists(site.maintenance_page)
    with pytest.raises(CutoverError, match='not an absolute path'):
        window(site, 'present', src='page.html')


def test_every_module_refuses_a_page_that_is_a_link_or_a_directory(site, tmp_path):
    target = tmp_path / 'outside.html'
    target.write_text('keep me')
    os.symlink(str(target), site.maintenance_page)
    for call in (lambda: window(site, 'absent'), lambda: window(site, 'present'), Layout(site.root).check_state):
        with pytest.raises(CutoverError, match='maintenance.html is a symlink'):
            call()
    assert target.read_text() == 'keep me' and os.path.islink(site.maintenance_page)
    os.unlink(site.maintenance_page)
    os.mkdir(site.maintenance_page)
    with pytest.raises(CutoverError, match='maintenance.html exists and is not a regular file'):
        Layout(site.root).check_state()


def test_refuses_a_root_that_does_not_exist(layout):
    with pytest.raises(CutoverError, match='does not exist'):
        window(layout, 'present')
    assert not os.path.lexists(layout.root)
