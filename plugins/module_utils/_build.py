# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Making a release: scan the source, reuse an identical release, else build in staging and rename.

A build never shows a half-made release: it happens in ``.cutover/staging/`` and the finished
tree is renamed into ``releases/`` in one rename(2). Files whose content, mode and owner equal
those of the base release (the current one) are hardlinked from it, as ``rsync --link-dest``
does, so a redeploy costs what changed, not the size of the site.

Each release has a manifest (``.cutover/manifests/<id>.json``): for every path its kind, mode,
size, mtime, sha256 (or link text), uid and gid, as they are in the release tree. The content
fingerprint is a sha256 over the sorted paths, kinds, modes and digests (no times, no owners).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import stat

from ansible_collections.cutover.web.plugins.module_utils._fs import DIR_FLAGS, clear_temp, put_in_place, syncfs
from ansible_collections.cutover.web.plugins.module_utils._prune import remove_tree
from ansible_collections.cutover.web.plugins.module_utils._sources import (
    DirectorySource, git_description, git_source, open_source,
)
from ansible_collections.cutover.web.plugins.module_utils._releases import (
    CutoverError, fsync_dir, stamp, staging_name, validate_release_id, validate_stamp,
)

CHUNK = 1 << 20
LINK_FALLBACK_ERRNOS = (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EOPNOTSUPP, errno.ENOTSUP)
SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)

# Manifest entry fields.
KIND, MODE, SIZE, MTIME, DIGEST, UID, GID = range(7)


def file_digest(fobj):
    h = hashlib.sha256()
    while True:
        chunk = fobj.read(CHUNK)
        if not chunk:
            return h.hexdigest()
        h.update(chunk)


def fingerprint(manifest):
    h = hashlib.sha256()
    for rel in sorted(manifest):
        e = manifest[rel]
        h.update(('%s\0%s\0%o\0%s\n' % (e[KIND], rel, e[MODE], e[DIGEST])).encode('utf-8', 'surrogateescape'))
    return h.hexdigest()


def scan(source, previous=None, checksum=False, base=None):
    """The manifest of what ``source`` would put in a release.

    Regular files are hashed, except, for a directory source without ``checksum``, files whose size
    and mtime equal the previous manifest's (rsync's quick check), and, with ``checksum``, files that
    are the very files (same inode) of the ``base`` release, as rsync --link-dest leaves unchanged
    ones: their content is the base's, whose digest its manifest holds.
    """
    quick = previous if (source.trust_quick_check and not checksum and previous) else {}
    identity = getattr(source, 'identity', None) if base is not None else None
    manifest = {}
    for rel, kind, mode, size, mtime_ns, uid, gid, extra, opener in source.entries():
        if kind == 'f':
            prev = quick.get(rel)
            if prev is not None and prev[KIND] == 'f' and prev[SIZE] == size and prev[MTIME] == mtime_ns:
                digest = prev[DIGEST]
            elif identity is not None and base.is_own_file(rel, identity.get(rel)):
                digest = base.manifest[rel][DIGEST]
            else:
                with opener() as f:
                    digest = file_digest(f)
        elif kind == 'h':
            target = manifest.get(extra)
            if target is None or target[KIND] != 'f':
                raise CutoverError('The archive %s holds the hard link %r to %r, which is not a file before it.'
                                   % (source.path, rel, extra), path=source.path)
            kind, size, digest = 'f', target[SIZE], target[DIGEST]
        elif kind == 'l':
            digest = extra
        else:
            digest = ''
        manifest[rel] = [kind, mode, size, mtime_ns, digest, uid, gid]
    _check_tree(source, manifest)
    return manifest


def _check_tree(source, manifest):
    """Refuse a manifest with an entry below one that is not a directory: building it would write through a
    symlink (or fail on a file), whatever source or member order led there."""
    for rel in manifest:
        parent = rel
        while '/' in parent:
            parent = parent.rsplit('/', 1)[0]
            above = manifest.get(parent)
            if above is None:
                continue
            if above[KIND] != 'd':
                raise CutoverError('The source %s holds %r below %r, which is a %s there, not a directory.'
                                   % (source.path, rel, parent, 'symlink' if above[KIND] == 'l' else 'file'),
                                   path=source.path)
            break


def _manifest_problem(data):
    """Why ``data`` is not a manifest as write_manifest writes it, or None."""
    if not isinstance(data, dict):
        return 'it is not a JSON object'
    for rel, e in data.items():
        parts = rel.split('/')
        if rel.startswith('/') or '' in parts or '.' in parts or '..' in parts:
            return 'it names the path %r' % rel
        if not (isinstance(e, list) and len(e) == 7 and e[KIND] in ('d', 'f', 'l') and isinstance(e[DIGEST], str)
                and all(isinstance(e[i], int) and not isinstance(e[i], bool) for i in (MODE, SIZE, MTIME, UID, GID))):
            return 'its entry for %r is %s' % (rel, json.dumps(e)[:60])
    return None


