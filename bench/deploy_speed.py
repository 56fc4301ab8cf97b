# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Time the whole deploy playbook against the raw rsync --link-dest + ``mv -T`` floor.

One command (after ``./dev setup``, which makes ``.venv`` and ``.work/collections``)::

    .venv/bin/python bench/deploy_speed.py [--files 20000 --size-mb 200 --repeat 3 --out bench/results/deploy_speed.md]

On a generated site (the tree generator of ``bench/release_dir.py``), deploying from a directory
on the controller to this host over a local connection, it times ``ansible-playbook
cutover.web.deploy`` for a first deploy, a redeploy after a one-file change and a redeploy with
nothing changed, and ``ansible-playbook cutover.web.rollback``; beside, in the same run, the raw
floor: ``rsync -a --link-dest=<previous> <src>/ <new>/ && ln -s <new> tmp && mv -T tmp current``.
The playbook compares file contents by default (``deploy_checksum: true``, rsync ``-c``), so it runs
twice: as it comes, beside the floor with ``rsync -a -c``, and with ``deploy_checksum: false``
(size and mtime, as plain rsync), beside the plain floor.
It also times what any playbook costs before it does anything (``ansible-playbook`` of one debug
task) and the deploy playbook on a one-file site (every task of the deploy, no size-dependent
work), and reports them separately. Finally it makes five one-file-change releases with each
method and compares their disk use (hardlinked inodes counted once) with one release's.

