# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What Apache serves: the release pointer of a site of the apache_vhost role.

The site's vhost includes ``<conf>/cutover/<name>-release.conf``, which names the resolved path of
the live release as DocumentRoot and sets the ``X-Cutover-Release`` header. Serving a release is:
write the pointer beside its place, check it with Apache's own config test, rename it in place,
restart Apache gracefully and wait until a new connection is answered with the release's header;
then lift the maintenance window and reset the OPcache of the site's PHP-FPM pool. Used by
cutover.web.vhost_release and cutover.web.go_live (``opts``: their vhost options, with
``release_path``).
"""

from __future__ import annotations

import http.client
import os
import re
import stat
import tempfile
import time

from ansible_collections.cutover.web.plugins.module_utils._fingerprint import read_record
from ansible_collections.cutover.web.plugins.module_utils._maintenance import window
from ansible_collections.cutover.web.plugins.module_utils._opcache import reset_opcache
from ansible_collections.cutover.web.plugins.module_utils._releases import CutoverError
from ansible_collections.cutover.web.plugins.module_utils._switch import rollback, switch

OPCACHE_TIMEOUT = 30
POINTER_SUFFIX = '-release.conf'

# Where the apache_vhost role keeps its sites' release pointers, by Apache's configuration directory, with the
# commands that check a pointer and restart that Apache and the directory of the sites' vhost files.
APACHES = (
    dict(pointers='/etc/apache2/cutover', validate="apache2ctl -t -c 'Include %s'", restart=['apache2ctl', 'graceful'],
         sites='/etc/apache2/sites-available'),
    dict(pointers='/etc/httpd/cutover', validate="apachectl -t -c 'Include %s'", restart=['apachectl', 'graceful'],
         sites='/etc/httpd/conf.d'),
)
# The records of the apache_vhost role's set-ups, <name>.json: how a deploy that found a site points it at a
# release (remember.serve: port, host, opcache_reset).
RECORDS = '/var/lib/cutover-web/apache_vhost'

# The options of a site's pointer, as vhost_release and deploy_release take them (release_path aside).
VHOST_OPTIONS = dict(
    path=dict(type='path', required=True),
    content=dict(type='str'),
    webroot=dict(type='str', default=''),
    validate=dict(type='str', required=True),
    restart=dict(type='list', elements='str', required=True),
    port=dict(type='int', required=True),
    host=dict(type='str', default='localhost'),
    timeout=dict(type='int', default=10),
    site=dict(type='path'),
    opcache_reset=dict(type='bool', default=False),
)

# How a module finds the site itself when it is given no pointer options (find_vhost): the site's name, if the caller
# names one (else the one whose pointer serves the root), the webroot the deploy serves, the caller's setting that names a
# site (said when several serve the root, or the one named is refused), and the wait for Apache.
FIND_OPTIONS = dict(
    name=dict(type='str', default=''),
    webroot=dict(type='str', default=''),
    setting=dict(type='str', default='the vhost name'),
    timeout=dict(type='int', default=10),
)


def pointer_text(path, release_path, served):
    """The pointer ``path`` of the site (``<name>-release.conf``) holds for a release served from ``served``."""
    name = os.path.basename(path)
    name = name[:-len(POINTER_SUFFIX)] if name.endswith(POINTER_SUFFIX) else name
    release = os.path.basename(os.path.normpath(release_path))
    return ('# Ansible managed (cutover.web): the live release of the Apache site "%s"\n'
            'DocumentRoot "%s"\nHeader always set X-Cutover-Release "%s"\n' % (name, served, release))


def _read(path):
    try:
        with open(path, 'rb') as f:
            return f.read().decode('utf-8', 'replace')
    except FileNotFoundError:
        return None


def serving_sites(root):
    """The sites of the apache_vhost role whose release pointer serves a release of ``root``, by name: for each, its
    name, its pointer and the entry of APACHES it belongs to. Read-only; a pointer that is not a regular file (a
    link, a directory) is no site's."""
    prefix = 'DocumentRoot "%s/releases/' % root
    found = []
    for apache in APACHES:
        try:
            entries = sorted(os.listdir(apache['pointers']))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            path = os.path.join(apache['pointers'], entry)
            if entry.startswith('.') or not entry.endswith(POINTER_SUFFIX) or not stat.S_ISREG(os.lstat(path).st_mode):
                continue
            if any(line.startswith(prefix) for line in (_read(path) or '').splitlines()):
                found.append((entry[:-len(POINTER_SUFFIX)], path, apache))
    return sorted(found, key=lambda site: site[0])


