#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: vhost_fingerprint
short_description: Tell whether an Apache site is still as the apache_vhost role left it
version_added: 0.1.0
description:
  - The P(cutover.web.apache_vhost#role) role keeps, on the host, a record of the settings it was given and of
    the state of everything it manages (the vhost file and its link, the enabled modules, the Listen line, the
    PHP-FPM service, the package database, the running services). With O(state=check) the module compares that
    record with the settings given now and with the state found now; the role skips its set-up when both are
    the same.
  - With O(state=present) the module writes the record of the settings given and of the state it finds now,
    after the role set the site up.
  - The state is read again on every check, so a vhost file edited or removed by hand, a module disabled by
    hand, a removed Listen line, a stopped service or any package installed or removed makes the check fail,
    and the role then does its whole set-up again.
author:
  - cutover.web maintainers (@cutover-web)
options:
  path:
    description:
      - The record, a JSON file on the host; its directory is made when missing.
    type: path
    required: true
  settings:
    description:
      - Everything the set-up depends on besides the host's state (the role's settings, the source of its
        templates). Only its SHA-256 digest is recorded.
    type: dict
    required: true
  state:
    description:
      - V(check) compares (read-only), V(present) writes the record.
    type: str
    choices: [check, present]
    default: check
  files:
    description:
      - With O(state=present), paths whose type, mode and content (a regular file), target (a symlink) or
        existence count. O(state=check) uses the ones recorded.
    type: list
    elements: path
    default: []
  globs:
    description:
      - With O(state=present), shell patterns whose matches (names, and the targets of symlinks) count.
    type: list
    elements: str
    default: []
  greps:
    description:
      - With O(state=present), whether a line of a file under C(path) (a file or a directory, searched
        recursively) matches the regular expression C(regexp).
    type: list
    elements: dict
    default: []
  processes:
    description:
      - With O(state=present), regular expressions searched in the names of the running processes
        (C(/proc/PID/comm)); whether each finds one counts.
    type: list
    elements: str
    default: []
  remember:
    description:
      - With O(state=present), values kept in the record and returned by O(state=check) (for example the OS
        family, which the role then need not gather).
    type: dict
    default: {}
extends_documentation_fragment:
  - cutover.web._attributes
attributes:
  check_mode:
    support: full
    details:
      - O(state=check) changes nothing and runs the same in check mode.
  diff_mode:
    support: full
    details:
      - The diff shows the recorded digests before and after.
  safe_file_operations:
    support: full
    details:
      - The record is written to a temporary file and moved into place.
  idempotent:
    support: full
seealso:
  - module: cutover.web.vhost_release
"""

EXAMPLES = r"""
---
- name: Find whether the site is still as it was set up
  cutover.web.vhost_fingerprint:
    path: /var/lib/cutover-web/apache_vhost/shop.json
    settings: {port: 8080, php: fpm}
  register: fingerprint

- name: Record the site once it is set up
  cutover.web.vhost_fingerprint:
    path: /var/lib/cutover-web/apache_vhost/shop.json
    settings: {port: 8080, php: fpm}
    state: present
    files: [/etc/apache2/sites-available/cutover-shop.conf, /etc/apache2/sites-enabled/cutover-shop.conf]
    globs: [/etc/apache2/mods-enabled/*.load]
    greps: [{path: /etc/apache2, regexp: '^\s*Listen\s+8080(\s|$)'}]
    processes: ['^apache2$']
    remember: {os_family: Debian}
  when: fingerprint.unchanged is false
"""

RETURN = r"""
unchanged:
  description: Whether the record exists, was made with the same settings, and the state found now is the one recorded.
  returned: success
  type: bool
remembered:
  description: The O(remember) values of the record, or an empty dict when there is none.
  returned: success
  type: dict
fingerprint:
  description:
    - The SHA-256 digest of the settings and of the state found now (of the recorded probes with O(state=check)),
      or null when there is no record to check.
  returned: success
  type: str
"""

import json
import os
import re
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.cutover.web.plugins.module_utils._fingerprint import FORMAT, check_record, digest, host_state, read_record


def present(module, path, settings_digest):
    p = module.params
    for g in p['greps']:
        if set(g) != {'path', 'regexp'}:
            module.fail_json(msg='Each of greps for the record %s needs exactly path and regexp (one has %s).'
                             % (path, ', '.join(sorted(g))), path=path)
    probes = dict(files=p['files'], globs=p['globs'], processes=p['processes'],
                  greps=[dict(path=g['path'], regexp=g['regexp']) for g in p['greps']])
    found = digest([settings_digest, host_state(probes)])
    record = dict(format=FORMAT, settings=settings_digest, probes=probes, remember=p['remember'], fingerprint=found)
    before = read_record(path)
    changed = before != record
    if changed and not module.check_mode:
        directory = os.path.dirname(path)
        os.makedirs(directory, mode=0o755, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=directory)
        try:
            with os.fdopen(fd, 'w') as f:
                json.dump(record, f, sort_keys=True, indent=1)
                f.write('\n')
            os.chmod(tmp, 0o644)
            module.atomic_move(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    result = dict(changed=changed, unchanged=not changed, remembered=p['remember'], fingerprint=found)
    if module._diff:
        result['diff'] = dict(before=('%s\n' % before['fingerprint']) if before else '', after='%s\n' % found,
                              before_header=path, after_header=path)
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            settings=dict(type='dict', required=True),
            state=dict(type='str', choices=['check', 'present'], default='check'),
            files=dict(type='list', elements='path', default=[]),
            globs=dict(type='list', elements='str', default=[]),
            greps=dict(type='list', elements='dict', default=[]),
            processes=dict(type='list', elements='str', default=[]),
            remember=dict(type='dict', default={}),
        ),
        supports_check_mode=True,
    )
    path = module.params['path']
    settings_digest = digest(module.params['settings'])
    try:
        if module.params['state'] == 'check':
            result = dict(check_record(path, module.params['settings']), changed=False)
        else:
            result = present(module, path, settings_digest)
    except re.error as exc:
        module.fail_json(msg='A regular expression for the record %s is wrong: %s.' % (path, exc), path=path)
    except OSError as exc:
        where = exc.filename if isinstance(exc.filename, str) else path
        module.fail_json(msg='Cannot use %s for the record %s: %s.' % (where, path, exc.strerror or exc), path=path)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
