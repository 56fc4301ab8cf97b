# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Shared paths linked into releases, on real files."""

from __future__ import annotations

import json
import os
import threading

import pytest

from ansible_collections.cutover.web.plugins.module_utils._releases import CutoverError
from ansible_collections.cutover.web.plugins.module_utils._shared import apply, link_text, plan
from ansible_collections.cutover.web.plugins.module_utils._switch import switch
from ansible_collections.cutover.web.tests.unit.helpers import new_release, read, snapshot, write_tree


def share(layout, release_id, dirs=(), files=()):
    steps = plan(layout, release_id, list(dirs), list(files))
    apply(layout, release_id, steps, no_chown, 0o755, 0o640)
    return acts(steps)


def no_chown(*args):
    pass


def acts(steps):
    return [tuple(step[:3]) for step in steps]


@pytest.fixture
def site(layout, tmp_path):
    new_release(layout, tmp_path / 'src', {'public/index.php': '<?php', 'public/media/logo.png': 'logo'},
                release_id='r1')
    return layout


def test_first_share_seeds_from_the_release_and_links(site):
    steps = share(site, 'r1', dirs=['public/media'], files=['.env'])
    assert steps == [('public/media', 'directory', ['seed', 'replace', 'link']), ('.env', 'file', ['create', 'link'])]
    media = os.path.join(site.release_path('r1'), 'public/media')
    assert os.readlink(media) == '../../../shared/public/media' == link_text('public/media')
    assert read(os.path.join(site.shared_dir, 'public/media/logo.png')) == b'logo'
    assert os.stat(os.path.join(site.shared_dir, '.env')).st_mode & 0o777 == 0o640
    assert read(os.path.join(media, 'logo.png')) == b'logo'


def test_sharing_again_changes_nothing(site):
    share(site, 'r1', dirs=['public/media'])
    before = snapshot(site.root)
    assert acts(plan(site, 'r1', ['public/media'], [])) == [('public/media', 'directory', [])]
    share(site, 'r1', dirs=['public/media'])
    assert snapshot(site.root) == before


def test_uploads_survive_into_the_next_release(site, tmp_path):
    share(site, 'r1', dirs=['public/media'])
    with open(os.path.join(site.release_path('r1'), 'public/media/upload.jpg'), 'w') as f:
        f.write('uploaded')
    new_release(site, tmp_path / 'src2', {'public/index.php': '<?php 2', 'public/media/logo.png': 'new logo'},
                release_id='r2')
    steps = share(site, 'r2', dirs=['public/media'])
    assert steps == [('public/media', 'directory', ['replace', 'link'])]
    media = os.path.join(site.release_path('r2'), 'public/media')
    assert read(os.path.join(media, 'upload.jpg')) == b'uploaded'
    # The shared copy is not overwritten by what a later release ships.
    assert read(os.path.join(media, 'logo.png')) == b'logo'


@pytest.mark.parametrize('bad', ['../x', '/etc', 'public/../../x', '', '.cutover/lock', 'a//b', './a'])
def test_paths_that_escape_are_refused_and_nothing_changes(site, bad):
    before = snapshot(site.root)
    with pytest.raises(CutoverError) as exc:
        share(site, 'r1', dirs=[bad])
    assert exc.value.msg.startswith('The shared path %r must be a relative path' % bad)
    assert snapshot(site.root) == before


def test_a_symlink_in_shared_leading_outside_is_refused(site, tmp_path):
    outside = tmp_path / 'outside'
    outside.mkdir()
    os.makedirs(site.shared_dir)
    os.symlink(str(outside), os.path.join(site.shared_dir, 'public'))
    before = snapshot(site.root)
    with pytest.raises(CutoverError) as exc:
        share(site, 'r1', dirs=['public/media'])
    assert exc.value.msg == ("The shared path 'public/media' cannot be kept under %s because %s/public is a symlink "
                             "(cutover.web follows no link on the way to a shared path)."
                             % (site.shared_dir, site.shared_dir))
    assert os.listdir(str(outside)) == []
    assert snapshot(site.root) == before


def test_a_missing_release_is_named(site):
    with pytest.raises(CutoverError) as exc:
        share(site, 'nope', dirs=['public/media'])
    assert exc.value.msg == ('The release %s does not exist, so no shared path can be linked into it.'
                             % site.release_path('nope'))


