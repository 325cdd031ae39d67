"""The fenced pointer stores (ha/stores.h) across real failovers, driven through
`flinc-election --script` (each result is a `+store {json}` log line): job graphs survive
a kill -9 of the leader, the checkpoint store keeps N and returns the latest, 1,000
counter increments over 3 successive leaders never repeat an id, a corrupt pointer fails
with the znode's name (no fallback to an older one), a finished job is not runnable, job
results expire only after their TTL and only once the job is gone, and writes go on
through the loss of the ZooKeeper server the leader is connected to."""

import json
import re

import flinc_testlib as tl
from test_election import CLUSTER, Cluster  # shared helpers of the election tests

STORE_RX = re.compile(r"\+store (\{.*\})$", re.M)


def store_results(proc, start=0):
    return [json.loads(m.group(1)) for m in STORE_RX.finditer(proc.log_text(start))]


def wait_results(proc, n, timeout=20.0):
    """The first n +store results of proc (fails early if it exits)."""
    def enough():
        got = store_results(proc)
        if len(got) >= n:
            return got
        if not proc.is_running():
            raise AssertionError(f"{proc.cid} exited after {len(got)} results:\n{proc.tail(30)}")
        return None
    return tl.wait_for(enough, timeout, f"{n} store results from {proc.cid}")


def ok(result, what=""):
    assert result["r"] == 0, f"{what or result['op']} failed: {result}"
    return result


def make_cluster(procs, quorum, root, tmp_dir, session_ms=2000):
    storage = tmp_dir / "ha-storage"
    storage.mkdir(exist_ok=True)
    return Cluster(procs, quorum, root, session_ms,
                   extra=["--storage-dir", f"file://{storage}"]), storage


def spawn_with_script(cl, tmp_dir, name, lines):
    script = tmp_dir / f"{name}.script"
    script.write_text("\n".join(lines) + "\n")
    return cl.spawn(name, extra=["--script", str(script)])


def test_stores_survive_leader_kill9(zk_quorum, zk_root, procs, tmp_dir):
    q = zk_quorum
    cl, storage = make_cluster(procs, q, zk_root, tmp_dir)
    chk_dir = tmp_dir / "checkpoints"
    chk_dir.mkdir()
    for n in range(1, 6):
        (chk_dir / f"chk-{n}").write_text(f"metadata of checkpoint {n}\n")
    a_lines = [
        "job-put j1 graph of job one",
        "job-put j2 graph of job two",
        "job-put j1 graph of job one, version 2",
        "job-put j3 will be corrupted",
        "job-put j4 a batch job that finished",
        "job-put j5 its latest checkpoint will be corrupted",
        *[f"chk-add j1 {n} {chk_dir}/chk-{n} 3" for n in range(1, 6)],
        f"chk-add j5 1 {chk_dir}/chk-1 3",
        f"chk-add j5 2 {chk_dir}/chk-2 3",
        "result-put j4 FINISHED",
        "result-expire 0",
    ]
    a = spawn_with_script(cl, tmp_dir, "a", a_lines)
    leader, epoch, _ = cl.wait_leader(0, 15)
    assert leader is a
    b = spawn_with_script(cl, tmp_dir, "b", [
        "job-list", "job-get j1", "job-get j2", "job-get j3", "recoverable",
        "chk-list j1", "chk-latest j1", "chk-latest j5", "result-get j4",
        "job-remove j4", "result-expire 0", "result-expire 7200000", "result-list",
        "counter-next j1 3", "counter-next j1 2 10", "counter-next j1 1 5",
    ])
    b.wait_log(r"\+candidate", 10)
    res = wait_results(a, len(a_lines))
    for r in res:
        ok(r)
    paths = {r["path"] for r in res if r["op"] == "job-put"}
    assert len(paths) == 6, f"each put writes a new file: {paths}"
    subsumed = [r["subsumed"] for r in res if r["op"] == "chk-add" and r["job"] == "j1"]
    assert subsumed == [[], [], [], [1], [2]], f"retention 3 subsumed {subsumed}"
    assert res[-1]["results"] == [], "a fresh result was expired"
    # the first graph file of j1 is gone (replaced), the second is there
    j1_files = sorted(p.name for p in (storage / CLUSTER / "jobs" / "j1").iterdir())
    assert len(j1_files) == 1, f"graph files of j1: {j1_files}"

    # corrupt two pointers behind the leader's back (as a disk or operator might)
    zc = q.client()
    zc.set(f"{cl.base}/jobs/j3/graph", b"\x81\xa4kind\xa3bad")
    zc.set(f"{cl.base}/jobs/j5/checkpoints/{2:019d}", b"not an envelope")

    a.kill()  # kill -9 between "finished" and the job's cleanup
    new, new_epoch, _ = cl.wait_leader(epoch, 15)
    assert new is b
    got = {}
    for r in wait_results(b, 19):
        got.setdefault(r["op"] + " " + r.get("job", ""), []).append(r)
    assert ok(got["job-list "][0])["jobs"] == ["j1", "j2", "j3", "j4", "j5"]
    assert ok(got["job-get j1"][0])["data"] == "graph of job one, version 2"
    assert ok(got["job-get j2"][0])["data"] == "graph of job two"
    bad = got["job-get j3"][0]
    assert bad["r"] < 0 and f"{cl.base}/jobs/j3/graph" in bad["error"], \
        f"a corrupt pointer must fail naming its znode: {bad}"
    assert ok(got["recoverable "][0])["jobs"] == ["j1", "j2", "j3", "j5"], \
        "the finished job j4 must not be runnable"
    assert ok(got["chk-list j1"][0])["ids"] == [3, 4, 5]
    latest = ok(got["chk-latest j1"][0])
    assert latest["id"] == 5 and latest["path"] == f"file://{chk_dir}/chk-5"
    bad = got["chk-latest j5"][0]
    assert bad["r"] < 0 and f"{cl.base}/jobs/j5/checkpoints/{2:019d}" in bad["error"], \
        f"a corrupt latest checkpoint must fail naming its znode, not fall back: {bad}"
    assert ok(got["result-get j4"][0])["results"][0]["state"] == "FINISHED"
    ok(got["job-remove j4"][0])
    expired = [ok(r)["results"] for r in got["result-expire "]]
    assert expired[0] == [] and [x["job"] for x in expired[1]] == ["j4"], \
        f"expected j4's result kept within its TTL and removed after it: {expired}"
    assert ok(got["result-list "][0])["results"] == []
    assert not (storage / CLUSTER / "jobs" / "j4").exists(), "j4's graph files remain"
    ids = [ok(r)["id"] for r in got["counter-next j1"]]
    # ha_counter_next_above: above the floor (a restored savepoint's id), and never
    # below the counter when the floor is lower
    assert ids == [1, 2, 3, 11, 12, 13], f"counter ids {ids}"
    assert all(r["r"] == 0 for r in store_results(b)
               if r["op"] not in ("job-get", "chk-latest") or r.get("job") not in ("j3", "j5"))


