"""The `flinc` CLI (tools/cli/), the Operations issue: run, list, cancel, savepoint, info,
leader against a real cluster (2 coordinators, 2 workers with 2 slots, a 3-server
ZooKeeper quorum on loopback), with Flink's output, and acceptance 6: every action prints
its usage and exits 2 on bad arguments.

The leader is found through ZooKeeper (the conf's quorum), through the coordinators of
conf/masters when ZooKeeper cannot be reached, or at -m host:port.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import flinc_testlib as tl

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))
from failover_cluster import Cluster, bounded_job, streaming_job  # noqa: E402

LIST_LINE = r"\d\d\.\d\d\.\d{4} \d\d:\d\d:\d\d : %s : %s \(%s\)"


def flinc(*args, conf=None, timeout=60.0, cwd=None):
    argv = [str(tl.binary("flinc"))]
    if conf is not None:
        argv += ["--configDir", str(conf)]
    argv += [str(a) for a in args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=tl.scaled(timeout),
                          cwd=cwd, stdin=subprocess.DEVNULL,
                          env={**os.environ, "FLINC_CONF_DIR": ""})


@pytest.fixture(scope="module")
def cl(zk_quorum_module):
    base = tl.make_tmp_dir("flinc-cli-")
    procs = tl.ProcessGroup(base)
    try:
        c = Cluster(zk_quorum_module, base, procs, root=f"/cli-{tl.unique_suffix()}",
                    coordinators=2, workers=2, slots=2)
        c.start()
        c.conf = tl.make_conf_dir(base / "conf" / "cli", {
            **c.settings, "high-availability.zookeeper.client.connection-timeout": "5 s"},
            masters=[f"127.0.0.1:{x.rest_port}" for x in c.coordinators])
        yield c
    finally:
        procs.close()
        tl.remove_tmp_dir(base)


def write_job(d: Path, name: str, text: str) -> Path:
    p = d / f"{name}.yaml"
    p.write_text(text)
    return p


def test_leader_through_zookeeper(cl):
    leader = cl.wait_leader()
    ha = leader.ha()
    r = flinc("leader", conf=cl.conf)
    assert r.returncode == 0, r.stderr
    assert f"Leader: {ha['id']}\n" in r.stdout
    assert f"Epoch: {ha['epoch']}\n" in r.stdout
    assert f"REST: {ha['rest-url']}\n" in r.stdout
    assert "Found through: zookeeper " in r.stdout, r.stdout


def test_leader_through_masters_without_zookeeper(cl, tmp_dir):
    """ZooKeeper unreachable (nothing listens at the quorum address): conf/masters."""
    leader = cl.wait_leader()
    conf = tl.make_conf_dir(tmp_dir / "conf", {
        **cl.settings, "high-availability.zookeeper.quorum": f"127.0.0.1:{tl.free_port()}",
        "high-availability.zookeeper.client.connection-timeout": "500 ms"},
        masters=[f"127.0.0.1:{tl.free_port()}"] + [f"127.0.0.1:{c.rest_port}"
                                                    for c in cl.coordinators])
    r = flinc("leader", conf=conf)
    assert r.returncode == 0, r.stderr
    assert f"REST: http://127.0.0.1:{leader.rest_port}\n" in r.stdout
    assert "Found through: rest http://127.0.0.1:" in r.stdout, r.stdout


def test_leader_at_jobmanager_address(cl):
    leader = cl.wait_leader()
    standby = next(c for c in cl.coordinators if c is not leader)
    r = flinc("leader", "-m", f"127.0.0.1:{standby.rest_port}")
    assert r.returncode == 0, r.stderr
    assert f"Leader: {leader.ha()['id']}\n" in r.stdout
    assert f"Found through: rest http://127.0.0.1:{standby.rest_port}/ha" in r.stdout


def test_run_batch_job_waits_and_prints_runtime(cl, tmp_dir):
    job = write_job(tmp_dir, "batch", bounded_job(name="cli-batch", parallelism=2, count=5000))
    r = flinc("run", job, conf=cl.conf)
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"^Job has been submitted with JobID ([0-9a-f]{32})$", r.stdout, re.M)
    assert m, r.stdout
    jid = m.group(1)
    assert f"Job with JobID {jid} has finished.\n" in r.stdout
    rt = re.search(r"^Job Runtime: (\d+) ms$", r.stdout, re.M)
    assert rt, r.stdout
    assert int(rt.group(1)) == cl.job(jid)["duration"]
    assert cl.job(jid)["state"] == "FINISHED"


def test_run_detached_list_and_cancel(cl, tmp_dir):
    job = write_job(tmp_dir, "stream", streaming_job(name="cli-stream", parallelism=1))
    r = flinc("run", "-d", "-p", "2", job, conf=cl.conf)
    assert r.returncode == 0, r.stderr
    jid = re.search(r"JobID ([0-9a-f]{32})", r.stdout).group(1)
    assert "has finished" not in r.stdout
    cl.wait_job(jid, "RUNNING")
    assert cl.job(jid)["vertices"][0]["parallelism"] == 2, "-p 2 was not applied"

    r = flinc("list", conf=cl.conf)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "Waiting for response..."
    assert lines[1] == "------------------ Running/Restarting Jobs -------------------"
    assert any(re.fullmatch(LIST_LINE % (jid, "cli-stream", "RUNNING"), ln) for ln in lines), \
        r.stdout
    assert "--------------------------------------------------------------" in lines
    assert lines[-1] == "No scheduled jobs."
    assert flinc("list", "-s", conf=cl.conf).stdout.splitlines()[1:] == ["No scheduled jobs."]

    r = flinc("cancel", jid, conf=cl.conf)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"Cancelling job {jid}.", f"Cancelled job {jid}."]
    assert cl.job(jid)["state"] == "CANCELED"

    r = flinc("list", "-a", conf=cl.conf)
    assert "---------------------- Terminated Jobs -----------------------" in r.stdout
    assert re.search(LIST_LINE % (jid, "cli-stream", "CANCELED"), r.stdout), r.stdout
    r = flinc("list", "-r", conf=cl.conf)
    assert jid not in r.stdout


def test_run_rewrites_input_and_output(cl, tmp_dir):
    wordcount = tl.repo_root() / "examples" / "wordcount.yaml"
    r = flinc("info", "--input", "book.txt", "--output", "out/../counts", wordcount,
              conf=cl.conf, cwd=tmp_dir)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("----------------------- Execution Plan -----------------------\n")
    assert f'"path": "file://{tmp_dir}/book.txt"' in r.stdout
    assert f'"path": "file://{tmp_dir}/counts"' in r.stdout
    # submitted as changed (detached: the file source may not run on this worker yet)
    r = flinc("run", "-d", "--input", "book.txt", "--output", "counts", wordcount,
              conf=cl.conf, cwd=tmp_dir)
    assert r.returncode == 0, r.stderr
    jid = re.search(r"JobID ([0-9a-f]{32})", r.stdout).group(1)
    params = {o["id"]: o["params"] for n in cl.job(jid)["plan"]["nodes"] for o in n["operators"]}
    assert params["lines"]["path"] == f"file://{tmp_dir}/book.txt"
    assert params["out"]["path"] == f"file://{tmp_dir}/counts"
    assert flinc("cancel", jid, conf=cl.conf).returncode == 0


def test_errors_from_the_cluster_are_printed(cl, tmp_dir):
    too_wide = write_job(tmp_dir, "wide", bounded_job(name="wide", parallelism=64))
    r = flinc("run", too_wide, conf=cl.conf)
    assert r.returncode == 1
    assert r.stderr.startswith("flinc: POST /jobs: 400: "), r.stderr
    bad = write_job(tmp_dir, "bad", "name: bad\npipeline:\n  - generator: { wrds: 3 }\n"
                                    "  - sink: { type: discard }\n")
    r = flinc("run", bad, conf=cl.conf)
    assert r.returncode == 1 and "wrds" in r.stderr, r.stderr
    r = flinc("cancel", "0" * 32, conf=cl.conf)
    assert r.returncode == 1 and f"Job {'0' * 32} not found" in r.stderr, r.stderr


def test_savepoint_uses_flinks_rest_call(cl, tmp_dir):
    """POST /jobs/:id/savepoints, then polls the trigger: until the coordinator has the
    endpoint (checkpoints issue) its 404 is what the user sees."""
    job = write_job(tmp_dir, "sp", streaming_job(name="cli-sp", parallelism=1))
    jid = re.search(r"JobID ([0-9a-f]{32})", flinc("run", "-d", job, conf=cl.conf).stdout).group(1)
    try:
        cl.wait_job(jid, "RUNNING")
        r = flinc("savepoint", jid, tmp_dir / "savepoints", conf=cl.conf, timeout=120)
        assert r.stdout.startswith(f"Triggering savepoint for job {jid}.\nWaiting for response...\n")
        if r.returncode == 0:
            assert re.search(r"^Savepoint completed\. Path: \S+$", r.stdout, re.M), r.stdout
        else:
            assert r.returncode == 1
            assert f"POST /jobs/{jid}/savepoints: " in r.stderr, r.stderr
    finally:
        flinc("cancel", jid, conf=cl.conf)


SP_WORDCOUNT = """\
name: {name}
parallelism: 2
checkpointing: {{ interval: 10 min }}
restart-strategy: {{ type: fixed-delay, attempts: 10, delay: 100 ms }}
pipeline:
  - generator: {{ id: words, seed: 7, words: 40, rate: 2000 }}
  - key_by: {{ id: by-word, field: word }}
  - count: {{ id: counts }}
  - sink: {{ id: out, type: file, path: "file://{out}" }}
