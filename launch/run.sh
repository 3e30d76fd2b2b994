#!/usr/bin/env bash
# Run one xtreme_jax command on all workers of a TPU VM, with a gs:// workdir.
#
# usage: launch/run.sh --name NAME --workdir gs://BUCKET/RUN [--run RUN] [--module M]
#                      [--env 'K=V ...'] [--foreground | --no-follow] [--dry-run] -- PROGRAM_ARGS...
# e.g.   launch/run.sh --name my-tpu --workdir gs://my-bucket/xnli-mnli -- \
#          --config=configs/stilts.py:intermediate=mnli,target=xnli,model=large
#
#   --workdir     WORKDIR  required, gs:// (every host must see the same checkpoints)
#   --run         RUN      log name on the workers, default: last part of the workdir
#   --module      MODULE   default xtreme_jax.main (xtreme_jax.evaluate for evaluation)
#   --env         RUN_ENV  space-separated K=V pairs set for the program
#   --foreground           stay attached until the program ends (output of all workers);
#                          an ssh drop then ends the run, so the default is detached
#   --no-follow            detach without streaming worker 0's log afterwards
#
# Detached runs write ~/xtreme_jax_logs/RUN.log and RUN.pid on every worker; follow them
# with launch/logs.sh and stop them with launch/stop.sh (SIGTERM: the program saves a
# checkpoint first). The same command on every worker is what multi-host JAX expects:
# each process calls jax.distributed.initialize(), which finds its peers on a TPU VM.

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
: "${WORKDIR:=}" "${RUN:=}" "${MODULE:=xtreme_jax.main}" "${RUN_ENV:=}"
: "${FOREGROUND:=0}" "${NO_FOLLOW:=0}"
parse_flags --name=TPU_NAME --zone=ZONE --project=PROJECT --workdir=WORKDIR --run=RUN \
  --module=MODULE --env=RUN_ENV "--foreground?FOREGROUND" "--no-follow?NO_FOLLOW" -- "$@"
scope
require WORKDIR --workdir "a gs://bucket/path for checkpoints, metrics and results"
[[ $WORKDIR == gs://?* ]] || die "--workdir must be a gs:// path, got '$WORKDIR': on a pod every host reads and writes the same checkpoints"
((${#EXTRA[@]} > 0)) || die "no program arguments: add them after --, e.g. -- --config=configs/stilts.py:intermediate=mnli,target=xnli"
for a in "${EXTRA[@]}"; do
  [[ $a != --workdir* ]] || die "give the workdir with run.sh --workdir, not after --"
done
RUN=${RUN:-$(basename "$WORKDIR")}
check_safe RUN "$RUN"
log="~/$LOG_DIR/$RUN.log"

program="$(q "$PYTHON") -m $(q "$MODULE") $(qjoin "${EXTRA[@]}") $(q "--workdir=$WORKDIR")"
if [[ -n $RUN_ENV ]]; then
  read -ra pairs <<< "$RUN_ENV"
  for kv in "${pairs[@]}"; do [[ $kv =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env: '$kv' is not K=V"; done
  program="env $(qjoin "${pairs[@]}") $program"
fi

if [[ $FOREGROUND == 1 ]]; then
  tpu_ssh all "set -eo pipefail; cd ~/$REMOTE_DIR; mkdir -p ~/$LOG_DIR; $program 2>&1 | tee $log"
else
  # setsid + nohup: the program outlives the ssh session; its pid is also its process
  # group id, which stop.sh signals.
  tpu_ssh all "set -e; cd ~/$REMOTE_DIR; mkdir -p ~/$LOG_DIR; \
setsid nohup $program > $log 2>&1 < /dev/null & echo \$! > ~/$LOG_DIR/$RUN.pid"
  info "started '$RUN' on all workers of $TPU_NAME; logs: launch/logs.sh --name $TPU_NAME --run $RUN"
  if [[ $NO_FOLLOW != 1 ]]; then
    exec "$LAUNCH_DIR/logs.sh" --name "$TPU_NAME" --zone "$ZONE" ${PROJECT:+--project "$PROJECT"} --run "$RUN"
  fi
fi