def load_manifest(layout, release_id, warnings=None):
    """The manifest of ``release_id``, or None when it is missing or unusable (a warning for the latter is
    added to ``warnings``): a manifest that is not what write_manifest writes is never used."""
    path = layout.manifest_path(release_id)
    try:
        with open(path, 'rb') as f:
            data = json.loads(f.read().decode('utf-8', 'surrogateescape'))
        problem = _manifest_problem(data)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        problem = 'it cannot be read (%s)' % exc.strerror
    except ValueError as exc:
        problem = 'it is not valid JSON (%s)' % exc
    if problem is None:
        return data
    if warnings is not None:
        message = 'Ignored the manifest %s because %s; release %s is not used as a hardlink base.' \
            % (path, problem, release_id)
        if message not in warnings:
            warnings.append(message)
    return None


def write_manifest(layout, release_id, manifest):
    path = layout.manifest_path(release_id)
    tmp = path + '.tmp'
    with open(tmp, 'wb') as f:
        f.write(json.dumps(manifest, separators=(',', ':'), sort_keys=True).encode('utf-8', 'surrogateescape'))
    os.rename(tmp, path)


class BaseRelease(object):
    """The release a new one hardlinks unchanged files from: its directory and its manifest."""

    def __init__(self, path, manifest):
        self.path = path
        self.manifest = manifest or {}
        self._moved_dirs = None
        self._own = {}

    def moved(self, rel):
        """Whether a directory on the way to ``rel`` is no longer the directory the manifest recorded
        (for example a shared path replaced it with a symlink into <root>/shared): files below it are
        not the release's own and are never linked from."""
        if self._moved_dirs is None:
            self._moved_dirs = set()
            for d, b in self.manifest.items():
                if b[KIND] == 'd':
                    try:
                        if not stat.S_ISDIR(os.lstat(os.path.join(self.path, d)).st_mode):
                            self._moved_dirs.add(d)
                    except OSError:
                        self._moved_dirs.add(d)
        if not self._moved_dirs:
            return False
        parts = rel.split('/')
        return any('/'.join(parts[:i]) in self._moved_dirs for i in range(1, len(parts)))

    def own_file(self, rel):
        """``(path, lstat)`` of the release's own regular file ``rel``, if it is still what its manifest
        says (no hook rewrote it in place), else None."""
        if rel not in self._own:
            self._own[rel] = self._own_file(rel)
        return self._own[rel]

    def _own_file(self, rel):
        b = self.manifest.get(rel)
        if b is None or b[KIND] != 'f' or self.moved(rel):
            return None
        path = os.path.join(self.path, rel)
        try:
            st = os.lstat(path)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode) or st.st_size != b[SIZE] or st.st_mtime_ns != b[MTIME] \
                or stat.S_IMODE(st.st_mode) != b[MODE]:
            return None
        return path, st

    def is_own_file(self, rel, identity):
        """Whether the file of ``identity`` (st_dev, st_ino) is the release's own file ``rel`` itself."""
        found = self.own_file(rel) if identity is not None else None
        return found is not None and identity == (found[1].st_dev, found[1].st_ino)


NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


def _named(exc, path):
    """``exc`` naming ``path`` when it names no absolute path itself (calls relative to a directory
    descriptor name only the last component)."""
    if exc.filename is not None and os.path.isabs(str(exc.filename)):
        return exc
    return OSError(exc.errno, exc.strerror, path)


def _copy_fd(src, dst):
    """Copy the rest of the open file ``src`` to ``dst``, with the kernel's help where it gives it."""
    try:
        while os.sendfile(dst, src, None, 1 << 30):
            pass
        return
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
    while True:
        data = os.read(src, CHUNK)
        if not data:
            return
        view = memoryview(data)
        while view:
            view = view[os.write(dst, view):]


def _hardlink(path, name, dir_fd):
    """Hardlink the file ``path`` (never through a symlink) as ``name`` in the directory ``dir_fd``."""
    os.link(path, name, dst_dir_fd=dir_fd, follow_symlinks=False)


def _is_symlink(name, dir_fd):
    try:
        return stat.S_ISLNK(os.lstat(name, dir_fd=dir_fd).st_mode)
    except OSError:
        return False


class Tree(object):
    """A directory reached only through descriptors: every path below it is resolved one component at a
    time with O_NOFOLLOW, so a symlink inside it (one the build made, or one put there meanwhile) is never
    followed. ``at(rel)`` gives the descriptor of the directory holding ``rel`` and its name there."""

    def __init__(self, path):
        self.path = path
        self.fd = os.open(path, DIR_FLAGS)
        self._dirs = []  # [(name, fd)]: the directories on the way to the one used last

    def close(self):
        for _name, fd in self._dirs:
            os.close(fd)
        self._dirs = []
        os.close(self.fd)

    def full(self, rel):
        return os.path.join(self.path, rel)

    def at(self, rel):
        parts = rel.split('/')
        names = parts[:-1]
        keep = 0
        while keep < len(self._dirs) and keep < len(names) and self._dirs[keep][0] == names[keep]:
            keep += 1
        for _name, fd in self._dirs[keep:]:
            os.close(fd)
        del self._dirs[keep:]
        for name in names[keep:]:
            parent = self._dirs[-1][1] if self._dirs else self.fd
            try:
                fd = os.open(name, DIR_FLAGS, dir_fd=parent)
            except OSError as exc:
                full = self.full('/'.join(names[:len(self._dirs) + 1]))
                if exc.errno in (errno.ENOTDIR, errno.ELOOP) and _is_symlink(name, parent):
                    raise OSError(errno.ELOOP, 'it is a symlink, and no link in a release being built is followed',
                                  full)
                raise OSError(exc.errno, exc.strerror, full)
            self._dirs.append((name, fd))
        return (self._dirs[-1][1] if self._dirs else self.fd), parts[-1]


