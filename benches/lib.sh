# Shared setup of the benchmark scripts: `source "$(dirname "$0")/../lib.sh" NAME`.
# Sets ROOT (the checkout), WORK (a temp dir /tmp/adi-NAME.*, removed at exit) and PIDS (the
# processes the script started: add to it; they are killed at exit, and only they).
# `need_adi` sets ADI (default target/release/adi) and builds it when missing.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d "/tmp/adi-$1.XXXXXX")
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

need_adi() {
    ADI=${ADI:-$ROOT/target/release/adi}
    [[ -x $ADI ]] || (cd "$ROOT" && cargo build --release -q -p adi-cli)
}

# Starts one nginx worker on a free loopback port serving a 612-byte page (the overhead load's
# server); sets PORT and NGINX (its pid, also in PIDS) and waits until it answers. Optional:
# $1 the scheme (http or https), $2 words after the listen address (`ssl`), $3 more server
# directives (the certificate).
start_nginx() {
    local scheme=${1:-http}
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    mkdir -p "$WORK"/{www,tmp}
    head -c 612 /dev/zero | tr '\0' 'a' > "$WORK/www/index.html"
    cat > "$WORK/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; pid $WORK/nginx.pid; error_log $WORK/error.log;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $WORK/tmp/b; proxy_temp_path $WORK/tmp/p;
  fastcgi_temp_path $WORK/tmp/f; uwsgi_temp_path $WORK/tmp/u; scgi_temp_path $WORK/tmp/s;
  server { listen 127.0.0.1:$PORT ${2:-}; ${3:-} root $WORK/www; } }
CONF
    nginx -p "$WORK" -c "$WORK/nginx.conf" &
    NGINX=$!
    PIDS+=("$NGINX")
    for _ in $(seq 100); do curl -sk -o /dev/null "$scheme://127.0.0.1:$PORT/" && break; sleep 0.05; done
}

# Waits (10 s at most) until the adi whose stderr goes to file $1 says it is watching.
wait_watching() {
    for _ in $(seq 200); do grep -q "adi: watching" "$1" 2> /dev/null && return; sleep 0.05; done
}

# CPU ticks process $1 has used: "USER SYSTEM" (utime and stime of /proc/PID/stat).
cpu_ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }
