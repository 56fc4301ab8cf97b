# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The OPcache reset, against a real PHP-FPM master of the test's own on a private socket."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import time

import pytest

from ansible_collections.cutover.web.plugins.module_utils import _fastcgi
from ansible_collections.cutover.web.plugins.module_utils._opcache import reset_opcache
from ansible_collections.cutover.web.plugins.module_utils._releases import CutoverError

FPM = sorted(glob.glob('/usr/sbin/php-fpm*'))


@pytest.fixture
def fpm(tmp_path):
    """Start php-fpm (its own master, pid file and socket; workers as root with -R); stop it at the end."""
    if not FPM:
        pytest.skip('php-fpm is not installed')
    if os.geteuid() != 0:
        pytest.skip('the pool runs as root (-R) so that it can read pytest tmp_path')
    started = []

    def _start(*ini):
        d = tmp_path / ('fpm%d' % len(started))
        d.mkdir()
        conf = d / 'fpm.conf'
        conf.write_text('[global]\npid = {d}/fpm.pid\nerror_log = {d}/error.log\ndaemonize = yes\n'
                        '[test]\nuser = root\ngroup = root\nlisten = {d}/fpm.sock\n'
                        'pm = static\npm.max_children = 2\n'.format(d=d))
        args = [FPM[-1], '-R', '-y', str(conf)]
        for value in ini:
            args += ['-d', value]
        subprocess.run(args, check=True)
        pid = int((d / 'fpm.pid').read_text())
        started.append(pid)
        for dummy_i in range(100):
            if (d / 'fpm.sock').exists():
                break
            time.sleep(0.05)
        return str(d / 'fpm.sock')

    yield _start
    for pid in started:
        os.kill(pid, signal.SIGTERM)
        for dummy_i in range(100):
            try:
                os.kill(pid, 0)
            except OSError:
                break
            time.sleep(0.05)


def make_release(layout, rid, files=3):
    """releases/<rid> with a page including ``files`` scripts."""
    path = layout.release_path(rid)
    os.makedirs(os.path.join(path, 'public', 'inc'))
    with open(os.path.join(path, 'public', 'index.php'), 'w') as f:
        f.write("<?php\nforeach (glob(__DIR__ . '/inc/*.php') as $inc) { require $inc; }\necho '%s';\n" % rid)
    for i in range(files):
        with open(os.path.join(path, 'public', 'inc', 'f%d.php' % i), 'w') as f:
            f.write('<?php\nfunction f_%d_%s() { return %d; }\n' % (i, rid.replace('-', '_'), i))
    # OPcache leaves files younger than opcache.file_update_protection (2 s) uncached.
    hour_ago = time.time() - 3600
    for d, dummy_dirs, names in os.walk(path):
        for name in names:
            os.utime(os.path.join(d, name), (hour_ago, hour_ago))
    return path


def serve(socket_path, release):
    """A request for the release's page, run by the pool as Apache's proxy_fcgi would send it."""
    script = os.path.join(release, 'public', 'index.php')
    resp = _fastcgi.request(socket_path, {'REQUEST_METHOD': 'GET', 'SCRIPT_FILENAME': script,
                                          'SCRIPT_NAME': '/index.php', 'REQUEST_URI': '/', 'QUERY_STRING': '',
                                          'SERVER_PROTOCOL': 'HTTP/1.1', 'GATEWAY_INTERFACE': 'CGI/1.1'})
    assert resp.status == 200, resp.stderr
    return resp.body.decode()


def point_current(layout, rid):
    tmp = layout.current_link + '.tmp'
    os.symlink('releases/' + rid, tmp)
    os.rename(tmp, layout.current_link)


def leftovers(layout):
    return [n for n in os.listdir(layout.root) if n.startswith('.cutover-opcache-')]


def test_the_fastcgi_client_runs_a_script_in_the_pool(layout, fpm):
    sock = fpm()
    os.makedirs(layout.root)
    old = make_release(layout, 'r1')
    assert serve(sock, old) == 'r1'


