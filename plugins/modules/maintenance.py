#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: maintenance
short_description: Turn a site's maintenance window on or off
version_added: 0.1.0
description:
  - The window is one file, C(<root>/maintenance.html), that is both the flag and the page. The vhost written
    by the P(cutover.web.apache_vhost#role) role tests for it on every request; while it exists, every client
    not on the vhost's allow-list (O(ignore:apache_vhost_maintenance_allow)) is answered C(503 Service
    Unavailable) with a C(Retry-After) header and this page; allow-listed clients see the site as usual.
  - Turning it on writes the page beside its place and renames it in; turning it off removes it. Each is one
    atomic step, with no reload of Apache.
  - The deploy role turns the window on before the expand migrations when C(deploy_maintenance) is true, and
    lifts it once the new release serves, or after the database was restored when the deploy failed.
author:
  - cutover.web maintainers (@cutover-web)
options:
  state:
    description:
      - V(present) turns the window on (or replaces its page), V(absent) lifts it.
    type: str
    choices: [present, absent]
    default: present
  content:
    description:
      - The page, as static HTML (no PHP runs in it). Without O(content) and O(src), a short built-in page.
    type: str
  src:
    description:
      - The absolute path on the host of a static HTML file to serve as the page, for example one shipped in
        the release. It must be a regular file of at most 1 MiB; a symlink, or a path inside the deploy root
        that passes through one, is refused.
    type: path
extends_documentation_fragment:
  - cutover.web._root
  - cutover.web._attributes
  - cutover.web._attributes.full
attributes:
  diff_mode:
    details:
      - The diff shows the page before and after (empty when the window is off).
  safe_file_operations:
    details:
      - The page is written to a temporary file in the deploy root and renamed into place.
seealso:
  - module: cutover.web.release_info
"""

EXAMPLES = r"""
---
- name: Put the shop in maintenance with its own page
  cutover.web.maintenance:
    root: /srv/www/shop
    content: "{{ lookup('ansible.builtin.file', 'files/maintenance.html') }}"

- name: Lift the window
  cutover.web.maintenance:
    root: /srv/www/shop
    state: absent
"""

RETURN = r"""
active:
  description: Whether the window is on after the task.
  returned: success
  type: bool
was_active:
  description: Whether the window was on before the task.
  returned: success
  type: bool
page:
  description: The page file that is the window's flag, C(<root>/maintenance.html).
  returned: success
  type: str
since:
  description: When the window that was on before the task was turned on (UTC, ISO 8601).
  returned: when the window was on before the task
  type: str
seconds:
  description: How long the window was on, when this task lifted it.
  returned: when the task lifted the window
  type: float
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.cutover.web.plugins.module_utils._maintenance import window
from ansible_collections.cutover.web.plugins.module_utils._module import run


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type='path', required=True),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            content=dict(type='str'),
            src=dict(type='path'),
        ),
        mutually_exclusive=[('content', 'src')],
        supports_check_mode=True,
    )
    if module.params['state'] == 'absent' and (module.params['content'] is not None or module.params['src']):
        module.fail_json(msg='The maintenance window of %s is lifted with state=absent, which takes no page '
                             '(content or src).' % module.params['root'])
    run(module, lambda layout: window(layout, module.params['state'], content=module.params['content'],
                                      src=module.params['src'], check_mode=module.check_mode))


if __name__ == '__main__':
    main()
