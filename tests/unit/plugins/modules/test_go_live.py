# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""go_live through AnsibleModule: a release made, linked, switched, served and pruned in one run, and what a failed
step leaves and says. Apache is the ``apache`` fixture (conftest.py); the deploy_playbooks integration target runs
the module against Debian's Apache through the deploy role."""

from __future__ import annotations

import os
import time

import pytest

from ansible_collections.cutover.web.plugins.module_utils._lock import acquire, read_lock
from ansible_collections.cutover.web.plugins.module_utils._maintenance import window
from ansible_collections.cutover.web.plugins.module_utils._releases import Layout
from ansible_collections.cutover.web.plugins.modules import go_live
from ansible_collections.cutover.web.tests.unit.helpers import deploy, point_site, record_site, run_module, snapshot, write_tree

LOCK = dict(owner='deploy', run_id='run-1', give_back=True)


@pytest.fixture
def site(root, tmp_path, capsys):
    """A root with the releases A and B, B live; each has public/index.html."""
    return deploy(root, tmp_path, capsys, dict((rid, {'public/index.html': 'release ' + rid}) for rid in 'AB'))


def args(site, apache, src, **more):
    port, pointer = apache
    vhost = dict(path=pointer, webroot='public', validate='true', restart=['true'], port=port, timeout=5)
    return dict(dict(root=site, release=dict(src=src, id='C', sync=False), shared=dict(dirs=['public/media']),
                     vhost=vhost, prune=dict(keep=1), lock=LOCK), **more)


def pointed(apache):
    with open(apache[1]) as f:
        return f.read()


def test_one_run_makes_links_serves_prunes_and_gives_back_the_lock(site, apache, capsys, tmp_path):
    src = write_tree(tmp_path / 'src-C', {'public/index.html': 'release C', 'public/media/seed.jpg': 'seed'})
    layout = Layout(site)
    acquire(layout, 'deploy', 'run-1')
    before = snapshot(site)

    planned = run_module(go_live, args(site, apache, src), capsys, check_mode=True)
    assert planned['rc'] == 0 and planned['changed'] is True
    assert planned['release']['id'] == 'C' and planned['switch']['previous_release'] == 'B'
    assert snapshot(site) == before and not os.path.exists(apache[1])

    live = run_module(go_live, args(site, apache, src), capsys)
    assert live['rc'] == 0 and live['changed'] is True, live
    assert live['release']['id'] == 'C' and live['release']['current'] == 'B'
    assert live['switch']['previous_release'] == 'B' and live['switch']['restarted'] is True
    assert os.readlink(os.path.join(site, 'current')) == 'releases/C'
    assert 'DocumentRoot "%s"' % os.path.join(site, 'releases', 'C', 'public') in pointed(apache)
    # The uploads live in shared/, linked into the release; A goes, B stays as the rollback target.
    assert os.readlink(os.path.join(site, 'releases', 'C', 'public', 'media')).endswith('shared/public/media')
    assert os.path.isfile(os.path.join(site, 'shared', 'public', 'media', 'seed.jpg'))
    assert live['pruned']['removed'] == ['A'] and sorted(os.listdir(os.path.join(site, 'releases'))) == ['B', 'C']
    assert live['lock_held'] is False and read_lock(layout) is None

    acquire(layout, 'deploy', 'run-1')
    again = run_module(go_live, args(site, apache, src), capsys)
    assert again['rc'] == 0 and again['changed'] is False, again
    assert again['switch']['restarted'] is False and again['pruned']['removed'] == []


def test_without_a_vhost_current_alone_moves(site, capsys, tmp_path):
    src = write_tree(tmp_path / 'src-C', {'public/index.html': 'release C'})
    live = run_module(go_live, dict(root=site, release=dict(src=src, id='C', sync=False)), capsys)
    assert live['rc'] == 0 and live['changed'] is True
    assert live['switch']['previous_release'] == 'B' and live['switch']['link_text'] == 'releases/C'
    assert 'pruned' not in live and 'shared' not in live
    assert sorted(os.listdir(os.path.join(site, 'releases'))) == ['A', 'B', 'C']


def _gone(paths, timeout=30):
    deadline = time.monotonic() + timeout
    while any(os.path.lexists(p) for p in paths) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(os.path.lexists(p) for p in paths)


