"""Control plane acceptance (the control-plane issue): flinc-coordinator processes elect a
leader on a real 3-server ZooKeeper quorum, flinc-worker processes register and offer
slots, jobs run and survive kill -9 of any process, and the REST API answers in Flink's
shapes (the expected shapes are kept below, from Flink 1.17's REST API reference).

  1. two coordinators, two workers: a job runs; /overview on both shows 2 task
     managers, their slots and 1 running job (the standby forwards to the leader)
  2. kill -9 the leader: the standby leads, recovers the job, workers re-register, the
     job is RUNNING again (kill-to-RUNNING time printed)
  3. kill -9 a worker: the job restarts on free slots within 2 s (connection close, not
     the heartbeat timeout); without free slots it waits in RESTARTING until a worker
     joins
  4. a FINISHED and a CANCELED job stay so across a leader failover
  5. a deposed leader (SIGSTOP past the session timeout, SIGCONT) changes nothing
  7. every REST response checked against Flink's field names and types

Bad input (6) is in test_control_plane_input.py. Timings use the processes' log stamps
(CLOCK_MONOTONIC, the clock of time.monotonic()). Settings: session timeout 2 s,
heartbeats every 200 ms, restart delay 100 ms.
"""

import re
import signal
import sys
import time
from pathlib import Path

import flinc_testlib as tl

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))
from failover_cluster import Cluster, bounded_job, streaming_job  # noqa: E402

SESSION_MS = 2000
ELECTION_503 = {"errors": ["Service temporarily unavailable due to an ongoing leader "
                           "election. Please refresh."]}
STAMP_RX = r"^\S+ \[(\d+\.\d+)\] "

# ------------------------------------------------------------------ Flink's shapes
#
# A shape is a type (int, str, bool, float = any number, dict = any object, list = any
# array), a tuple of allowed types (None for null), a dict of field -> shape (every field
# must be there; more are allowed, flinc adds a few of its own) or a one-element list
# [shape of every element].

EXEC_STATES = ["CREATED", "SCHEDULED", "DEPLOYING", "RUNNING", "FINISHED", "CANCELING",
               "CANCELED", "FAILED", "RECONCILING", "INITIALIZING"]
JOB_STATUSES = ["INITIALIZING", "CREATED", "RUNNING", "FAILING", "FAILED", "CANCELLING",
                "CANCELED", "FINISHED", "RESTARTING", "SUSPENDED", "RECONCILING"]

CONFIG_SHAPE = {
    "refresh-interval": int, "timezone-name": str, "timezone-offset": int,
    "flink-version": str, "flink-revision": str,
    "features": {"web-submit": bool, "web-cancel": bool, "web-rescale": bool,
                 "web-history": bool},
}
OVERVIEW_SHAPE = {
    "taskmanagers": int, "slots-total": int, "slots-available": int, "jobs-running": int,
    "jobs-finished": int, "jobs-cancelled": int, "jobs-failed": int, "flink-version": str,
    "flink-commit": str,
}
JOBS_SHAPE = {"jobs": [{"id": str, "status": str}]}
TASK_COUNTS_SHAPE = {k: int for k in ["total"] + [s.lower() for s in EXEC_STATES]}
JOBS_OVERVIEW_SHAPE = {"jobs": [{
    "jid": str, "name": str, "state": str, "start-time": int, "end-time": int,
    "duration": int, "last-modification": int, "tasks": TASK_COUNTS_SHAPE,
}]}
VERTEX_METRICS_SHAPE = {
    "read-bytes": int, "read-bytes-complete": bool, "write-bytes": int,
    "write-bytes-complete": bool, "read-records": int, "read-records-complete": bool,
    "write-records": int, "write-records-complete": bool,
}
JOB_SHAPE = {
    "jid": str, "name": str, "isStoppable": bool, "state": str, "start-time": int,
    "end-time": int, "duration": int, "maxParallelism": int, "now": int,
    "timestamps": {s: int for s in JOB_STATUSES},
    "vertices": [{
        "id": str, "name": str, "maxParallelism": int, "parallelism": int, "status": str,
        "start-time": int, "end-time": int, "duration": int,
        "tasks": {s: int for s in EXEC_STATES}, "metrics": VERTEX_METRICS_SHAPE,
    }],
    "status-counts": {s: int for s in EXEC_STATES},
    "plan": {"jid": str, "name": str, "type": str, "nodes": [{
        "id": str, "parallelism": int, "operator": str, "operator_strategy": str,
        "description": str, "inputs": list, "optimizer_properties": dict,
    }]},
}
EXCEPTIONS_SHAPE = {
    "root-exception": (str, None), "timestamp": (int, None),
    "all-exceptions": [{"exception": str, "task": str, "location": str, "timestamp": int,
                        "taskManagerId": str}],
    "truncated": bool,
    "exceptionHistory": {"entries": [{
        "exceptionName": str, "stacktrace": str, "timestamp": int, "taskName": (str, None),
        "location": (str, None), "taskManagerId": (str, None), "failureLabels": dict,
        "concurrentExceptions": list,
    }], "truncated": bool},
}
RESOURCE_SHAPE = {"cpuCores": float, "taskHeapMemory": int, "taskOffHeapMemory": int,
                  "managedMemory": int, "networkMemory": int, "extendedResources": dict}
