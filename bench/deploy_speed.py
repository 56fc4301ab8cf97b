# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Time the whole deploy playbook against the raw rsync --link-dest + ``mv -T`` floor and ansistrano.

One command (after ``./dev setup``, which makes ``.venv`` and ``.work/collections``)::

    .venv/bin/python bench/deploy_speed.py [--files 20000 --size-mb 200 --repeat 3 --out bench/results/deploy_speed.md]
        [--ansistrano /path/to/ansistrano-deploy] [--baseline /path/to/other/checkout [--baseline-python PATH]]
        [--apache-port 18150 | --no-apache]
        [--load N]

On a generated site (the tree generator of ``bench/release_dir.py``), deploying from a directory
on the controller to this host over a local connection, it times ``ansible-playbook
cutover.web.deploy`` for a first deploy, a redeploy after a one-file change and a redeploy with
nothing changed, and ``ansible-playbook cutover.web.rollback`` (every column of the deploy playbook; with
the vhost, pointing it back too); beside, in the same run, the raw
floor: ``rsync -a --link-dest=<previous> <src>/ <new>/ && ln -s <new> tmp && mv -T tmp current``.
The playbook compares file contents by default (``deploy_checksum: true``, rsync ``-c``), so it runs
twice: as it comes, beside the floor with ``rsync -a -c``, and with ``deploy_checksum: false``
(size and mtime, as plain rsync), beside the plain floor.
It also times what any playbook costs before it does anything (``ansible-playbook`` of one debug
task) and the deploy playbook on a one-file site (every task of the deploy, no size-dependent
work), and reports them separately. Finally it makes five one-file-change releases with each
method and compares their disk use (hardlinked inodes counted once) with one release's.

With ``--ansistrano PATH`` (a checkout of github.com/ansistrano/deploy, e.g. tag 4.4.0; its
``ansible.posix.synchronize`` comes from the collections path), ansistrano.deploy is a column of
its own in the same interleaved run: its rsync strategy (``ansistrano_deploy_via: rsync``: rsync
into ``shared/.shared-copy``, then ``cp -a`` of it into the new release), keeping 5 releases as the
deploy playbook does, no anonymous stats, the same site and local connection; its first deploy,
its redeploy after the one-file change, and its disk use after four and five releases. Without
the option that column is skipped, with a message.

When run as root on a host with Apache (Debian's apache2), the deploy playbook also runs as
users run it, ``cutover_apache_vhost: true`` with a vhost of the apache_vhost role on
``--apache-port`` (PHP-FPM, the role's default), beside the same deploy without it (the Mitogen
column with the vhost has its own, ``speed-bench-mitogen`` on the next port, so that neither
column's deploys change the other's vhost); the vhosts, their release pointers, the role's records
and their Listen lines are removed at the end. Other runs that use this
host's Apache must not run at the same time (e.g. ``flock /tmp/cutover-apache.lock`` around both).
``--no-apache`` leaves that column out.

The ``modules`` column runs the module runs a deploy of the collection makes (``cutover.web.go_live`` pushing with
``ansible.posix.synchronize`` and taking the deploy lock, as the playbook does without a vhost set-up) as a playbook
of one task and nothing else: the lower bound of the deploy playbook on the machine, beside which the cost of the
roles' own tasks shows.

With ``--baseline PATH`` (another checkout of cutover.web, e.g. ``git worktree add /tmp/base COMMIT``),
that checkout's deploy playbook, with and without the vhost (its own, on the port after the Mitogen
column's), runs as columns of their own in the same interleaved run: a before/after of a change
measured side by side, not in two runs at different moments. ``--baseline-python PATH`` has the
baseline's modules run by another interpreter (the other columns' by default: Debian's
``/usr/bin/python3``, as on the hosts users deploy to, else the ``python3`` on PATH, resolved); with
this checkout as the baseline, that measures what the interpreter costs.

With ``--load N`` (0, off, by default), every redeploy (one file changed, nothing changed) of every
column runs twice in each repeat, interleaved: quiet, and while N keep-alive clients of
``bench/zero_downtime.py`` (its ``Load`` readers: its page, CSS, page, JS in a loop; no uploads)
request the cutover_apache_vhost column's site through Apache on ``--apache-port``, whichever
column deploys (the point is a busy machine, its cores shared with the clients); the site then
has the zero-downtime page and assets besides the generated files, and the vhost column runs
(it needs root and Apache). The report adds, per column and redeploy, the median quiet and
loaded times, their ratio (the target: a deploy under load <= 2 x its quiet time), the clients'
requests and their faults (answers other than 200, connection errors) during the loaded deploys.

It checks what it times: after each deploy the changed file is live (and, with the vhost, is what
Apache serves), a redeploy with nothing changed makes no release and reports ``changed=0``, and the
rollback puts the previous release live.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import glob
import http.client
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)

from _common import (  # noqa: E402
    Ansible, Changer, disk_usage, forget_sites, generate_tree, level, machine_info, mib, prepare_workdir, settle, warm)
import zero_downtime  # noqa: E402

T0 = time.perf_counter()


def log(msg):
    print('[speed %6.1fs] %s' % (time.perf_counter() - T0, msg), file=sys.stderr, flush=True)


