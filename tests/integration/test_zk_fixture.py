"""Acceptance of the test harness (foundation issue): the ZooKeeper quorum fixture is
quick, survives and recovers from member loss, can force a session to expire, and the
process helpers kill, reap and read logs as the later tests rely on."""

import os
import signal
import sys

import pytest
from kazoo.exceptions import ConnectionLoss, NodeExistsError, SessionExpiredError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KazooState

import flinc_testlib as tl

QUORUM_READY_BUDGET_S = 10.0
SERVING = ("leader", "follower")


def write_eventually(client, path, data=b"", timeout=20.0):
    """Create `path`, retrying through connection loss; a retry that finds the node made
    by an earlier, ambiguous attempt counts as success."""
    def attempt():
        try:  # bounded, so that the deadline holds even while kazoo reconnects
            client.create_async(path, data).get(timeout=tl.scaled(5))
        except NodeExistsError:
            pass
        return True
    return tl.wait_for(attempt, timeout, f"a write of {path} to succeed")


def modes(q):
    return [q.mode(i) for i in range(q.n)]


# ---------------------------------------------------------------- (a) ready in time


def test_quorum_ready_within_budget(fresh_zk_quorum, capsys):
    q = fresh_zk_quorum
    budget = QUORUM_READY_BUDGET_S * tl.timeout_scale()
    with capsys.disabled():  # the measurement goes to the meson log, pass or fail
        print(f"\nquorum start-to-ready: {q.ready_s:.2f} s (budget {budget:.1f} s, "
              f"attempts {q.start_attempts})")
    assert q.ready_s < budget, \
        f"expected the quorum ready in < {budget:.1f} s, seen {q.ready_s:.2f} s"
    seen = modes(q)
    assert sorted(seen) == ["follower", "follower", "leader"], \
        f"expected one leader and two followers, seen {seen}"
    assert q.connect_string == ",".join(f"127.0.0.1:{s.client_port}" for s in q.servers)


# ---------------------------------------------------------------- (b) member loss


def test_one_server_killed_leaves_writable_quorum_and_it_rejoins(zk_quorum, zk_root):
    q = zk_quorum
    c = q.client()
    c.ensure_path(zk_root)
    victim = q.leader_index()
    assert victim is not None, f"expected a leader, seen modes {modes(q)}"

    q.kill(victim)
    assert not q.is_running(victim), f"expected zk{victim + 1} dead after SIGKILL"
    write_eventually(c, f"{zk_root}/after-kill")

    q.start_server(victim)  # waits until it serves
    mode = q.mode(victim)
    assert mode in SERVING, f"expected zk{victim + 1} to rejoin as leader/follower, seen {mode}"
    write_eventually(c, f"{zk_root}/after-rejoin")
    assert c.exists(f"{zk_root}/after-kill") is not None, "expected the write made with 2/3"


def test_two_servers_stopped_blocks_writes_until_restarted(zk_quorum, zk_root):
    q = zk_quorum
    c = q.client()
    c.ensure_path(zk_root)
    down = [0, 1]
    for i in down:
        q.stop(i)
    assert [q.is_running(i) for i in range(3)] == [False, False, True], \
        f"expected only zk3 running, seen {[q.is_running(i) for i in range(3)]}"

    # The lone server cannot commit anything. (Its write may still be committed later,
    # when the quorum returns with this server's log: an ambiguous write, not checked.)
    with pytest.raises((KazooTimeoutError, ConnectionLoss, SessionExpiredError)):
        c.create_async(f"{zk_root}/no-quorum", b"").get(timeout=2.0 * tl.timeout_scale())

    for i in down:
        q.start_server(i, wait=False)
    q.wait_ready()
    assert all(m in SERVING for m in modes(q)), f"expected all serving, seen {modes(q)}"
    write_eventually(c, f"{zk_root}/restored")


# ---------------------------------------------------------------- (c) forced expiry


def test_forced_expiry_removes_ephemeral(zk_quorum, zk_root):
    q = zk_quorum
    a = q.client(timeout=10.0)
    states = []
    a.add_listener(states.append)
    b = q.client()
    node = f"{zk_root}/owned-by-a"
    a.ensure_path(zk_root)
    a.create(node, b"a", ephemeral=True)
    session_id, passwd = a.client_id
    stat = b.exists(node)
    assert stat is not None and stat.ephemeralOwner == session_id, \
        f"expected B to see A's ephemeral owned by 0x{session_id:x}, seen {stat}"

    tl.expire_session(q.connect_string, session_id, passwd)

    tl.wait_for(lambda: b.exists(node) is None, 10, f"{node} to disappear for client B",)
    tl.wait_for(lambda: KazooState.LOST in states, 10, "client A to see its session LOST")
    # kazoo then opens a new session on its own; it must not be the old one.
    new_id = tl.wait_for(lambda: a.connected and a.client_id[0], 10, "A to reconnect")
    assert new_id != session_id, f"expected a new session for A, seen 0x{new_id:x} again"


