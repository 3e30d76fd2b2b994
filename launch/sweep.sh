#!/usr/bin/env bash
# Launch a list of configs, each with its own workdir under a gs:// base.
#
# usage: launch/sweep.sh --name NAME --workdir-base gs://BUCKET/SWEEP
#                        [--configs FILE] [--parallel [create flags...]] [--dry-run] [-- SPEC...]
#
# A SPEC is a config (what follows --config=) plus optional overrides, whitespace-separated:
#   configs/stilts.py:intermediate=qqp,target=xnli,model=large --config.seed=1
# given one per line in FILE (blank lines and # comments skipped) or one per argument after --.
# Each run's workdir is WORKDIR_BASE/<slug of the spec>, e.g. .../stilts-intermediate-qqp-...,
# or WORKDIR_BASE/NAME for a spec that starts with @NAME (python -m xtreme_jax.study names its
# runs by config hash this way: @3f2a9c01d4e5 configs/point.py:gs://b/study/runs/3f2a9c01d4e5/point.json).
#
# Default: the runs go one after another on the existing TPU NAME, each attached until it
# ends; a failed run is reported and the sweep goes on.
# --parallel: each run gets its own TPU VM NAME-0, NAME-1, ... (created with the create.sh
# flags below, set up with setup.sh, started detached); delete them with launch/delete.sh.
#   --accelerator-type, --version, --spot, --queued: as in create.sh
#   --repo, --ref: as in setup.sh
#   --module: as in run.sh

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
: "${WORKDIR_BASE:=}" "${CONFIGS:=}" "${PARALLEL:=0}" "${MODULE:=xtreme_jax.main}"
: "${ACCELERATOR_TYPE:=v4-8}" "${RUNTIME_VERSION:=tpu-ubuntu2204-base}" "${SPOT:=0}" "${QUEUED:=0}"
: "${REPO_URL:=}" "${REF:=}"
parse_flags --name=TPU_NAME --zone=ZONE --project=PROJECT --workdir-base=WORKDIR_BASE \
  --configs=CONFIGS --module=MODULE "--parallel?PARALLEL" --accelerator-type=ACCELERATOR_TYPE \
  --version=RUNTIME_VERSION "--spot?SPOT" "--queued?QUEUED" --repo=REPO_URL --ref=REF -- "$@"
scope
require WORKDIR_BASE --workdir-base "a gs://bucket/path; each run writes to a folder below it"
[[ $WORKDIR_BASE == gs://?* ]] || die "--workdir-base must be a gs:// path, got '$WORKDIR_BASE'"
WORKDIR_BASE=${WORKDIR_BASE%/}

specs=()
if [[ -n $CONFIGS ]]; then
  [[ -f $CONFIGS ]] || die "--configs: no such file '$CONFIGS'"
  while IFS= read -r line || [[ -n $line ]]; do
    line=${line%%#*}
    if [[ $line =~ [^[:space:]] ]]; then specs+=("$line"); fi
  done < "$CONFIGS"
fi
specs+=("${EXTRA[@]}")
((${#specs[@]} > 0)) || die "no configs: give --configs FILE or specs after --"

slug() {  # configs/stilts.py:target=xnli --config.seed=1 -> stilts-target-xnli-seed-1
  local s=${1//--config[.=]/}
  s=${s//configs\//}
  s=${s//.py/}
  s=$(printf '%s' "$s" | tr -cs 'A-Za-z0-9' '-')
  s=${s#-}; printf '%s' "${s%-}"
}

# Two specs with one slug would share a workdir and resume each other's checkpoints.
declare -A seen=()
slugs=()
for spec in "${specs[@]}"; do
  if [[ $spec =~ ^[[:space:]]*@([A-Za-z0-9_.-]+)[[:space:]] ]]; then s=${BASH_REMATCH[1]}; else s=$(slug "$spec"); fi
  [[ -n $s ]] || die "cannot name a run after spec '$spec'"
  [[ -z ${seen[$s]:-} ]] || die "two specs map to the same workdir $WORKDIR_BASE/$s"
  seen[$s]=1; slugs+=("$s")
done

words_of() {  # WORDS: the program arguments of one spec (an @NAME first word is the run's name)
  read -ra WORDS <<< "$1"
  if [[ ${WORDS[0]} == @* ]]; then WORDS=("${WORDS[@]:1}"); fi
  [[ ${WORDS[0]} == --config=* ]] || WORDS[0]=--config=${WORDS[0]}
}

where=(--zone "$ZONE")
if [[ -n $PROJECT ]]; then where+=(--project "$PROJECT"); fi
# One persistent compilation cache on GCS for every run and host of the sweep: a program one run
# compiled is loaded, not compiled again, by the next (the plans' compiled cost counts it so).
cache=(--env "JAX_COMPILATION_CACHE_DIR=$WORKDIR_BASE/jax_cache")
failed=()
if [[ $PARALLEL == 1 ]]; then
  create=(--accelerator-type "$ACCELERATOR_TYPE" --version "$RUNTIME_VERSION")
  if [[ $SPOT == 1 ]]; then create+=(--spot); fi
  if [[ $QUEUED == 1 ]]; then create+=(--queued); fi
  setup=()
  if [[ -n $REPO_URL ]]; then setup+=(--repo "$REPO_URL"); fi
  if [[ -n $REF ]]; then setup+=(--ref "$REF"); fi
  # Ask for every TPU first, so that they are provisioned (or queued) side by side.
  for i in "${!specs[@]}"; do
    "$LAUNCH_DIR/create.sh" --name "$TPU_NAME-$i" "${where[@]}" "${create[@]}" --no-wait
  done
  for i in "${!specs[@]}"; do
    words_of "${specs[$i]}"
    if (TPU_NAME=$TPU_NAME-$i; wait_ready "$QUEUED") &&
       "$LAUNCH_DIR/setup.sh" --name "$TPU_NAME-$i" "${where[@]}" "${setup[@]}" &&
       "$LAUNCH_DIR/run.sh" --name "$TPU_NAME-$i" "${where[@]}" --module "$MODULE" "${cache[@]}" \
         --workdir "$WORKDIR_BASE/${slugs[$i]}" --run "${slugs[$i]}" --no-follow -- "${WORDS[@]}"; then
      info "${slugs[$i]} runs on $TPU_NAME-$i"
    else
      failed+=("${slugs[$i]}")
    fi
  done
else
  for i in "${!specs[@]}"; do
    words_of "${specs[$i]}"
    info "run $((i + 1))/${#specs[@]}: ${slugs[$i]}"
    "$LAUNCH_DIR/run.sh" --name "$TPU_NAME" "${where[@]}" --module "$MODULE" "${cache[@]}" \
      --workdir "$WORKDIR_BASE/${slugs[$i]}" --run "${slugs[$i]}" --foreground -- "${WORDS[@]}" \
      || failed+=("${slugs[$i]}")
  done
fi

if ((${#failed[@]})); then die "failed: ${failed[*]}"; fi
info "all ${#specs[@]} runs launched"
