"""The README's first command, tools/quickstart.sh (the Operations issue, acceptance 1):
run with --no-setup on free ports in a temp work dir, it starts a 3-server ZooKeeper
quorum, two coordinators and two workers through the project's scripts, runs the
streaming word count and a 3-round drill (leader, worker, leader), and prints both web
URLs and the drill's exactly-once verdict; the URLs answer; `quickstart.sh stop` stops
every process listed in its pid files, and a second stop is fine.

Also: ports in use are refused before anything starts, with a message naming them; bad
arguments print the usage and exit 2.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path

import flinc_testlib as tl

ROOT = tl.repo_root()
QUICKSTART = ROOT / "tools" / "quickstart.sh"
DAEMONS = ("zookeeper", "coordinator", "worker")
PROGRAMS = ("QuorumPeerMain", "flinc-coordinator", "flinc-worker")


def env() -> dict:
    e = {k: v for k, v in os.environ.items()
         if not k.startswith("FLINC_") or k == "FLINC_TIMEOUT_SCALE"}
    e.pop("HOSTNAME", None)
    e["FLINC_BUILD_DIR"] = str(tl.build_dir())
    e["FLINC_STOP_TIMEOUT"] = str(int(tl.scaled(15)))
    e["FLINC_ZK_JVM_OPTS"] = " ".join(tl.ZK_JVM_OPTS + [
        "-Dzookeeper.forceSync=no", "-Dzookeeper.preAllocSize=1024",
        "-Dzookeeper.fastleader.maxNotificationInterval=1000"])
    return e


def quickstart(*args, timeout: float = 60.0):
    return subprocess.run([str(QUICKSTART), *map(str, args)], env=env(), capture_output=True,
                          text=True, timeout=tl.scaled(timeout), stdin=subprocess.DEVNULL)


def listed_pids(work: Path) -> dict[int, str]:
    """pid -> daemon, from the work dir's pid files."""
    out = {}
    for d in DAEMONS:
        for f in (work / "pids").glob(f"flinc-*-{d}.pid"):
            for x in f.read_text().split():
                out[int(x)] = d
    return out


def runs_ours(pid: int) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    zombie = stat.rsplit(")", 1)[-1].split()[0] == "Z"
    return not zombie and any(p in cmd for p in PROGRAMS)


