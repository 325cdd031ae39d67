"""Checkpoint coordinator (the coordinator side of the exactly-once dataflow issue):
real coordinators on a real 3-server ZooKeeper quorum, with *simulated workers*: small
Python peers that speak the coordinator<->worker protocol of common/proto.h (hello,
register, heartbeats, task states, checkpoint acks with "flinc.subtask-state" envelopes
holding statebackend handles, declines). They make the coordinator's side testable on its
own, byte for byte, while the real worker's checkpointing is being written; the real
worker is covered by test_exactly_once.py once it acks.

  1. checkpoints complete periodically; ZooKeeper keeps state.checkpoints.num-retained
     pointers; the chk-<n> dirs and the shared files of retired checkpoints are deleted,
     files a retained checkpoint still names are kept; COMPLETE reaches every worker
  2. a checkpoint that times out is aborted (ABORT to the workers) and cleaned; a decline
     aborts too; REST /checkpoints and /checkpoints/config in Flink's shapes
  3. a worker lost: the job restarts from the latest checkpoint (deploy carries
     restored_checkpoint, per-task restore lists and peers; latest.restored in REST)
  4. the leader killed: the new leader rebuilds the shared-file registry from the retained
     _metadata, restores from the latest, and the next id continues the counter
  5. a corrupt _metadata fails the job with an error naming the file
  6. savepoints: POST /jobs/:id/savepoints -> COMPLETED with a self-contained directory;
     POST /jobs?savepointPath=... restores from it with another parallelism
"""

import math
import os
import re
import socket
import struct
import sys
import threading
import time
from pathlib import Path

import msgpack
import pytest

import flinc_testlib as tl

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))
from failover_cluster import Cluster  # noqa: E402

SESSION_MS = 2000

# ------------------------------------------------------------------ Flink's shapes
# (same conventions as test_control_plane.py: type, tuple of alternatives with None for
# null, dict of required fields, one-element list)

MINMAX = {"min": int, "max": int, "avg": int}
CHECKPOINT_ENTRY = {
    "@class": str, "id": int, "status": str, "is_savepoint": bool,
    "trigger_timestamp": int, "latest_ack_timestamp": int, "state_size": int,
    "checkpointed_size": int, "end_to_end_duration": int, "alignment_buffered": int,
    "processed_data": int, "persisted_data": int, "num_subtasks": int,
    "num_acknowledged_subtasks": int, "checkpoint_type": str, "tasks": dict,
}
CHECKPOINTS_SHAPE = {
    "counts": {"restored": int, "total": int, "in_progress": int, "completed": int,
               "failed": int},
    "summary": {"checkpointed_size": MINMAX, "state_size": MINMAX,
                "end_to_end_duration": MINMAX, "alignment_buffered": MINMAX,
                "processed_data": MINMAX, "persisted_data": MINMAX},
    "latest": {"completed": (dict(CHECKPOINT_ENTRY, external_path=str, discarded=bool), None),
               "savepoint": (dict(CHECKPOINT_ENTRY, external_path=str, discarded=bool), None),
               "failed": (dict(CHECKPOINT_ENTRY, failure_timestamp=int, failure_message=str),
                          None),
               "restored": ({"id": int, "restore_timestamp": int, "is_savepoint": bool,
                             "external_path": str}, None)},
    "history": [CHECKPOINT_ENTRY],
}
CHECKPOINT_CONFIG_SHAPE = {
    "mode": str, "interval": int, "timeout": int, "min_pause": int, "max_concurrent": int,
    "externalization": {"enabled": bool, "delete_on_cancellation": bool},
    "state_backend": str, "checkpoint_storage": str, "unaligned_checkpoints": bool,
    "tolerable_failed_checkpoints": int,
}
SAVEPOINT_TRIGGER_SHAPE = {"request-id": str}


