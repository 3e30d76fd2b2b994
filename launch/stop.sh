#!/usr/bin/env bash
# Stop a detached run on all workers with SIGTERM (the program checkpoints, then exits;
# a later launch/run.sh with the same --workdir resumes).
#
# usage: launch/stop.sh --name NAME --run RUN [--signal TERM|KILL] [--dry-run]

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
: "${RUN:=}" "${SIGNAL:=TERM}"
parse_flags --name=TPU_NAME --zone=ZONE --project=PROJECT --run=RUN --signal=SIGNAL -- "$@"
((${#EXTRA[@]} == 0)) || die "stop.sh takes no arguments after --"
scope
require RUN --run "the run name given to (or derived by) launch/run.sh"
check_safe RUN "$RUN"
[[ $SIGNAL =~ ^[A-Z0-9]+$ ]] || die "--signal must be a signal name such as TERM, got '$SIGNAL'"

# Negative pid: the whole process group started by setsid in run.sh.
tpu_ssh all "kill -$SIGNAL -- -\$(cat ~/$LOG_DIR/$RUN.pid) 2>/dev/null \
|| echo \"$RUN is not running on \$(hostname)\""