# A site's name as the apache_vhost role takes it (apache_vhost_name): it names files, so nothing else is looked up.
SITE_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]*$')


def _serves(document_root, root):
    """Whether a vhost's DocumentRoot (``<root>/current[/<webroot>]``, as the apache_vhost role writes it) is of ``root``,
    however either path is spelled (a trailing or doubled slash, a symlink on the way)."""
    current = os.path.join(root, 'current')
    return any(path == top or path.startswith(top + os.sep)
               for path, top in ((os.path.normpath(document_root), os.path.normpath(current)),
                                 (os.path.realpath(document_root), os.path.realpath(current))))


def named_site(root, name, setting):
    """The site ``name`` of the apache_vhost role, as serving_sites() gives a site, refused unless its vhost file is one the
    role wrote for ``root`` (DocumentRoot "<root>/current...") and its pointer, if there is one yet, a regular file."""
    if not SITE_NAME.match(name):
        raise CutoverError('%s must be the name of a site of the apache_vhost role, such as "shop", but it is "%s"; '
                           'nothing was changed.' % (setting, name), path=root)
    for apache in APACHES:
        site = os.path.join(apache['sites'], 'cutover-%s.conf' % name)
        try:
            mode = os.lstat(site).st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue
        document_root = re.search(r'^\s*DocumentRoot\s+"([^"]*)"', (_read(site) or '') if stat.S_ISREG(mode) else '', re.M)
        served = document_root.group(1) if document_root else None
        if served is None or not _serves(served, root):
            raise CutoverError('The Apache site %s (%s) does not serve %s: its vhost %s %s; set %s to the site that serves '
                               'it. Nothing was changed.'
                               % (name, setting, root, site, ('serves %s' % served) if served else 'is not one the '
                                  'apache_vhost role wrote', setting), path=site)
        path = os.path.join(apache['pointers'], name + POINTER_SUFFIX)
        if os.path.lexists(path) and not stat.S_ISREG(os.lstat(path).st_mode):
            raise CutoverError('The release pointer %s of the Apache site %s is not a regular file; nothing was changed.'
                               % (path, name), path=path)
        return name, path, apache
    raise CutoverError('There is no Apache site %s (%s) of the apache_vhost role on this host (no %s); set it up with that '
                       'role first. Nothing was changed.'
                       % (name, setting, ' or '.join(os.path.join(a['sites'], 'cutover-%s.conf' % name) for a in APACHES)),
                       path=root)


def _recorded(name):
    """How the record of the site's set-up says to serve it (port, host, opcache_reset), or None for a record
    without it (one an earlier version wrote) or none."""
    record = read_record(os.path.join(RECORDS, '%s.json' % name)) or {}
    remembered = record.get('remember')
    serve = remembered.get('serve') if isinstance(remembered, dict) else None
    if not isinstance(serve, dict):
        return None
    try:
        return dict(port=int(serve['port']), host=str(serve['host'] or 'localhost'),
                    opcache_reset=serve['opcache_reset'] in (True, 'true', 'True'))
    except (KeyError, TypeError, ValueError):
        return None


def _from_site(site):
    """How to serve a site whose record says nothing of it: the port and server name of its vhost file, as the
    apache_vhost role writes it, and the role's default OPcache reset; None when the file says no port."""
    text = _read(site) or ''
    port = re.search(r'^\s*<VirtualHost\s[^>]*:(\d+)\s*>', text, re.M)
    if not port:
        return None
    host = re.search(r'^\s*ServerName\s+(\S+)', text, re.M)
    return dict(port=int(port.group(1)), host=host.group(1) if host else 'localhost', opcache_reset=True)