class Builder(object):
    """Materialize a manifest into a staging directory, hardlinking from a base release.

    Everything in the staging tree is made and reached through ``Tree``: files are created with
    O_EXCL|O_NOFOLLOW below directories opened with O_NOFOLLOW, so nothing is ever written, copied or
    linked through a symlink inside it.
    """

    def __init__(self, source, manifest, dest, base=None):
        self.source = source
        self.manifest = manifest
        self.dest = dest
        self.base = base
        self.as_root = os.geteuid() == 0
        self.keep_owner = self.as_root and source.keeps_owner
        self.stats = {'files_linked': 0, 'bytes_linked': 0, 'files_written': 0, 'bytes_written': 0}
        self.link_fallback = None
        self.tree = None

    def linkable(self, rel, e):
        b = self.base.manifest.get(rel)
        if b is None or b[KIND] != 'f' or b[DIGEST] != e[DIGEST] or b[MODE] != e[MODE]:
            return None
        if self.keep_owner and (b[UID] != e[UID] or b[GID] != e[GID]):
            return None
        return self.base.own_file(rel)

    def _link(self, found, rel, over=False):
        """Hardlink the base file ``found`` (from linkable) at ``rel`` (with ``over``, over the file there, through a
        temporary name); False, with link_fallback set, when the filesystem refuses hardlinks there."""
        fd, name = self.tree.at(rel)
        try:
            if over:
                put_in_place(lambda tmp: _hardlink(found[0], tmp, fd), '.cutover-link.%d' % os.getpid(), name, fd)
            else:
                _hardlink(found[0], name, fd)
        except OSError as exc:
            if exc.errno not in LINK_FALLBACK_ERRNOS:
                raise
            self.link_fallback = '%s (%s)' % (exc.strerror, found[0])
            return False
        return True

    def _apply_fd(self, fd, e):
        if self.keep_owner:
            os.fchown(fd, e[UID], e[GID])
        os.fchmod(fd, e[MODE])
        os.utime(fd, ns=(e[MTIME], e[MTIME]))

    def _create(self, rel, e, fill, replace=False):
        """Create the file ``rel`` (replacing the one made earlier in this build with ``replace``), let
        ``fill(fd)`` write it, then give it the entry's owner, mode and mtime."""
        fd, name = self.tree.at(rel)
        if replace:
            os.unlink(name, dir_fd=fd)
        out = os.open(name, NEW_FILE_FLAGS, 0o600, dir_fd=fd)
        try:
            fill(out)
            self._apply_fd(out, e)
        finally:
            os.close(out)
        if not replace:
            self.stats['files_written'] += 1
            self.stats['bytes_written'] += e[SIZE]

    def _write(self, rel, e, reader, replace=False):
        def fill(out):
            with os.fdopen(os.dup(out), 'wb') as f:
                shutil.copyfileobj(reader, f, CHUNK)
        self._create(rel, e, fill, replace)

    def _copy_fd(self, rel, e, src, replace=False):
        self._create(rel, e, lambda out: _copy_fd(src, out), replace)

    def _copy_path(self, rel, e, src_path):
        src = os.open(src_path, READ_FLAGS)
        try:
            self._copy_fd(rel, e, src)
        finally:
            os.close(src)

    def _copy_inside(self, rel, e, target, replace=False):
        """Copy ``target``, a file made earlier in this build (a tar hard link member names it), to ``rel``."""
        fd, name = self.tree.at(target)
        src = os.open(name, READ_FLAGS, dir_fd=fd)
        try:
            self._copy_fd(rel, e, src, replace)
        finally:
            os.close(src)

    def _in_tree(self, work):
        """Run ``work()`` on the staging tree, then make the tree's top directory 0755."""
        self.tree = Tree(self.dest)
        try:
            work()
            os.fchmod(self.tree.fd, 0o755)
        finally:
            self.tree.close()

    def _each(self, rels, step):
        """``step(rel)`` for each of ``rels``; an OSError names the path in the staging tree it came from."""
        for rel in rels:
            try:
                step(rel)
            except OSError as exc:
                raise _named(exc, self.tree.full(rel))

    def build(self):
        os.mkdir(self.dest, 0o700)
        self._in_tree(self._build)

    def _build(self):
        needed = []
        self._each(sorted(self.manifest), lambda rel: self._make(rel, self.manifest[rel], needed))
        self._fill(needed)
        self._each(sorted((r for r, e in self.manifest.items() if e[KIND] == 'd'), reverse=True), self._finish_dir)

    def _finish_dir(self, rel):
        fd, name = self.tree.at(rel)
        dfd = os.open(name, DIR_FLAGS, dir_fd=fd)
        try:
            self._apply_fd(dfd, self.manifest[rel])
        finally:
            os.close(dfd)

    def _make(self, rel, e, needed):
        """Make ``rel`` in the staging tree, or add it to ``needed`` when it is to be written from the source."""
        fd, name = self.tree.at(rel)
        kind = e[KIND]
        if kind == 'd':
            os.mkdir(name, 0o700, dir_fd=fd)
            return
        if kind == 'l':
            os.symlink(e[DIGEST], name, dir_fd=fd)
            if self.keep_owner:
                os.chown(name, e[UID], e[GID], dir_fd=fd, follow_symlinks=False)
            os.utime(name, ns=(e[MTIME], e[MTIME]), dir_fd=fd, follow_symlinks=False)
            return
        found = self.linkable(rel, e) if self.base else None
        if found is not None and self.link_fallback is None:
            if self._link(found, rel):
                # The release records the linked file as it is (its mtime may be older).
                e[MTIME] = found[1].st_mtime_ns
                self.stats['files_linked'] += 1
                self.stats['bytes_linked'] += e[SIZE]
            else:
                needed.append(rel)
        elif found is not None:
            self._copy_path(rel, e, found[0])
        else:
            needed.append(rel)

    def adopt(self):
        """Make the source directory itself the release (it is ``self.dest``): each file equal to the base
        release's becomes a hardlink of it, unless it is one already (rsync --link-dest makes most of
        them); other files stay where they are, counted as written."""
        self._in_tree(self._adopt_all)

    def _adopt_all(self):
        self._each(sorted(self.manifest), lambda rel: self._adopt(rel, self.manifest[rel]))
        # What the manifest left out (sockets, FIFOs, devices) is not part of a release.
        self._each(getattr(self.source, 'special', ()), self._unlink)

    def _unlink(self, rel):
        fd, name = self.tree.at(rel)
        os.unlink(name, dir_fd=fd)

    def _adopt(self, rel, e):
        if e[KIND] != 'f':
            return
        found = self.linkable(rel, e) if self.base and self.link_fallback is None else None
        if found is not None and self.source.identity.get(rel) != (found[1].st_dev, found[1].st_ino):
            if not self._link(found, rel, over=True):
                found = None
        if found is not None:
            e[MTIME] = found[1].st_mtime_ns
            self.stats['files_linked'] += 1
            self.stats['bytes_linked'] += e[SIZE]
        else:
            self.stats['files_written'] += 1
            self.stats['bytes_written'] += e[SIZE]

    def _fill(self, needed):
        if not needed:
            return
        hint = getattr(self.source, 'copy_hint', None)
        if hint is not None:
            self._each(needed, lambda rel: self._copy_path(rel, self.manifest[rel], hint(rel)))
            return
        wanted = set(needed)
        done = set()
        for rel, kind, mode, size, mtime_ns, uid, gid, extra, opener in self.source.entries():
            if rel not in wanted or kind not in ('f', 'h'):
                continue
            try:
                if kind == 'f':
                    with opener() as reader:
                        # A file the archive names again replaces the earlier one, as tar does.
                        self._write(rel, self.manifest[rel], reader, replace=rel in done)
                else:
                    target = self.manifest.get(extra)
                    if target is None or target[KIND] != 'f':
                        raise CutoverError('The source %s changed while the release was built (the hard link %r '
                                           'names %r).' % (self.source.path, rel, extra), path=self.source.path)
                    self._copy_inside(rel, self.manifest[rel], extra, replace=rel in done)
            except OSError as exc:
                raise _named(exc, self.tree.full(rel))
            done.add(rel)
        if wanted - done:
            raise CutoverError('The source %s changed while the release was built (%s vanished).'
                               % (self.source.path, sorted(wanted - done)[0]), path=self.source.path)


