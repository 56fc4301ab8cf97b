# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of cutover.web.vhost_release: the deploy lock's controller side (see plugin_utils/_controller.py)."""

from __future__ import annotations

from ansible_collections.cutover.web.plugins.plugin_utils._controller import LockActionBase


class ActionModule(LockActionBase):
    MODULE = 'cutover.web.vhost_release'
    LOCK_OPTION = 'lock'