def found_vhost(root, find):
    """The vhost options (as VHOST_OPTIONS, with its name) of the site of the apache_vhost role named in ``find``
    (named_site()), else of the one site whose pointer serves releases of ``root``, or None when none does. Several are
    refused, naming ``find['setting']``: the caller's setting that names the one to point. The commands come from the
    Apache the pointer belongs to, never from a file; the record gives the port, host and OPcache reset, else the
    site's vhost file does."""
    if find.get('name'):
        name, path, apache = named_site(root, find['name'], find['setting'])
    else:
        sites = serving_sites(root)
        if not sites:
            return None
        if len(sites) > 1:
            raise CutoverError('The Apache sites %s all serve releases of %s; set %s to the one to point at the release.'
                               % (', '.join(site[0] for site in sites), root, find['setting']), path=root)
        name, path, apache = sites[0]
    site = os.path.join(apache['sites'], 'cutover-%s.conf' % name)
    serve = _recorded(name) or _from_site(site)
    if serve is None:
        raise CutoverError('The Apache site %s serves releases of %s, but neither the record of its set-up (%s) nor '
                           'its vhost (%s) says its port; run the apache_vhost role for it, or set %s.'
                           % (name, root, os.path.join(RECORDS, '%s.json' % name), site, find['setting']), path=path)
    return dict(serve, name=name, path=path, content=None, webroot=find['webroot'], validate=apache['validate'],
                restart=list(apache['restart']), timeout=find['timeout'], site=site)


def _header(port, host, timeout):
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        conn.request('HEAD', '/', headers={'Host': host})
        return conn.getresponse().getheader('X-Cutover-Release')
    finally:
        conn.close()