def _count(manifest):
    files = [e for e in manifest.values() if e[KIND] == 'f']
    return len(files), sum(e[SIZE] for e in files)


def pick_base(layout, releases, warnings=None):
    """The release to hardlink unchanged files from: the current one, else the newest ready one (whose
    manifest is usable)."""
    current = layout.current_id()
    order = [releases[current]] if current in releases else []
    order += layout.ordered(releases)
    for rel in order:
        if rel.mark in ('ready',) or rel.id == current:
            manifest = load_manifest(layout, rel.id, warnings)
            if manifest is not None:
                return rel.id, manifest
    return None, None


def release_from(layout, src=None, git_repo=None, git_version='HEAD', exclude=(), strip_components=0,
                 release_id=None, id_stamp=None, checksum=False, sync=True, move_source=False, check_mode=False):
    """Make (or find) the release of the directory or archive ``src``, or of ``git_version`` of ``git_repo``; return
    the module result. In check mode a git source is not fetched: the release it gives is found by the rule a real
    run applies before it reads the source (same_commit, in predict_commit)."""
    if id_stamp is not None:
        validate_stamp(id_stamp)
    if git_repo:
        source, commit = git_source(layout, git_repo, git_version, exclude, check_mode, strip_components)
        if source is None:
            return predict_commit(layout, commit, git_description(git_repo, git_version, exclude, strip_components),
                                  release_id, id_stamp)
    else:
        source = open_source(src, exclude, strip_components)
    return make_release(layout, source, release_id, checksum=checksum, sync=sync, check_mode=check_mode,
                        id_stamp=id_stamp, move_source=move_source)


