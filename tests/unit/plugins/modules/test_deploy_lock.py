# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""deploy_lock through AnsibleModule: the lock file and the root it makes, on a real directory."""

from __future__ import annotations

import json
import os
import stat
import time

import pytest

from ansible_collections.cutover.web.plugins.modules import deploy_lock
from ansible_collections.cutover.web.tests.unit.helpers import run_module, snapshot


def lock_file(root):
    return os.path.join(root, '.cutover', 'deploy.lock')


def test_take_check_mode_real_and_again(root, capsys):
    os.makedirs(root)
    args = dict(root=root, owner='deployer ü', run_id='run-1')
    planned = run_module(deploy_lock, args, capsys, check_mode=True)
    assert planned['changed'] is True and planned['holder']['owner'] == 'deployer ü'
    assert planned['diff'] == {'before': 'unlocked\n', 'after': 'deployer ü\n'}
    assert os.listdir(root) == []

    taken = run_module(deploy_lock, args, capsys)
    assert taken['changed'] is True and taken['lock'] == lock_file(root)
    with open(lock_file(root)) as f:
        assert json.load(f)['run_id'] == 'run-1'
    assert run_module(deploy_lock, args, capsys)['changed'] is False

    other = run_module(deploy_lock, dict(args, run_id='run-2'), capsys)
    assert other['rc'] == 1 and other['failed_path'] == lock_file(root)
    assert other['msg'].startswith('The deploy lock %s is held by deployer ü (run run-1' % lock_file(root))

    given_back = run_module(deploy_lock, dict(args, state='absent'), capsys)
    assert given_back['changed'] is True and not os.path.lexists(lock_file(root))
    assert run_module(deploy_lock, dict(args, state='absent'), capsys)['changed'] is False


@pytest.mark.parametrize('mode', ['0750', '750', 0o750])
def test_root_mode_makes_the_root(root, capsys, mode):
    args = dict(root=root, owner='deployer', root_mode=mode)
    planned = run_module(deploy_lock, args, capsys, check_mode=True)
    assert planned['changed'] is True and planned['root_changed'] is True
    assert not os.path.lexists(root)

    made = run_module(deploy_lock, args, capsys)
    assert made['changed'] is True and made['root_changed'] is True
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o750 and os.path.isfile(lock_file(root))

    again = run_module(deploy_lock, args, capsys)
    assert again['changed'] is False and again['root_changed'] is False

    tighter = dict(args, root_mode='0700')
    assert run_module(deploy_lock, tighter, capsys, check_mode=True)['root_changed'] is True
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o750
    assert run_module(deploy_lock, tighter, capsys)['root_changed'] is True
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700


@pytest.mark.parametrize('mode', ['u=rwx', '0o755', '75', '08000', 0o10000, True])
def test_a_root_mode_that_is_not_octal_is_refused_before_anything_changes(root, capsys, mode):
    failed = run_module(deploy_lock, dict(root=root, owner='deployer', root_mode=mode), capsys)
    assert failed['rc'] == 1 and failed['failed_path'] == root
    assert failed['msg'] == ('root_mode is %r for the root %s, but it must be an octal mode such as "0755".'
                             % (mode, root))
    assert not os.path.lexists(root)


def test_root_mode_where_the_root_is_a_file(tmp_path, capsys):
    root = tmp_path / 'file root'
    root.write_text('not a directory\n')
    before = snapshot(tmp_path)
    failed = run_module(deploy_lock, dict(root=str(root), owner='deployer', root_mode='0755'), capsys)
    assert failed['rc'] == 1 and failed['msg'] == 'The root %s is not a directory.' % root
    assert snapshot(tmp_path) == before


def test_ttl_below_one_is_refused_before_the_root_is_made(root, capsys):
    failed = run_module(deploy_lock, dict(root=root, owner='deployer', root_mode='0755', ttl=0), capsys)
    assert failed['rc'] == 1
    assert failed['msg'] == 'ttl is 0 for the lock of %s, but it must be at least 1 second.' % root
    assert not os.path.lexists(root)


