# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vhost_release through AnsibleModule with switch: current and the release pointer in one run.

The Apache of these tests is the ``apache`` fixture (conftest.py); the validate and restart commands are ``true``.
The integration targets run the same module against Debian's Apache.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.cutover.web.plugins.module_utils import _vhost
from ansible_collections.cutover.web.plugins.module_utils._lock import acquire, read_lock
from ansible_collections.cutover.web.plugins.module_utils._releases import Layout
from ansible_collections.cutover.web.plugins.modules import vhost_release
from ansible_collections.cutover.web.tests.unit.helpers import deploy, point_site, record_site, run_module, snapshot


def pointer_text(release):
    return 'DocumentRoot "/x/releases/%s"\nHeader always set X-Cutover-Release "%s"\n' % (release, release)


@pytest.fixture
def site(root, tmp_path, capsys):
    """A root with the releases A (live) and B (ready), each with a public/ directory."""
    deploy(root, tmp_path, capsys, dict((rid, {'public/index.html': 'release ' + rid}) for rid in 'AB'), live=False)
    from ansible_collections.cutover.web.plugins.modules import atomic_symlink
    run_module(atomic_symlink, dict(root=root, release='A'), capsys)
    return root


def args(site, apache, release, **more):
    port, pointer = apache
    return dict(dict(root=site, switch=True, path=pointer, content=pointer_text(release),
                     release_path=os.path.join(site, 'releases', release), webroot='public',
                     validate='true', restart=['true'], port=port, timeout=5), **more)


def test_switch_and_serve_in_one_run(site, apache, capsys):
    current = os.path.join(site, 'current')
    before = snapshot(site)
    planned = run_module(vhost_release, args(site, apache, 'B'), capsys, check_mode=True)
    assert planned['rc'] == 0 and planned['changed'] is True and planned['previous_release'] == 'A'
    assert planned['diff'][0]['after'] == 'releases/B\n'
    assert snapshot(site) == before and not os.path.exists(apache[1])

    served = run_module(vhost_release, args(site, apache, 'B'), capsys)
    assert served['rc'] == 0 and served['changed'] is True and served['restarted'] is True
    assert served['release'] == 'B' and served['previous_release'] == 'A'
    assert served['link'] == current and served['link_text'] == 'releases/B' and served['previous'] == 'releases/A'
    assert os.readlink(current) == 'releases/B'
    with open(apache[1]) as f:
        assert f.read() == pointer_text('B')

    again = run_module(vhost_release, args(site, apache, 'B'), capsys)
    assert again['rc'] == 0 and again['changed'] is False and again['restarted'] is False
    assert again['previous_release'] == 'B'


def test_failure_after_the_switch_says_what_it_switched(site, apache, capsys):
    """The pointer is refused after current moved: the failed task still says so, for the caller to switch back."""
    failed = run_module(vhost_release, args(site, apache, 'B', validate='false'), capsys)
    assert failed['rc'] == 1 and failed['changed'] is True
    assert failed['previous_release'] == 'A' and failed['release'] == 'B'
    assert 'was not put in place' in failed['msg']
    assert os.readlink(os.path.join(site, 'current')) == 'releases/B'
    assert not os.path.exists(apache[1])


def test_a_path_that_is_not_a_release_is_refused_before_anything_changes(site, apache, capsys, tmp_path):
    before = snapshot(site)
    elsewhere = str(tmp_path / 'elsewhere')
    os.makedirs(os.path.join(elsewhere, 'public'))
    refused = run_module(vhost_release, args(site, apache, 'B', release_path=elsewhere), capsys)
    assert refused['rc'] == 1 and not refused.get('changed')
    assert refused['msg'] == ('With switch, release_path must be a release of %s (%s/<id>), but it is %s.'
                              % (site, os.path.join(site, 'releases'), elsewhere))
    assert snapshot(site) == before and not os.path.exists(apache[1])


def test_a_release_without_the_webroot_is_refused_before_the_switch(site, apache, capsys, root):
    os.rename(os.path.join(site, 'releases', 'B', 'public'), os.path.join(site, 'releases', 'B', 'web'))
    before = snapshot(site)
    refused = run_module(vhost_release, args(site, apache, 'B'), capsys)
    assert refused['rc'] == 1 and not refused.get('changed') and 'previous_release' not in refused
    assert refused['msg'].startswith('The release %s has no directory %s to serve'
                                     % (os.path.join(site, 'releases', 'B'), os.path.join(site, 'releases', 'B', 'public')))
    assert snapshot(site) == before and os.readlink(os.path.join(site, 'current')) == 'releases/A'


