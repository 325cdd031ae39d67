"""Acceptance of the dataflow issue on a real cluster (a 3-server ZooKeeper quorum, a real
coordinator, two real workers, real RocksDB):

  5. batch WordCount over a ~100 MB text file, run with the `flinc` CLI, equals the
     counts of `tr | tr | sort | uniq -c` computed here;
  6. backpressure: an unlimited generator into a deliberately slow sink (the discard
     sink's `rate`, a testing aid) for 60 s: every worker's VmRSS stays under the bound
     README.md "Dataflow and checkpoints" states, and checkpoints keep completing.

(Acceptance 3, savepoint resume at parallelism 3 and 1, is in test_exactly_once.py.)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import flinc_testlib as tl

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "bench"))
from failover_cluster import Cluster  # noqa: E402


def two_workers(zk_quorum, tmp_dir, procs, zk_root, settings=None):
    """One coordinator and two workers of one slot each: a job of parallelism 2 spreads
    over both, so its hash channels cross workers (TCP) and stay local too."""
    cl = Cluster(zk_quorum, tmp_dir, procs, root=zk_root, coordinators=1, workers=2, slots=1,
                 settings=settings)
    cl.start()
    return cl


# ---- acceptance 5: batch WordCount over 100 MB ----

TEXT_BYTES = 100 * 1000 * 1000


def write_text(path: Path, size: int) -> None:
    """Deterministic ASCII text of `size` bytes or a little more: lines of words from a
    vocabulary of 5000 mixed-case words (letters and digits), joined by spaces and
    punctuation, some lines starting or ending with a separator."""
    import random
    rnd = random.Random(356)
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    vocab = []
    for i in range(5000):
        n = rnd.randint(1, 12)
        w = "".join(rnd.choice(letters) for _ in range(n))
        if i % 7 == 0:
            w += str(i)
        if i % 11 == 0:
            w = str(rnd.randint(0, 99)) + w
        vocab.append(w)
    seps = [" ", " ", " ", ", ", ". ", "; ", " - ", "! ", "? ", " (", ") ", "'", "\"", "\t",
            ":", "--", "/", "_"]
    lines = []
    for i in range(20000):
        k = rnd.randint(0, 16)
        words = [vocab[int(rnd.paretovariate(1.2)) % len(vocab)] if rnd.random() < 0.5
                 else rnd.choice(vocab) for _ in range(k)]
        parts = []
        if i % 13 == 0:
            parts.append(rnd.choice(seps))
        for j, w in enumerate(words):
            if j:
                parts.append(rnd.choice(seps))
            parts.append(w)
        if i % 17 == 0:
            parts.append(rnd.choice(seps))
        lines.append("".join(parts))
    block = ("\n".join(lines) + "\n").encode("ascii")
    with open(path, "wb") as f:
        written = 0
        rot = 0
        while written < size:
            # rotate the block's lines so that the file is not one block repeated verbatim
            cut = block.find(b"\n", (rot * 7919) % len(block)) + 1
            chunk = block[cut:] + block[:cut]
            f.write(chunk)
            written += len(chunk)
            rot += 1


def reference_counts(path: Path) -> dict:
    """word -> count by the shell: split at every character that is not a letter or
    digit, lower-case, sort, uniq -c; empty tokens dropped."""
    env = {**os.environ, "LC_ALL": "C"}
    out = subprocess.run(
        ["sh", "-c", f"tr -cs 'A-Za-z0-9' '\\n' < '{path}' | tr 'A-Z' 'a-z' | sort -S 256M "
                     "| uniq -c"],
        capture_output=True, check=True, env=env).stdout.decode("ascii")
    counts = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2:
            counts[parts[1]] = int(parts[0])
    return counts


def output_counts(out: Path) -> dict:
    """word -> final count from the job's committed part files: the keyed count emits a
    running count per record, so a word's final count is its largest."""
    files = sorted(p for p in out.rglob("part-*") if p.is_file())
    assert files, f"no committed part files under {out}"
    env = {**os.environ, "LC_ALL": "C"}
    res = subprocess.run(
        ["awk", '{ if (NF != 2 || $2 !~ /^[0-9]+$/) { print "malformed: " $0; exit 1 } '
                'if ($2 + 0 > m[$1]) m[$1] = $2 + 0 } END { for (w in m) print w, m[w] }']
        + [str(f) for f in files], capture_output=True, env=env)
    assert res.returncode == 0, res.stdout[-500:] + res.stderr[-500:]
    counts = {}
    for line in res.stdout.decode("ascii").splitlines():
        w, n = line.split(" ")
        counts[w] = int(n)
    return counts


