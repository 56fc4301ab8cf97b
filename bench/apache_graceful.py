# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""How long this host's Apache takes, after a graceful restart, to answer with its new configuration.

One command, as root, on a host with Debian's apache2 (standard library only)::

    python3 bench/apache_graceful.py [--repeat 30 --port 18160 --out bench/results/apache_graceful.md]

A deploy with the apache_vhost role points the site at the new release and restarts Apache gracefully
(``apache2ctl graceful``), then waits until a new connection is answered by the new release: that wait
is most of what the vhost adds to a deploy. This measures it alone, on a site of its own: a file
``/etc/apache2/sites-enabled/cutover-graceful-bench.conf`` holding a ``Listen`` on ``--port`` and a
vhost that redirects every request to ``/generation-N`` (mod_alias, which Debian enables by default).
Each repeat writes the next N, runs ``apache2ctl graceful`` and asks ``HEAD /`` on new connections
(every 10 ms) until the answer names N: the seconds from the start of ``apache2ctl graceful`` to that
answer, and how long ``apache2ctl graceful`` itself took. Beside it, interleaved, the baseline: the
same request with no restart. The file is removed and Apache restarted gracefully at the end.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

CONF = '/etc/apache2/sites-enabled/cutover-graceful-bench.conf'


def write_conf(port, generation):
    with open(CONF + '.tmp', 'w') as f:
        f.write('Listen %d\n<VirtualHost *:%d>\n    ServerName localhost\n    RedirectMatch 302 ^/ /generation-%d\n'
                '</VirtualHost>\n' % (port, port, generation))
    os.rename(CONF + '.tmp', CONF)


def answer(port):
    """The generation the site answers with on a new connection, or None when it does not answer."""
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
    try:
        conn.request('HEAD', '/', headers={'Host': 'localhost'})
        location = conn.getresponse().getheader('Location') or ''
        return int(location.rsplit('-', 1)[1]) if '/generation-' in location else None
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        conn.close()


def graceful(port, generation, deadline=10.0):
    """(seconds to the first answer naming ``generation``, seconds apache2ctl graceful took)."""
    write_conf(port, generation)
    started = time.perf_counter()
    subprocess.run(['apache2ctl', 'graceful'], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    signalled = time.perf_counter() - started
    while answer(port) != generation:
        if time.perf_counter() - started > deadline:
            raise RuntimeError('Apache did not answer with generation %d within %d s' % (generation, deadline))
        time.sleep(0.01)
    return time.perf_counter() - started, signalled


def unchanged(port, generation):
    started = time.perf_counter()
    if answer(port) != generation:
        raise RuntimeError('Apache answered with another generation than %d' % generation)
    return time.perf_counter() - started


def cell(xs):
    return '%.3f (%.3f-%.3f)' % (statistics.median(xs), min(xs), max(xs))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    p.add_argument('--repeat', type=int, default=30)
    p.add_argument('--port', type=int, default=18160)
    p.add_argument('--pause', type=float, default=0.5, help='seconds between repeats (default 0.5)')
    p.add_argument('--out', help='also write the report here')
    args = p.parse_args(argv)
    if os.geteuid() != 0 or not shutil.which('apache2ctl') or not os.path.isdir(os.path.dirname(CONF)):
        sys.exit('This needs root and Debian\'s apache2 (apache2ctl, /etc/apache2/sites-enabled).')
    if os.path.lexists(CONF):
        sys.exit('%s exists: another run of this bench is going on, or one was killed (remove it).' % CONF)
    mpm = subprocess.run(['a2query', '-M'], stdout=subprocess.PIPE, check=False).stdout.decode().strip() or '?'
    version = subprocess.run(['apache2ctl', '-v'], stdout=subprocess.PIPE, check=False).stdout.decode().split('\n')[0]
    started = datetime.datetime.now(datetime.timezone.utc)
    waits, signals, plain = [], [], []
    try:
        graceful(args.port, 0)
        for n in range(1, args.repeat + 1):
            time.sleep(args.pause)
            plain.append(unchanged(args.port, n - 1))
            time.sleep(args.pause)
            wait, signalled = graceful(args.port, n)
            waits.append(wait)
            signals.append(signalled)
            print('[graceful %d/%d] %.3f s (apache2ctl %.3f s); no restart %.3f s'
                  % (n, args.repeat, wait, signalled, plain[-1]), file=sys.stderr)
    finally:
        if os.path.lexists(CONF):
            os.unlink(CONF)
        subprocess.run(['apache2ctl', 'graceful'], check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    slow = [w for w in waits if w >= 0.5]
    lines = [
        '# Apache graceful restart (bench/apache_graceful.py)', '',
        'Run %s UTC with `%s` on %s: %s, MPM %s, %d CPUs.' % (
            started.strftime('%Y-%m-%d %H:%M'), ' '.join(['python3'] + sys.argv), socket.gethostname(), version, mpm,
            os.cpu_count()), '',
        'Seconds, median (min-max) of %d, interleaved, %.1f s apart.' % (args.repeat, args.pause), '',
        '| step | seconds |', '| --- | --- |',
        '| `apache2ctl graceful` to the first answer with the new configuration | %s |' % cell(waits),
        '| `apache2ctl graceful` itself | %s |' % cell(signals),
        '| baseline: the same request, no restart | %s |' % cell(plain), '',
        'Waits of 0.5 s or more: %d of %d (median of those %s s); the others: median %s s.' % (
            len(slow), len(waits), '%.3f' % statistics.median(slow) if slow else '-',
            '%.3f' % statistics.median([w for w in waits if w < 0.5]) if len(slow) < len(waits) else '-'),
        '', 'Each wait, in order: %s.' % ', '.join('%.3f' % w for w in waits),
    ]
    report = '\n'.join(lines) + '\n'
    print(report)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(report)


if __name__ == '__main__':
    main()
