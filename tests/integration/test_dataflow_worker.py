"""flinc-worker's data plane against a real worker process: multi-chain jobs joined by
in-memory channels, keyed aggregates on RocksDB, hash / rebalance / broadcast
partitioning, end of input and batch jobs that FINISH.

Every test here is `uses_peer`: it drives the worker with the Python stand-in for the
coordinator of test_worker.py (frames of common/rpc.h, messages of common/proto.h),
until flinc-coordinator deploys multi-chain jobs and checkpoints (then these become
tests against real coordinators). All subtasks of those jobs run on one worker (in-memory
channels); the tests at the end run real coordinators and two workers whose channels
cross over TCP (worker/exchange.h remote channels), with and without a worker kill.
"""

import re
import socket
from collections import Counter

import pytest  # noqa: F401 - fixtures

import flinc_testlib as tl

from test_worker import (JOB_A, JOB_B, assert_ok, deploy, job_graph, none_conf,  # noqa: F401
                         peer, start_worker)


def all_tasks(graph_chains):
    """[(vertex, subtask, slot)] for chains given as a list of parallelisms; subtask s of
    every chain goes to slot s (slot sharing)."""
    return [(v, s, s) for v, p in enumerate(graph_chains) for s in range(p)]


def read_parts(out):
    lines = []
    for f in sorted(out.glob("part-*")):
        lines += f.read_text().splitlines()
    return lines


def gen_words(seed, words, count, line_words):
    """worker/ops.h GENERATOR: word j of record n is w<(seed + n * line_words + j) % words>."""
    return [f"w{(seed + n * line_words + j) % words}"
            for n in range(count) for j in range(line_words)]


def test_keyed_wordcount_finishes_with_exact_counts(procs, tmp_dir, peer):
    """uses_peer: generator -> tokenize -> key_by (p 2) | hash | count -> sink:file (p 3):
    five tasks in three slots, the batch job finishes, the file sink holds one line
    "<word> <running count>" per word occurrence and each word's last count is exact."""
    w = start_worker(procs, none_conf(tmp_dir, peer.port,
                                      taskmanager__numberOfTaskSlots=3))
    conn = peer.registered()
    out = tmp_dir / "out"
    graph = job_graph(JOB_A, [{"generator": {"seed": 3, "words": 50, "count": 30000,
                                             "line_words": 2}},
                              "tokenize", {"key_by": {"field": "word"}},
                              {"count": {"parallelism": 3}},
                              {"sink": {"type": "file", "path": f"file://{out}",
                                        "parallelism": 3}}],
                      parallelism=2)
    assert_ok(deploy(conn, JOB_A, 1, graph, all_tasks([2, 3])), "the keyed deployment")
    for v, p in ((0, 2), (1, 3)):
        for s in range(p):
            conn.wait_task_state(JOB_A, v, s, "FINISHED", timeout=60)
    lines = read_parts(out)
    expect = Counter(gen_words(3, 50, 30000, 2))
    assert len(lines) == 60000, f"expected 60000 lines, seen {len(lines)}"
    last = {}
    for line in lines:
        word, count = line.split(" ")
        last[word] = max(last.get(word, 0), int(count))
    assert last == dict(expect), \
        f"expected counts {sorted(expect.items())[:3]}..., seen {sorted(last.items())[:3]}..."
    fin = [m for m in conn.of_type("task_state")
           if m["vertex"] == 1 and m["state"] == "FINISHED"]
    assert sum(m["records_in"] for m in fin) == 60000, \
        f"expected 60000 records into the count subtasks, seen {[m['records_in'] for m in fin]}"
    w.wait_log(r"state=FINISHED", 5)
    assert w.stop() == 0


