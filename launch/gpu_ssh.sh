#!/usr/bin/env bash
# Run one xtreme_jax command on several GPU hosts over plain ssh: one process per host,
# each driving all of its GPUs, NCCL between hosts.
#
# usage: launch/gpu_ssh.sh --hosts 'h1 h2 ...' --workdir DIR [--run RUN] [--port 12345]
#                          [--remote-dir PATH] [--env 'K=V ...'] [--dry-run] -- PROGRAM_ARGS...
#
#   --hosts       HOSTS       ssh destinations; the first one hosts the JAX coordinator
#   --workdir     WORKDIR     a path every host sees: gs://..., or a shared filesystem
#   --port        PORT        coordinator port on the first host, default 12345
#   --remote-dir  REMOTE_DIR  checkout with xtreme_jax installed (pip install -e '.[cuda]'),
#                             relative to the remote home, default xtreme_jax
#   --env         RUN_ENV     extra K=V pairs, e.g. 'NCCL_SOCKET_IFNAME=eth0 NCCL_DEBUG=WARN'
#
# Process i gets JAX_COORDINATOR_ADDRESS=<first host>:PORT, JAX_NUM_PROCESSES=<number of
# hosts> and JAX_PROCESS_ID=i, which xtreme_jax.main hands to jax.distributed.initialize().
# Logs: ~/xtreme_jax_logs/RUN.log on each host; stop with: ssh HOST 'kill -TERM -- -$(cat
# ~/xtreme_jax_logs/RUN.pid)' on every host. Under SLURM use launch/gpu_slurm.sbatch instead.

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
: "${HOSTS:=}" "${WORKDIR:=}" "${RUN:=}" "${PORT:=12345}" "${MODULE:=xtreme_jax.main}" "${RUN_ENV:=}"
parse_flags --hosts=HOSTS --workdir=WORKDIR --run=RUN --port=PORT --remote-dir=REMOTE_DIR \
  --module=MODULE --env=RUN_ENV -- "$@"
require HOSTS --hosts "ssh destinations, e.g. 'gpu-0 gpu-1'"
require WORKDIR --workdir "a path all hosts share (gs:// or a shared filesystem)"
((${#EXTRA[@]} > 0)) || die "no program arguments: add them after --, e.g. -- --config=configs/stilts.py:intermediate=mnli,target=xnli"
[[ $PORT =~ ^[0-9]+$ ]] || die "--port must be a number, got '$PORT'"
check_safe REMOTE_DIR "$REMOTE_DIR"
check_safe LOG_DIR "$LOG_DIR"
read -ra hosts <<< "$HOSTS"
RUN=${RUN:-$(basename "$WORKDIR")}
check_safe RUN "$RUN"

env_pairs=()
if [[ -n $RUN_ENV ]]; then read -ra env_pairs <<< "$RUN_ENV"; fi
for kv in "${env_pairs[@]}"; do [[ $kv =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env: '$kv' is not K=V"; done
coordinator=${hosts[0]#*@}  # user@host -> host

for i in "${!hosts[@]}"; do
  pairs=(JAX_COORDINATOR_ADDRESS="$coordinator:$PORT" JAX_NUM_PROCESSES=${#hosts[@]} JAX_PROCESS_ID="$i"
         "${env_pairs[@]}")
  program="env $(qjoin "${pairs[@]}") $(q "$PYTHON") -m $(q "$MODULE") $(qjoin "${EXTRA[@]}") \
$(q "--workdir=$WORKDIR")"
  run ssh "${hosts[$i]}" "set -e; cd ~/$REMOTE_DIR; mkdir -p ~/$LOG_DIR; \
setsid nohup $program > ~/$LOG_DIR/$RUN.log 2>&1 < /dev/null & echo \$! > ~/$LOG_DIR/$RUN.pid"
done
info "started '$RUN' on ${#hosts[@]} hosts; follow: ssh ${hosts[0]} tail -F ~/$LOG_DIR/$RUN.log"