# The options of a release made from a source, as release_dir takes them with state=present and go_live in
# its release option.
RELEASE_OPTIONS = dict(
    id=dict(type='str'),
    src=dict(type='path'),
    git_repo=dict(type='str'),
    git_version=dict(type='str', default='HEAD'),
    exclude=dict(type='list', elements='str', default=[]),
    strip_components=dict(type='int', default=0),
    checksum=dict(type='bool', default=False),
    sync=dict(type='bool', default=True),
    stamp=dict(type='str'),
    move_source=dict(type='bool', default=False),
)


def present_release(layout, p, check_mode, warn):
    """release_from with release_dir's options ``p`` (src, git_repo, git_version, exclude, strip_components, id,
    stamp, checksum, sync, move_source); its warnings are given to ``warn``; the result has the module's diff."""
    result = release_from(layout, src=p['src'], git_repo=p['git_repo'], git_version=p['git_version'],
                          exclude=p['exclude'], strip_components=p['strip_components'], release_id=p['id'],
                          id_stamp=p['stamp'], checksum=p['checksum'], sync=p['sync'], move_source=p['move_source'],
                          check_mode=check_mode)
    for warning in result.pop('warnings', ()):
        warn(warning)
    if result.get('link_fallback'):
        warn('Hardlinks were refused (%s), so files of %s were copied instead; the release takes full '
             'disk space.' % (result['link_fallback'], result['release_path']))
    if result.get('special_skipped'):
        warn('Left out %d special files (sockets, FIFOs or devices) of %s, for example %s.'
             % (len(result['special_skipped']), p['src'], result['special_skipped'][0]))
    result['diff'] = {'before': '', 'after': '%s\n' % result['release_path'], 'after_header': 'releases'} \
        if result['changed'] else {'before': '', 'after': ''}
    return result


def make_release(layout, source, release_id=None, checksum=False, sync=True, check_mode=False, id_stamp=None,
                 move_source=False):
    """Make (or find) the release for ``source``; return the module result.

    With ``move_source``, the source directory (which must be in the staging area) becomes the release
    by rename instead of being copied, and is removed when an existing release is reused."""
    if move_source:
        _check_movable(layout, source)
    result = _make_release(layout, source, release_id, checksum, sync, check_mode, id_stamp, move_source)
    if not result['warnings']:
        del result['warnings']
    if move_source and not check_mode and not result['changed'] and os.path.lexists(source.path):
        # _check_movable found it directly in the staging area, whichever way its path is spelled.
        name = os.path.basename(os.path.normpath(source.path))
        remove_tree(layout, os.path.join(layout.staging_dir, name), layout.staging_dir)
        result['source_removed'] = True
    return result


def _check_movable(layout, source):
    if not isinstance(source, DirectorySource):
        raise CutoverError('move_source needs a directory source, and %s is not one.' % source.path, path=source.path)
    if source.exclude.patterns:
        raise CutoverError('move_source cannot leave paths out of %s (exclude); exclude them when pushing.'
                           % source.path, path=source.path)
    parent = os.path.dirname(os.path.abspath(source.path).rstrip('/'))
    if os.path.realpath(parent) != os.path.realpath(layout.staging_dir) or os.path.islink(source.path):
        raise CutoverError('move_source moves only a directory directly inside %s, and %s is not one.'
                           % (layout.staging_dir, source.path), path=source.path)


def _known_id(layout, releases, release_id):
    """Refuse an id that is not usable, or names a directory cutover.web did not make."""
    if release_id is None:
        return
    validate_release_id(release_id)
    existing = releases.get(release_id)
    if existing is not None and existing.mark == 'unknown':
        raise CutoverError('%s already exists but is not a release cutover.web made; choose another id or '
                           'move it away.' % layout.release_path(release_id), path=layout.release_path(release_id))


def same_commit(layout, releases, release_id, revision, description):
    """The release to reuse, without reading the source, for a source known by its commit (git), or None.

    The one rule a real run and check mode both use: the release was made from the same commit AND the same
    description, which names the repository, the ref and every option that shapes the content (exclude,
    strip_components): the same commit with other options is another release.
    """
    if not revision:
        return None
    if release_id is not None:
        rel = releases.get(release_id)
        return rel if rel is not None and rel.revision == revision and rel.source == description else None
    return next((r for r in layout.ordered(releases) if r.state in ('ready', 'active')
                 and r.revision == revision and r.source == description), None)