def test_rebalance_and_broadcast_between_chains(procs, tmp_dir, peer):
    """uses_peer: generator (p 2) -> rebalance -> sink (p 3) delivers every record once;
    generator (p 1) -> broadcast -> sink (p 2) delivers every record to both subtasks."""
    w = start_worker(procs, none_conf(tmp_dir, peer.port,
                                      taskmanager__numberOfTaskSlots=3))
    conn = peer.registered()
    out = tmp_dir / "rebalanced"
    graph = job_graph(JOB_A, [{"generator": {"seed": 0, "words": 1000, "count": 9000}},
                              {"sink": {"type": "file", "path": f"file://{out}",
                                        "parallelism": 3}}], parallelism=2)
    assert_ok(deploy(conn, JOB_A, 1, graph, all_tasks([2, 3])), "the rebalance job")
    for v, p in ((0, 2), (1, 3)):
        for s in range(p):
            conn.wait_task_state(JOB_A, v, s, "FINISHED", timeout=60)
    lines = read_parts(out)
    assert Counter(lines) == Counter(gen_words(0, 1000, 9000, 1)), \
        f"expected each of 9000 records once, seen {len(lines)} lines"
    per_file = sorted(len(f.read_text().splitlines()) for f in out.glob("part-*"))
    assert len(per_file) == 3 and per_file[0] >= 2900, \
        f"expected round robin over 3 subtasks, seen {per_file}"

    out2 = tmp_dir / "broadcast"
    graph = job_graph(JOB_B, [{"generator": {"seed": 0, "words": 7, "count": 700}},
                              {"sink": {"type": "file", "path": f"file://{out2}",
                                        "parallelism": 2, "partitioning": "broadcast"}}],
                      parallelism=1)
    assert_ok(deploy(conn, JOB_B, 1, graph, [(0, 0, 0), (1, 0, 0), (1, 1, 1)]),
              "the broadcast job")
    for v, s in ((0, 0), (1, 0), (1, 1)):
        conn.wait_task_state(JOB_B, v, s, "FINISHED", timeout=60)
    files = sorted(out2.glob("part-*"))
    assert len(files) == 2, f"expected 2 part files, seen {files}"
    for f in files:
        assert f.read_text().splitlines() == gen_words(0, 7, 700, 1), \
            f"{f.name}: expected all 700 records in order"
    assert w.stop() == 0


def test_backpressure_and_cancel_of_unbounded_keyed_job(procs, tmp_dir, peer):
    """uses_peer: an unbounded generator into a keyed sum over a print sink to a slow
    consumer is bounded by the channels (the worker's memory stays bounded) and a cancel
    stops every task, including producers waiting on a full channel."""
    w = start_worker(procs, none_conf(tmp_dir, peer.port))
    conn = peer.registered()
    graph = job_graph(JOB_A, [{"generator": {"words": 100000}},
                              "tokenize", {"key_by": {"field": "word"}},
                              {"count": {}}, {"sink": {"type": "discard"}}], parallelism=2)
    assert_ok(deploy(conn, JOB_A, 1, graph, all_tasks([2, 2])), "the unbounded job")
    for v in (0, 1):
        for s in (0, 1):
            conn.wait_task_state(JOB_A, v, s, "RUNNING", timeout=30)
    rss = []
    import time
    for _ in range(3):
        time.sleep(0.5)
        with open(f"/proc/{w.pid}/status") as f:
            rss += [int(line.split()[1]) for line in f if line.startswith("VmRSS:")]
    assert max(rss) < 1_500_000, f"expected the worker's RSS under 1.5 GB, seen {rss} kB"
    resp = conn.call("cancel", {"job": JOB_A, "attempt": 1})
    assert_ok(resp, "the cancel")
    for v in (0, 1):
        for s in (0, 1):
            conn.wait_task_state(JOB_A, v, s, "CANCELED", timeout=30)
    assert w.stop() == 0


def checkpointed_graph(job_id, pipeline, parallelism):
    """job_graph with checkpointing on (interval 1 s: the file sink is the exactly-once
    one of worker/sink2pc.h); the peer triggers checkpoints itself."""
    import msgpack
    from test_worker import envelope
    body = {"name": "cp-job", "jid": job_id, "parallelism": parallelism,
            "checkpointing": {"interval": 1000}, "pipeline": pipeline}
    return envelope("flinc.jobgraph", msgpack.packb(body, use_bin_type=True))


def take_checkpoint(conn, job, attempt, n, subtasks):
    """Triggers checkpoint n as the leader would and collects one ack per subtask in
    `subtasks` [(vertex, subtask)]; returns {(vertex, subtask): ack}."""
    conn.send("trigger_checkpoint", {"job": job, "attempt": attempt, "checkpoint": n,
                                     "timestamp_ms": 0, "savepoint": False})
    acks = {}
    for v, s in subtasks:
        acks[(v, s)] = conn.wait_message(
            lambda m, v=v, s=s: m.get("t") == "ack_checkpoint" and m["job"] == job
            and m["attempt"] == attempt and m["checkpoint"] == n and m["vertex"] == v
            and m["subtask"] == s, f"the ack of checkpoint {n} by {v}/{s}", timeout=30)
    declined = [m for m in conn.of_type("decline_checkpoint") if m["checkpoint"] == n]
    assert not declined, f"expected no decline of checkpoint {n}, seen {declined}"
    return acks


