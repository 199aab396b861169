# Shared setup of the benchmark scripts: `source "$(dirname "$0")/../lib.sh" NAME`.
# Sets ROOT (the checkout), WORK (a temp dir /tmp/adi-NAME.*, removed at exit) and PIDS (the
# processes the script started: add to it; they are killed at exit, and only they).
# `need_adi` sets ADI (default target/release/adi) and builds it when missing.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d "/tmp/adi-$1.XXXXXX")
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

need_adi() {
    ADI=${ADI:-$ROOT/target/release/adi}
    [[ -x $ADI ]] || (cd "$ROOT" && cargo build --release -q -p adi-cli)
}
