#!/usr/bin/env bash
# Stream the log of a detached run (launch/run.sh) from one worker, or all of them.
#
# usage: launch/logs.sh --name NAME --run RUN [--worker 0|N|all] [--dry-run]
#
#   --worker  WORKER  default 0 (process 0 logs the metrics); `all` prefixes each line with
#                     the worker's host name
# Ctrl-C stops the stream, not the run.

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
: "${RUN:=}" "${WORKER:=0}"
parse_flags --name=TPU_NAME --zone=ZONE --project=PROJECT --run=RUN --worker=WORKER -- "$@"
((${#EXTRA[@]} == 0)) || die "logs.sh takes no arguments after --"
scope
require RUN --run "the run name given to (or derived by) launch/run.sh"
check_safe RUN "$RUN"
[[ $WORKER == all || $WORKER =~ ^[0-9]+$ ]] || die "--worker must be a number or all, got '$WORKER'"

follow="tail -n +1 -F ~/$LOG_DIR/$RUN.log"
if [[ $WORKER == all ]]; then follow="$follow | sed -u \"s/^/\$(hostname): /\""; fi
tpu_ssh "$WORKER" "$follow"
