"""Operations scripts (tools/scripts/), the Operations issue, acceptance 2: they behave like
Flink's bin/ scripts.

  - zookeeper.sh / start-zookeeper-quorum.sh start a 3-server quorum of one zoo.cfg on
    this host (each server with its own data dir and client port), the quorum the other
    tests of this module use; stop-zookeeper-quorum.sh stops it
  - jobmanager.sh / taskmanager.sh: several instances per host (two coordinators on two
    web ports, two workers): one pid file per daemon with one line per instance, logs
    flinc-<user>-<daemon>-<n>-<host>.log and .out; `stop` stops the newest, `stop-all`
    the rest; start-foreground runs in the foreground and is listed in the pid file
  - a stale pid line (a pid that does not run, or runs another program) is cleaned up
    with Flink's message and nothing is signalled
  - start-cluster.sh / stop-cluster.sh from conf/masters and conf/workers, local hosts
    directly, other hosts through FLINC_SSH_CMD with env.ssh.opts
  - flinc-drill --conf against a cluster the scripts started
  - bad arguments: usage and exit 2; the scripts are shellcheck-clean
  - `meson install --destdir` lays out bin/ conf/ examples/ lib/ log/, and the installed
    scripts and CLI find their conf there

Everything binds to 127.0.0.1; pid and log dirs are in the test's temp dir.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

import flinc_testlib as tl

ROOT = tl.repo_root()
SCRIPTS = ROOT / "tools" / "scripts"
USER = os.environ.get("USER") or getpass.getuser()
HOST = socket.gethostname()


# ----------------------------------------------------------------------------- helpers


def script_env(conf: Path, **extra) -> dict:
    env = dict(os.environ)
    for k in ("FLINC_PID_DIR", "FLINC_LOG_DIR", "FLINC_SSH_CMD", "FLINC_SSH_OPTS",
              "FLINC_IDENT_STRING", "HOSTNAME"):
        env.pop(k, None)
    env["FLINC_CONF_DIR"] = str(conf)
    env["FLINC_BUILD_DIR"] = str(tl.build_dir())
    env["FLINC_STOP_TIMEOUT"] = str(int(tl.scaled(15)))
    # A small, fast-starting JVM for the ZooKeeper servers (as the test harness uses).
    env["FLINC_ZK_JVM_OPTS"] = " ".join(tl.ZK_JVM_OPTS + [
        "-Dzookeeper.forceSync=no", "-Dzookeeper.preAllocSize=1024",
        "-Dzookeeper.fastleader.maxNotificationInterval=1000"])
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run(script: str, *args, env: dict, timeout: float = 60.0, check: bool = True):
    """Runs a script of tools/scripts; returns the CompletedProcess (text)."""
    r = subprocess.run([str(SCRIPTS / script), *map(str, args)], env=env, capture_output=True,
                       text=True, timeout=tl.scaled(timeout), stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise AssertionError(f"{script} {' '.join(map(str, args))}: exit {r.returncode}\n"
                             f"stdout: {r.stdout}\nstderr: {r.stderr}")
    return r


def pid_file(pids: Path, daemon: str) -> Path:
    return pids / f"flinc-{USER}-{daemon}.pid"


def pid_lines(pids: Path, daemon: str) -> list[int]:
    f = pid_file(pids, daemon)
    return [int(x) for x in f.read_text().split()] if f.exists() else []


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def alive(pid: int, program: str) -> bool:
    """pid runs `program` (and is no zombie)."""
    return program in cmdline(pid)


def wait_alive(pid: int, program: str, timeout: float = 10.0) -> None:
    """Until pid runs program: a daemon's pid is in the pid file a moment before its
    process has replaced the script's fork with the program."""
    tl.wait_for(lambda: alive(pid, program), timeout, f"{program} pid {pid} to run")


def wait_gone(pid: int, program: str, timeout: float = 20.0) -> None:
    tl.wait_for(lambda: not alive(pid, program), timeout, f"{program} pid {pid} to exit")


def http_json(port: int, path: str, timeout: float = 2.0):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return json.loads(r.read())


def leader_port(ports) -> int | None:
    for p in ports:
        try:
            ha = http_json(p, "/ha")
        except OSError:
            continue
        if ha.get("role") == "leader" and (ha.get("term") or {}).get("recovered"):
            return p
    return None


