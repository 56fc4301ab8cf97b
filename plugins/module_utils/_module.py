# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Module glue: the one place where domain errors become ``fail_json``."""

from __future__ import annotations

from ansible_collections.cutover.web.plugins.module_utils._releases import CutoverError, Layout


def run(module, action):
    """Call ``action(layout)`` and exit the module with its result, or fail with one sentence."""
    layout = None
    try:
        layout = Layout(module.params['root'])
        layout.check_state()
        result = action(layout)
    except CutoverError as exc:
        details = dict(exc.details)
        if exc.path is not None:
            details['failed_path'] = exc.path
        _warn(module, layout)
        module.fail_json(msg=exc.msg, **details)
    _warn(module, layout)
    diff = result.pop('diff', None)
    if module._diff and diff is not None:
        result['diff'] = diff
    module.exit_json(**result)


def _warn(module, layout):
    for warning in layout.warnings if layout is not None else ():
        module.warn(warning)
