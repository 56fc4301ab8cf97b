# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Where a release's files come from: a directory, an archive (tar, zip) or a git commit.

Every source yields the same stream of entries, in an order where a directory comes before
what it holds: ``(relpath, kind, mode, size, mtime_ns, uid, gid, extra, opener)``, where
``kind`` is 'd', 'f', 'l' or (tar only) 'h', ``extra`` is the link text of a symlink or the path of
the earlier member a hard link names, and ``opener()`` returns a readable binary file for a regular
file (valid only until the next entry is taken).
"""

from __future__ import annotations

import calendar
import errno
import fnmatch
import hashlib
import json
import os
import stat
import subprocess
import tarfile
import zipfile

from ansible_collections.cutover.web.plugins.module_utils._releases import CutoverError

ARCHIVE_SUFFIXES = ('.tar', '.tar.gz', '.tgz', '.tar.bz2', '.tbz2', '.tar.xz', '.txz', '.zip')


class Excluder(object):
    """rsync-like exclude patterns: with a '/', matched against the relative path, else the name.

    What is below an excluded directory is excluded too, as rsync never descends into it: a
    directory source does not walk it, and an archive member is tested with each of its parents
    (an archive lists ``x/file`` whether or not it lists ``x``).
    """

    def __init__(self, patterns):
        self.patterns = [pat.strip('/') for pat in patterns or []]

    def __call__(self, relpath):
        if not self.patterns:
            return False
        parts = relpath.split('/')
        for i in range(1, len(parts) + 1):
            path, name = '/'.join(parts[:i]), parts[i - 1]
            for pat in self.patterns:
                if fnmatch.fnmatchcase(path if '/' in pat else name, pat):
                    return True
        return False


class DirectorySource(object):
    """A directory on the target host, for example one pushed there by rsync."""

    trust_quick_check = True
    keeps_owner = True

    def __init__(self, path, exclude=None):
        self.path = path
        self.exclude = Excluder(exclude)
        self.revision = None
        self.description = 'dir:%s' % path
        self.special = []
        # (st_dev, st_ino) of every regular file entries() gave, by relative path.
        self.identity = {}

    def entries(self):
        stack = ['']
        while stack:
            rel_dir = stack.pop()
            full_dir = os.path.join(self.path, rel_dir) if rel_dir else self.path
            try:
                with os.scandir(full_dir) as it:
                    children = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                raise CutoverError('Cannot read the source directory %s: %s.' % (full_dir, exc.strerror),
                                   path=full_dir)
            subdirs = []
            for de in children:
                rel = rel_dir + '/' + de.name if rel_dir else de.name
                if self.exclude(rel):
                    continue
                st = de.stat(follow_symlinks=False)
                mode = st.st_mode
                if stat.S_ISDIR(mode):
                    yield (rel, 'd', stat.S_IMODE(mode), 0, st.st_mtime_ns, st.st_uid, st.st_gid, None, None)
                    subdirs.append(rel)
                elif stat.S_ISREG(mode):
                    path = de.path
                    self.identity[rel] = (st.st_dev, st.st_ino)
                    yield (rel, 'f', stat.S_IMODE(mode), st.st_size, st.st_mtime_ns, st.st_uid, st.st_gid, None,
                           lambda path=path: open_source_file(path))
                elif stat.S_ISLNK(mode):
                    yield (rel, 'l', 0o777, 0, st.st_mtime_ns, st.st_uid, st.st_gid, os.readlink(de.path), None)
                else:
                    self.special.append(rel)
            stack.extend(reversed(subdirs))

    def copy_hint(self, relpath):
        """The source file for ``relpath``, so it can be copied with the kernel's help."""
        return os.path.join(self.path, relpath)


def open_source_file(path):
    """A regular file of a directory source, opened for reading without following a symlink put in its place."""
    try:
        return os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), 'rb')
    except OSError as exc:
        raise CutoverError('Cannot read the source file %s: %s.' % (path, exc.strerror), path=path)


def _clean_member_name(name, strip, archive):
    parts = [p for p in name.split('/') if p not in ('', '.')]
    if name.startswith('/') or '..' in parts:
        raise CutoverError('The archive %s holds the member %r, which would land outside the release.'
                           % (archive, name), path=archive)
    parts = parts[strip:]
    return '/'.join(parts)


KIND_NAMES = {'d': 'directory', 'f': 'file', 'l': 'symlink', 'h': 'hard link'}


