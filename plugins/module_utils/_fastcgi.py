# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A FastCGI client, enough to run one PHP script inside a PHP-FPM pool (FastCGI 1.0, responder role).

Every record is an 8-byte header (version 1, type, request id, content length, padding length, a
reserved byte) followed by its content and padding. A request is BEGIN_REQUEST (role RESPONDER, no
keep-connection flag), the PARAMS stream (name-value pairs, each length in 1 byte below 128 else in 4
bytes with the top bit set; an empty record ends the stream), the STDIN stream (ended the same way).
The application answers with STDOUT and STDERR streams and one END_REQUEST (application status,
protocol status) and closes the connection. STDOUT is a CGI response: headers, a blank line, the body.
"""

from __future__ import annotations

import errno
import socket
import struct

from ansible_collections.cutover.web.plugins.module_utils._releases import CutoverError

VERSION = 1
BEGIN_REQUEST, ABORT_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT, STDERR = 1, 2, 3, 4, 5, 6, 7
RESPONDER = 1
PROTOCOL_STATUS = {0: 'complete', 1: 'cannot multiplex connections', 2: 'overloaded', 3: 'unknown role'}
HEADER = struct.Struct('!BBHHBx')
MAX_CONTENT = 0xffff
REQUEST_ID = 1


def record(kind, content=b''):
    """One record (or several, for content longer than a record holds), padded to 8 bytes."""
    out = []
    for start in range(0, max(len(content), 1), MAX_CONTENT):
        chunk = content[start:start + MAX_CONTENT]
        pad = -len(chunk) % 8
        out.append(HEADER.pack(VERSION, kind, REQUEST_ID, len(chunk), pad) + chunk + b'\0' * pad)
    return b''.join(out)


def _length(n):
    return struct.pack('!B', n) if n < 128 else struct.pack('!I', n | 0x80000000)


def encode_params(params):
    """The name-value pairs of a PARAMS stream."""
    out = []
    for name, value in params.items():
        name, value = name.encode('utf-8', 'surrogateescape'), value.encode('utf-8', 'surrogateescape')
        out.append(_length(len(name)) + _length(len(value)) + name + value)
    return b''.join(out)


class Response(object):
    """A FastCGI application's answer: the CGI status, headers and body, and what it wrote to STDERR."""

    def __init__(self, stdout, stderr, app_status):
        head, sep, body = stdout.partition(b'\r\n\r\n')
        if not sep:
            head, sep, body = stdout.partition(b'\n\n')
        self.headers = {}
        for line in head.decode('latin-1').splitlines() if sep else ():
            name, dummy_sep, value = line.partition(':')
            self.headers[name.strip().lower()] = value.strip()
        self.body = body if sep else stdout
        self.stderr = stderr.decode('utf-8', 'replace').strip()
        self.app_status = app_status
        status = self.headers.get('status', '200').split(' ', 1)[0]
        self.status = int(status) if status.isdigit() else 500


def _recv_exactly(sock, n):
    data = b''
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def request(socket_path, params, stdin=b'', timeout=30.0):
    """Send one request to the FastCGI application listening on the unix socket ``socket_path``.

    Returns a :class:`Response`; raises CutoverError (naming the socket) when the application cannot be
    reached, closes the connection early or refuses the request."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(socket_path)
            sock.sendall(record(BEGIN_REQUEST, struct.pack('!HB5x', RESPONDER, 0))
                         + record(PARAMS, encode_params(params)) + record(PARAMS)
                         + (record(STDIN, stdin) if stdin else b'') + record(STDIN))
            streams = {STDOUT: [], STDERR: []}
            while True:
                dummy_version, kind, dummy_id, length, pad = HEADER.unpack(_recv_exactly(sock, HEADER.size))
                content = _recv_exactly(sock, length + pad)[:length]
                if kind in streams:
                    streams[kind].append(content)
                elif kind == END_REQUEST:
                    app_status, protocol_status = struct.unpack('!IB3x', content)
                    break
        except EOFError:
            raise CutoverError('The FastCGI server at %s closed the connection before it answered.' % socket_path,
                               path=socket_path)
        except socket.timeout:
            raise CutoverError('The FastCGI server at %s did not answer within %s s.' % (socket_path, timeout),
                               path=socket_path)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            if exc.errno in (errno.ENOENT, errno.ECONNREFUSED):
                reason += ' (is PHP-FPM running, and is this the socket its pool listens on?)'
            raise CutoverError('Cannot talk to the FastCGI server at %s: %s.' % (socket_path, reason), path=socket_path)
    finally:
        sock.close()
    if protocol_status != 0:
        raise CutoverError('The FastCGI server at %s refused the request (%s).'
                           % (socket_path, PROTOCOL_STATUS.get(protocol_status, protocol_status)), path=socket_path)
    return Response(b''.join(streams[STDOUT]), b''.join(streams[STDERR]), app_status)
