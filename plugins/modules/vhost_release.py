#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: vhost_release
short_description: Point an Apache vhost at a release and restart Apache gracefully until it serves it
version_added: 0.1.0
description:
  - With O(switch), first switches C(<root>/current) to the release, as M(cutover.web.atomic_symlink) with
    O(cutover.web.atomic_symlink#module:release) does, so that a deploy moves C(current) and what Apache serves
    in one module run.
  - Writes the release pointer of a site of the P(cutover.web.apache_vhost#role) role (the file its vhost
    includes, which names the resolved release path as DocumentRoot), checked with O(validate) before it is
    put in place.
  - When the pointer changed, restarts Apache gracefully (O(restart)) and waits until a new connection to
    O(port) is answered with the release's C(X-Cutover-Release) header, so the release serves when the task
    returns. Requests already running finish on the release they started on.
  - Once the release serves, lifts the maintenance window of O(root) (as M(cutover.web.maintenance) with
    O(cutover.web.maintenance#module:state=absent)), the one a deploy turned on for its migrations or one
    left by a run that was killed.
  - Then, with O(opcache_reset), resets the OPcache of the PHP-FPM pool the site's vhost (O(site)) hands PHP to
    when it holds scripts of other releases (as M(cutover.web.opcache_reset)). The release serves already, so a
    pool that cannot be asked is reported in RV(opcache), not a failed task. Skipped in check mode.
author:
  - cutover.web maintainers (@cutover-web)
options:
  path:
    description:
      - The release pointer, C(<conf>/cutover/<name>-release.conf).
    type: path
    required: true
  content:
    description:
      - What the pointer holds (the role renders it from its template).
    type: str
    required: true
  release_path:
    description:
      - The resolved path of the release going live; its basename is the header Apache must answer with.
    type: path
    required: true
  webroot:
    description:
      - The directory of the release that is served (empty for the release root); it must exist.
    type: str
    default: ''
  validate:
    description:
      - The command that checks the new pointer before it is put in place, with C(%s) for its temporary path.
    type: str
    required: true
  restart:
    description:
      - The command (an argument list) that restarts Apache gracefully.
    type: list
    elements: str
    required: true
  port:
    description:
      - The vhost's port, asked on 127.0.0.1.
    type: int
    required: true
  host:
    description:
      - The C(Host) header of the request.
    type: str
    default: localhost
  timeout:
    description:
      - How long to wait, after the graceful restart, for Apache to serve the release (seconds).
    type: int
    default: 10
  site:
    description:
      - The site's vhost file, read for the PHP-FPM socket (RV(fpm_socket)).
    type: path
  opcache_reset:
    description:
      - Reset the OPcache of the site's PHP-FPM pool once the release serves, when it holds scripts of other
        releases of O(root). Nothing to do when the vhost names no PHP-FPM socket (mod_php, no PHP).
    type: bool
    default: false
  switch:
    description:
      - Switch C(<root>/current) to the release before the pointer is written; O(release_path) must then be a
        release of O(root), C(<root>/releases/<id>). A release without the directory to serve (O(webroot)) is
        refused before the switch.
      - When a later step fails (the pointer refused, Apache not serving the release in time), the failed task
        still says what the switch did (C(changed), RV(previous_release)), so that the caller can switch back.
    type: bool
    default: false
extends_documentation_fragment:
  - cutover.web._root
  - cutover.web._attributes
attributes:
  check_mode:
    support: full
    details:
      - Reports whether the pointer (and, with O(switch), C(current)) would change and whether the window would
        be lifted; writes nothing, restarts nothing and asks no PHP-FPM pool.
  diff_mode:
    support: full
    details:
      - The diff shows the pointer before and after (and, with O(switch), C(current)'s text), and the maintenance
        page when the window is lifted.
  safe_file_operations:
    support: full
    details:
      - The pointer is written to a temporary file beside it, checked, and moved into place.
  idempotent:
    support: full
    details:
      - Apache is restarted only when the pointer changed. The OPcache reset is asked for whenever the pool
        holds scripts of other releases.
seealso:
  - module: cutover.web.vhost_fingerprint
"""

EXAMPLES = r"""
---
- name: Switch current to release 20261205T080000Z of the shop and serve it, in one run
  cutover.web.vhost_release:
    root: /srv/www/shop
    switch: true
    path: /etc/apache2/cutover/shop-release.conf
    content: |
      DocumentRoot "/srv/www/shop/releases/20261205T080000Z/public"
      Header always set X-Cutover-Release "20261205T080000Z"
    release_path: /srv/www/shop/releases/20261205T080000Z
    webroot: public
    validate: apache2ctl -t -c 'Include %s'
    restart: [apache2ctl, graceful]
    port: 80
    site: /etc/apache2/sites-available/cutover-shop.conf
    opcache_reset: true
  register: served
"""

RETURN = r"""
served:
  description: The directory of the release Apache serves.
  returned: success
  type: str
restarted:
  description: Whether Apache was restarted (the pointer changed, not in check mode).
  returned: success
  type: bool
seconds:
  description: From the graceful restart until Apache answered with the release's header.
  returned: when restarted
  type: float
fpm_socket:
  description: The PHP-FPM socket the site's vhost hands PHP to; empty when it names none or O(site) is not given.
  returned: success
  type: str
window:
  description: The maintenance window, as M(cutover.web.maintenance) returns it with O(cutover.web.maintenance#module:state=absent).
  returned: success
  type: dict
  contains:
    was_active:
      description: Whether the window was on before the task.
      type: bool
    since:
      description: When the window was turned on (UTC, ISO 8601).
      type: str
      returned: when the window was on
    seconds:
      description: How long it was on until it was lifted.
      type: float
      returned: when it was lifted
release:
  description: With O(switch), the release C(current) points at after the task.
  returned: when O(switch) is true
  type: str
previous_release:
  description: With O(switch), the release C(current) pointed at before the task (null when there was none).
  returned: when O(switch) is true (also when a later step failed)
  type: str
previous:
  description: With O(switch), the text of C(current) before the task, or null when there was no link.
  returned: when O(switch) is true
  type: str
link:
  description: With O(switch), the link that was switched, C(<root>/current).
  returned: when O(switch) is true
  type: str
target:
  description: With O(switch), the release directory C(current) points at after the task.
  returned: when O(switch) is true
  type: str
link_text:
  description: With O(switch), the text of C(current) after the task.
  returned: when O(switch) is true
  type: str
converted:
  description: With O(switch), always null (as M(cutover.web.atomic_symlink) returns it for C(current)).
  returned: when O(switch) is true
  type: str
opcache:
  description:
    - What M(cutover.web.opcache_reset) returns (C(enabled), C(before), C(after), C(pending)), or only C(msg)
      saying why the pool could not be asked.
  returned: when O(opcache_reset) is true, a PHP-FPM socket was found and not in check mode
  type: dict
"""

import http.client
import os
import re
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.cutover.web.plugins.module_utils._maintenance import window
from ansible_collections.cutover.web.plugins.module_utils._module import run
from ansible_collections.cutover.web.plugins.module_utils._opcache import reset_opcache
from ansible_collections.cutover.web.plugins.module_utils._releases import CutoverError
from ansible_collections.cutover.web.plugins.module_utils._switch import switch

OPCACHE_TIMEOUT = 30


def _read(path):
    try:
        with open(path, 'rb') as f:
            return f.read().decode('utf-8', 'replace')
    except FileNotFoundError:
        return None


def _header(port, host, timeout):
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        conn.request('HEAD', '/', headers={'Host': host})
        return conn.getresponse().getheader('X-Cutover-Release')
    finally:
        conn.close()


def _put(module, path, content):
    """Write ``content`` beside ``path``, check it with the validate command, then move it in place."""
    p = module.params
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(content.encode('utf-8'))
        os.chmod(tmp, 0o644)
        rc, out, err = module.run_command(p['validate'] % tmp if '%s' in p['validate'] else p['validate'])
        if rc != 0:
            raise CutoverError('The release pointer %s was not put in place, as %s refused it: %s.'
                               % (path, p['validate'].split()[0], (err or out).strip() or 'exit status %d' % rc),
                               path=path, rc=rc, stdout=out, stderr=err)
        module.atomic_move(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _restart(module):
    p = module.params
    want = os.path.basename(os.path.normpath(p['release_path']))
    started = time.monotonic()
    rc, out, err = module.run_command(p['restart'])
    if rc != 0:
        raise CutoverError('The graceful restart of Apache (%s) failed: %s.' % (' '.join(p['restart']), (err or out).strip()),
                           path=p['path'], rc=rc, stdout=out, stderr=err)
    deadline = started + p['timeout']
    while True:
        try:
            if _header(p['port'], p['host'], 2) == want:
                return round(time.monotonic() - started, 3)
        except (OSError, http.client.HTTPException):
            pass
        if time.monotonic() > deadline:
            raise CutoverError('Apache on port %d did not serve release %s within %d s of a graceful restart.'
                               % (p['port'], want, p['timeout']), path=p['path'])
        time.sleep(0.1)


def _opcache(module, layout, socket):
    """The OPcache reset of the pool at ``socket``; a pool that cannot be asked is reported, not raised."""
    try:
        result = reset_opcache(layout, socket, module.params['release_path'], timeout=OPCACHE_TIMEOUT)
    except CutoverError as exc:
        return dict(msg=exc.msg)
    except OSError as exc:
        return dict(msg='Cannot ask the PHP-FPM pool at %s: %s.' % (socket, exc.strerror or exc))
    if result['pending']:
        module.warn('The OPcache reset of the pool at %s was asked but had not happened after %d s: requests that '
                    'were running then still ran; OPcache restarts at the first request after they end.'
                    % (socket, OPCACHE_TIMEOUT))
    return result


def switch_and_serve(module, layout):
    """serve(), after the switch of current to the release with O(switch). A step that fails after the switch still
    says what it switched (changed, previous_release), so the caller can switch back: the module never does."""
    p = module.params
    if not p['switch']:
        return serve(module, layout)
    release_path = os.path.normpath(p['release_path'])
    if os.path.dirname(release_path) != layout.releases_dir:
        raise CutoverError('With switch, release_path must be a release of %s (%s/<id>), but it is %s.'
                           % (layout.root, layout.releases_dir, p['release_path']), path=p['release_path'])
    _served(p)  # before the switch: a release Apache could not serve never goes live
    switched = switch(layout, release=os.path.basename(release_path), check_mode=module.check_mode)
    # What atomic_symlink returns for the same switch, so that the caller's record of it has the same keys.
    said = dict((k, v) for k, v in switched.items() if k not in ('changed', 'diff'))
    try:
        result = serve(module, layout)
    except CutoverError as exc:
        if switched['changed'] and not module.check_mode:
            exc.details.update(said, changed=True)
        raise
    result.update(said, changed=result['changed'] or switched['changed'])
    result['diff'].insert(0, switched['diff'])
    return result


def _served(p):
    """The directory of the release Apache is to serve; refused when the release has none."""
    served = os.path.join(p['release_path'], p['webroot']) if p['webroot'] else p['release_path']
    if not os.path.isdir(served):
        raise CutoverError("The release %s has no directory %s to serve (the webroot is \"%s\"); set the webroot to the "
                           "directory the application serves, or '' for the release root."
                           % (p['release_path'], served, p['webroot']), path=served)
    return served


def serve(module, layout):
    p = module.params
    path = p['path']
    served = _served(p)
    before = _read(path)
    changed = before != p['content']
    result = dict(changed=changed, served=served, restarted=False)
    if changed and not module.check_mode:
        _put(module, path, p['content'])
        result['seconds'] = _restart(module)
        result['restarted'] = True
    lifted = window(layout, 'absent', check_mode=module.check_mode)
    result['changed'] = changed or lifted['changed']
    result['window'] = dict((k, lifted[k]) for k in ('was_active', 'since', 'seconds') if k in lifted)
    sockets = re.findall(r'proxy:unix:([^|"]+)\|', (_read(p['site']) if p['site'] else None) or '')
    result['fpm_socket'] = sockets[0] if sockets else ''
    if p['opcache_reset'] and result['fpm_socket'] and not module.check_mode:
        result['opcache'] = _opcache(module, layout, result['fpm_socket'])
        result['changed'] = result['changed'] or bool(result['opcache'].get('changed'))
    result['diff'] = [dict(before=before or '', after=p['content'], before_header=path, after_header=path)]
    if lifted['changed']:
        result['diff'].append(lifted['diff'])
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type='path', required=True),
            path=dict(type='path', required=True),
            content=dict(type='str', required=True),
            release_path=dict(type='path', required=True),
            webroot=dict(type='str', default=''),
            validate=dict(type='str', required=True),
            restart=dict(type='list', elements='str', required=True),
            port=dict(type='int', required=True),
            host=dict(type='str', default='localhost'),
            timeout=dict(type='int', default=10),
            site=dict(type='path'),
            opcache_reset=dict(type='bool', default=False),
            switch=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    run(module, lambda layout: switch_and_serve(module, layout))


if __name__ == '__main__':
    main()
