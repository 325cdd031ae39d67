#!/usr/bin/env bash
# Shared by every script in this folder (sourced, never run): where flinc lives, where its
# configuration, pid files and logs go, reading keys from flinc-conf.yaml, conf/masters and
# conf/workers, and running a command on a cluster host (directly when the host is this
# one, else through ssh or the command in FLINC_SSH_CMD). Flink's bin/config.sh plays the
# same part.
#
# Layouts. The scripts work from two places:
#   - an installed distribution (meson install): <home>/bin holds the scripts and the
#     programs, <home>/conf the configuration, <home>/log the logs;
#   - the source tree after a build: tools/scripts/ holds the scripts, the programs are in
#     the build directory ($FLINC_BUILD_DIR, else <source>/build), the configuration in
#     <source>/conf and the logs in <source>/log.
#
# Environment (each overrides what flinc-conf.yaml says):
#   FLINC_CONF_DIR      the conf dir (Flink: FLINK_CONF_DIR)
#   FLINC_BUILD_DIR     the build dir, from the source tree only
#   FLINC_PID_DIR       pid files (key env.pid.dir, default /tmp)
#   FLINC_LOG_DIR       log files (key env.log.dir, default <home>/log)
#   FLINC_SSH_OPTS      options for the remote command (key env.ssh.opts)
#   FLINC_SSH_CMD       the remote command itself, default "ssh". It is called as
#                       `$FLINC_SSH_CMD $FLINC_SSH_OPTS <host> '<command line>'` with stdin
#                       from /dev/null, exactly as ssh would be, so any wrapper that runs a
#                       shell command line "on" a host fits: e.g. a script running
#                       `ip netns exec <namespace of host> bash -c "$2"` for hosts that are
#                       network namespaces (tests/drills/test_multihost.py).
#   FLINC_IDENT_STRING  the <user> in pid and log file names (default $USER)
#   FLINC_LOG_MAX       rotated logs kept per daemon (default 5, as Flink's env.log.max)
#   FLINC_STOP_TIMEOUT  seconds `stop` waits after SIGTERM before SIGKILL (default 15)

# The variables set here are read by the scripts that source this file.
# shellcheck disable=SC2034

# This file sits next to the scripts in both layouts; symlinks resolved.
FLINC_BIN_DIR=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")

if [ -x "$FLINC_BIN_DIR/flinc-coordinator" ] || [ ! -f "$FLINC_BIN_DIR/../../meson.build" ]; then
        # An installed distribution: everything next to the scripts.
        FLINC_HOME=$(cd "$FLINC_BIN_DIR/.." && pwd -P)
        FLINC_COORDINATOR_BIN="$FLINC_BIN_DIR/flinc-coordinator"
        FLINC_WORKER_BIN="$FLINC_BIN_DIR/flinc-worker"
        FLINC_CLI_BIN="$FLINC_BIN_DIR/flinc"
else
        # The source tree: tools/scripts/ -> the programs in the build directory.
        FLINC_HOME=$(cd "$FLINC_BIN_DIR/../.." && pwd -P)
        FLINC_BUILD_DIR=${FLINC_BUILD_DIR:-$FLINC_HOME/build}
        FLINC_COORDINATOR_BIN="$FLINC_BUILD_DIR/coordinator/flinc-coordinator"
        FLINC_WORKER_BIN="$FLINC_BUILD_DIR/worker/flinc-worker"
        FLINC_CLI_BIN="$FLINC_BUILD_DIR/tools/cli/flinc"
fi

FLINC_CONF_DIR=${FLINC_CONF_DIR:-$FLINC_HOME/conf}
FLINC_CONF_FILE="$FLINC_CONF_DIR/flinc-conf.yaml"

