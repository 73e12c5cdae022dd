/**
 * What a ContainerdNode takes and reports: its args (the spec's fields, the node's operation
 * settings, its connection), their checks, and the shapes of its outputs. Types and checks only:
 * nothing here declares a resource.
 */
import type * as pulumi from "@pulumi/pulumi";
import { Problem, showValue } from "../errors";
import { imageReferenceProblem } from "../spec/image-reference";
import type { NodeSpecOf, RenderedFile } from "../spec/types";
import type { ConnectionArgs } from "./connection";
import type { UnmanagedRegistry } from "./node-findings";

/** What the node does when it runs a managed file: settings of the component, not of containerd. */
export interface NodeOperationArgs {
  /**
   * Shell command that restarts containerd, run by `sh -c` on the node after config.toml changed.
   * @default "systemctl restart containerd"
   */
  readonly restartCommand?: string;
  /**
   * Seconds to wait after a restart for containerd to answer and report its CRI plugins `ok` (and
   * for every `healthChecks` command to pass) before rolling back.
   * @default 60
   */
  readonly healthTimeoutSeconds?: number;
  /**
   * Extra shell commands run on the node after a restart; all must exit 0 for the node to count as
   * healthy, e.g. a pull of a canary image through the mirror.
   * @default []
   */
  readonly healthChecks?: readonly string[];
  /**
   * What deleting the resource does on the node: "restore" puts back each file as it was before it
   * was first managed (or removes it), restarting containerd for config.toml; "keep" leaves the files.
   * @default "restore"
   */
  readonly onDelete?: "restore" | "keep";
  /**
   * Run the node commands through `sudo -n` (for a non-root SSH user with passwordless sudo).
   * @default false
   */
  readonly sudo?: boolean;
  /**
   * The containerd binary on the node, used to validate a new config.toml and read the version.
   * @default "containerd"
   */
  readonly containerdPath?: string;
  /**
   * The ctr binary on the node, used for the health check.
   * @default "ctr"
   */
  readonly ctrPath?: string;
  /**
   * What to do when `connection.hostKey` is not set. `"known-hosts"`: pin the key the operator's
   * known_hosts holds for the host (as `ssh` would check it), and refuse the node when there is
   * none. `"accept-any"`: accept whatever key the host presents (the command provider's behaviour
   * without hostKey), said in a warning.
   * @default "known-hosts"
   */
  readonly hostKeyPolicy?: "known-hosts" | "accept-any";
  /**
   * The known_hosts file read under `hostKeyPolicy: "known-hosts"`, on the machine that runs Pulumi.
   * @default "~/.ssh/known_hosts"
   */
  readonly knownHostsFile?: string;
  /**
   * Let go of a dead or decommissioned node: its file resources are kept exactly as they are
   * (nothing runs on this `up`, the node is not contacted) and marked retainOnDelete, so removing the
   * node from the program (or `pulumi destroy`) later only forgets them and never dials it. Set it
   * without changing anything else of the node.
   * @default false
   */
  readonly forget?: boolean;
  /**
   * An image per registry namespace (a key of `registries`), pulled by the node's containerd through
   * that registry's new hosts.toml right after it is written (`ctr -n k8s.io images pull
   * --hosts-dir`); a failed pull puts the previous hosts.toml back and fails the apply. Nothing
   * restarts. E.g. `{ "docker.io": "docker.io/library/busybox:1.36" }`.
   * @default {}
   */
  readonly probeImages?: Readonly<Record<string, string>>;
  /**
   * Read the node while the program runs (preview and up), in one read-only SSH session with the
   * node's own connection: the running containerd's version, each managed file's sha256 and mode
   * (and content, unless secret), the registry directories, config.toml's imports, CRI's status,
   * and every mirror as the node reaches it. What it finds shows in the preview: drift as an update
   * of the file's resource (written back by `up`), a version the files are not for as an error,
   * unmanaged registry directories and dead mirrors as warnings. Off under `pulumi.runtime.setMocks`
   * unless set: mocked nodes do not exist.
   * @default true
   */
  readonly readNode?: boolean;
  /**
   * Seconds the read may take to connect and run; a node that does not answer in time is a
   * warning naming it, and the rest of the program goes on.
   * @default 10
   */
  readonly readTimeoutSeconds?: number;
  /**
   * What a node the read does not reach (refused, timed out, its connection not known yet, a key or
   * host key the read cannot use) does to the run. Such a node loses, for that run, its drift check,
   * its version guard, its mirror gates and its dropImports guard. `"warn"`: it says so and the node
   * is applied as the spec says (a gate such as `pulumi preview --expect-no-changes` then passes over
   * its drift). `"fail"`: the node is refused like a node whose read found an error: none of its
   * commands is registered, and the preview or up fails naming it. Set it where drift is gated on.
   * @default "warn"
   */
  readonly unreadNode?: "warn" | "fail";
  /**
   * Registry directories under registryConfigPath that the spec does not manage (a hand-written
   * `certs.d/docker.io`, which takes precedence over `"*"`): `"warn"` reports them and what they do;
   * `"remove"` also sets them aside on the node (kept under `<registryConfigPath>/.containerd-node/set-aside`
   * and put back when the node is deleted).
   * @default "warn"
   */
  readonly unmanagedRegistries?: "warn" | "remove";
  /**
   * The read's probe of every host of every hosts.toml from the node itself (curl, else wget): a
   * GET of its /v2/ endpoint, classified ok, auth-required, forbidden, not-a-registry, tls-error,
   * dns-error, refused or timeout. Dead hosts are warnings (`policy: "fail"`: errors); a registry
   * whose every host is dead is an error unless `allowDeadRegistries`.
   * @default { enabled: true, policy: "warn", timeoutSeconds: 5, allowDeadRegistries: false }
   */
  readonly mirrorProbe?: MirrorProbeArgs;
  /**
   * Import patterns of the node's current config.toml that the new one may drop. Without them, an
   * `up` that would drop an import (and what it defines, such as the NVIDIA toolkit's runtime) is refused.
   * @default []
   */
  readonly dropImports?: readonly string[];
}