"""


def savepoint_then_cancel(cl, jid, out: Path, tmp_dir) -> str:
    """`flinc savepoint <jid>` into the cluster's state.savepoints.dir, the committed
    output of it on disk, then `flinc cancel`; returns the savepoint's path as printed."""
    r = flinc("savepoint", jid, conf=cl.conf, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"^Savepoint completed\. Path: (file:\S+)$", r.stdout, re.M)
    assert m, r.stdout
    assert "You can resume your program from this savepoint with the run command." in r.stdout
    path = m.group(1)
    assert path.startswith(f"file://{cl.base_dir}/savepoints/savepoint-{jid[:6]}-"), path
    # the sink commits the savepoint's files when its completion reaches it
    tl.wait_for(lambda: any(out.glob("part-*")), 20, "the savepoint's output committed")
    r = flinc("cancel", jid, conf=cl.conf)
    assert r.returncode == 0, r.stdout + r.stderr
    cl.wait_job(jid, "CANCELED")
    return path


def test_run_from_savepoint_continues_the_counts(cl, tmp_dir):
    """run -d, savepoint, cancel, then `run -s <path> -p 3`: the new job restores the
    savepoint (REST latest.restored) with another parallelism, and every word's committed
    counts go on from the savepoint's, exactly once: a job that started afresh would
    count every word from 1 again (duplicates), one restored from elsewhere would skip
    counts (gaps). Checkpoints are every 10 min, so the only ones are the savepoints and
    the committed output ends exactly at them."""
    from test_exactly_once import check_exactly_once

    out = tmp_dir / "out"
    job = write_job(tmp_dir, "spwc", SP_WORDCOUNT.format(name="cli-sp-wordcount", out=out))
    r = flinc("run", "-d", job, conf=cl.conf)
    assert r.returncode == 0, r.stdout + r.stderr
    jid = re.search(r"JobID ([0-9a-f]{32})", r.stdout).group(1)
    cl.wait_job(jid, "RUNNING")
    path = savepoint_then_cancel(cl, jid, out, tmp_dir)
    before = check_exactly_once(out)
    assert sum(before.values()) > 0

    r = flinc("run", "-d", "-s", path, "-p", "3", job, conf=cl.conf)
    assert r.returncode == 0, r.stdout + r.stderr
    j2 = re.search(r"^Job has been submitted with JobID ([0-9a-f]{32})$", r.stdout, re.M).group(1)
    assert j2 != jid
    j = cl.wait_job(j2, "RUNNING")
    assert {v["parallelism"] for v in j["vertices"]} == {3}, j["vertices"]
    restored = cl.any_rest(f"/jobs/{j2}/checkpoints")["latest"]["restored"]
    assert restored and restored["is_savepoint"] is True, restored
    assert restored["external_path"] == path, (restored, path)
    # the generator goes on from where the savepoint left it: more output to commit
    def writing():
        return any(f.stat().st_size > 0 for f in out.glob(".part-*.inprogress"))
    tl.wait_for(writing, 20, "the resumed job writing output")
    savepoint_then_cancel(cl, j2, out, tmp_dir)
    # the resumed job's checkpoint ids go on after the savepoint's (Flink's too): its
    # own id 1 would collide with the restored savepoint's id 1
    sp2 = cl.any_rest(f"/jobs/{j2}/checkpoints")["latest"]["savepoint"]
    assert sp2["id"] > restored["id"], (sp2, restored)
    after = check_exactly_once(out)
    assert sum(after.values()) > sum(before.values()), (sum(after.values()),
                                                        sum(before.values()))
    assert all(after[w] >= n for w, n in before.items()), "a word's counts went back"
    print(f"\n[cli run -s] {len(after)} words; counts before the savepoint "
          f"{sum(before.values())}, after the resumed job {sum(after.values())}")


