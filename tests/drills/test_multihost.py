"""Multi-host drill, the Operations issue, acceptance 4: the tutorial's HA cluster on three
hosts, bigdata111, bigdata222 and bigdata333, made as network namespaces on one bridge.

  - each host has its own hosts file (/etc/netns/<namespace>/hosts, which `ip netns exec`
    mounts over /etc/hosts), its own host name (a UTS namespace) and its own local disk
    (a directory mounted over the same path on each host: pid files, logs, ZooKeeper
    data); the conf dir, the binaries and the HA storage are shared, as the tutorial
    shares them with scp and HDFS
  - ZooKeeper on each host, high-availability.zookeeper.quorum
    bigdata111:2181,bigdata222:2181,bigdata333:2181, started by start-zookeeper-quorum.sh;
    conf/masters exactly `bigdata111:8081` and `bigdata222:8081`; conf/workers all three;
    start-cluster.sh reaches the hosts through FLINC_SSH_CMD, a wrapper that runs the
    command line with `ip netns exec` (in place of ssh)
  - round 1: kill -9 the leader's coordinator: the other one takes over and the job is
    RUNNING again; the killed one is started again (jobmanager.sh) and is a standby
  - round 2: the leader's host is cut off the network (its veth link down): the other
    coordinator takes over, the job goes on, the cut-off one steps down; once the link is
    back it rejoins as a standby
  - stop-cluster.sh and stop-zookeeper-quorum.sh stop everything through the wrapper

Namespaces, veths, bridge and hosts files get names unique to the run and are removed at
the end, also when the test fails (processes left in the namespaces are killed first).
Needs root, iproute2 and util-linux's unshare; skipped otherwise.

The job (an endless generator into the exactly-once file sink, checkpoints every second)
is checked for exactly-once delivery by flinc-drill's checker: its committed output must
be exactly the first K records of the generator's sequence. So that the verdict covers
both failovers, the test waits before the first round and after each round until a
checkpoint completed after the job's latest restore and the committed output grew; the
job is canceled only then.
"""

from __future__ import annotations

import getpass
import importlib.machinery
import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import flinc_testlib as tl

HOSTS = ("bigdata111", "bigdata222", "bigdata333")
MASTERS = ("bigdata111", "bigdata222")
OBSERVER = "bigdata333"  # probes run from here: never cut off, no coordinator
SUBNET = "10.77.0"  # private to the run's own bridge
ROOT = tl.repo_root()
SCRIPTS = ROOT / "tools" / "scripts"
USER = os.environ.get("USER") or getpass.getuser()
SESSION_MS = 3000

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("unshare"),
    reason="needs root, ip (iproute2) and unshare (util-linux)")


def sh(*argv, check=True, timeout=30.0):
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                       timeout=tl.scaled(timeout), stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))}: exit {r.returncode}\n"
                             f"{r.stdout}{r.stderr}")
    return r


# ------------------------------------------------------------------------- the lab


