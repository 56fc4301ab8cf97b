# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Shared paths: data that outlives releases (uploads, sessions, .env) in ``<root>/shared``.

Each shared path ``p`` (relative to a release) lives at ``<root>/shared/p``; a release gets a
relative symlink at ``<release>/p`` pointing there, made before the release goes live. The
first time a path is shared, what the release brings there seeds ``shared/p``, so nothing the
source ships is lost.
"""

from __future__ import annotations

import errno
import os
import shutil

from ansible_collections.cutover.web.plugins.module_utils._releases import CutoverError, fsync_dir, validate_release_id
from ansible_collections.cutover.web.plugins.module_utils._switch import renameat2_exchange


def check_path(layout, rel):
    """Refuse a shared path that is empty, absolute, has '..' or '.cutover', or escapes the root."""
    parts = rel.split('/')
    if not rel or rel.startswith('/') or any(p in ('', '.', '..') for p in parts) or parts[0] == '.cutover':
        raise CutoverError('The shared path %r must be a relative path inside a release without empty, "." or ".." '
                           'parts (it is linked to %s/<path>).' % (rel, layout.shared_dir), path=layout.shared_dir)
    shared_root = os.path.realpath(layout.shared_dir)
    parent = os.path.realpath(os.path.dirname(os.path.join(layout.shared_dir, rel)))
    if parent != shared_root and not parent.startswith(shared_root + os.sep):
        raise CutoverError('The shared path %s leads outside %s through a symlink; shared data must stay under the '
                           'root.' % (os.path.join(layout.shared_dir, rel), layout.shared_dir),
                           path=os.path.join(layout.shared_dir, rel))


def link_text(rel):
    """The relative link from ``<root>/releases/<id>/<rel>`` to ``<root>/shared/<rel>``."""
    return '../' * (rel.count('/') + 2) + 'shared/' + rel


def adopt(legacy, shared):
    """Move the live directory ``legacy`` to ``shared`` and leave a symlink to it at ``legacy``, in one
    renameat2(RENAME_EXCHANGE): a file written at any moment lands in the directory, through the old
    path or the new one, and nothing is copied. Both must be on one filesystem."""
    os.makedirs(os.path.dirname(shared), exist_ok=True)
    # An absolute symlink to itself until the exchange makes it the link at the legacy path.
    os.symlink(shared, shared)
    err = renameat2_exchange(shared, legacy)
    if err:
        os.unlink(shared)
        reason = os.strerror(err)
        if err == errno.EXDEV:
            reason = 'it is on another filesystem than %s' % shared
        raise CutoverError('Cannot move %s into %s without a gap: %s.' % (legacy, shared, reason), path=legacy)
    fsync_dir(os.path.dirname(shared))
    fsync_dir(os.path.dirname(legacy))


def plan(layout, release_id, dirs, files, legacy=None):
    """What linking would do: a list of (rel, kind, actions) with actions among adopt, seed, create, replace,
    link. ``legacy`` maps a shared directory to a live legacy directory to adopt the first time."""
    legacy = legacy or {}
    validate_release_id(release_id)
    for rel, path in legacy.items():
        if rel not in dirs or not os.path.isabs(path or ''):
            raise CutoverError('The legacy directory for %r must be an absolute path (it is %r) and %r must be one '
                               'of the shared directories.' % (rel, path, rel), path=path or layout.shared_dir)
    release = layout.release_path(release_id)
    if not os.path.isdir(release) or os.path.islink(release):
        raise CutoverError('The release %s does not exist, so no shared path can be linked into it.' % release,
                           path=release)
    seen = set()
    steps = []
    for kind, paths in (('directory', dirs), ('file', files)):
        for rel in paths:
            rel = rel.rstrip('/') if rel else rel
            check_path(layout, rel)
            if rel in seen:
                raise CutoverError('The shared path %r is listed twice.' % rel, path=layout.shared_dir)
            seen.add(rel)
            shared = os.path.join(layout.shared_dir, rel)
            in_release = os.path.join(release, rel)
            actions = []
            if os.path.islink(shared):
                raise CutoverError('%s is a symlink; a shared path must be a real %s under the root.'
                                   % (shared, kind), path=shared)
            if os.path.lexists(shared):
                real_kind = 'directory' if os.path.isdir(shared) else 'file'
                if real_kind != kind:
                    raise CutoverError('%s is a %s, but it is listed as a shared %s.' % (shared, real_kind, kind),
                                       path=shared)
            elif rel in legacy and os.path.isdir(legacy[rel]) and not os.path.islink(legacy[rel]):
                actions.append('adopt')
            else:
                brings = os.path.lexists(in_release) and not os.path.islink(in_release)
                actions.append('seed' if brings and os.path.isdir(in_release) == (kind == 'directory') else 'create')
            if os.path.islink(in_release) and os.readlink(in_release) == link_text(rel):
                pass
            else:
                if os.path.lexists(in_release):
                    actions.append('replace')
                actions.append('link')
            steps.append((rel, kind, actions))
    return steps


def _copy(src, dst, kind):
    """Copy what a release brings into a new shared path, through a temp name and a rename."""
    tmp = dst + '.cutover-seed'
    if os.path.lexists(tmp):
        shutil.rmtree(tmp) if os.path.isdir(tmp) and not os.path.islink(tmp) else os.unlink(tmp)
    if kind == 'directory':
        shutil.copytree(src, tmp, symlinks=True)
    else:
        shutil.copy2(src, tmp, follow_symlinks=False)
    os.rename(tmp, dst)


def apply(layout, release_id, steps, chown, dir_mode, file_mode, legacy=None):
    """Carry out ``plan()``'s steps. ``chown(path)`` sets owner and group of shared paths it creates."""
    release = layout.release_path(release_id)
    legacy = legacy or {}
    for rel, kind, actions in steps:
        shared = os.path.join(layout.shared_dir, rel)
        in_release = os.path.join(release, rel)
        try:
            if 'adopt' in actions:
                adopt(legacy[rel], shared)
            elif 'seed' in actions or 'create' in actions:
                os.makedirs(os.path.dirname(shared), exist_ok=True)
                if 'seed' in actions:
                    _copy(in_release, shared, kind)
                elif kind == 'directory':
                    os.mkdir(shared, dir_mode)
                    os.chmod(shared, dir_mode)
                else:
                    fd = os.open(shared, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, file_mode)
                    os.close(fd)
                    os.chmod(shared, file_mode)
                chown(shared)
            if 'replace' in actions:
                if os.path.isdir(in_release) and not os.path.islink(in_release):
                    shutil.rmtree(in_release)
                else:
                    os.unlink(in_release)
            if 'link' in actions:
                os.makedirs(os.path.dirname(in_release), exist_ok=True)
                tmp = in_release + '.cutover-link'
                if os.path.lexists(tmp):
                    os.unlink(tmp)
                os.symlink(link_text(rel), tmp)
                os.rename(tmp, in_release)
        except OSError as exc:
            raise CutoverError('Could not share %s into %s: %s.' % (rel, release, exc.strerror or exc),
                               path=exc.filename or shared)
