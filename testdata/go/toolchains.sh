# Sourced by the Go test scripts: ROOT (ADI_GO_ROOT, default /opt/adi-go, where
# install-toolchains.sh puts them) and `installed_versions`, which prints the version of every
# toolchain there, one a line, and fails with a message naming the fix when there is none.
ROOT=${ADI_GO_ROOT:-/opt/adi-go}

installed_versions() {
  local go v found=0
  for go in "$ROOT"/*/go/bin/go; do
    [[ -x $go ]] || continue
    v=${go#"$ROOT"/}
    echo "${v%%/*}"
    found=1
  done
  ((found)) || { echo "no Go toolchain under $ROOT: run testdata/go/install-toolchains.sh" >&2; return 1; }
}
