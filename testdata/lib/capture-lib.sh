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

# capture_init PROTO: creates WORK (/tmp/adi-PROTO-capture.XXXXXX), empties PIDS, installs
# capture_cleanup as the EXIT trap and sets PROTO (the protocol of every connection listed in
# an .expected.jsonl) unless the script set it.
capture_init() {
    PROTO=${PROTO:-$1}
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

# port_taken PORT: something listens on TCP port PORT.
port_taken() { ss -ltnH "sport = :$1" | grep -q .; }

# pick_ports DEFAULT DECOY: sets DEFAULT (the script exits when something listens there),
# OTHER (a free port) and DECOY (another protocol's port; empty, with a warning, when taken).
pick_ports() {
    DEFAULT=$1
    port_taken "$DEFAULT" && { echo "port $DEFAULT is taken: stop what listens there first" >&2; exit 1; }
    OTHER=$(free_port)
    DECOY=$2
    port_taken "$DECOY" && { echo "port $DECOY is taken: skipping the decoy capture" >&2; DECOY=; }
    return 0
}

# is_free PORT: nothing holds 127.0.0.1:PORT and we may bind it.
is_free() {
    python3 -c "import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1',$1))" 2>/dev/null
}

# owns_port PORT PID: the listener on PORT belongs to PID, or the script exits.
owns_port() {
    ss -ltnpH "sport = :$1" | grep -q "pid=$2," || { echo "port $1 is not served by pid $2" >&2; exit 1; }
}

# owned_listener PORT PID: every listener on PORT is PID or a child of it (a server that
# forks its listener), or the script exits.
owned_listener() {
    local pids; pids=$(ss -ltnpH "sport = :$1" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u)
    [ -n "$pids" ] || { echo "nobody listens on $1" >&2; exit 1; }
    for p in $pids; do
        [ "$(ps -o ppid= -p "$p" | tr -d ' ')" = "$2" ] || [ "$p" = "$2" ] \
            || { echo "port $1 is held by pid $p, not ours" >&2; exit 1; }
    done
}

# started PORT NEEDLE: the server just started in the background ($!) is one of ours (PIDS),
# listens on 127.0.0.1:PORT and mentions NEEDLE in its command line, or the script exits.
started() {
    PIDS+=($!)
    wait_port "$1"
    owned "${PIDS[-1]}" "$2" || { echo "listener on $1 is not ours" >&2; exit 1; }
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

# syn_rows PCAP: one line per TCP connection of PCAP, in order of its SYN (tshark's own view,
# not adi's): "stream client-address client-port server-address server-port".
syn_rows() {
    tshark -r "$1" -Y 'tcp.flags.syn == 1 && tcp.flags.ack == 0' -T fields \
        -e tcp.stream -e ip.src -e tcp.srcport -e ip.dst -e tcp.dstport 2>/dev/null | sort -un -k1,1
}

# write_expected PCAP: lists every connection of PCAP in PCAP's .expected.jsonl (next to it,
# without .pcap), each with protocol $PROTO (every connection is ours).
write_expected() {
    syn_rows "$1" |
        awk -v p="$PROTO" '{printf "{\"client\":\"%s:%s\",\"server\":\"%s:%s\",\"protocol\":\"%s\"}\n", $2, $3, $4, $5, p}' \
            >"${1%.pcap}.expected.jsonl"
}

# split_named PCAP NAME...: the Nth TCP connection of PCAP (tshark's stream index, in order of
# first packet) becomes to_server_NAME.bin / to_client_NAME.bin in OUT; a NAME of `-` skips one.
split_named() {
    local pcap=$1 i=0 name; shift
    for name in "$@"; do
        if [ "$name" != - ]; then
            follow_split "$pcap" "$i" "$OUT/to_server_$name.bin" "$OUT/to_client_$name.bin"
            echo "$name: $(wc -c <"$OUT/to_server_$name.bin") bytes to server, $(wc -c <"$OUT/to_client_$name.bin") bytes to client"
        fi
        i=$((i + 1))
    done
}

# extract PCAP NAME...: write_expected PCAP, then split_named PCAP NAME..., and a summary line.
extract() {
    local pcap=$1; shift
    write_expected "$pcap"
    split_named "$pcap" "$@"
    echo "$(basename "$pcap"): $(wc -c <"$pcap") bytes, $(wc -l <"${pcap%.pcap}.expected.jsonl") connections"
}

# ---- named connections (http2, mysql, postgres, tls) ----
# A group records one pcap; `conn` runs one client and names the connections it opens;
# `end_group` writes the pcap, its expected.jsonl and the per-direction fixtures.

NAMES=(); PCAP=
# group NAME FILTER: records loopback packets matching FILTER, for OUT/NAME.pcap.
group() {
    PCAP=$1; NAMES=()
    tcpdump_start "$WORK/$PCAP.pcap" "$2" -B 8192
}
# conn "NAME..." CMD...: runs CMD, a client opening one connection per NAME, in this order.
conn() {
    local n
    for n in $1; do NAMES+=("$n"); done
    shift
    "$@" >/dev/null
    sleep 0.3
}
# end_group: stops the recording and checks it (no packet dropped, at most MAX_PCAP_BYTES
# when set, one connection per name), then writes OUT/NAME.pcap, its .expected.jsonl and the
# fixtures of every named connection.
end_group() {
    sleep 0.3
    tcpdump_stop
    if grep -q "dropped by kernel" "$WORK/tcpdump.log" && ! grep -q "^0 packets dropped by kernel" "$WORK/tcpdump.log"; then
        echo "tcpdump dropped packets" >&2; exit 1
    fi
    local pcap="$OUT/$PCAP.pcap" size
    cp "$WORK/$PCAP.pcap" "$pcap"
    size=$(stat -c %s "$pcap")
    (( size < ${MAX_PCAP_BYTES:-size + 1} )) || { echo "$pcap is $size bytes" >&2; exit 1; }
    local n; n=$(syn_rows "$pcap" | wc -l)
    (( n == ${#NAMES[@]} )) || { echo "$pcap: $n connections, expected ${#NAMES[@]}" >&2; syn_rows "$pcap" >&2; exit 1; }
    extract "$pcap" "${NAMES[@]}"
}

# ---- scenarios with the connections counted after the fact (amqp, memcached, nats, redis) ----

# capture_ports PCAP "PORT..." CMD...: runs CMD while tcpdump records TCP on 127.0.0.1 to or from
# any of the ports into PCAP; then `extract PCAP NAME...` names its connections.
capture_ports() {
    local pcap=$1 ports=$2; shift 2
    local filter; filter="tcp and host 127.0.0.1 and ($(sed 's/\([0-9]*\)/port \1/g; s/ port/ or port/g; s/^ or //' <<<"$ports"))"
    tcpdump_start "$pcap" "$filter" -B 8192
    "$@"
    sleep 0.5
    tcpdump_stop
}

# capture_each NAME PORT CMD...: runs CMD while tcpdump records port PORT into $WORK/NAME.pcap,
# and writes one fixture pair per TCP connection: NAME, or NAME_<i> when CMD opened several.
capture_each() {
    local name=$1 port=$2; shift 2
    local pcap="$WORK/$name.pcap"
    tcpdump_start "$pcap" "tcp port $port and host 127.0.0.1" -B 8192
    "$@" >/dev/null
    sleep 0.3
    tcpdump_stop
    local streams count
    streams=$(tshark -r "$pcap" -T fields -e tcp.stream | sort -un)
    count=$(echo "$streams" | grep -c .)
    for s in $streams; do
        local fx=$name
        [ "$count" -gt 1 ] && fx="${name}_$s"
        follow_split "$pcap" "$s" "$OUT/to_server_$fx.bin" "$OUT/to_client_$fx.bin" nonempty
        echo "$fx: $(wc -c <"$OUT/to_server_$fx.bin" 2>/dev/null || echo 0) bytes to server," \
            "$(wc -c <"$OUT/to_client_$fx.bin" 2>/dev/null || echo 0) bytes to client"
    done
}

# merge_group NAME PCAP...: merges scenario pcaps (of capture_each) into OUT/PROTO_NAME.pcap
# and lists its connections in PROTO_NAME.expected.jsonl.
merge_group() {
    local name=$1; shift
    local pcap="$OUT/${PROTO}_$name.pcap"
    mergecap -F pcap -w "$pcap" "$@"
    write_expected "$pcap"
    echo "$(basename "$pcap"): $(wc -l <"${pcap%.pcap}.expected.jsonl") connections"
}

# nginx_http_head: the start of an nginx.conf for an nginx of our own (run as
# `nginx -p "$WORK" -c "$WORK/nginx.conf"`): no daemon, one process, every file in WORK; the
# script follows it with its `server { ... }` blocks and the closing `}`.
nginx_http_head() {
    cat <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $WORK/tmp/body;
    proxy_temp_path $WORK/tmp/proxy;
    fastcgi_temp_path $WORK/tmp/fastcgi;
    uwsgi_temp_path $WORK/tmp/uwsgi;
    scgi_temp_path $WORK/tmp/scgi;
    default_type text/html;
CONF
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
    write_expected "$pcap"
    local n
    n=$(wc -l <"$OUT/$name.expected.jsonl")
    for ((i = 0; i < n; i++)); do
        follow_split "$pcap" "$i" "$OUT/to_server_${name}_$i.bin" "$OUT/to_client_${name}_$i.bin"
        echo "$name #$i: $(wc -c <"$OUT/to_server_${name}_$i.bin") bytes to server, $(wc -c <"$OUT/to_client_${name}_$i.bin") bytes to client"
    done
    echo "$name.pcap: $(wc -c <"$pcap") bytes, $n connections"
}

# client_scenarios DEFAULT DECOY SPLIT CUT [VARIANT]: the four scenarios of a listener's
# protocol, each a capture_scenario of `python3 $WORK/client.py PORT` (the script writes the
# client): PROTO_default on port DEFAULT; PROTO_nondefault (PROTO_nondefault_VARIANT, the client
# given VARIANT too) on a free port; PROTO_decoy on DECOY, another protocol's port; PROTO_split,
# the first message of PROTO_default's connection SPLIT replayed cut at byte CUT.
client_scenarios() {
    local default=$1 decoy=$2 split=$3 cut=$4 variant=${5:-} other
    other=$(free_port)
    capture_scenario "${PROTO}_default" "$default" python3 "$WORK/client.py" "$default"
    capture_scenario "${PROTO}_nondefault${variant:+_$variant}" "$other" \
        python3 "$WORK/client.py" "$other" ${variant:+"$variant"}
    capture_scenario "${PROTO}_decoy" "$decoy" python3 "$WORK/client.py" "$decoy"
    capture_scenario "${PROTO}_split" "$other" \
        replay_split "$other" "$OUT/to_server_${PROTO}_default_$split.bin" "$cut" "$PROTO"
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