def test_expire_session_with_wrong_password_fails_and_leaves_session(zk_quorum, zk_root):
    q = zk_quorum
    a = q.client()
    node = f"{zk_root}/still-owned"
    a.create(node, b"", ephemeral=True, makepath=True)
    session_id, passwd = a.client_id
    wrong = bytes(b ^ 0xFF for b in passwd)
    with pytest.raises(AssertionError, match="still listed by"):
        tl.expire_session(q.connect_string, session_id, wrong, timeout=1.5)
    assert a.client_id[0] == session_id and a.exists(node) is not None, \
        f"expected A's session 0x{session_id:x} and {node} untouched, seen {a.client_id}"


def test_expire_session_of_unknown_session_returns(zk_quorum):
    # A session id that never existed is "gone" at once: no error, no hang.
    tl.expire_session(zk_quorum.connect_string, 0x7fffffff00000001, b"\0" * 16, timeout=10)


# ---------------------------------------------------------------- (d) processes

SLEEPER = [sys.executable if sys.executable else "/usr/bin/python3", "-c",
           "import time; time.sleep(600)"]

# Prints a line, then one more line each time it gets SIGUSR1.
ANNOUNCER = r"""
import signal, sys
n = [1]
def bump(*_):
    n[0] += 1
    print(f"+leader-elected epoch={n[0]}", flush=True)
signal.signal(signal.SIGUSR1, bump)
print("+leader-elected epoch=1", flush=True)
while True:
    signal.pause()
"""


def test_proc_kill9_is_reaped(procs):
    p = procs.start(SLEEPER, name="sleeper")
    os.kill(p.pid, 0)  # exists
    rc = p.kill()
    assert rc == -signal.SIGKILL, f"expected rc {-signal.SIGKILL}, seen {rc}"
    assert not p.is_running()
    with pytest.raises(ChildProcessError):
        os.waitpid(p.pid, os.WNOHANG)  # no zombie left: it was reaped


def test_proc_stop_and_sigstop(procs):
    p = procs.start(SLEEPER, name="sleeper")

    def state():
        with open(f"/proc/{p.pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]

    p.stop_signal()
    tl.wait_for(lambda: state() == "T", 5, "the process to be stopped (state T)")
    p.cont()
    tl.wait_for(lambda: state() in ("S", "R"), 5, "the process to run again")
    rc = p.stop(timeout=10)
    assert rc == -signal.SIGTERM, f"expected rc {-signal.SIGTERM} after SIGTERM, seen {rc}"


def test_group_close_kills_leftovers(tmp_dir):
    group = tl.ProcessGroup(tmp_dir)
    try:
        running = group.start(SLEEPER, name="left-running")
        stopped = group.start(SLEEPER, name="left-stopped")
        stopped.stop_signal()
    finally:
        group.close()
    for p in (running, stopped):
        assert p.returncode == -signal.SIGKILL, \
            f"expected {p.name} killed by SIGKILL, seen rc {p.returncode}"
        with pytest.raises(ChildProcessError):
            os.waitpid(p.pid, os.WNOHANG)


def test_wait_log_with_start_offset(procs):
    p = procs.start([sys.executable, "-c", ANNOUNCER], name="announcer")
    rx = r"^\+leader-elected epoch=(\d+)$"
    first = p.wait_log(rx, timeout=10)
    assert first.group(1) == "1", f"expected epoch 1, seen {first.group(0)!r}"

    offset = p.log_offset()
    p.send_signal(signal.SIGUSR1)
    second = p.wait_log(rx, timeout=10, start_offset=offset)
    assert second.group(1) == "2", f"expected a NEW line with epoch 2, seen {second.group(0)!r}"
    again = p.wait_log(rx, timeout=1)
    assert again.group(1) == "1", "without start_offset the first line matches"


def test_wait_log_fails_fast_when_process_exits(procs):
    p = procs.start([sys.executable, "-c", "print('bye')"], name="quitter")
    with pytest.raises(AssertionError, match=r"quitter exited \(rc=0\) without logging"):
        p.wait_log(r"never printed", timeout=30)