def test_deleting_in_background_a_pruned_release_and_a_push_of_known_content(site, capsys, tmp_path):
    """The pruned release and, on the next run, the push whose release exists already leave releases/ and the
    staging area in the run and are deleted after it; neither counts as a change of the unchanged run."""
    staging = os.path.join(site, '.cutover', 'staging')

    def push(name):  # as go_live's push leaves it
        return write_tree(os.path.join(staging, name), {'public/index.html': 'release C'})

    opts = dict(root=site, prune=dict(keep=1), delete_in_background=True)
    live = run_module(go_live, dict(opts, release=dict(src=push('push-1'), id='C', sync=False, move_source=True)), capsys)
    assert live['rc'] == 0 and live['changed'] is True and live['pruned']['removed'] == ['A'], live
    assert sorted(os.listdir(os.path.join(site, 'releases'))) == ['B', 'C']
    assert [os.path.basename(p).split('.')[0] for p in live['deleting']] == ['A']
    assert _gone(live['deleting'])

    again = run_module(go_live, dict(opts, release=dict(src=push('push-2'), sync=False, move_source=True)), capsys)
    assert again['rc'] == 0 and again['changed'] is False, again
    assert again['release']['id'] == 'C' and again['release']['source_removed'] is True
    assert again['pruned']['removed'] == [] and again['pruned']['removed_trash'] == []
    assert [os.path.basename(p).split('.')[0] for p in again['deleting']] == ['push-2']
    assert not os.path.lexists(os.path.join(staging, 'push-2'))
    assert _gone(again['deleting'])


def test_a_lock_another_run_holds_changes_nothing(site, apache, capsys, tmp_path):
    src = write_tree(tmp_path / 'src-C', {'public/index.html': 'release C'})
    acquire(Layout(site), 'someone', 'run-0')
    before = snapshot(site)
    refused = run_module(go_live, args(site, apache, src), capsys)
    assert refused['rc'] == 1 and not refused.get('changed') and 'someone' in refused['msg']
    assert snapshot(site) == before and not os.path.exists(apache[1])


def test_a_failure_after_the_switch_says_what_was_switched_and_keeps_the_lock(site, apache, capsys, tmp_path):
    """The pointer is refused after current moved: the failed task says the release, the switch (to switch back)
    and the step; nothing is pruned and the lock stays with this run."""
    src = write_tree(tmp_path / 'src-C', {'public/index.html': 'release C'})
    layout = Layout(site)
    acquire(layout, 'deploy', 'run-1')
    failed = run_module(go_live, args(site, apache, src, vhost=dict(args(site, apache, src)['vhost'], validate='false')),
                        capsys)
    assert failed['rc'] == 1 and failed['changed'] is True and failed['step'] == 'switch'
    assert 'was not put in place' in failed['msg']
    assert failed['release']['id'] == 'C' and failed['release']['changed'] is True
    assert failed['switch']['changed'] is True and failed['switch']['previous_release'] == 'B'
    assert os.readlink(os.path.join(site, 'current')) == 'releases/C'
    assert sorted(os.listdir(os.path.join(site, 'releases'))) == ['A', 'B', 'C']
    assert read_lock(layout)['run_id'] == 'run-1'


def test_a_release_without_the_webroot_never_goes_live(site, apache, capsys, tmp_path):
    src = write_tree(tmp_path / 'src-C', {'web/index.html': 'release C'})
    failed = run_module(go_live, args(site, apache, src, lock=None, shared=None), capsys)
    assert failed['rc'] == 1 and failed['step'] == 'switch' and 'switch' not in failed
    assert failed['release']['id'] == 'C' and failed['release']['changed'] is True
    assert failed['msg'].startswith('The release %s has no directory' % os.path.join(site, 'releases', 'C'))
    assert os.readlink(os.path.join(site, 'current')) == 'releases/B' and not os.path.exists(apache[1])