def _new_id(releases, id_stamp, key):
    release_id = '%s-%s' % (id_stamp or stamp(), key[:12])
    while release_id in releases:
        release_id += 'x'
    return release_id


def _result(revision, description):
    return {'changed': False, 'reused': False, 'link_fallback': None, 'base': None,
            'files_linked': 0, 'bytes_linked': 0, 'files_written': 0, 'bytes_written': 0,
            'revision': revision, 'source': description, 'warnings': []}


def _reuse(layout, result, rel):
    files, size = _count(load_manifest(layout, rel.id, result['warnings']) or {})
    result.update(id=rel.id, release_path=layout.release_path(rel.id), fingerprint=rel.fingerprint, reused=True,
                  state=rel.state, revision=rel.revision, files=files, bytes=size)
    return result


def predict_commit(layout, revision, description, release_id=None, id_stamp=None):
    """Check mode for a git source that was not fetched: the release reused (same_commit), else the one that
    would be made, by the rule a real run applies before it reads the source."""
    releases = layout.releases()
    _known_id(layout, releases, release_id)
    result = _result(revision, description)
    same = same_commit(layout, releases, release_id, revision, description)
    if same is not None:
        return _reuse(layout, result, same)
    if release_id in releases:
        raise CutoverError('The release %s already exists, made from another commit or with other options than %s '
                           'at %s; choose another id.' % (layout.release_path(release_id), description, revision),
                           path=layout.release_path(release_id))
    release_id = release_id or _new_id(releases, id_stamp, revision)
    result.update(changed=True, id=release_id, release_path=layout.release_path(release_id), state='ready')
    return result


def _make_release(layout, source, release_id, checksum, sync, check_mode, id_stamp, move_source):
    releases = layout.releases()
    _known_id(layout, releases, release_id)
    result = _result(source.revision, source.description)
    same = same_commit(layout, releases, release_id, source.revision, source.description)
    if same is not None:
        return _reuse(layout, result, same)
    ready = [r for r in layout.ordered(releases) if r.state in ('ready', 'active')]

    base_id, base_manifest = pick_base(layout, releases, result['warnings'])
    base = BaseRelease(layout.release_path(base_id), base_manifest) if base_id else None
    manifest = scan(source, base_manifest, checksum, base)
    if not any(e[KIND] == 'f' or e[KIND] == 'l' for e in manifest.values()):
        raise CutoverError('The source %s is empty (no files to release).' % source.path, path=source.path)
    fp = fingerprint(manifest)
    result['fingerprint'] = fp
    files, size = _count(manifest)
    result.update(files=files, bytes=size)

    if release_id is not None and release_id in releases:
        rel = releases[release_id]
        if rel.fingerprint != fp:
            raise CutoverError('The release %s already exists with other content (fingerprint %s, the source has %s); '
                               'choose another id.' % (layout.release_path(release_id), (rel.fingerprint or '?')[:12],
                                                       fp[:12]), path=layout.release_path(release_id))
        return _reuse(layout, result, rel)
    if release_id is None:
        same = [r for r in ready if r.fingerprint == fp]
        if same:
            return _reuse(layout, result, same[0])
        release_id = _new_id(releases, id_stamp, source.revision or fp)

    path = layout.release_path(release_id)
    result.update(changed=True, id=release_id, release_path=path, state='ready', base=base_id)
    if check_mode:
        # The same test the real build makes, so check mode predicts exactly what it will do.
        judge = Builder(source, manifest, None, base)
        for rel, e in manifest.items():
            if e[KIND] != 'f':
                continue
            linked = base_id is not None and judge.linkable(rel, e) is not None
            key = 'linked' if linked else 'written'
            result['files_' + key] += 1
            result['bytes_' + key] += e[SIZE]
        return result

    layout.ensure_dirs()
    staging = source.path if move_source else os.path.join(layout.staging_dir, staging_name(release_id))
    builder = Builder(source, manifest, staging, base)
    try:
        if move_source:
            builder.adopt()
        else:
            builder.build()
        write_manifest(layout, release_id, manifest)
        if sync:
            syncfs(staging)
        if os.path.lexists(path):
            raise CutoverError('%s appeared while the release was built; nothing was replaced.' % path, path=path)
        # Written ahead: a 'created' whose directory never arrived in releases/ is no release.
        layout.append_history('created', release_id, fingerprint=fp, revision=source.revision,
                              source=source.description, files=files, bytes=size, base=base_id)
        os.rename(staging, path)
        fsync_dir(layout.releases_dir)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if not os.path.lexists(path):
            try:
                os.unlink(layout.manifest_path(release_id))
            except OSError:
                pass
        if isinstance(exc, OSError):
            where = exc.filename or staging
            if exc.errno in SPACE_ERRNOS:
                # Name what was being written in the root (a copy's error may name its source first).
                where = next((str(f) for f in (exc.filename2, exc.filename)
                              if f and str(f).startswith(layout.root + os.sep)), staging)
                raise CutoverError('The disk filled up while writing %s; the partial release was removed and '
                                   'current was not touched.' % where, path=where)
            raise CutoverError('Building the release failed at %s: %s; the partial release was removed and '
                               'current was not touched.' % (where, exc.strerror), path=where)
        raise
    result.update(builder.stats)
    result['link_fallback'] = builder.link_fallback
    result['special_skipped'] = list(source.special)
    return result


