#!/usr/bin/env bash
# Every test of the project, in one command (the README's second command).
# Assumes the toolchain pieces that .ci/run installs (targets, nightly, cargo-fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
start=$(date +%s)

step "format"
cargo fmt --all -- --check

step "workspace tests (unit, integration, golden vectors, simulator, doc tests)"
testlog="$(mktemp)"
trap 'rm -f "$testlog"' EXIT
cargo test --workspace --all-targets 2>&1 | tee "$testlog"
cargo test --workspace --doc 2>&1 | tee -a "$testlog"

step "clippy (libraries strict, tests and benches advisory)"
cargo clippy --workspace --lib --bins -q -- -D warnings
cargo clippy --workspace --all-targets -q

step "no_std builds of meshlink-core"
for target in thumbv7em-none-eabihf riscv32imac-unknown-none-elf wasm32-unknown-unknown; do
  cargo build -q -p meshlink-core --no-default-features --target "$target"
  echo "ok: $target"
done

if [ -x scripts/size-report.sh ]; then
  step "firmware size report"
  scripts/size-report.sh
fi

if [ -x scripts/fuzz-smoke.sh ]; then
  step "fuzz smoke run"
  scripts/fuzz-smoke.sh "${FUZZ_SECONDS:-10}"
fi

step "done in $(( $(date +%s) - start )) s"
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$testlog"