TASKMANAGER_SHAPE = {
    "id": str, "path": str, "dataPort": int, "jmxPort": int, "timeSinceLastHeartbeat": int,
    "slotsNumber": int, "freeSlots": int, "totalResource": RESOURCE_SHAPE,
    "freeResource": RESOURCE_SHAPE,
    "hardware": {"cpuCores": int, "physicalMemory": int, "freeMemory": int,
                 "managedMemory": int},
    "memoryConfiguration": {k: int for k in [
        "frameworkHeap", "taskHeap", "frameworkOffHeap", "taskOffHeap", "networkMemory",
        "managedMemory", "jvmMetaspace", "jvmOverhead", "totalFlinkMemory",
        "totalProcessMemory"]},
}
TASKMANAGERS_SHAPE = {"taskmanagers": [TASKMANAGER_SHAPE]}
TASKMANAGER_DETAIL_SHAPE = dict(TASKMANAGER_SHAPE, **{
    "metrics": dict({k: int for k in [
        "heapUsed", "heapCommitted", "heapMax", "nonHeapUsed", "nonHeapCommitted",
        "nonHeapMax", "directCount", "directUsed", "directMax", "mappedCount", "mappedUsed",
        "mappedMax", "memorySegmentsAvailable", "memorySegmentsTotal",
        "nettyShuffleMemorySegmentsAvailable", "nettyShuffleMemorySegmentsUsed",
        "nettyShuffleMemorySegmentsTotal", "nettyShuffleMemoryAvailable",
        "nettyShuffleMemoryUsed", "nettyShuffleMemoryTotal"]}, garbageCollectors=list),
    "allocatedSlots": [{"jobId": str, "resource": RESOURCE_SHAPE}],
})
JOBMANAGER_CONFIG_SHAPE = [{"key": str, "value": str}]
SUBMIT_SHAPE = {"jobid": str, "jobUrl": str}
ERRORS_SHAPE = {"errors": [str]}
# flinc's own GET /ha
HA_SHAPE = {
    "id": str, "role": str, "election-state": str, "rest-url": str, "rpc-address": str,
    "epoch": int,
    "leader": ({"id": str, "epoch": int, "rest-url": str, "rpc-address": str,
                "session": str, "self": bool}, None),
    "standbys": [{"id": str, "host": str, "rest-url": str, "rpc-address": str}],
    "session": {"id": str, "state": str, "negotiated-timeout-ms": int, "lease-ms": int},
    "last-failover": ({"time": int, "duration-ms": int, "epoch": int}, None),
    "term": ({"elected-time": int, "elected-for-ms": int, "recovered": bool,
              "workers": int}, None),
    "zookeeper-quorum": str, "zookeeper-path": str,
}


