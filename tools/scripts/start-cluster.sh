#!/usr/bin/env bash
# Starts a flinc cluster, as Flink's start-cluster.sh: with high-availability: zookeeper
# one coordinator per line of conf/masters (`host:webport`, started with that host and
# web port), else one coordinator on this host; then one worker per line of conf/workers.
# Hosts that name this machine (localhost, 127.x, its host name) are started directly,
# others through ssh, or through the command in FLINC_SSH_CMD, with env.ssh.opts (see
# config.sh). The ZooKeeper quorum is not started here: start-zookeeper-quorum.sh.
set -euo pipefail

if [ $# -gt 0 ]; then
        echo "Unexpected argument '$1'." >&2
        echo "Usage: start-cluster.sh" >&2
        exit 2
fi

# shellcheck source=config.sh
. "$(dirname "$(readlink -f "$0")")/config.sh"

status=0
if [ "${FLINC_HIGH_AVAILABILITY,,}" = zookeeper ]; then
        flinc_read_masters
        echo "Starting HA cluster with ${#MASTERS[@]} masters."
        for i in "${!MASTERS[@]}"; do
                flinc_on_host "${MASTERS[$i]}" jobmanager.sh start "${MASTERS[$i]}" "${WEBUIPORTS[$i]}" || status=1
        done
else
        echo "Starting cluster."
        "$FLINC_BIN_DIR/jobmanager.sh" start || status=1
fi

flinc_read_workers
for worker in "${WORKERS[@]}"; do
        flinc_on_host "$worker" taskmanager.sh start || status=1
done
exit "$status"
