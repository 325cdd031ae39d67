#!/usr/bin/env bash
# Starts or stops a coordinator (flinc-coordinator; Flink: the job manager) on this host,
# as Flink's jobmanager.sh: `start [host] [webui-port]` passes --host and --webui-port
# (start-cluster.sh gives both from each conf/masters line), extra `-D key=value`
# arguments go to the coordinator; `stop` stops the newest coordinator of this host,
# `stop-all` all of them. Pid and log files: see flinc-daemon.sh.
set -euo pipefail

USAGE="Usage: jobmanager.sh ((start|start-foreground) [host] [webui-port] [-D key=value ...])|stop|stop-all"

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
        HOST=""
        WEBUIPORT=""
        if [ $# -ge 1 ] && [ "$1" != "-D" ] && [[ $1 != -D* ]]; then
                HOST=$1
                shift
                if [ $# -ge 1 ] && [ "$1" != "-D" ] && [[ $1 != -D* ]]; then
                        WEBUIPORT=$1
                        shift
                fi
        fi
        if [ -n "$WEBUIPORT" ] && ! [[ $WEBUIPORT =~ ^[0-9]+$ && $WEBUIPORT -le 65535 ]]; then
                usage_error "webui-port '$WEBUIPORT' is not a port number (0..65535)."
        fi
        args=(--configDir "$FLINC_CONF_DIR")
        [ -z "$HOST" ] || args+=(--host "$HOST")
        [ -z "$WEBUIPORT" ] || args+=(--webui-port "$WEBUIPORT")
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
        exec "$FLINC_BIN_DIR/flinc-daemon.sh" "$STARTSTOP" coordinator "${args[@]}"
        ;;
stop | stop-all)
        [ $# -eq 0 ] || usage_error "Unexpected argument '$1'."
        exec "$FLINC_BIN_DIR/flinc-daemon.sh" "$STARTSTOP" coordinator
        ;;
*)
        usage_error "Unexpected argument '$STARTSTOP'."
        ;;
esac