def shape_errors(value, shape, path="$"):
    """The differences between value and shape, as 'path: expected X, seen Y' lines."""
    errs = []
    if isinstance(shape, tuple):
        alts = [s for s in shape if s is not None]
        if value is None and None in shape:
            return []
        best = None
        for s in alts:
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
    if shape is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif shape is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, shape)
    return [] if ok else [f"{path}: expected {shape.__name__}, seen {value!r}"]


def assert_shape(value, shape, what):
    errs = shape_errors(value, shape)
    assert not errs, f"{what} does not have Flink's shape:\n  " + "\n  ".join(errs[:20])


def get_ok(coord, path):
    status, data = coord.rest(path)
    assert status == 200, f"GET {path} on coord{coord.index}: expected 200, seen {status} {data!r}"
    return data


# ------------------------------------------------------------------ helpers


def make_cluster(zk_quorum, tmp_dir, procs, zk_root, **kw):
    c = Cluster(zk_quorum, tmp_dir, procs, root=zk_root, session_ms=SESSION_MS, **kw)
    return c.start()


def stamp_of(proc, regex, start_offset=0, timeout=20.0):
    """Monotonic stamp (s) of the first log line matching regex after start_offset."""
    m = proc.wait_log(STAMP_RX + r".*" + regex, timeout, start_offset=start_offset)
    return float(m.group(1))


def job_running_stamp(coord, jid, offset, timeout=20.0):
    return stamp_of(coord.proc, rf"\+job-state job={jid} state=RUNNING", offset, timeout)


def epoch_of(coord):
    return coord.ha()["epoch"]


def report(capsys, msg):
    """Print a measurement where meson's log shows it (pytest runs with -q, no -rP)."""
    with capsys.disabled():
        print(f"\n[control-plane] {msg}", flush=True)


# ------------------------------------------------------------------ 1 + 7


