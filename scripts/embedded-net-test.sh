#!/usr/bin/env bash
# Level 3 of the firmware proof (issue 15): the meshlink-embedded adapter on a real network
# stack against a real node. embedded/linux runs the adapter unchanged on Linux, through
# embassy-executor's std platform and embassy-net over a TAP device (embassy-net-tuntap).
#
# This script:
#   1. builds the `meshlink` daemon (root workspace) and the embassy binary (embedded
#      workspace, host target);
#   2. creates a network namespace with a TAP device and a loopback, and addresses that
#      exist only inside it (192.0.2.0/24, a documentation range): no packet leaves it;
#   3. starts the daemon in it (TCP and UDP on the TAP side, the control API on the
#      namespace's own loopback) and records its `message` events;
#   4. runs the embassy node once over TCP (with every 9th received frame dropped by its
#      driver, so TCP retransmits under the adapter) and once over UDP. Each run does the
#      handshake, sends 10 messages, and receives 10 sent with `meshlink send`; while it
#      is connected, `meshlink peers` must list it and `meshlink quality` must show its
#      RTT and a ping round;
#   5. removes the namespace at the end, on success or failure (trap).
#
# It needs root (ip netns, a TAP device). Not root: it says so and exits 0 without a
# `test result:` line (scripts/test.sh runs it only as root; CI runs as root).
# Exits non-zero on any failed check and ends with one cargo-style `test result:` line.
# Environment: CARGO_TARGET_DIR (default: each workspace's target/), NET_TEST_NS (namespace
# name, default mlemb$$).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: scripts/embedded-net-test.sh needs root (ip netns, a TAP device); CI runs as root"
  exit 0
fi
for tool in ip timeout; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is missing (iproute2, coreutils)" >&2; exit 1; }
done

ns="${NET_TEST_NS:-mlemb$$}"
tap=mltap0
daemon_ip=192.0.2.1
emb_ip=192.0.2.2
work="$(mktemp -d)"
passed=0
failed=0
summarised=false
daemon_pid=""
events_pid=""

