#!/usr/bin/env bash
# Starts or stops ZooKeeper servers of the quorum in conf/zoo.cfg on this host (Debian's
# zookeeper jar; the counterpart of Flink's zookeeper.sh). `start` starts every server
# whose `server.N=host:peer:election` line names this host, `start N` server N whatever
# its host (start-zookeeper-quorum.sh runs `start N` on each server's host); without
# server lines it starts one standalone server. Before a start, N goes into
# <dataDir>/myid. Several servers of one zoo.cfg on one host (a local test quorum) each
# get <dataDir>/server.N as their data dir and a config written there, and need their
# own client port at the end of their server line: server.1=127.0.0.1:2888:3888;2181.
# `stop` stops the newest server started on this host, `stop-all` all of them (by the
# pids in $FLINC_PID_DIR/flinc-<user>-zookeeper.pid; see flinc-daemon.sh).
#
# Environment: FLINC_ZK_JVM_OPTS (default "-Xms64m -Xmx512m"), FLINC_ZK_CLASSPATH,
# JAVA_HOME; the log is flinc-<user>-zookeeper-<n>-<host>.log in the log dir.
set -euo pipefail

USAGE="Usage: zookeeper.sh ((start|start-foreground) [peer-id])|stop|stop-all"

usage_error() {
        echo "$1" >&2
        echo "$USAGE" >&2
        exit 2
}

[ $# -ge 1 ] || usage_error "Missing argument."
STARTSTOP=$1
shift

# shellcheck source=config.sh
. "$(dirname "$(readlink -f "$0")")/config.sh"

ZOO_CFG="$FLINC_CONF_DIR/zoo.cfg"

case "$STARTSTOP" in
stop | stop-all)
        [ $# -eq 0 ] || usage_error "Unexpected argument '$1'."
        exec "$FLINC_BIN_DIR/flinc-daemon.sh" "$STARTSTOP" zookeeper
        ;;
start | start-foreground) ;;
*)
        usage_error "Unexpected argument '$STARTSTOP'."
        ;;
esac

[ $# -le 1 ] || usage_error "Unexpected argument '$2'."
PEER_ID=${1:-}
if [ -n "$PEER_ID" ] && ! [[ $PEER_ID =~ ^[0-9]+$ && $PEER_ID -ge 1 && $PEER_ID -le 255 ]]; then
        usage_error "peer-id '$PEER_ID' is not a server number (1..255)."
fi
[ -f "$ZOO_CFG" ] || flinc_die "No ZooKeeper configuration: $ZOO_CFG is missing."

# Read zoo.cfg: DATA_DIR, and SERVER_IDS / SERVER_HOSTS / SERVER_LINES of its server lines.
DATA_DIR=""
SERVER_IDS=()
SERVER_HOSTS=()
SERVER_SPECS=()
lineno=0
while IFS= read -r line || [ -n "$line" ]; do
        lineno=$((lineno + 1))
        line=$(flinc_strip_line "$line")
        [ -n "$line" ] || continue
        key=${line%%=*}
        value=${line#*=}
        key=$(flinc_strip_line "$key")
        value=$(flinc_strip_line "$value")
        case "$key" in
        dataDir) DATA_DIR=$value ;;
        server.*)
                id=${key#server.}
                [[ $id =~ ^[0-9]+$ ]] || flinc_die "$ZOO_CFG:$lineno: '$key' is not server.<number>"
                # host:peer:election[:role][;[clientAddress:]clientPort]; IPv6 in brackets
                if [[ $value =~ ^\[([^]]+)\]: ]] || [[ $value =~ ^([^:;]+): ]]; then
                        SERVER_IDS+=("$id")
                        SERVER_HOSTS+=("${BASH_REMATCH[1]}")
                        SERVER_SPECS+=("$value")
                else
                        flinc_die "$ZOO_CFG:$lineno: '$value' is not host:peerPort:electionPort"
                fi
                ;;
        esac
done < "$ZOO_CFG"
[ -n "$DATA_DIR" ] || flinc_die "$ZOO_CFG: dataDir is not set."

# Servers of zoo.cfg on this host.
LOCAL=()
for i in "${!SERVER_IDS[@]}"; do
        ! flinc_is_local "${SERVER_HOSTS[$i]}" || LOCAL+=("$i")
done

# start_server INDEX: writes myid (and a config of its own when it shares this host) and
# hands the server to flinc-daemon.sh. INDEX -1: the standalone server.
start_server() {
        local i=$1 cfg=$ZOO_CFG dir=$DATA_DIR id
        if [ "$i" -ge 0 ]; then
                id=${SERVER_IDS[$i]}
                if [ "${#LOCAL[@]}" -gt 1 ] && flinc_is_local "${SERVER_HOSTS[$i]}"; then
                        [[ ${SERVER_SPECS[$i]} == *";"* ]] ||
                                flinc_die "$ZOO_CFG: server.$id shares this host with other servers and needs its own client port: server.$id=${SERVER_SPECS[$i]};<clientPort>"
                        dir="$DATA_DIR/server.$id"
                        cfg="$dir/zoo.cfg"
                        mkdir -p "$dir"
                        # The same config, with this server's data dir; its client port
                        # comes from its server line.
                        grep -v -E '^[[:space:]]*(dataDir|clientPort|clientPortAddress)[[:space:]]*=' "$ZOO_CFG" > "$cfg.tmp" || true
                        echo "dataDir=$dir" >> "$cfg.tmp"
                        mv "$cfg.tmp" "$cfg"
                fi
                mkdir -p "$dir"
                echo "$id" > "$dir/myid"
        else
                mkdir -p "$dir"
        fi
        "$FLINC_BIN_DIR/flinc-daemon.sh" "$STARTSTOP" zookeeper "$cfg"
}

if [ -n "$PEER_ID" ]; then
        found=-1
        for i in "${!SERVER_IDS[@]}"; do
                [ "${SERVER_IDS[$i]}" != "$PEER_ID" ] || found=$i
        done
        [ "$found" -ge 0 ] || flinc_die "$ZOO_CFG has no server.$PEER_ID line."
        start_server "$found"
elif [ "${#SERVER_IDS[@]}" -eq 0 ]; then
        start_server -1
elif [ "${#LOCAL[@]}" -eq 0 ]; then
        flinc_die "No server of $ZOO_CFG runs on this host ($FLINC_HOSTNAME); start them on their hosts with start-zookeeper-quorum.sh."
else
        if [ "$STARTSTOP" = start-foreground ] && [ "${#LOCAL[@]}" -gt 1 ]; then
                flinc_die "start-foreground starts one server: give its peer-id."
        fi
        for i in "${LOCAL[@]}"; do
                start_server "$i"
        done
fi