def test_two_coordinators_two_workers_run_a_job_in_flinks_shapes(zk_quorum, tmp_dir, procs,
                                                                  zk_root):
    cl = make_cluster(zk_quorum, tmp_dir, procs, zk_root, coordinators=2, workers=2, slots=2)
    leader = cl.wait_leader()
    standby = next(c for c in cl.coordinators if c is not leader)

    status, sub = leader.rest("/jobs", "POST", streaming_job("acceptance-1", parallelism=2))
    assert status == 202, f"POST /jobs: expected 202, seen {status} {sub!r}"
    assert_shape(sub, SUBMIT_SHAPE, "POST /jobs")
    jid = sub["jobid"]
    assert sub["jobUrl"] == f"/jobs/{jid}"
    cl.wait_job(jid, "RUNNING")

    # /overview on both coordinators (the standby's answer comes from the leader)
    for c in (leader, standby):
        ov = get_ok(c, "/overview")
        assert_shape(ov, OVERVIEW_SHAPE, f"/overview on coord{c.index}")
        seen = (ov["taskmanagers"], ov["slots-total"], ov["slots-available"], ov["jobs-running"])
        assert seen == (2, 4, 2, 1), \
            f"/overview on coord{c.index}: expected (taskmanagers, slots-total, " \
            f"slots-available, jobs-running) = (2, 4, 2, 1), seen {seen}"
        assert get_ok(c, "/v1/overview")["taskmanagers"] == 2

    # every endpoint, on the leader and through the standby
    for c in (leader, standby):
        where = f"coord{c.index} ({'leader' if c is leader else 'standby'})"
        assert_shape(get_ok(c, "/config"), CONFIG_SHAPE, f"/config on {where}")
        jobs = get_ok(c, "/jobs")
        assert_shape(jobs, JOBS_SHAPE, f"/jobs on {where}")
        assert jobs["jobs"] == [{"id": jid, "status": "RUNNING"}], f"/jobs on {where}: {jobs}"
        jo = get_ok(c, "/jobs/overview")
        assert_shape(jo, JOBS_OVERVIEW_SHAPE, f"/jobs/overview on {where}")
        assert jo["jobs"][0]["tasks"]["running"] == jo["jobs"][0]["tasks"]["total"] > 0
        job = get_ok(c, f"/jobs/{jid}")
        assert_shape(job, JOB_SHAPE, f"/jobs/:jobid on {where}")
        assert job["state"] == "RUNNING" and job["timestamps"]["RUNNING"] > 0
        assert all(v["status"] == "RUNNING" and v["parallelism"] == 2 for v in job["vertices"])
        assert [n["id"] for n in job["plan"]["nodes"]] == [v["id"] for v in job["vertices"]]
        exc = get_ok(c, f"/jobs/{jid}/exceptions")
        assert_shape(exc, EXCEPTIONS_SHAPE, f"/jobs/:jobid/exceptions on {where}")
        assert exc["root-exception"] is None and exc["all-exceptions"] == []
        tms = get_ok(c, "/taskmanagers")
        assert_shape(tms, TASKMANAGERS_SHAPE, f"/taskmanagers on {where}")
        ids = sorted(t["id"] for t in tms["taskmanagers"])
        assert ids == sorted(w.resource_id for w in cl.workers)
        for t in tms["taskmanagers"]:
            d = get_ok(c, f"/taskmanagers/{t['id']}")
            assert_shape(d, TASKMANAGER_DETAIL_SHAPE, f"/taskmanagers/:id on {where}")
            assert (d["slotsNumber"], d["freeSlots"], len(d["allocatedSlots"])) == (2, 1, 1), \
                f"slot sharing spreads the job's 2 slots over both workers: seen {d}"
        cfg = get_ok(c, "/jobmanager/config")
        assert_shape(cfg, JOBMANAGER_CONFIG_SHAPE, f"/jobmanager/config on {where}")
        kv = {e["key"]: e["value"] for e in cfg}
        assert kv["high-availability"] == "zookeeper" and kv["rest.port"] == str(leader.rest_port)
        ha = get_ok(c, "/ha")
        assert_shape(ha, HA_SHAPE, f"/ha on {where}")
        assert ha["role"] == ("leader" if c is leader else "standby")
        assert ha["leader"]["id"] == leader.ha()["id"]
        assert ha["session"]["negotiated-timeout-ms"] == SESSION_MS

    # the leader lists the standby (from a watch on the election nodes, so polled); both
    # logged their session
    tl.wait_for(lambda: [s["id"] for s in leader.ha()["standbys"]] == [standby.ha()["id"]],
                10, "the leader's /ha to list the standby")
    for c in (leader, standby):
        c.proc.wait_log(r"session=0x[0-9a-f]{16} negotiated-timeout-ms=\d+", 1)

    # errors: Flink's shape and wording
    status, body = standby.rest("/jobs/00000000000000000000000000000000")
    assert (status, body) == (404, {"errors": ["Job 00000000000000000000000000000000 not found"]})

    # cancel through the standby: 202 {} as Flink answers
    status, body = standby.rest(f"/jobs/{jid}?mode=cancel", "PATCH")
    assert (status, body) == (202, {}), f"PATCH cancel: expected 202 {{}}, seen {status} {body!r}"
    cl.wait_job(jid, "CANCELED")
    ov = get_ok(standby, "/overview")
    assert (ov["jobs-running"], ov["jobs-cancelled"], ov["slots-available"]) == (0, 1, 4), ov
    # the dashboard's cancel on a terminal job: still 202
    status, body = leader.rest(f"/jobs/{jid}/yarn-cancel")
    assert (status, body) == (202, {})


# ------------------------------------------------------------------ 2


