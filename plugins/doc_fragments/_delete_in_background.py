# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):

    # The delete_in_background option of the modules that delete releases or pushes (module_utils/_prune.py's
    # DELETE_OPTION, read by module_utils/_module.py's run()).
    DOCUMENTATION = r"""
options:
  delete_in_background:
    description:
      - Whether what this run deletes (releases pruned, a push whose release existed already, staging leftovers) is
        deleted by a process of its own, detached from the run, once the run is done, instead of before the module
        returns. Either way it is renamed into C(.cutover/trash/) first, so it is gone from C(releases/) or the
        staging area in one step, and the result (V(removed), RV(deleting)) says the same.
      - Deleting a release of tens of thousands of files takes seconds (about as long as pushing it), which a deploy
        no longer waits for. The process holds an exclusive C(flock) on C(.cutover/trash/) while it deletes, with
        its standard streams on C(/dev/null) in a session of its own, so the task's connection closes at once.
      - A run with this option waits first (up to 300 seconds, then it warns and goes on) for such a process of an
        earlier run to end, so a deploy never overlaps the deletion of an earlier one's. What a process that was
        killed left in the trash is deleted by the next pruning, before it returns.
      - In check mode nothing is deleted either way.
    type: bool
    default: false
"""
