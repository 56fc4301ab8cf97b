# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Benchmark cutover.web's release code against the rsync --link-dest + ``mv -T`` floor.

One command, standard library only::

    python3 bench/release_dir.py [--files 20000 --size-mb 200 --repeat 3 --out bench/results/release_dir.md]

What it does:

* puts this checkout on ``sys.path`` as ``ansible_collections.cutover.web`` (a temp dir holding
  ``ansible_collections/cutover/web`` -> the repo root) and checks that the module_utils it imports
  pull in nothing but the standard library;
* generates a deterministic site tree (seeded; many small PHP/CSS/JS-like files, some large images)
  under ``--workdir`` (default /var/tmp/cutover-bench, which also holds the deploy roots, so the
  source and the releases are on one filesystem);
* times, side by side in one run, each scenario ``--repeat`` times:
    - cutover in-process: ``make_release(Layout(root), DirectorySource(src))`` + ``switch(layout, release=id)``
      (and the same with ``sync=False``, to show what the durability syncfs costs),
    - cutover as module processes: ``python3 plugins/modules/release_dir.py args.json`` then
      ``python3 plugins/modules/atomic_symlink.py args.json`` (includes Python + Ansible start-up),
    - baseline: ``rsync -a --link-dest=<previous> <src>/ <new>/ && ln -s <new> tmp && mv -T tmp current``;
  for a first release, a redeploy after a one-file change and a redeploy with nothing changed;
* measures the disk used by ``releases/`` after five releases (each after a one-file change),
  counting hardlinked inodes once;
* profiles make_release (phase times by run-time wrapping, plus cProfile; a first release and
  one-file redeploys) when the one-file redeploy misses the 2x-rsync target, or with
  ``--profile always``; the .prof files are written beside ``--out``;
* prints a Markdown report and writes it to ``--out``; removes the work dir unless ``--keep``.

Nothing is dropped from the page cache (that needs root and disturbs other users); instead an
untimed warm-up pass runs first, the order of the contenders is reversed on every other repeat,
before every timed step the source is read and the contender's root stat-walked (some VMs page
out idle page cache), then ``sync(2)`` runs so no contender pays for another's writeback. Each
repeat uses new deploy roots and old ones are deleted only at the end (when the disk has room),
since a big deletion just before a timed first release made that step several times slower.