@pytest.mark.parametrize('source', [{}, {'git_repo': 'https://example.invalid/shop.git'}])
def test_a_release_with_no_source_or_two_is_refused_changing_nothing(site, apache, capsys, tmp_path, source):
    src = write_tree(tmp_path / 'src-C', {'public/index.html': 'release C'})
    release = dict(dict(id='C', sync=False), **source)
    if 'git_repo' in source:
        release['src'] = src
    before = snapshot(site)
    refused = run_module(go_live, args(site, apache, src, release=release, lock=None), capsys)
    assert refused['rc'] == 1 and not refused.get('changed')
    assert refused['msg'] == 'The release of %s needs exactly one source, release.src or release.git_repo (%s).' % (
        site, 'both were given' if source else 'neither was given')
    assert snapshot(site) == before and not os.path.exists(apache[1])


def test_a_maintenance_window_left_on_is_lifted_and_said(site, apache, capsys, tmp_path):
    """A window a killed run left on is lifted once the new release serves, and the run says so, as a warning."""
    src = write_tree(tmp_path / 'src-C', {'public/index.html': 'release C'})
    window(Layout(site), 'present')
    live = run_module(go_live, args(site, apache, src, lock=None), capsys)
    assert live['rc'] == 0 and live['switch']['window']['was_active'] is True
    assert not os.path.exists(Layout(site).maintenance_page)
    assert 'The maintenance window of %s (on since ' % site in live['said'] and 's.' in live['said']


FIND = dict(webroot='public', setting='deploy_apache_vhost_name', timeout=5)


def find_args(site, apache, src, **more):
    """args() with find_vhost instead of vhost."""
    given = args(site, apache, src, find_vhost=FIND, **more)
    del given['vhost']
    return given


def test_the_site_that_serves_the_root_is_found_and_pointed(site, apache, apaches, capsys, tmp_path):
    """No vhost given: the one site whose pointer serves the root is pointed at the new release, served as the
    record of its set-up says (its port), with the commands of its Apache."""
    point_site(site, apache, 'shop', 'B')
    record_site(apaches[1], 'shop', serve=dict(port=apache[0], host='shop.test', opcache_reset=False))
    src = write_tree(tmp_path / 'src-C', {'public/index.html': 'release C'})
    live = run_module(go_live, find_args(site, apache, src, lock=None), capsys)
    assert live['rc'] == 0 and live['changed'] is True, live
    assert live['switch']['restarted'] is True and live['switch']['previous_release'] == 'B'
    assert 'DocumentRoot "%s"' % os.path.join(site, 'releases', 'C', 'public') in pointed(apache)
    assert live['vhost']['name'] == 'shop' and live['vhost']['port'] == apache[0] and live['vhost']['host'] == 'shop.test'
    assert live['vhost']['restart'] == ['true'] and live['vhost']['webroot'] == 'public'


def test_a_record_without_how_to_serve_falls_back_to_the_vhost_file(site, apache, apaches, capsys, tmp_path):
    """A record an earlier version wrote says no port: the site's vhost file does."""
    point_site(site, apache, 'shop', 'B')
    record_site(apaches[1], 'shop', os_family='Debian')
    (apaches[0] / 'cutover-shop.conf').write_text('<VirtualHost *:%d>\n    ServerName shop.test\n</VirtualHost>\n' % apache[0])
    src = write_tree(tmp_path / 'src-C', {'public/index.html': 'release C'})
    live = run_module(go_live, find_args(site, apache, src, lock=None), capsys)
    assert live['rc'] == 0 and live['switch']['restarted'] is True, live
    assert live['vhost']['port'] == apache[0] and live['vhost']['host'] == 'shop.test'
    assert live['vhost']['opcache_reset'] is True
    assert 'DocumentRoot "%s"' % os.path.join(site, 'releases', 'C', 'public') in pointed(apache)


def test_without_a_site_serving_the_root_current_alone_moves(site, apache, apaches, capsys, tmp_path):
    """A pointer of another root, and one that is a link to this root's, are no site of this root."""
    other = os.path.join(os.path.dirname(apache[1]), 'other-release.conf')
    with open(other, 'w') as f:
        f.write('DocumentRoot "/srv/elsewhere/releases/X/public"\n')
    elsewhere = str(tmp_path / 'elsewhere.conf')
    with open(elsewhere, 'w') as f:
        f.write('DocumentRoot "%s/releases/B/public"\n' % site)
    os.symlink(elsewhere, os.path.join(os.path.dirname(apache[1]), 'linked-release.conf'))
    src = write_tree(tmp_path / 'src-C', {'public/index.html': 'release C'})
    live = run_module(go_live, find_args(site, apache, src, lock=None), capsys)
    assert live['rc'] == 0 and 'vhost' not in live and 'restarted' not in live['switch'], live
    assert os.readlink(os.path.join(site, 'current')) == 'releases/C'


