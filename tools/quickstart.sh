#!/usr/bin/env bash
# The README's first command: a local HA cluster on this machine, with a job and a drill.
#
#   tools/quickstart.sh [start] [--no-setup] [--dir DIR] [--web-ports P1,P2]
#                       [--zk-ports C1,C2,C3] [--zk-peer-ports P1:E1,P2:E2,P3:E3]
#                       [--rounds N]
#   tools/quickstart.sh stop [--dir DIR]
#
# start (the default):
#   1. tools/dev/setup.sh: installs the missing Debian packages and builds into build/
#      (skipped with --no-setup; the programs are then taken from $FLINC_BUILD_DIR, else
#      build/);
#   2. writes a self-contained conf dir, DIR/conf (DIR default /tmp/flinc-quickstart):
#      zoo.cfg for a 3-server ZooKeeper quorum on 127.0.0.1 (client ports 2181-2183,
#      peer:election ports 2888:3888, 2889:3889, 2890:3890), flinc-conf.yaml (HA on that
#      quorum, file:// HA storage, checkpoints and savepoints under DIR, pid files in
#      DIR/pids, logs in DIR/log, every server bound to 127.0.0.1), masters with two
#      coordinators on localhost (web ports 8081 and 8082) and workers with two local
#      workers of 4 slots each;
#   3. starts the quorum, the coordinators and the workers with the project's own
#      scripts (start-zookeeper-quorum.sh, jobmanager.sh, taskmanager.sh) and polls,
#      with deadlines, until the quorum serves, a coordinator leads and both workers are
#      registered;
#   4. submits examples/streaming-wordcount.yaml with `flinc run -d`, its file sink in
#      DIR/wordcount, and waits until it runs;
#   5. runs `flinc-drill --conf DIR/conf --rounds N --target alternate` (N default 3)
#      on a second copy of the word count (output DIR/drill): kill -9 of the leading
#      coordinator and of a worker in turn, recovery times, then the exactly-once check
#      of the committed counts (the drill's JSON goes to DIR/drill.json);
#   6. prints both web URLs, the drill's table and verdict, the word count's first
#      counts and how to stop. The cluster and the word count keep running.
# Any failing step prints what failed, stops what this run started and exits non-zero
# (1; 3 when the drill found the output not exactly-once). Ports in use, or a cluster of
# an earlier start still running in DIR, stop it before anything starts.
#
# stop: stops the workers, the coordinators and the ZooKeeper servers listed in DIR's
# pid files (taskmanager.sh / jobmanager.sh stop-all, stop-zookeeper-quorum.sh), by
# pid; nothing running (or no DIR) is fine, so stop can be run any number of times.
#
# Deadlines are multiplied by FLINC_TIMEOUT_SCALE (default 1) on a slow machine.
# FLINC_ZK_JVM_OPTS and the other variables of tools/scripts/config.sh pass through,
# except those that would point the scripts elsewhere (FLINC_CONF_DIR, FLINC_PID_DIR,
# FLINC_LOG_DIR, FLINC_SSH_CMD, FLINC_IDENT_STRING).
set -euo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd -P)
SCRIPTS="$ROOT/tools/scripts"
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=python3

USAGE="Usage: quickstart.sh [start] [--no-setup] [--dir DIR] [--web-ports P1,P2] [--zk-ports C1,C2,C3] [--zk-peer-ports P1:E1,P2:E2,P3:E3] [--rounds N]
       quickstart.sh stop [--dir DIR]"

usage_error() {
        echo "quickstart: $1" >&2
        echo "$USAGE" >&2
        exit 2
}

ACTION=start
case "${1:-}" in
start | stop)
        ACTION=$1
        shift
        ;;
-h | --help)
        echo "$USAGE"
        exit 0
        ;;
esac

DIR=/tmp/flinc-quickstart
SETUP=1
WEB_PORTS=(8081 8082)
ZK_PORTS=(2181 2182 2183)
ZK_PEER_PORTS=(2888 2889 2890)
ZK_ELECTION_PORTS=(3888 3889 3890)
ROUNDS=3

