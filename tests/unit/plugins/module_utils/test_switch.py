# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The switch: real symlinks renamed over each other, watched by a thread that must never see a gap."""

from __future__ import annotations

import errno
import os
import threading

import pytest

from ansible_collections.cutover.web.plugins.module_utils._releases import CutoverError, Layout
from ansible_collections.cutover.web.plugins.module_utils._switch import rollback, switch
from ansible_collections.cutover.web.tests.unit.helpers import (
    crash_after_first_record, mark, new_release, read, snapshot, write_tree,
)


@pytest.fixture
def site(layout, tmp_path):
    """A root with two ready releases A and B, nothing live yet."""
    for rid in ('A', 'B'):
        new_release(layout, tmp_path / ('src-' + rid), {'index.html': 'release ' + rid}, release_id=rid)
    return layout


class Watcher(object):
    """A thread lstat()ing some paths in a tight loop, counting every time one is missing."""

    def __init__(self, paths):
        self.paths = [str(p) for p in paths]
        self.missing = []
        self.looks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self):
        while not self._stop.is_set():
            for path in self.paths:
                try:
                    os.lstat(path)
                except OSError as exc:
                    if exc.errno == errno.ENOENT:
                        self.missing.append(path)
                    else:
                        raise
                self.looks += 1

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def history_events(layout):
    return [(e['event'], e.get('release')) for e in layout.read_history() if e['event'] != 'created']


def temp_leftovers(directory):
    return [n for n in os.listdir(directory) if n.startswith('.') and '.new.' in n]


# -- switching -------------------------------------------------------------------------------------

def test_switch_creates_a_relative_link(site):
    result = switch(site, release='A')
    assert result['changed'] is True
    assert os.readlink(site.current_link) == 'releases/A'
    assert read(os.path.join(site.current_link, 'index.html')) == b'release A'
    assert (result['link'], result['link_text'], result['release']) == (site.current_link, 'releases/A', 'A')
    assert result['target'] == site.release_path('A')
    assert (result['previous'], result['previous_release'], result['converted']) == (None, None, None)
    assert history_events(site) == [('activated', 'A')]
    assert site.current_id() == 'A'
    assert site.releases()['A'].state == 'active'
    assert temp_leftovers(site.root) == []


def test_switch_replaces_an_existing_link(site):
    switch(site, release='A')
    result = switch(site, release='B')
    assert result['changed'] is True
    assert os.readlink(site.current_link) == 'releases/B'
    assert (result['previous'], result['previous_release']) == ('releases/A', 'A')
    assert result['diff']['before'] == 'releases/A\n' and result['diff']['after'] == 'releases/B\n'
    assert history_events(site) == [('activated', 'A'), ('activated', 'B')]
    assert temp_leftovers(site.root) == []


def test_link_never_goes_missing_during_200_switches(site):
    switch(site, release='A')
    with Watcher([site.current_link]) as watcher:
        for i in range(200):
            switch(site, release='B' if i % 2 == 0 else 'A')
    assert watcher.missing == []
    assert watcher.looks > 200
    assert os.readlink(site.current_link) == 'releases/A'
    assert len(history_events(site)) == 201
    assert temp_leftovers(site.root) == []


def test_absolute_link_text(site):
    result = switch(site, release='A', relative=False)
    assert os.readlink(site.current_link) == site.release_path('A')
    assert result['link_text'] == site.release_path('A')
    # Changing only the link text style is a change, too.
    assert switch(site, release='A')['changed'] is True
    assert os.readlink(site.current_link) == 'releases/A'


def test_second_switch_to_the_same_release_changes_nothing(site):
    switch(site, release='A')
    before = snapshot(site.root)
    result = switch(site, release='A')
    assert result['changed'] is False
    assert (result['previous'], result['link_text']) == ('releases/A', 'releases/A')
    assert snapshot(site.root) == before  # same link inode, no new history line


