"""Web dashboard acceptance (the web dashboard issue): every coordinator serves the page
at / on rest.port; a standby shows that it is standby and who leads, with the leader's
data; the page follows a kill -9 of the leader without a reload.

  test_static_files       the embedded files: types, caching, HEAD, 404/405, the same
                          bytes from a standby, relative URLs only, nothing from elsewhere
  test_dashboard_chromium a real 3-server quorum, 2 coordinators, 2 workers and a running
                          job; tests/web/dashboard.mjs drives Debian's chromium through
                          playwright-core and checks acceptance 1-3 and the checkpoints view
                          against the coordinator's real checkpoints, before and after the
                          failover (see its header); this file does the kill -9 when the
                          script asks for it, and checks the same outcome through the REST API

Screenshots and the browser console go to $FLINC_BUILD_DIR/test-artifacts/web/dashboard/.
Needs node, /usr/bin/chromium and tests/web/node_modules (tools/dev/setup.sh installs
them: apt-get install chromium, npm ci in tests/web).
"""

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import flinc_testlib as tl

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))
from failover_cluster import Cluster, http  # noqa: E402

REPO = tl.repo_root()
WEB_TESTS = REPO / "tests" / "web"
WEB_SRC = REPO / "coordinator" / "web"
CHROMIUM = os.environ.get("FLINC_CHROMIUM", "/usr/bin/chromium")
SCRIPT_BUDGET_S = 120  # the whole browser run, scaled; it takes about 15 s

STREAM_JOB = """\
name: web-stream
parallelism: 2
checkpointing: { interval: 1 s }
restart-strategy: { type: fixed-delay, attempts: 1000, delay: 100 ms }
pipeline:
  - generator: { seed: 7, words: 100, rate: 2000 }
  - tokenize
  - sink: { type: discard }
"""

CANCEL_ME_JOB = STREAM_JOB.replace("web-stream", "web-cancel-me").replace("parallelism: 2",
                                                                            "parallelism: 1")


def artifacts_dir(name: str) -> Path:
    d = tl.build_dir() / "test-artifacts" / "web" / name
    shutil.rmtree(d, ignore_errors=True)  # ours: the previous run's screenshots
    d.mkdir(parents=True)
    return d


def require_browser_tools():
    missing = []
    if not shutil.which("node"):
        missing.append("node (Debian: nodejs)")
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"{CHROMIUM} (Debian: chromium)")
    if not (WEB_TESTS / "node_modules" / "playwright-core" / "package.json").is_file():
        missing.append("tests/web/node_modules/playwright-core (npm ci --prefix tests/web)")
    if missing:
        pytest.fail("the browser test needs " + ", ".join(missing) + "; tools/dev/setup.sh "
                    "installs them", pytrace=False)


def raw_get(port: int, path: str, method: str = "GET", headers: dict | None = None):
    """(status, headers, body bytes) without parsing."""
    import urllib.error
    import urllib.request
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def served_files() -> list[str]:
    """The files coordinator/meson.build embeds (served under /web/, index.html at /)."""
    text = (REPO / "coordinator" / "meson.build").read_text()
    return re.findall(r"'web/([^']+)'", text.split("web_files = files(")[1].split(")")[0])


# ---------------------------------------------------------------------------- serving


