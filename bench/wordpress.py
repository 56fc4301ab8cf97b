# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""WordPress, an application nobody here wrote, deployed through cutover.web's playbooks under load.

One command (after ./dev setup, as root, on a Debian host with Apache 2.4, PHP-FPM, MariaDB and
Debian's wordpress package):

    .venv/bin/python bench/wordpress.py                                # 10 deploys, 2 rollbacks
    .venv/bin/python bench/wordpress.py --deploys 3 --rollbacks 1 --expect-zero

What it does, as a user vendoring Debian's WordPress 6.1 would:

- starts a MariaDB server of its own (its own datadir, socket and port; no systemd) with
  tests/integration/targets/setup_mariadb/mariadb.sh, and a database for WordPress;
- makes the release tree: a self-contained copy of /usr/share/wordpress (cp -rL; Debian's
  wp-config.php, which loads /etc/wordpress/config-*.php, is left out) with WordPress's own
  .htaccess rules (pretty permalinks, the Authorization header passed to PHP), its theme
  (Twenty Twenty-Three) changed for each release: "cutover-release rN" in the footer pattern
  (PHP, so through OPcache) and in style.css (a static file);
- before the first deploy, puts what the deploy shares in <root>/shared: wp-config.php (database,
  salts, WP_ENVIRONMENT_TYPE 'local' so that application passwords work over plain HTTP;
  root:www-data 0640) and wp-content/uploads (www-data's: WordPress writes there);
- deploys r1 with `ansible-playbook cutover.web.deploy` (the apache_vhost role serves it with
  PHP-FPM, AllowOverride All), installs WordPress by posting wp-admin/install.php, turns on pretty
  permalinks and makes an application password (WordPress's own API, from PHP's command line);
- then, while --readers clients fetch the home page, a post through its pretty permalink (the
  .htaccess rewrite) and the theme's style.css (a new connection per request) and a writer uploads
  a PNG through WordPress's REST API (POST /wp-json/wp/v2/media, application password), deploys
  --deploys new releases (r2, r3, ...) and rolls back --rollbacks times with
  `ansible-playbook cutover.web.rollback`, --settle seconds of load after each.

Counted: requests, answers other than 2xx, connection errors, pages without a release marker,
STALE pages (a request that started after a deploy or rollback finished, and before the next
began, answered by another release than the one it made live; during one, either side is right),
uploads WordPress refused, and uploads lost: at the end every upload WordPress accepted must be
in <root>/shared/wp-content/uploads and served, byte for byte, and the media library must count
them all. wp-config.php must never be served.

Reports: a Markdown summary on stdout and in --results/wordpress-<time>.md, the raw counts in the
.json beside it. The vhost, its Listen line, the Apache modules, the MariaDB server and the work
directory are put back or removed at the end.
"""

from __future__ import annotations

import argparse
import base64
import collections
import datetime
import hashlib
import http.client
import json
import os
import re
import secrets
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
import zlib

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)

from _common import Ansible, apache_modules, judge, machine_info, prepare_workdir, remove_vhosts  # noqa: E402

MARIADB = os.path.join(REPO, 'tests', 'integration', 'targets', 'setup_mariadb', 'mariadb.sh')
WORDPRESS = '/usr/share/wordpress'
THEME = 'wp-content/themes/twentytwentythree'
NAME = 'wp-bench'
MARK = re.compile(r'cutover-release r(\d+)')
PATHS = ['/', '/hello-world/', '/' + THEME + '/style.css']
ADMIN = 'admin'
T0 = time.perf_counter()

# WordPress's own rules (what it writes to .htaccess for pretty permalinks).
HTACCESS = '''# BEGIN WordPress
<IfModule mod_rewrite.c>
RewriteEngine On
RewriteRule .* - [E=HTTP_AUTHORIZATION:%{HTTP:Authorization}]
RewriteBase /
RewriteRule ^index\\.php$ - [L]
RewriteCond %{REQUEST_FILENAME} !-f
RewriteCond %{REQUEST_FILENAME} !-d
RewriteRule . /index.php [L]
</IfModule>
# END WordPress
'''

WP_CONFIG = '''<?php
// Shared by every release (deploy_shared_files): <root>/shared/wp-config.php. It is loaded through
// the release's link, by wp-load.php, which defines ABSPATH as the release's own directory first.
define( 'DB_NAME', 'wordpress' );
define( 'DB_USER', 'wordpress' );
define( 'DB_PASSWORD', {password} );
define( 'DB_HOST', '127.0.0.1:{db_port}' );
define( 'DB_CHARSET', 'utf8mb4' );
define( 'DB_COLLATE', '' );
{salts}
$table_prefix = 'wp_';
// Application passwords over plain HTTP (WordPress 6.1 offers them only over HTTPS otherwise).
define( 'WP_ENVIRONMENT_TYPE', 'local' );
// No traffic beyond this host, no updates behind the deploy's back.
define( 'WP_HTTP_BLOCK_EXTERNAL', true );
define( 'AUTOMATIC_UPDATER_DISABLED', true );
// Plugins, themes and WordPress itself change by deploying: the release is root's, and whatever the
// dashboard installed into it would be gone with the next release.
define( 'DISALLOW_FILE_MODS', true );
define( 'DISABLE_WP_CRON', true );
define( 'WP_DEBUG', false );
if ( ! defined( 'ABSPATH' ) ) {{
    // Asked for directly: __DIR__ would be shared/, not a release.
    http_response_code( 404 );
    exit;
}}
require_once ABSPATH . 'wp-settings.php';
'''

SALTS = ('AUTH_KEY', 'SECURE_AUTH_KEY', 'LOGGED_IN_KEY', 'NONCE_KEY', 'AUTH_SALT', 'SECURE_AUTH_SALT',
         'LOGGED_IN_SALT', 'NONCE_SALT')


def log(msg):
    print('[wp %7.1fs] %s' % (time.perf_counter() - T0, msg), file=sys.stderr, flush=True)


def run(cmd, **kwargs):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False, **kwargs)
    out = proc.stdout.decode('utf-8', 'replace')
    if proc.returncode != 0:
        raise RuntimeError('%s failed (exit %d): %s' % (' '.join(map(shlex.quote, cmd)), proc.returncode, out[-3000:]))
    return out


def php_string(value):
    return "'" + value.replace('\\', '\\\\').replace("'", "\\'") + "'"


def png(n):
    """A small PNG, different for every n (its pixels carry n)."""
    width, height = 8, 8
    pixel = struct.pack('>BBB', n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff)
    raw = b''.join(b'\x00' + pixel * width for dummy in range(height))

    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0))
            + chunk(b'tEXt', b'Comment\x00cutover.web bench upload %d' % n)
            + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))


# --- the site ---------------------------------------------------------------------------

class Site(object):
    """The WordPress site: its MariaDB, its release tree, its deploy root, its playbook variables."""

    def __init__(self, args, workdir, ansible):
        self.args = args
        self.ansible = ansible
        self.port = args.port
        self.url = 'http://127.0.0.1:%d' % args.port
        self.root = os.path.join(workdir, 'site')
        self.src = os.path.join(workdir, 'src')
        self.db = os.path.join(workdir, 'mariadb')
        self.db_password = secrets.token_urlsafe(18)
        self.admin_password = secrets.token_urlsafe(18)
        self.app_password = None
        self.history = []

    # MariaDB
    def start_db(self):
        run([MARIADB, 'start', self.db, str(self.args.db_port)])
        self.sql("CREATE DATABASE wordpress CHARACTER SET utf8mb4; "
                 "CREATE USER wordpress@'127.0.0.1' IDENTIFIED BY '%s'; "
                 "GRANT ALL ON wordpress.* TO wordpress@'127.0.0.1';" % self.db_password)

    def stop_db(self):
        subprocess.run([MARIADB, 'stop', self.db], check=False)

    def sql(self, query):
        return run(['mariadb', '--no-defaults', '--socket=' + os.path.join(self.db, 'sock'), '-u', 'root', '-NB',
                    '-e', query])

    # The release tree
    def make_source(self):
        """A self-contained copy of Debian's WordPress, as a user vendoring it would deploy it."""
        run(['cp', '-rL', WORDPRESS, self.src])
        # Debian's wp-config.php loads /etc/wordpress/config-<host>.php and points WP_CONTENT_DIR at
        # /var/lib/wordpress: the release has neither; its wp-config.php is the shared one.
        for name in ('wp-config.php', 'wp-config-sample.php'):
            os.unlink(os.path.join(self.src, name))
        shutil.rmtree(os.path.join(self.src, 'wp-content', 'uploads'), ignore_errors=True)
        with open(os.path.join(self.src, '.htaccess'), 'w') as f:
            f.write(HTACCESS)
        run(['chmod', '-R', 'u+rwX,go+rX,go-w', self.src])
        self.footer = os.path.join(self.src, THEME, 'patterns', 'footer-default.php')
        self.style = os.path.join(self.src, THEME, 'style.css')
        with open(self.footer) as f:
            self.footer_text = f.read()
        with open(self.style) as f:
            self.style_text = f.read()
        end = '\t<!-- /wp:group -->\n</div>\n<!-- /wp:group -->'
        if end not in self.footer_text:
            raise RuntimeError('%s is not the footer this bench knows: it cannot mark the release' % self.footer)

    def theme_change(self, n):
        """Release n's theme: its id in the footer (PHP) and in style.css (static)."""
        mark = ('\t<!-- /wp:group -->\n\t<!-- wp:paragraph -->\n\t<p class="cutover-release">cutover-release '
                "<?php echo esc_html( 'r%d' ); ?></p>\n\t<!-- /wp:paragraph -->\n</div>\n<!-- /wp:group -->" % n)
        with open(self.footer, 'w') as f:
            f.write(self.footer_text.replace('\t<!-- /wp:group -->\n</div>\n<!-- /wp:group -->', mark))
        with open(self.style, 'w') as f:
            f.write(self.style_text + '\n/* cutover-release r%d */\n' % n)

    def prepare_shared(self):
        """What a user puts in shared/ before the first deploy: the configuration with the secrets,
        and the uploads directory WordPress (PHP-FPM, www-data) writes to."""
        shared = os.path.join(self.root, 'shared')
        os.makedirs(os.path.join(shared, 'wp-content', 'uploads'))
        os.chmod(self.root, 0o755)
        for path in (shared, os.path.join(shared, 'wp-content')):
            os.chmod(path, 0o755)
        # Until deploy_writable_dirs: the bench makes the shared uploads directory www-data's itself.
        shutil.chown(os.path.join(shared, 'wp-content', 'uploads'), 'www-data', 'www-data')
        salts = '\n'.join("define( '%s', %s );" % (key, php_string(secrets.token_urlsafe(48))) for key in SALTS)
        config = os.path.join(shared, 'wp-config.php')
        with open(config, 'w') as f:
            f.write(WP_CONFIG.format(password=php_string(self.db_password), db_port=self.args.db_port, salts=salts))
        os.chmod(config, 0o640)
        shutil.chown(config, 'root', 'www-data')

    # The playbooks
    def write_vars(self, workdir):
        """The site's variables, in group_vars beside the inventory, as a user keeps them: the deploy
        and the rollback playbook both read them."""
        site = {
            'cutover_apache_vhost': True,
            'apache_vhost_name': NAME, 'apache_vhost_root': self.root, 'apache_vhost_port': self.port,
            'apache_vhost_listen_address': '127.0.0.1',
            # No public/: the release root is served, WordPress's .htaccess honoured (AllowOverride All).
            'apache_vhost_webroot': '', 'apache_vhost_allow_override': 'All',
            'apache_vhost_deny': ['/wp-config\\.php'],
            # This test machine's Apache serves other sites too; the PHP mode is the server's.
            'apache_vhost_switch_php_mode': True,
            'deploy_root': self.root, 'deploy_src': self.src, 'deploy_keep': self.args.keep,
            # What users write (media) and the configuration with the secrets; nothing else.
            'deploy_shared_dirs': ['wp-content/uploads'], 'deploy_shared_files': ['wp-config.php'],
            'rollback_root': self.root, 'rollback_apache_vhost_name': NAME, 'rollback_probe_url': self.url + '/',
        }
        os.makedirs(os.path.join(workdir, 'group_vars'))
        with open(os.path.join(workdir, 'group_vars', 'all.json'), 'w') as f:
            json.dump(site, f, indent=1)

    def deploy(self, n, probe=True):
        self.theme_change(n)
        extra = {}
        if probe:
            extra = {'deploy_probe_url': self.url + '/', 'deploy_probe_content': 'cutover-release r%d' % n}
        self.ansible.play('cutover.web.deploy', extra)
        self.history.append(n)

    def rollback(self):
        self.ansible.play('cutover.web.rollback', {})
        self.history.pop()
        return self.history[-1]

    # WordPress itself
    def request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection('127.0.0.1', self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}, Connection='close'))
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def install(self):
        """WordPress's installer, posted as its form is; pretty permalinks; an application password."""
        form = urllib.parse.urlencode({
            'weblog_title': 'cutover.web WordPress bench', 'user_name': ADMIN, 'admin_password': self.admin_password,
            'admin_password2': self.admin_password, 'pw_weak': '1', 'admin_email': 'admin@example.org',
            'blog_public': '0', 'language': '', 'Submit': 'Install WordPress'}).encode()
        status, headers, body = self.request('POST', '/wp-admin/install.php?step=2', form,
                                             {'Content-Type': 'application/x-www-form-urlencoded'})
        if status != 200 or b'Success!' not in body:
            raise RuntimeError('WordPress did not install (HTTP %s): %s' % (status, body[:2000].decode('utf-8', 'replace')))
        self.sql("UPDATE wordpress.wp_options SET option_value = '/%postname%/' WHERE option_name = 'permalink_structure'; "
                 "DELETE FROM wordpress.wp_options WHERE option_name = 'rewrite_rules';")
        script = ('$_SERVER["HTTP_HOST"] = "127.0.0.1:%d"; define("WP_USE_THEMES", false); require %s;'
                  '$user = get_user_by("login", %s);'
                  '$made = WP_Application_Passwords::create_new_application_password($user->ID, array("name" => "bench"));'
                  'if (is_wp_error($made)) { fwrite(STDERR, $made->get_error_message()); exit(1); } echo $made[0];'
                  % (self.port, php_string(os.path.join(self.root, 'current', 'wp-load.php')), php_string(ADMIN)))
        self.app_password = run(['runuser', '-u', 'www-data', '--', 'php', '-r', script]).strip().splitlines()[-1]

    def auth(self):
        return 'Basic ' + base64.b64encode(('%s:%s' % (ADMIN, self.app_password)).encode()).decode()

    def serves(self, n, timeout=20):
        """Wait until every page the readers fetch shows rN."""
        deadline = time.time() + timeout
        while True:
            seen = []
            for path in PATHS:
                try:
                    status, headers, body = self.request('GET', path)
                except (OSError, http.client.HTTPException) as e:
                    status, body = type(e).__name__, b''
                seen.append((path, status, MARK.findall(body.decode('utf-8', 'replace'))))
            if all(status == 200 and found == [str(n)] for path, status, found in seen):
                return
            if time.time() > deadline:
                raise RuntimeError('the site does not serve r%d: %s' % (n, seen))
            time.sleep(0.3)

    def not_served(self):
        """wp-config.php (the database password, the salts) is never served."""
        for path in ('/wp-config.php', '/.htaccess'):
            status, headers, body = self.request('GET', path)
            if status not in (403, 404) or b'DB_PASSWORD' in body:
                raise RuntimeError('GET %s answered %s, not 403 or 404: %r' % (path, status, body[:200]))


