"""Test harness for flinc: real ZooKeeper quorums and real processes, no pytest needed.

Imported by tests/integration, tests/drills (through tests/lib/flinc_fixtures.py) and by
tools/bench scripts. Everything here follows the rules of STYLE.md "Tests": free
loopback ports, a private temp dir per quorum, waits that poll a condition against a
deadline scaled by FLINC_TIMEOUT_SCALE, and processes stopped by the pid we started.

Indices: ZkQuorum methods take a 0-based server index ``i``; server ``i`` has
``myid = i + 1``.
"""

from __future__ import annotations

import atexit
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

__all__ = [
    "timeout_scale", "scaled", "Deadline", "deadline", "wait_for", "poll_until",
    "free_port", "free_ports", "four_letter", "srvr",
    "ZkServer", "ZkQuorum", "ZkStartError", "expire_session",
    "Proc", "ProcessGroup", "make_conf_dir", "repo_root", "build_dir", "binary",
    "tail_file", "keep_tmp", "make_tmp_dir", "remove_tmp_dir", "interrupted",
    "kill_all_started", "install_signal_cleanup", "unique_suffix",
]

REPO_ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- time


def timeout_scale() -> float:
    """Multiplier for every deadline: env FLINC_TIMEOUT_SCALE (default 1, must be > 0)."""
    raw = os.environ.get("FLINC_TIMEOUT_SCALE", "").strip()
    if not raw:
        return 1.0
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"FLINC_TIMEOUT_SCALE={raw!r} is not a number") from None
    if not value > 0:
        raise ValueError(f"FLINC_TIMEOUT_SCALE={raw!r} must be > 0")
    return value


def scaled(seconds: float) -> float:
    """seconds * timeout_scale()."""
    return seconds * timeout_scale()


class Deadline:
    """A point on the monotonic clock, `seconds * timeout_scale()` from its creation."""

    def __init__(self, seconds: float, *, scale: bool = True):
        self.budget_s = scaled(seconds) if scale else float(seconds)
        self.start = time.monotonic()
        self.end = self.start + self.budget_s

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.end

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def __repr__(self) -> str:
        return f"Deadline(budget={self.budget_s:.1f}s, remaining={self.remaining():.1f}s)"


def deadline(seconds: float) -> Deadline:
    """Deadline `seconds` (scaled by FLINC_TIMEOUT_SCALE) from now."""
    return Deadline(seconds)


def wait_for(predicate, timeout_s: float, what: str, interval: float = 0.05):
    """Poll `predicate()` until it returns a truthy value, and return that value.

    `timeout_s` is scaled by FLINC_TIMEOUT_SCALE. The predicate may raise; the exception
    counts as "not yet" and its text is kept as the last seen value. On timeout raises
    AssertionError("timed out after T s waiting for WHAT; last seen: LAST").
    """
    return poll_until(predicate, Deadline(timeout_s), what, interval)


def poll_until(predicate, dl: Deadline, what: str, interval: float = 0.05):
    """wait_for() against an existing Deadline (several waits sharing one budget).

    The predicate is always evaluated at least once, even on an expired deadline.
    """
    last = None
    while True:
        try:
            value = predicate()
        except Exception as e:  # noqa: BLE001 - any failure means "not yet"
            last = f"{type(e).__name__}: {e}"
        else:
            if value:
                return value
            last = value
        if dl.expired():
            raise AssertionError(
                f"timed out after {dl.elapsed():.1f} s waiting for {what}; last seen: {last!r}")
        time.sleep(min(interval, max(dl.remaining(), 0.001)))


# --------------------------------------------------------------------------- ports


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1 (all held open while picking).

    Someone else may take a port between this call and our bind; callers that start
    servers retry on a bind failure.
    """
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port() -> int:
    """One free TCP port on 127.0.0.1."""
    return free_ports(1)[0]


# --------------------------------------------------------------------------- files


def keep_tmp() -> bool:
    """True when env FLINC_KEEP_TMP asks to keep temp dirs for a post-mortem."""
    return os.environ.get("FLINC_KEEP_TMP", "") not in ("", "0", "false", "no")


def tail_file(path, n: int = 80) -> str:
    """Last n lines of a text file ('' when missing), decoded with replacement."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            chunk = min(size, max(64 * 1024, n * 400))
            f.seek(size - chunk)
            data = f.read()
    except OSError:
        return ""
    lines = data.decode("utf-8", errors="replace").splitlines()
    return "\n".join(lines[-n:])


# ------------------------------------------------------------- what we started
#
# Every child we start is remembered until it is reaped, and every temp dir we made
# until it is removed, so that an interrupted run (SIGTERM from meson's timeout, an
# exception in a bench script) still kills what it started, by pid.