def test_a_next_release_never_hardlinks_shared_files(site, tmp_path):
    share(site, 'r1', dirs=['public/media'])
    switch(site, release='r1')
    new_release(site, tmp_path / 'src', {'public/index.php': '<?php', 'public/media/logo.png': 'logo'},
                release_id='r2')
    shipped = os.path.join(site.release_path('r2'), 'public/media/logo.png')
    shared = os.path.join(site.shared_dir, 'public/media/logo.png')
    assert not os.path.samefile(shipped, shared)
    with open(shared, 'w') as f:
        f.write('edited in shared')
    assert read(shipped) == b'logo'


def test_legacy_media_is_adopted_while_a_writer_keeps_adding_files(site, tmp_path):
    legacy = tmp_path / 'public_html' / 'media'
    legacy.mkdir(parents=True)
    (legacy / 'old.jpg').write_text('old')
    written, stop = [], threading.Event()

    def writer():
        n = 0
        while not stop.is_set() or n < 200:
            name = 'upload-%05d.jpg' % n
            with open(os.path.join(str(legacy), name), 'w') as f:
                f.write(name)
            written.append(name)
            n += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        steps = plan(site, 'r1', ['public/media'], [], legacy={'public/media': str(legacy)})
        assert acts(steps) == [('public/media', 'directory', ['adopt', 'replace', 'link'])]
        apply(site, 'r1', steps, no_chown, 0o755, 0o640, legacy={'public/media': str(legacy)})
    finally:
        stop.set()
        thread.join()
    shared = os.path.join(site.shared_dir, 'public/media')
    assert os.path.isdir(shared) and not os.path.islink(shared)
    assert os.readlink(str(legacy)) == shared
    assert sorted(os.listdir(shared)) == sorted(written + ['old.jpg'])
    assert read(os.path.join(site.release_path('r1'), 'public/media/old.jpg')) == b'old'
    # Adopted once: a second run leaves the legacy link alone.
    assert acts(plan(site, 'r1', ['public/media'], [], legacy={'public/media': str(legacy)})) == [
        ('public/media', 'directory', [])]


def test_a_legacy_path_that_is_not_absolute_is_refused(site):
    with pytest.raises(CutoverError, match="The legacy directory for 'public/media' must be an absolute path"):
        plan(site, 'r1', ['public/media'], [], legacy={'public/media': 'html/media'})


def test_a_release_that_ships_a_link_on_the_way_is_refused_and_nothing_outside_changes(layout, tmp_path):
    outside = tmp_path / 'outside'
    (outside / 'media').mkdir(parents=True)
    (outside / 'media' / 'theirs.jpg').write_text('not ours')
    new_release(layout, tmp_path / 'src', {'index.php': '<?php', 'public': ('link', str(outside))}, release_id='r1')
    before, outside_before = snapshot(layout.root), snapshot(outside)
    for attempt in range(2):
        with pytest.raises(CutoverError) as exc:
            share(layout, 'r1', dirs=['public/media'])
        assert exc.value.msg == ("The shared path 'public/media' cannot be linked into %s because %s/public is a "
                                 "symlink (cutover.web follows no link on the way to a shared path)."
                                 % ((layout.release_path('r1'),) * 2))
        assert snapshot(layout.root) == before
        assert snapshot(outside) == outside_before


def test_a_file_on_the_way_in_the_release_is_refused(layout, tmp_path):
    new_release(layout, tmp_path / 'src', {'index.php': '<?php', 'public': 'a file'}, release_id='r1')
    before = snapshot(layout.root)
    with pytest.raises(CutoverError, match=r'because .*/r1/public is not a directory'):
        share(layout, 'r1', dirs=['public/media'], files=['.env'])
    assert snapshot(layout.root) == before


def test_a_shared_directory_that_is_a_symlink_out_of_the_root_is_refused_even_in_check_mode(site, tmp_path):
    outside = tmp_path / 'elsewhere'
    outside.mkdir()
    os.symlink(str(outside), site.shared_dir)
    before = snapshot(site.root)
    for run in (lambda: plan(site, 'r1', ['public/media'], ['.env']), lambda: share(site, 'r1', ['public/media'])):
        with pytest.raises(CutoverError) as exc:
            run()
        assert exc.value.msg == ('%s is a symlink; shared data must be kept in a real directory under the root, so '
                                 'nothing was linked into %s.' % (site.shared_dir, site.release_path('r1')))
    assert os.listdir(str(outside)) == []
    assert snapshot(site.root) == before


