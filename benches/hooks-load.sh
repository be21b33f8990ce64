#!/usr/bin/env bash
# Throughput and p99 of the data plane with and without a header-adding hook
# (the hooks-sdk `add_header` example, pooled instances), in front of the same
# nginx backend on loopback, runs alternating. Issue 6's target: the hooked
# route keeps >= 90% of the plain route's throughput.
#
#   benches/hooks-load.sh
#   HOODY_BIN=path/to/hoody-api RUNS=5 DURATION=10s CONNS=64 THREADS=2 benches/hooks-load.sh
#
# Needs: nginx (nginx-light), wrk, and the example modules
# (hooks-sdk/build-examples.sh, run here when missing).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUNS="${RUNS:-3}"
DURATION="${DURATION:-10s}"
CONNS="${CONNS:-64}"
THREADS="${THREADS:-2}"
WORKERS="${WORKERS:-0}"
NGINX="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
BACKEND_PORT="${BACKEND_PORT:-18090}"
HOODY_PORT="${HOODY_PORT:-18092}"
MODULE="$ROOT/target/hooks-examples/add_header.wasm"

[[ -f "$MODULE" ]] || sh "$ROOT/hooks-sdk/build-examples.sh"
command -v wrk >/dev/null || { echo "wrk is required" >&2; exit 1; }
[[ -x "$NGINX" ]] || { echo "nginx is required" >&2; exit 1; }
# shellcheck source=benches/lib/wrk.sh
. "$ROOT/benches/lib/wrk.sh"

# shellcheck source=benches/lib/nginx.sh
. "$ROOT/benches/lib/nginx.sh"
bench_hoody_bin
bench_workdir hooks-load
nginx_start 1 "$(nginx_backend_server "$BACKEND_PORT")"

cp "$MODULE" "$WORK/add_header.wasm"
cat >"$WORK/routes.json" <<JSON
{"routes": [
  {"host": "plain.test", "upstream": "http://127.0.0.1:$BACKEND_PORT"},
  {"host": "hooked.test", "upstream": "http://127.0.0.1:$BACKEND_PORT",
   "modules": {"add_header.wasm": "add_header.wasm"},
   "proxy": {"default": "allow", "hooks": {"http": [
     {"id": "01hooksbenchaddheader00000", "script": {"path": "add_header.wasm", "config": "bench"}}]}}}
]}
JSON
"$HOODY_BIN" dataplane --routes "$WORK/routes.json" --listen "127.0.0.1:$HOODY_PORT" \
  --access-log off --workers "$WORKERS" 2>"$WORK/logs/hoody.log" &
PIDS+=($!)

for _ in $(seq 100); do
  if curl -s -o /dev/null -H 'Host: plain.test' "http://127.0.0.1:$HOODY_PORT/"; then break; fi
  sleep 0.1
done
curl -sf -D - -o /dev/null -H 'Host: hooked.test' "http://127.0.0.1:$HOODY_PORT/" | grep -qi '^x-hook-response: bench' \
  || { echo "the hooked route does not run the hook" >&2; cat "$WORK/logs/hoody.log" >&2; exit 1; }

for host in plain.test hooked.test; do
  wrk -t"$THREADS" -c"$CONNS" -d2s -H "Host: $host" "http://127.0.0.1:$HOODY_PORT/" >/dev/null
done

HOODY_PID="${PIDS[-1]}"
printf "%-4s %-8s %12s %10s %14s\n" run route "req/s" "p99(us)" "cpu us/req"
p_rps=0; p_p99=0; p_cpu=0; h_rps=0; h_p99=0; h_cpu=0
for i in $(seq "$RUNS"); do
  read -r r p c < <(wrk_run_cpu plain "$HOODY_PORT" plain.test "$HOODY_PID")
  printf "%-4s %-8s %12s %10s %14s\n" "$i" plain "$r" "$p" "$c"
  p_rps=$((p_rps + r)); p_p99=$((p_p99 + p)); p_cpu=$(awk -v a="$p_cpu" -v b="$c" 'BEGIN { print a + b }')
  read -r r p c < <(wrk_run_cpu hooked "$HOODY_PORT" hooked.test "$HOODY_PID")
  printf "%-4s %-8s %12s %10s %14s\n" "$i" hooked "$r" "$p" "$c"
  h_rps=$((h_rps + r)); h_p99=$((h_p99 + p)); h_cpu=$(awk -v a="$h_cpu" -v b="$c" 'BEGIN { print a + b }')
done
echo "---"
awk -v pr="$p_rps" -v pp="$p_p99" -v pc="$p_cpu" -v hr="$h_rps" -v hp="$h_p99" -v hc="$h_cpu" -v n="$RUNS" 'BEGIN {
  printf "plain   mean: %.0f req/s, p99 %.0f us, proxy CPU %.1f us/req\n", pr/n, pp/n, pc/n;
  printf "hooked  mean: %.0f req/s, p99 %.0f us, proxy CPU %.1f us/req\n", hr/n, hp/n, hc/n;
  printf "ratio   throughput hooked/plain: %.3f   p99 hooked/plain: %.3f   hook CPU: +%.1f us/req\n", hr/pr, hp/pp, (hc-pc)/n }'
