#!/usr/bin/env bash
# Fail a stack's preview job after its comment section is written:
#   scripts/ci-gate.sh REPORT_DIR PREVIEW_OUTCOME
# REPORT_DIR comes from scripts/ci-plan-report.sh; PREVIEW_OUTCOME is the pulumi step's outcome
# (success, failure, or skipped for pull requests from forks, which get no cloud credentials).
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 REPORT_DIR PREVIEW_OUTCOME" >&2
  exit 2
fi
dir=$1
outcome=$2
failed=0

if [[ ! -s "$dir/plan-head.json" ]]; then
  echo "::error::modelfleet plan failed"
  failed=1
fi
check_rc=$(cat "$dir/check-rc.txt" 2>/dev/null || echo missing)
if [[ $check_rc != 0 ]]; then
  echo "::error::modelfleet check did not pass (exit status: $check_rc)"
  failed=1
fi
case $outcome in
  success | skipped | "") ;;
  *)
    echo "::error::pulumi preview: $outcome"
    failed=1
    ;;
esac
exit "$failed"
