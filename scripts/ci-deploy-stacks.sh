#!/usr/bin/env bash
# Stacks the deploy workflow runs `pulumi up` on, one JSON list per environment, for "$GITHUB_OUTPUT":
#   scripts/ci-deploy-stacks.sh EVENT SHA
# On a push: the stacks changed since the last successful deploy run (not just since the previous
# push, so that a failed or superseded run is caught up). On a manual run, or when there is no
# earlier success to compare with: every stack. Needs GH_TOKEN with actions: read.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 EVENT SHA" >&2
  exit 2
fi
event=$1
sha=$2

last=""
if [[ $event == push ]]; then
  last=$(gh run list --repo "${GITHUB_REPOSITORY:?}" --workflow deploy.yml --branch main \
    --status success --limit 1 --json headSha --jq '.[0].headSha // empty' || true)
fi
if [[ -n $last ]] && git cat-file -e "$last^{commit}" 2>/dev/null; then
  echo "stacks changed since the last successful deploy ($last)" >&2
  python3 scripts/ci_stacks.py changed "$last" "$sha" --by-environment
else
  echo "deploying every stack" >&2
  python3 scripts/ci_stacks.py all --by-environment
fi
