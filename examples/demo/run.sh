#!/usr/bin/env bash
# The demo: small services that talk HTTP, HTTPS, gRPC, NATS, Redis and PostgreSQL, watched by
# adi, and everything adi writes about them in one folder.
#
#   sudo examples/demo/run.sh [OUT_DIR]        # default ./adi-demo; DURATION=60 seconds of load
#
# Starts, on free loopback ports, as plain processes: nats-server, redis-server and a
# PostgreSQL cluster of its own (in a temp dir), then the services, each opted in with
# ADI_PROFILE=local and named with ADI_PROFILE_NAME: catalog and reviews (JSON backends),
# inventory (a JSON backend over HTTPS, with a certificate made here), pricing (gRPC),
# gateway (calls catalog, reviews and pricing, forwards orders), orders (asks inventory,
# stores into PostgreSQL, publishes on NATS), audit-logger (NATS to Redis). Then adi (ADI, default target/release/adi, built if missing;
# ADI_FLAGS adds flags, e.g. "--max-rate 0") with its three sinks, and loadgen for DURATION
# seconds. Leaves in OUT_DIR: events.jsonl, env.yaml, map.yaml (seed), observed.yaml,
# rcp.yaml, map.mmd, map.dot and, when Graphviz is installed, map.svg. Needs root (adi), python3
# with pg8000 and grpcio, openssl, nats-server, redis-server, PostgreSQL. Stops only the
# processes it started.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${1:-$PWD/adi-demo}
DURATION=${DURATION:-60}
ADI=${ADI:-$ROOT/target/release/adi}
# The default binary is this checkout's: built, or brought up to date.
[[ $ADI != "$ROOT/target/release/adi" ]] || (cd "$ROOT" && cargo build --release -q -p adi-cli)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
rm -f "$OUT"/{events.jsonl,env.yaml,map.yaml,observed.yaml,rcp.yaml,map.mmd,map.dot,map.svg}

WORK=$(mktemp -d /tmp/adi-demo.XXXXXX)
chown postgres "$WORK" && chmod 755 "$WORK"
PIDS=()
PG_PID=
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    # PostgreSQL's fast shutdown (SIGTERM would wait for its clients to leave).
    [[ -z $PG_PID ]] || kill -INT "$PG_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
    for _ in $(seq 400); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "run.sh: nothing listens on port $1 after 20 s" >&2
    exit 1
}
# Waits for the first line a service prints (its port, or "ready").
first_line() {
    for _ in $(seq 400); do
        [[ -s $1 ]] && { head -1 "$1"; return 0; }
        sleep 0.05
    done
    echo "run.sh: $1 stayed empty for 20 s" >&2
    exit 1
}

NATS_PORT=$(free_port) REDIS_PORT=$(free_port) PG_PORT=$(free_port)
nats-server -a 127.0.0.1 -p "$NATS_PORT" >"$WORK/nats.log" 2>&1 & PIDS+=($!)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" \
    >"$WORK/redis.log" 2>&1 & PIDS+=($!)
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PASSWORD="demo-$$-$RANDOM"
echo "$PASSWORD" >"$WORK/pwfile" && chown postgres "$WORK/pwfile"
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
as_postgres "$PGBIN/initdb" -D "$WORK/pg" -U postgres --auth=password --pwfile="$WORK/pwfile" \
    --no-sync --locale=C --encoding=UTF8 >"$WORK/initdb.log"
# setpriv directly (a function would run in a subshell): $! is then PostgreSQL itself.
setpriv --reuid=postgres --regid=postgres --init-groups "$PGBIN/postgres" -D "$WORK/pg" \
    -p "$PG_PORT" -c listen_addresses=127.0.0.1 -c unix_socket_directories="$WORK" \
    -c fsync=off >"$WORK/pg.log" 2>&1 & PG_PID=$!
wait_port "$NATS_PORT"; wait_port "$REDIS_PORT"; wait_port "$PG_PORT"