def test_leader_kill_standby_recovers_the_job(zk_quorum, tmp_dir, procs, zk_root, capsys):
    cl = make_cluster(zk_quorum, tmp_dir, procs, zk_root, coordinators=2, workers=2, slots=2)
    old = cl.wait_leader()
    survivor = next(c for c in cl.coordinators if c is not old)
    jid = cl.submit(streaming_job("acceptance-2"))
    before = cl.wait_job(jid, "RUNNING")
    old_epoch = epoch_of(old)
    offsets = {w.index: w.proc.log_offset() for w in cl.workers}
    s_off = survivor.proc.log_offset()

    t_kill = time.monotonic()
    old.proc.kill()
    # While the dead leader's session lives, the standby cannot reach it: Flink's 503.
    status, body = survivor.rest("/overview")
    if time.monotonic() - t_kill < SESSION_MS / 2000:
        assert (status, body) == (503, ELECTION_503), \
            f"standby during the election: expected 503 {ELECTION_503}, seen {status} {body!r}"

    new = cl.wait_leader(timeout=30, not_index=old.index)
    assert new is survivor
    after = cl.wait_job(jid, "RUNNING", min_attempt=before["attempt"] + 1)
    t_running = job_running_stamp(survivor, jid, s_off)
    kill_to_running_ms = (t_running - t_kill) * 1000
    new_epoch = epoch_of(survivor)
    report(capsys, f"leader kill-to-RUNNING: {kill_to_running_ms:.0f} ms (session timeout "
           f"{SESSION_MS} ms; epoch {old_epoch} -> {new_epoch}; attempt {before['attempt']} "
           f"-> {after['attempt']})")
    assert new_epoch > old_epoch
    survivor.proc.wait_log(rf"\+leader-elected epoch={new_epoch}\b", 1, start_offset=s_off)
    survivor.proc.wait_log(rf"\+job-recovered job={jid} epoch={new_epoch}\b", 1, start_offset=s_off)
    for w in cl.workers:
        w.proc.wait_log(rf"\+registered leader=\S+ epoch={new_epoch}\b", 5,
                        start_offset=offsets[w.index])
    ov = get_ok(survivor, "/overview")
    assert (ov["taskmanagers"], ov["jobs-running"]) == (2, 1), ov
    ha = survivor.ha()
    assert ha["last-failover"] is not None and ha["last-failover"]["epoch"] == new_epoch

    # the killed coordinator comes back as a standby and forwards
    old.start()
    tl.wait_for(lambda: old.ha()["role"] == "standby", 15, "the restarted coordinator to stand by")
    ov = get_ok(old, "/overview")
    assert (ov["taskmanagers"], ov["jobs-running"]) == (2, 1), ov
    assert get_ok(old, f"/jobs/{jid}")["attempt"] == after["attempt"]


# ------------------------------------------------------------------ 3


