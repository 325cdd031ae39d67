"""Windows acceptance (issue 6 acceptance 4): event-time tumbling window counts over
out-of-order input equal a reference computed here, with late records dropped as
documented (worker/ops.h WINDOWS, worker/dataflow.h WATERMARKS).

A real coordinator (leader on a real 3-server ZooKeeper quorum) and two real workers of
one slot each run a bounded job: a file source (parallelism 1, `timestamps: leading`)
of timestamped, out-of-order lines, some of them later than the bound, key_by, an
event-time tumbling window counting per key (parallelism 2, so the hash channels and
the watermarks cross the two workers over TCP), an exactly-once file sink. The test
computes the expected output with the documented semantics: the watermark after each
line is max(timestamp seen) - out_of_orderness - 1 (one source subtask, so every window
subtask sees the same watermark sequence in line order); a line whose window ended at
or before the watermark (window end - 1 <= watermark) is late and dropped; every other
window fires once, at the latest at the end of input. The committed lines "<key>
<count>" (one per key and window) must equal the reference as a multiset, and the job's
numLateRecordsDropped must equal the reference's late lines.

A second test kills the worker of an event-time window job mid-run (SIGKILL) and checks
that the restored windows are committed exactly once.
"""

import random
import sys
from collections import Counter
from pathlib import Path

import flinc_testlib as tl

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))
from failover_cluster import Cluster  # noqa: E402

BASE_MS = 1_700_000_000_000
SIZE_MS = 1000
OOO_MS = 300

JOB = """
name: event-time-window-counts
parallelism: 2
pipeline:
  - file: {{ path: "file://{src}", timestamps: leading, parallelism: 1 }}
  - key_by: {{ field: word }}
  - window: {{ type: tumbling, size: {size} ms, time: event, out_of_orderness: {ooo} ms }}
  - sink: {{ type: file, path: "file://{out}" }}
"""


def make_input(n: int, seed: int = 6):
    """[(timestamp, key)]: time advances 7 ms a line; most lines are up to 250 ms out of
    order (within the 300 ms bound), every 13th is 400..1500 ms behind (beyond it: late
    when its window has fired by then)."""
    rnd = random.Random(seed)
    lines = []
    for i in range(n):
        ts = BASE_MS + i * 7 - rnd.randint(0, 250)
        if i % 13 == 12:
            ts -= rnd.randint(400, 1500)
        lines.append((ts, f"k{rnd.randint(0, 7)}"))
    return lines


def reference(lines, size_ms, ooo_ms):
    """(Counter of "<key> <count>" lines, late lines): ops.h WINDOWS semantics."""
    watermark = None
    max_ts = None
    counts = Counter()
    late = 0
    for ts, key in lines:
        start = ts - ts % size_ms
        end = start + size_ms
        if watermark is not None and end - 1 <= watermark:
            late += 1
        else:
            counts[(key, start)] += 1
        max_ts = ts if max_ts is None else max(max_ts, ts)
        wm = max_ts - ooo_ms - 1
        watermark = wm if watermark is None else max(watermark, wm)
    return Counter(f"{key} {n}" for (key, _), n in counts.items()), late


def read_parts(out: Path):
    lines = []
    for f in sorted(out.rglob("part-*")):
        lines += f.read_text().splitlines()
    return lines


def late_dropped(cl, jid):
    """The job's numLateRecordsDropped through Flink's metric REST API: the sum over the
    subtasks of the vertices that have it (the window's)."""
    job = cl.any_rest(f"/jobs/{jid}")
    total, found = 0, False
    for v in job.get("vertices", []):
        d = cl.any_rest(f"/jobs/{jid}/vertices/{v['id']}/subtasks/metrics"
                        "?get=numLateRecordsDropped&agg=sum")
        for m in d:
            if m.get("id") == "numLateRecordsDropped":
                total += int(m["sum"])
                found = True
    assert found, "no vertex of the job reports numLateRecordsDropped"
    return total


