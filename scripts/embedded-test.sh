#!/usr/bin/env bash
# The firmware proof for meshlink-embedded (issue 15, levels 1 and 2):
#   1. cross-builds the crate (plain, with `log`, with `defmt`), the wiring example
#      (embedded/qemu/examples/board.rs) and the QEMU image for
#      thumbv7em-none-eabihf in release (opt-level "z", fat LTO, panic=abort);
#   2. runs the image under qemu-system-arm -machine mps2-an386 -cpu cortex-m4 with
#      semihosting: two nodes over an in-memory link (handshake, 100 messages each way,
#      a ping round with quality figures, a forged frame rejected), and asserts every
#      RESULT line it prints. It does so for two profiles (embedded/SIZE.md §0): the
#      budget node (no optional core feature: stream mode, XX, direct messages), then
#      `full` (stream and datagram mode, IK, psk, the extra quality figures);
#   3. reports flash (.text + .rodata), static RAM (.data + .bss) and peak stack of each,
#      and the 64 KiB flash / 24 KiB RAM budget for the budget node. The budget check is
#      a separate step, off unless EMBEDDED_BUDGET=enforce: the image does not meet it
#      yet (see embedded/SIZE.md §0 and §4).
#
# It installs nothing (scripts/bootstrap.sh does: the rustup target and qemu-system-arm)
# and fails on a missing one. It exits non-zero on any failed check, a QEMU run longer
# than QEMU_TIMEOUT, or a build failure, and always ends with one cargo-style
# `test result:` line, which scripts/test.sh counts.
#
# Environment: CARGO_TARGET_DIR (default embedded/target), QEMU_TIMEOUT (seconds, 120),
# EMBEDDED_BUDGET=enforce|report (report).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/embedded"

target=thumbv7em-none-eabihf
# scripts/bootstrap.sh installs both (scripts/test.sh runs it first); this script only
# checks, so it never installs anything behind the bootstrap's back.
if ! rustup target list --installed | grep -qx "$target"; then
  echo "FAIL: rustup target $target is missing (scripts/bootstrap.sh installs it)" >&2
  exit 1
fi
if ! command -v qemu-system-arm >/dev/null; then
  echo "FAIL: qemu-system-arm is missing (scripts/bootstrap.sh installs it; Debian/Ubuntu: apt-get install qemu-system-arm)" >&2
  exit 1
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/embedded/target}"
out="$(mktemp)"
results=0
summarised=false
# The closing line has cargo's shape, so scripts/test.sh counts it with the cargo tests;
# a build failure (set -e) still prints one.
summary() {
  summarised=true
  echo "test result: $1. $results passed; $2 failed; embedded QEMU proof (scripts/embedded-test.sh)"
}
trap 'rc=$?; rm -f "$out"; if ! $summarised && [ "$rc" -ne 0 ]; then summary FAILED 1; fi' EXIT
echo "==> level 1: cross-build for $target (release, opt-level \"z\", LTO)"
cargo build -q --release -p meshlink-embedded
cargo build -q --release -p meshlink-embedded --features full
cargo check -q --release -p meshlink-embedded --features log
cargo check -q --release -p meshlink-embedded --features defmt,full
# The wiring example: the adapter in embassy-executor 0.10 tasks over embassy-net 0.9.1
# sockets (compiled and linked, not run: QEMU has no network device embassy drives).
cargo build -q --release -p meshlink-embedded-qemu --example board --features datagram
elf="$CARGO_TARGET_DIR/$target/release/meshlink-embedded-qemu"
total=0

# One profile: build the image, run it, assert its lines, print its figures (and, for
# the budget node, the budget).
proof() {
local profile="$1" budget_mode="$2"
shift 2
local features=()
if [ "$profile" != budget ]; then
  features=(--features "$profile")
fi
cargo build -q --release -p meshlink-embedded-qemu "${features[@]}"
echo "==> level 2 ($profile profile): $elf under qemu-system-arm -machine mps2-an386 -cpu cortex-m4"
set +e
timeout -k 5 "${QEMU_TIMEOUT:-120}" qemu-system-arm -machine mps2-an386 -cpu cortex-m4 \
  -semihosting-config enable=on,target=native -nographic -monitor none -serial none \
  -kernel "$elf" >"$out" 2>&1
rc=$?
set -e
cat "$out"
fail=0
if [ "$rc" -ne 0 ]; then
  echo "FAIL: the image exited with status $rc (124 = QEMU timed out)" >&2
  fail=1
fi
# Every check of the profile, in order; "RESULT all ok" is printed only after all of them.
for line in "$@"; do
  if ! grep -qF -- "$line" "$out"; then
    echo "FAIL: missing output line: $line" >&2
    fail=1
  fi
done
if grep -qE "FAILED|PANIC" "$out"; then
  echo "FAIL: a check failed in the image" >&2
  fail=1
fi
results=$((total + $(grep -c '^RESULT .* ok$' "$out" || true)))
total=$results
if [ "$fail" -ne 0 ]; then
  summary FAILED 1
  exit 1
fi

echo "==> level 2 ($profile profile): figures"
budget=0
python3 - "$elf" "$out" "$budget_mode" <<'EOF' || budget=$?
import re, struct, sys

elf, log, mode = sys.argv[1], open(sys.argv[2]).read(), sys.argv[3]
data = open(elf, "rb").read()
assert data[:4] == b"\x7fELF" and data[4] == 1 and data[5] == 1, "expected a 32-bit little-endian ELF"
shoff, = struct.unpack_from("<I", data, 0x20)
shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x2E)
secs = [struct.unpack_from("<10I", data, shoff + i * shentsize) for i in range(shnum)]
cstr = lambda off: data[off:data.index(b"\0", off)].decode()
size = {cstr(secs[shstrndx][4] + s[0]): s[5] for s in secs}
syms = {}
for s in secs:
    if s[1] == 2:  # SHT_SYMTAB
        strtab = secs[s[6]]
        for off in range(s[4], s[4] + s[5], 16):
            name, value, sym_size, info, other, shndx = struct.unpack_from("<IIIBBH", data, off)
            n = cstr(strtab[4] + name)
            if "meshlink_embedded_qemu" in n or n.isupper():
                syms[n.split("::")[-1] if "::" in n else n] = sym_size