def wait_cluster(ports, workers: int, timeout: float = 30.0) -> int:
    lp = tl.wait_for(lambda: leader_port(ports), timeout, "an acting leader")
    tl.wait_for(lambda: http_json(lp, "/overview")["taskmanagers"] == workers, timeout,
                f"{workers} registered workers")
    return lp


def kill_listed(pids: Path) -> None:
    """SIGKILL every flinc daemon listed in the pid files of `pids` (teardown; only pids
    that still run a flinc program or ZooKeeper, i.e. ours)."""
    if not pids.is_dir():
        return
    for f in pids.glob("*.pid"):
        for line in f.read_text().split():
            pid = int(line)
            cl = cmdline(pid)
            if "flinc-coordinator" in cl or "flinc-worker" in cl or "QuorumPeerMain" in cl:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def base():
    d = tl.make_tmp_dir("flinc-scripts-")
    try:
        yield d
    finally:
        kill_listed(d / "zk-pids")
        tl.remove_tmp_dir(d)


@pytest.fixture(scope="module")
def zk(base):
    """A 3-server quorum of one zoo.cfg on 127.0.0.1, started with the scripts. Yields the
    connect string."""
    conf = base / "zkconf"
    conf.mkdir()
    ports = tl.free_ports(9)
    servers = "".join(
        f"server.{i + 1}=127.0.0.1:{ports[3 * i]}:{ports[3 * i + 1]};127.0.0.1:{ports[3 * i + 2]}\n"
        for i in range(3))
    (conf / "zoo.cfg").write_text(
        "tickTime=200\ninitLimit=25\nsyncLimit=10\nminSessionTimeout=400\n"
        f"dataDir={base}/zk\nadmin.enableServer=false\n4lw.commands.whitelist=*\n{servers}")
    (conf / "flinc-conf.yaml").write_text(f"env.pid.dir: {base}/zk-pids\n"
                                          f"env.log.dir: {base}/zk-log\n")
    env = script_env(conf)
    r = run("start-zookeeper-quorum.sh", env=env)
    assert r.stdout.count(f"Starting zookeeper daemon on host {HOST}.") == 3, r.stdout
    client_ports = [ports[3 * i + 2] for i in range(3)]

    def serving():
        modes = [tl.srvr(p).get("Mode") for p in client_ports]
        return all(m in ("leader", "follower") for m in modes) and modes

    try:
        tl.wait_for(serving, 60, "the scripts' ZooKeeper quorum to serve", interval=0.1)
    except AssertionError as e:
        logs = "\n".join(tl.tail_file(f, 20) for f in sorted((base / "zk-log").glob("*")))
        raise AssertionError(f"{e}\n{logs}") from None
    yield {"connect": ",".join(f"127.0.0.1:{p}" for p in client_ports), "conf": conf,
           "env": env, "base": base, "client_ports": client_ports}
    run("stop-zookeeper-quorum.sh", env=env, check=False)


@pytest.fixture
def cluster_conf(zk, tmp_dir, zk_root):
    """A conf dir for a cluster on the scripts' quorum; masters and workers are written
    by the test. Returns (conf dir, pid dir, log dir, rest ports)."""
    ports = tl.free_ports(2)
    conf = tl.make_conf_dir(tmp_dir / "conf", {
        "high-availability": "zookeeper",
        "high-availability.zookeeper.quorum": zk["connect"],
        "high-availability.zookeeper.path.root": zk_root,
        "high-availability.storageDir": f"file://{tmp_dir}/ha",
        "high-availability.zookeeper.client.session-timeout": "2 s",
        "rest.bind-address": "127.0.0.1",
        "jobmanager.bind-host": "127.0.0.1",
        "taskmanager.host": "127.0.0.1",
        "taskmanager.bind-host": "127.0.0.1",
        "taskmanager.numberOfTaskSlots": 2,
        "heartbeat.interval": "200 ms",
        "heartbeat.timeout": "4 s",
        "restart-strategy.fixed-delay.delay": "100 ms",
        "io.tmp.dirs": str(tmp_dir / "io"),
        "env.pid.dir": str(tmp_dir / "pids"),
        "env.log.dir": str(tmp_dir / "log"),
    }, masters=[f"localhost:{p}" for p in ports], workers=["localhost", "localhost"])
    try:
        yield conf, tmp_dir / "pids", tmp_dir / "log", ports
    finally:
        kill_listed(tmp_dir / "pids")