def test_counter_1000_ids_over_three_leaders(zk_quorum, zk_root, procs, tmp_dir, capsys):
    q = zk_quorum
    cl, _ = make_cluster(procs, q, zk_root, tmp_dir, session_ms=1000)
    names = ["a", "b", "c"]
    ps = [spawn_with_script(cl, tmp_dir, names[0], ["counter-next job 100000"])]
    leader, epoch, _ = cl.wait_leader(0, 15)
    for n in names[1:]:  # one after the other: b is next in line, then c
        ps.append(spawn_with_script(cl, tmp_dir, n, ["counter-next job 100000"]))
        ps[-1].wait_log(r"\+candidate", 10)

    def ids_of(p):
        return [r["id"] for r in store_results(p) if r["op"] == "counter-next" and r["r"] == 0]

    def total():
        return sum(len(ids_of(p)) for p in ps)

    # a -> b by kill -9
    tl.wait_for(lambda: total() >= 334, 30, "334 ids from the first leader")
    ps[0].kill()
    new, epoch2, _ = cl.wait_leader(epoch, 15)
    assert new is ps[1]
    # b -> c by SIGSTOP past the session timeout: b's writes after that must fail
    tl.wait_for(lambda: total() >= 667, 30, "667 ids over two leaders")
    off_b = ps[1].log_offset()
    ps[1].stop_signal()
    new, epoch3, _ = cl.wait_leader(epoch2, 15)
    assert new is ps[2]
    tl.wait_for(lambda: len(ids_of(ps[2])) >= 5, 30, "ids from the third leader")
    ps[1].cont()
    ps[1].wait_log(rf"-leadership-lost epoch={epoch2}", 10, start_offset=off_b)
    tl.wait_for(lambda: total() >= 1000, 30, "1000 ids over three leaders")
    ps[2].kill()
    ps[1].kill()
    per = [ids_of(p) for p in ps]
    everything = [i for ids in per for i in ids]
    assert len(everything) >= 1000
    assert len(set(everything)) == len(everything), "an id was handed out twice"
    for name, ids in zip(names, per):
        assert ids == sorted(ids), f"{name}'s ids are not increasing"
    assert max(per[0]) < min(per[1]) and max(per[1]) < min(per[2]), \
        "a later leader handed out an id below an earlier leader's"
    stale = [r for r in store_results(ps[1], off_b) if r["r"] != 0]
    gaps = sum(b - a - 1 for a, b in zip(sorted(everything), sorted(everything)[1:]))
    with capsys.disabled():
        print(f"\ncounter: {len(everything)} ids over 3 leaders ({', '.join(str(len(i)) for i in per)}),"
              f" {gaps} skipped, b's refused writes after losing leadership: {len(stale)}")


