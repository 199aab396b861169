# shellcheck shell=bash
# Shared helpers of the fixture capture scripts (classifiers/src/*/fixtures/capture.sh).
# A script sources this file relative to its own directory, after `set -euo pipefail`:
#
#   OUT=$(cd "$(dirname "$0")" && pwd)
#   source "$OUT/../../../../testdata/lib/capture-lib.sh"
#   WORK=$(mktemp -d /tmp/adi-<proto>-capture.XXXXXX)
#   PIDS=()
#   trap capture_cleanup EXIT
#
# Conventions: WORK is the script's scratch folder; PIDS holds the pids the script started
# (and only those: nothing here kills by name); TCPDUMP_PID is the running tcpdump, if any.
# Needs python3 (ports), tcpdump and tshark (recording and extraction).

TCPDUMP_PID=${TCPDUMP_PID:-}

# capture_init PROTO: creates WORK (/tmp/adi-PROTO-capture.XXXXXX), empties PIDS and installs
# capture_cleanup as the EXIT trap.
capture_init() {
    WORK=$(mktemp -d "/tmp/adi-$1-capture.XXXXXX")
    PIDS=()
    trap capture_cleanup EXIT
}

# capture_cleanup: the EXIT trap. Stops a tcpdump still recording, kills and reaps every pid
# in PIDS, removes WORK.
capture_cleanup() {
    [ -z "$TCPDUMP_PID" ] || kill -INT "$TCPDUMP_PID" 2>/dev/null || true
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}

# free_port: prints a TCP port on 127.0.0.1 that nothing is bound to right now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_port PORT: waits until 127.0.0.1:PORT accepts connections, or exits the script.
# WAIT_PORT_TRIES (100) attempts, WAIT_PORT_DELAY (0.05) seconds apart: slow servers
# (RabbitMQ, nats-server) set larger values.
wait_port() {
    for _ in $(seq "${WAIT_PORT_TRIES:-100}"); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0
        sleep "${WAIT_PORT_DELAY:-0.05}"
    done
    echo "port $1 never opened" >&2; exit 1
}

# owned PID NEEDLE: succeeds when the pid we started is alive and its command line mentions
# NEEDLE (our work dir or port), so a stale pid is never mistaken for ours.
owned() {
    grep -qa -- "$2" "/proc/$1/cmdline"
}

# owned_or_exit PID NEEDLE: the same after letting the process settle; exits the script when
# the pid is not ours.
owned_or_exit() {
    sleep 0.2
    grep -qa -- "$2" "/proc/$1/cmdline" || { echo "pid $1 is not ours" >&2; exit 1; }
}

# tcpdump_start PCAP FILTER [TCPDUMP-OPTION...]: records loopback packets matching FILTER into
# PCAP in the background (TCPDUMP_PID) and returns once tcpdump is listening. tcpdump needs
# --immediate-mode here: without it this VM's lo captured 0 packets.
tcpdump_start() {
    local pcap=$1 filter=$2; shift 2
    tcpdump -i lo --immediate-mode "$@" -U -s 0 -w "$pcap" "$filter" 2>"$WORK/tcpdump.log" &
    TCPDUMP_PID=$!
    for _ in $(seq 100); do grep -qs listening "$WORK/tcpdump.log" && break; sleep 0.05; done
}

# tcpdump_stop: stops the recording started by tcpdump_start (SIGINT, so it flushes the file)
# and waits for it.
tcpdump_stop() {
    kill -INT "$TCPDUMP_PID"; wait "$TCPDUMP_PID" || true
    TCPDUMP_PID=
}

