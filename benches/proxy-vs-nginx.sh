#!/usr/bin/env bash
# Throughput and p99 of the hoody data plane versus nginx proxy_pass, both in
# front of the same nginx backend on loopback, runs alternating.
#
#   benches/proxy-vs-nginx.sh            # builds target/release/hoody-api if missing
#   HOODY_BIN=path/to/hoody-api RUNS=5 DURATION=10s CONNS=64 THREADS=2 benches/proxy-vs-nginx.sh
#
# Needs: nginx (nginx-light), wrk. Prints req/s and p99 per run, the means,
# and the ratio ours/nginx.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUNS="${RUNS:-3}"
DURATION="${DURATION:-10s}"
CONNS="${CONNS:-64}"
THREADS="${THREADS:-2}"
WORKERS="${WORKERS:-0}"
NGINX="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
BACKEND_PORT="${BACKEND_PORT:-18080}"
NGINX_PORT="${NGINX_PORT:-18081}"
HOODY_PORT="${HOODY_PORT:-18082}"
command -v wrk >/dev/null || { echo "wrk is required" >&2; exit 1; }
[[ -x "$NGINX" ]] || { echo "nginx is required" >&2; exit 1; }

# shellcheck source=benches/lib/nginx.sh
. "$ROOT/benches/lib/nginx.sh"
bench_hoody_bin
bench_workdir proxy-vs-nginx
# The shared backend, and nginx as the reverse proxy under test. By default
# they are two nginx instances, so both proxies face the same backend
# processes and the same number of busy threads (wrk, backend, proxy).
# SHARED_NGINX=1 runs them in one instance, as this script first did: the
# proxying workers then also serve the backend.
PROXY_CONF="$(nginx_proxy_server "$NGINX_PORT" "$BACKEND_PORT")"
if [[ "${SHARED_NGINX:-0}" == 1 ]]; then
  nginx_start auto "$(nginx_backend_server "$BACKEND_PORT")
$PROXY_CONF"
else
  nginx_start auto "$(nginx_backend_server "$BACKEND_PORT")" backend
  nginx_start auto "$PROXY_CONF" proxy
fi

cat >"$WORK/routes.json" <<JSON
{"routes": [{"host": "bench.test", "upstream": "http://127.0.0.1:$BACKEND_PORT"}]}
JSON
"$HOODY_BIN" dataplane --routes "$WORK/routes.json" --listen "127.0.0.1:$HOODY_PORT" \
  --access-log off --workers "$WORKERS" 2>"$WORK/logs/hoody.log" &
PIDS+=($!)

for port in $BACKEND_PORT $NGINX_PORT $HOODY_PORT; do
  for _ in $(seq 100); do
    if curl -s -o /dev/null -H 'Host: bench.test' "http://127.0.0.1:$port/"; then break; fi
    sleep 0.1
  done
done
curl -sf -H 'Host: bench.test' "http://127.0.0.1:$HOODY_PORT/" >/dev/null || { echo "hoody proxy not answering" >&2; cat "$WORK/logs/hoody.log" >&2; exit 1; }

# shellcheck source=benches/lib/wrk.sh
. "$ROOT/benches/lib/wrk.sh"
run() { wrk_run "$1" "$2" bench.test; }

# Warm both paths.
wrk -t"$THREADS" -c"$CONNS" -d2s -H 'Host: bench.test' "http://127.0.0.1:$NGINX_PORT/" >/dev/null
wrk -t"$THREADS" -c"$CONNS" -d2s -H 'Host: bench.test' "http://127.0.0.1:$HOODY_PORT/" >/dev/null

printf "%-4s %-8s %12s %10s\n" run proxy "req/s" "p99(us)"
n_rps=0; n_p99=0; h_rps=0; h_p99=0
for i in $(seq "$RUNS"); do
  read -r r p < <(run nginx "$NGINX_PORT"); printf "%-4s %-8s %12s %10s\n" "$i" nginx "$r" "$p"
  n_rps=$((n_rps + r)); n_p99=$((n_p99 + p))
  read -r r p < <(run hoody "$HOODY_PORT"); printf "%-4s %-8s %12s %10s\n" "$i" hoody "$r" "$p"
  h_rps=$((h_rps + r)); h_p99=$((h_p99 + p))
done
echo "---"
awk -v nr="$n_rps" -v np="$n_p99" -v hr="$h_rps" -v hp="$h_p99" -v n="$RUNS" 'BEGIN {
  printf "nginx  mean: %.0f req/s, p99 %.0f us\n", nr/n, np/n;
  printf "hoody  mean: %.0f req/s, p99 %.0f us\n", hr/n, hp/n;
  printf "ratio  throughput hoody/nginx: %.3f   p99 hoody/nginx: %.3f\n", hr/nr, hp/np }'
