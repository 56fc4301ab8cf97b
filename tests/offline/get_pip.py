# Offline stand-in for ansible-test's pip bootstrap script (get-pip.py).
#
# ansible-test builds its sanity virtual environments by running the script it
# caches as ~/.ansible/test/cache/get_pip_<X>_<Y>.py; without a cached copy it
# downloads one from a host this machine cannot reach. `./dev setup` installs
# this file under that name, with pip-<X>.<Y>-py3-none-any.whl (from PyPI)
# beside it, and this script installs pip from that wheel, as the real
# get-pip.py does with the wheel embedded in it.
from __future__ import annotations

import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
version = os.path.basename(__file__)[len('get_pip_'):-len('.py')].replace('_', '.')
wheel = os.path.join(here, 'pip-%s-py3-none-any.whl' % version)
sys.path.insert(0, wheel)
args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
from pip._internal.cli.main import main as pip_main  # noqa: E402  pylint: disable=wrong-import-position

sys.exit(pip_main(['install', '--upgrade', '--force-reinstall', wheel] + args))
