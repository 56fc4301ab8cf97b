# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Making a release from a directory, a tar, a zip or a git commit, with real files, links and mounts."""

from __future__ import annotations

import io
import os
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
import time
import zipfile

import pytest

from ansible_collections.cutover.web.plugins.module_utils._build import (
    Builder, isolate_release, load_manifest, make_release, predict_commit, scan, seal_release,
)
from ansible_collections.cutover.web.plugins.module_utils._prune import prune, remove_release
from ansible_collections.cutover.web.plugins.module_utils._releases import (
    LONGEST_ID_SUFFIX, MAX_ID_LENGTH, CutoverError, Layout, staging_name,
)
from ansible_collections.cutover.web.plugins.module_utils._sources import (
    DirectorySource, git_description, git_source, open_source,
)
from ansible_collections.cutover.web.plugins.module_utils._switch import switch
from ansible_collections.cutover.web.tests.unit.helpers import mark, read, snapshot, write_tree

DERIVED_ID = re.compile(r'^\d{8}T\d{6}Z-([0-9a-f]{12})$')
MTIME = 1700000000

SITE = {
    'index.html': '<h1>home</h1>',
    'css/site.css': 'body { color: black }',
    'js/app.js': 'console.log(1)',
}


def build(layout, src, release_id=None, **kwargs):
    kwargs.setdefault('sync', False)
    return make_release(layout, open_source(str(src), kwargs.pop('exclude', None),
                                            kwargs.pop('strip_components', 0)), release_id, **kwargs)


def ino(path):
    return os.lstat(str(path)).st_ino


def make_tar(path, members, compression='gz'):
    """members: [(name, content)] where content is bytes (file), None (dir), ('link', text) or ('hard', name)."""
    with tarfile.open(str(path), 'w:' + compression) as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.mtime = MTIME
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(content, tuple):
                info.type = tarfile.SYMTYPE if content[0] == 'link' else tarfile.LNKTYPE
                info.linkname = content[1]
                info.mode = 0o644
                tar.addfile(info)
            else:
                mode = 0o755 if name.endswith('.sh') else 0o644
                info.size, info.mode = len(content), mode
                tar.addfile(info, io.BytesIO(content))
    return str(path)


def make_zip(path, members):
    """members: [(name, content)] where content is bytes (file), None (dir) or ('link', text)."""
    with zipfile.ZipFile(str(path), 'w') as zf:
        for name, content in members:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 2, 3, 4, 6))
            if content is None:
                info.external_attr = (stat.S_IFDIR | 0o755) << 16
                zf.writestr(info, b'')
            elif isinstance(content, tuple):
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                zf.writestr(info, content[1].encode('utf-8'))
            else:
                mode = 0o755 if name.endswith('.sh') else 0o644
                info.external_attr = (stat.S_IFREG | mode) << 16
                zf.writestr(info, content)
    return str(path)