_live_lock = threading.RLock()  # RLock: the signal handler may interrupt a holder
_live: dict[int, tuple[subprocess.Popen, str, Path]] = {}
_tmp_dirs: set[Path] = set()
_interrupted = False


def make_tmp_dir(prefix: str = "flinc-", parent=None) -> Path:
    """A new private temp dir, removed by remove_tmp_dir() or on an interrupt."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    with _live_lock:
        _tmp_dirs.add(path)
    return path


def remove_tmp_dir(path) -> None:
    """Remove a temp dir (unless FLINC_KEEP_TMP is set)."""
    path = Path(path)
    with _live_lock:
        _tmp_dirs.discard(path)
    if not keep_tmp():
        shutil.rmtree(path, ignore_errors=True)



def interrupted() -> bool:
    """True once a cleanup signal arrived: nothing may be started any more."""
    return _interrupted


def _check_may_start(what: str) -> None:
    if _interrupted:
        raise RuntimeError(f"not starting {what}: the run is being interrupted")


def _register(p: subprocess.Popen, label: str, log_path: Path) -> None:
    with _live_lock:
        _live[p.pid] = (p, label, Path(log_path))


def _unregister(p: subprocess.Popen) -> None:
    with _live_lock:
        _live.pop(p.pid, None)


def _signal_unreaped(p: subprocess.Popen, sig: int, group: bool = False) -> bool:
    """Send sig to p (or its process group) if p has not been reaped; True if sent.

    Only this process reaps its children, so a pid that poll() has not reaped cannot
    have been reused by someone else.
    """
    if p.poll() is not None:
        return False
    try:
        if group:
            os.killpg(p.pid, sig)  # start_new_session=True: pgid == pid
        else:
            os.kill(p.pid, sig)
        return True
    except ProcessLookupError:
        return False


def _kill_registered(wait: bool) -> list:
    with _live_lock:
        entries = list(_live.values())
    for p, _, _ in entries:
        try:
            _signal_unreaped(p, signal.SIGCONT, group=True)
            _signal_unreaped(p, signal.SIGKILL, group=True)
        except OSError:
            pass
    if wait:
        for p, _, _ in entries:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            _unregister(p)
    return entries


def kill_all_started() -> None:
    """SIGKILL every child this module started that is still unreaped (and its
    process group), and reap them. Runs at interpreter exit too."""
    _kill_registered(wait=True)


atexit.register(kill_all_started)


def install_signal_cleanup(signals=(signal.SIGTERM, signal.SIGHUP), before_report=None) -> None:
    """On these signals: SIGKILL every started child, print the tail of their logs to
    stderr, remove our temp dirs (unless FLINC_KEEP_TMP), refuse to start anything
    more, then raise KeyboardInterrupt so the caller unwinds.

    Meson's test timeout sends SIGTERM to the test's process group and SIGKILL 0.5 s
    later; our children live in their own sessions, so without this they would outlive
    the run. `before_report()`, if given, runs before the report is written (pytest:
    suspend output capture so that the report reaches the real stderr). Call from the
    main thread.
    """
    def handler(signum, frame):
        global _interrupted
        _interrupted = True
        entries = _kill_registered(wait=False)  # no waiting: 0.5 s until SIGKILL
        name = signal.Signals(signum).name
        out = [f"flinc_testlib: {name}: killed {len(entries)} started process(es)"]
        for _, label, log_path in entries:
            out.append(f"----- {label}: {log_path} (last 30 lines) -----")
            out.append(tail_file(log_path, 30))
        try:
            if before_report is not None:
                before_report()
        except Exception:  # noqa: BLE001 - the report is best effort
            pass
        try:
            os.write(2, ("\n".join(out) + "\n").encode(errors="replace"))
        except OSError:
            pass
        with _live_lock:
            dirs = list(_tmp_dirs)
        for d in dirs:
            remove_tmp_dir(d)
        raise KeyboardInterrupt(f"signal {name}")

    for s in signals:
        signal.signal(s, handler)


# --------------------------------------------------------------------------- Proc


class Proc:
    """One child process with stdout+stderr appended to `log_path`.

    The process runs in its own session (its pgid is its pid); it is signalled by that
    pid only, never by name.
    """

    def __init__(self, argv, log_path, *, name: str | None = None, env: dict | None = None,
                 cwd=None, start: bool = True):
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log_path)
        self.name = name or Path(self.argv[0]).name
        self.env = env
        self.cwd = cwd
        self._popen: subprocess.Popen | None = None
        if start:
            self.start()

    def start(self) -> "Proc":
        if self._popen is not None and self._popen.poll() is None:
            raise RuntimeError(f"{self.name} is already running (pid {self._popen.pid})")
        _check_may_start(self.name)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        for k, v in (self.env or {}).items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = str(v)
        with open(self.log_path, "ab") as log:
            self._popen = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.cwd, env=env, start_new_session=True, close_fds=True)
        _register(self._popen, self.name, self.log_path)
        return self

    # -- state
    @property
    def pid(self) -> int:
        if self._popen is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        """None while running; else the exit code, or -N when killed by signal N."""
        return self.poll()

    def poll(self) -> int | None:
        if self._popen is None:
            return None
        rc = self._popen.poll()
        if rc is not None:
            _unregister(self._popen)
        return rc

    def is_running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    # -- signals
    def send_signal(self, sig: int) -> bool:
        """Send sig to the process if it has not exited; True if sent."""
        return self._popen is not None and _signal_unreaped(self._popen, sig)

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 10.0) -> int | None:
        """Send sig (default SIGKILL, i.e. kill -9). For SIGKILL also reap the process and
        return its return code; for other signals return None without waiting."""
        self.send_signal(sig)
        if sig == signal.SIGKILL:
            return self.wait_exit(timeout)
        return None

    def stop_signal(self) -> bool:
        """SIGSTOP: freeze the process (a long GC pause, a swapped-out box)."""
        return self.send_signal(signal.SIGSTOP)

    def cont(self) -> bool:
        """SIGCONT: resume a stopped process."""
        return self.send_signal(signal.SIGCONT)

    def wait_exit(self, timeout: float = 10.0) -> int:
        """Wait (scaled deadline) for the process to exit; return its return code."""
        if self._popen is None:
            raise RuntimeError(f"{self.name} was never started")
        dl = Deadline(timeout)
        try:
            rc = self._popen.wait(timeout=dl.budget_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"timed out after {dl.elapsed():.1f} s waiting for {self.name} "
                f"(pid {self._popen.pid}) to exit; it is still running") from None
        _unregister(self._popen)
        return rc

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait up to `timeout` (scaled), then SIGKILL; return the return code."""
        if self._popen is None:
            return None
        if self._popen.poll() is None:
            self.send_signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            self.send_signal(signal.SIGTERM)
            try:
                self._popen.wait(timeout=scaled(timeout))
            except subprocess.TimeoutExpired:
                _signal_unreaped(self._popen, signal.SIGKILL, group=True)
                self._popen.wait()
        _unregister(self._popen)
        return self._popen.returncode

    # -- log
    def log_offset(self) -> int:
        """Current size of the log in bytes: pass it as start_offset to wait for a NEW line."""
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_text(self, start_offset: int = 0) -> str:
        """The log from byte start_offset on, decoded with replacement."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(start_offset)
                return f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, n: int = 80) -> str:
        return tail_file(self.log_path, n)

    def wait_log(self, regex, timeout: float = 10.0, start_offset: int = 0,
                 flags: int = re.MULTILINE) -> re.Match:
        """Poll the log for `regex` and return the first match.

        Only complete lines (ending in a newline) after byte `start_offset` are
        searched, so a capture group cannot stop at a half-written line. To wait for a
        new occurrence after an action: `off = p.log_offset(); act(); p.wait_log(rx,
        start_offset=off)`. Fails early if the process exits without printing it.
        """
        rx = re.compile(regex, flags) if isinstance(regex, str) else regex

        def probe():
            running = self.is_running()  # before reading: all output of a dead one is in
            text = self.log_text(start_offset)
            complete = text[: text.rfind("\n") + 1]
            m = rx.search(complete)
            if m is not None:
                return m
            if not running:
                raise _Exited(self.name, self.returncode)
            lines = complete.splitlines()
            raise _NotYet(f"last line {lines[-1]!r}" if lines else "no complete line yet")

        try:
            return wait_for(probe, timeout, f"/{rx.pattern}/ in {self.log_path}")
        except _Exited as e:
            raise AssertionError(
                f"{e.name} exited (rc={e.rc}) without logging /{rx.pattern}/; log tail:\n"
                f"{self.tail(30)}") from None

    def log_files(self):
        return [(f"{self.name} (pid {self._popen.pid if self._popen else '-'})", self.log_path)]

    def __repr__(self) -> str:
        state = "not started" if self._popen is None else (
            "running" if self.is_running() else f"exited rc={self._popen.returncode}")
        return f"Proc({self.name}, pid={self._popen.pid if self._popen else None}, {state})"


class _NotYet(Exception):
    """wait_for's "not yet", with the detail to show as last seen."""


