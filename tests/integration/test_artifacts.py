"""UDF libraries shipped with the job through the coordinator and storage (Flink: POST
/jars/upload, the blob server): `flinc run` uploads each local artifact of the job file
(POST /artifacts/upload), the coordinator checks the ELF header and the UDF ABI in a probe
process and stores the library content-addressed under
<high-availability.storageDir>/<cluster>/artifacts/<crc32c>_<name>; POST /jobs takes only
ids of uploaded artifacts; workers copy the library into a local per-attempt directory,
check its CRC32C, dlopen it, and remove the copy when the attempt's tasks end.

A real cluster: a 3-server ZooKeeper quorum on loopback, 2 coordinators, 2 workers with
2 slots each (the job runs with parallelism 2 on both workers).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import flinc_testlib as tl
from test_dataflow_worker import gen_words, read_parts

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))
from failover_cluster import Cluster  # noqa: E402

LIB = "libflinc_udf_example.so"
BAD = "libflinc_udf_bad_abi.so"


def lib_path(name: str) -> Path:
    return tl.build_dir() / "examples" / "udf" / name


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def flinc(*args, conf, timeout=90.0, cwd=None):
    argv = [str(tl.binary("flinc")), "--configDir", str(conf)] + [str(a) for a in args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=tl.scaled(timeout),
                          cwd=cwd, stdin=subprocess.DEVNULL,
                          env={**os.environ, "FLINC_CONF_DIR": ""})


UDF_JOB = """
name: {name}
parallelism: 2
artifacts: [ {artifact} ]
pipeline:
  - generator: {{ words: 1000, count: 2000, line_words: 3 }}
  - flat_map: {{ udf: split_words }}
  - filter: {{ udf: long_words }}
  - map: {{ udf: upper }}
  - key_by: {{ udf: first_letter }}
  - reduce: {{ udf: max_len }}
  - sink: {{ type: file, path: "file://{out}" }}
"""


@pytest.fixture(scope="module")
def cl(zk_quorum_module):
    base = tl.make_tmp_dir("flinc-artifacts-")
    procs = tl.ProcessGroup(base)
    try:
        c = Cluster(zk_quorum_module, base, procs, root=f"/artifacts-{tl.unique_suffix()}",
                    coordinators=2, workers=2, slots=2,
                    settings={"restart-strategy.fixed-delay.attempts": 2,
                              "rest.server.max-content-length": "256 kb"})
        c.start()
        c.conf = tl.make_conf_dir(base / "conf" / "cli", c.settings,
                                  masters=[f"127.0.0.1:{x.rest_port}" for x in c.coordinators])
        yield c
    finally:
        procs.close()
        tl.remove_tmp_dir(base)


def storage_artifacts(cl) -> Path:
    return cl.base_dir / "ha" / "default" / "artifacts"


def worker_artifact_dirs(cl) -> list[Path]:
    return sorted((cl.base_dir / "io").glob("flinc-worker-*/artifacts/*"))


def write_job(d: Path, name: str, artifact: str, out: Path) -> Path:
    p = d / f"{name}.yaml"
    p.write_text(UDF_JOB.format(name=name, artifact=artifact, out=out))
    return p


def upload(cl, name: str, data: bytes):
    return cl.wait_leader().rest(f"/artifacts/upload?name={name}", "POST", data, timeout=30)


def test_flinc_run_ships_the_library_and_workers_load_it(cl, tmp_dir):
    """The job file names the library by a path relative to itself; `flinc run` uploads
    it, the job runs on both workers from their local copies, and the output is the
    UDFs' (every kept word upper-cased, keyed by its first letter, max length reduced)."""
    jobdir = tmp_dir / "job"
    jobdir.mkdir()
    shutil.copy(lib_path(LIB), jobdir / LIB)
    out = tmp_dir / "out"
    job = write_job(jobdir, "udf-shipped", LIB, out)
    r = flinc("run", job.name, conf=cl.conf, cwd=jobdir)
    assert r.returncode == 0, f"expected flinc run to succeed, seen:\n{r.stdout}\n{r.stderr}"
    jid = re.search(r"JobID ([0-9a-f]{32})", r.stdout).group(1)
    assert f"Job with JobID {jid} has finished." in r.stdout, r.stdout

    data = (jobdir / LIB).read_bytes()
    aid = f"{crc32c(data):08x}_{LIB}"
    stored = storage_artifacts(cl) / aid
    assert stored.read_bytes() == data, f"expected the library stored as {stored}"

    kept = [w for w in gen_words(0, 1000, 2000, 3) if len(w) >= 3]
    lines = read_parts(out)
    assert len(lines) == len(kept), f"expected {len(kept)} lines, seen {len(lines)}"
    assert all(ln.startswith("W ") for ln in lines), f"expected key W, seen {lines[:3]}"
    assert max(int(ln.split()[1]) for ln in lines) == max(len(w) for w in kept)
    # the attempt's copies are gone once its tasks ended
    tl.wait_for(lambda: not worker_artifact_dirs(cl), 10,
                "the workers' artifact copies removed")


