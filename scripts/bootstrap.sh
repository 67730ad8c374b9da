#!/usr/bin/env bash
# Installs what scripts/test.sh needs, each piece only when it is missing (a cheap check
# first, so a warm machine spends about a second here), pinned where a version matters.
# scripts/test.sh runs it first, so the README's test command works on a machine that
# has never seen the project; .ci/run goes through the same path.
#
#   scripts/bootstrap.sh          install what is missing, then verify everything
#   scripts/bootstrap.sh --check  verify only; list what is missing and fail
#
# Needs rustup (https://rustup.rs) and network access for whatever is missing.
# Adding a tool is one line in the lists below.
set -euo pipefail
cd "$(dirname "$0")/.."
# A fresh rustup install puts cargo here without touching this shell's PATH.
command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"

# rustup components of the toolchain the workspace builds with.
COMPONENTS=(rustfmt clippy llvm-tools)
# rustup targets: the no_std builds of meshlink-core (and the firmware size report).
TARGETS=(thumbv7em-none-eabihf riscv32imac-unknown-none-elf wasm32-unknown-unknown)
# Extra toolchains, "name profile": cargo-fuzz needs nightly (sanitizer flags).
TOOLCHAINS=("nightly minimal")
# Cargo tools, "crate version", installed with `cargo install --locked` at that version.
CARGO_TOOLS=(
  "cargo-fuzz 0.13.2"
  "cbindgen 0.29.4" # ffi/include/meshlink.h (scripts/ffi-c-test.sh checks it)
)
# System packages (apt; `apt-get update` runs once, only if one is missing), Python
# packages ("name==version") and npm packages ("name@version", global).
APT_PACKAGES=(
  qemu-system-arm # the embedded proof (scripts/embedded-test.sh): mps2-an386 Cortex-M4
  valgrind        # the C examples of the ffi (scripts/ffi-*-test.sh)
  pkg-config      # the ffi example builds through ffi/meshlink.pc.in
)
PIP_PACKAGES=()
NPM_PACKAGES=()

check_only=false
[ "${1:-}" = "--check" ] && check_only=true

missing=()
note() { printf '  %-8s %s\n' "$1" "$2"; }

if ! command -v rustup >/dev/null 2>&1 || ! command -v cargo >/dev/null 2>&1; then
  echo "bootstrap: rustup and cargo are needed first: https://rustup.rs" >&2
  exit 1
fi

# Each have_* is the cheap check; each get_* installs one missing piece.
have_component() { rustup component list --installed 2>/dev/null | grep -q "^$1\(-preview\)\?\(-\|$\)"; }
get_component() { rustup component add "$1"; }
have_target() { rustup target list --installed 2>/dev/null | grep -qx "$1"; }
get_target() { rustup target add "$1"; }
have_toolchain() { rustup toolchain list 2>/dev/null | grep -q "^$1\(-\| \|$\)"; }
get_toolchain() { rustup toolchain install "$1" --profile "$2"; }
have_cargo_tool() { cargo install --list 2>/dev/null | grep -qx "$1 v$2:"; }
get_cargo_tool() { cargo install "$1" --version "$2" --locked; }
have_apt() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
get_apt() {
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if [ -z "${apt_updated:-}" ]; then
    $sudo apt-get update -q
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "$1"
}
have_pip() {
  local name="${1%%==*}" version="${1#*==}"
  [ "$(python3 -c "import importlib.metadata as m; print(m.version('$name'))" 2>/dev/null)" = "$version" ]
}
get_pip() { python3 -m pip install -q "$1"; }
have_npm() { npm ls -g --depth=0 "$1" >/dev/null 2>&1; }
get_npm() { npm install -g "$1"; }

# ensure KIND WHAT [ARGS...]: checks, installs when allowed, records what is still missing.
ensure() {
  local kind="$1"
  shift
  if "have_$kind" "$@"; then
    return
  fi
  if ! $check_only; then
    note install "$kind $*"
    "get_$kind" "$@" || true
    if "have_$kind" "$@"; then
      return
    fi
  fi
  missing+=("$kind $*")
}

t0=$(date +%s)
for c in "${COMPONENTS[@]}"; do ensure component "$c"; done
for t in "${TARGETS[@]}"; do ensure target "$t"; done
for tc in "${TOOLCHAINS[@]}"; do
  # shellcheck disable=SC2086 # "name profile" splits on purpose
  ensure toolchain $tc
done
for tool in "${CARGO_TOOLS[@]}"; do
  # shellcheck disable=SC2086
  ensure cargo_tool $tool
done
for p in "${APT_PACKAGES[@]}"; do ensure apt "$p"; done
for p in "${PIP_PACKAGES[@]}"; do ensure pip "$p"; done
for p in "${NPM_PACKAGES[@]}"; do ensure npm "$p"; done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "bootstrap: still missing after $(($(date +%s) - t0)) s:" >&2
  printf '  %s\n' "${missing[@]}" >&2
  exit 1
fi
echo "bootstrap: all present (${#COMPONENTS[@]} components, ${#TARGETS[@]} targets, ${#TOOLCHAINS[@]} toolchains, ${#CARGO_TOOLS[@]} cargo tools, ${#APT_PACKAGES[@]} apt packages) in $(($(date +%s) - t0)) s"
