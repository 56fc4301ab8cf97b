#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_dir
short_description: Make a release directory from a directory, an archive or a git commit
version_added: 0.1.0
description:
  - Makes C(<root>/releases/<id>) from a source on the target host. The tree is built in
    C(<root>/.cutover/staging/) and renamed into C(releases/) only when complete, so a half-built
    release never appears there.
  - Files whose content, mode and owner equal those in the current release are hardlinked from it, as
    C(rsync --link-dest) does, so a redeploy costs what changed, not the size of the site.
  - A source whose content equals an existing ready release yields that release with C(changed=false).
  - Also removes a release (O(state=absent)), never the current one, and records a release as
    V(failed) or V(bad) so it can neither go live nor be picked as rollback target.
  - Records the database schema version a release expects (O(schema_version)), which
    M(cutover.web.release_info) reports and a rollback compares.
author:
  - cutover.web maintainers (@cutover-web)
extends_documentation_fragment:
  - cutover.web._root
  - cutover.web._delete_in_background
  - cutover.web._attributes
  - cutover.web._attributes.full
attributes:
  check_mode:
    details:
      - Check mode reads the source and reports the release id that would be made or reused, and how many
        files would be linked or written.
      - For a git source, check mode resolves the ref with C(git ls-remote) and fetches nothing; it finds a
        release made from that commit with the same options, by the rule a real run applies first.
      - With O(state=isolated) or O(state=sealed), check mode reports how many files would be copied or
        hardlinked again, and changes nothing.
  safe_file_operations:
    details:
      - The release appears by a single rename(2) of the finished staging tree.
  idempotent:
    details:
      - Sources are compared by content fingerprint (git sources by commit), not by time.
      - For a directory source, unchanged files are recognized by size and mtime, as rsync does, unless
        O(checksum=true).
      - A git release is known by its commit and the options that shape its content (O(exclude),
        O(strip_components)); the same commit with other options is another release.
      - O(state=sealed) again changes nothing; O(state=isolated) again changes nothing once no file of the
        release is shared.
options:
  id:
    description:
      - The release id, a single directory name of at most 180 bytes (in UTF-8), so that every name made from it
        (the staging directory, the manifest) fits the 255 bytes a filename may have. It may not be empty,
        contain C(/) or C(..), or start with C(.) or C(-).
      - When omitted, an identical ready release is reused if there is one; otherwise the id is derived from
        the UTC time and the git commit or content fingerprint, for example C(20261122T101500Z-3f2a9c1d0b7e).
      - When given, exactly this id is used; a release of that id with other content is an error.
    type: str
  stamp:
    description:
      - The UTC time a derived id starts with, written like C(20261122T101500Z). Default is now.
      - Give every host of a play the same stamp (take it once on the controller) and hosts given the same
        content derive the same id, while an identical ready release is still reused (V(changed=false)).
      - Ignored when O(id) is given.
    type: str
  state:
    description:
      - V(present) makes the release (or finds the identical one).
      - V(absent) removes it; the current release is never removed.
      - V(failed) and V(bad) record that state in the history; such a release cannot go live and is pruned
        once old enough. V(bad) is for a release rolled back from, V(failed) for one whose build or checks
        failed.
      - V(isolated) gives the release O(id) a private copy of every file it shares by hardlink with another
        release (or with the tree it was pushed as), before build steps run in it. Whatever a build step then does
        to a file (rewrite it in place, append to it, change its mode or owner), no other release changes.
        Copies are reflinks where the filesystem makes them (btrfs, XFS), so they take no space there.
        The live release is refused.
      - V(sealed), once the build steps are done, makes each file of the release O(id) that is identical
        (content, mode and owner) to the current release's a hardlink of it again (a link to a temporary
        name, renamed over the file), and rewrites the release's manifest to what the release now holds, so
        the release takes the disk space of what changed and later releases hardlink from it. The live
        release is refused.
    type: str
    choices: [present, absent, failed, bad, isolated, sealed]
    default: present
  src:
    description:
      - A directory or an archive (C(.tar), C(.tar.gz), C(.tgz), C(.tar.bz2), C(.tar.xz), C(.zip)) on the
        target host.
      - Symlinks are kept as symlinks. Owners are kept for a directory source when running as root, as
        C(rsync -a) does; files from archives and git belong to the user the module runs as.
      - An archive whose members would land outside the release, below a symlink or a file, or that names a path
        again as another kind (for example a directory and then a symlink) is refused. A regular file named again
        replaces the earlier one, as C(tar) does on extraction.
    type: path
  git_repo:
    description:
      - A git repository URL or path, mirrored as a bare repository under C(<root>/.cutover/repos/) and
        exported with C(git archive). The commit becomes the release's revision and part of its id.
    type: str
  git_version:
    description:
      - The branch, tag or commit of O(git_repo) to release.
    type: str
    default: HEAD
  exclude:
    description:
      - Patterns (shell globs) of paths to leave out. A pattern with a C(/) is matched against the path
        relative to the source, one without against each file or directory name.
    type: list
    elements: str
    default: []
  strip_components:
    description:
      - Leading path components to remove from archive members (and from the paths of a git commit), for
        archives that hold one top directory.
    type: int
    default: 0
  checksum:
    description:
      - Hash every file of a directory source instead of trusting size and mtime.
    type: bool
    default: false
  sync:
    description:
      - Flush the new release to disk (syncfs) before it is renamed into C(releases/), so a crash cannot
        leave a release whose files are empty.
    type: bool
    default: true
  move_source:
    description:
      - Make the release of the O(src) directory itself, by rename, instead of a copy. O(src) must be a
        directory directly inside C(<root>/.cutover/staging), pushed there for this release (for example
        with C(rsync --link-dest=<root>/current/), so unchanged files arrive as hardlinks).
      - Files equal to those of the current release are swapped for hardlinks of them, so the release takes
        the disk space of what changed, and no second copy of the site is kept on the host.
      - When the content equals an existing release, that release is returned and O(src) is removed.
      - Cannot be combined with O(exclude) (leave paths out while pushing).
    type: bool
    default: false
  schema_version:
    description:
      - The database schema version the release expects (for example the id of the last migration it
        applied), recorded in the history. With O(src) or O(git_repo), for the release made or found;
        alone, for the existing release O(id).
      - Recording the version already recorded changes nothing.
    type: str