def test_clear_staging_removes_what_killed_runs_left_once_the_lock_is_held(root, capsys):
    from ansible_collections.cutover.web.plugins.module_utils._releases import staging_name
    staging = os.path.join(root, '.cutover', 'staging')
    dead_push = 'push-20261204T101010123456Z-77.%d.0.ansible' % int(time.time())
    young_check = 'check-20261204T101010123456Z-78.%d.0.ansible' % int(time.time())
    dead_build = staging_name('r9')
    for name in (dead_push, young_check, dead_build):
        os.makedirs(os.path.join(staging, name, 'public'))
        with open(os.path.join(staging, name, 'public', 'index.html'), 'w') as f:
            f.write('half\n')
    with open(os.path.join(staging, 'notes.txt'), 'w') as f:
        f.write('not mine\n')
    args = dict(root=root, owner='deployer', run_id='run-1', clear_staging=True)

    planned = run_module(deploy_lock, args, capsys, check_mode=True)
    assert planned['changed'] is True
    assert planned['removed_staging'] == sorted([dead_push, dead_build])
    assert planned['skipped_staging'] == {'notes.txt': 'not a directory'}
    assert sorted(os.listdir(staging)) == sorted([dead_push, young_check, dead_build, 'notes.txt'])
    assert not os.path.lexists(lock_file(root))

    taken = run_module(deploy_lock, args, capsys)
    assert taken['changed'] is True and taken['removed_staging'] == sorted([dead_push, dead_build])
    assert sorted(os.listdir(staging)) == sorted([young_check, 'notes.txt'])
    # A warning is a string, or an event holding it (ansible-core 2.19).
    assert ('Left %s in place: it is not a directory, and pruning removes only directories from the staging area.'
            % os.path.join(staging, 'notes.txt')) in str(taken['warnings'])
    assert os.path.isfile(lock_file(root))
    assert 'staging %s\n' % dead_push in taken['diff']['before']

    again = run_module(deploy_lock, args, capsys)
    assert again['changed'] is False and again['removed_staging'] == []


def test_clear_staging_on_a_root_check_mode_did_not_make(root, capsys):
    planned = run_module(deploy_lock, dict(root=root, owner='deployer', root_mode='0755', clear_staging=True),
                         capsys, check_mode=True)
    assert planned['changed'] is True and planned['root_changed'] is True and 'removed_staging' not in planned
    assert not os.path.lexists(root)


def test_a_failed_clear_gives_back_the_lock_it_took(root, capsys, monkeypatch):
    from ansible_collections.cutover.web.plugins.module_utils._releases import CutoverError
    os.makedirs(root)

    def refuse(layout, **kwargs):
        raise CutoverError('Refusing to delete %s: it is not a real directory.' % layout.staging_dir, path=layout.staging_dir)
    monkeypatch.setattr(deploy_lock, 'clear_staging', refuse)
    failed = run_module(deploy_lock, dict(root=root, owner='deployer', run_id='run-1', clear_staging=True), capsys)
    assert failed['rc'] == 1 and failed['msg'].startswith('Refusing to delete')
    assert not os.path.lexists(lock_file(root))


def test_the_lock_tells_whether_the_apache_site_is_as_its_set_up_left_it(root, tmp_path, capsys):
    """vhost_record: the same answer as vhost_fingerprint's check, in the module run that takes the lock; a file the
    record watches changed by hand, or other settings, and the set-up is needed again."""
    from ansible_collections.cutover.web.plugins.modules import vhost_fingerprint
    os.makedirs(root)
    site = tmp_path / 'cutover-shop.conf'
    site.write_text('<VirtualHost *:8080>\n</VirtualHost>\n')
    record = str(tmp_path / 'records' / 'shop.json')
    settings = dict(name='shop', port=8080)
    args = dict(root=root, owner='deploy', run_id='run-1', vhost_record=dict(path=record, settings=settings))

    missing = run_module(deploy_lock, args, capsys, check_mode=True)
    assert missing['rc'] == 0 and missing['vhost_record'] == dict(unchanged=False, remembered={}, fingerprint=None)

    written = run_module(vhost_fingerprint, dict(path=record, settings=settings, state='present', files=[str(site)],
                                                 remember=dict(os_family='Debian')), capsys)
    assert written['rc'] == 0 and written['changed'] is True
    taken = run_module(deploy_lock, args, capsys)
    assert taken['rc'] == 0 and taken['changed'] is True and taken['holder']['run_id'] == 'run-1'
    assert taken['vhost_record']['unchanged'] is True and taken['vhost_record']['remembered'] == dict(os_family='Debian')
    assert taken['vhost_record']['fingerprint'] == written['fingerprint']

    site.write_text('<VirtualHost *:8081>\n</VirtualHost>\n')
    assert run_module(deploy_lock, args, capsys)['vhost_record']['unchanged'] is False
    site.write_text('<VirtualHost *:8080>\n</VirtualHost>\n')
    assert run_module(deploy_lock, args, capsys)['vhost_record']['unchanged'] is True
    other = dict(args, vhost_record=dict(path=record, settings=dict(settings, port=8081)))
    assert run_module(deploy_lock, other, capsys)['vhost_record']['unchanged'] is False