summary() {
  summarised=true
  echo "test result: $1. $passed passed; $failed failed; embedded level 3 against a meshlink daemon (scripts/embedded-net-test.sh)"
}
cleanup() {
  local rc=$?
  [ -n "$events_pid" ] && kill "$events_pid" 2>/dev/null || true
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null || true
  [ -n "$daemon_pid" ] && wait "$daemon_pid" 2>/dev/null || true
  # Deleting the namespace ends whatever still runs in it and removes the TAP device.
  ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  if [ "$rc" -ne 0 ] && [ -d "$work" ]; then
    for f in "$work"/*.log; do
      [ -f "$f" ] && { echo "--- $f"; tail -n 40 "$f"; }
    done
  fi
  rm -rf "$work"
  if ! $summarised && [ "$rc" -ne 0 ]; then
    summary FAILED
  fi
}
trap cleanup EXIT

check() { # NAME then a command that must succeed
  local name="$1"
  shift
  if "$@"; then
    echo "ok: $name"
    passed=$((passed + 1))
  else
    echo "FAIL: $name" >&2
    failed=$((failed + 1))
  fi
}
# Waits up to $2 seconds for the fixed string $3 in file $1.
wait_for_line() {
  local file="$1" secs="$2" text="$3" i
  for ((i = 0; i < secs * 10; i++)); do
    grep -qF -- "$text" "$file" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

echo "==> build: the meshlink daemon and the embassy binary (embedded/linux)"
host_target="${CARGO_TARGET_DIR:-$root/target}"
(cd "$root" && cargo build -q -p meshlink-host --bin meshlink)
meshlink="$host_target/debug/meshlink"
emb_target="${CARGO_TARGET_DIR:-$root/embedded/target}"
triple="$(rustc -vV | sed -n 's/^host: //p')"
(cd "$root/embedded" && CARGO_TARGET_DIR="$emb_target" cargo build -q -p meshlink-embedded-linux --target "$triple")
emb="$emb_target/$triple/debug/meshlink-embedded-linux"

echo "==> namespace $ns: TAP $tap, $daemon_ip (daemon) and $emb_ip (embassy), nothing else"
ip netns add "$ns"
nsx() { ip netns exec "$ns" "$@"; }
nsx ip link set lo up
nsx sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
nsx ip tuntap add dev "$tap" mode tap
nsx ip addr add "$daemon_ip/24" dev "$tap"
nsx ip link set "$tap" up

data="$work/daemon"
mkdir -p "$data"
"$meshlink" keygen --data-dir "$data" >/dev/null
daemon_id="$("$meshlink" id --data-dir "$data")"
nsx "$meshlink" up --data-dir "$data" --name daemon --tcp "$daemon_ip:7400" --udp "$daemon_ip:7402" --ws off \
  --control 127.0.0.1:7410 >"$work/daemon.log" 2>&1 &
daemon_pid=$!
ml() { nsx "$meshlink" "$@" --data-dir "$data" --timeout 10; }
for ((i = 0; i < 100; i++)); do
  ml status >/dev/null 2>&1 && break
  sleep 0.1
done
check "daemon up in the namespace ($daemon_id)" ml status >/dev/null
nsx "$meshlink" events --data-dir "$data" --only message,connected --json >"$work/events.log" 2>&1 &
events_pid=$!
sleep 0.3

# One embassy run over $1 (tcp|udp) to port $2, with the driver's drop rate $3.
level3() {
  local mode="$1" port="$2" drop="$3" emb_id i
  local log="$work/emb-$mode.log"
  echo "==> $mode: the embassy node (embassy-net on $tap) against the daemon's $mode port $port"
  nsx timeout -k 5 120 "$emb" --tap "$tap" --ip "$emb_ip/24" --server "$daemon_ip" --port "$port" \
    --server-id "$daemon_id" --mode "$mode" --send 10 --expect 10 --drop-every "$drop" >"$log" 2>&1 &
  local pid=$!
  check "$mode: embassy node connected to the daemon" wait_for_line "$log" 30 "EMB connected $mode peer=$daemon_id"
  emb_id="$(sed -n 's/^EMB id //p' "$log")"
  check "$mode: embassy sent 10 messages" wait_for_line "$log" 10 "EMB sent $mode 10"
  for i in 0 9; do
    check "$mode: daemon received message $i" wait_for_line "$work/events.log" 15 "embassy $mode message $i"
  done
  check "$mode: daemon received all 10" \
    bash -c "[ \$(grep -c 'embassy $mode message' '$work/events.log') -eq 10 ]"
  ml peers >"$work/peers-$mode.log" 2>&1 || true
  check "$mode: meshlink peers lists the embassy node" grep -q "embassy-linux" "$work/peers-$mode.log"
  # The daemon's own ping round (every 5 s by default) gives the RTT it shows.
  local q="$work/quality-$mode.log"
  for ((i = 0; i < 150; i++)); do
    ml quality "$emb_id" --json >"$q" 2>&1 || true
    grep -qE '"pongs_received": *[1-9]' "$q" && grep -qE '"rtt_us": *[0-9]' "$q" && break
    sleep 0.1
  done
  check "$mode: meshlink quality shows the embassy node's RTT and a ping round" \
    bash -c "grep -qE '\"rtt_us\": *[0-9]' '$q' && grep -qE '\"pongs_received\": *[1-9]' '$q'"
  ml quality "$emb_id" >"$work/quality-$mode-table.log" 2>&1 || true
  echo "    daemon's quality of the embassy node:"
  sed 's/^/      /' "$work/quality-$mode-table.log"
  for ((i = 0; i < 10; i++)); do
    ml send "$emb_id" "daemon $mode message $i" >/dev/null
  done
  local rc=0
  wait "$pid" || rc=$?
  check "$mode: embassy process exited 0 (status $rc)" test "$rc" -eq 0
  check "$mode: embassy received all 10" bash -c "[ \$(grep -c '^EMB recv $mode daemon $mode message' '$log') -eq 10 ]"
  check "$mode: embassy quality after a ping round" grep -qE "^EMB quality $mode rtt_us=[0-9]+ .*pongs_received=[1-9]" "$log"
  grep '^EMB quality' "$log" | sed 's/^/    /'
  if [ "$drop" -gt 0 ]; then
    check "$mode: the driver dropped frames (every ${drop}th received)" grep -qE "^EMB dropped $mode frames=[1-9]" "$log"
    grep '^EMB dropped' "$log" | sed 's/^/    /'
  fi
  check "$mode: no EMB FAIL line" bash -c "! grep -q 'EMB FAIL' '$log'"
}

level3 tcp 7400 9
level3 udp 7402 0

if [ "$failed" -ne 0 ]; then
  summary FAILED
  exit 1
fi
summary ok