def rollback_args(site, apache, **more):
    port, pointer = apache
    return dict(dict(root=site, rollback=True, path=pointer, webroot='public', validate='true', restart=['true'],
                     port=port, timeout=5), **more)


def served_release(apache):
    with open(apache[1]) as f:
        return f.read().rsplit('"', 2)[-2]


def test_rollback_and_serve_in_one_run(site, apache, capsys):
    """B went live after A: one run rolls current back to A, marks B bad in the same record and serves A."""
    assert run_module(vhost_release, args(site, apache, 'B', content=None), capsys)['rc'] == 0
    before = snapshot(site)
    planned = run_module(vhost_release, rollback_args(site, apache), capsys, check_mode=True)
    assert planned['rc'] == 0 and planned['changed'] is True and planned['release'] == 'A'
    assert snapshot(site) == before and served_release(apache) == 'B'

    back = run_module(vhost_release, rollback_args(site, apache, lock=dict(owner='ops', give_back=True)), capsys)
    assert back['rc'] == 0 and back['changed'] is True and back['restarted'] is True, back
    assert back['release'] == 'A' and back['previous_release'] == 'B' and back['rolled_back_from'] == 'B'
    assert os.readlink(os.path.join(site, 'current')) == 'releases/A' and served_release(apache) == 'A'
    assert Layout(site).releases()['B'].mark == 'bad'
    assert back['lock_held'] is False and read_lock(Layout(site)) is None

    # Rolled back already: not repeated, Apache left alone.
    again = run_module(vhost_release, rollback_args(site, apache), capsys)
    assert again['rc'] == 0 and again['changed'] is False and again['already_rolled_back'] is True
    assert again['restarted'] is False and os.readlink(os.path.join(site, 'current')) == 'releases/A'


def test_a_rollback_to_a_release_without_the_webroot_is_refused_before_the_switch(site, apache, capsys):
    assert run_module(vhost_release, args(site, apache, 'B', content=None), capsys)['rc'] == 0
    os.rename(os.path.join(site, 'releases', 'A', 'public'), os.path.join(site, 'releases', 'A', 'web'))
    before = snapshot(site)
    refused = run_module(vhost_release, rollback_args(site, apache), capsys)
    assert refused['rc'] == 1 and not refused.get('changed') and 'previous_release' not in refused
    assert refused['msg'].startswith('The release %s has no directory %s to serve'
                                     % (os.path.join(site, 'releases', 'A'), os.path.join(site, 'releases', 'A', 'public')))
    assert snapshot(site) == before and served_release(apache) == 'B'


def test_a_rollback_under_a_lock_another_run_holds_changes_nothing(site, apache, capsys):
    assert run_module(vhost_release, args(site, apache, 'B', content=None), capsys)['rc'] == 0
    acquire(Layout(site), 'someone', 'run-0')
    before = snapshot(site)
    refused = run_module(vhost_release, rollback_args(site, apache, lock=dict(owner='ops')), capsys)
    assert refused['rc'] == 1 and not refused.get('changed') and 'someone' in refused['msg']
    assert snapshot(site) == before and served_release(apache) == 'B'


def test_a_release_to_go_back_to_needs_rollback(site, apache, capsys):
    before = snapshot(site)
    refused = run_module(vhost_release, dict(args(site, apache, 'B'), release='A'), capsys)
    assert refused['rc'] == 1 and 'needs rollback=true' in refused['msg']
    assert snapshot(site) == before and not os.path.exists(apache[1])


FIND = dict(webroot='public', setting='rollback_apache_vhost_name', timeout=5)


def test_a_rollback_finds_the_site_that_serves_the_root_and_serves_the_release_gone_back_to(site, apache, apaches, capsys):
    """No site given: the one whose pointer serves the root is found, served as its record says, with its Apache's
    commands, and pointed at the release gone back to in the run that rolls back."""
    assert run_module(vhost_release, args(site, apache, 'B', content=None), capsys)['rc'] == 0
    record_site(apaches[1], 'shop', serve=dict(port=apache[0], host='localhost', opcache_reset=False))
    before = snapshot(site)
    planned = run_module(vhost_release, dict(root=site, rollback=True, find_vhost=FIND), capsys, check_mode=True)
    assert planned['rc'] == 0 and planned['changed'] is True and planned['vhost']['name'] == 'shop', planned
    assert snapshot(site) == before and served_release(apache) == 'B'

    back = run_module(vhost_release, dict(root=site, rollback=True, find_vhost=FIND), capsys)
    assert back['rc'] == 0 and back['restarted'] is True and back['release'] == 'A', back
    assert os.readlink(os.path.join(site, 'current')) == 'releases/A' and served_release(apache) == 'A'
    assert back['vhost']['port'] == apache[0] and Layout(site).releases()['B'].mark == 'bad'