def test_run_from_a_missing_savepoint_fails_with_a_clear_error(cl, tmp_dir):
    job = write_job(tmp_dir, "nosp", streaming_job(name="cli-nosp", parallelism=1))
    missing = tmp_dir / "no-such-savepoint"
    r = flinc("run", "-d", "-s", missing, job, conf=cl.conf)
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr.startswith("flinc: POST /jobs?savepointPath="), r.stderr
    assert f": 400: savepointPath: cannot find a savepoint at 'file://{missing}'" in r.stderr, \
        r.stderr
    assert "No such file or directory" in r.stderr, r.stderr
    (tmp_dir / "empty-dir").mkdir()
    r = flinc("run", "-d", "-s", tmp_dir / "empty-dir", job, conf=cl.conf)
    assert r.returncode == 1 and "cannot find a savepoint" in r.stderr, r.stderr
    assert "Job has been submitted" not in r.stdout
    jobs = cl.any_rest("/jobs/overview")["jobs"]
    assert not [x for x in jobs if x["name"] == "cli-nosp"], "no job may have been created"


def test_calls_wait_through_a_leader_failover(cl, tmp_dir):
    """Right after kill -9 of the leader, ZooKeeper still names it until its session
    expires: the CLI keeps asking until the new leader answers."""
    job = write_job(tmp_dir, "fo", streaming_job(name="cli-failover", parallelism=1))
    jid = re.search(r"JobID ([0-9a-f]{32})", flinc("run", "-d", job, conf=cl.conf).stdout).group(1)
    cl.wait_job(jid, "RUNNING")
    old = cl.wait_leader()
    old.proc.kill()
    try:
        r = flinc("list", conf=cl.conf, timeout=60)
        assert r.returncode == 0, r.stderr
        assert jid in r.stdout, r.stdout
        new = cl.wait_leader(not_index=old.index)
        r = flinc("leader", conf=cl.conf)
        assert f"REST: http://127.0.0.1:{new.rest_port}\n" in r.stdout, r.stdout
        assert flinc("cancel", jid, conf=cl.conf).returncode == 0
    finally:
        old.start()
        tl.wait_for(lambda: old.ha()["role"] == "standby", 30, "the old leader back as standby")