The module-process column needs ``import ansible``: from this interpreter, ``--ansible-path``,
``$CUTOVER_BENCH_ANSIBLE_PATH`` or the repo's ``.venv`` (made by ``./dev setup``); else it is skipped.
"""

from __future__ import annotations

import argparse
import ast
import cProfile
import datetime
import glob
import io
import json
import os
import pstats
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (  # noqa: E402
    Changer, disk_usage, fs_used, generate_tree, level, machine_info, mib, prepare_workdir, rmtree, settle, warm)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTION_PREFIX = 'ansible_collections.cutover.web.'

SCENARIOS = (
    ('first', 'first release (no previous)'),
    ('onefile', 'redeploy after a one-file change'),
    ('nochange', 'redeploy with nothing changed'),
)
SCENARIO_KEYS = [key for key, title in SCENARIOS]


# ---------------------------------------------------------------------------------------------
# The collection on sys.path
# ---------------------------------------------------------------------------------------------

def put_collection_on_path():
    """A temp dir with ansible_collections/cutover/web -> REPO, first on sys.path. Returns the dir."""
    tmp = tempfile.mkdtemp(prefix='cutover-bench-coll-')
    ns = os.path.join(tmp, 'ansible_collections', 'cutover')
    os.makedirs(ns)
    os.symlink(REPO, os.path.join(ns, 'web'))
    sys.path.insert(0, tmp)
    return tmp


def static_import_check():
    """Top-level imports of every plugins/module_utils/*.py that are neither stdlib nor this collection."""
    foreign = []
    for path in sorted(glob.glob(os.path.join(REPO, 'plugins', 'module_utils', '*.py'))):
        with open(path, 'rb') as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or '']
            else:
                continue
            for name in names:
                top = name.split('.')[0]
                if top == '__future__' or top in sys.stdlib_module_names:
                    continue
                if name.startswith(COLLECTION_PREFIX + 'plugins.module_utils'):
                    continue
                foreign.append('%s: %s' % (os.path.relpath(path, REPO), name))
    return foreign


def import_cutover():
    """Import the release code; refuse to go on if it pulled in Ansible or anything non-stdlib."""
    before = set(sys.modules)
    from ansible_collections.cutover.web.plugins.module_utils import _build, _releases, _sources, _switch
    new = set(sys.modules) - before
    tops = {m.split('.')[0] for m in new}
    foreign = sorted(t for t in tops if t not in sys.stdlib_module_names and t != 'ansible_collections')
    if foreign:
        sys.exit('The module_utils imported non-stdlib modules %s; the in-process timing would not be '
                 'ansible-free. Aborting.' % ', '.join(foreign))
    loaded = sorted(m for m in new if m.startswith(COLLECTION_PREFIX))
    return _build, _releases, _sources, _switch, loaded


def find_ansible(explicit):
    """A directory to put on PYTHONPATH so ``import ansible`` works, or (None, reason)."""
    candidates = []
    if explicit:
        candidates.append(explicit)
    if os.environ.get('CUTOVER_BENCH_ANSIBLE_PATH'):
        candidates.append(os.environ['CUTOVER_BENCH_ANSIBLE_PATH'])
    try:
        import importlib.util
        spec = importlib.util.find_spec('ansible')
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin:
        candidates.append(os.path.dirname(os.path.dirname(spec.origin)))
    ver = 'python%d.%d' % sys.version_info[:2]
    candidates += glob.glob(os.path.join(REPO, '.venv', 'lib', ver, 'site-packages'))
    for cand in candidates:
        if os.path.isfile(os.path.join(cand, 'ansible', 'module_utils', 'basic.py')):
            return cand, None
    return None, ('ansible is not importable by %s (tried --ansible-path, $CUTOVER_BENCH_ANSIBLE_PATH, this '
                  'interpreter, %s/.venv); the module-process column is skipped' % (sys.executable, REPO))


# ---------------------------------------------------------------------------------------------
# Contenders
# ---------------------------------------------------------------------------------------------

class InProcess(object):
    def __init__(self, key, label, root, mods, sync=True):
        self.key, self.label, self.root, self.sync = key, label, root, sync
        self._build, self._releases, self._sources, self._switch = mods

    def reset(self):
        rmtree(self.root)
        os.makedirs(self.root)

    def deploy(self, src):
        t0 = time.perf_counter()
        layout = self._releases.Layout(self.root)
        res = self._build.make_release(layout, self._sources.DirectorySource(src), check_mode=False, sync=self.sync)
        sw = self._switch.switch(layout, release=res['id'])
        elapsed = time.perf_counter() - t0
        return elapsed, {'id': res['id'], 'changed': res['changed'] or sw['changed'], 'reused': res['reused'],
                         'files_written': res['files_written'], 'files_linked': res['files_linked']}

    def current_dir(self):
        return os.path.realpath(os.path.join(self.root, 'current'))


class ModuleProcess(object):
    key, label = 'module', 'cutover module processes'

    def __init__(self, root, workdir, pythonpath, python):
        self.root, self.python = root, python
        self.args_dir = os.path.join(workdir, 'module-args')
        os.makedirs(self.args_dir, exist_ok=True)
        self.env = dict(os.environ)
        self.env['PYTHONPATH'] = os.pathsep.join(p for p in pythonpath + [os.environ.get('PYTHONPATH', '')] if p)
        self.env.pop('ANSIBLE_MODULE_ARGS', None)
        self.release_only = []      # seconds of release_dir.py alone, for the notes

    def reset(self):
        rmtree(self.root)
        os.makedirs(self.root)

    def _run(self, name, args):
        path = os.path.join(self.args_dir, name + '.json')
        with open(path, 'w') as f:
            json.dump({'ANSIBLE_MODULE_ARGS': args}, f)
        return [self.python, os.path.join(REPO, 'plugins', 'modules', name + '.py'), path]

    @staticmethod
    def _result(proc, what):
        try:
            res = json.loads(proc.stdout.decode('utf-8', 'replace').strip().splitlines()[-1])
        except (ValueError, IndexError):
            res = None
        if proc.returncode != 0 or res is None or res.get('failed'):
            raise RuntimeError('%s failed (rc %s): %s %s' % (what, proc.returncode, proc.stdout.decode()[-2000:],
                                                             proc.stderr.decode()[-2000:]))
        return res

    def deploy(self, src):
        cmd1 = self._run('release_dir', {'root': self.root, 'src': src})
        t0 = time.perf_counter()
        p1 = subprocess.run(cmd1, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        t1 = time.perf_counter()
        res = self._result(p1, 'release_dir.py')
        cmd2 = self._run('atomic_symlink', {'root': self.root, 'release': res['id']})
        t2 = time.perf_counter()
        p2 = subprocess.run(cmd2, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        t3 = time.perf_counter()
        sw = self._result(p2, 'atomic_symlink.py')
        self.last_release_only = t1 - t0
        return (t1 - t0) + (t3 - t2), {'id': res['id'], 'changed': res['changed'] or sw['changed'],
                                       'reused': res['reused'], 'files_written': res['files_written'],
                                       'files_linked': res['files_linked']}

    def current_dir(self):
        return os.path.realpath(os.path.join(self.root, 'current'))


class Rsync(object):
    key, label = 'rsync', 'rsync+mv'

    def __init__(self, root):
        self.root = root
        self.n = 0

    def reset(self):
        rmtree(self.root)
        os.makedirs(os.path.join(self.root, 'releases'))

    def deploy(self, src):
        self.n += 1
        rid = 'r%04d' % self.n
        new = os.path.join(self.root, 'releases', rid)
        cur = os.path.join(self.root, 'current')
        prev = os.path.realpath(cur) if os.path.islink(cur) else None
        q = shlex.quote
        tmp = os.path.join(self.root, '.current.tmp')
        script = 'rsync -a %s%s/ %s/ && ln -s %s %s && mv -T %s %s' % (
            ('--link-dest=%s ' % q(prev)) if prev else '', q(src), q(new), q('releases/' + rid), q(tmp), q(tmp),
            q(cur))
        t0 = time.perf_counter()
        proc = subprocess.run(['sh', '-c', script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError('rsync baseline failed: %s' % proc.stderr.decode())
        return elapsed, {'id': rid, 'changed': True, 'reused': False}

    def current_dir(self):
        return os.path.realpath(os.path.join(self.root, 'current'))


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

def log(msg):
    print('[bench %6.1fs] %s' % (time.perf_counter() - T0, msg), file=sys.stderr, flush=True)


def fmt(xs):
    if not xs:
        return 'n/a'
    return '%.3f (%.3f)' % (statistics.median(xs), min(xs))


def ratio(a, b):
    if not a or not b:
        return 'n/a'
    return '%.2fx' % (statistics.median(a) / statistics.median(b))


# ---------------------------------------------------------------------------------------------
# Profiling
# ---------------------------------------------------------------------------------------------

def phase_breakdown(mods, root, src, changer):
    """Time the phases of one release by wrapping functions at run time (no plugin edits).

    With ``changer``, one file is changed first (a one-file redeploy); without, the release is made as is
    (a first release when ``root`` is empty).
    """
    _build, _releases, _sources, _switch = mods
    acc, calls = {}, {}
    patches = []

    def wrap(owner, attr, name):
        orig = getattr(owner, attr)

        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return orig(*a, **k)
            finally:
                acc[name] = acc.get(name, 0.0) + time.perf_counter() - t
                calls[name] = calls.get(name, 0) + 1
        setattr(owner, attr, wrapper)
        patches.append((owner, attr, orig))

    spec = [
        (_releases.Layout, 'releases', 'Layout.releases() (history + listdir)'),
        (_build, 'pick_base', 'pick_base() (loads the base manifest JSON)'),
        (_build, 'scan', 'scan() (walk + stat source, quick check, hash changed)'),
        (_build, 'fingerprint', 'fingerprint()'),
        (_build.Builder, 'build', 'Builder.build() (mkdir/link/copy/chmod/utime)'),
        (_build.Builder, '_fill', '  of which Builder._fill() (copy changed files)'),
        (_build.Builder, '_create', '    of which Builder._create() (new file, copy, fchmod/futimens)'),
        (_build.Builder, 'linkable', '  of which Builder.linkable() (lstat base)'),
        (_build.Builder, '_link', '  of which Builder._link() (hardlink from the base)'),
        (_build, 'write_manifest', 'write_manifest() (JSON dump)'),
        (_build, '_syncfs', '_syncfs() (syncfs(2) of the filesystem)'),
        (_build, 'fsync_dir', 'fsync_dir(releases/)'),
        (_releases.Layout, 'append_history', 'Layout.append_history()'),
        (_switch, 'replace_link', 'replace_link() (symlink + rename + fsync)'),
    ]
    for owner, attr, name in spec:
        wrap(owner, attr, name)
    try:
        if changer is not None:
            changer.change()
        level()
        t0 = time.perf_counter()
        layout = _releases.Layout(root)
        t_mr = time.perf_counter()
        res = _build.make_release(layout, _sources.DirectorySource(src), check_mode=False)
        t_sw = time.perf_counter()
        _switch.switch(layout, release=res['id'])
        t_end = time.perf_counter()
    finally:
        for owner, attr, orig in reversed(patches):
            setattr(owner, attr, orig)
    rows = [(name, acc.get(name, 0.0), calls.get(name, 0)) for owner, attr, name in spec]
    return rows, {'make_release': t_sw - t_mr, 'switch': t_end - t_sw, 'total': t_end - t0,
                  'files_linked': res['files_linked'], 'files_written': res['files_written']}


def profile_run(mods, root, src, changer, prof_path, top=22):
    _build, _releases, _sources, _switch = mods
    if changer is not None:
        changer.change()
    level()
    prof = cProfile.Profile()
    prof.enable()
    layout = _releases.Layout(root)
    res = _build.make_release(layout, _sources.DirectorySource(src), check_mode=False)
    _switch.switch(layout, release=res['id'])
    prof.disable()
    if prof_path:
        prof.dump_stats(prof_path)
    texts = []
    for key, n in (('tottime', top), ('cumulative', top)):
        buf = io.StringIO()
        st = pstats.Stats(prof, stream=buf)
        st.strip_dirs().sort_stats(key).print_stats(n)
        lines = buf.getvalue().splitlines()
        # Keep the header line and the table.
        start = next((i for i, l in enumerate(lines) if 'ncalls' in l), 0)
        total = next((l.strip() for l in lines if 'function calls' in l), '')
        texts.append((key, total, '\n'.join(l.rstrip() for l in lines[start:] if l.strip())))
    return texts


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--files', type=int, default=20000, help='files in the generated site')
    p.add_argument('--size-mb', type=float, default=200, help='total size of the site in MiB')
    p.add_argument('--repeat', type=int, default=3, help='timed repeats per scenario')
    p.add_argument('--out', default=os.path.join(REPO, 'bench', 'results', 'release_dir.md'),
                   help='Markdown report to write')
    p.add_argument('--workdir', default='/var/tmp/cutover-bench',
                   help='work dir for the source and the deploy roots (one filesystem)')
    p.add_argument('--seed', type=int, default=20261122, help='seed of the site generator')
    p.add_argument('--files-per-dir', type=int, default=10,
                   help='average files per directory (real PHP trees: about 5 to 10)')
    p.add_argument('--image-share', type=float, default=0.05, help='share of files that are large images')
    p.add_argument('--ansible-path', help='directory to put on PYTHONPATH so "import ansible" works '
                                          '(default: this interpreter, $CUTOVER_BENCH_ANSIBLE_PATH, ./.venv)')
    p.add_argument('--module-python', default=sys.executable, help='interpreter that runs the module files')
    p.add_argument('--no-module', action='store_true', help='skip the module-process column')
    p.add_argument('--profile', choices=('auto', 'always', 'never'), default='auto',
                   help='profile a one-file redeploy of make_release (auto: when it misses the 2x target)')
    p.add_argument('--keep', action='store_true', help='keep the work dir')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    command = shlex.join(['python3', os.path.relpath(os.path.abspath(__file__), os.getcwd())] + sys.argv[1:])
    started = datetime.datetime.now(datetime.timezone.utc)
    if shutil.which('rsync') is None:
        sys.exit('rsync is not installed; it is the baseline (apt-get install rsync).')

    coll_tmp = put_collection_on_path()
    foreign_static = static_import_check()
    _build, _releases, _sources, _switch, loaded = import_cutover()
    mods = (_build, _releases, _sources, _switch)
    ansible_path, ansible_reason = (None, 'skipped (--no-module)') if args.no_module else find_ansible(args.ansible_path)

    workdir = prepare_workdir(args.workdir)
    try:
        src = os.path.join(workdir, 'src')
        os.makedirs(src)
        log('generating %d files, %.0f MiB in %s' % (args.files, args.size_mb, src))
        t = time.perf_counter()
        tree = generate_tree(src, args.files, args.size_mb, args.seed, args.files_per_dir, args.image_share)
        tree['gen_s'] = time.perf_counter() - t
        changer = Changer(src, tree['change_path'])
        roots = os.path.join(workdir, 'roots')

        contenders = [InProcess('inproc', 'cutover in-process', os.path.join(roots, 'inproc'), mods),
                      InProcess('nosync', 'cutover in-process sync=False', os.path.join(roots, 'nosync'), mods,
                                sync=False)]
        if ansible_path:
            contenders.append(ModuleProcess(os.path.join(roots, 'module'), workdir, [coll_tmp, ansible_path],
                                            args.module_python))
        contenders.append(Rsync(os.path.join(roots, 'rsync')))
        times = {(s, c.key): [] for s in SCENARIO_KEYS for c in contenders}
        firsts = {(s, c.key): [] for s in SCENARIO_KEYS for c in contenders}
        module_release_only = {s: [] for s in SCENARIO_KEYS}
        details = {}
        checks = []

        # Module start-up floor: python3 + import AnsibleModule, nothing else.
        startup = []
        if ansible_path:
            env = dict(os.environ, PYTHONPATH=os.pathsep.join([coll_tmp, ansible_path]))
            for attempt in range(5):
                t = time.perf_counter()
                subprocess.run([args.module_python, '-c', 'from ansible.module_utils.basic import AnsibleModule'],
                               env=env, check=True)
                startup.append(time.perf_counter() - t)

        # Each round gets fresh roots. Deleting a 200 MiB tree right before a timed first release made
        # whoever ran first pay several times the normal cost on this kind of VM, so old roots are kept
        # until the end when the disk has room, and deleted (then the run waits) only when it has not.
        st = os.statvfs(workdir)
        free = st.f_bavail * st.f_frsize
        per_round = len(contenders) * (tree['bytes'] * 1.35 + tree['dirs'] * 4096 * 4 + tree['files'] * 400)
        keep_rounds = free > per_round * (args.repeat + 1) * 1.2 + (1 << 30)
        round_roots = []

        def one_round(order, record, tag, idx):
            if not keep_rounds:
                for path in round_roots:
                    rmtree(path)
                del round_roots[:]
            for c in order:
                c.root = os.path.join(roots, '%s.%d' % (c.key, idx))
                c.reset()
                round_roots.append(c.root)
            settle()
            for skey in SCENARIO_KEYS:
                if skey == 'onefile':
                    expected = changer.change()
                for c in order:
                    warm(src, read=True)
                    warm(c.root, read=False)
                    warm(os.path.join(c.root, '.cutover'), read=True)
                    level()
                    elapsed, info = c.deploy(src)
                    if record:
                        times[(skey, c.key)].append(elapsed)
                        firsts[(skey, c.key)].append(c is order[0])
                        if c.key == 'module':
                            module_release_only[skey].append(c.last_release_only)
                        details.setdefault((skey, c.key), info)
                    # Sanity: what each contender put live is the source.
                    if skey == 'onefile':
                        with open(os.path.join(c.current_dir(), changer.rel), 'rb') as f:
                            if f.read() != expected:
                                raise RuntimeError('%s: the changed file is not live after the redeploy' % c.label)
                    if skey == 'nochange' and c.key != 'rsync' and not info['reused']:
                        checks.append('%s %s: expected reuse, got a new release %s' % (tag, c.label, info['id']))
                    log('%s %-8s %-30s %.3fs' % (tag, skey, c.label, elapsed))

        log('warm-up pass (untimed)')
        one_round(contenders, False, 'warm-up', 0)
        for r in range(args.repeat):
            order = contenders if r % 2 == 0 else list(reversed(contenders))
            one_round(order, True, 'repeat %d/%d' % (r + 1, args.repeat), r + 1)
        # Profile (before any big deletion, like the timed steps).
        floor = min(times[('onefile', 'rsync')])
        pass_onefile = statistics.median(times[('onefile', 'inproc')]) <= 2.0 * floor
        prof = None
        if args.profile == 'always' or (args.profile == 'auto' and not pass_onefile):
            log('profiling make_release: a first release, then one-file redeploys')
            prof = {}
            proot = os.path.join(workdir, 'profile')

            def warm_all(root):
                warm(src, read=True)
                warm(root, read=False)
                warm(os.path.join(root, '.cutover'), read=True)

            os.makedirs(proot)
            warm_all(proot)
            prof['first_phases'] = phase_breakdown(mods, proot, src, None)
            prof['onefile_phases'] = []
            for attempt in range(3):
                warm_all(proot)
                prof['onefile_phases'].append(phase_breakdown(mods, proot, src, changer))
            warm_all(proot)
            base = os.path.splitext(os.path.abspath(args.out))[0]
            os.makedirs(os.path.dirname(base), exist_ok=True)
            prof['onefile_cprofile'] = profile_run(mods, proot, src, changer, base + '.onefile.prof')
            proot2 = os.path.join(workdir, 'profile-first')
            os.makedirs(proot2)
            warm_all(proot2)
            prof['first_cprofile'] = profile_run(mods, proot2, src, None, base + '.first.prof', top=15)

        log('deleting the scenario roots')
        rmtree(roots)
        settle()

        # Disk: five releases, each after a one-file change.
        log('disk: five releases each')
        disk = {}
        for c in (InProcess('inproc', 'cutover', os.path.join(workdir, 'disk', 'cutover'), mods),
                  Rsync(os.path.join(workdir, 'disk', 'rsync'))):
            c.reset()
            c.deploy(src)
            one = disk_usage(os.path.join(c.root, 'releases'))
            used_one = fs_used(c.root)
            for attempt in range(4):
                changer.change()
                c.deploy(src)
            five = disk_usage(os.path.join(c.root, 'releases'))
            grown = fs_used(c.root) - used_one
            n = len(os.listdir(os.path.join(c.root, 'releases')))
            state = disk_usage(os.path.join(c.root, '.cutover')) if c.key == 'inproc' else None
            disk[c.key] = (one, five, n, state, grown)

        report = render(args, command, started, machine_info(workdir), tree, contenders, times, firsts, keep_rounds,
                        module_release_only,
                        details, startup, disk, floor, pass_onefile, prof, checks, foreign_static,
                        loaded, ansible_path, ansible_reason)
        print(report)
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            f.write(report)
        log('wrote %s' % args.out)
    finally:
        shutil.rmtree(coll_tmp, ignore_errors=True)
        if args.keep:
            log('kept %s' % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def render(args, command, started, mach, tree, contenders, times, firsts, keep_rounds, module_release_only, details, startup, disk,
           floor, pass_onefile, prof, checks, foreign_static, loaded, ansible_path, ansible_reason):
    keys = [c.key for c in contenders]
    has_module = 'module' in keys
    L = []
    L.append('# cutover.web release_dir benchmark')
    L.append('')
    L.append('- Date: %s (UTC), run took %.0f s' % (started.strftime('%Y-%m-%d %H:%M:%S'), time.perf_counter() - T0))
    L.append('- Command: `%s`' % command)
    L.append('- Machine: %s CPUs, %s; %s RAM; kernel %s; load average (1, 5, 15 min) at the start %s, at the end %s'
             % (mach['nproc'], mach['cpu'], mach['mem'], mach['kernel'], LOAD_AT_START, mach['load']))
    L.append('- Work dir filesystem: %s (`--workdir %s`; the source and every deploy root live there)'
             % (mach['fs'], args.workdir))
    L.append('- Page cache: %s' % (mach['damon'] + '; so before every timed step the source tree is read and the '
                                   'contender\'s root is stat-walked again, untimed' if mach['damon'] else
                                   'no proactive reclaim found; the source is still re-read before every timed step'))
    L.append('- Tools: Python %s; %s; module processes: %s' % (mach['python'], mach['rsync'],
             ('`%s` with PYTHONPATH=<temp collection dir>:%s' % (args.module_python, ansible_path))
             if ansible_path else ansible_reason))
    L.append('- Site: %d files (%d code-like, median %d B; %d images, median %d KiB; 2 symlinks) in %d directories, '
             '%s, seed %d, generated in %.1f s; the one-file change rewrites `%s` (a small PHP file) with new content'
             % (tree['files'], tree['code_files'], tree['median_code'], tree['images'], tree['median_image'] // 1024,
                tree['dirs'], mib(tree['bytes']), args.seed, tree['gen_s'], tree['change_path']))
    L.append('- In-process imports (checked: standard library only, no `ansible`): %s'
             % ', '.join('`%s`' % m[len(COLLECTION_PREFIX):] for m in loaded if m.count('.') >= 5))
    if foreign_static:
        L.append('- WARNING, module_utils files importing outside the standard library: %s' % '; '.join(foreign_static))
    L.append('')
    L.append('## Time (seconds, median (min) of %d repeats)' % args.repeat)
    L.append('')
    head = ['scenario', 'cutover in-process s']
    if has_module:
        head.append('cutover module process s')
    head += ['rsync+mv s', 'ratio cutover/rsync', 'cutover in-process, sync=False s']
    L.append('| ' + ' | '.join(head) + ' |')
    L.append('|' + '---|' * len(head))
    for skey, sname in SCENARIOS:
        row = [sname, fmt(times[(skey, 'inproc')])]
        if has_module:
            row.append(fmt(times[(skey, 'module')]))
        row += [fmt(times[(skey, 'rsync')]), ratio(times[(skey, 'inproc')], times[(skey, 'rsync')]),
                fmt(times[(skey, 'nosync')])]
        L.append('| ' + ' | '.join(row) + ' |')
    L.append('')
    L.append('What each column times:')
    L.append('')
    L.append('- cutover in-process: `make_release(Layout(root), DirectorySource(src), check_mode=False)` + '
             '`switch(layout, release=id)` in this Python process (time.perf_counter): the release code over the '
             'tree without ansible-playbook\'s start-up. `sync=True` (the module default): it calls syncfs(2) '
             'before the rename.')
    if has_module:
        lines = ', '.join('%s %s' % (s, fmt(module_release_only[s])) for s in SCENARIO_KEYS)
        L.append('- cutover module process: `python3 plugins/modules/release_dir.py args.json` then '
                 '`python3 plugins/modules/atomic_symlink.py args.json` (args.json = {"ANSIBLE_MODULE_ARGS": ...}), '
                 'two processes, as two playbook tasks would run them, without ansible-playbook, SSH or AnsiballZ. '
                 'Includes Python + Ansible import start-up: `python3 -c "from ansible.module_utils.basic import '
                 'AnsibleModule"` alone takes %s s per process. release_dir.py alone: %s.' % (fmt(startup), lines))
    L.append('- rsync+mv: `sh -c \'rsync -a [--link-dest=<previous release>] <src>/ <root>/releases/<new>/ && '
             'ln -s releases/<new> <root>/.current.tmp && mv -T <root>/.current.tmp <root>/current\'` '
             '(no fsync: rsync leaves its data dirty in the page cache).')
    L.append('- cutover in-process, sync=False: the same call with `make_release(..., sync=False)`, to show what the '
             'syncfs(2) costs; not a fair durability match for the module default, but the same as rsync.')
    L.append('- Ratio: median cutover in-process / median rsync+mv.')
    L.append('- Each contender has its own deploy root, a new one for each repeat (%s); all read the same source '
             'tree.' % ('old roots are kept until the end, so no big deletion runs between timed steps' if keep_rounds
                        else 'the disk had no room to keep old roots, so they are deleted between repeats, then the '
                             'run waits until sync(2) is quick again'))
    L.append('- Fairness without dropping caches: nothing is dropped from the page cache; an untimed warm-up pass '
             'runs first; the contenders run in the order %s on odd repeats and reversed on even ones; before every '
             'timed step the source is read and the contender\'s root stat-walked (untimed), then sync(2) runs so '
             'nobody pays for another\'s writeback.' % ' -> '.join(c.label for c in contenders))
    nc = details.get(('nochange', 'inproc'), {})
    of = details.get(('onefile', 'inproc'), {})
    L.append('- What happened: one-file redeploy: cutover linked %s files and wrote %s; nothing changed: cutover %s '
             'the current release (switch was a no-op); rsync made a new release directory every time '
             '(all files hardlinked, every directory new).'
             % (of.get('files_linked', '?'), of.get('files_written', '?'),
                'reused' if nc.get('reused') else 'did NOT reuse'))
    for c in checks:
        L.append('- CHECK FAILED: %s' % c)
    L.append('')
    L.append('Every timed value, in repeat order (* = ran first in its repeat):')
    L.append('')
    L.append('| scenario | ' + ' | '.join(c.label for c in contenders) + ' |')
    L.append('|' + '---|' * (len(contenders) + 1))
    for skey, sname in SCENARIOS:
        cells = []
        for c in contenders:
            cells.append(' '.join('%.3f%s' % (t, '*' if f else '')
                                  for t, f in zip(times[(skey, c.key)], firsts[(skey, c.key)])))
        L.append('| %s | %s |' % (sname, ' | '.join(cells)))
    L.append('')

    L.append('## Disk: releases/ after five releases, each after a one-file change')
    L.append('')
    L.append('Allocated bytes (st_blocks x 512) of every inode under releases/, each (st_dev, st_ino) counted once.')
    L.append('')
    L.append('| tool | one release | five releases | ratio five/one | of the five: directories | files | '
             'added per release |')
    L.append('|---|---|---|---|---|---|---|')
    verdict_disk = {}
    for key, name in (('inproc', 'cutover'), ('rsync', 'rsync --link-dest')):
        one, five, n, state, grown = disk[key]
        r = five['total'] / float(one['total'] or 1)
        verdict_disk[name] = r
        L.append('| %s | %s | %s (%d releases) | %.3fx | %s | %s | %s |'
                 % (name, mib(one['total']), mib(five['total']), n, r, mib(five['dirs']), mib(five['files']),
                    mib((five['total'] - one['total']) / 4.0)))
    L.append('')
    L.append('What the filesystem itself gave to releases two to five (its used bytes from statvfs before and '
             'after, so inodes and metadata that st_blocks does not show count too; for cutover with its '
             'manifests and history):')
    L.append('')
    L.append('| tool | filesystem used by four more releases | per release | one release + four more, over one |')
    L.append('|---|---|---|---|')
    verdict_fs = {}
    for key, name in (('inproc', 'cutover'), ('rsync', 'rsync --link-dest')):
        one, grown = disk[key][0], disk[key][4]
        verdict_fs[name] = (one['total'] + grown) / float(one['total'] or 1)
        L.append('| %s | %s | %s | %.3fx |' % (name, mib(grown), mib(grown / 4.0), verdict_fs[name]))
    state = disk['inproc'][3]
    L.append('')
    L.append('Not in releases/: cutover\'s own state (.cutover/: five manifests + history) took %s more.'
             % mib(state['total']))
    one = disk['inproc'][0]
    L.append('One release holds %s of directories (%d directories) and %s of files; each further release '
             'needs its own directories (a directory cannot be hardlinked), so five releases cost at least '
             '1 + 4 x %.3f = %.3fx before any changed file.'
             % (mib(one['dirs']), tree['dirs'], mib(one['files']), one['dirs'] / float(one['total']),
                1 + 4 * one['dirs'] / float(one['total'])))
    L.append('')

    L.append('## Targets')
    L.append('')
    med = statistics.median(times[('onefile', 'inproc')])
    L.append('- One-file redeploy, in-process within 2x the rsync floor: median %.3f s vs 2 x %.3f s (fastest '
             'rsync+mv) = %.3f s -> ratio %.2fx: **%s**  (min/min %.2fx)'
             % (med, floor, 2 * floor, med / floor, 'PASS' if pass_onefile else 'FAIL',
                min(times[('onefile', 'inproc')]) / floor))
    for name, r in verdict_disk.items():
        L.append('- Five releases <= 1.1x the disk of one, %s: %.3fx: **%s**' % (name, r, 'PASS' if r <= 1.1 else 'FAIL'))
    for name, r in verdict_fs.items():
        L.append('- The same counted by the filesystem (statvfs), %s: %.3fx: **%s**'
                 % (name, r, 'PASS' if r <= 1.1 else 'FAIL'))
    L.append('')

    if prof:
        L.append('## Profile of make_release + switch (in-process, sync=True)')
        L.append('')
        L.append('Phase times from wrapping the functions at run time (no plugin edits), in seconds, inclusive '
                 '("of which" rows are inside the row above). The first release is one run into an empty root; '
                 'the one-file redeploy three runs, each after a new one-file change.')
        L.append('')
        L.append('| phase | first release | one-file run 1 | run 2 | run 3 | calls (one-file) |')
        L.append('|---|---|---|---|---|---|')
        first_rows, first_tot = prof['first_phases']
        runs = prof['onefile_phases']
        for i, (name, seconds, ncalls) in enumerate(runs[0][0]):
            cells = ' | '.join('%.3f' % p[0][i][1] for p in runs)
            L.append('| %s | %.3f | %s | %d |' % (name, first_rows[i][1], cells, ncalls))
        for k in ('make_release', 'switch', 'total'):
            L.append('| **%s** | %.3f | %s | |' % (k, first_tot[k], ' | '.join('%.3f' % p[1][k] for p in runs)))
        L.append('')
        for title, key in (('one-file redeploy', 'onefile_cprofile'), ('first release', 'first_cprofile')):
            L.append('cProfile of one more %s (profiling overhead inflates Python-heavy rows; the .prof file is '
                     'beside the report):' % title)
            for sort, total, text in prof[key]:
                L.append('')
                L.append('Sorted by %s; %s' % (sort, total))
                L.append('')
                L.append('```')
                L.append(text)
                L.append('```')
            L.append('')
    return '\n'.join(L) + '\n'


T0 = time.perf_counter()
try:
    LOAD_AT_START = '%.2f %.2f %.2f' % os.getloadavg()
except OSError:
    LOAD_AT_START = '?'

if __name__ == '__main__':
    sys.exit(main())
