#!/usr/bin/env bash
# Runs every fuzz target of meshlink-core briefly: scripts/fuzz-smoke.sh [seconds per target]
# (default 10). Fails on any crash, panic, leak or timeout. Needs nightly and cargo-fuzz
# (scripts/bootstrap.sh installs both, pinned). The committed seeds in core/fuzz/corpus/<target> are read
# only: new inputs go to a scratch directory, so the smoke run never edits the repo.
set -euo pipefail
cd "$(dirname "$0")/../core"

secs="${1:-10}"
targets=(frame_decoder packet_decoder handshake_responder datagram_replay node_ops messaging_ops value_decoder)
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# -a: debug assertions and overflow checks on, so arithmetic bugs crash instead of wrapping.
cargo +nightly fuzz build -a >/dev/null 2>"$scratch/build.log" || {
  cat "$scratch/build.log"
  exit 1
}

summary=()
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t"
  log="$scratch/$t.log"
  echo "==> fuzz $t for ${secs}s"
  # -timeout: a single input taking over 10 s is a hang; -rss_limit_mb bounds memory.
  if ! cargo +nightly fuzz run -a "$t" "$scratch/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -dict=fuzz/meshlink.dict -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "FAIL: fuzz target $t crashed (artifacts in core/fuzz/artifacts/$t)" >&2
    exit 1
  fi
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')
  rate=$(grep -oE 'exec/s: *[0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+$' || echo '?')
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+$' || echo '?')
  summary+=("$(printf '%-20s %10s runs %8s exec/s %6s edges' "$t" "$runs" "$rate" "$cov")")
done

echo
echo "fuzz smoke: ${#targets[@]} targets, ${secs}s each, no crashes"
printf '  %s\n' "${summary[@]}"