class _Abort(BaseException):
    """Ends a wait_for() at once: a BaseException, so it is not taken for "not yet"."""


class _Exited(_Abort):
    def __init__(self, name, rc):
        super().__init__(name, rc)
        self.name = name
        self.rc = rc


class ProcessGroup:
    """The processes one test started; close() kills all of them by pid."""

    def __init__(self, base_dir):
        self.base_dir = Path(base_dir)
        self.procs: list[Proc] = []
        self._names: dict[str, int] = {}

    def start(self, argv, name: str | None = None, *, env: dict | None = None,
              cwd=None) -> Proc:
        """Start argv with its output in base_dir/logs/<name>.log (<name>-2.log, ... on
        reuse of a name); env entries are merged onto os.environ (None removes one)."""
        name = name or Path(str(argv[0])).name
        count = self._names.get(name, 0) + 1
        self._names[name] = count
        log = self.base_dir / "logs" / (f"{name}.log" if count == 1 else f"{name}-{count}.log")
        proc = Proc(argv, log, name=name if count == 1 else f"{name}-{count}", env=env, cwd=cwd,
                    start=False)
        self.procs.append(proc)
        proc.start()
        return proc

    def log_files(self):
        return [lf for p in self.procs for lf in p.log_files()]

    def close(self) -> None:
        """SIGCONT + SIGKILL every started process (and its process group), then reap."""
        for p in self.procs:
            if p._popen is not None:
                _signal_unreaped(p._popen, signal.SIGCONT, group=True)
                _signal_unreaped(p._popen, signal.SIGKILL, group=True)
        for p in self.procs:
            if p._popen is not None:
                try:
                    p._popen.wait(timeout=scaled(10))
                except subprocess.TimeoutExpired:
                    pass
                _unregister(p._popen)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------- ZooKeeper


