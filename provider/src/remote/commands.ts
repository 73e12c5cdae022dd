/**
 * The command lines that `remote.Command` sends. sshd runs them as `<login shell> -c "<command>"`,
 * so each one is `/bin/sh -c '<constant script>' containerd-node '<arg>' ...`: the script is fixed
 * text and every value is a single-quoted argument. Content never appears here: it goes on stdin.
 */
import type { ConfigVersion } from "../spec/version";
import { NODE_SCRIPT } from "./node-script";

/**
 * The script as sent: without its comment lines and blank lines. The provider puts the whole
 * command into every error message and a preview shows it, so the shorter the better; the
 * commented source is node-script.ts.
 */
export const SENT_SCRIPT = NODE_SCRIPT.split("\n")
  .filter((line) => line.trim() !== "" && !/^\s*#/.test(line))
  .join("\n");

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
}

export interface ManagedFileRef {
  path: string;
  mode: number;
  kind: "config" | "hosts" | "certificate";
}

function command(action: "apply" | "restore", file: ManagedFileRef, o: NodeCommandOptions): string {
  const isConfig = file.kind === "config";
  const args = [
    action,
    isConfig ? "config" : "file",
    file.path,
    "0" + file.mode.toString(8),
    o.lockFile,
    o.label,
    // Files need the version guard but none of the restart settings; leaving those out keeps a
    // change of, say, the restart command from touching every hosts.toml resource.
    o.containerd,
    // Every file's version guard asks the running daemon (ctr version on its socket).
    o.ctr,
    o.grpcAddress,
    isConfig ? o.restartCommand : "",
    isConfig ? String(o.healthTimeoutSeconds) : "",
    String(o.configVersion),
    o.minimumVersion,
    o.owner,
    ...(isConfig ? o.healthChecks : []),
  ];
  const sh = `/bin/sh -c ${shellQuote(SENT_SCRIPT)} containerd-node ${args.map(shellQuote).join(" ")}`;
  return o.sudo ? `sudo -n ${sh}` : sh;
}

/** Installs the content given on stdin (and for config.toml: validates, restarts, checks, rolls back). */
export function applyCommand(file: ManagedFileRef, o: NodeCommandOptions): string {
  return command("apply", file, o);
}

/** Puts back what was there before the file was first managed (or removes it if nothing was). */
export function restoreCommand(file: ManagedFileRef, o: NodeCommandOptions): string {
  return command("restore", file, o);
}
