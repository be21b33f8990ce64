#!/usr/bin/env bash
# Load test of the control plane's hottest authenticated read:
# GET /api/v1/users/auth/me with an API token, driven by wrk on loopback.
# Prints requests/s and latency percentiles.
#
#   ./benches/api-me-load.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-64}

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
[ -x "${CARGO_TARGET_DIR:-target}/release/hoody-api" ] && [ -n "${SKIP_BUILD:-}" ] || cargo build --release --quiet
BIN=${CARGO_TARGET_DIR:-target}/release/hoody-api
WORK=$(mktemp -d)
PORT=$((20000 + RANDOM % 20000))
PROXY=$((PORT + 1))
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT

echo 'Bench-password-123!' | $BIN admin create-user --data-dir "$WORK/data" --email bench@example.test --password-stdin >/dev/null
HOODY_LOG=warn $BIN serve --data-dir "$WORK/data" --api-listen 127.0.0.1:$PORT --proxy-listen 127.0.0.1:$PROXY \
  --rate-per-token 1000000000 --rate-per-ip 1000000000 2>"$WORK/server.log" &
SERVER=$!
for _ in $(seq 100); do curl -fs http://127.0.0.1:$PORT/health >/dev/null && break; sleep 0.1; done

JWT=$(curl -fs http://127.0.0.1:$PORT/api/v1/users/auth/login -H 'content-type: application/json' \
  -d '{"email":"bench@example.test","password":"Bench-password-123!"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["token"])')
TOKEN=$(curl -fs http://127.0.0.1:$PORT/api/v1/auth/tokens -H "authorization: Bearer $JWT" -H 'content-type: application/json' \
  -d '{"alias":"bench","permission_template":"full_access"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["token"])')

curl -fs http://127.0.0.1:$PORT/api/v1/users/auth/me -H "authorization: Bearer $TOKEN" >/dev/null
wrk -t2 -c"$CONNS" -d2s -H "authorization: Bearer $TOKEN" http://127.0.0.1:$PORT/api/v1/users/auth/me >/dev/null
echo "== GET /api/v1/users/auth/me with an API token, ${DURATION}s, ${CONNS} connections"
wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -H "authorization: Bearer $TOKEN" http://127.0.0.1:$PORT/api/v1/users/auth/me
echo "server RSS: $(ps -o rss= -p $SERVER) KiB"
