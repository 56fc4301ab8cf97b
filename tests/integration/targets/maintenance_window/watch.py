"""Ask the site for / from 127.0.0.1 and from 127.0.0.2 (on the allow-list) in turn until
the file STOP exists; print one JSON line per answer: client, status, Retry-After, body."""

from __future__ import annotations

import http.client
import json
import os
import sys
import time

port, stop = int(sys.argv[1]), sys.argv[2]
while not os.path.exists(stop):
    for client in ('127.0.0.1', '127.0.0.2'):
        try:
            conn = http.client.HTTPConnection('127.0.0.1', port, timeout=10, source_address=(client, 0))
            conn.request('GET', '/')
            answer = conn.getresponse()
            record = {'client': client, 'status': answer.status, 'retry_after': answer.getheader('Retry-After'),
                      'body': answer.read().decode('utf-8', 'replace').strip()}
            conn.close()
        except OSError as exc:
            record = {'client': client, 'status': 0, 'error': str(exc)}
        record['time'] = round(time.time(), 3)
        print(json.dumps(record), flush=True)
    time.sleep(0.05)
