#!/usr/bin/env bash
# Offline half of a stack's pull-request report, run from the repository root after `make setup`:
#   scripts/ci-plan-report.sh STACK BASE_SHA OUT_DIR
# Writes OUT_DIR/plan-head.json (modelfleet plan on the PR head), OUT_DIR/plan-base.json (the same
# stack planned by the base commit's own code, from a git worktree; absent for a new stack),
# OUT_DIR/check.json (the offline policy verdict) and OUT_DIR/check-rc.txt. A failing plan or
# verdict does not stop the script: the workflow comments first and gates at the end.
set -euo pipefail

if [[ $# -ne 3 ]]; then
  echo "usage: $0 STACK BASE_SHA OUT_DIR" >&2
  exit 2
fi
stack=$1
base_sha=$2
out=$3
root=$PWD
py="$root/.venv/bin/python"
mkdir -p "$out"

if ! "$root/.venv/bin/modelfleet" plan "$stack" --json >"$out/plan-head.json"; then
  echo "::error::modelfleet plan $stack failed on the pull request head"
  rm -f "$out/plan-head.json"
fi

worktree="${RUNNER_TEMP:-$(mktemp -d)}/modelfleet-base"
rm -rf "$worktree"
if git worktree add --detach "$worktree" "$base_sha" >/dev/null; then
  if [[ -f "$worktree/stacks/Pulumi.$stack.yaml" ]]; then
    # The base's own modelfleet code plans the base's stack file: PYTHONPATH puts the worktree
    # ahead of the editable install of the head.
    if ! (cd "$worktree" && PYTHONPATH="$worktree" "$py" -m modelfleet.cli plan "$stack" --json) \
      >"$out/plan-base.json"; then
      echo "::warning::modelfleet plan $stack failed on the base commit; no cost comparison"
      rm -f "$out/plan-base.json"
    fi
  else
    echo "stack $stack is new in this pull request: no base plan"
  fi
  git worktree remove --force "$worktree"
else
  echo "::warning::could not check out the base commit $base_sha; no cost comparison"
fi

set +e
"$root/.venv/bin/modelfleet" check "$stack" --json >"$out/check.json"
check_rc=$?
set -e
echo "$check_rc" >"$out/check-rc.txt"
if [[ $check_rc -ne 0 ]]; then
  echo "::error::modelfleet check $stack: the policy pack failed (exit $check_rc)"
fi