It checks what it times: after each deploy the changed file is live, a redeploy with nothing
changed makes no release and reports ``changed=0``, and the rollback puts the previous release live.
"""

from __future__ import annotations

import argparse
import datetime
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
    Ansible, Changer, disk_usage, generate_tree, level, machine_info, mib, prepare_workdir, settle, warm)

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
                                                        'deploy_keep': 10, 'deploy_checksum': self.checksum})

    def rollback(self):
        return self.ansible.play('cutover.web.rollback', {'rollback_root': self.root})

    def current_dir(self):
        return os.path.realpath(os.path.join(self.root, 'current'))

    def releases(self):
        return sorted(os.listdir(os.path.join(self.root, 'releases')))


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
    return p.parse_args(argv)


def check_live(method, changer, expected):
    with open(os.path.join(method.current_dir(), changer.rel), 'rb') as f:
        if f.read() != expected:
            raise RuntimeError('%s: the changed file is not live after the deploy' % method.label)


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
        changer = Changer(src, tree['change_path'])
        tiny = os.path.join(workdir, 'tiny')
        os.makedirs(os.path.join(tiny, 'public'))
        with open(os.path.join(tiny, 'public', 'index.php'), 'w') as f:
            f.write('<?php echo "tiny";\n')
        tiny_changer = Changer(tiny, 'public/index.php')

        # Four methods: the playbook as it comes (contents compared) beside the floor that compares
        # contents too (rsync -c), and the playbook comparing size and mtime beside the plain floor.
        keys = ('cut', 'floor_c', 'quick', 'floor')
        steps = ('first', 'onefile', 'nochange')
        t = {k: [] for k in ('startup', 'fixed', 'rollback')}
        t.update({(key, step): [] for key in keys for step in steps})
        checks = []

        log('warm-up: one untimed deploy')
        Cutover(ansible, os.path.join(workdir, 'warmup')).deploy(tiny)

        for r in range(args.repeat):
            log('repeat %d/%d' % (r + 1, args.repeat))
            t['startup'].append(ansible.play(ansible.trivial, {})[0])
            small = Cutover(ansible, os.path.join(workdir, 'tiny-root.%d' % r))
            small.deploy(tiny)
            tiny_changer.change()
            t['fixed'].append(small.deploy(tiny)[0])

            methods = {
                'cut': Cutover(ansible, os.path.join(workdir, 'cutover.%d' % r)),
                'floor_c': Floor(os.path.join(workdir, 'floor-c.%d' % r), checksum=True),
                'quick': Cutover(ansible, os.path.join(workdir, 'cutover-quick.%d' % r), checksum=False),
                'floor': Floor(os.path.join(workdir, 'floor.%d' % r)),
            }
            settle()
            for step in steps:
                expected = changer.change() if step == 'onefile' else None
                # Rotate who goes first, and give all warm caches and no one else's writeback.
                order = list(keys[r % len(keys):] + keys[:r % len(keys)])
                for key in order:
                    method = methods[key]
                    warm(src, read=True)
                    level()
                    before = method.releases() if step == 'nochange' and isinstance(method, Cutover) else None
                    elapsed, recap = method.deploy(src)
                    t[key, step].append(elapsed)
                    if before is not None:
                        if method.releases() != before:
                            checks.append('repeat %d: the unchanged redeploy (%s) made a release' % (r + 1, key))
                        if recap.get('changed') != 0:
                            checks.append('repeat %d: the unchanged redeploy (%s) reported changed=%s'
                                          % (r + 1, key, recap.get('changed')))
                    if expected is not None:
                        check_live(method, changer, expected)
                    log('  %-9s %-60s %.2fs' % (step, method.label, elapsed))
            cut = methods['cut']
            previous = cut.current_dir()
            elapsed, recap = cut.rollback()
            t['rollback'].append(elapsed)
            if cut.current_dir() == previous:
                checks.append('repeat %d: the rollback did not move current' % (r + 1))
            log('  rollback  %.2fs' % elapsed)

        log('disk: five one-file-change releases per method')
        disk = {}
        for name, method in (('cutover', Cutover(ansible, os.path.join(workdir, 'disk-cutover'))),
                             ('floor', Floor(os.path.join(workdir, 'disk-floor')))):
            releases = os.path.join(method.root, 'releases')
            method.deploy(src)
            one, rel_one = disk_usage(method.root), disk_usage(releases)
            for dummy_i in range(4):
                changer.change()
                method.deploy(src)
            disk[name] = {'one': one, 'five': disk_usage(method.root), 'rel_one': rel_one,
                          'rel_five': disk_usage(releases)}

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
            '(local connection), no Apache vhost. Seconds, median (min-max) of %d repeats.' % (
                tree['files'], mib(tree['bytes']), tree['dirs'], args.seed, args.repeat),
            '',
            '| step | cutover.web playbook (contents compared, the default) | raw floor, rsync -a -c | '
            'cutover.web playbook, deploy_checksum: false | raw floor, rsync -a |',
            '| --- | --- | --- | --- | --- |',
        ]
        for step, title in zip(steps, ('first deploy', 'redeploy, one file changed', 'redeploy, nothing changed')):
            lines.append('| %s | %s |' % (title, ' | '.join(cell(t[key, step]) for key in keys)))
        lines.append('| rollback | %s | n/a | n/a | n/a |' % cell(t['rollback']))
        lines += [
            '',
            'Fixed costs, reported separately: `ansible-playbook` of one debug task (start-up) %s s; the whole '
            'deploy playbook on a one-file site (every task, nothing size-dependent) %s s.' % (
                cell(t['startup']), cell(t['fixed'])),
            '',
            '| target | measured | result |',
            '| --- | --- | --- |',
            target('contents compared (default), beside rsync -a -c', 'cut', 'floor_c'),
            target('deploy_checksum: false, beside rsync -a', 'quick', 'floor'),
            target('contents compared (default), beside rsync -a', 'cut', 'floor'),
            '| unchanged redeploy makes no release, changed=0 | %s | %s |' % (
                'no release made' if not any('unchanged' in c for c in checks) else '; '.join(checks),
                'PASS' if not any('unchanged' in c for c in checks) else 'FAIL'),
            '| rollback under 3 s wall | %.2f s (max %.2f) | %s |' % (
                med(t['rollback']), max(t['rollback']), 'PASS' if max(t['rollback']) < 3 else 'FAIL'),
        ]
        for name, label in (('cutover', 'cutover.web'), ('floor', 'raw floor')):
            d = disk[name]
            ratio = d['rel_five']['total'] / float(d['rel_one']['total'])
            lines.append('| five releases <= 1.1 x one (releases/ only): %s | %s vs %s = %.3fx | %s |' % (
                label, mib(d['rel_five']['total']), mib(d['rel_one']['total']), ratio, 'PASS' if ratio <= 1.1 else 'FAIL'))
        whole = disk['cutover']['five']['total'] / float(disk['floor']['rel_one']['total'])
        lines.append('| five releases <= 1.1 x one release: cutover.web whole root (with .cutover/: '
                     'manifests, history) vs one raw release | %s vs %s = %.3fx | %s |' % (
                         mib(disk['cutover']['five']['total']), mib(disk['floor']['rel_one']['total']), whole,
                         'PASS' if whole <= 1.1 else 'FAIL'))
        lines += ['', 'Disk detail (bytes allocated, each inode once):', '',
                  '| | releases/, one | releases/, five | whole root, one | whole root, five | directories in five |',
                  '| --- | --- | --- | --- | --- | --- |']
        for name in ('cutover', 'floor'):
            d = disk[name]
            lines.append('| %s | %s | %s | %s | %s | %s |' % (
                name, mib(d['rel_one']['total']), mib(d['rel_five']['total']), mib(d['one']['total']),
                mib(d['five']['total']), mib(d['rel_five']['dirs'])))
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