# --- load --------------------------------------------------------------------------------

class Load(object):
    """Readers (a new connection per request) and one uploader through WordPress's REST API."""

    def __init__(self, site, readers, think, upload_every):
        self.site = site
        self.readers = readers
        self.think = think
        self.upload_every = upload_every
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.records = []       # (start, end, path, status, versions)
        self.errors = collections.Counter()
        self.examples = {}
        self.uploads = []       # what WordPress said it stored: {id, file, url, sha256}
        self.upload_failures = collections.Counter()
        self.threads = []

    def start(self):
        self.threads = [threading.Thread(target=self.reader, args=(i,), daemon=True) for i in range(self.readers)]
        self.threads.append(threading.Thread(target=self.uploader, daemon=True))
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(90)

    def reader(self, i):
        k = i
        while not self.stop.is_set():
            path = PATHS[k % len(PATHS)]
            k += 1
            start = time.time()
            try:
                status, headers, body = self.site.request('GET', path)
                text = body.decode('utf-8', 'replace')
            except (OSError, http.client.HTTPException) as e:
                with self.lock:
                    self.errors['error: %s' % type(e).__name__] += 1
                    self.examples.setdefault('error: %s' % type(e).__name__, '%s: %s' % (path, e))
                continue
            versions = frozenset(int(v) for v in MARK.findall(text))
            with self.lock:
                self.records.append((start, time.time(), path, status, versions))
                if not 200 <= status < 300:
                    self.examples.setdefault(str(status), '%s: %s' % (path, text[:300]))
                elif not versions:
                    self.examples.setdefault('no release marker', '%s: %s' % (path, text[:300]))
            self.stop.wait(self.think)

    def uploader(self):
        n = 0
        while not self.stop.is_set():
            n += 1
            name = 'load-%06d.png' % n
            data = png(n)
            try:
                status, headers, body = self.site.request('POST', '/wp-json/wp/v2/media', data, {
                    'Authorization': self.site.auth(), 'Content-Type': 'image/png',
                    'Content-Disposition': 'attachment; filename="%s"' % name})
                reply = json.loads(body.decode('utf-8', 'replace')) if status == 201 else None
            except (OSError, http.client.HTTPException, ValueError) as e:
                status, reply, body = 'error: %s' % type(e).__name__, None, str(e).encode()
            with self.lock:
                if status == 201 and reply and reply.get('media_details', {}).get('file'):
                    self.uploads.append({'id': reply['id'], 'file': reply['media_details']['file'],
                                         'url': reply['source_url'], 'sha256': hashlib.sha256(data).hexdigest()})
                else:
                    self.upload_failures[str(status)] += 1
                    self.examples.setdefault('upload %s' % status, body[:300].decode('utf-8', 'replace'))
            self.stop.wait(self.upload_every)


