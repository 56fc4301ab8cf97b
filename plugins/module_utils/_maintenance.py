# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The maintenance window: one file, ``<root>/maintenance.html``, that is both the flag and the page.

The vhost the apache_vhost role writes tests for that file on every request: while it exists, every
client not on the vhost's allow-list is answered 503 with a Retry-After header and the file as the page.
So the window is turned on by renaming a finished page into place and off by unlinking it, each one
atomic step with no reload of Apache, and the page can never be half written or missing while the
window is on.
"""

from __future__ import annotations

import errno
import os
import stat
import time

from ansible_collections.cutover.web.plugins.module_utils._fs import clear_temp, put_in_place, temp_name
from ansible_collections.cutover.web.plugins.module_utils._releases import CutoverError, fsync_dir, iso

# What visitors see when no page is given.
DEFAULT_PAGE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Down for maintenance</title></head>
<body>
<h1>Down for maintenance</h1>
<p>This site is being upgraded and will be back in a few minutes. Please try again shortly.</p>
</body>
</html>
"""

# A page is served to every visitor for every request: a static page, not a download.
MAX_PAGE_BYTES = 1024 * 1024


def read_page(layout, src):
    """The bytes of the page file ``src`` on this host, refusing what is not a regular file of its own.

    A page inside the deploy root (in a release) must be reached without a symlink: a link there, made by
    the application or a careless user, would otherwise publish whatever file it points at.
    """
    if not src or not os.path.isabs(src):
        raise CutoverError('The maintenance page %r is not an absolute path.' % (src,), path=src)
    src = os.path.normpath(src)
    root = os.path.realpath(layout.root)
    inside = os.path.relpath(src, layout.root)
    if not inside.startswith('..') and os.path.realpath(src) != os.path.join(root, inside):
        raise CutoverError('The maintenance page %s is reached through a symlink inside the deploy root; give the '
                           'path of a file of the release itself.' % src, path=src)
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CutoverError('The maintenance page %s is a symlink; give the file itself.' % src, path=src)
        raise CutoverError('Cannot read the maintenance page %s: %s.' % (src, exc.strerror), path=src)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CutoverError('The maintenance page %s is not a regular file.' % src, path=src)
        if st.st_size > MAX_PAGE_BYTES:
            raise CutoverError('The maintenance page %s is larger than %d bytes; give a small static page.'
                               % (src, MAX_PAGE_BYTES), path=src)
        data = os.read(fd, MAX_PAGE_BYTES + 1)
    finally:
        os.close(fd)
    return data


def _current(layout):
    """The page of the window that is on, or None when it is off (check_state refused a link or a directory)."""
    try:
        fd = os.open(layout.maintenance_page, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None, None
        raise CutoverError('Cannot read the maintenance page %s: %s.' % (layout.maintenance_page, exc.strerror),
                           path=layout.maintenance_page)
    try:
        st = os.fstat(fd)
        return os.read(fd, st.st_size + 1), st.st_mtime
    finally:
        os.close(fd)


def _put(layout, data):
    """Write the page beside its place and rename it in: the window turns on with the whole page."""
    def write(tmp):
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            # Apache's user must read it.
            os.fchmod(fd, 0o644)
            view = data
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)

    tmp = temp_name(layout.maintenance_page, 'new')
    clear_temp(tmp)
    put_in_place(write, tmp, layout.maintenance_page)
    fsync_dir(layout.root)


def _text(data):
    return None if data is None else data.decode('utf-8', 'replace')


def window(layout, state, content=None, src=None, check_mode=False):
    """Turn the maintenance window on (``state`` present, with the page ``content`` or the file ``src``,
    else the built-in page) or off (absent); return the module result."""
    layout.require_root()
    if state == 'present':
        if src:
            page = read_page(layout, src)
        else:
            page = (DEFAULT_PAGE if content is None else content).encode('utf-8')
        if not page.strip():
            raise CutoverError('The maintenance page for %s is empty; give a page that tells visitors what is '
                               'happening, or none for the built-in one.' % layout.maintenance_page,
                               path=layout.maintenance_page)
    else:
        page = None
    before, since = _current(layout)
    changed = before != page
    if changed and not check_mode:
        try:
            if page is None:
                os.unlink(layout.maintenance_page)
                fsync_dir(layout.root)
            else:
                _put(layout, page)
        except OSError as exc:
            raise CutoverError('Cannot turn the maintenance window of %s %s: %s.'
                               % (layout.root, 'on' if page is not None else 'off', exc.strerror),
                               path=layout.maintenance_page)
    result = {
        'changed': changed,
        'active': page is not None,
        'was_active': before is not None,
        'page': layout.maintenance_page,
        'diff': {'before': _text(before) or '', 'after': _text(page) or '',
                 'before_header': '%s (window %s)' % (layout.maintenance_page, 'on' if before is not None else 'off'),
                 'after_header': '%s (window %s)' % (layout.maintenance_page, 'on' if page is not None else 'off')},
    }
    if before is not None:
        result['since'] = iso(since)
        if page is None:
            result['seconds'] = round(max(0.0, time.time() - since), 3)
    return result
