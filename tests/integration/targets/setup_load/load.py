"""Keep asking web pages while deploys and rollbacks run; on SIGTERM write what was seen.

usage: python load.py run OUT.json PATTERN URL [URL ...]
       python load.py report OUT.json WHAT   (prints it; exits 1 on any fault or under 20 requests a URL)

For the script targets (aliases: needs/target/setup_load), through load.sh. Two clients per URL, each a new
connection per request, 20 ms apart. PATTERN is a regular expression whose first group is the
version a page shows (for example "^catalog (v[0-9]+)"). The report counts, per URL, requests,
faults (answers other than a 200 that matches PATTERN, by status, with the first body seen;
connection errors) and how many answers each version gave.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import threading
import urllib.error
import urllib.request


def client(url, pattern, seen, lock, stop):
    while not stop.is_set():
        try:
            with urllib.request.urlopen(url, timeout=15) as response:
                status, body = response.status, response.read().decode('utf-8', 'replace')
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read().decode('utf-8', 'replace')
        except OSError as exc:
            status, body = 'connection error', str(exc)
        match = pattern.search(body) if status == 200 else None
        with lock:
            seen['requests'] += 1
            if match:
                version = match.group(1)
                seen['versions'][version] = seen['versions'].get(version, 0) + 1
            else:
                key = str(status)
                seen['faults'][key] = seen['faults'].get(key, 0) + 1
                seen['examples'].setdefault(key, body[:300])
        stop.wait(0.02)


def run(out, pattern, urls):
    stop = threading.Event()
    lock = threading.Lock()
    report = {url: {'requests': 0, 'faults': {}, 'versions': {}, 'examples': {}} for url in urls}
    signal.signal(signal.SIGTERM, lambda *args: stop.set())
    version = re.compile(pattern, re.M)
    threads = [threading.Thread(target=client, args=(url, version, report[url], lock, stop))
               for url in urls for dummy in (1, 2)]
    for t in threads:
        t.start()
    while not stop.is_set():
        stop.wait(0.2)
    for t in threads:
        t.join()
    with open(out, 'w') as f:
        json.dump(report, f, indent=1, sort_keys=True)
    return 0


def summary(out, what):
    with open(out) as f:
        report = json.load(f)
    bad = False
    for url, seen in sorted(report.items()):
        print('%s during %s: %d requests, versions %s, faults %s'
              % (url, what, seen['requests'], seen['versions'], seen['faults']))
        for status, body in sorted(seen['examples'].items()):
            print('  %s: %s' % (status, body))
        bad = bad or bool(seen['faults']) or seen['requests'] < 20
    return 1 if bad else 0


def main(argv):
    if argv[:1] == ['run'] and len(argv) >= 4:
        return run(argv[1], argv[2], argv[3:])
    if argv[:1] == ['report'] and len(argv) == 3:
        return summary(argv[1], argv[2])
    sys.stderr.write(__doc__)
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