class Cutover(object):
    """The deploy playbook; ``checksum`` is its deploy_checksum (true, the default: compare contents)."""

    def __init__(self, ansible, root, checksum=True):
        self.ansible = ansible
        self.root = root
        self.checksum = checksum
        self.label = 'cutover.web deploy playbook%s' % ('' if checksum else ', deploy_checksum: false')

    def deploy(self, src):
        return self.ansible.play('cutover.web.deploy', {'deploy_root': self.root, 'deploy_src': src,
                                                        'deploy_keep': 5, 'deploy_checksum': self.checksum})

    def rollback(self):
        return self.ansible.play('cutover.web.rollback', {'rollback_root': self.root})

    def current_dir(self):
        return os.path.realpath(os.path.join(self.root, 'current'))

    def releases(self):
        return sorted(os.listdir(os.path.join(self.root, 'releases')))

    def drained(self, limit=300.0):
        """Seconds until .cutover/trash/ is empty: what the deploy left to a process of its own to delete
        (deploy_delete_in_background), waited for so that it overlaps no other column's timed step."""
        trash = os.path.join(self.root, '.cutover', 'trash')
        started = time.perf_counter()
        while os.path.isdir(trash) and os.listdir(trash) and time.perf_counter() - started < limit:
            time.sleep(0.02)
        return time.perf_counter() - started


# The module runs a deploy of this collection makes, and nothing else: one task, go_live with a push that takes the
# deploy lock (push.take_lock), as the deploy playbook's without a vhost set-up in the same play: the push
# (synchronize's module run, on the controller) and go_live's (lock, release, switch, prune, lock given back); on a new
# root deploy_lock's first. No role, no settings check, no facts, no summary: what a deploy would cost if the roles'
# own tasks cost nothing.
MODULES_PLAYBOOK = '''- hosts: bench
  gather_facts: false
  vars:
    scratch: "{{ root }}/.cutover/staging/push-{{ run }}.{{ started }}.0.ansible"
  tasks:
    - name: Push the source, take the lock, make the release, switch, prune and give the lock back
      cutover.web.go_live:
        root: "{{ root }}"
        push: {src: "{{ src }}", checksum: true, rsync_opts: ["-F", "--link-dest={{ root }}/current/"], take_lock: true}
        release: {src: "{{ scratch }}", move_source: true, checksum: true}
        prune: {keep: 5}
        delete_in_background: true
        lock: {owner: bench, run_id: "{{ run }}", ttl: 600, give_back: true}
'''


class ModulesOnly(Cutover):
    """MODULES_PLAYBOOK: the lower bound of the deploy playbook on this machine (its module runs, start-up)."""

    def __init__(self, ansible, root, workdir):
        super(ModulesOnly, self).__init__(ansible, root)
        self.playbook = os.path.join(workdir, 'modules-only.yml')
        if not os.path.exists(self.playbook):
            with open(self.playbook, 'w') as f:
                f.write(MODULES_PLAYBOOK)

    def deploy(self, src):
        self.runs = getattr(self, 'runs', 0) + 1
        return self.ansible.play(self.playbook, {'root': self.root, 'src': src, 'run': 'bench-%d' % self.runs,
                                                 'started': int(time.time())})


class CutoverVhost(Cutover):
    """The deploy playbook as users run it: the apache_vhost role first (cutover_apache_vhost: true),
    the deploy pointing that vhost at each new release (DocumentRoot, graceful restart)."""

    def __init__(self, ansible, root, site):
        super(CutoverVhost, self).__init__(ansible, root)
        self.site = site
        self.label = 'cutover.web deploy playbook, cutover_apache_vhost: true'

    def deploy(self, src):
        return self.ansible.play('cutover.web.deploy', dict(
            self.site.vars(self.root), deploy_root=self.root, deploy_src=src, deploy_keep=5, cutover_apache_vhost=True))

    def rollback(self):
        return self.ansible.play('cutover.web.rollback', dict(
            self.site.vars(self.root), rollback_root=self.root, rollback_apache_vhost_name=self.site.NAME))

    def check_served(self):
        """Apache answers with the release current points to (the role's X-Cutover-Release header)."""
        served = self.site.served()
        if served != os.path.basename(self.current_dir()):
            raise RuntimeError('%s: Apache serves release %s, current is %s' % (self.label, served, self.current_dir()))


