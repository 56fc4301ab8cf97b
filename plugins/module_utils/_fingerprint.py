# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The record of an apache_vhost set-up: the digest of its settings and of the state of what it manages, found by
probes (files, globs, greps, running processes) that are read again on every check. Written by
cutover.web.vhost_fingerprint (state=present); checked by it (state=check) and by cutover.web.deploy_lock and
cutover.web.go_live (vhost_record), so that a deploy learns in its first module run whether the set-up can be skipped."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import stat

FORMAT = 1

# The ``vhost_record`` option of the modules that check a record in their own run (deploy_lock, go_live).
RECORD_OPTION = dict(type='dict', options=dict(path=dict(type='path', required=True),
                                               settings=dict(type='dict', required=True)))


def digest(value):
    """The SHA-256 digest of a JSON-able value (its canonical JSON)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(',', ':')).encode('utf-8')).hexdigest()


def _file(path):
    """Type, mode and content digest (regular file), target (symlink), or absence of one path."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return ['absent']
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        return ['link', os.readlink(path)]
    if stat.S_ISREG(st.st_mode):
        h = hashlib.sha256()
        with open(path, 'rb') as f:
            for chunk in iter(lambda: f.read(1 << 20), b''):
                h.update(chunk)
        return ['file', mode, st.st_uid, st.st_gid, h.hexdigest()]
    return ['other', stat.S_IFMT(st.st_mode), mode, st.st_uid, st.st_gid]


def _glob(pattern):
    return [[p, os.readlink(p) if os.path.islink(p) else None] for p in sorted(glob.glob(pattern))]


def _grep(path, regexp):
    rx = re.compile(regexp.encode('utf-8'), re.MULTILINE)
    if os.path.isfile(path):
        candidates = [path]
    else:
        candidates = (os.path.join(d, n) for d, dummy, names in os.walk(path) for n in sorted(names))
    for name in candidates:
        try:
            with open(name, 'rb') as f:
                if rx.search(f.read()):
                    return True
        except OSError:
            continue  # as grep -s: a dangling link or an unreadable file is not a match
    return False


def _running(patterns):
    names = []
    for pid in os.listdir('/proc'):
        if pid.isdigit():
            try:
                with open('/proc/%s/comm' % pid) as f:
                    names.append(f.read().strip())
            except OSError:
                continue  # the process ended meanwhile
    return [any(re.search(p, n) for n in names) for p in patterns]


def host_state(probes):
    """What the probes find now, as one JSON-able value."""
    return {
        'files': [[p, _file(p)] for p in probes['files']],
        'globs': [[p, _glob(p)] for p in probes['globs']],
        'greps': [[g['path'], g['regexp'], _grep(g['path'], g['regexp'])] for g in probes['greps']],
        'processes': [[p, r] for p, r in zip(probes['processes'], _running(probes['processes']))],
    }


def read_record(path):
    """The record at ``path``, or None when there is none or it is not one this version wrote."""
    try:
        with open(path) as f:
            record = json.load(f)
    except FileNotFoundError:
        return None
    except ValueError:
        return None  # a damaged record is no record: the role sets the site up again and rewrites it
    return record if isinstance(record, dict) and record.get('format') == FORMAT else None


def check_record(path, settings):
    """Whether the record at ``path`` was made with ``settings`` (a JSON-able value) and the state its probes find
    now is the one recorded: unchanged, the values it remembers, and the digest found (None without a record)."""
    settings_digest = digest(settings)
    record = read_record(path)
    if record is None:
        return dict(unchanged=False, remembered={}, fingerprint=None)
    try:
        found = digest([settings_digest, host_state(record['probes'])])
    except (KeyError, TypeError, re.error):
        return dict(unchanged=False, remembered={}, fingerprint=None)
    return dict(unchanged=found == record.get('fingerprint'), remembered=record.get('remember') or {}, fingerprint=found)
