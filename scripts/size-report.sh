#!/usr/bin/env bash
# Firmware size report for meshlink-core: builds size-report/ (a minimal Cortex-M4F image
# running one two-peer node, opt-level "s" + LTO) and prints its flash and static RAM use,
# plus the node's static storage (state, slot table, slot buffers) on the target and on
# the host.
#
# Profiles (core feature sets, embedded/SIZE.md §0): SIZE_PROFILES is a space-separated
# list, "-" meaning no feature (the budget node: streams, XX, direct messages). The first
# is reported in detail, every one as a row of the closing table. The default, "- full",
# builds the budget node and everything; SIZE_PROFILES=all also builds each feature alone.
set -euo pipefail
cd "$(dirname "$0")/../size-report"

target=thumbv7em-none-eabihf
if ! rustup target list --installed | grep -qx "$target"; then
  rustup target add "$target"
fi

profiles="${SIZE_PROFILES:-- full}"
if [ "$profiles" = all ]; then
  profiles="- ik psk datagram quality-extras full"
fi
rows="$(mktemp)"
trap 'rm -f "$rows"' EXIT
first=true
for profile in $profiles; do
  features=()
  if [ "$profile" != - ]; then
    features=(--features "$profile")
  fi
  # The target comes from size-report/.cargo/config.toml, which is why we cd'ed here.
  cargo build -q --release "${features[@]}"
  # CARGO_TARGET_DIR, when set, moves the build output out of size-report/target.
  elf="${CARGO_TARGET_DIR:-target}/$target/release/meshlink-size-report"

  if $first; then
    echo "==> $elf ($target, opt-level=\"s\", lto, core features: ${profile/-/none})"
    llvm_size="$(ls "$(rustc --print sysroot)"/lib/rustlib/*/bin/llvm-size 2>/dev/null | head -n 1 || true)"
    if [ -n "$llvm_size" ]; then
      "$llvm_size" -A "$elf"
    fi
  fi

  # The summary is computed from the ELF directly (standard library only), so it also
  # works where llvm-tools is missing; it also reads the NODE symbol's size.
  python3 - "$elf" "$profile" "$first" "$rows" <<'EOF'
import struct, sys

data = open(sys.argv[1], "rb").read()
assert data[:4] == b"\x7fELF" and data[4] == 1 and data[5] == 1, "expected a 32-bit little-endian ELF"
shoff, = struct.unpack_from("<I", data, 0x20)
shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x2E)
secs = [struct.unpack_from("<10I", data, shoff + i * shentsize) for i in range(shnum)]
names = secs[shstrndx]

def cstr(off):
    return data[off:data.index(b"\0", off)].decode()

size = {cstr(names[4] + s[0]): s[5] for s in secs}
sym = {}
for s in secs:
    if s[1] == 2:  # SHT_SYMTAB
        strtab = secs[s[6]]
        for off in range(s[4], s[4] + s[5], 16):
            name, value, sym_size, info, other, shndx = struct.unpack_from("<IIIBBH", data, off)
            n = cstr(strtab[4] + name)
            if n in ("NODE", "SLOTS", "BUFS"):
                sym[n] = sym_size

get = lambda n: size.get(n, 0)
flash = get(".vector_table") + get(".text") + get(".rodata") + get(".data")
ram = get(".data") + get(".bss") + get(".uninit")
profile, first, rows = sys.argv[2], sys.argv[3] == "true", sys.argv[4]
if first:
    print()
    print("section           bytes")
    for n in (".vector_table", ".text", ".rodata", ".data", ".bss"):
        print(f"{n:<14} {get(n):>8}")
    print(f"{'flash total':<14} {flash:>8}   (.vector_table + .text + .rodata + .data)")
    print(f"{'static RAM':<14} {ram:>8}   (.data + .bss; the stack comes on top)")
    if sym:
        print(f"node on the target: state {sym.get('NODE', 0)} (NODE) + slot table {sym.get('SLOTS', 0)} (SLOTS) "
              f"+ slot buffers {sym.get('BUFS', 0)} (BUFS) = {sum(sym.values())} bytes")
with open(rows, "a") as f:
    name = "none (budget node)" if profile == "-" else profile
    f.write(f"{name:<20}{get('.text'):>9}{get('.rodata'):>9}{flash:>9}{ram:>9}{sym.get('NODE', 0):>7}{sym.get('SLOTS', 0):>7}\n")
EOF
  first=false
done
echo
echo "==> profiles (core features; bytes; flash includes .vector_table and .data)"
printf '%-20s%9s%9s%9s%9s%7s%7s\n' profile .text .rodata flash RAM NODE SLOTS
cat "$rows"

host="$(rustc -vV | sed -n 's/^host: //p')"
cargo test -q --lib --target "$host" -- --nocapture 2>&1 | grep -E "size_of|test result" || {
  echo "host size test failed" >&2
  exit 1
}