def test_batch_wordcount_100mb_equals_shell_pipeline(zk_quorum, tmp_dir, procs, zk_root,
                                                     capsys):
    cl = two_workers(zk_quorum, tmp_dir, procs, zk_root)
    conf = tl.make_conf_dir(tmp_dir / "conf" / "cli", cl.settings,
                            masters=[f"127.0.0.1:{c.rest_port}" for c in cl.coordinators])
    text = tmp_dir / "input.txt"
    t0 = time.monotonic()
    write_text(text, TEXT_BYTES)
    t_gen = time.monotonic() - t0
    size = text.stat().st_size
    assert size >= TEXT_BYTES
    out = tmp_dir / "counts"
    t0 = time.monotonic()
    r = subprocess.run([str(tl.binary("flinc")), "--configDir", str(conf), "run", "-p", "2",
                        str(ROOT / "examples" / "wordcount.yaml"), "--input", str(text),
                        "--output", str(out)],
                       capture_output=True, text=True, timeout=tl.scaled(300),
                       stdin=subprocess.DEVNULL, env={**os.environ, "FLINC_CONF_DIR": ""})
    t_job = time.monotonic() - t0
    assert r.returncode == 0, (r.stdout, r.stderr)
    m = re.search(r"Job with JobID ([0-9a-f]{32}) has finished\.\n", r.stdout)
    assert m, r.stdout
    rt = re.search(r"Job Runtime: (\d+) ms\n", r.stdout)
    assert rt, r.stdout
    job = cl.job(m.group(1))
    assert job["state"] == "FINISHED", job
    assert all(v["parallelism"] == 2 for v in job["vertices"]), job["vertices"]
    t0 = time.monotonic()
    want = reference_counts(text)
    t_ref = time.monotonic() - t0
    t0 = time.monotonic()
    got = output_counts(out)
    t_read = time.monotonic() - t0
    assert len(want) > 1000 and sum(want.values()) > 5_000_000, \
        f"the reference saw too little: {len(want)} words"
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    wrong = sorted(w for w in set(want) & set(got) if want[w] != got[w])
    assert not missing and not extra and not wrong, \
        (f"{len(missing)} words missing (e.g. {missing[:5]}), {len(extra)} extra (e.g. "
         f"{extra[:5]}), {len(wrong)} with another count (e.g. "
         f"{[(w, want[w], got[w]) for w in wrong[:5]]})")
    with capsys.disabled():
        print(f"\n[wordcount] {size / 1e6:.1f} MB, {sum(want.values())} words, {len(want)} "
              f"distinct; job runtime {rt.group(1)} ms ({t_job:.1f} s with the CLI), text "
              f"{t_gen:.1f} s, shell reference {t_ref:.1f} s, output read {t_read:.1f} s",
              flush=True)


# ---- acceptance 6: backpressure with bounded memory ----

BACKPRESSURE_S = 60  # wall time of the run, deliberately not scaled
# The bound every worker's VmRSS must stay under; README.md "Dataflow and checkpoints"
# derives it: RocksDB (state.backend.rocksdb.memory.fixed-per-tm, 64 MB here) + network
# buffers (a few MB) + the process itself and slack.
ROCKSDB_MB = 64
RSS_BOUND_MB = 128