# flinc_read_conf KEY DEFAULT: the value of KEY in flinc-conf.yaml (the last line that sets
# it, as the daemons would refuse a duplicate anyway), without quotes or a trailing
# comment; DEFAULT when the key or the file is missing or the value is empty. Flat
# `key: value` lines only, as the daemons read them.
flinc_read_conf() {
        local key=$1 default=$2 value=""
        if [ -f "$FLINC_CONF_FILE" ]; then
                value=$(awk -v key="$key" '
                        {
                                line = $0
                                sub(/^[ \t]+/, "", line)
                                if (substr(line, 1, length(key)) != key) next
                                rest = substr(line, length(key) + 1)
                                if (rest !~ /^[ \t]*:/) next
                                sub(/^[ \t]*:[ \t]*/, "", rest)
                                if (rest ~ /^"/) {
                                        rest = substr(rest, 2); sub(/".*$/, "", rest)
                                } else if (rest ~ /^'\''/) {
                                        rest = substr(rest, 2); sub(/'\''.*$/, "", rest)
                                } else {
                                        sub(/[ \t]+#.*$/, "", rest)
                                        sub(/[ \t]+$/, "", rest)
                                }
                                value = rest
                        }
                        END { printf "%s", value }' "$FLINC_CONF_FILE")
        fi
        if [ -n "$value" ]; then
                printf '%s' "$value"
        else
                printf '%s' "$default"
        fi
}

FLINC_IDENT_STRING=${FLINC_IDENT_STRING:-${USER:-$(id -un)}}
FLINC_HOSTNAME=${HOSTNAME:-$(hostname)}
FLINC_PID_DIR=${FLINC_PID_DIR:-$(flinc_read_conf env.pid.dir /tmp)}
FLINC_LOG_DIR=${FLINC_LOG_DIR:-$(flinc_read_conf env.log.dir "$FLINC_HOME/log")}
FLINC_SSH_OPTS=${FLINC_SSH_OPTS:-$(flinc_read_conf env.ssh.opts "")}
FLINC_SSH_CMD=${FLINC_SSH_CMD:-}
FLINC_LOG_MAX=${FLINC_LOG_MAX:-5}
FLINC_STOP_TIMEOUT=${FLINC_STOP_TIMEOUT:-15}
FLINC_HIGH_AVAILABILITY=$(flinc_read_conf high-availability NONE)

flinc_die() {
        echo "$*" >&2
        exit 1
}

# flinc_strip_line LINE: the line without a # comment and surrounding blanks.
flinc_strip_line() {
        local line=${1%%#*}
        line=${line#"${line%%[![:space:]]*}"}
        line=${line%"${line##*[![:space:]]}"}
        printf '%s' "$line"
}

# flinc_read_masters: MASTERS and WEBUIPORTS from conf/masters (`host:webport` lines, a
# missing port is 8081, IPv6 in brackets: [::1]:8081).
flinc_read_masters() {
        local file="$FLINC_CONF_DIR/masters" line host port
        [ -f "$file" ] || flinc_die "No masters file. Please specify masters in '$file'."
        MASTERS=()
        WEBUIPORTS=()
        while IFS= read -r line || [ -n "$line" ]; do
                line=$(flinc_strip_line "$line")
                [ -n "$line" ] || continue
                if [[ $line =~ ^\[([^]]+)\](:([0-9]+))?$ ]]; then
                        host=${BASH_REMATCH[1]}
                        port=${BASH_REMATCH[3]}
                elif [[ $line =~ ^([^:]+)(:([0-9]+))?$ ]]; then
                        host=${BASH_REMATCH[1]}
                        port=${BASH_REMATCH[3]}
                else
                        flinc_die "$file: '$line' is not host:webport"
                fi
                MASTERS+=("$host")
                WEBUIPORTS+=("${port:-8081}")
        done < "$file"
        [ "${#MASTERS[@]}" -gt 0 ] || flinc_die "$file lists no masters."
}

# flinc_read_workers: WORKERS from conf/workers (Flink's old conf/slaves when missing),
# one host per line; a host listed twice runs two workers.
flinc_read_workers() {
        local file="$FLINC_CONF_DIR/workers" line
        if [ ! -f "$file" ] && [ -f "$FLINC_CONF_DIR/slaves" ]; then
                echo "[WARNING] reading $FLINC_CONF_DIR/slaves: Flink's old name of conf/workers."
                file="$FLINC_CONF_DIR/slaves"
        fi
        [ -f "$file" ] || flinc_die "No workers file. Please specify workers in '$file'."
        WORKERS=()
        while IFS= read -r line || [ -n "$line" ]; do
                line=$(flinc_strip_line "$line")
                [ -n "$line" ] || continue
                WORKERS+=("$line")
        done < "$file"
}

# flinc_is_local HOST: whether HOST names this machine (localhost, a loopback address, or
# this host's name, short or fully qualified). Such hosts are reached without ssh.
flinc_is_local() {
        local h=$1
        case "$h" in
        localhost | localhost.localdomain | ::1 | 127.*) return 0 ;;
        esac
        [ "$h" = "$FLINC_HOSTNAME" ] && return 0
        [ "$h" = "$(hostname -s 2>/dev/null || true)" ] && return 0
        [ "$h" = "$(hostname -f 2>/dev/null || true)" ] && return 0
        return 1
}

# flinc_on_host HOST SCRIPT ARGS...: runs "$FLINC_BIN_DIR/SCRIPT ARGS..." on HOST: directly
# when HOST is this machine, else through $FLINC_SSH_CMD (default ssh) with
# $FLINC_SSH_OPTS, passing FLINC_CONF_DIR along (the same path must exist there, as with
# Flink, whose directory layout is the same on every host).
flinc_on_host() {
        local host=$1 script=$2
        shift 2
        if flinc_is_local "$host"; then
                "$FLINC_BIN_DIR/$script" "$@"
                return
        fi
        local remote arg
        remote="FLINC_CONF_DIR=$(printf '%q' "$FLINC_CONF_DIR")"
        [ -z "${FLINC_BUILD_DIR:-}" ] || remote+=" FLINC_BUILD_DIR=$(printf '%q' "$FLINC_BUILD_DIR")"
        remote+=" $(printf '%q' "$FLINC_BIN_DIR/$script")"
        for arg in "$@"; do
                remote+=" $(printf '%q' "$arg")"
        done
        local -a cmd opts=()
        if [ -n "$FLINC_SSH_CMD" ]; then
                read -r -a cmd <<< "$FLINC_SSH_CMD"
        else
                cmd=(ssh)
        fi
        [ -z "$FLINC_SSH_OPTS" ] || read -r -a opts <<< "$FLINC_SSH_OPTS"
        "${cmd[@]}" "${opts[@]}" "$host" "$remote" < /dev/null
}

# flinc_takes_log_file PROGRAM: whether PROGRAM --help offers --log-file (flinc-worker
# does; a daemon without it logs to stderr, which then goes to the .log file).
flinc_takes_log_file() {
        local help
        help=$("$1" --help 2>&1 || true)
        [[ $help == *--log-file* ]]
}

# The java to run ZooKeeper with: $JAVA_HOME/bin/java, else java on the PATH.
flinc_java() {
        if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then
                printf '%s' "$JAVA_HOME/bin/java"
        else
                printf '%s' "java"
        fi
}

# The ZooKeeper server's classpath: $FLINC_ZK_CLASSPATH, else Debian's zookeeper jar
# (its manifest names the jars it needs) with slf4j-simple as the logging binding, which
# writes to the file named by -Dorg.slf4j.simpleLogger.logFile.
flinc_zk_classpath() {
        if [ -n "${FLINC_ZK_CLASSPATH:-}" ]; then
                printf '%s' "$FLINC_ZK_CLASSPATH"
                return
        fi
        local jar=/usr/share/java/zookeeper.jar binding=/usr/share/java/slf4j-simple.jar
        [ -f "$jar" ] || flinc_die "ZooKeeper jar $jar not found: install Debian's zookeeper package or set FLINC_ZK_CLASSPATH."
        if [ -f "$binding" ]; then
                printf '%s' "$jar:$binding"
        else
                printf '%s' "$jar"
        fi
}

# flinc_read_zk_servers: ZK_IDS and ZK_HOSTS of the `server.N=host:...` lines of
# conf/zoo.cfg (empty for a standalone server).
flinc_read_zk_servers() {
        local file="$FLINC_CONF_DIR/zoo.cfg" line key value
        [ -f "$file" ] || flinc_die "No ZooKeeper configuration: $file is missing."
        ZK_IDS=()
        ZK_HOSTS=()
        while IFS= read -r line || [ -n "$line" ]; do
                line=$(flinc_strip_line "$line")
                key=$(flinc_strip_line "${line%%=*}")
                value=$(flinc_strip_line "${line#*=}")
                [[ $key =~ ^server\.([0-9]+)$ ]] || continue
                ZK_IDS+=("${BASH_REMATCH[1]}")
                if [[ $value =~ ^\[([^]]+)\]: ]] || [[ $value =~ ^([^:;]+): ]]; then
                        ZK_HOSTS+=("${BASH_REMATCH[1]}")
                else
                        flinc_die "$file: server.${ZK_IDS[-1]}: '$value' is not host:peerPort:electionPort"
                fi
        done < "$file"
}