notes:
  - Hardlinked files are shared between releases. Run build steps in a release only between O(state=isolated)
    and O(state=sealed) (the cutover.web.deploy role does), so that a step editing a file in place cannot
    change another release.
  - When the filesystem refuses a hardlink (for example C(releases/) spans two filesystems), files are
    copied instead and the module says so in a warning and in RV(link_fallback).
seealso:
  - module: cutover.web.atomic_symlink
  - module: cutover.web.prune_releases
  - module: cutover.web.release_info
"""

EXAMPLES = r"""
---
- name: Make a release from a directory pushed to the host
  cutover.web.release_dir:
    root: /srv/www/shop
    src: /srv/www/shop/.cutover/upload
    exclude: [.git, node_modules]
  register: release

- name: Push the site next to the live release, unchanged files as hardlinks of it
  ansible.posix.synchronize:
    src: build/
    dest: /srv/www/shop/.cutover/staging/push-1/
    checksum: true
    rsync_opts: [--link-dest=/srv/www/shop/current/]

- name: Record the schema version the release expects, after its migrations ran
  cutover.web.release_dir:
    root: /srv/www/shop
    id: "{{ release.id }}"
    schema_version: "0004-expand-add-stock"

- name: Make that pushed tree the release itself, without a copy
  cutover.web.release_dir:
    root: /srv/www/shop
    src: /srv/www/shop/.cutover/staging/push-1
    move_source: true

- name: Make a release from a tarball, dropping its top directory
  cutover.web.release_dir:
    root: /srv/www/shop
    src: /tmp/shop-2.4.0.tar.gz
    strip_components: 1
    id: v2.4.0

- name: Make a release from a git tag
  cutover.web.release_dir:
    root: /srv/www/shop
    git_repo: https://git.example.com/shop.git
    git_version: v2.4.0

- name: One release id on every host of the play (same stamp, same content)
  cutover.web.release_dir:
    root: /srv/www/shop
    src: /srv/www/shop/.cutover/upload
    stamp: "{{ hostvars['localhost']['deploy_stamp'] }}"

- name: Record that a release failed its checks
  cutover.web.release_dir:
    root: /srv/www/shop
    id: "{{ release.id }}"
    state: failed

- name: Give the new release private copies of the files it shares with other releases
  cutover.web.release_dir:
    root: /srv/www/shop
    id: "{{ release.id }}"
    state: isolated

