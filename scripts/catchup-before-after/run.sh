#!/usr/bin/env bash
# Times the catch-up of the code before issue 34 (7158f6e) and of this checkout in one process,
# against one anvil holding one workload, in alternating turns with the raw eth_getLogs baseline:
# two processes (each with its own anvil) differed more between runs than the codes did.
# Usage: scripts/catchup-before-after/run.sh [rounds]   (release build; about 10 minutes)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
before="${BEFORE_COMMIT:-7158f6e}"
tree="$root/target/before-issue-34"
if [ ! -e "$tree/.git" ]; then
    git -C "$root" worktree add -q -f --detach "$tree" "$before"
fi
# One lockfile cannot hold two path packages of one name and version: the old one becomes 0.0.1.
sed -i 's/^version = "0.1.0"$/version = "0.0.1"/' "$tree/Cargo.toml"
# The old bench helpers (config, orders) as they were, speaking to the old crate.
sed -e 's/\bpaywatch::/old::/g' \
    "$tree/benches/common/mod.rs" > "$here/src/old_common.rs"
make -C "$root" tools >/dev/null
export ANVIL_BIN="${ANVIL_BIN:-$root/tools/node_modules/.bin/anvil}"
cd "$here"
# The versions the project itself is built and tested with.
[ -e Cargo.lock ] || cp "$root/Cargo.lock" Cargo.lock
CARGO_TARGET_DIR="$root/target" cargo run --release -- "${1:-7}"
