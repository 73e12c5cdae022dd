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
# The archive is the one this machine already uses for Debian's main suites (its deb822
# /etc/apt/sources.list.d/*.sources, else the one-line /etc/apt/sources.list); the repository names none.
archive_uri() {
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # One stanza per blank-line-separated block: take the URI of a stanza with a plain (non-security) suite.
    awk 'BEGIN { RS = ""; FS = "\n" }
         { uri = ""; plain = 0
           for (i = 1; i <= NF; i++) {
             if ($i ~ /^URIs:/) { split($i, u, " "); uri = u[2] }
             if ($i ~ /^Suites:/) { n = split($i, s, " "); for (j = 2; j <= n; j++) if (s[j] !~ /-security$/) plain = 1 }
           }
           if (uri != "" && plain) { print uri; exit } }' "$f"
  done
  [ -f /etc/apt/sources.list ] &&
    awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($(i + 1) !~ /-security$/) print $i; break } }' /etc/apt/sources.list
}
uri=$(archive_uri | head -n 1)
[ -n "$uri" ] || { echo "fetch-containerd: no Debian archive found in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list" >&2; exit 1; }
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
printf 'deb [signed-by=%s] %s %s main\n' "$keyring" "$uri" trixie "$keyring" "$uri" sid >"$apt_dir/sources.list"
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
  rm -rf "${cache:?}/$gen"
  mkdir -p "$cache/$gen"
  dpkg -x "$tmp"/containerd_*.deb "$cache/$gen"
  rm -rf "$tmp"
  printf '%s\n' "$ver" >"$cache/$gen/.version"
  printf '%s %s %s\n' "$gen" "$ver" "$cache/$gen"
}

fetch 1.7 "$want_17" trixie
fetch 2.1 "$want_21" sid