- name: Build inside it (composer rewrites files in place)
  ansible.builtin.command:
    cmd: composer dump-autoload --optimize
    chdir: "{{ release.release_path }}"

- name: Hardlink the files the build left alone to the current release again
  cutover.web.release_dir:
    root: /srv/www/shop
    id: "{{ release.id }}"
    state: sealed

- name: Remove an old release
  cutover.web.release_dir:
    root: /srv/www/shop
    id: 20261101T090000Z-3f2a9c1d0b7e
    state: absent
"""

RETURN = r"""
deleting:
  description:
    - With O(move_source), the pushed directory whose content was a release already (RV(source_removed)),
      renamed into C(.cutover/trash/), that a process detached from this run deletes after it
      (O(delete_in_background)).
  returned: when O(delete_in_background) left something to delete
  type: list
  elements: path
  sample: [/srv/www/shop/.cutover/trash/push-1.1793520000.4242]
id:
  description: The release id.
  returned: always
  type: str
  sample: 20261122T101500Z-3f2a9c1d0b7e
release_path:
  description: The release directory.
  returned: always
  type: str
  sample: /srv/www/shop/releases/20261122T101500Z-3f2a9c1d0b7e
state:
  description: The release's state after the task (V(ready), V(active), V(failed), V(bad) or V(absent)).
  returned: always
  type: str
  sample: ready
fingerprint:
  description:
    - The sha256 content fingerprint over paths, kinds, modes and file digests.
    - With O(state=sealed), that of what the release holds after its build steps.
  returned: when state is present or sealed
  type: str
  sample: 3f2a9c1d0b7e5f0d9c4e6b1a2d3c4b5a6f7e8d9c0b1a2f3e4d5c6b7a8f9e0d1c
revision:
  description: The git commit of a git source, else null.
  returned: when state is present
  type: str
  sample: 8d1c0b7e3f2a9c1d0b7e5f0d9c4e6b1a2d3c4b5a
source:
  description: What the release was made from.
  returned: when state is present
  type: str
  sample: dir:/srv/www/shop/.cutover/upload
reused:
  description: Whether an existing identical release was returned instead of making one.
  returned: when state is present
  type: bool
base:
  description: The release whose unchanged files were hardlinked, or null.
  returned: when state is present or sealed
  type: str
files:
  description: Regular files in the release.
  returned: when state is present
  type: int
bytes:
  description: Bytes of regular files in the release.
  returned: when state is present
  type: int
files_linked:
  description:
    - Files hardlinked from the base release (predicted in check mode).
    - With O(state=sealed), the files of the release that are hardlinks of the base release's after the task.
  returned: when state is present or sealed
  type: int
bytes_linked:
  description: Bytes in files hardlinked from the base release.
  returned: when state is present or sealed
  type: int
files_written:
  description:
    - Files copied or extracted into the release.
    - With O(state=sealed), the files of the release that are its own (the build made or changed them).
  returned: when state is present or sealed
  type: int
bytes_written:
  description: Bytes copied or extracted into the release, or with O(state=sealed) in its own files.
  returned: when state is present or sealed
  type: int
files_relinked:
  description: With O(state=sealed), files identical to the base release's that were (or in check mode would be)
    made hardlinks of them.
  returned: when state is sealed
  type: int
files_copied:
  description: With O(state=isolated), files and symlinks shared with other releases that were (or in check mode
    would be) given a private copy.
  returned: when state is isolated
  type: int
bytes_copied:
  description: Bytes in the files given a private copy.
  returned: when state is isolated
  type: int
copy_method:
  description: With O(state=isolated), V(reflink) when every copy shares its blocks with the original, V(copy)
    when some were copied, null when nothing was copied.
  returned: when state is isolated
  type: str
current:
  description: The release C(<root>/current) points at (before any switch), or null.
  returned: when state is present
  type: str
link_fallback:
  description: Why files were copied instead of hardlinked, or null when hardlinks worked.
  returned: when state is present or sealed
  type: str
special_skipped:
  description: Paths in the source that are neither files, directories nor symlinks (sockets, FIFOs, devices) and were left out.
  returned: when a release was made
  type: list
  elements: str
schema_version:
  description: The schema version recorded for the release, when O(schema_version) was given.
  returned: when O(schema_version) is set
  type: str
  sample: 0004-expand-add-stock
