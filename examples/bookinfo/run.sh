#!/usr/bin/env bash
# The Bookinfo demo as podman containers, watched by adi, and everything adi writes about them
# in one folder.
#
#   sudo examples/bookinfo/run.sh [OUT_DIR]        # default ./bookinfo-out
#
# Builds the images if needed (images.sh); starts `podman system service` (the Docker API adi
# reads containers from) on a socket in a temp dir; creates a podman network of its own (a free
# private /24); brings up with podman-compose (compose.yaml) productpage (published on a free
# port of 127.0.0.1), details (caches in Redis), reviews, ratings (reads PostgreSQL), postgres
# and redis; waits until productpage answers (60 s at most); starts adi on the processes that
# opted in (ADI_PROFILE=bookinfo); sends REQUESTS (20) GET /productpage/{1..5} with curl and
# checks every answer (details, and stars read from PostgreSQL) and Redis' hit and miss
# counters; stops adi and takes everything down again: containers, network, API service.
#
# Environment:
#   ADI              adi binary (default target/release/adi, built or brought up to date); `none`: no adi
#   ADI_FLAGS        more adi flags, e.g. "--max-rate 0"
#   REQUESTS         requests to send (default 20)
#   BOOKINFO_CACHE   images' rootfs tarballs and podman storage (default /tmp/adi-bookinfo)
#   BOOKINFO_INSTALL 1: apt-get install the packages images.sh finds missing
#
# Leaves in OUT_DIR: responses.jsonl (productpage's answers), events.jsonl, env.yaml, map.yaml
# (service map, seed format), map.dot and map.svg (`adi map render --format dot | dot -Tsvg`;
# the svg when Graphviz is installed). Needs root. Ctrl-C or SIGTERM tear down as a normal end
# does; after a SIGKILL a watchdog does it, and the next run sweeps whatever is left.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${1:-$PWD/bookinfo-out}
REQUESTS=${REQUESTS:-20}
[[ $REQUESTS =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: REQUESTS must be a positive number" >&2; exit 1; }
ADI=${ADI:-$ROOT/target/release/adi}
PROJECT=bookinfo
say() { echo "run.sh: $*" >&2; }

[[ $(id -u) == 0 ]] || { say "needs root (podman networks, adi)"; exit 1; }
# The default binary is this checkout's: built, or brought up to date (cargo does nothing when
# it is fresh).
if [[ $ADI == "$ROOT/target/release/adi" ]]; then (cd "$ROOT" && cargo build --release -q -p adi-cli); fi
"$HERE/images.sh"
# shellcheck source=env.sh
. "$HERE/env.sh"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
rm -f "$OUT"/{responses.jsonl,events.jsonl,env.yaml,map.yaml,map.dot,map.svg}

# Everything this script starts in podman's storage carries these labels: the sweep removes
# exactly that (the storage is the demo's own, see env.sh, so nothing else is touched).
sweep() {
    local ids nets
    ids=$(podman ps -aq --filter "label=io.podman.compose.project=$PROJECT" 2>/dev/null) || true
    # shellcheck disable=SC2086
    [[ -z $ids ]] || podman rm -f -t 3 $ids >/dev/null 2>&1 || true
    nets=$(podman network ls -q --filter label=app.bookinfo/demo 2>/dev/null) || true
    # shellcheck disable=SC2086
    [[ -z $nets ]] || podman network rm -f $nets >/dev/null 2>&1 || true
}
# pause SECONDS: sleeps with builtins only (a read on fd 9, a FIFO nobody writes to), so that
# no `sleep` child outlives a signal. while_alive waits while `kill -0 "$@"` works, at most
# $TIMEOUT tenths of a second; fails when time ran out.
pause() { read -r -t "$1" -u 9 || true; }
while_alive() {
    local n
    for ((n = 0; n < TIMEOUT; n++)); do kill -0 "$@" 2>/dev/null || return 0; pause 0.1; done
    return 1
}
# Stops a process group (podman-compose and the podman commands it runs): SIGTERM, SIGKILL
# after 20 s.
stop_group() {
    kill -TERM -- "-$1" 2>/dev/null || return 0
    TIMEOUT=200 while_alive -- "-$1" || kill -KILL -- "-$1" 2>/dev/null || true
}

# One run at a time per BOOKINFO_CACHE (the stack's names are fixed): PIDFILE names this
# shell and its watchdog, which outlives it when it is killed. A previous run's watchdog may
# still be sweeping up after it: wait for it.
PIDFILE=$BOOKINFO_RUNROOT/run.pid
[[ -p $BOOKINFO_RUNROOT/pause.fifo ]] || mkfifo "$BOOKINFO_RUNROOT/pause.fifo"
exec 9<>"$BOOKINFO_RUNROOT/pause.fifo"  # read by pause: nobody writes to it
running() {
    local pids pid
    read -r -a pids 2>/dev/null <"$PIDFILE" || return 1
    for pid in "${pids[@]}"; do
        grep -qs run.sh "/proc/$pid/cmdline" && return 0
    done
    return 1
}
for ((i = 0; i < 600; i++)); do running || break; pause 0.1; done
if running; then say "another run ($(cat "$PIDFILE")) uses $BOOKINFO_CACHE"; exit 1; fi
sweep  # what a run killed before its watchdog could act left

WORK=$(mktemp -d /tmp/adi-bookinfo-run.XXXXXX)
ADI_PID='' API_PID='' COMPOSE_PID='' WATCHDOG=''
# stop PID SIGNAL: signals a child, and kills it if it has not exited 20 s later.
stop() {
    kill -s "$2" "$1" 2>/dev/null || return 0
    TIMEOUT=200 while_alive "$1" || kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true  # by pid: a bare `wait` would wait for the watchdog too
}
cleanup() {
    trap '' INT TERM
    # SIGTERM, not SIGINT: adi ignores a SIGINT that arrives in its first second (a Ctrl-C
    # that reaches it with this shell, as it starts).
    if [[ -n $ADI_PID ]]; then stop "$ADI_PID" TERM; fi
    if [[ -n $COMPOSE_PID ]]; then stop_group "$COMPOSE_PID"; wait "$COMPOSE_PID" 2>/dev/null || true; fi
    if [[ -n $API_PID ]]; then stop "$API_PID" TERM; fi
    sweep
    if [[ -n $WATCHDOG ]]; then stop "$WATCHDOG" TERM; fi
    rm -rf "$WORK"
    rm -f "$PIDFILE"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# Should this shell be killed outright (no trap runs), the watchdog stops podman-compose if it
# is still at work and sweeps; the API service and adi die with the shell by themselves
# (setpriv --pdeathsig). The watchdog ignores Ctrl-C (the shell's trap tears down then) and
# ends on the SIGTERM of cleanup.
(
    trap '' INT HUP
    TIMEOUT=1000000000 while_alive $$ || true
    COMPOSE_PID=$(cat "$WORK/compose.pid" 2>/dev/null) || true
    if [[ -n $COMPOSE_PID ]]; then stop_group "$COMPOSE_PID"; fi
    sweep
    rm -rf "$WORK" "$PIDFILE"
) </dev/null >/dev/null 2>&1 &
WATCHDOG=$!
echo "$$ $WATCHDOG" >"$PIDFILE"

# --- podman's Docker-compatible API, which adi reads the containers from (and which creates
# the network: podman 4.3's CLI cannot name a bridge, its API can).
SOCK=$WORK/podman.sock
setpriv --pdeathsig TERM podman system service --time=0 "unix://$SOCK" \
    >"$WORK/api.log" 2>&1 & API_PID=$!
for i in $(seq 100); do
    [[ $(curl -s -m 2 --unix-socket "$SOCK" http://d/_ping 2>/dev/null) == OK ]] && break
    ((i < 100)) || { cat "$WORK/api.log" >&2; say "podman system service did not answer in 20 s"; exit 1; }
    pause 0.2
done

# --- the network: a /24 of 10.213.0.0/16 that no address or route of the host overlaps.
RUN_ID=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
export BOOKINFO_NETWORK=bookinfo-$RUN_ID
SUBNET=$(python3 - <<'EOF'
import ipaddress, random, subprocess
used = []
for cmd in (["ip", "-4", "-o", "addr", "show"], ["ip", "-4", "route", "show", "table", "all"]):
    for tok in subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split():
        if "." in tok:
            try:
                used.append(ipaddress.ip_network(tok, strict=False))
            except ValueError:
                pass
third = list(range(256))
random.shuffle(third)
for x in third:
    net = ipaddress.ip_network(f"10.213.{x}.0/24")
    if not any(net.overlaps(u) for u in used):
        print(net)
        break
EOF
)
[[ -n $SUBNET ]] || { say "no free /24 in 10.213.0.0/16"; exit 1; }
# Named bridge: podman picks podmanN from the networks it knows, and this storage knows none of
# the host's.
curl -fsS -m 20 --unix-socket "$SOCK" -H 'Content-Type: application/json' \
    -d "{\"name\": \"$BOOKINFO_NETWORK\", \"driver\": \"bridge\", \"network_interface\": \"bkinfo$RUN_ID\",
         \"subnets\": [{\"subnet\": \"$SUBNET\"}], \"dns_enabled\": true,
         \"labels\": {\"app.bookinfo/demo\": \"1\"}}" \
    http://d/v4.0.0/libpod/networks/create >"$WORK/network.json"

# --- the stack.
BOOKINFO_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BOOKINFO_PG_PASSWORD=bookinfo-$RUN_ID-$RANDOM
export BOOKINFO_PORT BOOKINFO_PG_PASSWORD
URL=http://127.0.0.1:$BOOKINFO_PORT
say "starting $PROJECT on network $BOOKINFO_NETWORK ($SUBNET), productpage at $URL"
dump_logs() {
    cat "$WORK/compose.log" >&2 || true
    podman ps -a --filter "label=io.podman.compose.project=$PROJECT" >&2 || true
    for c in $(podman ps -aq --filter "label=io.podman.compose.project=$PROJECT"); do
        echo "--- $(podman inspect --format '{{.Name}}' "$c")" >&2
        podman logs --tail 20 "$c" >&2 || true
    done
}
# In a session of its own, so that whoever tears down can stop it with the podman commands it
# runs (in the background, so that a signal to this shell acts at once).
setsid podman-compose -p "$PROJECT" -f "$HERE/compose.yaml" up -d >"$WORK/compose.log" 2>&1 &
COMPOSE_PID=$!
echo "$COMPOSE_PID" >"$WORK/compose.pid"
wait "$COMPOSE_PID" || { COMPOSE_PID=; dump_logs; say "podman-compose up failed"; exit 1; }
COMPOSE_PID=

# productpage answers once details, reviews, ratings, PostgreSQL and Redis all do.
for i in $(seq 120); do
    curl -fsS -m 5 "$URL/productpage/0" >"$WORK/ready.json" 2>/dev/null && break
    ((i < 120)) || { dump_logs; say "productpage did not answer within 60 s"; exit 1; }
    pause 0.5
done

# --- adi, on the processes that opted in with ADI_PROFILE=bookinfo (found by its /proc scan:
# they are running already); their names come from the containers' compose labels.
if [[ $ADI != none ]]; then
    ADI_ARGS=(--profile-allowed bookinfo --quiet)
    ADI_HELP=$("$ADI" --help 2>/dev/null) || true
    if [[ $ADI_HELP == *--docker-socket* ]]; then
        ADI_ARGS+=(--docker-socket "$SOCK")
    else
        say "$ADI has no --docker-socket: events will not name containers"
    fi
    # shellcheck disable=SC2086
    setpriv --pdeathsig TERM "$ADI" "${ADI_ARGS[@]}" ${ADI_FLAGS:-} \
        --sink "jsonl=$OUT/events.jsonl" --sink "env-yaml=$OUT/env.yaml" \
        --sink "service-map=$OUT/map.yaml" 2>"$WORK/adi.log" & ADI_PID=$!
    for i in $(seq 400); do
        grep -q "adi: watching" "$WORK/adi.log" && break
        if ! kill -0 "$ADI_PID" 2>/dev/null || ((i == 400)); then
            cat "$WORK/adi.log" >&2; say "adi did not start"; exit 1
        fi
        pause 0.05
    done
fi

# --- the traffic: REQUESTS answers, each checked; five products, so Redis misses five times.
redis_stats() {
    podman exec "$(podman ps -q --filter "label=io.podman.compose.project=$PROJECT" \
        --filter label=com.docker.compose.service=redis)" redis-cli INFO stats \
        | tr -d '\r' | awk -F: '/^keyspace_(hits|misses):/ {printf "%s ", $2}'
}
read -r HITS0 MISSES0 <<<"$(redis_stats)"
say "sending $REQUESTS requests"
for i in $(seq "$REQUESTS"); do
    curl -fsS -m 10 "$URL/productpage/$(( (i - 1) % 5 + 1 ))" >>"$OUT/responses.jsonl"
    echo >>"$OUT/responses.jsonl"
done
read -r HITS1 MISSES1 <<<"$(redis_stats)"
python3 - "$OUT/responses.jsonl" "$REQUESTS" <<'EOF'
import json, sys
answers = [json.loads(line) for line in open(sys.argv[1])]
assert len(answers) == int(sys.argv[2]), f"{len(answers)} answers"
for a in answers:
    assert a["details"]["id"] == a["id"] and a["details"]["author"], a
    assert [r["stars"] for r in a["reviews"]] == [5 - a["id"] % 2, 4 - a["id"] % 3], a
EOF
HITS=$((HITS1 - HITS0)) MISSES=$((MISSES1 - MISSES0))
EXPECT_MISSES=$((REQUESTS < 5 ? REQUESTS : 5))
if ((MISSES != EXPECT_MISSES || HITS != REQUESTS - EXPECT_MISSES)); then
    say "Redis counted $HITS hits and $MISSES misses, not $((REQUESTS - EXPECT_MISSES)) and $EXPECT_MISSES"
    exit 1
fi
say "$REQUESTS answers checked: details from Redis ($HITS hits, $MISSES misses), stars from PostgreSQL"

# --- adi's exit writes the map (SIGTERM: see cleanup); then the picture.
if [[ -n $ADI_PID ]]; then
    pause 0.5
    stop "$ADI_PID" TERM
    ADI_PID=
    cat "$WORK/adi.log" >&2
    "$ADI" map render "$OUT/map.yaml" --format dot >"$OUT/map.dot"
    if command -v dot >/dev/null; then dot -Tsvg "$OUT/map.dot" >"$OUT/map.svg"; fi
fi
say "wrote $(cd "$OUT" && echo *) in $OUT; $SECONDS s in all"
