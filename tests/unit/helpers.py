# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Helpers for the module_utils unit tests: real trees, snapshots of a root, releases made the real way."""

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible.module_utils import basic

from ansible_collections.cutover.web.plugins.module_utils._build import make_release
from ansible_collections.cutover.web.plugins.module_utils._sources import open_source


def write_tree(base, files):
    """Create ``files`` under ``base``: {relpath: bytes|str} for files, {relpath: ('link', text)} for
    symlinks, {relpath: None} for an empty directory. Returns ``base`` as a str."""
    base = str(base)
    os.makedirs(base, exist_ok=True)
    for rel, content in sorted(files.items()):
        path = os.path.join(base, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if content is None:
            os.makedirs(path, exist_ok=True)
        elif isinstance(content, tuple):
            os.symlink(content[1], path)
        else:
            with open(path, 'wb') as f:
                f.write(content.encode('utf-8') if isinstance(content, str) else content)
    return base


def snapshot(path):
    """Everything under ``path`` as {relpath: (kind, mode, inode, content or link text, mtime_ns)}.

    Two equal snapshots mean nothing was created, removed, rewritten, relinked or retouched.
    """
    path = str(path)
    result = {}
    if not os.path.lexists(path):
        return result
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, path)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                result[rel] = ('l', None, st.st_ino, os.readlink(full), None)
            elif stat.S_ISDIR(st.st_mode):
                result[rel] = ('d', stat.S_IMODE(st.st_mode), st.st_ino, None, None)
            else:
                with open(full, 'rb') as f:
                    data = f.read()
                result[rel] = ('f', stat.S_IMODE(st.st_mode), st.st_ino, data, st.st_mtime_ns)
    return result


def read(path):
    with open(str(path), 'rb') as f:
        return f.read()


def new_release(layout, src_dir, files, release_id=None, **kwargs):
    """Write ``files`` into a fresh ``src_dir`` and make a release of it (no syncfs, to stay fast)."""
    write_tree(src_dir, files)
    kwargs.setdefault('sync', False)
    return make_release(layout, open_source(str(src_dir)), release_id, **kwargs)


def mark(layout, release_id, state):
    """Record a release as failed/bad the way the release_dir module does."""
    return layout.mark(release_id, state)


def crash_after_first_record(layout, operation):
    """Run ``operation(layout)`` in a child process that is killed as soon as its first history record is
    on disk: the crash a journal must survive (for a switch, between the record and the rename)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child never returns)
        try:
            append = layout.append_history

            def append_then_die(*args, **kwargs):
                append(*args, **kwargs)
                os._exit(9)

            layout.append_history = append_then_die
            operation(layout)
        finally:
            os._exit(0)
    status = os.waitpid(pid, 0)[1]
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 9, 'the operation wrote no history record'


def run_module(module, args, capsys, check_mode=False):
    """Run ``module`` (a module of this collection, imported) as Ansible runs it: its main() reads ``args`` through
    AnsibleModule (in check mode with ``check_mode``, always in diff mode) and exits with the JSON it prints.
    Returns that result, with ``rc`` (0, or 1 for fail_json) and ``said`` (its warnings, as text)."""
    args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=True)
    try:
        from ansible.module_utils.testing import patch_module_args  # ansible-core 2.19 and later
    except ImportError:
        patch_module_args = None
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        if patch_module_args is not None:
            with patch_module_args(args):
                module.main()
        else:
            saved = getattr(basic, '_ANSIBLE_ARGS', None)
            basic._ANSIBLE_ARGS = json.dumps({'ANSIBLE_MODULE_ARGS': args}).encode('utf-8')
            try:
                module.main()
            finally:
                basic._ANSIBLE_ARGS = saved
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    result['rc'] = exited.value.code or 0
    # Where ansible-core counts this process as the controller (a test that imported controller code), module
    # warnings are displayed on stderr instead of returned: said() finds them in either.
    result['said'] = '%s\n%s' % (result.get('warnings', ''), captured.err)
    return result


def deploy(root, tmp_path, capsys, releases, live=True):
    """Make each release of ``releases`` ({id: {relpath: content}}, in order) through the release_dir module and,
    with ``live``, switch ``current`` to it through atomic_symlink, as a deploy does. Returns ``root``."""
    from ansible_collections.cutover.web.plugins.modules import atomic_symlink, release_dir
    for rid, files in releases.items():
        src = write_tree(tmp_path / ('src-' + rid), files)
        assert run_module(release_dir, dict(root=root, src=src, id=rid, sync=False), capsys)['changed'] is True
        if live:
            assert run_module(atomic_symlink, dict(root=root, release=rid), capsys)['changed'] is True
    return root


def point_site(root, apache, name, release):
    """The release pointer of the site ``name``, in the apache fixture's conf directory, made to serve
    ``<root>/releases/<release>/public``, as a deploy leaves it; returns its path."""
    from ansible_collections.cutover.web.plugins.module_utils._vhost import pointer_text
    path = os.path.join(os.path.dirname(apache[1]), '%s-release.conf' % name)
    with open(path, 'w') as f:
        f.write(pointer_text(path, os.path.join(root, 'releases', release), os.path.join(root, 'releases', release, 'public')))
    return path


def record_site(records, name, **remember):
    """The record of the set-up of the site ``name`` in ``records`` (the apaches fixture's), remembering ``remember``."""
    with open(os.path.join(str(records), '%s.json' % name), 'w') as f:
        json.dump(dict(format=1, remember=remember), f)
