#!/usr/bin/env bash
# Live-capture overhead: wrk against nginx on loopback, with and without `adi --all`, side by
# side in one run (this machine is shared and noisy: compare ratios, not absolute figures).
#
#   sudo benches/overhead/run.sh [SECONDS [ROUNDS [FLAGS...]]]   # needs nginx and wrk
#
# SECONDS per wrk run (default 20), ROUNDS (default 3): each round runs wrk without adi, then
# once with adi per FLAGS argument (each a string of adi flags; by default adi's defaults,
# "--max-rate 0" (every exchange captured in full) and "--max-rate 0 --idle-priority"). Each
# run's throughput and p99 latency are compared with the baseline of its own round, and the
# median ratio over the rounds is printed per FLAGS. Every run also reports adi's CPU time and
# peak RSS under load (and at start), and the accounting: HTTP messages that crossed watched sockets vs `http` events plus
# every loss adi counted (sampled exchanges, ring buffer, queues). ADI_SELECT replaces `--all`
# (e.g. ADI_SELECT="--pid 1" measures the tracepoint alone). ADI_TLS=1 serves HTTPS (a
# self-signed certificate, keep-alive) so that the libssl uprobes are measured:
#   sudo ADI_TLS=1 ADI_SELECT=nginx benches/overhead/run.sh 10 5 "--tls-uprobes off" "" \
#        "--tls-uprobes watched"
# (ADI_SELECT=nginx watches nginx alone: wrk, which uses OpenSSL too, is not watched.)
# A FLAGS string starting with @PATH runs the adi binary at PATH for that configuration, so
# that two builds compare side by side in one run (before/after a change):
#   sudo benches/overhead/run.sh 8 5 "@/tmp/before/adi --max-rate 0" "--max-rate 0"
# The kernel's run time of adi's socket programs (kernel.bpf_stats_enabled, on for the run and
# restored after) is reported per run: nanoseconds per program run, per captured message and
# per message left out (sampled).
# Starts its own nginx on a free port; stops only its own pids.
set -euo pipefail