def test_without_a_site_serving_the_root_current_alone_goes_back(site, apache, apaches, capsys):
    assert run_module(vhost_release, args(site, apache, 'B', content=None), capsys)['rc'] == 0
    os.unlink(apache[1])
    back = run_module(vhost_release, dict(root=site, rollback=True, find_vhost=FIND), capsys)
    assert back['rc'] == 0 and back['changed'] is True and back['release'] == 'A' and 'vhost' not in back, back
    assert os.readlink(os.path.join(site, 'current')) == 'releases/A' and not os.path.exists(apache[1])
    assert Layout(site).releases()['B'].mark == 'bad'


def test_several_sites_serving_the_root_are_refused_before_the_rollback(site, apache, apaches, capsys):
    assert run_module(vhost_release, args(site, apache, 'B', content=None), capsys)['rc'] == 0
    point_site(site, apache, 'shop-old', 'B')
    before = snapshot(site)
    refused = run_module(vhost_release, dict(root=site, rollback=True, find_vhost=FIND), capsys)
    assert refused['rc'] == 1 and not refused.get('changed')
    assert refused['msg'] == ('The Apache sites shop, shop-old all serve releases of %s; set rollback_apache_vhost_name '
                              'to the one to point at the release.' % site)
    assert snapshot(site) == before and served_release(apache) == 'B'


@pytest.mark.parametrize('given', [dict(find_vhost=FIND), dict(find_vhost=FIND, path='/x-release.conf'), dict()])
def test_find_vhost_needs_a_switch_and_excludes_path(site, apache, apaches, capsys, given):
    before = snapshot(site)
    refused = run_module(vhost_release, dict(root=site, release_path=os.path.join(site, 'releases', 'B'), **given), capsys)
    assert refused['rc'] == 1 and not refused.get('changed')
    assert snapshot(site) == before


def test_a_switch_to_the_site_found_that_fails_after_the_switch_says_what_to_point_back(site, apache, apaches, capsys,
                                                                                        monkeypatch):
    """The pointer is refused after current moved: the failed task says what was switched and the site found, with
    what it was served with, so that the caller switches back and points that site back."""
    assert run_module(vhost_release, args(site, apache, 'A', content=None), capsys)['rc'] == 0
    record_site(apaches[1], 'shop', serve=dict(port=apache[0], host='localhost', opcache_reset=False))
    monkeypatch.setattr(_vhost, 'APACHES', (dict(_vhost.APACHES[0], validate='false'),))
    failed = run_module(vhost_release, dict(root=site, switch=True, release_path=os.path.join(site, 'releases', 'B'),
                                            find_vhost=FIND), capsys)
    assert failed['rc'] == 1 and failed['changed'] is True and failed['previous_release'] == 'A', failed
    assert failed['vhost']['name'] == 'shop' and failed['vhost']['validate'] == 'false'
    assert os.readlink(os.path.join(site, 'current')) == 'releases/B' and served_release(apache) == 'A'


def write_vhost(sites, name, root, port):
    """The vhost file of the site ``name`` as the apache_vhost role writes it, serving ``root``."""
    with open(os.path.join(str(sites), 'cutover-%s.conf' % name), 'w') as f:
        f.write('<VirtualHost *:%d>\n    DocumentRoot "%s/current/public"\n</VirtualHost>\n' % (port, root))


def test_a_site_named_is_looked_up_by_name_and_served_as_its_record_says(site, apache, apaches, capsys):
    """Named, the site is pointed although another site serves the root too, and before its pointer exists; how to serve
    it is the record's (its port), not the caller's."""
    point_site(site, apache, 'shop-old', 'A')
    write_vhost(apaches[0], 'shop', site, 1)
    record_site(apaches[1], 'shop', serve=dict(port=apache[0], host='localhost', opcache_reset=False))
    assert not os.path.exists(apache[1])
    done = run_module(vhost_release, dict(root=site, switch=True, release_path=os.path.join(site, 'releases', 'B'),
                                          find_vhost=dict(FIND, name='shop')), capsys)
    assert done['rc'] == 0 and done['changed'] is True and done['restarted'] is True, done
    assert done['vhost']['name'] == 'shop' and done['vhost']['port'] == apache[0]
    assert os.readlink(os.path.join(site, 'current')) == 'releases/B' and served_release(apache) == 'B'


