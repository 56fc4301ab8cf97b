# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Writable paths: the few paths of a release the web server user (www-data) must write to.

A writable path ``p`` (relative to a release) that is a shared path, or lies inside a shared directory, is made
writable where its data lives, in ``<root>/shared/p``; any other is the release's own (``<root>/releases/<id>/p``,
made if missing): a cache that starts empty in each release, so no release reads another's compiled files.

Making a tree writable grants the web server user, on every entry it does not own already, read and write (and
search on directories) by one of two methods:

- ``acl``: a POSIX ACL entry ``user:<web user>:rwX`` (and the same default entry on directories, so what other
  users create there later is writable too), written as the ``system.posix_acl_*`` extended attributes;
- ``group``: the web server group as the entry's group, with ``g+rwX``, and set-group-id directories.

Nothing else is widened: the owner and the other users' permissions are never changed, so nothing becomes
world-writable. No symlink is ever followed: paths are walked with the no-follow walker of shared paths, entries
are changed through descriptors opened with O_NOFOLLOW, and symlinks inside a tree are left alone. A file with
other names (a release shares unchanged files with other releases by hardlink) is given a copy of its own by a
rename before it is changed, so no other release changes. Every refusal is made before anything changes.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import stat
import struct
from collections import namedtuple

from ansible_collections.cutover.web.plugins.module_utils._build import _private_copy
from ansible_collections.cutover.web.plugins.module_utils._releases import CutoverError, validate_release_id
from ansible_collections.cutover.web.plugins.module_utils._shared import DIR_FLAGS, READ_FLAGS, _Blocked, _lstat, _walk

METHODS = ('acl', 'group')
ACCESS, DEFAULT = 'system.posix_acl_access', 'system.posix_acl_default'
# The kernel's ACL extended attribute: a version, then (tag, permissions, id) entries sorted by tag and id.
ACL_VERSION = 2
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
NO_ID = 0xFFFFFFFF
_HEAD, _ENTRY = struct.Struct('<I'), struct.Struct('<HHI')

# One writable path: ``rel`` as listed, ``kind`` (directory or file), ``shared`` when it lives under shared/, and
# ``path``, where it is on disk.
Target = namedtuple('Target', 'rel kind shared path')


class Rule(namedtuple('Rule', 'method uid gid user group')):
    """How an entry is made writable for the web server user ``uid`` (group ``gid``)."""

    def changes(self, fd, st):
        """What making the open entry ``fd`` (lstat ``st``) writable takes: a list of (what, value) pairs, empty
        when the web server user owns it or can write it already."""
        if st.st_uid == self.uid:
            return []
        is_dir = stat.S_ISDIR(st.st_mode)
        mode = stat.S_IMODE(st.st_mode)
        if not is_dir:
            # A file the web server user may write never runs as its owner or group.
            mode &= ~(stat.S_ISUID | stat.S_ISGID)
        found = []
        if self.method == 'group':
            if st.st_gid != self.gid:
                found.append(('group', self.gid))
            mode |= 0o070 | stat.S_ISGID if is_dir else 0o060 | (0o010 if st.st_mode & 0o111 else 0)
        if mode != stat.S_IMODE(st.st_mode):
            found.append(('mode', mode))
        if self.method == 'group':
            return found
        perm = 7 if is_dir or st.st_mode & 0o111 else 6
        access = _grant(_read_acl(fd, ACCESS, st.st_mode), self.uid, perm)
        if access is not None:
            found.append((ACCESS, access))
        if is_dir:
            default = _read_acl(fd, DEFAULT)
            if default is None:
                base = access if access is not None else _read_acl(fd, ACCESS, st.st_mode)
                default = dict((key, value) for key, value in base.items() if key[0] in (USER_OBJ, GROUP_OBJ, OTHER))
                default[(MASK, NO_ID)] = default[(GROUP_OBJ, NO_ID)]
                default = _grant(default, self.uid, perm) or default
            else:
                default = _grant(default, self.uid, perm)
            if default is not None:
                found.append((DEFAULT, default))
        return found

    def apply(self, fd, st, changes):
        for what, value in changes:
            if what == 'group':
                os.fchown(fd, -1, value)
            elif what == 'mode':
                os.fchmod(fd, value)
            else:
                os.setxattr(fd, what, _pack(value))

    def describe(self, changes):
        """The changes as a short text: ``group www-data, mode 2775`` or ``acl user:www-data:rwx, default ...``."""
        said = []
        for what, value in changes:
            if what == 'group':
                said.append('group %s' % self.group)
            elif what == 'mode':
                said.append('mode %04o' % value)
            else:
                perm = value[(USER, self.uid)]
                said.append('%s user:%s:%s' % ('acl' if what == ACCESS else 'default acl', self.user,
                                               ''.join(c if perm & b else '-' for c, b in zip('rwx', (4, 2, 1)))))
        return ', '.join(said)


