# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The release model: where things live under a deploy root, and what state each release is in.

On-host layout (the contract every other part relies on)::

    <root>/
      releases/<id>/        finished, immutable release trees
      shared/               persistent data linked into releases
      current -> releases/<id>
      .cutover/
        history.jsonl       append-only journal: the only record of state and order
        manifests/<id>.json per-release file manifest (used to hardlink unchanged files)
        staging/            releases being built
        trash/              releases being removed
        repos/              bare git mirrors
        deploy.lock         the deploy lock
      maintenance.html      the maintenance page, present only while the window is on (Apache answers
                            503 with it: the file is the flag, so it lives outside the private .cutover/)

State and order come from the journal only, never from mtime or ctime. Each journal line
is one JSON object with a monotonically increasing ``seq``.

Nothing under ``.cutover/`` is a symlink: the state directory, each part named above and each
``backups/<id>`` must be real, and so must ``maintenance.html`` (checked with lstat, files opened with O_NOFOLLOW), else every
operation refuses before changing anything (:meth:`Layout.check_state`). The root itself is never ``/``.

The journal's crash rules (what makes it unable to lie after a crash or a failed rename):

- One record per change. A switch of ``current`` is one ``activated`` record naming the release it
  puts live (none for a target that is not a release), the release it leaves (``previous``), the link
  text (``link``) and, for a rollback, the state given to the release left (``mark_previous``).
- Write-ahead: a record is appended and fsync'd *before* the change it records. ``created`` is
  appended before the finished tree is renamed from staging into releases/; a ``created`` whose
  directory does not exist is no release. ``activated`` is appended before the rename(2) of the link,
  and the link is the commit: an activation counts (and with it its ``mark_previous``) only when it
  is confirmed, that is when the next activation names its release as ``previous``, or when it is the
  last activation and ``current`` points at its release. An unconfirmed one (a crash between the
  append and the rename, or a rename that failed) is ignored.
- A line is complete when it ends with a newline. An incomplete last line is a record whose write
  never completed, so its change never happened: it is left out (with a warning), and the next
  append cuts the file back to the last complete line, under an flock of the journal. An incomplete
  or unparsable line that is not the last one is corruption: every reader refuses, naming the file
  and the line number.
- Histories written before these rules are read as they are: ``activated`` records without ``link``
  were written after the rename and always count, and separate ``marked`` records still mark.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import socket
import stat
import time

MARKABLE = ('ready', 'failed', 'bad')
# Every name made from a release id must fit the 255 bytes a filename may have (NAME_MAX). The longest
# is a staging leftover moved to the trash by pruning, '<id>.<epoch>.<pid>.<host>' + '.<epoch>.<pid>':
# epochs have 10 digits (until 2286), pids at most 7 (Linux caps pid_max at 4194304) and staging names
# keep at most HOST_IN_NAMES bytes of the host name, so that name is the id plus 71 bytes; the manifest
# '<id>.json.tmp' is the id plus 9, a backup directory the id itself. 180 leaves some room.
NAME_MAX = 255
HOST_IN_NAMES = 32
LONGEST_ID_SUFFIX = 2 * len('.%d.%d' % (10 ** 9, 10 ** 6)) + len('.') + HOST_IN_NAMES
MAX_ID_LENGTH = 180


class CutoverError(Exception):
    """A refusal or failure to report to the user: one sentence naming the path and the cause."""

    def __init__(self, msg, path=None, **details):
        super(CutoverError, self).__init__(msg)
        self.msg = msg
        self.path = path
        self.details = details


def link_refused(path):
    """The refusal of a symlink where cutover.web keeps its own files."""
    return CutoverError('%s is a symlink; cutover.web never follows links inside the root.' % path, path=path)


