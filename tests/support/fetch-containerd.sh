#!/bin/sh
# Fetch containerd 1.7 (Debian trixie) and 2.1 (Debian sid) without installing them: a private apt
# configuration downloads the .deb files and `dpkg -x` unpacks each into CACHE/<version>/. The machine's
# own apt setup is left alone. 1.6.20 is Debian bookworm's and is installed by .ci/run as usual.
# Usage: fetch-containerd.sh [CACHE]   (default: <repo>/.cache/containerd)
# Prints one line per generation: "<generation> <version> <dir>".
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cache=${1:-"$here/../../.cache/containerd"}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
apt_dir="$cache/apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial"
cat >"$apt_dir/sources.list" <<LIST
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main
LIST
aptopts="-oDir::Etc::SourceList=$apt_dir/sources.list -oDir::Etc::SourceParts=/dev/null -oDir::State::Lists=$apt_dir/lists -oDir::Cache::Archives=$apt_dir/archives -oAPT::Default-Release="

# Wanted versions; sid moves, so a missing pin falls back to what madison lists for that suite.
want_17=${CONTAINERD_17_VERSION:-1.7.24~ds1-6+deb13u1}
want_21=${CONTAINERD_21_VERSION:-2.1.9+ds1-5}

have() { [ -x "$cache/$1/usr/bin/containerd" ] && [ -f "$cache/$1/.version" ]; }

fetch() { # generation wanted-version suite
  gen=$1 want=$2 suite=$3
  if have "$gen"; then
    printf '%s %s %s\n' "$gen" "$(cat "$cache/$gen/.version")" "$cache/$gen"
    return 0
  fi
  if [ ! -f "$apt_dir/.updated" ]; then
    # shellcheck disable=SC2086
    apt-get $aptopts update >&2
    : >"$apt_dir/.updated"
  fi
  # shellcheck disable=SC2086
  versions=$(apt-cache $aptopts madison containerd | awk -v s="$suite" '$0 ~ s"/main" {print $3}')
  ver=$want
  if ! printf '%s\n' "$versions" | grep -qxF "$want"; then
    ver=$(printf '%s\n' "$versions" | head -n 1)
    [ -n "$ver" ] || { echo "fetch-containerd: no containerd in $suite" >&2; return 1; }
    echo "fetch-containerd: $want is gone from $suite; using $ver" >&2
  fi
  tmp=$(mktemp -d)
  # shellcheck disable=SC2086
  (cd "$tmp" && apt-get $aptopts download "containerd=$ver" >&2)
  rm -rf "$cache/$gen"
  mkdir -p "$cache/$gen"
  dpkg -x "$tmp"/containerd_*.deb "$cache/$gen"
  rm -rf "$tmp"
  printf '%s\n' "$ver" >"$cache/$gen/.version"
  printf '%s %s %s\n' "$gen" "$ver" "$cache/$gen"
}

fetch 1.7 "$want_17" trixie
fetch 2.1 "$want_21" sid