def test_flinc_run_the_example_job_file(cl, tmp_dir):
    """examples/udf-job.yaml as shipped, its artifact a path relative to the file."""
    example = tl.repo_root() / "examples" / "udf-job.yaml"
    if not (example.parent / "../build/examples/udf" / LIB).resolve().is_file():
        pytest.skip("the build directory is not <repo>/build: the example's path does not "
                    "resolve")
    out = tmp_dir / "out"
    r = flinc("run", "examples/udf-job.yaml", "--output", out, conf=cl.conf,
              cwd=tl.repo_root())
    assert r.returncode == 0, f"expected flinc run to succeed, seen:\n{r.stdout}\n{r.stderr}"
    kept = [w for w in gen_words(0, 1000, 2000, 3) if len(w) >= 3]
    lines = read_parts(out)
    assert len(lines) == len(kept), f"expected {len(kept)} lines, seen {len(lines)}"


def test_running_job_graph_names_storage_and_workers_hold_copies(cl, tmp_dir):
    """While an unbounded UDF job runs on both workers: the stored job graph names the
    library's storage URI (not the uploaded id or the client's path), each worker holds
    a local copy in its per-attempt directory; after cancel the copies are removed."""
    jobdir = tmp_dir / "job"
    jobdir.mkdir()
    shutil.copy(lib_path(LIB), jobdir / LIB)
    job = write_job(jobdir, "udf-stream", LIB, tmp_dir / "out")
    job.write_text(job.read_text().replace("count: 2000", "count: 0, rate: 1000"))
    r = flinc("run", "-d", job, conf=cl.conf)
    assert r.returncode == 0, r.stdout + r.stderr
    jid = re.search(r"JobID ([0-9a-f]{32})", r.stdout).group(1)
    cl.wait_job(jid, "RUNNING")
    aid = f"{crc32c((jobdir / LIB).read_bytes()):08x}_{LIB}"
    uri = f"file://{storage_artifacts(cl) / aid}".encode()
    graphs = list((cl.base_dir / "ha" / "default" / "jobs" / jid).glob("graph-*"))
    assert graphs and all(uri in g.read_bytes() for g in graphs), \
        f"expected the stored job graph {graphs} to name {uri!r}"
    copies = sorted((cl.base_dir / "io").glob(f"flinc-worker-*/artifacts/{jid}-*/{aid}"))
    assert len({c.parents[2] for c in copies}) == 2, \
        f"expected a copy on each of the 2 workers, seen {copies}"
    assert all(c.read_bytes() == (jobdir / LIB).read_bytes() for c in copies)
    r = flinc("cancel", jid, conf=cl.conf)
    assert r.returncode == 0, r.stderr
    tl.wait_for(lambda: not worker_artifact_dirs(cl), 10,
                "the workers' artifact copies removed after cancel")


def test_wrong_abi_is_refused_at_submit(cl, tmp_dir):
    jobdir = tmp_dir / "job"
    jobdir.mkdir()
    shutil.copy(lib_path(BAD), jobdir / BAD)
    job = write_job(jobdir, "udf-bad-abi", BAD, tmp_dir / "out")
    before = cl.any_rest("/jobs")["jobs"]
    r = flinc("run", job, conf=cl.conf)
    assert r.returncode != 0, f"expected flinc run to fail, seen:\n{r.stdout}"
    assert f"artifact {BAD}: UDF ABI version 999, this coordinator speaks 1" in r.stderr, \
        f"expected the coordinator's ABI error, seen: {r.stderr}"
    assert "Job has been submitted" not in r.stdout
    assert cl.any_rest("/jobs")["jobs"] == before, "expected no job submitted"
    assert not list(storage_artifacts(cl).glob(f"*_{BAD}")), "expected nothing stored"


