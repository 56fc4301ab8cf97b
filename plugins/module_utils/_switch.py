# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The switch: point a symlink at a new target with one rename(2), never leaving a gap.

``ln -s new tmp && mv -T tmp current`` is the whole idea: rename(2) replaces the old link
atomically, so every path lookup sees either the old or the new target. ``rm`` + ``ln``
leaves an instant with no link at all.

A link path that is still a real directory (the legacy ``public_html`` layout) cannot be
replaced by rename(2); it is swapped with the new link by renameat2(RENAME_EXCHANGE), so
the path never goes missing either.
"""

from __future__ import annotations

import errno
import os

from ansible_collections.cutover.web.plugins.module_utils._fs import (
    RENAME_EXCHANGE, RenameError, clear_temp, exchange_error, put_in_place, temp_name,
)
from ansible_collections.cutover.web.plugins.module_utils._releases import CutoverError, fsync_dir, stamp


def read_link(path):
    """The link text of ``path``; None when nothing is there. Raises CutoverError for non-links."""
    try:
        return os.readlink(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        if exc.errno == errno.EINVAL:
            return _not_a_link(path)
        raise CutoverError('Cannot read the link %s: %s.' % (path, exc.strerror), path=path)


def _not_a_link(path):
    if os.path.isdir(path):
        raise _IsDirectory(path)
    raise CutoverError('The link path %s is a regular file, not a symlink; move it away first.' % path, path=path)


class _IsDirectory(Exception):
    def __init__(self, path):
        super(_IsDirectory, self).__init__(path)
        self.path = path


def link_kind(path):
    """'missing', 'link', 'empty-dir' or 'dir' for the thing at ``path``; raises for anything else."""
    try:
        read_link(path)
    except _IsDirectory:
        return 'empty-dir' if not os.listdir(path) else 'dir'
    return 'link' if os.path.lexists(path) else 'missing'


def link_text(link, target, relative):
    if relative:
        return os.path.relpath(target, os.path.dirname(link))
    return target


def check_target(target):
    """Refuse a missing, dangling, looping or non-directory target."""
    try:
        os.stat(target)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CutoverError('The target %s is a symlink loop.' % target, path=target)
        if os.path.islink(target):
            raise CutoverError('The target %s is a dangling symlink (it points to %s, which does not exist).'
                               % (target, os.readlink(target)), path=target)
        raise CutoverError('The target %s does not exist.' % target, path=target)
    if not os.path.isdir(target):
        raise CutoverError('The target %s is not a directory.' % target, path=target)


def _new_link(link, text, flags=0):
    """Put a symlink to ``text`` at ``link`` through a temporary link beside it (see _fs.put_in_place); return
    that temporary name."""
    tmp = temp_name(link, 'new')
    clear_temp(tmp)
    put_in_place(lambda name: os.symlink(text, name), tmp, link, flags=flags)
    return tmp


def replace_link(link, text):
    """Point ``link`` at ``text`` with a temp symlink renamed over it, then fsync the directory."""
    try:
        _new_link(link, text)
    except RenameError as exc:
        raise CutoverError('Cannot rename the new link over %s: %s.' % (link, exc.strerror), path=link)
    fsync_dir(os.path.dirname(link))


def exchange_directory(link, text, keep_as):
    """Swap the real directory at ``link`` for a symlink to ``text`` in one renameat2(RENAME_EXCHANGE).

    The old directory ends up at ``keep_as`` (or is removed when it was empty and keep_as is None).
    """
    try:
        tmp = _new_link(link, text, RENAME_EXCHANGE)
    except RenameError as exc:
        raise CutoverError('Cannot convert the directory %s into a symlink without a gap: %s.'
                           % (link, exchange_error(exc.errno)), path=link)
    # tmp now holds the old directory; link is the new symlink.
    fsync_dir(os.path.dirname(link))
    if keep_as is None:
        os.rmdir(tmp)
        return None
    try:
        os.rename(tmp, keep_as)
    except OSError:
        keep_as = temp_name(link, 'legacy')
        os.rename(tmp, keep_as)
    fsync_dir(os.path.dirname(link))
    return keep_as


def switch(layout, target=None, release=None, link=None, relative=True, allow_outside_root=False,
           convert_directory=False, check_mode=False, mark_previous=None):
    """Point ``link`` (default ``<root>/current``) at a release or target; return the module result.

    A switch of the root's ``current`` link is recorded in the history, which is where deploy order and
    the rollback target come from: one ``activated`` record, written ahead of the rename that is its
    commit (see the crash rules in _releases). With ``mark_previous``, that same record gives the
    release left that state.
    """
    link = os.path.normpath(link or layout.current_link)
    if not os.path.isabs(link):
        link = os.path.join(layout.root, link)
    if release is not None:
        target = layout.release_path(release)
    elif not os.path.isabs(target):
        target = os.path.join(layout.root, target)
    target = os.path.normpath(target)

    # Judge where the target really is: a symlink inside the root may lead out of it.
    # (A symlink in releases/ gets its own, more precise refusal below.)
    real_root, real_target = os.path.realpath(layout.root), os.path.realpath(target)
    lexically_inside = target == layout.root or target.startswith(layout.root + os.sep)
    inside_root = lexically_inside and (real_target == real_root or real_target.startswith(real_root + os.sep)
                                        or os.path.dirname(target) == layout.releases_dir)
    if not inside_root and not allow_outside_root:
        raise CutoverError('The target %s is outside the root %s; set allow_outside_root to link there anyway.'
                           % (target, layout.root), path=target)
    release_id = None
    if os.path.dirname(target) == layout.releases_dir:
        release_id = os.path.basename(target)
        if os.path.islink(target):
            raise CutoverError('The release %s is a symlink; releases must be real directories.' % target,
                               path=target)
        check_target(target)
        releases = layout.releases()
        rel = releases.get(release_id)
        if rel is None or rel.mark == 'unknown':
            raise CutoverError('The target %s is not a release cutover.web made (the history does not know it).'
                               % target, path=target)
        if rel.state not in ('ready', 'active'):
            raise CutoverError('The release %s is %s, not ready, so it cannot go live.' % (target, rel.state),
                               path=target, state=rel.state)
    else:
        check_target(target)
        releases = layout.releases() if link == layout.current_link else {}

    text = link_text(link, target, relative)
    kind = link_kind(link)
    if kind == 'dir' and not convert_directory:
        raise CutoverError('The link path %s is a non-empty directory; set convert_directory to swap it for a '
                           'symlink (the old directory is kept beside it).' % link, path=link)
    if not os.path.isdir(os.path.dirname(link)):
        raise CutoverError('The directory %s that should hold the link does not exist.' % os.path.dirname(link),
                           path=link)
    previous = os.readlink(link) if kind == 'link' else None
    changed = previous != text
    result = {
        'changed': changed,
        'link': link,
        'target': target,
        'link_text': text,
        'previous': previous,
        'release': release_id,
        'previous_release': layout.current_id() if link == layout.current_link else None,
        'converted': None,
        'diff': {
            'before_header': link, 'after_header': link,
            'before': '%s\n' % (previous if kind == 'link' else '(%s)' % kind),
            'after': '%s\n' % text,
        },
    }
    left = _left(releases, result['previous_release'], release_id)
    if not changed or check_mode:
        return result

    if link == layout.current_link:
        record_activation(layout, release_id, result['previous_release'], text,
                          mark_previous if left is not None and left.mark != mark_previous else None)
    if kind in ('dir', 'empty-dir'):
        keep_as = None
        if kind == 'dir':
            keep_as = '%s.pre-cutover-%s' % (link, stamp())
        result['converted'] = exchange_directory(link, text, keep_as)
    else:
        replace_link(link, text)
    return result


def _left(releases, previous, release_id):
    """The release a switch to ``release_id`` leaves, when it is one cutover.web made (and not the same)."""
    left = releases.get(previous)
    return left if left is not None and left.mark != 'unknown' and left.id != release_id else None


def record_activation(layout, release_id, previous, text, mark_previous=None):
    """Write ahead the record of a switch of ``current`` (the rename that follows is its commit)."""
    layout.ensure_dirs()
    fields = {'previous': previous, 'link': text}
    if mark_previous:
        fields['mark_previous'] = mark_previous
    return layout.append_history('activated', release_id, **fields)


def rollback(layout, release=None, mark_previous='bad', check_mode=False):
    """Switch ``current`` back to ``release``, or to the release live before the current one.

    The release left is marked ``mark_previous`` (None leaves it ready). A rollback to the previous
    release is not repeated: when the current release went live by such a rollback (the release
    live just before it is marked bad), nothing changes; naming a release goes further back.
    """
    releases = layout.releases()
    current = layout.current_id()
    already = False
    if release is None:
        live = sorted((r for r in releases.values() if r.activated_seq is not None and r.id != current),
                      key=lambda r: r.activated_seq, reverse=True)
        if current is not None and live and live[0].mark == 'bad':
            already, release = True, current
        else:
            target = layout.rollback_target(releases)
            if target is None:
                raise CutoverError('There is no release to roll back to in %s: no release that was live before %s '
                                   'is still ready.' % (layout.releases_dir, current or 'the current one'),
                                   path=layout.releases_dir)
            release = target.id
    result = switch(layout, release=release, check_mode=check_mode, mark_previous=mark_previous)
    left = _left(releases, result['previous_release'], release)
    result['already_rolled_back'] = already
    result['rolled_back_from'] = left.id if result['changed'] and left is not None else None
    return result