# -- Build steps: private files while they run, hardlinks again once they are done ------------------------------

FICLONE = 0x40049409  # _IOW(0x94, 9, int): share the source file's blocks, copy-on-write (btrfs, XFS, ...)
CLONE_FALLBACK_ERRNOS = (errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS,
                         errno.EBADF, errno.EPERM)


def _clone_fd(src, dst):
    """Copy the open file ``src`` into the empty file ``dst``: a reflink where the filesystem makes one, else
    copy_file_range (in the kernel), else a copy; return 'reflink' or 'copy'."""
    try:
        fcntl.ioctl(dst, FICLONE, src)
        return 'reflink'
    except OSError as exc:
        if exc.errno not in CLONE_FALLBACK_ERRNOS:
            raise
    copy_range = getattr(os, 'copy_file_range', None)
    if copy_range is not None:
        try:
            while copy_range(src, dst, 1 << 30):
                pass
            return 'copy'
        except OSError as exc:
            if exc.errno not in CLONE_FALLBACK_ERRNOS:
                raise
            os.lseek(src, 0, os.SEEK_SET)
            os.lseek(dst, 0, os.SEEK_SET)
            os.ftruncate(dst, 0)
    _copy_fd(src, dst)
    return 'copy'


def _walk(dfd, prefix=''):
    """``(rel, dir_fd, name, lstat)`` of everything below the open directory ``dfd``, never through a symlink;
    a directory comes before what it holds, and ``dir_fd`` is valid until the next item is taken."""
    for name in sorted(os.listdir(dfd)):
        st = os.lstat(name, dir_fd=dfd)
        rel = prefix + name
        yield rel, dfd, name, st
        if stat.S_ISDIR(st.st_mode):
            sub = os.open(name, DIR_FLAGS, dir_fd=dfd)
            try:
                yield from _walk(sub, rel + '/')
            finally:
                os.close(sub)


def _build_target(layout, release_id, action):
    """The release ``release_id`` that build steps run in: it exists, cutover.web made it, and it is not live."""
    validate_release_id(release_id)
    path = layout.release_path(release_id)
    releases = layout.releases()
    rel = layout.known(release_id, 'it cannot be %s' % action, releases)
    if rel.id == layout.current_id():
        raise CutoverError('The release %s is live, so it cannot be %s: build steps run only in a new release, '
                           'before the switch.' % (path, action), path=path)
    return rel, releases, path


def _private_copy(dfd, name, st, tmp):
    """Replace the entry ``name`` (a file or a symlink other names share) by a copy of its own, with the same
    content, mode, owner and times, by a rename over it; return how the content was copied."""
    def copy(tmp):
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(name, dir_fd=dfd), tmp, dir_fd=dfd)
            os.chown(tmp, st.st_uid, st.st_gid, dir_fd=dfd, follow_symlinks=False)
            os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dfd, follow_symlinks=False)
            return 'copy'
        src = os.open(name, READ_FLAGS, dir_fd=dfd)
        try:
            out = os.open(tmp, NEW_FILE_FLAGS, 0o600, dir_fd=dfd)
            try:
                how = _clone_fd(src, out)
                os.fchown(out, st.st_uid, st.st_gid)
                os.fchmod(out, stat.S_IMODE(st.st_mode))
                os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(out)
        finally:
            os.close(src)
        return how

    clear_temp(tmp, dfd)
    return put_in_place(copy, tmp, name, dfd)


def _fs_error(exc, path, what):
    where = _named(exc, path).filename
    if exc.errno in SPACE_ERRNOS:
        return CutoverError('The disk filled up while %s %s; current was not touched.' % (what, where), path=where)
    return CutoverError('%s %s failed: %s; current was not touched.'
                        % (what[0].upper() + what[1:], where, exc.strerror), path=where)