def test_upload_refuses_bad_input(cl):
    status, body = upload(cl, "notelf.so", b"#!/bin/sh\necho hello\n" * 10)
    assert status == 400 and "notelf.so: not an ELF shared library" in body["errors"][0], body
    status, body = upload(cl, "../x.so", lib_path(LIB).read_bytes())
    assert status == 400 and "name: '../x.so' is not a library file name" in body["errors"][0], \
        body
    status, body = upload(cl, "empty.so", b"")
    assert status == 400 and "empty" in body["errors"][0], body
    # an ELF file that is no flinc UDF library (no flinc_udf_abi_version)
    status, body = upload(cl, "libc-like.so", Path("/bin/true").read_bytes())
    assert status == 400, body
    # over rest.server.max-content-length (256 kb here): a JSON 400 naming the key
    status, body = upload(cl, "big.so", b"\x7fELF" + b"\0" * (300 * 1024))
    assert status == 400 and "rest.server.max-content-length" in body["errors"][0], body
    # a standby forwards the upload to the leader
    standby = next(c for c in cl.coordinators if c is not cl.wait_leader())
    status, body = standby.rest(f"/artifacts/upload?name={LIB}", "POST",
                                lib_path(LIB).read_bytes(), timeout=30)
    assert status == 200 and body["status"] == "success" and body["id"].endswith("_" + LIB), body
    assert Path(body["filename"]).read_bytes() == lib_path(LIB).read_bytes()
    assert body["size"] == len(lib_path(LIB).read_bytes())


def test_unknown_artifact_and_paths_refused(cl, tmp_dir):
    leader = cl.wait_leader()
    unknown = "0badc0de_libnothere.so"
    status, body = leader.rest("/jobs", "POST", UDF_JOB.format(
        name="unknown", artifact=unknown, out=tmp_dir / "o"))
    assert status == 400, body
    assert f"artifacts[0]: artifact '{unknown}' is not uploaded" in body["errors"][0], body
    status, body = leader.rest("/jobs", "POST", UDF_JOB.format(
        name="path", artifact=str(lib_path(LIB)), out=tmp_dir / "o"))
    assert status == 400, body
    assert "is not the id of an uploaded artifact" in body["errors"][0], body


