#!/usr/bin/env bash
# Where adi's own CPU goes under load: wrk against nginx on loopback (as run.sh does) with
# `adi --all --max-rate 0` (every message captured), adi sampled by `perf record` (software
# clock, call graphs by frame pointers and DWARF where available). Prints the top frames by
# self time and by inclusive time, and adi's CPU per event.
#
#   sudo benches/overhead/profile.sh [SECONDS] [ADI FLAGS...]   # 10, --max-rate 0
#
# Needs nginx, wrk and perf (Debian: linux-perf). Starts its own nginx on a free port; stops
# only its own pids.
set -euo pipefail

DUR=${1:-10}
shift || true
if (($# == 0)); then set -- --max-rate 0; fi
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh" profile
need_adi
command -v perf >/dev/null || { echo "perf not found (apt-get install linux-perf)" >&2; exit 1; }
start_nginx

"$ADI" --all "$@" --quiet --sink "jsonl=$WORK/events.jsonl" 2>"$WORK/adi.err" &
ADI_PID=$!
PIDS+=("$ADI_PID")
wait_watching "$WORK/adi.err"
perf record -F 499 -e cpu-clock --call-graph dwarf,16384 -p "$ADI_PID" -o "$WORK/perf.data" \
    -- sleep "$((DUR + 1))" 2>"$WORK/perf.err" &
PERF=$!
# utime and stime: the user-space part is adi's own code, the system part mostly writing the
# output file (the kernel copying each line into the page cache).
read -r u0 s0 < <(cpu_ticks "$ADI_PID")
wrk -t2 -c50 -d"${DUR}s" "http://127.0.0.1:$PORT/" >"$WORK/wrk.txt"
read -r u1 s1 < <(cpu_ticks "$ADI_PID")
wait "$PERF" || true
kill -INT "$ADI_PID"; wait "$ADI_PID" || true
events=$(wc -l <"$WORK/events.jsonl")
echo "wrk: $(grep -E 'Requests/sec' "$WORK/wrk.txt")"
bytes=$(stat -c %s "$WORK/events.jsonl")
awk -v u="$((u1 - u0))" -v s="$((s1 - s0))" -v hz="$(getconf CLK_TCK)" -v n="$events" -v b="$bytes" \
    'BEGIN { printf "adi: %.2f s CPU for %d events (%.0f bytes each), %.2f us per event: %.2f us user, %.2f us system\n", (u + s) / hz, n, b / n, (u + s) / hz * 1e6 / n, u / hz * 1e6 / n, s / hz * 1e6 / n }'
echo "--- top frames, self time"
perf report -i "$WORK/perf.data" --no-children --sort symbol --stdio 2>/dev/null \
    | grep -E '^ +[0-9.]+%' | head -30
echo "--- top frames, with callees"
perf report -i "$WORK/perf.data" --children --sort symbol --stdio 2>/dev/null \
    | grep -E '^ +[0-9.]+%' | head -30