def test_several_sites_serving_the_root_are_refused_changing_nothing(site, apache, apaches, capsys, tmp_path):
    for name in ('shop', 'shop-old'):
        point_site(site, apache, name, 'B')
    src = write_tree(tmp_path / 'src-C', {'public/index.html': 'release C'})
    before = snapshot(site)
    refused = run_module(go_live, find_args(site, apache, src), capsys)
    assert refused['rc'] == 1 and not refused.get('changed') and refused['step'] == 'vhost'
    assert refused['msg'] == ('The Apache sites shop, shop-old all serve releases of %s; set deploy_apache_vhost_name '
                              'to the one to point at the release.' % site)
    assert snapshot(site) == before


def test_a_site_whose_port_nothing_says_is_refused_changing_nothing(site, apache, apaches, capsys, tmp_path):
    point_site(site, apache, 'shop', 'B')
    src = write_tree(tmp_path / 'src-C', {'public/index.html': 'release C'})
    before = snapshot(site)
    refused = run_module(go_live, find_args(site, apache, src), capsys)
    assert refused['rc'] == 1 and not refused.get('changed') and refused['step'] == 'vhost'
    assert refused['msg'].startswith('The Apache site shop serves releases of %s, but neither the record' % site)
    assert snapshot(site) == before


def test_a_site_not_as_its_set_up_left_it_stops_before_the_release_keeping_the_lock(site, apache, capsys, tmp_path):
    """vhost_record: with no record (or one that no longer matches) the module run takes the lock and stops before the
    release, nothing else changed and the lock kept for the set-up; with the record matching, the steps run and the
    lock is given back."""
    from ansible_collections.cutover.web.plugins.modules import vhost_fingerprint
    src = write_tree(tmp_path / 'src-C', {'public/index.html': 'release C'})
    watched = tmp_path / 'cutover-shop.conf'
    watched.write_text('<VirtualHost *:8080>\n</VirtualHost>\n')
    record = dict(path=str(tmp_path / 'records' / 'shop.json'), settings=dict(name='shop', port=8080))
    layout = Layout(site)

    def lockless():
        return dict((k, v) for k, v in snapshot(site).items() if k != '.cutover/deploy.lock')

    before = lockless()

    stopped = run_module(go_live, args(site, apache, src, vhost_record=record), capsys)
    assert stopped['rc'] == 0 and stopped['changed'] is False, stopped
    assert stopped['set_up_first'] is True and stopped['vhost_record']['unchanged'] is False
    assert 'release' not in stopped and 'switch' not in stopped and 'keep_lock' not in stopped
    assert stopped['lock_held'] is True and read_lock(layout)['run_id'] == 'run-1'
    assert lockless() == before and not os.path.exists(apache[1])

    written = run_module(vhost_fingerprint, dict(path=record['path'], settings=record['settings'], state='present',
                                                 files=[str(watched)]), capsys)
    assert written['rc'] == 0 and written['changed'] is True
    live = run_module(go_live, args(site, apache, src, vhost_record=record), capsys)
    assert live['rc'] == 0 and live['changed'] is True and live['set_up_first'] is False, live
    assert live['vhost_record']['unchanged'] is True
    assert os.readlink(os.path.join(site, 'current')) == 'releases/C'
    assert 'DocumentRoot "%s"' % os.path.join(site, 'releases', 'C', 'public') in pointed(apache)
    assert live['lock_held'] is False and read_lock(layout) is None

    # Changed by hand after its set-up: stopped again, the lock taken and kept, nothing else changed.
    watched.write_text('<VirtualHost *:8081>\n</VirtualHost>\n')
    src_d = write_tree(tmp_path / 'src-D', {'public/index.html': 'release D'})
    after = lockless()
    again = run_module(go_live, args(site, apache, src_d, vhost_record=record, release=dict(src=src_d, id='D', sync=False)),
                       capsys)
    assert again['rc'] == 0 and again['set_up_first'] is True and again['lock_held'] is True
    assert lockless() == after and read_lock(layout)['run_id'] == 'run-1'
