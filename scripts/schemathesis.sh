#!/usr/bin/env bash
# Property-based tests of the control API, driven by the OpenAPI document the node serves
# (issue 13, item 13): schemathesis generates valid and invalid requests for every
# operation and checks each answer against the document (status, content type, headers,
# schema, 405 + Allow, 401 without the token, schema-invalid input refused).
#
#   scripts/schemathesis.sh [MAX_EXAMPLES]      (default 25 per operation; env ST_MAX_EXAMPLES)
#
# Installs schemathesis (pinned) into a venv under the cargo target dir when missing,
# builds `meshlink`, runs a node on loopback ephemeral ports with a private temp data dir,
# runs schemathesis against it, stops the node. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES="${1:-${ST_MAX_EXAMPLES:-25}}"
TARGET="${CARGO_TARGET_DIR:-target}"
VENV="$TARGET/schemathesis-venv"
ST="$VENV/bin/schemathesis"

if ! "$ST" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build -q -p meshlink-host --bin meshlink
BIN="$TARGET/debug/meshlink"

DATA="$(mktemp -d)"   # mktemp -d makes it 0700
chmod 700 "$DATA"
OUT="$DATA/up.json"
NODE_PID=""
cleanup() {
  if [ -n "$NODE_PID" ]; then
    kill -TERM "$NODE_PID" 2>/dev/null || true
    wait "$NODE_PID" 2>/dev/null || true
  fi
  rm -rf "$DATA"
}
trap cleanup EXIT

"$BIN" up --json --data-dir "$DATA/node" --name schemathesis \
  --tcp 127.0.0.1:0 --ws 127.0.0.1:0 --udp 127.0.0.1:0 --control 127.0.0.1:0 >"$OUT" 2>"$DATA/up.log" &
NODE_PID=$!
for _ in $(seq 100); do
  [ -s "$OUT" ] && break
  sleep 0.1
done
URL="$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["control"])' "$OUT")"
TOKEN="$(cat "$DATA/node/control.token")"
echo "node up, control API at $URL; $MAX_EXAMPLES examples per operation"

# Every check runs on every operation, with two documented allowances:
# - schema-valid input may get 404 where it names a peer (no generated peer id is a
#   connected peer of this lone node);
# - POST /v1/connect dials what it is given: a generated URL names no listening node, so
#   the documented 502 (connect_failed, resolve_failed, ...) and 504 (connect_timeout)
#   are its answers, not server faults; 403 (the stateful phase gave the expected peer a
#   threat score) and 409 (the URL is this node's own) are documented state answers.
# /v1/events is an endless stream with no input to generate, and so is /v1/serve (a
# registered handler's requests) and /v1/subscribe (a subscription's publications); the
# Rust tests cover them (tests/control_api.rs, tests/control_messaging.rs, tests/pubsub.rs).
cat >"$DATA/schemathesis.toml" <<'TOML'
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "404"]

[[operations]]
include-path = "/v1/connect"
checks.not_a_server_error.expected-statuses = ["2xx", "4xx", "502", "504"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "403", "404", "409", "502", "504"]
TOML
# Run from the temp dir: schemathesis keeps a `.schemathesis/` cache in its working directory.
ST="$(cd "$(dirname "$ST")" && pwd)/schemathesis"
cd "$DATA"
"$ST" --config-file "$DATA/schemathesis.toml" run "$URL/v1/openapi.json" \
  --header "Authorization: Bearer $TOKEN" \
  --max-examples "$MAX_EXAMPLES" \
  --seed "${ST_SEED:-1}" \
  --workers 1 \
  --request-timeout 60 \
  --exclude-path /v1/events \
  --exclude-path /v1/serve \
  --exclude-path /v1/subscribe \
  --generation-database none \
  --no-color \
  --report-dir "$DATA/report"
