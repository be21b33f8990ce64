#!/usr/bin/env bash
# CPU time per proxied request of two hoody-api builds (A and B), both in
# front of the same nginx backend on loopback, runs alternating: the figure a
# busy machine disturbs least (see wrk_run_cpu in lib/wrk.sh).
#
#   A=path/to/base/hoody-api B=path/to/new/hoody-api RUNS=10 DURATION=5s benches/proxy-cpu-ab.sh
#
# Needs: nginx, wrk. Prints req/s, p99 and the proxy's CPU per request (user,
# and user + system) for each run, then each build's means and the spread
# (min-max) of the CPU figures. On loopback the system share also holds
# softirq work done for wrk and nginx, so the user figure is the steadier one.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUNS="${RUNS:-10}"
DURATION="${DURATION:-5s}"
CONNS="${CONNS:-64}"
THREADS="${THREADS:-2}"
WORKERS="${WORKERS:-0}"
NGINX="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
BACKEND_PORT="${BACKEND_PORT:-28090}"
A_PORT="${A_PORT:-28091}"
B_PORT="${B_PORT:-28092}"
: "${A:?set A to the first hoody-api binary}" "${B:?set B to the second hoody-api binary}"
# Everything listens with SO_REUSEPORT: a port someone else already uses would
# silently share the load with them.
for port in $BACKEND_PORT $A_PORT $B_PORT; do
  if ss -ltnH "sport = :$port" | grep -q .; then echo "port $port is in use" >&2; exit 1; fi
done

# shellcheck source=benches/lib/nginx.sh
. "$ROOT/benches/lib/nginx.sh"
bench_workdir proxy-cpu-ab
nginx_start auto "$(nginx_backend_server "$BACKEND_PORT")"
cat >"$WORK/routes.json" <<JSON
{"routes": [{"host": "bench.test", "upstream": "http://127.0.0.1:$BACKEND_PORT"}]}
JSON
declare -A PID
for v in A B; do
  port="${v}_PORT"
  "${!v}" dataplane --routes "$WORK/routes.json" --listen "127.0.0.1:${!port}" \
    --access-log off --workers "$WORKERS" 2>"$WORK/logs/$v.log" &
  PIDS+=($!)
  PID[$v]=$!
done
for port in $BACKEND_PORT $A_PORT $B_PORT; do
  for _ in $(seq 100); do
    if curl -s -o /dev/null -H 'Host: bench.test' "http://127.0.0.1:$port/"; then break; fi
    sleep 0.1
  done
  curl -sf -o /dev/null -H 'Host: bench.test' "http://127.0.0.1:$port/" || { echo "port $port not answering" >&2; exit 1; }
done

# shellcheck source=benches/lib/wrk.sh
. "$ROOT/benches/lib/wrk.sh"
for port in $A_PORT $B_PORT; do
  wrk -t"$THREADS" -c"$CONNS" -d2s -H 'Host: bench.test' "http://127.0.0.1:$port/" >/dev/null
done

# user_sys_us PID -> "user_us system_us" the process has used so far.
user_sys_us() {
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.0f %.0f\n", $14 * 1000000 / hz, $15 * 1000000 / hz }' "/proc/$1/stat"
}

printf "%-4s %-2s %8s %9s %9s %9s\n" run bin "req/s" "p99(us)" "user(us)" "total(us)"
for i in $(seq "$RUNS"); do
  for v in A B; do
    # A compiler or another load run beside the proxy skews the figure: wait.
    while pgrep -x rustc >/dev/null || pgrep -x wrk >/dev/null; do sleep 2; done
    port="${v}_PORT"
    read -r u0 s0 < <(user_sys_us "${PID[$v]}")
    out="$(wrk_exec "$v" "${!port}" bench.test)"
    read -r u1 s1 < <(user_sys_us "${PID[$v]}")
    n="$(awk '/requests in/ { print $1 }' <<<"$out")"
    awk -v i="$i" -v v="$v" -v r="$(rps <<<"$out")" -v p="$(p99_us <<<"$out")" \
      -v u=$((u1 - u0)) -v t=$((u1 - u0 + s1 - s0)) -v n="$n" \
      'BEGIN { printf "%-4s %-2s %8s %9s %9.2f %9.2f\n", i, v, r, p, u / n, t / n }' | tee -a "$WORK/runs"
  done
done
echo "---"
awk '{ n[$2]++; r[$2]+=$3; u[$2]+=$5; t[$2]+=$6
       if (!($2 in ulo) || $5<ulo[$2]) ulo[$2]=$5; if ($5>uhi[$2]) uhi[$2]=$5
       if (!($2 in tlo) || $6<tlo[$2]) tlo[$2]=$6; if ($6>thi[$2]) thi[$2]=$6 }
     END { for (v in n) printf "%s: user %.2f us/request (%.2f-%.2f), total %.2f (%.2f-%.2f), %.0f req/s\n",
             v, u[v]/n[v], ulo[v], uhi[v], t[v]/n[v], tlo[v], thi[v], r[v]/n[v] }' "$WORK/runs" | sort