class Lab:
    """Three hosts as network namespaces on one bridge, named for this run only."""

    def __init__(self, base: Path):
        self.base = base
        rid = secrets.token_hex(3)
        self.ns = {h: f"flinc-{rid}-{h}" for h in HOSTS}
        self.bridge = f"flbr{rid}"
        self.veth = {h: f"fl{rid}{h[-3:]}" for h in HOSTS}  # bridge side, <= 15 bytes
        self.ip = {h: f"{SUBNET}.{i + 1}" for i, h in enumerate(HOSTS)}
        self.etc = {h: Path("/etc/netns") / self.ns[h] for h in HOSTS}
        self.made_etc_netns = False
        self.up_done: list[tuple] = []

    def up(self) -> None:
        if not Path("/etc/netns").exists():
            Path("/etc/netns").mkdir()
            self.made_etc_netns = True
        r = sh("ip", "link", "add", self.bridge, "type", "bridge", check=False)
        if r.returncode != 0 and "Operation not permitted" in r.stderr:
            pytest.skip(f"cannot create network devices here: {r.stderr.strip()}")
        if r.returncode != 0:
            raise AssertionError(f"ip link add {self.bridge} type bridge: {r.stderr}")
        self.up_done.append(("bridge",))
        sh("ip", "link", "set", self.bridge, "up")
        hosts_file = "127.0.0.1 localhost\n" + "".join(f"{self.ip[h]} {h}\n" for h in HOSTS)
        for h in HOSTS:
            ns, veth = self.ns[h], self.veth[h]
            sh("ip", "netns", "add", ns)
            self.up_done.append(("netns", h))
            self.etc[h].mkdir()
            self.up_done.append(("etc", h))
            (self.etc[h] / "hosts").write_text(hosts_file)
            sh("ip", "link", "add", veth, "type", "veth", "peer", "name", veth + "p")
            self.up_done.append(("veth", h))
            sh("ip", "link", "set", veth + "p", "netns", ns)
            sh("ip", "-n", ns, "link", "set", veth + "p", "name", "eth0")
            sh("ip", "-n", ns, "addr", "add", f"{self.ip[h]}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "link", "set", veth, "master", self.bridge)
            sh("ip", "link", "set", veth, "up")

    def cut(self, host: str) -> None:
        sh("ip", "link", "set", self.veth[host], "down")

    def heal(self, host: str) -> None:
        sh("ip", "link", "set", self.veth[host], "up")

    def pids(self, host: str) -> list[int]:
        r = sh("ip", "netns", "pids", self.ns[host], check=False)
        return [int(x) for x in r.stdout.split()] if r.returncode == 0 else []

    def kill_all(self) -> None:
        """SIGKILL every process in our namespaces (all of them are ours) and wait."""
        for h in HOSTS:
            for pid in self.pids(h):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            tl.wait_for(lambda: not any(self.pids(h) for h in HOSTS), 20,
                        "the namespaces' processes to exit")
        except AssertionError as e:
            print(f"multihost teardown: {e}", file=sys.stderr)

    def down(self) -> None:
        """Removes everything up() made, in reverse; every step is tried."""
        self.kill_all()
        for item in reversed(self.up_done):
            kind = item[0]
            try:
                if kind == "veth":
                    sh("ip", "link", "del", self.veth[item[1]], check=False)
                elif kind == "etc":
                    shutil.rmtree(self.etc[item[1]], ignore_errors=True)
                elif kind == "netns":
                    sh("ip", "netns", "del", self.ns[item[1]], check=False)
                elif kind == "bridge":
                    sh("ip", "link", "del", self.bridge, check=False)
            except Exception as e:  # noqa: BLE001 - go on removing the rest
                print(f"multihost teardown: {kind}: {e}", file=sys.stderr)
        self.up_done.clear()
        if self.made_etc_netns:
            try:
                Path("/etc/netns").rmdir()  # only if empty: another run may use it
            except OSError:
                pass

    def leftovers(self) -> list[str]:
        left = []
        names = sh("ip", "netns", "list", check=False).stdout
        links = sh("ip", "-o", "link", "show", check=False).stdout
        for h in HOSTS:
            if self.ns[h] in names:
                left.append(f"netns {self.ns[h]}")
            if re.search(rf"\b{self.veth[h]}\b", links):
                left.append(f"link {self.veth[h]}")
            if self.etc[h].exists():
                left.append(str(self.etc[h]))
        if re.search(rf"\b{self.bridge}\b", links):
            left.append(f"bridge {self.bridge}")
        return left


# ------------------------------------------------------------------------- the cluster


class Site:
    """The shared conf, the per-host private dirs and the ssh stand-in."""

    def __init__(self, base: Path, lab: Lab):
        self.base, self.lab = base, lab
        self.conf = base / "conf"
        self.local = base / "local"  # each host mounts its own dir here
        self.shared = base / "shared"
        self.output = self.shared / "out"
        self.ssh = base / "netns-ssh"
        self.probe = base / "probe.py"
        self.flinc_bin = tl.binary("flinc")
        for h in HOSTS:
            (base / "hosts" / h).mkdir(parents=True)
        self.local.mkdir()
        self.shared.mkdir()
        self.write_conf()
        self.write_helpers()

    def host_dir(self, h: str) -> Path:
        return self.base / "hosts" / h

    def write_conf(self) -> None:
        quorum = ",".join(f"{h}:2181" for h in HOSTS)
        tl.make_conf_dir(self.conf, {
            "high-availability": "zookeeper",
            "high-availability.zookeeper.quorum": quorum,
            "high-availability.zookeeper.path.root": "/flinc",
            "high-availability.storageDir": f"file://{self.shared}/ha",
            "high-availability.zookeeper.client.session-timeout": f"{SESSION_MS} ms",
            "high-availability.zookeeper.client.connection-timeout": "5 s",
            "state.checkpoints.dir": f"file://{self.shared}/checkpoints",
            "state.savepoints.dir": f"file://{self.shared}/savepoints",
            "taskmanager.numberOfTaskSlots": 2,
            "heartbeat.interval": "200 ms",
            "heartbeat.timeout": "3 s",
            "restart-strategy": "fixed-delay",
            "restart-strategy.fixed-delay.attempts": 1000,
            "restart-strategy.fixed-delay.delay": "100 ms",
            "env.pid.dir": str(self.local / "pids"),
            "env.log.dir": str(self.local / "log"),
            "io.tmp.dirs": str(self.local / "tmp"),
        }, masters=[f"{h}:8081" for h in MASTERS], workers=list(HOSTS))
        servers = "".join(f"server.{i + 1}={h}:2888:3888\n" for i, h in enumerate(HOSTS))
        (self.conf / "zoo.cfg").write_text(
            "tickTime=250\ninitLimit=40\nsyncLimit=8\nminSessionTimeout=500\n"
            f"dataDir={self.local}/zookeeper\nclientPort=2181\nadmin.enableServer=false\n"
            f"4lw.commands.whitelist=*\n{servers}")

    def write_helpers(self) -> None:
        cases = "".join(f"{h}) ns={self.lab.ns[h]} ;;\n" for h in HOSTS)
        self.ssh.write_text(f"""#!/usr/bin/env bash
# Plays ssh for the test hosts (FLINC_SSH_CMD): `netns-ssh [opts] HOST COMMAND-LINE` runs
# the command line on HOST: in its network namespace (where `ip netns exec` mounts its
# hosts file), under its host name, with its own directory mounted at {self.local}.
set -euo pipefail
while [ $# -gt 2 ]; do shift; done # ssh options: nothing to do with them here
host=$1
case "$host" in
{cases}*) echo "netns-ssh: unknown host $host" >&2; exit 255 ;;
esac
exec ip netns exec "$ns" unshare --mount --uts --propagation private \\
        bash -c 'mount --bind "$1" "$2" && hostname "$3" && export HOSTNAME="$3" && exec bash -c "$4"' \\
        netns-ssh "{self.base}/hosts/$host" "{self.local}" "$host" "$2"
""")
        self.ssh.chmod(0o755)
        self.probe.write_text('''import json, socket, sys, urllib.error, urllib.request
# probe.py http URL... | probe.py srvr HOST:PORT...: one JSON object, per argument
# [status, body] (http) or the srvr Mode (srvr), or {"error": ...}.
out = {}
kind = sys.argv[1]
for arg in sys.argv[2:]:
    try:
        if kind == "http":
            try:
                with urllib.request.urlopen(arg, timeout=1.0) as r:
                    out[arg] = [r.status, json.loads(r.read() or b"null")]
            except urllib.error.HTTPError as e:
                out[arg] = [e.code, None]
        else:
            host, port = arg.rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=1.0) as s:
                s.sendall(b"srvr")
                data = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            m = [ln.split(":", 1)[1].strip() for ln in data.decode().splitlines()
                 if ln.startswith("Mode:")]
            out[arg] = m[0] if m else None
    except Exception as e:
        out[arg] = {"error": f"{type(e).__name__}: {e}"}
print(json.dumps(out))
''')

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("FLINC_") or k in ("FLINC_TIMEOUT_SCALE",)}
        env.pop("HOSTNAME", None)
        env.update({
            "FLINC_CONF_DIR": str(self.conf),
            "FLINC_BUILD_DIR": str(tl.build_dir()),
            "FLINC_SSH_CMD": str(self.ssh),
            "FLINC_STOP_TIMEOUT": str(int(tl.scaled(15))),
            "FLINC_ZK_JVM_OPTS": " ".join(tl.ZK_JVM_OPTS + [
                "-Dzookeeper.forceSync=no", "-Dzookeeper.preAllocSize=1024",
                "-Dzookeeper.fastleader.maxNotificationInterval=1000",
                "-Dzookeeper.cnxTimeout=1000"]),
        })
        return env

    def script(self, name: str, *args, timeout: float = 120.0, check: bool = True):
        r = subprocess.run([str(SCRIPTS / name), *map(str, args)], env=self.env(),
                           capture_output=True, text=True, timeout=tl.scaled(timeout),
                           stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise AssertionError(f"{name} {' '.join(map(str, args))}: exit {r.returncode}\n"
                                 f"{r.stdout}{r.stderr}")
        return r

    def on(self, host: str, script: str, *args, check: bool = True):
        """Runs a script on host through the ssh stand-in, as start-cluster.sh does."""
        line = (f"FLINC_CONF_DIR={self.conf} FLINC_BUILD_DIR={tl.build_dir()} "
                f"{SCRIPTS / script} {' '.join(map(str, args))}")
        r = subprocess.run([str(self.ssh), host, line], env=self.env(), capture_output=True,
                           text=True, timeout=tl.scaled(60), stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise AssertionError(f"on {host}: {line}: exit {r.returncode}\n{r.stdout}{r.stderr}")
        return r

    def run_in(self, host: str, *argv, timeout: float = 30.0):
        return subprocess.run(["ip", "netns", "exec", self.lab.ns[host], *map(str, argv)],
                              env=self.env(), capture_output=True, text=True,
                              timeout=tl.scaled(timeout), stdin=subprocess.DEVNULL)

    def probe_from(self, host: str, kind: str, *targets) -> dict:
        r = self.run_in(host, sys.executable, self.probe, kind, *targets)
        if r.returncode != 0:
            raise AssertionError(f"probe from {host}: {r.stderr}")
        return json.loads(r.stdout)

    def ha(self, host: str, from_host: str = OBSERVER) -> dict | None:
        """GET /ha of host's coordinator, asked from from_host; None when no answer."""
        url = f"http://{'127.0.0.1' if host == from_host else host}:8081/ha"
        res = self.probe_from(from_host, "http", url)[url]
        return res[1] if isinstance(res, list) and res[0] == 200 else None

    def rest(self, host: str, path: str):
        url = f"http://{host}:8081{path}"
        res = self.probe_from(OBSERVER, "http", url)[url]
        if not isinstance(res, list) or res[0] != 200:
            raise AssertionError(f"GET {url}: {res}")
        return res[1]

    def acting_leader(self, among=MASTERS):
        """(host, /ha) of the coordinator that leads and has recovered, or None."""
        urls = [f"http://{h}:8081/ha" for h in among]
        res = self.probe_from(OBSERVER, "http", *urls)
        for h, u in zip(among, urls):
            r = res[u]
            if isinstance(r, list) and r[0] == 200 and r[1].get("role") == "leader" and \
                    (r[1].get("term") or {}).get("recovered"):
                return h, r[1]
        return None

    def flinc(self, *args, timeout: float = 60.0):
        return self.run_in(OBSERVER, self.flinc_bin, "--configDir", self.conf, *args,
                           timeout=timeout)

    def pid_lines(self, host: str, daemon: str) -> list[int]:
        f = self.host_dir(host) / "pids" / f"flinc-{USER}-{daemon}.pid"
        return [int(x) for x in f.read_text().split()] if f.exists() else []

    def logs(self, host: str) -> list[Path]:
        return sorted((self.host_dir(host) / "log").glob("*"))

    def log_files(self):
        return [(f"{p.parent.parent.name}: {p.name}", p) for h in HOSTS for p in self.logs(h)
                if p.suffix in (".log", ".out")]


# ------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def site(request):
    base = tl.make_tmp_dir("flinc-multihost-")
    lab = Lab(base)
    s = None
    try:
        lab.up()
        s = Site(base, lab)
        yield s
    finally:
        try:
            if s is not None:
                s.script("stop-cluster.sh", check=False, timeout=90)
                s.script("stop-zookeeper-quorum.sh", check=False, timeout=60)
        finally:
            lab.down()
            left = lab.leftovers()
            tl.remove_tmp_dir(base)
            assert not left, f"the drill left behind: {left}"


RESULT: dict = {}


def job_text(output: Path) -> str:
    return f"""\
name: multihost-drill
parallelism: 1
checkpointing: {{ interval: 1 s, mode: EXACTLY_ONCE }}
restart-strategy: {{ type: fixed-delay, attempts: 1000, delay: 100 ms }}
pipeline:
  - generator: {{ id: words, seed: 3, words: 200, rate: 1000 }}
  - sink: {{ id: out, type: file, path: "file://{output}" }}
"""


def job_state(site: Site, leader_host: str, jid: str) -> dict:
    return site.rest(leader_host, f"/jobs/{jid}")


def committed_records(site: Site) -> int:
    return len(load_drill().read_lines(load_drill().committed_files(site.output)))


def wait_committed_progress(site: Site, host: str, jid: str, before: int, what: str) -> int:
    """Until a checkpoint completed after the job's latest restore (so it was taken by
    the running attempt) and the committed output holds more than `before` records;
    returns the committed record count."""
    def probe():
        c = site.rest(host, f"/jobs/{jid}/checkpoints")
        done = ((c.get("latest") or {}).get("completed") or {}).get("id") or 0
        restored = ((c.get("latest") or {}).get("restored") or {}).get("id") or 0
        n = committed_records(site)
        return n if done > restored and n > before else None
    return tl.wait_for(probe, 60, f"a checkpoint completed and output committed {what}",
                       interval=0.2)


def wait_takeover(site: Site, jid: str, old_epoch: int, among, what: str):
    """Until a coordinator of `among` leads with a newer epoch and the job is RUNNING under
    it (every subtask the new leader deployed runs); returns (host, ha, job)."""
    def probe():
        found = site.acting_leader(among)
        if not found or found[1]["epoch"] <= old_epoch:
            return None
        j = job_state(site, found[0], jid)
        if j["state"] == "RUNNING":
            return found[0], found[1], j
        return None
    return tl.wait_for(probe, 60, what, interval=0.1)


def test_multihost_failover_and_partition(site, request):
    from flinc_fixtures import _add_log_source
    _add_log_source(request, site)  # the hosts' logs in the report of a failure

    # --- ZooKeeper on every host, then the cluster, both through the ssh stand-in
    r = site.script("start-zookeeper-quorum.sh")
    for h in HOSTS:
        assert f"Starting zookeeper daemon on host {h}." in r.stdout, r.stdout
        assert (site.host_dir(h) / "zookeeper" / "myid").read_text().strip() == \
            str(HOSTS.index(h) + 1)
    targets = [f"{h}:2181" for h in HOSTS]

    def quorum_serving():
        modes = site.probe_from(OBSERVER, "srvr", *targets)
        return all(m in ("leader", "follower") for m in modes.values()) and modes
    tl.wait_for(quorum_serving, 90, "ZooKeeper on bigdata111/222/333 to serve", interval=0.2)

    assert (site.conf / "masters").read_text() == "bigdata111:8081\nbigdata222:8081\n"
    r = site.script("start-cluster.sh")
    assert r.stdout.startswith("Starting HA cluster with 2 masters.\n"), r.stdout
    for h in MASTERS:
        assert f"Starting coordinator daemon on host {h}." in r.stdout
    for h in HOSTS:
        assert f"Starting worker daemon on host {h}." in r.stdout
    leader_host, ha = tl.wait_for(site.acting_leader, 60, "an acting leader", interval=0.1)
    tl.wait_for(lambda: site.rest(leader_host, "/overview")["taskmanagers"] == 3, 60,
                "3 workers registered", interval=0.1)
    for h in MASTERS:
        assert len(site.pid_lines(h, "coordinator")) == 1
        assert (site.host_dir(h) / "log" / f"flinc-{USER}-coordinator-0-{h}.log").is_file()
    for h in HOSTS:
        assert len(site.pid_lines(h, "worker")) == 1
        assert (site.host_dir(h) / "log" / f"flinc-{USER}-worker-0-{h}.log").is_file()

    # The CLI, from bigdata333, finds the leader through ZooKeeper by host names.
    r = site.flinc("leader")
    assert r.returncode == 0, r.stderr
    assert f"REST: http://{leader_host}:8081\n" in r.stdout, r.stdout
    job = site.base / "job.yaml"
    job.write_text(job_text(site.output))
    r = site.flinc("run", "-d", job)
    assert r.returncode == 0, r.stdout + r.stderr
    jid = re.search(r"JobID ([0-9a-f]{32})", r.stdout).group(1)
    j = tl.wait_for(lambda: (lambda j: j if j["state"] == "RUNNING" else None)(
        job_state(site, leader_host, jid)), 60, "the job RUNNING", interval=0.1)
    committed = [wait_committed_progress(site, leader_host, jid, 0, "before the drill")]
    rounds = []

    # --- round 1: kill -9 the leader's coordinator
    old_host, old_epoch = leader_host, ha["epoch"]
    other = next(h for h in MASTERS if h != old_host)
    victim = site.pid_lines(old_host, "coordinator")[-1]
    t0 = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    host1, ha1, j1 = wait_takeover(site, jid, old_epoch, [other],
                                   f"{other} to take over after kill -9 of {old_host}")
    rounds.append(("kill -9", old_host, round((time.monotonic() - t0) * 1000)))
    committed.append(wait_committed_progress(site, host1, jid, committed[-1],
                                             f"after {other} took over"))
    site.on(old_host, "jobmanager.sh", "start", old_host, 8081)
    tl.wait_for(lambda: (site.ha(old_host) or {}).get("role") == "standby", 60,
                f"{old_host} back as standby", interval=0.1)
    assert site.pid_lines(old_host, "coordinator")[0] == victim, "the stale line stays"

    # --- round 2: cut the leader's host off the network
    cut = host1
    back = old_host
    t0 = time.monotonic()
    site.lab.cut(cut)
    try:
        host2, ha2, j2 = wait_takeover(site, jid, ha1["epoch"], [back],
                                       f"{back} to take over from the cut-off {cut}")
        rounds.append(("link down", cut, round((time.monotonic() - t0) * 1000)))

        # the cut-off coordinator steps down (asked from inside its own host)
        def stepped_down():
            ha_cut = site.ha(cut, from_host=cut)
            return ha_cut and ha_cut["role"] not in ("leader", "suspended") and ha_cut
        tl.wait_for(stepped_down, 30, f"the cut-off {cut} to step down", interval=0.1)
        logs = "".join(p.read_text(errors="replace") for p in site.logs(cut)
                       if p.name.startswith(f"flinc-{USER}-coordinator-"))
        assert "-leadership-lost" in logs, f"no -leadership-lost in {cut}'s coordinator log"
    finally:
        site.lab.heal(cut)

    # --- the link is back: it rejoins as a standby of the new leader
    def rejoined():
        h = site.ha(cut)
        return h and h["role"] == "standby" and h["leader"]["id"] == ha2["id"] and h
    tl.wait_for(rejoined, 90, f"{cut} to rejoin as standby", interval=0.2)
    assert site.acting_leader()[0] == back, "leadership must stay with the new leader"
    tl.wait_for(lambda: site.rest(back, "/overview")["taskmanagers"] == 3, 60,
                "the cut-off worker to register again", interval=0.2)
    tl.wait_for(lambda: job_state(site, back, jid)["state"] == "RUNNING", 60,
                "the job RUNNING after the link came back", interval=0.2)
    committed.append(wait_committed_progress(site, back, jid, committed[-1],
                                             "after the link came back"))

    for kind, host, ms in rounds:
        print(f"multihost {kind} on {host}: job RUNNING again after {ms} ms")
    print(f"multihost committed records: before the drill {committed[0]}, after round 1 "
          f"{committed[1]}, after round 2 {committed[2]}")

    # --- the end: cancel, read the output, stop everything through the scripts
    r = site.flinc("cancel", jid)
    assert r.returncode == 0, r.stdout + r.stderr
    drill = load_drill()
    RESULT["verdict"], RESULT["check"] = drill.check_output(
        drill.load_job(str(job), site.output, 1, 0), site.output, "CANCELED")
    print(f"multihost exactly-once: {RESULT['verdict']} {RESULT['check']}")
    RESULT["committed"] = committed

    r = site.script("stop-cluster.sh")
    assert r.stdout.count("Stopping worker daemon") == 3, r.stdout
    assert r.stdout.count("Stopping coordinator daemon") == 2, r.stdout
    r = site.on(old_host, "jobmanager.sh", "stop")
    assert r.stdout.strip() == f"No coordinator daemon (pid: {victim}) is running anymore on " \
                               f"{old_host}.", r.stdout
    site.script("stop-zookeeper-quorum.sh")
    tl.wait_for(lambda: not any(site.lab.pids(h) for h in HOSTS), 60,
                "every process of the three hosts to exit", interval=0.2)


def test_multihost_output_is_exactly_once():
    """The committed output, read after the cancel, is exactly the first K records of the
    generator, and K covers what was committed after both failovers."""
    assert RESULT, "the drill did not get to check its output"
    assert RESULT["verdict"] is True, RESULT["check"]
    assert RESULT["check"]["mode"] == "sequence", RESULT["check"]
    assert RESULT["check"]["records"] >= RESULT["committed"][-1] > RESULT["committed"][0], \
        (RESULT["check"], RESULT["committed"])


def load_drill():
    path = ROOT / "tools" / "drill" / "flinc-drill"
    loader = importlib.machinery.SourceFileLoader("flinc_drill", str(path))
    spec = importlib.util.spec_from_loader("flinc_drill", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod
