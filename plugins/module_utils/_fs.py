# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The Linux calls the release model rests on that Python's os module lacks, in one place.

renameat2(2) swaps two paths in one step (RENAME_EXCHANGE: a directory for a symlink, so the path is
never missing) or renames without replacing (RENAME_NOREPLACE); syncfs(2) flushes one filesystem
before a release becomes visible. Both come from libc through ctypes, loaded once. DIR_FLAGS opens a
directory without following a symlink, the first step of every walk that must stay inside the root.

Every entry cutover.web puts over another (the ``current`` link, a shared link, a hardlink of the base
release, a private copy) is made under a temporary name beside it and renamed into place in one step:
:func:`put_in_place`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os

AT_FDCWD = -100
RENAME_NOREPLACE = 1 << 0
RENAME_EXCHANGE = 1 << 1

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

_LIBC = []


def _libc():
    if not _LIBC:
        _LIBC.append(ctypes.CDLL(ctypes.util.find_library('c') or None, use_errno=True))
    return _LIBC[0]


def renameat2(a, b, flags, a_dir=AT_FDCWD, b_dir=AT_FDCWD):
    """renameat2(2) of ``a`` (relative to the directory fd ``a_dir``) to ``b``: 0, or the errno."""
    func = getattr(_libc(), 'renameat2', None)
    if func is None:
        return errno.ENOSYS
    func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    func.restype = ctypes.c_int
    rc = func(a_dir, os.fsencode(a), b_dir, os.fsencode(b), flags)
    return ctypes.get_errno() if rc != 0 else 0


def exchange_error(err):
    """Why a renameat2(RENAME_EXCHANGE) that returned ``err`` failed, for a sentence."""
    reason = os.strerror(err)
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return 'this kernel or filesystem does not support renameat2(RENAME_EXCHANGE) (%s)' % reason
    return reason


def syncfs(path):
    """Flush the filesystem ``path`` is on (all of it, with sync(2), where libc has no syncfs)."""
    fd = os.open(path, DIR_FLAGS)
    try:
        func = getattr(_libc(), 'syncfs', None)
        if func is None or func(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


class RenameError(OSError):
    """The rename of :func:`put_in_place` failed (the new entry was made, and is removed again)."""


def temp_name(path, tag):
    """``.<name>.<tag>.<pid>`` beside ``path`` (a path, or a name in a directory): where a new entry is made
    before it is renamed to ``path``."""
    return os.path.join(os.path.dirname(path), '.%s.%s.%d' % (os.path.basename(path), tag, os.getpid()))


def clear_temp(tmp, dir_fd=None):
    """Remove what a run that stopped half-way left at the temporary name ``tmp``."""
    try:
        os.unlink(tmp, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


def _lexists(name, dir_fd):
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def rename(src, dst, flags=0, src_dir=None, dst_dir=None):
    """rename(2) of ``src`` to ``dst`` (names in the directory descriptors ``src_dir`` and ``dst_dir``, or paths),
    by renameat2(2) with ``flags`` when there are some; raises OSError. Where the kernel or the filesystem has no
    RENAME_NOREPLACE, a plain rename to a name that is still free."""
    if not flags:
        os.rename(src, dst, src_dir_fd=src_dir, dst_dir_fd=dst_dir)
        return
    err = renameat2(src, dst, flags, AT_FDCWD if src_dir is None else src_dir, AT_FDCWD if dst_dir is None else dst_dir)
    if err in (errno.EINVAL, errno.ENOSYS) and flags == RENAME_NOREPLACE and not _lexists(dst, dst_dir):
        os.rename(src, dst, src_dir_fd=src_dir, dst_dir_fd=dst_dir)
        err = 0
    if err:
        raise OSError(err, os.strerror(err), dst)


def put_in_place(make, tmp, name, dir_fd=None, flags=0):
    """Put a new entry at ``name``: ``make(tmp)`` makes it under the free temporary name ``tmp`` beside it, and one
    rename(2) puts it over ``name`` (both names in the directory ``dir_fd``, or paths). With ``flags``, renameat2(2):
    RENAME_NOREPLACE only where nothing is, RENAME_EXCHANGE swaps the two and leaves the old entry at ``tmp``.

    When making or renaming fails, ``tmp`` is removed; a failed rename is raised as RenameError. Returns what
    ``make`` returns."""
    try:
        made = make(tmp)
        try:
            rename(tmp, name, flags, dir_fd, dir_fd)
        except OSError as exc:
            raise RenameError(exc.errno, exc.strerror, name)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise
    return made