def _put(module, opts, path, content):
    """Write ``content`` beside ``path``, check it with the validate command, then move it in place."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(content.encode('utf-8'))
        os.chmod(tmp, 0o644)
        validate = opts['validate']
        rc, out, err = module.run_command(validate % tmp if '%s' in validate else validate)
        if rc != 0:
            raise CutoverError('The release pointer %s was not put in place, as %s refused it: %s.'
                               % (path, validate.split()[0], (err or out).strip() or 'exit status %d' % rc),
                               path=path, rc=rc, stdout=out, stderr=err)
        module.atomic_move(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _restart(module, opts):
    want = os.path.basename(os.path.normpath(opts['release_path']))
    started = time.monotonic()
    rc, out, err = module.run_command(opts['restart'])
    if rc != 0:
        raise CutoverError('The graceful restart of Apache (%s) failed: %s.' % (' '.join(opts['restart']), (err or out).strip()),
                           path=opts['path'], rc=rc, stdout=out, stderr=err)
    deadline = started + opts['timeout']
    while True:
        try:
            if _header(opts['port'], opts['host'], 2) == want:
                return round(time.monotonic() - started, 3)
        except (OSError, http.client.HTTPException):
            pass
        if time.monotonic() > deadline:
            raise CutoverError('Apache on port %d did not serve release %s within %d s of a graceful restart.'
                               % (opts['port'], want, opts['timeout']), path=opts['path'])
        time.sleep(0.1)


def _opcache(module, layout, opts, socket):
    """The OPcache reset of the pool at ``socket``; a pool that cannot be asked is reported, not raised."""
    try:
        result = reset_opcache(layout, socket, opts['release_path'], timeout=OPCACHE_TIMEOUT)
    except CutoverError as exc:
        return dict(msg=exc.msg)
    except OSError as exc:
        return dict(msg='Cannot ask the PHP-FPM pool at %s: %s.' % (socket, exc.strerror or exc))
    if result['pending']:
        module.warn('The OPcache reset of the pool at %s was asked but had not happened after %d s: requests that '
                    'were running then still ran; OPcache restarts at the first request after they end.'
                    % (socket, OPCACHE_TIMEOUT))
    return result


def tell(module, layout, release, served):
    """Warn of what serving ``release`` left for its caller to say (``served``: serve()'s result): a maintenance window
    that was on (one a killed run left) lifted, after how long; a PHP-FPM pool whose OPcache was not reset."""
    lifted = served.get('window', {})
    if 'seconds' in lifted:
        module.warn('The maintenance window of %s (on since %s) %s after %s s.'
                    % (layout.root, lifted['since'], 'would be lifted (check mode)' if module.check_mode else 'was lifted',
                       lifted['seconds']))
    if 'msg' in served.get('opcache', {}):
        module.warn('The release %s serves, but OPcache was not reset: %s' % (release, served['opcache']['msg']))


def switch_and_serve(module, layout, opts):
    """serve(), after the switch of current to the release. A step that fails after the switch still says what it
    switched (changed, previous_release, as atomic_symlink returns them), so the caller can switch back: this never
    does."""
    release = release_of(layout, opts['release_path'])
    return _serve_after(module, layout, opts, lambda: switch(layout, release=release, check_mode=module.check_mode))


def release_of(layout, release_path):
    """The id of the release at ``release_path``, which a switch needs to be a release of the root."""
    if os.path.dirname(os.path.normpath(release_path)) != layout.releases_dir:
        raise CutoverError('With switch, release_path must be a release of %s (%s/<id>), but it is %s.'
                           % (layout.root, layout.releases_dir, release_path), path=release_path)
    return os.path.basename(os.path.normpath(release_path))


def rollback_and_serve(module, layout, opts, release=None, mark_previous='bad'):
    """serve() the release current is rolled back to, as atomic_symlink's rollback does it: ``release``, else the
    release live before; the release left is marked ``mark_previous`` (None leaves it ready). The release gone
    back to is found first, and refused before the switch when it has no directory to serve."""
    planned = rollback(layout, release=release, mark_previous=mark_previous, check_mode=True)
    opts = dict(opts, release_path=layout.release_path(planned['release']))
    return _serve_after(module, layout, opts, lambda: rollback(layout, release=release, mark_previous=mark_previous,
                                                               check_mode=module.check_mode))


def _serve_after(module, layout, opts, move):
    """serve(), after ``move()`` moved current (its result as atomic_symlink returns it); a release Apache could not
    serve is refused before the move. A step that fails after the move still says what it moved."""
    served = served_dir(opts)
    moved = move()
    # What atomic_symlink returns for the same switch, so that the caller's record of it has the same keys.
    said = dict((k, v) for k, v in moved.items() if k not in ('changed', 'diff'))
    try:
        result = serve(module, layout, opts, served)
    except CutoverError as exc:
        if moved['changed'] and not module.check_mode:
            exc.details.update(said, changed=True)
        raise
    result.update(said, changed=result['changed'] or moved['changed'])
    result['diff'].insert(0, moved['diff'])
    return result


def served_dir(opts):
    """The directory of the release Apache is to serve; refused when the release has none."""
    served = os.path.join(opts['release_path'], opts['webroot']) if opts['webroot'] else opts['release_path']
    if not os.path.isdir(served):
        raise CutoverError("The release %s has no directory %s to serve (the webroot is \"%s\"); set the webroot to the "
                           "directory the application serves, or '' for the release root."
                           % (opts['release_path'], served, opts['webroot']), path=served)
    return served


def serve(module, layout, opts, served=None):
    """Point the site at ``opts['release_path']`` (restarting Apache when the pointer changed), lift the maintenance
    window, reset OPcache; return the result vhost_release returns. ``served``: its served_dir(), when known."""
    path = opts['path']
    served = served or served_dir(opts)
    content = opts['content'] if opts.get('content') is not None else pointer_text(path, opts['release_path'], served)
    before = _read(path)
    changed = before != content
    result = dict(changed=changed, served=served, restarted=False)
    if changed and not module.check_mode:
        _put(module, opts, path, content)
        result['seconds'] = _restart(module, opts)
        result['restarted'] = True
    lifted = window(layout, 'absent', check_mode=module.check_mode)
    result['changed'] = changed or lifted['changed']
    result['window'] = dict((k, lifted[k]) for k in ('was_active', 'since', 'seconds') if k in lifted)
    sockets = re.findall(r'proxy:unix:([^|"]+)\|', (_read(opts['site']) if opts['site'] else None) or '')
    result['fpm_socket'] = sockets[0] if sockets else ''
    if opts['opcache_reset'] and result['fpm_socket'] and not module.check_mode:
        result['opcache'] = _opcache(module, layout, opts, result['fpm_socket'])
        result['changed'] = result['changed'] or bool(result['opcache'].get('changed'))
    result['diff'] = [dict(before=before or '', after=content, before_header=path, after_header=path)]
    if lifted['changed']:
        result['diff'].append(lifted['diff'])
    return result