# follow_split PCAP STREAM TO_SERVER TO_CLIENT [nonempty]: writes the two directions of TCP
# stream STREAM (tshark's index) of PCAP to the files TO_SERVER (what the connecting side
# sent) and TO_CLIENT. With `nonempty`, a direction that carried no bytes writes no file.
# follow,tcp,raw prints hex per segment; lines from the second node (the server) are indented
# with a tab.
follow_split() {
    local pcap=$1 stream=$2 to_server=$3 to_client=$4 mode=${5:-all}
    tshark -r "$pcap" -q -z "follow,tcp,raw,$stream" | python3 -c '
import sys, binascii
lines = sys.stdin.read().split("\n")
start = next(i for i, l in enumerate(lines) if l.startswith("Node 1:")) + 1
c2s, s2c = bytearray(), bytearray()
for l in lines[start:]:
    if l.startswith("="): break
    (s2c if l.startswith("\t") else c2s).extend(binascii.unhexlify(l.strip()))
for data, path in ((c2s, sys.argv[1]), (s2c, sys.argv[2])):
    if data or sys.argv[3] != "nonempty": open(path, "wb").write(data)
' "$to_server" "$to_client" "$mode"
}

# ---- scenarios against a hand-written Python listener (kafka, mongodb, mssql) ----
# The script sets PROTO and writes $WORK/listener.py (PORT as its argument).

port_unused() { # nothing listens on 127.0.0.1:$1
    ! python3 -c "import socket; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null
}

# start_listener PORT: our Python listener ($WORK/listener.py, written by the script) on
# 127.0.0.1:PORT, in the background.
start_listener() {
    port_unused "$1" || { echo "127.0.0.1:$1 is taken: free it or edit the scenario" >&2; exit 1; }
    python3 "$WORK/listener.py" "$1" 2>>"$WORK/listener.log" &
    PIDS+=($!); owned "$!" "$WORK"
    wait_port "$1"
}
stop_listener() { # the last listener started
    local pid=${PIDS[-1]}
    kill "$pid"; wait "$pid" 2>/dev/null || true
    unset 'PIDS[-1]'
}

# capture_scenario SCENARIO PORT CMD...: runs CMD while tcpdump records tcp port PORT into
# SCENARIO.pcap (kept), writes every TCP connection N (tshark stream index, in order of first
# packet) as to_server_SCENARIO_N.bin / to_client_SCENARIO_N.bin, and writes
# SCENARIO.expected.jsonl from the SYNs, with protocol $PROTO (every connection is ours).
capture_scenario() {
    local name=$1 port=$2; shift 2
    local pcap="$OUT/$name.pcap"
    start_listener "$port"
    tcpdump_start "$pcap" "tcp port $port" -B 8192
    "$@" >/dev/null
    sleep 0.5
    tcpdump_stop
    stop_listener
    chmod 644 "$pcap"
    tshark 2>/dev/null -r "$pcap" -Y 'tcp.flags.syn == 1 && tcp.flags.ack == 0' -T fields \
        -e ip.src -e tcp.srcport -e ip.dst -e tcp.dstport |
        awk -v p="$PROTO" '{printf "{\"client\":\"%s:%s\",\"server\":\"%s:%s\",\"protocol\":\"%s\"}\n", $1, $2, $3, $4, p}' \
        >"$OUT/$name.expected.jsonl"
    local n
    n=$(wc -l <"$OUT/$name.expected.jsonl")
    for ((i = 0; i < n; i++)); do
        follow_split "$pcap" "$i" "$OUT/to_server_${name}_$i.bin" "$OUT/to_client_${name}_$i.bin"
        echo "$name #$i: $(wc -c <"$OUT/to_server_${name}_$i.bin") bytes to server, $(wc -c <"$OUT/to_client_${name}_$i.bin") bytes to client"
    done
    echo "$name.pcap: $(wc -c <"$pcap") bytes, $n connections"
}

# replay_split PORT FILE CUT FRAMING: sends the first message of FILE (a to_server fixture written by
# the real client above) in two writes cut at byte CUT (inside the header), then reads the
# reply: the engine must reassemble a header split across segments.
replay_split() {
    python3 - "$@" <<'PY'
import socket, sys, time
port, path, cut, framing = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
data = open(path, "rb").read()
first = {"kafka": lambda: 4 + int.from_bytes(data[:4], "big"),
         "mongodb": lambda: int.from_bytes(data[:4], "little"),
         "mssql": lambda: int.from_bytes(data[2:4], "big")}[framing]()
data = data[:first]
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.sendall(data[:cut]); time.sleep(0.2); s.sendall(data[cut:])
s.settimeout(3)
print(len(s.recv(65536)))
s.close()
PY
}
