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
# commits, licences). They are copied into .cache/tools/src and built there, never in ../shared.
# Every other dependency, and the YAML host, comes from the Go module proxy. One Go build cache
# (.cache/go) serves every build.
#
# Usage: tools/pulumi/build.sh [--check]
#   Builds what is missing into <repo>/.cache/tools/bin (a second run builds nothing) and installs
#   the command plugin into PULUMI_HOME (default <repo>/.cache/pulumi-home), then prints one line per
#   tool: "<tool> ok <path>" or "<tool> missing <why>". Exit 0 when all are usable.
#   --check builds nothing and only reports.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin="$repo/.cache/tools/bin"
src="$repo/.cache/tools/src"
third_party=${THIRD_PARTY_DIR:-$(cd "$repo/.." && pwd)/shared/third_party}
check_only=false
[ "${1:-}" = --check ] && check_only=true

: "${GOCACHE:=$repo/.cache/go/build}"
: "${GOMODCACHE:=$repo/.cache/go/mod}"
: "${PULUMI_HOME:=$repo/.cache/pulumi-home}"
export GOCACHE GOMODCACHE PULUMI_HOME
export PULUMI_SKIP_UPDATE_CHECK=true
# Go's own tarball installs into /usr/local/go; a non-login shell may not have it on PATH yet.
command -v go >/dev/null 2>&1 || PATH="$PATH:/usr/local/go/bin"
export GOFLAGS="-trimpath -buildvcs=false -modcacherw"

want=$(sed -n 's#^[[:space:]]*github.com/pulumi/pulumi/pkg/v3 \(v[0-9.]*\).*#\1#p' "$here/go.mod" | head -n 1)
npm_want=$(node -p 'require(process.argv[1]).packages["node_modules/@pulumi/pulumi"].version' "$repo/package-lock.json" 2>/dev/null || true)
if [ -n "$npm_want" ] && [ "v$npm_want" != "$want" ]; then
  echo "tools/pulumi: go.mod builds pulumi $want but package-lock.json has @pulumi/pulumi $npm_want;" \
    "run: (cd tools/pulumi && go get github.com/pulumi/pulumi/pkg/v3@v$npm_want github.com/pulumi/pulumi/sdk/v3@v$npm_want && go mod tidy)" >&2
  exit 1
fi
# The command provider's version must be the one @pulumi/command asks the engine for.
command_version=$(node -p 'require(process.argv[1]).packages["node_modules/@pulumi/command"].version' "$repo/package-lock.json" 2>/dev/null || echo 1.2.1)
# The language hosts in ../shared/third_party are pulumi's v3.259.0 release.
hosts_release=v3.259.0
yaml_version=v1.25.0

status=0
report() { printf '%s %s\n' "$1" "$2"; }
log() { printf 'tools/pulumi: %s\n' "$*" >&2; }

# A copy of a third_party folder in the cache, fresh when the source changed.
copy_source() { # name...
  for name in "$@"; do
    [ -d "$third_party/$name" ] || { log "$third_party/$name is missing (see ../shared/third_party/README.md)"; return 1; }
    rm -rf "${src:?}/$name"
    mkdir -p "$src"
    cp -R "$third_party/$name" "$src/$name"
    chmod -R u+w "$src/$name"
  done
}

# --- the CLI: the machine's own when it is not older than ours, else ours.
cli=""
if command -v pulumi >/dev/null 2>&1 && [ "$(command -v pulumi)" != "$bin/pulumi" ]; then
  have=$(pulumi version 2>/dev/null || true)
  # sort -V puts the older first: the machine's CLI is used when it is not older than ours.
  if [ -n "$have" ] && [ "$(printf '%s\n%s\n' "$have" "$want" | sort -V | head -n 1)" = "$want" ]; then
    cli=$(command -v pulumi)
  fi
fi
if [ -z "$cli" ]; then
  if [ ! -x "$bin/pulumi" ] || [ "$("$bin/pulumi" version 2>/dev/null)" != "$want" ]; then
    if ! $check_only; then
      log "building pulumi $want"
      mkdir -p "$bin"
      (cd "$here" && go build -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$want" \
        -o "$bin/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi) >&2
    fi
  fi
  [ -x "$bin/pulumi" ] && cli="$bin/pulumi"
fi
if [ -n "$cli" ]; then report pulumi "ok $cli"; else report pulumi "missing: not built yet (tools/pulumi/build.sh builds it)"; status=1; fi