def test_reset_drops_old_releases_and_keeps_the_live_one_cached(layout, fpm):
    sock = fpm()
    os.makedirs(layout.root)
    old, new = make_release(layout, 'r1'), make_release(layout, 'r2')
    point_current(layout, 'r2')
    serve(sock, old)
    serve(sock, new)

    result = reset_opcache(layout, sock)

    assert result['changed'] is True and result['enabled'] is True and result['pending'] is False
    assert result['before']['other'] == 4 and result['before']['live'] == 4
    assert result['after']['other'] == 0
    assert leftovers(layout) == []
    # The live release is cached again by its next request, and alone: nothing left to reset.
    assert serve(sock, new) == 'r2'
    again = reset_opcache(layout, sock, release_path=new)
    assert again['changed'] is False and again['after'] is None
    assert again['before']['live'] == 4 and again['before']['other'] == 0
    assert leftovers(layout) == []


def test_check_mode_says_a_reset_would_be_asked_and_resets_nothing(layout, fpm):
    sock = fpm()
    os.makedirs(layout.root)
    old, new = make_release(layout, 'r1'), make_release(layout, 'r2')
    point_current(layout, 'r2')
    serve(sock, old)
    serve(sock, new)

    predicted = reset_opcache(layout, sock, check_mode=True)

    assert predicted['changed'] is True
    assert predicted['before']['other'] == 4 and predicted['after']['other'] == 0
    assert leftovers(layout) == []
    # Nothing was reset: the pool still holds the old release, and a real run finds it.
    real = reset_opcache(layout, sock)
    assert real['changed'] is True and real['before']['other'] == 4
    assert reset_opcache(layout, sock, check_mode=True)['changed'] is False


def test_a_full_cache_caches_the_live_release_again_after_the_reset(layout, fpm):
    # 200 files is OPcache's smallest table: a few releases of 60 scripts fill it with old ones.
    sock = fpm('opcache.max_accelerated_files=200')
    os.makedirs(layout.root)
    for n in range(1, 6):
        serve(sock, make_release(layout, 'r%d' % n, files=60))
    point_current(layout, 'r5')
    serve(sock, layout.release_path('r5'))

    result = reset_opcache(layout, sock)
    assert result['before']['live'] < 61 and result['before']['other'] > 0
    assert result['changed'] is True and result['after']['other'] == 0
    serve(sock, layout.release_path('r5'))
    assert reset_opcache(layout, sock)['before']['live'] == 61


def test_a_pool_without_opcache_is_left_alone(layout, fpm):
    sock = fpm('opcache.enable=0')
    os.makedirs(layout.root)
    make_release(layout, 'r1')
    point_current(layout, 'r1')
    result = reset_opcache(layout, sock)
    assert result == {'changed': False, 'enabled': False, 'before': None, 'after': None, 'pending': False}
    assert leftovers(layout) == []


def test_a_missing_socket_is_refused_with_its_path(layout, tmp_path):
    os.makedirs(layout.root)
    make_release(layout, 'r1')
    point_current(layout, 'r1')
    missing = str(tmp_path / 'no.sock')
    with pytest.raises(CutoverError) as exc:
        reset_opcache(layout, missing)
    assert missing in exc.value.msg and 'PHP-FPM' in exc.value.msg
    assert leftovers(layout) == []


def test_a_release_outside_the_root_is_refused(layout, fpm, tmp_path):
    sock = fpm()
    os.makedirs(layout.root)
    make_release(layout, 'r1')
    elsewhere = str(tmp_path / 'elsewhere')
    os.makedirs(elsewhere)
    with pytest.raises(CutoverError) as exc:
        reset_opcache(layout, sock, release_path=elsewhere)
    assert 'is not a release of' in exc.value.msg
    assert leftovers(layout) == []


def test_a_pool_that_cannot_read_the_root_is_named(layout, fpm, tmp_path):
    # open_basedir elsewhere: the pool refuses the script; the message names the socket and the root.
    sock = fpm('open_basedir=/nonexistent')
    os.makedirs(layout.root)
    make_release(layout, 'r1')
    point_current(layout, 'r1')
    with pytest.raises(CutoverError) as exc:
        reset_opcache(layout, sock)
    assert sock in exc.value.msg and layout.root in exc.value.msg
    assert leftovers(layout) == []
    shutil.rmtree(layout.root)
