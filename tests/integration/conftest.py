"""Fixtures for the integration suite: real ZooKeeper quorums and real processes.

They live in tests/lib/flinc_fixtures.py (shared with tests/drills); see that file for
the list. meson puts tests/lib on PYTHONPATH; running pytest by hand works too.
"""

import sys
from pathlib import Path

_LIB = str(Path(__file__).resolve().parents[1] / "lib")
if _LIB not in sys.path:
    sys.path.insert(0, _LIB)

from flinc_fixtures import *  # noqa: E402,F401,F403 - fixtures and hooks
