#!/usr/bin/env bash
# Install xtreme_jax on every worker of a TPU VM (`pip install -e '.[tpu]'`).
#
# usage: launch/setup.sh --name NAME [--zone Z] [--project P]
#                        [--repo URL [--ref REF]] [--extras tpu] [--dry-run]
#
#   --repo    REPO_URL  git URL to clone on each worker; without it the local checkout
#                       (tracked + untracked, not ignored files) is copied over with scp
#   --ref     REF       branch, tag or commit to check out (default: the local HEAD commit,
#                       so the workers run what you tested; it must be pushed)
#   --extras  EXTRAS    pip extras, default tpu
#   env: REMOTE_DIR (default xtreme_jax, under the remote home), PYTHON (default python3)
#
# Do not run this while a job is running on the TPU: it replaces the installed code.

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
: "${REPO_URL:=}" "${REF:=}" "${EXTRAS:=tpu}"
parse_flags --name=TPU_NAME --zone=ZONE --project=PROJECT --repo=REPO_URL --ref=REF \
  --extras=EXTRAS -- "$@"
((${#EXTRA[@]} == 0)) || die "setup.sh takes no arguments after --"
scope
[[ -z $REF || -n $REPO_URL ]] || die "--ref needs --repo (without --repo the local checkout is copied as it is)"

install="$(q "$PYTHON") -m pip install --upgrade pip && $(q "$PYTHON") -m pip install -e $(q ".[$EXTRAS]")"
if [[ -n $REPO_URL ]]; then
  if [[ -z $REF ]]; then
    REF=$(git -C "$REPO_ROOT" rev-parse HEAD 2>/dev/null) || die "not a git checkout: pass --ref"
  fi
  # fetch + detached checkout of FETCH_HEAD works for branches, tags and commits alike,
  # and for a first clone as well as a re-run.
  tpu_ssh all "set -e; [ -d ~/$REMOTE_DIR/.git ] || git clone --quiet $(q "$REPO_URL") ~/$REMOTE_DIR; \
cd ~/$REMOTE_DIR && git fetch --quiet origin $(q "$REF") && git checkout --quiet --detach FETCH_HEAD && $install"
else
  tarball=${TARBALL:-${TMPDIR:-/tmp}/xtreme_jax-src-$TPU_NAME.tgz}
  list=$tarball.files
  # Files deleted but not yet committed are still listed by git; tar would fail on them.
  : > "$list"
  while IFS= read -r -d '' f; do
    if [[ -e $REPO_ROOT/$f ]]; then printf '%s\n' "$f" >> "$list"; fi
  done < <(git -C "$REPO_ROOT" ls-files -z --cached --others --exclude-standard)
  [[ -s $list ]] || die "no files to copy from $REPO_ROOT (is it a git checkout?)"
  run tar -czf "$tarball" -C "$REPO_ROOT" -T "$list"
  run gcloud compute tpus tpu-vm scp "$tarball" "$TPU_NAME:$REMOTE_DIR-src.tgz" "${SCOPE[@]}" --worker=all
  tpu_ssh all "set -e; rm -rf ~/$REMOTE_DIR && mkdir -p ~/$REMOTE_DIR && \
tar -xzf ~/$REMOTE_DIR-src.tgz -C ~/$REMOTE_DIR && cd ~/$REMOTE_DIR && $install"
fi
