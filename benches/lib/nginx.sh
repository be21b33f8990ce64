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

# nginx_start WORKERS HTTP [NAME]: starts nginx with WORKERS worker processes
# and HTTP (server and upstream blocks) inside its http block; NAME (default
# "nginx") keeps several instances apart in WORK.
nginx_start() {
  local name="${3:-nginx}"
  local dir="$WORK/$name"
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
  "$NGINX" -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' &
  PIDS+=($!)
}