# ----------------------------------------------------------------------------- tests


def test_zookeeper_scripts_start_a_local_quorum(zk):
    base = zk["base"]
    pids = pid_lines(base / "zk-pids", "zookeeper")
    assert len(pids) == 3, f"expected 3 lines in the zookeeper pid file, saw {pids}"
    for n, pid in enumerate(pids):
        wait_alive(pid, "QuorumPeerMain")
        log = base / "zk-log" / f"flinc-{USER}-zookeeper-{n}-{HOST}.log"
        assert log.is_file(), f"missing {log}"
        assert (base / "zk" / f"server.{n + 1}" / "myid").read_text().strip() == str(n + 1)
    assert "QuorumPeer" in (base / "zk-log" / f"flinc-{USER}-zookeeper-0-{HOST}.log").read_text()


def test_several_instances_per_host_stop_and_stop_all(cluster_conf):
    conf, pids, logs, ports = cluster_conf
    env = script_env(conf)
    r1 = run("jobmanager.sh", "start", "localhost", ports[0], env=env)
    assert r1.stdout.strip() == f"Starting coordinator daemon on host {HOST}.", r1.stdout
    r2 = run("jobmanager.sh", "start", "localhost", ports[1], env=env)
    assert f"[INFO] 1 instance(s) of coordinator are already running on {HOST}." in r2.stdout
    run("taskmanager.sh", "start", env=env)
    run("taskmanager.sh", "start", env=env)

    coords = pid_lines(pids, "coordinator")
    workers = pid_lines(pids, "worker")
    assert len(coords) == 2 and len(workers) == 2, (coords, workers)
    for pid in coords:
        wait_alive(pid, "flinc-coordinator")
    for pid in workers:
        wait_alive(pid, "flinc-worker")
    assert f"--webui-port {ports[0]}" in cmdline(coords[0])
    assert f"--host localhost --webui-port {ports[1]}" in cmdline(coords[1])
    for daemon in ("coordinator", "worker"):
        for n in (0, 1):
            for ext in ("log", "out"):
                f = logs / f"flinc-{USER}-{daemon}-{n}-{HOST}.{ext}"
                assert f.is_file(), f"missing {f.name}; log dir has {sorted(os.listdir(logs))}"
    wait_cluster(ports, 2)
    worker_log = (logs / f"flinc-{USER}-worker-1-{HOST}.log").read_text()
    assert f"pid={workers[1]}" in worker_log, "the worker's log is not its .log file"
    assert "flinc-coordinator" in (logs / f"flinc-{USER}-coordinator-0-{HOST}.log").read_text()

    # stop: the newest instance only
    r = run("jobmanager.sh", "stop", env=env)
    assert r.stdout.strip() == f"Stopping coordinator daemon (pid: {coords[1]}) on host {HOST}."
    wait_gone(coords[1], "flinc-coordinator")
    assert alive(coords[0], "flinc-coordinator")
    assert pid_lines(pids, "coordinator") == [coords[0]]
    r = run("taskmanager.sh", "stop", env=env)
    assert f"(pid: {workers[1]})" in r.stdout
    wait_gone(workers[1], "flinc-worker")
    assert pid_lines(pids, "worker") == [workers[0]]

    # stop-all: the rest, and the pid files go
    r = run("taskmanager.sh", "stop-all", env=env)
    assert r.stdout.strip() == f"Stopping worker daemon (pid: {workers[0]}) on host {HOST}."
    r = run("jobmanager.sh", "stop-all", env=env)
    assert f"(pid: {coords[0]})" in r.stdout
    wait_gone(coords[0], "flinc-coordinator")
    wait_gone(workers[0], "flinc-worker")
    assert not pid_file(pids, "coordinator").exists()
    assert not pid_file(pids, "worker").exists()
    r = run("jobmanager.sh", "stop", env=env)
    assert r.stdout.strip() == f"No coordinator daemon to stop on host {HOST}."

    # a new start rotates nothing away: instance 0 again, the old log kept as .1
    run("taskmanager.sh", "start", env=env)
    assert (logs / f"flinc-{USER}-worker-0-{HOST}.log.1").is_file()
    run("taskmanager.sh", "stop", env=env)


