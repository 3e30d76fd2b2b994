#!/usr/bin/env bash
# Create a Cloud TPU VM, or request one through a queued resource (--queued).
#
# usage: launch/create.sh --name NAME [--zone Z] [--project P] [--accelerator-type T]
#                         [--version V] [--spot] [--queued] [--no-wait] [--dry-run]
#
#   --name              TPU_NAME          TPU VM name (required; also the queued resource id)
#   --zone              ZONE              default us-central2-b
#   --project           PROJECT           default: gcloud's configured project
#   --accelerator-type  ACCELERATOR_TYPE  default v4-8 (v5litepod-16, v5p-32, v6e-8, ...)
#   --version           RUNTIME_VERSION   default tpu-ubuntu2204-base (v5e: v2-alpha-tpuv5-lite,
#                                         v5p: v2-alpha-tpuv5, v6e: v2-alpha-tpuv6e)
#   --spot              SPOT=1            Spot VMs: cheaper, may be preempted (runs resume)
#   --queued            QUEUED=1          wait in the queue for capacity instead of failing
#   --no-wait           NO_WAIT=1         return at once instead of waiting for READY / ACTIVE
#   --dry-run           DRY_RUN=1         print the gcloud commands, run nothing

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
: "${ACCELERATOR_TYPE:=v4-8}"
: "${RUNTIME_VERSION:=tpu-ubuntu2204-base}"
: "${SPOT:=0}" "${QUEUED:=0}" "${NO_WAIT:=0}"
parse_flags --name=TPU_NAME --zone=ZONE --project=PROJECT --accelerator-type=ACCELERATOR_TYPE \
  --version=RUNTIME_VERSION "--spot?SPOT" "--queued?QUEUED" "--no-wait?NO_WAIT" -- "$@"
((${#EXTRA[@]} == 0)) || die "create.sh takes no arguments after --"
scope
require ACCELERATOR_TYPE --accelerator-type "e.g. v4-8"
require RUNTIME_VERSION --version "e.g. tpu-ubuntu2204-base"

extra=()
if [[ $SPOT == 1 ]]; then extra+=(--spot); fi
if [[ $QUEUED == 1 ]]; then
  # The queued resource and the node it brings up share one name, so every other
  # script only needs --name.
  run gcloud compute tpus queued-resources create "$TPU_NAME" "${SCOPE[@]}" \
    --accelerator-type="$ACCELERATOR_TYPE" --runtime-version="$RUNTIME_VERSION" \
    --node-id="$TPU_NAME" "${extra[@]}"
  if [[ $NO_WAIT != 1 ]]; then wait_ready 1; fi
else
  if [[ $NO_WAIT == 1 ]]; then extra+=(--async); fi
  run gcloud compute tpus tpu-vm create "$TPU_NAME" "${SCOPE[@]}" \
    --accelerator-type="$ACCELERATOR_TYPE" --version="$RUNTIME_VERSION" "${extra[@]}"
fi
