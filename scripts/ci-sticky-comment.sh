#!/usr/bin/env bash
# Create or update the pull request's single modelfleet comment from the per-stack sections:
#   scripts/ci-sticky-comment.sh DIR
# DIR holds one folder per stack artifact, each with a comment.md (scripts/ci_preview_comment.py).
# Needs GH_TOKEN (pull-requests: write), PR_NUMBER, GITHUB_REPOSITORY; gh and jq are on the
# GitHub-hosted runners. The comment is found again by its first line, a hidden marker.
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
dir=$1
: "${PR_NUMBER:?PR_NUMBER is required}"
: "${GITHUB_REPOSITORY:?GITHUB_REPOSITORY is required}"
if [[ ! $PR_NUMBER =~ ^[0-9]+$ ]]; then
  echo "PR_NUMBER must be a number, got: $PR_NUMBER" >&2
  exit 2
fi

marker='<!-- modelfleet-preview -->'
# GitHub rejects comment bodies above 65536 characters.
limit=64000
body=$(mktemp)
payload=$(mktemp)
trap 'rm -f "$body" "$payload"' EXIT

shopt -s nullglob
sections=("$dir"/*/comment.md)
{
  echo "$marker"
  echo "## modelfleet: plan, cost, policy and preview"
  echo
  if [[ ${#sections[@]} -eq 0 ]]; then
    echo "No stack report was produced; see the workflow run."
  fi
  for section in "${sections[@]}"; do
    cat "$section"
    echo
  done
  echo "<sub>${HEAD_SHA:+commit $HEAD_SHA · }${RUN_URL:+[workflow run]($RUN_URL)}</sub>"
} >"$body"

if [[ $(wc -c <"$body") -gt $limit ]]; then
  head -c "$limit" "$body" >"$body.cut"
  printf '\n\n…truncated: the full report is in the workflow run.\n' >>"$body.cut"
  mv "$body.cut" "$body"
fi
jq -n --rawfile body "$body" '{body: $body}' >"$payload"

existing=$(gh api --paginate "repos/$GITHUB_REPOSITORY/issues/$PR_NUMBER/comments" \
  --jq ".[] | select(.user.login == \"github-actions[bot]\" and (.body | startswith(\"$marker\"))) | .id" |
  head -n 1)
if [[ -n $existing ]]; then
  gh api --method PATCH "repos/$GITHUB_REPOSITORY/issues/comments/$existing" --input "$payload" >/dev/null
  echo "updated comment $existing"
else
  gh api --method POST "repos/$GITHUB_REPOSITORY/issues/$PR_NUMBER/comments" --input "$payload" >/dev/null
  echo "created a comment on #$PR_NUMBER"
fi
