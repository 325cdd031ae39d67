#!/usr/bin/env bash
# Starts and stops flinc daemons on this host, as Flink's flink-daemon.sh does: several
# instances of one daemon may run on a host; their pids are the lines of one pid file,
# $FLINC_PID_DIR/flinc-<user>-<daemon>.pid, in start order. Instance <n> (the number of
# lines in the pid file when it started) logs to
#   $FLINC_LOG_DIR/flinc-<user>-<daemon>-<n>-<host>.log   (the daemon's log)
#   $FLINC_LOG_DIR/flinc-<user>-<daemon>-<n>-<host>.out   (its stdout and stderr)
# and older files of that name are rotated to .1 .. .$FLINC_LOG_MAX. `stop` stops the
# newest instance, `stop-all` every one; a pid that no longer runs this daemon (it died,
# or the pid was reused by another program) is dropped from the file with a message and
# never signalled. Daemons run detached in their own session, stdin from /dev/null.
#
# Daemons: coordinator (flinc-coordinator; Flink: standalonesession), worker
# (flinc-worker; Flink: taskexecutor), zookeeper (a ZooKeeper server, QuorumPeerMain,
# with a config file made by zookeeper.sh). Normally called by jobmanager.sh,
# taskmanager.sh and zookeeper.sh rather than by hand.
set -euo pipefail

USAGE="Usage: flinc-daemon.sh (start|start-foreground|stop|stop-all) (coordinator|worker|zookeeper) [args]"

if [ $# -lt 2 ]; then
        echo "$USAGE" >&2
        exit 2
fi
STARTSTOP=$1
DAEMON=$2
shift 2
ARGS=("$@")

# shellcheck source=config.sh
. "$(dirname "$(readlink -f "$0")")/config.sh"

case "$DAEMON" in
coordinator)
        PROGRAM=$FLINC_COORDINATOR_BIN
        MATCH=flinc-coordinator
        ;;
worker)
        PROGRAM=$FLINC_WORKER_BIN
        MATCH=flinc-worker
        ;;
zookeeper)
        PROGRAM=$(flinc_java)
        MATCH=org.apache.zookeeper.server.quorum.QuorumPeerMain
        ;;
*)
        echo "Unknown daemon '$DAEMON'. $USAGE" >&2
        exit 2
        ;;
esac
case "$STARTSTOP" in
start | start-foreground | stop | stop-all) ;;
*)
        echo "Unexpected argument '$STARTSTOP'. $USAGE" >&2
        exit 2
        ;;
esac

pid="$FLINC_PID_DIR/flinc-$FLINC_IDENT_STRING-$DAEMON.pid"
mkdir -p "$FLINC_PID_DIR"

# One script at a time per pid dir reads, numbers and writes the pid files (Flink locks
# the same way). Daemons are started with the lock's descriptor closed.
if command -v flock > /dev/null 2>&1; then
        exec 200< "$FLINC_PID_DIR"
        flock 200
fi

# Whether pid $1 is a running instance of this daemon: alive, not a zombie, and its
# command line names the program (so a pid reused by another program is never signalled).
is_running_daemon() {
        local p=$1 cmdline
        [[ $p =~ ^[0-9]+$ ]] || return 1
        kill -0 "$p" 2> /dev/null || return 1
        [ -r "/proc/$p/cmdline" ] || return 0 # no /proc: kill -0 is all we can tell
        cmdline=$(tr '\0' ' ' < "/proc/$p/cmdline" 2> /dev/null || true)
        [[ $cmdline == *"$MATCH"* ]]
}

# SIGTERM, then SIGKILL when the daemon is still running after $FLINC_STOP_TIMEOUT
# seconds (polled every 0.1 s).
stop_daemon() {
        local p=$1 tries
        kill -TERM "$p" 2> /dev/null || return 0
        tries=$((FLINC_STOP_TIMEOUT * 10))
        while [ "$tries" -gt 0 ] && is_running_daemon "$p"; do
                sleep 0.1
                tries=$((tries - 1))
        done
        if is_running_daemon "$p"; then
                echo "The $DAEMON daemon (pid: $p) did not stop within $FLINC_STOP_TIMEOUT seconds. Killing it."
                kill -KILL "$p" 2> /dev/null || true
        fi
}

rotate_log() {
        local log=$1 num=$FLINC_LOG_MAX prev
        if [ -f "$log" ] && [ "$num" -gt 0 ]; then
                while [ "$num" -gt 1 ]; do
                        prev=$((num - 1))
                        [ ! -f "$log.$prev" ] || mv "$log.$prev" "$log.$num"
                        num=$prev
                done
                mv "$log" "$log.$num"
        fi
}

# The live instances listed in the pid file.
count_running() {
        local n=0 p
        if [ -f "$pid" ]; then
                while IFS= read -r p || [ -n "$p" ]; do
                        ! is_running_daemon "$p" || n=$((n + 1))
                done < "$pid"
        fi
        echo "$n"
}

