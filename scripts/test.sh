#!/usr/bin/env bash
# Runs the whole cargo test suite and closes with one line adding up every test binary's
# result, so the total is visible at a glance (and to CI).
set -euo pipefail
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# anvil processes already running (another suite, a devnet) are not this suite's.
anvils() { pgrep -f 'anvil( |$)' | sort || true; }
before=$(anvils)
cargo test --locked --workspace --lib --tests "$@" 2>&1 | tee "$log" || status=$?
passed=$(grep -oE 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | grep -oE '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -oE '; [0-9]+ failed' "$log" | grep -oE '[0-9]+' | awk '{s+=$1} END {print s+0}')
echo
echo "storage suite: $(grep -cE '^test storage::.*::sqlite ... ok$' "$log") passed on SQLite, $(grep -cE '^test storage::.*::postgres ... ok$' "$log") passed on PostgreSQL"
echo "all tests: ${passed} passed, ${failed} failed"
# Every anvil the suite started must be gone with it (a leak fills a developer's machine).
for _ in $(seq 1 50); do
  left=$(comm -13 <(echo "$before") <(anvils))
  [ -z "$left" ] && break
  sleep 0.2
done
if [ -n "$left" ]; then
  echo "anvil processes the suite started are still running: $(echo $left)" >&2
  ps -o pid,ppid,args -p $(echo $left | tr ' ' ',') >&2 || true
  status=1
fi
echo "anvil processes left running: $(echo -n "$left" | grep -c . || true)"
if [ "$status" -eq 0 ] && [ "$passed" -eq 0 ]; then
  echo "no test ran" >&2
  exit 1
fi
exit "$status"