def drive_to_finish(conn, job, attempt, subtasks, n):
    """Plays the checkpoint coordinator until every subtask of `subtasks` FINISHED: with
    checkpoints on, a bounded job finishes only after a checkpoint taken after its end of
    input completes (worker/ops.h wrk_chain_end_of_input). Triggers n, n+1, ..., each
    completed once every subtask still running acked it."""
    import time
    deadline = time.monotonic() + tl.scaled(60)

    def states(state):
        return {(m["vertex"], m["subtask"]) for m in conn.of_type("task_state")
                if m["job"] == job and m["attempt"] == attempt and m["state"] == state}
    while True:
        failed = states("FAILED")
        assert not failed, f"expected no failed subtask, seen {failed}"
        if all(st in states("FINISHED") for st in subtasks):
            return n
        assert time.monotonic() < deadline, f"job {job} attempt {attempt} did not finish"
        conn.send("trigger_checkpoint", {"job": job, "attempt": attempt, "checkpoint": n,
                                         "timestamp_ms": 0, "savepoint": False})
        wait_end = time.monotonic() + tl.scaled(10)
        while time.monotonic() < wait_end:
            acked = {(m["vertex"], m["subtask"]) for m in conn.of_type("ack_checkpoint")
                     if m["job"] == job and m["attempt"] == attempt and m["checkpoint"] == n}
            done = states("FINISHED")
            if all(st in acked or st in done for st in subtasks):
                break
            time.sleep(0.02)
        conn.send("checkpoint_complete", {"job": job, "attempt": attempt, "checkpoint": n})
        n += 1
        time.sleep(0.05)


def test_exactly_once_counts_across_a_restore(procs, tmp_dir, peer):
    """uses_peer: a keyed count into the exactly-once file sink; the peer (as leader)
    takes checkpoint 1 (acks carry the subtask states and figures), completes it (the
    sink commits), cancels the attempt mid-stream (a failure), deploys attempt 2 restoring
    from checkpoint 1 (keyed state from RocksDB handles, generator positions, sink
    pending files) and finishes after a final checkpoint; the committed output holds
    every running count of every word exactly once: nothing lost, nothing doubled."""
    chk = tmp_dir / "chk"
    w = start_worker(procs, none_conf(tmp_dir, peer.port, taskmanager__numberOfTaskSlots=2,
                                      state__checkpoints__dir=f"file://{chk}"))
    conn = peer.registered()
    out = tmp_dir / "out"
    count, words = 40000, 20
    pipeline = [{"generator": {"seed": 5, "words": words, "count": count, "rate": 20000}},
                "tokenize", {"key_by": {"field": "word"}}, {"count": {}},
                {"sink": {"type": "file", "path": f"file://{out}"}}]
    graph = checkpointed_graph(JOB_A, pipeline, 2)
    subtasks = [(v, s) for v in (0, 1) for s in (0, 1)]
    assert_ok(deploy(conn, JOB_A, 1, graph, all_tasks([2, 2])), "attempt 1")
    for v, s in subtasks:
        conn.wait_task_state(JOB_A, v, s, "RUNNING", timeout=30)
    import time
    time.sleep(0.3)
    acks = take_checkpoint(conn, JOB_A, 1, 1, subtasks)
    for (v, s), a in acks.items():
        assert a["state"][:1] and a["sync_ms"] >= 0 and "alignment_ms" in a, \
            f"{v}/{s}: expected a state and the figures, seen {sorted(a)}"
    print("[dataflow] checkpoint 1 figures:", {f"{v}/{s}": {k: a[k] for k in (
        "state_bytes", "incremental_bytes", "sync_ms", "async_ms", "alignment_ms",
        "alignment_bytes")} for (v, s), a in sorted(acks.items())})
    keyed = [a for (v, _), a in acks.items() if v == 1]
    assert all(a["state_bytes"] > 0 for a in keyed), \
        f"expected keyed state bytes, seen {[a['state_bytes'] for a in keyed]}"
    conn.send("checkpoint_complete", {"job": JOB_A, "attempt": 1, "checkpoint": 1})
    tl.wait_for(lambda: list(out.glob("part-*")), 10, "committed part files after "
                "checkpoint 1")
    time.sleep(0.3)
    # a failure: attempt 1 is canceled mid-stream, after more output than checkpoint 1 holds
    assert_ok(conn.call("cancel", {"job": JOB_A, "attempt": 1}), "the cancel")
    for v, s in subtasks:
        conn.wait_task_state(JOB_A, v, s, "CANCELED", timeout=30)
    states = {(v, s): a["state"] for (v, s), a in acks.items()}
    resp = conn.call("deploy", {
        "job": JOB_A, "attempt": 2, "graph": graph, "restored_checkpoint": 1,
        "tasks": [{"vertex": v, "subtask": s, "slot": s, "restore": [states[(v, s)]]}
                  for v, s in subtasks]})
    assert_ok(resp, "attempt 2 restoring checkpoint 1")
    drive_to_finish(conn, JOB_A, 2, subtasks, 2)
    lines = read_parts(out)
    expect = Counter(gen_words(5, words, count, 1))
    seen = Counter(lines)
    want = Counter(f"{wd} {i}" for wd, n in expect.items() for i in range(1, n + 1))
    missing = want - seen
    doubled = seen - want
    assert not missing and not doubled, \
        (f"expected each running count once: {len(missing)} missing "
         f"(e.g. {list(missing)[:3]}), {len(doubled)} extra (e.g. {list(doubled)[:3]})")
    hidden = [f.name for f in out.iterdir() if f.name.startswith(".")]
    assert hidden == [], f"expected no in-progress or pending files at the end, seen {hidden}"
    assert w.stop() == 0


