#!/usr/bin/env bash
# Starts the ZooKeeper quorum of conf/zoo.cfg, as Flink's start-zookeeper-quorum.sh: for
# each `server.N=host:...` line, `zookeeper.sh start N` on that host (directly for this
# machine, else through ssh or FLINC_SSH_CMD, see config.sh); without server lines, one
# standalone server here.
set -euo pipefail

if [ $# -gt 0 ]; then
        echo "Unexpected argument '$1'." >&2
        echo "Usage: start-zookeeper-quorum.sh" >&2
        exit 2
fi

# shellcheck source=config.sh
. "$(dirname "$(readlink -f "$0")")/config.sh"

flinc_read_zk_servers
status=0
if [ "${#ZK_IDS[@]}" -eq 0 ]; then
        "$FLINC_BIN_DIR/zookeeper.sh" start || status=1
fi
for i in "${!ZK_IDS[@]}"; do
        flinc_on_host "${ZK_HOSTS[$i]}" zookeeper.sh start "${ZK_IDS[$i]}" || status=1
done
exit "$status"