def test_check_mode_changes_nothing(site):
    before = snapshot(site.root)
    result = switch(site, release='A', check_mode=True)
    assert result['changed'] is True and result['link_text'] == 'releases/A'
    assert snapshot(site.root) == before
    assert not os.path.lexists(site.current_link)

    switch(site, release='A')
    before = snapshot(site.root)
    result = switch(site, release='B', check_mode=True)
    assert result['changed'] is True and result['previous_release'] == 'A'
    assert snapshot(site.root) == before
    assert os.readlink(site.current_link) == 'releases/A'


def test_switch_a_link_elsewhere_to_a_plain_target(site, tmp_path):
    shared = os.path.join(site.root, 'shared', 'assets')
    os.makedirs(shared)
    link = os.path.join(site.root, 'web', 'assets')
    os.makedirs(os.path.dirname(link))
    result = switch(site, target='shared/assets', link='web/assets')
    assert result['changed'] is True and result['release'] is None
    assert os.readlink(link) == '../shared/assets'
    assert history_events(site) == []  # only the current link records activations


# -- refusals: each leaves the root exactly as it was ----------------------------------------------

def refused(layout, expected_msg, **kwargs):
    before = snapshot(layout.root)
    with pytest.raises(CutoverError) as exc:
        switch(layout, **kwargs)
    assert exc.value.msg == expected_msg
    assert snapshot(layout.root) == before
    return exc.value


def test_refuses_a_missing_target(site):
    switch(site, release='A')
    missing = os.path.join(site.root, 'nowhere')
    err = refused(site, 'The target %s does not exist.' % missing, target='nowhere')
    assert err.path == missing
    refused(site, 'The target %s does not exist.' % site.release_path('Z'), release='Z')
    assert os.readlink(site.current_link) == 'releases/A'


def test_refuses_a_dangling_symlink_target(site):
    switch(site, release='A')
    dangling = os.path.join(site.root, 'dangling')
    os.symlink('gone/away', dangling)
    refused(site, 'The target %s is a dangling symlink (it points to gone/away, which does not exist).' % dangling,
            target=dangling)


def test_refuses_a_looping_symlink_target(site):
    switch(site, release='A')
    loop = os.path.join(site.root, 'loop')
    os.symlink('loop', loop)
    refused(site, 'The target %s is a symlink loop.' % loop, target='loop')


def test_refuses_a_target_that_is_a_file(site):
    switch(site, release='A')
    path = os.path.join(site.root, 'file.txt')
    with open(path, 'w') as f:
        f.write('x')
    refused(site, 'The target %s is not a directory.' % path, target='file.txt')


def test_target_outside_root_needs_allow_outside_root(site, tmp_path):
    switch(site, release='A')
    outside = tmp_path / 'elsewhere'
    outside.mkdir()
    refused(site, 'The target %s is outside the root %s; set allow_outside_root to link there anyway.'
            % (outside, site.root), target=str(outside))
    refused(site, 'The target %s is outside the root %s; set allow_outside_root to link there anyway.'
            % (outside, site.root), target='../elsewhere')

    result = switch(site, target=str(outside), allow_outside_root=True)
    assert result['changed'] is True
    assert os.readlink(site.current_link) == '../elsewhere'
    assert os.path.samefile(site.current_link, str(outside))


def test_symlink_inside_root_resolving_outside_is_outside_root(site, tmp_path):
    switch(site, release='A')
    outside = tmp_path / 'elsewhere'
    outside.mkdir()
    os.symlink(str(outside), os.path.join(site.root, 'escape'))
    before = snapshot(site.root)
    with pytest.raises(CutoverError, match='outside the root'):
        switch(site, target='escape')
    assert os.readlink(site.current_link) == 'releases/A', 'current now points outside the root'
    assert snapshot(site.root) == before


@pytest.mark.parametrize('state', ['failed', 'bad'])
def test_refuses_a_release_marked_failed_or_bad(site, state):
    switch(site, release='A')
    mark(site, 'B', state)
    err = refused(site, 'The release %s is %s, not ready, so it cannot go live.' % (site.release_path('B'), state),
                  release='B')
    assert err.details == {'state': state}


