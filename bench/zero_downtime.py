# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What users see while a new release goes live: cutover.web beside the manual methods.

One command (after ./dev setup, as root, on a host with Apache 2.4 and PHP):

    .venv/bin/python bench/zero_downtime.py                # both PHP modes, every method
    .venv/bin/python bench/zero_downtime.py --php fpm --methods cutover --deploys 3 --rollbacks 1

For each PHP mode (PHP-FPM through proxy_fcgi, mod_php) and each method, a site of its own is
served by the real Apache on a port of its own, and while the method deploys a new version of
the site at least --deploys times and rolls back --rollbacks times:

- keep-alive clients fetch a PHP page and two static assets in a loop. The page includes three
  PHP files (one through __DIR__, one through the relative include path, one outside the web
  root) with a pause between them, so requests are in flight during every switch. Every file
  of a version carries that version's number, so each response tells which release produced
  each of its parts.
- a writer uploads a file through the site (a PHP script writing into its media folder) all
  the time, and every file it was told was stored must still be in the live media folder at
  the end.

Counted per method: responses by non-2xx status, connection errors, MIXED responses (parts of
two releases in one response), STALE responses (a response that started after the deploy or
rollback reported done, and before the next one began, from another release than the one it
made live) and uploads lost.

Methods (the manual ones are the shell commands people use today):
  cutover              ansible-playbook cutover.web.deploy / cutover.web.rollback (shared media,
                       resolved DocumentRoot + graceful restart, pruning keep 3)
  mv-mv                copy the new version to new/, copy media into it, mv current old, mv new current
  rm-ln                releases/<n> + shared media link, rm current; ln -s releases/<n> current
  rsync-delete         rsync -a --delete (media excluded) into the live directory
  rsync-delay-updates  rsync -a --delete-delay --delay-updates (media excluded) into the live directory
  symlink              releases/<n> + shared media link, ln -s + mv -T (atomic), no PHP cache handling
  symlink-reload       the same, then PHP reloaded: service php-fpm reload, or apachectl graceful for mod_php
  symlink-opcache-reset  the same, then opcache_reset() + clearstatcache(true) requested through the site
  cutover-keep-opcache   cutover with apache_vhost_opcache_reset: false (no OPcache reset after a switch)
  cutover-build          cutover with a build step that rewrites in place (file_put_contents, chmod) a file the
                         release shares with the live one (deploy_build_isolated: true, the default); the files
                         of every other release are hashed before and after each deploy and rollback
  build-unisolated       the same with deploy_build_isolated: false, to show what those checks catch
  cutover-maintenance    cutover with a slow migration (--migration-seconds) run in a maintenance window
                       (deploy_maintenance): the window's 503s are expected, and checked instead (each inside
                       a deploy, each with Retry-After), and one more reader from 127.0.0.2, on the vhost's
                       allow-list, must get 200 throughout; the window's length is reported
The symlink methods prune to three releases, as cutover.web does. A manual rollback puts the
previous version back with the same method.

A keep-alive connection that the server closes before answering (Apache closes idle
keep-alive connections when its workers restart) is reopened and the request sent again, as
browsers and HTTP libraries do for idempotent requests (RFC 9112, 9.3.1); those retries are
reported, not counted as errors. Uploads use a new connection each and are never retried.

OPcache full (--opcache-mb, --filler): each release's page also includes --filler PHP files (about
52 KiB of OPcache each), the PHP-FPM sites are served by a PHP-FPM master of the bench's own, started
afresh for each method with an OPcache of --opcache-mb MiB (mod_php gets the same size through a
conf.d file for the run), so that a few releases fill the cache. After each deploy or rollback (and
before the first) the bench asks the site how many scripts of the live release and of the other
releases OPcache holds, and whether it is full; the page's response times are reported beside them.

Reports: a Markdown table on stdout and in bench/results/zero_downtime-<time>.md, raw counts in
the .json beside it. The site, its vhosts (ports --port and up) and the Apache module choice
are put back as they were at the end.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import hashlib
import http.client
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)

from _common import Ansible, apache_modules, judge, machine_info, prepare_workdir, remove_vhosts  # noqa: E402

METHODS = ['cutover', 'cutover-keep-opcache', 'mv-mv', 'rm-ln', 'rsync-delete', 'rsync-delay-updates', 'symlink', 'symlink-reload',
           'symlink-opcache-reset']
PHP_MODES = ['fpm', 'mod_php']
PATHS = ['/index.php', '/assets/app.css', '/index.php', '/assets/app.js']
MARK = re.compile(r'\b([a-z]+)=v(\d+)\b')
KEEP = 3
T0 = time.perf_counter()


def log(msg):
    print('[zd %7.1fs] %s' % (time.perf_counter() - T0, msg), file=sys.stderr, flush=True)