def test_static_files(zk_quorum, zk_root, tmp_dir, procs):
    c = Cluster(zk_quorum, tmp_dir, procs, root=zk_root, coordinators=2, workers=0).start()
    leader = c.wait_leader()
    standby = next(x for x in c.coordinators if x is not leader)
    types = {".html": "text/html", ".js": "text/javascript", ".css": "text/css",
             ".svg": "image/svg+xml"}
    files = served_files()
    assert "index.html" in files and "app.js" in files, files

    for co in (leader, standby):
        status, hdr, body = raw_get(co.rest_port, "/")
        assert status == 200, (co.index, status)
        assert body == (WEB_SRC / "index.html").read_bytes(), "GET / is not coordinator/web/index.html"
        assert hdr["Content-Type"].startswith("text/html"), hdr
        assert "default-src 'self'" in hdr.get("Content-Security-Policy", ""), hdr
        assert raw_get(co.rest_port, "/index.html")[2] == body
        for name in files:
            status, hdr, body = raw_get(co.rest_port, f"/web/{name}")
            assert status == 200, (co.index, name, status, body[:200])
            assert body == (WEB_SRC / name).read_bytes(), f"/web/{name} differs from the source"
            want = types[Path(name).suffix]
            assert hdr["Content-Type"].startswith(want), (name, hdr["Content-Type"], want)
            assert hdr["Cache-Control"] == "no-cache", hdr
            assert hdr.get("X-Content-Type-Options") == "nosniff", hdr
            etag = hdr["ETag"]
            # revalidation: 304 without a body
            status, hdr304, body304 = raw_get(co.rest_port, f"/web/{name}",
                                              headers={"If-None-Match": etag})
            assert (status, body304) == (304, b""), (name, status, body304[:100])
            # HEAD: the headers of GET, no body
            status, hhead, bhead = raw_get(co.rest_port, f"/web/{name}", method="HEAD")
            assert status == 200 and bhead == b"", (name, status)
            assert int(hhead["Content-Length"]) == len(body), (name, hhead)

        status, data = http(co.rest_port, "/web/no-such-file.js")
        assert status == 404 and data == {"errors": ["Not found: /web/no-such-file.js"]}, (status, data)
        status, data = http(co.rest_port, "/web/embed.py")
        assert status == 404, "the build script is not an asset"
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            status, data = http(co.rest_port, "/web/app.js", method=method, body=b"")
            assert status == 405 and "errors" in data, (method, status, data)
            status, data = http(co.rest_port, "/", method=method, body=b"")
            assert status == 405, (method, status, data)

    # Offline and proxy-friendly: the page loads nothing from elsewhere and calls the REST
    # API with relative URLs only.
    html = (WEB_SRC / "index.html").read_text()
    for ref in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert not re.match(r"^(?:[a-z]+:)?//|^/", ref), f"index.html refers to {ref!r}"
    for name in files:
        text = (WEB_SRC / name).read_text()
        urls = set(re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+\.[a-z]{2,}[^\s'\"`)]*", text))
        urls -= {"http://www.w3.org/2000/svg"}
        assert not urls, f"{name} refers to {sorted(urls)}"
        assert not re.search(r"""(?:fetch|request\([^,]+,)\s*\(?\s*['"`]/""", text), \
            f"{name} calls the REST API with an absolute path"
        assert "@import" not in text and "url(" not in text.replace("url(#arrow)", ""), \
            f"{name} loads a resource from CSS"


# ---------------------------------------------------------------------------- browser


class NodeScript:
    """tests/web/dashboard.mjs as a child in its own process group, read line by line."""

    def __init__(self, args: dict, log_path: Path):
        self.log = open(log_path, "w")
        env = dict(os.environ)
        env["TMPDIR"] = str(args["tmp"])  # chromium's profile and temp files
        self.p = subprocess.Popen(
            ["node", str(WEB_TESTS / "dashboard.mjs"), json.dumps(args)], cwd=WEB_TESTS,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
            bufsize=1, env=env, start_new_session=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def next_line(self, dl: tl.Deadline):
        try:
            return self.lines.get(timeout=max(dl.remaining(), 0.01))
        except queue.Empty:
            raise AssertionError(f"the browser script said nothing more within its budget "
                                 f"({dl.budget_s:.0f} s)") from None

    def answer(self, text: str):
        self.p.stdin.write(text + "\n")
        self.p.stdin.flush()

    def close(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGKILL)  # node and the chromium it started
            except ProcessLookupError:
                pass
        self.p.wait(timeout=10)
        self.log.close()


def test_dashboard_chromium(zk_quorum, zk_root, tmp_dir, procs):
    require_browser_tools()
    out = artifacts_dir("dashboard")
    c = Cluster(zk_quorum, tmp_dir, procs, root=zk_root, coordinators=2, workers=2, slots=2)
    c.start()
    job = c.submit(STREAM_JOB)
    cancel_me = c.submit(CANCEL_ME_JOB)
    c.wait_job(job, "RUNNING")
    c.wait_job(cancel_me, "RUNNING")
    leader = c.wait_leader()
    epoch0 = leader.ha()["epoch"]
    standby = next(x for x in c.coordinators if x is not leader)

    # Flink's JobVertexDetailsInfo, through the standby: the page's subtask table.
    vid = c.job(job)["vertices"][0]["id"]
    status, v = standby.rest(f"/jobs/{job}/vertices/{vid}")
    assert status == 200, (status, v)
    assert {"id", "name", "parallelism", "maxParallelism", "now", "subtasks"} <= v.keys(), v
    assert len(v["subtasks"]) == 2 and all(
        {"subtask", "status", "attempt", "endpoint", "taskmanager-id", "start-time", "end-time",
         "duration", "metrics"} <= s.keys() for s in v["subtasks"]), v
    assert {s["taskmanager-id"] for s in v["subtasks"]} <= {w.resource_id for w in c.workers}, v
    status, e = standby.rest(f"/jobs/{job}/vertices/no-such-vertex")
    assert status == 404 and "no-such-vertex" in e["errors"][0], (status, e)

    # chromium's temp files and profile: a short path (its socket path must fit 108 bytes)
    browser_tmp = tl.make_tmp_dir(prefix="flinc-web-")
    if len(str(browser_tmp)) > 40:
        tl.remove_tmp_dir(browser_tmp)
        browser_tmp = tl.make_tmp_dir(prefix="flinc-web-", parent="/tmp")
    args = {
        "coordinators": [{"index": x.index, "url": f"http://127.0.0.1:{x.rest_port}/"}
                         for x in c.coordinators],
        "leader": leader.index, "job": job, "cancelJob": cancel_me, "parallelism": 2,
        "workers": 2, "artifacts": str(out), "refreshMs": 1000,
        "tmp": str(browser_tmp),
    }
    script = NodeScript(args, out / "node-stderr.log")
    steps, result = [], None
    killed_at = None
    try:
        dl = tl.deadline(SCRIPT_BUDGET_S)
        while True:
            line = script.next_line(dl)
            if line is None:
                break
            steps.append(line)
            if line.startswith("KILL-LEADER "):
                i = int(line.split()[1])
                assert i == leader.index, line
                killed_at = tl.deadline(0)
                c.coordinators[i].proc.kill(signal.SIGKILL)
                script.answer(f"KILLED {i}")
            elif line.startswith("RESULT "):
                result = json.loads(line[len("RESULT "):])
        rc = script.p.wait(timeout=tl.scaled(15))
    finally:
        script.close()
        tl.remove_tmp_dir(browser_tmp)
        (out / "steps.log").write_text("\n".join(steps) + "\n")
    assert result is not None, "the browser script ended without a RESULT line:\n" + \
        "\n".join(steps[-20:]) + "\n" + tl.tail_file(out / "node-stderr.log", 40)
    assert rc == 0 and not result["failures"], \
        f"browser checks failed (screenshots and console in {out}):\n" + \
        "\n".join(result["failures"])
    assert killed_at is not None, "the script never asked for the kill"

    # The same outcome through the REST API: the standby leads with a higher epoch, the job
    # ran again under it and was canceled from the page, as was the other one.
    new = c.wait_leader(not_index=leader.index)
    ha = new.ha()
    assert new is standby and ha["epoch"] > epoch0 == result["epoch0"], (ha, result)
    assert ha["epoch"] == result["epoch1"], (ha["epoch"], result)
    assert any(f["epoch"] == ha["epoch"] and f["duration-ms"] >= 0
               for f in ha["failover-history"]), ha
    for jid in (job, cancel_me):
        j = c.wait_job(jid, "CANCELED", timeout=10)
        assert j["state"] == "CANCELED", j
    # The checkpoints the page showed: the new leader restored the job from a checkpoint
    # not older than the one completed before the kill, and checkpointed again after it.
    status, ck = new.rest(f"/jobs/{job}/checkpoints")
    assert status == 200, (status, ck)
    restored = (ck["latest"] or {}).get("restored") or {}
    assert restored.get("id") == result["restoredId"], (restored, result)
    assert result["completedBeforeKill"] <= result["restoredId"] < result["completedAfterRestore"], result
    assert ck["counts"]["restored"] >= 1 and ck["latest"]["completed"]["id"] >= \
        result["completedAfterRestore"], ck
    shots = sorted(p.name for p in out.glob("*.png"))
    assert len(shots) >= 12, shots
    (out / "summary.json").write_text(json.dumps({**result, "screenshots": shots}, indent=1))
    print(f"dashboard: {len(shots)} screenshots in {out}; failover seen by the page "
          f"{result['failoverS']:.1f} s after the kill; checkpoint {result['restoredId']} "
          f"restored; script {result['seconds']:.0f} s")