def isolate_release(layout, release_id, check_mode=False):
    """Give the release ``release_id`` a private copy of every file (and symlink) it shares by hardlink with
    another release or the pushed tree, so that a build step rewriting a file in place, appending to it,
    or changing its mode or owner changes this release only. Reflinks are used where the filesystem has
    them. ``seal_release`` links the files the build left alone again."""
    rel, _releases, path = _build_target(layout, release_id, 'made private for build steps')
    result = {'changed': False, 'id': release_id, 'release_path': path, 'state': rel.state, 'files_copied': 0,
              'bytes_copied': 0, 'copy_method': None}
    tmp = '.cutover-copy.%d' % os.getpid()
    top = os.open(path, DIR_FLAGS)
    try:
        for rel, dfd, name, st in _walk(top):
            if st.st_nlink < 2 or not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                continue
            result['changed'] = True
            result['files_copied'] += 1
            result['bytes_copied'] += st.st_size if stat.S_ISREG(st.st_mode) else 0
            if check_mode:
                continue
            try:
                how = _private_copy(dfd, name, st, tmp)
            except OSError as exc:
                if exc.errno == errno.EPERM:
                    raise CutoverError('%s cannot be given a private copy owned by uid %d, gid %d as this user; run '
                                       'the deploy as root or as the owner of the release files.'
                                       % (os.path.join(path, rel), st.st_uid, st.st_gid),
                                       path=os.path.join(path, rel))
                raise _fs_error(exc, os.path.join(path, rel), 'making a private copy of')
            if result['copy_method'] != 'copy':
                result['copy_method'] = how
    finally:
        os.close(top)
    return result


def seal_release(layout, release_id, check_mode=False, sync=True):
    """After the build steps: make each file of the release that is identical (content, mode, owner) to the
    base release's (the current one) a hardlink of it again, each by a link to a temporary name and a rename
    over the file, and rewrite the release's manifest to what the release now holds, so later releases
    hardlink from it and check it against what is really there."""
    rel, releases, path = _build_target(layout, release_id, 'sealed')
    warnings = []
    others = dict((k, v) for k, v in releases.items() if k != release_id)
    base_id, base_manifest = pick_base(layout, others, warnings)
    base = BaseRelease(layout.release_path(base_id), base_manifest) if base_id else None
    before = load_manifest(layout, release_id, warnings)
    source = DirectorySource(path)
    manifest = scan(source, None, True, base)
    result = {'changed': False, 'id': release_id, 'release_path': path, 'state': rel.state, 'base': base_id,
              'files_linked': 0,
              'bytes_linked': 0, 'files_written': 0, 'bytes_written': 0, 'link_fallback': None}
    relink, linked = [], []
    for rel in sorted(manifest):
        e = manifest[rel]
        if e[KIND] != 'f':
            continue
        found = _identical(base, rel, e) if base is not None else None
        if found is None:
            continue
        if source.identity.get(rel) == (found[1].st_dev, found[1].st_ino):
            linked.append((rel, found))
        else:
            relink.append((rel, found))
    if not check_mode and relink:
        # Files left private (the filesystem refused a hardlink) keep what they are.
        relink = relink[:_relink(path, relink, result)]
    for rel, found in linked + relink:
        manifest[rel][MTIME] = found[1].st_mtime_ns
    if not check_mode and relink:
        _restamp_dirs(path, manifest, set(rel.rsplit('/', 1)[0] if '/' in rel else '' for rel, _found in relink))
    linked_set = set(rel for rel, _found in linked + relink)
    for rel, e in manifest.items():
        if e[KIND] != 'f':
            continue
        key = 'linked' if rel in linked_set else 'written'
        result['files_' + key] += 1
        result['bytes_' + key] += e[SIZE]
    result['files_relinked'] = len(relink)
    result['changed'] = bool(relink) or before != manifest
    if result['changed'] and not check_mode:
        write_manifest(layout, release_id, manifest)
        if sync:
            syncfs(path)
    result['fingerprint'] = fingerprint(manifest)
    result['files'], result['bytes'] = _count(manifest)
    result['warnings'] = warnings
    return result


def _identical(base, rel, e):
    """``(path, lstat)`` of the base release's file ``rel`` when it is identical to the entry ``e``: the same
    content and mode, and the same owner."""
    b = base.manifest.get(rel)
    if b is None or b[KIND] != 'f' or b[DIGEST] != e[DIGEST] or b[MODE] != e[MODE]:
        return None
    found = base.own_file(rel)
    if found is None or (found[1].st_uid, found[1].st_gid) != (e[UID], e[GID]):
        return None
    return found


def _relink(path, relink, result):
    """Make each ``(rel, found)`` of ``relink`` a hardlink of the base file ``found``: a link to a temporary name
    in the same directory, renamed over the file. Return how many were made (fewer when the filesystem refuses
    hardlinks, which ``result['link_fallback']`` then says)."""
    tree = Tree(path)
    tmp = '.cutover-link.%d' % os.getpid()
    done = 0
    try:
        for rel, found in relink:
            fd, name = tree.at(rel)
            try:
                clear_temp(tmp, fd)
                put_in_place(lambda new: _hardlink(found[0], new, fd), tmp, name, fd)
            except OSError as exc:
                if exc.errno in LINK_FALLBACK_ERRNOS:
                    result['link_fallback'] = '%s (%s)' % (exc.strerror, found[0])
                    break
                raise _fs_error(exc, tree.full(rel), 'linking')
            done += 1
    finally:
        tree.close()
    return done


def _restamp_dirs(path, manifest, dirs):
    """Record the mtime the relinking gave the directories ``dirs`` ('' is the release's top)."""
    for rel in dirs:
        if rel:
            manifest[rel][MTIME] = os.lstat(os.path.join(path, rel)).st_mtime_ns