export interface MirrorProbeArgs {
  readonly enabled?: boolean;
  readonly policy?: "warn" | "fail";
  readonly timeoutSeconds?: number;
  readonly allowDeadRegistries?: boolean;
}

export interface ContainerdNodeArgs extends NodeSpecOf<pulumi.Input<string>>, NodeOperationArgs {
  /**
   * How to reach the node, exactly as `remote.Command` takes it. Set `hostKey` (e.g. from
   * `ssh-keyscan -t ed25519 HOST`): without it any host key is accepted.
   */
  readonly connection: pulumi.Input<ConnectionArgs>;
  /**
   * Resources that must finish before this node's config.toml changes (and containerd restarts).
   * The fleet layer uses it for waves.
   */
  readonly restartAfter?: pulumi.Input<pulumi.Resource>[];
  /**
   * Resources that must finish before any of this node's files change (hosts.toml and certificates
   * too). The fleet layer uses it to roll registry changes out in waves.
   */
  readonly filesAfter?: pulumi.Input<pulumi.Resource>[];
}

/** A managed file as the component reports it. */
export interface ManagedFile {
  path: string;
  mode: number;
  kind: RenderedFile["kind"];
  secret: boolean;
  /** The exact content (a secret in the component's outputs for secret files). */
  content: string;
}

/** What the last run of one file's command did on the node. */
export interface FileApplyReport {
  path: string;
  written: boolean;
  restarted: boolean;
  /** config.toml only: what containerd reported deprecated after the apply (1.7+; empty on 1.6). */
  deprecations?: Deprecation[];
}

