# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Shared paths: data that outlives releases (uploads, sessions, .env) in ``<root>/shared``.

Each shared path ``p`` (relative to a release) lives at ``<root>/shared/p``; a release gets a
relative symlink at ``<release>/p`` pointing there, made before the release goes live. The
first time a path is shared, what the release brings there seeds ``shared/p``, so nothing the
source ships is lost.

No symlink is ever followed: both trees are walked from a directory fd, one component at a time
with O_NOFOLLOW, and every link, rename and mkdir is made relative to the directory it is in; a
symlink (or a file) where a directory should be is refused before anything changes.

What a release holds where a link goes is never deleted unless the source shipped it unchanged
(the release's manifest says so): a real directory or file there is swapped for the link in one
renameat2(RENAME_EXCHANGE), so the path never goes missing, and everything else it held (uploads
made while the release was live, files written after the build) is moved into ``shared/``. When
the name is taken there by something else, it goes in as ``<name>.cutover-<release id>``.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import stat
from collections import namedtuple

from ansible_collections.cutover.web.plugins.module_utils._build import (
    DIGEST, KIND, MODE, MTIME, SIZE, file_digest, load_manifest,
)
from ansible_collections.cutover.web.plugins.module_utils._fs import (
    DIR_FLAGS, RENAME_EXCHANGE, RENAME_NOREPLACE, RenameError, exchange_error, put_in_place, rename,
)
from ansible_collections.cutover.web.plugins.module_utils._module import octal_mode
from ansible_collections.cutover.web.plugins.module_utils._releases import CutoverError, fsync_dir, validate_release_id

READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
CHUNK = 1 << 20
_LOOK = object()

# One shared path: what linking does (actions among adopt, seed, create, replace, link, keep), and the paths
# (relative to <root>/shared) that data found in the release went to, and which of them got a new name.
Step = namedtuple('Step', 'rel kind actions kept renamed')


class _Blocked(Exception):
    """A symlink or a non-directory where a walk needs a directory."""

    def __init__(self, path, what):
        super(_Blocked, self).__init__(path)
        self.path = path
        self.what = what


def check_path(layout, rel):
    """Refuse a shared path that is empty, absolute, has '..' or '.cutover'."""
    parts = rel.split('/')
    if not rel or rel.startswith('/') or any(p in ('', '.', '..') for p in parts) or parts[0] == '.cutover':
        raise CutoverError('The shared path %r must be a relative path inside a release without empty, "." or ".." '
                           'parts (it is linked to %s/<path>).' % (rel, layout.shared_dir), path=layout.shared_dir)


def link_text(rel):
    """The relative link from ``<root>/releases/<id>/<rel>`` to ``<root>/shared/<rel>``."""
    return '../' * (rel.count('/') + 2) + 'shared/' + rel


# -- walking without following links -----------------------------------------------------------
def _lstat(dir_fd, name):
    """lstat ``name`` in the directory ``dir_fd``; None when it is missing (or dir_fd is None)."""
    if dir_fd is None:
        return None
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _walk(fd, path, parts, create=False):
    """Open the directory ``path/parts...`` (``fd`` is ``path``) without following any link: a new fd, or None
    when a directory on the way is missing (made, mode 0755, when ``create``). Raises _Blocked for a symlink or
    a non-directory on the way."""
    fd = os.dup(fd)
    try:
        for name in parts:
            path = os.path.join(path, name)
            st = _lstat(fd, name)
            if st is None and not create:
                os.close(fd)
                return None
            if st is None:
                try:
                    os.mkdir(name, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
            elif not stat.S_ISDIR(st.st_mode):
                raise _Blocked(path, 'a symlink' if stat.S_ISLNK(st.st_mode) else 'not a directory')
            try:
                new = os.open(name, DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _Blocked(path, 'a symlink' if exc.errno == errno.ELOOP else 'not a directory')
                raise
            os.close(fd)
            fd = new
    except BaseException:
        os.close(fd)
        raise
    return fd


class _Trees(object):
    """Directory fds of the release and of ``<root>/shared`` (None while shared/ does not exist), opened
    without following links below the root; ``create`` makes shared/."""

    def __init__(self, layout, release_id, create=False):
        self.layout = layout
        self.release = layout.release_path(release_id)
        self.release_fd = self.shared_fd = None
        try:
            root_fd = os.open(layout.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            root_fd = None
        try:
            try:
                self.release_fd = None if root_fd is None else _walk(root_fd, layout.root, ['releases', release_id])
            except _Blocked as exc:
                raise CutoverError('%s is %s, so no shared path can be linked into the release %s.'
                                   % (exc.path, exc.what, self.release), path=exc.path)
            if self.release_fd is None:
                raise CutoverError('The release %s does not exist, so no shared path can be linked into it.'
                                   % self.release, path=self.release)
            st = _lstat(root_fd, 'shared')
            if st is not None and not stat.S_ISDIR(st.st_mode):
                raise CutoverError('%s is %s; shared data must be kept in a real directory under the root, so nothing '
                                   'was linked into %s.' % (layout.shared_dir, 'a symlink' if stat.S_ISLNK(st.st_mode)
                                                            else 'not a directory', self.release),
                                   path=layout.shared_dir)
            if st is not None or create:
                self.shared_fd = _walk(root_fd, layout.root, ['shared'], create=create)
        except BaseException:
            self.close()
            raise
        finally:
            if root_fd is not None:
                os.close(root_fd)

    def parents(self, rel, create=False):
        """(release-side fd, shared-side fd) of the directory holding ``rel``, either None while missing."""
        parts = rel.split('/')[:-1]
        fds = []
        try:
            for side, fd, path in (('release', self.release_fd, self.release),
                                   ('shared', self.shared_fd, self.layout.shared_dir)):
                try:
                    fds.append(None if fd is None else _walk(fd, path, parts, create=create))
                except _Blocked as exc:
                    where = ('be linked into %s' % self.release) if side == 'release' else ('be kept under %s' % path)
                    raise CutoverError('The shared path %r cannot %s because %s is %s (cutover.web follows no link on '
                                       'the way to a shared path).' % (rel, where, exc.path, exc.what), path=exc.path)
        except BaseException:
            _close(*fds)
            raise
        return fds[0], fds[1]

    def close(self):
        _close(self.release_fd, self.shared_fd)
        self.release_fd = self.shared_fd = None


def _close(*fds):
    for fd in fds:
        if fd is not None:
            os.close(fd)


# -- moving what a release holds into shared/ ---------------------------------------------------
def _same_content(a_fd, a_name, b_fd, b_name):
    fds = []
    try:
        fds = [os.open(a_name, READ_FLAGS, dir_fd=a_fd), os.open(b_name, READ_FLAGS, dir_fd=b_fd)]
        while True:
            a, b = os.read(fds[0], CHUNK), os.read(fds[1], CHUNK)
            if a != b:
                return False
            if not a:
                return True
    finally:
        _close(*fds)


def _copy(src_fd, src, dst_fd, dst):
    """Copy the tree ``src`` to ``dst`` (which must not exist), links as links, with modes and times."""
    st = os.stat(src, dir_fd=src_fd, follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src, dir_fd=src_fd), dst, dir_fd=dst_fd)
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst_fd, follow_symlinks=False)
        return
    if stat.S_ISDIR(st.st_mode):
        os.mkdir(dst, 0o700, dir_fd=dst_fd)
        fds = [os.open(src, DIR_FLAGS, dir_fd=src_fd), os.open(dst, DIR_FLAGS, dir_fd=dst_fd)]
        try:
            for name in os.listdir(fds[0]):
                _copy(fds[0], name, fds[1], name)
            os.fchmod(fds[1], stat.S_IMODE(st.st_mode))
            os.utime(fds[1], ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            _close(*fds)
        return
    if not stat.S_ISREG(st.st_mode):
        return
    fds = [os.open(src, READ_FLAGS, dir_fd=src_fd)]
    try:
        fds.append(os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                           dir_fd=dst_fd))
        while True:
            chunk = os.read(fds[0], CHUNK)
            if not chunk:
                break
            os.write(fds[1], chunk)
        os.fchmod(fds[1], stat.S_IMODE(st.st_mode))
        os.utime(fds[1], ns=(st.st_atime_ns, st.st_mtime_ns))
    finally:
        _close(*fds)


def _remove(dir_fd, name):
    """Remove ``name`` and everything in it, following no link."""
    st = _lstat(dir_fd, name)
    if st is None:
        return
    if stat.S_ISDIR(st.st_mode):
        fd = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
        try:
            for child in os.listdir(fd):
                _remove(fd, child)
        finally:
            os.close(fd)
        os.rmdir(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)


def _move_entry(src_fd, src, dst_fd, dst):
    """Move ``src`` to the free name ``dst`` by rename; across filesystems, copy it under a temporary name,
    rename that, then remove ``src``. EEXIST when ``dst`` is taken."""
    try:
        rename(src, dst, RENAME_NOREPLACE, src_fd, dst_fd)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        tmp = '.%s.cutover-copy.%d' % (dst, os.getpid())
        _remove(dst_fd, tmp)
        _copy(src_fd, src, dst_fd, tmp)
        try:
            rename(tmp, dst, RENAME_NOREPLACE, dst_fd, dst_fd)
        except OSError:
            _remove(dst_fd, tmp)
            raise
        _remove(src_fd, src)


class _Keeper(object):
    """Moves what a release holds at a shared path into shared/, entry by entry, dropping only what the release's
    manifest says the source shipped unchanged, or what shared/ holds already, byte for byte. ``dry`` only
    records what it would do, with the same decisions."""

    def __init__(self, manifest, release_id, dry):
        self.manifest = manifest
        self.suffix = '.cutover-' + release_id
        self.dry = dry
        self.kept = []
        self.renamed = []
        self.left = []

    def keep(self, src_fd, src, dst_fd, dst, rel, srel, path, dst_mode=_LOOK):
        """Take in ``src`` (the release's ``rel``, shown as ``path``) as ``dst`` (``srel`` under shared/).
        ``dst_mode`` is the type of what is at ``dst`` (None: nothing) when it is not on disk yet (dry run)."""
        st = _lstat(src_fd, src)
        if st is None:
            return
        if dst_mode is _LOOK:
            found = _lstat(dst_fd, dst)
            dst_mode = found.st_mode if found is not None else None
        shipped = self.manifest.get(rel)
        if stat.S_ISDIR(st.st_mode):
            renamed = dst_mode is not None and not stat.S_ISDIR(dst_mode)
            if renamed:
                dst, srel = self._free(dst_fd, dst, srel)
                dst_mode = None
            if dst_mode is None and (shipped is None or shipped[KIND] != 'd'):
                self._move(src_fd, src, dst_fd, dst, srel, renamed)
            else:
                self._merge(src_fd, src, dst_fd, dst, rel, srel, path, st, dst_mode is not None, renamed)
        elif self._shipped(shipped, src_fd, src, st):
            self._drop(src_fd, src)
        elif dst_mode is None:
            self._move(src_fd, src, dst_fd, dst, srel, False)
        elif self._same(src_fd, src, st, dst_fd, dst, dst_mode):
            self._drop(src_fd, src)
        else:
            dst, srel = self._free(dst_fd, dst, srel)
            self._move(src_fd, src, dst_fd, dst, srel, True)

    def _shipped(self, shipped, fd, name, st):
        """Whether the file or link ``name`` is what the source shipped there."""
        if shipped is None:
            return False
        if stat.S_ISLNK(st.st_mode):
            return shipped[KIND] == 'l' and shipped[DIGEST] == os.readlink(name, dir_fd=fd)
        if not stat.S_ISREG(st.st_mode) or shipped[KIND] != 'f' or shipped[SIZE] != st.st_size:
            return False
        if st.st_mtime_ns == shipped[MTIME] and stat.S_IMODE(st.st_mode) == shipped[MODE]:
            # As the build left it (the quick check the build itself makes): not rewritten since.
            return True
        with os.fdopen(os.open(name, READ_FLAGS, dir_fd=fd), 'rb') as f:
            return file_digest(f) == shipped[DIGEST]

    def _same(self, src_fd, src, st, dst_fd, dst, dst_mode):
        """Whether shared/ holds the same file or link at ``dst`` already."""
        found = _lstat(dst_fd, dst)
        if found is None or stat.S_IFMT(st.st_mode) != stat.S_IFMT(dst_mode):
            return False
        if stat.S_ISLNK(st.st_mode):
            return os.readlink(src, dir_fd=src_fd) == os.readlink(dst, dir_fd=dst_fd)
        return stat.S_ISREG(st.st_mode) and st.st_size == found.st_size and _same_content(src_fd, src, dst_fd, dst)

    def _free(self, dst_fd, dst, srel):
        """A free name for something that must not replace ``dst``: ``<dst>.cutover-<release id>[.N]``."""
        name, n = dst + self.suffix, 2
        while _lstat(dst_fd, name) is not None:
            name, n = '%s%s.%d' % (dst, self.suffix, n), n + 1
        return name, srel[:len(srel) - len(dst)] + name

    def _drop(self, fd, name):
        if not self.dry:
            os.unlink(name, dir_fd=fd)

    def _move(self, src_fd, src, dst_fd, dst, srel, renamed):
        name, name_rel = dst, srel
        while not self.dry:
            try:
                _move_entry(src_fd, src, dst_fd, dst)
                break
            except OSError as exc:
                if exc.errno != errno.EEXIST:
                    raise
            # The name was taken in shared/ meanwhile (an upload through the new link): keep both.
            dst, srel = self._free(dst_fd, name, name_rel)
            renamed = True
        self.kept.append(srel)
        if renamed:
            self.renamed.append(srel)

    def _merge(self, src_fd, src, dst_fd, dst, rel, srel, path, st, exists, renamed):
        """Take in the directory ``src`` entry by entry; remove it only when nothing is left in it."""
        fds = [os.open(src, DIR_FLAGS, dir_fd=src_fd)]
        try:
            made = False
            if not self.dry and (not exists or _lstat(dst_fd, dst) is None):
                os.mkdir(dst, 0o700, dir_fd=dst_fd)
                made = True
            found = _lstat(dst_fd, dst)
            fds.append(os.open(dst, DIR_FLAGS, dir_fd=dst_fd) if found is not None else None)
            kept = len(self.kept)
            # A writer still inside the old directory may add files while it is emptied: a few passes.
            for dummy in range(1 if self.dry else 5):
                for name in sorted(os.listdir(fds[0])):
                    self.keep(fds[0], name, fds[1], name, rel + '/' + name, srel + '/' + name,
                              os.path.join(path, name))
                if self.dry or not os.listdir(fds[0]):
                    break
            if made:
                if os.listdir(fds[1]):
                    os.fchmod(fds[1], stat.S_IMODE(st.st_mode))
                else:
                    os.rmdir(dst, dir_fd=dst_fd)
            if renamed and len(self.kept) > kept:
                self.renamed.append(srel)
            if not self.dry:
                try:
                    os.rmdir(src, dir_fd=src_fd)
                except OSError as exc:
                    if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                        raise
                    if path not in self.left:
                        self.left.append(path)
        finally:
            _close(*fds)


# -- plan and apply ------------------------------------------------------------------------------
def chowner(layout, owner=None, group=None):
    """The ``chown(dir_fd, name)`` apply() takes: it gives a new shared path ``name`` in the directory ``dir_fd``, and
    everything in it, the user ``owner`` and the group ``group`` (None leaves one as it is), following no link.
    An owner or group this host does not know is refused."""
    def look_up(kind, name, lookup):
        try:
            return lookup(name)[2] if name else -1  # pw_uid, gr_gid
        except KeyError:
            raise CutoverError('The %s %r of the shared paths under %s does not exist on this host, so nothing was '
                               'linked.' % (kind, name, layout.shared_dir), path=layout.root)

    uid = look_up('owner', owner, pwd.getpwnam)
    gid = look_up('group', group, grp.getgrnam)

    def chown(dir_fd, name):
        if uid < 0 and gid < 0:
            return
        os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
            return
        for dirpath, dirnames, filenames, fd in os.fwalk(name, dir_fd=dir_fd):
            for entry in dirnames + filenames:
                os.chown(entry, uid, gid, dir_fd=fd, follow_symlinks=False)
    return chown


def adopt(legacy, shared_fd, name, shared):
    """Move the live directory ``legacy`` to ``shared`` (``name`` in the directory ``shared_fd``) and leave a
    symlink to it at ``legacy``, in one renameat2(RENAME_EXCHANGE): a file written at any moment lands in the
    directory, through the old path or the new one, and nothing is copied. Both must be on one filesystem."""
    # An absolute symlink to itself until the exchange makes it the link at the legacy path (an absolute path:
    # renameat2 takes it as it is, not relative to shared_fd).
    try:
        put_in_place(lambda tmp: os.symlink(shared, tmp, dir_fd=shared_fd), name, legacy, shared_fd, RENAME_EXCHANGE)
    except RenameError as exc:
        reason = exc.strerror
        if exc.errno == errno.EXDEV:
            reason = 'it is on another filesystem than %s' % shared
        raise CutoverError('Cannot move %s into %s without a gap: %s.' % (legacy, shared, reason), path=legacy)
    os.fsync(shared_fd)
    fsync_dir(os.path.dirname(legacy))


def _listed(layout, dirs, files):
    """(rel, kind) for every shared path, each checked, none twice, none inside another."""
    listed = []
    for kind, paths in (('directory', dirs), ('file', files)):
        for rel in paths:
            rel = rel.rstrip('/') if rel else rel
            check_path(layout, rel)
            for other, dummy in listed:
                if other == rel:
                    raise CutoverError('The shared path %r is listed twice.' % rel, path=layout.shared_dir)
                if rel.startswith(other + '/') or other.startswith(rel + '/'):
                    inner, outer = (rel, other) if rel.startswith(other + '/') else (other, rel)
                    raise CutoverError('The shared path %r lies inside the shared path %r; list only one of them.'
                                       % (inner, outer), path=os.path.join(layout.shared_dir, inner))
            listed.append((rel, kind))
    return listed


def plan(layout, release_id, dirs, files, legacy=None):
    """What linking would do: a list of Steps, each refusal made before anything changes. ``legacy`` maps a
    shared directory to a live legacy directory to adopt the first time."""
    legacy = legacy or {}
    validate_release_id(release_id)
    for rel, path in legacy.items():
        if rel not in dirs or not os.path.isabs(path or ''):
            raise CutoverError('The legacy directory for %r must be an absolute path (it is %r) and %r must be one '
                               'of the shared directories.' % (rel, path, rel), path=path or layout.shared_dir)
    listed = _listed(layout, dirs, files)
    manifest = load_manifest(layout, release_id) or {}
    trees = _Trees(layout, release_id)
    try:
        return [_plan_one(layout, trees, rel, kind, legacy, manifest, release_id) for rel, kind in listed]
    finally:
        trees.close()


def _plan_one(layout, trees, rel, kind, legacy, manifest, release_id):
    name = os.path.basename(rel)
    shared = os.path.join(layout.shared_dir, rel)
    release_fd, shared_fd = trees.parents(rel)
    try:
        in_shared, in_release = _lstat(shared_fd, name), _lstat(release_fd, name)
        actions = []
        if in_shared is not None:
            if stat.S_ISLNK(in_shared.st_mode):
                raise CutoverError('%s is a symlink; a shared path must be a real %s under the root.'
                                   % (shared, kind), path=shared)
            real_kind = 'directory' if stat.S_ISDIR(in_shared.st_mode) else 'file'
            if real_kind != kind:
                raise CutoverError('%s is a %s, but it is listed as a shared %s.' % (shared, real_kind, kind),
                                   path=shared)
        elif rel in legacy and os.path.isdir(legacy[rel]) and not os.path.islink(legacy[rel]):
            actions.append('adopt')
        else:
            brings = in_release is not None and (stat.S_ISDIR(in_release.st_mode) if kind == 'directory'
                                                 else stat.S_ISREG(in_release.st_mode))
            actions.append('seed' if brings else 'create')
        real = in_release is not None and not stat.S_ISLNK(in_release.st_mode)
        if real or in_release is None or os.readlink(name, dir_fd=release_fd) != link_text(rel):
            if in_release is not None:
                actions.append('replace')
            actions.append('link')
        # What the release holds there (the seed copies it all), and what an interrupted run left beside it.
        leftovers = _leftovers(release_fd, name)
        held = ([name] if real and 'seed' not in actions else []) + leftovers
        keeper = _Keeper(manifest, release_id, dry=True)
        if held:
            # What apply() will find in shared/ when it takes that in.
            dst_fd, dst, dst_mode = shared_fd, name, _LOOK
            if 'adopt' in actions:
                dst_fd = os.open(os.path.dirname(legacy[rel]), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                dst = os.path.basename(legacy[rel])
            elif in_shared is None:
                dst_mode = stat.S_IFDIR if kind == 'directory' else stat.S_IFREG
            try:
                for src in held:
                    keeper.keep(release_fd, src, dst_fd, dst, rel, rel,
                                os.path.join(os.path.dirname(os.path.join(trees.release, rel)), src), dst_mode)
            finally:
                if dst_fd is not shared_fd:
                    os.close(dst_fd)
        if keeper.kept or leftovers:
            actions.append('keep')
        return Step(rel, kind, actions, keeper.kept, keeper.renamed)
    except OSError as exc:
        raise CutoverError('Cannot look at %s to link the shared path %r: %s.'
                           % (exc.filename or os.path.join(trees.release, rel), rel, exc.strerror or exc),
                           path=exc.filename or os.path.join(trees.release, rel))
    finally:
        _close(release_fd, shared_fd)


def _leftovers(dir_fd, name):
    """What a run that stopped half-way (or met a writer that kept writing) left of what the release held at
    ``name``: the real files and directories named ``.<name>.cutover-link.*`` beside it."""
    prefix = '.%s.cutover-link.' % name
    found = []
    for entry in sorted(os.listdir(dir_fd)) if dir_fd is not None else ():
        st = _lstat(dir_fd, entry) if entry.startswith(prefix) else None
        if st is not None and not stat.S_ISLNK(st.st_mode):
            found.append(entry)
    return found


def apply(layout, release_id, steps, chown, dir_mode, file_mode, legacy=None):
    """Carry out ``plan()``'s steps; return what was kept: {'kept': [...], 'renamed': [...], 'left': [...]}, paths
    under shared/ that data found in the release went to, those of them under a new name, and directories that
    could not be emptied (they stay where they are). ``chown(dir_fd, name)`` sets owner and group of shared
    paths it creates."""
    legacy = legacy or {}
    manifest = load_manifest(layout, release_id) or {}
    report = {'kept': [], 'renamed': [], 'left': []}
    if not any(step.actions for step in steps):
        return report
    trees = _Trees(layout, release_id, create=True)
    try:
        for step in steps:
            if step.actions:
                keeper = _Keeper(manifest, release_id, dry=False)
                _apply_one(layout, trees, step, keeper, chown, dir_mode, file_mode, legacy)
                for key in report:
                    report[key].extend(getattr(keeper, key))
    finally:
        trees.close()
    return report


def _apply_one(layout, trees, step, keeper, chown, dir_mode, file_mode, legacy):
    rel, kind, actions = step.rel, step.kind, step.actions
    name = os.path.basename(rel)
    shared = os.path.join(layout.shared_dir, rel)
    release_fd, shared_fd = trees.parents(rel, create=True)
    try:
        if 'adopt' in actions:
            adopt(legacy[rel], shared_fd, name, shared)
        elif 'seed' in actions:
            tmp = name + '.cutover-seed'
            _remove(shared_fd, tmp)
            _copy(release_fd, name, shared_fd, tmp)
            rename(tmp, name, RENAME_NOREPLACE, shared_fd, shared_fd)
            chown(shared_fd, name)
        elif 'create' in actions:
            if kind == 'directory':
                os.mkdir(name, dir_mode, dir_fd=shared_fd)
                fd = os.open(name, DIR_FLAGS, dir_fd=shared_fd)
            else:
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, file_mode,
                             dir_fd=shared_fd)
            try:
                os.fchmod(fd, dir_mode if kind == 'directory' else file_mode)
            finally:
                os.close(fd)
            chown(shared_fd, name)
        if 'link' in actions:
            _put_link(release_fd, name, link_text(rel), trees.release, rel)
        for old in _leftovers(release_fd, name):
            keeper.keep(release_fd, old, shared_fd, name, rel, rel,
                        os.path.join(os.path.dirname(os.path.join(trees.release, rel)), old))
        os.fsync(shared_fd)
        os.fsync(release_fd)
    except OSError as exc:
        raise CutoverError('Could not share %s into %s: %s.' % (rel, trees.release, exc.strerror or exc),
                           path=exc.filename or shared)
    finally:
        _close(release_fd, shared_fd)


def _put_link(dir_fd, name, text, release, rel):
    """Put the link ``name`` -> ``text`` in ``dir_fd``, never leaving the path missing. A real file or directory
    there is swapped for it in one renameat2(RENAME_EXCHANGE); it is then beside it, one of _leftovers()."""
    tmp, n = '.%s.cutover-link.%d' % (name, os.getpid()), 0
    while _lstat(dir_fd, tmp) is not None:
        n += 1
        tmp = '.%s.cutover-link.%d.%d' % (name, os.getpid(), n)
    found = _lstat(dir_fd, name)
    flags = RENAME_NOREPLACE if found is None else 0 if stat.S_ISLNK(found.st_mode) else RENAME_EXCHANGE
    try:
        put_in_place(lambda new: os.symlink(text, new, dir_fd=dir_fd), tmp, name, dir_fd, flags)
    except RenameError as exc:
        if flags != RENAME_EXCHANGE:
            raise
        raise CutoverError('Cannot swap %s for the link to the shared %s without a gap: %s.'
                           % (os.path.join(release, rel), rel, exchange_error(exc.errno)),
                           path=os.path.join(release, rel))


# The options of shared_links (and of deploy_release's shared), the release aside.
SHARED_OPTIONS = dict(
    dirs=dict(type='list', elements='str', default=[]),
    files=dict(type='list', elements='str', default=[]),
    owner=dict(type='str'),
    group=dict(type='str'),
    mode=dict(type='raw', default='0755'),
    file_mode=dict(type='raw', default='0640'),
    legacy=dict(type='dict', default={}),
)


def link_shared(layout, p, check_mode, warn):
    """What shared_links does, with its options ``p`` (release, dirs, files, owner, group, mode, file_mode, legacy);
    its warnings are given to ``warn``; return the module result."""
    where = 'the shared paths this module creates under %s' % layout.shared_dir
    dir_mode = octal_mode(p['mode'], 'mode', where, layout.shared_dir)
    file_mode = octal_mode(p['file_mode'], 'file_mode', where, layout.shared_dir)
    steps = plan(layout, p['release'], p['dirs'], p['files'], legacy=p['legacy'])
    chown = chowner(layout, p['owner'], p['group'])
    changed = any(step.actions for step in steps)
    report = {'kept': [k for step in steps for k in step.kept],
              'renamed': [r for step in steps for r in step.renamed], 'left': []}
    if changed and not check_mode:
        report = apply(layout, p['release'], steps, chown, dir_mode, file_mode, legacy=p['legacy'])
    for path in report['renamed']:
        warn('What the release %s held where a shared link goes %s kept as %s, because %s holds something '
             'else under its name; compare the two.'
             % (p['release'], 'would be' if check_mode else 'was', os.path.join(layout.shared_dir, path), layout.shared_dir))
    for path in report['left']:
        warn('%s kept receiving files while it was moved into %s, so it was left where it is; the next '
             'run moves what is left.' % (path, layout.shared_dir))
    result = {
        'changed': changed,
        'release_path': layout.release_path(p['release']),
        'linked': [step.rel for step in steps if 'link' in step.actions],
        'adopted': [step.rel for step in steps if 'adopt' in step.actions],
        'seeded': [step.rel for step in steps if 'seed' in step.actions],
        'created': [step.rel for step in steps if 'create' in step.actions],
        'diff': {'before': ''.join('%s\n' % step.rel for step in steps if 'link' not in step.actions),
                 'after': ''.join('%s -> shared/%s\n' % (step.rel, step.rel) for step in steps)
                 + ''.join('shared/%s (kept from the release)\n' % path for path in report['kept'])},
    }
    result.update(report)
    return result
