#!/usr/bin/env bash
# Regenerates the real captures used by capture/src/tests.rs. Needs root (tcpdump on lo),
# tcpdump, tshark/editcap, curl and python3. Run from anywhere: ./capture.sh
#
# Each capture holds one HTTP/1.0 exchange against `python3 -m http.server`: curl fetches
# body.txt (40 000 bytes, generated below) and the server closes the connection.
set -euo pipefail
cd "$(dirname "$0")"

work=$(mktemp -d)
server_pid=""
tcpdump_pid=""
cleanup() {
    # Stop only the processes this script started.
    [ -n "$tcpdump_pid" ] && kill "$tcpdump_pid" 2>/dev/null || true
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The served file: "line 00000\n" .. "line 03635\n" truncated to 40 000 bytes.
python3 -c 'import sys; sys.stdout.write("".join("line %05d\n" % i for i in range(4000))[:40000])' > "$work/body.txt"

free_port() {
    python3 -c 'import socket; s = socket.socket(socket.AF_INET6); s.bind(("::", 0)); print(s.getsockname()[1])'
}

# Sets $port and $server_pid (globals: not run in a subshell, so cleanup can stop it).
start_server() { # bind-address
    port=$(free_port)
    (cd "$work" && exec python3 -m http.server --bind "$1" "$port") >/dev/null 2>&1 &
    server_pid=$!
    for _ in $(seq 50); do
        # The listener on $port must be the server we just started.
        if ss -Hltnp "sport = :$port" | grep -q "pid=$server_pid,"; then
            return
        fi
        sleep 0.1
    done
    echo "server on port $port did not start" >&2
    exit 1
}

stop_server() {
    kill "$server_pid"
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

capture() { # output-file url tcpdump-args...
    local out=$1 url=$2
    shift 2
    tcpdump -U -s 262144 "$@" -w "$work/raw" 2>/dev/null &
    tcpdump_pid=$!
    sleep 1
    curl -s -A adi-test -o "$work/got" "$url"
    cmp "$work/got" "$work/body.txt"
    sleep 1
    kill -INT "$tcpdump_pid"
    wait "$tcpdump_pid" 2>/dev/null || true
    tcpdump_pid=""
    mv "$work/raw" "$out"
}

# Check with tshark (not needed by the tests) that the server-to-client stream ends with body.txt.
check() { # file
    local got
    got=$(tshark -r "$1" -q -z follow,tcp,raw,0 2>/dev/null | grep -P '^\t[0-9a-f]+$' | tr -d '\t\n')
    if [[ "$got" != *"$(xxd -p "$work/body.txt" | tr -d '\n')" ]]; then
        echo "$1: tshark's follow of stream 0 does not end with body.txt" >&2
        exit 1
    fi
    echo "$1: $(stat -c %s "$1") bytes, tshark follow ok"
}

start_server 127.0.0.1
filter="tcp port $port"
# 1. Ethernet (lo), microsecond pcap.
capture http_lo.pcap "http://127.0.0.1:$port/body.txt" -i lo "$filter"
# 2. pcapng with nanosecond if_tsresol: nanosecond pcap converted by editcap.
capture "$work/ns.pcap" "http://127.0.0.1:$port/body.txt" -i lo --time-stamp-precision=nano "$filter"
editcap -F pcapng "$work/ns.pcap" http_lo_ns.pcapng
# 3. -i any: Linux cooked v2 (SLL2) on this tcpdump.
capture http_any_sll2.pcap "http://127.0.0.1:$port/body.txt" -i any "$filter"
# 4. -i any -y LINUX_SLL: Linux cooked v1.
capture http_any_sll.pcap "http://127.0.0.1:$port/body.txt" -i any -y LINUX_SLL "$filter"
stop_server

# 5. IPv6 on lo.
start_server ::1
capture http_lo_ipv6.pcap "http://[::1]:$port/body.txt" -i lo "tcp port $port"
stop_server

for f in http_lo.pcap http_lo_ns.pcapng http_any_sll2.pcap http_any_sll.pcap http_lo_ipv6.pcap; do
    check "$f"
done