def _as_tree(entries, archive):
    """Archive entries as a tree: missing parent directories are added (mode 0755), and an entry
    below one that is not a directory in the archive (a symlink, a file) is refused, so no member can
    be written through a link the archive itself made.

    A path named again is refused when its kind changes (a directory, then a symlink of that name:
    members already placed below it would be written through the link), whatever the order. A
    directory named again is the same directory. A regular file named again replaces the earlier one,
    as tar does on extraction (``tar -r`` appends newer versions), unless a hard link member was made
    to it in between (the link would keep the older content); nothing else may be named twice.
    """
    kinds = {}
    link_targets = set()
    for entry in entries:
        rel, kind = entry[0], entry[1]
        parts = rel.split('/')
        for i in range(1, len(parts)):
            parent = '/'.join(parts[:i])
            seen = kinds.get(parent)
            if seen is None:
                kinds[parent] = 'd'
                yield (parent, 'd', 0o755, 0, entry[4], entry[5], entry[6], None, None)
            elif seen != 'd':
                raise CutoverError('The archive %s holds %r below %r, which is a %s there, not a directory.'
                                   % (archive, rel, parent, KIND_NAMES[seen]), path=archive)
        seen = kinds.get(rel)
        if seen is not None:
            if seen == kind == 'd':
                continue
            if seen != kind or kind != 'f':
                raise CutoverError('The archive %s holds %r as a %s and again as a %s, so a member could be written '
                                   'through a link; only a regular file may be repeated.'
                                   % (archive, rel, KIND_NAMES[seen], KIND_NAMES[kind]), path=archive)
            if rel in link_targets:
                raise CutoverError('The archive %s holds the file %r again after a hard link to it, and the link '
                                   'would keep the older content.' % (archive, rel), path=archive)
        if kind == 'h':
            link_targets.add(entry[7])
        kinds[rel] = kind
        yield entry


class TarSource(object):
    """A tar archive (plain, gzip, bzip2 or xz) or a tar stream from a command (git archive)."""

    trust_quick_check = False
    keeps_owner = False

    def __init__(self, path, exclude=None, strip_components=0, command=None, description=None, revision=None):
        self.path = path
        self.command = command
        self.exclude = Excluder(exclude)
        self.strip = strip_components
        self.revision = revision
        self.description = description or 'archive:%s' % path
        self.special = []

    def _open(self):
        if self.command is None:
            try:
                return tarfile.open(self.path, mode='r|*'), None
            except (tarfile.TarError, OSError) as exc:
                raise CutoverError('The archive %s cannot be read: %s.' % (self.path, exc), path=self.path)
        proc = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return tarfile.open(fileobj=proc.stdout, mode='r|'), proc

    def entries(self):
        return _as_tree(self._members(), self.path)

    def _members(self):
        tar, proc = self._open()
        uid, gid = os.getuid(), os.getgid()
        seen_files = {}
        try:
            for member in tar:
                rel = _clean_member_name(member.name, self.strip, self.path)
                if not rel or self.exclude(rel):
                    continue
                mtime_ns = int(member.mtime) * 1000000000
                if member.isdir():
                    yield (rel, 'd', member.mode & 0o7777, 0, mtime_ns, uid, gid, None, None)
                elif member.isfile():
                    seen_files[rel] = member
                    yield (rel, 'f', member.mode & 0o7777, member.size, mtime_ns, uid, gid, None,
                           lambda member=member: tar.extractfile(member))
                elif member.issym():
                    yield (rel, 'l', 0o777, 0, mtime_ns, uid, gid, member.linkname, None)
                elif member.islnk():
                    target = _clean_member_name(member.linkname, self.strip, self.path)
                    yield (rel, 'h', member.mode & 0o7777, 0, mtime_ns, uid, gid, target, None)
                else:
                    self.special.append(rel)
        except tarfile.TarError as exc:
            raise CutoverError('The archive %s cannot be read: %s.' % (self.path, exc), path=self.path)
        finally:
            tar.close()
            if proc is not None:
                proc.stdout.close()
                err = proc.stderr.read().decode('utf-8', 'replace').strip()
                if proc.wait() != 0:
                    raise CutoverError('%s failed: %s.' % (' '.join(self.command[:3]), err or 'no message'),
                                       path=self.path)

    copy_hint = None


class ZipSource(object):
    """A zip archive."""

    trust_quick_check = False
    keeps_owner = False

    def __init__(self, path, exclude=None, strip_components=0):
        self.path = path
        self.exclude = Excluder(exclude)
        self.strip = strip_components
        self.revision = None
        self.description = 'archive:%s' % path
        self.special = []

    def entries(self):
        return _as_tree(self._members(), self.path)

    def _members(self):
        uid, gid = os.getuid(), os.getgid()
        try:
            zf = zipfile.ZipFile(self.path)
        except (zipfile.BadZipfile, OSError) as exc:
            raise CutoverError('The archive %s cannot be read: %s.' % (self.path, exc), path=self.path)
        with zf:
            for info in sorted(zf.infolist(), key=lambda i: i.filename):
                rel = _clean_member_name(info.filename, self.strip, self.path)
                if not rel or self.exclude(rel):
                    continue
                unix_mode = info.external_attr >> 16
                mtime_ns = calendar.timegm(info.date_time + (0, 0, -1)) * 1000000000
                if info.is_dir():
                    yield (rel, 'd', stat.S_IMODE(unix_mode) or 0o755, 0, mtime_ns, uid, gid, None, None)
                elif stat.S_ISLNK(unix_mode):
                    yield (rel, 'l', 0o777, 0, mtime_ns, uid, gid,
                           zf.read(info).decode('utf-8', 'surrogateescape'), None)
                else:
                    yield (rel, 'f', stat.S_IMODE(unix_mode) or 0o644, info.file_size, mtime_ns, uid, gid, None,
                           lambda info=info: zf.open(info))

    copy_hint = None