def four_letter(port: int, cmd: str = "srvr", host: str = "127.0.0.1",
                timeout: float = 1.0) -> str:
    """Send a ZooKeeper four-letter-word command and return the reply (raises OSError)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(cmd.encode())
        chunks = []
        while True:
            data = s.recv(4096)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode("utf-8", errors="replace")


def srvr(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> dict:
    """Parsed `srvr` reply ({'Mode': 'leader', 'Zxid': ..., ...}); {} when the server
    answers but is not serving (no quorum). Raises OSError when it does not answer."""
    reply = four_letter(port, "srvr", host, timeout)
    out = {}
    for line in reply.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out if "Mode" in out else {}


class ZkStartError(RuntimeError):
    pass


def _zk_classpath() -> str:
    cp = os.environ.get("FLINC_ZK_CLASSPATH")
    if cp:
        return cp
    java_dir = Path("/usr/share/java")
    jar = java_dir / "zookeeper.jar"
    if not jar.exists():
        raise ZkStartError(f"ZooKeeper jar {jar} not found: install Debian's zookeeper "
                           "package (tools/dev/setup.sh) or set FLINC_ZK_CLASSPATH")
    # zookeeper.jar's manifest Class-Path names its runtime jars (jute, netty, metrics,
    # slf4j-api, ...). It ships no slf4j binding: add log4j 1.2 so each server logs to
    # its own file.
    parts = [str(jar)]
    binding = [java_dir / "slf4j-log4j12.jar", java_dir / "log4j-1.2.jar"]
    if all(p.exists() for p in binding):
        parts += [str(p) for p in binding]
    return ":".join(parts)


# JVM options tuned for start-up on a small box: small heap, serial GC, C1 only, the
# JDK's CDS archive; no hsperfdata files in /tmp.
ZK_JVM_OPTS = [
    "-Xmx128m", "-Xms32m", "-Xss512k", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
    "-Xshare:auto", "-XX:-UsePerfData", "-XX:+ExitOnOutOfMemoryError",
    "-Djava.net.preferIPv4Stack=true",
]

# ZooKeeper system properties for tests. forceSync=no: no fsync per transaction; tests
# kill processes, not machines, so the page cache keeps what a server wrote.
ZK_SYS_PROPS = {
    "zookeeper.forceSync": "no",
    "zookeeper.preAllocSize": "1024",  # KiB of txn log preallocation (default 64 MiB)
    "zookeeper.admin.enableServer": "false",
    "zookeeper.fastleader.maxNotificationInterval": "1000",  # ms, default 60 s backoff
    "zookeeper.electionPortBindRetry": "1",
    "zookeeper.jmx.log4j.disable": "true",
}

_BIND_FAILURE = re.compile(r"BindException|Address already in use|Couldn't bind|"
                           r"UNABLE_TO_BIND|Unable to bind")


class ZkServer:
    """One ZooKeeper server of a ZkQuorum: its dir, ports, config and process."""

    def __init__(self, myid: int, dir_path: Path, client_port: int, peer_port: int,
                 election_port: int):
        self.myid = myid
        self.dir = Path(dir_path)
        self.data_dir = self.dir / "data"
        self.cfg_path = self.dir / "zoo.cfg"
        self.log_path = self.dir / "zookeeper.log"
        self.log4j_path = self.dir / "log4j.properties"
        self.client_port = client_port
        self.peer_port = peer_port
        self.election_port = election_port
        self._popen: subprocess.Popen | None = None
        self.starts = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    def write_config(self, cfg: dict, server_lines: list[str]) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "myid").write_text(f"{self.myid}\n")
        lines = [f"{k}={v}" for k, v in cfg.items()]
        lines += [f"dataDir={self.data_dir}", f"clientPort={self.client_port}",
                  "clientPortAddress=127.0.0.1"]
        lines += server_lines
        self.cfg_path.write_text("\n".join(lines) + "\n")
        self.log4j_path.write_text(
            "log4j.rootLogger=INFO, FILE\n"
            "log4j.appender.FILE=org.apache.log4j.FileAppender\n"
            f"log4j.appender.FILE.File={self.log_path}\n"
            "log4j.appender.FILE.Append=true\n"
            "log4j.appender.FILE.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.FILE.layout.ConversionPattern="
            f"%d{{ISO8601}} [myid:{self.myid}] %-5p [%t] %c{{1}} - %m%n\n")

    def start(self, java: str, classpath: str, jvm_opts: list[str]) -> None:
        if self.is_running():
            raise RuntimeError(f"zk{self.myid} is already running (pid {self.pid})")
        _check_may_start(f"zk{self.myid}")
        props = [f"-D{k}={v}" for k, v in ZK_SYS_PROPS.items()]
        argv = [java, *jvm_opts, f"-XX:ErrorFile={self.dir}/hs_err_%p.log",
                f"-Dlog4j.configuration=file:{self.log4j_path}", *props,
                "-cp", classpath, "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                str(self.cfg_path)]
        with open(self.log_path, "ab") as log:
            log.write(f"=== flinc testlib: starting zk{self.myid} (start #{self.starts + 1})\n"
                      .encode())
            log.flush()
            self._popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.dir, start_new_session=True, close_fds=True)
        self.starts += 1
        _register(self._popen, f"zookeeper zk{self.myid}", self.log_path)

    def is_running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def send_signal(self, sig: int) -> bool:
        return self._popen is not None and _signal_unreaped(self._popen, sig)

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self._popen is None:
            return
        _signal_unreaped(self._popen, signal.SIGCONT)
        _signal_unreaped(self._popen, signal.SIGKILL)
        self._popen.wait()
        _unregister(self._popen)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, wait up to `timeout` (scaled), then SIGKILL; always reaps."""
        if self._popen is None:
            return
        if self._popen.poll() is None:
            _signal_unreaped(self._popen, signal.SIGCONT)
            _signal_unreaped(self._popen, signal.SIGTERM)
            try:
                self._popen.wait(timeout=scaled(timeout))
            except subprocess.TimeoutExpired:
                _signal_unreaped(self._popen, signal.SIGKILL)
                self._popen.wait()
        _unregister(self._popen)

    def srvr(self) -> dict:
        """See srvr(); raises OSError when the server does not answer."""
        return srvr(self.client_port)

    def mode(self) -> str | None:
        """'leader', 'follower', 'standalone', or None (down, not answering, no quorum)."""
        try:
            return self.srvr().get("Mode")
        except OSError:
            return None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, n: int = 80) -> str:
        return tail_file(self.log_path, n)

    def __repr__(self) -> str:
        return (f"ZkServer(myid={self.myid}, client={self.client_port}, pid={self.pid}, "
                f"running={self.is_running()})")


