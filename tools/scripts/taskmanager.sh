#!/usr/bin/env bash
# Starts or stops a worker (flinc-worker; Flink: the task manager) on this host, as
# Flink's taskmanager.sh: extra `-D key=value` arguments go to the worker; `stop` stops
# the newest worker of this host, `stop-all` all of them. Several workers may run on one
# host (conf/workers lists a host once per worker). Pid and log files: see
# flinc-daemon.sh; the worker's stdout (the print sink) goes to its .out file, as a Flink
# task manager's does.
set -euo pipefail

USAGE="Usage: taskmanager.sh ((start|start-foreground) [-D key=value ...])|stop|stop-all"

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

case "$STARTSTOP" in
start | start-foreground)
        args=(--configDir "$FLINC_CONF_DIR")
        while [ $# -gt 0 ]; do
                case "$1" in
                -D)
                        [ $# -ge 2 ] || usage_error "-D needs key=value."
                        args+=(-D "$2")
                        shift 2
                        ;;
                -D*)
                        args+=(-D "${1#-D}")
                        shift
                        ;;
                *)
                        usage_error "Unexpected argument '$1'."
                        ;;
                esac
        done
        exec "$FLINC_BIN_DIR/flinc-daemon.sh" "$STARTSTOP" worker "${args[@]}"
        ;;
stop | stop-all)
        [ $# -eq 0 ] || usage_error "Unexpected argument '$1'."
        exec "$FLINC_BIN_DIR/flinc-daemon.sh" "$STARTSTOP" worker
        ;;
*)
        usage_error "Unexpected argument '$STARTSTOP'."
        ;;
esac