def lost_uploads(site, uploads):
    """The uploads WordPress accepted that are not in shared/wp-content/uploads, or not served as sent."""
    lost = []
    uploads_dir = os.path.join(site.root, 'shared', 'wp-content', 'uploads')
    for u in uploads:
        path = os.path.join(uploads_dir, u['file'])
        try:
            with open(path, 'rb') as f:
                on_disk = hashlib.sha256(f.read()).hexdigest()
        except OSError as e:
            on_disk = str(e)
        try:
            status, headers, body = site.request('GET', urllib.parse.urlsplit(u['url']).path)
        except (OSError, http.client.HTTPException) as e:
            status, body = type(e).__name__, b''
        if on_disk != u['sha256'] or status != 200 or hashlib.sha256(body).hexdigest() != u['sha256']:
            lost.append('%s (on disk: %s; HTTP %s)' % (u['file'], 'same' if on_disk == u['sha256'] else on_disk, status))
    return lost


def library_count(site):
    """How many media items WordPress lists (its X-WP-Total)."""
    status, headers, body = site.request('GET', '/wp-json/wp/v2/media?per_page=1', headers={'Authorization': site.auth()})
    total = dict((k.lower(), v) for k, v in headers.items()).get('x-wp-total')
    return int(total) if status == 200 and total else None


