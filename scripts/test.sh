#!/usr/bin/env bash
# The test command (README quick start, and what CI runs): installs what is
# missing, then cargo fmt --check, clippy -D warnings and every test of every
# crate of the workspace against real ZooKeeper and MariaDB processes started
# by the project's harness (crates/sandbox).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
# A one-shot build: incremental state would only add gigabytes of disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
step() { printf '\n==> %s\n' "$*"; }
step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "no dependency cycle between the modules of crates/core"
bash scripts/module-graph.sh | sed -n '/^# cycles/,$p'
step "cargo test (unit + integration against real servers)"
# Integration tests each start their own ZooKeeper/MariaDB; two at a time fits
# 2 cores. (An env var, not --test-threads: bench targets get the args too.)
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
RUST_TEST_THREADS="${TEST_THREADS:-2}" cargo test --workspace --all-targets --locked 2>&1 | tee "$log" || status=$?
# One closing line with the totals of every test binary above.
awk '/^test result:/ {p += $4; f += $6} END {printf "\n%d passed, %d failed\n", p, f}' "$log"
exit "$status"