def _read_acl(fd, name, mode=None):
    """The ACL ``name`` of the open entry ``fd`` as {(tag, id): permissions}; without one, the access ACL its
    ``mode`` stands for (None for a default ACL)."""
    try:
        data = os.getxattr(fd, name)
    except OSError as exc:
        if exc.errno != errno.ENODATA:
            raise
        if mode is None:
            return None
        return {(USER_OBJ, NO_ID): (mode >> 6) & 7, (GROUP_OBJ, NO_ID): (mode >> 3) & 7, (OTHER, NO_ID): mode & 7}
    if len(data) < _HEAD.size or _HEAD.unpack_from(data)[0] != ACL_VERSION or (len(data) - 4) % _ENTRY.size:
        raise OSError(errno.EINVAL, 'unreadable POSIX ACL')
    return dict(((tag, uid), perm) for tag, perm, uid in _ENTRY.iter_unpack(data[_HEAD.size:]))


def _pack(entries):
    packed = [_ENTRY.pack(tag, perm, uid) for (tag, uid), perm in sorted(entries.items())]
    return _HEAD.pack(ACL_VERSION) + b''.join(packed)


def _grant(entries, uid, perm):
    """``entries`` with ``user:<uid>`` given ``perm`` and the mask letting it through, or None when it has them.
    Adds to the mask only what is granted (a new mask is the owning group's permissions plus that)."""
    have = entries.get((USER, uid), 0)
    mask = entries.get((MASK, NO_ID))
    if have & perm == perm and mask is not None and mask & perm == perm:
        return None
    entries = dict(entries)
    entries[(USER, uid)] = have | perm
    entries[(MASK, NO_ID)] = (entries[(GROUP_OBJ, NO_ID)] if mask is None else mask) | perm
    return entries


def web_rule(method, user, group=None):
    """The Rule for ``user`` (and ``group``, else the user's own group), refused when either is unknown here."""
    if method not in METHODS:
        raise CutoverError('The writable method %r is not one of %s.' % (method, ', '.join(METHODS)))
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise CutoverError('The web server user %r does not exist on this host, so no path was made writable for it '
                           '(set the web server user of this host).' % user)
    try:
        gr = grp.getgrnam(group) if group else grp.getgrgid(pw.pw_gid)
    except KeyError:
        raise CutoverError('The web server group %r does not exist on this host, so no path was made writable for it.'
                           % (group or pw.pw_gid))
    return Rule(method, pw.pw_uid, gr.gr_gid, user, gr.gr_name)


def targets(layout, release_id, dirs, files, shared_dirs=(), shared_files=()):
    """The writable paths as Targets, each refused here (before anything changes) when it is not a plain relative
    path inside the release."""
    validate_release_id(release_id)
    release = layout.release_path(release_id)
    found, seen = [], set()
    for kind, listed in (('directory', dirs), ('file', files)):
        for rel in listed:
            rel = rel or ''
            parts = rel.split('/')
            why = ('it is absolute' if rel.startswith('/') else 'it has a ".." part' if '..' in parts
                   else 'it is under .cutover' if parts[0] == '.cutover'
                   else 'it is empty or has an empty or "." part' if any(p in ('', '.') for p in parts) else None)
            if why:
                raise CutoverError('The writable path %r must be a relative path inside the release %s, and %s, so '
                                   'nothing was made writable.' % (rel, release, why), path=release)
            if rel in seen:
                continue
            seen.add(rel)
            shared = rel in shared_files or any(rel == s or rel.startswith(s + '/') for s in shared_dirs)
            found.append(Target(rel, kind, shared, os.path.join(layout.shared_dir if shared else release, rel)))
    return found


class _Bases(object):
    """Directory fds of the release and of shared/ (None while shared/ is missing), opened without following
    links below the root."""

    def __init__(self, layout, release_id, create=False):
        self.fds = {}
        root_fd = os.open(layout.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for shared, parts, path in ((False, ['releases', release_id], layout.release_path(release_id)),
                                        (True, ['shared'], layout.shared_dir)):
                try:
                    self.fds[shared] = _walk(root_fd, layout.root, parts, create=create and shared)
                except _Blocked as exc:
                    raise CutoverError('%s is %s, so no path was made writable in %s.' % (exc.path, exc.what, path),
                                       path=exc.path)
            if self.fds[False] is None:
                raise CutoverError('The release %s does not exist, so no path was made writable in it.'
                                   % layout.release_path(release_id), path=layout.release_path(release_id))
        except BaseException:
            self.close()
            raise
        finally:
            os.close(root_fd)

    def parent(self, layout, release_id, target, create=False):
        """The fd of the directory holding ``target`` (None while missing), the way to it checked."""
        base = self.fds[target.shared]
        if base is None:
            return None
        try:
            return _walk(base, layout.shared_dir if target.shared else layout.release_path(release_id),
                         target.rel.split('/')[:-1], create=create)
        except _Blocked as exc:
            raise CutoverError('The writable path %r cannot be made writable because %s is %s (cutover.web follows '
                               'no link on the way to a writable path), so nothing was made writable.'
                               % (target.rel, exc.path, exc.what), path=exc.path)

    def close(self):
        for fd in self.fds.values():
            if fd is not None:
                os.close(fd)
        self.fds = {}


def _check(target, parent_fd, rule):
    """Refuse what is at ``target`` when it is not what it is listed as."""
    st = _lstat(parent_fd, os.path.basename(target.rel))
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            raise CutoverError('%s is a symlink; a writable path must be a real %s %s, so nothing was made writable.'
                               % (target.path, target.kind, 'under the shared directory' if target.shared
                                  else 'in the release (or a shared path)'), path=target.path)
        is_dir = stat.S_ISDIR(st.st_mode)
        if is_dir != (target.kind == 'directory') or not (is_dir or stat.S_ISREG(st.st_mode)):
            raise CutoverError('%s is %s, but it is listed as a writable %s, so nothing was made writable.'
                               % (target.path, 'a directory' if is_dir else 'a regular file' if stat.S_ISREG(
                                   st.st_mode) else 'a special file', target.kind), path=target.path)
    if rule.method == 'acl':
        try:
            os.getxattr(parent_fd, ACCESS)
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.ENOTSUP):
                raise CutoverError('The filesystem of %s has no POSIX ACLs, so nothing was made writable; use the '
                                   'group method there.' % target.path, path=target.path)
            if exc.errno != errno.ENODATA:
                raise