def test_rescale_restore_2_to_3(procs, tmp_dir, peer):
    """uses_peer: checkpoint 1 of a keyed count at parallelism 2, then attempt 2 at
    parallelism 3 with every old subtask state given to every new subtask: keyed state
    is clipped to the new key-group ranges (statebackend restore), the generator's
    position entries are split and dealt round robin, the sink commits each pending file
    once; the committed output again holds every running count exactly once."""
    chk = tmp_dir / "chk"
    w = start_worker(procs, none_conf(tmp_dir, peer.port, taskmanager__numberOfTaskSlots=3,
                                      state__checkpoints__dir=f"file://{chk}"))
    conn = peer.registered()
    out = tmp_dir / "out"
    count, words = 30000, 30
    pipeline = [{"generator": {"seed": 1, "words": words, "count": count, "rate": 15000}},
                "tokenize", {"key_by": {"field": "word"}}, {"count": {}},
                {"sink": {"type": "file", "path": f"file://{out}"}}]
    old = [(v, s) for v in (0, 1) for s in (0, 1)]
    assert_ok(deploy(conn, JOB_B, 1, checkpointed_graph(JOB_B, pipeline, 2),
                     all_tasks([2, 2])), "attempt 1 at parallelism 2")
    for v, s in old:
        conn.wait_task_state(JOB_B, v, s, "RUNNING", timeout=30)
    import time
    time.sleep(0.3)
    acks = take_checkpoint(conn, JOB_B, 1, 1, old)
    conn.send("checkpoint_complete", {"job": JOB_B, "attempt": 1, "checkpoint": 1})
    time.sleep(0.3)
    assert_ok(conn.call("cancel", {"job": JOB_B, "attempt": 1}), "the cancel")
    for v, s in old:
        conn.wait_task_state(JOB_B, v, s, "CANCELED", timeout=30)
    by_vertex = {v: [acks[(v, s)]["state"] for s in (0, 1)] for v in (0, 1)}
    new = [(v, s) for v in (0, 1) for s in range(3)]
    resp = conn.call("deploy", {
        "job": JOB_B, "attempt": 2, "graph": checkpointed_graph(JOB_B, pipeline, 3),
        "restored_checkpoint": 1,
        "tasks": [{"vertex": v, "subtask": s, "slot": s, "restore": by_vertex[v]}
                  for v, s in new]})
    assert_ok(resp, "attempt 2 at parallelism 3")
    drive_to_finish(conn, JOB_B, 2, new, 2)
    expect = Counter(gen_words(1, words, count, 1))
    want = Counter(f"{wd} {i}" for wd, n in expect.items() for i in range(1, n + 1))
    seen = Counter(read_parts(out))
    missing, doubled = want - seen, seen - want
    assert not missing and not doubled, \
        (f"expected each running count once after the rescale: {len(missing)} missing "
         f"(e.g. {list(missing)[:3]}), {len(doubled)} extra (e.g. {list(doubled)[:3]})")
    assert w.stop() == 0


def test_data_port_and_unreachable_remote_consumer(procs, tmp_dir, peer):
    """uses_peer: the worker listens on a real data port (taskmanager.data.port 0 = any)
    and registers it; a deployment whose consumer subtask `peers` places on another
    worker is accepted (remote channels, worker/exchange.h), and when that worker's data
    port does not answer the producer FAILS naming the lost connection; a deployment
    whose peers are all this worker runs."""
    w = start_worker(procs, none_conf(tmp_dir, peer.port))
    conn = peer.registered()
    reg = conn.of_type("register")[0]
    port = reg["data_port"]
    assert 0 < port < 65536, f"expected a real data port in register, seen {port}"
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    host = reg["host"]
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    graph = job_graph(JOB_A, [{"generator": {"count": 100}},
                              {"sink": {"type": "discard", "parallelism": 1}}], parallelism=2)
    remote = [{"vertex": 0, "subtask": 0, "host": host, "data_port": port},
              {"vertex": 0, "subtask": 1, "host": host, "data_port": port},
              {"vertex": 1, "subtask": 0, "host": "127.0.0.1", "data_port": dead}]
    resp = conn.call("deploy", {"job": JOB_A, "attempt": 1, "graph": graph, "peers": remote,
                                "tasks": [{"vertex": 0, "subtask": 0, "slot": 0},
                                          {"vertex": 0, "subtask": 1, "slot": 1}]})
    assert_ok(resp, "a deployment with a remote consumer")
    conn.wait_task_state(JOB_A, 0, 0, "FAILED", timeout=30)
    local = [dict(p, host=host, data_port=port) for p in remote]
    resp = conn.call("deploy", {"job": JOB_A, "attempt": 2, "graph": graph, "peers": local,
                                "tasks": [{"vertex": 0, "subtask": 0, "slot": 0},
                                          {"vertex": 0, "subtask": 1, "slot": 1},
                                          {"vertex": 1, "subtask": 0, "slot": 0}]})
    assert_ok(resp, "an all-local deployment with peers")
    conn.wait_task_state(JOB_A, 1, 0, "FINISHED", timeout=30)
    assert w.stop() == 0