def test_stale_pid_lines_are_cleaned_with_a_message(cluster_conf):
    conf, pids, logs, ports = cluster_conf
    env = script_env(conf)
    run("taskmanager.sh", "start", env=env)
    run("taskmanager.sh", "start", env=env)
    first, second = pid_lines(pids, "worker")
    wait_alive(first, "flinc-worker")
    wait_alive(second, "flinc-worker")
    os.kill(second, signal.SIGKILL)
    wait_gone(second, "flinc-worker")

    r = run("taskmanager.sh", "stop", env=env)
    assert r.stdout.strip() == f"No worker daemon (pid: {second}) is running anymore on {HOST}."
    assert pid_lines(pids, "worker") == [first]
    assert alive(first, "flinc-worker"), "stop of a stale line must not touch the others"

    # A pid line naming a live process that is not a worker (pid reuse): never signalled.
    with open(pid_file(pids, "worker"), "a") as f:
        f.write(f"{os.getpid()}\n")
    r = run("taskmanager.sh", "stop", env=env)
    assert r.stdout.strip() == f"No worker daemon (pid: {os.getpid()}) is running anymore on {HOST}."

    # stop-all skips stale lines with Flink's message and stops the live ones.
    with open(pid_file(pids, "worker"), "a") as f:
        f.write(f"{second}\n")
    r = run("taskmanager.sh", "stop-all", env=env)
    assert f"Stopping worker daemon (pid: {first}) on host {HOST}." in r.stdout
    assert (f"Skipping worker daemon (pid: {second}), because it is not running anymore on "
            f"{HOST}.") in r.stdout
    wait_gone(first, "flinc-worker")
    assert not pid_file(pids, "worker").exists()