def test_one_shared_path_inside_another_is_refused(site):
    with pytest.raises(CutoverError, match="'public/media/thumbs' lies inside the shared path 'public/media'"):
        plan(site, 'r1', ['public/media', 'public/media/thumbs'], [])


def _live_release_with_uploads(layout, tmp_path):
    """Deploy A with public/media shared, then B without (a config slip): B goes live and users upload into its
    real public/media, one upload under a name shared/ holds already with other content."""
    new_release(layout, tmp_path / 'a', {'index.php': 'A', 'public/media/logo.png': 'logo',
                                         'public/media/banner.png': 'banner'}, release_id='A')
    share(layout, 'A', dirs=['public/media'])
    switch(layout, release='A')
    with open(os.path.join(layout.shared_dir, 'public/media/photo.jpg'), 'w') as f:
        f.write('photo uploaded while A was live')
    new_release(layout, tmp_path / 'b', {'index.php': 'B', 'public/media/logo.png': 'logo',
                                         'public/media/banner.png': 'banner'}, release_id='B')
    switch(layout, release='B')
    media = os.path.join(layout.release_path('B'), 'public/media')
    write_tree(media, {'upload.jpg': 'uploaded while B was live', 'photo.jpg': 'another photo, same name',
                       'user/avatar.png': 'avatar', 'banner.png': 'banner edited in place'})
    return media


def test_uploads_into_a_live_release_are_moved_into_shared_never_deleted(layout, tmp_path):
    media = _live_release_with_uploads(layout, tmp_path)
    shared = os.path.join(layout.shared_dir, 'public/media')
    gaps, stop = [], threading.Event()

    def reader():
        while not stop.is_set():
            if not os.path.isdir(media):
                gaps.append(1)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        before = snapshot(layout.root)
        steps = plan(layout, 'B', ['public/media'], [])
        assert snapshot(layout.root) == before
        report = apply(layout, 'B', steps, no_chown, 0o755, 0o640)
    finally:
        stop.set()
        thread.join()
    # Every upload is in shared/, the clash under a new name; the shared photo stays as it was.
    assert read(os.path.join(shared, 'upload.jpg')) == b'uploaded while B was live'
    assert read(os.path.join(shared, 'user/avatar.png')) == b'avatar'
    assert read(os.path.join(shared, 'banner.png.cutover-B')) == b'banner edited in place'
    assert read(os.path.join(shared, 'photo.jpg.cutover-B')) == b'another photo, same name'
    assert read(os.path.join(shared, 'photo.jpg')) == b'photo uploaded while A was live'
    assert read(os.path.join(shared, 'logo.png')) == b'logo'
    assert os.readlink(media) == link_text('public/media')
    assert read(os.path.join(media, 'upload.jpg')) == b'uploaded while B was live'
    assert sorted(os.listdir(os.path.dirname(media))) == ['media']
    assert gaps == []
    # Check mode (the plan) said exactly what was done.
    assert acts(steps) == [('public/media', 'directory', ['replace', 'link', 'keep'])]
    expected = ['public/media/banner.png.cutover-B', 'public/media/photo.jpg.cutover-B',
                'public/media/upload.jpg', 'public/media/user']
    assert report == {'kept': expected, 'left': [],
                      'renamed': ['public/media/banner.png.cutover-B', 'public/media/photo.jpg.cutover-B']}
    assert (steps[0].kept, steps[0].renamed) == (report['kept'], report['renamed'])
    # Done once: a second run changes nothing.
    assert acts(plan(layout, 'B', ['public/media'], [])) == [('public/media', 'directory', [])]


