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
    in one module run; with O(rollback), rolls C(current) back as that module's rollback does, so that a
    rollback does too.
  - Writes the release pointer of a site of the P(cutover.web.apache_vhost#role) role (the file its vhost
    includes, which names the resolved release path as DocumentRoot), checked with O(validate) before it is
    put in place.
  - When the pointer changed, restarts Apache gracefully (O(restart)) and waits until a new connection to
    O(port) is answered with the release's C(X-Cutover-Release) header, so the release serves when the task
    returns. Requests already running finish on the release they started on.
  - Once the release serves, lifts the maintenance window of O(root) (as M(cutover.web.maintenance) with
    O(cutover.web.maintenance#module:state=absent)), the one a deploy turned on for its migrations or one
    left by a run that was killed, warning how long it was on.
  - With O(find_vhost) instead of O(path), finds the site that serves releases of O(root) itself, as
    M(cutover.web.go_live) does; when none does, only C(current) moves (O(switch) or O(rollback)).
  - Then, with O(opcache_reset), resets the OPcache of the PHP-FPM pool the site's vhost (O(site)) hands PHP to
    when it holds scripts of other releases (as M(cutover.web.opcache_reset)). The release serves already, so a
    pool that cannot be asked is reported in RV(opcache) and a warning, not a failed task. Skipped in check mode.
author:
  - cutover.web maintainers (@cutover-web)
options:
  path:
    description:
      - The release pointer, C(<conf>/cutover/<name>-release.conf).
      - Required, with O(validate), O(restart) and O(port), unless O(find_vhost) is given.
    type: path
  content:
    description:
      - What the pointer holds. By default, C(DocumentRoot) names the served directory of the release (O(release_path)
        and O(webroot)) and the C(X-Cutover-Release) header names the release, as the
        P(cutover.web.apache_vhost#role) role's vhost expects.
    type: str
  release_path:
    description:
      - The resolved path of the release going live; its basename is the header Apache must answer with.
      - Required unless O(rollback) is set, which finds the release itself.
    type: path
  webroot:
    description:
      - The directory of the release that is served (empty for the release root); it must exist.
    type: str
    default: ''
  validate:
    description:
      - The command that checks the new pointer before it is put in place, with C(%s) for its temporary path.
    type: str
  restart:
    description:
      - The command (an argument list) that restarts Apache gracefully.
    type: list
    elements: str
  port:
    description:
      - The vhost's port, asked on 127.0.0.1.
    type: int
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
  rollback:
    description:
      - Roll C(<root>/current) back before the pointer is written, as M(cutover.web.atomic_symlink) with
        O(cutover.web.atomic_symlink#module:rollback=true) does - to O(release), else to the release live before
        the current one, the release left marked O(mark_previous) in the same history record - and serve the
        release gone back to. A release gone back to without the directory to serve (O(webroot)) is refused
        before the switch. Not with O(switch=true) or O(release_path).
      - When a later step fails, the failed task still says what the switch did, as with O(switch).
    type: bool
    default: false
  find_vhost:
    description:
      - Instead of O(path), find the site of the P(cutover.web.apache_vhost#role) role that serves releases of O(root)
        and serve it as M(cutover.web.go_live)'s O(cutover.web.go_live#module:find_vhost) does (how, from the record of
        its set-up; several sites are refused before anything changes). When none does, C(current) alone moves.
      - With O(switch) or O(rollback) only. RV(vhost) says what the site was served with.
    type: dict
    suboptions:
      name:
        description: [As go_live's O(cutover.web.go_live#module:find_vhost.name).]
        type: str
        default: ''
      webroot:
        description: [The directory of the release the site serves (O(webroot)).]
        type: str
        default: ''
      setting:
        description: ["The caller's setting that names the site, said when several serve the root or the one named is refused."]
        type: str
        default: the vhost name
      timeout: {description: [As O(timeout).], type: int, default: 10}
  release:
    description:
      - With O(rollback), the release to go back to (default, the release live before the current one).
    type: str
  mark_previous:
    description:
      - With O(rollback), what the release rolled back from is marked (C(ready) leaves it as it is).
    type: str
    choices: [bad, failed, ready]
    default: bad
extends_documentation_fragment:
  - cutover.web._root
  - cutover.web._lock
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
    release_path: /srv/www/shop/releases/20261205T080000Z
    webroot: public
    validate: apache2ctl -t -c 'Include %s'
    restart: [apache2ctl, graceful]
    port: 80
    site: /etc/apache2/sites-available/cutover-shop.conf
    opcache_reset: true
  register: served

- name: Roll back to the release live before and serve it, under the deploy lock, in one run
  cutover.web.vhost_release:
    root: /srv/www/shop
    rollback: true
    path: /etc/apache2/cutover/shop-release.conf
    webroot: public
    validate: apache2ctl -t -c 'Include %s'
    restart: [apache2ctl, graceful]
    port: 80
    lock:
      owner: deployer
"""

RETURN = r"""
served:
  description: The directory of the release Apache serves.
  returned: success, unless O(find_vhost) found no site
  type: str
restarted:
  description: Whether Apache was restarted (the pointer changed, not in check mode).
  returned: success, unless O(find_vhost) found no site
  type: bool
vhost:
  description: With O(find_vhost), the site found (C(name)) and what it was served with, as M(cutover.web.go_live) returns it.
  returned: with O(find_vhost), when a site serves the root (also when serving it failed)
  type: dict
seconds:
  description: From the graceful restart until Apache answered with the release's header.
  returned: when restarted
  type: float
fpm_socket:
  description: The PHP-FPM socket the site's vhost hands PHP to; empty when it names none or O(site) is not given.
  returned: success, unless O(find_vhost) found no site
  type: str
window:
  description: The maintenance window, as M(cutover.web.maintenance) returns it with O(cutover.web.maintenance#module:state=absent).
  returned: success, unless O(find_vhost) found no site
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
  description: With O(switch) or O(rollback), the release C(current) points at after the task.
  returned: when O(switch) or O(rollback) is true
  type: str
previous_release:
  description: With O(switch) or O(rollback), the release C(current) pointed at before the task (null when there was none).
  returned: when O(switch) or O(rollback) is true (also when a later step failed)
  type: str
rolled_back_from:
  description: With O(rollback), the release that was live before and is now marked O(mark_previous), or null.
  returned: when O(rollback) is true
  type: str
already_rolled_back:
  description: With O(rollback), whether the current release already went live by a rollback, so current did not move.
  returned: when O(rollback) is true
  type: bool
previous:
  description: With O(switch) or O(rollback), the text of C(current) before the task, or null when there was no link.
  returned: when O(switch) or O(rollback) is true
  type: str
link:
  description: With O(switch) or O(rollback), the link that was switched, C(<root>/current).
  returned: when O(switch) or O(rollback) is true
  type: str
target:
  description: With O(switch) or O(rollback), the release directory C(current) points at after the task.
  returned: when O(switch) or O(rollback) is true
  type: str
link_text:
  description: With O(switch) or O(rollback), the text of C(current) after the task.
  returned: when O(switch) or O(rollback) is true
  type: str
converted:
  description: With O(switch) or O(rollback), always null (as M(cutover.web.atomic_symlink) returns it for C(current)).
  returned: when O(switch) or O(rollback) is true
  type: str
opcache:
  description:
    - What M(cutover.web.opcache_reset) returns (C(enabled), C(before), C(after), C(pending)), or only C(msg)
      saying why the pool could not be asked.
  returned: when O(opcache_reset) is true, a PHP-FPM socket was found and not in check mode
  type: dict
lock_held:
  description: With O(lock), whether this run still holds the deploy lock after the task.
  returned: when O(lock) is set
  type: bool
"""

import os

from ansible_collections.cutover.web.plugins.module_utils._lock import lock_module, run_locked
from ansible_collections.cutover.web.plugins.module_utils._releases import CutoverError
from ansible_collections.cutover.web.plugins.module_utils._switch import rollback, switch
from ansible_collections.cutover.web.plugins.module_utils._vhost import (
    FIND_OPTIONS, VHOST_OPTIONS, found_vhost, release_of, rollback_and_serve, serve, switch_and_serve, tell)


def main():
    module = lock_module(
        dict(
            release_path=dict(type='path'),
            switch=dict(type='bool', default=False),
            rollback=dict(type='bool', default=False),
            release=dict(type='str'),
            mark_previous=dict(type='str', default='bad', choices=['bad', 'failed', 'ready']),
            find_vhost=dict(type='dict', options=FIND_OPTIONS),
            # Given with path, or found (find_vhost).
            **dict((k, dict(v, required=False)) for k, v in VHOST_OPTIONS.items())
        ),
        required_if=[('rollback', False, ('release_path',))],
        required_one_of=[('path', 'find_vhost')],
        mutually_exclusive=[('path', 'find_vhost')],
        required_by=dict(path=('validate', 'restart', 'port')),
    )
    p = module.params
    if p['find_vhost'] and not (p['switch'] or p['rollback']):
        module.fail_json(msg='vhost_release with find_vhost serves the site it finds after it switches current, so it needs '
                             'switch or rollback (given neither for %s); nothing was changed.' % p['root'])
    if p['rollback'] and (p['switch'] or p['release_path']):
        module.fail_json(msg='vhost_release with rollback finds the release to serve itself, so it takes neither switch '
                             'nor release_path (given for %s); nothing was changed.' % p['root'])
    if p['release'] is not None and not p['rollback']:
        module.fail_json(msg='The option release of vhost_release names the release to roll back to, so it needs '
                             'rollback=true; nothing was changed.')

    mark = None if p['mark_previous'] == 'ready' else p['mark_previous']

    def act(layout):
        found = found_vhost(layout.root, p['find_vhost']) if p['find_vhost'] else None
        if p['find_vhost'] and found is None:
            # No site serves the root: current alone moves, as atomic_symlink moves it.
            if p['rollback']:
                return rollback(layout, release=p['release'], mark_previous=mark, check_mode=module.check_mode)
            return switch(layout, release=release_of(layout, p['release_path']), check_mode=module.check_mode)
        opts = dict(p, **found) if found else p
        try:
            if p['rollback']:
                result = rollback_and_serve(module, layout, opts, release=p['release'], mark_previous=mark)
            else:
                result = (switch_and_serve if p['switch'] else serve)(module, layout, opts)
        except CutoverError as exc:
            # Also when serving failed after the switch: the caller points the site back with it.
            if found:
                exc.details['vhost'] = found
            raise
        if found:
            result['vhost'] = found
        tell(module, layout, result.get('release') or os.path.basename(os.path.normpath(opts['release_path'])), result)
        return result

    run_locked(module, act)


if __name__ == '__main__':
    main()