def test_no_cluster_is_an_error_not_a_hang(tmp_dir):
    conf = tl.make_conf_dir(tmp_dir / "conf", {}, masters=[f"127.0.0.1:{tl.free_port()}"])
    r = flinc("list", conf=conf, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "127.0.0.1" in r.stderr


BAD = [
    ([], "please specify an action"),
    (["bogus"], "'bogus' is not a valid action"),
    (["--nope", "list"], "unknown option"),
    (["run"], "missing the job file"),
    (["run", "-p", "0", "x.yaml"], "-p 0"),
    (["run", "-p", "many", "x.yaml"], "-p many"),
    (["run", "-p"], "-p needs a value"),
    (["run", "a.yaml", "b.yaml"], "unexpected argument 'b.yaml'"),
    (["run", "-n", "x.yaml"], "-n needs -s"),
    (["run", "x.yaml", "-s"], "-s needs a value"),
    (["run", "--fromSavepoint"], "-s needs a value"),
    (["run", "--bogus", "x.yaml"], "unknown option '--bogus'"),
    (["run", "--input", "", "x.yaml"], "--input needs a path"),
    (["list", "extra"], "unexpected argument 'extra'"),
    (["list", "-x"], "unknown option '-x'"),
    (["list", "-m"], "-m needs a value"),
    (["cancel"], "missing the job id"),
    (["cancel", "12345"], "'12345' is not a job id"),
    (["cancel", "0" * 32, "more"], "unexpected argument 'more'"),
    (["savepoint"], "missing the job id"),
    (["savepoint", "zz"], "'zz' is not a job id"),
    (["savepoint", "0" * 32, "/d", "more"], "unexpected argument 'more'"),
    (["info"], "missing the job file"),
    (["info", "-p", "-3", "x.yaml"], "-p -3"),
    (["info", "a", "b"], "unexpected argument 'b'"),
    (["leader", "extra"], "unexpected argument 'extra'"),
    (["leader", "--jobmanager"], "needs a value"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[" ".join(a) or "(none)" for a, _ in BAD])
def test_bad_arguments_print_usage_and_exit_2(argv, message):
    r = flinc(*argv, timeout=20)
    assert r.returncode == 2, f"flinc {argv}: exit {r.returncode}, expected 2: {r.stderr}"
    assert message in r.stderr, r.stderr
    assert "usage: flinc" in r.stderr, r.stderr
    assert r.stdout == ""


@pytest.mark.parametrize("action", ["run", "list", "cancel", "savepoint", "info", "leader"])
def test_help_of_each_action(action):
    r = flinc(action, "--help", timeout=20)
    assert r.returncode == 0 and r.stdout.startswith(f"usage: flinc {action}"), r.stdout
