#!/bin/sh
# Build containerd 2.2 and 2.3 (the first LTS) from their Go module, for the tests: Debian packages
# stop at 2.1. `go install MODULE/cmd/X@VERSION` builds the released source exactly as the module proxy
# serves it (containerd's go.mod has no replace lines); nothing of containerd is kept in this
# repository. Each generation lands in CACHE/<generation>/usr/bin, the layout fetch-containerd.sh
# gives the Debian ones, so the fleet and the tests find every generation the same way.
#
# Flags follow containerd's own Makefile for release binaries: the version stamped with -X, the
# urfave_cli_no_docs tag, a static shim without gRPC (no_grpc), and no btrfs snapshotter (no_btrfs:
# it needs btrfs headers, and the tests use overlayfs and native). -trimpath and -s -w keep the
# binaries small and the Go build cache shareable.
#
# Usage: build-containerd.sh [CACHE]   (default: <repo>/.cache/containerd)
# Prints one line per generation: "<generation> <version> <dir>". A second run builds nothing.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cache=${1:-"$here/../../.cache/containerd"}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

# The newest patch releases of each line that the Go module proxy served when this was written.
want_22=${CONTAINERD_22_VERSION:-v2.2.9}
want_23=${CONTAINERD_23_VERSION:-v2.3.7}

module=github.com/containerd/containerd/v2
# The Go caches live under the repository's ignored .cache unless the caller chose others, so a
# second .ci/install (or a CI cache of .cache/) reuses the compiled packages.
: "${GOCACHE:=$here/../../.cache/go/build}"
: "${GOMODCACHE:=$here/../../.cache/go/mod}"
export GOCACHE GOMODCACHE
# Go's own tarball installs into /usr/local/go; a non-login shell may not have it on PATH yet.
command -v go >/dev/null 2>&1 || PATH="$PATH:/usr/local/go/bin"
# GOTOOLCHAIN=local: the machine's Go builds it, or the build fails; no toolchain is fetched.
export GOFLAGS="-trimpath -buildvcs=false -modcacherw" GOTOOLCHAIN=local

build() { # generation version
  gen=$1 ver=$2
  dir="$cache/$gen/usr/bin"
  if [ -x "$dir/containerd" ] && [ -x "$dir/ctr" ] && [ -x "$dir/containerd-shim-runc-v2" ] &&
    [ "$(cat "$cache/$gen/.version" 2>/dev/null)" = "$ver" ]; then
    printf '%s %s %s\n' "$gen" "$ver" "$cache/$gen"
    return 0
  fi
  rm -rf "${cache:?}/$gen"
  mkdir -p "$dir"
  ld="-s -w -X $module/version.Version=$ver -X $module/version.Package=$module"
  GOBIN=$dir CGO_ENABLED=0 go install -tags 'urfave_cli_no_docs no_btrfs' -ldflags "$ld" \
    "$module/cmd/containerd@$ver" "$module/cmd/ctr@$ver" >&2
  GOBIN=$dir CGO_ENABLED=0 go install -tags 'urfave_cli_no_docs no_btrfs no_grpc' -ldflags "$ld" \
    "$module/cmd/containerd-shim-runc-v2@$ver" >&2
  printf '%s\n' "$ver" >"$cache/$gen/.version"
  printf '%s %s %s\n' "$gen" "$ver" "$cache/$gen"
}

command -v go >/dev/null 2>&1 || { echo "build-containerd: go is not installed (Go 1.25+ is needed)" >&2; exit 1; }
build 2.2 "$want_22"
build 2.3 "$want_23"