def _data_frame(m):
    import msgpack
    import struct
    body = msgpack.packb(dict({"v": 1, "id": 0}, **m), use_bin_type=True)
    return struct.pack(">I", len(body)) + body


def _read_data_frame(sock, timeout):
    import msgpack
    import struct
    sock.settimeout(timeout)
    head = b""
    while len(head) < 4:
        chunk = sock.recv(4 - len(head))
        if not chunk:
            raise EOFError
        head += chunk
    (n,) = struct.unpack(">I", head)
    body = b""
    while len(body) < n:
        chunk = sock.recv(n - len(body))
        if not chunk:
            raise EOFError
        body += chunk
    return msgpack.unpackb(body, raw=False)


def test_data_port_hello_and_credits(procs, tmp_dir, peer):
    """uses_peer: the data port speaks common/rpc.h frames: a hello with another cluster
    id is closed; a "data" hello is answered, an "open" gets buffers-per-channel (2)
    credits, and with no consumer taking buffers the producer gets exactly 2 + 8 (the
    input gate: the channel's exclusive buffers and the gate's floating ones) + 2 (in
    flight) credits in all, then none: bounded memory, backpressure."""
    w = start_worker(procs, none_conf(tmp_dir, peer.port))
    conn = peer.registered()
    port = conn.of_type("register")[0]["data_port"]
    hello = {"t": "hello", "cluster": "another-cluster", "role": "data", "name": "t"}
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(_data_frame(hello))
        with pytest.raises((EOFError, ConnectionResetError)):
            _read_data_frame(s, 5)
    w.wait_log(r"-data-connection-refused: bad hello", 5)
    route = {"job": JOB_A, "attempt": 1, "from_vertex": 0, "from_subtask": 0,
             "to_vertex": 1, "to_subtask": 0, "channel": 0}
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(_data_frame(dict(hello, cluster=peer.cluster)))
        back = _read_data_frame(s, 5)
        assert back["t"] == "hello" and back["role"] == "data", back
        s.sendall(_data_frame(dict(route, t="open")))
        credits, sent = 0, 0
        while True:
            try:
                m = _read_data_frame(s, 1.5)
            except (TimeoutError, socket.timeout):
                break
            assert m["t"] == "credit", m
            credits += m["n"]
            while sent < credits:
                s.sendall(_data_frame(dict(route, t="data", kind="data", checkpoint=0,
                                           payload=b"")))
                sent += 1
        assert credits == 12 and sent == 12, \
            f"expected 2 + 8 + 2 credits with no consumer, seen {credits} (sent {sent})"
    assert w.stop() == 0


