#!/bin/sh
# What the fleet's nodes need to run pods, built here from source (nothing downloaded but Go modules):
#
#   bin/sleeper   tests/fleet/sleeper: a static Go program (standard library only) that waits for
#                 SIGTERM/SIGINT and exits; the fleet's pause image and long-running container
#   image/        an OCI layout (umoci) with one image, tag "sleeper": that binary as /sleeper, its
#                 entrypoint, for this machine's platform. fleet.sh pushes it to the fleet's registry
#                 under the pause and sleeper names (skopeo).
#   bin/crictl    kubeadm's CRI client, sigs.k8s.io/cri-tools/cmd/crictl at the version pinned below,
#                 from the Go module proxy (through go's own configuration); fleet.sh puts it on every
#                 node's PATH
#
# Usage: build-pod-tools.sh [--check]   (CACHE: FLEET_CACHE, default <repo>/.cache/fleet)
# Builds what is missing or stale, then prints one line per piece: "<name> <version> <path>".
# Each piece has a stamp beside it (sources' sha256, versions, Go's version): a second run builds
# nothing. --check builds nothing: exit 1 (saying what) if a piece is missing or stale.
# .ci/install runs it; fleet.sh up runs it when a piece is missing.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${FLEET_CACHE:-$repo/.cache/fleet}
check_only=false
case "${1:-}" in
  --check) check_only=true ;;
  "") ;;
  *) echo "usage: build-pod-tools.sh [--check]" >&2; exit 2 ;;
esac

crictl_version=v1.37.0
crictl_pkg=sigs.k8s.io/cri-tools/cmd/crictl

# The Go caches of every other build here (tools/pulumi/build.sh, build-containerd.sh). The Go that is
# installed builds (GOTOOLCHAIN=local: never a toolchain fetched because a go.mod asks for a newer
# one); no go.work above changes the modules.
: "${GOCACHE:=$repo/.cache/go/build}"
: "${GOMODCACHE:=$repo/.cache/go/mod}"
export GOCACHE GOMODCACHE GOTOOLCHAIN=local GOWORK=off
export GOFLAGS="-trimpath -buildvcs=false -modcacherw"
command -v go >/dev/null 2>&1 || PATH="$PATH:/usr/local/go/bin"

log() { printf 'build-pod-tools: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
sum() { sha256sum "$@" | cut -c1-64 | tr '\n' ' '; }

mkdir -p "$cache/bin"
# Two fleets coming up at once build once.
exec 9>>"$cache/.lock"
flock 9

go_version() { go env GOVERSION 2>/dev/null || echo none; }

# A piece is current when it exists and its stamp is the one wanted.
current() { # file stamp-file want
  [ -e "$1" ] && [ -f "$2" ] && [ "$(cat "$2")" = "$3" ]
}

stale=""
need() { # name: --check reports, otherwise the caller builds
  if $check_only; then stale="$stale $1"; return 1; fi
  return 0
}

# --- sleeper
sleeper=$cache/bin/sleeper
sleeper_want="sleeper $(sum "$here/sleeper/main.go" "$here/sleeper/go.mod")$(go_version) static"
if ! current "$sleeper" "$cache/bin/.sleeper.stamp" "$sleeper_want" && need sleeper; then
  command -v go >/dev/null 2>&1 || die "go is not installed (Go 1.22+ builds the sleeper)"
  log "building the sleeper"
  rm -f "$sleeper" "$cache/bin/.sleeper.stamp"
  (cd "$here/sleeper" && CGO_ENABLED=0 go build -ldflags "-s -w" -o "$sleeper.tmp" .)
  mv "$sleeper.tmp" "$sleeper"
  printf '%s\n' "$sleeper_want" >"$cache/bin/.sleeper.stamp"
fi

# --- the OCI image of it
image=$cache/image
arch=$(dpkg --print-architecture 2>/dev/null || go env GOARCH)
image_want="image $( [ -e "$sleeper" ] && sum "$sleeper")$arch"
if ! current "$image/index.json" "$cache/.image.stamp" "$image_want" && need image; then
  command -v umoci >/dev/null 2>&1 || die "umoci is missing (apt-get install umoci)"
  log "making the sleeper image"
  rm -rf "$image" "$image.tmp" "$cache/.image.stamp"
  umoci init --layout "$image.tmp"
  umoci new --image "$image.tmp:sleeper"
  umoci insert --image "$image.tmp:sleeper" "$sleeper" /sleeper >&2
  umoci config --image "$image.tmp:sleeper" --os linux --architecture "$arch" \
    --config.entrypoint /sleeper --author containerd-node-fleet >&2
  umoci gc --layout "$image.tmp"
  mv "$image.tmp" "$image"
  printf '%s\n' "$image_want" >"$cache/.image.stamp"
fi

# --- crictl
crictl=$cache/bin/crictl
crictl_want="crictl $crictl_version $(go_version) static"
if ! current "$crictl" "$cache/bin/.crictl.stamp" "$crictl_want" && need crictl; then
  command -v go >/dev/null 2>&1 || die "go is not installed (crictl $crictl_version needs Go 1.26.6+)"
  log "building crictl $crictl_version"
  rm -f "$crictl" "$cache/bin/.crictl.stamp"
  # The version stamped as cri-tools' own Makefile does.
  GOBIN="$cache/bin" CGO_ENABLED=0 go install \
    -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$crictl_version" \
    "$crictl_pkg@$crictl_version" >&2
  printf '%s\n' "$crictl_want" >"$cache/bin/.crictl.stamp"
fi

if [ -n "$stale" ]; then
  die "missing or stale:$stale (run: sh tests/fleet/build-pod-tools.sh)"
fi
printf 'sleeper %s %s\n' "$(cut -d' ' -f2 "$cache/bin/.sleeper.stamp" | cut -c1-12)" "$sleeper"
printf 'image %s %s\n' "$(cut -d' ' -f2 "$cache/.image.stamp" | cut -c1-12)" "$image"
printf 'crictl %s %s\n' "$crictl_version" "$crictl"
