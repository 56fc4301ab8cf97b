#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: go_live
short_description: Make a release and put it live in one module run (release, shared links, switch, vhost, prune)
version_added: 0.1.0
description:
  - The steps of a deploy that nothing needs to run between, in one module run, in this order, each as its own
    module does it - make the release (M(cutover.web.release_dir)), link the shared paths into it
    (M(cutover.web.shared_links), with O(shared)), switch C(current) to it (M(cutover.web.atomic_symlink)), with
    O(vhost) point the Apache site at it and restart Apache gracefully until it serves it
    (M(cutover.web.vhost_release)), prune old releases (M(cutover.web.prune_releases), with O(prune)) and give
    back the deploy lock (with O(lock)).
  - The P(cutover.web.deploy#role) role uses it when the deploy has no hook, build command, migration, writable
    path or probe between those steps; otherwise it runs the modules one by one, with the same results.
  - A step that fails stops the run there, and the failed task says which (RV(step)) and what the steps before
    it did (RV(release), RV(switch)), so that the caller can mark a release that never went live V(failed) or
    switch back to RV(switch.previous_release) when the step failed after the switch. This module never switches
    back by itself. The lock stays held when a step fails, also with O(lock.give_back=true), so the caller does
    that under it; a lock this module run took is given back when the step that failed changed nothing.
author:
  - cutover.web maintainers (@cutover-web)
extends_documentation_fragment:
  - cutover.web._root
  - cutover.web._lock
  - cutover.web._vhost_record
  - cutover.web._delete_in_background
  - cutover.web._attributes
options:
  release:
    description:
      - The release to make, as M(cutover.web.release_dir) takes it with O(cutover.web.release_dir#module:state=present).
    type: dict
    required: true
    suboptions:
      src:
        description:
          - A directory or archive on the target (O(cutover.web.release_dir#module:src)). Exactly one of O(release.src)
            and O(release.git_repo) is given; an empty string is one not given, as for O(release.id) and
            O(release.stamp).
        type: path
      git_repo:
        description:
          - A git repository (O(cutover.web.release_dir#module:git_repo)).
        type: str
      git_version:
        description:
          - The ref of O(release.git_repo).
        type: str
        default: HEAD
      exclude:
        description:
          - Paths of the source left out (O(cutover.web.release_dir#module:exclude)).
        type: list
        elements: str
        default: []
      strip_components:
        description:
          - Leading path components removed from an archive or repository (O(cutover.web.release_dir#module:strip_components)).
        type: int
        default: 0
      id:
        description:
          - The release id (O(cutover.web.release_dir#module:id)); derived from O(release.stamp) and the content when omitted.
        type: str
      stamp:
        description:
          - The UTC time a derived id starts with (O(cutover.web.release_dir#module:stamp)).
        type: str
      checksum:
        description:
          - Compare file contents, not size and time (O(cutover.web.release_dir#module:checksum)).
        type: bool
        default: false
      sync:
        description:
          - Flush the release to disk before it is renamed into place (O(cutover.web.release_dir#module:sync)).
        type: bool
        default: true
      move_source:
        description:
          - The source directory, pushed into the staging area, becomes the release
            (O(cutover.web.release_dir#module:move_source)).
        type: bool
        default: false
  shared:
    description:
      - Link the shared paths into the release, as M(cutover.web.shared_links) does with these options.
    type: dict
    suboptions:
      dirs:
        description:
          - Directories of the release that live in C(<root>/shared) (O(cutover.web.shared_links#module:dirs)).
        type: list
        elements: str
        default: []
      files:
        description:
          - Files of the release that live in C(<root>/shared) (O(cutover.web.shared_links#module:files)).
        type: list
        elements: str
        default: []
      owner:
        description:
          - Owner of the shared paths this creates (O(cutover.web.shared_links#module:owner)).
        type: str
      group:
        description:
          - Group of the shared paths this creates (O(cutover.web.shared_links#module:group)).
        type: str
      mode:
        description:
          - Mode of the shared directories this creates (O(cutover.web.shared_links#module:mode)).
        type: raw
        default: '0755'
      file_mode:
        description:
          - Mode of the shared files this creates (O(cutover.web.shared_links#module:file_mode)).
        type: raw
        default: '0640'
      legacy:
        description:
          - Shared paths and where their data lived before (O(cutover.web.shared_links#module:legacy)).
        type: dict
        default: {}
  vhost:
    description:
      - Point the Apache site of the P(cutover.web.apache_vhost#role) role at the release once C(current) moved, as
        M(cutover.web.vhost_release) does with O(cutover.web.vhost_release#module:switch=true) and these options
        (its pointer holds what vhost_release writes by default). A release without the directory to serve is
        refused before the switch.
    type: dict
    suboptions:
      path: {description: ["vhost_release's O(cutover.web.vhost_release#module:path), the site's release pointer."], type: path, required: true}
      webroot: {description: [vhost_release's O(cutover.web.vhost_release#module:webroot).], type: str, default: ''}
      validate: {description: [vhost_release's O(cutover.web.vhost_release#module:validate).], type: str, required: true}
      restart: {description: [vhost_release's O(cutover.web.vhost_release#module:restart).], type: list, elements: str, required: true}
      port: {description: [vhost_release's O(cutover.web.vhost_release#module:port).], type: int, required: true}
      host: {description: [vhost_release's O(cutover.web.vhost_release#module:host).], type: str, default: localhost}
      timeout: {description: [vhost_release's O(cutover.web.vhost_release#module:timeout).], type: int, default: 10}
      site: {description: [vhost_release's O(cutover.web.vhost_release#module:site).], type: path}
      opcache_reset: {description: [vhost_release's O(cutover.web.vhost_release#module:opcache_reset).], type: bool, default: false}
  find_vhost:
    description:
      - Without O(vhost), find the site of the P(cutover.web.apache_vhost#role) role that serves releases of O(root)
        (its release pointer in C(/etc/apache2/cutover/) names one as DocumentRoot) and point it at the release as
        O(vhost) would; none, and C(current) alone moves. Several are refused before anything changes.
      - How the site is served (port, host, OPcache reset) comes from the record of its set-up in
        C(/var/lib/cutover-web/apache_vhost/), else from its vhost file; the commands that check the pointer and
        restart Apache are those of the Apache the pointer belongs to. RV(vhost) says what was used.
    type: dict
    suboptions:
      name:
        description:
          - The site to point, by its name (the role's O(cutover.web.apache_vhost#role:main:apache_vhost_name)), instead of
            the one whose pointer serves O(root). Refused before anything changes when this host has no such site, or its
            vhost serves another root.
        type: str
        default: ''
      webroot:
        description: [The directory of the release the site serves (vhost_release's O(cutover.web.vhost_release#module:webroot)).]
        type: str
        default: ''
      setting:
        description: ["The caller's setting that names the site, said when several serve the root or the one named is refused."]
        type: str
        default: the vhost name
      timeout: {description: [vhost_release's O(cutover.web.vhost_release#module:timeout).], type: int, default: 10}
  vhost_record:
    description:
      - First, under the lock, find out whether the Apache site of the P(cutover.web.apache_vhost#role) role is as its
        last set-up left it, as M(cutover.web.vhost_fingerprint) with
        O(cutover.web.vhost_fingerprint#module:state=check) does with these options (RV(vhost_record)), so that a
        deploy that sets the site up learns it in the task that goes live, with no module run of its own.
      - When it is, the steps run as without this option (with O(find_vhost), the site is served as its record says).
      - When it is not (a setting or something the set-up manages changed, or no record), the module stops before it
        makes the release, having changed nothing, and says so (RV(set_up_first)); the deploy lock stays held, taken
        by this task or before, and so does the push (RV(push)), for the caller to set the site up under the lock and
        run the task again without O(push) and O(vhost_record) (the P(cutover.web.deploy#role) role does).
  push:
    description:
      - First push a directory of the controller into O(release.src) on the target, as C(ansible.posix.synchronize)
        does (C(rsync), archive mode) with O(push.checksum) and O(push.rsync_opts), so that a deploy pushes and goes
        live in one task. The action plugin runs it, on the controller, before the module runs; O(release.src) must be
        a new directory directly in C(<root>/.cutover/staging), with a plain name, and O(release.move_source=true), so
        the pushed directory becomes the release.
      - Only a run that holds the deploy lock pushes (O(lock), held already, as the P(cutover.web.deploy_lock#module)
        module takes it), or, with O(push.take_lock), one that takes it in this task. The target is looked at first,
        by one shell command, since C(rsync) would follow a symlink on its way. The state directory C(<root>/.cutover)
        and the staging area must be real directories, the directory pushed into must not exist, and the lock must hold
        this run's O(lock.owner) and O(lock.run_id) (or be free, with O(push.take_lock)).
      - Anything else is refused before anything is pushed.
      - A push that fails fails the task with RV(step=push) and RV(push), the directory the caller removes (what was
        written of it is left, as a synchronize task leaves it). The module does not run then, and the lock stays as it
        was (RV(lock_held) says whether this run holds it, with O(push.take_lock)).
      - In check mode nothing is pushed and the module does not run; the task says a release would be made.
    type: dict
    suboptions:
      src:
        description: ["A directory of the controller; relative, found as synchronize finds its C(src)."]
        type: str
        required: true
      checksum:
        description:
          - Compare file contents, not size and time (synchronize's C(checksum)), with the directories the options
            C(--link-dest), C(--compare-dest) and C(--copy-dest) of O(push.rsync_opts) name.
          - When none of them exists on the target (a first deploy's C(--link-dest) to C(current)), there is nothing
            to compare with and C(rsync) is not asked to (it would read every file of the source once more for nothing).
        type: bool
        default: false
      rsync_opts:
        description:
          - More options of C(rsync) (synchronize's C(rsync_opts)), for example C(--link-dest).
          - synchronize splits its command line as a shell would, so a value with a space or a quote must be quoted, as
            the P(cutover.web.deploy#role) role quotes the root in C(--link-dest) and each pattern in C(--exclude).
        type: list
        elements: str
        default: []
      take_lock:
        description:
          - Take the deploy lock in this task, for a caller that does not hold it yet; one module run fewer than
            P(cutover.web.deploy_lock#module) first.
          - When the lock is free and the staging area exists and is empty, the push runs first and the module run takes
            the lock before it makes the release. A deploy that takes the lock meanwhile clears the staging area by moving each
            entry into the trash at once, so a push it clears is gone from its name, never half there, and the module run
            refuses the missing source.
          - When the root is new (it has no staging area), the lock holds another run's record, or the staging area holds
            what an earlier run left (a run killed while pushing takes no lock), the action takes the lock first, before
            the push, with P(cutover.web.deploy_lock#module) (O(push.root_mode), and
            O(cutover.web.deploy_lock#module:clear_staging=true)), which refuses a lock another live run holds (RV(step=lock)),
            having pushed nothing.
          - When a step after the push fails having changed something, the lock stays held, as one held before the
            task does.
        type: bool
        default: false
      root_mode:
        description:
          - With O(push.take_lock), the mode of a root made by this task (O(cutover.web.deploy_lock#module:root_mode)).
        type: str
        default: '0755'
  prune:
    description:
      - Once the release is live, prune old releases as M(cutover.web.prune_releases) does with these options
        (and its default staging age).
    type: dict
    suboptions:
      keep:
        description:
          - How many ready releases to keep, the live one included.
        type: int
        default: 5
      protect:
        description:
          - Release ids never removed.
        type: list
        elements: str
        default: []
      failed_older_than:
        description:
          - Remove V(failed) and V(bad) releases marked longer ago than this (seconds).
        type: int
        default: 86400
attributes:
  check_mode:
    support: full
    details:
      - Check mode says which release would be made or reused and whether C(current) and the site would change.
        When the release is new, what follows it is predicted from what is there now (the switch from the
        current release, pruning as if the new release were not there yet); nothing is made, moved or removed.
  diff_mode:
    support: full
    details:
      - The diff is the diffs of the steps that ran, in order.
  safe_file_operations:
    support: full
    details:
      - Each step is the one of its own module (a release renamed into place when complete, one rename(2) of
        C(current), a pointer checked before it is moved into place).
  idempotent:
    support: full
    details:
      - The same source again reuses its release, which is live already; nothing changes and Apache is not
        restarted.
seealso:
  - module: cutover.web.release_dir
  - module: cutover.web.shared_links
  - module: cutover.web.atomic_symlink
  - module: cutover.web.vhost_release
  - module: cutover.web.prune_releases
"""

EXAMPLES = r"""
---
- name: Make the release from the pushed tree, link the uploads, serve it and prune, giving back the lock
  cutover.web.go_live:
    root: /srv/www/shop
    release:
      src: /srv/www/shop/.cutover/staging/push-20261206T101500.1765016100.0.ansible
      move_source: true
      checksum: true
    shared:
      dirs: [public/media]
    vhost:
      path: /etc/apache2/cutover/shop-release.conf
      webroot: public
      validate: apache2ctl -t -c 'Include %s'
      restart: [apache2ctl, graceful]
      port: 80
      site: /etc/apache2/sites-available/cutover-shop.conf
      opcache_reset: true
    prune:
      keep: 5
    lock:
      owner: deploy
      run_id: 20261206T101500.123456Z-42
      give_back: true
  register: live
"""

RETURN = r"""
deleting:
  description:
    - The releases pruned and the push whose content was a release already, renamed into C(.cutover/trash/),
      that a process detached from this run deletes after it (O(delete_in_background)).
  returned: when O(delete_in_background) left something to delete
  type: list
  elements: path
  sample: [/srv/www/shop/.cutover/trash/20261101T090000Z-3f2a9c1d0b7e.1793520000.4242]
release:
  description: What M(cutover.web.release_dir) returns for the release (id, release_path, current, changed, ...).
  returned: once the release is made or found, also when a later step failed
  type: dict
shared:
  description: What M(cutover.web.shared_links) returns.
  returned: with O(shared), once the shared links are made
  type: dict
switch:
  description:
    - What the switch returns (M(cutover.web.vhost_release) with O(vhost), else M(cutover.web.atomic_symlink)) -
      changed, previous_release, link, target, link_text, previous, and with O(vhost) what Apache serves.
    - When a step after the switch failed, RV(switch.changed) and RV(switch.previous_release) say what to switch back to.
  returned: once the switch was tried
  type: dict
  contains:
    changed:
      description: Whether C(current) was switched (or, with O(vhost), anything of serving the release changed).
      type: bool
    previous_release:
      description: The release C(current) pointed at before the task (null when there was none).
      type: str
vhost:
  description:
    - The vhost options the release was served with (as O(vhost) takes them), and with O(find_vhost) the site's
      C(name); the caller points the site back with them when it switches back.
  returned: with O(vhost), or O(find_vhost) when a site serves the root, also when a later step failed
  type: dict
pruned:
  description: What M(cutover.web.prune_releases) returns (removed, kept, kept_reasons, ...).
  returned: with O(prune), once the release is live
  type: dict
lock_held:
  description: With O(lock), whether this run still holds the deploy lock after the task.
  returned: >-
    when O(lock) is set and every step succeeded, or a step failed (V(true) unless this module run took the lock and
    the step changed nothing); with O(push.take_lock), also when the task failed before the module ran
  type: bool
push:
  description:
    - With O(push), what was pushed where (C(src), C(dest)), whether the push changed anything (C(changed)), and whether
      C(rsync) compared file contents (C(checksum), O(push.checksum) when a directory to compare with existed).
    - With O(push.take_lock), C(locked_first) says whether P(cutover.web.deploy_lock#module) took the lock before the
      push (a new root, another run's record in the lock, or leftovers in the staging area), rather than the module
      run after it.
  returned: with O(push), once the push was tried
  type: dict
vhost_record:
  description:
    - With O(vhost_record), what M(cutover.web.vhost_fingerprint) with O(cutover.web.vhost_fingerprint#module:state=check)
      returns (C(unchanged), C(remembered), C(fingerprint)), as P(cutover.web.deploy_lock#module) returns it
      (RV(cutover.web.deploy_lock#module:vhost_record)); the P(cutover.web.apache_vhost#role) role takes it as
      O(cutover.web.apache_vhost#role:main:apache_vhost_record_check).
  returned: with O(vhost_record), once the lock is held
  type: dict
set_up_first:
  description:
    - Whether the module stopped before making the release because the site is not as its last set-up left it
      (O(vhost_record)); the lock (RV(lock_held)) and the push are kept for the caller's set-up and second run.
  returned: with O(vhost_record)
  type: bool
step:
  description:
    - The step that failed - V(lock) (with O(push.take_lock)), V(push) (with O(push)), V(vhost) (with O(find_vhost)),
      V(release), V(shared), V(switch) or V(prune).
  returned: failure
  type: str
"""

import functools

from ansible_collections.cutover.web.plugins.module_utils._build import RELEASE_OPTIONS, present_release
from ansible_collections.cutover.web.plugins.module_utils._fingerprint import RECORD_OPTION, check_record
from ansible_collections.cutover.web.plugins.module_utils._lock import lock_module, with_lock_option
from ansible_collections.cutover.web.plugins.module_utils._module import os_error, run
from ansible_collections.cutover.web.plugins.module_utils._prune import DELETE_OPTION, PRUNE_OPTIONS, prune
from ansible_collections.cutover.web.plugins.module_utils._releases import CutoverError
from ansible_collections.cutover.web.plugins.module_utils._shared import SHARED_OPTIONS, link_shared
from ansible_collections.cutover.web.plugins.module_utils._switch import switch
from ansible_collections.cutover.web.plugins.module_utils._vhost import (
    FIND_OPTIONS, VHOST_OPTIONS, found_vhost, switch_and_serve, tell)


class Steps(object):
    """The steps, in order; what each did is kept for the result, also when a later one fails."""

    def __init__(self, layout):
        self.layout = layout
        self.result = {'changed': False}
        self.diffs = []

    def step(self, name, act):
        try:
            try:
                done = act()
            except OSError as exc:
                raise os_error(exc, self.layout.root)
        except CutoverError as exc:
            said = dict((k, v) for k, v in self.result.items() if k != 'changed')
            if name == 'switch' and exc.details.get('changed'):
                # The switch happened and a step of serving failed: say what was switched.
                said['switch'] = dict((k, v) for k, v in exc.details.items() if k not in ('rc', 'stdout', 'stderr'))
            exc.details.update(said, step=name, changed=self.result['changed'] or bool(exc.details.get('changed')))
            raise
        diff = done.pop('diff', None)
        if isinstance(diff, list):
            self.diffs.extend(diff)
        elif diff is not None:
            self.diffs.append(diff)
        self.result['changed'] = self.result['changed'] or bool(done.get('changed'))
        return done


def _given(options, names):
    """``options`` with each of ``names`` that is an empty string taken as not given (None)."""
    return dict((k, None if k in names and v == '' else v) for k, v in options.items()) if options else options


def go_live(module, layout):
    if module.params['push'] is not None:
        raise CutoverError('The push into %s runs on the controller, in the action plugin of cutover.web.go_live, '
                           'which did not run: nothing was pushed or changed.' % layout.root, path=layout.root)
    p = dict(module.params, release=_given(module.params['release'], ('src', 'git_repo', 'id', 'stamp')),
             shared=_given(module.params['shared'], ('owner', 'group')))
    if p['shared'] and not (p['shared']['dirs'] or p['shared']['files']):
        p['shared'] = None
    if (p['release']['src'] is None) == (p['release']['git_repo'] is None):
        raise CutoverError('The release of %s needs exactly one source, release.src or release.git_repo (%s).'
                           % (layout.root, 'both were given' if p['release']['src'] else 'neither was given'),
                           path=layout.root)
    check = module.check_mode
    steps = Steps(layout)
    if p['vhost_record']:
        # Read-only: a record that cannot be checked (damaged, a probe's regular expression wrong) says "set up again".
        record = steps.result['vhost_record'] = check_record(p['vhost_record']['path'], p['vhost_record']['settings'])
        steps.result['set_up_first'] = not record['unchanged']
        if steps.result['set_up_first']:
            # Nothing made yet: the caller sets the site up under the lock this run holds, and runs again.
            return dict(steps.result, diff=[], keep_lock=True)
    vhost = p['vhost']
    if vhost is None and p['find_vhost']:
        vhost = steps.step('vhost', lambda: found_vhost(layout.root, p['find_vhost']) or {})
    if vhost:
        steps.result['vhost'] = dict(vhost)
    made = steps.result['release'] = steps.step('release', lambda: present_release(layout, p['release'], check, module.warn))
    made['current'] = layout.current_id()
    rid = made['id']
    # In check mode a new release is not there: what follows it is predicted, not run.
    predicted = check and made['changed']
    if p['shared'] and not predicted:
        shared = dict(p['shared'], release=rid)
        steps.result['shared'] = steps.step('shared', lambda: link_shared(layout, shared, check, module.warn))
    if predicted:
        steps.result['switch'] = {'changed': True, 'release': rid, 'previous_release': made['current']}
        steps.diffs.append({'before': '%s\n' % made['current'], 'after': '%s\n' % rid, 'before_header': 'current',
                            'after_header': 'current'})
        steps.result['changed'] = True
    elif vhost:
        opts = dict(vhost, release_path=layout.release_path(rid), content=None)
        served = steps.result['switch'] = steps.step('switch', lambda: switch_and_serve(module, layout, opts))
        tell(module, layout, rid, served)
    else:
        steps.result['switch'] = steps.step('switch', lambda: switch(layout, release=rid, check_mode=check))
    if p['prune']:
        q = p['prune']
        steps.result['pruned'] = steps.step('prune', lambda: prune(layout, q['keep'], q['protect'], q['failed_older_than'],
                                                                   check_mode=check))
    result = steps.result
    result['diff'] = steps.diffs
    return result


def main():
    module = lock_module(
        dict(
            release=dict(type='dict', required=True, options=RELEASE_OPTIONS),
            shared=dict(type='dict', options=SHARED_OPTIONS),
            vhost=dict(type='dict', options=dict((k, v) for k, v in VHOST_OPTIONS.items() if k != 'content')),
            find_vhost=dict(type='dict', options=FIND_OPTIONS),
            vhost_record=RECORD_OPTION,
            prune=dict(type='dict', options=PRUNE_OPTIONS),
            delete_in_background=DELETE_OPTION,
            # Run by the action plugin on the controller, which takes it out of the module's options.
            push=dict(type='dict', options=dict(src=dict(type='str', required=True), checksum=dict(type='bool', default=False),
                                                rsync_opts=dict(type='list', elements='str', default=[]),
                                                take_lock=dict(type='bool', default=False),
                                                root_mode=dict(type='str', default='0755'))),
        ),
        mutually_exclusive=[('vhost', 'find_vhost')],
    )
    # The lock stays held when a step fails: the caller marks the release or switches back under it.
    run(module, lambda layout: with_lock_option(module.params['lock'], layout, functools.partial(go_live, module),
                                                module.check_mode, keep_on_failure=True))


if __name__ == '__main__':
    main()
