"""The harness's small helpers (no ZooKeeper here): wait_for, ports, conf dirs, binary
lookup, and the failure report that prints the logs a failed test used."""

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import flinc_testlib as tl


def test_wait_for_returns_the_truthy_value():
    seen = []

    def pred():
        seen.append(1)
        return len(seen) if len(seen) >= 3 else None
    assert tl.wait_for(pred, 5, "three polls", interval=0.001) == 3


def test_wait_for_timeout_names_what_and_last_exception():
    def pred():
        raise ValueError("still 41")
    with pytest.raises(AssertionError) as info:
        tl.wait_for(pred, 0.2, "the answer")
    msg = str(info.value)
    assert msg.startswith("timed out after ") and "waiting for the answer" in msg, msg
    assert "last seen: 'ValueError: still 41'" in msg, msg


def test_timeout_scale_from_env(monkeypatch):
    monkeypatch.setenv("FLINC_TIMEOUT_SCALE", "2.5")
    assert tl.timeout_scale() == 2.5
    assert tl.deadline(4).budget_s == 10.0
    monkeypatch.setenv("FLINC_TIMEOUT_SCALE", "fast")
    with pytest.raises(ValueError, match="FLINC_TIMEOUT_SCALE"):
        tl.timeout_scale()
    monkeypatch.delenv("FLINC_TIMEOUT_SCALE")
    assert tl.timeout_scale() == 1.0


def test_free_ports_are_distinct_and_bindable():
    ports = tl.free_ports(9)
    assert len(set(ports)) == 9, f"expected 9 distinct ports, seen {ports}"
    with socket.socket() as s:
        s.bind(("127.0.0.1", tl.free_port()))


def test_make_conf_dir(tmp_dir):
    conf = tl.make_conf_dir(tmp_dir / "conf", {
        "high-availability": "zookeeper",
        "high-availability.zookeeper.quorum": "127.0.0.1:1,127.0.0.1:2",
        "high-availability.storageDir": "file:///tmp/x y",
        "state.backend.incremental": True,
        "taskmanager.numberOfTaskSlots": 4,
        "env.log.dir": "",
    }, masters=["127.0.0.1:8081", "127.0.0.1:8082"], workers=["127.0.0.1"])
    assert conf == tmp_dir / "conf"
    assert (conf / "flinc-conf.yaml").read_text() == textwrap.dedent("""\
        high-availability: zookeeper
        high-availability.zookeeper.quorum: 127.0.0.1:1,127.0.0.1:2
        high-availability.storageDir: file:///tmp/x y
        state.backend.incremental: true
        taskmanager.numberOfTaskSlots: 4
        env.log.dir: ""
        """)
    assert (conf / "masters").read_text() == "127.0.0.1:8081\n127.0.0.1:8082\n"
    assert (conf / "workers").read_text() == "127.0.0.1\n"


def test_binary_lookup(tmp_dir, monkeypatch):
    monkeypatch.setenv("FLINC_BUILD_DIR", str(tmp_dir))
    assert tl.build_dir() == tmp_dir
    exe = tmp_dir / "coordinator" / "flinc-coordinator"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    assert tl.binary("flinc-coordinator") == exe
    with pytest.raises(FileNotFoundError, match="binary 'flinc-worker' not found"):
        tl.binary("flinc-worker")


def test_failed_test_report_shows_log_tails(tmp_dir):
    """Runs pytest on a failing test that used `procs`: its report must carry the tail
    of that process's log."""
    suite = tmp_dir / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text("from flinc_fixtures import *  # noqa: F401,F403\n")
    (suite / "test_fails.py").write_text(textwrap.dedent("""\
        import sys
        def test_fails(procs):
            p = procs.start([sys.executable, "-c", "print('marker-from-child-log')"],
                            name="child")
            p.wait_exit(10)
            assert 1 == 2, "expected 1, seen 2"
        """))
    env = dict(os.environ)
    lib = str(Path(tl.__file__).parent)
    env["PYTHONPATH"] = lib + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(suite)],
        cwd=tmp_dir, env=env, capture_output=True, text=True, timeout=tl.scaled(120))
    assert r.returncode == 1, f"expected pytest rc 1, seen {r.returncode}:\n{r.stdout}{r.stderr}"
    assert "log tail: child" in r.stdout, f"expected a log tail section, seen:\n{r.stdout}"
    assert "marker-from-child-log" in r.stdout, f"expected the child's log, seen:\n{r.stdout}"
