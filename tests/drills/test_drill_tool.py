"""flinc-drill (tools/drill/flinc-drill), the Operations issue, acceptance 5: 20 kill -9
rounds against a local cluster print per-round recovery times, min / median / p99 and an
exactly-once verdict; its output checker is checked here on made-up outputs too.

The exactly-once verdict of the drill run itself is expected to be true only once the
dataflow's exactly-once file sink exists (checkpoints, two-phase commit); until then the
sink rewrites from the start after each restart, the checker finds the duplicates, and
test_drill_output_is_exactly_once is an expected failure.
"""

from __future__ import annotations

import collections
import importlib.machinery
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import flinc_testlib as tl

DRILL = tl.repo_root() / "tools" / "drill" / "flinc-drill"
ROUNDS = 20


def load_drill_module():
    loader = importlib.machinery.SourceFileLoader("flinc_drill", str(DRILL))
    spec = importlib.util.spec_from_loader("flinc_drill", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


drill = load_drill_module()


# ------------------------------------------------------------------ the checker alone


def gen_job(count=0, parallelism=1, extra=()):
    pipeline = [{"generator": {"seed": 5, "words": 7, "count": count}}, *extra,
                {"sink": {"type": "file", "path": "file:///x"}}]
    return {"name": "j", "parallelism": parallelism, "pipeline": pipeline}


def write(d: Path, name: str, lines) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text("".join(f"{ln}\n" for ln in lines))


def records(n0, n1, seed=5, words=7):
    return [f"w{(seed + n) % words}" for n in range(n0, n1)]


def test_checker_sequence(tmp_dir):
    out = tmp_dir / "seq"
    write(out, "part-0-1-0", records(0, 30))
    write(out, "part-0-1-1", records(30, 52))
    write(out, ".part-0-1-2.inprogress", records(52, 60))  # not committed: ignored
    ok, check = drill.check_output(gen_job(), out, "CANCELED")
    assert ok is True and check["mode"] == "sequence" and check["records"] == 52, check

    write(out, "part-0-2-0", records(0, 10))  # a restart that wrote from the start again
    ok, check = drill.check_output(gen_job(), out, "CANCELED")
    assert ok is False and check["duplicated_or_unexpected"] > 0, check


def test_checker_bounded(tmp_dir):
    out = tmp_dir / "b"
    write(out, "a", records(0, 100, 5, 7)[::2])
    write(out, "b", records(0, 100, 5, 7)[1::2])
    ok, check = drill.check_output(gen_job(count=100, parallelism=2), out, "FINISHED")
    assert ok is True and check["mode"] == "bounded", check
    write(out, "c", ["w3"])
    assert drill.check_output(gen_job(count=100, parallelism=2), out, "FINISHED")[0] is False
    verdict, check = drill.check_output(gen_job(count=100), out, "CANCELED")
    assert verdict == "unchecked" and "CANCELED" in check["reason"]


def test_checker_count(tmp_dir):
    job = gen_job(extra=[{"key_by": {"field": "word"}}, {"count": {}}])
    out = tmp_dir / "c"
    write(out, "p0", ["(w1,1)", "(w2,1)", "(w1,2)"])
    write(out, "p1", ["(w1,3)", "(w2,2)"])
    ok, check = drill.check_output(job, out, "CANCELED")
    assert ok is True and check == {**check, "mode": "count", "words": 2, "duplicates": 0,
                                    "gaps": 0}
    write(out, "p2", ["(w2,2)", "(w1,5)"])
    ok, check = drill.check_output(job, out, "CANCELED")
    assert ok is False and check["duplicates"] == 1 and check["gaps"] == 1, check


def test_checker_count_reads_the_file_sinks_lines(tmp_dir):
    """The file sink writes a keyed count as "<word> <count>" (worker/ops.h)."""
    job = gen_job(extra=[{"key_by": {"field": "word"}}, {"count": {}}])
    out = tmp_dir / "c"
    write(out, "part-2-0-0", ["w1 1", "w2 1", "w1 2"])
    write(out, "part-2-1-0", ["w3 1", "w2 2"])
    ok, check = drill.check_output(job, out, "CANCELED")
    assert ok is True and check == {**check, "mode": "count", "words": 3, "records": 5}, check
    write(out, "part-2-0-1", ["w1 2", "w3 3"])
    ok, check = drill.check_output(job, out, "CANCELED")
    assert ok is False and check["duplicates"] == 1 and check["gaps"] == 1, check
    write(out, "part-2-1-1", ["w1 two"])
    ok, check = drill.check_output(job, out, "CANCELED")
    assert ok is False and "'w1 two'" in check["reason"], check


def test_checker_says_what_it_cannot_check(tmp_dir):
    discard = {"name": "d", "pipeline": [{"generator": {}}, {"sink": {"type": "discard"}}]}
    verdict, check = drill.check_output(discard, tmp_dir, "CANCELED")
    assert verdict == "unchecked" and "file sink" in check["reason"]
    verdict, check = drill.check_output(gen_job(parallelism=2), tmp_dir, "CANCELED")
    assert verdict == "unchecked" and "parallelism 1" in check["reason"]
    tok = gen_job(extra=["tokenize"])
    assert drill.check_output(tok, tmp_dir, "CANCELED")[0] == "unchecked"


def test_expected_records_match_the_generator_definition():
    gen = {"seed": 123, "words": 11, "line_words": 1}
    for k in (0, 1, 10, 11, 12, 100):
        want = collections.Counter(drill.generator_word(123, 11, 1, n) for n in range(k))
        assert drill.expected_records(gen, k) == want, k
    gen3 = {"seed": 4, "words": 9, "line_words": 3}
    assert drill.expected_records(gen3, 5) == collections.Counter(
        drill.generator_word(4, 9, 3, n) for n in range(5))


# ------------------------------------------------------------------ the drill itself


@pytest.fixture(scope="module")
def run20():
    env = {**os.environ, "FLINC_BUILD_DIR": str(tl.build_dir())}
    r = subprocess.run([sys.executable, str(DRILL), "--local", "--rounds", str(ROUNDS),
                        "--target", "random", "--seed", "20"], env=env, capture_output=True,
                       text=True, timeout=tl.scaled(420))
    print(r.stderr[-4000:], file=sys.stderr)
    return r


def test_twenty_rounds_print_recovery_times(run20):
    r = run20
    assert r.returncode in (0, 3), f"flinc-drill exit {r.returncode}\n{r.stdout}\n{r.stderr[-3000:]}"
    lines = r.stdout.splitlines()
    assert lines[0].split()[:4] == ["round", "target", "killed", "pid"], lines[0]
    rows = [ln for ln in lines[1:] if re.match(r"^\s*\d+\s+(leader|worker)\s", ln)]
    assert len(rows) == ROUNDS, r.stdout
    assert {ln.split()[1] for ln in rows} == {"leader", "worker"}, "random picks both kinds"
    m = re.search(r"^recovery_ms: min (\d+)  median (\d+)  p99 (\d+) \(20 rounds\)$", r.stdout,
                  re.M)
    assert m, r.stdout
    out = json.loads(lines[-1])
    assert out["rounds"] == ROUNDS and out["target"] == "random"
    s = out["recovery_ms"]
    assert 0 < s["min"] <= s["median"] <= s["p99"], s
    assert [int(x) for x in m.groups()] == [s["min"], s["median"], s["p99"]]
    assert out["exactly_once"] in (True, False, "unchecked")
    assert re.search(r"^exactly-once: (true|false|\"unchecked\") \(sequence", r.stdout, re.M)
    assert out["check"]["mode"] == "sequence" and out["check"]["records"] > 0, out["check"]
    # after each leader kill a newer epoch leads
    epochs = [p["epoch"] for p in out["per_round"]]
    leader_rounds = [i for i, p in enumerate(out["per_round"]) if p["target"] == "leader"]
    assert epochs == sorted(epochs), epochs
    for i in leader_rounds:
        assert i == 0 or epochs[i] > epochs[i - 1], (i, epochs)


def test_drill_output_is_exactly_once(run20):
    out = json.loads(run20.stdout.splitlines()[-1])
    assert out["exactly_once"] is True, out["check"]


@pytest.mark.parametrize("argv", [["--rounds", "0", "--local"], ["--target", "zookeeper", "--local"],
                                  ["--local", "--conf", "/x"], ["--bogus"],
                                  ["--local", "--coordinators", "1"]])
def test_bad_arguments_exit_2(argv):
    env = {k: v for k, v in os.environ.items() if k != "FLINC_CONF_DIR"}
    r = subprocess.run([sys.executable, str(DRILL), *argv], capture_output=True, text=True,
                       env=env, timeout=30)
    assert r.returncode == 2, r.stderr
    assert "usage: flinc-drill" in r.stderr
