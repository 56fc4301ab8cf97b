"""Read and write a DokuWiki over HTTP while it is deployed and rolled back; report what was seen.

usage: python wiki_load.py run DIR BASE_URL      (until SIGTERM, 600 s at most)
       python wiki_load.py report DIR             (prints it; exits 1 on any fault)
       python wiki_load.py verify DIR BASE_URL PAGES_DIR   (exits 1 when a saved page is lost)

For the real_app target, against 127.0.0.1 only. Two readers alternate between a wiki page
and the CSS DokuWiki compiles (lib/exe/css.php), each request on a new connection, 20 ms apart;
both show the release that served them ("cutover-release rN", from the template's footer and
from its CSS). One writer saves pages through DokuWiki's own edit form, as a browser does: it
opens the edit form (session cookie, security token, hidden fields) and posts it; DokuWiki
answers a saved page with a redirect to it. Every 4th save rewrites the same page.

The test writes the release that must serve into DIR/expect once a deploy or rollback has
finished, and empties it before the next one starts. A page that started while DIR/expect named
a release and came from another is STALE. Faults: answers other than 2xx (and the writer's
expected redirect), connection errors, pages with no release marker, saves DokuWiki refused.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

MARKER = re.compile(r'cutover-release (r[0-9]+)')
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
MAX_SECONDS = 600


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def fetch(opener, url, data=None):
    try:
        with opener.open(url, data=data, timeout=30) as response:
            return response.status, response.read().decode('utf-8', 'replace')
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode('utf-8', 'replace')
    except OSError as exc:
        return 'connection error', str(exc)


class Seen:
    def __init__(self, directory):
        self.directory = directory
        self.lock = threading.Lock()
        self.data = {'requests': 0, 'faults': {}, 'examples': {}, 'versions': {}, 'stale': 0,
                     'stale_examples': [], 'saves': 0, 'saved': {}, 'redirects': 0}

    def expected(self):
        try:
            with open(os.path.join(self.directory, 'expect')) as f:
                return f.read().strip()
        except OSError:
            return ''

    def fault(self, kind, example):
        with self.lock:
            self.data['faults'][kind] = self.data['faults'].get(kind, 0) + 1
            self.data['examples'].setdefault(kind, example[:300])

    def page(self, url, expected, status, body):
        match = MARKER.search(body) if status == 200 else None
        with self.lock:
            self.data['requests'] += 1
        if status != 200:
            self.fault(str(status), '%s: %s' % (url, body))
        elif not match:
            self.fault('no release marker', '%s: %s' % (url, body))
        else:
            version = match.group(1)
            with self.lock:
                self.data['versions'][version] = self.data['versions'].get(version, 0) + 1
                if expected and version != expected:
                    self.data['stale'] += 1
                    if len(self.data['stale_examples']) < 5:
                        self.data['stale_examples'].append('%s: %s instead of %s' % (url, version, expected))


def reader(base, seen, stop):
    urls = [base + 'doku.php?id=wiki:welcome', base + 'lib/exe/css.php?t=dokuwiki']
    opener = urllib.request.build_opener()
    n = 0
    while not stop.is_set():
        url = urls[n % len(urls)]
        n += 1
        expected = seen.expected()
        status, body = fetch(opener, url)
        seen.page(url, expected, status, body)
        stop.wait(0.02)


def save(base, seen, page, text):
    """Open the page's edit form and post it; True when DokuWiki redirected to the saved page."""
    opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    url = base + 'doku.php?' + urllib.parse.urlencode({'id': page, 'do': 'edit'})
    status, body = fetch(opener, url)
    with seen.lock:
        seen.data['requests'] += 1
    if status != 200:
        seen.fault('edit form %s' % status, body)
        return False
    form = body[body.find('id="dw__editform"'):]
    fields = dict(HIDDEN.findall(form[:form.find('</form>')]))
    if 'sectok' not in fields:
        seen.fault('edit form without a security token', form or body)
        return False
    fields.update({'wikitext': text, 'summary': 'load test', 'do[save]': 'Save'})
    status, body = fetch(opener, base + 'doku.php', urllib.parse.urlencode(fields).encode())
    with seen.lock:
        seen.data['requests'] += 1
    if status in (302, 303):
        with seen.lock:
            seen.data['redirects'] += 1
        return True
    # DokuWiki shows the form again, with its reason, when it does not save.
    reason = re.search(r'<div class="error">(.*?)</div>', body, re.S)
    seen.fault('save %s' % status, reason.group(1) if reason else body)
    return False


