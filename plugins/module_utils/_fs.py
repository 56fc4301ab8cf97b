# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The Linux calls the release model rests on that Python's os module lacks, in one place.

renameat2(2) swaps two paths in one step (RENAME_EXCHANGE: a directory for a symlink, so the path is
never missing) or renames without replacing (RENAME_NOREPLACE); syncfs(2) flushes one filesystem
before a release becomes visible. Both come from libc through ctypes, loaded once. DIR_FLAGS opens a
directory without following a symlink, the first step of every walk that must stay inside the root.
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
