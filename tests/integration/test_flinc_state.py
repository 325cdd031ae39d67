"""flinc-state (tools/state/) against the checkpoints of a real streaming word count
(generator p=2, key_by, count, exactly-once file sink) on a real cluster: list, show,
dump, verify, diff, restore, bad input, and the checkpoint directory left untouched.

The run is one module fixture: the job runs until a few checkpoints complete and is
canceled; every test then reads the job's checkpoint directory (or a copy it may break).

Why dump is checked against "the output of the checkpoint" and not "all committed output":
with the two-phase-commit sink, checkpoint N's barrier closes the sink's in-progress part
file (it becomes pending, owned by N) and N's subtask state records the sink's next_seq;
the files are renamed to part-* only when the worker hears that N completed. The cancel
may come before that notification, so some of N's files can still be hidden .pending
files, and nothing after N is ever committed. Barriers are aligned, so the lines the sink
received before barrier N are exactly the count operator's updates before N: for every
word w, the files of each sink subtask s with seq < next_seq(s) at N (committed or still
pending) hold exactly the lines "w 1" .. "w C" where C is the count in N's keyed state.
That is the check below (an equality, both ways), and it is exact.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

import flinc_testlib as tl

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))
from failover_cluster import Cluster  # noqa: E402

WORDCOUNT = """\
name: state-wordcount
parallelism: 2
checkpointing: {{ interval: 300 ms, timeout: 4 s }}
pipeline:
  - generator: {{ seed: 7, words: 40, rate: 1000 }}
  - key_by: {{ field: word }}
  - count: {{ id: counter }}
  - sink: {{ type: file, path: "file://{out}" }}
"""

RETAINED = 3


def tool() -> Path:
    return tl.binary("flinc-state")


def run(*args, check_rc=None, tmpdir=None):
    env = dict(os.environ, TMPDIR=str(tmpdir)) if tmpdir else None
    p = subprocess.run([str(tool()), *map(str, args)], capture_output=True, text=True,
                       timeout=60 * tl.timeout_scale(), env=env)
    if check_rc is not None:
        assert p.returncode == check_rc, (
            f"flinc-state {' '.join(map(str, args))}: exit {p.returncode}, expected "
            f"{check_rc}\nstdout:\n{p.stdout[-3000:]}\nstderr:\n{p.stderr[-3000:]}")
    return p


def tree_hash(root: Path) -> str:
    """Names, modes, sizes and contents of every entry under root."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            st = p.lstat()
            h.update(f"{p.relative_to(root)}\0{st.st_mode}\0{st.st_size}\0".encode())
            if p.is_file() and not p.is_symlink():
                h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def wc(zk_quorum_module):
    """Runs the word count until RETAINED + 1 checkpoints completed, cancels it and
    stops the cluster. Yields {job_dir, out, chks (sorted ids), base}."""
    base = Path(tl.make_tmp_dir(prefix="flinc-state-"))
    procs = tl.ProcessGroup(str(base))
    try:
        cl = Cluster(zk_quorum_module, str(base), procs,
                     root=f"/flinc-test-state-{tl.unique_suffix()}", coordinators=1,
                     workers=1, slots=4, settings={"state.checkpoints.num-retained": RETAINED})
        cl.start()
        out = base / "out"
        jid = cl.submit(WORDCOUNT.format(out=out))
        cl.wait_job(jid, "RUNNING", timeout=20)

        def completed():
            return cl.any_rest(f"/jobs/{jid}/checkpoints")["counts"]["completed"]
        tl.wait_for(lambda: completed() >= RETAINED + 1, 30,
                    f"{RETAINED + 1} completed checkpoints")
        status, _ = cl.wait_leader().rest(f"/jobs/{jid}?mode=cancel", "PATCH")
        assert status == 202, f"cancel: HTTP {status}"
        cl.wait_job(jid, "CANCELED", timeout=30)
        procs.close()  # nothing writes the checkpoint dir from here on
        job_dir = base / "checkpoints" / jid
        chks = sorted(int(p.name[4:]) for p in job_dir.glob("chk-*")
                      if (p / "_metadata").is_file())
        assert len(chks) >= 2, f"retained checkpoints in {job_dir}: {chks}"
        yield {"job_dir": job_dir, "out": out, "chks": chks, "base": base}
    finally:
        procs.close()
        if not tl.keep_tmp():
            tl.remove_tmp_dir(str(base))


@pytest.fixture
def untouched(wc):
    """Fails the test if the job's checkpoint dir changed in any byte."""
    before = tree_hash(wc["job_dir"])
    yield
    assert tree_hash(wc["job_dir"]) == before, "the checkpoint directory changed"


def latest(wc) -> Path:
    return wc["job_dir"] / f"chk-{wc['chks'][-1]}"