def test_worker_kill_restarts_on_free_slots_then_waits_for_a_worker(zk_quorum, tmp_dir, procs,
                                                                     zk_root, capsys):
    # heartbeat.timeout 30 s: a restart within 2 s can only come from the connection close
    cl = make_cluster(zk_quorum, tmp_dir, procs, zk_root, coordinators=1, workers=2, slots=2,
                      hb_timeout_ms=30000)
    leader = cl.wait_leader()
    jid = cl.submit(streaming_job("acceptance-3"))
    first = cl.wait_job(jid, "RUNNING")
    holders = cl.workers_of_job(jid)
    assert len(holders) == 2, f"the job's slots spread over both workers, seen {holders}"

    victim, other = holders
    off = leader.proc.log_offset()
    t_kill = time.monotonic()
    victim.proc.kill()
    second = cl.wait_job(jid, "RUNNING", min_attempt=first["attempt"] + 1, timeout=10)
    elapsed_ms = (job_running_stamp(leader, jid, off) - t_kill) * 1000
    report(capsys, f"worker kill-to-RUNNING: {elapsed_ms:.0f} ms (attempt {first['attempt']} "
           f"-> {second['attempt']})")
    leader.proc.wait_log(rf"-worker-lost id={victim.resource_id} reason=connection-closed", 1,
                         start_offset=off)
    assert elapsed_ms < 2000 * tl.timeout_scale(), \
        f"expected the restart within 2 s of the kill, seen {elapsed_ms:.0f} ms"
    assert cl.workers_of_job(jid) == [other]
    exc = get_ok(leader, f"/jobs/{jid}/exceptions")
    assert_shape(exc, EXCEPTIONS_SHAPE, "/jobs/:jobid/exceptions after a failure")
    assert victim.resource_id in exc["root-exception"], exc
    assert len(exc["exceptionHistory"]["entries"]) >= 1

    # no free slots: RESTARTING until a worker joins
    off = leader.proc.log_offset()
    other.proc.kill()
    cl.wait_job(jid, "RESTARTING", timeout=10)
    leader.proc.wait_log(rf"job {jid} \(RESTARTING\) waits for slots", 5, start_offset=off)
    for _ in range(10):  # it stays there
        assert cl.job(jid)["state"] == "RESTARTING"
        time.sleep(0.1)
    assert get_ok(leader, "/overview")["taskmanagers"] == 0
    newcomer = cl.add_worker()
    third = cl.wait_job(jid, "RUNNING", min_attempt=second["attempt"] + 1, timeout=15)
    assert cl.workers_of_job(jid) == [newcomer]
    assert third["restarts"] >= 2


# ------------------------------------------------------------------ 4


def test_finished_and_canceled_jobs_stay_terminal_across_failover(zk_quorum, tmp_dir, procs,
                                                                   zk_root):
    cl = make_cluster(zk_quorum, tmp_dir, procs, zk_root, coordinators=2, workers=2, slots=2)
    old = cl.wait_leader()
    survivor = next(c for c in cl.coordinators if c is not old)
    finished = cl.submit(bounded_job("acceptance-4-batch", count=5000))
    cl.wait_job(finished, "FINISHED", timeout=30)
    canceled = cl.submit(streaming_job("acceptance-4-stream"))
    cl.wait_job(canceled, "RUNNING")
    status, body = old.rest(f"/jobs/{canceled}", "PATCH")
    assert (status, body) == (202, {})
    cl.wait_job(canceled, "CANCELED")
    for jid in (finished, canceled):  # result first, then the graph goes
        old.proc.wait_log(rf"\+job-result job={jid}", 10)
        old.proc.wait_log(rf"job {jid}: graph removed", 10)

    zk = zk_quorum.client()
    base = f"{zk_root}/default"
    zk.sync("/")  # read what the leader wrote, whichever server answers
    assert sorted(zk.get_children(f"{base}/job-results")) == sorted([finished, canceled])
    assert zk.get_children(f"{base}/jobs") == []

    offsets = {w.index: w.proc.log_offset() for w in cl.workers}
    s_off = survivor.proc.log_offset()
    old.proc.kill()
    cl.wait_leader(timeout=30, not_index=old.index)
    states = {j["id"]: j["status"] for j in get_ok(survivor, "/jobs")["jobs"]}
    assert states == {finished: "FINISHED", canceled: "CANCELED"}, states
    ov = get_ok(survivor, "/overview")
    assert (ov["jobs-running"], ov["jobs-finished"], ov["jobs-cancelled"]) == (0, 1, 1), ov
    # workers re-registered and reported; nothing of those jobs was deployed again
    for w in cl.workers:
        w.proc.wait_log(r"\+registered ", 10, start_offset=offsets[w.index])
    time.sleep(1.0)  # several heartbeats and reconcile rounds
    for w in cl.workers:
        text = w.proc.log_text(offsets[w.index])
        for jid in (finished, canceled):
            assert f"+deploy job={jid}" not in text, f"worker{w.index} got {jid} deployed again"
    text = survivor.proc.log_text(s_off)
    assert "+job-recovered" not in text, "a terminal job was recovered"
    assert get_ok(survivor, f"/jobs/{finished}")["state"] == "FINISHED"


