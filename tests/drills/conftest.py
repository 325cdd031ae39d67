"""Fixtures for the drills (kill -9, SIGSTOP, ZooKeeper member loss): the same ones as
the integration suite, from tests/lib/flinc_fixtures.py; see that file for the list.
"""

import sys
from pathlib import Path

_LIB = str(Path(__file__).resolve().parents[1] / "lib")
if _LIB not in sys.path:
    sys.path.insert(0, _LIB)

from flinc_fixtures import *  # noqa: E402,F401,F403 - fixtures and hooks
