# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Writable paths for the web server user, on real files, real hardlinks and real ACLs (getfacl)."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess

import pytest

from ansible_collections.cutover.web.plugins.module_utils._releases import CutoverError
from ansible_collections.cutover.web.plugins.module_utils._shared import apply, plan
from ansible_collections.cutover.web.plugins.module_utils._writable import make_writable, web_rule
from ansible_collections.cutover.web.tests.unit.helpers import new_release, snapshot, write_tree

WEB = 'www-data'

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which('getfacl') is None,
                                reason='changing groups and ACLs for www-data needs root and getfacl')


def facl(path):
    """getfacl of ``path`` without following a link, its header left out."""
    out = subprocess.run(['getfacl', '-P', '-p', '-n', '--omit-header', str(path)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, check=True)
    return out.stdout.decode()


def state(path):
    """Every entry under ``path``: mode, owner, group, link count, content or link text, and ACL."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(str(path)):
        for name in [''] + dirnames + filenames if dirpath == str(path) else dirnames + filenames:
            full = os.path.join(dirpath, name) if name else dirpath
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                found[full] = ('l', os.readlink(full))
                continue
            data = None
            if stat.S_ISREG(st.st_mode):
                with open(full, 'rb') as f:
                    data = f.read()
            found[full] = (stat.filemode(st.st_mode), st.st_uid, st.st_gid, data, facl(full))
    return found


def writable(layout, release_id, dirs=(), files=(), method='acl', shared_dirs=(), shared_files=(), check=False,
             user=WEB):
    return make_writable(layout, release_id, list(dirs), list(files), web_rule(method, user),
                         shared_dirs=list(shared_dirs), shared_files=list(shared_files), check_mode=check)


def can_write(path):
    """Whether www-data can make a file in the directory ``path``, checked by www-data itself (started in it: the
    test's own directories above it are root's)."""
    probe = 'probe-%d' % os.getpid()
    pw = pwd.getpwnam(WEB)
    proc = subprocess.run(['setpriv', '--reuid', str(pw.pw_uid), '--regid', str(pw.pw_gid), '--init-groups',
                           'sh', '-c', 'echo x > "$1"', 'sh', probe], cwd=str(path), stderr=subprocess.PIPE,
                          check=False)
    if proc.returncode == 0:
        os.unlink(os.path.join(str(path), probe))
    return proc.returncode == 0


def world_writable(path):
    return [p for p, s in state(path).items() if s[0] != 'l' and s[0][8] == 'w']


@pytest.fixture
def site(layout, tmp_path):
    # Two releases of one source: the second shares its unchanged files with the first by hardlink.
    files = {'public/index.php': '<?php', 'var/cache/.keep': '', 'var/cache/shipped/data.php': '<?php return 1;',
             'var/log/.keep': ''}
    new_release(layout, tmp_path / 'src1', files, release_id='r1')
    new_release(layout, tmp_path / 'src2', files, release_id='r2')
    return layout


@pytest.mark.parametrize('method', ['acl', 'group'])
def test_a_release_cache_becomes_writable_for_the_web_server_user_only(site, method):
    r2 = site.release_path('r2')
    assert os.stat(os.path.join(r2, 'var/cache/.keep')).st_nlink == 2  # shared with r1 by hardlink
    before = state(site.release_path('r1'))
    report = writable(site, 'r2', dirs=['var/cache', 'var/sessions'], method=method)
    assert report['changed']
    assert [(p['path'], p['created'], p['copied']) for p in report['paths']] == [
        ('var/cache', False, 2), ('var/sessions', True, 0)]
    for d in ('var/cache', 'var/cache/shipped', 'var/sessions'):
        assert can_write(os.path.join(r2, d))
    # Nothing of the other release changed: bytes, modes, owners, ACLs.
    assert state(site.release_path('r1')) == before
    assert os.stat(os.path.join(r2, 'var/cache/.keep')).st_nlink == 1
    # Nothing outside the paths named: var/log and public are as they were.
    assert not can_write(os.path.join(r2, 'var/log'))
    assert not can_write(os.path.join(r2, 'public'))
    assert world_writable(site.root) == []
    if method == 'acl':
        assert 'user:%d:rwx' % pwd.getpwnam(WEB).pw_uid in facl(os.path.join(r2, 'var/cache'))
        assert 'default:user:%d:rwx' % pwd.getpwnam(WEB).pw_uid in facl(os.path.join(r2, 'var/cache'))
    else:
        st = os.stat(os.path.join(r2, 'var/cache'))
        assert st.st_gid == pwd.getpwnam(WEB).pw_gid and st.st_mode & 0o7777 == 0o2775


@pytest.mark.parametrize('method', ['acl', 'group'])
def test_a_second_run_and_what_php_wrote_change_nothing(site, method):
    writable(site, 'r2', dirs=['var/cache'], files=['var/app.log'], method=method)
    pw = pwd.getpwnam(WEB)
    written = os.path.join(site.release_path('r2'), 'var/cache/page.html')
    with open(written, 'w') as f:
        f.write('cached')
    os.chown(written, pw.pw_uid, pw.pw_gid)
    os.chmod(written, 0o644)
    before = state(site.root)
    again = writable(site, 'r2', dirs=['var/cache'], files=['var/app.log'], method=method)
    assert not again['changed'] and again['lines'] == []
    assert state(site.root) == before


def test_check_mode_says_what_would_change_and_changes_nothing(site):
    before = snapshot(site.root), state(site.root)
    report = writable(site, 'r2', dirs=['var/cache', 'var/new'], check=True)
    assert report['changed']
    assert [(p['path'], p['created'], p['changed'], p['copied']) for p in report['paths']] == [
        ('var/cache', False, 4, 2), ('var/new', True, 1, 0)]
    assert (snapshot(site.root), state(site.root)) == before


def test_a_shared_path_is_made_writable_in_shared_once(site):
    for rid in ('r1', 'r2'):
        apply(site, rid, plan(site, rid, ['public/media', 'storage'], []), lambda *a: None, 0o755, 0o640)
    report = writable(site, 'r2', dirs=['public/media', 'storage/framework/cache'],
                      shared_dirs=['public/media', 'storage'])
    assert [(p['location'], p['shared'], p['created']) for p in report['paths']] == [
        (os.path.join(site.shared_dir, 'public/media'), True, False),
        (os.path.join(site.shared_dir, 'storage/framework/cache'), True, True)]
    assert can_write(os.path.join(site.release_path('r1'), 'public/media'))  # through the link, in every release
    assert os.path.islink(os.path.join(site.release_path('r2'), 'public/media'))
    assert not writable(site, 'r1', dirs=['public/media'], shared_dirs=['public/media'])['changed']


def test_a_symlink_inside_the_tree_is_not_followed(site, tmp_path):
    outside = write_tree(tmp_path / 'outside', {'secret': 'x'})
    os.symlink(outside, os.path.join(site.release_path('r2'), 'var/cache/link'))
    before = state(outside)
    writable(site, 'r2', dirs=['var/cache'])
    assert state(outside) == before
    assert os.readlink(os.path.join(site.release_path('r2'), 'var/cache/link')) == outside


@pytest.mark.parametrize('method', ['acl', 'group'])
def test_a_set_user_id_file_made_writable_loses_that_bit(site, method):
    path = os.path.join(site.release_path('r2'), 'var/cache/tool')
    write_tree(site.release_path('r2'), {'var/cache/tool': '#!/bin/sh'})
    os.chmod(path, 0o6755)
    writable(site, 'r2', dirs=['var/cache'], method=method)
    assert os.stat(path).st_mode & 0o6000 == 0


@pytest.mark.parametrize('rel, files, why', [
    ('/etc', {}, "The writable path '/etc' must be a relative path inside the release %s, and it is absolute"),
    ('var/../../r1/var', {}, 'and it has a ".." part'),
    ('.cutover/x', {}, 'and it is under .cutover'),
    ('var/cache', {'var': ('link', '/tmp')},
     "The writable path 'var/cache' cannot be made writable because %s/var is a symlink"),
    ('public/index.php/x', {}, "because %s/public/index.php is not a directory"),
    ('cache', {'cache': ('link', 'var/cache')}, '%s/cache is a symlink; a writable path must be a real directory'),
    ('public/index.php', {}, '%s/public/index.php is a regular file, but it is listed as a writable directory'),
])
def test_a_path_outside_the_release_or_through_a_link_is_refused_with_nothing_changed(site, rel, files, why):
    r2 = site.release_path('r2')
    for path, content in files.items():
        shutil.rmtree(os.path.join(r2, path), ignore_errors=True)
    write_tree(r2, files)
    before = state(site.root)
    with pytest.raises(CutoverError) as err:
        # A valid path listed first: the refusal comes before it is changed.
        writable(site, 'r2', dirs=['cache-ok', rel])
    assert (why % r2 if '%s' in why else why) in err.value.msg
    assert err.value.msg.endswith('so nothing was made writable.')
    assert state(site.root) == before


def test_an_unknown_web_server_user_is_refused(site):
    with pytest.raises(CutoverError) as err:
        web_rule('acl', 'no-such-web-user')
    assert err.value.msg == ("The web server user 'no-such-web-user' does not exist on this host, so no path was "
                             "made writable for it (set the web server user of this host).")
