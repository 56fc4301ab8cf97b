# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The release model: ids, the root, the history journal, and state and order derived from it."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from ansible_collections.cutover.web.plugins.module_utils._releases import (
    CutoverError, Layout, staging_name, staging_started, validate_release_id,
)
from ansible_collections.cutover.web.plugins.module_utils._switch import switch
from ansible_collections.cutover.web.tests.unit.helpers import (
    crash_after_first_record, mark, new_release, read, snapshot, write_tree,
)


# -- release ids ---------------------------------------------------------------------------------

@pytest.mark.parametrize('bad', ['', None])
def test_empty_release_id_is_refused(bad):
    with pytest.raises(CutoverError) as exc:
        validate_release_id(bad)
    assert exc.value.msg == 'The release id is empty; give a non-empty name such as 2026-11-22T10-00-00Z.'


@pytest.mark.parametrize('bad, reason', [
    ('a/b', "it contains '/'"),
    ('/etc', "it contains '/'"),
    ('..', "it contains '..'"),
    ('v1..2', "it contains '..'"),
    ('.hidden', "it starts with '.'"),
    ('-rf', "it starts with '-'"),
    ('a\nb', 'it contains a control character'),
    ('a\x7fb', 'it contains a control character'),
    ('x' * 181, 'it is longer than 180 bytes'),
    (u'\u00fc' * 91, 'it is longer than 180 bytes'),  # 182 bytes in UTF-8
])
def test_unusable_release_ids_are_refused_with_the_reason(bad, reason):
    with pytest.raises(CutoverError) as exc:
        validate_release_id(bad)
    assert exc.value.msg == 'The release id %r is not usable because %s.' % (bad, reason)


@pytest.mark.parametrize('good', [
    u'v 2 \u00fc', '2026-11-22T10-00-00Z', 'v1.2.3', 'release_7', u'\u00fc' * 90, 'x' * 180, u'\u65e5\u672c',
])
def test_usable_release_ids_are_accepted(good, layout):
    assert validate_release_id(good) == good
    assert layout.release_path(good) == os.path.join(layout.root, 'releases', good)


def test_bad_release_id_refused_before_anything_is_created(root, tmp_path):
    layout = Layout(root)
    with pytest.raises(CutoverError, match="not usable because it contains '/'"):
        new_release(layout, tmp_path / 'src', {'index.html': 'hi'}, release_id='../escape')
    assert not os.path.exists(root)
    assert not os.path.exists(str(tmp_path / 'escape'))


# -- the root ------------------------------------------------------------------------------------

@pytest.mark.parametrize('bad', ['srv/www/shop', 'shop', './shop', '', None])
def test_relative_root_is_refused(bad, tmp_path, monkeypatch):
    monkeypatch.chdir(str(tmp_path))
    with pytest.raises(CutoverError) as exc:
        Layout(bad)
    assert exc.value.msg.startswith('The root %r is not an absolute path' % (bad,))
    assert exc.value.path == bad
    assert os.listdir(str(tmp_path)) == []


def test_root_path_is_normalized(tmp_path):
    layout = Layout(str(tmp_path) + '/a//b/../site/')
    assert layout.root == str(tmp_path / 'a' / 'site')
    assert layout.current_link == str(tmp_path / 'a' / 'site' / 'current')


def test_require_root_names_the_problem(tmp_path):
    missing = Layout(str(tmp_path / 'missing'))
    with pytest.raises(CutoverError) as exc:
        missing.require_root()
    assert exc.value.msg == 'The root %s does not exist.' % missing.root
    (tmp_path / 'file').write_text('x')
    with pytest.raises(CutoverError) as exc:
        Layout(str(tmp_path / 'file')).require_root()
    assert exc.value.msg == 'The root %s is not a directory.' % (tmp_path / 'file')


def test_ensure_dirs_refuses_a_symlinked_state_dir(root, tmp_path):
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    os.makedirs(root)
    os.symlink(str(elsewhere), os.path.join(root, '.cutover'))
    layout = Layout(root)
    with pytest.raises(CutoverError) as exc:
        layout.ensure_dirs()
    assert exc.value.msg == '%s is a symlink; cutover.web never follows links inside the root.' % layout.state_dir
    assert os.listdir(str(elsewhere)) == []


@pytest.mark.parametrize('slash', ['/', '//', '///', '/./', '/..', '/srv/..'])
def test_filesystem_root_is_refused(slash):
    with pytest.raises(CutoverError) as exc:
        Layout(slash)
    assert exc.value.msg == ('The root %s is the filesystem root /, which cannot be a deploy root; give a directory '
                             'of its own, for example /srv/www/shop.' % slash)
    assert exc.value.path == slash