# ------------------------------------------------------------------ 5


def test_deposed_leader_changes_nothing(zk_quorum, tmp_dir, procs, zk_root, capsys):
    cl = make_cluster(zk_quorum, tmp_dir, procs, zk_root, coordinators=2, workers=2, slots=2)
    old = cl.wait_leader()
    survivor = next(c for c in cl.coordinators if c is not old)
    jid = cl.submit(streaming_job("acceptance-5"))
    first = cl.wait_job(jid, "RUNNING")
    old_epoch = epoch_of(old)

    assert old.proc.stop_signal()
    t_stop = time.monotonic()
    try:
        cl.wait_leader(timeout=30, not_index=old.index)
        second = cl.wait_job(jid, "RUNNING", min_attempt=first["attempt"] + 1)
        new_epoch = epoch_of(survivor)
        for w in cl.workers:
            w.proc.wait_log(rf"\+registered leader=\S+ epoch={new_epoch}\b", 10)
        # Stopped past heartbeat.timeout too (4 s): on waking up its heartbeat timers and
        # its closed worker connections compete with the stall check.
        time.sleep(max(0.5, 5.0 - (time.monotonic() - t_stop)))
    finally:
        w_off = {w.index: w.proc.log_offset() for w in cl.workers}
        o_off = old.proc.log_offset()
        s_off = survivor.proc.log_offset()
        old.proc.cont()

    # The deposed leader notices it lost its term before anything else ...
    m = old.proc.wait_log(r"-leadership-lost reason=(\S+) epoch=(\d+)", 10, start_offset=o_off)
    assert int(m.group(2)) == old_epoch
    report(capsys, f"deposed leader: -leadership-lost reason={m.group(1)} (epoch {old_epoch}, "
           f"new epoch {new_epoch})")
    tl.wait_for(lambda: old.ha()["role"] == "standby" and
                old.ha()["leader"]["epoch"] == new_epoch, 15, "the deposed leader to stand by")
    time.sleep(1.0)  # its heartbeat timers and restart timers have fired by now

    # ... and does nothing: no deployment, no cancel, no job state change, no store write.
    text = old.proc.log_text(o_off)
    for pattern in (r"deploying job", r"canceling job", r"\+job-state", r"\+job-result",
                    r"\+job-submitted"):
        assert not re.search(pattern, text), f"deposed leader logged /{pattern}/:\n{text}"
    # The workers saw nothing from it: every deploy/cancel they accepted carries the new
    # epoch, and whatever came with the old one was refused (-rejected-stale-epoch).
    rejected = 0
    for w in cl.workers:
        wt = w.proc.log_text(w_off[w.index])
        for em in re.finditer(r"\+(?:deploy|cancel) job=\S+ attempt=\d+ epoch=(\d+)", wt):
            assert int(em.group(1)) == new_epoch, f"worker{w.index} accepted epoch {em.group(1)}"
        for em in re.finditer(r"-rejected-stale-epoch epoch=(\d+)", wt):
            assert int(em.group(1)) < new_epoch
            rejected += 1
    report(capsys, f"stale-epoch messages rejected by workers: {rejected}")
    # The job is as the new leader left it.
    now = cl.job(jid)
    assert (now["state"], now["attempt"]) == ("RUNNING", second["attempt"]), now
    assert "+job-state" not in survivor.proc.log_text(s_off)


# ------------------------------------------------------------------ SIGTERM


