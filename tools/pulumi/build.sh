#!/bin/sh
# The real Pulumi tools for the engine tests and the demo, built from Go modules (no prebuilt binary
# can be downloaded on the project's machines), or taken from the machine where they are installed.
#
#   pulumi                    CLI and engine: main package github.com/pulumi/pulumi/pkg/v3/cmd/pulumi,
#                             built from this wrapper module (pkg/v3's own go.mod has local replace
#                             lines, so `go install pkg@version` refuses it; a module that requires it
#                             builds it the ordinary way). Version: go.mod here, which follows the
#                             @pulumi/pulumi of package-lock.json.
#   pulumi-language-nodejs    runs `runtime: nodejs` projects (module
#                             github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3)
#   pulumi-resource-command   the command provider 1.2.1, our @pulumi/command (module
#                             github.com/pulumi/pulumi-command/provider, at the v1.2.1 release commit)
#
# Usage: tools/pulumi/build.sh [--check]
#   Builds what is missing into <repo>/.cache/tools/bin (a second run builds nothing), then prints one
#   line per tool: "<tool> ok <path>" or "<tool> missing <why>". Exit 0 when all three are usable.
#   --check builds nothing and only reports.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin="$repo/.cache/tools/bin"
check_only=false
[ "${1:-}" = --check ] && check_only=true

: "${GOCACHE:=$repo/.cache/go/build}"
: "${GOMODCACHE:=$repo/.cache/go/mod}"
export GOCACHE GOMODCACHE
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
command_version=1.2.1
# The v1.2.1 tag of pulumi/pulumi-command is not a tag of its provider/ module, so the module is
# addressed by the pseudo-version of that commit.
command_module=github.com/pulumi/pulumi-command/provider
command_pseudo=v0.0.0-20260303235922-7f3eb6f3b77c
nodejs_module=github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3

status=0
report() { printf '%s %s\n' "$1" "$2"; }

# --- the CLI: the machine's own when it is new enough, else ours.
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
      mkdir -p "$bin"
      (cd "$here" && go build -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$want" \
        -o "$bin/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi) >&2
    fi
  fi
  [ -x "$bin/pulumi" ] && cli="$bin/pulumi"
fi
if [ -n "$cli" ]; then report pulumi "ok $cli"; else report pulumi "missing: not built yet (tools/pulumi/build.sh builds it from Go modules)"; status=1; fi

# What the module proxy answers for a module version, in one line (empty when it serves it).
proxy_answer() { # module@version
  out=$(cd "$here" && go mod download -json "$1" 2>&1) && return 0
  # go's JSON error text: "...: reading URL: 403 Forbidden\n\tserver response: ..." -> one line.
  printf '%s' "$out" | sed -n 's/.*"Error": "\(.*\)",\{0,1\}$/\1/p' | head -n 1 |
    sed -e 's/\\n\\t/ /g' -e 's/^.*: reading [^ ]*: //' | tr -d '\n'
}

# --- the Node.js language host.
if command -v pulumi-language-nodejs >/dev/null 2>&1; then
  report pulumi-language-nodejs "ok $(command -v pulumi-language-nodejs)"
elif [ -x "$bin/pulumi-language-nodejs" ]; then
  report pulumi-language-nodejs "ok $bin/pulumi-language-nodejs"
else
  report pulumi-language-nodejs "missing: the Go module proxy does not serve $nodejs_module@$want ($(proxy_answer "$nodejs_module@$want"))"
  status=1
fi

# --- the command provider, as a plugin the engine loads.
plugin_dir=${PULUMI_HOME:-$HOME/.pulumi}/plugins/resource-command-v$command_version
if [ -x "$plugin_dir/pulumi-resource-command" ]; then
  report pulumi-resource-command "ok $plugin_dir/pulumi-resource-command"
else
  report pulumi-resource-command "missing: the Go module proxy does not serve $command_module@$command_pseudo (v$command_version) ($(proxy_answer "$command_module@$command_pseudo"))"
  status=1
fi
exit "$status"
