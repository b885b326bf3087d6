#!/usr/bin/env bash
# Runs the whole cargo test suite and closes with one line adding up every test binary's
# result, so the total is visible at a glance (and to CI).
set -euo pipefail
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --locked --lib --tests "$@" 2>&1 | tee "$log" || status=$?
passed=$(grep -oE 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | grep -oE '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -oE '; [0-9]+ failed' "$log" | grep -oE '[0-9]+' | awk '{s+=$1} END {print s+0}')
echo
echo "storage suite: $(grep -cE '^test storage::sqlite::.* ok$' "$log") passed on SQLite, $(grep -cE '^test storage::postgres::.* ok$' "$log") passed on PostgreSQL"
echo "all tests: ${passed} passed, ${failed} failed"
if [ "$status" -eq 0 ] && [ "$passed" -eq 0 ]; then
  echo "no test ran" >&2
  exit 1
fi
exit "$status"
