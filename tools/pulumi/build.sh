#!/bin/sh
# The real Pulumi toolchain for the engine tests, the demo and the benchmark, built from source (no
# prebuilt binary can be downloaded on the project's machines), or taken from the machine where a
# suitable one is installed.
#
#   pulumi                   CLI and engine: github.com/pulumi/pulumi/pkg/v3/cmd/pulumi, built from
#                            this wrapper module (pkg/v3's own go.mod has local replace lines, so
#                            `go install pkg@version` refuses it; a module that requires it builds it
#                            the ordinary way). Version: go.mod here, which follows the @pulumi/pulumi
#                            of package-lock.json.
#   pulumi-resource-command  the command provider 1.2.1 (our @pulumi/command), installed as a plugin
#                            into $PULUMI_HOME
#   pulumi-language-nodejs   runs `runtime: nodejs` programs and component packages
#   pulumi-language-python   (+ pulumi-language-python-exec) runs `runtime: python` programs
#   pulumi-language-go       runs `runtime: go` programs
#   pulumi-language-yaml     runs `runtime: yaml` programs (built with the engine's schema loader on,
#                            so YAML programs can use the component package; see below)
#
# The Go module proxy refuses the command provider, its framework and the first three language hosts
# (403 Forbidden), so their release sources come from ../shared/third_party (its README: origin,
# commits, licences). They are checked against the pins below, copied into .cache/tools/src (only
# the files its SHA256SUMS lists) and built there, never in ../shared. Every other dependency, and
# the YAML host, comes from the Go module proxy, at the versions and hashes a go.mod and go.sum pin.
# One Go build cache (.cache/go) serves every build.
#
# What is checked, before anything is built:
#   - each ../shared/third_party folder we build from: its README row (tag, commit) is the one pinned
#     here; its SHA256SUMS lines are the ones pinned here (their sha256, the folder's "tree hash");
#     every file they list has that sha256. The commits cannot be checked here (the folders are not
#     git checkouts); the per-file hashes are what the build relies on.
#   - @pulumi/command in package-lock.json is the release of the command provider's source, so a bump
#     of the npm package never installs the old provider under the new number.
# A tool on the machine's PATH is used when its version is not older than the one built here.
# Each binary built here has a stamp beside it (.<tool>.stamp): its version, source tree hash or
# go.mod/go.sum hashes, flags and Go version. A binary whose stamp differs is built again.
#
# Usage: tools/pulumi/build.sh [--check]
#   Builds what is missing or stale into <repo>/.cache/tools/bin (a second run builds nothing) and
#   installs the command plugin into PULUMI_HOME (default <repo>/.cache/pulumi-home), then prints one
#   line per tool: "<tool> ok <path>" or "<tool> missing: <why>". Exit 0 when all are usable.
#   --check builds nothing and only reports (after the same checks).
#   THIRD_PARTY_DIR overrides where ../shared/third_party is.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin="$repo/.cache/tools/bin"
src="$repo/.cache/tools/src"
plugin_build="$repo/.cache/tools/provider"
third_party=${THIRD_PARTY_DIR:-$(cd "$repo/.." && pwd)/shared/third_party}
check_only=false
case "${1:-}" in
  --check) check_only=true ;;
  "") ;;
  *) echo "usage: tools/pulumi/build.sh [--check]" >&2; exit 2 ;;
esac

