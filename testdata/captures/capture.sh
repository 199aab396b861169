#!/usr/bin/env bash
# Records real loopback traffic into the pcap corpus used by `adi classify` tests.
#
# Usage: sudo testdata/captures/capture.sh [OUTDIR]   (OUTDIR defaults to this script's directory)
#
# Every server and client runs on 127.0.0.1 or ::1 only. Each server port is checked to be
# free before use and, after start-up, checked to be owned by the process this script started.
# A capture whose port is taken is skipped (the previous file, if any, is left in place).
# Only processes this script started are stopped, by pid, from an EXIT trap.
#
# For each capture NAME this writes NAME.pcap (or .pcapng) and NAME.expected.jsonl: one line per
# TCP connection, {"client","server","protocol"}, sorted by the connection's first SYN. The
# expectation comes from tshark (who sent the SYN) plus this script's own table of which server
# port speaks which protocol -- never from adi.
set -euo pipefail

OUT=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
mkdir -p "$OUT"

if [[ $(id -u) -ne 0 ]]; then
  echo "capture.sh: tcpdump on loopback needs root: run it with sudo" >&2
  exit 1
fi
for tool in tcpdump tshark editcap nginx curl go python3 openssl ss; do
  command -v "$tool" >/dev/null || { echo "capture.sh: missing $tool" >&2; exit 1; }
done

TMP=$(mktemp -d /tmp/adi-captures.XXXXXX)
chmod 755 "$TMP" # nginx workers run as nobody and must read $TMP/www
PIDS=()

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '== %s\n' "$*" >&2; }

