#!/usr/bin/env bash
# Cost of adi to processes it does NOT watch (issue 6): with the ADI_PROFILE opt-in enforced in
# the kernel, nothing of an unwatched process is copied; what remains is the socket
# tracepoints' own cost on each of its socket reads and writes (its other syscalls are not
# traced). Side by side in one run (the machine is shared and noisy).
#
#   sudo benches/opt_in/run.sh [SECONDS] [ROUNDS]     # default 10 s per run, 3 rounds
#
# Sets up 200 processes: 198 idle `sleep`s, 2 that opt in (ADI_PROFILE=bench) and call a local
# HTTP server 10 times a second; plus a busy unwatched process writing 64-byte messages on a
# loopback TCP connection. Each round measures, without and then with `adi` (default
# selection: the opt-in), the busy process's writes per second flat out, and its CPU time per
# write when paced at 50,000 writes/s; and adi's own CPU. Stops only its own pids.
set -euo pipefail

DUR=${1:-10}
ROUNDS=${2:-3}
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh" optin
need_adi
HZ=$(getconf CLK_TCK)

# The busy unwatched writer: prints "writes_per_s cpu_us_per_write". RATE 0 = flat out.
cat > "$WORK/writer.py" <<'PY'
import os, resource, socket, sys, time
dur, rate = float(sys.argv[1]), float(sys.argv[2])
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
c = socket.create_connection(srv.getsockname()); s, _ = srv.accept()
if os.fork() == 0:  # the reader: a child, so the writer's CPU time is its own
    c.close()
    while s.recv(1 << 20):
        pass
    os._exit(0)
s.close()
msg = b"x" * 64
n = 0
cpu0 = resource.getrusage(resource.RUSAGE_SELF)
t0 = time.perf_counter(); end = t0 + dur
while True:
    for _ in range(500):
        c.send(msg)
    n += 500
    now = time.perf_counter()
    if now >= end:
        break
    if rate:
        ahead = n / rate - (now - t0)
        if ahead > 0:
            time.sleep(ahead)
elapsed = time.perf_counter() - t0
cpu1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
c.close(); os.wait()
print(f"{n / elapsed:.0f} {cpu * 1e6 / n:.3f}")
PY

# 198 idle processes and 2 that opt in, calling a local server.
python3 -m http.server --bind 127.0.0.1 0 > "$WORK/http.log" 2>&1 & PIDS+=($!)
for _ in $(seq 100); do grep -q "Serving HTTP" "$WORK/http.log" && break; sleep 0.05; done
PORT=$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$WORK/http.log" | head -1)
TOTAL=$(( (DUR * 4 + 10) * ROUNDS ))
for _ in $(seq 198); do sleep "$TOTAL" & PIDS+=($!); done
for i in 1 2; do
    ADI_PROFILE=bench python3 -c "
import time, urllib.request
end = time.time() + $TOTAL
while time.time() < end:
    urllib.request.urlopen('http://127.0.0.1:$PORT/', timeout=5).read(); time.sleep(0.1)
" 2>/dev/null & PIDS+=($!)
done
echo "processes: $(ls /proc | grep -c '^[0-9]') on the machine (200 started here, 2 opted in)"

measure() { python3 "$WORK/writer.py" "$DUR" "$1"; }
cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# One line per measurement; the summary takes medians over the rounds.
echo "round adi flat_writes_per_s paced_writes_per_s cpu_us_per_write_at_50k adi_cpu_percent" > "$WORK/results"
for r in $(seq "$ROUNDS"); do
    read -r base_flat _ <<<"$(measure 0)"
    read -r base_paced base_cpu <<<"$(measure 50000)"
    echo "$r off $base_flat $base_paced $base_cpu -" >> "$WORK/results"
    "$ADI" --sink "jsonl=$WORK/events.jsonl" 2> "$WORK/adi.err" & ADIPID=$!; PIDS+=("$ADIPID")
    wait_watching "$WORK/adi.err"
    t0=$(cpu_of "$ADIPID"); s0=$(date +%s.%N)
    read -r adi_flat _ <<<"$(measure 0)"
    read -r adi_paced adi_cpu <<<"$(measure 50000)"
    t1=$(cpu_of "$ADIPID"); s1=$(date +%s.%N)
    kill -TERM "$ADIPID"; wait "$ADIPID" || true
    echo "$r on $adi_flat $adi_paced $adi_cpu $(printf '%.1f' "$(echo "($t1 - $t0) * 100 / $HZ / ($s1 - $s0)" | bc -l)")" >> "$WORK/results"
done
column -t "$WORK/results"
python3 - "$WORK/results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]).read().splitlines()[1:]]
rounds = sorted({r[0] for r in rows})
def ratio(col):
    vals = []
    for r in rounds:
        off = next(float(x[col]) for x in rows if x[0] == r and x[1] == "off")
        on = next(float(x[col]) for x in rows if x[0] == r and x[1] == "on")
        vals.append(on / off)
    return statistics.median(vals), min(vals), max(vals)
for name, col in [("paced 50,000 writes/s: throughput", 3), ("flat out: throughput", 2),
                  ("CPU time per write at 50,000/s", 4)]:
    m, lo, hi = ratio(col)
    print(f"{name} ratio with/without adi: median {m:.3f} (range {lo:.3f}..{hi:.3f})")
cpu = [float(x[5]) for x in rows if x[1] == "on"]
print(f"adi's own CPU: median {statistics.median(cpu):.1f}% of one core")
PY
echo "adi: $(grep -c '"event_type":"http"' "$WORK/events.jsonl" || true) http events from the 2 opted-in clients (all rounds); $(tail -3 "$WORK/adi.err" | tr '\n' ' ')"