def writer(base, seen, stop):
    n = 0
    while not stop.is_set():
        page = 'load:same' if n % 4 == 3 else 'load:p%04d' % n
        text = 'Saved by the load test, save %d of %s.\n\n  * cutover.web real_app\n' % (n, page)
        if save(base, seen, page, text):
            with seen.lock:
                seen.data['saves'] += 1
                seen.data['saved'][page] = text
        n += 1
        stop.wait(0.1)


def run(directory, base):
    stop = threading.Event()
    seen = Seen(directory)
    signal.signal(signal.SIGTERM, lambda *args: stop.set())
    threads = [threading.Thread(target=reader, args=(base, seen, stop)) for dummy in (1, 2)]
    threads.append(threading.Thread(target=writer, args=(base, seen, stop)))
    for t in threads:
        t.start()
    deadline = time.monotonic() + MAX_SECONDS
    while not stop.is_set() and time.monotonic() < deadline:
        stop.wait(0.2)
    stop.set()
    for t in threads:
        t.join()
    with open(os.path.join(directory, 'load.json'), 'w') as f:
        json.dump(seen.data, f, indent=1, sort_keys=True)
    return 0


def report(directory):
    with open(os.path.join(directory, 'load.json')) as f:
        seen = json.load(f)
    print('load: %d requests, versions %s, %d STALE, faults %s, %d pages saved (%d redirects after a save)'
          % (seen['requests'], seen['versions'], seen['stale'], seen['faults'], seen['saves'], seen['redirects']))
    for kind, body in sorted(seen['examples'].items()):
        print('  %s: %s' % (kind, body))
    for line in seen['stale_examples']:
        print('  STALE %s' % line)
    return 1 if seen['faults'] or seen['stale'] or seen['saves'] < 5 or seen['requests'] < 100 else 0


def verify(directory, base, pages_dir):
    """Every page the writer saved is served with its text and is in the shared pages folder."""
    with open(os.path.join(directory, 'load.json')) as f:
        saved = json.load(f)['saved']
    opener = urllib.request.build_opener()
    lost = []
    for page, text in sorted(saved.items()):
        status, body = fetch(opener, base + 'doku.php?' + urllib.parse.urlencode({'id': page, 'do': 'export_raw'}))
        path = os.path.join(pages_dir, *page.split(':')) + '.txt'
        try:
            with open(path) as f:
                on_disk = f.read()
        except OSError as exc:
            on_disk = str(exc)
        if status != 200 or body.rstrip('\n') != text.rstrip('\n') or on_disk.rstrip('\n') != text.rstrip('\n'):
            lost.append('%s (HTTP %s: %r; %s: %r)' % (page, status, body[:80], path, on_disk[:80]))
    print('saved pages: %d, lost: %d' % (len(saved), len(lost)))
    for line in lost[:10]:
        print('  lost %s' % line)
    return 1 if lost or not saved else 0


def main(argv):
    if argv[:1] == ['run'] and len(argv) == 3:
        return run(argv[1], argv[2])
    if argv[:1] == ['report'] and len(argv) == 2:
        return report(argv[1])
    if argv[:1] == ['verify'] and len(argv) == 4:
        return verify(argv[1], argv[2], argv[3])
    sys.stderr.write(__doc__)
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