def test_writes_through_loss_of_connected_server(zk_quorum, zk_root, procs, tmp_dir, capsys):
    """Killing ZooKeeper servers under a stream of job-graph puts: the leader reconnects
    to another server within its session; a put caught mid-flight is read back and
    reconciled; every put ends successful and every graph reads back."""
    q = zk_quorum
    cl, storage = make_cluster(procs, q, zk_root, tmp_dir, session_ms=8000)
    n = 600
    lines = [x for i in range(n) for x in (f"job-put w{i} payload {i}", "sleep 5")]
    lines += [f"job-get w{i}" for i in range(n)]
    p = spawn_with_script(cl, tmp_dir, "w", lines)
    cl.wait_leader(0, 15)
    tl.wait_for(lambda: len(store_results(p)) >= 20, 20, "the first puts")
    for i in range(q.n):  # one of them is the server the leader is connected to
        q.kill(i)
        q.start_server(i, wait=True)
        if len(store_results(p)) >= n:
            break
    res = wait_results(p, 2 * n, timeout=60)
    puts, gets = res[:n], res[n:]
    for r in puts + gets:
        ok(r)
    assert [g["data"] for g in gets] == [f"payload {i}" for i in range(n)]
    ambiguous = [r["job"] for r in puts if r.get("ambiguous")]
    files = sum(1 for _ in (storage / CLUSTER / "jobs").glob("*/graph-*"))
    assert files == n, f"expected one graph file per job, found {files}"
    assert "-leadership-lost" not in p.log_text()
    with capsys.disabled():
        print(f"\nputs reconciled after an ambiguous write: {len(ambiguous)} {ambiguous}")


def test_ambiguous_writes_are_reconciled(zk_quorum, zk_root, procs, tmp_dir):
    """Each write below is queued, then the connection is cut: the leader sees a
    connection loss and cannot know whether the server got the request (it usually
    does). The store reads back and completes the write exactly once (ambiguous: true);
    the counter never hands out an id twice (it skips the one it cannot vouch for, or
    reuses it when the read back shows it was not taken); no graph file is left that no
    pointer names."""
    cl, storage = make_cluster(procs, zk_quorum, zk_root, tmp_dir, session_ms=4000)
    b = cl.base
    drops = [f"{b}/jobs/j1/graph", f"{b}/jobs/j2/checkpoint-counter",
             f"{b}/jobs/j3/checkpoints/{3:019d}", f"{b}/job-results/j4", f"{b}/jobs/j5"]
    extra = [x for d in drops for x in ("--drop-connection-after", d)]
    lines = ["job-put j1 hello", "job-get j1", "counter-next j2 3",
             "chk-add j3 1 /m1 2", "chk-add j3 2 /m2 2", "chk-add j3 3 /m3 2", "chk-list j3",
             "result-put j4 CANCELED", "result-get j4", "job-put j5 x", "job-remove j5",
             "job-list"]
    script = tmp_dir / "amb.script"
    script.write_text("\n".join(lines) + "\n")
    p = cl.spawn("a", extra=["--script", str(script), *extra])
    res = wait_results(p, len(lines) + 2)  # counter-next logs 3 results
    for r in res:
        ok(r)
    by = {}
    for r in res:
        by.setdefault(r["op"] + " " + r.get("job", ""), []).append(r)
    assert by["job-put j1"][0].get("ambiguous"), by["job-put j1"]
    assert by["job-get j1"][0]["data"] == "hello"
    ids = [r["id"] for r in by["counter-next j2"]]
    assert ids in ([2, 3, 4], [1, 2, 3]) and by["counter-next j2"][0].get("ambiguous"), \
        f"ids after an ambiguous increment: {ids}"
    add3 = by["chk-add j3"][2]
    assert add3.get("ambiguous") and add3["subsumed"] == [1], add3
    assert by["chk-list j3"][0]["ids"] == [2, 3]
    assert by["result-put j4"][0].get("ambiguous")
    assert by["result-get j4"][0]["results"][0]["state"] == "CANCELED"
    assert by["job-put j5"][0].get("ambiguous")
    assert by["job-list "][0]["jobs"] == ["j1"]  # only j1 has a graph
    files = sorted(str(f.relative_to(storage)) for f in storage.rglob("graph-*"))
    assert len(files) == 1 and files[0].startswith(f"{CLUSTER}/jobs/j1/"), files
    assert p.log_text().count("-disconnected") == len(drops)
    assert "-leadership-lost" not in p.log_text()
