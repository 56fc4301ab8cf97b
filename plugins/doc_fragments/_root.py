# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):

    # The deploy root shared by every module.
    DOCUMENTATION = r"""
options:
  root:
    description:
      - Absolute path of the deploy root, for example V(/srv/www/shop).
      - It holds C(releases/<id>/), C(shared/), the C(current) symlink and C(.cutover/), the tool's own
        state (history, manifests, staging area, lock). See the collection README for the layout.
      - Paths with spaces and non-ASCII characters are fine. The filesystem root V(/) (or a link to it) is
        refused.
      - Nothing in C(.cutover/) may be a symlink (the directory itself, C(history.jsonl), C(manifests/),
        C(staging/), C(trash/), C(backups/) and each C(backups/<id>), C(repos/), C(deploy.lock)); the module
        fails naming the link before it changes anything.
    type: path
    required: true
notes:
  - Release state and deploy order come from the history journal C(<root>/.cutover/history.jsonl), never from
    file times, so a C(chmod) or a backup restore cannot reorder releases.
  - Each change is recorded in the history before it is made, and a switch of C(current) counts only once
    C(current) points at it, so a run interrupted at any point leaves a history that agrees with the disk.
    An incomplete last line (a run stopped while writing it) is left out with a warning and removed by the
    next change; an incomplete or unreadable line before the last makes the module fail, naming the line.
"""
