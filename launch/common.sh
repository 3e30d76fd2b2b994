# Shared helpers for the launch/ scripts; sourced, never run directly.
# Every gcloud call goes through `run`, so DRY_RUN=1 (or --dry-run) prints the exact
# command lines (shell-quoted, one per line, on stdout) and calls nothing.
set -euo pipefail

LAUNCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$LAUNCH_DIR/.." && pwd)

: "${DRY_RUN:=0}"
: "${ZONE:=us-central2-b}"
: "${PROJECT:=}"
: "${TPU_NAME:=}"
# Where the code lives on each worker, relative to the remote home directory; left unquoted
# in remote commands so that `~` expands there, hence the strict character check below.
: "${REMOTE_DIR:=xtreme_jax}"
: "${LOG_DIR:=xtreme_jax_logs}"
: "${PYTHON:=python3}"
: "${POLL_S:=30}"

die() { echo "error: $*" >&2; exit 2; }
info() { echo "[$(basename "$0")] $*" >&2; }

# Same rules as Python's shlex.quote, so a printed line can be pasted back into a shell
# (and tests can shlex.split it).
q() {
  local s=$1
  if [[ -z $s ]]; then printf "''"
  elif [[ $s =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then printf '%s' "$s"
  else printf "'%s'" "${s//\'/\'\\\'\'}"
  fi
}

qjoin() { local sep="" a; for a in "$@"; do printf '%s' "$sep"; q "$a"; sep=" "; done; }

run() {
  if [[ $DRY_RUN == 1 ]]; then qjoin "$@"; echo; else "$@"; fi
}

usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p;}' "$0"; }

# parse_flags SPEC... -- "$@"
#   "--flag=VAR"  takes a value (--flag v or --flag=v) into VAR
#   "--flag?VAR"  is a switch that sets VAR=1
# Arguments after a bare "--" are collected in EXTRA. --dry-run and --help are always accepted.
parse_flags() {
  local -a specs=()
  while [[ $1 != -- ]]; do specs+=("$1"); shift; done
  shift
  EXTRA=()
  while (($#)); do
    local arg=$1 key val="" has_val=0 spec matched=0
    if [[ $arg == -- ]]; then shift; EXTRA=("$@"); break; fi
    [[ $arg == --* ]] || die "unexpected argument '$arg' (program arguments go after a bare --; see $0 --help)"
    key=${arg%%=*}
    if [[ $arg == *=* ]]; then val=${arg#*=}; has_val=1; fi
    for spec in "${specs[@]}" "--dry-run?DRY_RUN" "--help?SHOW_HELP"; do
      if [[ $spec == "$key="* ]]; then
        if ((!has_val)); then
          (($# >= 2)) || die "$key needs a value"
          val=$2; shift
        fi
        printf -v "${spec#*=}" '%s' "$val"; matched=1; break
      elif [[ $spec == "$key?"* ]]; then
        ((!has_val)) || die "$key is a switch and takes no value"
        printf -v "${spec#*\?}" '%s' 1; matched=1; break
      fi
    done
    ((matched)) || die "unknown flag $key (see $0 --help)"
    shift
  done
  if [[ ${SHOW_HELP:-0} == 1 ]]; then usage; exit 0; fi
  export DRY_RUN
}

# require VAR FLAG WHAT: a clear message naming both the flag and the env var.
require() {
  [[ -n ${!1:-} ]] || die "missing $2 (or env $1): $3"
}

check_safe() {  # NAME VALUE: values spliced unquoted into remote shell commands
  [[ $2 =~ ^[A-Za-z0-9_./~-]+$ ]] || die "$1='$2' may only hold letters, digits and _ . / ~ -"
}

# Flags every gcloud tpus command takes; sets the SCOPE array.
scope() {
  require TPU_NAME --name "the TPU VM (or queued resource) name"
  require ZONE --zone "the zone, e.g. us-central2-b"
  SCOPE=(--zone="$ZONE")
  if [[ -n $PROJECT ]]; then SCOPE+=(--project="$PROJECT"); fi
  check_safe REMOTE_DIR "$REMOTE_DIR"
  check_safe LOG_DIR "$LOG_DIR"
}

# tpu_ssh WORKER COMMAND: the same shell command on one worker, or on all with WORKER=all.
tpu_ssh() {
  run gcloud compute tpus tpu-vm ssh "$TPU_NAME" "${SCOPE[@]}" --worker="$1" --command="$2"
}

# wait_ready QUEUED: block until the TPU VM is READY (or the queued resource ACTIVE).
wait_ready() {
  local -a cmd
  if [[ $1 == 1 ]]; then
    cmd=(gcloud compute tpus queued-resources describe "$TPU_NAME" "${SCOPE[@]}" "--format=value(state.state)")
  else
    cmd=(gcloud compute tpus tpu-vm describe "$TPU_NAME" "${SCOPE[@]}" "--format=value(state)")
  fi
  if [[ $DRY_RUN == 1 ]]; then run "${cmd[@]}"; return; fi
  local state
  while true; do
    state=$("${cmd[@]}")
    case $state in
      READY|ACTIVE) info "$TPU_NAME is $state"; return ;;
      FAILED|SUSPENDED|SUSPENDING|DELETING|TERMINATED|PREEMPTED)
        die "$TPU_NAME is $state; delete it (launch/delete.sh) and create again" ;;
    esac
    info "$TPU_NAME is ${state:-not there yet}; checking again in ${POLL_S}s"
    sleep "$POLL_S"
  done
}