def test_socket_source_wordcount(procs, tmp_dir, peer):
    """uses_peer: socket (a Python line server) -> tokenize -> key_by | count (p 2) ->
    file sink; the job finishes when the server closes the connection, and the counts are
    those of the lines sent (the socket source is not replayable, see dataflow.h)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    text = "".join(f"the quick fox {i % 7}\r\n" for i in range(3000)) + "tail"

    import threading

    def serve():
        c, _ = srv.accept()
        with c:
            c.sendall(text.encode())
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    w = start_worker(procs, none_conf(tmp_dir, peer.port))
    conn = peer.registered()
    out = tmp_dir / "out"
    graph = job_graph(JOB_A, [{"socket": {"host": "127.0.0.1", "port": port}}, "tokenize",
                              {"key_by": {"field": "word"}}, {"count": {"parallelism": 2}},
                              {"sink": {"type": "file", "path": f"file://{out}",
                                        "parallelism": 2}}], parallelism=1)
    assert_ok(deploy(conn, JOB_A, 1, graph, [(0, 0, 0), (1, 0, 0), (1, 1, 1)]),
              "the socket job")
    for v, s in ((0, 0), (1, 0), (1, 1)):
        conn.wait_task_state(JOB_A, v, s, "FINISHED", timeout=30)
    srv.close()
    last = {}
    for line in read_parts(out):
        word, count = line.split(" ")
        last[word] = max(last.get(word, 0), int(count))
    expect = Counter(re.findall(r"[a-z0-9]+", text))
    assert last == dict(expect), f"expected {dict(expect)}, seen {last}"
    assert w.stop() == 0


def udf_graph(job_id, pipeline, artifacts, parallelism=1):
    import msgpack
    from test_worker import envelope
    body = {"name": "udf-job", "jid": job_id, "parallelism": parallelism,
            "artifacts": [str(a) for a in artifacts], "pipeline": pipeline}
    return envelope("flinc.jobgraph", msgpack.packb(body, use_bin_type=True))


def test_udfs_from_the_example_library(procs, tmp_dir, peer):
    """uses_peer: flat_map, filter, map, a key selector and reduce from
    examples/udf/libflinc_udf_example.so (dlopen'ed from the job's artifacts); a library
    of another ABI version is refused with a message naming it and both versions."""
    lib = tl.build_dir() / "examples" / "udf" / "libflinc_udf_example.so"
    bad = tl.build_dir() / "examples" / "udf" / "libflinc_udf_bad_abi.so"
    w = start_worker(procs, none_conf(tmp_dir, peer.port))
    conn = peer.registered()
    out = tmp_dir / "out"
    pipeline = [{"generator": {"words": 1000, "count": 2000, "line_words": 3}},
                {"flat_map": {"udf": "split_words"}}, {"filter": {"udf": "long_words"}},
                {"map": {"udf": "upper"}}, {"key_by": {"udf": "first_letter"}},
                {"reduce": {"udf": "max_len"}},
                {"sink": {"type": "file", "path": f"file://{out}"}}]
    assert_ok(deploy(conn, JOB_A, 1, udf_graph(JOB_A, pipeline, [lib]), all_tasks([1, 1])),
              "the udf job")
    for v in (0, 1):
        conn.wait_task_state(JOB_A, v, 0, "FINISHED", timeout=30)
    kept = [wd for wd in gen_words(0, 1000, 2000, 3) if len(wd) >= 3]
    lines = read_parts(out)
    assert len(lines) == len(kept), f"expected {len(kept)} lines, seen {len(lines)}"
    assert all(line.startswith("W ") for line in lines), f"expected key W, seen {lines[:3]}"
    assert lines[-1] == "W 4" or "W 4" in lines, f"expected the max length 4, seen {lines[-3:]}"

    resp = deploy(conn, JOB_B, 1, udf_graph(JOB_B, pipeline, [bad]), all_tasks([1, 1]))
    assert resp["ok"] is False and "UDF ABI version 999" in resp["error"] \
        and str(bad) in resp["error"], f"expected the wrong ABI refused by name, seen {resp}"
    assert w.stop() == 0


# ------------------------------------------------------------------ with real coordinators

CLUSTER_JOB = """
name: exactly-once-count
parallelism: 2
pipeline:
  - generator: {{ seed: 7, words: 40, count: {count}, rate: {rate} }}
  - tokenize
  - key_by: {{ field: word }}
  - count
  - sink: {{ type: file, path: "file://{out}" }}
"""


def test_cluster_exactly_once_after_worker_kill(zk_quorum, tmp_dir, procs, zk_root):
    """A real coordinator (leader on ZooKeeper, checkpoint coordinator) and real workers:
    a keyed count into the exactly-once file sink takes periodic checkpoints; the worker
    running it is killed with SIGKILL after a completed checkpoint; the job restarts on
    a new worker from that checkpoint and FINISHES; the committed output holds every
    running count exactly once. Checkpointing comes from the cluster's
    execution.checkpointing.interval (the job file has none)."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))
    from failover_cluster import Cluster
    import signal

    # one worker at a time (the two-worker tests are at the end of this file)
    # the job has no `checkpointing`: coordinator and worker both use the cluster's
    cl = Cluster(zk_quorum, tmp_dir, procs, root=zk_root, coordinators=1, workers=1, slots=2,
                 settings={"execution.checkpointing.interval": "300 ms"})
    cl.start()
    out = tmp_dir / "out"
    count, rate = 40000, 8000
    jid = cl.submit(CLUSTER_JOB.format(count=count, rate=rate, out=out))
    cl.wait_job(jid, "RUNNING", timeout=30)

    def completed():
        d = cl.any_rest(f"/jobs/{jid}/checkpoints")
        n = (d.get("counts") or {}).get("completed", 0)
        if n < 1:
            raise tl._NotYet(f"completed checkpoints: {n}")
        return n
    tl.wait_for(completed, 30, "a completed checkpoint")
    victims = cl.workers_of_job(jid)
    assert victims, "expected the job's worker"
    victims[0].proc.kill(signal.SIGKILL)
    cl.add_worker()
    done = cl.wait_job(jid, "FINISHED", timeout=90, min_attempt=2)
    assert done.get("attempt", 0) >= 2, f"expected a restart after the kill, seen {done}"
    expect = Counter(gen_words(7, 40, count, 1))
    want = Counter(f"{wd} {i}" for wd, n in expect.items() for i in range(1, n + 1))
    seen = Counter(read_parts(out))
    missing, doubled = want - seen, seen - want
    assert not missing and not doubled, \
        (f"expected each running count once after the kill: {len(missing)} missing "
         f"(e.g. {list(missing)[:3]}), {len(doubled)} extra (e.g. {list(doubled)[:3]})")