class ZkQuorum:
    """A real n-server ZooKeeper ensemble on loopback in a private temp dir.

    `tick_ms` is ZooKeeper's tickTime; sessions may be negotiated between
    `min_session_ms` (default 2 * tick) and `max_session_ms` (default 60 s).
    `start()` returns once every server reports leader/follower and a write through a
    kazoo client succeeded. `close()` kills every server by pid and removes the dir
    (kept when FLINC_KEEP_TMP is set).
    """

    SERVING_MODES = ("leader", "follower", "standalone")

    def __init__(self, n: int = 3, base_dir=None, tick_ms: int = 200,
                 min_session_ms: int | None = None, max_session_ms: int = 60000,
                 init_limit: int = 25, sync_limit: int = 10,
                 jvm_opts: list[str] | None = None, java: str | None = None,
                 extra_cfg: dict | None = None):
        if n < 1:
            raise ValueError("n must be >= 1")
        self.n = n
        self.tick_ms = tick_ms
        self.min_session_ms = min_session_ms if min_session_ms is not None else 2 * tick_ms
        self.max_session_ms = max_session_ms
        self.init_limit = init_limit
        self.sync_limit = sync_limit
        self.jvm_opts = list(jvm_opts) if jvm_opts is not None else list(ZK_JVM_OPTS)
        self.java = java or os.environ.get("FLINC_JAVA") or shutil.which("java") or "/usr/bin/java"
        self.extra_cfg = dict(extra_cfg or {})
        if base_dir is not None:
            Path(base_dir).mkdir(parents=True, exist_ok=True)
        self.dir = make_tmp_dir(prefix="zk-" if base_dir else "flinc-zk-", parent=base_dir)
        self.servers: list[ZkServer] = []
        self._clients = []
        self._closed = False
        self.start_attempts = 0
        self.ready_s: float | None = None  # start() to ready, last successful start()

    # -- set-up
    def _layout(self) -> None:
        ports = free_ports(3 * self.n)
        if self.servers:
            for s in self.servers:
                s.kill()
            shutil.rmtree(self.dir / "servers", ignore_errors=True)
        self.servers = [
            ZkServer(i + 1, self.dir / "servers" / f"zk{i + 1}", *ports[3 * i: 3 * i + 3])
            for i in range(self.n)]
        cfg = {
            "tickTime": self.tick_ms,
            "initLimit": self.init_limit,
            "syncLimit": self.sync_limit,
            "minSessionTimeout": self.min_session_ms,
            "maxSessionTimeout": self.max_session_ms,
            "admin.enableServer": "false",
            "4lw.commands.whitelist": "*",
            **self.extra_cfg,
        }
        server_lines = [f"server.{s.myid}=127.0.0.1:{s.peer_port}:{s.election_port}"
                        for s in self.servers]
        for s in self.servers:
            s.write_config(cfg, server_lines)

    def start(self, timeout: float = 60.0, attempts: int = 3) -> "ZkQuorum":
        """Start all servers and wait until the quorum serves writes (scaled timeout).

        A bind failure (port taken between picking and binding) restarts the whole
        quorum on fresh ports, up to `attempts` times. Other failures raise
        ZkStartError with the tail of every server log.
        """
        classpath = _zk_classpath()
        t0 = time.monotonic()
        for attempt in range(1, attempts + 1):
            self.start_attempts = attempt
            self._layout()
            for s in self.servers:
                s.start(self.java, classpath, self.jvm_opts)
            try:
                self.wait_ready(timeout, _bind_check=True)
            except _BindFailure as e:
                if attempt == attempts:
                    self._kill_all()
                    raise ZkStartError(f"ZooKeeper could not bind its ports {attempts} times "
                                       f"({e}).\n{self.logs_tail(40)}") from None
                continue
            except BaseException as e:
                tails = self.logs_tail(40)
                self._kill_all()
                if not isinstance(e, (Exception, _Abort)):
                    raise  # KeyboardInterrupt, SystemExit
                raise ZkStartError(f"ZooKeeper quorum did not become ready "
                                   f"(attempt {attempt}): {e}\n{tails}") from None
            self.ready_s = time.monotonic() - t0
            return self
        raise AssertionError("unreachable")

    def wait_ready(self, timeout: float = 60.0, *, _bind_check: bool = False) -> float:
        """Wait (scaled) until every server reports a serving mode and a write through a
        kazoo client succeeds; return the seconds it took. All servers must be running."""
        dl = Deadline(timeout)
        for s in self.servers:
            if not s.is_running() and not _bind_check:
                raise AssertionError(f"wait_ready: zk{s.myid} is not running")

        def all_serving():
            modes = {}
            for s in self.servers:
                if not s.is_running():
                    text = s.log_text()
                    if _BIND_FAILURE.search(text):
                        raise _BindFailure(f"zk{s.myid} exited: port in use")
                    raise _ServerDied(f"zk{s.myid} exited with rc={s._popen.returncode}")
                if _bind_check and _BIND_FAILURE.search(s.log_text()):
                    raise _BindFailure(f"zk{s.myid}: port in use")
                modes[f"zk{s.myid}"] = s.mode()
            if all(m in self.SERVING_MODES for m in modes.values()):
                return modes
            raise _NotYet(f"modes {modes}")

        poll_until(all_serving, dl, "every ZooKeeper server to serve", interval=0.05)
        poll_until(self._probe_write, dl, "a write through the quorum", interval=0.1)
        return dl.elapsed()

    def _probe_write(self) -> bool:
        from kazoo.client import KazooClient
        c = KazooClient(hosts=self.connect_string, timeout=10.0)
        try:
            c.start(timeout=scaled(5))
            path = c.create("/flinc-testlib-probe-", b"", ephemeral=True, sequence=True)
            c.delete(path)
            return True
        finally:
            try:
                c.stop()
            finally:
                c.close()

    # -- addresses
    @property
    def connect_string(self) -> str:
        """'127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3'"""
        return ",".join(s.address for s in self.servers)

    def address(self, i: int) -> str:
        return self.servers[i].address

    # -- membership drills
    def stop(self, i: int, timeout: float = 10.0) -> None:
        """SIGTERM server i, wait up to `timeout` (scaled), SIGKILL after."""
        self.servers[i].stop(timeout)

    def kill(self, i: int) -> None:
        """SIGKILL server i (and reap it)."""
        self.servers[i].kill()

    def pause(self, i: int) -> None:
        """SIGSTOP server i."""
        self.servers[i].send_signal(signal.SIGSTOP)

    def resume(self, i: int) -> None:
        """SIGCONT server i."""
        self.servers[i].send_signal(signal.SIGCONT)

    def start_server(self, i: int, wait: bool = True, timeout: float = 30.0) -> None:
        """Restart server i with its data dir and ports. With wait=True, wait (scaled)
        until it serves as leader/follower; that needs a majority running."""
        s = self.servers[i]
        s.start(self.java, _zk_classpath(), self.jvm_opts)
        if wait:
            self.wait_serving(i, timeout)

    def wait_serving(self, i: int, timeout: float = 30.0) -> str:
        s = self.servers[i]

        def serving():
            if not s.is_running():
                raise _ServerDied(f"zk{s.myid} exited with rc={s._popen.returncode}")
            return s.mode() if s.mode() in self.SERVING_MODES else None

        try:
            return wait_for(serving, timeout, f"zk{s.myid} to serve as leader or follower")
        except (AssertionError, _ServerDied) as e:
            raise AssertionError(f"{e}\n{self.logs_tail(30, [i])}") from None

    def is_running(self, i: int) -> bool:
        return self.servers[i].is_running()

    def mode(self, i: int) -> str | None:
        return self.servers[i].mode()

    def leader_index(self) -> int | None:
        """Index of the server reporting Mode: leader, or None."""
        for i, s in enumerate(self.servers):
            if s.mode() == "leader":
                return i
        return None

    def heal(self, timeout: float = 60.0) -> None:
        """Resume paused servers, restart stopped ones, and wait until the quorum serves."""
        for i, s in enumerate(self.servers):
            if s.is_running():
                s.send_signal(signal.SIGCONT)
            else:
                s.start(self.java, _zk_classpath(), self.jvm_opts)
        self.wait_ready(timeout)

    # -- clients
    def client(self, timeout: float = 10.0, start_timeout: float = 15.0, **kwargs):
        """A started KazooClient on connect_string; `timeout` is the requested session
        timeout in seconds (kazoo's name). Reconnects back off to at most 0.5 s (kazoo's
        default grows to an hour), so a client follows a healed quorum at once. The
        caller stops it; close() does as well."""
        from kazoo.client import KazooClient
        kwargs.setdefault("hosts", self.connect_string)
        kwargs.setdefault("connection_retry", dict(TEST_CONNECTION_RETRY))
        c = KazooClient(timeout=timeout, **kwargs)
        self._clients.append(c)
        c.start(timeout=scaled(start_timeout))
        return c

    # -- logs and teardown
    def log_files(self):
        return [(f"zookeeper zk{s.myid} (pid {s.pid})", s.log_path) for s in self.servers]

    def logs_tail(self, n: int = 80, which=None) -> str:
        idx = range(len(self.servers)) if which is None else which
        out = []
        for i in idx:
            s = self.servers[i]
            out.append(f"----- zk{s.myid} {s.log_path} (last {n} lines) -----\n{s.tail(n)}")
        return "\n".join(out)

    def client_mark(self) -> int:
        """A mark for close_clients(since=...): the clients made so far."""
        return len(self._clients)

    def close_clients(self, since: int = 0) -> None:
        """Stop and close the clients made by client() after `since` = client_mark()
        (default: all of them)."""
        clients, self._clients = self._clients[since:], self._clients[:since]
        for c in clients:
            try:
                c.stop()
                c.close()
            except Exception:  # noqa: BLE001 - teardown goes on
                pass

    def _kill_all(self) -> None:
        for s in self.servers:
            s.kill()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.close_clients()
        self._kill_all()
        remove_tmp_dir(self.dir)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"ZkQuorum({self.connect_string}, dir={self.dir})"


