# Shared by the load scripts in benches/: a scratch directory cleaned up on exit
# and an nginx instance in it. Source it; NGINX must be set.

# bench_workdir NAME: sets WORK to a new temporary directory; on exit every
# process whose pid is in PIDS is stopped and WORK removed.
bench_workdir() {
  WORK="$(mktemp -d "/tmp/$1.XXXXXX")"
  PIDS=()
  trap bench_cleanup EXIT
  mkdir -p "$WORK/logs" "$WORK/tmp"
  chmod 777 "$WORK/tmp"
}

bench_cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}

# The backend every script proxies to: a small fixed body on PORT.
nginx_backend_server() {
  cat <<CONF
  server {
    listen 127.0.0.1:$1 reuseport;
    location / { default_type text/plain; return 200 "hello from the backend\n"; }
  }
CONF
}

# nginx_conf WORKERS HTTP [NAME]: writes WORK/NAME/nginx.conf (NAME defaults
# to "nginx", keeping several instances apart in WORK) with WORKERS worker
# processes and HTTP (server and upstream blocks) inside its http block.
nginx_conf() {
  local dir="$WORK/${3:-nginx}"
  mkdir -p "$dir/logs" "$dir/tmp"
  chmod 777 "$dir/tmp"
  cat >"$dir/nginx.conf" <<CONF
worker_processes $1;
error_log $dir/logs/error.log warn;
pid $dir/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  keepalive_requests 1000000;
$2
}
CONF
}

# nginx_start WORKERS HTTP [NAME]: writes the configuration (nginx_conf) and
# starts that instance in the foreground of a background job.
nginx_start() {
  nginx_conf "$@"
  local dir="$WORK/${3:-nginx}"
  "$NGINX" -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' &
  PIDS+=($!)
}

# nginx_proxy_server PORT BACKEND_PORT: the server and upstream blocks of nginx
# as the reverse proxy under comparison: proxy_pass on PORT to a keep-alive
# upstream at BACKEND_PORT, setting the forwarding headers hoody sets.
nginx_proxy_server() {
  cat <<CONF
  upstream backend { server 127.0.0.1:$2; keepalive 128; }
  server {
    listen 127.0.0.1:$1 reuseport;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
CONF
}

# bench_hoody_bin: HOODY_BIN, defaulting to the workspace's release binary,
# built when missing.
bench_hoody_bin() {
  HOODY_BIN="${HOODY_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/hoody-api}"
  [[ -x "$HOODY_BIN" ]] || (cd "$ROOT" && cargo build --release --bin hoody-api)
}