def test_file_source_batch_wordcount_exactly_once_across_a_restore(procs, tmp_dir, peer):
    """uses_peer: file (p 2, byte-range splits) -> tokenize -> key_by | count -> exactly-
    once file sink; checkpoint 1 records the splits' offsets, attempt 2 restores at
    parallelism 3 (splits dealt round robin) and the batch job FINISHES with every
    running count exactly once (lines are replayed from the offsets, none twice)."""
    chk = tmp_dir / "chk"
    w = start_worker(procs, none_conf(tmp_dir, peer.port, taskmanager__numberOfTaskSlots=3,
                                      state__checkpoints__dir=f"file://{chk}"))
    conn = peer.registered()
    src = tmp_dir / "input.txt"
    lines = [" ".join(f"w{(i * 7 + j) % 23}" for j in range(1 + i % 5)) for i in range(200000)]
    src.write_text("\n".join(lines) + "\n")
    out = tmp_dir / "out"
    pipeline = [{"file": {"path": f"file://{src}"}}, "tokenize",
                {"key_by": {"field": "word"}}, {"count": {}},
                {"sink": {"type": "file", "path": f"file://{out}"}}]
    old = [(v, s) for v in (0, 1) for s in (0, 1)]
    assert_ok(deploy(conn, JOB_A, 1, checkpointed_graph(JOB_A, pipeline, 2),
                     all_tasks([2, 2])), "attempt 1")
    for v, s in old:
        conn.wait_task_state(JOB_A, v, s, "RUNNING", timeout=30)
    acks = take_checkpoint(conn, JOB_A, 1, 1, old)
    conn.send("checkpoint_complete", {"job": JOB_A, "attempt": 1, "checkpoint": 1})
    assert_ok(conn.call("cancel", {"job": JOB_A, "attempt": 1}), "the cancel")
    # the sink chains wait for a final checkpoint, so the cancel ends them mid-job; a
    # source chain (no sink, nothing to commit) may have read all its splits and
    # FINISHED before the cancel arrived
    for v, s in old:
        ends = ("CANCELED", "FINISHED") if v == 0 else ("CANCELED",)
        conn.wait_message(
            lambda m, v=v, s=s, ends=ends: m.get("t") == "task_state" and m["job"] == JOB_A
            and m["vertex"] == v and m["subtask"] == s and m["state"] in ends,
            f"task_state {' or '.join(ends)} of vertex {v} subtask {s}", 30)
    by_vertex = {v: [acks[(v, s)]["state"] for s in (0, 1)] for v in (0, 1)}
    new = [(v, s) for v in (0, 1) for s in range(3)]
    resp = conn.call("deploy", {
        "job": JOB_A, "attempt": 2, "graph": checkpointed_graph(JOB_A, pipeline, 3),
        "restored_checkpoint": 1,
        "tasks": [{"vertex": v, "subtask": s, "slot": s, "restore": by_vertex[v]}
                  for v, s in new]})
    assert_ok(resp, "attempt 2 at parallelism 3")
    drive_to_finish(conn, JOB_A, 2, new, 2)
    expect = Counter(wd for line in lines for wd in line.split(" "))
    want = Counter(f"{wd} {i}" for wd, n in expect.items() for i in range(1, n + 1))
    seen = Counter(read_parts(out))
    missing, doubled = want - seen, seen - want
    assert not missing and not doubled, \
        (f"expected each running count once: {len(missing)} missing "
         f"(e.g. {list(missing)[:3]}), {len(doubled)} extra (e.g. {list(doubled)[:3]})")
    assert w.stop() == 0