def test_list(wc, untouched):
    p = run("list", wc["job_dir"], check_rc=0)
    rows = [ln.split() for ln in p.stdout.splitlines()[1:] if ln.strip()]
    ids = [int(r[0]) for r in rows]
    assert ids == wc["chks"], f"list ids {ids}, expected {wc['chks']}\n{p.stdout}"
    assert len(ids) == RETAINED, f"retained: {ids}, expected {RETAINED}"
    for r in rows:
        assert r[2] == "checkpoint" and int(r[3]) > 0 and int(r[4]) >= 0, f"row {r}"


def test_show(wc, untouched):
    p = run("show", wc["job_dir"], "--checkpoint", wc["chks"][-1], check_rc=0)
    q = run("show", latest(wc), check_rc=0)
    assert p.stdout == q.stdout
    text = p.stdout
    assert f"checkpoint {wc['chks'][-1]} " in text
    ranges = sorted(re.findall(r"key groups \[(\d+), (\d+)\) of (\d+)", text))
    assert len(ranges) == 2, f"keyed subtasks: {ranges}\n{text}"
    assert {(int(a), int(b)) for a, b, _ in ranges} == {(0, 64), (64, 128)}, ranges
    assert "operator counter" in text and re.search(r"shared shared/[0-9a-f]{32}\.sst", text)
    assert re.search(r"private chk-\d+/sb-[0-9a-f]{32}\.pack", text)


def sink_output_of(wc, chk: Path) -> dict:
    """{word: sorted counts} of the sink files written before chk's barrier."""
    text = run("show", chk, check_rc=0).stdout
    next_seq, sub = {}, None
    for ln in text.splitlines():
        m = re.match(r"vertex \d+ \(.*\) subtask (\d+)/\d+", ln)
        if m:
            sub = int(m.group(1))
        m = re.match(r"\s+sink: next_seq (\d+)", ln)
        if m:
            next_seq[sub] = int(m.group(1))
    assert len(next_seq) == 2, f"sink states in show: {next_seq}\n{text}"
    counts = defaultdict(list)
    for f in wc["out"].iterdir():
        m = re.fullmatch(r"\.?part-(\d+)-(\d+)-(\d+)(\.pending)?", f.name)
        if not m or int(m.group(3)) >= next_seq[int(m.group(2))]:
            continue
        for ln in f.read_text().splitlines():
            w, _, n = ln.rpartition(" ")
            counts[w].append(int(n))
    return counts


def test_dump_is_the_checkpoints_output(wc, untouched, tmp_path):
    chk = latest(wc)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    p = run("dump", chk, "--operator", "counter", check_rc=0, tmpdir=tmp)
    assert list(tmp.iterdir()) == [], "dump left its restore dir behind"
    dumped = {}
    for ln in p.stdout.splitlines():
        w, _, n = ln.rpartition(" ")
        assert w not in dumped, f"word {w!r} dumped twice"
        dumped[w] = int(n)
    assert len(dumped) > 10, f"too few keys: {dumped}"
    out = sink_output_of(wc, chk)
    expect = {w: len(c) for w, c in out.items()}
    for w, c in out.items():
        assert sorted(c) == list(range(1, len(c) + 1)), f"{w}: output counts {sorted(c)}"
    assert dumped == expect, (
        "dump vs output before the barrier: " +
        str({w: (dumped.get(w), expect.get(w)) for w in set(dumped) | set(expect)
             if dumped.get(w) != expect.get(w)}))
    # --json and --key agree with the text form
    j = json.loads(run("dump", chk, "--operator", "counter", "--json", check_rc=0).stdout)
    assert {e["key"]: e["value"] for e in j} == dumped
    assert all(e["state"] == "agg" for e in j)
    w = sorted(dumped)[0]
    k = run("dump", chk, "--operator", "counter", "--key", w, "--state", "agg", check_rc=0)
    assert k.stdout == f"{w} {dumped[w]}\n"
    bad = run("dump", chk, "--operator", "nosuch", check_rc=1)
    assert "operator nosuch has no keyed state" in bad.stderr and "counter" in bad.stderr


def test_verify_ok_then_missing_and_corrupt(wc, untouched, tmp_path):
    run("verify", latest(wc), check_rc=0)
    copy = tmp_path / "job"
    shutil.copytree(wc["job_dir"], copy)
    chk = copy / latest(wc).name
    text = run("show", chk, check_rc=0).stdout
    shared = sorted(set(re.findall(r"shared (shared/[0-9a-f]{32}\.sst)", text)))
    assert len(shared) >= 2, f"shared files: {shared}"
    (copy / shared[0]).unlink()
    f = copy / shared[1]
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    p = run("verify", chk, check_rc=1)
    assert f"MISSING {shared[0]}" in p.stdout, p.stdout
    assert f"CORRUPT {shared[1]}: crc32c" in p.stdout, p.stdout
    assert "FAILED" in p.stdout and p.stdout.count("\n") == 3, p.stdout