def test_a_shared_file_the_release_changed_is_kept_beside_it(site):
    env = os.path.join(site.release_path('r1'), '.env')
    share(site, 'r1', files=['.env'])
    with open(os.path.join(site.shared_dir, '.env'), 'w') as f:
        f.write('SECRET=shared')
    os.unlink(env)
    with open(env, 'w') as f:
        f.write('SECRET=written in the release')
    steps = plan(site, 'r1', [], ['.env'])
    report = apply(site, 'r1', steps, no_chown, 0o755, 0o640)
    assert read(os.path.join(site.shared_dir, '.env')) == b'SECRET=shared'
    assert read(os.path.join(site.shared_dir, '.env.cutover-r1')) == b'SECRET=written in the release'
    assert os.readlink(env) == link_text('.env')
    assert acts(steps) == [('.env', 'file', ['replace', 'link', 'keep'])]
    assert report['renamed'] == ['.env.cutover-r1']


def test_shipped_files_are_dropped_only_when_unchanged(site, tmp_path):
    """What the source shipped is recognised by content, as the manifest records it."""
    with open(site.manifest_path('r1')) as f:
        manifest = json.load(f)
    assert 'public/media/logo.png' in manifest
    os.makedirs(os.path.join(site.shared_dir, 'public/media'))
    with open(os.path.join(site.release_path('r1'), 'public/media/logo.png'), 'w') as f:
        f.write('logo')  # same content, rewritten: still what the source shipped
    steps = share(site, 'r1', dirs=['public/media'])
    assert steps == [('public/media', 'directory', ['replace', 'link'])]
    assert os.listdir(os.path.join(site.shared_dir, 'public/media')) == []


def test_what_an_interrupted_run_left_beside_the_link_is_taken_in_by_the_next(site):
    share(site, 'r1', dirs=['public/media'])
    # A run stopped after the swap, before the old directory was emptied.
    write_tree(os.path.join(site.release_path('r1'), 'public/.media.cutover-link.999'),
               {'late.jpg': 'written late', 'logo.png': 'logo'})
    steps = plan(site, 'r1', ['public/media'], [])
    assert acts(steps) == [('public/media', 'directory', ['keep'])]
    assert apply(site, 'r1', steps, no_chown, 0o755, 0o640)['kept'] == steps[0].kept == ['public/media/late.jpg']
    assert read(os.path.join(site.shared_dir, 'public/media/late.jpg')) == b'written late'
    assert sorted(os.listdir(os.path.join(site.release_path('r1'), 'public'))) == ['index.php', 'media']
    assert acts(plan(site, 'r1', ['public/media'], [])) == [('public/media', 'directory', [])]


def test_a_writer_uploading_into_the_live_release_while_it_is_linked_loses_nothing(site):
    os.makedirs(os.path.join(site.shared_dir, 'public/media'))
    switch(site, release='r1')
    media = os.path.join(site.current_link, 'public/media')
    written, stop = [], threading.Event()

    def writer():
        n = 0
        while not stop.is_set() or n < 300:
            name = 'upload-%05d.jpg' % n
            with open(os.path.join(media, name), 'w') as f:
                f.write(name)
            written.append(name)
            n += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(written) < 100:
            pass
        steps = plan(site, 'r1', ['public/media'], [])
        report = apply(site, 'r1', steps, no_chown, 0o755, 0o640)
    finally:
        stop.set()
        thread.join()
    shared = os.path.join(site.shared_dir, 'public/media')
    assert sorted(os.listdir(shared)) == sorted(written)
    assert all(read(os.path.join(shared, name)) == name.encode() for name in written)
    assert report['renamed'] == [] and report['left'] == []


def test_uploads_are_copied_when_shared_is_another_filesystem(site, mount):
    mount(site.shared_dir)
    os.makedirs(os.path.join(site.shared_dir, 'public/media'))
    write_tree(os.path.join(site.release_path('r1'), 'public/media'), {'upload.jpg': 'up', 'album/a.jpg': 'a'})
    steps = plan(site, 'r1', ['public/media'], [])
    report = apply(site, 'r1', steps, no_chown, 0o755, 0o640)
    shared = os.path.join(site.shared_dir, 'public/media')
    assert (read(os.path.join(shared, 'upload.jpg')), read(os.path.join(shared, 'album/a.jpg'))) == (b'up', b'a')
    assert report['kept'] == steps[0].kept == ['public/media/album', 'public/media/upload.jpg']
    assert sorted(os.listdir(os.path.join(site.release_path('r1'), 'public'))) == ['index.php', 'media']
    assert [n for n in os.listdir(shared) if 'cutover' in n] == []