# --- one run -------------------------------------------------------------------------------

def bench(args, site):
    site.start_db()
    site.make_source()
    site.prepare_shared()
    log('deploy r1 and install WordPress')
    t = time.perf_counter()
    site.deploy(1, probe=False)
    first_deploy = time.perf_counter() - t
    site.install()
    site.serves(1)
    site.not_served()
    load = Load(site, args.readers, args.think_ms / 1000.0, args.upload_every)
    load.start()
    time.sleep(args.settle)
    ops = []
    n, deploys, rollbacks = 1, 0, 0
    every = max(1, args.deploys // args.rollbacks) if args.rollbacks else 0
    began = time.time()
    while deploys < args.deploys or rollbacks < args.rollbacks:
        before = site.history[-1]
        t = time.time()
        if every and deploys and deploys % every == 0 and ops and ops[-1][4] == 'deploy' and rollbacks < args.rollbacks:
            after = site.rollback()
            rollbacks += 1
            kind = 'rollback'
        else:
            n += 1
            site.deploy(n)
            after = n
            deploys += 1
            kind = 'deploy'
        ops.append((t, time.time(), before, after, kind))
        log('%s r%d -> r%d in %.1f s (%d requests, %d uploads so far)'
            % (kind, before, after, ops[-1][1] - t, len(load.records), len(load.uploads)))
        time.sleep(args.settle)
    load.finish()
    elapsed = time.time() - began
    site.serves(site.history[-1])
    site.not_served()
    lost = lost_uploads(site, load.uploads)
    counts, statuses, stale_examples = judge(load.records, [o[:4] for o in ops], 1)
    no_marker = sum(1 for start, end, path, status, versions in load.records if 200 <= status < 300 and not versions)
    releases = sorted(os.listdir(os.path.join(site.root, 'releases')))
    return {
        'deploys': deploys, 'rollbacks': rollbacks, 'seconds': round(elapsed, 1),
        'first_deploy_seconds': round(first_deploy, 1),
        'deploy_seconds': sorted(round(o[1] - o[0], 1) for o in ops if o[4] == 'deploy'),
        'rollback_seconds': sorted(round(o[1] - o[0], 1) for o in ops if o[4] == 'rollback'),
        'requests': counts['requests'] + sum(load.errors.values()),
        'requests_by_path': dict(collections.Counter(r[2] for r in load.records)),
        'versions': dict(('r%d' % v, c) for v, c in sorted(collections.Counter(
            v for r in load.records for v in r[4]).items())),
        'non_2xx': dict((str(k), v) for k, v in statuses.items()), 'connection_errors': dict(load.errors),
        # judge counts a 2xx page without a marker as STALE; here it is a fault of its own.
        'no_marker': no_marker, 'stale': counts['stale'] - no_marker, 'stale_examples': stale_examples,
        'uploads': len(load.uploads), 'uploads_lost': len(lost), 'lost_examples': lost[:5],
        'upload_failures': dict(load.upload_failures), 'library_count': library_count(site),
        'examples': load.examples, 'release_dirs': len(releases),
        'history': ['r%d' % v for v in site.history],
    }


def faults(r):
    return (sum(r['non_2xx'].values()) + sum(r['connection_errors'].values()) + r['no_marker'] + r['stale']
            + r['uploads_lost'] + sum(r['upload_failures'].values())
            + (0 if r['library_count'] == r['uploads'] else 1) + (0 if r['uploads'] >= 5 else 1))


def cell(d):
    return '%d (%s)' % (sum(d.values()), ', '.join('%s: %d' % kv for kv in sorted(d.items()))) if d else '0'


def median(xs):
    return xs[len(xs) // 2] if xs else 0


def render(args, info, started, r):
    cmd = 'python3 bench/wordpress.py ' + ' '.join(shlex.quote(a) for a in sys.argv[1:])
    apache = run(['apache2ctl', '-v']).splitlines()
    php = run(['php', '-v']).splitlines()
    mariadb = run(['mariadbd', '--version']).strip()
    wordpress = run(['dpkg-query', '-W', '-f', '${Version}', 'wordpress']).strip()
    lines = [
        '- Date: %s (UTC)' % started.strftime('%Y-%m-%d %H:%M'),
        '- Command: `%s`' % cmd.strip(),
        '- Machine: %s CPUs, %s; %s RAM; %s; %s; load before %s' % (
            info['nproc'], info['cpu'], info['mem'], info['kernel'], socket.gethostname(), info['load']),
        '- WordPress %s (Debian package), Apache %s with PHP-FPM (%s), %s' % (
            wordpress, apache[0].split(':', 1)[-1].strip() if apache else '?', php[0] if php else '?', mariadb),
        '- Load: %d readers (home page, a post by its pretty permalink, the theme\'s style.css in turn; a new '
        'connection per request, %.0f ms apart), one writer uploading a PNG through POST /wp-json/wp/v2/media every '
        '%.2f s; %.1f s of load after each deploy or rollback; deploy_keep %d.' % (
            args.readers, args.think_ms, args.upload_every, args.settle, args.keep),
        '',
        '| deploys + rollbacks | s per deploy, median (max) | s per rollback | requests | non-2xx | connection errors '
        '| no release marker | STALE | uploads stored | uploads lost | upload failures | media library count |',
        '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
        '| %d + %d | %.1f (%.1f) | %s | %d | %s | %s | %d | %d | %d | %d | %s | %s |' % (
            r['deploys'], r['rollbacks'], median(r['deploy_seconds']), max(r['deploy_seconds'] or [0]),
            ', '.join('%.1f' % s for s in r['rollback_seconds']) or '-', r['requests'], cell(r['non_2xx']),
            cell(r['connection_errors']), r['no_marker'], r['stale'], r['uploads'], r['uploads_lost'],
            cell(r['upload_failures']), r['library_count']),
        '',
        'Requests by path: %s; pages by release: %s; releases gone live and not rolled back from, in order: %s; '
        'release directories at the end: %d; first deploy (no load, %s): %.1f s.' % (
            ', '.join('%s %d' % kv for kv in sorted(r['requests_by_path'].items())),
            ', '.join('%s %d' % kv for kv in r['versions'].items()), ' '.join(r['history']),
            r['release_dirs'], 'the vhost set up too', r['first_deploy_seconds']),
    ]
    for kind, text in sorted(r['examples'].items()):
        lines.append('- first %s: `%s`' % (kind, ' '.join(text.split())[:200]))
    for text in r['stale_examples'] + r['lost_examples']:
        lines.append('- %s' % text)
    return '\n'.join(lines)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    p.add_argument('--deploys', type=int, default=10)
    p.add_argument('--rollbacks', type=int, default=2, help='one after every --deploys/--rollbacks deploys')
    p.add_argument('--readers', type=int, default=3)
    p.add_argument('--think-ms', type=float, default=20.0, help='pause of each reader between two requests')
    p.add_argument('--upload-every', type=float, default=0.2, help='seconds between two uploads')
    p.add_argument('--settle', type=float, default=3.0, help='seconds of load after each deploy or rollback')
    p.add_argument('--keep', type=int, default=3, help='deploy_keep')
    p.add_argument('--port', type=int, default=18142, help='the site\'s port on 127.0.0.1')
    p.add_argument('--db-port', type=int, default=55472, help='the MariaDB server\'s port on 127.0.0.1')
    p.add_argument('--workdir', default='/var/tmp/cutover-wordpress')
    p.add_argument('--venv', default=os.path.join(REPO, '.venv'))
    p.add_argument('--collections', default=os.path.join(REPO, '.work', 'collections'))
    p.add_argument('--results', default=os.path.join(BENCH, 'results'))
    p.add_argument('--expect-zero', action='store_true',
                   help='exit 1 unless there was no fault at all and every upload is there (for tests)')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if os.geteuid() != 0:
        sys.exit('Run this benchmark as root: it configures Apache and starts MariaDB.')
    for tool in ('apache2ctl', 'mariadbd', 'mariadb-install-db', 'php', 'rsync'):
        if not shutil.which(tool):
            sys.exit('%s is missing: run ./dev setup first.' % tool)
    if not os.path.isfile(os.path.join(WORDPRESS, 'wp-settings.php')):
        sys.exit('WordPress is not in %s: apt-get install wordpress (./dev setup does).' % WORDPRESS)
    workdir = prepare_workdir(args.workdir)
    os.chmod(workdir, 0o755)  # Apache and PHP walk through it
    ansible = Ansible(workdir, args.venv, args.collections)
    info = machine_info(workdir)
    modules_before = apache_modules()
    started = datetime.datetime.now(datetime.timezone.utc)
    site = Site(args, workdir, ansible)
    site.write_vars(workdir)
    try:
        result = bench(args, site)
    finally:
        remove_vhosts([NAME], [args.port], modules_before)
        site.stop_db()
    report = render(args, info, started, result)
    print(report)
    os.makedirs(args.results, exist_ok=True)
    stem = os.path.join(args.results, 'wordpress-%s' % started.strftime('%Y%m%dT%H%M%SZ'))
    with open(stem + '.md', 'w') as f:
        f.write(report + '\n')
    with open(stem + '.json', 'w') as f:
        json.dump({'args': vars(args), 'machine': info, 'result': result}, f, indent=1)
    shutil.rmtree(workdir, ignore_errors=True)
    if args.expect_zero and faults(result):
        sys.exit('WordPress under cutover.web saw faults: %s' % json.dumps(result))


if __name__ == '__main__':
    main()