def test_sigterm_resigns_leadership_and_exits_0(zk_quorum, tmp_dir, procs, zk_root, capsys):
    cl = make_cluster(zk_quorum, tmp_dir, procs, zk_root, coordinators=2, workers=1, slots=2)
    old = cl.wait_leader()
    survivor = next(c for c in cl.coordinators if c is not old)
    jid = cl.submit(streaming_job("sigterm"))
    before = cl.wait_job(jid, "RUNNING")
    s_off = survivor.proc.log_offset()
    t0 = time.monotonic()
    old.proc.send_signal(signal.SIGTERM)
    rc = old.proc.wait_exit(10)
    assert rc == 0, f"expected exit code 0 after SIGTERM, seen {rc}"
    old.proc.wait_log(r"-leadership-resigned epoch=\d+", 1)
    cl.wait_job(jid, "RUNNING", min_attempt=before["attempt"] + 1)
    handover_ms = (stamp_of(survivor.proc, r"\+leader-elected", s_off) - t0) * 1000
    report(capsys, f"SIGTERM-to-new-leader: {handover_ms:.0f} ms (no session timeout to "
           f"wait for)")
    assert handover_ms < SESSION_MS * tl.timeout_scale(), \
        f"a resign hands over before the session timeout; seen {handover_ms:.0f} ms"


# ------------------------------------------------------------------ suspended leader


def test_suspended_leader_acts_only_after_its_connection_returns(zk_quorum, tmp_dir, procs,
                                                                 zk_root, capsys):
    """ZooKeeper gone (all servers killed) while a worker dies: the leader is
    SUSPENDED, keeps its books (the job is FAILING) but cancels and deploys nothing; once
    the quorum is back within the session it resumes and the job restarts. Session
    timeout 30 s here (lease 20 s) so that the restarted servers come back in time."""
    cl = Cluster(zk_quorum, tmp_dir, procs, root=zk_root, coordinators=1, workers=2, slots=2,
                 session_ms=30000, hb_timeout_ms=60000).start()
    leader = cl.wait_leader()
    jid = cl.submit(streaming_job("suspended"))
    first = cl.wait_job(jid, "RUNNING")
    victim, other = cl.workers_of_job(jid)
    w_off = other.proc.log_offset()
    off = leader.proc.log_offset()

    # Every server killed: the connection resets at once and there is nowhere to
    # reconnect to (with one server left, the client may reach it before it notices the
    # lost quorum, and resume).
    down = list(range(zk_quorum.n))
    for i in down:  # all at once, then reap: no server left to reconnect to meanwhile
        zk_quorum.servers[i].send_signal(signal.SIGKILL)
    for i in down:
        zk_quorum.kill(i)
    leader.proc.wait_log(r"-leader-suspended epoch=\d+", 30, start_offset=off)
    tl.wait_for(lambda: leader.ha()["role"] == "suspended", 10, "the leader to be suspended")

    victim.proc.kill()
    leader.proc.wait_log(rf"-worker-lost id={victim.resource_id}", 5, start_offset=off)
    status, body = leader.rest("/jobs", "POST", streaming_job("refused"))
    assert (status, body) == (503, {"errors": [
        "Service temporarily unavailable due to an ongoing leader election. Please refresh."]})
    time.sleep(1.0)
    assert leader.get(f"/jobs/{jid}")["state"] == "FAILING", "the books are kept while suspended"
    text = leader.proc.log_text(off)
    for pattern in ("canceling job", "deploying job"):
        assert pattern not in text, f"a suspended leader logged '{pattern}':\n{text}"
    assert "+cancel " not in other.proc.log_text(w_off), "a suspended leader sent a cancel"

    for i in down:
        zk_quorum.start_server(i, wait=False)
    resumed = stamp_of(leader.proc, r"\+leader-resumed epoch=\d+", off, timeout=60)
    second = cl.wait_job(jid, "RUNNING", min_attempt=first["attempt"] + 1, timeout=30)
    acted = stamp_of(leader.proc, r"canceling job|deploying job", off)
    assert acted >= resumed, "the leader acted before it resumed"
    assert cl.workers_of_job(jid) == [other]
    report(capsys, f"suspended leader resumed; job attempt {first['attempt']} -> "
           f"{second['attempt']}")
