#!/usr/bin/env bash
# The managed C ABI and the Python package: builds the library and the daemon, runs the
# managed C example against a real `meshlink` daemon under valgrind, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
command -v valgrind >/dev/null || { apt-get update -q && apt-get install -y -q valgrind; }
command -v pkg-config >/dev/null || { apt-get update -q && apt-get install -y -q pkg-config; }
command -v cbindgen >/dev/null || cargo install cbindgen --version 0.29.4 --locked
python3 -m pytest --version >/dev/null 2>&1 || python3 -m pip install -q 'pytest==8.3.4'
cargo build -p meshlink-ffi -p meshlink-host
out=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$out"' EXIT
cbindgen --config ffi/cbindgen.toml --crate meshlink-ffi --output "$out/meshlink.h" ffi
# The committed header is cbindgen's output, byte for byte: a changed ABI changes it too.
if ! diff -u ffi/include/meshlink.h "$out/meshlink.h"; then
  echo "FAIL: ffi/include/meshlink.h differs from cbindgen 0.29.4's output; regenerate it" >&2
  exit 1
fi
bin="$CARGO_TARGET_DIR/debug/meshlink"
"$bin" up --data-dir "$out/d" --tcp 127.0.0.1:0 --ws off --udp off --json >"$out/up.json" &
for _ in $(seq 100); do [ -s "$out/up.json" ] && break; sleep 0.1; done
url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["urls"][0])' "$out/up.json")
"$bin" serve svc.echo --echo --data-dir "$out/d" >"$out/serve.log" 2>&1 &
for _ in $(seq 100); do grep -q serving "$out/serve.log" && break; sleep 0.1; done
# Built the way a C user builds it: through the pkg-config file, installed under a prefix.
mkdir -p "$out/prefix/lib/pkgconfig" "$out/prefix/include"
cp ffi/include/meshlink.h "$out/prefix/include/"
cp "$CARGO_TARGET_DIR/debug/libmeshlink.so" "$out/prefix/lib/"
sed "s|@PREFIX@|$out/prefix|" ffi/meshlink.pc.in >"$out/prefix/lib/pkgconfig/meshlink.pc"
flags=$(PKG_CONFIG_PATH="$out/prefix/lib/pkgconfig" pkg-config --cflags --libs meshlink)
# shellcheck disable=SC2086 # $flags is a list of compiler flags
cc -Wall -Wextra -Werror -std=c11 ffi/examples/managed_daemon.c $flags -Wl,-rpath,"$out/prefix/lib" \
  -o "$out/managed_daemon"
valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect \
  "$out/managed_daemon" "$url"
MESHLINK_LIB="$CARGO_TARGET_DIR/debug/libmeshlink.so" MESHLINK_BIN="$bin" MESHLINK_DAEMON_URL="$url" \
  PYTHONPATH=ffi/python python3 -m pytest -q ffi/python/tests
# The README's quickstart, unchanged, in a fresh venv with the package pip-installed.
python3 -m venv "$out/venv"
MESHLINK_DEBUG_BUILD=1 "$out/venv/bin/pip" install -q ./ffi/python
python3 -c 'import re,sys; s=open("ffi/README.md").read().split("## Python",1)[1]; print(re.findall(r"```python\n(.*?)```", s, re.S)[0])' >"$out/quickstart.py"
(cd "$out" && env -u MESHLINK_LIB "$out/venv/bin/python" quickstart.py)
python3 -m mypy --version >/dev/null 2>&1 || python3 -m pip install -q "mypy==1.13.0"
(cd ffi/python && python3 -m mypy --strict meshlink examples tests/test_quickstart.py)
echo "ffi-py-test: ok"
