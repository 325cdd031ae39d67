"""A local flinc cluster for the control-plane tests and the failover bench: coordinators
and workers as real processes on a ZooKeeper quorum (tests/lib/flinc_testlib.py), a
small REST client, and the waits both need. No pytest here.

    q = tl.ZkQuorum(n=3); q.start()
    pg = tl.ProcessGroup(tmp)
    c = Cluster(q, tmp, pg, root="/bench", coordinators=2, workers=2, slots=2)
    c.start()                      # coordinators, a leader, workers registered
    jid = c.submit(STREAMING_JOB)  # POST /jobs on the leader
    c.wait_job(jid, "RUNNING")

Every wait polls against a deadline scaled by FLINC_TIMEOUT_SCALE (flinc_testlib).
"""

from __future__ import annotations

import json
import re
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

_LIB = Path(__file__).resolve().parents[2] / "tests" / "lib"
if str(_LIB) not in sys.path:
    sys.path.insert(0, str(_LIB))

import flinc_testlib as tl  # noqa: E402

# An unbounded job: a generator at a modest rate (little CPU on a 2-core box), parallelism 2.
STREAMING_JOB = """\
name: {name}
parallelism: {parallelism}
restart-strategy: {{ type: fixed-delay, attempts: 1000, delay: {delay} }}
pipeline:
  - generator: {{ seed: 7, words: 100, rate: 2000 }}
  - tokenize
  - sink: {{ type: discard }}
"""

# A bounded job: finishes after `count` records.
BOUNDED_JOB = """\
name: {name}
parallelism: {parallelism}
pipeline:
  - generator: {{ seed: 3, words: 50, count: {count} }}
  - tokenize
  - sink: {{ type: discard }}
"""

TERMINAL = ("FINISHED", "CANCELED", "FAILED")


def streaming_job(name="stream", parallelism=2, delay="100 ms") -> str:
    return STREAMING_JOB.format(name=name, parallelism=parallelism, delay=delay)


def bounded_job(name="batch", parallelism=2, count=2000) -> str:
    return BOUNDED_JOB.format(name=name, parallelism=parallelism, count=count)


class RestError(Exception):
    pass


def http(port: int, path: str, method: str = "GET", body: bytes | str | None = None,
         timeout: float = 5.0, headers: dict | None = None):
    """(status, parsed JSON or raw bytes) of one request to 127.0.0.1:port."""
    if isinstance(body, str):
        body = body.encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


class Coordinator:
    def __init__(self, cluster: "Cluster", index: int, rest_port: int):
        self.cluster = cluster
        self.index = index
        self.rest_port = rest_port
        self.conf = cluster.write_conf(f"coord{index}", {"rest.port": rest_port})
        self.proc: tl.Proc | None = None

    def start(self) -> "Coordinator":
        env = {"FLINC_TEST_EXPOSE_ZK_PASSWD": "1"}
        self.proc = self.cluster.procs.start(
            [str(tl.binary("flinc-coordinator")), "--configDir", str(self.conf),
             "--host", "127.0.0.1"], name=f"coord{self.index}", env=env)
        return self

    def rest(self, path, method="GET", body=None, timeout=5.0, headers=None):
        return http(self.rest_port, path, method, body, timeout, headers)

    def get(self, path, timeout=5.0):
        status, data = self.rest(path, timeout=timeout)
        if status != 200:
            raise RestError(f"GET {path} on coord{self.index}: {status} {data!r}")
        return data

    def ha(self) -> dict:
        return self.get("/ha")

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.is_running()


class Worker:
    def __init__(self, cluster: "Cluster", index: int, slots: int):
        self.cluster = cluster
        self.index = index
        self.slots = slots
        self.conf = cluster.write_conf(f"worker{index}",
                                       {"taskmanager.numberOfTaskSlots": slots})
        self.proc: tl.Proc | None = None
        self.resource_id: str | None = None

    def start(self) -> "Worker":
        self.proc = self.cluster.procs.start(
            [str(tl.binary("flinc-worker")), "--configDir", str(self.conf)],
            name=f"worker{self.index}")
        m = self.proc.wait_log(r"resource_id=([0-9a-f]{32})", 10)
        self.resource_id = m.group(1)
        return self

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.is_running()