def sh(script):
    proc = subprocess.run(['sh', '-ec', script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        raise RuntimeError('%s failed (exit %d): %s' % (script, proc.returncode, proc.stdout.decode('utf-8', 'replace')))


# --- the site --------------------------------------------------------------------------

def filler(i, n, funcs=30):
    """Filler script i of version n: code OPcache has to hold (about 52 KiB of it compiled)."""
    out = ['<?php\n// release v%d, filler %d\n' % (n, i)]
    for j in range(funcs):
        out.append(
            'function cutover_fill_%d_%d($x) {\n'
            '    $s = \'\';\n'
            '    foreach (array(%s) as $k => $v) {\n'
            '        $s .= $v %% 3 === $x ? str_repeat(\'%d\', $k %% 5) . $v : strtoupper(dechex($v));\n'
            '    }\n'
            '    return strlen($s) + %d;\n'
            '}\n' % (i, j, ', '.join(str(k * 7 + j) for k in range(20)), j, i))
    out.append('$fill[] = %d;\n' % n)
    return ''.join(out)


OPCACHE_STATUS = '''<?php
// What OPcache holds: scripts of this release (live), of the other releases beside it (other).
header('Content-Type: application/json');
$out = array('live' => 0, 'other' => 0, 'cached' => null, 'full' => null, 'pending' => null);
$s = function_exists('opcache_get_status') ? opcache_get_status(true) : false;
if (is_array($s)) {
    $live = dirname(__DIR__) . '/';
    $releases = dirname(dirname(__DIR__)) . '/';
    foreach (isset($s['scripts']) ? $s['scripts'] : array() as $path => $script) {
        if (strncmp($path, $live, strlen($live)) === 0) {
            $out['live']++;
        } elseif (strncmp($path, $releases, strlen($releases)) === 0) {
            $out['other']++;
        }
    }
    $out['cached'] = $s['opcache_statistics']['num_cached_scripts'];
    $out['full'] = $s['cache_full'];
    $out['pending'] = $s['restart_pending'];
}
echo json_encode($out);
'''


def write_version(dst, n, pause_us, fill=0):
    """Version n of the test site: every file carries v<n>."""
    files = {
        'public/index.php': (
            "<?php\n"
            "// release v{n}\n"
            "$parts = array('index=v{n}');\n"
            "require __DIR__ . '/inc/a.php';      // through __DIR__\n"
            "usleep({p});\n"
            "require 'inc/b.php';                 // through the relative include path\n"
            "usleep({p});\n"
            "require __DIR__ . '/../lib/c.php';   // outside the web root\n"
            "$fill = array();\n"
            "for ($i = 0; $i < {fill}; $i++) {{ require __DIR__ . \"/../lib/fill/f$i.php\"; }}\n"
            "foreach (array_unique($fill) as $v) {{ $parts[] = \"f=v$v\"; }}\n"
            "header('Content-Type: text/plain');\n"
            "echo implode(' ', $parts), \"\\n\";\n"),
        'public/inc/a.php': "<?php\n$parts[] = 'a=v{n}';\n",
        'public/inc/b.php': "<?php\n$parts[] = 'b=v{n}';\n",
        'lib/c.php': "<?php\n$parts[] = 'c=v{n}';\n",
        'public/upload.php': (
            "<?php\n"
            "// release v{n}\n"
            "$name = basename(isset($_GET['name']) ? $_GET['name'] : '');\n"
            "if ($name === '' || $_SERVER['REQUEST_METHOD'] !== 'POST') {{ http_response_code(400); exit; }}\n"
            "if (@file_put_contents(__DIR__ . '/media/' . $name, \"upload $name\\n\") === false) {{\n"
            "    http_response_code(500); echo \"not stored\\n\"; exit;\n"
            "}}\n"
            "echo \"stored $name by=v{n}\\n\";\n"),
        'public/opcache-reset.php': (
            "<?php\n"
            "// release v{n}\n"
            "$done = function_exists('opcache_reset') && opcache_reset();\n"
            "clearstatcache(true);\n"
            "echo $done ? \"reset\\n\" : \"no opcache\\n\";\n"),
        'public/assets/app.css': "/* release=v{n} */\nbody {{ color: #{n:06d}; }}\n",
        'public/assets/app.js': "// release=v{n}\nwindow.release = {n};\n",
    }
    files = dict((rel, text.format(n=n, p=pause_us, fill=fill)) for rel, text in files.items())
    files['public/opcache-status.php'] = OPCACHE_STATUS
    for i in range(fill):
        files['lib/fill/f%d.php' % i] = filler(i, n)
    for rel, text in files.items():
        path = os.path.join(dst, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            f.write(text)


# --- the methods -----------------------------------------------------------------------

class Method(object):
    """A way to put version n live under root; deploy/rollback return when it reports done."""

    symlinked = False
    fill = 0          # filler scripts per release (--filler)
    fpm = None        # the bench's own PHP-FPM master (--opcache-mb), or None for the server's

    def __init__(self, name, root, port, sources, pause_us):
        self.name = name
        self.root = root
        self.port = port
        self.sources = sources
        self.pause_us = pause_us
        self.history = []  # the versions made live, in order; a rollback pops the last

    def src(self, n):
        path = os.path.join(self.sources, 'v%d' % n)
        if not os.path.isdir(path):
            write_version(path, n, self.pause_us, self.fill)
        return path

    def live_media(self):
        return os.path.join(self.root, 'current', 'public', 'media')

    def vhost(self):
        vhost = {'apache_vhost_name': 'zd-' + self.name, 'apache_vhost_root': self.root,
                 'apache_vhost_port': self.port, 'apache_vhost_webroot': 'public',
                 # The bench switches the whole server between PHP-FPM and mod_php on purpose.
                 'apache_vhost_switch_php_mode': True}
        if self.fpm is not None:
            vhost['apache_vhost_php_fpm_socket'] = self.fpm.socket
        return vhost

    def prepare(self):
        os.makedirs(self.root)
        if self.symlinked:
            os.makedirs(os.path.join(self.root, 'releases'))
            os.makedirs(os.path.join(self.root, 'shared', 'media'))
            shutil.chown(os.path.join(self.root, 'shared', 'media'), 'www-data', 'www-data')

    def rollback(self, n):
        self.deploy(n)

    def extra_results(self):
        """What a method measures beyond the load's counts (added to its row of results)."""
        return {}


class MvMv(Method):
    def deploy(self, n):
        r = shlex.quote(self.root)
        sh('rm -rf {r}/new && cp -a {s} {r}/new && mkdir -p {r}/new/public/media && '
           'if [ -d {r}/current ]; then cp -a {r}/current/public/media/. {r}/new/public/media/; fi && '
           'chown www-data:www-data {r}/new/public/media && '
           'if [ -d {r}/current ]; then mv {r}/current {r}/old; fi && mv {r}/new {r}/current && rm -rf {r}/old'
           .format(r=r, s=shlex.quote(self.src(n))))


class Rsync(Method):
    options = ''

    def deploy(self, n):
        r = shlex.quote(self.root)
        sh('mkdir -p {r}/current/public/media && chown www-data:www-data {r}/current/public/media && '
           'rsync -a {o} --exclude=/public/media/ {s}/ {r}/current/'
           .format(r=r, s=shlex.quote(self.src(n)), o=self.options))


class RsyncDelete(Rsync):
    options = '--delete'


class RsyncDelayUpdates(Rsync):
    options = '--delete-delay --delay-updates'


class Releases(Method):
    """The symlink methods: releases/v<n> with the shared media folder linked in."""

    symlinked = True
    switch = None

    def release(self, n):
        return os.path.join(self.root, 'releases', 'v%d' % n)

    def deploy(self, n):
        rel = self.release(n)
        if not os.path.isdir(rel):
            sh('cp -a {s} {d}.tmp && ln -s {m} {d}.tmp/public/media && mv {d}.tmp {d}'.format(
                s=shlex.quote(self.src(n)), d=shlex.quote(rel), m=shlex.quote(os.path.join(self.root, 'shared', 'media'))))
        sh(self.switch.format(r=shlex.quote(self.root), n=n))
        self.after_switch()
        self.prune(n)

    def rollback(self, n):
        sh(self.switch.format(r=shlex.quote(self.root), n=n))
        self.after_switch()

    def after_switch(self):
        pass

    def prune(self, live):
        names = sorted(os.listdir(os.path.join(self.root, 'releases')), key=lambda x: int(x[1:]))
        for name in names[:-KEEP]:
            if name != 'v%d' % live:
                shutil.rmtree(os.path.join(self.root, 'releases', name))


class RmLn(Releases):
    switch = 'rm -f {r}/current && ln -s releases/v{n} {r}/current'


class Symlink(Releases):
    switch = 'ln -sfn releases/v{n} {r}/current.tmp && mv -T {r}/current.tmp {r}/current'


class SymlinkReload(Symlink):
    """The atomic switch, then PHP's processes reloaded: PHP-FPM gracefully (its master re-execs and
    its workers finish their request first), or, for mod_php, Apache gracefully."""

    def after_switch(self):
        if os.path.exists('/etc/apache2/mods-enabled/php%s.load' % php_version()):
            sh('apache2ctl graceful')
        elif self.fpm is not None:
            self.fpm.reload()
        else:
            sh('service php%s-fpm reload >/dev/null' % php_version())


class SymlinkOpcacheReset(Symlink):
    """The atomic switch, then opcache_reset() and clearstatcache(true) called through the site, as
    many deploy tools do (it runs in whichever worker answers that request)."""

    def after_switch(self):
        c = http.client.HTTPConnection('127.0.0.1', self.port, timeout=10)
        c.request('GET', '/opcache-reset.php')
        c.getresponse().read()
        c.close()


def php_version():
    out = subprocess.run(['php', '-r', 'echo PHP_MAJOR_VERSION . "." . PHP_MINOR_VERSION;'], stdout=subprocess.PIPE,
                         check=True).stdout.decode()
    return out.strip()


class Cutover(Method):
    symlinked = True
    opcache_reset = True

    def __init__(self, name, root, port, sources, pause_us, ansible, php):
        super(Cutover, self).__init__(name, root, port, sources, pause_us)
        self.ansible = ansible
        self.php = php

    def prepare(self):
        pass  # the deploy role makes the root

    def vhost(self):
        return dict(super(Cutover, self).vhost(), apache_vhost_opcache_reset=self.opcache_reset)

    def deploy(self, n):
        extra = dict(self.vhost(), cutover_apache_vhost=True, apache_vhost_php=self.php,
                     deploy_root=self.root, deploy_src=self.src(n), deploy_keep=KEEP,
                     deploy_shared_dirs=['public/media'], deploy_shared_owner='www-data',
                     deploy_shared_group='www-data')
        self.ansible.play('cutover.web.deploy', extra)

    def rollback(self, n):
        self.ansible.play('cutover.web.rollback', dict(self.vhost(), rollback_root=self.root,
                                                       rollback_apache_vhost_name='zd-' + self.name,
                                                       rollback_webroot='public'))


class CutoverKeepOpcache(Cutover):
    """cutover.web without the OPcache reset after a switch (apache_vhost_opcache_reset: false)."""

    opcache_reset = False


MIGRATE = """#!/bin/sh
# The five verbs for one slow expand migration per release; applied ones are files in $MIGRATIONS.
set -eu
id=$(cat migration-id)
mkdir -p "$MIGRATIONS"
case $1 in
pending) if [ "$2" = expand ] && [ ! -e "$MIGRATIONS/$id" ]; then echo "$id"; fi ;;
apply) if [ "$2" = expand ]; then sleep "$MIGRATION_SECONDS"; touch "$MIGRATIONS/$id"; fi ;;
version) ls "$MIGRATIONS" | sort | tail -n 1 ;;
esac
"""
ALLOWED_CLIENT = '127.0.0.2'


class CutoverMaintenance(Cutover):
    """cutover.web with a slow migration in a maintenance window (deploy_maintenance), the readers of the load
    outside the vhost's allow-list and one more reader (from ALLOWED_CLIENT) on it."""

    allowed_clients = 1
    migration_seconds = 2.0

    def __init__(self, *args):
        super(CutoverMaintenance, self).__init__(*args)
        self.sources = self.sources + '-maintenance'

    def src(self, n):
        path = os.path.join(self.sources, 'v%d' % n)
        if not os.path.isdir(path):
            super(CutoverMaintenance, self).src(n)
            os.makedirs(os.path.join(path, 'bin'))
            with open(os.path.join(path, 'bin', 'migrate'), 'w') as f:
                f.write(MIGRATE)
            os.chmod(os.path.join(path, 'bin', 'migrate'), 0o755)
            with open(os.path.join(path, 'migration-id'), 'w') as f:
                f.write('%04d\n' % n)
        return path

    def vhost(self):
        return dict(super(CutoverMaintenance, self).vhost(), apache_vhost_maintenance_allow=[ALLOWED_CLIENT])

    def deploy(self, n):
        extra = dict(self.vhost(), cutover_apache_vhost=True, apache_vhost_php=self.php,
                     deploy_root=self.root, deploy_src=self.src(n), deploy_keep=KEEP,
                     deploy_shared_dirs=['public/media'], deploy_shared_owner='www-data',
                     deploy_shared_group='www-data', deploy_maintenance=True,
                     deploy_migrate=True, migrate_command='bin/migrate', migrate_engine='none',
                     migrate_environment={'MIGRATIONS': self.root + '.migrations',
                                          'MIGRATION_SECONDS': str(self.migration_seconds)})
        self.ansible.play('cutover.web.deploy', extra)


def maintenance_report(load, ops):
    """The maintenance windows as clients saw them: each deploy's first to last 503, the 503s outside a deploy
    or without Retry-After, and what the allow-listed reader was answered."""
    windows = []
    inside = 0
    for op_start, op_done, before, after, kind in ops:
        seen = [(start, end) for start, end, retry in load.unavailable if op_start <= start and end <= op_done]
        inside += len(seen)
        if kind == 'deploy':
            windows.append(round(max(e for s, e in seen) - min(s for s, e in seen), 2) if seen else 0.0)
    allowed = collections.Counter(str(r[3]) for r in load.allowed_records)
    return {'windows_s': windows, 'unavailable': len(load.unavailable),
            'outside_a_deploy': len(load.unavailable) - inside,
            'without_retry_after': sum(1 for start, end, retry in load.unavailable if not retry),
            'allowed_requests': len(load.allowed_records),
            'allowed_non_2xx': dict((k, v) for k, v in allowed.items() if not k.startswith('2'))}


def maintenance_faults(r):
    """What --expect-zero refuses of the maintenance case: any fault but the window's own 503s."""
    m = r['maintenance']
    return (set(r['non_2xx']) - {'503'} or r['connection_errors'] or r['mixed'] or r['stale'] or r['uploads_lost']
            or set(r['upload_failures']) - {'503'} or m['outside_a_deploy'] or m['without_retry_after']
            or m['allowed_non_2xx'] or not m['allowed_requests'] or not all(m['windows_s']))


def maintenance_table(results):
    lines = ['| PHP | deploys | window s per deploy (first to last 503) | 503 answers | outside a deploy | without '
             'Retry-After | allow-listed requests | allow-listed non-2xx |',
             '| --- | --- | --- | --- | --- | --- | --- | --- |']
    for r in results:
        m = r.get('maintenance')
        if m:
            lines.append('| %s | %d | %s | %d | %d | %d | %d | %s |' % (
                r['php'], r['deploys'], ', '.join('%.1f' % w for w in m['windows_s']), m['unavailable'],
                m['outside_a_deploy'], m['without_retry_after'], m['allowed_requests'],
                cell_counts(m['allowed_non_2xx'])))
    return '\n'.join(lines)


class BenchFpm(object):
    """A PHP-FPM master of the bench's own (pool user www-data, socket in the workdir) with a small OPcache."""

    def __init__(self, workdir, megabytes):
        self.dir = os.path.join(workdir, 'fpm')
        self.socket = os.path.join(self.dir, 'fpm.sock')
        self.pid_file = os.path.join(self.dir, 'fpm.pid')
        self.megabytes = megabytes

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        conf = os.path.join(self.dir, 'fpm.conf')
        with open(conf, 'w') as f:
            f.write('[global]\npid = {d}/fpm.pid\nerror_log = {d}/error.log\ndaemonize = yes\n'
                    '[bench]\nuser = www-data\ngroup = www-data\nlisten = {s}\nlisten.owner = www-data\n'
                    'listen.group = www-data\nlisten.mode = 0660\npm = static\npm.max_children = 8\n'
                    .format(d=self.dir, s=self.socket))
        sh('/usr/sbin/php-fpm%s -y %s -d opcache.enable=1 -d opcache.memory_consumption=%d '
           '-d opcache.interned_strings_buffer=2' % (php_version(), shlex.quote(conf), self.megabytes))
        for dummy_i in range(100):
            if os.path.exists(self.socket):
                return
            time.sleep(0.05)
        raise RuntimeError('the bench PHP-FPM did not make %s' % self.socket)

    def pid(self):
        try:
            with open(self.pid_file) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def reload(self):
        os.kill(self.pid(), 12)  # SIGUSR2: a graceful reload, as service php-fpm reload does

    def stop(self):
        pid = self.pid()
        if pid is None:
            return
        try:
            os.kill(pid, 3)  # SIGQUIT: graceful stop
        except OSError:
            return
        for dummy_i in range(200):
            try:
                os.kill(pid, 0)
            except OSError:
                return
            time.sleep(0.05)
        os.kill(pid, 9)


def mod_php_ini():
    return '/etc/php/%s/apache2/conf.d/99-cutover-zd-opcache.ini' % php_version()


CLASSES = {'cutover': Cutover, 'cutover-keep-opcache': CutoverKeepOpcache, 'mv-mv': MvMv, 'rm-ln': RmLn, 'rsync-delete': RsyncDelete,
           'rsync-delay-updates': RsyncDelayUpdates, 'symlink': Symlink, 'symlink-reload': SymlinkReload,
           'symlink-opcache-reset': SymlinkOpcacheReset}
METHODS.append('cutover-maintenance')
CLASSES['cutover-maintenance'] = CutoverMaintenance


# --- a build step that rewrites a shipped file in place (#13 item 2) ---------------------

GEN = 'lib/gen.php'


def release_files(root):
    """Every entry of every release under root: {release: {path: (sha256 or link text, mode, uid, gid)}}."""
    out = {}
    releases = os.path.join(root, 'releases')
    for rel in sorted(os.listdir(releases)) if os.path.isdir(releases) else []:
        top = os.path.join(releases, rel)
        files = out[rel] = {}
        for dirpath, dirnames, filenames in os.walk(top):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                if os.path.islink(path):
                    what = 'link ' + os.readlink(path)
                elif os.path.isfile(path):
                    with open(path, 'rb') as f:
                        what = hashlib.sha256(f.read()).hexdigest()
                else:
                    what = 'dir'
                files[os.path.relpath(path, top)] = (what, oct(st.st_mode), st.st_uid, st.st_gid)
    return out


class _PlayWith(object):
    """The bench's Ansible runner, giving the deploy playbook some more variables."""

    def __init__(self, ansible, more):
        self.ansible = ansible
        self.more = more

    def play(self, playbook, extra):
        return self.ansible.play(playbook, dict(extra, **self.more()) if playbook == 'cutover.web.deploy' else extra)


class CutoverBuild(Cutover):
    """cutover with a build step that rewrites, in place, a file the new release shares with the live one.

    The page includes lib/gen.php (through lib/c.php). Each release ships it exactly as the live
    release holds it (content, mode and time, as a generated file committed with the code would be),
    so the push hardlinks it to the live release's; the build of release n rewrites it with PHP's
    file_put_contents to say gen=v<n>, chmods it (0444 and 0644 in turn) and takes 2.5 s more. With
    deploy_build_isolated (the default), no response may show gen=v<n> beside another release's
    parts (MIXED) or before the switch (STALE), and no file of any other release may change: every
    entry of every release (sha256, mode, owner) is compared before and after each deploy and rollback."""

    isolated = True

    def __init__(self, *a):
        super(CutoverBuild, self).__init__(*a)
        self.ansible = _PlayWith(self.ansible, self.build_vars)
        self.building = 0
        self.changed = []  # (operation, release, path, before, after)

    def build_vars(self):
        n = self.building
        gen = '<?php \\$parts[] = \\"gen=v%d\\";\\n' % n
        return {'deploy_build_isolated': self.isolated, 'deploy_build_commands': [
            "php -r 'file_put_contents(\"%s\", \"%s\");'" % (GEN, gen),
            'chmod %s %s' % ('0444' if n % 2 else '0644', GEN),
            'sleep 2.5']}

    def src(self, n):
        path = os.path.join(self.sources, self.name, 'v%d' % n)
        if not os.path.isdir(path):
            write_version(path, n, self.pause_us, self.fill)
            with open(os.path.join(path, 'lib', 'c.php'), 'a') as f:
                f.write("require __DIR__ . '/gen.php';\n")
        live = os.path.join(self.root, 'current', GEN)
        if os.path.exists(live):
            shutil.copy2(live, os.path.join(path, GEN))
        else:
            with open(os.path.join(path, GEN), 'w') as f:
                f.write('<?php\n// made by the build\n')
        return path

    def checked(self, what, op, n):
        before = release_files(self.root)
        op(n)
        after = release_files(self.root)
        for rel, files in before.items():
            for path in sorted(set(files) | set(after.get(rel, files))):
                if rel in after and files.get(path) != after[rel].get(path):
                    self.changed.append((what, rel, path, files.get(path), after[rel].get(path)))

    def deploy(self, n):
        self.building = n
        self.checked('deploy v%d' % n, super(CutoverBuild, self).deploy, n)

    def rollback(self, n):
        self.checked('rollback to v%d' % n, super(CutoverBuild, self).rollback, n)

    def extra_results(self):
        return {'releases_changed': len(self.changed), 'releases_changed_examples': [list(c) for c in self.changed[:5]]}


class BuildUnisolated(CutoverBuild):
    """The same with deploy_build_isolated: false, to show what the check catches."""

    isolated = False


METHODS += ['cutover-build', 'build-unisolated']
CLASSES.update({'cutover-build': CutoverBuild, 'build-unisolated': BuildUnisolated})


# --- load -------------------------------------------------------------------------------

RETRYABLE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, http.client.BadStatusLine)


class Load(object):
    """Keep-alive readers and one uploader against 127.0.0.1:port, recording every response."""

    def __init__(self, port, clients, think, upload_every, allowed=0):
        self.port = port
        self.clients = clients
        self.allowed = allowed  # more readers, from ALLOWED_CLIENT (the maintenance window's allow-list)
        self.allowed_records = []
        self.unavailable = []   # (start, end, Retry-After) of every 503 a reader got
        self.think = think
        self.upload_every = upload_every
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.records = []      # (start, end, path, status, versions:frozenset, mixed:bool)
        self.errors = collections.Counter()
        self.retries = 0
        self.uploads = []      # names the site said it stored
        self.upload_failures = collections.Counter()
        self.threads = []

    def start(self):
        for i in range(self.clients + self.allowed):
            self.threads.append(threading.Thread(target=self.reader, args=(i,), daemon=True))
        self.threads.append(threading.Thread(target=self.uploader, daemon=True))
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def connect(self, source=None):
        return http.client.HTTPConnection('127.0.0.1', self.port, timeout=30,
                                          source_address=(source, 0) if source else None)

    def reader(self, i):
        conn, used, k = None, False, i
        source = ALLOWED_CLIENT if i >= self.clients else None
        retry = None
        while not self.stop.is_set():
            path = PATHS[k % len(PATHS)]
            k += 1
            start = time.time()
            for attempt in (1, 2):
                if conn is None:
                    conn, used = self.connect(source), False
                try:
                    conn.request('GET', path)
                    resp = conn.getresponse()
                    body = resp.read().decode('utf-8', 'replace')
                    status = resp.status
                    retry = resp.getheader('Retry-After')
                    used = True
                    if resp.will_close:
                        conn.close()
                        conn = None
                    break
                except RETRYABLE as e:
                    conn.close()
                    conn, was_used = None, used
                    if was_used and attempt == 1:
                        with self.lock:
                            self.retries += 1
                        continue
                    status, body = 'error: %s' % type(e).__name__, None
                    break
                except (OSError, http.client.HTTPException) as e:
                    conn.close()
                    conn = None
                    status, body = 'error: %s' % type(e).__name__, None
                    break
            end = time.time()
            versions = frozenset(int(found[1]) for found in MARK.findall(body)) if body else frozenset()
            with self.lock:
                if body is None:
                    self.errors[status] += 1
                elif source:
                    self.allowed_records.append((start, end, path, status, versions))
                else:
                    self.records.append((start, end, path, status, versions))
                if status == 503:
                    self.unavailable.append((start, end, retry))
            if self.think:
                self.stop.wait(self.think)
        if conn is not None:
            conn.close()

    def uploader(self):
        n = 0
        while not self.stop.is_set():
            n += 1
            name = 'u%06d.txt' % n
            conn = self.connect()
            try:
                conn.request('POST', '/upload.php?name=' + name, body=b'', headers={'Connection': 'close'})
                resp = conn.getresponse()
                body = resp.read().decode('utf-8', 'replace')
                if resp.status == 200 and body.startswith('stored ' + name):
                    with self.lock:
                        self.uploads.append(name)
                else:
                    with self.lock:
                        self.upload_failures[resp.status] += 1
            except (OSError, http.client.HTTPException) as e:
                with self.lock:
                    self.upload_failures['error: %s' % type(e).__name__] += 1
            finally:
                conn.close()
            self.stop.wait(self.upload_every)


# --- Apache -----------------------------------------------------------------------------

def setup_vhosts(ansible, methods, php, workdir):
    """One run of the apache_vhost role per site, in the PHP mode asked."""
    play = os.path.join(workdir, 'vhosts.yml')
    with open(play, 'w') as f:
        json.dump([{
            'hosts': 'bench', 'gather_facts': True,
            'tasks': [{'name': 'Set up the vhost of ' + m.name,
                       'ansible.builtin.include_role': {'name': 'cutover.web.apache_vhost'},
                       'vars': dict(m.vhost(), apache_vhost_php=php)} for m in methods]}], f)
    ansible.play(play, {})


# --- one run ----------------------------------------------------------------------------

def wait_serving(port, version, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection('127.0.0.1', port, timeout=2)
            c.request('GET', '/index.php')
            body = c.getresponse().read().decode()
            if set(int(found[1]) for found in MARK.findall(body)) == {version}:
                return
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.2)
    raise RuntimeError('port %d does not serve v%d' % (port, version))


def run_method(method, args):
    """Deploy v1 quietly, then deploys and rollbacks under load; returns the counts."""
    method.prepare()
    method.deploy(1)
    method.history.append(1)
    wait_serving(method.port, 1)
    # The uploads of the years before: a media folder that takes a while to copy.
    media = method.live_media()
    seeded = ['seed%05d.jpg' % i for i in range(args.media_files)]
    blob = os.urandom(args.media_kib * 1024)
    for name in seeded:
        with open(os.path.join(media, name), 'wb') as f:
            f.write(blob)
    sh('chown -R www-data:www-data %s/.' % shlex.quote(media))
    time.sleep(args.settle)
    load = Load(method.port, args.clients, args.think_ms / 1000.0, args.upload_every,
                allowed=getattr(method, 'allowed_clients', 0))
    load.start()
    time.sleep(args.settle)
    opcache = [opcache_status(method.port)]
    ops = []
    n, deploys, rollbacks = 1, 0, 0
    every = max(1, args.deploys // max(1, args.rollbacks)) if args.rollbacks else 0
    began = time.time()
    while deploys < args.deploys or rollbacks < args.rollbacks or len(load.records) < args.min_requests:
        before = method.history[-1]
        if every and deploys and deploys % every == 0 and ops and ops[-1][4] == 'deploy' and len(method.history) > 1:
            after = method.history[-2]
            t = time.time()
            method.rollback(after)
            method.history.pop()
            rollbacks += 1
            kind = 'rollback'
        else:
            n += 1
            after = n
            t = time.time()
            method.deploy(n)
            method.history.append(n)
            deploys += 1
            kind = 'deploy'
        ops.append((t, time.time(), before, after, kind))
        log('%s: %s v%d -> v%d in %.2fs (%d requests so far)'
            % (method.name, kind, before, after, ops[-1][1] - t, len(load.records)))
        time.sleep(args.settle)
        opcache.append(opcache_status(method.port))
        log('%s: OPcache after %s: %s' % (method.name, kind, json.dumps(opcache[-1])))
    load.finish()
    elapsed = time.time() - began
    time.sleep(0.5)
    lost = [u for u in seeded + load.uploads if not os.path.exists(os.path.join(media, u))]
    counts, statuses, examples = judge(load.records, [o[:4] for o in ops], 1)
    extra = {'maintenance': maintenance_report(load, ops)} if getattr(method, 'allowed_clients', 0) else {}
    return dict(extra, **{
        'method': method.name, 'deploys': deploys, 'rollbacks': rollbacks, 'seconds': round(elapsed, 1),
        'requests': counts['requests'] + sum(load.errors.values()), 'non_2xx': dict((str(k), v) for k, v in statuses.items()),
        'connection_errors': dict(load.errors), 'keepalive_retries': load.retries,
        'mixed': counts['mixed'], 'stale': counts['stale'], 'stale_examples': examples,
        'uploads': len(load.uploads) + len(seeded), 'uploads_lost': len(lost), 'lost_examples': lost[:5],
        'upload_failures': dict((str(k), v) for k, v in load.upload_failures.items()),
        'op_seconds': sorted(round(o[1] - o[0], 2) for o in ops),
        'opcache': opcache, 'page_ms': page_ms(load.records),
        'page_ms_after_op': [page_ms(load.records, o[1], ops[i + 1][0] if i + 1 < len(ops) else float('inf'))[0]
                             for i, o in enumerate(ops)],
    })


def opcache_status(port):
    """What OPcache holds for the site on port, as its opcache-status.php says."""
    try:
        c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
        c.request('GET', '/opcache-status.php')
        return json.loads(c.getresponse().read().decode())
    except (OSError, ValueError, http.client.HTTPException) as e:
        return {'error': type(e).__name__}


def page_ms(records, after=0, before=float('inf')):
    """Median and 90th percentile of the page's (index.php) response times in ms, of the requests that
    started between after and before."""
    times = sorted((end - start) * 1000 for start, end, path, status, versions in records
                   if path == '/index.php' and status == 200 and after <= start < before)
    if not times:
        return [None, None]
    return [round(times[len(times) // 2], 1), round(times[int(len(times) * 0.9)], 1)]


def cell_counts(d):
    if not d:
        return '0'
    return '%d (%s)' % (sum(d.values()), ', '.join('%s: %d' % (k, v) for k, v in sorted(d.items())))


def table(results):
    lines = ['| PHP | method | deploys + rollbacks | s per deploy or rollback, median (max) | requests | non-2xx '
             '| connection errors | MIXED | STALE | uploads lost (of stored) | upload failures | keep-alive retries |',
             '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |']
    for r in results:
        ops = r['op_seconds']
        lines.append('| %s | %s | %d + %d | %.2f (%.2f) | %d | %s | %s | %d | %d | %d (of %d) | %s | %d |' % (
            r['php'], r['method'], r['deploys'], r['rollbacks'], ops[len(ops) // 2], ops[-1], r['requests'],
            cell_counts(r['non_2xx']), cell_counts(r['connection_errors']), r['mixed'], r['stale'],
            r['uploads_lost'], r['uploads'], cell_counts(r['upload_failures']), r['keepalive_retries']))
    return '\n'.join(lines)


def opcache_table(results):
    lines = ['| PHP | method | live release scripts cached, before and after each deploy or rollback '
             '| other releases\' scripts cached | cache full | page time after each deploy or rollback, median ms '
             '| page time over the run, median (p90) |',
             '| --- | --- | --- | --- | --- | --- | --- |']
    for r in results:
        samples = r['opcache']
        lines.append('| %s | %s | %s | %s | %d of %d | %s | %s ms (%s) |' % (
            r['php'], r['method'], ' '.join(str(s.get('live', '?')) for s in samples),
            ' '.join(str(s.get('other', '?')) for s in samples), sum(1 for s in samples if s.get('full')),
            len(samples), ' '.join(str(x) for x in r['page_ms_after_op']), r['page_ms'][0], r['page_ms'][1]))
    return '\n'.join(lines)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    p.add_argument('--php', default=','.join(PHP_MODES), help='PHP modes, comma-separated (fpm, mod_php)')
    p.add_argument('--methods', default=','.join(METHODS), help='methods, comma-separated: ' + ', '.join(METHODS))
    p.add_argument('--deploys', type=int, default=20)
    p.add_argument('--rollbacks', type=int, default=5)
    p.add_argument('--min-requests', type=int, default=20000,
                   help='each method goes on deploying (and rolling back every --deploys/--rollbacks deploys) '
                        'until this many requests were made under it')
    p.add_argument('--clients', type=int, default=4, help='keep-alive reader connections')
    p.add_argument('--think-ms', type=float, default=10.0, help='pause of each client between two requests')
    p.add_argument('--media-files', type=int, default=2000, help='files in the media folder before the first deploy')
    p.add_argument('--media-kib', type=int, default=64, help='size of each of those files')
    p.add_argument('--upload-every', type=float, default=0.05, help='seconds between uploads')
    p.add_argument('--settle', type=float, default=3.0, help='seconds of load after each deploy or rollback')
    p.add_argument('--pause-ms', type=float, default=15.0, help='pause between the includes of the page')
    p.add_argument('--opcache-mb', type=int, default=0,
                   help='OPcache size in MiB for the run (PHP-FPM sites get a PHP-FPM master of the bench\'s own, '
                        'restarted for each method; mod_php a conf.d file); 0 keeps PHP\'s own settings')
    p.add_argument('--filler', type=int, default=0,
                   help='PHP files (about 52 KiB of OPcache each) every release\'s page includes, to fill OPcache')
    p.add_argument('--migration-seconds', type=float, default=2.0,
                   help='how long the migration of each deploy of cutover-maintenance takes (in its window)')
    p.add_argument('--port', type=int, default=18091, help='first port of the sites (one per method)')
    p.add_argument('--workdir', default='/var/tmp/cutover-zero-downtime')
    p.add_argument('--venv', default=os.path.join(REPO, '.venv'))
    p.add_argument('--collections', default=os.path.join(REPO, '.work', 'collections'))
    p.add_argument('--results', default=os.path.join(BENCH, 'results'))
    p.add_argument('--expect-zero', action='store_true',
                   help='exit 1 unless cutover.web had no error, MIXED, STALE or lost upload (for tests)')
    args = p.parse_args(argv)
    args.php = [x for x in args.php.split(',') if x]
    args.methods = [x for x in args.methods.split(',') if x]
    for x in args.php:
        if x not in PHP_MODES:
            p.error('unknown PHP mode %s' % x)
    for x in args.methods:
        if x not in METHODS:
            p.error('unknown method %s' % x)
    return args


def main(argv=None):
    args = parse_args(argv)
    if os.geteuid() != 0:
        sys.exit('Run this benchmark as root: it configures Apache.')
    for tool in ('apache2ctl', 'rsync'):
        if not shutil.which(tool):
            sys.exit('%s is missing: run ./dev setup first.' % tool)
    prepare_workdir(args.workdir)
    os.chmod(args.workdir, 0o755)  # Apache and PHP walk through it
    ansible = Ansible(args.workdir, args.venv, args.collections)
    sources = os.path.join(args.workdir, 'sources')
    pause_us = int(args.pause_ms * 1000)
    ports = [args.port + i for i in range(len(args.methods))]
    info = machine_info(args.workdir)
    modules_before = apache_modules()
    started = datetime.datetime.now(datetime.timezone.utc)
    results = []
    Method.fill = args.filler
    CutoverMaintenance.migration_seconds = args.migration_seconds
    fpm = BenchFpm(args.workdir, args.opcache_mb) if args.opcache_mb else None
    try:
        for php in args.php:
            Method.fpm = fpm if php == 'fpm' else None
            if fpm is not None and php == 'mod_php' and os.path.isdir(os.path.dirname(mod_php_ini())):
                with open(mod_php_ini(), 'w') as f:
                    f.write('; cutover.web zero-downtime bench, removed after the run\n'
                            'opcache.memory_consumption=%d\nopcache.interned_strings_buffer=2\n' % args.opcache_mb)
            methods = []
            for name, port in zip(args.methods, ports):
                root = os.path.join(args.workdir, php, name)
                if issubclass(CLASSES[name], Cutover):
                    methods.append(CLASSES[name](name, root, port, sources, pause_us, ansible, php))
                else:
                    methods.append(CLASSES[name](name, root, port, sources, pause_us))
            if Method.fpm is not None:
                fpm.start()
            log('%s: setting up %d vhosts' % (php, len(methods)))
            setup_vhosts(ansible, methods, php, args.workdir)
            for m in methods:
                log('%s: %s' % (php, m.name))
                if Method.fpm is not None:
                    fpm.stop()  # a cache of its own for each method
                    fpm.start()
                r = run_method(m, args)
                r['php'] = php
                r.update(m.extra_results())
                results.append(r)
                log(json.dumps(r))
            if Method.fpm is not None:
                fpm.stop()
    finally:
        if fpm is not None:
            fpm.stop()
            if os.path.exists(mod_php_ini()):
                os.unlink(mod_php_ini())
        remove_vhosts(['zd-' + name for name in args.methods], ports, modules_before)
    report = render(args, info, started, results)
    print(report)
    os.makedirs(args.results, exist_ok=True)
    stem = os.path.join(args.results, 'zero_downtime-%s' % started.strftime('%Y%m%dT%H%M%SZ'))
    with open(stem + '.md', 'w') as f:
        f.write(report + '\n')
    with open(stem + '.json', 'w') as f:
        json.dump({'args': vars(args), 'machine': info, 'results': results}, f, indent=1)
    shutil.rmtree(args.workdir, ignore_errors=True)
    if args.expect_zero:
        bad = [r for r in results if r['method'].startswith('cutover') and 'maintenance' not in r and (
            r['non_2xx'] or r['connection_errors'] or r['mixed'] or r['stale'] or r['uploads_lost']
            or r['upload_failures'] or r.get('releases_changed'))]
        bad += [r for r in results if 'maintenance' in r and maintenance_faults(r)]
        if bad:
            sys.exit('cutover.web was not zero-downtime: %s' % json.dumps(bad))


def render(args, info, started, results):
    cmd = 'python3 bench/zero_downtime.py ' + ' '.join(shlex.quote(a) for a in sys.argv[1:])
    apache = subprocess.run(['apache2ctl', '-v'], stdout=subprocess.PIPE, check=False).stdout.decode().splitlines()
    php = subprocess.run(['php', '-v'], stdout=subprocess.PIPE, check=False).stdout.decode().splitlines() \
        if shutil.which('php') else ['?']
    return '\n'.join([
        '- Date: %s (UTC)' % started.strftime('%Y-%m-%d %H:%M'),
        '- Command: `%s`' % cmd.strip(),
        '- Machine: %s CPUs, %s; %s RAM; %s; %s' % (info['nproc'], info['cpu'], info['mem'], info['kernel'], socket.gethostname()),
        '- Apache: %s; PHP: %s' % (apache[0].split(':', 1)[-1].strip() if apache else '?', php[0] if php else '?'),
        '- Load: %d keep-alive clients (page, CSS, page, JS in a loop, %.0f ms between two requests), the page '
        'pausing %.0f ms between each of its includes; one upload every %.2f s into a media folder that held %d files of %d KiB '
        'before; %.1f s of load after each deploy or rollback.' % (
            args.clients, args.think_ms, args.pause_ms, args.upload_every, args.media_files, args.media_kib, args.settle),
        '',
        table(results),
        '',
        'OPcache (%s): scripts cached before the first and after each deploy or rollback, page times over the run.'
        % ('%d MiB, %d filler scripts per release' % (args.opcache_mb, args.filler) if args.opcache_mb
           else "PHP's own settings, %d filler scripts per release" % args.filler),
        '',
        opcache_table(results),
    ] + build_table(results) + (
        ['', 'Maintenance window (cutover-maintenance; the readers above are outside the allow-list, one more reader '
         'from %s is on it):' % ALLOWED_CLIENT, '', maintenance_table(results)]
        if any('maintenance' in r for r in results) else []))


def build_table(results):
    """The build-step methods: files of other releases changed by a deploy or a rollback."""
    rows = [r for r in results if 'releases_changed' in r]
    if not rows:
        return []
    lines = ['', 'Build steps that rewrite a shipped file in place (%s): entries of other releases (sha256, mode, owner) '
             'that a deploy or rollback changed.' % GEN, '',
             '| PHP | method | entries of other releases changed | first of them |', '| --- | --- | --- | --- |']
    for r in rows:
        first = '; '.join('%s: %s %s' % (c[0], c[1], c[2]) for c in r['releases_changed_examples'][:2])
        lines.append('| %s | %s | %d | %s |' % (r['php'], r['method'], r['releases_changed'], first or '-'))
    return lines


if __name__ == '__main__':
    main()