@pytest.mark.parametrize('name, vhost, why', [
    ('blog', None, 'There is no Apache site blog (rollback_apache_vhost_name) of the apache_vhost role on this host '
                   '(no {sites}/cutover-blog.conf); set it up with that role first. Nothing was changed.'),
    ('shop', '/srv/other', 'The Apache site shop (rollback_apache_vhost_name) does not serve {root}: its vhost '
                           '{sites}/cutover-shop.conf serves /srv/other/current/public; set rollback_apache_vhost_name '
                           'to the site that serves it. Nothing was changed.'),
    ('../shop', None, 'rollback_apache_vhost_name must be the name of a site of the apache_vhost role, such as "shop", '
                      'but it is "../shop"; nothing was changed.'),
])
def test_a_site_named_that_is_missing_serves_another_root_or_is_no_name_is_refused(
        site, apache, apaches, capsys, name, vhost, why):
    point_site(site, apache, 'shop', 'A')
    if vhost:
        write_vhost(apaches[0], 'shop', vhost, apache[0])
    before = snapshot(site)
    refused = run_module(vhost_release, dict(root=site, rollback=True, find_vhost=dict(FIND, name=name)), capsys)
    assert refused['rc'] == 1 and not refused.get('changed'), refused
    assert refused['msg'] == why.format(root=site, sites=apaches[0])
    assert snapshot(site) == before and served_release(apache) == 'A'


def test_a_site_named_whose_pointer_is_no_file_is_refused(site, apache, apaches, capsys):
    write_vhost(apaches[0], 'shop', site, apache[0])
    os.symlink('/etc/passwd', apache[1])
    before = snapshot(site)
    refused = run_module(vhost_release, dict(root=site, rollback=True, find_vhost=dict(FIND, name='shop')), capsys)
    assert refused['rc'] == 1 and refused['msg'] == ('The release pointer %s of the Apache site shop is not a regular '
                                                     'file; nothing was changed.' % apache[1])
    assert snapshot(site) == before and os.readlink(apache[1]) == '/etc/passwd'


def test_a_rollback_to_the_site_named_lifts_a_window_left_on_and_says_so(site, apache, apaches, capsys):
    """As go_live says it: a window a killed run left on is lifted once the release gone back to serves, with a warning."""
    from ansible_collections.cutover.web.plugins.module_utils._maintenance import window
    assert run_module(vhost_release, args(site, apache, 'B', content=None), capsys)['rc'] == 0
    write_vhost(apaches[0], 'shop', site, apache[0])
    window(Layout(site), 'present')
    planned = run_module(vhost_release, dict(root=site, rollback=True, find_vhost=dict(FIND, name='shop')), capsys,
                         check_mode=True)
    assert planned['rc'] == 0 and os.path.exists(Layout(site).maintenance_page), planned
    assert ') would be lifted (check mode) after ' in planned['said'] and 'was lifted' not in planned['said'], planned
    back = run_module(vhost_release, dict(root=site, rollback=True, find_vhost=dict(FIND, name='shop')), capsys)
    assert back['rc'] == 0 and back['window']['was_active'] is True and served_release(apache) == 'A', back
    assert not os.path.exists(Layout(site).maintenance_page)
    assert 'The maintenance window of %s (on since ' % site in back['said'], back


@pytest.mark.parametrize('through_link', [False, True])
def test_a_site_named_whose_vhost_spells_the_root_otherwise_is_served(site, apache, apaches, capsys, tmp_path,
                                                                      through_link):
    """The vhost's root with a trailing slash (its DocumentRoot then has a doubled one), or through a symlink, is the
    same root."""
    os.symlink(site, str(tmp_path / 'via-link'))
    write_vhost(apaches[0], 'shop', str(tmp_path / 'via-link') if through_link else site + '/', apache[0])
    done = run_module(vhost_release, dict(root=site, switch=True, release_path=os.path.join(site, 'releases', 'B'),
                                          find_vhost=dict(FIND, name='shop')), capsys)
    assert done['rc'] == 0 and done['vhost']['name'] == 'shop' and served_release(apache) == 'B', done