def test_refuses_a_directory_the_history_does_not_know(site):
    switch(site, release='A')
    write_tree(os.path.join(site.releases_dir, 'by-hand'), {'index.html': 'manual'})
    path = site.release_path('by-hand')
    refused(site, 'The target %s is not a release cutover.web made (the history does not know it).' % path,
            release='by-hand')
    refused(site, 'The target %s is not a release cutover.web made (the history does not know it).' % path,
            target='releases/by-hand')


def test_refuses_a_symlink_inside_releases(site, tmp_path):
    switch(site, release='A')
    outside = tmp_path / 'elsewhere'
    outside.mkdir()
    evil = os.path.join(site.releases_dir, 'evil')
    os.symlink(str(outside), evil)
    refused(site, 'The release %s is a symlink; releases must be real directories.' % evil, release='evil')
    refused(site, 'The release %s is a symlink; releases must be real directories.' % evil, target='releases/evil')
    # Even a real release cannot go live while releases/ holds such a link.
    before = snapshot(site.root)
    with pytest.raises(CutoverError) as exc:
        switch(site, release='B')
    assert exc.value.msg.startswith('%s is a symlink to %s;' % (evil, outside))
    assert snapshot(site.root) == before


def test_refuses_a_link_path_that_is_a_regular_file(site):
    with open(site.current_link, 'w') as f:
        f.write('not a link')
    refused(site, 'The link path %s is a regular file, not a symlink; move it away first.' % site.current_link,
            release='A')
    assert read(site.current_link) == b'not a link'


def test_refuses_a_non_empty_directory_without_convert_directory(site):
    write_tree(site.current_link, {'index.html': 'legacy'})
    refused(site, 'The link path %s is a non-empty directory; set convert_directory to swap it for a symlink '
            '(the old directory is kept beside it).' % site.current_link, release='A')
    assert read(os.path.join(site.current_link, 'index.html')) == b'legacy'


def test_refuses_a_link_in_a_missing_directory(site):
    link = os.path.join(site.root, 'no', 'such', 'dir', 'current')
    refused(site, 'The directory %s that should hold the link does not exist.' % os.path.dirname(link),
            release='A', link=link)


# -- converting a legacy directory -----------------------------------------------------------------

def test_empty_directory_is_replaced_without_convert_directory(site):
    os.mkdir(site.current_link)
    result = switch(site, release='A')
    assert result['changed'] is True and result['converted'] is None
    assert os.readlink(site.current_link) == 'releases/A'
    assert [n for n in os.listdir(site.root) if 'pre-cutover' in n] == []


def test_convert_directory_swaps_without_a_gap_and_keeps_the_old_content(site):
    write_tree(site.current_link, {'index.html': 'legacy', 'img/logo.png': b'\x89PNG'})
    with Watcher([site.current_link]) as watcher:
        result = switch(site, release='A', convert_directory=True)
    assert watcher.missing == [] and watcher.looks > 0
    assert result['changed'] is True
    assert os.readlink(site.current_link) == 'releases/A'
    kept = result['converted']
    assert kept.startswith(site.current_link + '.pre-cutover-')
    assert os.path.isdir(kept) and not os.path.islink(kept)
    assert read(os.path.join(kept, 'index.html')) == b'legacy'
    assert read(os.path.join(kept, 'img/logo.png')) == b'\x89PNG'
    assert history_events(site) == [('activated', 'A')]
    assert temp_leftovers(site.root) == []


def test_many_directory_conversions_never_leave_a_gap(site, tmp_path):
    switch(site, release='A')
    www = tmp_path / 'www'
    links = [str(www / ('public_html_%02d' % i)) for i in range(40)]
    for link in links:
        write_tree(link, {'index.html': 'legacy ' + link})
    with Watcher(links) as watcher:
        results = [switch(site, target=site.current_link, link=link, allow_outside_root=True,
                          relative=False, convert_directory=True) for link in links]
    assert watcher.missing == []
    for link, result in zip(links, results):
        assert os.readlink(link) == site.current_link
        assert read(os.path.join(result['converted'], 'index.html')) == ('legacy ' + link).encode()
        assert read(os.path.join(link, 'index.html')) == b'release A'
    assert history_events(site) == [('activated', 'A')]