# Mangled names: pick the statics by their Rust name inside the mangled symbol.
def static(name):
    return sum(v for k, v in syms.items() if re.search(r"\d" + name + r"(17h[0-9a-f]{16}E)?$", k) or k == name)
get = lambda n: size.get(n, 0)
flash = get(".vector_table") + get(".text") + get(".rodata")
flash_load = flash + get(".data")
ram = get(".data") + get(".bss") + get(".uninit")
fig = dict(re.findall(r"FIGURE (\w+)=(\d+)", log))
stack_run = int(fig["stack_peak_run_bytes"])
stack_new = int(fig["stack_peak_node_new_bytes"])
node = int(fig["node_static_bytes"])
main_frame = int(fig["stack_main_frame_bytes"])
# The image holds two nodes and a test link; a one-node firmware would not.
second = static("NODE_B") + static("NODE_B_STATE") + static("BUF_B") + static("CH_B") + static("A_TO_B") + static("B_TO_A")
one_node_ram = ram - second
print(f"{'section':<16}{'bytes':>9}")
for n in (".vector_table", ".text", ".rodata", ".data", ".bss"):
    print(f"{n:<16}{get(n):>9}")
print(f"flash            {flash:>8}   (.vector_table + .text + .rodata; +{get('.data')} .data initialisers = {flash_load})")
print(f"static RAM       {ram:>8}   (.data + .bss: two nodes of {node} bytes (storage + node state), buffers, channels, test link)")
print(f"  one-node share {one_node_ram:>8}   (without node B, its buffers and channels, and the in-memory link: {second})")
print(f"peak stack       {stack_run:>8}   (running; painted at boot, high-water mark at the end)")
print(f"  at Node::new   {stack_new:>8}   (building the two nodes; {stack_new - main_frame} beyond main's frame)")
print(f"  main's frame   {main_frame:>8}   (the test's futures and state; in both figures above)")
if mode == "none":
    sys.exit(0)
budget_flash, budget_ram = 64 * 1024, 24 * 1024
need_ram = one_node_ram + max(stack_run, stack_new)
print()
print(f"budget: flash {flash} / {budget_flash} ({'within' if flash <= budget_flash else 'OVER by %d' % (flash - budget_flash)}), "
      f"RAM incl. stack {need_ram} / {budget_ram} ({'within' if need_ram <= budget_ram else 'OVER by %d' % (need_ram - budget_ram)})")
over = flash > budget_flash or need_ram > budget_ram
if mode == "enforce":
    if over:
        print("budget: EXCEEDED (EMBEDDED_BUDGET=enforce)")
        sys.exit(1)
    print("budget: met (EMBEDDED_BUDGET=enforce)")
else:
    print("budget: not enforced (set EMBEDDED_BUDGET=enforce; it fails until the items of embedded/SIZE.md §0, what remains, land)")
EOF
if [ "$budget" -ne 0 ]; then
  summary FAILED 1
  exit 1
fi
if [ "$budget_mode" = enforce ]; then
  results=$((results + 1))
  total=$results
fi
}

# The budget node of issue 15 (no optional core feature): stream mode only. The budget
# applies to it.
proof budget "${EMBEDDED_BUDGET:-report}" \
  "RESULT slot size matches config ok" \
  "stream: handshake" "stream: delivered a<-b 100/100 b<-a 100/100" "stream: quality rtt_us=" \
  "stream: forged frame rejected=1" \
  "RESULT all ok"
# Everything: both modes and the extra quality figures (reported, no budget).
proof full none \
  "RESULT slot size matches config ok" \
  "stream: handshake" "stream: delivered a<-b 100/100 b<-a 100/100" "stream: quality rtt_us=" \
  "stream: quality extras jitter_us=" "stream: forged frame rejected=1" \
  "datagram: handshake" "datagram: delivered a<-b 100/100 b<-a 100/100" "datagram: quality rtt_us=" \
  "datagram: forged datagram rejected=1 session kept=true" \
  "RESULT all ok"
summary ok 0