def test_link_to_the_filesystem_root_is_refused(tmp_path):
    os.symlink('/', str(tmp_path / 'slash'))
    with pytest.raises(CutoverError, match='is the filesystem root /, which cannot be a deploy root'):
        Layout(str(tmp_path / 'slash'))


STATE_PARTS = ['.cutover', '.cutover/history.jsonl', '.cutover/manifests', '.cutover/staging', '.cutover/trash',
               '.cutover/backups', '.cutover/backups/a', '.cutover/repos', '.cutover/deploy.lock']


@pytest.mark.parametrize('part', STATE_PARTS)
def test_symlink_in_the_state_directory_is_refused_by_every_operation(layout, tmp_path, part):
    new_release(layout, tmp_path / 'src-a', {'index.html': 'a'}, release_id='a')
    new_release(layout, tmp_path / 'src-b', {'index.html': 'b'}, release_id='b')
    switch(layout, release='a')
    os.makedirs(layout.backup_dir('a'))
    os.makedirs(layout.trash_dir)
    os.makedirs(layout.repos_dir)
    with open(layout.lock_file, 'w') as f:
        f.write('{}')
    # The part, moved outside the root and replaced by a link to it.
    path = os.path.join(layout.root, part)
    outside = str(tmp_path / 'outside' / os.path.basename(path))
    os.makedirs(os.path.dirname(outside))
    os.rename(path, outside)
    os.symlink(outside, path)
    before, outside_before = snapshot(layout.root), snapshot(tmp_path / 'outside')
    expected = '%s is a symlink; cutover.web never follows links inside the root.' % path
    for action in (lambda: switch(layout, release='b'),
                   lambda: new_release(layout, tmp_path / 'src-c', {'index.html': 'c'}, release_id='c'),
                   lambda: layout.append_history('schema', 'a', version='1'),
                   layout.read_history, layout.releases, layout.ensure_dirs, layout.require_root, layout.check_state):
        with pytest.raises(CutoverError) as exc:
            action()
        assert exc.value.msg == expected
        assert exc.value.path == path
    assert snapshot(layout.root) == before
    assert snapshot(tmp_path / 'outside') == outside_before


@pytest.mark.parametrize('part, kind', [('.cutover/history.jsonl', 'regular file'), ('.cutover/trash', 'directory'),
                                        ('.cutover', 'directory')])
def test_state_part_of_the_wrong_kind_is_refused(layout, tmp_path, part, kind):
    new_release(layout, tmp_path / 'src-a', {'index.html': 'a'}, release_id='a')
    path = os.path.join(layout.root, part)
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)
    if kind == 'directory':
        write_tree(os.path.dirname(path), {os.path.basename(path): 'a file'})
    else:
        os.makedirs(path)
    with pytest.raises(CutoverError) as exc:
        layout.releases()
    assert exc.value.msg == '%s exists and is not a %s.' % (path, kind)


# -- the history journal --------------------------------------------------------------------------

def test_history_is_append_only_with_increasing_seq(layout):
    layout.ensure_dirs()
    first = layout.append_history('created', 'a', fingerprint='f1')
    second = layout.append_history('activated', 'a')
    assert (first['seq'], second['seq']) == (1, 2)
    entries = layout.read_history()
    assert [(e['seq'], e['event'], e['release']) for e in entries] == [(1, 'created', 'a'), (2, 'activated', 'a')]
    assert oct(os.stat(layout.history_file).st_mode & 0o777) == oct(0o600)


def test_missing_history_reads_as_empty(layout):
    assert layout.read_history() == []
    assert layout.releases() == {}
    assert layout.current_id() is None
    assert layout.rollback_target() is None


def torn_warning(layout):
    return ('The last line of the history %s is a record whose write never completed (a run stopped while writing '
            'it, before making its change), so it was left out; the next change to the history removes it.'
            % layout.history_file)


def test_torn_last_line_is_left_out_with_a_warning(layout, tmp_path):
    new_release(layout, tmp_path / 'src', {'index.html': 'one'}, release_id='a')
    before = layout.read_history()
    with open(layout.history_file, 'ab') as f:
        f.write(b'{"seq": 2, "event": "marked", "release": "a", "sta')  # crash mid-write
    assert layout.read_history() == before
    assert layout.releases()['a'].state == 'ready'
    assert layout.warnings == [torn_warning(layout)]


