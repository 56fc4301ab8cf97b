# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every role documents exactly the variables its defaults set, with the same values.

A variable a user can set but the argument spec does not know is rejected at run time;
a spec default that differs from defaults/main.yml is documentation that lies.
"""

from __future__ import annotations

import pathlib

import pytest
import yaml

# Kept beside the module_utils tests: ansible-test runs only those (and modules') with this conftest.
ROLES = pathlib.Path(__file__).resolve().parents[4] / 'roles'
ROLE_DIRS = sorted(p for p in ROLES.iterdir() if (p / 'tasks' / 'main.yml').is_file()) if ROLES.is_dir() else []


def _load(path):
    with open(path, encoding='utf-8') as f:
        return yaml.safe_load(f) or {}


@pytest.mark.parametrize('role', ROLE_DIRS, ids=lambda p: p.name)
def test_argument_spec_matches_defaults(role):
    defaults = _load(role / 'defaults' / 'main.yml') if (role / 'defaults' / 'main.yml').is_file() else {}
    spec = _load(role / 'meta' / 'argument_specs.yml')['argument_specs']['main']['options']
    optional = {name: opt['default'] for name, opt in spec.items() if not opt.get('required')}
    required = sorted(name for name, opt in spec.items() if opt.get('required'))

    assert sorted(defaults) == sorted(optional), 'defaults/main.yml and meta/argument_specs.yml list other variables'
    for name, value in defaults.items():
        assert optional[name] == value, '%s: the argument spec says %r, defaults/main.yml %r' % (name, optional[name], value)
    assert not set(required) & set(defaults), 'required variables must not have a default'
    assert all(name.startswith(role.name + '_') for name in spec), 'every variable starts with the role name'


@pytest.mark.parametrize('role', ROLE_DIRS, ids=lambda p: p.name)
def test_every_option_is_described(role):
    spec = _load(role / 'meta' / 'argument_specs.yml')['argument_specs']['main']['options']
    assert [name for name, opt in spec.items() if not opt.get('description')] == []


def test_the_roles_are_found():
    assert [p.name for p in ROLE_DIRS] == ['apache_vhost', 'deploy', 'migrate', 'rollback', 'shared_media']