source_removed:
  description: With O(move_source), true when the source equalled an existing release and was removed.
  returned: when O(move_source) is set, an existing release was returned and not in check mode
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.cutover.web.plugins.module_utils._build import RELEASE_OPTIONS, isolate_release, present_release, seal_release
from ansible_collections.cutover.web.plugins.module_utils._module import run
from ansible_collections.cutover.web.plugins.module_utils._prune import DELETE_OPTION, remove_release
from ansible_collections.cutover.web.plugins.module_utils._releases import CutoverError


def present(module, layout):
    p = module.params
    if p['src'] is None and p['git_repo'] is None:
        if not p['id']:
            raise CutoverError('Recording a schema version without a source needs the id of the release.',
                               path=layout.releases_dir)
        known = layout.releases().get(p['id'])
        before = known.schema if known is not None else None
        changed = layout.record_schema(p['id'], p['schema_version'], check_mode=module.check_mode)
        result = {'changed': changed, 'id': p['id'], 'release_path': layout.release_path(p['id']),
                  'schema_version': p['schema_version'],
                  'diff': {'before': '%s schema: %s\n' % (p['id'], before),
                           'after': '%s schema: %s\n' % (p['id'], p['schema_version'])}}
    else:
        if p['schema_version'] is not None:
            # Refused before anything is made, in check mode as in a real run.
            layout.check_schema_version(p['id'], p['schema_version'])
        result = present_release(layout, p, module.check_mode, module.warn)
        if p['schema_version'] is not None:
            changed = layout.record_schema(result['id'], p['schema_version'], check_mode=module.check_mode,
                                           to_be_made=result['changed'])
            result['changed'] = result['changed'] or changed
            result['schema_version'] = p['schema_version']
    result['current'] = layout.current_id()
    return result


def build_steps(module, layout):
    p = module.params
    if p['state'] == 'isolated':
        result = isolate_release(layout, p['id'], check_mode=module.check_mode)
        after = '%d files shared with other releases, now private copies\n' % result['files_copied']
    else:
        result = seal_release(layout, p['id'], check_mode=module.check_mode, sync=p['sync'])
        for warning in result.pop('warnings'):
            module.warn(warning)
        if result['link_fallback']:
            module.warn('Hardlinks were refused (%s), so files of %s equal to the base release were left as copies.'
                        % (result['link_fallback'], result['release_path']))
        after = '%d files hardlinked to %s again\n' % (result['files_relinked'], result['base'])
    result['diff'] = {'before': '', 'after': after if result['changed'] else ''}
    return result


def mark_or_remove(module, layout):
    p = module.params
    path = layout.release_path(p['id'])
    if p['state'] == 'absent':
        removed = remove_release(layout, p['id'], check_mode=module.check_mode)
        return {'changed': removed, 'id': p['id'], 'release_path': path, 'state': 'absent',
                'diff': {'before': '%s\n' % path if removed else '', 'after': ''}}
    rel, changed = layout.mark(p['id'], p['state'], check_mode=module.check_mode)
    return {'changed': changed, 'id': rel.id, 'release_path': path, 'state': p['state'],
            'diff': {'before': '%s: %s\n' % (rel.id, rel.mark), 'after': '%s: %s\n' % (rel.id, p['state'])}}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type='path', required=True),
            state=dict(type='str', default='present', choices=['present', 'absent', 'failed', 'bad', 'isolated', 'sealed']),
            schema_version=dict(type='str'),
            delete_in_background=DELETE_OPTION,
            **RELEASE_OPTIONS
        ),
        mutually_exclusive=[('src', 'git_repo')],
        required_if=[
            ('state', 'present', ('src', 'git_repo', 'schema_version'), True),
            ('state', 'absent', ('id',)),
            ('state', 'failed', ('id',)),
            ('state', 'bad', ('id',)),
            ('state', 'isolated', ('id',)),
            ('state', 'sealed', ('id',)),
        ],
        supports_check_mode=True,
    )
    if module.params['state'] == 'present':
        run(module, lambda layout: present(module, layout))
    elif module.params['state'] in ('isolated', 'sealed'):
        run(module, lambda layout: build_steps(module, layout))
    else:
        run(module, lambda layout: mark_or_remove(module, layout))


if __name__ == '__main__':
    main()
