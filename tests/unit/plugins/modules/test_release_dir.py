# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""release_dir through AnsibleModule: check mode, the real run, the run again, refusals, on real trees."""

from __future__ import annotations

import os

import pytest

from ansible_collections.cutover.web.plugins.modules import release_dir
from ansible_collections.cutover.web.tests.unit.helpers import read, run_module, snapshot, write_tree


@pytest.fixture
def src(tmp_path):
    return write_tree(tmp_path / 'src ü', {'index.html': 'v1', 'css/site.css': 'body {}', 'logo': ('link', 'index.html')})


def make(root, src, capsys, check_mode=False, **args):
    return run_module(release_dir, dict(root=root, src=src, sync=False, **args), capsys, check_mode)


def test_present_check_mode_real_and_again(root, src, capsys):
    os.makedirs(root)
    before = snapshot(root)
    planned = make(root, src, capsys, check_mode=True, id='r1')
    assert planned['changed'] is True and planned['rc'] == 0
    assert planned['id'] == 'r1' and planned['files'] == 2 and planned['files_written'] == 2
    assert planned['diff']['after'] == '%s\n' % planned['release_path']
    assert snapshot(root) == before

    made = make(root, src, capsys, id='r1')
    assert made['changed'] is True and made['reused'] is False
    assert made['release_path'] == os.path.join(root, 'releases', 'r1')
    assert read(os.path.join(made['release_path'], 'css/site.css')) == b'body {}'
    assert os.readlink(os.path.join(made['release_path'], 'logo')) == 'index.html'
    assert made['fingerprint'] == planned['fingerprint']

    made_tree = snapshot(root)
    again = make(root, src, capsys, id='r1')
    assert again['changed'] is False and again['reused'] is True and again['fingerprint'] == made['fingerprint']
    assert snapshot(root) == made_tree
    assert make(root, src, capsys, check_mode=True, id='r1')['changed'] is False


def test_same_content_without_id_is_the_same_release(root, src, capsys):
    first = make(root, src, capsys, stamp='20261122T101500Z')
    assert first['changed'] is True and first['id'].startswith('20261122T101500Z-')
    second = make(root, src, capsys, stamp='20261123T000000Z')
    assert second['changed'] is False and second['id'] == first['id']


def test_an_id_taken_by_other_content_is_refused(root, src, tmp_path, capsys):
    make(root, src, capsys, id='r1')
    other = write_tree(tmp_path / 'other', {'index.html': 'v2'})
    before = snapshot(root)
    failed = make(root, other, capsys, id='r1')
    assert failed['rc'] == 1 and failed['failed'] is True
    assert failed['msg'].startswith('The release %s already exists with other content' % os.path.join(root, 'releases', 'r1'))
    assert failed['failed_path'] == os.path.join(root, 'releases', 'r1')
    assert snapshot(root) == before


def test_a_missing_source_is_refused_naming_it(root, tmp_path, capsys):
    missing = str(tmp_path / 'nowhere')
    failed = make(root, missing, capsys, id='r1')
    assert failed['rc'] == 1 and failed['msg'] == 'The source %s does not exist.' % missing
    assert not os.path.lexists(root)


@pytest.mark.parametrize('state', ['failed', 'bad'])
def test_mark(root, src, capsys, state):
    make(root, src, capsys, id='r1')
    before = snapshot(root)
    args = dict(root=root, id='r1', state=state)
    planned = run_module(release_dir, args, capsys, check_mode=True)
    assert planned['changed'] is True and planned['diff'] == {'before': 'r1: ready\n', 'after': 'r1: %s\n' % state}
    assert snapshot(root) == before

    marked = run_module(release_dir, args, capsys)
    assert marked['changed'] is True and marked['state'] == state
    again = run_module(release_dir, args, capsys)
    assert again['changed'] is False and again['diff'] == {'before': 'r1: %s\n' % state, 'after': 'r1: %s\n' % state}


