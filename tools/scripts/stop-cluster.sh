#!/usr/bin/env bash
# Stops a flinc cluster, as Flink's stop-cluster.sh: one worker per line of conf/workers,
# then one coordinator per line of conf/masters (with high-availability: zookeeper; else
# the one of this host), each on its host: directly for this machine, else through ssh
# or FLINC_SSH_CMD (see config.sh).
set -euo pipefail

if [ $# -gt 0 ]; then
        echo "Unexpected argument '$1'." >&2
        echo "Usage: stop-cluster.sh" >&2
        exit 2
fi

# shellcheck source=config.sh
. "$(dirname "$(readlink -f "$0")")/config.sh"

status=0
flinc_read_workers
for worker in "${WORKERS[@]}"; do
        flinc_on_host "$worker" taskmanager.sh stop || status=1
done

if [ "${FLINC_HIGH_AVAILABILITY,,}" = zookeeper ]; then
        flinc_read_masters
        for master in "${MASTERS[@]}"; do
                flinc_on_host "$master" jobmanager.sh stop || status=1
        done
else
        "$FLINC_BIN_DIR/jobmanager.sh" stop || status=1
fi
exit "$status"
