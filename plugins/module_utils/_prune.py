# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Pruning: which releases and staging leftovers go, decided from the history alone.

Kept, always: the current release, the rollback target, ids in ``protect``, and the newest
``keep`` ready releases by recorded deploy order. Failed and bad releases go once they have been
marked longer than ``failed_older_than``; staging leftovers once they are older than
``staging_older_than`` (the start time is part of their name), or all of them but a young check-mode
push for a caller holding the deploy lock; an entry of the staging area that is not a directory is
left and reported. Directories the history does not know are never touched. A release goes with the database backups taken before its migrations
(``.cutover/backups/<id>``). Nothing outside ``releases/``, ``.cutover/staging/`` and
``.cutover/backups/`` is ever removed, and no symlink is ever followed: a release is first renamed
into ``.cutover/trash/`` (so it vanishes from releases/ in one step) and then deleted; what could not be
deleted there is named in a warning and deleted by the next pruning.

What a module run puts in the trash is deleted before it returns, or, when the caller asks for it
(``delete_in_background``: :func:`deferring`), by a process detached from the run once it is done, as
``git gc --auto`` detaches: a big release costs its deletion to no deploy. That process holds an
exclusive flock(2) on the trash directory while it deletes; a run that defers waits for an earlier
one to finish first (so deletions never overlap a deploy's own work), and what a process that was
killed left in the trash is deleted by the next pruning that finds the trash not locked.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import stat
import time

from ansible_collections.cutover.web.plugins.module_utils._fs import DIR_FLAGS
from ansible_collections.cutover.web.plugins.module_utils._releases import CutoverError, fsync_dir


# A push made by a check-mode deploy, which holds no lock: <prefix><run>.<start epoch>.<pid>.<host>.
CHECK_PUSH_PREFIX = 'check-'


# The option of the modules whose run may defer its deletions (doc fragment _delete_in_background; read by
# _module.run through deferring).
DELETE_OPTION = dict(type='bool', default=False)

# How long a run that defers its deletions waits for an earlier run's deletion to end before it goes on beside it.
DELETION_WAIT = 300

# What to keep, as prune_releases takes it and go_live in its prune option.
PRUNE_OPTIONS = dict(
    keep=dict(type='int', default=5),
    protect=dict(type='list', elements='str', default=[]),
    failed_older_than=dict(type='int', default=86400),
)


def _inside(path, parent):
    return os.path.dirname(os.path.normpath(path)) == parent


def _check_removable(layout, path, parent):
    layout.check_state()
    if parent not in (layout.releases_dir, layout.staging_dir, layout.backups_dir) or not _inside(path, parent):
        raise CutoverError('Refusing to delete %s: cutover.web only deletes inside %s, %s and %s.'
                           % (path, layout.releases_dir, layout.staging_dir, layout.backups_dir), path=path)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise CutoverError('Refusing to delete %s: it is not a real directory.' % path, path=path)


def _to_trash(layout, path, parent, tag=''):
    """Rename ``path``, a real directory directly inside ``parent``, into the trash (refusing anything else);
    return its path there. From then on it is gone from ``parent``. ``tag`` tells apart two things of one name
    (a release and its backups) moved there in the same second."""
    _check_removable(layout, path, parent)
    try:
        os.mkdir(layout.trash_dir, 0o700)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise CutoverError('Cannot create %s: %s.' % (layout.trash_dir, exc.strerror), path=layout.trash_dir)
    trash = os.path.join(layout.trash_dir, '%s.%d.%d%s' % (os.path.basename(path), int(time.time()), os.getpid(), tag))
    os.rename(path, trash)
    fsync_dir(parent)
    return trash


def _delete(layout, trash, what, now=False):
    """Delete ``trash``, a tree in the trash that was ``what``, or, in a run that defers its deletions (and
    unless ``now``), leave it to the process started when the run is done (deferring). What cannot be deleted
    (an immutable file, a read-only mount) stays there, named in a warning: it is in no release any more, and
    the next pruning (empty_trash) tries again."""
    if layout.deferred is not None and not now:
        layout.deferred.append(trash)
        return
    failed = []

    def note(_func, path, exc_info):
        exc = exc_info[1]
        if not (isinstance(exc, OSError) and exc.errno == errno.ENOENT) and not failed:
            failed.append('%s: %s' % (path, getattr(exc, 'strerror', None) or exc))

    shutil.rmtree(trash, onerror=note)
    if failed:
        layout.warnings.append('Could not delete all of %s (which was %s): %s. It is in no release any more; the next '
                               'pruning tries again.' % (trash, what, failed[0]))


def remove_tree(layout, path, parent):
    """Remove ``path``, a real directory directly inside ``parent``; refuse anything else."""
    _delete(layout, _to_trash(layout, path, parent), path)


def _trash_fd(layout):
    """The trash directory opened for flock(2), or None when it cannot be (it is not there)."""
    try:
        return os.open(layout.trash_dir, DIR_FLAGS)
    except OSError:
        return None


def _lock_trash(layout):
    """The trash directory's fd holding its exclusive flock(2); None when a process deleting there holds it (or the
    trash cannot be opened)."""
    fd = _trash_fd(layout)
    if fd is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def trash_state(layout):
    """What is in the trash and whether a process is deleting there (its lock held), read only: the trash is not made
    when missing, and its lock, when free, is taken and given back at once."""
    fd = _trash_fd(layout)
    if fd is None:
        return {'entries': [], 'deleting': False}
    try:
        names = sorted(os.listdir(fd))
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            deleting = False
        except OSError:
            deleting = True
    finally:
        os.close(fd)
    return {'entries': names, 'deleting': deleting}


def wait_for_deletion(layout):
    """Wait (up to DELETION_WAIT seconds) for the process of an earlier run deleting in the trash to end; one still at
    it then is named in a warning, and the caller goes on beside it."""
    fd = _trash_fd(layout)
    if fd is None:
        return
    try:
        deadline = time.monotonic() + DELETION_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    return
            if time.monotonic() >= deadline:
                layout.warnings.append('A process of an earlier run was still deleting in %s after %d s; this run went '
                                       'on beside it.' % (layout.trash_dir, DELETION_WAIT))
                return
            time.sleep(0.02)
    finally:
        os.close(fd)


class deferring(object):
    """Context manager: the module run in it defers the deletion of what it puts in the trash to a process of its
    own, detached (no connection to the run's output, a session of its own), started when the block ends, also by
    an error. On entry it waits (up to DELETION_WAIT seconds) for such a process of an earlier run to end. With
    ``enabled`` false, or in check mode, it does nothing."""

    def __init__(self, layout, enabled, check_mode=False):
        self.layout = layout
        self.enabled = enabled and not check_mode
        self.paths = []  # what the process started at the end deletes

    def __enter__(self):
        if self.enabled:
            wait_for_deletion(self.layout)
            self.layout.deferred = []
        return self

    def __exit__(self, *exc_info):
        if self.enabled:
            self.paths, self.layout.deferred = self.layout.deferred, None
            if self.paths and not _delete_detached(self.layout, self.paths):
                self.paths = []
        return False


def _delete_detached(layout, paths):
    """Delete ``paths`` (trees directly in the trash) in a grandchild process in a session of its own, with
    /dev/null for its standard streams and no other file open: the module run returns at once, and its
    connection closes. It holds the trash's flock while it deletes (handed over from this process when the trash
    is not locked, else waited for there). Returns whether that process was started (else they were deleted here)."""
    paths = [p for p in paths if os.path.dirname(p) == layout.trash_dir]
    fd = _lock_trash(layout)
    try:
        pid = os.fork()
    except OSError:
        # No process to spare (EAGAIN, ENOMEM): deleted here, as without delete_in_background.
        if fd is not None:
            os.close(fd)
        for path in paths:
            _delete(layout, path, 'put there by this run', now=True)
        return False
    if pid:
        if fd is not None:
            os.close(fd)  # the grandchild holds the lock through its own copy of the descriptor
        os.waitpid(pid, 0)
        return True
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        null = os.open(os.devnull, os.O_RDWR)
        for std in (0, 1, 2):
            os.dup2(null, std)
        keep = fd if fd is not None else 2
        os.closerange(3, keep)
        os.closerange(keep + 1, os.sysconf('SC_OPEN_MAX'))
        os.chdir('/')
        os.nice(10)
        if fd is None:
            fd = _trash_fd(layout)
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
        for path in paths:
            shutil.rmtree(path, ignore_errors=True)
    finally:
        os._exit(0)


def empty_trash(layout, check_mode=False):
    """Delete what earlier runs left in the trash (a run killed while deleting, a file that could not be deleted then);
    return the names deleted. Only real directories are there (what _to_trash puts); anything else is left. A trash
    locked by the process of an earlier run deleting there is left to it, and so is what this run leaves to its own
    (deferring)."""
    try:
        mine = set(os.path.basename(p) for p in layout.deferred or ())
        names = sorted(name for name in os.listdir(layout.trash_dir) if name not in mine)
    except FileNotFoundError:
        return []
    if not names:
        return []
    fd = _lock_trash(layout)
    if fd is None:
        return []
    try:
        return _empty_trash(layout, names, check_mode)
    finally:
        os.close(fd)


def _empty_trash(layout, names, check_mode):
    gone = []
    for name in names:
        path = os.path.join(layout.trash_dir, name)
        try:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                continue
        except FileNotFoundError:
            continue
        if not check_mode:
            _delete(layout, path, 'left in the trash by an earlier run', now=True)
        if check_mode or not os.path.lexists(path):
            gone.append(name)
    return gone


def remove_release(layout, release_id, check_mode=False):
    """Remove one release (never the current one); return True when something was removed."""
    path = layout.release_path(release_id)
    layout.check_state()
    if not os.path.lexists(path):
        return False
    if layout.current_id() == release_id:
        raise CutoverError('Refusing to remove %s: it is the current release.' % path, path=path)
    if os.path.islink(path):
        raise CutoverError('%s is a symlink to %s; cutover.web never follows links in releases/.'
                           % (path, os.readlink(path)), path=path)
    backup = layout.backup_dir(release_id)
    if os.path.lexists(backup):
        _check_removable(layout, backup, layout.backups_dir)
    if check_mode:
        return True
    # Gone from releases/ by one rename, and recorded so, before its files are deleted: a file that cannot be
    # deleted leaves it in the trash, never half a release in releases/ or a history that still lists it.
    trash = _to_trash(layout, path, layout.releases_dir)
    try:
        os.unlink(layout.manifest_path(release_id))
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
    backup_trash = _to_trash(layout, backup, layout.backups_dir, tag='.b') if os.path.lexists(backup) else None
    layout.append_history('removed', release_id)
    _delete(layout, trash, path)
    if backup_trash:
        _delete(layout, backup_trash, backup)
    return True


def plan(layout, keep, protect=(), failed_older_than=86400, staging_older_than=3600, now=None):
    """What pruning would remove: (releases, staging names), each sorted, plus what is kept and why."""
    if keep < 1:
        raise CutoverError('keep is %d for %s, but at least 1 release must be kept.' % (keep, layout.root),
                           path=layout.root)
    now = time.time() if now is None else now
    releases = layout.releases()
    current = layout.current_id()
    rollback = layout.rollback_target(releases)
    kept = {}
    if current in releases:
        kept[current] = 'current'
    if rollback is not None:
        kept.setdefault(rollback.id, 'rollback target')
    for rid in protect or ():
        if rid in releases:
            kept.setdefault(rid, 'protected')
    for rel in releases.values():
        if rel.mark == 'unknown':
            kept.setdefault(rel.id, 'not made by cutover.web')
    newest = [r for r in layout.ordered(releases) if r.state in ('ready', 'active')][:keep]
    for rel in newest:
        kept.setdefault(rel.id, 'among the newest %d' % keep)

    remove = []
    for rel in layout.ordered(releases):
        if rel.id in kept:
            continue
        if rel.state in ('failed', 'bad'):
            if rel.marked is not None and now - rel.marked < failed_older_than:
                kept[rel.id] = '%s less than %ds ago' % (rel.state, failed_older_than)
                continue
        remove.append(rel.id)

    staging, _skipped = plan_staging(layout, staging_older_than, now=now)
    return sorted(remove), staging, kept


def plan_staging(layout, older_than=3600, everything=False, now=None):
    """Which staging leftovers go: (names to remove, {name: why it is left}), the names sorted.

    A leftover goes once it is older than ``older_than`` (the start time is part of its name). With
    ``everything`` (only for a caller holding the deploy lock, so no other deploy can be writing there),
    every leftover goes whatever its age, except a young check-mode push (CHECK_PUSH_PREFIX): check
    mode pushes without the lock. An entry that is not a real directory (a file, a symlink) is never
    removed: it is left where it is and reported.
    """
    now = time.time() if now is None else now
    layout.check_state()  # a symlinked staging area is refused there, with every other part of .cutover
    remove = []
    left = {}
    for name, started, path in layout.staging_entries():
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            continue  # gone meanwhile
        if not stat.S_ISDIR(mode):
            left[name] = 'a symlink' if stat.S_ISLNK(mode) else 'not a directory'
            continue
        old = started is not None and now - started >= older_than
        if old or (everything and not name.startswith(CHECK_PUSH_PREFIX)):
            remove.append(name)
    return sorted(remove), left


def clear_staging(layout, older_than=3600, everything=False, check_mode=False):
    """Remove the staging leftovers plan_staging names; return (names removed, {name: why it is left}).

    Each entry left in place is also named in one of ``layout.warnings``.
    """
    staging, left = plan_staging(layout, older_than, everything)
    if not check_mode:
        for name in staging:
            remove_tree(layout, os.path.join(layout.staging_dir, name), layout.staging_dir)
    for name, why in sorted(left.items()):
        layout.warnings.append('Left %s in place: it is %s, and pruning removes only directories from the staging area.'
                               % (os.path.join(layout.staging_dir, name), why))
    return staging, left


def prune(layout, keep, protect=(), failed_older_than=86400, staging_older_than=3600, check_mode=False,
          staging_all=False, releases=True):
    """Prune releases (unless ``releases`` is false) and staging leftovers (see clear_staging)."""
    if releases:
        removed, _staging, kept = plan(layout, keep, protect, failed_older_than, staging_older_than)
    else:
        removed, kept = [], {}
    trash = empty_trash(layout, check_mode=check_mode)
    for rid in removed:
        # In check mode this makes the same refusals a real run would, and removes nothing.
        remove_release(layout, rid, check_mode=check_mode)
    staging, left = clear_staging(layout, staging_older_than, staging_all, check_mode=check_mode)
    return {
        'changed': bool(removed or staging or trash),
        'removed': removed,
        'removed_trash': trash,
        'removed_staging': staging,
        'skipped_staging': left,
        'kept': sorted(kept),
        'kept_reasons': kept,
        'diff': {'before': '\n'.join(sorted(list(kept) + removed)) + '\n',
                 'after': '\n'.join(sorted(kept)) + '\n',
                 'before_header': layout.releases_dir, 'after_header': layout.releases_dir},
    }
