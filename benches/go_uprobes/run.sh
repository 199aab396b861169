#!/usr/bin/env bash
# Cost of the Go HTTP uprobes per request (issue 5): a Go client making N requests (keep-alive)
# against a local Go server, without and with the uprobes attached to both, side by side in
# one run (rounds alternate: the machine is shared and noisy). Each request fires four
# uprobes: Client.do entry and RET, ServeHTTP entry and RET.
#
#   sudo benches/go_uprobes/run.sh [REQUESTS] [ROUNDS] [GO_VERSION]   # 20000, 3, 1.23.9
#
# Prints per round the client's wall time per request, the client's and the server's CPU time
# per request, and the events the watcher counted (must be 2 per request); then the medians and
# the added cost per request. The watcher is probes/examples/go_http_watch.rs. Stops only its
# own pids.
set -euo pipefail

N=${1:-20000}
ROUNDS=${2:-3}
V=${3:-1.23.9}
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh" gobench

cd "$ROOT"
cargo build --release -q -p adi-probes --example go_http_watch
WATCH=$ROOT/target/release/examples/go_http_watch
testdata/go/build-targets.sh target/go-targets "$V" >/dev/null
BIN=$ROOT/target/go-targets/$V/static
HZ=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

"$BIN/server" -addr 127.0.0.1:0 >"$WORK/server.out" 2>/dev/null &
SERVER=$!
PIDS+=("$SERVER")
for _ in $(seq 50); do grep -q listening "$WORK/server.out" 2>/dev/null && break; sleep 0.1; done
ADDR=$(sed -n 's/^listening on //p' "$WORK/server.out")
URL="http://$ADDR/status/200?x=1"

# One run: prints "wall_us_per_req client_cpu_us_per_req server_cpu_us_per_req events".
run() {
    local mode=$1
    rm -f "$WORK/go" "$WORK/watch_in"
    mkfifo "$WORK/go" "$WORK/watch_in"
    /usr/bin/time -f "%U %S" -o "$WORK/client.time" "$BIN/client" -wait -n "$N" "$URL" \
        <"$WORK/go" >/dev/null &
    local timer=$!
    exec 7>"$WORK/go"
    local client
    for _ in $(seq 100); do
        client=$(pgrep -P "$timer" -x client || true)
        [[ -n $client ]] && break
        sleep 0.02
    done
    local watcher=""
    if [[ $mode == on ]]; then
        "$WATCH" "$SERVER" "$client" <"$WORK/watch_in" 2>"$WORK/watch.err" &
        watcher=$!
        exec 8>"$WORK/watch_in"
        for _ in $(seq 200); do grep -q '^attached' "$WORK/watch.err" && break; sleep 0.05; done
    fi
    local s0 t0 t1 s1
    s0=$(cpu_ticks "$SERVER")
    t0=$(date +%s%N)
    echo go >&7
    wait "$timer"
    t1=$(date +%s%N)
    s1=$(cpu_ticks "$SERVER")
    exec 7>&-
    local events=0
    if [[ $mode == on ]]; then
        sleep 0.2
        exec 8>&-
        wait "$watcher"
        events=$(sed -n 's/^events \([0-9]*\).*/\1/p' "$WORK/watch.err")
    fi
    read -r cu cs <"$WORK/client.time"
    awk -v n="$N" -v t0="$t0" -v t1="$t1" -v cu="$cu" -v cs="$cs" -v s0="$s0" -v s1="$s1" \
        -v hz="$HZ" -v ev="$events" 'BEGIN {
        printf "%.2f %.2f %.2f %d\n", (t1 - t0) / 1000 / n, (cu + cs) * 1e6 / n,
            (s1 - s0) / hz * 1e6 / n, ev }'
}

echo "Go $V static client and server, $N requests per run, $ROUNDS rounds"
printf '%-6s %-4s %12s %12s %12s %8s\n' round mode wall_us/req client_cpu server_cpu events
for r in $(seq "$ROUNDS"); do
    for mode in off on; do
        read -r wall ccpu scpu ev < <(run "$mode")
        printf '%-6s %-4s %12s %12s %12s %8s\n' "$r" "$mode" "$wall" "$ccpu" "$scpu" "$ev"
        echo "$mode $wall $ccpu $scpu" >>"$WORK/results"
    done
done
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
for col in 2 3 4; do
    off=$(awk -v c="$col" '$1 == "off" {print $c}' "$WORK/results" | median)
    on=$(awk -v c="$col" '$1 == "on" {print $c}' "$WORK/results" | median)
    name=$(case $col in 2) echo "wall per request" ;; 3) echo "client CPU per request" ;; 4) echo "server CPU per request" ;; esac)
    awk -v n="$name" -v off="$off" -v on="$on" \
        'BEGIN { printf "%-24s off %8.2f us  on %8.2f us  added %+7.2f us\n", n, off, on, on - off }'
done
