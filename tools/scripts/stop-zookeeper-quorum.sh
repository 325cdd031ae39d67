#!/usr/bin/env bash
# Stops the ZooKeeper quorum of conf/zoo.cfg, as Flink's stop-zookeeper-quorum.sh:
# `zookeeper.sh stop` on the host of each `server.N=host:...` line (directly for this
# machine, else through ssh or FLINC_SSH_CMD); without server lines, here.
set -euo pipefail

if [ $# -gt 0 ]; then
        echo "Unexpected argument '$1'." >&2
        echo "Usage: stop-zookeeper-quorum.sh" >&2
        exit 2
fi

# shellcheck source=config.sh
. "$(dirname "$(readlink -f "$0")")/config.sh"

flinc_read_zk_servers
status=0
if [ "${#ZK_IDS[@]}" -eq 0 ]; then
        "$FLINC_BIN_DIR/zookeeper.sh" stop || status=1
fi
for i in "${!ZK_IDS[@]}"; do
        flinc_on_host "${ZK_HOSTS[$i]}" zookeeper.sh stop || status=1
done
exit "$status"