DUR=${1:-20}
ROUNDS=${2:-3}
shift 2 || shift $# || true
if (($# == 0)); then set -- "" "--max-rate 0" "--max-rate 0 --idle-priority"; fi
SELECT=${ADI_SELECT:---all}
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh" overhead
need_adi
command -v bpftool > /dev/null || { echo "bpftool not found (apt-get install bpftool)" >&2; exit 1; }
BPF_STATS=$(sysctl -n kernel.bpf_stats_enabled)
sysctl -qw kernel.bpf_stats_enabled=1
trap 'sysctl -qw kernel.bpf_stats_enabled=$BPF_STATS; cleanup' EXIT
SCHEME=http
if [[ ${ADI_TLS:-} == 1 ]]; then
    SCHEME=https
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
        -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2> /dev/null
    start_nginx https ssl "ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem;"
else
    start_nginx
fi
# ADI_SELECT=nginx: watch the server alone (wrk is then a process adi does not watch).
if [[ $SELECT == nginx ]]; then SELECT="--pid $NGINX"; fi

# One wrk run, named $1: its report, and the CPU seconds wrk and nginx used (steal time on a
# shared VM is not in them, so CPU per request is steadier than throughput).
run_wrk() {
    local n0
    n0=$(awk '{print $14 + $15}' "/proc/$NGINX/stat")
    python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[2:], stdout=open(sys.argv[1], "w"), check=True)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(r.ru_utime + r.ru_stime)' "$WORK/$1.txt" wrk -t2 -c50 -d"${DUR}s" --latency "$SCHEME://127.0.0.1:$PORT/" > "$WORK/$1.cpu"
    echo $(($(awk '{print $14 + $15}' "/proc/$NGINX/stat") - n0)) >> "$WORK/$1.cpu"
}
# Microseconds of wrk + nginx CPU per request of run $1.
cpu_per_req() { python3 -c 'import sys; w, n = open(sys.argv[1]).read().split(); print((float(w) + int(n) / int(sys.argv[2])) / int(sys.argv[3]) * 1e6)' "$WORK/$1.cpu" "$HZ" "$(reqs "$1")"; }
reqs() { awk '/requests in/ {print $1}' "$WORK/$1.txt"; }
rps() { awk '/Requests\/sec/ {print $2}' "$WORK/$1.txt"; }
# wrk prints p99 as e.g. "99%    3.21ms" or "1.02s": normalise to milliseconds.
p99() { awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' "$WORK/$1.txt"; }

# Run time (ns) and runs of adi's socket programs (adi_sock_send, adi_sock_recv) loaded after
# program id $1: "NS RUNS".
bpf_runs() {
    bpftool prog show -j | python3 -c 'import json, sys
progs = [p for p in json.load(sys.stdin) if p["id"] > int(sys.argv[1]) and p.get("name") in ("adi_sock_send", "adi_sock_recv")]
print(sum(p.get("run_time_ns", 0) for p in progs), sum(p.get("run_cnt", 0) for p in progs))' "$1"
}
last_prog_id() { bpftool prog show -j | python3 -c 'import json, sys; print(max([p["id"] for p in json.load(sys.stdin)] + [0]))'; }

HZ=$(getconf CLK_TCK)
RESULTS="$WORK/results.tsv"   # config, throughput ratio, p99 ratio, CPU per request ratio

# One run with adi, reported against its round's baseline. $1: run name, $2: baseline name,
# $3: config number; the rest: adi's flags.
with_adi() {
    local name=$1 base=$2 config=$3; shift 3
    local out="$WORK/$name.jsonl" adi=$ADI
    if [[ ${1:-} == @* ]]; then adi=${1#@}; shift; fi
    echo "-- $adi $SELECT $* --sink jsonl=FILE"
    local before_id
    before_id=$(last_prog_id)
    # shellcheck disable=SC2086 # SELECT is a string of flags
    "$adi" $SELECT "$@" --sink "jsonl=$out" 2> "$WORK/$name.err" & ADIPID=$!; PIDS+=("$ADIPID")
    wait_watching "$WORK/$name.err"
    # adi's CPU time from here on: its start (loading and verifying the programs) is not load.
    local ticks0 start_kb
    ticks0=$(awk '{print $14 + $15}' "/proc/$ADIPID/stat")
    # Peak RSS of the start (loading parses the kernel's BTF, freed at once), then the peak
    # is reset (clear_refs 5) so that the one reported is the peak under load.
    start_kb=$(awk '/VmHWM/ {print $2}' "/proc/$ADIPID/status")
    echo 5 > "/proc/$ADIPID/clear_refs"
    local bpf0 bpf1
    bpf0=$(bpf_runs "$before_id")
    run_wrk "$name"
    bpf1=$(bpf_runs "$before_id")
    sleep 1
    local rss_kb cpu_ticks
    rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$ADIPID/status")
    cpu_ticks=$(($(awk '{print $14 + $15}' "/proc/$ADIPID/stat") - ticks0))
    kill -TERM "$ADIPID"; wait "$ADIPID" || true
    local http_events lost
    http_events=$(grep -c '"event_type":"http"' "$out" || true)
    # Every loss adi reported, from its `lost` events (sampling, kernel ring buffer, queues).
    lost=$(python3 -c 'import json,sys; print(sum(json.loads(l)["count"] for l in open(sys.argv[1]) if "\"event_type\":\"lost\"" in l))' "$out")
    python3 - "$(rps "$base")" "$(rps "$name")" "$(p99 "$base")" "$(p99 "$name")" "$(reqs "$name")" "$cpu_ticks" "$HZ" "$rss_kb" "$DUR" "$http_events" "$lost" "$(stat -c %s "$out")" "$config" "$SELECT" "$(cpu_per_req "$base")" "$(cpu_per_req "$name")" "$start_kb" >> "$RESULTS" <<'PY'
import sys
rb, ra, pb, pa, reqs, ticks, hz, rss, dur, http_events, lost, size, config, select, cb, ca, start = sys.argv[1:]
rb, ra, pb, pa, cb, ca = map(float, (rb, ra, pb, pa, cb, ca))
cpu = int(ticks) / int(hz)
out = sys.stderr
print(f"   throughput {rb:.0f} -> {ra:.0f} req/s (ratio {ra / rb:.3f}); p99 {pb:.2f} -> {pa:.2f} ms (ratio {pa / pb:.3f})", file=out)
print(f"   wrk + nginx CPU per request {cb:.1f} -> {ca:.1f} us (ratio {ca / cb:.3f}, +{ca - cb:.1f} us)", file=out)
print(f"   adi: {cpu:.1f} s CPU over {dur} s of load ({100 * cpu / float(dur):.0f}% of one core), peak RSS under load {int(rss) / 1024:.1f} MiB (at start {int(start) / 1024:.1f} MiB), {int(size) / 2**20:.0f} MiB of JSON lines", file=out)
if select == "--all":
    # --all sees each exchange four times: wrk's request and response, nginx's request and response.
    msgs = 4 * int(reqs)
    total = int(http_events) + int(lost)
    verdict = "every message accounted for" if total >= msgs else "UNACCOUNTED messages"
    print(f"   {msgs} HTTP messages crossed watched sockets; {http_events} http events + {lost} counted losses = {total} ({verdict})", file=out)
print(f"{config}\t{ra / rb:.4f}\t{pa / pb:.4f}\t{ca / cb:.4f}")
PY
    grep -E "^adi: (lost|stopped)" "$WORK/$name.err" | sed 's/^/   /'
    # Counted: deleted, so that the next run does not write into a page cache this one
    # filled (full capture writes gigabytes).
    rm -f "$out"
    # Kernel side: what the socket programs cost per run, and per message captured or left
    # out. A run that captures sends one kernel event; one left out by sampling is counted.
    python3 - $bpf0 $bpf1 "$WORK/$name.err" <<'PY'
import re, sys
ns0, n0, ns1, n1 = map(int, sys.argv[1:5])
err = open(sys.argv[5]).read()
events = int(re.search(r"from (\d+) kernel events", err).group(1))
sampled = int(re.search(r"(\d+) messages sampled out", err).group(1))
ns, runs = ns1 - ns0, n1 - n0
if runs:
    print(f"   kernel: adi's socket programs ran {runs} times, {ns / runs:.0f} ns per run "
          f"({ns / 1e9:.2f} s in all); {events} kernel events sent, {sampled} messages sampled out")
PY
}

for round in $(seq "$ROUNDS"); do
    echo "== round $round: wrk -t2 -c50 -d${DUR}s without adi"
    run_wrk "base$round"
    echo "   $(rps "base$round") req/s, p99 $(p99 "base$round") ms, wrk + nginx CPU $(cpu_per_req "base$round") us per request"
    config=0
    for flags in "$@"; do
        config=$((config + 1))
        # shellcheck disable=SC2086 # each argument is a string of flags
        with_adi "r${round}c$config" "base$round" "$config" $flags 2>&1
    done
done

echo
echo "== medians over $ROUNDS rounds (ratio to the baseline of the same round)"
config=0
for flags in "$@"; do
    config=$((config + 1))
    python3 - "$RESULTS" "$config" "adi $SELECT $flags" <<'PY'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]) if l.split("\t")[0] == sys.argv[2]]
t = [float(r[1]) for r in rows]
p = [float(r[2]) for r in rows]
c = [float(r[3]) for r in rows]
print(f"{sys.argv[3]}: throughput ratio {statistics.median(t):.3f} (rounds: {', '.join(f'{x:.3f}' for x in t)}); "
      f"p99 latency ratio {statistics.median(p):.2f}; wrk + nginx CPU per request ratio {statistics.median(c):.3f}")
PY
done
