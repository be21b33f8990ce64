#!/usr/bin/env bash
# User-space instructions per proxied request, hoody versus nginx proxy_pass,
# counted by callgrind: a figure that does not move with the machine's load,
# unlike req/s. Each proxy runs under valgrind with one worker in front of the
# same nginx backend; a client sends N1 and then N2 sequential keep-alive
# requests over 4 connections in two separate runs, and the difference of the
# two totals divided by N2-N1 is the cost of one request (start-up and
# shutdown cancel out).
#
#   benches/proxy-instructions.sh
#   HOODY_BIN=path/to/hoody-api N1=1000 N2=3000 benches/proxy-instructions.sh
#   HOOK=1 benches/proxy-instructions.sh   # hoody without and with a hook
#   KEEP=/tmp/cg benches/proxy-instructions.sh   # keep the callgrind files
#     (one per thread) for callgrind_annotate
#   INFLIGHT=64 benches/proxy-instructions.sh   # 64 requests in flight at once
#     (N1 and N2 multiples of it), as under load: costs that grow with the
#     requests a worker holds (buffers parked per thread, say) show up
#
# HOOK=1 compares hoody with itself: the plain route against one running the
# hooks-sdk `add_header` example (issue 6's load case), instead of nginx. The
# module's compiled artifact is cached in a module directory by a first start
# outside valgrind, so the measured starts load it instead of compiling.
#
# Needs: valgrind, nginx (nginx-light), python3.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
N1="${N1:-1000}"
N2="${N2:-3000}"
NGINX="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
BACKEND_PORT="${BACKEND_PORT:-18180}"
PROXY_PORT="${PROXY_PORT:-18181}"
HOOK="${HOOK:-0}"
MODULE="$ROOT/target/hooks-examples/add_header.wasm"

command -v valgrind >/dev/null || { echo "valgrind is required" >&2; exit 1; }

# shellcheck source=benches/lib/nginx.sh
. "$ROOT/benches/lib/nginx.sh"
bench_hoody_bin
bench_workdir proxy-instructions
nginx_start 1 "$(nginx_backend_server "$BACKEND_PORT")" backend

mkdir -p "$WORK/modules"
HOOKED_ROUTE=""
if [[ "$HOOK" = 1 ]]; then
  [[ -f "$MODULE" ]] || sh "$ROOT/hooks-sdk/build-examples.sh"
  cp "$MODULE" "$WORK/add_header.wasm"
  HOOKED_ROUTE=',
  {"host": "hooked.test", "upstream": "http://127.0.0.1:'"$BACKEND_PORT"'",
   "modules": {"add_header.wasm": "add_header.wasm"},
   "proxy": {"default": "allow", "hooks": {"http": [
     {"id": "01hooksbenchaddheader00000", "script": {"path": "add_header.wasm", "config": "bench"}}]}}}'
fi
cat >"$WORK/routes.json" <<JSON
{"routes": [
  {"host": "bench.test", "upstream": "http://127.0.0.1:$BACKEND_PORT"}$HOOKED_ROUTE
]}
JSON

# The nginx proxy with one worker; started under valgrind by `measure`, as a
# single process (master_process off) so callgrind sees all of its work.
nginx_conf 1 "$(nginx_proxy_server "$PROXY_PORT" "$BACKEND_PORT")" proxy

# client N [HOST]: N requests over INFLIGHT keep-alive connections (4 by
# default): sent one at a time, each response read completely before the next
# request goes out; with INFLIGHT set, one request on every connection at once
# and then all the responses, so INFLIGHT requests are in flight together, as
# under load.
client() {
  python3 - "$PROXY_PORT" "$1" "${2:-bench.test}" "${INFLIGHT:-}" <<'PY'
import socket, sys, time
port, total, host = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
inflight = int(sys.argv[4]) if sys.argv[4] else 0
for _ in range(1200):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        break
    except OSError:
        time.sleep(0.1)
conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(inflight or 4)]
req = b"GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: bench\r\n\r\n" % host.encode()

def response(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536)
    head, _, body = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    if not head.startswith(b"HTTP/1.1 200"):
        sys.exit("unexpected response: %r" % head[:80])
    while len(body) < length:
        body += s.recv(65536)

if inflight:
    for _ in range(total // inflight):
        for s in conns:
            s.sendall(req)
        for s in conns:
            response(s)
else:
    for i in range(total):
        s = conns[i % 4]
        s.sendall(req)
        response(s)
for s in conns:
    s.close()
PY
}

# measure NAME N HOST COMMAND...: total instructions of COMMAND serving N
# requests for HOST. Threads are counted apart; for hoody only its workers'
# threads (those that ran `run_worker`) are summed, since its other threads
# (the hook engine's epoch ticker, the routes-file watcher) do work per unit
# of time, and a run under valgrind lasts as long as it lasts. nginx runs as
# one single-threaded process: all of it counts.
measure() {
  local name="$1" n="$2" host="$3"
  shift 3
  local out="$WORK/$name-$n.cg"
  valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$out" "$@" \
    >"$WORK/logs/$name-$n.log" 2>&1 &
  local pid=$!
  client "$n" "$host"
  kill -INT "$pid" 2>/dev/null || true
  sleep 1
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local files=("$out"-*)
  if [[ -n "${KEEP:-}" ]]; then mkdir -p "$KEEP" && cp "${files[@]}" "$KEEP/"; fi
  if grep -lq run_worker "${files[@]}"; then
    mapfile -t files < <(grep -l run_worker "${files[@]}")
  fi
  awk '/^summary:|^totals:/ {sum += $2; nextfile} END {print sum}' "${files[@]}"
}

# per_request NAME HOST COMMAND...
per_request() {
  local name="$1" host="$2"
  shift 2
  local a b
  a="$(measure "$name" "$N1" "$host" "$@")"
  b="$(measure "$name" "$N2" "$host" "$@")"
  echo $(((b - a) / (N2 - N1)))
}

HOODY=("$HOODY_BIN" dataplane --routes "$WORK/routes.json" --listen "127.0.0.1:$PROXY_PORT"
  --access-log off --workers 1 --module-dir "$WORK/modules" --hook-instance-slots 0)

if [[ "$HOOK" = 1 ]]; then
  # Fills the module directory's artifact cache (the routes compile the hook).
  "${HOODY[@]}" 2>"$WORK/logs/warm.log" &
  warm=$!
  client 1 hooked.test
  kill -INT "$warm"
  wait "$warm" 2>/dev/null || true
  plain=$(per_request plain bench.test "${HOODY[@]}")
  hooked=$(per_request hooked hooked.test "${HOODY[@]}")
  echo "instructions per request (user space, callgrind)"
  echo "plain   $plain"
  echo "hooked  $hooked"
  awk -v p="$plain" -v h="$hooked" 'BEGIN { printf "hook    +%d (%.3fx)\n", h - p, h / p }'
  exit 0
fi

hoody=$(per_request hoody bench.test "${HOODY[@]}")
nginx=$(per_request nginx bench.test "$NGINX" -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf" \
  -g 'daemon off; master_process off;')
echo "instructions per request (user space, callgrind)"
echo "hoody  $hoody"
echo "nginx  $nginx"
awk -v h="$hoody" -v n="$nginx" 'BEGIN { printf "ratio  hoody/nginx: %.3f\n", h / n }'