BACKPRESSURE_JOB = """\
name: backpressure
parallelism: 2
checkpointing: {{ interval: 1 s, timeout: 10 s }}
pipeline:
  - generator: {{ seed: 5, words: 100000 }}
  - key_by: {{ field: word }}
  - count: {{}}
  - sink: {{ type: discard, rate: {rate} }}
"""
SINK_RATE = 20000  # records/s for the whole sink: 10 000 per subtask


def vm_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


def test_backpressure_bounded_memory_and_checkpoints(zk_quorum, tmp_dir, procs, zk_root,
                                                     capsys):
    cl = two_workers(zk_quorum, tmp_dir, procs, zk_root, settings={
        "state.backend.rocksdb.memory.fixed-per-tm": f"{ROCKSDB_MB} mb"})
    jid = cl.submit(BACKPRESSURE_JOB.format(rate=SINK_RATE))
    cl.wait_job(jid, "RUNNING", timeout=30)
    assert len(cl.workers_of_job(jid)) == 2, "expected the job on both workers"

    def completed():
        return cl.any_rest(f"/jobs/{jid}/checkpoints")["counts"]["completed"]

    def source_records():
        return cl.job(jid)["vertices"][0]["metrics"]["write-records"]

    tl.wait_for(lambda: completed() >= 1, 30, "a first completed checkpoint")
    c0, r0, t0 = completed(), source_records(), time.monotonic()
    peak = {w.index: 0 for w in cl.workers}
    samples = 0
    t_end = time.monotonic() + BACKPRESSURE_S
    while time.monotonic() < t_end:
        for w in cl.workers:
            assert w.is_running(), f"worker{w.index} exited: {w.proc.tail(30)}"
            kb = vm_rss_kb(w.proc.pid)
            peak[w.index] = max(peak[w.index], kb)
            assert kb < RSS_BOUND_MB * 1024, \
                (f"worker{w.index} VmRSS {kb} kB after {samples} s over the bound "
                 f"{RSS_BOUND_MB} MB")
        samples += 1
        time.sleep(1.0)  # the sampling period, not a wait for a condition
    c1, r1, t1 = completed(), source_records(), time.monotonic()
    st = cl.any_rest(f"/jobs/{jid}/checkpoints")
    # the unlimited generator was held back to the sink's pace (backpressure), give or
    # take the buffers in flight; alone it makes millions of records per second
    src_rate = (r1 - r0) / (t1 - t0)
    assert src_rate < SINK_RATE * 1.5, \
        f"the source made {src_rate:.0f} records/s: the slow sink did not hold it back"
    assert cl.job(jid)["state"] == "RUNNING"
    # checkpoints every second for 60 s: at least a third of them must complete in time
    # although every channel is full all the time (fewer on a machine slow enough to
    # scale deadlines: timing must not decide the test)
    need = max(5, int(BACKPRESSURE_S / 3 / tl.timeout_scale()))
    assert c1 - c0 >= need, \
        (f"only {c1 - c0} checkpoints completed in {BACKPRESSURE_S} s under backpressure; "
         f"counts {st['counts']}, latest failed {st['latest']['failed']}")
    status, _ = cl.wait_leader().rest(f"/jobs/{jid}?mode=cancel", "PATCH")
    assert status == 202
    cl.wait_job(jid, "CANCELED", timeout=30)
    with capsys.disabled():
        print(f"\n[backpressure] {BACKPRESSURE_S} s, sink rate {SINK_RATE}/s, source "
              f"{src_rate:.0f}/s: peak VmRSS "
              f"{ {i: f'{kb / 1024:.1f} MB' for i, kb in peak.items()} } (bound "
              f"{RSS_BOUND_MB} MB), checkpoints completed {c1 - c0}, failed "
              f"{st['counts']['failed']}, latest completed "
              f"{(st['latest']['completed'] or {}).get('end_to_end_duration')} ms",
              flush=True)