is_port() { [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]; }

while [ $# -gt 0 ]; do
        opt=$1
        case "$opt" in
        --no-setup) SETUP=0; shift; continue ;;
        --dir | --web-ports | --zk-ports | --zk-peer-ports | --rounds)
                if [ $# -lt 2 ] || [ -z "$2" ]; then usage_error "$opt needs a value."; fi
                val=$2
                shift 2
                ;;
        -h | --help) echo "$USAGE"; exit 0 ;;
        *) usage_error "unexpected argument '$opt'." ;;
        esac
        [ "$ACTION" = start ] || [ "$opt" = --dir ] || usage_error "stop takes only --dir."
        case "$opt" in
        --dir) DIR=$val ;;
        --web-ports)
                IFS=, read -r -a WEB_PORTS <<< "$val"
                [ "${#WEB_PORTS[@]}" -eq 2 ] || usage_error "--web-ports '$val': expected two ports, P1,P2."
                for p in "${WEB_PORTS[@]}"; do
                        is_port "$p" || usage_error "--web-ports '$val': '$p' is not a port (1..65535)."
                done
                ;;
        --zk-ports)
                IFS=, read -r -a ZK_PORTS <<< "$val"
                [ "${#ZK_PORTS[@]}" -eq 3 ] || usage_error "--zk-ports '$val': expected three client ports, C1,C2,C3."
                for p in "${ZK_PORTS[@]}"; do
                        is_port "$p" || usage_error "--zk-ports '$val': '$p' is not a port (1..65535)."
                done
                ;;
        --zk-peer-ports)
                IFS=, read -r -a pairs <<< "$val"
                [ "${#pairs[@]}" -eq 3 ] || usage_error "--zk-peer-ports '$val': expected three peer:election pairs."
                ZK_PEER_PORTS=()
                ZK_ELECTION_PORTS=()
                for pair in "${pairs[@]}"; do
                        p=${pair%%:*}
                        e=${pair#*:}
                        if ! is_port "$p" || ! is_port "$e" || [ "$pair" != "$p:$e" ]; then
                                usage_error "--zk-peer-ports '$val': '$pair' is not peerPort:electionPort."
                        fi
                        ZK_PEER_PORTS+=("$p")
                        ZK_ELECTION_PORTS+=("$e")
                done
                ;;
        --rounds)
                if ! [[ $val =~ ^[0-9]+$ ]] || [ "$val" -lt 1 ] || [ "$val" -gt 1000 ]; then
                        usage_error "--rounds '$val': expected a number of rounds, 1..1000."
                fi
                ROUNDS=$val
                ;;
        esac
done