def shape_errors(value, shape, path="$"):
    errs = []
    if isinstance(shape, tuple):
        if value is None and None in shape:
            return []
        best = None
        for s in (s for s in shape if s is not None):
            e = shape_errors(value, s, path)
            if not e:
                return []
            best = best or e
        return best or [f"{path}: expected one of {shape}, seen {value!r}"]
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return [f"{path}: expected an object, seen {type(value).__name__}"]
        for k, s in shape.items():
            if k not in value:
                errs.append(f"{path}: missing field {k!r}")
            else:
                errs += shape_errors(value[k], s, f"{path}.{k}")
        return errs
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [f"{path}: expected an array, seen {type(value).__name__}"]
        for i, v in enumerate(value):
            errs += shape_errors(v, shape[0], f"{path}[{i}]")
        return errs
    ok = isinstance(value, shape) and not (shape is int and isinstance(value, bool))
    return [] if ok else [f"{path}: expected {shape.__name__}, seen {value!r}"]


def assert_shape(value, shape, what):
    errs = shape_errors(value, shape)
    assert not errs, f"{what} does not have Flink's shape:\n  " + "\n  ".join(errs[:20])


# ------------------------------------------------------------------ envelopes

def _crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_CRC_T = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC_T[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def envelope(kind: str, body: dict, v: int = 1) -> bytes:
    b = msgpack.packb(body, use_bin_type=True)
    return msgpack.packb({"kind": kind, "v": v, "crc": crc32c(b), "body": b},
                         use_bin_type=True)


def unwrap(data: bytes, kind: str) -> dict:
    env = msgpack.unpackb(data, raw=False)
    assert env["kind"] == kind, f"expected an envelope of kind {kind}, seen {env['kind']}"
    assert crc32c(env["body"]) == env["crc"]
    return msgpack.unpackb(env["body"], raw=False)


def handle_bytes(backend: str, chk: int, kg, shared) -> bytes:
    """A statebackend handle (statebackend/handle.h); shared = [(uid, is_new)]."""
    return envelope("flinc.sb.handle", {
        "backend": backend, "chk": chk, "maxp": 128, "kg": list(kg),
        "states": [{"name": "count", "kind": "value", "ttl_ms": 0}],
        "shared": [{"uid": uid, "local": f"{i + 7}.sst", "size": 100, "crc": 0, "new": new}
                   for i, (uid, new) in enumerate(shared)],
        "private": {"path": f"chk-{chk}/sb-{backend}.pack", "size": 16, "crc": 0,
                    "files": [{"name": "CURRENT", "off": 0, "size": 16, "crc": 0}]},
    })


def kg_range(maxp, p, i):
    return (-(-i * maxp // p), -(-(i + 1) * maxp // p))


# ------------------------------------------------------------------ simulated worker


class SimWorker:
    """A worker that registers with the leader, runs what it is deployed as RUNNING
    tasks, and answers checkpoint triggers the way proto.h says: each of its subtasks
    acks with a subtask state; keyed subtasks (vertex >= 1) upload one new shared file
    per checkpoint and reuse the previous confirmed one (an incremental RocksDB backend
    in miniature). ack_mode: "ack", "silent" (never acks: timeouts), "decline"."""

    def __init__(self, cluster, chk_dir: Path, slots=2, ack_mode="ack"):
        self.cluster = cluster
        self.chk_dir = chk_dir
        self.slots = slots
        self.ack_mode = ack_mode
        self.rid = os.urandom(16).hex()
        self.backend = {}          # (job, vertex, subtask) -> backend id
        self.confirmed = {}        # (job, vertex, subtask) -> last confirmed shared uid
        self.pending_uid = {}      # (job, vertex, subtask, chk) -> uid uploaded
        self.tasks = {}            # (job, vertex, subtask) -> {attempt, slot, state}
        self.deploys = []          # every deploy map received
        self.messages = []
        self.cond = threading.Condition()
        self.sock = None
        self.stop = False
        self.lock = threading.Lock()
        self.thread = None

    # -- wire
    def _read_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def _read(self):
        (n,) = struct.unpack(">I", self._read_exact(4))
        return msgpack.unpackb(self._read_exact(n), raw=False)

    def _send(self, m):
        body = msgpack.packb({"v": 1, "id": 0, **m}, use_bin_type=True)
        with self.lock:
            self.sock.sendall(struct.pack(">I", len(body)) + body)

    # -- life
    def start(self):
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def close(self):
        self.stop = True
        if self.sock:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()

    def _connect(self):
        leader = self.cluster.wait_leader()
        host, port = leader.ha()["rpc-address"].rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=5)
        s.settimeout(None)
        self.sock = s
        self._send({"t": "hello", "cluster": "default", "role": "worker", "name": self.rid})
        self._read()  # its hello
        self._send({"t": "register", "id": 1, "resource_id": self.rid, "host": "127.0.0.1",
                    "data_port": 40000 + (os.getpid() % 1000), "slots": self.slots,
                    "pid": os.getpid()})

    def _run(self):
        while not self.stop:
            try:
                self._connect()
                hb = threading.Thread(target=self._heartbeats, daemon=True)
                hb.start()
                while not self.stop:
                    self._handle(self._read())
            except Exception:  # noqa: BLE001 - connection lost, no leader yet: again
                pass
            if self.sock:
                self.sock.close()
            # tasks die with the leader connection as a real worker's do not; the
            # coordinator restarts the job anyway after a failover, so drop them
            self.tasks.clear()
            time.sleep(0.05)

    def _heartbeats(self):
        sock = self.sock
        while not self.stop and self.sock is sock:
            try:
                self._send({"t": "heartbeat", "resource_id": self.rid, "tasks": [
                    {"job": j, "attempt": t["attempt"], "vertex": v, "subtask": s,
                     "slot": t["slot"], "state": t["state"], "records_in": 0,
                     "records_out": 0}
                    for (j, v, s), t in list(self.tasks.items())]})
            except OSError:
                return
            time.sleep(0.1)

    def _handle(self, m):
        t = m.get("t")
        with self.cond:
            self.messages.append(m)
            self.cond.notify_all()
        if t == "deploy":
            self.deploys.append(m)
            for (j, v, s) in [k for k in self.tasks if k[0] == m["job"]]:
                del self.tasks[(j, v, s)]
            for task in m["tasks"]:
                key = (m["job"], task["vertex"], task["subtask"])
                self.tasks[key] = {"attempt": m["attempt"], "slot": task["slot"],
                                   "state": "RUNNING"}
                self.backend.setdefault(key, os.urandom(16).hex())
                # a restored backend starts without a confirmed base: full upload
                self.confirmed.pop(key, None)
            self._send({"t": "response", "re": m["id"], "ok": True})
            for task in m["tasks"]:
                self._send({"t": "task_state", "job": m["job"], "attempt": m["attempt"],
                            "vertex": task["vertex"], "subtask": task["subtask"],
                            "state": "RUNNING"})
        elif t == "cancel":
            self._send({"t": "response", "re": m["id"], "ok": True})
            for key in [k for k in self.tasks if k[0] == m["job"]]:
                a = self.tasks.pop(key)["attempt"]
                self._send({"t": "task_state", "job": m["job"], "attempt": a, "vertex": key[1],
                            "subtask": key[2], "state": "CANCELED"})
        elif t == "trigger_checkpoint":
            self._on_trigger(m)
        elif t == "checkpoint_complete":
            for key in list(self.tasks):
                uid = self.pending_uid.pop((*key, m["checkpoint"]), None)
                if uid and key[0] == m["job"]:
                    self.confirmed[key] = uid

    def _on_trigger(self, m):
        # The real source emits barriers downstream; here every simulated worker acks
        # for its own subtasks when any trigger for the job reaches it, and the
        # coordinator only sends triggers to the source workers: so the test puts every
        # subtask on workers that run a source (parallelism = workers).
        job, chk = m["job"], m["checkpoint"]
        for (j, v, s), t in list(self.tasks.items()):
            if j != job or t["attempt"] != m["attempt"]:
                continue
            self.ack(job, t["attempt"], chk, v, s)

    def ack(self, job, attempt, chk, v, s):
        key = (job, v, s)
        if self.ack_mode == "silent":
            return
        if self.ack_mode == "garbage":
            self._send({"t": "ack_checkpoint", "job": job, "attempt": attempt,
                        "checkpoint": chk, "vertex": v, "subtask": s, "state": b"\x93\x01",
                        "state_bytes": 1, "incremental_bytes": 0})
            return
        if self.ack_mode == "decline":
            self._send({"t": "decline_checkpoint", "job": job, "attempt": attempt,
                        "checkpoint": chk, "vertex": v, "subtask": s,
                        "reason": "simulated decline"})
            return
        keyed = []
        if v >= 1:
            backend = self.backend[key]
            uid = os.urandom(16).hex()
            shared = [(uid, True)]
            if key in self.confirmed:
                shared.insert(0, (self.confirmed[key], False))
            jd = self.chk_dir / job
            try:
                (jd / "shared").mkdir(parents=True, exist_ok=True)
                (jd / "shared" / f"{uid}.sst").write_bytes(b"x" * 100)
                (jd / f"chk-{chk}").mkdir(parents=True, exist_ok=True)
                (jd / f"chk-{chk}" / f"sb-{backend}.pack").write_bytes(b"y" * 16)
            except OSError:
                # the leader aborted chk (a decline got there first) and is deleting its
                # dir: a real backend's upload fails the same way; the ack is moot
                return
            self.pending_uid[(job, v, s, chk)] = uid
            keyed = [handle_bytes(backend, chk, kg_range(128, 2, s), shared)]
        # worker/substate.h's format: ops in chain order, keyed handles inside
        ops = [{"op": f"op{v}", "gen": [[2, s, chk * 10 + s]]}]
        if keyed:
            ops.append({"op": f"count{v}", "keyed": keyed[0]})
        if self.ack_mode == "huge":
            ops[0]["blob"] = b"z" * (1100 * 1024)  # over the coordinator's 1 MiB limit
        state = envelope("flinc.subtask-state", {"chk": chk, "vertex": v, "subtask": s,
                                                 "par": 2, "ops": ops})
        self._send({"t": "ack_checkpoint", "job": job, "attempt": attempt, "checkpoint": chk,
                    "vertex": v, "subtask": s, "state": state, "state_bytes": 116,
                    "incremental_bytes": 100 if v >= 1 else 0, "sync_ms": 1, "async_ms": 2,
                    "alignment_ms": 0, "alignment_bytes": 0})

    def of_type(self, t):
        with self.cond:
            return [m for m in self.messages if m.get("t") == t]

    def wait(self, pred, what, timeout=15.0):
        return tl.wait_for(lambda: next((m for m in list(self.messages) if pred(m)), None),
                           timeout, what)


# ------------------------------------------------------------------ helpers

JOB = """\
name: {name}
parallelism: {p}
checkpointing: {{ interval: {interval}, timeout: {timeout} }}
restart-strategy: {{ type: fixed-delay, attempts: 100, delay: 100 ms }}
pipeline:
  - generator: {{ seed: 1, words: 10, rate: 100 }}
  - key_by: {{ field: word }}
  - count: {{}}
  - sink: {{ type: discard }}
"""


def job_text(name="ckpt", p=2, interval="300 ms", timeout="10 s"):
    return JOB.format(name=name, p=p, interval=interval, timeout=timeout)


def make_cluster(zk_quorum, tmp_dir, procs, zk_root, coordinators=1, retained=2, **kw):
    cl = Cluster(zk_quorum, tmp_dir, procs, root=zk_root, coordinators=coordinators,
                 workers=0, session_ms=SESSION_MS,
                 settings={"state.checkpoints.num-retained": retained,
                           "env.log.level": "debug"}, **kw)
    for c in cl.coordinators:
        c.start()
    cl.wait_leader()
    return cl


def sim_workers(cl, tmp_dir, n=2, slots=1, **kw):
    ws = [SimWorker(cl, Path(tmp_dir) / "checkpoints", slots=slots, **kw).start()
          for _ in range(n)]
    cl.wait_workers(n)
    return ws


def get(cl, path):
    return cl.any_rest(path)


def completed_ids(leader, jid, offset=0):
    return [int(x) for x in re.findall(rf"\+checkpoint-completed job={jid} id=(\d+)",
                                       leader.proc.log_text(offset))]


def wait_completed(cl, jid, n, timeout=20.0):
    def probe():
        st = get(cl, f"/jobs/{jid}/checkpoints")
        return st if st["counts"]["completed"] >= n else None
    return tl.wait_for(probe, timeout, f"{n} completed checkpoints of job {jid}")


def zk_checkpoints(zk_quorum, root, jid):
    zk = zk_quorum.client()
    path = f"{root}/default/jobs/{jid}/checkpoints"
    return sorted(int(x) for x in zk.get_children(path)) if zk.exists(path) else []


@pytest.fixture
def closers():
    items = []
    yield items
    for w in items:
        w.close()


# ------------------------------------------------------------------ 1 + 2 (shapes)


def test_periodic_checkpoints_retain_and_retire(zk_quorum, tmp_dir, procs, zk_root, closers):
    cl = make_cluster(zk_quorum, tmp_dir, procs, zk_root, retained=2)
    ws = sim_workers(cl, tmp_dir, n=2, slots=1)
    closers.extend(ws)
    jid = cl.submit(job_text(interval="200 ms"))
    cl.wait_job(jid, "RUNNING")
    st = wait_completed(cl, jid, 5)
    leader = cl.wait_leader()

    # deploys carry the data plane and a fresh start
    for w in ws:
        d = w.deploys[-1]
        assert d["restored_checkpoint"] == 0, d["restored_checkpoint"]
        assert sorted((p["vertex"], p["subtask"]) for p in d["peers"]) == \
            [(v, s) for v in range(2) for s in range(2)], d["peers"]
        assert all(p["host"] == "127.0.0.1" and p["data_port"] > 0 for p in d["peers"])
        assert all(t["restore"] == [] for t in d["tasks"])

    # ZooKeeper keeps num-retained pointers, the newest ones
    ids = completed_ids(leader, jid)
    tl.wait_for(lambda: zk_checkpoints(zk_quorum, zk_root, jid)[-1:] == [completed_ids(leader, jid)[-1]]
                or None, 5, "the newest pointer in ZooKeeper")
    ptrs = zk_checkpoints(zk_quorum, zk_root, jid)
    assert len(ptrs) == 2, f"expected 2 retained pointers, seen {ptrs} (completed {ids})"

    # chk dirs: only the retained ones (and one in flight) remain; the retired ones' files
    # are deleted, the files a retained checkpoint reuses are kept
    jd = Path(tmp_dir) / "checkpoints" / jid

    def dirs_settled():
        ptrs = zk_checkpoints(zk_quorum, zk_root, jid)
        chk = sorted(int(p.name[4:]) for p in jd.glob("chk-*"))
        retired = [i for i in chk if i < ptrs[0]]
        return (ptrs, chk) if not retired else None
    ptrs, chk = tl.wait_for(dirs_settled, 10, "retired chk dirs deleted")
    for i in ptrs:
        meta = jd / f"chk-{i}" / "_metadata"
        if not meta.exists():
            continue  # retired between the listing and now
        body = unwrap(meta.read_bytes(), "flinc.chk.metadata")
        assert body["job"] == jid and body["checkpoint"] == i
        assert sorted((s["vertex"], s["subtask"]) for s in body["states"]) == \
            [(0, 0), (0, 1), (1, 0), (1, 1)]
    # shared files: every file on disk is named by a retained checkpoint or in flight
    # (at most 2 per retained checkpoint + 2 in flight)
    n_shared = len(list((jd / "shared").glob("*.sst")))
    assert n_shared <= 2 * (len(ptrs) + 1) + 2, \
        f"expected the retired checkpoints' shared files deleted, {n_shared} left"

    # COMPLETE reached both workers
    for w in ws:
        assert w.of_type("checkpoint_complete"), "no checkpoint_complete reached a worker"

    # REST shapes
    st = get(cl, f"/jobs/{jid}/checkpoints")
    assert_shape(st, CHECKPOINTS_SHAPE, "/jobs/:jobid/checkpoints")
    assert st["latest"]["completed"]["status"] == "COMPLETED"
    assert st["latest"]["completed"]["num_acknowledged_subtasks"] == 4
    assert st["latest"]["completed"]["external_path"].startswith("file://")
    assert st["counts"]["failed"] == 0 and st["counts"]["restored"] == 0
    assert st["summary"]["checkpointed_size"]["max"] == 200  # two keyed subtasks, 100 each
    # percentiles: nearest rank over the completed checkpoints in the history window
    durs = sorted(h["end_to_end_duration"] for h in st["history"] if h["status"] == "COMPLETED")
    e2e = st["summary"]["end_to_end_duration"]
    assert durs and e2e["p50"] == durs[math.ceil(0.5 * len(durs)) - 1], (e2e, durs)
    assert e2e["p999"] == durs[-1] and e2e["min"] <= e2e["p50"] <= e2e["max"], (e2e, durs)
    cfg = get(cl, f"/jobs/{jid}/checkpoints/config")
    assert_shape(cfg, CHECKPOINT_CONFIG_SHAPE, "/jobs/:jobid/checkpoints/config")
    assert (cfg["mode"], cfg["interval"], cfg["timeout"]) == ("exactly_once", 200, 10000), cfg


def test_timeout_and_decline_abort_and_clean(zk_quorum, tmp_dir, procs, zk_root, closers):
    cl = make_cluster(zk_quorum, tmp_dir, procs, zk_root)
    # one worker acks, the other never does: every checkpoint times out
    ws = [SimWorker(cl, Path(tmp_dir) / "checkpoints", slots=1).start(),
          SimWorker(cl, Path(tmp_dir) / "checkpoints", slots=1, ack_mode="silent").start()]
    closers.extend(ws)
    cl.wait_workers(2)
    leader = cl.wait_leader()
    jid = cl.submit(job_text(interval="100 ms", timeout="400 ms"))
    cl.wait_job(jid, "RUNNING")
    m = leader.proc.wait_log(rf"-checkpoint-aborted job={jid} id=(\d+) reason=timeout", 15)
    chk = int(m.group(1))
    ws[0].wait(lambda x: x.get("t") == "checkpoint_abort" and x["checkpoint"] == chk,
               "checkpoint_abort at the acking worker")
    jd = Path(tmp_dir) / "checkpoints" / jid
    tl.wait_for(lambda: not (jd / f"chk-{chk}").exists() or None, 10,
                f"chk-{chk} of the aborted checkpoint deleted")
    # the new shared file the acking keyed subtask uploaded for it is deleted too
    st = get(cl, f"/jobs/{jid}/checkpoints")
    assert_shape(st, CHECKPOINTS_SHAPE, "/jobs/:jobid/checkpoints")
    assert st["counts"]["completed"] == 0 and st["counts"]["failed"] >= 1, st["counts"]
    assert st["latest"]["failed"]["failure_message"] == "timeout"
    assert zk_checkpoints(zk_quorum, zk_root, jid) == []

    def no_orphans():
        live = set()
        for w in ws:
            for (j, v, s, c), uid in list(w.pending_uid.items()):
                if c > chk:
                    live.add(uid)
        files = {p.stem for p in (jd / "shared").glob("*.sst")}
        return (files - live) == set() or None
    tl.wait_for(no_orphans, 10, "the aborted checkpoints' uploads deleted")

    # a decline aborts at once
    ws[1].ack_mode = "decline"
    leader.proc.wait_log(rf"-checkpoint-aborted job={jid} id=\d+ reason=declined", 10)
    # a state payload over the limit is a decline
    ws[1].ack_mode = "huge"
    leader.proc.wait_log(rf"-checkpoint-aborted job={jid} id=\d+ reason=state-too-large", 10)
    # a garbage state (not a subtask state envelope) too
    ws[1].ack_mode = "garbage"
    leader.proc.wait_log(rf"-checkpoint-aborted job={jid} id=\d+ reason=bad-state", 10)
    assert get(cl, f"/jobs/{jid}")["state"] == "RUNNING", "bad acks never fail the job" 


# ------------------------------------------------------------------ 3 + 4


def test_restore_after_worker_loss_and_leader_kill(zk_quorum, tmp_dir, procs, zk_root, closers):
    cl = make_cluster(zk_quorum, tmp_dir, procs, zk_root, coordinators=2, retained=2)
    ws = sim_workers(cl, tmp_dir, n=2, slots=1)
    closers.extend(ws)
    spare = SimWorker(cl, Path(tmp_dir) / "checkpoints", slots=1).start()
    closers.append(spare)
    cl.wait_workers(3)
    jid = cl.submit(job_text(interval="200 ms"))
    cl.wait_job(jid, "RUNNING")
    wait_completed(cl, jid, 3)

    # -- a worker is lost: restart from the latest completed checkpoint
    leader = cl.wait_leader()
    off = leader.proc.log_offset()
    victim = next(w for w in ws if w.tasks)
    victim.close()
    m = leader.proc.wait_log(rf"\+checkpoint-restored job={jid} id=(\d+)", 15, start_offset=off)
    restored = int(m.group(1))
    before = completed_ids(leader, jid, 0)
    assert restored == max(i for i in before if i <= restored) and restored in before
    assert restored == max(completed_ids(leader, jid)[:len(before)]), \
        f"restored {restored}, completed before the loss {before}"
    cl.wait_job(jid, "RUNNING", min_attempt=2)
    st = get(cl, f"/jobs/{jid}/checkpoints")
    assert st["latest"]["restored"]["id"] == restored, st["latest"]
    assert st["counts"]["restored"] == 1
    deps = [d for w in (ws + [spare]) if not w.stop for d in w.deploys if d["attempt"] >= 2]
    assert deps and all(d["restored_checkpoint"] == restored for d in deps), \
        [d["restored_checkpoint"] for d in deps]
    for d in deps:
        assert d["restore_dir"] == str(Path(tmp_dir) / "checkpoints" / jid)
        for t in d["tasks"]:
            assert len(t["restore"]) == 1, "same parallelism: one state per task"
            body = unwrap(t["restore"][0], "flinc.subtask-state")
            assert (body["vertex"], body["subtask"]) == (t["vertex"], t["subtask"])
            assert body["chk"] == restored
            assert body["ops"][0]["gen"] == [[2, t["subtask"], restored * 10 + t["subtask"]]]

    # -- the leader is killed: the new one restores from the latest, ids continue
    wait_completed(cl, jid, 1 + len(before))
    old = cl.wait_leader()
    last_old = max(completed_ids(old, jid))
    old.proc.kill()
    new = cl.wait_leader(timeout=30, not_index=old.index)
    m = new.proc.wait_log(rf"\+checkpoint-restored job={jid} id=(\d+)", 30)
    assert int(m.group(1)) == last_old or int(m.group(1)) in zk_checkpoints(zk_quorum, zk_root, jid)
    new.proc.wait_log(rf"job {jid}: shared-file registry rebuilt from \d+ retained", 5)
    m = new.proc.wait_log(rf"\+checkpoint-completed job={jid} id=(\d+)", 30)
    assert int(m.group(1)) > last_old, "checkpoint ids never repeat across leaders"
    st = get(cl, f"/jobs/{jid}/checkpoints")
    assert st["latest"]["restored"]["id"] >= last_old - 1


# ------------------------------------------------------------------ 5


def test_corrupt_metadata_fails_the_job_naming_the_file(zk_quorum, tmp_dir, procs, zk_root,
                                                         closers):
    cl = make_cluster(zk_quorum, tmp_dir, procs, zk_root)
    ws = sim_workers(cl, tmp_dir, n=2, slots=1)
    closers.extend(ws)
    spare = SimWorker(cl, Path(tmp_dir) / "checkpoints", slots=1).start()
    closers.append(spare)
    cl.wait_workers(3)
    jid = cl.submit(job_text(interval="300 ms"))
    cl.wait_job(jid, "RUNNING")
    wait_completed(cl, jid, 1)
    # stop checkpointing from going on: the acks stop
    for w in ws + [spare]:
        w.ack_mode = "silent"
    tl.wait_for(lambda: get(cl, f"/jobs/{jid}/checkpoints")["latest"]["completed"], 5, "latest")
    latest = zk_checkpoints(zk_quorum, zk_root, jid)[-1]
    meta = Path(tmp_dir) / "checkpoints" / jid / f"chk-{latest}" / "_metadata"
    data = bytearray(meta.read_bytes())
    data[len(data) // 2] ^= 0xFF
    meta.write_bytes(bytes(data))
    next(w for w in ws if w.tasks).close()
    cl.wait_job(jid, "FAILED")
    exc = get(cl, f"/jobs/{jid}/exceptions")
    assert str(meta) in (exc["root-exception"] or ""), \
        f"expected the root exception to name {meta}, seen {exc['root-exception']!r}"


# ------------------------------------------------------------------ 6


def test_savepoint_and_restore_with_another_parallelism(zk_quorum, tmp_dir, procs, zk_root,
                                                         closers):
    cl = make_cluster(zk_quorum, tmp_dir, procs, zk_root, coordinators=2)
    ws = sim_workers(cl, tmp_dir, n=3, slots=1)
    closers.extend(ws)
    leader = cl.wait_leader()
    jid = cl.submit(job_text(interval="10 min", p=2))
    cl.wait_job(jid, "RUNNING")
    status, body = leader.rest(f"/jobs/{jid}/savepoints", "POST",
                               '{"target-directory": null, "cancel-job": true}')
    assert status == 202, (status, body)
    assert_shape(body, SAVEPOINT_TRIGGER_SHAPE, "POST /jobs/:jobid/savepoints")
    trig = body["request-id"]

    def done():
        s = get(cl, f"/jobs/{jid}/savepoints/{trig}")
        return s if s["status"]["id"] == "COMPLETED" else None
    s = tl.wait_for(done, 15, "the savepoint COMPLETED")
    loc = s["operation"]["location"]
    assert loc.startswith(f"file://{tmp_dir}/savepoints/savepoint-{jid[:6]}-"), loc
    sp = Path(loc[len("file://"):])
    assert (sp / "_metadata").is_file()
    body = unwrap((sp / "_metadata").read_bytes(), "flinc.chk.metadata")
    assert body["savepoint"] is True
    assert len(list((sp / "shared").glob("*.sst"))) == 2, "the savepoint holds its shared files"
    cl.wait_job(jid, "CANCELED")
    st = get(cl, f"/jobs/{jid}/checkpoints")
    assert st["latest"]["savepoint"]["is_savepoint"] is True

    # unknown trigger: 404
    status, _ = leader.rest(f"/jobs/{jid}/savepoints/{'0' * 32}")
    assert status == 404
    # bad requests name what is wrong; GET on the trigger path is not allowed
    status, body = leader.rest(f"/jobs/{jid}/savepoints", "POST", '{"cancel-job": "maybe"}')
    assert status == 400 and "cancel-job" in body["errors"][0], (status, body)
    status, body = leader.rest(f"/jobs/{jid}/savepoints", "POST", '{"target": "/x"}')
    assert status == 400 and "unknown field 'target'" in body["errors"][0], (status, body)
    status, _ = leader.rest(f"/jobs/{jid}/savepoints")
    assert status == 405

    # restore into parallelism 3: every old state of the vertex goes to each task
    status, body = leader.rest(f"/jobs?savepointPath=file://{sp}", "POST",
                               job_text(name="from-sp", p=3, interval="10 min"))
    assert status == 202, (status, body)
    j2 = body["jobid"]
    cl.wait_job(j2, "RUNNING")
    deps = [d for w in ws for d in w.deploys if d["job"] == j2]
    assert deps and all(d["restored_checkpoint"] == body_id(sp) for d in deps)
    j2dir = Path(tmp_dir) / "checkpoints" / j2
    for d in deps:
        # the savepoint's files are staged into the new job's checkpoint dir first
        assert d["restore_dir"] == str(j2dir), d["restore_dir"]
        for t in d["tasks"]:
            assert len(t["restore"]) == 2, "rescaled: every old state of the vertex"
    assert sorted(p.name for p in (j2dir / "shared").glob("*.sst")) == \
        sorted(p.name for p in (sp / "shared").glob("*.sst"))
    st = get(cl, f"/jobs/{j2}/checkpoints")
    assert st["latest"]["restored"]["is_savepoint"] is True

    # a new leader before the job's first checkpoint restores it from the savepoint too
    leader.proc.kill()
    new = cl.wait_leader(timeout=30, not_index=leader.index)
    new.proc.wait_log(rf"\+checkpoint-restored job={j2} id=\d+ attempt=\d+ path=file://{sp}$",
                      30)
    leader = new

    # a bad savepointPath is a 400 naming the field
    status, body = leader.rest("/jobs?savepointPath=hdfs://x/y", "POST", job_text(name="bad"))
    assert status == 400 and "savepointPath" in body["errors"][0], (status, body)


def body_id(sp: Path) -> int:
    return unwrap((sp / "_metadata").read_bytes(), "flinc.chk.metadata")["checkpoint"]