def kill_listed(work: Path) -> None:
    """Teardown after a failure: SIGKILL what the pid files list and still runs ours."""
    for pid in listed_pids(work):
        if runs_ours(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, json.loads(r.read())


def test_quickstart_brings_up_the_cluster_drills_and_stops(tmp_dir):
    work = tmp_dir / "qs"
    ports = tl.free_ports(11)
    web, zk, peer = ports[:2], ports[2:5], ports[5:]
    args = ["--no-setup", "--dir", work, "--web-ports", f"{web[0]},{web[1]}",
            "--zk-ports", ",".join(map(str, zk)),
            "--zk-peer-ports", ",".join(f"{peer[2 * i]}:{peer[2 * i + 1]}" for i in range(3))]
    dl = tl.deadline(0)
    try:
        r = quickstart(*args, timeout=420)
        took = dl.elapsed()
        out = r.stdout
        assert r.returncode == 0, f"quickstart exit {r.returncode}\n{out}\n{r.stderr}"

        # both web URLs, the drill's table and verdict, how to stop
        for p in web:
            assert f"  http://localhost:{p}/\n" in out, out
        rows = re.findall(r"^\s+(\d+)\s+(leader|worker)\s+.*$", out, re.M)
        assert [k for _, k in rows] == ["leader", "worker", "leader"], out
        assert re.search(r"^recovery_ms: min \d+  median \d+  p99 \d+ \(3 rounds\)$", out, re.M)
        assert "\nexactly-once: true (count)\n" in out, out
        drill = json.loads((work / "drill.json").read_text())
        assert drill["exactly_once"] is True and drill["check"]["mode"] == "count", drill
        assert drill["check"]["records"] > 0 and drill["check"]["duplicates"] == 0 and \
            drill["check"]["gaps"] == 0, drill["check"]
        jid = re.search(r"^Streaming word count: JobID ([0-9a-f]{32}), RUNNING", out, re.M)
        assert jid, out
        assert f"Stop everything: {QUICKSTART} stop --dir {work}\n" in out, out

        # the URLs answer, a standby too (it forwards to the leader); the word count runs
        for p in web:
            status, ov = get_json(f"http://localhost:{p}/overview")
            assert status == 200 and ov["taskmanagers"] == 2, (p, ov)
        status, job = get_json(f"http://localhost:{web[0]}/jobs/{jid.group(1)}")
        assert job["state"] == "RUNNING", job
        roles = sorted(get_json(f"http://localhost:{p}/ha")[1]["role"] for p in web)
        assert roles == ["leader", "standby"], roles

        # the processes it started are the ones in its pid files; stop ends every one
        pids = listed_pids(work)
        live = {pid: d for pid, d in pids.items() if runs_ours(pid)}
        assert sorted(live.values()) == sorted(["zookeeper"] * 3 + ["coordinator"] * 2 +
                                               ["worker"] * 2), (pids, live)
        r = quickstart("stop", "--dir", work, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.count("Stopping coordinator daemon") == 2, r.stdout
        assert r.stdout.count("Stopping worker daemon") == 2, r.stdout
        assert r.stdout.count("Stopping zookeeper daemon") == 3, r.stdout
        left = [pid for pid in pids if runs_ours(pid)]
        assert not left, f"still running after stop: {left}"
        r = quickstart("stop", "--dir", work)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "nothing of" in r.stdout and "runs any more" in r.stdout, r.stdout
        print(f"\n[quickstart] up, word count, 3 drill rounds: {took:.1f} s; recovery_ms "
              f"{drill['recovery_ms']}")
    finally:
        subprocess.run([str(QUICKSTART), "stop", "--dir", str(work)], env=env(),
                       capture_output=True, timeout=tl.scaled(120), stdin=subprocess.DEVNULL)
        kill_listed(work)


def test_ports_in_use_are_refused_before_anything_starts(tmp_dir):
    work = tmp_dir / "qs"
    ports = tl.free_ports(11)
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[1]))
        s.listen()
        r = quickstart("--no-setup", "--dir", work, "--web-ports", f"{ports[0]},{ports[1]}",
                       "--zk-ports", ",".join(map(str, ports[2:5])), "--zk-peer-ports",
                       ",".join(f"{ports[5 + 2 * i]}:{ports[6 + 2 * i]}" for i in range(3)))
    try:
        assert r.returncode == 1, r.stdout + r.stderr
        assert f"port(s) {ports[1]} on 127.0.0.1 are in use" in r.stderr, r.stderr
        assert not listed_pids(work), "nothing may have started"
    finally:
        kill_listed(work)


def test_bad_arguments_print_usage_and_exit_2(tmp_dir):
    for argv, msg in [(["--web-ports", "8081"], "expected two ports"),
                      (["--zk-ports", "1,2,x"], "'x' is not a port"),
                      (["--zk-peer-ports", "1:2,3:4"], "three peer:election pairs"),
                      (["--rounds", "0"], "--rounds '0'"),
                      (["--dir"], "--dir needs a value"),
                      (["stop", "--rounds", "3"], "stop takes only --dir"),
                      (["--bogus"], "unexpected argument '--bogus'")]:
        r = quickstart(*argv, "--dir", tmp_dir / "x") if argv != ["--dir"] else quickstart(*argv)
        assert r.returncode == 2, (argv, r.stdout, r.stderr)
        assert msg in r.stderr and "Usage: quickstart.sh" in r.stderr, (argv, r.stderr)
    assert not (tmp_dir / "x").exists()