[[ $DIR == /* ]] || DIR="$PWD/$DIR"
CONF="$DIR/conf"
SCALE=${FLINC_TIMEOUT_SCALE:-1}
[[ $SCALE =~ ^[0-9]+([.][0-9]+)?$ ]] || usage_error "FLINC_TIMEOUT_SCALE '$SCALE' is not a number."

# The scripts read everything from our conf dir.
unset FLINC_PID_DIR FLINC_LOG_DIR FLINC_SSH_CMD FLINC_SSH_OPTS FLINC_IDENT_STRING
export FLINC_CONF_DIR="$CONF"

say() { echo "quickstart: $*"; }

# scaled SECONDS: the deadline in whole seconds, times FLINC_TIMEOUT_SCALE.
scaled() { awk -v s="$1" -v f="$SCALE" 'BEGIN { printf "%d", s * f + 0.999 }'; }

# poll SECONDS WHAT COMMAND...: until COMMAND succeeds, or fails naming WHAT.
poll() {
        local limit end what=$2
        limit=$(scaled "$1")
        shift 2
        end=$((SECONDS + limit))
        until "$@" > /dev/null 2>&1; do
                if [ "$SECONDS" -ge "$end" ]; then
                        echo "quickstart: timed out after $limit s waiting for $what." >&2
                        return 1
                fi
                sleep 0.2
        done
}

# Our daemons: the pids in DIR's pid files (zookeeper, coordinator, worker).
listed_pids() {
        local f
        for f in "$DIR"/pids/flinc-*-zookeeper.pid "$DIR"/pids/flinc-*-coordinator.pid \
                "$DIR"/pids/flinc-*-worker.pid; do
                [ -f "$f" ] && tr -s '[:space:]' '\n' < "$f"
        done | grep -E '^[0-9]+$' || true
}

running_pids() {
        local pid
        for pid in $(listed_pids); do
                [ -r "/proc/$pid/cmdline" ] || continue
                grep -qaE 'flinc-coordinator|flinc-worker|QuorumPeerMain' "/proc/$pid/cmdline" &&
                        echo "$pid"
        done
        return 0
}

stop_all() {
        if [ ! -d "$CONF" ]; then
                say "nothing to stop in $DIR (no conf dir)."
                return 0
        fi
        local rc=0
        "$SCRIPTS/taskmanager.sh" stop-all || rc=1
        "$SCRIPTS/jobmanager.sh" stop-all || rc=1
        if [ -f "$CONF/zoo.cfg" ]; then
                "$SCRIPTS/stop-zookeeper-quorum.sh" || rc=1
        fi
        local left
        left=$(running_pids | tr '\n' ' ')
        if [ -n "$left" ]; then
                echo "quickstart: still running after stop: pids $left" >&2
                rc=1
        else
                say "stopped; nothing of $DIR runs any more."
        fi
        return "$rc"
}

if [ "$ACTION" = stop ]; then
        stop_all
        exit $?
fi

# ------------------------------------------------------------------------------- start

STARTED=0
fail() {
        echo "quickstart: FAILED: $*" >&2
        if [ "$STARTED" = 1 ]; then
                echo "quickstart: logs are in $DIR/log; stopping what this run started." >&2
                stop_all >&2 || true
        fi
        exit "${FAIL_RC:-1}"
}
trap 'fail "interrupted"' INT TERM

# (1) set-up and build
if [ "$SETUP" = 1 ]; then
        say "set-up: tools/dev/setup.sh (Debian packages, build into build/)"
        "$ROOT/tools/dev/setup.sh" || fail "tools/dev/setup.sh failed (see above)."
fi
BUILD=${FLINC_BUILD_DIR:-$ROOT/build}
export FLINC_BUILD_DIR="$BUILD"
FLINC="$BUILD/tools/cli/flinc"
for prog in "$BUILD/coordinator/flinc-coordinator" "$BUILD/worker/flinc-worker" "$FLINC"; do
        [ -x "$prog" ] || fail "$prog is missing: build first (tools/dev/setup.sh, or leave out --no-setup)."
done

# (2) nothing of ours may run yet, and every port must be free
if [ -n "$(running_pids)" ]; then
        fail "a quickstart cluster still runs in $DIR (pids $(running_pids | tr '\n' ' ')); stop it first: $0 stop --dir $DIR"
fi
port_in_use() { (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null; }
busy=()
for p in "${WEB_PORTS[@]}" "${ZK_PORTS[@]}" "${ZK_PEER_PORTS[@]}" "${ZK_ELECTION_PORTS[@]}"; do
        ! port_in_use "$p" || busy+=("$p")
done
all=("${WEB_PORTS[@]}" "${ZK_PORTS[@]}" "${ZK_PEER_PORTS[@]}" "${ZK_ELECTION_PORTS[@]}")
[ "$(printf '%s\n' "${all[@]}" | sort -u | wc -l)" -eq "${#all[@]}" ] ||
        fail "the ports given are not all different: ${all[*]}"
if [ "${#busy[@]}" -gt 0 ]; then
        fail "port(s) ${busy[*]} on 127.0.0.1 are in use by another program; free them or choose others (--web-ports, --zk-ports, --zk-peer-ports)."
fi

# (3) a fresh work dir (the state of an earlier start would be recovered: its jobs,
# its ZooKeeper data), then the conf dir
MARK="# Written by tools/quickstart.sh"
if [ -d "$DIR" ] && [ -n "$(ls -A "$DIR")" ] &&
        ! grep -qs "^$MARK" "$CONF/flinc-conf.yaml"; then
        fail "$DIR is not empty and is no quickstart work dir: choose another with --dir."
fi
if [ -d "$DIR" ]; then
        rm -rf "${DIR:?}"/{conf,pids,log,zookeeper,ha,checkpoints,savepoints,tmp,wordcount,drill} \
                "$DIR"/drill.{out,err,json} || fail "cannot clean $DIR"
fi
mkdir -p "$CONF" "$DIR/pids" "$DIR/log" "$DIR/zookeeper" "$DIR/tmp" ||
        fail "cannot create $DIR"
quorum=""
servers=""
for i in 0 1 2; do
        quorum+="${quorum:+,}127.0.0.1:${ZK_PORTS[$i]}"
        servers+="server.$((i + 1))=127.0.0.1:${ZK_PEER_PORTS[$i]}:${ZK_ELECTION_PORTS[$i]};127.0.0.1:${ZK_PORTS[$i]}"$'\n'
done
cat > "$CONF/zoo.cfg" << EOF
$MARK: three ZooKeeper servers on this host.
tickTime=500
initLimit=20
syncLimit=5
dataDir=$DIR/zookeeper
admin.enableServer=false
4lw.commands.whitelist=srvr,ruok
$servers
EOF
cat > "$CONF/flinc-conf.yaml" << EOF
$MARK: a local HA cluster, everything under $DIR.
high-availability: zookeeper
high-availability.zookeeper.quorum: $quorum
high-availability.zookeeper.path.root: /flinc
high-availability.cluster-id: quickstart
high-availability.storageDir: file://$DIR/ha
high-availability.zookeeper.client.session-timeout: 4 s
rest.bind-address: 127.0.0.1
jobmanager.bind-host: 127.0.0.1
taskmanager.host: 127.0.0.1
taskmanager.bind-host: 127.0.0.1
taskmanager.numberOfTaskSlots: 4
heartbeat.interval: 500 ms
heartbeat.timeout: 5 s
state.backend: rocksdb
state.checkpoints.dir: file://$DIR/checkpoints
state.savepoints.dir: file://$DIR/savepoints
io.tmp.dirs: $DIR/tmp
env.pid.dir: $DIR/pids
env.log.dir: $DIR/log
EOF
printf 'localhost:%s\nlocalhost:%s\n' "${WEB_PORTS[0]}" "${WEB_PORTS[1]}" > "$CONF/masters"
printf 'localhost\nlocalhost\n' > "$CONF/workers"
say "conf dir $CONF written"

# (4) ZooKeeper, coordinators, workers
STARTED=1
"$SCRIPTS/start-zookeeper-quorum.sh" || fail "start-zookeeper-quorum.sh failed."
zk_serving() {
        local p mode
        for p in "${ZK_PORTS[@]}"; do
                mode=$(exec 3<> "/dev/tcp/127.0.0.1/$p" && printf 'srvr' >&3 && cat <&3 | grep '^Mode:') || return 1
                case "$mode" in *leader* | *follower*) ;; *) return 1 ;; esac
        done
}
poll 90 "the ZooKeeper quorum on 127.0.0.1:${ZK_PORTS[*]} to serve (logs: $DIR/log)" zk_serving ||
        fail "the ZooKeeper quorum did not come up."
say "ZooKeeper quorum serving on 127.0.0.1:${ZK_PORTS[0]},${ZK_PORTS[1]},${ZK_PORTS[2]}"

for p in "${WEB_PORTS[@]}"; do
        "$SCRIPTS/jobmanager.sh" start localhost "$p" || fail "jobmanager.sh start localhost $p failed."
done
for _ in 1 2; do
        "$SCRIPTS/taskmanager.sh" start || fail "taskmanager.sh start failed."
done

# rest_ok PORT PATH PYTHON-EXPR: GET http://127.0.0.1:PORT/PATH answers 200 with JSON j
# for which the expression is true.
rest_ok() {
        "$PYTHON" - "$@" << 'PY'
import json, sys, urllib.request
port, path, expr = sys.argv[1], sys.argv[2], sys.argv[3]
with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
    j = json.loads(r.read())
sys.exit(0 if eval(expr, {"j": j}) else 1)
PY
}
LEADER_PORT=""
find_leader() {
        local p
        for p in "${WEB_PORTS[@]}"; do
                if rest_ok "$p" /ha 'j.get("role") == "leader" and (j.get("term") or {}).get("recovered")'; then
                        LEADER_PORT=$p
                        return 0
                fi
        done
        return 1
}
poll 60 "a leading coordinator" find_leader || fail "no coordinator became leader."
poll 60 "2 registered workers" rest_ok "$LEADER_PORT" /overview 'j["taskmanagers"] == 2' ||
        fail "the workers did not register."
for p in "${WEB_PORTS[@]}"; do
        poll 30 "the coordinator on port $p to answer" rest_ok "$p" /ha 'j.get("role") in ("leader", "standby")' ||
                fail "the coordinator on port $p does not answer."
done
say "coordinators up (leader on port $LEADER_PORT), 2 workers registered"

# (5) the streaming word count, through the CLI
run_out=$("$FLINC" run -d --output "$DIR/wordcount" "$ROOT/examples/streaming-wordcount.yaml" 2>&1) ||
        fail "flinc run examples/streaming-wordcount.yaml: $run_out"
JID=$(printf '%s\n' "$run_out" | sed -n 's/.*JobID \([0-9a-f]\{32\}\).*/\1/p')
[ -n "$JID" ] || fail "flinc run printed no JobID: $run_out"
job_running() {
        find_leader && rest_ok "$LEADER_PORT" "/jobs/$JID" 'j["state"] == "RUNNING"'
}
poll 60 "the word count $JID to run" job_running || fail "the word count did not start."
say "streaming word count running: JobID $JID, output $DIR/wordcount"

# (6) the drill, on a second word count
say "drill: $ROUNDS kill -9 rounds (leader and worker in turn), then the exactly-once check"
drill_rc=0
"$PYTHON" "$ROOT/tools/drill/flinc-drill" --conf "$CONF" --rounds "$ROUNDS" --target alternate \
        --job "$ROOT/examples/streaming-wordcount.yaml" --output "$DIR/drill" \
        > "$DIR/drill.out" 2> "$DIR/drill.err" || drill_rc=$?
tail -n 1 "$DIR/drill.out" > "$DIR/drill.json" || true
if [ "$drill_rc" -ne 0 ]; then
        sed '$d' "$DIR/drill.out" >&2 || true
        tail -n 20 "$DIR/drill.err" >&2 || true
        [ "$drill_rc" -ne 3 ] || FAIL_RC=3
        fail "flinc-drill exited $drill_rc (the full log: $DIR/drill.err, its JSON: $DIR/drill.json)."
fi

# (7) what there is to see
find_leader || true
echo
echo "Web UI (either coordinator; a standby shows the leader's data):"
for p in "${WEB_PORTS[@]}"; do
        echo "  http://localhost:$p/"
done
echo
echo "Drill ($ROUNDS rounds, log $DIR/drill.err, JSON $DIR/drill.json):"
sed '$d' "$DIR/drill.out"
echo
echo "Streaming word count: JobID $JID, RUNNING; committed counts in $DIR/wordcount/part-*:"
"$PYTHON" - "$DIR/wordcount" << 'PY'
import pathlib, sys
best = {}
for f in sorted(pathlib.Path(sys.argv[1]).glob("part-*")):
    for line in f.read_text(errors="replace").splitlines():
        word, _, n = line.rpartition(" ")
        if word and n.isdigit():
            best[word] = max(best.get(word, 0), int(n))
top = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
print("  " + (", ".join(f"{w} {n}" for w, n in top) if top else
              "(nothing committed yet: the first checkpoint commits)")
      + (f"  ({len(best)} words so far)" if best else ""))
PY
echo
echo "Try: $FLINC --configDir $CONF list"
echo "Stop everything: $0 stop${DIR:+ --dir $DIR}"
