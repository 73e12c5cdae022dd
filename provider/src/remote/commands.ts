/**
 * The command lines that `remote.Command` sends. sshd runs them as `<login shell> -c "<command>"`,
 * so each one is `/bin/sh -c '<constant text>' '<arg>' ...`: the code is fixed text and every value
 * is a single-quoted argument. Content never appears here: it goes on stdin.
 *
 * The node script is installed on the node once (the host resource's `installCommand`); a file's
 * command is a short line that runs it there.
 */
import type { ConfigVersion } from "../spec/version";
import { END_MARKER_LINE, NODE_SCRIPT, SCRIPT_REVISION } from "./node-script";

/**
 * The script as sent: without its comment lines and blank lines. The provider puts the whole
 * command into every error message and a preview shows it, so the shorter the better; the
 * commented source is node-script.ts.
 */
export const SENT_SCRIPT = NODE_SCRIPT.split("\n")
  .filter((line) => line.trim() !== "" && !/^\s*#/.test(line))
  .join("\n");

/** The script as installed on the node: a header that names its revision (read by the install), the text, the end marker. */
export const INSTALLED_SCRIPT = `#!/bin/sh
# containerd-node revision ${SCRIPT_REVISION}: installed by a Pulumi ContainerdNode; do not edit
${SENT_SCRIPT}
${END_MARKER_LINE}
`;

/** Where the node script lives on the node: beside config.toml's records. */
export function scriptPathFor(configFile: string): string {
  return `${configFile.replace(/\/[^/]*$/, "")}/.containerd-node/containerd-node.sh`;
}

/** Single-quote for POSIX sh: the only character to handle inside single quotes is the quote itself. */
export function shellQuote(s: string): string {
  if (s.includes("\u0000")) throw new Error("a shell argument cannot contain NUL");
  return `'${s.replace(/'/g, `'"'"'`)}'`;
}

export interface NodeCommandOptions {
  /** Node name, only for messages. */
  label: string;
  /** Lock file serialising applies on the node. */
  lockFile: string;
  containerd: string;
  ctr: string;
  grpcAddress: string;
  restartCommand: string;
  healthTimeoutSeconds: number;
  configVersion: ConfigVersion;
  /** Lowest containerd version allowed on the node: the spec's containerdVersion, patch defaulted. */
  minimumVersion: string;
  healthChecks: readonly string[];
  /**
   * Who manages the node's files (the ContainerdNode's URN): recorded on apply; a restore by another
   * owner (a renamed node's old resource, deleted after the new one applied) leaves the file alone.
   */
  owner: string;
  /** Prefix with `sudo -n` (non-interactive: fails instead of prompting). */
  sudo: boolean;
  /** The installed node script (scriptPathFor the node's config.toml). */
  script: string;
  /**
   * config.toml's apply restarts even when that ends the node's containers (a KillMode other than
   * `process`), and containers lost in the restart do not fail it (node-script.ts, allowContainerLoss).
   */
  allowContainerLoss?: boolean;
  /** The CRI client for the pod-start check after a restart (node-script.ts pod_ok); unset: crictl. */
  crictl?: string;
}

export interface ManagedFileRef {
  path: string;
  mode: number;
  kind: "config" | "hosts" | "certificate";
  /** hosts.toml only: shell commands (probe pulls) that must pass once it is written, or it is put back. */
  probes?: readonly string[];
}

/** A probe: a pull of one image by the node's own containerd, resolved through the hosts directory. */
export function probePullCommand(o: Pick<NodeCommandOptions, "ctr" | "grpcAddress">, registryConfigPath: string, image: string): string {
  return [o.ctr, "--address", o.grpcAddress, "-n", "k8s.io", "images", "pull", "--hosts-dir", registryConfigPath, image].map(shellQuote).join(" ");
}

/**
 * Runs the installed script with the arguments; a missing script (removed by hand) is said plainly
 * rather than as the shell's "cannot open".
 */
export const RUN_SCRIPT =
  '[ -f "$0" ] || { echo "containerd-node: the node script $0 is missing on this host; pulumi up --replace the node\'s <node>:host resource to put it back" >&2; exit 1; }; exec /bin/sh "$0" "$@"';

/** Through `sudo -n` (non-interactive: fails instead of prompting) when asked. */
function withSudo(o: Pick<NodeCommandOptions, "sudo">, line: string): string {
  return o.sudo ? `sudo -n ${line}` : line;
}

/** `/bin/sh -c '<code>' '<$0>' '<arg>' ...`, through `sudo -n` when asked: constant code, quoted values. */
function shCommand(o: Pick<NodeCommandOptions, "sudo">, code: string, args: string[]): string {
  return withSudo(o, `/bin/sh -c ${shellQuote(code)} ${args.map(shellQuote).join(" ")}`);
}

/**
 * RUN_SCRIPT with a drift token first: exported as CONTAINERD_NODE_REPAIR, which a successful apply
 * records beside the file (node-script.ts, F.repair). The token is a hex digest the component makes.
 */
export const REPAIR_RUN_SCRIPT = `CONTAINERD_NODE_REPAIR=$1; export CONTAINERD_NODE_REPAIR; shift; ${RUN_SCRIPT}`;

/**
 * What config.toml's apply runs first under allowContainerLoss: constant text (the node script reads
 * CONTAINERD_NODE_ALLOW_CONTAINER_LOSS=1). An environment variable, not an argument: the script's
 * arguments only grow, and the checks follow the fourteenth.
 */
export const ALLOW_CONTAINER_LOSS = "CONTAINERD_NODE_ALLOW_CONTAINER_LOSS=1; export CONTAINERD_NODE_ALLOW_CONTAINER_LOSS; ";

/**
 * What config.toml's apply runs first when crictlPath is set: the value is the first argument after
 * the script's path (a quoted value, never code), exported as CONTAINERD_NODE_CRICTL.
 */
export const CRICTL_FROM_ARG = "CONTAINERD_NODE_CRICTL=$1; export CONTAINERD_NODE_CRICTL; shift; ";

/** The installed script with its arguments (and a drift token, for the apply that repairs drift). */
function line(o: Pick<NodeCommandOptions, "sudo" | "script">, args: string[], repair?: string, prefix = "", crictl?: string): string {
  const lead = crictl === undefined ? [] : [crictl];
  const code = prefix + (crictl === undefined ? "" : CRICTL_FROM_ARG);
  if (repair) {
    if (!/^[0-9a-f]{8,64}$/.test(repair)) throw new Error(`a drift token is a hex digest, not ${JSON.stringify(repair)}`);
    return shCommand(o, code + REPAIR_RUN_SCRIPT, [o.script, ...lead, repair, ...args]);
  }
  return shCommand(o, code + RUN_SCRIPT, [o.script, ...lead, ...args]);
}

/** The node script's fourteen positional arguments (node-script.ts), before its checks or file list. */
function positional(action: string, kind: string, path: string, mode: string, restart: string, timeout: string, o: NodeCommandOptions): string[] {
  return [action, kind, path, mode, o.lockFile, o.label, o.containerd, o.ctr, o.grpcAddress, restart, timeout, String(o.configVersion), o.minimumVersion, o.owner];
}

function command(action: "apply" | "restore", file: ManagedFileRef, o: NodeCommandOptions, repair?: string): string {
  const isConfig = file.kind === "config";
  // A restore puts back what was there before: nothing to probe.
  const probes = !isConfig && action === "apply" ? (file.probes ?? []) : [];
  // Files need the version guard (containerd, and ctr on the socket: the running daemon's version)
  // but none of the restart settings; leaving those out keeps a change of, say, the restart command
  // from touching every hosts.toml resource. A probed hosts.toml takes the timeout as its bound.
  const restart = isConfig ? o.restartCommand : "";
  const timeout = isConfig || probes.length > 0 ? String(o.healthTimeoutSeconds) : "";
  const args = positional(action, isConfig ? "config" : "file", file.path, "0" + file.mode.toString(8), restart, timeout, o);
  // Only config.toml's commands restart (its apply, and its restore onto the original): the other
  // commands stay the same whatever the options say. Only an apply starts a pod to check.
  const prefix = isConfig && o.allowContainerLoss === true ? ALLOW_CONTAINER_LOSS : "";
  const crictl = isConfig && action === "apply" && o.crictl !== undefined && o.crictl !== "crictl" ? o.crictl : undefined;
  return line(o, [...args, ...(isConfig ? o.healthChecks : probes)], repair, prefix, crictl);
}

/**
 * Installs the content given on stdin (and for config.toml: validates, restarts, checks, rolls back).
 * `repair`: the drift token this apply repairs, when the program's read found the file changed.
 */
export function applyCommand(file: ManagedFileRef, o: NodeCommandOptions, repair?: string): string {
  return command("apply", file, o, repair);
}

/** Moves the named registry directories under `certsDir` aside (unmanagedRegistries "remove"); NAME@N as node-findings.ts gives them. */
export function setAsideCommand(certsDir: string, names: readonly string[], o: NodeCommandOptions): string {
  return line(o, [...positional("set-aside", "dirs", certsDir, "0", "", "", o), ...names]);
}

/**
 * Puts back every directory this owner set aside, where nothing took their place. The node knows
 * which (the owner beside each), so the delete does not depend on what a read found.
 */
export function putBackCommand(certsDir: string, o: NodeCommandOptions): string {
  return line(o, positional("put-back", "dirs", certsDir, "0", "", "", o));
}

/**
 * The order a node's files are written in: certificates, then the hosts.toml that points at them,
 * then config.toml (whose config_path must find complete hosts directories, and whose apply
 * restarts containerd); by path within a kind. Deletes undo them in the reverse order.
 */
export function writeOrder<F extends Pick<ManagedFileRef, "kind" | "path">>(files: readonly F[]): F[] {
  const rank = (f: F) => (f.kind === "certificate" ? 0 : f.kind === "hosts" ? 1 : 2);
  return [...files].sort((a, b) => rank(a) - rank(b) || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** The read-only node read (read-script.ts): the script arrives on stdin. */
export function readCommand(o: Pick<NodeCommandOptions, "sudo">, args: readonly string[]): string {
  return withSudo(o, `/bin/sh -s ${args.map(shellQuote).join(" ")}`);
}

/** Puts back what was there before the file was first managed (or removes it if nothing was). */
export function restoreCommand(file: ManagedFileRef, o: NodeCommandOptions): string {
  return command("restore", file, o);
}

/**
 * The host resource's create: installs the script given on stdin (atomically, never over a higher
 * revision, untouched when identical) and records the owner's claim on it.
 */
export const INSTALL_SCRIPT = `set -eu
umask 022
target=$1 owner=$2 label=$3 rev=$4
dir=\${target%/*}
mkdir -p "$dir/claims"
tmp=$(mktemp "$dir/.containerd-node.sh.XXXXXX")
trap 'rm -f "$tmp"' EXIT
cat >"$tmp"
if [ "$(tail -n 1 "$tmp")" != '${END_MARKER_LINE}' ]; then
  echo "containerd-node: $label: the node script arrived incomplete; nothing changed" >&2
  exit 1
fi
have=0
[ -f "$target" ] && have=$(awk 'NR == 2 { print $4 + 0; exit }' "$target")
case "$have" in '' | *[!0-9]*) have=0 ;; esac
if [ "$have" -gt "$rev" ]; then
  echo "containerd-node: $label: $target is of revision $have, newer than $rev: kept"
elif ! cmp -s "$tmp" "$target" 2>/dev/null; then
  chmod 0755 "$tmp"
  sync
  mv -f "$tmp" "$target"
  sync
  echo "containerd-node: $label: installed $target (revision $rev)"
fi
claim="$dir/claims/$(printf '%s' "$owner" | sha256sum | cut -c 1-16)"
printf '%s\n' "$owner" >"$claim.tmp"
mv -f "$claim.tmp" "$claim"`;

export function installCommand(o: Pick<NodeCommandOptions, "sudo" | "script" | "owner" | "label">): string {
  return shCommand(o, INSTALL_SCRIPT, ["containerd-node-install", o.script, o.owner, o.label, String(SCRIPT_REVISION)]);
}

/**
 * The host resource's delete: restores every file of the list this owner still holds (config.toml
 * first, as a destroy would), then drops the owner's claim on the script. The list is the files as
 * the host resource last recorded them; the delete runs with the old connection, so after a move it
 * runs on the machine the node left.
 */
export function releaseCommand(files: readonly ManagedFileRef[], o: NodeCommandOptions): string {
  const sorted = writeOrder(files).reverse();
  const args = positional("release", "all", "-", "0", o.restartCommand, String(o.healthTimeoutSeconds), o);
  // Kind and path only: a restore needs no mode, and a mode change must not touch this resource.
  // Its restore of config.toml restarts: allowContainerLoss carries over, as to config.toml's own.
  const prefix = o.allowContainerLoss === true ? ALLOW_CONTAINER_LOSS : "";
  return line(o, [...args, ...sorted.flatMap((f) => [f.kind === "config" ? "config" : "file", f.path])], undefined, prefix);
}
