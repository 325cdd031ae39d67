"""flinc-worker against real processes: arguments and config, start-up lines, waiting for
a leader without a busy loop, and the worker side of common/proto.h.

The protocol tests drive the worker with `Peer`, a small Python stand-in for the
coordinator (frames: u32 big-endian length + msgpack map, as common/rpc.h). It stands in
only until flinc-coordinator can play that part; tests that use it are marked
`uses_peer` in their docstring. With high-availability NONE the worker connects to
jobmanager.rpc.address:jobmanager.rpc.port (the peer); with zookeeper the peer is
published as <root>/<cluster>/leader through kazoo, in the payload format of
ha/payload.h (an envelope {kind, v, crc, body} around {epoch, id, rpc, rest, session}).
"""

import os
import queue
import re
import signal
import socket
import struct
import threading
import time
from pathlib import Path

import msgpack
import pytest

import flinc_testlib as tl

RESOURCE_ID_RE = r"resource_id=([0-9a-f]{32})"
SESSION_RE = r"session=0x([0-9a-f]{16})"
JOB_A = "a" * 31 + "1"
JOB_B = "b" * 31 + "2"


# --------------------------------------------------------------------------- helpers


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


def envelope(kind: str, body: bytes, version: int = 1) -> bytes:
    """common/envelope.h: {kind, v, crc, body}."""
    return msgpack.packb({"kind": kind, "v": version, "crc": crc32c(body), "body": body},
                         use_bin_type=True)


def job_graph(job_id: str, pipeline: list, name: str = "test-job", parallelism: int = 1) -> bytes:
    """What job_graph_encode writes: an envelope of kind flinc.jobgraph around the job
    file's shape (common/jobgraph.h)."""
    body = {"name": name, "jid": job_id, "parallelism": parallelism, "pipeline": pipeline}
    return envelope("flinc.jobgraph", msgpack.packb(body, use_bin_type=True))


def leader_payload(epoch: int, rpc: str, leader_id: str = "peer", session: int = 0) -> bytes:
    """ha/payload.h ha_leader_encode."""
    body = msgpack.packb({"epoch": epoch, "id": leader_id, "rpc": rpc, "rest": "",
                          "session": session}, use_bin_type=True)
    return envelope("flinc.ha.leader", body)


def generator_words(seed: int, words: int, count: int, subtask: int, p: int) -> list:
    """worker/ops.h GENERATOR with line_words 1: record n is w<(seed + n) % words>."""
    return [f"w{(seed + n) % words}" for n in range(subtask, count, p)]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write_conf(tmp_dir: Path, **settings) -> Path:
    base = {"taskmanager.numberOfTaskSlots": 2}
    base.update({k.replace("__", "."): v for k, v in settings.items()})
    return tl.make_conf_dir(tmp_dir / "conf", base)


def none_conf(tmp_dir: Path, port: int, **settings) -> Path:
    return write_conf(tmp_dir, **{"high-availability": "NONE",
                                  "jobmanager.rpc.address": "127.0.0.1",
                                  "jobmanager.rpc.port": port, **settings})


def start_worker(procs, conf: Path, *args, name="worker"):
    return procs.start([tl.binary("flinc-worker"), "--configDir", conf, *args], name=name)