def test_complete_record_without_its_newline_is_still_torn(layout, tmp_path):
    new_release(layout, tmp_path / 'src', {'index.html': 'one'}, release_id='a')
    before = read(layout.history_file)
    with open(layout.history_file, 'ab') as f:
        f.write(b'{"epoch": 1, "event": "marked", "release": "a", "seq": 2, "state": "bad"}')  # no newline yet
    assert layout.releases()['a'].state == 'ready'
    assert layout.warnings == [torn_warning(layout)]
    layout.append_history('schema', 'a', version='1')
    assert read(layout.history_file).startswith(before + b'{')
    assert [e['event'] for e in layout.read_history()] == ['created', 'schema']


def test_next_append_cuts_a_torn_last_line_off(layout, tmp_path):
    new_release(layout, tmp_path / 'src', {'index.html': 'one'}, release_id='a')
    before = read(layout.history_file)
    with open(layout.history_file, 'ab') as f:
        f.write(b'{"seq": 2, "event": "marked", "release": "a", "sta')  # crash mid-write
    switch(layout, release='a')
    data = read(layout.history_file)
    assert data.startswith(before) and b'"sta' not in data and data.endswith(b'\n')
    assert [(e['seq'], e['event']) for e in layout.read_history()] == [(1, 'created'), (2, 'activated')]
    assert layout.releases()['a'].state == 'active'
    assert Layout(layout.root).read_history() and Layout(layout.root).warnings == []


@pytest.mark.parametrize('bad', [
    b'{"seq": 2, "event": "marked", "release": "a", "sta',  # torn by an older version, which went on after it
    b'not json at all',
    b'[1, 2, 3]',
    b'{"event": "marked", "release": "a"}',  # no seq
])
def test_bad_line_before_the_last_is_refused_naming_the_line(layout, tmp_path, bad):
    new_release(layout, tmp_path / 'src', {'index.html': 'one'}, release_id='a')
    with open(layout.history_file, 'ab') as f:
        f.write(b'\n' + bad + b'\n{"seq": 3, "event": "activated", "release": "a", "previous": null}\n')
    before = snapshot(layout.root)
    expected = ('The history %s is corrupt at line 3 (it is not a complete record), so the state of the releases '
                'cannot be trusted; repair or remove that line.' % layout.history_file)
    for action in (layout.read_history, layout.releases, lambda: layout.append_history('schema', 'a', version='1'),
                   lambda: switch(layout, release='a')):
        with pytest.raises(CutoverError) as exc:
            action()
        assert exc.value.msg == expected
        assert exc.value.path == layout.history_file
    assert snapshot(layout.root) == before


def test_release_killed_after_its_record_is_no_release_until_made_again(layout, tmp_path):
    src = write_tree(tmp_path / 'src', {'index.html': 'one'})
    crash_after_first_record(layout, lambda l: new_release(l, src, {}, release_id='a'))
    assert layout.read_history()[-1]['event'] == 'created'
    assert not os.path.lexists(layout.release_path('a')), 'the record is written ahead of the rename'
    assert Layout(layout.root).releases() == {}
    assert len(os.listdir(layout.staging_dir)) == 1  # the unfinished tree, pruned by the start time in its name
    result = new_release(Layout(layout.root), src, {}, release_id='a')
    assert result['changed'] is True
    assert Layout(layout.root).releases()['a'].state == 'ready'


def test_history_of_the_older_format_is_still_read(layout, tmp_path):
    """Activations written after the rename, and a rollback's mark as a record of its own."""
    for rid in ('A', 'B'):
        new_release(layout, tmp_path / ('src-' + rid), {'index.html': rid}, release_id=rid)
    with open(layout.history_file, 'ab') as f:
        for seq, fields in enumerate(({'event': 'activated', 'release': 'A', 'previous': None},
                                      {'event': 'activated', 'release': 'B', 'previous': 'A'},
                                      {'event': 'activated', 'release': 'A', 'previous': 'B'},
                                      {'event': 'marked', 'release': 'B', 'state': 'bad', 'previous': 'ready'}), 3):
            fields.update(seq=seq, epoch=1.0)
            f.write(json.dumps(fields).encode() + b'\n')
    os.symlink('releases/A', layout.current_link)
    releases = layout.releases()
    assert {r.id: r.state for r in releases.values()} == {'A': 'active', 'B': 'bad'}
    assert [r.id for r in layout.ordered(releases)] == ['A', 'B']
    assert layout.rollback_target() is None


