"""Control plane acceptance 6: bad input. Invalid YAML, an unknown operator, a missing
field, parallelism 0 or above the cluster's slots and a body over
rest.server.max-content-length are refused with 400 naming the field (or the key) and
Flink's {"errors": [...]} body (a body over twice the limit gets libevent's own 413); nothing is persisted (no job
in the REST API, no node under jobs/ in ZooKeeper); random bytes on the RPC port and
malformed HTTP on the REST port crash nothing; the cluster keeps running its job.

One coordinator and one worker with 2 slots, on the module's shared quorum.
"""

import json
import os
import random
import socket
import struct
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))
from failover_cluster import Cluster, raw_http, streaming_job  # noqa: E402

MAX_BODY = 64 * 1024

VALID = streaming_job("input-ok", parallelism=2)

BAD_BODIES = [
    # (what, body, fragments that the message must contain)
    ("invalid YAML", "name: [unclosed\npipeline: {", ["request body"]),
    ("not a mapping", "- just\n- a list\n", ["request body"]),
    ("empty body", "", ["request body"]),
    ("unknown operator",
     "name: x\npipeline:\n  - generator: {}\n  - frobnicate: {}\n  - sink: { type: discard }\n",
     ["pipeline[1]", "frobnicate"]),
    ("missing name", "pipeline:\n  - generator: {}\n  - sink: { type: discard }\n", ["name"]),
    ("missing sink type", "name: x\npipeline:\n  - generator: {}\n  - sink: {}\n",
     ["pipeline[1]", "type"]),
    ("parallelism 0",
     "name: x\nparallelism: 0\npipeline:\n  - generator: {}\n  - sink: { type: discard }\n",
     ["parallelism"]),
    ("step parallelism 0",
     "name: x\npipeline:\n  - generator: { parallelism: 0 }\n  - sink: { type: discard }\n",
     ["pipeline[0]", "parallelism"]),
    ("parallelism above the slots",
     "name: x\nparallelism: 3\npipeline:\n  - generator: {}\n  - sink: { type: discard }\n",
     ["parallelism", "3", "2 task slots"]),
    ("a step above the slots",
     "name: x\npipeline:\n  - generator: { id: gen, parallelism: 5 }\n"
     "  - sink: { type: discard, parallelism: 1 }\n",
     ["gen.parallelism", "5"]),
    ("JSON with a wrong type",
     json.dumps({"name": "x", "parallelism": "many",
                 "pipeline": [{"generator": {}}, {"sink": {"type": "discard"}}]}),
     ["parallelism"]),
]


@pytest.fixture
def cluster(zk_quorum, tmp_dir, procs, zk_root):
    c = Cluster(zk_quorum, tmp_dir, procs, root=zk_root, coordinators=1, workers=1, slots=2,
                settings={"rest.server.max-content-length": f"{MAX_BODY} b",
                          "pekko.framesize": "64 kb"})
    return c.start()


def assert_alive(cl, jid=None):
    c = cl.coordinators[0]
    assert c.proc.is_running(), f"the coordinator died (rc={c.proc.returncode})"
    ov = c.get("/overview")
    assert ov["taskmanagers"] == 1, f"the worker is no longer registered: {ov}"
    if jid:
        assert c.get(f"/jobs/{jid}")["state"] == "RUNNING"


def zk_jobs(zk_quorum, zk_root):
    zk = zk_quorum.client()
    path = f"{zk_root}/default/jobs"
    zk.sync("/")  # the server we read from has applied every write before this read
    return zk.get_children(path) if zk.exists(path) else []


def test_bad_job_submissions_are_refused_and_nothing_is_persisted(cluster, zk_quorum, zk_root):
    c = cluster.coordinators[0]
    for what, body, fragments in BAD_BODIES:
        status, data = c.rest("/jobs", "POST", body)
        assert status == 400, f"{what}: expected 400, seen {status} {data!r}"
        assert isinstance(data, dict) and isinstance(data.get("errors"), list) and \
            len(data["errors"]) == 1 and isinstance(data["errors"][0], str), \
            f"{what}: expected {{\"errors\": [message]}}, seen {data!r}"
        msg = data["errors"][0]
        for f in fragments:
            assert f in msg, f"{what}: expected the message to name {f!r}, seen {msg!r}"
        print(f"{what}: 400 {msg}")

    # over rest.server.max-content-length: 400 naming the key
    big = "# " + "x" * (MAX_BODY + 1024) + "\n" + VALID
    status, data = c.rest("/jobs", "POST", big)
    assert status == 400, f"a {len(big)}-byte body: expected 400, seen {status} {data!r}"
    assert isinstance(data, dict) and "rest.server.max-content-length" in data["errors"][0], \
        f"expected the message to name rest.server.max-content-length, seen {data!r}"
    # over twice the limit: libevent's own 413, before the body is read
    huge = "# " + "x" * (2 * MAX_BODY + 1024) + "\n" + VALID
    status, data = c.rest("/jobs", "POST", huge)
    assert status == 413, f"a {len(huge)}-byte body: expected 413, seen {status} {data!r}"

    assert c.get("/jobs") == {"jobs": []}, "a refused job is listed"
    assert zk_jobs(zk_quorum, zk_root) == [], "a refused job reached ZooKeeper"
    assert_alive(cluster)

    # the same cluster takes a good job, in JSON too (the body may be YAML or JSON)
    good = {"name": "input-json", "parallelism": 2,
            "pipeline": [{"generator": {"rate": 1000}}, "tokenize", {"sink": {"type": "discard"}}]}
    status, data = c.rest("/jobs", "POST", json.dumps(good),
                          headers={"Content-Type": "application/json"})
    assert status == 202, f"a valid JSON job: expected 202, seen {status} {data!r}"
    cluster.wait_job(data["jobid"], "RUNNING")
    assert zk_jobs(zk_quorum, zk_root) == [data["jobid"]]


