#!/usr/bin/env bash
# Every test of the project, in one command (the README's second command). It first runs
# scripts/bootstrap.sh, which installs what is missing (rustup components and targets,
# nightly, pinned cargo tools), so it passes on a machine that has never seen the
# project. SKIP_BOOTSTRAP=1 skips that (offline, everything already there);
# FUZZ_SECONDS (default 10) is the fuzz smoke time per target.
#
# Prints each step's duration at the end, then one closing line counting every cargo
# test result: `tests: N passed, N failed` (also when a step fails).
set -euo pipefail
cd "$(dirname "$0")/.."
# A fresh rustup install puts cargo here without touching this shell's PATH.
command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"

start=$(date +%s)
step_name=""
step_start=$start
durations=()
testlog="$(mktemp)"

end_step() {
  if [ -n "$step_name" ]; then
    durations+=("$(printf '%5d s  %s' $(($(date +%s) - step_start)) "$step_name")")
  fi
  step_name=""
}
step() {
  end_step
  step_name="$*"
  step_start=$(date +%s)
  printf '\n==> %s\n' "$*"
}
finish() {
  local rc=$?
  [ -n "$step_name" ] && [ "$rc" -ne 0 ] && step_name="$step_name (FAILED)"
  end_step
  printf '\nsteps:\n'
  printf '%s\n' "${durations[@]}"
  printf '%5d s  total\n' $(($(date +%s) - start))
  # One closing line for the whole run (cargo prints one per test binary).
  awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$testlog"
  rm -f "$testlog"
  exit "$rc"
}
trap finish EXIT

if [ "${SKIP_BOOTSTRAP:-0}" != 1 ]; then
  step "bootstrap (rustup components and targets, nightly, pinned tools)"
  scripts/bootstrap.sh
fi

step "format"
cargo fmt --all -- --check

# pipefail: a failing cargo test fails the pipeline (and, with -e, the script) through tee.
step "workspace tests (unit, integration, golden vectors, simulator)"
cargo test --workspace --all-targets 2>&1 | tee -a "$testlog"
# The minimal core profile (no ik, no datagram): what such a node refuses, and how
# (core/tests/profiles.rs, PROTOCOL.md §3.1).
cargo test -p meshlink-core --no-default-features --features std,psk --test profiles 2>&1 | tee -a "$testlog"

step "doc tests"
cargo test --workspace --doc 2>&1 | tee -a "$testlog"

step "clippy (libraries strict, tests and benches advisory)"
cargo clippy --workspace --lib --bins -q -- -D warnings
cargo clippy --workspace --all-targets -q

step "no_std builds of meshlink-core"
no_std_targets=(thumbv7em-none-eabihf riscv32imac-unknown-none-elf wasm32-unknown-unknown)
target_args=()
for target in "${no_std_targets[@]}"; do
  if ! rustup target list --installed | grep -qx "$target"; then
    echo "FAIL: rustup target $target is missing (scripts/bootstrap.sh installs it)" >&2
    exit 1
  fi
  target_args+=(--target "$target")
done
# One cargo run for the three: their crates build in parallel rather than one after another.
cargo build -q -p meshlink-core --no-default-features "${target_args[@]}"
printf 'ok: %s\n' "${no_std_targets[@]}"
# Every feature alone and all of them (`full`) on the firmware target: a cfg that only
# compiles in some combination fails here. Short builds over the same target dir (the
# dependencies are built once).
for features in ik psk datagram quality-extras messaging full; do
  cargo build -q -p meshlink-core --no-default-features --features "$features" --target thumbv7em-none-eabihf
  echo "ok: thumbv7em-none-eabihf --features $features"
done

if [ -x scripts/size-report.sh ]; then
  step "firmware size report"
  scripts/size-report.sh 2>&1 | tee -a "$testlog"
fi

# Its checks print as one `test result:` line, counted in the closing tests line.
if [ -x scripts/embedded-test.sh ]; then
  step "embedded: QEMU Cortex-M4 proof"
  scripts/embedded-test.sh 2>&1 | tee -a "$testlog"
fi

# Level 3: the adapter on embassy-net-tuntap against a meshlink daemon, in a network
# namespace it creates and removes. Needs root (CI runs as root); otherwise skipped, saying so.
if [ -x scripts/embedded-net-test.sh ]; then
  step "embedded: level 3 against a meshlink daemon (network namespace)"
  if [ "$(id -u)" -eq 0 ]; then
    scripts/embedded-net-test.sh 2>&1 | tee -a "$testlog"
  else
    echo "SKIP: not root (ip netns and a TAP device need root; CI runs as root)"
  fi
fi

# The C ABI (ffi/): the committed header against cbindgen's, the sans-IO C example under
# valgrind, the golden vectors through the ABI; then the managed layer's C example against a
# daemon, and the Python package (pytest, mypy --strict, a fresh-venv quickstart).
if [ -x scripts/ffi-c-test.sh ]; then
  step "ffi: header check, sans-IO C example (valgrind), vectors through the C ABI"
  scripts/ffi-c-test.sh 2>&1 | tee -a "$testlog"
fi
if [ -x scripts/ffi-py-test.sh ]; then
  step "ffi: managed C example (valgrind) and the Python package"
  scripts/ffi-py-test.sh 2>&1 | tee -a "$testlog"
fi

if [ -x scripts/schemathesis.sh ]; then
  step "control API property tests"
  scripts/schemathesis.sh
fi

if [ -x scripts/fuzz-smoke.sh ]; then
  step "fuzz smoke run (${FUZZ_SECONDS:-10} s per target)"
  scripts/fuzz-smoke.sh "${FUZZ_SECONDS:-10}"
fi