def git(cwd, *args):
    cmd = ['git', '-c', 'user.name=Test', '-c', 'user.email=test@example.com', '-c', 'init.defaultBranch=main',
           '-c', 'commit.gpgsign=false'] + list(args)
    proc = subprocess.run(cmd, cwd=str(cwd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
    return proc.stdout.decode('utf-8').strip()


# -- from a directory ----------------------------------------------------------------------------

def test_directory_source_makes_a_release(layout, tmp_path):
    src = write_tree(tmp_path / 'src', SITE)
    os.chmod(os.path.join(src, 'js/app.js'), 0o755)
    result = build(layout, src, sync=True)

    assert result['changed'] is True and result['reused'] is False
    m = DERIVED_ID.match(result['id'])
    assert m and m.group(1) == result['fingerprint'][:12]
    path = os.path.join(layout.root, 'releases', result['id'])
    assert result['release_path'] == path
    assert {rel: read(os.path.join(path, rel)).decode() for rel in SITE} == SITE
    assert stat.S_IMODE(os.stat(os.path.join(path, 'js/app.js')).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o755
    assert (result['files'], result['bytes']) == (3, sum(len(v) for v in SITE.values()))
    assert (result['files_written'], result['files_linked'], result['base']) == (3, 0, None)
    assert result['source'] == 'dir:%s' % src and result['revision'] is None
    assert os.listdir(layout.releases_dir) == [result['id']]
    assert os.listdir(layout.staging_dir) == []
    assert os.path.isfile(os.path.join(layout.manifests_dir, result['id'] + '.json'))
    created = layout.read_history()[-1]
    assert (created['event'], created['release'], created['fingerprint']) == \
        ('created', result['id'], result['fingerprint'])
    assert layout.releases()[result['id']].state == 'ready'
    assert not os.path.lexists(layout.current_link)


def test_same_source_again_is_reused_unchanged(layout, tmp_path):
    src = write_tree(tmp_path / 'src', SITE)
    first = build(layout, src)
    before = snapshot(layout.root)

    again = build(layout, src)
    assert again['changed'] is False and again['reused'] is True
    assert again['id'] == first['id'] and again['fingerprint'] == first['fingerprint']
    assert snapshot(layout.root) == before

    # Even with checksum=true (every file hashed) the content is the same.
    assert build(layout, src, checksum=True)['id'] == first['id']
    assert snapshot(layout.root) == before


def test_one_changed_file_gives_a_release_sharing_unchanged_files(layout, tmp_path):
    src = write_tree(tmp_path / 'src', SITE)
    first = build(layout, src, 'v1')
    switch(layout, release='v1')
    with open(os.path.join(src, 'js/app.js'), 'w') as f:
        f.write('console.log(2)')

    second = build(layout, src)
    assert second['changed'] is True and second['id'] != first['id']
    assert second['base'] == 'v1'
    assert (second['files_linked'], second['files_written']) == (2, 1)
    assert second['bytes_written'] == len('console.log(2)')
    old, new = layout.release_path('v1'), second['release_path']
    for rel in ('index.html', 'css/site.css'):
        assert ino(os.path.join(new, rel)) == ino(os.path.join(old, rel))
    assert ino(os.path.join(new, 'js/app.js')) != ino(os.path.join(old, 'js/app.js'))
    assert read(os.path.join(new, 'js/app.js')) == b'console.log(2)'
    assert read(os.path.join(old, 'js/app.js')) == b'console.log(1)'
    assert os.readlink(layout.current_link) == 'releases/v1'


def test_check_mode_changes_nothing_and_predicts_the_work(layout, tmp_path):
    src = write_tree(tmp_path / 'src', SITE)
    build(layout, src, 'v1')
    switch(layout, release='v1')
    with open(os.path.join(src, 'index.html'), 'w') as f:
        f.write('<h1>new home</h1>')
    before = snapshot(layout.root)

    predicted = build(layout, src, check_mode=True)
    assert snapshot(layout.root) == before
    assert predicted['changed'] is True and predicted['reused'] is False
    assert (predicted['files_linked'], predicted['files_written']) == (2, 1)
    assert predicted['bytes_written'] == len('<h1>new home</h1>')
    assert not os.path.exists(predicted['release_path'])

    real = build(layout, src)
    for key in ('files_linked', 'files_written', 'bytes_linked', 'bytes_written', 'fingerprint', 'base'):
        assert real[key] == predicted[key], key


def test_check_mode_on_a_fresh_root_creates_nothing(root, tmp_path):
    src = write_tree(tmp_path / 'src', SITE)
    result = build(Layout(root), src, u'v 2 \u00fc', check_mode=True)
    assert result['changed'] is True and result['files_written'] == 3
    assert result['release_path'] == os.path.join(root, 'releases', u'v 2 \u00fc')
    assert not os.path.exists(root)


def test_explicit_id_with_other_content_is_refused(layout, tmp_path):
    src = write_tree(tmp_path / 'src', SITE)
    build(layout, src, 'v1')
    # Same content under the same id: found again, nothing made.
    assert build(layout, src, 'v1')['changed'] is False
    with open(os.path.join(src, 'index.html'), 'w') as f:
        f.write('other')
    before = snapshot(layout.root)

    with pytest.raises(CutoverError) as exc:
        build(layout, src, 'v1')
    path = layout.release_path('v1')
    assert exc.value.msg.startswith('The release %s already exists with other content' % path)
    assert exc.value.path == path
    assert snapshot(layout.root) == before


def test_explicit_id_of_a_directory_not_made_here_is_refused(layout, tmp_path):
    os.makedirs(os.path.join(layout.releases_dir, 'v1'))
    src = write_tree(tmp_path / 'src', SITE)
    before = snapshot(layout.root)
    with pytest.raises(CutoverError) as exc:
        build(layout, src, 'v1')
    assert exc.value.msg.startswith('%s already exists but is not a release cutover.web made' % layout.release_path('v1'))
    assert snapshot(layout.root) == before


def test_empty_source_is_refused(root, tmp_path):
    src = write_tree(tmp_path / 'src', {'assets': None, 'assets/img': None})
    with pytest.raises(CutoverError) as exc:
        build(Layout(root), src)
    assert exc.value.msg == 'The source %s is empty (no files to release).' % src
    assert not os.path.exists(root)


def test_missing_source_is_refused(tmp_path):
    missing = str(tmp_path / 'no such dir')
    with pytest.raises(CutoverError) as exc:
        open_source(missing)
    assert exc.value.msg == 'The source %s does not exist.' % missing


def test_source_file_that_is_not_an_archive_is_refused(tmp_path):
    path = tmp_path / 'notes.txt'
    path.write_text('just text')
    with pytest.raises(CutoverError) as exc:
        open_source(str(path))
    assert exc.value.msg == 'The source %s is a file but not a tar or zip archive.' % path


def test_failed_release_is_not_reused_for_the_same_content(layout, tmp_path):
    src = write_tree(tmp_path / 'src', SITE)
    first = build(layout, src)
    mark(layout, first['id'], 'failed')
    again = build(layout, src)
    assert again['changed'] is True and again['id'] != first['id']
    assert again['fingerprint'] == first['fingerprint']
    assert sorted(os.listdir(layout.releases_dir)) == sorted([first['id'], again['id']])


# -- names, symlinks, excludes, special files ------------------------------------------------------

def test_names_with_spaces_and_non_ascii(tmp_path):
    os.mkdir(str(tmp_path / u'w\u00e9b root'))
    root = str(tmp_path / u'w\u00e9b root' / u'sh\u00f6p')
    layout = Layout(root)
    files = {u'd\u00efr \u00fc/f\u00efle name.txt': u'gr\u00fc\u00df', u'\u65e5\u672c.html': 'nihon', 'a b/c d': 'x'}
    src = write_tree(tmp_path / u'src \u00fc', files)
    result = build(layout, src, u'v 2 \u00fc', sync=True)
    path = os.path.join(root, 'releases', u'v 2 \u00fc')
    assert result['release_path'] == path
    for rel, content in files.items():
        assert read(os.path.join(path, rel)) == content.encode('utf-8')
    assert build(layout, src)['reused'] is True
    switch(layout, release=u'v 2 \u00fc')
    assert os.readlink(os.path.join(root, 'current')) == u'releases/v 2 \u00fc'


def test_symlinks_in_the_source_are_kept_as_symlinks(layout, tmp_path):
    outside = tmp_path / 'outside'
    outside.mkdir()
    src = write_tree(tmp_path / 'src', {
        'index.html': 'home',
        'sub/page.html': 'page',
        'home.html': ('link', 'index.html'),
        'docs': ('link', 'sub'),
        'uploads': ('link', str(outside)),
        'dangling': ('link', 'nowhere/at/all'),
    })
    path = build(layout, src)['release_path']
    for name, text in (('home.html', 'index.html'), ('docs', 'sub'), ('uploads', str(outside)),
                       ('dangling', 'nowhere/at/all')):
        assert os.path.islink(os.path.join(path, name))
        assert os.readlink(os.path.join(path, name)) == text
    assert os.listdir(str(outside)) == []


def test_exclude_patterns(layout, tmp_path):
    src = write_tree(tmp_path / 'src', {
        'index.html': 'home',
        'debug.log': 'log',
        'sub/deep.log': 'log',
        'node_modules/x/index.js': 'js',
        'cache/a': 'a',
        'sub/skip.txt': 'skip',
        'other/skip.txt': 'keep',
        '.git/HEAD': 'ref',
    })
    path = build(layout, src, exclude=['*.log', 'node_modules', 'cache/', 'sub/skip.txt', '.git'])['release_path']
    found = sorted(os.path.relpath(os.path.join(d, f), path) for d, _dirs, fs in os.walk(path) for f in fs)
    assert found == ['index.html', 'other/skip.txt']
    assert sorted(os.listdir(path)) == ['index.html', 'other', 'sub']


@pytest.mark.parametrize('pattern', ['node_modules', 'node_modules/', 'web/node_modules', '*_modules'])
def test_exclude_of_a_directory_leaves_out_what_an_archive_lists_below_it(layout, tmp_path, pattern):
    # An archive lists members by their full path, often without a member for their directory.
    archive = make_tar(tmp_path / 'site.tar.gz', [
        ('web/index.html', b'home'),
        ('web/node_modules/x/index.js', b'js'),
        ('web/node_modules/y.js', b'js'),
    ])
    path = build(layout, archive, exclude=[pattern])['release_path']
    found = sorted(os.path.relpath(os.path.join(d, f), path) for d, _dirs, fs in os.walk(path) for f in fs)
    assert found == ['web/index.html']
    assert not os.path.exists(os.path.join(path, 'web', 'node_modules'))


def test_special_files_are_left_out_and_reported(layout, tmp_path):
    src = write_tree(tmp_path / 'src', {'index.html': 'home'})
    os.mkfifo(os.path.join(src, 'pipe'))
    result = build(layout, src)
    assert result['special_skipped'] == ['pipe']
    assert os.listdir(result['release_path']) == ['index.html']


def test_file_rewritten_in_place_in_the_base_release_is_copied_not_linked(layout, tmp_path):
    src = write_tree(tmp_path / 'src', SITE)
    build(layout, src, 'v1')
    switch(layout, release='v1')
    # A build hook edits a file of the live release in place (same size, new mtime).
    tampered = os.path.join(layout.release_path('v1'), 'index.html')
    with open(tampered, 'r+b') as f:
        f.write(b'<h1>HACK</h1>')
    with open(os.path.join(src, 'js/app.js'), 'w') as f:
        f.write('console.log(2)')

    result = build(layout, src)
    new = result['release_path']
    assert read(os.path.join(new, 'index.html')) == SITE['index.html'].encode()
    assert ino(os.path.join(new, 'index.html')) != ino(tampered)
    assert ino(os.path.join(new, 'css/site.css')) == ino(os.path.join(layout.release_path('v1'), 'css/site.css'))
    assert (result['files_linked'], result['files_written']) == (1, 2)


def test_mode_change_makes_a_new_release_without_sharing_that_file(layout, tmp_path):
    src = write_tree(tmp_path / 'src', SITE)
    build(layout, src, 'v1')
    switch(layout, release='v1')
    os.chmod(os.path.join(src, 'js/app.js'), 0o755)
    result = build(layout, src)
    assert result['changed'] is True and (result['files_linked'], result['files_written']) == (2, 1)
    old, new = layout.release_path('v1'), result['release_path']
    assert stat.S_IMODE(os.stat(os.path.join(new, 'js/app.js')).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(os.path.join(old, 'js/app.js')).st_mode) == 0o644
    assert ino(os.path.join(new, 'js/app.js')) != ino(os.path.join(old, 'js/app.js'))


@pytest.mark.skipif(os.geteuid() != 0, reason='keeping owners needs root')
def test_directory_source_keeps_owners_as_root(layout, tmp_path):
    src = write_tree(tmp_path / 'src', SITE)
    os.chown(os.path.join(src, 'index.html'), 1234, 2345)
    os.lchown(src, 0, 0)
    os.symlink('index.html', os.path.join(src, 'home.html'))
    os.lchown(os.path.join(src, 'home.html'), 1234, 2345)
    path = build(layout, src)['release_path']
    st = os.stat(os.path.join(path, 'index.html'))
    assert (st.st_uid, st.st_gid) == (1234, 2345)
    st = os.lstat(os.path.join(path, 'home.html'))
    assert (st.st_uid, st.st_gid) == (1234, 2345)
    assert os.stat(os.path.join(path, 'css/site.css')).st_uid == 0


def test_check_mode_prediction_for_a_base_file_rewritten_in_place(layout, tmp_path):
    src = write_tree(tmp_path / 'src', SITE)
    build(layout, src, 'v1')
    switch(layout, release='v1')
    with open(os.path.join(layout.release_path('v1'), 'index.html'), 'r+b') as f:
        f.write(b'<h1>HACK</h1>')
    with open(os.path.join(src, 'js/app.js'), 'w') as f:
        f.write('console.log(2)')
    predicted = build(layout, src, check_mode=True)
    real = build(layout, src)
    assert (predicted['files_linked'], predicted['files_written']) == (real['files_linked'], real['files_written'])


# -- archives --------------------------------------------------------------------------------------

def test_tar_gz_source(layout, tmp_path):
    archive = make_tar(tmp_path / 'site-1.0.tar.gz', [
        ('site-1.0', None),
        ('site-1.0/index.html', b'home'),
        ('site-1.0/bin', None),
        ('site-1.0/bin/run.sh', b'#!/bin/sh\n'),
        ('site-1.0/home.html', ('link', 'index.html')),
        ('site-1.0/copy.html', ('hard', 'site-1.0/index.html')),
    ])
    result = build(layout, archive, strip_components=1)
    path = result['release_path']
    assert result['source'] == 'archive:%s' % archive
    assert sorted(os.listdir(path)) == ['bin', 'copy.html', 'home.html', 'index.html']
    assert read(os.path.join(path, 'index.html')) == b'home'
    assert read(os.path.join(path, 'copy.html')) == b'home'
    assert os.readlink(os.path.join(path, 'home.html')) == 'index.html'
    assert stat.S_IMODE(os.stat(os.path.join(path, 'bin/run.sh')).st_mode) == 0o755
    assert os.stat(os.path.join(path, 'index.html')).st_mtime == MTIME
    assert (result['files'], result['files_written']) == (3, 3)

    again = build(layout, archive, strip_components=1)
    assert again['changed'] is False and again['id'] == result['id']


@pytest.mark.parametrize('compression', ['', 'bz2', 'xz'])
def test_other_tar_compressions(layout, tmp_path, compression):
    archive = make_tar(tmp_path / 'site.tar', [('index.html', b'home')], compression)
    path = build(layout, archive)['release_path']
    assert read(os.path.join(path, 'index.html')) == b'home'


def test_tar_without_directory_members(layout, tmp_path):
    archive = make_tar(tmp_path / 'flat.tgz', [('a/b.txt', b'hello'), ('index.html', b'home')])
    result = build(layout, archive)
    assert read(os.path.join(result['release_path'], 'a/b.txt')) == b'hello'


def test_zip_source(layout, tmp_path):
    archive = make_zip(tmp_path / 'site.zip', [
        ('index.html', b'home'),
        ('bin/run.sh', b'#!/bin/sh\n'),
        ('deep/er/file.txt', b'deep'),  # parents not listed in the zip
        ('home.html', ('link', 'index.html')),
        ('empty/', None),
    ])
    result = build(layout, archive)
    path = result['release_path']
    assert result['source'] == 'archive:%s' % archive
    assert sorted(os.listdir(path)) == ['bin', 'deep', 'empty', 'home.html', 'index.html']
    assert read(os.path.join(path, 'deep/er/file.txt')) == b'deep'
    assert os.readlink(os.path.join(path, 'home.html')) == 'index.html'
    assert stat.S_IMODE(os.stat(os.path.join(path, 'bin/run.sh')).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(os.path.join(path, 'index.html')).st_mode) == 0o644
    assert build(layout, archive)['reused'] is True


@pytest.mark.parametrize('kind', ['tar', 'zip'])
@pytest.mark.parametrize('evil', ['../evil.txt', '/tmp/evil-abs.txt', 'ok/../../evil.txt'])
def test_archive_member_outside_the_release_is_refused(layout, tmp_path, kind, evil):
    build(layout, write_tree(tmp_path / 'src', SITE), 'v1')
    members = [('index.html', b'home'), (evil, b'pwned')]
    archive = make_tar(tmp_path / 'evil.tgz', members) if kind == 'tar' else make_zip(tmp_path / 'evil.zip', members)
    before = snapshot(layout.root)

    with pytest.raises(CutoverError) as exc:
        build(layout, archive)
    assert exc.value.msg == 'The archive %s holds the member %r, which would land outside the release.' \
        % (archive, evil)
    assert snapshot(layout.root) == before
    assert os.listdir(layout.releases_dir) == ['v1']
    assert not os.path.exists(str(tmp_path / 'evil.txt'))
    assert not os.path.exists('/tmp/evil-abs.txt')


def _build_below_symlink(layout, tmp_path, kind):
    outside = tmp_path / 'outside'
    outside.mkdir()
    members = [('index.html', b'home'), ('x', ('link', str(outside))), ('x/pwned.txt', b'pwned'),
               ('x/sub', None)]
    archive = make_tar(tmp_path / 'evil.tgz', members) if kind == 'tar' else make_zip(tmp_path / 'evil.zip', members)
    try:
        build(layout, archive)
    except CutoverError:
        pass
    return outside


def test_zip_member_below_a_zip_symlink_stays_inside_the_release(layout, tmp_path):
    outside = _build_below_symlink(layout, tmp_path, 'zip')
    assert os.listdir(str(outside)) == []


def test_tar_member_below_a_tar_symlink_is_refused(layout, tmp_path):
    outside = _build_below_symlink(layout, tmp_path, 'tar')
    assert os.listdir(str(outside)) == []
    assert not os.path.exists(layout.releases_dir) or os.listdir(layout.releases_dir) == []
    archive = str(tmp_path / 'evil.tgz')
    with pytest.raises(CutoverError, match="The archive %s holds 'x/pwned.txt' below 'x', which is a symlink there"
                       % re.escape(archive)):
        build(layout, archive)


# An archive that names a directory again as a symlink, after members below it (the order the
# below-a-symlink check alone does not see), in every spelling a hostile run found.
THROUGH_A_LINK = {
    'tar d': ('tar', [('d', None), ('d/file', b'pwned'), ('d', ('link', '{outside}'))]),
    'tar ./d': ('tar', [('d', None), ('d/file', b'pwned'), ('./d', ('link', '{outside}'))]),
    'tar hardlink before the link': ('tar', [('payload', b'pwned'), ('d', None), ('d/a', ('hard', 'payload')),
                                             ('d', ('link', '{outside}'))]),
    # zip members are taken in name order: './d/file' comes before 'd', and 'd/-file' before 'd/.'.
    'zip d': ('zip', [('d/', None), ('./d/file', b'pwned'), ('d', ('link', '{outside}'))]),
    'zip d/.': ('zip', [('d/', None), ('d/-file', b'pwned'), ('d/.', ('link', '{outside}'))]),
}


@pytest.mark.parametrize('case', sorted(THROUGH_A_LINK))
def test_archive_naming_a_directory_again_as_a_symlink_is_refused(layout, tmp_path, case):
    kind, members = THROUGH_A_LINK[case]
    outside = tmp_path / 'outside'
    outside.mkdir()
    with open(str(outside / 'a'), 'wb') as f:
        f.write(b'keep')
    os.chmod(str(outside / 'a'), 0o600)
    outside_before = snapshot(outside)
    members = [('index.html', b'home')] + [
        (name, (content[0], content[1].format(outside=outside)) if isinstance(content, tuple) else content)
        for name, content in members]
    archive = make_tar(tmp_path / 'evil.tgz', members) if kind == 'tar' else make_zip(tmp_path / 'evil.zip', members)

    with pytest.raises(CutoverError) as exc:
        build(layout, archive)
    assert exc.value.msg == ("The archive %s holds 'd' as a directory and again as a symlink, so a member could be "
                             "written through a link; only a regular file may be repeated." % archive)
    assert exc.value.path == archive
    assert snapshot(outside) == outside_before
    assert not os.path.exists(layout.releases_dir) or os.listdir(layout.releases_dir) == []
    assert not os.path.exists(layout.staging_dir) or os.listdir(layout.staging_dir) == []
    assert not os.path.exists(layout.manifests_dir) or os.listdir(layout.manifests_dir) == []


def test_tar_file_named_again_replaces_the_earlier_one(layout, tmp_path):
    """A tar may repeat a regular file (tar -r appends a newer version): the last one counts, as on extraction."""
    archive = make_tar(tmp_path / 'site.tgz', [('index.html', b'old'), ('css/site.css', b'css'),
                                               ('index.html', b'new home')])
    result = build(layout, archive, 'v1')
    assert read(os.path.join(result['release_path'], 'index.html')) == b'new home'
    assert (result['files'], result['bytes'], result['files_written']) == (2, 11, 2)
    # The manifest holds what the release holds: the same content again is that release.
    again = make_tar(tmp_path / 'again.tgz', [('css/site.css', b'css'), ('index.html', b'new home')])
    assert build(layout, again)['id'] == 'v1'


@pytest.mark.parametrize('members, message', [
    ([('a', b'one'), ('b', ('hard', 'a')), ('a', b'two')],
     "The archive {archive} holds the file 'a' again after a hard link to it, and the link would keep the older "
     "content."),
    ([('a', b'one'), ('a', ('link', 'b'))],
     "The archive {archive} holds 'a' as a file and again as a symlink, so a member could be written through a link; "
     "only a regular file may be repeated."),
    ([('a', None), ('a', b'one')],
     "The archive {archive} holds 'a' as a directory and again as a file, so a member could be written through a "
     "link; only a regular file may be repeated."),
])
def test_tar_path_named_again_otherwise_is_refused(layout, tmp_path, members, message):
    archive = make_tar(tmp_path / 'site.tgz', [('index.html', b'home')] + members)
    with pytest.raises(CutoverError) as exc:
        build(layout, archive)
    assert exc.value.msg == message.format(archive=archive)
    assert not os.path.exists(layout.releases_dir) or os.listdir(layout.releases_dir) == []


def _unchecked_tar(tmp_path, outside):
    """A tar source whose entries skip the archive's own tree check, as a source that forgot it would."""
    archive = make_tar(tmp_path / 'evil.tgz', [('index.html', b'home'), ('payload', b'pwned'), ('d', None),
                                               ('d/file', b'pwned'), ('d/a', ('hard', 'payload')),
                                               ('d', ('link', str(outside)))])
    source = open_source(archive)
    source.entries = source._members
    return source


def test_scan_refuses_an_entry_below_a_symlink_whatever_the_source(layout, tmp_path):
    outside = tmp_path / 'outside'
    outside.mkdir()
    source = _unchecked_tar(tmp_path, outside)
    with pytest.raises(CutoverError) as exc:
        make_release(layout, source, sync=False)
    assert exc.value.msg in ["The source %s holds %r below 'd', which is a symlink there, not a directory."
                             % (source.path, rel) for rel in ('d/a', 'd/file')]
    assert os.listdir(str(outside)) == []
    assert not os.path.exists(layout.releases_dir) or os.listdir(layout.releases_dir) == []


def test_builder_never_writes_through_a_symlink_in_the_staging_tree(tmp_path):
    """Defence in depth: a manifest with entries below a symlink (which scan refuses) still writes nothing
    outside the staging tree, neither a new file nor a hard link member's copy over an existing one."""
    outside = tmp_path / 'outside'
    outside.mkdir()
    with open(str(outside / 'a'), 'wb') as f:
        f.write(b'keep')
    before = snapshot(outside)
    source = _unchecked_tar(tmp_path, outside)
    f = ['f', 0o644, 5, MTIME * 10 ** 9, '', 0, 0]
    for order in (['d/a'], ['d/file']):
        manifest = {'index.html': ['f', 0o644, 4, MTIME * 10 ** 9, '', 0, 0], 'payload': list(f),
                    'd': ['l', 0o777, 0, MTIME * 10 ** 9, str(outside), 0, 0]}
        manifest.update((rel, list(f)) for rel in order)
        dest = str(tmp_path / ('staging-' + order[0].replace('/', '-')))
        with pytest.raises(OSError) as exc:
            Builder(source, manifest, dest).build()
        assert exc.value.filename == os.path.join(dest, 'd')
        assert snapshot(outside) == before


# -- git -------------------------------------------------------------------------------------------

def make_repo(tmp_path, files):
    repo = tmp_path / 'repo'
    repo.mkdir()
    git(repo, 'init', '-q')
    write_tree(repo, files)
    git(repo, 'add', '-A')
    git(repo, 'commit', '-q', '-m', 'first')
    return repo, git(repo, 'rev-parse', 'HEAD')


def test_git_source(layout, tmp_path):
    repo, commit = make_repo(tmp_path, dict(SITE, **{'home.html': ('link', 'index.html')}))
    os.makedirs(layout.root)
    source, resolved = git_source(layout, str(repo), 'HEAD', check_mode=False)
    assert resolved == commit
    result = make_release(layout, source, sync=False)
    m = DERIVED_ID.match(result['id'])
    assert m and m.group(1) == commit[:12]
    assert result['revision'] == commit and result['source'] == 'git:%s@HEAD' % repo
    path = result['release_path']
    assert {rel: read(os.path.join(path, rel)).decode() for rel in SITE} == SITE
    assert os.readlink(os.path.join(path, 'home.html')) == 'index.html'
    assert len(os.listdir(layout.repos_dir)) == 1
    assert layout.releases()[result['id']].revision == commit

    # Same commit again: found by revision, nothing made.
    before = snapshot(layout.releases_dir)
    source, _commit = git_source(layout, str(repo), 'HEAD', check_mode=False)
    again = make_release(layout, source, sync=False)
    assert again['changed'] is False and again['reused'] is True and again['id'] == result['id']
    assert snapshot(layout.releases_dir) == before

    # A new commit changing one file: a new release sharing the unchanged files.
    with open(str(repo / 'js/app.js'), 'w') as f:
        f.write('console.log(2)')
    git(repo, 'commit', '-q', '-am', 'second')
    second_commit = git(repo, 'rev-parse', 'HEAD')
    source, resolved = git_source(layout, str(repo), 'main', check_mode=False)
    assert resolved == second_commit
    second = make_release(layout, source, sync=False)
    assert second['changed'] is True and second['revision'] == second_commit
    assert second['id'].endswith('-' + second_commit[:12])
    assert (second['files_linked'], second['files_written']) == (2, 1)
    assert ino(os.path.join(second['release_path'], 'index.html')) == ino(os.path.join(path, 'index.html'))
    assert read(os.path.join(second['release_path'], 'js/app.js')) == b'console.log(2)'


def test_git_source_unknown_ref_is_refused(layout, tmp_path):
    repo, _commit = make_repo(tmp_path, SITE)
    os.makedirs(layout.root)
    with pytest.raises(CutoverError) as exc:
        git_source(layout, str(repo), 'no-such-branch', check_mode=False)
    assert exc.value.msg == 'The git repository %s has no commit or ref no-such-branch.' % repo
    assert not os.path.exists(layout.releases_dir)


def test_git_check_mode_resolves_the_ref_and_writes_nothing(layout, tmp_path):
    repo, commit = make_repo(tmp_path, SITE)
    os.makedirs(layout.root)
    source, resolved = git_source(layout, str(repo), 'main', check_mode=True)
    assert (source, resolved) == (None, commit)
    assert os.listdir(layout.root) == []


def test_git_source_on_a_fresh_root(layout, tmp_path):
    repo, commit = make_repo(tmp_path, SITE)
    source, _commit = git_source(layout, str(repo), 'HEAD', check_mode=False)
    result = make_release(layout, source, sync=False)
    assert result['revision'] == commit
    assert read(os.path.join(result['release_path'], 'index.html')) == SITE['index.html'].encode()


# -- failures never leave a half-built release ---------------------------------------------------------

def test_build_failure_leaves_no_partial_release(layout, tmp_path):
    src = write_tree(tmp_path / 'src', SITE)
    build(layout, src, 'v1')
    switch(layout, release='v1')
    write_tree(src, {'a-new.txt': 'new', 'b-gone.txt': 'will vanish'})
    source = open_source(src)
    scan_pass = source.entries

    def entries():
        yield from scan_pass()
        # The scan is done; the file disappears before it is copied.
        os.unlink(os.path.join(src, 'b-gone.txt'))
    source.entries = entries
    before = snapshot(layout.root)

    with pytest.raises(CutoverError) as exc:
        make_release(layout, source, 'v2', sync=False)
    gone = os.path.join(src, 'b-gone.txt')
    assert exc.value.msg == ('Building the release failed at %s: No such file or directory; the partial release '
                             'was removed and current was not touched.' % gone)
    assert snapshot(layout.root) == before
    assert os.listdir(layout.staging_dir) == []
    assert os.listdir(layout.releases_dir) == ['v1']
    assert not os.path.exists(layout.manifest_path('v2'))
    assert os.readlink(layout.current_link) == 'releases/v1'


def test_disk_full_leaves_no_partial_release(layout, tmp_path, mount):
    mount(layout.root, 'tmpfs', size='1m')
    src = write_tree(tmp_path / 'src', SITE)
    build(layout, src, 'v1')
    switch(layout, release='v1')
    free_before = os.statvfs(layout.root).f_bfree
    write_tree(src, {'big.bin': b'\0' * (3 << 20)})
    before = snapshot(layout.root)

    with pytest.raises(CutoverError) as exc:
        build(layout, src, 'v2')
    assert exc.value.msg.startswith('The disk filled up while writing ')
    assert exc.value.msg.endswith('; the partial release was removed and current was not touched.')
    assert snapshot(layout.root) == before
    assert os.listdir(layout.staging_dir) == []
    assert os.listdir(layout.releases_dir) == ['v1']
    assert os.readlink(layout.current_link) == 'releases/v1'
    assert os.statvfs(layout.root).f_bfree == free_before


def test_disk_full_message_names_the_full_filesystem(layout, tmp_path, mount):
    mount(layout.root, 'tmpfs', size='1m')
    src = write_tree(tmp_path / 'src', {'index.html': 'home', 'big.bin': b'\0' * (3 << 20)})
    with pytest.raises(CutoverError) as exc:
        build(layout, src, 'v1')
    assert exc.value.msg.startswith('The disk filled up while writing %s' % layout.root)
    assert exc.value.path.startswith(layout.root)


def test_negative_strip_components_is_refused(tmp_path):
    archive = make_tar(tmp_path / 'site.tgz', [('index.html', b'home')])
    with pytest.raises(CutoverError) as exc:
        open_source(archive, strip_components=-1)
    assert exc.value.msg == 'strip_components is -1 for %s, but it cannot be negative.' % archive


def test_unreadable_source_file_is_refused_in_one_sentence_when_not_root(tmp_path):
    """As an unprivileged user, a source file only root may read is named in one sentence, and nothing is made."""
    if os.geteuid() != 0:
        pytest.skip('needs root, to make a file another user cannot read')
    base = tempfile.mkdtemp(prefix='cutover-eacces-')
    try:
        os.chmod(base, 0o755)
        src = write_tree(os.path.join(base, 'src'), {'index.html': 'home', 'secret.txt': 'root only'})
        secret = os.path.join(src, 'secret.txt')
        os.chmod(secret, 0o600)
        layout = Layout(os.path.join(base, 'root'))
        os.mkdir(layout.root)
        os.chown(layout.root, 65534, 65534)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            try:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                build(layout, src)
                answer = 'made a release'
            except CutoverError as exc:
                answer = 'CutoverError: %s' % exc.msg
            except BaseException as exc:
                answer = '%s: %s' % (type(exc).__name__, exc)
            os.write(write_end, answer.encode('utf-8', 'surrogateescape'))
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, 'rb') as f:
            answer = f.read().decode('utf-8', 'surrogateescape')
        os.waitpid(pid, 0)
        assert answer == 'CutoverError: Cannot read the source file %s: Permission denied.' % secret
        assert os.listdir(layout.root) == []
    finally:
        shutil.rmtree(base)


# -- manifests ------------------------------------------------------------------------------------------

@pytest.mark.parametrize('data, problem', [
    ('{"index.html": []}', "its entry for 'index.html' is []"),
    ('[]', 'it is not a JSON object'),
    ('{"index.html": ["f"]}', "its entry for 'index.html' is [\"f\"]"),
    ('{"index.html": ["f", "644", 4, 1, "x", 0, 0]}', "its entry for 'index.html' is [\"f\", \"644\", 4, 1, \"x\", 0, 0]"),
    ('{"../x": ["f", 420, 4, 1, "x", 0, 0]}', "it names the path '../x'"),
    ('{"index.html": {"kind": "f"}}', "its entry for 'index.html' is {\"kind\": \"f\"}"),
])
def test_manifest_of_another_shape_is_ignored_with_a_warning(layout, tmp_path, data, problem):
    src = write_tree(tmp_path / 'src', SITE)
    build(layout, src, 'v1')
    switch(layout, release='v1')
    path = layout.manifest_path('v1')
    with open(path, 'w') as f:
        f.write(data)
    warning = ('Ignored the manifest %s because %s; release v1 is not used as a hardlink base.' % (path, problem))

    # The same content: v1 is still found (from the history), and nothing crashes on its manifest.
    same = build(layout, src)
    assert same['id'] == 'v1' and same['reused'] is True and same['changed'] is False
    assert same['warnings'] == [warning]

    write_tree(src, {'js/app.js': 'console.log(2)'})
    checked = build(layout, src, 'v2', check_mode=True)
    assert checked['base'] is None and checked['files_linked'] == 0 and checked['warnings'] == [warning]
    made = build(layout, src, 'v2')
    assert made['changed'] is True and made['base'] is None and made['warnings'] == [warning]
    assert (made['files_linked'], made['files_written']) == (0, 3)
    assert read(os.path.join(made['release_path'], 'js/app.js')) == b'console.log(2)'
    switch(layout, release='v2')
    assert 'warnings' not in build(layout, src, 'v2')


# -- names made from the id -------------------------------------------------------------------------------

def test_every_name_made_from_the_longest_id_fits_name_max():
    """A 63-byte host name (the most DNS allows in one label), the largest pid and a 10-digit epoch."""
    rid = u'\u00fc' * (MAX_ID_LENGTH // 2)
    assert len(rid.encode('utf-8')) == MAX_ID_LENGTH
    host = 'h' * 63 + '.example.com'
    staging = staging_name(rid, now=9999999999, pid=4194304, host=host)
    assert staging == '%s.9999999999.4194304.%s' % (rid, 'h' * 32)
    trash = '%s.%d.%d' % (staging, 9999999999, 4194304)  # a staging leftover moved to the trash by pruning
    assert len(trash.encode('utf-8')) == MAX_ID_LENGTH + LONGEST_ID_SUFFIX <= 255
    assert len((rid + '.json.tmp').encode('utf-8')) <= 255


def test_release_of_the_longest_id_is_made_pruned_and_removed(layout, tmp_path):
    src = write_tree(tmp_path / 'src', SITE)
    rid = 'x' * MAX_ID_LENGTH
    result = build(layout, src, rid)
    assert result['changed'] is True and os.path.basename(result['release_path']) == rid
    assert read(os.path.join(result['release_path'], 'index.html')) == b'<h1>home</h1>'
    switch(layout, release=rid)
    write_tree(src, {'index.html': 'v2'})
    build(layout, src, 'v2')
    switch(layout, release='v2')
    leftover = staging_name(rid, now=time.time() - 10 ** 5, pid=4194304, host='h' * 63)
    os.mkdir(os.path.join(layout.staging_dir, leftover))
    assert prune(layout, keep=1)['removed_staging'] == [leftover]
    assert remove_release(layout, rid) is True
    assert os.listdir(layout.releases_dir) == ['v2'] and os.listdir(layout.staging_dir) == []


# -- hardlinks across filesystems ------------------------------------------------------------------------

def test_base_release_on_another_filesystem_falls_back_to_copying(layout, tmp_path, mount):
    src = write_tree(tmp_path / 'src', SITE)
    build(layout, src, 'v1')
    switch(layout, release='v1')
    base = layout.release_path('v1')
    mount(base, 'bind', source=base)  # same files, another mount: link(2) says EXDEV
    with open(os.path.join(src, 'js/app.js'), 'w') as f:
        f.write('console.log(2)')

    result = build(layout, src, 'v2')
    assert result['changed'] is True
    assert result['link_fallback'] is not None
    assert 'Invalid cross-device link' in result['link_fallback'] and base in result['link_fallback']
    assert (result['files_linked'], result['files_written']) == (0, 3)
    new = result['release_path']
    for rel in SITE:
        assert ino(os.path.join(new, rel)) != ino(os.path.join(base, rel))
    assert read(os.path.join(new, 'index.html')) == SITE['index.html'].encode()
    assert read(os.path.join(new, 'js/app.js')) == b'console.log(2)'
    assert read(os.path.join(base, 'js/app.js')) == b'console.log(1)'


def test_source_on_another_filesystem(layout, tmp_path, mount):
    src = mount(tmp_path / 'upload', 'tmpfs', size='4m')
    write_tree(src, SITE)
    first = build(layout, src)
    assert (first['files_written'], first['files_linked'], first['link_fallback']) == (3, 0, None)
    for rel, content in SITE.items():
        path = os.path.join(first['release_path'], rel)
        assert read(path) == content.encode()
        assert os.stat(path).st_dev != os.stat(os.path.join(src, rel)).st_dev
    switch(layout, release=first['id'])
    with open(os.path.join(src, 'index.html'), 'w') as f:
        f.write('<h1>v2</h1>')
    second = build(layout, src)
    assert (second['files_linked'], second['files_written'], second['link_fallback']) == (2, 1, None)


# -- a pushed tree made the release itself (move_source) -----------------------------------------

def push(layout, src, name='push-1'):
    """What the deploy role does: rsync the site into the staging area, unchanged files as hardlinks
    of the live release's."""
    layout.ensure_dirs()
    dest = os.path.join(layout.staging_dir, name)
    cmd = ['rsync', '-a', '--checksum']
    if os.path.lexists(layout.current_link):
        cmd.append('--link-dest=%s/' % layout.current_link)
    subprocess.run(cmd + ['%s/' % src, dest + '/'], check=True, stderr=subprocess.DEVNULL)
    return dest


def test_move_source_renames_the_pushed_tree_and_shares_unchanged_files(layout, tmp_path):
    src = write_tree(tmp_path / 'src', SITE)
    first = build(layout, push(layout, src), move_source=True)
    assert first['changed'] is True and (first['files_written'], first['files_linked']) == (3, 0)
    assert os.listdir(layout.staging_dir) == []
    assert {rel: read(os.path.join(first['release_path'], rel)).decode() for rel in SITE} == SITE
    assert stat.S_IMODE(os.stat(first['release_path']).st_mode) == 0o755
    switch(layout, release=first['id'])

    with open(os.path.join(src, 'js/app.js'), 'w') as f:
        f.write('console.log(2)')
    # A file whose content is the same but whose mtime is not: rsync copies it, the module links it.
    os.utime(os.path.join(src, 'index.html'), (MTIME, MTIME))
    second = build(layout, push(layout, src, 'push-2'), move_source=True)
    assert second['changed'] is True and second['base'] == first['id']
    assert (second['files_linked'], second['files_written']) == (2, 1)
    old, new = first['release_path'], second['release_path']
    for rel in ('index.html', 'css/site.css'):
        assert ino(os.path.join(new, rel)) == ino(os.path.join(old, rel))
    assert read(os.path.join(new, 'js/app.js')) == b'console.log(2)'
    assert read(os.path.join(old, 'js/app.js')) == b'console.log(1)'
    assert sorted(os.listdir(layout.releases_dir)) == sorted([first['id'], second['id']])
    assert os.listdir(layout.staging_dir) == []


def test_move_source_never_links_through_a_symlink_put_in_the_push(layout, tmp_path):
    """A directory of the push replaced by a symlink after the scan: the file below it is not swapped for a
    hardlink of the base's there, outside the root."""
    src = write_tree(tmp_path / 'src', {'index.html': 'home', 'd/x.txt': 'same'})
    first = build(layout, src, 'v1')
    switch(layout, release='v1')
    outside = write_tree(tmp_path / 'outside', {'x.txt': 'same'})
    before = snapshot(outside)
    pushed = os.path.join(layout.staging_dir, 'push-2')
    shutil.copytree(src, pushed)
    write_tree(pushed, {'index.html': 'home 2'})
    source = open_source(pushed)
    scan_pass = source.entries

    def entries():
        yield from scan_pass()
        # The scan is done; the directory becomes a symlink before the files are linked.
        shutil.rmtree(os.path.join(pushed, 'd'))
        os.symlink(outside, os.path.join(pushed, 'd'))
    source.entries = entries

    with pytest.raises(CutoverError) as exc:
        make_release(layout, source, 'v2', sync=False, move_source=True)
    assert exc.value.msg == ('Building the release failed at %s: it is a symlink, and no link in a release being '
                             'built is followed; the partial release was removed and current was not touched.'
                             % os.path.join(pushed, 'd'))
    assert snapshot(outside) == before
    assert os.listdir(layout.releases_dir) == ['v1']
    assert ino(os.path.join(first['release_path'], 'd/x.txt')) != ino(os.path.join(outside, 'x.txt'))


def test_move_source_of_known_content_returns_that_release_and_removes_the_push(layout, tmp_path):
    src = write_tree(tmp_path / 'src', SITE)
    first = build(layout, push(layout, src), move_source=True)
    switch(layout, release=first['id'])
    before = snapshot(layout.releases_dir)

    pushed = push(layout, src, 'push-2')
    checked = build(layout, pushed, move_source=True, check_mode=True)
    assert checked['changed'] is False and checked['id'] == first['id'] and os.path.isdir(pushed)

    again = build(layout, pushed, move_source=True)
    assert again['changed'] is False and again['reused'] is True and again['id'] == first['id']
    assert again['source_removed'] is True and not os.path.lexists(pushed)
    assert snapshot(layout.releases_dir) == before


def test_move_source_outside_the_staging_area_is_refused(layout, tmp_path):
    src = write_tree(tmp_path / 'src', SITE)
    layout.ensure_dirs()
    with pytest.raises(CutoverError, match=r'moves only a directory directly inside .*staging, and .*src is not one'):
        build(layout, src, move_source=True)
    assert os.path.isdir(src) and os.listdir(layout.releases_dir) == []


def test_move_source_with_exclude_is_refused(layout, tmp_path):
    pushed = push(layout, write_tree(tmp_path / 'src', SITE))
    with pytest.raises(CutoverError, match=r'cannot leave paths out of .*push-1 \(exclude\)'):
        build(layout, pushed, move_source=True, exclude=['*.js'])
    assert os.path.isdir(pushed) and os.listdir(layout.releases_dir) == []


def test_move_source_of_an_archive_is_refused(layout, tmp_path):
    layout.ensure_dirs()
    archive = make_tar(os.path.join(layout.staging_dir, 'site.tar.gz'), [('index.html', b'hi')])
    with pytest.raises(CutoverError, match=r'move_source needs a directory source, and .*site.tar.gz is not one'):
        build(layout, archive, move_source=True)


def test_checksum_catches_a_change_that_keeps_size_and_mtime(layout, tmp_path):
    src = write_tree(tmp_path / 'src', SITE)
    os.utime(os.path.join(src, 'index.html'), (MTIME, MTIME))
    first = build(layout, src, checksum=True)
    switch(layout, release=first['id'])
    # Same size, same mtime (a reproducible build), other content.
    with open(os.path.join(src, 'index.html'), 'w') as f:
        f.write('<h1>HOME</h1>')
    os.utime(os.path.join(src, 'index.html'), (MTIME, MTIME))

    quick = build(layout, src, check_mode=True)
    assert quick['changed'] is False  # the quick check cannot see it: the trap checksum is for
    second = build(layout, src, checksum=True)
    assert second['changed'] is True
    assert read(os.path.join(second['release_path'], 'index.html')) == b'<h1>HOME</h1>'


def test_checksum_push_trusts_a_hardlink_of_the_base_only_while_it_is_as_recorded(layout, tmp_path):
    src = write_tree(tmp_path / 'src', SITE)
    first = build(layout, push(layout, src), move_source=True, checksum=True)
    switch(layout, release=first['id'])
    with open(os.path.join(src, 'js/app.js'), 'w') as f:
        f.write('console.log(2)')
    pushed = push(layout, src, 'push-2')
    # The live release's index.html, which the push shares (one inode), is edited in place.
    live = os.path.join(first['release_path'], 'index.html')
    assert ino(live) == ino(os.path.join(pushed, 'index.html'))
    with open(live, 'r+b') as f:
        f.write(b'<h1>HACK</h1>')
    second = build(layout, pushed, move_source=True, checksum=True)
    assert (second['files_linked'], second['files_written']) == (1, 2)  # css; app.js and the edited file
    switch(layout, release=second['id'])

    # The next release of the true site, built without rsync, must not take the edited file for
    # the true one: second's manifest recorded what its index.html really holds.
    third = build(layout, src, checksum=True)
    assert third['changed'] is True
    assert read(os.path.join(third['release_path'], 'index.html')) == SITE['index.html'].encode()
    css = 'css/site.css'
    assert ino(os.path.join(third['release_path'], css)) == ino(os.path.join(first['release_path'], css))


def test_git_release_is_known_by_its_commit_and_its_options(layout, tmp_path):
    """The same commit asked with exclude or strip_components is another release, in check mode too."""
    repo, commit = make_repo(tmp_path, dict(SITE, **{'secret.txt': 'password'}))
    os.makedirs(layout.root)
    source, _commit = git_source(layout, str(repo), 'HEAD', check_mode=False)
    first = make_release(layout, source, sync=False)
    assert os.path.exists(os.path.join(first['release_path'], 'secret.txt'))

    # Check mode (nothing fetched) and the real run apply the one rule: this is not the first release.
    description = git_description(str(repo), 'HEAD', ['secret.txt'])
    predicted = predict_commit(layout, commit, description, id_stamp='20261204T000000Z')
    assert predicted['changed'] is True and predicted['reused'] is False and predicted['id'] != first['id']
    source, _commit = git_source(layout, str(repo), 'HEAD', ['secret.txt'], check_mode=False)
    assert source.description == description
    second = make_release(layout, source, sync=False)
    assert second['changed'] is True and second['reused'] is False and second['id'] != first['id']
    assert not os.path.lexists(os.path.join(second['release_path'], 'secret.txt'))
    assert os.path.exists(os.path.join(first['release_path'], 'secret.txt'))

    # Asked again with the same options: that release, in check mode and for real.
    predicted = predict_commit(layout, commit, description)
    assert (predicted['changed'], predicted['reused'], predicted['id']) == (False, True, second['id'])
    source, _commit = git_source(layout, str(repo), 'HEAD', ['secret.txt'], check_mode=False)
    again = make_release(layout, source, sync=False)
    assert (again['changed'], again['reused'], again['id']) == (False, True, second['id'])
    # And without them: the first release again.
    assert predict_commit(layout, commit, git_description(str(repo), 'HEAD'))['id'] == first['id']

    # strip_components shapes a git release too.
    source, _commit = git_source(layout, str(repo), 'HEAD', check_mode=False, strip_components=1)
    stripped = make_release(layout, source, sync=False)
    assert stripped['changed'] is True and stripped['id'] not in (first['id'], second['id'])
    assert sorted(os.listdir(stripped['release_path'])) == ['app.js', 'site.css']


def test_git_release_id_taken_with_other_options_is_refused_in_check_mode_too(layout, tmp_path):
    repo, commit = make_repo(tmp_path, dict(SITE, **{'secret.txt': 'password'}))
    os.makedirs(layout.root)
    source, _commit = git_source(layout, str(repo), 'HEAD', check_mode=False)
    make_release(layout, source, 'v1', sync=False)
    before = snapshot(layout.releases_dir)
    with pytest.raises(CutoverError) as exc:
        predict_commit(layout, commit, git_description(str(repo), 'HEAD', ['secret.txt']), 'v1')
    assert exc.value.msg.startswith('The release %s already exists, made from another commit or with other options'
                                    % layout.release_path('v1'))
    source, _commit = git_source(layout, str(repo), 'HEAD', ['secret.txt'], check_mode=False)
    with pytest.raises(CutoverError) as exc:
        make_release(layout, source, 'v1', sync=False)
    assert exc.value.msg.startswith('The release %s already exists with other content' % layout.release_path('v1'))
    assert snapshot(layout.releases_dir) == before
    assert os.path.exists(os.path.join(layout.release_path('v1'), 'secret.txt'))


# -- build steps: isolated while they run, sealed after ---------------------------------------------

def files_of(root):
    """{path: (sha of content or link text, mode, uid, gid, mtime_ns, inode)} of everything below ``root``."""
    result = {}
    for dirpath, dirnames, filenames in os.walk(str(root)):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            if stat.S_ISREG(st.st_mode):
                content = read(full)
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(full)
            else:
                content = None
            result[os.path.relpath(full, str(root))] = (content, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                                                        st.st_mtime_ns, st.st_ino)
    return result


APP = {
    'index.php': '<?php require "vendor/autoload.php";',
    'vendor/autoload.php': '<?php // autoload',
    'vendor/composer/autoload_real.php': '<?php // v1 autoload',
    'vendor/app.log': 'started\n',
    'config/cache.php': '<?php return [];',
    'public/style.css': 'body {}',
    'public/logo.svg': '<svg/>',
    'link.php': ('link', 'index.php'),
}


def two_releases(layout, tmp_path, pushed=False):
    """v1 live; v2 made from the same files (all hardlinks of v1's), either copied or pushed and moved."""
    src = write_tree(tmp_path / 'v1', APP)
    build(layout, src, 'v1')
    switch(layout, release='v1')
    if pushed:
        layout.ensure_dirs()
        push = os.path.join(layout.staging_dir, 'push-1')
        subprocess.run(['rsync', '-a', '--link-dest=%s/' % layout.release_path('v1'), src + '/', push + '/'],
                       check=True)
        make_release(layout, open_source(push), 'v2', sync=False, move_source=True)
    else:
        build(layout, src, 'v2')
    v2 = layout.release_path('v2')
    assert ino(os.path.join(v2, 'vendor/composer/autoload_real.php')) == \
        ino(os.path.join(layout.release_path('v1'), 'vendor/composer/autoload_real.php'))
    return layout.release_path('v1'), v2


def build_steps(v2):
    """What build commands do to files: rewrite in place, append, truncate, chmod, chown, touch."""
    with open(os.path.join(v2, 'vendor/composer/autoload_real.php'), 'r+b') as f:  # file_put_contents
        f.truncate(0)
        f.write(b'<?php // regenerated')
    with open(os.path.join(v2, 'vendor/app.log'), 'ab') as f:  # >>
        f.write(b'built\n')
    with open(os.path.join(v2, 'config/cache.php'), 'r+b') as f:  # : > file
        f.truncate(0)
    os.chmod(os.path.join(v2, 'public/style.css'), 0o600)
    os.chown(os.path.join(v2, 'public/logo.svg'), 4321, 4321)
    os.utime(os.path.join(v2, 'index.php'), ns=(1, 1))  # touch, content unchanged
    os.lchown(os.path.join(v2, 'link.php'), 4321, 4321)


@pytest.mark.parametrize('pushed', [False, True], ids=['copied', 'pushed'])
def test_build_steps_between_isolated_and_sealed_never_touch_another_release(layout, tmp_path, pushed):
    v1, v2 = two_releases(layout, tmp_path, pushed)
    v1_before = files_of(v1)

    # Check mode says what it would copy, and copies nothing.
    before = files_of(v2)
    # rsync --link-dest hardlinks the symlink too; a copied release has a symlink of its own.
    shared = len(APP) if pushed else len(APP) - 1
    predicted = isolate_release(layout, 'v2', check_mode=True)
    assert predicted['changed'] is True and predicted['files_copied'] == shared
    assert files_of(v2) == before

    isolated = isolate_release(layout, 'v2')
    assert isolated['changed'] is True and isolated['files_copied'] == shared
    assert isolated['copy_method'] in ('reflink', 'copy')
    after = files_of(v2)
    assert set(after) == set(before)
    for rel, (content, mode, uid, gid, mtime, inode) in after.items():
        if not os.path.isdir(os.path.join(v2, rel)):
            # The same file (content, mode, owner, mtime), but an inode of its own.
            assert (content, mode, uid, gid, mtime) == before[rel][:5]
            assert inode != v1_before[rel][5] and os.lstat(os.path.join(v2, rel)).st_nlink == 1, rel
    again = isolate_release(layout, 'v2')
    assert again['changed'] is False and again['files_copied'] == 0

    build_steps(v2)
    assert files_of(v1) == v1_before

    # Seal: check mode first, then for real, then again (idempotent).
    built = files_of(v2)
    predicted = seal_release(layout, 'v2', check_mode=True)
    assert predicted['changed'] is True and predicted['files_relinked'] == 2  # autoload.php, index.php
    assert files_of(v2) == built
    sealed = seal_release(layout, 'v2', sync=False)
    assert (sealed['changed'], sealed['base'], sealed['files_relinked']) == (True, 'v1', 2)
    assert (sealed['files_linked'], sealed['files_written']) == (2, 5)
    assert files_of(v1) == v1_before
    for rel in ('index.php', 'vendor/autoload.php'):
        assert ino(os.path.join(v2, rel)) == ino(os.path.join(v1, rel))
    for rel in ('vendor/composer/autoload_real.php', 'vendor/app.log', 'config/cache.php', 'public/style.css',
                'public/logo.svg'):
        assert ino(os.path.join(v2, rel)) != ino(os.path.join(v1, rel))
        assert files_of(v2)[rel][:4] == built[rel][:4]
    assert read(os.path.join(v2, 'vendor/composer/autoload_real.php')) == b'<?php // regenerated'
    assert read(os.path.join(v1, 'vendor/composer/autoload_real.php')) == b'<?php // v1 autoload'

    # The manifest is what the release holds now.
    on_disk = scan(DirectorySource(v2), None, True)
    assert load_manifest(layout, 'v2') == on_disk
    assert sealed['fingerprint'] != layout.releases()['v2'].fingerprint

    sealed_files = files_of(v2)
    again = seal_release(layout, 'v2', sync=False)
    assert (again['changed'], again['files_relinked'], again['files_linked']) == (False, 0, 2)
    assert files_of(v2) == sealed_files

    # A release made from v2 next links the files the build made, from the manifest the seal wrote.
    switch(layout, release='v2')
    subprocess.run(['cp', '-a', v2, str(tmp_path / 'v3')], check=True)
    third = build(layout, str(tmp_path / 'v3'), 'v3', checksum=True)
    assert third['files_written'] == 0 and third['base'] == 'v2'


def test_isolated_and_sealed_refuse_the_live_release_and_unknown_ones(layout, tmp_path):
    v1, _v2 = two_releases(layout, tmp_path)
    before = snapshot(layout.root)
    for func, word in ((isolate_release, 'made private for build steps'), (seal_release, 'sealed')):
        with pytest.raises(CutoverError) as exc:
            func(layout, 'v1')
        assert exc.value.msg == ('The release %s is live, so it cannot be %s: build steps run only in a new '
                                 'release, before the switch.' % (v1, word))
        with pytest.raises(CutoverError) as exc:
            func(layout, 'nope')
        assert exc.value.msg == ('The release %s does not exist (or was not made by cutover.web), so it cannot be '
                                 '%s.' % (layout.release_path('nope'), word))
    assert snapshot(layout.root) == before


def test_sealing_the_first_release_links_nothing(layout, tmp_path):
    src = write_tree(tmp_path / 'v1', SITE)
    result = build(layout, src, 'v1')
    assert isolate_release(layout, 'v1')['changed'] is False
    with open(os.path.join(result['release_path'], 'built.txt'), 'w') as f:
        f.write('made by the build')
    sealed = seal_release(layout, 'v1', sync=False)
    assert (sealed['changed'], sealed['base'], sealed['files_linked'], sealed['files_written']) == (True, None, 0, 4)
    assert 'built.txt' in load_manifest(layout, 'v1')
    assert seal_release(layout, 'v1', sync=False)['changed'] is False
