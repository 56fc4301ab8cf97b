# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the benchmarks in bench/ share: the generated site, disk and machine measures, and
running the collection's playbooks from this checkout."""

from __future__ import annotations

import base64
import collections
import glob
import json
import math
import os
import random
import re
import shlex
import shutil
import stat
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKDIR_MARK = '.cutover-bench-workdir'

CODE_EXTS = ['php'] * 8 + ['css', 'js', 'js', 'json', 'html', 'twig', 'yml', 'svg', 'xml', 'md']
IMAGE_EXTS = ['jpg', 'jpg', 'png', 'webp', 'gif']
WORDS = ('app', 'src', 'lib', 'Http', 'Controller', 'Model', 'View', 'Service', 'Entity', 'Form', 'Util',
         'assets', 'css', 'js', 'vendor', 'module', 'theme', 'block', 'plugin', 'core', 'admin', 'api',
         'templates', 'partials', 'locale', 'config', 'Event', 'Listener', 'Command', 'Test', 'fixtures')


# ---------------------------------------------------------------------------------------------
# The site tree
# ---------------------------------------------------------------------------------------------

def _scaled(sizes, total):
    s = sum(sizes) or 1
    return [max(1, int(round(x * total / s))) for x in sizes]


def generate_tree(src, nfiles, size_mb, seed, files_per_dir, image_share):
    """Write a deterministic site tree; return a description dict."""
    rng = random.Random(seed)
    block = rng.randbytes(1 << 20)
    text = base64.b64encode(block)          # ASCII, for code-like files
    n_images = max(1, int(nfiles * image_share))
    n_code = max(1, nfiles - n_images)
    n_dirs = max(2, nfiles // max(1, files_per_dir))

    # Image directories: public/media/<year>/<month>, like an uploads tree.
    image_dirs = []
    for year in range(2019, 2027):
        for month in range(1, 13):
            image_dirs.append('public/media/%d/%02d' % (year, month))
    image_dirs = image_dirs[:max(1, min(len(image_dirs), n_dirs // 10))]
    # Code directories: a random tree under a few top-level dirs, depth up to 8.
    tops = ['app', 'vendor', 'public/assets', 'config', 'resources', 'lib']
    code_dirs = list(tops)
    depth = {d: d.count('/') + 1 for d in tops}
    i = 0
    while len(code_dirs) + len(image_dirs) + 3 < n_dirs:   # +3: public, public/media, and slack
        # Bias towards recent (deeper) parents, as vendor trees are deep and narrow.
        parent = code_dirs[int(len(code_dirs) * (rng.random() ** 0.4))]
        if depth[parent] >= 8:
            parent = rng.choice(tops)
        name = '%s%d' % (rng.choice(WORDS), i)
        i += 1
        path = parent + '/' + name
        code_dirs.append(path)
        depth[path] = depth[parent] + 1

    target = int(size_mb * (1 << 20))
    code_sizes = [min(256 << 10, max(64, int(rng.lognormvariate(math.log(2500), 1.0)))) for dummy_i in range(n_code)]
    image_sizes = [min(8 << 20, max(8 << 10, int(rng.lognormvariate(math.log(100 << 10), 0.9))))
                   for dummy_i in range(n_images)]
    code_sizes = _scaled(code_sizes, int(target * 0.45))
    image_sizes = _scaled(image_sizes, target - sum(code_sizes))

    files = []
    for j, size in enumerate(code_sizes):
        d = rng.choice(code_dirs)
        files.append(('%s/%s%d.%s' % (d, rng.choice(WORDS).lower(), j, rng.choice(CODE_EXTS)), size, text))
    for j, size in enumerate(image_sizes):
        d = rng.choice(image_dirs)
        files.append(('%s/img%05d.%s' % (d, j, rng.choice(IMAGE_EXTS)), size, block))

    made = set()
    for d in ['public', 'public/media'] + code_dirs + image_dirs:
        full = os.path.join(src, d)
        if full not in made:
            os.makedirs(full, exist_ok=True)
            made.add(full)
    total = 0
    for rel, size, data in files:
        off = rng.randrange(len(data))
        if off + size <= len(data):
            chunk = data[off:off + size]
        else:
            chunk = (data * (size // len(data) + 2))[off:off + size]
        with open(os.path.join(src, rel), 'wb') as f:
            f.write(chunk)
        total += size
    # A few symlinks, as real sites have (storage links, index aliases).
    os.symlink('../../shared/storage', os.path.join(src, 'public', 'storage'))
    os.symlink('index.php', os.path.join(src, 'public', 'app.php'))
    open(os.path.join(src, 'public', 'index.php'), 'wb').write(b'<?php require __DIR__."/../app/boot.php";\n')
    files.append(('public/index.php', 0, None))

    small = sorted(rel for rel, size, data in files if rel.endswith('.php') and 0 < size <= 4096)
    change = small[len(small) // 2] if small else files[0][0]
    n_dirs_made = len(list(os.walk(src)))
    return {'files': len(files), 'bytes': total, 'dirs': n_dirs_made, 'images': n_images,
            'code_files': n_code + 1, 'symlinks': 2, 'change_path': change,
            'median_code': int(statistics.median(code_sizes)), 'median_image': int(statistics.median(image_sizes))}


class Changer(object):
    """Changes one small file's content, uniquely each time (so no old release ever matches again)."""

    def __init__(self, src, rel):
        self.path = os.path.join(src, rel)
        self.rel = rel
        with open(self.path, 'rb') as f:
            self.original = f.read()
        self.count = 0

    def change(self):
        self.count += 1
        with open(self.path, 'wb') as f:
            f.write(self.original + ('\n// bench change %d %d\n' % (self.count, time.time_ns())).encode())
        with open(self.path, 'rb') as f:
            return f.read()


def prepare_workdir(path):
    """Make an empty work dir at path; one left by a benchmark before is removed first."""
    path = os.path.abspath(path)
    if os.path.lexists(path):
        if os.path.islink(path) or not os.path.isdir(path):
            sys.exit('--workdir %s exists and is not a directory.' % path)
        if os.path.exists(os.path.join(path, WORKDIR_MARK)):
            shutil.rmtree(path)
        elif os.listdir(path):
            sys.exit('--workdir %s exists, is not empty and was not made by this benchmark; choose another.' % path)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, WORKDIR_MARK), 'w') as f:
        f.write('made by a benchmark in bench/; removed when it ends\n')
    return path


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------

def rmtree(path):
    if os.path.lexists(path):
        shutil.rmtree(path)


def disk_usage(path):
    """Bytes allocated under path (st_blocks*512), each (st_dev, st_ino) once; split by kind."""
    seen = set()
    out = {'total': 0, 'dirs': 0, 'files': 0, 'links': 0, 'inodes': 0}

    def add(st):
        key = (st.st_dev, st.st_ino)
        if key in seen:
            return
        seen.add(key)
        b = st.st_blocks * 512
        out['total'] += b
        out['inodes'] += 1
        if stat.S_ISDIR(st.st_mode):
            out['dirs'] += b
        elif stat.S_ISLNK(st.st_mode):
            out['links'] += b
        else:
            out['files'] += b

    if not os.path.lexists(path):
        return out
    add(os.lstat(path))
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            add(os.lstat(os.path.join(dirpath, name)))
    return out


def fs_used(path):
    """Bytes in use on the filesystem holding path (statvfs), after writing everything out.

    Unlike disk_usage, this sees what st_blocks does not: inodes a filesystem allocates on demand
    (XFS), directories kept in metadata (btrfs), journals of the moment.
    """
    os.sync()
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def mib(b):
    return '%.1f MiB' % (b / 1048576.0)


def machine_info(workdir):
    info = {}
    try:
        info['nproc'] = len(os.sched_getaffinity(0))
    except AttributeError:
        info['nproc'] = os.cpu_count()
    model = '?'
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    model = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    info['cpu'] = model
    u = os.uname()
    info['kernel'] = '%s %s %s' % (u.sysname, u.release, u.machine)
    real = os.path.realpath(workdir)
    best, fstype, dev = '', '?', '?'
    try:
        with open('/proc/mounts') as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mnt = parts[1].replace('\\040', ' ')
                if (real == mnt or real.startswith(mnt.rstrip('/') + '/')) and len(mnt) >= len(best):
                    best, fstype, dev = mnt, parts[2], parts[0]
    except OSError:
        pass
    info['fs'] = '%s (%s mounted on %s)' % (fstype, dev, best or '?')
    try:
        info['mem'] = '%.1f GiB' % (os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2 ** 30)
    except (ValueError, OSError):
        info['mem'] = '?'
    try:
        out = subprocess.run(['rsync', '--version'], stdout=subprocess.PIPE, check=False).stdout.decode().splitlines()[0]
        info['rsync'] = ' '.join(out.split())
    except (OSError, IndexError):
        info['rsync'] = '?'
    info['python'] = '%s (%s)' % (sys.version.split()[0], sys.executable)
    info['damon'] = damon_reclaim()
    try:
        info['load'] = '%.2f %.2f %.2f' % os.getloadavg()
    except OSError:
        info['load'] = '?'
    return info


def level():
    """Flush everyone's dirty data so the next timed step pays only for its own writes."""
    os.sync()


def settle(limit=30.0):
    """After deleting big trees: sync until a sync is quick twice in a row (at most ``limit`` s)."""
    t_end = time.perf_counter() + limit
    quick = 0
    while quick < 2 and time.perf_counter() < t_end:
        t = time.perf_counter()
        os.sync()
        quick = quick + 1 if time.perf_counter() - t < 0.05 else 0
        if quick < 2:
            time.sleep(0.3)


def warm(path, read):
    """Bring a tree back into the caches: lstat every entry, and read the files when ``read``.

    Run before every timed step, because the kernel here may evict page cache that sat idle
    (see damon_reclaim() below), which would make whoever runs first after a pause pay for disk reads.
    """
    if not os.path.isdir(path):
        return
    buf = bytearray(1 << 20)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            if read and stat.S_ISREG(st.st_mode):
                with open(full, 'rb', buffering=0) as f:
                    while f.readinto(buf):
                        pass


def damon_reclaim():
    """A description of proactive page-cache reclaim by DAMON (as on some VMs), or None."""
    base = '/sys/kernel/mm/damon/admin/kdamonds'
    try:
        for kd in sorted(os.listdir(base)):
            if not kd.isdigit():
                continue
            with open(os.path.join(base, kd, 'state')) as f:
                if f.read().strip() != 'on':
                    continue
            for ctx in glob.glob(os.path.join(base, kd, 'contexts', '[0-9]*')):
                with open(os.path.join(ctx, 'monitoring_attrs', 'intervals', 'aggr_us')) as f:
                    aggr = int(f.read())
                for sch in glob.glob(os.path.join(ctx, 'schemes', '[0-9]*')):
                    with open(os.path.join(sch, 'action')) as f:
                        action = f.read().strip()
                    with open(os.path.join(sch, 'access_pattern', 'age', 'min')) as f:
                        age = int(f.read())
                    if action == 'pageout':
                        return 'DAMON pages out memory idle for about %.0f s or more' % (age * aggr / 1e6)
    except (OSError, ValueError):
        return None
    return None


# ---------------------------------------------------------------------------------------------
# Judging what clients saw
# ---------------------------------------------------------------------------------------------

def judge(records, ops, first):
    """Count statuses, MIXED and STALE responses given the operations' timeline.

    ops: [(started, done, version live before, version live after)] in order; first: the version
    live before the first op. A response may show the version live when it started, or either
    side of any op that overlapped it; any other version is STALE."""
    counts = collections.Counter()
    statuses = collections.Counter()
    stale_examples = []
    for start, end, path, status, versions in records:
        counts['requests'] += 1
        if not 200 <= status < 300:
            statuses[status] += 1
            continue
        if len(versions) > 1:
            counts['mixed'] += 1
        live = first
        allowed = set()
        for op_start, op_done, before, after in ops:
            if op_done <= start:
                live = after
            elif op_start <= end:
                allowed.update((before, after))
        allowed.add(live)
        if not versions or not versions <= allowed:
            counts['stale'] += 1
            if len(stale_examples) < 5:
                stale_examples.append('%s at +%.2fs showed %s, expected %s' % (
                    path, start - ops[0][0] if ops else 0, sorted(versions), sorted(allowed)))
    return counts, statuses, stale_examples


# ---------------------------------------------------------------------------------------------
# Playbooks
# ---------------------------------------------------------------------------------------------

def target_python():
    """The interpreter the bench's modules run with: Debian's /usr/bin/python3, the one the hosts users deploy to
    have, where it exists; else the python3 on PATH, asked for its own executable. The python3 found first on PATH
    may be a version manager's shim (pyenv's is a shell script that starts its own processes), which would add 0.2 s
    or more to every module run, a cost no Debian host has."""
    if os.access('/usr/bin/python3', os.X_OK):
        return '/usr/bin/python3'
    found = shutil.which('python3') or sys.executable
    out = subprocess.run([found, '-c', 'import sys; print(sys.executable)'], stdout=subprocess.PIPE, check=True)
    return out.stdout.decode('utf-8', 'replace').strip() or found


class Ansible(object):
    """Runs the collection's playbooks from this checkout with the repo's .venv; the modules run with
    target_python()."""

    def __init__(self, workdir, venv, collections, repo=REPO, python=None):
        """venv: a virtualenv with ansible-core (its bin/ goes first on PATH); collections: the
        collections path (os.pathsep-separated) that holds ansible.posix; repo: the checkout of
        cutover.web whose playbooks run (this one by default); python: the interpreter that runs the
        modules (target_python() by default)."""
        self.bin = os.path.join(venv, 'bin')
        if not os.access(os.path.join(self.bin, 'ansible-playbook'), os.X_OK):
            sys.exit('%s/ansible-playbook is missing: run ./dev setup first.' % self.bin)
        if not any(os.path.isdir(os.path.join(c, 'ansible_collections', 'ansible', 'posix'))
                   for c in collections.split(os.pathsep)):
            sys.exit('ansible.posix is not in %s: run ./dev setup first.' % collections)
        # ansible_collections/cutover/web -> the checkout, so the playbooks run as they are there.
        self.coll = os.path.join(workdir, 'collections')
        os.makedirs(os.path.join(self.coll, 'ansible_collections', 'cutover'))
        os.symlink(repo, os.path.join(self.coll, 'ansible_collections', 'cutover', 'web'))
        self.inventory = os.path.join(workdir, 'inventory.ini')
        self.python = python or target_python()
        with open(self.inventory, 'w') as f:
            f.write('bench ansible_connection=local ansible_python_interpreter=%s\n' % self.python)
        self.trivial = os.path.join(workdir, 'trivial.yml')
        with open(self.trivial, 'w') as f:
            f.write('- hosts: bench\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug: {msg: hello}\n')
        self.env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.pathsep.join([self.coll, collections]),
                        ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0', ANSIBLE_RETRY_FILES_ENABLED='0',
                        PATH=self.bin + os.pathsep + os.environ.get('PATH', ''))

    def play(self, playbook, extra):
        """Run a playbook; return (seconds, {'changed': n, ...} of the PLAY RECAP line of host bench)."""
        cmd = [os.path.join(self.bin, 'ansible-playbook'), '-i', self.inventory, playbook]
        if extra:
            cmd += ['-e', json.dumps(extra)]
        t = time.perf_counter()
        proc = subprocess.run(cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
        elapsed = time.perf_counter() - t
        out = proc.stdout.decode('utf-8', 'replace')
        if proc.returncode != 0:
            raise RuntimeError('%s failed (exit %d):\n%s' % (' '.join(map(shlex.quote, cmd)), proc.returncode,
                                                             out[-4000:]))
        recap = re.search(r'^bench\s*:\s*(.*)$', out, re.M)
        counts = dict((k, int(v)) for k, v in re.findall(r'(\w+)=(\d+)', recap.group(1))) if recap else {}
        return elapsed, counts


# ---------------------------------------------------------------------------------------------
# Apache
# ---------------------------------------------------------------------------------------------

def apache_modules():
    d = '/etc/apache2/mods-enabled'
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def forget_sites(names, ports):
    """No vhost, release pointer or record of its set-up of the apache_vhost sites ``names``, and no Listen line of
    ``ports`` (as tests/integration/targets/setup_collection/collection.sh's forget_site); Apache not restarted."""
    for name in names:
        conf = 'cutover-%s.conf' % name
        for path in ('/etc/apache2/sites-enabled/' + conf, '/etc/apache2/sites-available/' + conf,
                     '/etc/apache2/cutover/%s-release.conf' % name, '/var/lib/cutover-web/apache_vhost/%s.json' % name):
            if os.path.lexists(path):
                os.unlink(path)
    ours = re.compile(r'^\s*Listen\s+(127\.0\.0\.1:)?(%s)\s*$' % '|'.join(str(port) for port in ports))
    with open('/etc/apache2/ports.conf') as f:
        lines = f.readlines()
    kept = [line for line in lines if not ours.match(line)]
    if kept != lines:
        with open('/etc/apache2/ports.conf', 'w') as f:
            f.writelines(kept)


def remove_vhosts(names, ports, modules_before):
    """Put Apache back as it was: forget_sites(names, ports), and the modules of before (apache_modules() taken
    before the apache_vhost role ran)."""
    forget_sites(names, ports)
    now = apache_modules()
    # The PHP module depends on its MPM: off before the MPM goes; the MPM comes back before what needs it.
    off = sorted((m[:-5] for m in now if m.endswith('.load') and m not in modules_before),
                 key=lambda m: (m.startswith('mpm_'), m))
    on = sorted((m[:-5] for m in modules_before if m.endswith('.load') and m not in now),
                key=lambda m: (not m.startswith('mpm_'), m))
    if off:
        subprocess.run(['a2dismod', '-q'] + off, check=False)
    if on:
        subprocess.run(['a2enmod', '-q'] + on, check=False)
    if off or on:
        # Another MPM cannot be loaded by a restart (AH00534: Apache exits instead): stop, then start.
        subprocess.run(['apache2ctl', 'stop'], check=False)
        for dummy_i in range(100):
            if subprocess.run(['pgrep', '-x', 'apache2'], stdout=subprocess.DEVNULL, check=False).returncode != 0:
                break
            time.sleep(0.1)
        subprocess.run(['apache2ctl', 'start'], check=False)
    else:
        subprocess.run(['apache2ctl', 'graceful'], check=False)