# inventory serves HTTPS with a certificate of its own, which the other services trust.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=inventory \
    -addext "subjectAltName=IP:127.0.0.1" -keyout "$WORK/key.pem" -out "$WORK/cert.pem" \
    2>/dev/null

# Configured as services usually are: by environment variables.
export ADI_PROFILE=local PYTHONPATH="$HERE" PYTHONUNBUFFERED=1 SSL_CERT_FILE="$WORK/cert.pem"
export NATS_URL="nats://127.0.0.1:$NATS_PORT" REDIS_HOST=127.0.0.1 REDIS_PORT
export PGHOST=127.0.0.1 PGPORT="$PG_PORT" PGUSER=postgres PGDATABASE=postgres PGPASSWORD="$PASSWORD"
service() {  # NAME SCRIPT: starts it (not in a subshell: its pid must reach PIDS)
    ADI_PROFILE_NAME=$1 python3 "$HERE/$2" >"$WORK/$1.out" 2>"$WORK/$1.err" & PIDS+=($!)
}
TLS_CERT="$WORK/cert.pem" TLS_KEY="$WORK/key.pem" service inventory inventory.py
service pricing pricing.py
INVENTORY_URL="https://127.0.0.1:$(first_line "$WORK/inventory.out")"
PRICING_ADDR="127.0.0.1:$(first_line "$WORK/pricing.out")"
export INVENTORY_URL PRICING_ADDR
service catalog catalog.py
service reviews reviews.py
service orders orders.py
CATALOG_URL="http://127.0.0.1:$(first_line "$WORK/catalog.out")"
REVIEWS_URL="http://127.0.0.1:$(first_line "$WORK/reviews.out")"
ORDERS_URL="http://127.0.0.1:$(first_line "$WORK/orders.out")"
export CATALOG_URL REVIEWS_URL ORDERS_URL
service gateway gateway.py
GATEWAY_URL="http://127.0.0.1:$(first_line "$WORK/gateway.out")"
export GATEWAY_URL
service audit-logger audit_logger.py
[[ $(first_line "$WORK/audit-logger.out") == ready ]]

# adi: the processes above are found opted in at start (their connections to PostgreSQL and
# NATS were opened before it), loadgen at its exec.
# shellcheck disable=SC2086
"$ADI" --profile-allowed local --quiet ${ADI_FLAGS:-} \
    --sink "jsonl=$OUT/events.jsonl" --sink "env-yaml=$OUT/env.yaml" \
    --sink "service-map=$OUT/map.yaml" 2>"$WORK/adi.log" & ADI_PID=$!
PIDS+=("$ADI_PID")
for _ in $(seq 400); do grep -q "adi: watching" "$WORK/adi.log" && break; sleep 0.05; done
grep -q "adi: watching" "$WORK/adi.log" || { cat "$WORK/adi.log" >&2; exit 1; }

echo "run.sh: load for ${DURATION}s" >&2
ADI_PROFILE_NAME=loadgen DURATION=$DURATION python3 "$HERE/loadgen.py" >&2
sleep 0.5
kill -INT "$ADI_PID"
wait "$ADI_PID" || true
cat "$WORK/adi.log" >&2

"$ADI" map build "$OUT/events.jsonl" --env "$OUT/env.yaml" --service-map-format observed \
    -o "$OUT/observed.yaml"
"$ADI" map build "$OUT/events.jsonl" --env "$OUT/env.yaml" --service-map-format rcp \
    -o "$OUT/rcp.yaml"
"$ADI" map render "$OUT/map.yaml" >"$OUT/map.mmd"
"$ADI" map render "$OUT/map.yaml" --format dot >"$OUT/map.dot"
if command -v dot >/dev/null; then dot -Tsvg "$OUT/map.dot" >"$OUT/map.svg"; fi
echo "run.sh: wrote $(cd "$OUT" && ls | tr '\n' ' ')in $OUT" >&2