def run_worker(conf, *args, timeout=10.0):
    """Runs flinc-worker to its exit; returns (rc, stdout, stderr)."""
    import subprocess
    argv = [str(tl.binary("flinc-worker"))]
    if conf is not None:
        argv += ["--configDir", str(conf)]
    p = subprocess.run(argv + [str(a) for a in args], capture_output=True, text=True,
                       timeout=tl.scaled(timeout), stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


# --------------------------------------------------------------------------- the peer


class PeerConn:
    """One worker connection accepted by Peer."""

    def __init__(self, peer, sock):
        self.peer = peer
        self.sock = sock
        self.hello = None
        self.messages = []            # every frame after the hello, in order
        self.cond = threading.Condition()
        self.closed = False
        self.next_id = 1
        self.responses = {}
        self.lock = threading.Lock()
        threading.Thread(target=self._run, daemon=True).start()

    # -- frames
    def _read_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def _read_frame(self):
        (n,) = struct.unpack(">I", self._read_exact(4))
        return msgpack.unpackb(self._read_exact(n), raw=False)

    def send_frame(self, m: dict):
        body = msgpack.packb(m, use_bin_type=True)
        with self.lock:
            self.sock.sendall(struct.pack(">I", len(body)) + body)

    def _run(self):
        try:
            self.hello = self._read_frame()
            self.send_frame({"v": 1, "t": "hello", "id": 0, "cluster": self.peer.cluster,
                             "role": "coordinator", "name": "peer"})
            while True:
                m = self._read_frame()
                if m.get("t") == "register" and self.peer.auto_register:
                    self.send_frame({"v": 1, "t": "response", "id": 0, "re": m["id"],
                                     "ok": True, "epoch": self.peer.epoch,
                                     "heartbeat_interval_ms": self.peer.hb_ms,
                                     "heartbeat_timeout_ms": self.peer.hb_ms * 10})
                with self.cond:
                    self.messages.append(m)
                    if m.get("t") == "response":
                        self.responses[m["re"]] = m
                    self.cond.notify_all()
        except (EOFError, OSError, ValueError):
            pass
        finally:
            with self.cond:
                self.closed = True
                self.cond.notify_all()

    # -- requests
    def call(self, type_: str, fields: dict, epoch=None, timeout=10.0) -> dict:
        """Sends a request and returns the response map."""
        with self.cond:
            rid = self.next_id
            self.next_id += 1
        m = {"v": 1, "t": type_, "id": rid, **fields}
        m["epoch"] = self.peer.epoch if epoch is None else epoch
        self.send_frame(m)
        return tl.wait_for(lambda: self.responses.get(rid), timeout,
                           f"the worker's response to {type_} #{rid}")

    def send(self, type_: str, fields: dict, epoch=None):
        m = {"v": 1, "t": type_, "id": 0, **fields}
        m["epoch"] = self.peer.epoch if epoch is None else epoch
        self.send_frame(m)

    def of_type(self, t: str) -> list:
        with self.cond:
            return [m for m in self.messages if m.get("t") == t]

    def wait_message(self, pred, what: str, timeout=10.0) -> dict:
        def probe():
            with self.cond:
                for m in self.messages:
                    if pred(m):
                        return m
            return None
        return tl.wait_for(probe, timeout, what)

    def task_states(self, job: str, vertex: int, subtask: int) -> list:
        return [m["state"] for m in self.of_type("task_state")
                if m["job"] == job and m["vertex"] == vertex and m["subtask"] == subtask]

    def wait_task_state(self, job, vertex, subtask, state, timeout=10.0):
        return self.wait_message(
            lambda m: m.get("t") == "task_state" and m["job"] == job and m["vertex"] == vertex
            and m["subtask"] == subtask and m["state"] == state,
            f"task_state {state} of job {job} vertex {vertex} subtask {subtask}", timeout)

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class Peer:
    """A stand-in coordinator: listens on a free loopback port, answers register with its
    epoch, and hands each accepted connection to the test as a PeerConn."""

    def __init__(self, cluster="default", epoch=1, hb_ms=200, auto_register=True):
        self.cluster = cluster
        self.epoch = epoch
        self.hb_ms = hb_ms
        self.auto_register = auto_register
        self.conns = queue.Queue()
        self.all = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.rpc = f"127.0.0.1:{self.port}"
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._stop:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            c = PeerConn(self, s)
            self.all.append(c)
            self.conns.put(c)

    def accept(self, timeout=10.0) -> PeerConn:
        try:
            return self.conns.get(timeout=tl.scaled(timeout))
        except queue.Empty:
            raise AssertionError(f"expected the worker to connect to {self.rpc} within "
                                 f"{tl.scaled(timeout):.0f} s") from None

    def registered(self, timeout=10.0) -> PeerConn:
        """The next connection that registers; returns it once registered."""
        c = self.accept(timeout)
        c.wait_message(lambda m: m.get("t") == "register", "the worker's register", timeout)
        return c

    def close(self):
        self._stop = True
        self.sock.close()
        for c in self.all:
            c.close()


@pytest.fixture
def peer():
    p = Peer()
    try:
        yield p
    finally:
        p.close()


def deploy(conn, job, attempt, graph, tasks, epoch=None):
    return conn.call("deploy", {"job": job, "attempt": attempt, "graph": graph,
                                "tasks": [{"vertex": v, "subtask": s, "slot": sl}
                                          for v, s, sl in tasks]}, epoch=epoch)


def assert_ok(resp, what):
    assert resp["ok"] is True, f"expected {what} to succeed, seen error {resp.get('error')!r}"


def assert_refused(resp, fragment, what):
    assert resp["ok"] is False, f"expected {what} to be refused, seen ok"
    assert fragment in resp.get("error", ""), \
        f"expected the error of {what} to contain {fragment!r}, seen {resp.get('error')!r}"


# --------------------------------------------------------------------------- arguments


def test_bad_arguments_exit_2_with_usage(tmp_dir):
    conf = none_conf(tmp_dir, 1)
    cases = [
        ([], "--configDir is required"),
        (["--configDir", conf, "--bogus"], "unknown argument '--bogus'"),
        (["--configDir"], "--configDir needs a value"),
        (["--configDir", conf, "-D", "no-equals"], "-D expects key=value"),
        (["--configDir", ""], "needs a non-empty value"),
    ]
    for args, fragment in cases:
        rc, out, err = run_worker(None, *args)
        assert rc == 2, f"args {args}: expected exit 2, seen {rc}; stderr:\n{err}"
        assert "usage: flinc-worker" in err, f"args {args}: expected usage on stderr:\n{err}"
        assert fragment in err, f"args {args}: expected {fragment!r} on stderr:\n{err}"


def test_help_exits_0_with_usage_and_keys():
    rc, out, err = run_worker(None, "--help")
    assert rc == 0, f"expected exit 0, seen {rc}: {err}"
    assert "usage: flinc-worker" in out, f"expected usage on stdout, seen:\n{out[:500]}"
    assert "taskmanager.numberOfTaskSlots" in out, "expected the config keys in --help"


@pytest.mark.parametrize("settings,fragment", [
    ({"taskmanager.numberOfTaskSlots": "abc"}, "taskmanager.numberOfTaskSlots"),
    ({"taskmanager.numberOfTaskSlts": 2}, "taskmanager.numberOfTaskSlts"),
    ({"high-availability": "zookeeper"}, "high-availability.zookeeper.quorum"),
])
def test_bad_config_exits_1_naming_the_key(tmp_dir, settings, fragment):
    conf = tl.make_conf_dir(tmp_dir / "conf", settings)
    rc, out, err = run_worker(conf)
    assert rc == 1, f"expected exit 1 for {settings}, seen {rc}; stderr:\n{err}"
    assert "bad configuration" in err and fragment in err, \
        f"expected a message naming {fragment!r}, seen:\n{err}"


def test_missing_config_exits_1(tmp_dir):
    rc, out, err = run_worker(tmp_dir / "nowhere")
    assert rc == 1, f"expected exit 1, seen {rc}; stderr:\n{err}"
    assert "flinc-conf.yaml" in err, f"expected the file named, seen:\n{err}"


def test_bad_override_exits_1(tmp_dir):
    conf = none_conf(tmp_dir, 1)
    rc, out, err = run_worker(conf, "-D", "taskmanager.numberOfTaskSlots=0")
    assert rc == 1, f"expected exit 1, seen {rc}; stderr:\n{err}"
    assert "taskmanager.numberOfTaskSlots" in err, f"expected the key named:\n{err}"


# --------------------------------------------------------------------------- start-up


def test_none_mode_waits_for_coordinator_with_backoff(procs, tmp_dir):
    """Nothing listens at jobmanager.rpc.port: the worker retries with a growing back-off,
    uses next to no CPU, logs to --log-file, and stops cleanly on SIGTERM."""
    port = tl.free_port()
    conf = none_conf(tmp_dir, port, **{"jobmanager.web.port": 8081})
    log = tmp_dir / "worker.log"
    w = start_worker(procs, conf, "--log-file", log)
    text = lambda: log.read_text() if log.exists() else ""  # noqa: E731
    m = tl.wait_for(lambda: re.search(RESOURCE_ID_RE, text()), 10, "resource_id= in the log")
    assert m, "expected resource_id="
    cpu0 = cpu_seconds(w.pid)
    tl.wait_for(lambda: "in 1600 ms" in text(), 15, "the retry back-off to reach 1600 ms")
    cpu1 = cpu_seconds(w.pid)
    retries = text().count("retrying the leader")
    assert 4 <= retries <= 8, f"expected a back-off (4..8 retries by 1600 ms), seen {retries}"
    assert cpu1 - cpu0 < 0.5, f"expected an idle wait, seen {cpu1 - cpu0:.2f} s of CPU"
    warnings = [ln for ln in text().splitlines() if "jobmanager.web.port" in ln]
    assert len(warnings) == 1, f"expected the old-key warning logged once, seen {warnings}"
    assert w.log_text() == "", f"expected nothing on stdout/stderr with --log-file:\n{w.log_text()}"
    assert w.stop() == 0, f"expected exit 0 on SIGTERM; log:\n{text()[-2000:]}"
    assert "-worker-stopped" in text()


def test_zk_mode_prints_session_and_waits_for_leader(procs, tmp_dir, zk_quorum, zk_root):
    """With ZooKeeper and no leader published: session and resource id are logged, the
    worker says it waits for a leader and does so without a busy loop."""
    conf = write_conf(tmp_dir, **{"high-availability": "zookeeper",
                                  "high-availability.zookeeper.quorum": zk_quorum.connect_string,
                                  "high-availability.zookeeper.path.root": zk_root,
                                  "high-availability.storageDir": f"file://{tmp_dir}/ha"})
    w = start_worker(procs, conf)
    w.wait_log(RESOURCE_ID_RE, 10)
    w.wait_log(SESSION_RE, 30)
    w.wait_log(r"waiting for a leader: ZooKeeper node " + re.escape(zk_root) + "/default/leader", 10)
    cpu0 = cpu_seconds(w.pid)
    time.sleep(tl.scaled(2))  # measures idleness over an interval; not a readiness wait
    cpu1 = cpu_seconds(w.pid)
    assert cpu1 - cpu0 < 0.3, f"expected an idle wait, seen {cpu1 - cpu0:.2f} s of CPU in 2 s"
    assert w.is_running(), f"worker exited early:\n{w.tail()}"
    assert w.stop() == 0, f"expected exit 0 on SIGTERM:\n{w.tail()}"



def test_zk_session_expiry_then_leader(procs, tmp_dir, zk_quorum, zk_root, peer):
    """uses_peer: the worker's ZooKeeper session expires while no leader is published; it
    gets a new session, and a leader published afterwards is still found (the watch was
    set again in the new session)."""
    peer.epoch = 3
    conf = write_conf(tmp_dir, **{"high-availability": "zookeeper",
                                  "high-availability.zookeeper.quorum": zk_quorum.connect_string,
                                  "high-availability.zookeeper.path.root": zk_root,
                                  "high-availability.storageDir": f"file://{tmp_dir}/ha"})
    w = procs.start([tl.binary("flinc-worker"), "--configDir", conf], name="worker",
                    env={"FLINC_TEST_EXPOSE_ZK_PASSWD": "1"})
    m = w.wait_log(SESSION_RE + r" timeout_ms=\d+ passwd=([0-9a-f]{32})", 30)
    sid, pw = int(m.group(1), 16), m.group(2)
    off = w.log_offset()
    tl.expire_session(zk_quorum.connect_string, sid, pw)
    w.wait_log(r"-zk-session-expired session=0x" + m.group(1), 30, start_offset=off)
    m2 = w.wait_log(r"\+zk-session " + SESSION_RE, 30, start_offset=off)
    assert int(m2.group(1), 16) != sid, "expected a new session after the expiry"
    zk = zk_quorum.client()
    zk.ensure_path(f"{zk_root}/default")
    zk.create(f"{zk_root}/default/leader", leader_payload(3, peer.rpc), ephemeral=True)
    peer.registered(timeout=15)
    w.wait_log(rf"\+registered leader={re.escape(peer.rpc)} epoch=3", 10)
    assert w.stop() == 0


# --------------------------------------------------------------------------- protocol


def test_register_deploy_generator_to_file(procs, tmp_dir, peer):
    """uses_peer: register with the slot count, heartbeats, a generator -> file job with
    parallelism 2 in two slots, task states DEPLOYING -> RUNNING -> FINISHED, output."""
    conf = none_conf(tmp_dir, peer.port)
    w = start_worker(procs, conf)
    rid = w.wait_log(RESOURCE_ID_RE, 10).group(1)
    conn = peer.registered()
    assert conn.hello["role"] == "worker" and conn.hello["name"] == rid, \
        f"expected hello role worker name {rid}, seen {conn.hello}"
    reg = conn.of_type("register")[0]
    assert reg["resource_id"] == rid and reg["slots"] == 2 and reg["pid"] == w.pid, \
        f"expected register of {rid} with 2 slots and pid {w.pid}, seen {reg}"
    w.wait_log(rf"\+registered leader=127\.0\.0\.1:{peer.port} epoch=1", 10)
    conn.wait_message(lambda m: m.get("t") == "heartbeat" and m["tasks"] == []
                      and m["resource_id"] == rid, "a heartbeat with an empty slot report")

    out = tmp_dir / "out"
    graph = job_graph(JOB_A, [{"generator": {"seed": 1, "words": 10, "count": 1000}},
                              {"sink": {"type": "file", "path": f"file://{out}"}}],
                      parallelism=2)
    assert_ok(deploy(conn, JOB_A, 1, graph, [(0, 0, 0), (0, 1, 1)]), "the deployment")
    for s in (0, 1):
        conn.wait_task_state(JOB_A, 0, s, "FINISHED")
        assert conn.task_states(JOB_A, 0, s) == ["DEPLOYING", "RUNNING", "FINISHED"], \
            f"subtask {s}: expected DEPLOYING, RUNNING, FINISHED, seen {conn.task_states(JOB_A, 0, s)}"
        fin = [m for m in conn.of_type("task_state") if m["subtask"] == s][-1]
        assert fin["records_in"] == 500 and fin["records_out"] == 500 and fin["attempt"] == 1, \
            f"expected 500 records in and out, seen {fin}"
        lines = (out / f"part-{s}-1-0").read_text().splitlines()
        expect = generator_words(1, 10, 1000, s, 2)
        assert lines == expect, f"subtask {s}: expected {expect[:5]}..., seen {lines[:5]}..."
        w.wait_log(rf"\+task-state job={JOB_A} vertex=0 subtask={s} state=FINISHED", 5)
    hb = conn.wait_message(
        lambda m: m.get("t") == "heartbeat" and len(m["tasks"]) == 2
        and all(t["state"] == "FINISHED" for t in m["tasks"]),
        "a heartbeat listing both finished tasks")
    slots = sorted((t["subtask"], t["slot"]) for t in hb["tasks"])
    assert slots == [(0, 0), (1, 1)], f"expected subtask 0 in slot 0 and 1 in slot 1, seen {slots}"
    assert w.stop() == 0


def test_stale_epoch_rejected(procs, tmp_dir, peer):
    """uses_peer: after registering at epoch 5, a deploy (request) and a free_job (one-way)
    of epoch 4 are rejected and logged; epoch 6 raises the highest seen."""
    peer.epoch = 5
    w = start_worker(procs, none_conf(tmp_dir, peer.port))
    conn = peer.registered()
    w.wait_log(r"\+registered leader=\S+ epoch=5", 10)
    graph = job_graph(JOB_A, [{"generator": {"count": 10}}, {"sink": {"type": "discard"}}])
    resp = deploy(conn, JOB_A, 1, graph, [(0, 0, 0)], epoch=4)
    assert_refused(resp, "stale epoch 4 < 5", "a deploy of epoch 4")
    w.wait_log(r"-rejected-stale-epoch epoch=4 highest=5 type=deploy", 5)
    conn.send("free_job", {"job": JOB_A}, epoch=3)
    w.wait_log(r"-rejected-stale-epoch epoch=3 highest=5 type=free_job", 5)
    resp = conn.call("cancel", {"job": JOB_A, "attempt": 1}, epoch=6)
    assert_ok(resp, "a cancel of epoch 6")
    resp = deploy(conn, JOB_A, 1, graph, [(0, 0, 0)], epoch=5)
    assert_refused(resp, "stale epoch 5 < 6", "a deploy of epoch 5 after epoch 6")
    assert not conn.of_type("task_state"), "expected no task started"
    assert w.stop() == 0


def test_deploy_refusals(procs, tmp_dir, peer):
    """uses_peer: a step the worker cannot run is named, a busy slot is refused, bad fields and a
    damaged graph are errors, and the worker keeps serving."""
    w = start_worker(procs, none_conf(tmp_dir, peer.port))
    conn = peer.registered()
    windowed = job_graph(JOB_B, [{"generator": {"count": 10}}, "tokenize",
                                 {"key_by": {"field": "word"}},
                                 {"window": {"type": "sliding", "size": 100000, "slide": 10}},
                                 {"sink": {"type": "discard"}}])
    assert_refused(deploy(conn, JOB_B, 1, windowed, [(0, 0, 0), (1, 0, 0)]),
                   "more than 1000 windows", "a sliding window of 10000 windows a record")
    w.wait_log(rf"-deploy-refused job={JOB_B} attempt=1 reason=step 'window-3': size / "
               "slide puts a record into more than 1000 windows", 5)

    slow = job_graph(JOB_A, [{"generator": {"rate": 5}}, {"sink": {"type": "discard"}}])
    assert_ok(deploy(conn, JOB_A, 1, slow, [(0, 0, 0)]), "an unbounded job in slot 0")
    conn.wait_task_state(JOB_A, 0, 0, "RUNNING")
    other = job_graph(JOB_B, [{"generator": {"count": 5}}, {"sink": {"type": "discard"}}])
    assert_refused(deploy(conn, JOB_B, 1, other, [(0, 0, 0)]), f"slot 0 is busy with job {JOB_A}",
                   "another job in a busy slot")
    assert_refused(deploy(conn, JOB_B, 1, other, [(0, 0, 7)]), "slot 7 does not exist",
                   "a slot out of range")
    assert_refused(deploy(conn, JOB_B, 1, other, [(3, 0, 1)]), "vertex 3 does not exist",
                   "a vertex out of range")
    damaged = bytearray(other)
    damaged[-3] ^= 0xFF
    assert_refused(deploy(conn, JOB_B, 1, bytes(damaged), [(0, 0, 1)]), "bad job graph",
                   "a damaged graph")
    assert_refused(conn.call("deploy", {"job": "xyz", "attempt": 1, "graph": other,
                                        "tasks": []}), "field job", "a bad job id")
    assert_refused(conn.call("deploy", {"job": JOB_B, "attempt": 1, "graph": other}),
                   "field tasks", "a deploy without tasks")
    assert_refused(conn.call("deploy", {"job": JOB_B, "attempt": 1, "graph": other,
                                        "tasks": [{"vertex": 0, "subtask": 0}]}),
                   "tasks[0].slot", "a task without a slot")
    resp = conn.call("no_such_request", {})
    assert_refused(resp, "unknown message type", "an unknown request")
    # Still serving: the other slot is free.
    assert_ok(deploy(conn, JOB_B, 1, other, [(0, 0, 1)]), "the other job in slot 1")
    conn.wait_task_state(JOB_B, 0, 0, "FINISHED")
    assert w.is_running()
    assert w.stop() == 0


def test_cancel_and_newer_attempt(procs, tmp_dir, peer):
    """uses_peer: cancel stops a running task (CANCELING, CANCELED); a newer attempt of the
    same job supersedes the old one; an older attempt is refused afterwards."""
    w = start_worker(procs, none_conf(tmp_dir, peer.port))
    conn = peer.registered()
    out = tmp_dir / "out"
    graph = job_graph(JOB_A, [{"generator": {"rate": 200}},
                              {"sink": {"type": "file", "path": str(out)}}])
    assert_ok(deploy(conn, JOB_A, 1, graph, [(0, 0, 0)]), "attempt 1")
    conn.wait_task_state(JOB_A, 0, 0, "RUNNING")
    tl.wait_for(lambda: (out / "part-0-1-0").exists() and (out / "part-0-1-0").stat().st_size > 0,
                10, "output of attempt 1")
    assert_ok(deploy(conn, JOB_A, 2, graph, [(0, 0, 0)]), "attempt 2 (supersedes 1)")
    conn.wait_message(lambda m: m.get("t") == "task_state" and m["attempt"] == 1
                      and m["state"] == "CANCELED", "attempt 1 canceled")
    conn.wait_message(lambda m: m.get("t") == "task_state" and m["attempt"] == 2
                      and m["state"] == "RUNNING", "attempt 2 running")
    assert_refused(deploy(conn, JOB_A, 1, graph, [(0, 0, 0)]), "older than attempt 2",
                   "attempt 1 after attempt 2")
    assert_ok(conn.call("cancel", {"job": JOB_A, "attempt": 2}), "the cancel")
    conn.wait_message(lambda m: m.get("t") == "task_state" and m["attempt"] == 2
                      and m["state"] == "CANCELED", "attempt 2 canceled")
    states = [m["state"] for m in conn.of_type("task_state") if m["attempt"] == 2]
    assert states == ["DEPLOYING", "RUNNING", "CANCELING", "CANCELED"], \
        f"expected DEPLOYING, RUNNING, CANCELING, CANCELED, seen {states}"
    assert_refused(deploy(conn, JOB_A, 2, graph, [(0, 0, 0)]), "was canceled",
                   "a canceled attempt again")
    conn.send("free_job", {"job": JOB_A})
    w.wait_log(rf"\+free-job job={JOB_A} freed=2", 5)
    assert w.stop() == 0


def test_print_sink_prefixes_subtasks(procs, tmp_dir, peer):
    """uses_peer: the print sink writes `<subtask + 1>> record` lines on stdout."""
    w = start_worker(procs, none_conf(tmp_dir, peer.port))
    conn = peer.registered()
    graph = job_graph(JOB_A, [{"generator": {"seed": 0, "words": 100, "count": 6}},
                              {"sink": {"type": "print"}}], parallelism=2)
    assert_ok(deploy(conn, JOB_A, 1, graph, [(0, 0, 0), (0, 1, 1)]), "a print job")
    for s in (0, 1):
        conn.wait_task_state(JOB_A, 0, s, "FINISHED")
    lines = [ln for ln in w.log_text().splitlines() if re.match(r"^\d> w\d+$", ln)]
    expect = sorted([f"1> w{n}" for n in (0, 2, 4)] + [f"2> w{n}" for n in (1, 3, 5)])
    assert sorted(lines) == expect, f"expected {expect}, seen {sorted(lines)}"
    assert w.stop() == 0


def test_leader_connection_loss_keeps_tasks(procs, tmp_dir, peer):
    """uses_peer: when the leader closes the connection the worker notices at once,
    reconnects and re-registers, and its running task keeps running through it."""
    w = start_worker(procs, none_conf(tmp_dir, peer.port))
    conn = peer.registered()
    graph = job_graph(JOB_A, [{"generator": {"rate": 100}}, {"sink": {"type": "discard"}}])
    assert_ok(deploy(conn, JOB_A, 1, graph, [(0, 0, 1)]), "an unbounded job")
    conn.wait_task_state(JOB_A, 0, 0, "RUNNING")
    off = w.log_offset()
    conn.close()
    w.wait_log(r"-leader-connection-lost leader=\S+ reason=closed-by-peer", 5, start_offset=off)
    conn2 = peer.registered(timeout=10)
    hb = conn2.wait_message(lambda m: m.get("t") == "heartbeat" and m["tasks"],
                            "a heartbeat with the running task after re-registering")
    t = hb["tasks"][0]
    assert (t["job"], t["state"], t["slot"]) == (JOB_A, "RUNNING", 1), \
        f"expected job A RUNNING in slot 1, seen {t}"
    assert w.stop() == 0


def test_sigterm_cancels_tasks_and_exits_0(procs, tmp_dir, peer):
    """uses_peer: SIGTERM cancels running tasks, sends their final state, exits 0."""
    w = start_worker(procs, none_conf(tmp_dir, peer.port))
    conn = peer.registered()
    graph = job_graph(JOB_A, [{"generator": {}}, {"sink": {"type": "discard"}}])
    assert_ok(deploy(conn, JOB_A, 1, graph, [(0, 0, 0)]), "an unbounded unlimited job")
    conn.wait_task_state(JOB_A, 0, 0, "RUNNING")
    assert w.stop() == 0, f"expected exit 0:\n{w.tail()}"
    conn.wait_task_state(JOB_A, 0, 0, "CANCELED", timeout=5)
    assert "-worker-stopped" in w.log_text()


def test_garbage_from_leader_does_not_crash(procs, tmp_dir, peer):
    """uses_peer: a malformed frame closes that connection only; the worker reconnects."""
    w = start_worker(procs, none_conf(tmp_dir, peer.port))
    conn = peer.registered()
    with conn.lock:
        conn.sock.sendall(struct.pack(">I", 5) + b"\xc1\xc1\xc1\xc1\xc1")
    w.wait_log(r"-leader-connection-lost leader=\S+ reason=malformed-frame", 5)
    conn2 = peer.registered()
    conn2.send_frame({"v": 1, "t": "deploy", "id": 9, "epoch": 1, "job": 7, "graph": [1, 2]})
    resp = tl.wait_for(lambda: conn2.responses.get(9), 5, "a response to a bad deploy")
    assert resp["ok"] is False and "field job" in resp["error"], f"seen {resp}"
    assert w.is_running()
    assert w.stop() == 0


def test_zk_follows_new_leader(procs, tmp_dir, zk_quorum, zk_root):
    """uses_peer: leader retrieval through ZooKeeper. The worker registers at the leader
    published in <root>/<cluster>/leader, follows a new leader of a higher epoch at once
    (re-registering; its task keeps running), and ignores an older epoch."""
    a, b = Peer(epoch=1), Peer(epoch=2)
    zk = zk_quorum.client()
    try:
        base = f"{zk_root}/c1"
        zk.ensure_path(base)
        zk.create(f"{base}/leader", leader_payload(1, a.rpc), ephemeral=True)
        conf = write_conf(tmp_dir, **{"high-availability": "zookeeper",
                                      "high-availability.zookeeper.quorum": zk_quorum.connect_string,
                                      "high-availability.zookeeper.path.root": zk_root,
                                      "high-availability.cluster-id": "c1",
                                      "high-availability.storageDir": f"file://{tmp_dir}/ha"})
        a.cluster = b.cluster = "c1"
        w = start_worker(procs, conf)
        ca = a.registered(timeout=30)
        w.wait_log(rf"\+registered leader={re.escape(a.rpc)} epoch=1", 10)
        graph = job_graph(JOB_A, [{"generator": {"rate": 50}}, {"sink": {"type": "discard"}}])
        assert_ok(deploy(ca, JOB_A, 1, graph, [(0, 0, 0)]), "a job from leader A")
        ca.wait_task_state(JOB_A, 0, 0, "RUNNING")

        zk.delete(f"{base}/leader")
        zk.create(f"{base}/leader", leader_payload(2, b.rpc), ephemeral=True)
        w.wait_log(r"\+leader-changed epoch=2", 10)
        cb = b.registered(timeout=10)
        w.wait_log(rf"\+registered leader={re.escape(b.rpc)} epoch=2", 10)
        hb = cb.wait_message(lambda m: m.get("t") == "heartbeat" and m["tasks"],
                             "a heartbeat to leader B with the task of leader A")
        assert hb["tasks"][0]["state"] == "RUNNING", f"expected the task running, seen {hb}"
        tl.wait_for(lambda: ca.closed, 5, "the connection to the old leader to close")

        # An older epoch published again is ignored.
        zk.set(f"{base}/leader", leader_payload(1, a.rpc))
        w.wait_log(r"-rejected-stale-epoch epoch=1 highest=2 type=leader", 10)
        assert w.stop() == 0
    finally:
        a.close()
        b.close()


# --------------------------------------------------------------------------- with the coordinator


def test_with_coordinator_generator_to_file(procs, tmp_dir, zk_quorum, zk_root):
    """End to end with the real flinc-coordinator (no peer): the worker finds it through
    ZooKeeper, registers, runs a generator -> file job of parallelism 2 submitted over
    REST, and the job finishes with the generator's records in the part files."""
    import json
    import urllib.request
    rest = tl.free_port()
    conf = write_conf(tmp_dir, **{"high-availability": "zookeeper",
                                  "high-availability.zookeeper.quorum": zk_quorum.connect_string,
                                  "high-availability.zookeeper.path.root": zk_root,
                                  "high-availability.storageDir": f"file://{tmp_dir}/ha",
                                  "jobmanager.rpc.address": "127.0.0.1",
                                  "rest.port": rest,
                                  "heartbeat.interval": "500 ms", "heartbeat.timeout": "5 s"})
    procs.start([tl.binary("flinc-coordinator"), "--configDir", conf], name="coordinator")
    w = start_worker(procs, conf)
    w.wait_log(r"\+registered leader=127\.0\.0\.1:\d+ epoch=\d+", 30)
    out = tmp_dir / "out"
    job = (f"name: worker-e2e\nparallelism: 2\npipeline:\n"
           f"  - generator: {{seed: 3, words: 7, count: 1000}}\n"
           f"  - sink: {{type: file, path: 'file://{out}'}}\n")
    req = urllib.request.Request(f"http://127.0.0.1:{rest}/jobs", data=job.encode(),
                                 method="POST", headers={"Content-Type": "application/yaml"})
    jid = json.load(urllib.request.urlopen(req, timeout=tl.scaled(10)))["jobid"]

    def state():
        with urllib.request.urlopen(f"http://127.0.0.1:{rest}/jobs/{jid}",
                                    timeout=tl.scaled(5)) as r:
            return json.load(r).get("state")
    tl.wait_for(lambda: state() == "FINISHED", 30, f"job {jid} FINISHED")
    for s in (0, 1):
        lines = (out / f"part-{s}-1-0").read_text().splitlines()
        expect = generator_words(3, 7, 1000, s, 2)
        assert lines == expect, f"subtask {s}: expected {expect[:5]}..., seen {lines[:5]}..."
        w.wait_log(rf"\+task-state job={jid} vertex=0 subtask={s} state=FINISHED", 5)
    assert w.stop() == 0
