#!/bin/sh
# npm's postinstall of this folder (which `pulumi package add` and `pulumi install` run for a
# component package): index.ts runs the library at the top of this repository, built (provider/bin)
# and with its dependencies installed. In a checkout where `npm install` already ran there, this
# does nothing; in a fresh clone (a package added from a git URL) it installs and builds it, the
# way `npm ci` does (its `prepare` builds provider/bin).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
if [ -f "$top/node_modules/@pulumi/pulumi/package.json" ] && [ -f "$top/provider/bin/index.js" ]; then
  exit 0
fi
cd "$top"
echo "containerd-node: installing and building the library in $top" >&2
# With dev dependencies (TypeScript builds the library), whatever npm_config_omit the calling
# install passes down. No lifecycle scripts, so no `prepare` (npm run build): a clone made by
# `pulumi package add <git URL>` sits in a folder whose name has a colon (host:port), which breaks
# the PATH entry npm run adds for node_modules/.bin. The compiler is run by its path instead.
npm ci --include=dev --ignore-scripts --no-audit --no-fund >&2
node node_modules/typescript/bin/tsc -p provider/tsconfig.json >&2
