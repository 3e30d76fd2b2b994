#!/usr/bin/env bash
# Delete a TPU VM, or a queued resource together with its TPU VM (--queued).
#
# usage: launch/delete.sh --name NAME [--zone Z] [--project P] [--queued] [--yes] [--dry-run]
#
#   --yes  do not ask for confirmation (gcloud --quiet)

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
: "${QUEUED:=0}" "${YES:=0}"
parse_flags --name=TPU_NAME --zone=ZONE --project=PROJECT "--queued?QUEUED" "--yes?YES" -- "$@"
((${#EXTRA[@]} == 0)) || die "delete.sh takes no arguments after --"
scope

extra=()
if [[ $YES == 1 ]]; then extra+=(--quiet); fi
if [[ $QUEUED == 1 ]]; then
  # --force also deletes the TPU VM the queued resource brought up.
  run gcloud compute tpus queued-resources delete "$TPU_NAME" "${SCOPE[@]}" --force "${extra[@]}"
else
  run gcloud compute tpus tpu-vm delete "$TPU_NAME" "${SCOPE[@]}" "${extra[@]}"
fi
