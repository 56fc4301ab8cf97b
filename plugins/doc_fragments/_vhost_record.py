# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):

    # The vhost_record option of the modules that check the record of an apache_vhost set-up in their own run
    # (module_utils/_fingerprint.py's RECORD_OPTION). Each module says in its own description what it does with it.
    DOCUMENTATION = r"""
options:
  vhost_record:
    description:
      - The record of the Apache site's set-up to check.
    type: dict
    suboptions:
      path:
        description:
          - The record, as M(cutover.web.vhost_fingerprint) takes it.
        type: path
        required: true
      settings:
        description:
          - The settings of the set-up, as M(cutover.web.vhost_fingerprint) takes them.
        type: dict
        required: true
"""