def iso(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


# The UTC time a derived release id starts with (20261122T101500Z): what stamp() writes and validate_stamp() reads.
STAMP_FORMAT = '%Y%m%dT%H%M%SZ'


def stamp(now=None):
    """A compact UTC timestamp for names: 20261122T101500Z."""
    return time.strftime(STAMP_FORMAT, time.gmtime(time.time() if now is None else now))


def validate_stamp(value):
    """Raise CutoverError unless ``value`` is a UTC stamp such as 20261122T101500Z."""
    try:
        time.strptime(value or '', STAMP_FORMAT)
    except ValueError:
        raise CutoverError('The stamp %r is not a UTC time written like 20261122T101500Z.' % (value,))
    return value


def fsync_dir(path):
    """Make a rename or unlink in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def validate_release_id(release_id):
    """Raise CutoverError unless ``release_id`` is usable as a single directory name."""
    if release_id is None or release_id == '':
        raise CutoverError('The release id is empty; give a non-empty name such as 2026-11-22T10-00-00Z.')
    reason = None
    if '/' in release_id:
        reason = "it contains '/'"
    elif '..' in release_id:
        reason = "it contains '..'"
    elif release_id.startswith('.'):
        reason = "it starts with '.'"
    elif release_id.startswith('-'):
        reason = "it starts with '-'"
    elif any(ord(c) < 32 or ord(c) == 127 for c in release_id):
        reason = 'it contains a control character'
    elif len(release_id.encode('utf-8', 'surrogateescape')) > MAX_ID_LENGTH:
        reason = 'it is longer than %d bytes' % MAX_ID_LENGTH
    if reason:
        raise CutoverError('The release id %r is not usable because %s.' % (release_id, reason))
    return release_id


class Release(object):
    """One release as the journal and the disk know it."""

    def __init__(self, release_id):
        self.id = release_id
        self.mark = 'ready'
        self.created_seq = None
        self.created = None
        self.activated_seq = None
        self.activated = None
        self.fingerprint = None
        self.revision = None
        self.source = None
        self.marked = None
        self.schema = None

    @property
    def order(self):
        """Deploy order: the sequence number of the last activation, else of the creation."""
        if self.activated_seq is not None:
            return self.activated_seq
        return self.created_seq if self.created_seq is not None else 0


class Layout(object):
    """Paths and the journal of one deploy root."""

    def __init__(self, root):
        if not root or not os.path.isabs(root):
            raise CutoverError('The root %r is not an absolute path; give the full path of the deploy root, '
                               'for example /srv/www/shop.' % (root,), path=root)
        self.root = os.path.normpath(root)
        if self.root.strip('/') == '' or os.path.realpath(self.root) == '/':
            raise CutoverError('The root %s is the filesystem root /, which cannot be a deploy root; give a directory '
                               'of its own, for example /srv/www/shop.' % root, path=root)
        self.releases_dir = os.path.join(self.root, 'releases')
        self.shared_dir = os.path.join(self.root, 'shared')
        self.current_link = os.path.join(self.root, 'current')
        self.state_dir = os.path.join(self.root, '.cutover')
        self.history_file = os.path.join(self.state_dir, 'history.jsonl')
        self.manifests_dir = os.path.join(self.state_dir, 'manifests')
        self.staging_dir = os.path.join(self.state_dir, 'staging')
        self.trash_dir = os.path.join(self.state_dir, 'trash')
        self.repos_dir = os.path.join(self.state_dir, 'repos')
        self.backups_dir = os.path.join(self.state_dir, 'backups')
        self.lock_file = os.path.join(self.state_dir, 'deploy.lock')
        # The vhost of the apache_vhost role tests for this file on every request (templates/vhost.conf.j2).
        self.maintenance_page = os.path.join(self.root, 'maintenance.html')
        self.warnings = []
        # Trees put in the trash that a process started at the end of the module run deletes (_prune.deferring),
        # or None: they are deleted at once.
        self.deferred = None

    # -- paths ---------------------------------------------------------------------------
    def backup_dir(self, release_id):
        """Where the database backups taken before a release's migrations are kept (pruned with it)."""
        return os.path.join(self.backups_dir, release_id)

    def release_path(self, release_id):
        return os.path.join(self.releases_dir, validate_release_id(release_id))

    def manifest_path(self, release_id):
        return os.path.join(self.manifests_dir, validate_release_id(release_id) + '.json')

    def require_root(self):
        if os.path.islink(self.root) or not os.path.isdir(self.root):
            if os.path.lexists(self.root) and not os.path.isdir(self.root):
                raise CutoverError('The root %s is not a directory.' % self.root, path=self.root)
            if not os.path.lexists(self.root):
                raise CutoverError('The root %s does not exist.' % self.root, path=self.root)
        self.check_state()

    def make_root(self, mode, check_mode=False):
        """Make the root with ``mode`` (an int), or give an existing one that mode; return whether anything changed.

        A root that is a file, or a link to nothing, is refused as require_root() refuses it; a symlink to a
        directory is left alone (its mode is the target's business)."""
        root = self.root
        if not os.path.lexists(root):
            if not check_mode:
                try:
                    os.makedirs(root, mode)
                    os.chmod(root, mode)  # makedirs is subject to the umask
                except OSError as exc:
                    raise CutoverError('Cannot create the root %s: %s.' % (root, exc.strerror), path=root)
            return True
        self.require_root()
        if os.path.islink(root) or stat.S_IMODE(os.stat(root).st_mode) == mode:
            return False
        if not check_mode:
            try:
                os.chmod(root, mode)
            except OSError as exc:
                raise CutoverError('Cannot give the root %s the mode %04o: %s.' % (root, mode, exc.strerror), path=root)
        return True

    def check_state(self):
        """Refuse a state directory, or a part of it, that is a symlink or not of its kind.

        The one rule every reader and writer of ``.cutover/`` goes by: the state directory, history.jsonl,
        manifests/, staging/, trash/, backups/ and each backups/<id>, repos/ and deploy.lock are real
        (lstat, never followed), so nothing cutover.web writes or deletes there can land outside the root;
        so is the maintenance page beside it (<root>/maintenance.html), which Apache serves.
        Missing parts are fine (they are made when needed).
        """
        self._check_part(self.maintenance_page, stat.S_ISREG)
        if not self._check_part(self.state_dir, stat.S_ISDIR):
            return
        for path, is_kind in ((self.history_file, stat.S_ISREG), (self.lock_file, stat.S_ISREG),
                              (self.manifests_dir, stat.S_ISDIR), (self.staging_dir, stat.S_ISDIR),
                              (self.trash_dir, stat.S_ISDIR), (self.repos_dir, stat.S_ISDIR)):
            self._check_part(path, is_kind)
        if self._check_part(self.backups_dir, stat.S_ISDIR):
            for name in sorted(os.listdir(self.backups_dir)):
                path = os.path.join(self.backups_dir, name)
                if os.path.islink(path):
                    raise link_refused(path)

    @staticmethod
    def _check_part(path, is_kind):
        """Whether ``path`` exists; refuses a symlink, or a thing that is not what ``is_kind`` accepts."""
        try:
            st = os.lstat(path)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return False
            raise CutoverError('Cannot look at %s: %s.' % (path, exc.strerror), path=path)
        if stat.S_ISLNK(st.st_mode):
            raise link_refused(path)
        if not is_kind(st.st_mode):
            kind = 'directory' if is_kind is stat.S_ISDIR else 'regular file'
            raise CutoverError('%s exists and is not a %s.' % (path, kind), path=path)
        return True

    def ensure_dirs(self):
        """Create the root skeleton (used only when acting, never in check mode)."""
        self.check_state()
        for path in (self.root, self.releases_dir, self.state_dir, self.manifests_dir, self.staging_dir):
            if os.path.islink(path):
                raise link_refused(path)
            try:
                os.mkdir(path, 0o755 if path != self.state_dir else 0o700)
            except OSError as exc:
                if exc.errno != errno.EEXIST:
                    raise CutoverError('Cannot create %s: %s.' % (path, exc.strerror), path=path)
                if not os.path.isdir(path):
                    raise CutoverError('%s exists and is not a directory.' % path, path=path)

    # -- the journal ---------------------------------------------------------------------
    def _open_history(self, flags):
        self.check_state()
        try:
            return os.open(self.history_file, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise link_refused(self.history_file)
            if exc.errno == errno.ENOENT:
                raise
            raise CutoverError('Cannot open the history %s: %s.' % (self.history_file, exc.strerror),
                               path=self.history_file)

    def _parse_history(self, data):
        """The complete records in ``data`` and the length of the complete part.

        A last line without its newline is a record whose write never completed: it is left out, with a
        warning. A line before it that is not a JSON record is corruption, and refused.
        """
        complete = data.rfind(b'\n') + 1
        if complete < len(data):
            warning = ('The last line of the history %s is a record whose write never completed (a run stopped '
                       'while writing it, before making its change), so it was left out; the next change to '
                       'the history removes it.' % self.history_file)
            if warning not in self.warnings:
                self.warnings.append(warning)
        entries = []
        for number, line in enumerate(data[:complete].split(b'\n')[:-1], 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line.decode('utf-8', 'surrogateescape'))
            except ValueError:
                entry = None
            if not isinstance(entry, dict) or not isinstance(entry.get('seq'), int) \
                    or not isinstance(entry.get('event'), str):
                raise CutoverError('The history %s is corrupt at line %d (it is not a complete record), so the '
                                   'state of the releases cannot be trusted; repair or remove that line.'
                                   % (self.history_file, number), path=self.history_file, line=number)
            entries.append(entry)
        return entries, complete

    @staticmethod
    def _read_fd(fd):
        chunks = []
        offset = 0
        while True:
            chunk = os.pread(fd, 1 << 20, offset)
            if not chunk:
                return b''.join(chunks)
            chunks.append(chunk)
            offset += len(chunk)

    def read_history(self):
        """All complete journal entries, oldest first (see the crash rules at the top of this file)."""
        try:
            fd = self._open_history(os.O_RDONLY)
        except OSError:
            return []
        try:
            data = self._read_fd(fd)
        except OSError as exc:
            raise CutoverError('Cannot read the history %s: %s.' % (self.history_file, exc.strerror),
                               path=self.history_file)
        finally:
            os.close(fd)
        return self._parse_history(data)[0]

    def append_history(self, event, release=None, **fields):
        """Append one event to the journal (flock, O_APPEND, one write, fsync) and return it.

        An incomplete last line (a crash mid-write) is cut off first, so the event starts where the last
        complete record ends.
        """
        fd = self._open_history(os.O_RDWR | os.O_APPEND | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            entries, complete = self._parse_history(self._read_fd(fd))
            seq = max([e['seq'] for e in entries] or [0]) + 1
            now = time.time()
            entry = {'seq': seq, 'time': iso(now), 'epoch': round(now, 3), 'event': event}
            if release is not None:
                entry['release'] = release
            entry.update(fields)
            line = (json.dumps(entry, sort_keys=True) + '\n').encode('utf-8', 'surrogateescape')
            if os.fstat(fd).st_size > complete:
                os.ftruncate(fd, complete)
            try:
                while line:
                    line = line[os.write(fd, line):]
                os.fsync(fd)
            except OSError:
                # Leave no part of a record that is not going to be acted on.
                os.ftruncate(fd, complete)
                raise
        except OSError as exc:
            raise CutoverError('Cannot write the history %s: %s.' % (self.history_file, exc.strerror),
                               path=self.history_file)
        finally:
            os.close(fd)
        return entry

    # -- the model -----------------------------------------------------------------------
    def current_id(self):
        """The release id ``current`` points at, or None. Raises on a link that points elsewhere."""
        try:
            target = os.readlink(self.current_link)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.EINVAL):
                return None
            raise
        resolved = os.path.normpath(os.path.join(os.path.dirname(self.current_link), target))
        if os.path.dirname(resolved) != self.releases_dir:
            return None
        return os.path.basename(resolved)

    def releases(self):
        """Every release directory under releases/, as Release objects keyed by id.

        Directories the journal does not know get the state ``unknown``: cutover.web never treats
        an arbitrary directory as one of its releases. A symlink in releases/ is refused.
        """
        found = {}
        try:
            names = sorted(os.listdir(self.releases_dir))
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                names = []
            else:
                raise CutoverError('Cannot list %s: %s.' % (self.releases_dir, exc.strerror),
                                   path=self.releases_dir)
        for name in names:
            path = os.path.join(self.releases_dir, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                raise CutoverError('%s is a symlink to %s; releases must be real directories and cutover.web '
                                   'never follows links in releases/, so remove or replace it.'
                                   % (path, os.readlink(path)), path=path)
            if stat.S_ISDIR(st.st_mode):
                found[name] = None

        known = {}
        current = self.current_id()
        entries = self.read_history()
        unconfirmed = self._unconfirmed_activations(entries, current)
        for entry in entries:
            if entry['seq'] in unconfirmed:
                continue
            event = entry.get('event')
            if event == 'activated' and entry.get('mark_previous') in MARKABLE:
                left = known.get(entry.get('previous'))
                if left is not None:
                    left.mark = entry['mark_previous']
                    left.marked = entry.get('epoch')
            rid = entry.get('release')
            if rid is None:
                continue
            rel = known.get(rid)
            if event == 'created':
                rel = Release(rid)
                rel.created_seq = entry['seq']
                rel.created = entry.get('time')
                rel.fingerprint = entry.get('fingerprint')
                rel.revision = entry.get('revision')
                rel.source = entry.get('source')
                rel.schema = entry.get('schema')
                known[rid] = rel
            elif rel is None:
                continue
            elif event == 'activated':
                rel.activated_seq = entry['seq']
                rel.activated = entry.get('time')
            elif event == 'marked':
                rel.mark = entry.get('state', rel.mark)
                rel.marked = entry.get('epoch')
            elif event == 'schema':
                rel.schema = entry.get('version')
            elif event == 'removed':
                known.pop(rid, None)

        result = {}
        for name in found:
            rel = known.get(name)
            if rel is None:
                rel = Release(name)
                rel.mark = 'unknown'
            result[name] = rel
        for rel in result.values():
            rel.state = 'active' if rel.id == current and rel.mark != 'unknown' else rel.mark
            if rel.id == current and rel.mark == 'unknown':
                rel.state = 'unknown'
        return result

    @staticmethod
    def _unconfirmed_activations(entries, current):
        """The seqs of activations written ahead of a link rename that never happened.

        Every switch of ``current`` records, before its rename, the release ``current`` pointed at
        (``previous``). So an activation happened exactly when the next activation names its release as
        ``previous``, or, for the last activation, when ``current`` points at its release. Records without
        ``link`` were written after the rename by older versions, and always happened.
        """
        activations = [e for e in entries if e.get('event') == 'activated']
        unconfirmed = set()
        for i, entry in enumerate(activations):
            if 'link' not in entry:
                continue
            after = activations[i + 1].get('previous') if i + 1 < len(activations) else current
            if after != entry.get('release'):
                unconfirmed.add(entry['seq'])
        return unconfirmed

    def ordered(self, releases=None):
        """Known releases, newest deploy order first."""
        releases = self.releases() if releases is None else releases
        return sorted((r for r in releases.values() if r.mark != 'unknown'), key=lambda r: -r.order)

    def rollback_target(self, releases=None):
        """The release that was live before the current one and can serve again, or None."""
        releases = self.releases() if releases is None else releases
        current = self.current_id()
        candidates = [r for r in releases.values()
                      if r.id != current and r.activated_seq is not None and r.mark == 'ready']
        if not candidates:
            return None
        return max(candidates, key=lambda r: r.activated_seq)

    def staging_entries(self):
        """(name, started epoch or None, path) for every leftover in the staging area."""
        result = []
        try:
            names = sorted(os.listdir(self.staging_dir))
        except OSError:
            return result
        for name in names:
            result.append((name, staging_started(name), os.path.join(self.staging_dir, name)))
        return result

    def describe(self, rel, current, rollback):
        return {
            'id': rel.id,
            'path': os.path.join(self.releases_dir, rel.id),
            'state': rel.state,
            'order': rel.order if rel.mark != 'unknown' else None,
            'created': rel.created,
            'activated': rel.activated,
            'fingerprint': rel.fingerprint,
            'revision': rel.revision,
            'source': rel.source,
            'current': rel.id == current,
            'rollback_target': rel.id == rollback,
            'schema_version': rel.schema,
        }

    def check_schema_version(self, release_id, version):
        """Refuse a schema version that is not a non-empty, one-line string (release_id None: a new release)."""
        if not isinstance(version, str) or not version.strip() or '\n' in version:
            where = self.release_path(release_id) if release_id else self.releases_dir
            raise CutoverError('The schema version %r for %s is not usable: give a non-empty, one-line string.'
                               % (version, where), path=where)

    def known(self, release_id, action, releases=None):
        """The release ``release_id`` as the history knows it (or ``releases``, read already); refused when it does
        not exist or cutover.web did not make it (``action``: what cannot be done to it, for the sentence)."""
        rel = (self.releases() if releases is None else releases).get(release_id)
        if rel is None or rel.mark == 'unknown':
            path = self.release_path(release_id)
            raise CutoverError('The release %s does not exist (or was not made by cutover.web), so %s.'
                               % (path, action), path=path)
        return rel

    def mark(self, release_id, state, check_mode=False):
        """Record that the release ``release_id`` is ``state`` (failed or bad: it can no longer go live); return
        the Release as it was, and whether anything changed."""
        rel = self.known(release_id, 'it cannot be marked %s' % state)
        changed = rel.mark != state
        if changed and not check_mode:
            self.append_history('marked', rel.id, state=state, previous=rel.mark)
        return rel, changed

    def record_schema(self, release_id, version, check_mode=False, to_be_made=False):
        """Record the database schema version ``release_id`` expects; return whether it changed.

        ``to_be_made``: in check mode, ``release_id`` is the release a real run would make, which would then get
        the version (the version itself is checked all the same)."""
        self.check_schema_version(release_id, version)
        if check_mode and to_be_made:
            return True
        rel = self.known(release_id, 'its schema version cannot be recorded')
        if rel.schema == version:
            return False
        if not check_mode:
            self.append_history('schema', release_id, version=version, previous=rel.schema)
        return True


def staging_name(release_id, now=None, pid=None, host=None):
    """Staging directory name: the start time is part of the name, so age never comes from mtime.

    ``<id>.<epoch>.<pid>.<host>``, where the host is the first label of this host's name (``host``
    when given), cut to HOST_IN_NAMES bytes so the name fits NAME_MAX for any valid id."""
    now = time.time() if now is None else now
    pid = os.getpid() if pid is None else pid
    host = (socket.gethostname() if host is None else host).split('.')[0]
    host = host.encode('utf-8', 'surrogateescape')[:HOST_IN_NAMES].decode('utf-8', 'ignore')
    return '%s.%d.%d.%s' % (release_id, int(now), pid, host)


def staging_started(name):
    parts = name.rsplit('.', 3)
    if len(parts) == 4:
        try:
            return int(parts[1])
        except ValueError:
            return None
    return None