# --- a language host from ../shared/third_party: its go.mod points pkg/v3 and sdk/v3 at folders of
# the pulumi repository that are not there; the same release comes from the proxy instead.
language_host() { # lang folder
  lang=$1 folder=$2
  tool=pulumi-language-$lang
  if command -v "$tool" >/dev/null 2>&1 && [ "$(command -v "$tool")" != "$bin/$tool" ]; then
    report "$tool" "ok $(command -v "$tool")"
    return 0
  fi
  if [ ! -x "$bin/$tool" ] && ! $check_only; then
    log "building $tool $hosts_release"
    copy_source "$folder" &&
      (cd "$src/$folder" &&
        go mod edit -dropreplace github.com/pulumi/pulumi/pkg/v3 -dropreplace github.com/pulumi/pulumi/sdk/v3 \
          -require "github.com/pulumi/pulumi/pkg/v3@$hosts_release" -require "github.com/pulumi/pulumi/sdk/v3@$hosts_release" &&
        go mod tidy &&
        go build -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$hosts_release" \
          -o "$bin/$tool" .) >&2 || log "$tool did not build"
    # The Python host runs programs through this script, which must sit beside it.
    if [ "$lang" = python ] && [ -x "$bin/$tool" ]; then
      cp "$src/$folder/pulumi-language-python-exec" "$bin/" && chmod 0755 "$bin/pulumi-language-python-exec"
    fi
  fi
  if [ -x "$bin/$tool" ]; then report "$tool" "ok $bin/$tool"; else report "$tool" "missing: not built yet"; status=1; fi
}
language_host nodejs pulumi-language-nodejs
language_host python pulumi-language-python
language_host go pulumi-language-go

# --- the YAML host: served by the Go module proxy, built from a copy with one line changed. As
# released, v1.25.0 loads package schemas with its own plugin host (sdk v3.206), which starts a
# component package's language host with flags (`-root=...`) that the Node.js host of 3.259 refuses
# ("flag provided but not defined"), so a YAML program cannot use a Node.js component package
# (pulumi-package/). The host also has the engine's schema loader built in (the same release's
# NewLanguageHost(..., useRPCLoader)), which main.go leaves off; the copy turns it on, and the
# engine, which knows the project's `packages:`, loads the schema. The stamp file marks a host built so.
yaml_stamp="$bin/.pulumi-language-yaml-rpc-loader"
if command -v pulumi-language-yaml >/dev/null 2>&1 && [ "$(command -v pulumi-language-yaml)" != "$bin/pulumi-language-yaml" ]; then
  report pulumi-language-yaml "ok $(command -v pulumi-language-yaml)"
else
  if { [ ! -x "$bin/pulumi-language-yaml" ] || [ ! -f "$yaml_stamp" ]; } && ! $check_only; then
    log "building pulumi-language-yaml $yaml_version (with the engine's schema loader)"
    yaml_mod=$(go mod download -json "github.com/pulumi/pulumi-yaml@$yaml_version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    main_go="$src/pulumi-yaml/cmd/pulumi-language-yaml/main.go"
    if [ -n "$yaml_mod" ] && rm -rf "$src/pulumi-yaml" && mkdir -p "$src" && cp -R "$yaml_mod" "$src/pulumi-yaml" &&
      chmod -R u+w "$src/pulumi-yaml" &&
      sed -i 's#NewLanguageHost(engineAddress, tracing, false /\* useRPCLoader \*/)#NewLanguageHost(engineAddress, tracing, true /* useRPCLoader */)#' "$main_go" &&
      grep -q 'tracing, true /\* useRPCLoader \*/' "$main_go"; then
      mkdir -p "$bin"
      if (cd "$src/pulumi-yaml" && go build -ldflags "-s -w" -o "$bin/pulumi-language-yaml" ./cmd/pulumi-language-yaml) >&2; then
        : >"$yaml_stamp"
      else
        log "pulumi-language-yaml did not build"
      fi
    else
      log "pulumi-language-yaml $yaml_version: its source is not the one this script knows (useRPCLoader line)"
    fi
  fi
  if [ -x "$bin/pulumi-language-yaml" ] && [ -f "$yaml_stamp" ]; then report pulumi-language-yaml "ok $bin/pulumi-language-yaml"; else report pulumi-language-yaml "missing: not built yet"; status=1; fi
fi

# --- the command provider, built once into the cache and installed as the plugin the engine loads.
plugin_build="$repo/.cache/tools/provider"
plugin="$PULUMI_HOME/plugins/resource-command-v$command_version/pulumi-resource-command"
# A machine that has the provider on its PATH (where the engine looks first) uses that one.
machine_plugin=$(command -v pulumi-resource-command 2>/dev/null || true)
if [ -n "$machine_plugin" ] && [ ! -x "$plugin" ]; then
  report pulumi-resource-command "ok $machine_plugin (on PATH; the engine takes it with a warning)"
  exit "$status"
fi
if [ ! -x "$plugin" ] && ! $check_only; then
  # Not in $bin: a provider on PATH would be taken over the installed plugin, with a warning per run.
  if [ ! -x "$plugin_build/pulumi-resource-command" ]; then
    log "building pulumi-resource-command $command_version"
    copy_source pulumi-command pulumi-go-provider &&
      (cd "$src/pulumi-command/provider" &&
        go mod edit -replace github.com/pulumi/pulumi-go-provider=../../pulumi-go-provider &&
        go build -ldflags "-s -w -X github.com/pulumi/pulumi-command/provider/pkg/version.Version=$command_version" \
          -o "$plugin_build/pulumi-resource-command" ./cmd/pulumi-resource-command) >&2 || log "pulumi-resource-command did not build"
  fi
  if [ -x "$plugin_build/pulumi-resource-command" ] && [ -n "$cli" ]; then
    "$cli" plugin install resource command "$command_version" --file "$plugin_build/pulumi-resource-command" >&2
  fi
fi
if [ -x "$plugin" ]; then report pulumi-resource-command "ok $plugin"; else report pulumi-resource-command "missing: not built yet"; status=1; fi
exit "$status"