def test_corrupt_stored_artifact_fails_the_deploy(cl, tmp_dir):
    """A byte of the stored library flipped after the upload: the workers refuse the
    deployment with an error naming the artifact, and the job fails."""
    data = bytearray(lib_path(LIB).read_bytes())
    name = "libcorrupt_udf.so"
    status, body = upload(cl, name, bytes(data))
    assert status == 200, body
    aid = body["id"]
    stored = Path(body["filename"])
    raw = bytearray(stored.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    stored.write_bytes(bytes(raw))
    status, sub = cl.wait_leader().rest("/jobs", "POST", UDF_JOB.format(
        name="corrupt", artifact=aid, out=tmp_dir / "o"))
    assert status == 202, sub
    jid = sub["jobid"]
    cl.wait_job(jid, "FAILED", timeout=60)
    ex = cl.any_rest(f"/jobs/{jid}/exceptions")
    texts = [ex.get("root-exception") or ""] + [e.get("exception", "") for e in
                                                 ex.get("exceptionHistory", {}).get("entries", [])]
    assert any(f"artifact {aid}: checksum mismatch" in t for t in texts), \
        f"expected the deploy refused naming {aid}, seen {texts}"
    tl.wait_for(lambda: not worker_artifact_dirs(cl), 10,
                "no artifact copies left after the refused deployments")


def test_new_leader_redeploys_from_storage(cl, tmp_dir):
    """Last in this file (it kills the leader): a running UDF job survives a SIGKILL of
    the leader; the new leader recovers its graph, which names the stored library, and
    the workers fetch it again for the new attempt."""
    jobdir = tmp_dir / "job"
    jobdir.mkdir()
    shutil.copy(lib_path(LIB), jobdir / LIB)
    job = write_job(jobdir, "udf-failover", LIB, tmp_dir / "out")
    job.write_text(job.read_text().replace("count: 2000", "count: 0, rate: 1000"))
    r = flinc("run", "-d", job, conf=cl.conf)
    assert r.returncode == 0, r.stdout + r.stderr
    jid = re.search(r"JobID ([0-9a-f]{32})", r.stdout).group(1)
    first = cl.wait_job(jid, "RUNNING")
    old = cl.wait_leader()
    old_epoch = old.ha()["epoch"]
    old.proc.kill()
    new = cl.wait_leader(not_index=old.index)
    epoch = new.ha()["epoch"]
    assert epoch > old_epoch
    cl.wait_job(jid, "RUNNING", min_attempt=first["attempt"] + 1)
    aid = f"{crc32c((jobdir / LIB).read_bytes()):08x}_{LIB}"

    def copies_of_new_epoch():
        found = sorted((cl.base_dir / "io").glob(f"flinc-worker-*/artifacts/{jid}-{epoch}-*/{aid}"))
        return found if len({c.parents[2] for c in found}) == 2 else None
    tl.wait_for(copies_of_new_epoch, 20, "copies of the new leader's attempt on both workers")
    r = flinc("cancel", jid, conf=cl.conf)
    assert r.returncode == 0, r.stderr
    tl.wait_for(lambda: not worker_artifact_dirs(cl), 10,
                "the workers' artifact copies removed after cancel")


def test_list_and_delete_artifacts(cl, tmp_dir):
    """GET /artifacts lists the stored libraries (Flink: GET /jars); DELETE
    /artifacts/:id removes one (Flink: DELETE /jars/:jarid), refused with 409 while a job
    that has not reached a terminal state names it; unknown ids are 404, ids of another
    form 400."""
    data = lib_path(LIB).read_bytes()
    name = "libdeletable.so"
    status, body = upload(cl, name, data)
    assert status == 200, body
    aid = body["id"]
    leader = cl.wait_leader()
    status, listing = leader.rest("/artifacts")
    assert status == 200, listing
    entry = [f for f in listing["files"] if f["id"] == aid]
    assert entry == [{"id": aid, "name": name, "size": len(data),
                      "uploaded": entry[0]["uploaded"] if entry else None}], listing
    assert entry[0]["uploaded"] > 0

    job = UDF_JOB.format(name="uses-deletable", artifact=aid, out=tmp_dir / "o")
    job = job.replace("count: 2000", "count: 0, rate: 200")
    status, body = leader.rest("/jobs", "POST", job)
    assert status == 202, body
    jid = body["jobid"]
    cl.wait_job(jid, "RUNNING", timeout=30)
    status, body = leader.rest(f"/artifacts/{aid}", "DELETE")
    assert status == 409, body
    assert f"artifact {aid} is used by job {jid} (RUNNING)" in body["errors"][0], body
    assert (storage_artifacts(cl) / aid).exists()

    status, body = leader.rest(f"/jobs/{jid}", "PATCH")
    assert status == 202, body
    cl.wait_job(jid, "CANCELED", timeout=30)
    status, body = cl.wait_leader().rest(f"/artifacts/{aid}", "DELETE")
    assert status == 200, body
    assert not (storage_artifacts(cl) / aid).exists()
    status, listing = cl.wait_leader().rest("/artifacts")
    assert aid not in [f["id"] for f in listing["files"]], listing
    status, body = cl.wait_leader().rest(f"/artifacts/{aid}", "DELETE")
    assert status == 404 and f"artifact {aid} is not uploaded" in body["errors"][0], body
    status, body = cl.wait_leader().rest("/artifacts/..%2Fetc", "DELETE")
    assert status in (400, 404), body
    status, body = cl.wait_leader().rest("/artifacts/nothex00_x.so", "DELETE")
    assert status == 400 and "is not an artifact id" in body["errors"][0], body
    status, body = cl.wait_leader().rest("/artifacts", "POST", b"x")
    assert status == 405, body