def test_start_foreground_is_listed_and_stops(cluster_conf):
    conf, pids, logs, ports = cluster_conf
    env = script_env(conf)
    log = open(logs.parent / "foreground.log", "wb")
    p = subprocess.Popen([str(SCRIPTS / "jobmanager.sh"), "start-foreground", "localhost",
                          str(ports[0])], env=env, stdout=log, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        tl.wait_for(lambda: pid_lines(pids, "coordinator") == [p.pid], 10,
                    "the foreground coordinator in the pid file")
        tl.wait_for(lambda: leader_port(ports[:1]), 30, "the foreground coordinator to lead")
        assert alive(p.pid, "flinc-coordinator"), "start-foreground must exec the daemon"
        r = run("jobmanager.sh", "stop", env=env)
        assert f"Stopping coordinator daemon (pid: {p.pid})" in r.stdout
        assert p.wait(timeout=tl.scaled(20)) == 0
        text = (logs.parent / "foreground.log").read_text()
        assert "Starting coordinator as a console application" in text
        assert "+leader-elected" in text, "the foreground daemon logs to the console"
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        log.close()


def test_start_and_stop_cluster_on_localhost(cluster_conf):
    conf, pids, logs, ports = cluster_conf
    env = script_env(conf)
    r = run("start-cluster.sh", env=env)
    assert r.stdout.splitlines()[0] == "Starting HA cluster with 2 masters."
    assert r.stdout.count(f"Starting coordinator daemon on host {HOST}.") == 2
    assert r.stdout.count(f"Starting worker daemon on host {HOST}.") == 2
    wait_cluster(ports, 2)
    coords, workers = pid_lines(pids, "coordinator"), pid_lines(pids, "worker")
    assert len(coords) == 2 and len(workers) == 2

    r = run("stop-cluster.sh", env=env)
    assert r.stdout.count("Stopping worker daemon") == 2, r.stdout
    assert r.stdout.count("Stopping coordinator daemon") == 2, r.stdout
    for pid in coords:
        wait_gone(pid, "flinc-coordinator")
    for pid in workers:
        wait_gone(pid, "flinc-worker")
    assert not pid_file(pids, "coordinator").exists() and not pid_file(pids, "worker").exists()


def test_remote_hosts_go_through_the_ssh_command(cluster_conf, tmp_dir):
    """Hosts that are not this machine are reached through FLINC_SSH_CMD with
    env.ssh.opts, called like ssh: CMD OPTS HOST 'COMMAND LINE'."""
    conf, pids, logs, ports = cluster_conf
    record = tmp_dir / "ssh-calls.txt"
    fake_ssh = tmp_dir / "fake-ssh"
    fake_ssh.write_text(
        "#!/usr/bin/env bash\n"
        "# Records how it was called, then runs the command line here, as ssh would there.\n"
        "set -euo pipefail\n"
        f"printf '%s\\n' \"$*\" >> {record}\n"
        "while [ \"$1\" = -o ]; do shift 2; done\n"
        "host=$1\n"
        "exec bash -c \"$2\"\n")
    fake_ssh.chmod(0o755)
    with open(conf / "flinc-conf.yaml", "a") as f:
        f.write("env.ssh.opts: -o ConnectTimeout=5\n")
    (conf / "masters").write_text(f"remotehost1:{ports[0]}\nlocalhost:{ports[1]}\n")
    (conf / "workers").write_text("remotehost2\n")
    env = script_env(conf, FLINC_SSH_CMD=str(fake_ssh))
    run("start-cluster.sh", env=env)
    calls = record.read_text().splitlines()
    assert len(calls) == 2, calls
    assert calls[0].startswith("-o ConnectTimeout=5 remotehost1 FLINC_CONF_DIR=")
    assert calls[0].endswith(f"jobmanager.sh start remotehost1 {ports[0]}")
    assert calls[1].startswith("-o ConnectTimeout=5 remotehost2 ")
    assert calls[1].endswith("taskmanager.sh start")
    coords = pid_lines(pids, "coordinator")
    assert len(coords) == 2
    for pid in coords:
        wait_alive(pid, "flinc-coordinator")
    assert "--host remotehost1" in cmdline(coords[0])
    assert "--host localhost" in cmdline(coords[1])
    run("stop-cluster.sh", env=env)
    calls = record.read_text().splitlines()
    assert calls[2].endswith("taskmanager.sh stop") and "remotehost2" in calls[2]
    assert calls[3].endswith("jobmanager.sh stop") and "remotehost1" in calls[3]
    for pid in coords:
        wait_gone(pid, "flinc-coordinator")


def test_flinc_drill_against_a_script_cluster(cluster_conf, tmp_dir):
    """flinc-drill --conf: kills through the pid files, restarts with the scripts."""
    conf, pids, logs, ports = cluster_conf
    (conf / "workers").write_text("localhost\nlocalhost\nlocalhost\n")
    env = script_env(conf)
    run("start-cluster.sh", env=env)
    try:
        wait_cluster(ports, 3)
        r = subprocess.run([sys.executable, str(ROOT / "tools" / "drill" / "flinc-drill"),
                            "--conf", str(conf), "--rounds", "2", "--target", "random",
                            "--seed", "5", "--output", str(tmp_dir / "drill-out")],
                           env=env, capture_output=True, text=True, timeout=tl.scaled(180))
        assert r.returncode in (0, 3), f"flinc-drill failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        out = json.loads(r.stdout.splitlines()[-1])
        assert out["rounds"] == 2 and len(out["per_round"]) == 2, out
        assert out["exactly_once"] in (True, False, "unchecked")
        # the killed processes were started again through the scripts
        assert len([p for p in pid_lines(pids, "coordinator") if alive(p, "flinc-coordinator")]) == 2
        assert len([p for p in pid_lines(pids, "worker") if alive(p, "flinc-worker")]) == 3
    finally:
        run("stop-cluster.sh", env=env, check=False)
        run("jobmanager.sh", "stop-all", env=env, check=False)
        run("taskmanager.sh", "stop-all", env=env, check=False)


BAD_ARGS = [
    ("jobmanager.sh",), ("jobmanager.sh", "bogus"), ("jobmanager.sh", "start", "h", "notaport"),
    ("jobmanager.sh", "start", "h", "8081", "extra"), ("jobmanager.sh", "stop", "extra"),
    ("taskmanager.sh",), ("taskmanager.sh", "restart"), ("taskmanager.sh", "start", "extra"),
    ("taskmanager.sh", "start", "-D"), ("flinc-daemon.sh",), ("flinc-daemon.sh", "start", "nimbus"),
    ("flinc-daemon.sh", "launch", "worker"), ("zookeeper.sh",), ("zookeeper.sh", "begin"),
    ("zookeeper.sh", "start", "0"), ("zookeeper.sh", "start", "1", "2"),
    ("zookeeper.sh", "stop", "1"), ("start-cluster.sh", "now"), ("stop-cluster.sh", "now"),
    ("start-zookeeper-quorum.sh", "x"), ("stop-zookeeper-quorum.sh", "x"),
]


@pytest.mark.parametrize("argv", BAD_ARGS, ids=[" ".join(a) for a in BAD_ARGS])
def test_bad_arguments_print_usage_and_exit_2(argv, tmp_dir):
    conf = tl.make_conf_dir(tmp_dir / "conf", {"env.pid.dir": str(tmp_dir / "pids")})
    r = run(*argv, env=script_env(conf), check=False, timeout=20)
    assert r.returncode == 2, f"{argv}: exit {r.returncode}, expected 2\n{r.stdout}{r.stderr}"
    assert "Usage:" in r.stderr, f"{argv}: no usage on stderr: {r.stderr!r}"


def test_scripts_are_shellcheck_clean():
    sc = shutil.which("shellcheck")
    if not sc:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    scripts = sorted(str(p) for p in SCRIPTS.glob("*.sh"))
    r = subprocess.run([sc, *scripts], capture_output=True, text=True, cwd=SCRIPTS)
    assert r.returncode == 0, r.stdout + r.stderr


def test_meson_install_lays_out_a_distribution(tmp_dir):
    bdir = tl.build_dir()
    dest = tmp_dir / "dest"
    r = subprocess.run(["meson", "install", "-C", str(bdir), "--no-rebuild", "--quiet",
                        "--destdir", str(dest)], capture_output=True, text=True,
                       timeout=tl.scaled(120))
    assert r.returncode == 0, r.stdout + r.stderr
    prefix = json.loads(subprocess.run(
        ["meson", "introspect", "--buildoptions", str(bdir)], capture_output=True, text=True,
        check=True).stdout)
    prefix = next(o["value"] for o in prefix if o["name"] == "prefix")
    home = dest / prefix.lstrip("/")
    for rel in ("bin/flinc", "bin/flinc-coordinator", "bin/flinc-worker", "bin/flinc-drill",
                "bin/jobmanager.sh", "bin/taskmanager.sh", "bin/start-cluster.sh",
                "bin/stop-cluster.sh", "bin/zookeeper.sh", "bin/flinc-daemon.sh",
                "bin/config.sh", "conf/flinc-conf.yaml", "conf/masters", "conf/workers",
                "conf/zoo.cfg", "examples/wordcount.yaml"):
        assert (home / rel).exists(), f"{rel} missing from the installed tree {home}"
    for rel in ("lib", "log"):
        assert (home / rel).is_dir(), f"{rel}/ missing from the installed tree"
    assert os.access(home / "bin" / "jobmanager.sh", os.X_OK)

    env = {k: v for k, v in os.environ.items() if not k.startswith("FLINC_")}
    probe = subprocess.run(
        ["bash", "-c", f'. "{home}/bin/config.sh"; echo "$FLINC_HOME|$FLINC_CONF_DIR|'
                       '$FLINC_COORDINATOR_BIN|$FLINC_LOG_DIR"'],
        env=env, capture_output=True, text=True, check=True).stdout.strip()
    real = home.resolve()
    assert probe == f"{real}|{real}/conf|{real}/bin/flinc-coordinator|{real}/log", probe
    r = subprocess.run([str(home / "bin" / "taskmanager.sh"), "stop"],
                       env={**env, "FLINC_PID_DIR": str(tmp_dir / "pids")}, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0 and "No worker daemon to stop" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([str(home / "bin" / "flinc"), "info", "examples/generator-print.yaml"],
                       env=env, cwd=home, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "Execution Plan" in r.stdout, r.stdout + r.stderr
