"""pytest fixtures and hooks shared by tests/integration and tests/drills.

Each suite's conftest.py does `from flinc_fixtures import *`. The plumbing lives in
flinc_testlib (no pytest there); this file only ties it to pytest's lifetimes and
prints the logs a failed test used.

Fixtures:
  tmp_dir          per test: a private temp dir (kept when FLINC_KEEP_TMP is set)
  zk_quorum        a 3-server ZooKeeper quorum shared by the tests of one module; after
                   each test, the clients it made with client() are closed, servers it
                   stopped or paused are restarted/resumed, and the quorum is checked
                   writable (a failure there is an error of that test)
  zk_quorum_module the same quorum, module-scoped, for module-scoped fixtures
  fresh_zk_quorum  per test: a 3-server quorum of its own, inside tmp_dir
  zk_root          per test: a unique ZooKeeper path, e.g. for
                   high-availability.zookeeper.path.root on the shared quorum
  procs            per test: a ProcessGroup logging to tmp_dir/logs; killed at teardown
"""

import re

import pytest

import flinc_testlib as tl

__all__ = [  # what `from flinc_fixtures import *` hands to a conftest
    "pytest_configure", "pytest_runtest_makereport",
    "tmp_dir", "zk_quorum", "zk_quorum_module", "fresh_zk_quorum", "zk_root", "procs",
]

LOG_TAIL_LINES = 80
_log_sources_key = pytest.StashKey[list]()


def _add_log_source(request, source) -> None:
    """Remember an object with log_files() -> [(label, path)] for the failure report."""
    request.node.stash.setdefault(_log_sources_key, []).append(source)


def pytest_configure(config):
    # meson's timeout sends SIGTERM: kill our servers (own sessions) before we go, and
    # show their log tails on the real stderr (pytest holds fd 2 while a test runs).
    capman = config.pluginmanager.getplugin("capturemanager")

    def release_output():
        if capman is not None:
            capman.suspend_global_capture(in_=False)

    tl.install_signal_cleanup(before_report=release_output)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed or rep.when not in ("setup", "call"):
        return
    for source in item.stash.get(_log_sources_key, []):
        try:
            files = source.log_files()
        except Exception as e:  # noqa: BLE001 - a report must not fail
            rep.sections.append(("flinc log tail", f"cannot list logs of {source!r}: {e}"))
            continue
        for label, path in files:
            tail = tl.tail_file(path, LOG_TAIL_LINES) or "<empty or missing>"
            rep.sections.append(
                (f"log tail: {label}", f"{path} (last {LOG_TAIL_LINES} lines)\n{tail}"))


@pytest.fixture
def tmp_dir(request):
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:48]
    path = tl.make_tmp_dir(prefix=f"flinc-{name}-")
    try:
        yield path
    finally:
        if tl.keep_tmp():
            print(f"FLINC_KEEP_TMP: kept {path}")
        else:
            tl.remove_tmp_dir(path)


@pytest.fixture(scope="module")
def zk_quorum_module():
    """The module's shared quorum, for module-scoped fixtures (a cluster started once
    per module). Tests use zk_quorum, which also repairs it after each test."""
    q = tl.ZkQuorum(n=3)
    try:
        q.start()
        yield q
    finally:
        q.close()


@pytest.fixture
def zk_quorum(request, zk_quorum_module):
    q = zk_quorum_module
    _add_log_source(request, q)
    mark = q.client_mark()
    yield q
    # Put back what the test took away, so the next test of the module gets three
    # serving servers and none of this test's clients.
    q.close_clients(since=mark)
    if not tl.interrupted():
        q.heal()


@pytest.fixture
def fresh_zk_quorum(request, tmp_dir):
    q = tl.ZkQuorum(n=3, base_dir=tmp_dir)
    _add_log_source(request, q)
    try:
        q.start()
        yield q
    finally:
        q.close()


@pytest.fixture
def zk_root(request):
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", request.node.name)[:40]
    return f"/flinc-test-{name}-{tl.unique_suffix()}"


@pytest.fixture
def procs(request, tmp_dir):
    group = tl.ProcessGroup(tmp_dir)
    _add_log_source(request, group)
    try:
        yield group
    finally:
        group.close()
