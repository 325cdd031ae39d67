"""Leader election on a real 3-server ZooKeeper quorum with real flinc-election processes
(ha/election.h, tools/election): one leader among five, kill -9 failovers with strictly
increasing epochs, fencing checked by an independent kazoo observer, SIGSTOP past the
session timeout, quorum loss shorter and longer than the session timeout, forced
session expiry, clean resign, digest ACLs.

Log lines look like `... [<monotonic s.us>] INFO  election[pid]: +event k=v ...`; the
monotonic stamp is CLOCK_MONOTONIC, the clock of Python's time.monotonic(), so handoff
times are measured between processes without polling noise.

The quorum uses tickTime 200 ms (the harness default): sessions expire in 200 ms buckets.
"""

import re
import signal
import struct
import time

import pytest
from kazoo.exceptions import NoAuthError, NoNodeError

import flinc_testlib as tl

CLUSTER = "c1"


def session(ms):
    """A session timeout for the candidates, scaled like every deadline (the shared
    quorum accepts up to 60 s)."""
    return min(60000, int(ms * tl.timeout_scale()))
LINE_RX = re.compile(r"^\S+ \[(\d+\.\d+)\] (\S+)\s+\S+: ([+-][\w-]+)(.*)$", re.M)


# ---------------------------------------------------------------- payload decoding