def test_order_and_state_come_from_history_not_file_times(layout, tmp_path):
    for rid in ('A', 'B', 'C'):
        new_release(layout, tmp_path / ('src-' + rid), {'index.html': rid}, release_id=rid)
    switch(layout, release='A')
    switch(layout, release='B')
    switch(layout, release='A')
    # Make C look newest and A oldest on disk: file times must not matter.
    now = time.time()
    for rid, age in (('A', 10 ** 6), ('B', 10), ('C', -10 ** 5)):
        path = layout.release_path(rid)
        os.utime(path, (now - age, now - age))
        os.chmod(path, 0o750)
    releases = layout.releases()
    assert [r.id for r in layout.ordered(releases)] == ['A', 'B', 'C']
    assert {r.id: r.state for r in releases.values()} == {'A': 'active', 'B': 'ready', 'C': 'ready'}
    assert layout.current_id() == 'A'
    assert layout.rollback_target().id == 'B'

    mark(layout, 'B', 'bad')
    releases = layout.releases()
    assert releases['B'].state == 'bad'
    # C never went live, so with B bad there is nothing to roll back to.
    assert layout.rollback_target() is None


def test_directory_unknown_to_history_is_unknown_and_never_ordered(layout, tmp_path):
    new_release(layout, tmp_path / 'src', {'index.html': 'x'}, release_id='made')
    os.makedirs(os.path.join(layout.releases_dir, 'by-hand'))
    releases = layout.releases()
    assert releases['by-hand'].state == 'unknown'
    assert [r.id for r in layout.ordered(releases)] == ['made']
    info = layout.describe(releases['by-hand'], layout.current_id(), None)
    assert info['order'] is None and info['state'] == 'unknown'


def test_removed_event_makes_a_leftover_directory_unknown(layout, tmp_path):
    new_release(layout, tmp_path / 'src', {'index.html': 'x'}, release_id='gone')
    layout.append_history('removed', 'gone')
    assert layout.releases()['gone'].state == 'unknown'


def test_symlink_in_releases_is_refused(layout, tmp_path):
    new_release(layout, tmp_path / 'src', {'index.html': 'x'}, release_id='real')
    outside = tmp_path / 'outside'
    outside.mkdir()
    link = os.path.join(layout.releases_dir, 'evil')
    os.symlink(str(outside), link)
    with pytest.raises(CutoverError) as exc:
        layout.releases()
    assert exc.value.msg.startswith('%s is a symlink to %s;' % (link, outside))
    assert exc.value.path == link


def test_current_pointing_outside_releases_is_no_release(layout, tmp_path):
    os.makedirs(layout.root)
    os.symlink(str(tmp_path), layout.current_link)
    assert layout.current_id() is None


@pytest.mark.parametrize('rid', ['v1.2.3', u'v 2 \u00fc', 'plain'])
def test_staging_name_carries_its_start_time(rid):
    name = staging_name(rid, now=1700000000.7)
    assert name.startswith(rid + '.1700000000.%d.' % os.getpid())
    assert staging_started(name) == 1700000000
    assert staging_started('no-time-here') is None


def test_staging_entries_list_leftovers_with_start_time(layout):
    layout.ensure_dirs()
    name = staging_name('r1', now=1700000000)
    os.mkdir(os.path.join(layout.staging_dir, name))
    os.mkdir(os.path.join(layout.staging_dir, 'odd'))
    assert layout.staging_entries() == [
        ('odd', None, os.path.join(layout.staging_dir, 'odd')),
        (name, 1700000000, os.path.join(layout.staging_dir, name)),
    ]
    before = snapshot(layout.root)
    layout.releases()
    assert snapshot(layout.root) == before


def test_schema_version_is_recorded_once_and_reported(layout, tmp_path):
    new_release(layout, tmp_path / 'src', {'index.php': '<?php echo 1;'}, 'r1')
    assert layout.releases()['r1'].schema is None

    assert layout.record_schema('r1', '0002-expand-stock', check_mode=True) is True
    assert layout.releases()['r1'].schema is None
    assert layout.record_schema('r1', '0002-expand-stock') is True
    assert layout.record_schema('r1', '0002-expand-stock') is False
    rel = layout.releases()['r1']
    assert rel.schema == '0002-expand-stock'
    assert layout.describe(rel, None, None)['schema_version'] == '0002-expand-stock'
    event = layout.read_history()[-1]
    assert (event['event'], event['release'], event['version'], event['previous']) == \
        ('schema', 'r1', '0002-expand-stock', None)


@pytest.mark.parametrize('version', ['', '   ', 'two\nlines', None])
def test_unusable_schema_version_is_refused(layout, tmp_path, version):
    new_release(layout, tmp_path / 'src', {'a': 'b'}, 'r1')
    before = layout.read_history()
    with pytest.raises(CutoverError, match=r'The schema version .* for .*r1 is not usable'):
        layout.record_schema('r1', version)
    assert layout.read_history() == before


def test_schema_version_of_a_missing_release_is_refused(layout):
    layout.ensure_dirs()
    with pytest.raises(CutoverError, match=r'releases/nope does not exist .* so its schema version cannot be recorded'):
        layout.record_schema('nope', '1')