def test_diff(wc, untouched):
    a, b = (wc["job_dir"] / f"chk-{i}" for i in wc["chks"][-2:])
    p = run("diff", a, b, check_rc=0)
    m = re.search(r"summary: files \+(\d+) -(\d+) ~(\d+), keys \+(\d+) -(\d+) ~(\d+)", p.stdout)
    assert m, p.stdout
    # each checkpoint has its own packs; the counts only grow
    assert int(m.group(1)) >= 2 and int(m.group(2)) >= 2, p.stdout
    assert int(m.group(5)) == 0 and int(m.group(4)) + int(m.group(6)) > 0, p.stdout
    for ln in p.stdout.splitlines():
        mm = re.match(r"~ counter/agg (\S+) (\d+) -> (\d+)$", ln)
        if mm:
            assert int(mm.group(3)) > int(mm.group(2)), ln
    same = run("diff", b, b, check_rc=0)
    assert "summary: files +0 -0 ~0, keys +0 -0 ~0" in same.stdout


def ldb_entry(line: str):
    """(key group, key, int64 value) of an ldb --hex scan line of a count state: key =
    u16 BE key group | varint len | key | varint len (0) | namespace; value int64 LE."""
    k, _, v = line.partition(" : ")
    kb, vb = bytes.fromhex(k[2:]), bytes.fromhex(v[2:])
    n = kb[2]  # words are short: a one-byte varint
    assert n < 0x80 and kb[3 + n:] == b"\0", f"unexpected key layout {k}"
    return (int.from_bytes(kb[:2], "big"), kb[3:3 + n].decode(),
            int.from_bytes(vb, "little", signed=True))


def test_restore_and_ldb(wc, untouched, tmp_path):
    chk = latest(wc)
    ldb = shutil.which("ldb") or shutil.which("rocksdb_ldb")
    for sub in (0, 1):
        to = tmp_path / f"r{sub}"
        run("restore", chk, "--operator", "counter", "--subtask", sub, "--to", to, check_rc=0)
        assert (to / "CURRENT").is_file()
        if ldb:
            # ldb opens the restored copy (and may write its LOG there), never the
            # checkpoint; --hex lines are "0x<key> : 0x<value>"
            q = subprocess.run([ldb, f"--db={to}", "--column_family=agg", "--hex", "scan"],
                               capture_output=True, text=True, timeout=60)
            assert q.returncode == 0, q.stderr
            keys = [ln for ln in q.stdout.splitlines() if ln.startswith("0x")]
            mine = [e for e in json.loads(run("dump", chk, "--operator", "counter", "--json")
                                          .stdout) if e["subtask"] == sub]
            assert len(keys) == len(mine), f"ldb {len(keys)} keys, flinc-state {len(mine)}"
            assert {ldb_entry(ln) for ln in keys} == \
                {(e["key_group"], e["key"], e["value"]) for e in mine}
    exists = run("restore", chk, "--operator", "counter", "--subtask", 0, "--to",
                 tmp_path / "r0", check_rc=1)
    assert "exists" in exists.stderr
    inside = run("restore", chk, "--operator", "counter", "--subtask", 0, "--to",
                 chk / "new" / "dir", check_rc=1)
    assert "is inside the checkpoint directory" in inside.stderr, inside.stderr
    if not ldb:
        pytest.skip("restore checked; RocksDB's ldb (rocksdb-tools) not installed")


def test_not_a_checkpoint_and_truncated(wc, untouched, tmp_path):
    p = run("show", tmp_path, check_rc=1)
    assert p.stderr == f"flinc-state: {tmp_path}: not a checkpoint directory (no _metadata)\n"
    p = run("verify", wc["job_dir"], check_rc=1)
    assert "not a checkpoint directory (no _metadata)" in p.stderr
    p = run("list", tmp_path, check_rc=1)
    assert p.stderr == f"flinc-state: {tmp_path}: not a job checkpoint directory (no chk-<n>)\n"
    bad = tmp_path / "chk-9"
    bad.mkdir()
    data = (latest(wc) / "_metadata").read_bytes()
    (bad / "_metadata").write_bytes(data[: len(data) // 2])
    for cmd in ("show", "verify"):
        p = run(cmd, bad, check_rc=1)
        assert p.stderr.startswith(f"flinc-state: {bad}/_metadata: truncated _metadata ("), \
            p.stderr
    p = run("dump", bad, "--operator", "counter", check_rc=1)
    assert "truncated _metadata" in p.stderr
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x01
    (bad / "_metadata").write_bytes(bytes(flipped))
    p = run("show", bad, check_rc=1)
    assert p.stderr.startswith(f"flinc-state: {bad}/_metadata: corrupt _metadata: "), p.stderr


@pytest.mark.parametrize("args", [
    [], ["nosuch"], ["list"], ["list", "a", "b"], ["show"], ["show", "x", "--checkpoint"],
    ["show", "x", "--checkpoint", "abc"], ["verify"], ["dump", "x"],
    ["dump", "x", "--operator"], ["dump", "x", "--operator", "c", "--bogus"], ["diff", "x"],
    ["restore", "x", "--operator", "c"], ["restore", "x", "--operator", "c", "--subtask", "z",
                                         "--to", "y"],
])
def test_bad_arguments(args):
    p = run(*args, check_rc=2)
    assert "usage: flinc-state list" in p.stderr, p.stderr
    assert p.stdout == ""