class Cluster:
    """Coordinators and workers sharing one ZooKeeper root and storage dir."""

    def __init__(self, quorum, base_dir, procs, *, root: str, coordinators: int = 2,
                 workers: int = 2, slots: int = 2, session_ms: int = 2000,
                 hb_interval_ms: int = 200, hb_timeout_ms: int = 4000,
                 restart_delay_ms: int = 100, settings: dict | None = None):
        self.quorum = quorum
        self.base_dir = Path(base_dir)
        self.procs = procs
        self.root = root
        self.session_ms = session_ms
        self.settings = {
            "high-availability": "zookeeper",
            "high-availability.zookeeper.quorum": quorum.connect_string,
            "high-availability.zookeeper.path.root": root,
            "high-availability.storageDir": f"file://{self.base_dir}/ha",
            "high-availability.zookeeper.client.session-timeout": f"{session_ms} ms",
            "rest.bind-address": "127.0.0.1",
            "jobmanager.rpc.address": "127.0.0.1",
            "jobmanager.bind-host": "127.0.0.1",
            "taskmanager.host": "127.0.0.1",
            "taskmanager.bind-host": "127.0.0.1",
            "heartbeat.interval": f"{hb_interval_ms} ms",
            "heartbeat.timeout": f"{hb_timeout_ms} ms",
            "restart-strategy": "fixed-delay",
            "restart-strategy.fixed-delay.attempts": 1000,
            "restart-strategy.fixed-delay.delay": f"{restart_delay_ms} ms",
            "state.checkpoints.dir": f"file://{self.base_dir}/checkpoints",
            "state.savepoints.dir": f"file://{self.base_dir}/savepoints",
            "io.tmp.dirs": str(self.base_dir / "io"),
            "env.log.level": "info",
        }
        self.settings.update(settings or {})
        ports = tl.free_ports(coordinators)
        self.coordinators = [Coordinator(self, i, ports[i]) for i in range(coordinators)]
        self.workers = [Worker(self, i, slots) for i in range(workers)]
        self.default_slots = slots

    # -- set-up
    def write_conf(self, name: str, extra: dict) -> Path:
        return tl.make_conf_dir(self.base_dir / "conf" / name, {**self.settings, **extra},
                                masters=[f"127.0.0.1:{c.rest_port}" for c in
                                         getattr(self, "coordinators", [])])

    def start(self, timeout: float = 30.0) -> "Cluster":
        for c in self.coordinators:
            c.start()
        self.wait_leader(timeout)
        for w in self.workers:
            w.start()
        self.wait_workers(len(self.workers), timeout)
        return self

    def add_worker(self, slots: int | None = None) -> Worker:
        w = Worker(self, len(self.workers), slots or self.default_slots)
        self.workers.append(w)
        return w.start()

    # -- who leads
    def live_coordinators(self):
        return [c for c in self.coordinators if c.is_running()]

    def leader(self) -> Coordinator | None:
        """The coordinator that says it is the acting leader with its stores read."""
        for c in self.live_coordinators():
            try:
                ha = c.ha()
            except (OSError, RestError, ValueError):
                continue
            if ha.get("role") == "leader" and (ha.get("term") or {}).get("recovered"):
                return c
        return None

    def wait_leader(self, timeout: float = 30.0, not_index: int | None = None) -> Coordinator:
        def probe():
            c = self.leader()
            return c if c is not None and c.index != not_index else None
        return tl.wait_for(probe, timeout, "an acting leader", interval=0.02)

    def any_rest(self, path: str):
        """GET path on the first live coordinator that answers 200."""
        last = None
        for c in self.live_coordinators():
            try:
                status, data = c.rest(path, timeout=2.0)
            except OSError as e:
                last = e
                continue
            if status == 200:
                return data
            last = (status, data)
        raise RestError(f"GET {path}: no coordinator answered 200; last {last!r}")

    def wait_workers(self, n: int, timeout: float = 30.0):
        def probe():
            ov = self.any_rest("/overview")
            return ov if ov["taskmanagers"] == n else None
        return tl.wait_for(probe, timeout, f"{n} registered workers", interval=0.05)

    # -- jobs
    def submit(self, text: str, via: Coordinator | None = None) -> str:
        c = via or self.wait_leader()
        status, data = c.rest("/jobs", "POST", text)
        if status != 202 or not isinstance(data, dict) or "jobid" not in data:
            raise RestError(f"POST /jobs on coord{c.index}: {status} {data!r}")
        return data["jobid"]

    def job(self, jid: str) -> dict:
        return self.any_rest(f"/jobs/{jid}")

    def wait_job(self, jid: str, state: str, timeout: float = 30.0, min_attempt: int = 0,
                 interval: float = 0.02) -> dict:
        def probe():
            j = self.job(jid)
            if j["state"] == state and j.get("attempt", 0) >= min_attempt:
                return j
            raise tl._NotYet(f"state {j['state']} attempt {j.get('attempt')}")
        return tl.wait_for(probe, timeout, f"job {jid} {state} (attempt >= {min_attempt})",
                           interval=interval)

    def workers_of_job(self, jid: str) -> list[Worker]:
        """Workers that hold slots of the job (from /taskmanagers/:id allocatedSlots)."""
        out = []
        for w in self.workers:
            if not w.is_running():
                continue
            try:
                tm = self.any_rest(f"/taskmanagers/{w.resource_id}")
            except RestError:
                continue
            if any(s["jobId"] == jid for s in tm.get("allocatedSlots", [])):
                out.append(w)
        return out

    def zk_passwd(self, c: Coordinator):
        ha = c.ha()
        return int(ha["session"]["id"], 16), bytes.fromhex(ha["session"]["passwd"])

    def log_files(self):
        return self.procs.log_files()


def _used(tm: dict) -> int:
    return tm["slotsNumber"] - tm["freeSlots"]


def raw_http(port: int, data: bytes, timeout: float = 2.0) -> bytes:
    """Send raw bytes to 127.0.0.1:port and return what comes back before close/timeout."""
    out = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except (socket.timeout, ConnectionResetError):
            pass
    return out


def percentile(values, p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    v = sorted(values)
    k = max(1, -(-len(v) * p // 100))  # ceil
    return v[int(k) - 1]


def summary_ms(values) -> dict:
    v = sorted(values)
    n = len(v)
    median = v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
    return {"min": round(v[0]), "median": round(median), "p99": round(percentile(v, 99)),
            "n": n}


def log_since(proc: tl.Proc, offset: int) -> str:
    return proc.log_text(offset)


def count_lines(text: str, regex: str) -> int:
    return len(re.findall(regex, text, re.MULTILINE))


__all__ = ["Cluster", "Coordinator", "Worker", "RestError", "http", "raw_http",
           "streaming_job", "bounded_job", "summary_ms", "percentile", "TERMINAL",
           "log_since", "count_lines", "signal", "time", "tl"]