: "${GOCACHE:=$repo/.cache/go/build}"
: "${GOMODCACHE:=$repo/.cache/go/mod}"
: "${PULUMI_HOME:=$repo/.cache/pulumi-home}"
export GOCACHE GOMODCACHE PULUMI_HOME
export PULUMI_SKIP_UPDATE_CHECK=true
# Go's own tarball installs into /usr/local/go; a non-login shell may not have it on PATH yet.
command -v go >/dev/null 2>&1 || PATH="$PATH:/usr/local/go/bin"
# Only the versions a go.mod and its go.sum pin: with -mod=readonly, go fails instead of changing
# go.mod when a build needs a module or version they do not name, and never looks a missing package
# up at its latest version (as `go mod tidy` or -mod=mod would). No build here runs tidy: the
# language hosts build with the tidied go.mod and go.sum kept in hosts/ (see language_host).
# GOWORK=off: a go.work above a build directory must not change its modules. GOTOOLCHAIN=local:
# a go.mod asking for a newer Go than the machine's fails the build rather than fetching a toolchain.
export GOFLAGS="-trimpath -buildvcs=false -modcacherw -mod=readonly" GOWORK=off GOTOOLCHAIN=local

want=$(sed -n 's#^[[:space:]]*github.com/pulumi/pulumi/pkg/v3 \(v[0-9.]*\).*#\1#p' "$here/go.mod" | head -n 1)
# The two versions package-lock.json pins: @pulumi/pulumi and @pulumi/command.
npm_versions=$(node -p 'const p = require(process.argv[1]).packages; ["pulumi", "command"].map((n) => (p["node_modules/@pulumi/" + n] || {}).version || "-").join(" ")' "$repo/package-lock.json" 2>/dev/null || echo "- -")
npm_want=${npm_versions% *}
command_version=${npm_versions#* }
if [ "$npm_want" != - ] && [ "v$npm_want" != "$want" ]; then
  echo "tools/pulumi: go.mod builds pulumi $want but package-lock.json has @pulumi/pulumi $npm_want;" \
    "run: (cd tools/pulumi && go get github.com/pulumi/pulumi/pkg/v3@v$npm_want github.com/pulumi/pulumi/sdk/v3@v$npm_want && go mod tidy)" >&2
  exit 1
fi

# --- the pins. The language hosts in ../shared/third_party are pulumi's v3.259.0 release.
hosts_release=v3.259.0
command_tag=v1.2.1
# Per folder of ../shared/third_party: its README row, tag and commit, and its tree hash:
#   (cd ../shared/third_party && grep '^[0-9a-f]*  \./FOLDER/' SHA256SUMS | LC_ALL=C sort -k 2 | sha256sum)
# A new release there means new pins here, after reading what changed (and, for a language host,
# new hosts/ files; see language_host).
third_party_pins="pulumi-command pulumi-command/provider $command_tag 7f3eb6f3b77cd0fa3895ba437a695dd393f7dd25 bc8c80c1f0f0eaada50e410583b020631f28557d9cb1716dcb616302735f12a7
pulumi-go-provider pulumi-go-provider v1.3.0 3bfb720d763cca9c53a2af4016e224f7259f6345 ba59349d975b32c4baa4538c59c0c00b4b53d081d4721eab5bcfc0b5d8580cb7
pulumi-language-nodejs pulumi-language-nodejs $hosts_release 0ac56e876614aedf12771d73ef7e80959b8a6fd4 b1ab5a9fcb1c072d5a6b357ff270e0fecdefde5aa668be3207276aecc054a30a
pulumi-language-python pulumi-language-python $hosts_release 0ac56e876614aedf12771d73ef7e80959b8a6fd4 7872c63a08398cbe9e06ac98a06777f2118fa4cb6b0c40eea5e4488521a0d619
pulumi-language-go pulumi-language-go $hosts_release 0ac56e876614aedf12771d73ef7e80959b8a6fd4 dacdadd13203b434b86acc27036e2c14e0963c5e54565a1370912e5f8b6bcae1"
# The YAML host: the module's version and its go.sum hash (the h1: dirhash of its files).
yaml_version=v1.25.0
yaml_sum=h1:fy/AKkIafzwtk/6Bj9KFXGj6uqYWGXY31UmLvhrfjqs=
# package-lock.json without @pulumi/command: the provider this source is.
[ "$command_version" != - ] || command_version=${command_tag#v}

status=0
report() { printf '%s %s\n' "$1" "$2"; }
log() { printf 'tools/pulumi: %s\n' "$*" >&2; }
pin() { # folder field: a field of the folder's pin (2 README row, 3 tag, 4 commit, 5 tree hash)
  printf '%s\n' "$third_party_pins" | awk -v folder="$1" -v field="$2" '$1 == folder { print $field }'
}
file_sum() { sha256sum <"$1" | cut -c1-64; }

# --- versions. sort -V puts the older first; either may start with a v.
version_ge() { # have want: have is a version and not older than want
  case ${1#v} in [0-9]*) ;; *) return 1 ;; esac
  [ "$(printf '%s\n%s\n' "${1#v}" "${2#v}" | sort -V | head -n 1)" = "${2#v}" ]
}
# The version of a tool on PATH, as the tool says it (empty when it cannot be told).
tool_version() { # tool path
  case $1 in
    pulumi) "$2" version 2>/dev/null | head -n 1 ;;
    pulumi-language-yaml)
      # No version flag: the module version its build info records (go install ...@version).
      LC_ALL=C grep -a -o "$(printf 'mod\tgithub.com/pulumi/pulumi-yaml\tv')[0-9][0-9A-Za-z.+-]*" "$2" 2>/dev/null | head -n 1 | cut -f 3 ;;
    pulumi-language-*) "$2" -version 2>/dev/null | head -n 1 ;;
    pulumi-resource-command)
      # No version flag either: the version its schema says, which the CLI asks it for.
      [ -n "$cli" ] || return 0
      "$cli" package get-schema "$2" 2>/dev/null |
        node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => { try { console.log(JSON.parse(s).version || ""); } catch { console.log(""); } })' ;;
  esac
}
# The machine's own tool (printed) when it is on PATH, is not ours, and is not older than ours.
machine_tool() { # tool version-we-build
  mt_path=$(command -v "$1" 2>/dev/null) || return 1
  case $mt_path in "$bin/$1" | "$plugin_build/$1") return 1 ;; esac
  mt_have=$(tool_version "$1" "$mt_path" || true)
  if version_ge "$mt_have" "$2"; then printf '%s\n' "$mt_path"; return 0; fi
  if [ -n "$mt_have" ]; then
    log "$mt_path is $mt_have, older than the $2 built here: using ours"
  else
    log "$mt_path does not tell its version (the $2 built here is the oldest usable): using ours"
  fi
  return 1
}