def test_rest_errors_in_flinks_shape(cluster):
    c = cluster.coordinators[0]
    jid = cluster.submit(VALID)
    cluster.wait_job(jid, "RUNNING")
    unknown = "0123456789abcdef0123456789abcdef"
    cases = [
        ("GET", f"/jobs/{unknown}", 404, f"Job {unknown} not found"),
        ("GET", f"/jobs/{unknown}/exceptions", 404, f"Job {unknown} not found"),
        ("PATCH", f"/jobs/{unknown}?mode=cancel", 404, f"Job {unknown} not found"),
        ("GET", "/jobs/not-a-job-id", 400, "jobid"),
        ("PATCH", f"/jobs/{jid}?mode=stop", 400, "mode"),
        ("GET", "/taskmanagers/nope", 404, "nope"),
        ("GET", "/no/such/path", 404, "Not found"),
        ("DELETE", "/jobs", 405, "/jobs"),
        ("POST", "/overview", 405, "/overview"),
    ]
    for method, path, code, fragment in cases:
        status, data = c.rest(path, method)
        assert status == code, f"{method} {path}: expected {code}, seen {status} {data!r}"
        assert isinstance(data, dict) and isinstance(data.get("errors"), list) and \
            fragment in data["errors"][0], \
            f"{method} {path}: expected errors naming {fragment!r}, seen {data!r}"
    assert_alive(cluster, jid)


def test_random_bytes_on_the_rpc_port_crash_nothing(cluster):
    c = cluster.coordinators[0]
    jid = cluster.submit(VALID)
    cluster.wait_job(jid, "RUNNING")
    host, _, port = c.ha()["rpc-address"].rpartition(":")
    port = int(port)
    rng = random.Random(20240611)

    def send(data, linger=0.05):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(data)
                time.sleep(linger)
        except OSError:
            pass  # the coordinator may close first: fine

    def frame(body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + body

    payloads = [
        os.urandom(64 * 1024),                                # noise
        struct.pack(">I", 0xFFFFFFFF) + b"\x00" * 16,         # a 4 GiB length
        struct.pack(">I", 0),                                 # an empty frame
        frame(b"\xc1" * 32),                                  # never-used msgpack byte
        frame(b"\xdf\xff\xff\xff\xff"),                       # a map claiming 4 G pairs
        frame(b"\x81\xa1v\x01"),                              # a map without t and id
        frame(bytes([0x91] * 200) + b"\x00"),                 # nesting 200 deep
        frame(b"\x85\xa1v\x01\xa1t\xa5hello\xa2id\x00\xa7cluster\xa5other\xa4role\xa6worker"),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",                 # the wrong protocol
    ]
    for _ in range(20):
        payloads.append(bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 2048))))
    for p in payloads:
        send(p)
    # many connections at once, then all dropped
    socks = []
    for _ in range(50):
        try:
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=2))
        except OSError:
            break
    for s in socks:
        s.close()
    time.sleep(0.3)
    assert_alive(cluster, jid)


MALFORMED_HTTP = [
    b"GARBAGE\r\n\r\n",
    b"\x00\x01\x02\x03" * 100,
    b"GET / HTTP/9.9\r\n\r\n",
    b"GET " + b"/" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /overview HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (200 * 1024) + b"\r\n\r\n",
    b"GET /overview HTTP/1.1\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(5000)) + b"\r\n",
    b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
    b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab",
    b"POST /jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nxx\r\n",
    b"POST /jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"fffffffffffffff\r\n" + b"a" * 100,
    b"PATCH /jobs/%zz%00?mode=%ff HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /jobs/../../etc/passwd HTTP/1.0\r\n\r\n",
    b"GET http://[::1 HTTP/1.1\r\n\r\n",
    b"GET /overview HTTP/1.1\r\nHost: x\r\n\r\nGET /overview HTTP/1.1\r\nHo",
]


def test_malformed_http_on_the_rest_port_crashes_nothing(cluster):
    c = cluster.coordinators[0]
    jid = cluster.submit(VALID)
    cluster.wait_job(jid, "RUNNING")
    for data in MALFORMED_HTTP:
        try:
            raw_http(c.rest_port, data, timeout=2.0)
        except OSError:
            pass
    # a slow client holding a half-sent request does not block others
    slow = socket.create_connection(("127.0.0.1", c.rest_port), timeout=2)
    slow.sendall(b"GET /overview HTTP/1.1\r\nHost: x\r\n")
    try:
        reply = raw_http(c.rest_port, b"GET /overview HTTP/1.0\r\n\r\n")
        assert reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n")[0], reply[:200]
    finally:
        slow.close()
    assert_alive(cluster, jid)