def test_convert_directory_in_check_mode_changes_nothing(site):
    write_tree(site.current_link, {'index.html': 'legacy'})
    before = snapshot(site.root)
    result = switch(site, release='A', convert_directory=True, check_mode=True)
    assert result['changed'] is True and result['converted'] is None
    assert result['diff']['before'] == '(dir)\n'
    assert snapshot(site.root) == before


# -- history: order and rollback target --------------------------------------------------------------

def test_activations_drive_order_and_rollback_target(site, tmp_path):
    new_release(site, tmp_path / 'src-C', {'index.html': 'release C'}, release_id='C')
    assert site.rollback_target() is None
    switch(site, release='A')
    assert site.rollback_target() is None
    switch(site, release='B')
    assert site.rollback_target().id == 'A'
    switch(site, release='C')
    assert site.rollback_target().id == 'B'
    # Roll back: B goes live again, C becomes the rollback target.
    result = switch(site, release='B')
    assert result['previous_release'] == 'C'
    assert site.rollback_target().id == 'C'
    assert [r.id for r in site.ordered()] == ['B', 'C', 'A']
    # A release rolled back from and marked bad is no rollback target any more.
    mark(site, 'C', 'bad')
    assert site.rollback_target().id == 'A'
    assert history_events(site) == [('activated', 'A'), ('activated', 'B'), ('activated', 'C'),
                                    ('activated', 'B'), ('marked', 'C')]


# -- rollback ----------------------------------------------------------------------------------------

def test_rollback_goes_to_the_release_live_before_and_marks_the_one_left_bad(site):
    switch(site, release='A')
    switch(site, release='B')
    result = rollback(site)
    assert result['changed'] and result['release'] == 'A' and result['rolled_back_from'] == 'B'
    assert os.readlink(site.current_link) == 'releases/A'
    assert site.releases()['B'].mark == 'bad'


def test_rollback_is_not_repeated(site, tmp_path):
    new_release(site, tmp_path / 'src-C', {'index.html': 'release C'}, release_id='C')
    for rid in ('A', 'B', 'C'):
        switch(site, release=rid)
    rollback(site)
    before = snapshot(site.root)
    again = rollback(site)
    assert not again['changed'] and again['already_rolled_back'] and again['release'] == 'B'
    assert snapshot(site.root) == before
    # Naming a release goes further back.
    further = rollback(site, release='A')
    assert further['changed'] and os.readlink(site.current_link) == 'releases/A'
    assert site.releases()['B'].mark == 'bad'


def test_rollback_check_mode_changes_nothing(site):
    switch(site, release='A')
    switch(site, release='B')
    before = snapshot(site.root)
    result = rollback(site, check_mode=True)
    assert result['changed'] and result['release'] == 'A' and result['rolled_back_from'] == 'B'
    assert snapshot(site.root) == before


def test_rollback_with_nothing_to_go_back_to_is_refused(site):
    switch(site, release='A')
    before = snapshot(site.root)
    with pytest.raises(CutoverError) as exc:
        rollback(site)
    assert exc.value.msg == ('There is no release to roll back to in %s: no release that was live before A is '
                             'still ready.' % site.releases_dir)
    assert snapshot(site.root) == before


def test_rollback_can_leave_the_release_ready(site):
    switch(site, release='A')
    switch(site, release='B')
    rollback(site, mark_previous=None)
    assert site.releases()['B'].mark == 'ready'


# -- crashes: the history never lies -----------------------------------------------------------------

def state_of(layout):
    """What a user sees of the releases: states and marks, deploy order, rollback target, current."""
    releases = layout.releases()
    target = layout.rollback_target(releases)
    return ({r.id: (r.state, r.mark) for r in releases.values()}, [r.id for r in layout.ordered(releases)],
            target.id if target else None, layout.current_id())


def put_link(layout, text):
    tmp = layout.current_link + '.put'
    os.symlink(text, tmp)
    os.rename(tmp, layout.current_link)