# Stop one of our own processes (by pid) and forget it.
stop_pid() {
  local pid=$1 sig=${2:-TERM} keep=() p
  kill "-$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# port_free PORT: true when nothing listens on TCP PORT (any address).
port_free() {
  [[ -z $(ss -Hltn "sport = :$1") ]]
}

# wait_listener PORT PID: wait until PORT is listening and owned by PID (or a child of PID).
wait_listener() {
  local port=$1 pid=$2 owners o
  for _ in $(seq 1 100); do
    owners=$(ss -Hltnp "sport = :$port" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u || true)
    for o in $owners; do
      if [[ $o == "$pid" || $(ps -o ppid= -p "$o" 2>/dev/null | tr -d ' ') == "$pid" ]]; then
        return 0
      fi
    done
    if [[ -n $owners ]]; then
      echo "capture.sh: port $port is held by pid(s) $owners, not by our pid $pid" >&2
      return 1
    fi
    kill -0 "$pid" 2>/dev/null || { echo "capture.sh: server pid $pid for port $port died" >&2; return 1; }
    sleep 0.1
  done
  echo "capture.sh: timed out waiting for port $port" >&2
  return 1
}

# ---------------------------------------------------------------- fixtures served and used
mkdir -p "$TMP/www"
cat >"$TMP/www/index.html" <<'EOF'
<!doctype html>
<html><head><title>adi test page</title></head>
<body><p>Static page served for the adi capture corpus.</p></body></html>
EOF
cat >"$TMP/www/data.json" <<'EOF'
{"id": 7, "name": "widget", "tags": ["a", "b"], "price": 12.5, "in_stock": true, "owner": null}
EOF
chmod 644 "$TMP/www/index.html" "$TMP/www/data.json"
chmod 755 "$TMP/www"

# Python helpers: HTTP server (http.server with a JSON POST handler, optionally chunked
# responses), raw echo server, SSH-banner server, and their clients. Standard library only.
cat >"$TMP/helper.py" <<'EOF'
import http.server, json, os, socket, socketserver, sys, urllib.request

def http_server(host, port, directory, chunked):
    class Handler(http.server.SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=directory, **kw)
        def do_GET(self):
            if not chunked:
                return super().do_GET()
            parts = [b'{"items": [', b'{"n": 1}, {"n": 2}', b', {"n": 3}]}\n']
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for p in parts:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(p), p))
            self.wfile.write(b"0\r\n\r\n")
        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            try:
                received = json.loads(body)
            except ValueError:
                received = None
            out = json.dumps({"ok": True, "received": received}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
    class Server(http.server.ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        daemon_threads = True
    Server((host, port), Handler).serve_forever()

def tcp_server(host, port, handler_cls):
    class Server(socketserver.ThreadingTCPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        allow_reuse_address = True
        daemon_threads = True
    Server((host, port), handler_cls).serve_forever()

class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)

BANNER_SERVER = b"SSH-2.0-OpenSSH_9.2\r\n"
BANNER_CLIENT = b"SSH-2.0-OpenSSH_9.2\r\n"

class SshBanner(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(BANNER_SERVER)   # SSH servers speak first (RFC 4253 section 4.2)
        self.wfile.flush()
        self.rfile.readline(255)

def post_json(url):
    body = json.dumps({"user": "alice", "items": [1, 2, 3], "note": "adi capture"}).encode()
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        print(r.status, r.read().decode())

def random_client(host, port, n):
    payload = os.urandom(n)
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            got += d
    assert got == payload, (len(got), len(payload))
    print("echoed", len(got), "bytes")

def ssh_client(host, port):
    with socket.create_connection((host, port), timeout=10) as s:
        f = s.makefile("rb")
        line = f.readline(255)
        s.sendall(BANNER_CLIENT)
        print("server banner", line)

cmd = sys.argv[1]
if cmd == "http":
    http_server(sys.argv[2], int(sys.argv[3]), sys.argv[4], chunked=False)
elif cmd == "chunked":
    http_server(sys.argv[2], int(sys.argv[3]), sys.argv[4], chunked=True)
elif cmd == "echo":
    tcp_server(sys.argv[2], int(sys.argv[3]), Echo)
elif cmd == "ssh":
    tcp_server(sys.argv[2], int(sys.argv[3]), SshBanner)
elif cmd == "post":
    post_json(sys.argv[2])
elif cmd == "random":
    random_client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
elif cmd == "sshclient":
    ssh_client(sys.argv[2], int(sys.argv[3]))
else:
    sys.exit("unknown helper command " + cmd)
EOF

# Go net/http client (stdlib only): GETs each URL in order on one http.Client (keep-alive).
mkdir -p "$TMP/goclient"
cat >"$TMP/goclient/main.go" <<'EOF'
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	c := &http.Client{Timeout: 10 * time.Second}
	for _, u := range os.Args[1:] {
		r, err := c.Get(u)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		fmt.Printf("%s %d %d bytes\n", u, r.StatusCode, len(b))
	}
}
EOF
log "building Go client"
(cd "$TMP/goclient" &&
  GOTOOLCHAIN=local GOPROXY=off GOFLAGS= GO111MODULE=on GOCACHE="$TMP/gocache" GOPATH="$TMP/gopath" \
    HOME="$TMP" go build -o "$TMP/goclient/goclient" main.go)
GOCLIENT=$TMP/goclient/goclient

# Throwaway self-signed certificate for the TLS flow.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=localhost -keyout "$TMP/tls.key" -out "$TMP/tls.crt" 2>/dev/null

CURL=(curl -sS --max-time 10 -o /dev/null -w '%{http_code} %{url_effective}\n')
PY=(timeout 20 python3 "$TMP/helper.py")

# ---------------------------------------------------------------- servers
# start_nginx PORT: own nginx instance (temp prefix, daemon off, pid/logs in temp dir).
start_nginx() {
  local port=$1 prefix=$TMP/nginx-$1
  mkdir -p "$prefix/logs" "$prefix/tmp"
  cat >"$prefix/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $prefix/nginx.pid;
error_log $prefix/logs/error.log;
events { worker_connections 64; }
http {
    access_log $prefix/logs/access.log;
    client_body_temp_path $prefix/tmp/body;
    proxy_temp_path $prefix/tmp/proxy;
    fastcgi_temp_path $prefix/tmp/fastcgi;
    uwsgi_temp_path $prefix/tmp/uwsgi;
    scgi_temp_path $prefix/tmp/scgi;
    types { text/html html; application/json json; }
    default_type application/octet-stream;
    keepalive_timeout 15;
    server {
        listen 127.0.0.1:$port;
        server_name localhost;
        root $TMP/www;
        index index.html;
    }
}
EOF
  nginx -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/logs/error.log" &
  local pid=$!
  PIDS+=("$pid")
  wait_listener "$port" "$pid"
  LAST_PID=$pid
}

# start_bg PORT CMD...: start a server in the background and wait until it owns PORT.
start_bg() {
  local port=$1
  shift
  "$@" >"$TMP/server-$port.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  wait_listener "$port" "$pid"
  LAST_PID=$pid
}

# ---------------------------------------------------------------- capture plumbing
# start_capture IFACE FILE FILTER [extra tcpdump args]
start_capture() {
  local iface=$1 file=$2 filter=$3
  shift 3
  tcpdump -i "$iface" -n -U --immediate-mode -B 8192 -Z root -s 0 "$@" -w "$file" "$filter" 2>"$file.tcpdump.log" &
  CAP_PID=$!
  PIDS+=("$CAP_PID")
  for _ in $(seq 1 100); do
    grep -q 'listening on' "$file.tcpdump.log" 2>/dev/null && return 0
    kill -0 "$CAP_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$file.tcpdump.log" >&2
  echo "capture.sh: tcpdump did not start" >&2
  return 1
}

stop_capture() {
  sleep 0.5 # let the last FIN/ACKs through
  stop_pid "$CAP_PID" INT
  cat "$1.tcpdump.log" >&2
  # A small kernel buffer loses packets on -i any; a lossy capture is not a fixture.
  if ! grep -q '^0 packets dropped by kernel' "$1.tcpdump.log"; then
    echo "capture.sh: tcpdump dropped packets for $1: run the script again" >&2
    return 1
  fi
}

# write_expected CAPFILE OUTFILE PORTMAP_JSON
# PORTMAP_JSON maps server port -> protocol id, e.g. {"8080":"http1"}.
write_expected() {
  tshark -r "$1" -Y 'tcp.flags.syn==1 && tcp.flags.ack==0' -T fields -E separator=/t \
    -e frame.time_epoch -e ip.src -e ipv6.src -e tcp.srcport -e ip.dst -e ipv6.dst -e tcp.dstport |
    python3 -c '
import json, sys
portmap = json.loads(sys.argv[1])
def ep(ip4, ip6, port):
    return "[%s]:%s" % (ip6, port) if ip6 else "%s:%s" % (ip4, port)
rows, seen = [], set()
for line in sys.stdin:
    t, s4, s6, sp, d4, d6, dp = line.rstrip("\n").split("\t")
    key = (s4, s6, sp, d4, d6, dp)
    if key in seen:   # retransmitted SYN, or the same packet seen twice on -i any
        continue
    seen.add(key)
    if dp not in portmap:
        sys.exit("capture.sh: SYN to unexpected port %s" % dp)
    rows.append((float(t), {"client": ep(s4, s6, sp), "server": ep(d4, d6, dp), "protocol": portmap[dp]}))
rows.sort(key=lambda r: r[0])
with open(sys.argv[2], "w") as f:
    for _, r in rows:
        f.write(json.dumps(r, separators=(",", ":")) + "\n")
print("%d connections" % len(rows), file=sys.stderr)
' "$3" "$2"
}

# finish NAME CAPFILE PORTMAP_JSON: move the capture into $OUT with its expectation file.
finish() {
  local name=$1 cap=$2 portmap=$3 size
  size=$(stat -c %s "$cap")
  if ((size > 200 * 1024)); then
    echo "capture.sh: $name is $size bytes, over the 200 KB budget" >&2
    return 1
  fi
  if tshark -r "$cap" -q -z expert 2>/dev/null | grep -q 'not captured'; then
    echo "capture.sh: $name has segments missing (tshark expert info): run the script again" >&2
    return 1
  fi
  write_expected "$cap" "$TMP/$name.expected.jsonl" "$portmap"
  mv "$TMP/$name.expected.jsonl" "$OUT/$name.expected.jsonl"
  cp "$cap" "$OUT/$name.${cap##*.}"
  chmod 644 "$OUT/$name.${cap##*.}" "$OUT/$name.expected.jsonl"
  log "wrote $OUT/$name.${cap##*.} ($size bytes)"
  tshark -r "$OUT/$name.${cap##*.}" -q -z conv,tcp | sed -n '/<->/p' >&2
}

# need_ports NAME PORT...: true when every port is free; otherwise say so (capture skipped).
need_ports() {
  local name=$1 p
  shift
  for p in "$@"; do
    if ! port_free "$p"; then
      echo "capture.sh: SKIPPING $name: port $p is already in use:" >&2
      ss -Hltnp "sport = :$p" >&2 || true
      return 1
    fi
  done
}

stop_servers() {
  local pid
  for pid in "$@"; do stop_pid "$pid"; done
}

log "tool versions"
{
  tcpdump --version 2>&1 | head -2
  tshark --version | head -1
  nginx -v 2>&1
  curl --version | head -1
  go version
  python3 --version
  openssl version
} >&2

# ---------------------------------------------------------------- 1. http_default_ports
if need_ports http_default_ports 8080 8000; then
  log "http_default_ports"
  start_nginx 8080; ngx=$LAST_PID
  start_bg 8000 python3 "$TMP/helper.py" http 127.0.0.1 8000 "$TMP/www"; py=$LAST_PID
  cap=$TMP/http_default_ports.pcap
  start_capture lo "$cap" 'tcp and (port 8080 or port 8000)'
  "${CURL[@]}" http://127.0.0.1:8080/index.html
  "${CURL[@]}" http://127.0.0.1:8080/data.json
  "${CURL[@]}" http://127.0.0.1:8000/data.json
  timeout 20 "$GOCLIENT" http://127.0.0.1:8080/data.json
  "${PY[@]}" post http://127.0.0.1:8000/api/items
  stop_capture "$cap"
  stop_servers "$ngx" "$py"
  finish http_default_ports "$cap" '{"8080":"http1","8000":"http1"}'
fi

# ---------------------------------------------------------------- 2. http_nondefault_ports
if need_ports http_nondefault_ports 18081 19999 19998; then
  log "http_nondefault_ports"
  start_nginx 18081; ngx=$LAST_PID
  start_bg 19999 python3 "$TMP/helper.py" http 127.0.0.1 19999 "$TMP/www"; py=$LAST_PID
  start_bg 19998 python3 "$TMP/helper.py" chunked 127.0.0.1 19998 "$TMP/www"; pyc=$LAST_PID
  cap=$TMP/http_nondefault_ports.pcap
  start_capture lo "$cap" 'tcp and (port 18081 or port 19999 or port 19998)'
  "${CURL[@]}" http://127.0.0.1:18081/index.html
  "${CURL[@]}" http://127.0.0.1:19999/data.json
  timeout 20 "$GOCLIENT" http://127.0.0.1:18081/data.json http://127.0.0.1:18081/index.html
  "${PY[@]}" post http://127.0.0.1:19999/api/items
  # keep-alive: two requests on one connection
  "${CURL[@]}" http://127.0.0.1:18081/index.html http://127.0.0.1:18081/data.json
  # chunked response
  "${CURL[@]}" http://127.0.0.1:19998/stream
  stop_capture "$cap"
  stop_servers "$ngx" "$py" "$pyc"
  finish http_nondefault_ports "$cap" '{"18081":"http1","19999":"http1","19998":"http1"}'
fi

# ---------------------------------------------------------------- 3. http_decoy_ports
if need_ports http_decoy_ports 6379 5432; then
  log "http_decoy_ports"
  start_bg 6379 python3 -m http.server --bind 127.0.0.1 --directory "$TMP/www" 6379; p1=$LAST_PID
  start_bg 5432 python3 -m http.server --bind 127.0.0.1 --directory "$TMP/www" 5432; p2=$LAST_PID
  cap=$TMP/http_decoy_ports.pcap
  start_capture lo "$cap" 'tcp and (port 6379 or port 5432)'
  "${CURL[@]}" http://127.0.0.1:6379/data.json
  "${CURL[@]}" http://127.0.0.1:5432/index.html
  timeout 20 "$GOCLIENT" http://127.0.0.1:6379/index.html
  stop_capture "$cap"
  stop_servers "$p1" "$p2"
  finish http_decoy_ports "$cap" '{"6379":"http1","5432":"http1"}'
fi

# ---------------------------------------------------------------- 4. non_http
if need_ports non_http 19101 19443 19022; then
  log "non_http"
  start_bg 19101 python3 "$TMP/helper.py" echo 127.0.0.1 19101; pe=$LAST_PID
  start_bg 19443 openssl s_server -accept 127.0.0.1:19443 -cert "$TMP/tls.crt" -key "$TMP/tls.key" -www -naccept 1; pt=$LAST_PID
  start_bg 19022 python3 "$TMP/helper.py" ssh 127.0.0.1 19022; ps_=$LAST_PID
  cap=$TMP/non_http.pcap
  start_capture lo "$cap" 'tcp and (port 19101 or port 19443 or port 19022)'
  "${PY[@]}" random 127.0.0.1 19101 4096
  printf 'GET / HTTP/1.0\r\nHost: localhost\r\n\r\n' |
    timeout 20 openssl s_client -connect 127.0.0.1:19443 -servername localhost -quiet 2>/dev/null | head -c 200 >/dev/null || true
  "${PY[@]}" sshclient 127.0.0.1 19022
  stop_capture "$cap"
  stop_servers "$pe" "$pt" "$ps_"
  # An HTTP-only classifier must say unknown for all three (the TLS flow is `tls` once that
  # classifier exists; SSH is no built-in protocol, only the example plugin's).
  finish non_http "$cap" '{"19101":"unknown","19443":"unknown","19022":"unknown"}'
fi

# ---------------------------------------------------------------- 5. mixed_ipv6
if need_ports mixed_ipv6 19680; then
  log "mixed_ipv6"
  start_bg 19680 python3 -m http.server --bind ::1 --directory "$TMP/www" 19680; p6=$LAST_PID
  cap=$TMP/mixed_ipv6.pcap
  start_capture lo "$cap" 'tcp and port 19680'
  "${CURL[@]}" -g 'http://[::1]:19680/'
  "${CURL[@]}" -g 'http://[::1]:19680/data.json'
  stop_capture "$cap"
  stop_servers "$p6"
  finish mixed_ipv6 "$cap" '{"19680":"http1"}'
fi

# ---------------------------------------------------------------- 6a. http_any_sll2 (-i any)
if need_ports http_any_sll2 19780; then
  log "http_any_sll2"
  start_bg 19780 python3 "$TMP/helper.py" http 127.0.0.1 19780 "$TMP/www"; pa=$LAST_PID
  cap=$TMP/http_any_sll2.pcap
  start_capture any "$cap" 'tcp and host 127.0.0.1 and port 19780'
  "${CURL[@]}" http://127.0.0.1:19780/index.html
  "${PY[@]}" post http://127.0.0.1:19780/api/items
  stop_capture "$cap"
  stop_servers "$pa"
  finish http_any_sll2 "$cap" '{"19780":"http1"}'
fi

# ---------------------------------------------------------------- 6b. http_pcapng (pcapng, ns)
if need_ports http_pcapng 19880; then
  log "http_pcapng"
  start_nginx 19880; pn=$LAST_PID
  raw=$TMP/http_pcapng.nano.pcap
  start_capture lo "$raw" 'tcp and port 19880' --time-stamp-precision=nano
  "${CURL[@]}" http://127.0.0.1:19880/index.html
  "${CURL[@]}" http://127.0.0.1:19880/data.json
  stop_capture "$raw"
  stop_servers "$pn"
  editcap -F pcapng "$raw" "$TMP/http_pcapng.pcapng"
  finish http_pcapng "$TMP/http_pcapng.pcapng" '{"19880":"http1"}'
fi

log "done"