# kazoo reconnect policy for test clients: retry forever, never wait more than 0.5 s.
TEST_CONNECTION_RETRY = {"max_tries": -1, "delay": 0.05, "backoff": 2, "max_delay": 0.5}


class _BindFailure(_Abort):
    pass


class _ServerDied(_Abort):
    pass


def expire_session(connect_string: str, session_id: int, passwd: bytes,
                   timeout: float = 30.0) -> None:
    """End ZooKeeper session `session_id` now, as its expiry would, and return once it
    is gone.

    Contract: the session's owner sees SESSION_EXPIRED on its next contact with the
    quorum (kazoo: state LOST; C client: ZOO_EXPIRED_SESSION_STATE), and its ephemeral
    nodes are deleted in the same transaction that ends the session. The owner is not
    touched otherwise (no signal, no network change).

    How: open a second handle with the same (session_id, passwd) and close it; the close
    is a quorum transaction, the same one the leader issues on expiry. Then re-attach
    with the same credentials: a session that is gone comes back as a NEW session id.
    Repeat until that happens (the owner may have moved the session back in between),
    then wait until no server lists the session in its `dump` (so a wrong password,
    which is refused like a dead session, times out instead of passing).

    Getting the credentials: from kazoo, `client.client_id` -> (session_id, passwd).
    flinc processes log `session=0x<16 hex digits>` when a session is established and
    expose it over REST; the 16-byte password must come the same way (hex), e.g. a
    `passwd=<32 hex digits>` field next to it in test builds; parse with
    `int(sid_hex, 16)` and `bytes.fromhex(pw_hex)`. Without the password, expire a
    process's session the natural way: SIGSTOP it for longer than its negotiated
    session timeout.
    """
    from kazoo.client import KazooClient

    if isinstance(passwd, str):
        passwd = bytes.fromhex(passwd)

    def gone():
        c = KazooClient(hosts=connect_string, client_id=(session_id, passwd), timeout=10.0)
        try:
            c.start(timeout=scaled(10))
            current = c.client_id[0] if c.client_id else None
            if current != session_id:
                return True  # the server refused the old session: it is gone
            return False  # we hold it now; c.stop() below closes it
        finally:
            try:
                c.stop()
            finally:
                c.close()

    dl = Deadline(timeout)
    poll_until(gone, dl, f"session 0x{session_id:x} to be refused on re-attach", interval=0.05)

    # A wrong password is refused like a dead session: confirm with the servers' own
    # session tables (`dump`: session tracker and ephemerals, before the connections).
    token = re.compile(rf"\b0x{session_id:x}\b")
    servers = [(h, int(p)) for h, _, p in (a.rpartition(":") for a in connect_string.split(","))]

    def unlisted():
        listing, answered = [], 0
        for host, port in servers:
            try:
                table = four_letter(port, "dump", host).split("Connections dump:")[0]
            except OSError:
                continue
            answered += 1
            if token.search(table):
                listing.append(f"{host}:{port}")
        if answered == 0:
            raise _NotYet("no server answered `dump`")
        if listing:
            raise _NotYet(f"still listed by {', '.join(listing)} (wrong password?)")
        return True

    poll_until(unlisted, dl, f"session 0x{session_id:x} to leave every server's dump",
               interval=0.05)


# --------------------------------------------------------------------------- conf + build


def make_conf_dir(path, settings: dict, masters=(), workers=()) -> Path:
    """Write a flinc conf dir at `path` (created): flinc-conf.yaml with one flat
    `key: value` line per setting (bools as true/false, values quoted when YAML needs
    it), `masters` (lines host:webport) and `workers` (lines host). Returns the path."""
    conf = Path(path)
    conf.mkdir(parents=True, exist_ok=True)
    lines = [f"{key}: {_yaml_scalar(value)}" for key, value in settings.items()]
    (conf / "flinc-conf.yaml").write_text("".join(line + "\n" for line in lines))
    (conf / "masters").write_text("".join(f"{m}\n" for m in masters))
    (conf / "workers").write_text("".join(f"{w}\n" for w in workers))
    return conf


_YAML_PLAIN = re.compile(r"^[A-Za-z0-9_./:,@+=~-][A-Za-z0-9_./:,@+=~ -]*$")


def _yaml_scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    text = str(value)
    if "\n" in text:
        raise ValueError(f"config value {text!r} contains a newline")
    if _YAML_PLAIN.match(text) and ": " not in text and not text.endswith((" ", ":")):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def repo_root() -> Path:
    """The source root: two levels above tests/lib."""
    return REPO_ROOT


