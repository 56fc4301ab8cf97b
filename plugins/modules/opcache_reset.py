#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: opcache_reset
short_description: Reset a PHP-FPM pool's OPcache when it holds releases that no longer serve
version_added: 0.1.0
description:
  - OPcache keys scripts by path and each release is a new set of paths, so the scripts of releases that no longer
    serve stay cached. Once OPcache's memory or file table is full of them it caches nothing more, and the live
    release runs uncached. This module resets the cache of the PHP-FPM pool listening on O(socket) when it holds
    scripts of releases of O(root) other than the live one, and reports what was cached before and after.
  - The OPcache functions run inside the pool (the CLI has a cache of its own), through a FastCGI request to
    O(socket). The script it runs is written for the task into a directory of its own in O(root)
    (C(.cutover-opcache-*), mode 0711, the script 0644 under a random name), outside every web root, and removed
    before the task ends. The pool must be able to read it, which it can when it runs the releases under O(root)
    (an C(open_basedir) or C(opcache.restrict_api) set to the root allows it).
  - C(opcache_reset()) only asks for a restart; OPcache carries it out when no request holds the cache, that is
    after every request running at that moment (the last requests of the release left) has finished. The module
    asks again until the restart is done, for up to O(timeout) seconds, so the cache it leaves holds no other
    release. Meanwhile requests run uncached. A request still running after C(opcache.force_restart_timeout)
    (180 s by default) is ended by PHP.
  - The cache is the PHP-FPM master's, shared by all its pools, so the reset empties it for every site of that
    PHP-FPM; their scripts are compiled again by their next requests.
  - Under mod_php there is no pool to ask, and a graceful restart of Apache starts its new children with a new cache.
author:
  - cutover.web maintainers (@cutover-web)
extends_documentation_fragment:
  - cutover.web._root
  - cutover.web._attributes
  - cutover.web._attributes.full
attributes:
  check_mode:
    details:
      - Only the pool can tell what it has cached, so check mode asks it (writing and removing its script as a real
        run does) and reports whether a reset would be asked; nothing is reset.
  diff_mode:
    details:
      - The diff counts the cached scripts of the live release and of other releases, before and after.
  safe_file_operations:
    support: none
    details:
      - The script is created with O_EXCL and O_NOFOLLOW in a new directory made by C(mkdtemp).
  idempotent:
    details:
      - Once reset, the cache holds only what the live release's requests put back, so running again changes
        nothing until another release's scripts are cached.
options:
  socket:
    description:
      - The unix socket of the PHP-FPM pool that runs the site, as in the vhost's C(SetHandler "proxy:unix:...").
    type: path
    required: true
  release_path:
    description:
      - The live release, C(<root>/releases/<id>). Defaults to the release C(<root>/current) points at.
    type: path
  timeout:
    description:
      - Seconds to wait for the pool to answer and for the restart to happen.
    type: int
    default: 30
seealso:
  - module: cutover.web.atomic_symlink
    description: Switches C(current); the apache_vhost role's C(tasks_from=release) then serves the release and
      runs this module.
"""

EXAMPLES = r"""
---
- name: Keep the live release in OPcache
  cutover.web.opcache_reset:
    root: /srv/www/shop
    socket: /run/php/php8.2-fpm.sock
  register: opcache

- name: Say what it found
  ansible.builtin.debug:
    msg: "{{ opcache.before.other }} scripts of other releases were cached; reset: {{ opcache.changed }}"
"""

RETURN = r"""
enabled:
  description: Whether the pool runs with OPcache on.
  returned: always
  type: bool
before:
  description:
    - What the cache held when the task started, or null when OPcache is off.
    - C(live) and C(other) count the scripts of the live release and of other releases under C(releases/);
      C(cached) counts every cached script, C(full) says whether OPcache ran out of memory, C(free) is its
      free memory in bytes.
  returned: always
  type: dict
  sample: {"live": 0, "other": 412, "cached": 433, "full": true, "free": 3016}
after:
  description: The same once the reset happened (null when no reset was asked, or while it is still pending).
  returned: always
  type: dict
  sample: {"live": 0, "other": 0, "cached": 1, "full": false, "free": 14925488}
pending:
  description:
    - Whether the reset was asked but had not happened yet when O(timeout) passed (requests that were running
      then still ran); OPcache carries it out at the first request after they end.
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.cutover.web.plugins.module_utils._module import run
from ansible_collections.cutover.web.plugins.module_utils._opcache import reset_opcache
from ansible_collections.cutover.web.plugins.module_utils._releases import CutoverError


def act(module, layout):
    p = module.params
    if p['timeout'] < 1:
        raise CutoverError('timeout is %d for the pool at %s, but it must be at least 1 second.' % (p['timeout'], p['socket']),
                           path=p['socket'])
    result = reset_opcache(layout, p['socket'], p['release_path'], timeout=p['timeout'], check_mode=module.check_mode)
    if result['pending']:
        module.warn('The OPcache reset of the pool at %s was asked but had not happened after %d s: requests that '
                    'were running then still ran; OPcache restarts at the first request after they end.'
                    % (p['socket'], p['timeout']))
    result['diff'] = {'before': _counts(result['before']), 'after': _counts(result['after'] or result['before']),
                      'before_header': p['socket'], 'after_header': p['socket']}
    return result


def _counts(state):
    if state is None:
        return 'OPcache off\n'
    return 'live release: %s scripts cached\nother releases: %s scripts cached\n' % (state['live'], state['other'])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type='path', required=True),
            socket=dict(type='path', required=True),
            release_path=dict(type='path'),
            timeout=dict(type='int', default=30),
        ),
        supports_check_mode=True,
    )
    run(module, lambda layout: act(module, layout))


if __name__ == '__main__':
    main()
