#!/usr/bin/env bash
# Live-capture overhead: wrk against nginx on loopback, with and without `adi --all`, side by
# side in one run (this machine is shared and noisy: compare ratios, not absolute figures).
#
#   sudo benches/overhead/run.sh [SECONDS]        # default 20 s per run; needs nginx wrk
#
# Runs the baseline, then adi at normal priority, then adi with --idle-priority. Prints
# throughput and p99 latency of each run and their ratios to the baseline, adi's CPU time and peak
# RSS, and the accounting: requests wrk completed vs `http` request events nginx produced,
# plus every loss adi counted. Starts its own nginx on a free port; stops only its own pids.
set -euo pipefail

DUR=${1:-20}
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh" overhead
need_adi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$WORK"/{www,tmp}
head -c 612 /dev/zero | tr '\0' 'a' > "$WORK/www/index.html"
cat > "$WORK/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; pid $WORK/nginx.pid; error_log $WORK/error.log;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $WORK/tmp/b; proxy_temp_path $WORK/tmp/p;
  fastcgi_temp_path $WORK/tmp/f; uwsgi_temp_path $WORK/tmp/u; scgi_temp_path $WORK/tmp/s;
  server { listen 127.0.0.1:$PORT; root $WORK/www; } }
CONF
nginx -p "$WORK" -c "$WORK/nginx.conf" & NGINX=$!; PIDS+=("$NGINX")
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.05; done

run_wrk() { wrk -t2 -c50 -d"${DUR}s" --latency "http://127.0.0.1:$PORT/" > "$WORK/$1.txt"; }
reqs() { awk '/requests in/ {print $1}' "$WORK/$1.txt"; }
rps() { awk '/Requests\/sec/ {print $2}' "$WORK/$1.txt"; }
# wrk prints p99 as e.g. "99%    3.21ms" or "1.02s": normalise to milliseconds.
p99() { awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' "$WORK/$1.txt"; }

HZ=$(getconf CLK_TCK)
echo "== baseline: wrk -t2 -c50 -d${DUR}s, no adi"
run_wrk base

# One run with adi and its report against the baseline. $1: a name; the rest: adi's flags.
with_adi() {
    local name=$1; shift
    local out="$WORK/$name.jsonl"
    echo
    echo "== with adi --all $* --sink jsonl=FILE"
    "$ADI" --all "$@" --sink "jsonl=$out" 2> "$WORK/$name.err" & ADIPID=$!; PIDS+=("$ADIPID")
    for _ in $(seq 100); do grep -q watching "$WORK/$name.err" 2>/dev/null && break; sleep 0.1; done
    run_wrk "$name"
    sleep 1
    local rss_kb cpu_ticks
    rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$ADIPID/status")
    cpu_ticks=$(awk '{print $14 + $15}' "/proc/$ADIPID/stat")
    kill -TERM "$ADIPID"; wait "$ADIPID" || true
    local reqs events http_events lost
    reqs=$(reqs "$name")
    events=$(grep -c "\"pid\":$NGINX,.*\"method\":\"GET\"" "$out" || true)
    http_events=$(grep -c '"event_type":"http"' "$out" || true)
    # Every loss adi reported, from its `lost` events (kernel ring buffer, bus queues).
    lost=$(python3 -c 'import json,sys; print(sum(json.loads(l)["count"] for l in open(sys.argv[1]) if "\"event_type\":\"lost\"" in l))' "$out")
    python3 - "$(rps base)" "$(rps "$name")" "$(p99 base)" "$(p99 "$name")" "$reqs" "$events" "$cpu_ticks" "$HZ" "$rss_kb" "$DUR" "$http_events" "$lost" "$(stat -c %s "$out")" <<'PY'
import sys
rb, ra, pb, pa, reqs, events, ticks, hz, rss, dur, http_events, lost, size = sys.argv[1:]
rb, ra, pb, pa = map(float, (rb, ra, pb, pa))
cpu = int(ticks) / int(hz)
print(f"throughput: {rb:.0f} req/s without adi, {ra:.0f} with: ratio {ra / rb:.3f}")
print(f"p99 latency: {pb:.2f} ms without adi, {pa:.2f} ms with: ratio {pa / pb:.3f}")
print(f"adi: {cpu:.1f} s CPU over {dur} s of load ({100 * cpu / float(dur):.0f}% of one core), peak RSS {int(rss) / 1024:.1f} MiB, {int(size) / 2**20:.0f} MiB of JSON lines")
print(f"accounting: wrk completed {reqs} requests; nginx request events: {events}")
# --all sees each exchange four times: wrk's request and response, nginx's request and response.
msgs = 4 * int(reqs)
print(f"  {msgs} HTTP messages crossed watched sockets; {http_events} http events + {lost} counted losses"
      f" = {int(http_events) + int(lost)} ({'every message accounted for' if int(http_events) + int(lost) >= msgs else 'UNACCOUNTED messages'})")
PY
    echo "adi's own summary:"
    sed 's/^/  /' "$WORK/$name.err"
}

with_adi adi
# The same at the lowest CPU priority: adi takes only what the services leave idle.
with_adi idle --idle-priority