def build_dir() -> Path:
    """env FLINC_BUILD_DIR (set by meson), else <repo root>/build."""
    env = os.environ.get("FLINC_BUILD_DIR")
    return Path(env) if env else REPO_ROOT / "build"


_BINARY_DIRS = ("coordinator", "worker", "tools", "ha", "statebackend", "common",
                "tests/unit", "tests", "")


def binary(name: str) -> Path:
    """Path of the built program `name` in build_dir(); raises FileNotFoundError naming
    the binary and the places searched."""
    bdir = build_dir()
    searched = []
    for sub in _BINARY_DIRS:
        p = bdir / sub / name if sub else bdir / name
        searched.append(str(p))
        if p.is_file() and os.access(p, os.X_OK):
            return p
    for p in sorted(bdir.rglob(name)) if bdir.is_dir() else []:
        if p.is_file() and os.access(p, os.X_OK) and "meson-" not in str(p):
            return p
    raise FileNotFoundError(
        f"binary {name!r} not found in build dir {bdir} (searched {', '.join(searched)} "
        f"and its subfolders); build it with `ninja -C {bdir}` or set FLINC_BUILD_DIR")


def unique_suffix() -> str:
    """8 hex chars, for unique ZooKeeper roots / cluster ids on a shared quorum."""
    return secrets.token_hex(4)