def test_marking_an_unknown_release_is_refused_naming_it(root, src, capsys):
    make(root, src, capsys, id='r1')
    os.mkdir(os.path.join(root, 'releases', 'by hand'))
    before = snapshot(root)
    for rid in ('nope', 'by hand'):
        failed = run_module(release_dir, dict(root=root, id=rid, state='failed'), capsys)
        path = os.path.join(root, 'releases', rid)
        assert failed['rc'] == 1
        assert failed['msg'] == ('The release %s does not exist (or was not made by cutover.web), so it cannot be '
                                 'marked failed.' % path)
        assert failed['failed_path'] == path
    assert snapshot(root) == before


def test_absent(root, src, capsys):
    made = make(root, src, capsys, id='r1')
    args = dict(root=root, id='r1', state='absent')
    before = snapshot(root)
    planned = run_module(release_dir, args, capsys, check_mode=True)
    assert planned['changed'] is True and planned['diff']['before'] == '%s\n' % made['release_path']
    assert snapshot(root) == before

    removed = run_module(release_dir, args, capsys)
    assert removed['changed'] is True and removed['state'] == 'absent'
    assert not os.path.lexists(made['release_path'])
    assert run_module(release_dir, args, capsys)['changed'] is False


def test_schema_version(root, src, capsys):
    # With a source in check mode, the release that would be made would get the version.
    planned = make(root, src, capsys, check_mode=True, id='r1', schema_version='0001')
    assert planned['changed'] is True and planned['schema_version'] == '0001'
    assert not os.path.lexists(root)

    made = make(root, src, capsys, id='r1', schema_version='0001')
    assert made['changed'] is True and made['schema_version'] == '0001'
    assert make(root, src, capsys, id='r1', schema_version='0001')['changed'] is False

    args = dict(root=root, id='r1', schema_version='0002')
    before = snapshot(root)
    planned = run_module(release_dir, args, capsys, check_mode=True)
    assert planned['changed'] is True and planned['diff'] == {'before': 'r1 schema: 0001\n', 'after': 'r1 schema: 0002\n'}
    assert snapshot(root) == before
    assert run_module(release_dir, args, capsys)['changed'] is True
    assert run_module(release_dir, args, capsys)['changed'] is False

    failed = run_module(release_dir, dict(root=root, id='r1', schema_version='two\nlines'), capsys)
    assert failed['rc'] == 1 and failed['msg'].startswith("The schema version 'two\\nlines' for %s is not usable"
                                                          % made['release_path'])


def test_isolated_then_sealed(root, src, tmp_path, capsys):
    first = make(root, src, capsys, id='r1')
    from ansible_collections.cutover.web.plugins.modules import atomic_symlink
    assert run_module(atomic_symlink, dict(root=root, release='r1'), capsys)['changed'] is True
    second = make(root, write_tree(tmp_path / 'src2', {'index.html': 'v2', 'css/site.css': 'body {}'}), capsys, id='r2')
    assert second['files_linked'] == 1
    site_css = os.path.join(second['release_path'], 'css/site.css')
    assert os.stat(site_css).st_nlink == 2

    args = dict(root=root, id='r2', state='isolated')
    before = snapshot(root)
    planned = run_module(release_dir, args, capsys, check_mode=True)
    assert planned['changed'] is True and planned['files_copied'] == 1
    assert snapshot(root) == before
    isolated = run_module(release_dir, args, capsys)
    assert isolated['changed'] is True and os.stat(site_css).st_nlink == 1
    assert read(os.path.join(first['release_path'], 'css/site.css')) == b'body {}'
    assert run_module(release_dir, args, capsys)['changed'] is False

    sealed = run_module(release_dir, dict(root=root, id='r2', state='sealed', sync=False), capsys)
    assert sealed['changed'] is True and sealed['files_relinked'] == 1 and os.stat(site_css).st_nlink == 2
    assert run_module(release_dir, dict(root=root, id='r2', state='sealed', sync=False), capsys)['changed'] is False

    live = run_module(release_dir, dict(root=root, id='r1', state='isolated'), capsys)
    assert live['rc'] == 1 and live['msg'].startswith('The release %s is live, so it cannot be' % first['release_path'])