/** The read's findings as an output. */
export interface NodeStateReport {
  read: boolean;
  reached?: boolean;
  readSeconds?: number;
  runningVersion?: string;
  cri?: string;
  drift: { path: string; what: string }[];
  unmanagedRegistries: UnmanagedRegistry[];
  errors: string[];
}

/** One entry of containerd's `ctr deprecations list`: a feature this node uses that a later release removes. */
export interface Deprecation {
  id: string;
  message: string;
}

export const OPERATION_KEYS = [
  "restartCommand", "healthTimeoutSeconds", "healthChecks", "onDelete", "sudo", "containerdPath", "ctrPath", "hostKeyPolicy",
  "knownHostsFile", "forget", "probeImages", "readNode", "readTimeoutSeconds", "unreadNode", "unmanagedRegistries", "mirrorProbe", "dropImports",
] as const;
const COMPONENT_KEYS = new Set<string>(["connection", "restartAfter", "filesAfter", ...OPERATION_KEYS]);

/** Checks the component's own options; returns problems in the renderer's format. */
export function operationProblems(args: NodeOperationArgs, prefix = ""): Problem[] {
  const problems: Problem[] = [];
  const p = (k: string) => `${prefix}${k}`;
  const commandText = (k: string, v: unknown) => {
    if (typeof v !== "string" || v.trim() === "" || v.includes("\u0000")) {
      problems.push({ path: p(k), message: `${showValue(v)} is not a non-empty shell command` });
    }
  };
  if (args.restartCommand !== undefined) commandText("restartCommand", args.restartCommand);
  if (args.healthChecks !== undefined) {
    if (!Array.isArray(args.healthChecks)) problems.push({ path: p("healthChecks"), message: `${showValue(args.healthChecks)} is not a list of shell commands` });
    else args.healthChecks.forEach((c, i) => commandText(`healthChecks[${i}]`, c));
  }
  const t = args.healthTimeoutSeconds;
  if (t !== undefined && (typeof t !== "number" || !Number.isInteger(t) || t < 1 || t > 3600)) {
    problems.push({ path: p("healthTimeoutSeconds"), message: `${showValue(t)} is not a whole number of seconds from 1 to 3600` });
  }
  if (args.onDelete !== undefined && args.onDelete !== "restore" && args.onDelete !== "keep") {
    problems.push({ path: p("onDelete"), message: `${showValue(args.onDelete)} is not one of "restore", "keep"` });
  }
  if (args.sudo !== undefined && typeof args.sudo !== "boolean") problems.push({ path: p("sudo"), message: `${showValue(args.sudo)} is not true or false` });
  if (args.forget !== undefined && typeof args.forget !== "boolean") problems.push({ path: p("forget"), message: `${showValue(args.forget)} is not true or false` });
  if (args.hostKeyPolicy !== undefined && args.hostKeyPolicy !== "known-hosts" && args.hostKeyPolicy !== "accept-any") {
    problems.push({ path: p("hostKeyPolicy"), message: `${showValue(args.hostKeyPolicy)} is not one of "known-hosts", "accept-any"` });
  }
  if (args.knownHostsFile !== undefined && (typeof args.knownHostsFile !== "string" || args.knownHostsFile === "")) {
    problems.push({ path: p("knownHostsFile"), message: `${showValue(args.knownHostsFile)} is not a file path` });
  }
  if (args.probeImages !== undefined) {
    if (typeof args.probeImages !== "object" || args.probeImages === null || Array.isArray(args.probeImages)) {
      problems.push({ path: p("probeImages"), message: `${showValue(args.probeImages)} is not a table of registry => image` });
    } else {
      for (const [reg, image] of Object.entries(args.probeImages)) {
        // ctr must parse it (the reference grammar and its bounds), and it goes on a command line.
        const why = typeof image === "string" ? imageReferenceProblem(image) : undefined;
        if (typeof image !== "string" || why !== undefined || !/^[A-Za-z0-9][A-Za-z0-9._\/:@+-]*$/.test(image)) {
          problems.push({ path: p(`probeImages[${JSON.stringify(reg)}]`), message: `${showValue(image)} is not an image reference such as "docker.io/library/busybox:1.36"${why ? `: ${why}` : ""}` });
        }
      }
    }
  }
  if (args.readNode !== undefined && typeof args.readNode !== "boolean") problems.push({ path: p("readNode"), message: `${showValue(args.readNode)} is not true or false` });
  const seconds = (k: string, v: unknown, max: number) => {
    if (v !== undefined && (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > max)) problems.push({ path: p(k), message: `${showValue(v)} is not a whole number of seconds from 1 to ${max}` });
  };
  seconds("readTimeoutSeconds", args.readTimeoutSeconds, 600);
  if (args.unreadNode !== undefined && args.unreadNode !== "warn" && args.unreadNode !== "fail") {
    problems.push({ path: p("unreadNode"), message: `${showValue(args.unreadNode)} is not one of "warn", "fail"` });
  }
  if (args.unmanagedRegistries !== undefined && args.unmanagedRegistries !== "warn" && args.unmanagedRegistries !== "remove") {
    problems.push({ path: p("unmanagedRegistries"), message: `${showValue(args.unmanagedRegistries)} is not one of "warn", "remove"` });
  }
  const mp = args.mirrorProbe as Record<string, unknown> | undefined;
  if (mp !== undefined) {
    if (typeof mp !== "object" || mp === null || Array.isArray(mp)) problems.push({ path: p("mirrorProbe"), message: `${showValue(mp)} is not a table of enabled, policy, timeoutSeconds, allowDeadRegistries` });
    else {
      for (const k of Object.keys(mp)) {
        if (!["enabled", "policy", "timeoutSeconds", "allowDeadRegistries"].includes(k)) problems.push({ path: p(`mirrorProbe.${k}`), message: "is not a field; allowed: enabled, policy, timeoutSeconds, allowDeadRegistries" });
      }
      for (const k of ["enabled", "allowDeadRegistries"]) {
        if (mp[k] !== undefined && typeof mp[k] !== "boolean") problems.push({ path: p(`mirrorProbe.${k}`), message: `${showValue(mp[k])} is not true or false` });
      }
      if (mp.policy !== undefined && mp.policy !== "warn" && mp.policy !== "fail") problems.push({ path: p("mirrorProbe.policy"), message: `${showValue(mp.policy)} is not one of "warn", "fail"` });
      seconds("mirrorProbe.timeoutSeconds", mp.timeoutSeconds, 60);
    }
  }
  if (args.dropImports !== undefined && (!Array.isArray(args.dropImports) || args.dropImports.some((x) => typeof x !== "string" || x === ""))) {
    problems.push({ path: p("dropImports"), message: `${showValue(args.dropImports)} is not a list of import patterns` });
  }
  for (const k of ["containerdPath", "ctrPath"] as const) {
    const v = args[k];
    if (v !== undefined && (typeof v !== "string" || !/^[A-Za-z0-9._\/+-]+$/.test(v))) {
      problems.push({ path: p(k), message: `${showValue(v)} is not a command name or path of letters, digits and . _ / + -` });
    }
  }
  return problems;
}

/** The renderer's spec: the args without the component's own fields. */
export function specOf(args: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(args).filter(([k]) => !COMPONENT_KEYS.has(k)));
}

/**
 * The mirror probe's settings with their defaults. A field given as undefined (what
 * `cfg.getNumber` returns for an unset key) takes its default too, rather than spreading over it.
 */
export function mirrorProbeSettings(given: MirrorProbeArgs | undefined): Required<MirrorProbeArgs> {
  const set = Object.fromEntries(Object.entries(given ?? {}).filter(([, v]) => v !== undefined));
  return { enabled: true, policy: "warn", timeoutSeconds: 5, allowDeadRegistries: false, ...set };
}