# --- stamps: a binary is fresh when its stamp holds the inputs it would be built from now.
stamp_path() { printf '%s/.%s.stamp' "${1%/*}" "${1##*/}"; }
fresh() { # binary inputs
  [ -x "$1" ] && [ -f "$(stamp_path "$1")" ] && [ "$(cat "$(stamp_path "$1")")" = "$2" ]
}
why_not() { # binary
  if [ -x "$1" ]; then echo "stale: built from other sources, versions or flags than these (its stamp differs)"; else echo "not built yet"; fi
}
go_version=$( (cd / && go env GOVERSION) 2>/dev/null || echo none)
inputs() { # name version [line...]: what a binary is built from, one item a line
  printf '%s %s\n' "$1" "$2"
  shift 2
  printf '%s\n' "go $go_version" "GOFLAGS $GOFLAGS" "$@"
}

# --- ../shared/third_party, checked against the pins.
readme_release() { # README row -> "tag commit" as ../shared/third_party/README.md records them
  awk -F'|' -v row="\`$1\`" '
    /^\|/ {
      f = $2; t = $4; c = $5
      gsub(/^ +| +$/, "", f); gsub(/ /, "", t); gsub(/ /, "", c)
      if (c == "same") c = last; else last = c
      if (f == row) { print t, c; exit }
    }' "$third_party/README.md" 2>/dev/null
}
sums_of() { # folder -> its SHA256SUMS lines, sorted by path
  grep "^[0-9a-f]*  \./$1/" "$third_party/SHA256SUMS" 2>/dev/null | LC_ALL=C sort -k 2
}
problems=""
problem() { problems="$problems
  $*"; }
verify_folder() { # folder
  vf_dir="$third_party/$1"
  vf_release=$(readme_release "$(pin "$1" 2)")
  if [ "$vf_release" != "$(pin "$1" 3) $(pin "$1" 4)" ]; then
    problem "$third_party/README.md records $(pin "$1" 2) at ${vf_release:-nothing}, build.sh pins $(pin "$1" 3) $(pin "$1" 4)"
  fi
  vf_lines=$(sums_of "$1")
  vf_tree=$(printf '%s\n' "$vf_lines" | sha256sum | cut -c1-64)
  if [ "$vf_tree" != "$(pin "$1" 5)" ]; then
    problem "$vf_dir/: its SHA256SUMS lines name other files or hashes than build.sh pins (tree hash expected $(pin "$1" 5), found $vf_tree)"
  fi
  [ -n "$vf_lines" ] || return 0
  # The files: one sha256sum for all; file by file only to say which differ.
  if ! (cd "$third_party" && printf '%s\n' "$vf_lines" | sha256sum -c --quiet --strict >/dev/null 2>&1); then
    vf_bad=$(printf '%s\n' "$vf_lines" | while read -r vf_sum vf_file; do
      vf_found=$(sha256sum <"$third_party/$vf_file" 2>/dev/null | cut -c1-64)
      [ "$vf_found" = "$vf_sum" ] || printf '%s\n' "$third_party/${vf_file#./}: sha256 expected $vf_sum, found ${vf_found:-no file}"
    done)
    problem "${vf_bad:-$vf_dir/: sha256sum -c refuses its SHA256SUMS lines}"
  fi
}
# A copy of third_party folders in the cache: only the files SHA256SUMS lists, checked again in the
# copy against lines whose tree hash is the pin.
copy_source() { # folder...
  for name in "$@"; do
    [ -d "$third_party/$name" ] || { log "$third_party/$name is missing (see ../shared/third_party/README.md)"; return 1; }
    cs_lines=$(sums_of "$name")
    if [ "$(printf '%s\n' "$cs_lines" | sha256sum | cut -c1-64)" != "$(pin "$name" 5)" ]; then
      log "$third_party/$name changed since it was checked"
      return 1
    fi
    rm -rf "${src:?}/$name"
    mkdir -p "$src"
    (cd "$third_party" && printf '%s\n' "$cs_lines" | sed 's/^[0-9a-f]*  //' | tar -cf - -T -) | (cd "$src" && tar -xf -)
    chmod -R u+w "$src/$name"
    (cd "$src" && printf '%s\n' "$cs_lines" | sha256sum -c --quiet --strict) >&2 || { log "the copy of $name in $src is not what SHA256SUMS lists"; return 1; }
  done
}

# --- what comes from the machine, what is ours. The CLI first: the provider's version is asked
# through it.
cli=""
machine_cli=$(machine_tool pulumi "$want") || true
cli_ldflags="-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$want"
cli_inputs=$(inputs pulumi "$want" "ldflags $cli_ldflags" "go.mod $(file_sum "$here/go.mod")" "go.sum $(file_sum "$here/go.sum")")
if [ -n "$machine_cli" ]; then cli=$machine_cli; elif fresh "$bin/pulumi" "$cli_inputs"; then cli="$bin/pulumi"; fi
machine_nodejs=$(machine_tool pulumi-language-nodejs "$hosts_release") || true
machine_python=$(machine_tool pulumi-language-python "$hosts_release") || true
machine_go=$(machine_tool pulumi-language-go "$hosts_release") || true
machine_yaml=$(machine_tool pulumi-language-yaml "$yaml_version") || true
machine_command=$(machine_tool pulumi-resource-command "$command_version") || true

# --- the checks, before anything is built.
if [ -z "$machine_command" ] && [ "v$command_version" != "$command_tag" ]; then
  log "package-lock.json asks for @pulumi/command $command_version, but the command provider's source" \
    "(../shared/third_party/pulumi-command, pinned here) is $command_tag: building it would install" \
    "$command_tag's code as $command_version. Either keep @pulumi/command at ${command_tag#v}" \
    "(npm install --save-exact @pulumi/command@${command_tag#v}), or put the provider's v$command_version" \
    "release source (and the pulumi-go-provider it requires) into ../shared/third_party, with its README" \
    "row and SHA256SUMS lines, and update command_tag and third_party_pins in tools/pulumi/build.sh."
  exit 1
fi
needed=""
[ -n "$machine_nodejs" ] || needed="$needed pulumi-language-nodejs"
[ -n "$machine_python" ] || needed="$needed pulumi-language-python"
[ -n "$machine_go" ] || needed="$needed pulumi-language-go"
[ -n "$machine_command" ] || needed="$needed pulumi-command pulumi-go-provider"
# Without ../shared/third_party, what is built already stays usable (its stamp holds the pins).
if [ -n "$needed" ] && [ -d "$third_party" ]; then
  for folder in $needed; do verify_folder "$folder"; done
  if [ -n "$problems" ]; then
    log "$third_party is not the source pinned here; refusing to build from it:$problems"
    exit 1
  fi
fi

# --- the CLI: the machine's own when it is not older than ours, else ours.
if [ -z "$cli" ] && ! $check_only; then
  log "building pulumi $want"
  mkdir -p "$bin"
  rm -f "$(stamp_path "$bin/pulumi")"
  if (cd "$here" && go build -ldflags "$cli_ldflags" -o "$bin/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi) >&2; then
    printf '%s\n' "$cli_inputs" >"$(stamp_path "$bin/pulumi")"
    cli="$bin/pulumi"
  else
    log "pulumi did not build"
  fi
fi
if [ -n "$cli" ]; then report pulumi "ok $cli"; else report pulumi "missing: $(why_not "$bin/pulumi") (tools/pulumi/build.sh builds it)"; status=1; fi

# --- a language host from ../shared/third_party. Its go.mod points pkg/v3 and sdk/v3 at folders of
# the pulumi repository that are not there; the same release comes from the proxy instead. The
# go.mod and go.sum it builds with are hosts/<folder>.go.mod and .go.sum, made once by
#   cp -R ../shared/third_party/FOLDER /tmp/x && cd /tmp/x &&
#   go mod edit -dropreplace github.com/pulumi/pulumi/pkg/v3 -dropreplace github.com/pulumi/pulumi/sdk/v3 \
#     -require github.com/pulumi/pulumi/pkg/v3@v3.259.0 -require github.com/pulumi/pulumi/sdk/v3@v3.259.0 &&
#   go mod tidy
# (which then looked no package up: no "finding module for package" line) and read before they were
# kept, so a build never resolves a version itself.
host_ldflags="-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$hosts_release"
language_host() { # lang machine-path
  tool=pulumi-language-$1
  folder=$tool
  if [ -n "$2" ]; then report "$tool" "ok $2"; return 0; fi
  host_inputs=$(inputs "$tool" "$hosts_release" "ldflags $host_ldflags" "source $folder $(pin "$folder" 5)" \
    "go.mod $(file_sum "$here/hosts/$folder.go.mod")" "go.sum $(file_sum "$here/hosts/$folder.go.sum")")
  # The Python host runs programs through this script, which must sit beside it.
  host_extra=""
  [ "$1" != python ] || host_extra="$bin/pulumi-language-python-exec"
  if { ! fresh "$bin/$tool" "$host_inputs" || { [ -n "$host_extra" ] && [ ! -x "$host_extra" ]; }; } && ! $check_only; then
    log "building $tool $hosts_release"
    mkdir -p "$bin"
    rm -f "$(stamp_path "$bin/$tool")"
    if copy_source "$folder" && cp "$here/hosts/$folder.go.mod" "$src/$folder/go.mod" && cp "$here/hosts/$folder.go.sum" "$src/$folder/go.sum" &&
      (cd "$src/$folder" && go build -ldflags "$host_ldflags" -o "$bin/$tool" .) >&2 &&
      { [ -z "$host_extra" ] || { cp "$src/$folder/pulumi-language-python-exec" "$host_extra" && chmod 0755 "$host_extra"; }; }; then
      printf '%s\n' "$host_inputs" >"$(stamp_path "$bin/$tool")"
    else
      log "$tool did not build"
    fi
  fi
  if fresh "$bin/$tool" "$host_inputs" && { [ -z "$host_extra" ] || [ -x "$host_extra" ]; }; then
    report "$tool" "ok $bin/$tool"
  else
    report "$tool" "missing: $(why_not "$bin/$tool")"
    status=1
  fi
}
language_host nodejs "$machine_nodejs"
language_host python "$machine_python"
language_host go "$machine_go"

# --- the YAML host: served by the Go module proxy, built from a copy with one line changed. As
# released, v1.25.0 loads package schemas with its own plugin host (sdk v3.206), which starts a
# component package's language host with flags (`-root=...`) that the Node.js host of 3.259 refuses
# ("flag provided but not defined"), so a YAML program cannot use a Node.js component package
# (pulumi-package/). The host also has the engine's schema loader built in (the same release's
# NewLanguageHost(..., useRPCLoader)), which main.go leaves off; the copy turns it on, and the
# engine, which knows the project's `packages:`, loads the schema. The copy is checked against
# yaml_sum (the module cache is writable) before the change; the change is part of the stamp.
yaml_patch='s#NewLanguageHost(engineAddress, tracing, false /\* useRPCLoader \*/)#NewLanguageHost(engineAddress, tracing, true /* useRPCLoader */)#'
yaml_inputs=$(inputs pulumi-language-yaml "$yaml_version" "module $yaml_sum" "ldflags -s -w" "change $yaml_patch")
# The h1: hash go.sum records for a module, of a directory holding its files.
dirhash() { # dir module@version
  node -e '
    const crypto = require("crypto"), fs = require("fs"), path = require("path");
    const [dir, prefix] = process.argv.slice(1);
    const files = [];
    (function walk(d) {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p); else files.push(path.relative(dir, p).split(path.sep).join("/"));
      }
    })(dir);
    files.sort();
    const sha = (b) => crypto.createHash("sha256").update(b);
    const lines = files.map((f) => sha(fs.readFileSync(path.join(dir, f))).digest("hex") + "  " + prefix + "/" + f + "\n");
    console.log("h1:" + sha(lines.join("")).digest("base64"));' "$1" "$2"
}
build_yaml() {
  mkdir -p "$src" "$bin"
  yaml_mod=$(cd "$src" && go mod download -json "github.com/pulumi/pulumi-yaml@$yaml_version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -n "$yaml_mod" ] || { log "go mod download did not give pulumi-yaml $yaml_version"; return 1; }
  rm -rf "$src/pulumi-yaml"
  cp -R "$yaml_mod" "$src/pulumi-yaml"
  chmod -R u+w "$src/pulumi-yaml"
  yaml_found=$(dirhash "$src/pulumi-yaml" "github.com/pulumi/pulumi-yaml@$yaml_version")
  [ "$yaml_found" = "$yaml_sum" ] || { log "pulumi-yaml $yaml_version: its files hash to $yaml_found, pinned $yaml_sum"; return 1; }
  main_go="$src/pulumi-yaml/cmd/pulumi-language-yaml/main.go"
  sed -i "$yaml_patch" "$main_go"
  grep -q 'tracing, true /\* useRPCLoader \*/' "$main_go" ||
    { log "pulumi-language-yaml $yaml_version: its source is not the one this script knows (useRPCLoader line)"; return 1; }
  (cd "$src/pulumi-yaml" && go build -ldflags "-s -w" -o "$bin/pulumi-language-yaml" ./cmd/pulumi-language-yaml) >&2
}
if [ -n "$machine_yaml" ]; then
  report pulumi-language-yaml "ok $machine_yaml"
else
  if ! fresh "$bin/pulumi-language-yaml" "$yaml_inputs" && ! $check_only; then
    log "building pulumi-language-yaml $yaml_version (with the engine's schema loader)"
    rm -f "$(stamp_path "$bin/pulumi-language-yaml")" "$bin/.pulumi-language-yaml-rpc-loader"
    if build_yaml; then
      printf '%s\n' "$yaml_inputs" >"$(stamp_path "$bin/pulumi-language-yaml")"
    else
      log "pulumi-language-yaml did not build"
    fi
  fi
  if fresh "$bin/pulumi-language-yaml" "$yaml_inputs"; then report pulumi-language-yaml "ok $bin/pulumi-language-yaml"; else report pulumi-language-yaml "missing: $(why_not "$bin/pulumi-language-yaml")"; status=1; fi
fi

# --- the command provider, built into the cache (not into $bin: a provider on PATH is taken over the
# installed plugin, with a warning per run) and installed as the plugin the engine loads.
plugin_bin="$plugin_build/pulumi-resource-command"
plugin="$PULUMI_HOME/plugins/resource-command-v$command_version/pulumi-resource-command"
if [ -n "$machine_command" ]; then
  report pulumi-resource-command "ok $machine_command (on PATH; the engine takes it with a warning)"
  exit "$status"
fi
if command -v pulumi-resource-command >/dev/null 2>&1; then
  log "the engine takes the pulumi-resource-command on PATH over the plugin installed here unless PULUMI_IGNORE_AMBIENT_PLUGINS=true"
fi
command_ldflags="-s -w -X github.com/pulumi/pulumi-command/provider/pkg/version.Version=$command_version"
command_replace="github.com/pulumi/pulumi-go-provider=../../pulumi-go-provider"
command_inputs=$(inputs pulumi-resource-command "$command_version" "ldflags $command_ldflags" \
  "source pulumi-command $(pin pulumi-command 5)" "source pulumi-go-provider $(pin pulumi-go-provider 5)" "replace $command_replace")
if ! $check_only; then
  if ! fresh "$plugin_bin" "$command_inputs"; then
    log "building pulumi-resource-command $command_version"
    mkdir -p "$plugin_build"
    rm -f "$(stamp_path "$plugin_bin")"
    if copy_source pulumi-command pulumi-go-provider &&
      (cd "$src/pulumi-command/provider" && go mod edit -replace "$command_replace" &&
        go build -ldflags "$command_ldflags" -o "$plugin_bin" ./cmd/pulumi-resource-command) >&2; then
      printf '%s\n' "$command_inputs" >"$(stamp_path "$plugin_bin")"
    else
      log "pulumi-resource-command did not build"
    fi
  fi
  if fresh "$plugin_bin" "$command_inputs" && [ -n "$cli" ] && ! cmp -s "$plugin_bin" "$plugin"; then
    "$cli" plugin install resource command "$command_version" --file "$plugin_bin" --reinstall >&2
  fi
fi
if fresh "$plugin_bin" "$command_inputs" && cmp -s "$plugin_bin" "$plugin"; then
  report pulumi-resource-command "ok $plugin"
elif fresh "$plugin_bin" "$command_inputs" && [ -e "$plugin" ]; then
  report pulumi-resource-command "missing: the plugin in $PULUMI_HOME is not the one built here (tools/pulumi/build.sh installs it)"
  status=1
elif fresh "$plugin_bin" "$command_inputs"; then
  report pulumi-resource-command "missing: built, not installed into $PULUMI_HOME yet"
  status=1
else
  report pulumi-resource-command "missing: $(why_not "$plugin_bin")"
  status=1
fi
exit "$status"