class ApacheSite(object):
    """One vhost of the apache_vhost role on this host's Apache, removed again by remove()."""

    def __init__(self, port, name='speed-bench'):
        self.port = port
        self.NAME = name
        # The server's PHP mode as it is: the bench does not switch it under other sites.
        mpm = subprocess.run(['a2query', '-M'], stdout=subprocess.PIPE, check=False).stdout.decode().strip()
        self.php = 'mod_php' if mpm == 'prefork' else 'fpm'

    def vars(self, root):
        return {'apache_vhost_name': self.NAME, 'apache_vhost_root': root, 'apache_vhost_port': self.port,
                'apache_vhost_php': self.php}

    def served(self):
        c = http.client.HTTPConnection('127.0.0.1', self.port, timeout=10)
        try:
            c.request('HEAD', '/', headers={'Host': 'localhost'})
            return c.getresponse().getheader('X-Cutover-Release')
        finally:
            c.close()

    def remove(self):
        """No vhost, release pointer, record of the role's set-up, Listen line or log of the bench left; Apache
        restarted gracefully."""
        forget_sites([self.NAME], [self.port])
        subprocess.run(['apache2ctl', 'graceful'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        # The vhost's logs (Debian's APACHE_LOG_DIR), which the clients of --load grow by the hundred megabytes.
        for kind in ('error', 'access'):
            path = '/var/log/apache2/cutover-%s-%s.log' % (self.NAME, kind)
            if os.path.lexists(path):
                os.unlink(path)


class SiteLoad(zero_downtime.Load):
    """The zero-downtime bench's keep-alive readers (its page, CSS, page, JS in a loop) against a site
    of this bench, without its uploader (uploads would write into the deployed releases)."""

    def uploader(self):
        pass

    def faults(self):
        """Answers other than 200 by status, and connection errors, of the requests made so far."""
        found = collections.Counter(str(rec[3]) for rec in self.records if rec[3] != 200)
        found.update(self.errors)
        return found


class Ansistrano(object):
    """ansistrano.deploy (a checkout of the role) with its rsync strategy: rsync into
    shared/.shared-copy, cp -a of that into releases/<UTC time>, the current symlink, keep 5."""

    def __init__(self, ansible, root, role, workdir):
        self.ansible = ansible
        self.root = root
        self.label = 'ansistrano.deploy, rsync strategy'
        self.playbook = os.path.join(workdir, 'ansistrano.yml')
        if not os.path.exists(self.playbook):
            with open(self.playbook, 'w') as f:
                json.dump([{'hosts': 'bench', 'gather_facts': False, 'roles': [{'role': role}]}], f)

    def deploy(self, src):
        # Its release names are UTC seconds, taken in the play: a deploy here takes well over one.
        return self.ansible.play(self.playbook, {
            'ansistrano_deploy_from': src.rstrip('/') + '/', 'ansistrano_deploy_to': self.root,
            'ansistrano_deploy_via': 'rsync', 'ansistrano_keep_releases': 5,
            'ansistrano_allow_anonymous_stats': False})

    def current_dir(self):
        return os.path.realpath(os.path.join(self.root, 'current'))

    def releases(self):
        d = os.path.join(self.root, 'releases')
        return sorted(os.listdir(d)) if os.path.isdir(d) else []


def ansistrano_role(path):
    """The checkout of ansistrano.deploy at path, or None (with the reason logged) when there is none."""
    if not path:
        log('ansistrano.deploy column skipped: no --ansistrano PATH (a checkout of github.com/ansistrano/deploy) given')
        return None
    path = os.path.abspath(path)
    if not os.path.isfile(os.path.join(path, 'tasks', 'update-code', 'rsync.yml')):
        log('ansistrano.deploy column skipped: %s is no ansistrano.deploy checkout (no tasks/update-code/rsync.yml)' % path)
        return None
    return path


def mitogen_ansible(args, workdir):
    """The playbooks run by the ansible-playbook of --mitogen VENV with its mitogen_linear strategy, or None."""
    if not args.mitogen:
        log('Mitogen columns skipped: no --mitogen VENV (a virtualenv with ansible-core and mitogen) given')
        return None
    found = glob.glob(os.path.join(args.mitogen, 'lib', 'python3*', 'site-packages', 'ansible_mitogen', 'plugins',
                                   'strategy'))
    if not found:
        log('Mitogen columns skipped: %s has no ansible_mitogen (pip install mitogen into it)' % args.mitogen)
        return None
    os.makedirs(os.path.join(workdir, 'mitogen'))
    mitogen = Ansible(os.path.join(workdir, 'mitogen'), args.mitogen, args.collections)
    mitogen.env.update(ANSIBLE_STRATEGY_PLUGINS=found[0], ANSIBLE_STRATEGY='mitogen_linear')
    return mitogen


def apache_sites(args):
    """The bench's vhosts on this host's Apache, one per column that has one (its own name and port, so
    that each column's apache_vhost role finds its own site as its last run left it), or None (with the
    reason logged)."""
    why = ('--no-apache given' if args.no_apache else 'not run as root' if os.geteuid() != 0
           else 'no apache2ctl or a2query (Debian\'s apache2)' if not (shutil.which('apache2ctl') and shutil.which('a2query'))
           else None)
    if why:
        log('cutover_apache_vhost column skipped: %s' % why)
        return None
    return {'vhost': ApacheSite(args.apache_port), 'mitogen_vhost': ApacheSite(args.apache_port + 1, 'speed-bench-mitogen'),
            'base_vhost': ApacheSite(args.apache_port + 2, 'speed-bench-base')}


def baseline_ansible(args, workdir):
    """The playbooks of the --baseline checkout of cutover.web, or None (with the reason logged)."""
    if not args.baseline:
        log('baseline columns skipped: no --baseline PATH (another checkout of cutover.web) given')
        return None
    path = os.path.abspath(args.baseline)
    if not os.path.isfile(os.path.join(path, 'playbooks', 'deploy.yml')):
        log('baseline columns skipped: %s is no checkout of cutover.web (no playbooks/deploy.yml)' % path)
        return None
    os.makedirs(os.path.join(workdir, 'baseline'))
    return Ansible(os.path.join(workdir, 'baseline'), args.venv, args.collections, repo=path, python=args.baseline_python)


class Floor(object):
    """rsync -a --link-dest=<previous> into a new directory, then ln -s + mv -T; with ``checksum``,
    rsync compares contents (-c), as the deploy playbook does by default."""

    def __init__(self, root, checksum=False):
        self.root = root
        self.n = 0
        self.checksum = checksum
        self.label = 'raw floor: rsync -a%s --link-dest + ln -s + mv -T' % (' -c' if checksum else '')
        os.makedirs(os.path.join(root, 'releases'))

    def deploy(self, src):
        self.n += 1
        rid = 'r%04d' % self.n
        new = os.path.join(self.root, 'releases', rid)
        cur = os.path.join(self.root, 'current')
        prev = os.path.realpath(cur) if os.path.islink(cur) else None
        tmp = os.path.join(self.root, '.current.tmp')
        q = shlex.quote
        script = 'rsync -a%s %s%s/ %s/ && ln -s %s %s && mv -T %s %s' % (
            ' -c' if self.checksum else '', ('--link-dest=%s ' % q(prev)) if prev else '', q(src), q(new), q('releases/' + rid), q(tmp), q(tmp),
            q(cur))
        t = time.perf_counter()
        proc = subprocess.run(['sh', '-c', script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
        elapsed = time.perf_counter() - t
        if proc.returncode != 0:
            raise RuntimeError('the rsync floor failed: %s' % proc.stdout.decode('utf-8', 'replace'))
        return elapsed, {}

    def current_dir(self):
        return os.path.realpath(os.path.join(self.root, 'current'))


TITLES = {
    'cut': 'cutover.web playbook (contents compared, the default)',
    'floor_c': 'raw floor, rsync -a -c',
    'quick': 'cutover.web playbook, deploy_checksum: false',
    'floor': 'raw floor, rsync -a',
    'vhost': 'cutover.web playbook, cutover_apache_vhost: true',
    'modules': 'its module runs alone (go_live with its push, taking the lock)',
    'ansistrano': 'ansistrano.deploy, rsync strategy',
    'mitogen': 'cutover.web playbook under Mitogen (mitogen_linear)',
    'mitogen_vhost': 'cutover.web playbook, cutover_apache_vhost: true, under Mitogen',
    'base_cut': 'baseline: cutover.web playbook of --baseline',
    'base_vhost': 'baseline: cutover.web playbook of --baseline, cutover_apache_vhost: true',
}


def git_describe(path):
    out = subprocess.run(['git', '-C', path, 'describe', '--tags', '--always'], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, check=False).stdout.decode().strip()
    return 'git describe: %s' % (out or '?')


def med(xs):
    return statistics.median(xs) if xs else float('nan')


def cell(xs):
    return '%.2f (%.2f-%.2f)' % (med(xs), min(xs), max(xs)) if xs else 'n/a'


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--files', type=int, default=20000, help='files in the generated site')
    p.add_argument('--size-mb', type=float, default=200, help='total size of the site in MiB')
    p.add_argument('--repeat', type=int, default=3, help='timed repeats of every step')
    p.add_argument('--out', default=os.path.join(REPO, 'bench', 'results', 'deploy_speed.md'), help='report file')
    p.add_argument('--workdir', default='/var/tmp/cutover-speed', help='work dir (removed at the end)')
    p.add_argument('--seed', type=int, default=20261122, help='seed of the site generator')
    p.add_argument('--files-per-dir', type=int, default=10, help='average files per directory')
    p.add_argument('--image-share', type=float, default=0.05, help='share of files that are large images')
    p.add_argument('--venv', default=os.path.join(REPO, '.venv'), help='virtualenv with ansible-core')
    p.add_argument('--collections', default=os.path.join(REPO, '.work', 'collections'),
                   help='collections path holding ansible.posix (./dev setup makes it)')
    p.add_argument('--keep', action='store_true', help='keep the work dir')
    p.add_argument('--ansistrano', metavar='PATH', help='a checkout of ansistrano.deploy (e.g. tag 4.4.0): '
                   'adds its rsync strategy as a column (skipped without it)')
    p.add_argument('--apache-port', type=int, default=18150, help='port of the vhost of the cutover_apache_vhost column')
    p.add_argument('--no-apache', action='store_true', help='leave out the cutover_apache_vhost column')
    p.add_argument('--no-disk', action='store_true', help='leave out the disk use of five releases')
    p.add_argument('--mitogen', metavar='VENV', help='a virtualenv with ansible-core and mitogen: adds the deploy '
                   'playbook run by its ansible-playbook with the mitogen_linear strategy as columns (skipped without it)')
    p.add_argument('--baseline', metavar='PATH', help='another checkout of cutover.web (e.g. git worktree add PATH '
                   'COMMIT): its deploy playbook, with and without the vhost, as columns of their own, interleaved')
    p.add_argument('--baseline-python', metavar='PATH', help='the interpreter that runs the baseline columns\' modules '
                   '(default: the other columns\', /usr/bin/python3 where it exists)')
    p.add_argument('--methods', default=','.join(TITLES),
                   help='comma-separated columns to run (cut and floor always run: the targets need them)')
    p.add_argument('--load', type=int, default=0, metavar='N',
                   help='run every redeploy twice, interleaved: quiet and while N clients of bench/zero_downtime.py '
                        'request the cutover_apache_vhost column\'s site (needs that column); 0: quiet only')
    p.add_argument('--history', type=int, default=0, metavar='N',
                   help='after the first deploy of a repeat, every column deploys N more times, untimed, one file '
                        'changed each time: with N >= 4 the roots hold the 5 releases kept, and each redeploy that '
                        'makes a release prunes one, as on a site deployed for a while; 0: the redeploys find 1 and 2 '
                        'releases, and prune none')
    args = p.parse_args(argv)
    if args.load < 0:
        p.error('--load takes a number of clients, 0 or more')
    if args.history < 0:
        p.error('--history takes a number of deploys, 0 or more')
    return args


def check_live(method, changer, expected):
    with open(os.path.join(method.current_dir(), changer.rel), 'rb') as f:
        if f.read() != expected:
            raise RuntimeError('%s: the changed file is not live after the deploy' % method.label)


def timed_deploy(method, src, load):
    """method.deploy(src); with load (a SiteLoad), while its clients run: they start 1 s before the deploy
    and stop when it returns. Returns elapsed, the recap, the load's record (None without load)."""
    if load is None:
        elapsed, recap = method.deploy(src)
        return elapsed, recap, None
    load.start()
    try:
        time.sleep(1.0)
        elapsed, recap = method.deploy(src)
    finally:
        load.finish()
    return elapsed, recap, {'requests': len(load.records) + sum(load.errors.values()), 'seconds': elapsed + 1.0,
                            'ok': sum(1 for rec in load.records if rec[3] == 200), 'faults': load.faults(),
                            'retries': load.retries}


def run(args, ansible, workdir, src, tiny, changer, tiny_changer, keys, steps, t, checks, role, site, mitogen, base):
    """The timed repeats, interleaved, then the disk use of five releases per method; returns the latter.
    With --load, each redeploy step runs twice, quiet (t[key, step]) and under load (t[key, step, 'load'],
    the clients' counts in t['load', key, step]), which of the two first alternating by repeat."""
    zd = zero_downtime.parse_args([])  # its clients' defaults: think time
    for r in range(args.repeat):
        log('repeat %d/%d' % (r + 1, args.repeat))
        t['startup'].append(ansible.play(ansible.trivial, {})[0])
        small = Cutover(ansible, os.path.join(workdir, 'tiny-root.%d' % r))
        small.deploy(tiny)
        tiny_changer.change()
        t['fixed'].append(small.deploy(tiny)[0])

        makers = {
            'cut': lambda: Cutover(ansible, os.path.join(workdir, 'cutover.%d' % r)),
            'floor_c': lambda: Floor(os.path.join(workdir, 'floor-c.%d' % r), checksum=True),
            'quick': lambda: Cutover(ansible, os.path.join(workdir, 'cutover-quick.%d' % r), checksum=False),
            'floor': lambda: Floor(os.path.join(workdir, 'floor.%d' % r)),
            'vhost': lambda: CutoverVhost(ansible, os.path.join(workdir, 'cutover-vhost.%d' % r), site['vhost']),
            'modules': lambda: ModulesOnly(ansible, os.path.join(workdir, 'modules.%d' % r), workdir),
            'ansistrano': lambda: Ansistrano(ansible, os.path.join(workdir, 'ansistrano.%d' % r), role, workdir),
            'mitogen': lambda: Cutover(mitogen, os.path.join(workdir, 'mitogen.%d' % r)),
            'mitogen_vhost': lambda: CutoverVhost(mitogen, os.path.join(workdir, 'mitogen-vhost.%d' % r), site['mitogen_vhost']),
            'base_cut': lambda: Cutover(base, os.path.join(workdir, 'base.%d' % r)),
            'base_vhost': lambda: CutoverVhost(base, os.path.join(workdir, 'base-vhost.%d' % r), site['base_vhost']),
        }
        methods = {key: makers[key]() for key in keys}
        for key, method in methods.items():
            method.label = TITLES[key]
        settle()
        phases = ('quiet', 'load') if r % 2 == 0 else ('load', 'quiet')
        for step, phase in [(step, phase) for step in steps for phase in (phases if args.load and step != 'first' else ('quiet',))]:
            expected = changer.change() if step == 'onefile' else None
            # Rotate who goes first, and give all warm caches and no one else's writeback.
            order = list(keys[r % len(keys):] + keys[:r % len(keys)])
            for key in order:
                method = methods[key]
                if step == 'nochange' and key == 'ansistrano':
                    continue  # it makes a release every time: the one-file case says what that costs
                warm(src, read=True)
                level()
                before = method.releases() if step == 'nochange' and isinstance(method, Cutover) else None
                load = SiteLoad(site['vhost'].port, args.load, zd.think_ms / 1000.0, 0) if phase == 'load' else None
                elapsed, recap, seen = timed_deploy(method, src, load)
                if isinstance(method, Cutover):
                    t.setdefault((key, step, 'drain'), []).append(method.drained())
                if seen is None:
                    t[key, step].append(elapsed)
                else:
                    t[key, step, 'load'].append(elapsed)
                    t['load', key, step].append(seen)
                    if not seen['ok']:
                        checks.append('repeat %d: the clients got no 200 answer during the loaded %s redeploy of %s (%s)'
                                      % (r + 1, step, key, json.dumps(seen['faults'])))
                if before is not None:
                    if method.releases() != before:
                        checks.append('repeat %d: the unchanged redeploy (%s) made a release' % (r + 1, key))
                    if recap.get('changed') != 0:
                        checks.append('repeat %d: the unchanged redeploy (%s) reported changed=%s'
                                      % (r + 1, key, recap.get('changed')))
                if expected is not None:
                    check_live(method, changer, expected)
                if isinstance(method, CutoverVhost):
                    method.check_served()
                under = '' if seen is None else ' under load: %d requests, faults %s' % (seen['requests'], json.dumps(seen['faults']))
                log('  %-9s %-60s %.2fs%s' % (step, method.label, elapsed, under))
            if step == 'first':
                # A vhost column's set-up changes what the record of another's watches (the enabled sites, the Listen
                # lines), and that one's next deploy sets its site up again: each is deployed once more, untimed, so
                # that the redeploys measure a site nothing changed in.
                for key in order:
                    if isinstance(methods[key], CutoverVhost):
                        methods[key].deploy(src)
                        methods[key].drained()
                if args.history:
                    log('  history: %d untimed deploys per column' % args.history)
                for dummy in range(args.history):
                    changer.change()
                    for key in order:
                        methods[key].deploy(src)
                        getattr(methods[key], 'drained', lambda: 0)()
                if args.history:
                    settle()
        # Each column of the deploy playbook rolls back with the rollback playbook (with the vhost: pointing it back).
        for key in order:
            method = methods[key]
            if not isinstance(method, Cutover):
                continue
            previous = method.current_dir()
            elapsed, recap = method.rollback()
            t[key, 'rollback'].append(elapsed)
            method.drained()
            if method.current_dir() == previous:
                checks.append('repeat %d: the rollback of %s did not move current' % (r + 1, key))
            if isinstance(method, CutoverVhost):
                method.check_served()
            log('  rollback  %-60s %.2fs' % (method.label, elapsed))

    disk = {}
    if args.no_disk:
        return disk
    log('disk: five one-file-change releases per method')
    for name, method in (('cutover', Cutover(ansible, os.path.join(workdir, 'disk-cutover'))),
                         ('floor', Floor(os.path.join(workdir, 'disk-floor')))) + (
            (('ansistrano', Ansistrano(ansible, os.path.join(workdir, 'disk-ansistrano'), role, workdir)),) if role else ()):
        releases = os.path.join(method.root, 'releases')
        drained = getattr(method, 'drained', lambda: 0)
        method.deploy(src)
        drained()
        one, rel_one = disk_usage(method.root), disk_usage(releases)
        for i in range(4):
            if i == 3:
                four = disk_usage(method.root)
            changer.change()
            method.deploy(src)
            drained()
        disk[name] = {'one': one, 'four': four, 'five': disk_usage(method.root), 'rel_one': rel_one,
                      'rel_five': disk_usage(releases)}
    return disk


def load_table(args, t, keys, steps, site, tree, info):
    """The report's section on the redeploys under load: quiet and loaded times side by side, and what
    the clients saw."""
    zd = zero_downtime.parse_args([])
    lines = ['', 'Under load (--load %d): every redeploy ran twice in each repeat, quiet (the times above) and while %d '
             'keep-alive clients of bench/zero_downtime.py (its page, pausing %.0f ms between its includes, then CSS, '
             'page, JS in a loop, %.0f ms between two requests; no uploads) requested the cutover_apache_vhost column\'s '
             'site on port %d (Apache, PHP: %s), whichever method deployed: %s CPUs shared by the clients, Apache, PHP '
             'and the deploy. The clients start 1 s before the deploy and stop when it returns; which of quiet and '
             'loaded goes first alternates by repeat. For it the site has the zero-downtime page and assets (%d files) '
             'besides the generated ones. Faults: answers other than 200 and connection errors.' % (
                 args.load, args.load, zd.pause_ms, zd.think_ms, site.port, site.php, info['nproc'], tree['load_files']),
             '',
             '| method | redeploy | quiet, s | under load, s | under load / quiet | requests (per s) | faults | '
             'keep-alive retries |',
             '| --- | --- | --- | --- | --- | --- | --- | --- |']
    for key in keys:
        for step, title in zip(steps, ('one file changed', 'nothing changed')):
            quiet, loaded, seen = t[key, step], t[key, step, 'load'], t['load', key, step]
            if not loaded:
                continue
            faults = collections.Counter()
            for each in seen:
                faults.update(each['faults'])
            requests = sum(each['requests'] for each in seen)
            lines.append('| %s | %s | %s | %s | %.2fx | %d (%.0f) | %s | %d |' % (
                TITLES[key], title, cell(quiet), cell(loaded), med(loaded) / med(quiet), requests,
                requests / sum(each['seconds'] for each in seen), zero_downtime.cell_counts(faults),
                sum(each['retries'] for each in seen)))
    return lines


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    command = shlex.join(['.venv/bin/python', os.path.relpath(os.path.abspath(__file__), os.getcwd())] + sys.argv[1:])
    started = datetime.datetime.now(datetime.timezone.utc)
    workdir = prepare_workdir(args.workdir)
    try:
        ansible = Ansible(workdir, args.venv, args.collections)
        src = os.path.join(workdir, 'src')
        os.makedirs(src)
        log('generating %d files, %.0f MiB in %s' % (args.files, args.size_mb, src))
        tree = generate_tree(src, args.files, args.size_mb, args.seed, args.files_per_dir, args.image_share)
        if args.load:
            # The page and assets the zero-downtime bench's clients request (its public/index.php replaces the
            # generated one, which requires a file the site does not have).
            before = sum(len(names) for dummy_d, dummy_s, names in os.walk(src))
            zero_downtime.write_version(src, 1, int(zero_downtime.parse_args([]).pause_ms * 1000))
            tree['load_files'] = sum(len(names) for dummy_d, dummy_s, names in os.walk(src)) - before
        changer = Changer(src, tree['change_path'])
        tiny = os.path.join(workdir, 'tiny')
        os.makedirs(os.path.join(tiny, 'public'))
        with open(os.path.join(tiny, 'public', 'index.php'), 'w') as f:
            f.write('<?php echo "tiny";\n')
        tiny_changer = Changer(tiny, 'public/index.php')

        # Four methods: the playbook as it comes (contents compared) beside the floor that compares
        # contents too (rsync -c), and the playbook comparing size and mtime beside the plain floor;
        # then, when there are, the playbook with the Apache vhost and ansistrano.deploy.
        role = ansistrano_role(args.ansistrano) if 'ansistrano' in args.methods.split(',') else None
        site = apache_sites(args) if args.load or {'vhost', 'mitogen_vhost', 'base_vhost'} & set(args.methods.split(',')) else None
        if site is not None:
            os.chmod(workdir, 0o755)  # Apache and PHP walk through it
        wanted = set(args.methods.split(',')) | {'cut', 'floor'}
        if args.load:
            if not site:
                sys.exit('--load needs the cutover_apache_vhost column (root, Debian\'s apache2, no --no-apache): '
                         'its site is what the clients request.')
            wanted.add('vhost')  # the clients request its site, whichever method deploys
        if not site:
            wanted.discard('vhost')
        if not role:
            wanted.discard('ansistrano')
        mitogen = mitogen_ansible(args, workdir) if wanted & {'mitogen', 'mitogen_vhost'} else None
        if not mitogen:
            wanted -= {'mitogen', 'mitogen_vhost'}
        base = baseline_ansible(args, workdir) if wanted & {'base_cut', 'base_vhost'} else None
        if not base:
            wanted -= {'base_cut', 'base_vhost'}
        if not site:
            wanted -= {'mitogen_vhost', 'base_vhost'}
        keys = tuple(key for key in TITLES if key in wanted)
        steps = ('first', 'onefile', 'nochange')
        t = {k: [] for k in ('startup', 'fixed')}
        t.update({(key, step): [] for key in keys for step in steps + ('rollback',)})
        if args.load:
            t.update({(key, step, 'load'): [] for key in keys for step in steps[1:]})
            t.update({('load', key, step): [] for key in keys for step in steps[1:]})
        checks = []

        log('warm-up: one untimed deploy')
        Cutover(ansible, os.path.join(workdir, 'warmup')).deploy(tiny)
        try:
            disk = run(args, ansible, workdir, src, tiny, changer, tiny_changer, keys, steps, t, checks, role, site,
                       mitogen, base)
        finally:
            for each in (site or {}).values():
                each.remove()
        log('seconds: %s' % json.dumps({'/'.join(k) if isinstance(k, tuple) else k: v for k, v in t.items()}))
        startup = med(t['startup'])

        def target(label, ours, floor_key):
            floor = med(t[floor_key, 'onefile'])
            budget = 3 * floor + startup
            mine = med(t[ours, 'onefile'])
            return '| one-file redeploy, %s <= 3 x floor + ansible-playbook start-up (%.2f x 3 + %.2f = %.2f s) | ' \
                   '%.2f s | %s |' % (label, floor, startup, budget, mine, 'PASS' if mine <= budget else 'FAIL')

        info = machine_info(workdir)
        lines = [
            '# Deploy playbook speed (bench/deploy_speed.py)',
            '',
            'Run %s UTC with `%s`.' % (started.strftime('%Y-%m-%d %H:%M'), command),
            '',
            'Machine: %s, %s CPUs, %s RAM, %s; %s; %s; Python %s.' % (
                info['cpu'], info['nproc'], info['mem'], info['kernel'], info['fs'], info['rsync'], info['python']),
            '',
            'Site: %d files, %s, %d directories (seed %d). Deploy from a directory on the controller to this host '
            '(local connection, modules run by %s), keeping 5 releases; no Apache vhost but in the '
            'cutover_apache_vhost column. Seconds, median (min-max) of %d repeats, the methods interleaved (who goes '
            'first rotates)%s. After each deploy of a cutover.web column the bench waits, untimed, until its '
            '.cutover/trash/ is empty (what a deploy leaves to a process of its own to delete, '
            'deploy_delete_in_background), so that no deletion overlaps a timed step; the rows "then, until the '
            'deleting process was done" give that wait, where there was one.' % (
                tree['files'], mib(tree['bytes']), tree['dirs'], args.seed, ansible.python, args.repeat,
                '; after the first deploy of a repeat every column deployed %d more times, untimed, one file changed '
                'each time (--history), so the redeploys found %d releases%s' % (
                    args.history, min(args.history + 1, 5) if args.history else 1,
                    ', and a redeploy that made a release pruned one' if args.history >= 4 else '')
                if args.history else ''),
            '',
            '| step | %s |' % ' | '.join(TITLES[key] for key in keys),
            '|%s' % (' --- |' * (len(keys) + 1)),
        ]
        for step, title in zip(steps, ('first deploy', 'redeploy, one file changed', 'redeploy, nothing changed')):
            lines.append('| %s | %s |' % (title, ' | '.join(cell(t[key, step]) for key in keys)))
        lines.append('| rollback | %s |' % ' | '.join(cell(t[key, 'rollback']) for key in keys))
        for step, title in zip(steps, ('first deploy', 'one file changed', 'nothing changed')):
            drains = [t.get((key, step, 'drain'), []) for key in keys]
            if any(d and max(d) >= 0.01 for d in drains):
                lines.append('| then, until the deleting process was done (%s) | %s |' % (
                    title, ' | '.join(cell(d) if d else 'n/a' for d in drains)))
        if site is not None:
            lines += ['', 'cutover_apache_vhost column: the apache_vhost role (apache_vhost_php: %s, this server\'s mode) '
                      'with a vhost on port %d of this host\'s Apache, set up by the first deploy of each repeat; '
                      'nothing in the vhost changes after it: once every column made its first deploy, each vhost column '
                      'deploys once more, untimed, as another column\'s set-up changes what its record watches (the '
                      'enabled sites, the Listen lines) (the Mitogen and baseline columns have vhosts of their own, '
                      'on ports %d and %d).'
                      % (site['vhost'].php, site['vhost'].port, site['mitogen_vhost'].port, site['base_vhost'].port)]
        if base is not None:
            lines += ['', 'Baseline columns: the playbooks of the checkout at %s (%s), beside this one (%s); modules run by '
                      '%s.' % (os.path.abspath(args.baseline), git_describe(args.baseline), git_describe(REPO), base.python)]
        if mitogen is not None:
            lines += ['', 'Mitogen columns: the same playbook run by %s with the mitogen_linear strategy of %s.' % (
                os.path.join(args.mitogen, 'bin', 'ansible-playbook'), mitogen.env['ANSIBLE_STRATEGY_PLUGINS'])]
        if role is None:
            lines += ['', 'ansistrano.deploy: not measured (no --ansistrano PATH).']
        else:
            lines += ['', 'ansistrano.deploy: the checkout at %s (%s), ansistrano_deploy_via: rsync, '
                      'ansistrano_keep_releases: 5, no anonymous stats; it makes a release on every deploy, so it has '
                      'no unchanged redeploy.' % (role, git_describe(role))]
        lines += [
            '',
            'Fixed costs, reported separately: `ansible-playbook` of one debug task (start-up) %s s; the whole '
            'deploy playbook on a one-file site (every task, nothing size-dependent) %s s.' % (
                cell(t['startup']), cell(t['fixed'])),
            '',
            '| target | measured | result |',
            '| --- | --- | --- |',
        ] + [target(label, ours, floor) for label, ours, floor in (
            ('contents compared (default), beside rsync -a -c', 'cut', 'floor_c'),
            ('deploy_checksum: false, beside rsync -a', 'quick', 'floor'),
            ('contents compared (default), beside rsync -a', 'cut', 'floor')) if ours in keys and floor in keys] + [
            '| unchanged redeploy makes no release, changed=0 | %s | %s |' % (
                'no release made' if not any('unchanged' in c for c in checks) else '; '.join(checks),
                'PASS' if not any('unchanged' in c for c in checks) else 'FAIL'),
        ] + ['| rollback, %s, under 3 s wall | %.2f s (max %.2f) | %s |' % (
            TITLES[key], med(t[key, 'rollback']), max(t[key, 'rollback']), 'PASS' if max(t[key, 'rollback']) < 3 else 'FAIL')
            for key in ('cut', 'vhost') if key in keys]
        for fast, slow in (('mitogen', 'cut'), ('mitogen_vhost', 'vhost'), ('cut', 'base_cut'), ('vhost', 'base_vhost'),
                           ('modules', 'cut')):
            for step, title in (('onefile', 'one-file redeploy'), ('rollback', 'rollback')):
                if fast in keys and slow in keys:
                    lines.append('| %s, %s / %s (no target) | %.2f s / %.2f s = %.2fx | |' % (
                        title, TITLES[fast], TITLES[slow], med(t[fast, step]), med(t[slow, step]),
                        med(t[fast, step]) / med(t[slow, step])))
        first, floor_first = med(t['cut', 'first']), med(t['floor', 'first'])
        lines.append('| first deploy <= 2 x raw floor (rsync -a) | %.2f s vs %.2f s = %.2fx | %s |' % (
            first, floor_first, first / floor_first, 'PASS' if first <= 2 * floor_first else 'FAIL'))
        if 'vhost' in keys:
            vhost, plain = med(t['vhost', 'onefile']), med(t['cut', 'onefile'])
            lines.append('| one-file redeploy: cutover_apache_vhost with nothing to change <= 0.5 s over the same deploy '
                         'without it | %.2f s - %.2f s = %+.2f s | %s |' % (
                             vhost, plain, vhost - plain, 'PASS' if vhost - plain <= 0.5 else 'FAIL'))
            budget = med(t['floor', 'onefile']) + startup + 1.5
            lines.append('| one-file redeploy with cutover_apache_vhost <= raw floor + ansible-playbook start-up + 1.5 s '
                         '(%.2f + %.2f + 1.5 = %.2f s) | %.2f s | %s |' % (
                             med(t['floor', 'onefile']), startup, budget, vhost, 'PASS' if vhost <= budget else 'FAIL'))
        for key in ('cut', 'vhost') if args.load else ():
            quiet, loaded = med(t[key, 'onefile']), med(t[key, 'onefile', 'load'])
            lines.append('| one-file redeploy under load (%d clients, below), %s <= 2 x quiet | %.2f s / %.2f s = %.2fx | %s |' % (
                args.load, TITLES[key], loaded, quiet, loaded / quiet, 'PASS' if loaded <= 2 * quiet else 'FAIL'))
        if role is not None:
            theirs = med(t['ansistrano', 'onefile'])
            for key in ('vhost', 'cut', 'mitogen_vhost', 'mitogen'):
                if key in keys:
                    mine = med(t[key, 'onefile'])
                    lines.append('| one-file redeploy, %s <= 0.25 x ansistrano.deploy | %.2f s / %.2f s = %.2fx | %s |' % (
                        TITLES[key], mine, theirs, mine / theirs, 'PASS' if mine <= 0.25 * theirs else 'FAIL'))
            lines.append('| first deploy, %s / ansistrano.deploy (no target) | %.2f s / %.2f s = %.2fx | |' % (
                TITLES['cut'], first, med(t['ansistrano', 'first']), first / med(t['ansistrano', 'first'])))
        for name, label in (('cutover', 'cutover.web'), ('floor', 'raw floor')) if disk else ():
            d = disk[name]
            ratio = d['rel_five']['total'] / float(d['rel_one']['total'])
            lines.append('| five releases <= 1.1 x one (releases/ only): %s | %s vs %s = %.3fx | %s |' % (
                label, mib(d['rel_five']['total']), mib(d['rel_one']['total']), ratio, 'PASS' if ratio <= 1.1 else 'FAIL'))
        if disk:
            whole = disk['cutover']['five']['total'] / float(disk['floor']['rel_one']['total'])
            lines.append('| five releases <= 1.1 x one release: cutover.web whole root (with .cutover/: '
                         'manifests, history) vs one raw release | %s vs %s = %.3fx | %s |' % (
                             mib(disk['cutover']['five']['total']), mib(disk['floor']['rel_one']['total']), whole,
                             'PASS' if whole <= 1.1 else 'FAIL'))
            lines += ['', 'Disk detail (bytes allocated, each inode once; ansistrano\'s whole root holds its '
                      'shared/.shared-copy):', '',
                      '| | releases/, one | releases/, five | whole root, one | whole root, four | whole root, five | '
                      'directories in five |',
                      '| --- | --- | --- | --- | --- | --- | --- |']
        for name in sorted(disk):
            d = disk[name]
            lines.append('| %s | %s | %s | %s | %s | %s | %s |' % (
                name, mib(d['rel_one']['total']), mib(d['rel_five']['total']), mib(d['one']['total']),
                mib(d['four']['total']), mib(d['five']['total']), mib(d['rel_five']['dirs'])))
        if args.load:
            lines += load_table(args, t, keys, steps[1:], site['vhost'], tree, info)
        if checks:
            lines += ['', 'Checks that failed:', ''] + ['- ' + c for c in checks]
        report = '\n'.join(lines) + '\n'
        print(report)
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            f.write(report)
        log('report written to %s' % args.out)
        return 1 if checks else 0
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