@pytest.mark.parametrize('operation', ['switch', 'rollback'])
def test_torn_last_record_leaves_the_state_before_it_at_every_byte(site, tmp_path, operation):
    new_release(site, tmp_path / 'src-C', {'index.html': 'release C'}, release_id='C')
    live = ('A', 'B') if operation == 'switch' else ('A', 'B', 'C')
    for rid in live:
        switch(site, release=rid)

    def act(layout):
        return switch(layout, release='C') if operation == 'switch' else rollback(layout)

    before, history, link = state_of(site), read(site.history_file), os.readlink(site.current_link)
    act(Layout(site.root))
    after = state_of(Layout(site.root))
    record = read(site.history_file)[len(history):]
    assert record.count(b'\n') == 1 and record.endswith(b'\n'), 'one record per switch'

    warning = ('The last line of the history %s is a record whose write never completed (a run stopped while writing '
               'it, before making its change), so it was left out; the next change to the history removes it.'
               % site.history_file)
    for cut in range(len(record)):
        # The record never completed, so the rename that follows it never happened.
        with open(site.history_file, 'wb') as f:
            f.write(history + record[:cut])
        put_link(site, link)
        layout = Layout(site.root)
        assert state_of(layout) == before, 'cut after %d bytes of %r' % (cut, record)
        assert layout.warnings == ([warning] if cut else [])

    # The next run does what the interrupted one meant to, on a history cut back to its last complete line.
    act(Layout(site.root))
    assert state_of(Layout(site.root)) == after
    data = read(site.history_file)
    assert data.startswith(history) and data.count(b'\n') == history.count(b'\n') + 1
    if operation == 'rollback':
        again = rollback(Layout(site.root))
        assert not again['changed'] and again['already_rolled_back']
        assert os.readlink(site.current_link) == 'releases/B'


def test_switch_killed_between_its_record_and_the_rename_did_not_happen(site, tmp_path):
    new_release(site, tmp_path / 'src-C', {'index.html': 'release C'}, release_id='C')
    switch(site, release='A')
    switch(site, release='B')
    crash_after_first_record(site, lambda layout: switch(layout, release='C'))

    layout = Layout(site.root)
    assert os.readlink(site.current_link) == 'releases/B', 'the record is written ahead of the rename'
    assert layout.read_history()[-1]['release'] == 'C'
    assert state_of(layout) == ({'A': ('ready', 'ready'), 'B': ('active', 'ready'), 'C': ('ready', 'ready')},
                                ['B', 'A', 'C'], 'A', 'B')
    result = rollback(layout)
    assert (result['release'], result['rolled_back_from']) == ('A', 'B')
    assert os.readlink(site.current_link) == 'releases/A'
    # C never went live, so it is no rollback target; a new switch to it counts.
    assert Layout(site.root).rollback_target() is None
    switch(Layout(site.root), release='C')
    assert state_of(Layout(site.root))[1:] == (['C', 'A', 'B'], 'A', 'C')


def test_rollback_killed_after_its_record_never_puts_the_release_left_live_again(site, tmp_path):
    new_release(site, tmp_path / 'src-C', {'index.html': 'release C'}, release_id='C')
    for rid in ('A', 'B', 'C'):
        switch(site, release=rid)
    crash_after_first_record(site, rollback)

    first = rollback(Layout(site.root))
    assert os.readlink(site.current_link) == 'releases/B'
    assert first['changed'] is True and first['rolled_back_from'] == 'C'
    assert Layout(site.root).releases()['C'].state == 'bad'
    again = rollback(Layout(site.root))
    assert not again['changed'] and again['already_rolled_back']
    assert os.readlink(site.current_link) == 'releases/B'
    assert Layout(site.root).rollback_target().id == 'A'


def test_rollback_marks_the_release_left_in_its_one_record(site):
    switch(site, release='A')
    switch(site, release='B')
    rollback(site)
    last = site.read_history()[-1]
    assert (last['event'], last['release'], last['previous'], last['mark_previous'], last['link']) == \
        ('activated', 'A', 'B', 'bad', 'releases/A')
    assert [e['event'] for e in site.read_history()].count('marked') == 0
