# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Shared paths linked into releases, on real files."""

from __future__ import annotations

import os
import threading

import pytest

from ansible_collections.cutover.web.plugins.module_utils._releases import CutoverError
from ansible_collections.cutover.web.plugins.module_utils._shared import apply, link_text, plan
from ansible_collections.cutover.web.plugins.module_utils._switch import switch
from ansible_collections.cutover.web.tests.unit.helpers import new_release, read, snapshot


def share(layout, release_id, dirs=(), files=()):
    steps = plan(layout, release_id, list(dirs), list(files))
    apply(layout, release_id, steps, lambda path: None, 0o755, 0o640)
    return steps


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
    assert plan(site, 'r1', ['public/media'], []) == [('public/media', 'directory', [])]
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
    with pytest.raises(CutoverError, match='leads outside .* through a symlink'):
        share(site, 'r1', dirs=['public/media'])
    assert os.listdir(str(outside)) == []


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
        assert steps == [('public/media', 'directory', ['adopt', 'replace', 'link'])]
        apply(site, 'r1', steps, lambda path: None, 0o755, 0o640, legacy={'public/media': str(legacy)})
    finally:
        stop.set()
        thread.join()
    shared = os.path.join(site.shared_dir, 'public/media')
    assert os.path.isdir(shared) and not os.path.islink(shared)
    assert os.readlink(str(legacy)) == shared
    assert sorted(os.listdir(shared)) == sorted(written + ['old.jpg'])
    assert read(os.path.join(site.release_path('r1'), 'public/media/old.jpg')) == b'old'
    # Adopted once: a second run leaves the legacy link alone.
    assert plan(site, 'r1', ['public/media'], [], legacy={'public/media': str(legacy)}) == [
        ('public/media', 'directory', [])]


def test_a_legacy_path_that_is_not_absolute_is_refused(site):
    with pytest.raises(CutoverError, match="The legacy directory for 'public/media' must be an absolute path"):
        plan(site, 'r1', ['public/media'], [], legacy={'public/media': 'html/media'})