# The command line of the daemon, logging to $1 (the .log file; "" for the console).
daemon_command() {
        local log=$1
        CMD=()
        case "$DAEMON" in
        coordinator | worker)
                [ -x "$PROGRAM" ] || flinc_die "$PROGRAM not found: build flinc first (meson compile), or set FLINC_BUILD_DIR."
                CMD=("$PROGRAM" "${ARGS[@]}")
                if [ -n "$log" ] && flinc_takes_log_file "$PROGRAM"; then
                        CMD+=(--log-file "$log")
                fi
                ;;
        zookeeper)
                local -a jvm_opts
                read -r -a jvm_opts <<< "${FLINC_ZK_JVM_OPTS:--Xms64m -Xmx512m}"
                CMD=("$PROGRAM" "${jvm_opts[@]}" "-XX:ErrorFile=$FLINC_LOG_DIR/hs_err_zookeeper_%p.log"
                        -Dorg.slf4j.simpleLogger.showDateTime=true
                        "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd HH:mm:ss,SSS")
                [ -z "$log" ] || CMD+=("-Dorg.slf4j.simpleLogger.logFile=$log")
                CMD+=(-cp "$(flinc_zk_classpath)" "$MATCH" "${ARGS[@]}")
                ;;
        esac
}

case "$STARTSTOP" in
start)
        mkdir -p "$FLINC_LOG_DIR"
        # Instance number: lines in the pid file (Flink's rule; stale lines count too, so
        # a number is not reused until the file is cleaned by stop or stop-all).
        id=0
        [ ! -f "$pid" ] || id=$(wc -l < "$pid")
        prefix="$FLINC_LOG_DIR/flinc-$FLINC_IDENT_STRING-$DAEMON-$id-$FLINC_HOSTNAME"
        log="$prefix.log"
        out="$prefix.out"
        rotate_log "$log"
        rotate_log "$out"
        running=$(count_running)
        if [ "$running" -gt 0 ]; then
                echo "[INFO] $running instance(s) of $DAEMON are already running on $FLINC_HOSTNAME."
        fi
        daemon_command "$log"
        touch "$log" # there from the start, for tail -f, even before the daemon opens it
        echo "Starting $DAEMON daemon on host $FLINC_HOSTNAME."
        # Without job control a background child is not a process group leader, so setsid
        # makes its session without forking: $! is the daemon's own pid.
        if [ "$DAEMON" = coordinator ] && ! flinc_takes_log_file "$PROGRAM"; then
                # No --log-file: its log is what it writes to stderr.
                setsid "${CMD[@]}" > "$out" 2>> "$log" < /dev/null 200<&- &
        else
                setsid "${CMD[@]}" > "$out" 2>&1 < /dev/null 200<&- &
        fi
        mypid=$!
        if [[ $mypid =~ ^[0-9]+$ ]] && kill -0 "$mypid" 2> /dev/null; then
                echo "$mypid" >> "$pid"
        else
                echo "Error starting $DAEMON daemon." >&2
                exit 1
        fi
        ;;

start-foreground)
        # Flink's flink-console.sh: the daemon replaces this script (same pid, listed in
        # the pid file so that stop finds it), logging to the console.
        if [ -f "$pid" ] && [ "$(count_running)" -eq 0 ]; then
                rm -f "$pid"
        fi
        daemon_command ""
        echo "Starting $DAEMON as a console application on host $FLINC_HOSTNAME."
        echo "$$" >> "$pid"
        exec 200<&-
        exec "${CMD[@]}"
        ;;

stop)
        if [ ! -f "$pid" ]; then
                echo "No $DAEMON daemon to stop on host $FLINC_HOSTNAME."
                exit 0
        fi
        to_stop=$(tail -n 1 "$pid")
        if [ -z "$to_stop" ]; then
                rm -f "$pid"
                echo "No $DAEMON daemon to stop on host $FLINC_HOSTNAME."
                exit 0
        fi
        sed '$d' "$pid" > "$pid.tmp" # all but the last line
        if [ -s "$pid.tmp" ]; then
                mv "$pid.tmp" "$pid"
        else
                rm -f "$pid" "$pid.tmp" # the last one: clean up the pid file
        fi
        if is_running_daemon "$to_stop"; then
                echo "Stopping $DAEMON daemon (pid: $to_stop) on host $FLINC_HOSTNAME."
                stop_daemon "$to_stop"
        else
                echo "No $DAEMON daemon (pid: $to_stop) is running anymore on $FLINC_HOSTNAME."
        fi
        ;;

stop-all)
        if [ -f "$pid" ]; then
                mv "$pid" "$pid.tmp"
                while IFS= read -r to_stop || [ -n "$to_stop" ]; do
                        [ -n "$to_stop" ] || continue
                        if is_running_daemon "$to_stop"; then
                                echo "Stopping $DAEMON daemon (pid: $to_stop) on host $FLINC_HOSTNAME."
                                stop_daemon "$to_stop"
                        else
                                echo "Skipping $DAEMON daemon (pid: $to_stop), because it is not running anymore on $FLINC_HOSTNAME."
                        fi
                done < "$pid.tmp"
                rm -f "$pid.tmp"
        else
                echo "No $DAEMON daemon to stop on host $FLINC_HOSTNAME."
        fi
        ;;
esac