def _mp(buf, i=0):
    """A minimal msgpack decoder (maps, strings, bins, ints, nil, bools, arrays)."""
    b = buf[i]
    i += 1
    if b <= 0x7F:
        return b, i
    if 0x80 <= b <= 0x8F or b in (0xDE, 0xDF):
        if b <= 0x8F:
            n = b & 0x0F
        elif b == 0xDE:
            n, = struct.unpack_from(">H", buf, i)
            i += 2
        else:
            n, = struct.unpack_from(">I", buf, i)
            i += 4
        out = {}
        for _ in range(n):
            k, i = _mp(buf, i)
            v, i = _mp(buf, i)
            out[k] = v
        return out, i
    if 0x90 <= b <= 0x9F or b in (0xDC, 0xDD):
        if b <= 0x9F:
            n = b & 0x0F
        elif b == 0xDC:
            n, = struct.unpack_from(">H", buf, i)
            i += 2
        else:
            n, = struct.unpack_from(">I", buf, i)
            i += 4
        out = []
        for _ in range(n):
            v, i = _mp(buf, i)
            out.append(v)
        return out, i
    if 0xA0 <= b <= 0xBF:
        n = b & 0x1F
        return buf[i:i + n].decode(), i + n
    fixed = {0xC0: None, 0xC2: False, 0xC3: True}
    if b in fixed:
        return fixed[b], i
    sizes = {0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q",
             0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q"}
    if b in sizes:
        fmt = sizes[b]
        v, = struct.unpack_from(fmt, buf, i)
        return v, i + struct.calcsize(fmt)
    if b in (0xD9, 0xDA, 0xDB, 0xC4, 0xC5, 0xC6):
        fmt = {0xD9: ">B", 0xDA: ">H", 0xDB: ">I", 0xC4: ">B", 0xC5: ">H", 0xC6: ">I"}[b]
        n, = struct.unpack_from(fmt, buf, i)
        i += struct.calcsize(fmt)
        raw = bytes(buf[i:i + n])
        return (raw.decode() if b in (0xD9, 0xDA, 0xDB) else raw), i + n
    if b >= 0xE0:
        return b - 0x100, i
    raise ValueError(f"msgpack type 0x{b:02x} not handled")


def envelope(data, kind):
    """The body map of a flinc envelope {kind, v, crc, body} of the expected kind."""
    env, _ = _mp(data)
    assert env["kind"] == kind, f"expected an envelope of kind {kind}, seen {env['kind']}"
    body, _ = _mp(env["body"])
    return body


# ---------------------------------------------------------------- processes and logs


def events(proc, name=None, start=0):
    """[(mono_s, event, {k: v}, line)] of a flinc-election log, optionally one event."""
    out = []
    for m in LINE_RX.finditer(proc.log_text(start)):
        if name is not None and m.group(3) != name:
            continue
        fields = dict(kv.split("=", 1) for kv in m.group(4).split() if "=" in kv)
        out.append((float(m.group(1)), m.group(3), fields, m.group(0)))
    return out


class Cluster:
    """flinc-election candidates of one cluster (under a unique root) on a quorum."""

    def __init__(self, procs, quorum, root, session_ms, act_ms=0, extra=()):
        session_ms = session(session_ms)
        self.procs = procs
        self.quorum = quorum
        self.root = root
        self.base = f"{root}/{CLUSTER}"
        self.session_ms = session_ms
        self.act_ms = act_ms
        self.extra = list(extra)
        self.cands = []  # every candidate ever started, in order
        self.exe = tl.binary("flinc-election")

    def spawn(self, name=None, extra=()):
        name = name or f"c{len(self.cands)}"
        argv = [self.exe, "--zk", self.quorum.connect_string, "--root", self.root,
                "--cluster-id", CLUSTER, "--id", name,
                "--session-timeout-ms", str(self.session_ms),
                "--act-interval-ms", str(self.act_ms), *self.extra, *extra]
        p = self.procs.start(argv, name=name)
        p.cid = name
        self.cands.append(p)
        return p

    def live(self):
        return [p for p in self.cands if p.is_running()]

    def elections(self):
        """{epoch: (proc, mono, zxid)} over every candidate's log."""
        out = {}
        for p in self.cands:
            for mono, _, f, line in events(p, "+leader-elected"):
                e = int(f["epoch"])
                assert e not in out, (f"epoch {e} was won twice: by {out[e][0].cid} and by "
                                      f"{p.cid} ({line})")
                out[e] = (p, mono, int(f["zxid"], 16))
        return out

    def wait_leader(self, after_epoch, timeout):
        """The (proc, epoch, mono) of the first election of an epoch > after_epoch."""
        def newer():
            won = {e: v for e, v in self.elections().items() if e > after_epoch}
            if not won:
                return None
            e = min(won)
            return won[e][0], e, won[e][1]
        return tl.wait_for(newer, timeout, f"a leader with epoch > {after_epoch}")

    def negotiated_ms(self, proc):
        sessions = events(proc, "+session")
        assert sessions, f"{proc.cid} logged no +session line"
        return int(sessions[-1][2]["negotiated-timeout-ms"])


def leader_znode(client, base):
    data, stat = client.get(f"{base}/leader")
    return envelope(data, "flinc.ha.leader"), stat


def acting_nodes(client, base):
    """[(seq, epoch, id, write_seq, czxid)] of every acting node, in sequence order."""
    out = []
    try:
        names = client.get_children(f"{base}/acting")
    except NoNodeError:
        return out
    for n in names:
        data, stat = client.get(f"{base}/acting/{n}")
        body = envelope(data, "flinc.election.acting")
        out.append((int(n.split("-")[-1]), body["epoch"], body["id"], body["seq"], stat.czxid))
    out.sort()
    return out


# Write errors after which the outcome is unknown (the write may have been applied).
AMBIGUOUS_ERRORS = ("connection-loss", "timeout", "session-moved", "closing")


def check_fencing(client, cluster):
    """The observer's verdict on every acting write in ZooKeeper: in sequence (= commit)
    order epochs never go down, each write belongs to the leader of its epoch and was
    committed after that epoch's claim and before the next epoch's claim; every write a
    process reported as ok is there, none it reported failed is. Returns the nodes."""
    # logs first: a write logged before the listing is in the listing
    logged = [(p, events(p)) for p in cluster.cands]
    won = cluster.elections()
    nodes = acting_nodes(client, cluster.base)
    prev_epoch = 0
    for seq, epoch, cid, wseq, czxid in nodes:
        where = f"acting node w-{seq:010d} (epoch {epoch}, id {cid}, seq {wseq})"
        assert epoch >= prev_epoch, f"{where} comes after a write of epoch {prev_epoch}"
        prev_epoch = epoch
        assert epoch in won, f"{where}: no process logged winning epoch {epoch}"
        winner, _, claim_zxid = won[epoch]
        assert cid == winner.cid, f"{where} was written by {cid}, the leader was {winner.cid}"
        assert czxid > claim_zxid, f"{where} was committed before its epoch's claim"
        later = [z for e, (_, _, z) in won.items() if e > epoch]
        if later:
            assert czxid < min(later), (f"{where} was committed after the next leader's claim "
                                        f"(zxid 0x{min(later):x}): a deposed leader wrote")
    # every write a process reported as ok is there; none it reported failed is
    present = {(cid, wseq) for _, _, cid, wseq, _ in nodes}
    for p, evs in logged:
        for _, ev, f, line in evs:
            if ev not in ("+acting-write", "-acting-write"):
                continue
            key = (p.cid, int(f["seq"]))
            if ev == "+acting-write":
                assert key in present, f"{p.cid} logged a successful write that is missing: {line}"
            elif f.get("err") in AMBIGUOUS_ERRORS:
                # the connection broke with the write in flight: it may or may not have
                # been applied; if it was, the epoch checks above judged it
                continue
            else:
                assert key not in present, f"{p.cid} logged a failed write that is in ZooKeeper: {line}"
    return nodes


def report(capsys, text):
    with capsys.disabled():
        print(f"\n{text}")


# ---------------------------------------------------------------- acceptance 1


def test_five_candidates_kill9_leader_20_times(zk_quorum, zk_root, procs, capsys):
    session_ms = 1000
    cl = Cluster(procs, zk_quorum, zk_root, session_ms, act_ms=50)
    for _ in range(5):
        cl.spawn()
    observer = zk_quorum.client()
    leader, epoch, _ = cl.wait_leader(0, 15)
    tl.wait_for(lambda: all(events(p, "+candidate") for p in cl.live()), 10,
                "all five candidates to register")
    handoffs = []
    for rnd in range(20):
        # exactly one leader: the znode names it, no one else won this epoch
        info, _ = leader_znode(observer, cl.base)
        assert (info["epoch"], info["id"]) == (epoch, leader.cid), \
            f"round {rnd}: leader znode says {info}, expected epoch {epoch} id {leader.cid}"
        assert len(cl.live()) == 5, f"round {rnd}: {len(cl.live())} candidates alive, expected 5"
        leader.wait_log(rf"\+acting-write epoch={epoch} seq=\d+ ok", 5)
        time.sleep(0.1)  # a few more acting writes for the observer to check
        budget_s = (cl.negotiated_ms(leader) + 1000) / 1000
        t_kill = time.monotonic()
        leader.kill()  # SIGKILL, reaped
        new, new_epoch, mono = cl.wait_leader(epoch, budget_s + 10)
        handoff = mono - t_kill
        handoffs.append(handoff)
        assert new is not leader
        assert new_epoch > epoch, f"round {rnd}: epoch went from {epoch} to {new_epoch}"
        assert handoff <= budget_s * tl.timeout_scale(), \
            (f"round {rnd}: new leader after {handoff:.3f} s, expected within the negotiated "
             f"session timeout + 1 s = {budget_s:.3f} s")
        leader, epoch = new, new_epoch
        cl.spawn()  # back to five
    leader.wait_log(rf"\+acting-write epoch={epoch} seq=\d+ ok", 5)
    nodes = check_fencing(observer, cl)
    epochs = sorted(cl.elections())
    assert epochs == sorted(set(epochs)) and len(epochs) == 21, f"epochs won: {epochs}"
    report(capsys, f"kill -9 x20: handoff min {min(handoffs):.3f} s, max {max(handoffs):.3f} s "
                   f"(session {cl.session_ms} ms); {len(nodes)} acting writes checked, epochs "
                   f"{epochs[0]}..{epochs[-1]}")


# ---------------------------------------------------------------- acceptance 2


def test_sigstop_leader_past_session_timeout(zk_quorum, zk_root, procs):
    cl = Cluster(procs, zk_quorum, zk_root, 2000, act_ms=100, extra=["--probe-after-loss"])
    for _ in range(3):
        cl.spawn()
    observer = zk_quorum.client()
    old, epoch, _ = cl.wait_leader(0, 15)
    old.wait_log(rf"\+acting-write epoch={epoch} seq=\d+ ok", 5)
    off = old.log_offset()
    old.stop_signal()
    new, new_epoch, _ = cl.wait_leader(epoch, (cl.negotiated_ms(old) + 1000) / 1000 + 10)
    assert new is not old and new_epoch > epoch
    new.wait_log(rf"\+acting-write epoch={new_epoch} seq=\d+ ok", 5)
    old.cont()
    lost = old.wait_log(rf"-leadership-lost epoch={epoch} id={old.cid} reason=(\S+)", 10,
                        start_offset=off)
    assert lost.group(1) in ("stall", "session-expired", "deadline", "lease-expired", "fenced"), \
        f"unexpected reason {lost.group(1)}"
    old.wait_log(r"\+candidate", 10, start_offset=off)
    # its write attempted after losing leadership, with the old fence, was refused by
    # ZooKeeper itself (attempts on the dead session fail first and are tried again)
    probe = old.wait_log(rf"-acting-write epoch={epoch} seq=(\d+) err=stale probe=1", 10,
                         start_offset=off)
    assert not re.search(r"\+acting-write .* probe=1", old.log_text(off)), \
        "a write with the lost epoch's fence succeeded"
    nodes = check_fencing(observer, cl)
    claim_new = cl.elections()[new_epoch][2]
    late = [n for n in nodes if n[2] == old.cid and n[4] > claim_new]
    assert not late, f"writes of the deposed leader committed after the new claim: {late}"
    probe_seqs = {int(f["seq"]) for _, _, f, _ in events(old, "-acting-write", off)}
    assert int(probe.group(1)) in probe_seqs
    assert not [n for n in nodes if n[2] == old.cid and n[3] in probe_seqs], \
        f"a write the deposed leader attempted after losing leadership is in ZooKeeper: {nodes}"
    # it stands again and the new leader keeps leading
    info, _ = leader_znode(observer, cl.base)
    assert (info["epoch"], info["id"]) == (new_epoch, new.cid)


# ---------------------------------------------------------------- acceptance 3


def test_quorum_loss_shorter_than_session_keeps_leader(zk_quorum, zk_root, procs):
    q = zk_quorum
    cl = Cluster(procs, q, zk_root, 12000, act_ms=100)
    cl.spawn()
    cl.spawn()
    leader, epoch, _ = cl.wait_leader(0, 15)
    standby = [p for p in cl.cands if p is not leader][0]
    standby.wait_log(r"\+candidate", 10)
    leader.wait_log(rf"\+acting-write epoch={epoch} seq=\d+ ok", 5)
    off = leader.log_offset()
    soff = standby.log_offset()
    t0 = time.monotonic()
    q.kill(0)
    q.kill(1)
    leader.wait_log(rf"\+suspended epoch={epoch}", 10, start_offset=off)
    tl.wait_for(lambda: q.mode(2) is None, 10, "zk3 to stop serving without a quorum")
    q.start_server(0, wait=False)
    q.start_server(1, wait=False)
    q.wait_ready(30)
    back_s = time.monotonic() - t0
    leader.wait_log(rf"\+resumed epoch={epoch}", 10, start_offset=off)
    # acting again, in the same epoch, and nothing was lost or won meanwhile
    o2 = leader.log_offset()
    leader.wait_log(rf"\+acting-write epoch={epoch} seq=\d+ ok", 5, start_offset=o2)
    text = leader.log_text(off)
    assert "-leadership-lost" not in text, f"leadership was lost:\n{text[-2000:]}"
    assert "+leader-elected" not in standby.log_text(soff), "the standby took over"
    info, _ = leader_znode(q.client(), cl.base)
    assert (info["epoch"], info["id"]) == (epoch, leader.cid)
    negotiated_s = cl.negotiated_ms(leader) / 1000
    assert back_s < negotiated_s, \
        f"quorum back after {back_s:.1f} s: not shorter than the {negotiated_s} s session"


def test_quorum_loss_longer_than_session_steps_down_before_timeout(zk_quorum, zk_root, procs,
                                                                   capsys):
    q = zk_quorum
    cl = Cluster(procs, q, zk_root, 8000, act_ms=100)
    cl.spawn()
    cl.spawn()
    leader, epoch, _ = cl.wait_leader(0, 15)
    leader.wait_log(rf"\+acting-write epoch={epoch} seq=\d+ ok", 5)
    negotiated_s = cl.negotiated_ms(leader) / 1000
    off = leader.log_offset()
    t0 = time.monotonic()
    q.kill(0)
    q.kill(1)
    m = leader.wait_log(rf"^\S+ \[(\d+\.\d+)\].*-leadership-lost epoch={epoch} \S+ reason=(\S+)",
                        negotiated_s + 10, start_offset=off)
    stepped = float(m.group(1)) - t0
    report(capsys, f"quorum lost: leader stepped down after {stepped:.2f} s "
                   f"(reason {m.group(2)}; negotiated session timeout {negotiated_s:.1f} s)")
    assert stepped < negotiated_s, \
        f"stepped down {stepped:.2f} s after the loss, not before the {negotiated_s} s timeout"
    assert m.group(2) in ("deadline", "lease-expired"), f"reason {m.group(2)}"
    # no acting write succeeded after the step-down
    after = leader.log_text(off)[m.end():]
    assert "+acting-write" not in after, "acted after stepping down"
    q.start_server(0, wait=False)
    q.start_server(1, wait=False)
    q.wait_ready(30)
    cl.wait_leader(epoch, 30)


# ---------------------------------------------------------------- acceptance 4


def test_forced_session_expiry(zk_quorum, zk_root, procs):
    q = zk_quorum
    cl = Cluster(procs, q, zk_root, 4000, act_ms=100, extra=["--log-session-passwd"])
    cl.spawn()
    cl.spawn()
    old, epoch, _ = cl.wait_leader(0, 15)
    sess = events(old, "+session")[-1][2]
    sid, pw = int(sess["session"], 16), bytes.fromhex(sess["passwd"])
    other = [p for p in cl.cands if p is not old][0]
    other.wait_log(r"\+candidate", 10)
    off = old.log_offset()
    tl.expire_session(q.connect_string, sid, pw)
    new, new_epoch, _ = cl.wait_leader(epoch, 15)
    assert new is other and new_epoch > epoch
    old.wait_log(rf"-session-expired session=0x{sid:016x}", 10, start_offset=off)
    # The expiry deletes our nodes in one transaction; whichever news arrives first (the
    # watch on our own node, or the expired session on reconnect) ends the term.
    lost = old.wait_log(rf"-leadership-lost epoch={epoch} id={old.cid} reason=(\S+)", 10,
                        start_offset=off)
    assert lost.group(1) in ("session-expired", "election-node-deleted", "leader-node-deleted"), \
        f"unexpected reason: {lost.group(0)}"
    m = old.wait_log(r"\+session session=0x([0-9a-f]+)", 10, start_offset=off)
    assert int(m.group(1), 16) != sid, "the old process did not get a new session"
    old.wait_log(r"\+candidate", 10, start_offset=off)
    check_fencing(q.client(), cl)


# ---------------------------------------------------------------- acceptance 6


def test_clean_resign_hands_over_within_200ms(zk_quorum, zk_root, procs, capsys):
    cl = Cluster(procs, zk_quorum, zk_root, 4000, act_ms=100)
    for _ in range(4):
        cl.spawn()
    leader, epoch, _ = cl.wait_leader(0, 15)
    tl.wait_for(lambda: all(events(p, "+candidate") for p in cl.live()), 10,
                "all candidates to register")
    handoffs = []
    for _ in range(3):
        leader.wait_log(rf"\+acting-write epoch={epoch} seq=\d+ ok", 5)
        leader.send_signal(signal.SIGTERM)
        new, new_epoch, mono = cl.wait_leader(epoch, 5)
        rc = leader.wait_exit(10)
        assert rc == 0, f"{leader.cid} exited with {rc} after SIGTERM"
        sig = events(leader, "+signal")
        assert sig, f"{leader.cid} did not log the signal"
        assert events(leader, "+resigning") and events(leader, "+stopped")
        handoff = mono - sig[-1][0]
        handoffs.append(handoff)
        assert handoff < 0.2 * tl.timeout_scale(), \
            f"successor led {handoff * 1000:.0f} ms after the resign, expected < 200 ms"
        leader, epoch = new, new_epoch
    check_fencing(zk_quorum.client(), cl)
    report(capsys, "resign handoff: " + ", ".join(f"{h * 1000:.1f} ms" for h in handoffs))


# ---------------------------------------------------------------- ACLs and arguments


def test_digest_auth_with_creator_acl(zk_quorum, zk_root, procs):
    cl = Cluster(procs, zk_quorum, zk_root, 4000, act_ms=100,
                 extra=["--digest", "flinc:s3cret", "--acl", "creator"])
    cl.spawn()
    leader, epoch, _ = cl.wait_leader(0, 15)
    leader.wait_log(rf"\+acting-write epoch={epoch} seq=\d+ ok", 5)
    anon = zk_quorum.client()
    with pytest.raises(NoAuthError):
        anon.get(f"{cl.base}/leader")
    with pytest.raises(NoAuthError):
        anon.set(f"{cl.base}/epoch", b"garbage")
    authed = zk_quorum.client(auth_data=[("digest", "flinc:s3cret")])
    info, _ = leader_znode(authed, cl.base)
    assert info["epoch"] == epoch and info["id"] == leader.cid
    acl, _ = authed.get_acls(f"{cl.base}/epoch")
    assert [a.id.scheme for a in acl] == ["digest"], f"ACL of the epoch node: {acl}"


@pytest.mark.parametrize("args, fragment", [
    ([], "--zk, --cluster-id and --id are required"),
    (["--zk", "h:1", "--cluster-id", "c", "--id", "x", "--session-timeout-ms", "abc"],
     "--session-timeout-ms 'abc'"),
    (["--zk", "h:1", "--cluster-id", "c", "--id", "x", "--acl", "creator"], "needs --digest"),
    (["--zk", "h:1", "--cluster-id", "a/b", "--id", "x"], "--cluster-id 'a/b'"),
    (["--zk", "h:1", "--cluster-id", "c", "--id", "x", "--bogus"], "usage:"),
])
def test_bad_arguments_exit_2_with_usage(procs, args, fragment):
    p = procs.start([tl.binary("flinc-election"), *args], name="badargs")
    rc = p.wait_exit(10)
    text = p.log_text()
    assert rc == 2, f"expected exit code 2, seen {rc}: {text}"
    assert fragment in text and "usage: flinc-election" in text, text


# ---------------------------------------------------------------- leader retrieval


def test_leader_retrieval_follows_changes_through_expiry(zk_quorum, zk_root, procs):
    q = zk_quorum
    cl = Cluster(procs, q, zk_root, 1000)
    first = cl.spawn("c0", extra=["--rpc", "10.0.0.1:6123", "--rest", "http://10.0.0.1:8081"])
    cl.wait_leader(0, 15)
    second = cl.spawn("c1", extra=["--rpc", "10.0.0.2:6123", "--rest", "http://10.0.0.2:8081"])
    second.wait_log(r"\+candidate", 10)
    obs = cl.procs.start([cl.exe, "--zk", q.connect_string, "--root", cl.root, "--cluster-id",
                          CLUSTER, "--id", "observer", "--session-timeout-ms", "4000",
                          "--observe", "--log-session-passwd"], name="observer")
    obs.wait_log(r"\+leader-changed epoch=1 id=c0 rpc=10\.0\.0\.1:6123 rest=http://10\.0\.0\.1:8081", 10)
    first.kill()
    obs.wait_log(r"\+leader-changed epoch=2 id=c1 rpc=10\.0\.0\.2:6123 rest=http://10\.0\.0\.2:8081", 10)
    # the observer's own session expires; a change right after must still reach it
    sess = events(obs, "+session")[-1][2]
    third = cl.spawn("c2")
    third.wait_log(r"\+candidate", 10)
    off = obs.log_offset()
    tl.expire_session(q.connect_string, int(sess["session"], 16), bytes.fromhex(sess["passwd"]))
    second.send_signal(signal.SIGTERM)
    obs.wait_log(r"-session-expired", 10, start_offset=off)
    obs.wait_log(r"\+leader-changed epoch=3 id=c2", 10, start_offset=off)
    epochs = [int(f["epoch"]) for _, _, f, _ in events(obs, "+leader-changed")]
    assert epochs == sorted(epochs) and len(set(epochs)) == len(epochs), \
        f"the observer reported epochs {epochs}: each change once, in order"
    assert not events(obs, "+candidate"), "an observer must not stand"
    # a corrupt leader payload is an error naming the znode, and "no leader", not a guess
    off = obs.log_offset()
    q.client().set(f"{cl.base}/leader", b"garbage")
    obs.wait_log(rf"leader retrieval: corrupt payload in {re.escape(cl.base)}/leader", 10,
                 start_offset=off)
    obs.wait_log(r"\+leader-none", 10, start_offset=off)


# ---------------------------------------------------------------- ambiguous writes


def test_ambiguous_registration_and_claim_are_read_back(zk_quorum, zk_root, procs):
    """The connection is cut right after the create of our election node and right after
    the claim multi were sent (the server applies both, we see a connection loss): the
    node is found again by its owner instead of a second one being created, and the
    claim is read back instead of being made twice."""
    cl = Cluster(procs, zk_quorum, zk_root, 4000, act_ms=100)
    p = cl.spawn("a", extra=["--drop-connection-after", f"{cl.base}/election/n_",
                             "--drop-connection-after", f"{cl.base}/leader"])
    leader, epoch, _ = cl.wait_leader(0, 15)
    assert leader is p and epoch == 1, f"expected the ambiguous claim of epoch 1 to stand: {epoch}"
    p.wait_log(r"\+acting-write epoch=1 seq=\d+ ok", 5)
    elected_at = p.log_text().index("+leader-elected")
    assert p.log_text()[:elected_at].count("-disconnected") == 2, \
        "expected two cut connections before the election"
    zc = zk_quorum.client()
    nodes = zc.get_children(f"{cl.base}/election")
    assert len(nodes) == 1, f"expected one election node, seen {nodes}"
    assert events(p, "+candidate")[-1][2]["node"] == nodes[0]
    info, stat = leader_znode(zc, cl.base)
    sid = int(events(p, "+session")[-1][2]["session"], 16)
    assert (info["epoch"], info["id"], stat.ephemeralOwner) == (1, "a", sid)
    epoch_body = envelope(zc.get(f"{cl.base}/epoch")[0], "flinc.ha.epoch")
    assert epoch_body["epoch"] == 1, f"the epoch was bumped twice: {epoch_body}"
