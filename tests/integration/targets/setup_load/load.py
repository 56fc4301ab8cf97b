"""Keep asking web pages while deploys and rollbacks run; on SIGTERM write what was seen.

usage: python load.py OUT.json URL [URL ...]

Two clients per URL, each a new connection per request, 20 ms apart. The report counts, per
URL, requests, answers other than 200 (by status, with the first body seen), connection
errors, and how many answers each catalogue version gave (the first line of the page says
"catalog vN on HOST").
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import urllib.error
import urllib.request


def client(url, seen, lock, stop):
    while not stop.is_set():
        try:
            with urllib.request.urlopen(url, timeout=15) as response:
                status, body = response.status, response.read().decode('utf-8', 'replace')
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read().decode('utf-8', 'replace')
        except OSError as exc:
            status, body = 'connection error', str(exc)
        first = body.split('\n', 1)[0]
        with lock:
            seen['requests'] += 1
            if status == 200 and first.startswith('catalog '):
                version = first.split()[1]
                seen['versions'][version] = seen['versions'].get(version, 0) + 1
            else:
                key = str(status)
                seen['faults'][key] = seen['faults'].get(key, 0) + 1
                seen['examples'].setdefault(key, body[:300])
        stop.wait(0.02)


def main(argv):
    out, urls = argv[0], argv[1:]
    stop = threading.Event()
    lock = threading.Lock()
    report = {url: {'requests': 0, 'faults': {}, 'versions': {}, 'examples': {}} for url in urls}
    signal.signal(signal.SIGTERM, lambda *args: stop.set())
    threads = [threading.Thread(target=client, args=(url, report[url], lock, stop)) for url in urls for dummy in (1, 2)]
    for t in threads:
        t.start()
    while not stop.is_set():
        stop.wait(0.2)
    for t in threads:
        t.join()
    with open(out, 'w') as f:
        json.dump(report, f, indent=1, sort_keys=True)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
