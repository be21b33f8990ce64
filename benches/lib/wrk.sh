# Shared by the load scripts in benches/: wrk output parsing and one run.
# Source it; THREADS, CONNS and DURATION must be set.

# wrk prints p99 as e.g. "99%  1.23ms"; normalise to microseconds.
p99_us() {
  awk '/^ +99%/ { v=$2; u=v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
        m = (u=="us") ? 1 : (u=="ms") ? 1000 : (u=="s") ? 1000000 : 1; printf "%.0f", v*m }'
}
rps() { awk '/^Requests\/sec:/ { printf "%.0f", $2 }'; }

# wrk_exec NAME PORT HOST: one wrk run's output; reports errors on stderr.
wrk_exec() {
  local out
  out="$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -H "Host: $3" "http://127.0.0.1:$2/")"
  if grep -q "Non-2xx\|Socket errors" <<<"$out"; then
    echo "$1: errors during the run:" >&2; grep "Non-2xx\|Socket errors" <<<"$out" >&2
  fi
  printf '%s\n' "$out"
}

# wrk_run NAME PORT HOST -> "req/s p99_us".
wrk_run() {
  local out
  out="$(wrk_exec "$@")"
  echo "$(rps <<<"$out") $(p99_us <<<"$out")"
}

# CPU time (user + system) a process has used so far, in microseconds.
cpu_us() {
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.0f", ($14 + $15) * 1000000 / hz }' "/proc/$1/stat"
}

# wrk_run_cpu NAME PORT HOST PID -> "req/s p99_us cpu_us_per_request": also the
# CPU the process PID spent per request, which a noisy machine disturbs less
# than throughput.
wrk_run_cpu() {
  local out before after requests
  before="$(cpu_us "$4")"
  out="$(wrk_exec "$1" "$2" "$3")"
  after="$(cpu_us "$4")"
  requests="$(awk '/requests in/ { print $1 }' <<<"$out")"
  echo "$(rps <<<"$out") $(p99_us <<<"$out") $(awk -v d="$((after - before))" -v n="$requests" 'BEGIN { printf "%.1f", d / n }')"
}
