#!/usr/bin/env bash
# Runs the Go uprobe test matrix (probes/tests/go_uprobes.rs, `uprobes_matrix`) over every Go
# toolchain installed by install-toolchains.sh, or the versions given, one version at a time,
# and prints a per-version result table. Each version runs its client and server in four
# variants (default, static, no DWARF, stripped) over HTTP and HTTPS, plus larger header
# maps. Needs root (the uprobes) and openssl.
#
# Usage: testdata/go/uprobe-matrix.sh [VERSION...]     (e.g. 1.19 1.23.9)
# Logs: target/uprobe-matrix/<version>.log
set -Euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=toolchains.sh
source testdata/go/toolchains.sh
if [[ $# -eq 0 ]]; then
  versions=$(installed_versions) || exit 1
  # shellcheck disable=SC2086 # one version a line
  set -- $versions
fi

LOGS=target/uprobe-matrix
mkdir -p "$LOGS"
# Build once (and the Go targets of every version, in one go).
cargo test -p adi-probes --test go_uprobes --no-run >/dev/null 2>&1 \
  || { echo "cargo test --no-run failed" >&2; exit 1; }
testdata/go/build-targets.sh target/go-targets "$@" >/dev/null || exit 1

status=0
rows=()
for v in "$@"; do
  start=$(date +%s)
  log=$LOGS/$v.log
  if ADI_GO_MATRIX=$v cargo test -p adi-probes --test go_uprobes uprobes_matrix -- \
      --ignored --exact --nocapture >"$log" 2>&1 && grep -q "MATRIX $v ok" "$log"; then
    result=pass
  else
    result=FAIL
    status=1
  fi
  goversion=$(cat "target/go-targets/$v/goversion" 2>/dev/null || echo "?")
  rows+=("$(printf '%-9s %-11s %-5s %3ss  %s' "$v" "$goversion" "$result" "$(($(date +%s) - start))" "$log")")
done

printf '%-9s %-11s %-5s %4s  %s\n' toolchain go_version result time log
printf '%s\n' "${rows[@]}"
echo "cases per version: 4 variants x (http, https) + 2 larger header maps; each checks client and server"
exit "$status"
