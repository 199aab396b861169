#!/usr/bin/env bash
# What `--go-uprobes auto` (the default) saves: a Go client making N HTTPS requests (keep-alive)
# to a Go server, both watched by adi with TLS plaintext on, with the Go HTTP uprobes on
# (`--go-uprobes on`) and without them (`auto`: crypto/tls plaintext already gives the
# requests), and without adi, side by side in one run (rounds alternate: the machine is
# shared and noisy). Every exchange is captured (`--max-rate 0`).
#
#   sudo benches/go_uprobes/auto.sh [REQUESTS] [ROUNDS] [GO_VERSION] [PROTO]  # 5000, 5, 1.23.9, h1
#
# PROTO h1 serves HTTP/1.1, h2 HTTP/2. Prints per run the client's wall time per request, the
# client's and the server's CPU time per request, and adi's `http` and `go_http` events; then
# the medians per mode and the CPU each mode adds per request over the baseline. Stops only its
# own pids.
set -euo pipefail

N=${1:-5000}
ROUNDS=${2:-5}
V=${3:-1.23.9}
PROTO=${4:-h1}
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh" goauto
need_adi

cd "$ROOT"
testdata/go/build-targets.sh target/go-targets "$V" >/dev/null
BIN=$ROOT/target/go-targets/$V/static
HZ=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
H2=()
[[ $PROTO == h2 ]] && H2=(-h2)
"$BIN/server" -addr 127.0.0.1:0 -tls-cert "$WORK/cert.pem" -tls-key "$WORK/key.pem" "${H2[@]}" \
    >"$WORK/server.out" 2>/dev/null &
SERVER=$!
PIDS+=("$SERVER")
for _ in $(seq 50); do grep -q listening "$WORK/server.out" 2>/dev/null && break; sleep 0.1; done
URL="https://$(sed -n 's/^listening on //p' "$WORK/server.out")/status/200?x=1"

# Waits until adi's stderr has $2 lines matching $1.
wait_for() {
    for _ in $(seq 400); do
        (($(grep -c -- "$1" "$WORK/adi.err" 2>/dev/null || true) >= $2)) && return
        sleep 0.05
    done
    echo "adi never said '$1'" >&2
    cat "$WORK/adi.err" >&2
    exit 1
}

# One run of mode $1 (none | on | auto): "wall client_cpu server_cpu http_events go_http_events".
run() {
    local mode=$1
    rm -f "$WORK/go"
    mkfifo "$WORK/go"
    /usr/bin/time -f "%U %S" -o "$WORK/client.time" "$BIN/client" -wait -insecure -n "$N" "$URL" \
        <"$WORK/go" >/dev/null &
    local timer=$!
    exec 7>"$WORK/go"
    local client
    for _ in $(seq 100); do
        client=$(pgrep -P "$timer" -x client || true)
        [[ -n $client ]] && break
        sleep 0.02
    done
    local adi=""
    if [[ $mode != none ]]; then
        "$ADI" --pid "$SERVER" --pid "$client" --max-rate 0 --go-uprobes "$mode" --quiet \
            --sink "jsonl=$WORK/events.jsonl" 2>"$WORK/adi.err" &
        adi=$!
        wait_for "TLS plaintext read from Go program" 2
        if [[ $mode == on ]]; then wait_for "Go uprobes on pid" 2; else wait_for "not needed on pid" 2; fi
    fi
    local s0 t0 t1 s1
    s0=$(cpu_ticks "$SERVER")
    t0=$(date +%s%N)
    echo go >&7
    wait "$timer"
    t1=$(date +%s%N)
    s1=$(cpu_ticks "$SERVER")
    exec 7>&-
    local http=0 gohttp=0
    if [[ -n $adi ]]; then
        sleep 0.5
        kill -INT "$adi"
        wait "$adi" || true
        http=$(grep -c '"event_type":"http"' "$WORK/events.jsonl" || true)
        gohttp=$(grep -c '"event_type":"go_http"' "$WORK/events.jsonl" || true)
        rm -f "$WORK/events.jsonl"
    fi
    read -r cu cs <"$WORK/client.time"
    awk -v n="$N" -v t0="$t0" -v t1="$t1" -v cu="$cu" -v cs="$cs" -v s0="$s0" -v s1="$s1" \
        -v hz="$HZ" -v h="$http" -v g="$gohttp" 'BEGIN {
        printf "%.2f %.2f %.2f %d %d\n", (t1 - t0) / 1000 / n, (cu + cs) * 1e6 / n,
            (s1 - s0) / hz * 1e6 / n, h, g }'
}

echo "Go $V static client and server over HTTPS ($PROTO), $N requests per run, $ROUNDS rounds"
printf '%-6s %-5s %12s %12s %12s %8s %8s\n' round mode wall_us/req client_cpu server_cpu http go_http
for r in $(seq "$ROUNDS"); do
    for mode in none on auto; do
        read -r wall ccpu scpu h g < <(run "$mode")
        printf '%-6s %-5s %12s %12s %12s %8s %8s\n' "$r" "$mode" "$wall" "$ccpu" "$scpu" "$h" "$g"
        echo "$mode $wall $ccpu $scpu" >>"$WORK/results"
    done
done
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
for col in 2 3 4; do
    m() { awk -v c="$col" -v mode="$1" '$1 == mode {print $c}' "$WORK/results" | median; }
    none=$(m none) on=$(m on) auto=$(m auto)
    name=$(case $col in 2) echo "wall per request" ;; 3) echo "client CPU per request" ;; 4) echo "server CPU per request" ;; esac)
    awk -v n="$name" -v none="$none" -v on="$on" -v auto="$auto" 'BEGIN {
        printf "%-24s none %8.2f us  on %8.2f us (%+7.2f)  auto %8.2f us (%+7.2f)  auto saves %6.2f us\n",
            n, none, on, on - none, auto, auto - none, on - auto }'
done
