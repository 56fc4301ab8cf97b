# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Keep the live release in a PHP-FPM pool's OPcache: reset it when it holds other releases' scripts.

OPcache keys scripts by their path, and every release is a new set of paths (the vhost serves the
resolved release path). Scripts of releases that no longer serve stay cached until OPcache restarts;
once its memory (or its table of files) is full of them, it stops caching new scripts, so the live
release runs uncached. Nothing restarts it by itself: those entries are valid, not "wasted".

How the reset is done: OPcache lives in the PHP-FPM master's shared memory (one cache for all its
pools), and the CLI has a cache of its own, so the OPcache functions must run inside the pool. A small
PHP script is written for the run into a directory of its own in the deploy root (``.cutover-opcache-*``,
mode 0711, the script 0644 under a random name: outside every web root, and where the pool can read it,
since it runs the releases under the same root; a pool whose ``open_basedir`` or ``opcache.restrict_api``
is the root allows it) and run through the pool's socket with a FastCGI request (:mod:`._fastcgi`). It
counts the cached scripts of the live release and of the other releases under ``releases/``, and calls
``opcache_reset()`` only when other releases are cached. The directory is removed before returning.

When the reset happens: ``opcache_reset()`` only schedules a restart. OPcache carries it out at the
start of a request when no process holds the cache, that is once every request that was running when
it was asked (the last requests of the release left) has finished; meanwhile requests run uncached. The
caller asks only after the new release serves, and this module asks again until the restart is done
(or ``timeout`` passes), so it returns with a cache that holds no other release.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import time

from ansible_collections.cutover.web.plugins.module_utils import _fastcgi
from ansible_collections.cutover.web.plugins.module_utils._releases import CutoverError

SCRIPT = r"""<?php
// Written by cutover.web (cutover.web.opcache_reset) for a few FastCGI requests, removed after them.
header('Content-Type: application/json');
$out = array(
    'loaded' => extension_loaded('Zend OPcache'),
    'enabled' => (bool) ini_get('opcache.enable'),
    'api' => function_exists('opcache_get_status') && function_exists('opcache_reset'),
    'restrict_api' => (string) ini_get('opcache.restrict_api'),
);
if ($out['loaded'] && $out['enabled'] && $out['api']) {
    $s = @opcache_get_status(true);
    if (is_array($s)) {
        $live = $_SERVER['CUTOVER_LIVE'] . '/';
        $releases = $_SERVER['CUTOVER_RELEASES'] . '/';
        $out['pending'] = $s['restart_pending'] || $s['restart_in_progress'];
        $out['listed'] = isset($s['scripts']);
        $out['live'] = 0;
        $out['other'] = 0;
        foreach ($out['listed'] ? $s['scripts'] : array() as $path => $script) {
            if (strncmp($path, $live, strlen($live)) === 0) {
                $out['live']++;
            } elseif (strncmp($path, $releases, strlen($releases)) === 0) {
                $out['other']++;
            }
        }
        $stats = isset($s['opcache_statistics']) ? $s['opcache_statistics'] : array();
        $memory = isset($s['memory_usage']) ? $s['memory_usage'] : array();
        $out['cached'] = isset($stats['num_cached_scripts']) ? $stats['num_cached_scripts'] : null;
        $out['full'] = isset($s['cache_full']) ? $s['cache_full'] : null;
        $out['free'] = isset($memory['free_memory']) ? $memory['free_memory'] : null;
        $out['restarts'] = isset($stats['manual_restarts']) ? $stats['manual_restarts'] : null;
        if ($_SERVER['CUTOVER_RESET'] === 'yes' && $out['other'] > 0 && !$out['pending']) {
            $out['reset'] = opcache_reset();
        }
    } else {
        $error = error_get_last();
        $out['error'] = $error ? $error['message'] : 'opcache_get_status() answered false';
    }
}
if (function_exists('opcache_invalidate')) {
    @opcache_invalidate(__FILE__, true);
}
echo json_encode($out);
"""

STATE_KEYS = ('live', 'other', 'cached', 'full', 'free')


class PoolScript(object):
    """The script, written into a private directory of the deploy root, and removed on exit."""

    def __init__(self, layout):
        self.layout = layout
        self.dir = None
        self.path = None

    def __enter__(self):
        self.layout.require_root()
        self.dir = tempfile.mkdtemp(prefix='.cutover-opcache-', dir=self.layout.root)
        try:
            # Others may pass through (the pool's user must reach the script), not list or write.
            os.chmod(self.dir, 0o711)
            self.path = os.path.join(self.dir, secrets.token_hex(16) + '.php')
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            try:
                os.fchmod(fd, 0o644)
                data = SCRIPT.encode('utf-8')
                while data:
                    data = data[os.write(fd, data):]
            finally:
                os.close(fd)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