def test_event_time_tumbling_counts_match_reference(zk_quorum, tmp_dir, procs, zk_root):
    lines = make_input(3000)
    expect, late = reference(lines, SIZE_MS, OOO_MS)
    assert late > 20, f"the input must hold late lines, the reference finds {late}"
    behind, high = 0, 0
    for ts, _ in lines:
        behind += ts < high
        high = max(high, ts)
    assert behind > 500, f"the input must be out of order: {behind} lines behind the max"
    src = tmp_dir / "events.txt"
    src.write_text("".join(f"{ts} {key}\n" for ts, key in lines))
    out = tmp_dir / "out"

    cl = Cluster(zk_quorum, tmp_dir, procs, root=zk_root, coordinators=1, workers=2, slots=1,
                 settings={"execution.checkpointing.interval": "300 ms"})
    cl.start()
    jid = cl.submit(JOB.format(src=src, out=out, size=SIZE_MS, ooo=OOO_MS))
    cl.wait_job(jid, "FINISHED", timeout=90)

    seen = Counter(read_parts(out))
    missing, extra = expect - seen, seen - expect
    assert not missing and not extra, \
        (f"window counts differ from the reference ({sum(expect.values())} lines): "
         f"{sum(missing.values())} missing (e.g. {list(missing)[:4]}), "
         f"{sum(extra.values())} extra (e.g. {list(extra)[:4]})")
    assert sum(int(x.rpartition(" ")[2]) for x in seen.elements()) == len(lines) - late, \
        "every line that is not late is counted once"

    # the workers report the count with the tasks' final state; poll until it is in
    tl.wait_for(lambda: late_dropped(cl, jid) == late, 30,
                f"the job's numLateRecordsDropped == {late} (the reference's late lines)")

    # per subtask (Flink's "<subtask>.<metric>" ids): only the window vertex has it
    job = cl.any_rest(f"/jobs/{jid}")
    ids = {v["id"]: {m["id"] for m in cl.any_rest(f"/jobs/{jid}/vertices/{v['id']}/metrics")}
           for v in job["vertices"]}
    windowed = [v for v, names in ids.items() if "0.numLateRecordsDropped" in names]
    assert len(windowed) == 1 and "1.numLateRecordsDropped" in ids[windowed[0]], \
        f"expected numLateRecordsDropped on the window vertex's 2 subtasks only, seen {ids}"
    values = cl.any_rest(f"/jobs/{jid}/vertices/{windowed[0]}/metrics"
                         "?get=0.numLateRecordsDropped,1.numLateRecordsDropped")
    assert sum(int(m["value"]) for m in values) == late, f"per subtask: {values}"
    status, body = cl.leader().rest(f"/jobs/{jid}/vertices/{windowed[0]}/subtasks/metrics"
                                    "?get=numLateRecordsDropped&agg=median")
    assert status == 400 and "agg" in str(body), f"expected agg=median refused, seen {status}"


GEN_JOB = """
name: event-time-windows-across-a-kill
parallelism: 2
pipeline:
  - generator: {{ seed: 3, words: 20, count: {count}, rate: {rate}, event_time_step: 1 ms,
                  out_of_order: 50 ms }}
  - key_by: {{ field: word }}
  - window: {{ type: tumbling, size: 1 s, time: event, out_of_orderness: 200 ms }}
  - sink: {{ type: file, path: "file://{out}" }}
"""


def gen_timestamp(seed, n, step, out_of_order):
    """worker/ops.h wrk_gen_timestamp: 10^12 + n * step - splitmix64(seed + n) mod
    (out_of_order + 1)."""
    m = (1 << 64) - 1
    z = (seed + n + 0x9E3779B97F4A7C15) & m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    z ^= z >> 31
    return 10**12 + n * step - (z % (out_of_order + 1))


def test_event_time_windows_exactly_once_across_a_worker_kill(zk_quorum, tmp_dir, procs,
                                                              zk_root):
    """The generator's deterministic out-of-order event time (two source subtasks, out of
    order by up to 50 ms, within the 200 ms bound: no record is late, whatever the two
    channels' skew) into event-time windows with checkpoints every 300 ms; the worker is
    killed with SIGKILL after a completed checkpoint, the job restores the windows'
    RocksDB state (and rebuilds their timers) on a new worker and FINISHES: the committed
    window counts equal the reference exactly once each."""
    import signal
    count, rate = 40000, 5000
    words = [f"w{(3 + n) % 20}" for n in range(count)]
    windows = Counter()
    for n in range(count):
        ts = gen_timestamp(3, n, 1, 50)
        windows[(words[n], ts - ts % SIZE_MS)] += 1
    expect = Counter(f"{w} {c}" for (w, _), c in windows.items())

    cl = Cluster(zk_quorum, tmp_dir, procs, root=zk_root, coordinators=1, workers=1, slots=2,
                 settings={"execution.checkpointing.interval": "300 ms"})
    cl.start()
    out = tmp_dir / "out"
    jid = cl.submit(GEN_JOB.format(count=count, rate=rate, out=out))
    cl.wait_job(jid, "RUNNING", timeout=30)

    def completed():
        d = cl.any_rest(f"/jobs/{jid}/checkpoints")
        n = (d.get("counts") or {}).get("completed", 0)
        if n < 1:
            raise tl._NotYet(f"completed checkpoints: {n}")
        return n
    tl.wait_for(completed, 30, "a completed checkpoint")
    victims = cl.workers_of_job(jid)
    assert victims, "expected the job's worker"
    victims[0].proc.kill(signal.SIGKILL)
    cl.add_worker()
    done = cl.wait_job(jid, "FINISHED", timeout=120, min_attempt=2)
    assert done.get("attempt", 0) >= 2, f"expected a restart after the kill, seen {done}"

    seen = Counter(read_parts(out))
    missing, extra = expect - seen, seen - expect
    assert not missing and not extra, \
        (f"window counts differ from the reference ({sum(expect.values())} lines) after the "
         f"kill: {sum(missing.values())} missing (e.g. {list(missing)[:4]}), "
         f"{sum(extra.values())} extra (e.g. {list(extra)[:4]})")
