# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Module glue: the one place where domain errors become ``fail_json``."""

from __future__ import annotations

import os
import re

from ansible_collections.cutover.web.plugins.module_utils._prune import deferring
from ansible_collections.cutover.web.plugins.module_utils._releases import CutoverError, Layout


# A file mode option given as a string: three or four octal digits, with a leading 0 or not (the deploy role checks
# deploy_root_mode by the same rule).
OCTAL_MODE = re.compile(r'^0?[0-7]{3,4}$')


def octal_mode(value, option, where, path):
    """The file mode option ``option`` as an int, or None when it is not set: a number (YAML reads ``0755`` as one)
    up to 0o7777, or a string OCTAL_MODE accepts. Anything else is refused in one sentence naming ``where`` (the
    paths the mode is for) before anything changes."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0o7777:
        return value
    if isinstance(value, str) and OCTAL_MODE.match(value):
        return int(value, 8)
    raise CutoverError('%s is %r for %s, but it must be an octal mode such as "0755".' % (option, value, where),
                       path=path)


def os_error(exc, where):
    """A CutoverError for an OSError no refusal foresaw (a read-only filesystem, a permission, an I/O
    error): one sentence naming the path it happened on (``where`` when it names none) and the cause."""
    path = os.fsdecode(exc.filename) if isinstance(exc.filename, (str, bytes)) else where
    also = ' (and %s)' % os.fsdecode(exc.filename2) if isinstance(exc.filename2, (str, bytes)) else ''
    return CutoverError('Cannot use %s%s: %s.' % (path, also, exc.strerror or exc), path=path)


def run(module, action):
    """Call ``action(layout)`` and exit the module with its result, or fail with one sentence. A module with the
    option ``delete_in_background`` set has what its run put in the trash deleted by a process of its own once the
    run is done (_prune.deferring), named in the result's ``deleting``."""
    layout = None
    try:
        try:
            layout = Layout(module.params['root'])
            layout.check_state()
            with deferring(layout, module.params.get('delete_in_background'), module.check_mode) as later:
                result = action(layout)
            if later.paths:
                result['deleting'] = later.paths
        except OSError as exc:
            raise os_error(exc, module.params['root'])
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