def _ask(socket_path, script, live, releases, reset, timeout):
    """Run the script in the pool; return its answer (a dict), or raise naming the socket and the cause."""
    name = '/' + os.path.basename(script)
    params = {
        'GATEWAY_INTERFACE': 'CGI/1.1', 'SERVER_SOFTWARE': 'cutover.web', 'SERVER_PROTOCOL': 'HTTP/1.1',
        'REQUEST_METHOD': 'GET', 'REQUEST_URI': name, 'SCRIPT_NAME': name, 'SCRIPT_FILENAME': script,
        'DOCUMENT_ROOT': os.path.dirname(script), 'QUERY_STRING': '', 'CONTENT_LENGTH': '0',
        'SERVER_NAME': 'localhost', 'SERVER_ADDR': '127.0.0.1', 'SERVER_PORT': '80', 'REMOTE_ADDR': '127.0.0.1',
        'CUTOVER_LIVE': live, 'CUTOVER_RELEASES': releases, 'CUTOVER_RESET': 'yes' if reset else 'no',
    }
    resp = _fastcgi.request(socket_path, params, timeout=timeout)
    try:
        answer = json.loads(resp.body.decode('utf-8'))
    except ValueError:
        answer = None
    if resp.status != 200 or not isinstance(answer, dict):
        said = (resp.stderr or resp.body.decode('utf-8', 'replace')).strip().replace('\n', ' ')[:300]
        raise CutoverError('The PHP-FPM pool at %s could not run the OPcache script %s (status %d: %s); the pool must be '
                           'able to read and run .php files under the deploy root %s.'
                           % (socket_path, script, resp.status, said or 'no output', os.path.dirname(os.path.dirname(script))),
                           path=socket_path)
    if answer.get('loaded') and answer.get('enabled') and not answer.get('api'):
        raise CutoverError('The PHP-FPM pool at %s has OPcache on but its functions disabled (disable_functions), so its '
                           'cache cannot be reset; allow opcache_get_status and opcache_reset, or turn the reset off.'
                           % socket_path, path=socket_path)
    if 'error' in answer:
        raise CutoverError('The PHP-FPM pool at %s does not let the script %s read its OPcache (%s; opcache.restrict_api '
                           'is "%s"); allow scripts under the deploy root, or turn the reset off.'
                           % (socket_path, script, answer['error'], answer.get('restrict_api', '')), path=socket_path)
    return answer


def _state(answer):
    if answer is None or not answer.get('listed'):
        return None
    return dict(('%s' % k, answer.get(k)) for k in STATE_KEYS)


def reset_opcache(layout, socket_path, release_path=None, timeout=30.0, check_mode=False):
    """Reset the OPcache of the PHP-FPM pool at ``socket_path`` if it holds scripts of releases of ``layout``
    other than the live one (``release_path``, else the release ``current`` points at).

    Returns a dict: changed (a reset was asked), enabled (the pool has OPcache on), before and after (the
    counts: scripts of the live release, of other releases, all cached scripts, whether the cache is full,
    its free memory; after is None when no reset was asked) and pending (the reset was asked but had not
    happened yet when ``timeout`` passed: requests that were running then still ran).

    In check mode the pool is asked what it holds and nothing is reset: changed says whether a reset would
    be asked, after what the cache would hold then (no script of another release). The script it runs for
    that is written and removed as in a real run; nothing else is touched."""
    if release_path:
        live = os.path.normpath(release_path)
        if os.path.dirname(live) != layout.releases_dir:
            raise CutoverError('%s is not a release of %s (a directory in %s).' % (release_path, layout.root, layout.releases_dir),
                               path=release_path)
    else:
        rid = layout.current_id()
        if rid is None:
            raise CutoverError('No release is live at %s, so there is no release to keep in OPcache.' % layout.current_link,
                               path=layout.current_link)
        live = layout.release_path(rid)
    if os.path.islink(live) or not os.path.isdir(live):
        raise CutoverError('The release %s does not exist.' % live, path=live)
    if not os.path.exists(socket_path):
        raise CutoverError('The PHP-FPM socket %s does not exist (is PHP-FPM running, and is this the socket its pool '
                           'listens on?).' % socket_path, path=socket_path)
    live, releases = os.path.realpath(live), os.path.realpath(layout.releases_dir)
    result = {'changed': False, 'enabled': False, 'before': None, 'after': None, 'pending': False}
    with PoolScript(layout) as script:
        answer = _ask(socket_path, script.path, live, releases, not check_mode, timeout)
        result['enabled'] = bool(answer.get('loaded') and answer.get('enabled'))
        result['before'] = _state(answer)
        if check_mode:
            before = result['before']
            if before is not None and before['other'] and not answer.get('pending'):
                result['changed'] = True
                result['after'] = dict(before, other=0, full=False)
            return result
        if not (answer.get('reset') or answer.get('pending')):
            return result
        result['changed'] = bool(answer.get('reset'))
        deadline = time.monotonic() + timeout
        while True:
            # Each request's start is where OPcache restarts, once no request holds the cache.
            answer = _ask(socket_path, script.path, live, releases, False, timeout)
            if not answer.get('pending') or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        result['pending'] = bool(answer.get('pending'))
        result['after'] = _state(answer)
    return result
