# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fixtures for the module_utils unit tests: a deploy root with an awkward name, and real mounts."""

from __future__ import annotations

import http.server
import os
import re
import subprocess
import threading

import pytest


@pytest.fixture
def root(tmp_path):
    """A deploy root whose path has a space and non-ASCII characters (not created yet)."""
    return str(tmp_path / 'sïte root')


@pytest.fixture
def layout(root):
    # Imported here, not at module level: this conftest loads before pytest-ansible installs the
    # collection loader, and an early import would bypass it for every later ansible_collections import.
    from ansible_collections.cutover.web.plugins.module_utils._releases import Layout
    return Layout(root)


@pytest.fixture
def mount(tmp_path):
    """mount(target, 'tmpfs', size='1m') or mount(target, 'bind', source=dir): a real mount, undone at the end.

    Skips the test when not root or when the kernel refuses the mount (e.g. in an unprivileged container).
    """
    mounted = []

    def _mount(target, kind='tmpfs', size='8m', source=None):
        if os.geteuid() != 0:
            pytest.skip('mounting needs root')
        target = str(target)
        os.makedirs(target, exist_ok=True)
        if kind == 'tmpfs':
            cmd = ['mount', '-t', 'tmpfs', '-o', 'size=%s' % size, 'tmpfs', target]
        else:
            cmd = ['mount', '--bind', str(source or target), target]
        try:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        except OSError as exc:
            pytest.skip('cannot run mount: %s' % exc)
        if proc.returncode != 0:
            pytest.skip('mount refused: %s' % proc.stderr.decode('utf-8', 'replace').strip())
        mounted.append(target)
        return target

    yield _mount
    for target in reversed(mounted):
        if subprocess.run(['umount', target], check=False).returncode != 0:
            subprocess.run(['umount', '-l', target], check=False)


@pytest.fixture
def apache(tmp_path):
    """A stand-in for Apache behind a site's release pointer, as (port, pointer path): a server whose
    X-Cutover-Release header is the release the pointer file names, as Apache's is once it includes it."""
    pointer = str(tmp_path / 'conf' / 'shop-release.conf')
    os.makedirs(os.path.dirname(pointer))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(200)
            try:
                with open(pointer) as f:
                    found = re.search(r'X-Cutover-Release "([^"]+)"', f.read())
            except FileNotFoundError:
                found = None
            if found:
                self.send_header('X-Cutover-Release', found.group(1))
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], pointer
    server.shutdown()
    server.server_close()


@pytest.fixture
def apaches(apache, tmp_path, monkeypatch):
    """The apache fixture's pointer directory as the one place the apache_vhost role keeps its sites' pointers, with
    the check and restart commands of that Apache (``true``), its vhost files in sites/ and the records of the
    role's set-ups in records/; returns those two directories."""
    from ansible_collections.cutover.web.plugins.module_utils import _vhost
    sites, records = tmp_path / 'sites', tmp_path / 'records'
    sites.mkdir()
    records.mkdir()
    monkeypatch.setattr(_vhost, 'APACHES', (dict(pointers=os.path.dirname(apache[1]), validate='true', restart=['true'],
                                                 sites=str(sites)),))
    monkeypatch.setattr(_vhost, 'RECORDS', str(records))
    return sites, records