def _two_worker_cluster(zk_quorum, tmp_dir, procs, zk_root):
    """A coordinator and two workers of one slot each: a job of parallelism 2 (slot
    sharing: two slots) must spread over both, so its hash channels cross workers."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))
    from failover_cluster import Cluster
    cl = Cluster(zk_quorum, tmp_dir, procs, root=zk_root, coordinators=1, workers=2, slots=1,
                 settings={"execution.checkpointing.interval": "300 ms"})
    cl.start()
    return cl


def _check_running_counts(out, count):
    expect = Counter(gen_words(7, 40, count, 1))
    want = Counter(f"{wd} {i}" for wd, n in expect.items() for i in range(1, n + 1))
    seen = Counter(read_parts(out))
    missing, doubled = want - seen, seen - want
    assert not missing and not doubled, \
        (f"expected each running count once: {len(missing)} missing "
         f"(e.g. {list(missing)[:3]}), {len(doubled)} extra (e.g. {list(doubled)[:3]})")


def test_two_workers_keyed_count_over_tcp(zk_quorum, tmp_dir, procs, zk_root):
    """A real coordinator and two real workers of one slot each: the keyed count of
    parallelism 2 runs on both (generator -> hash -> count crosses workers over TCP data
    connections with credit-based flow control) and FINISHES with every running count
    exactly once."""
    cl = _two_worker_cluster(zk_quorum, tmp_dir, procs, zk_root)
    out = tmp_dir / "out"
    count = 30000
    jid = cl.submit(CLUSTER_JOB.format(count=count, rate=20000, out=out))
    cl.wait_job(jid, "RUNNING", timeout=30)
    assert len(cl.workers_of_job(jid)) == 2, "expected the job on both workers"
    cl.wait_job(jid, "FINISHED", timeout=90)
    _check_running_counts(out, count)


def test_two_workers_consumer_worker_killed(zk_quorum, tmp_dir, procs, zk_root):
    """Two workers of one slot each run the keyed count across TCP; after a completed
    checkpoint one of them (it runs a count subtask, the consumer of the other worker's
    generator) is killed with SIGKILL: the surviving worker's tasks fail on the lost data
    connection or are canceled, the job restarts from the checkpoint on the survivor and
    a replacement worker, FINISHES, and every running count is committed exactly once."""
    import signal
    cl = _two_worker_cluster(zk_quorum, tmp_dir, procs, zk_root)
    out = tmp_dir / "out"
    count = 40000
    jid = cl.submit(CLUSTER_JOB.format(count=count, rate=8000, out=out))
    cl.wait_job(jid, "RUNNING", timeout=30)

    def completed():
        d = cl.any_rest(f"/jobs/{jid}/checkpoints")
        n = (d.get("counts") or {}).get("completed", 0)
        if n < 1:
            raise tl._NotYet(f"completed checkpoints: {n}")
        return n
    tl.wait_for(completed, 30, "a completed checkpoint")
    victims = cl.workers_of_job(jid)
    assert len(victims) == 2, "expected the job on both workers"
    victims[1].proc.kill(signal.SIGKILL)
    cl.add_worker(slots=1)
    done = cl.wait_job(jid, "FINISHED", timeout=120, min_attempt=2)
    assert done.get("attempt", 0) >= 2, f"expected a restart after the kill, seen {done}"
    _check_running_counts(out, count)


LATENCY_JOB = """\
name: latency
parallelism: 2
pipeline:
  - generator: {{ seed: 7, words: 40, rate: {rate} }}
  - key_by: {{ field: word }}
  - count
  - sink: {{ type: discard }}
"""


def test_latency_markers_reported_by_the_sink_vertex(zk_quorum, tmp_dir, procs, zk_root):
    """metrics.latency.interval set: the sources emit latency markers that cross the hash
    channels (over TCP: two workers of one slot each) to the sinks, and the REST job view
    shows a "latency" metric (count, p50, p99, ... in ms) on the sink's vertex, none on the
    source's. Its value is not asserted (timing)."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))
    from failover_cluster import Cluster
    cl = Cluster(zk_quorum, tmp_dir, procs, root=zk_root, coordinators=1, workers=2, slots=1,
                 settings={"metrics.latency.interval": "20 ms"})
    cl.start()
    jid = cl.submit(LATENCY_JOB.format(rate=2000))
    cl.wait_job(jid, "RUNNING", timeout=30)

    def sink_latency():
        vs = cl.job(jid)["vertices"]
        lat = vs[-1]["metrics"].get("latency")
        if not lat or lat.get("count", 0) < 1:
            raise tl._NotYet(f"sink vertex metrics: {vs[-1]['metrics']}")
        return vs
    vs = tl.wait_for(sink_latency, 30, "a latency metric on the sink vertex")
    lat = vs[-1]["metrics"]["latency"]
    for k in ("count", "min", "max", "mean", "p50", "p95", "p99"):
        assert k in lat, f"latency metric without {k}: {lat}"
    assert lat["min"] <= lat["p50"] <= lat["p99"] <= lat["max"], lat
    assert "latency" not in vs[0]["metrics"], f"the source vertex measures none: {vs[0]}"
    subs = cl.any_rest(f"/jobs/{jid}/vertices/{vs[-1]['id']}")
    counts = [s["metrics"].get("latency", {}).get("count", 0) for s in subs["subtasks"]]
    assert sum(counts) >= 1, f"per-subtask latency: {subs}"
