#!/usr/bin/env bash
# adi's own CPU per event at full capture, user and system apart, for one or more adi builds
# run alternately in the same rounds (this machine is shared: compare builds side by side).
#
#   sudo benches/overhead/per_event.sh [SECONDS [ROUNDS [ADI...]]]   # 5, 3, target/release/adi
#
# Each run: nginx on a free port, `ADI --all --max-rate 0` writing JSON lines to a file, wrk
# -t2 -c50 for SECONDS; then adi's utime and stime over the load divided by the lines written.
# User time is adi's own code (the issue-18 figure); system time is mostly the kernel copying
# the lines into the page cache. Needs nginx and wrk; stops only its own pids.
set -euo pipefail

DUR=${1:-5}
ROUNDS=${2:-3}
shift 2 || shift $# || true
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh" per-event
need_adi
if (($# == 0)); then set -- "$ADI"; fi
start_nginx

: > "$WORK/results.tsv"
for round in $(seq "$ROUNDS"); do
    for adi in "$@"; do
        rm -f "$WORK/events.jsonl"
        "$adi" --all --max-rate 0 --quiet --sink "jsonl=$WORK/events.jsonl" 2> "$WORK/adi.err" &
        pid=$!
        PIDS+=("$pid")
        wait_watching "$WORK/adi.err"
        read -r u0 s0 < <(cpu_ticks "$pid")
        rps=$(wrk -t2 -c50 -d"${DUR}s" "http://127.0.0.1:$PORT/" | awk '/Requests\/sec/ {print $2}')
        read -r u1 s1 < <(cpu_ticks "$pid")
        kill -INT "$pid"; wait "$pid" || true
        events=$(wc -l < "$WORK/events.jsonl")
        awk -v adi="$adi" -v r="$round" -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v n="$events" \
            -v rps="$rps" -v hz="$(getconf CLK_TCK)" 'BEGIN {
                printf "%s\t%d\t%d\t%s\t%.3f\t%.3f\n", adi, r, n, rps, u / hz * 1e6 / n, s / hz * 1e6 / n }' \
            | tee -a "$WORK/results.tsv" \
            | awk -F'\t' '{ printf "round %s %s: %s events at %s req/s, %s us user + %s us system per event\n", $2, $1, $3, $4, $5, $6 }'
    done
done
echo "== medians over $ROUNDS rounds"
python3 - "$WORK/results.tsv" "$@" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
for adi in sys.argv[2:]:
    mine = [r for r in rows if r[0] == adi]
    u = statistics.median(float(r[4]) for r in mine)
    s = statistics.median(float(r[5]) for r in mine)
    print(f"{adi}: {u:.2f} us user + {s:.2f} us system per event")
PY