def make_writable(layout, release_id, dirs, files, rule, shared_dirs=(), shared_files=(), check_mode=False):
    """Make the writable paths writable for ``rule``'s user; return {'changed', 'paths': [...], 'lines': [...]},
    one dict per path (path, location, shared, created, changed: entries changed, copied: entries given a copy
    of their own) and one line per entry changed, for the diff."""
    listed = targets(layout, release_id, dirs, files, shared_dirs, shared_files)
    bases = _Bases(layout, release_id)
    try:
        for target in listed:
            parent = bases.parent(layout, release_id, target)
            if parent is not None:
                try:
                    _check(target, parent, rule)
                finally:
                    os.close(parent)
    finally:
        bases.close()
    report = {'changed': False, 'paths': [], 'lines': []}
    bases = _Bases(layout, release_id, create=not check_mode)
    try:
        for target in listed:
            done = _make_one(layout, release_id, bases, target, rule, check_mode, report['lines'])
            report['paths'].append(done)
            report['changed'] = report['changed'] or bool(done['created'] or done['changed'])
    finally:
        bases.close()
    return report


def _make_one(layout, release_id, bases, target, rule, check_mode, lines):
    done = {'path': target.rel, 'location': target.path, 'shared': target.shared, 'created': False, 'changed': 0,
            'copied': 0}
    name = os.path.basename(target.rel)
    parent = bases.parent(layout, release_id, target, create=not check_mode)
    try:
        if _lstat(parent, name) is None:
            done['created'] = True
            lines.append('%s (created)' % target.path)
            if check_mode:
                done['changed'] = 1
                return done
            if target.kind == 'directory':
                os.mkdir(name, 0o755, dir_fd=parent)
            else:
                os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                                 dir_fd=parent))
        _entry(parent, name, target.path, rule, check_mode, done, lines)
        if not check_mode:
            os.fsync(parent)
    except OSError as exc:
        raise CutoverError('Could not make %s writable for %s: %s.'
                           % (exc.filename or target.path, rule.user, exc.strerror or exc),
                           path=exc.filename or target.path)
    finally:
        if parent is not None:
            os.close(parent)
    return done


def _entry(dir_fd, name, path, rule, check_mode, done, lines):
    """Make the entry ``name`` of ``dir_fd`` (shown as ``path``) writable, and all a directory holds; symlinks and
    special files are left alone, and an entry that vanished (a live cache being cleared) is skipped."""
    st = _lstat(dir_fd, name)
    if st is None or not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        return
    is_dir = stat.S_ISDIR(st.st_mode)
    try:
        fd = os.open(name, DIR_FLAGS if is_dir else READ_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
            return
        raise OSError(exc.errno, exc.strerror, path)
    try:
        st = os.fstat(fd)
        changes = rule.changes(fd, st)
        if changes and not is_dir and st.st_nlink > 1:
            # Linked with another release (or another name): changed only in a copy of its own.
            done['copied'] += 1
            lines.append('%s (a copy of its own: it has %d names)' % (path, st.st_nlink))
            if not check_mode:
                os.close(fd)
                fd = None
                _private_copy(dir_fd, name, st, '.cutover-copy.%d' % os.getpid())
                fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
                st = os.fstat(fd)
                changes = rule.changes(fd, st)
        if changes:
            done['changed'] += 1
            lines.append('%s: %s' % (path, rule.describe(changes)))
            if not check_mode:
                rule.apply(fd, st, changes)
        if is_dir:
            for child in sorted(os.listdir(fd)):
                _entry(fd, child, os.path.join(path, child), rule, check_mode, done, lines)
    except OSError as exc:
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror, path)
        raise
    finally:
        if fd is not None:
            os.close(fd)
