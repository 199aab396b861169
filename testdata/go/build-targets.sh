#!/usr/bin/env bash
# Builds the Go test targets (testdata/go/src: a stdlib-only HTTP client and server) with every
# toolchain installed by install-toolchains.sh, in four variants:
#
#   OUTDIR/<version>/default/{client,server}    the toolchain's defaults (cgo on when gcc is here)
#   OUTDIR/<version>/static/{client,server}     CGO_ENABLED=0
#   OUTDIR/<version>/nodwarf/{client,server}    -ldflags=-w (no DWARF, .symtab kept)
#   OUTDIR/<version>/stripped/{client,server}   -ldflags='-s -w' (no DWARF, no .symtab)
#   OUTDIR/<version>/goversion                  `go env GOVERSION`, e.g. go1.19.8
#
# Usage: testdata/go/build-targets.sh OUTDIR [VERSION...]
# VERSION defaults to every toolchain under ADI_GO_ROOT (/opt/adi-go). Offline and
# reproducible: GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod, with a private GOCACHE and
# GOPATH under OUTDIR. Targets newer than the sources are kept (concurrent runs wait on a
# lock). Prints each built version's directory on stdout; a missing toolchain is an error.
set -Eeuo pipefail

[[ $# -ge 1 ]] || { echo "usage: $0 OUTDIR [VERSION...]" >&2; exit 2; }
OUT=$1
shift
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$HERE/src
# shellcheck source=toolchains.sh
source "$HERE/toolchains.sh"

if [[ $# -eq 0 ]]; then
  versions=$(installed_versions) || exit 1
  # shellcheck disable=SC2086 # one version a line
  set -- $versions
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
exec 9>"$OUT/.lock"
flock 9

export GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod GOWORK=off GO111MODULE=on
# VCS stamping (vcs.* build settings) needs a working git on this checkout: without one (no
# git, a tarball, another owner's clone) go build would fail, so stamping is turned off.
if ! git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1; then
  GOFLAGS="$GOFLAGS -buildvcs=false"
fi
export GOCACHE=$OUT/.gocache GOPATH=$OUT/.gopath GOENV=off GOTELEMETRY=off
unset GOROOT GOOS GOARCH GOEXPERIMENT CGO_ENABLED

# Newest source file: a target older than it is rebuilt.
newest=$(find "$SRC" "$HERE/build-targets.sh" -type f -printf '%T@ %p\n' | sort -n | tail -1 | cut -d' ' -f2-)

status=0
for version in "$@"; do
  go=$ROOT/$version/go/bin/go
  if [[ ! -x $go ]]; then
    echo "missing Go toolchain $version ($go): run testdata/go/install-toolchains.sh $version" >&2
    status=1
    continue
  fi
  dest=$OUT/$version
  mkdir -p "$dest"
  "$go" env GOVERSION >"$dest/goversion"
  for variant in default static nodwarf stripped; do
    env_args=() ldflags=""
    case $variant in
      static) env_args=(CGO_ENABLED=0) ;;
      nodwarf) ldflags="-w" ;;
      stripped) ldflags="-s -w" ;;
    esac
    mkdir -p "$dest/$variant"
    for prog in client server; do
      bin=$dest/$variant/$prog
      if [[ -x $bin && $bin -nt $newest && $bin -nt $go ]]; then
        continue
      fi
      echo "build-targets: $version $variant $prog" >&2
      (cd "$SRC" && env "${env_args[@]}" "$go" build -ldflags="$ldflags" -o "$bin.tmp" "./$prog") >&2 \
        && mv "$bin.tmp" "$bin" || { status=1; rm -f "$bin.tmp"; }
    done
  done
  echo "$dest"
done
exit "$status"