def _git(args, cwd=None):
    try:
        proc = subprocess.run(['git'] + args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise CutoverError('git is not installed on the target host, so a git source cannot be used.')
        raise
    return proc.returncode, proc.stdout.decode('utf-8', 'replace').strip(), proc.stderr.decode('utf-8', 'replace')


def _is_commit_id(version):
    return len(version) == 40 and all(c in '0123456789abcdef' for c in version)


def _ls_remote(repo, version):
    """The commit ``version`` names in ``repo`` without fetching anything (peeled for annotated tags)."""
    if _is_commit_id(version):
        return version
    rc, out, err = _git(['ls-remote', repo, version])
    if rc != 0:
        raise CutoverError('The git repository %s cannot be read: %s.' % (repo, err.strip()), path=repo)
    lines = [line.split('\t') for line in out.splitlines() if '\t' in line]
    peeled = [sha for sha, ref in lines if ref.endswith('^{}')]
    if peeled or lines:
        return (peeled or [lines[0][0]])[0]
    raise CutoverError('The git repository %s has no ref %s.' % (repo, version), path=repo)


def git_description(repo, version, exclude=None, strip_components=0):
    """What a release made from ``version`` of ``repo`` is known by: the options that shape its content are part
    of it, so the same commit asked with other options is never taken for the release made without them."""
    options = ''
    if exclude:
        options += ' exclude=%s' % json.dumps(sorted(set(exclude)))
    if strip_components:
        options += ' strip_components=%d' % strip_components
    return 'git:%s@%s%s' % (repo, version, options)


def git_source(layout, repo, version, exclude=None, check_mode=False, strip_components=0):
    """Resolve ``version`` of ``repo`` through a bare mirror cached under .cutover/repos.

    In check mode nothing is fetched: the commit is found with ``git ls-remote`` and the source is
    None (the caller compares revisions only).
    """
    if check_mode:
        return None, _ls_remote(repo, version)
    mirror = os.path.join(layout.repos_dir, hashlib.sha256(repo.encode('utf-8')).hexdigest()[:16] + '.git')
    if not os.path.isdir(mirror):
        for path in (layout.root, layout.state_dir, layout.repos_dir):
            if not os.path.isdir(path):
                os.mkdir(path, 0o755 if path == layout.root else 0o700)
        rc, out, err = _git(['clone', '--quiet', '--mirror', repo, mirror])
    else:
        rc, out, err = _git(['remote', 'update', '--prune'], cwd=mirror)
    if rc != 0:
        raise CutoverError('The git repository %s cannot be fetched: %s.' % (repo, err.strip()), path=repo)
    rc, commit, err = _git(['rev-parse', '--verify', '--quiet', version + '^{commit}'], cwd=mirror)
    if rc != 0 or not commit:
        raise CutoverError('The git repository %s has no commit or ref %s.' % (repo, version), path=repo)
    source = TarSource(mirror, exclude=exclude, strip_components=strip_components,
                       command=['git', '--git-dir', mirror, 'archive', '--format=tar', commit],
                       description=git_description(repo, version, exclude, strip_components), revision=commit)
    return source, commit


def open_source(src, exclude=None, strip_components=0):
    """A source object for a directory or an archive file on the target host."""
    if strip_components < 0:
        raise CutoverError('strip_components is %d for %s, but it cannot be negative.' % (strip_components, src),
                           path=src)
    if not os.path.lexists(src):
        raise CutoverError('The source %s does not exist.' % src, path=src)
    if os.path.isdir(src):
        return DirectorySource(src, exclude)
    if not os.path.isfile(src):
        raise CutoverError('The source %s is neither a directory nor an archive file.' % src, path=src)
    lower = src.lower()
    if lower.endswith('.zip'):
        return ZipSource(src, exclude, strip_components)
    try:
        if lower.endswith(ARCHIVE_SUFFIXES) or tarfile.is_tarfile(src):
            return TarSource(src, exclude, strip_components)
        if zipfile.is_zipfile(src):
            return ZipSource(src, exclude, strip_components)
    except OSError as exc:
        raise CutoverError('The archive %s cannot be read: %s.' % (src, exc.strerror), path=src)
    raise CutoverError('The source %s is a file but not a tar or zip archive.' % src, path=src)
