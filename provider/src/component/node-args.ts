/**
 * What a ContainerdNode takes and reports: its args (the spec's fields, the node's operation
 * settings, its connection), their checks, and the shapes of its outputs. Types and checks only:
 * nothing here declares a resource.
 */
import type * as pulumi from "@pulumi/pulumi";
import { z } from "zod";
import { Problem, formatPath, showValue } from "../errors";
import { imageReferenceProblem } from "../spec/image-reference";
import type { FieldsApart } from "../spec/schema";
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
   * Restart containerd for a config.toml change even when that ends every container on the node.
   * Without it, a node whose containerd unit (of a `systemctl restart UNIT` restartCommand) has a
   * KillMode other than `process` (systemd's default `control-group`, or `mixed`: stopping the daemon
   * then kills every shim) is refused before anything changes, and an apply after which a container
   * that ran before no longer runs (or runs with a new pid) fails and stops the later waves. With it,
   * every pod on such a node dies on the restart (kubelet starts them again, elsewhere or here), and
   * the apply only reports how many were lost.
   * @default false
   */
  readonly allowContainerLoss?: boolean;
  /**
   * Shell command run by `sh -c` where `pulumi up` runs (not on the node) before this node's
   * config.toml is applied with a restart of containerd, e.g. `kubectl drain "$CONTAINERD_NODE_NAME"
   * --ignore-daemonsets --timeout=5m`. Its environment is that of `pulumi up`, plus
   * `CONTAINERD_NODE_NAME` (the node's name in the program) and `CONTAINERD_NODE_HOST`
   * (`connection.host`). It runs when config.toml's hash changes, when the node moves to another
   * host or port, and when the node's read found config.toml drifted (its repair restarts
   * containerd). If it fails, config.toml is not applied (nothing restarts on this node), and in a
   * fleet no later wave starts. A change of the command alone runs nothing: it is used at the next
   * restart. Not run for a forgotten node, nor for the restart of a delete's restore.
   * @default - nothing runs
   * @see docs/on-the-node.md, "What a restart does to running pods"
   */
  readonly beforeRestart?: string;
  /**
   * Shell command run by `sh -c` where `pulumi up` runs after this node's config.toml was applied
   * and containerd came back healthy, e.g. `kubectl uncordon "$CONTAINERD_NODE_NAME"`. Same
   * environment and same runs as beforeRestart. In a fleet the next wave starts only after it
   * succeeded; when the apply fails it does not run (the node stays as beforeRestart left it).
   * @default - nothing runs
   */
  readonly afterRestart?: string;
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
   * The crictl binary on the node (kubeadm's nodes have it on PATH). With it, the health gate after
   * a restart also starts a throwaway pod sandbox through CRI and removes it: "healthy" means a pod
   * can start. A node without it skips that check, and the apply's report says so.
   * @default "crictl"
   */
  readonly crictlPath?: string;
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
   * `ssh-keyscan -t ed25519 HOST`): without it (or given as null) the key known_hosts holds for the
   * host is pinned, or the node is refused (see hostKeyPolicy).
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
  /** config.toml only, when it restarted: what the restart guards found (docs/on-the-node.md). */
  guards?: RestartGuards;
}

/** What config.toml's apply checked around its restart. */
export interface RestartGuards {
  /** The systemd unit of a `systemctl restart UNIT` restartCommand; "" for another restart command. */
  unit: string;
  /** The unit's KillMode; "unchecked" without a unit, "unknown" when systemctl did not say. */
  killMode: string;
  /** Whether the running containers were listed before and after the restart (false: ctr did not answer). */
  containersChecked: boolean;
  /** Containers running before the restart, in every containerd namespace. */
  running: number;
  /** Of those, how many did not run after it with the same pid (the apply fails unless allowContainerLoss). */
  lost: number;
  /**
   * The sandbox image of the new config.toml, and what the node did before the restart: "present"
   * (containerd's k8s.io namespace held it; no registry was asked) or "pulled" (it was absent and was
   * pulled through the new registry config).
   */
  sandboxImage?: { image: string; before: "pulled" | "present" };
  /** The throwaway pod sandbox after the restart: "started" (and removed), or "skipped: <why>". */
  podStart?: string;
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


/** Each check's phrase follows the received value: `"yes" is not true or false`. */
const says = (message: string) => ({ error: message });
const bool = z.boolean(says("is not true or false"));
const seconds = (max: number) => {
  const m = says(`is not a whole number of seconds from 1 to ${max}`);
  return z.number(m).int(m).min(1, m).max(max, m);
};
const oneOf = <T extends string>(...values: [T, ...T[]]) => z.enum(values, says(`is not one of ${values.map((v) => JSON.stringify(v)).join(", ")}`));
const SHELL = "is not a non-empty shell command";
const shellCommand = z.string(says(SHELL)).refine((v) => v.trim() !== "" && !v.includes("\u0000"), SHELL);
const NAME = "is not a command name or path of letters, digits and . _ / + -";
const commandName = z.string(says(NAME)).regex(/^[A-Za-z0-9._\/+-]+$/, NAME);
// ctr must parse it (the reference grammar and its bounds), and it goes on a command line.
const probeImage = z.string(says('is not an image reference such as "docker.io/library/busybox:1.36"')).superRefine((image, ctx) => {
  const why = imageReferenceProblem(image);
  if (why !== undefined || !/^[A-Za-z0-9][A-Za-z0-9._\/:@+-]*$/.test(image)) {
    ctx.addIssue({ code: "custom", message: `is not an image reference such as "docker.io/library/busybox:1.36"${why ? `: ${why}` : ""}` });
  }
});
const PROBE_FIELDS = ["enabled", "policy", "timeoutSeconds", "allowDeadRegistries"];

/**
 * The operation args, field by field (the spec's own fields are spec/schema.ts's). Not strict: the
 * args also hold the spec, the connection and the fleet's fields.
 */
export const operationSchema = z.object({
  restartCommand: shellCommand.optional(),
  healthTimeoutSeconds: seconds(3600).optional(),
  healthChecks: z.array(shellCommand, says("is not a list of shell commands")).optional(),
  allowContainerLoss: bool.optional(),
  beforeRestart: shellCommand.optional(),
  afterRestart: shellCommand.optional(),
  onDelete: oneOf("restore", "keep").optional(),
  sudo: bool.optional(),
  containerdPath: commandName.optional(),
  ctrPath: commandName.optional(),
  crictlPath: commandName.optional(),
  hostKeyPolicy: oneOf("known-hosts", "accept-any").optional(),
  knownHostsFile: z.string(says("is not a file path")).min(1, "is not a file path").optional(),
  forget: bool.optional(),
  probeImages: z.record(z.string(), probeImage, says("is not a table of registry => image")).optional(),
  readNode: bool.optional(),
  readTimeoutSeconds: seconds(600).optional(),
  unreadNode: oneOf("warn", "fail").optional(),
  unmanagedRegistries: oneOf("warn", "remove").optional(),
  mirrorProbe: z
    .strictObject(
      { enabled: bool.optional(), policy: oneOf("warn", "fail").optional(), timeoutSeconds: seconds(60).optional(), allowDeadRegistries: bool.optional() },
      { error: (iss) => (iss.code === "unrecognized_keys" ? `is not a field; allowed: ${PROBE_FIELDS.join(", ")}` : `is not a table of ${PROBE_FIELDS.join(", ")}`) },
    )
    .optional(),
  // The whole list is named: an empty pattern is a mistake in the list, not in one entry.
  dropImports: z.custom<readonly string[]>((v) => Array.isArray(v) && v.every((x) => typeof x === "string" && x !== ""), "is not a list of import patterns").optional(),
});

// The interface above documents the fields; the schema checks them: the same fields, and a checked
// value is a NodeOperationArgs.
type OperationFields = z.infer<typeof operationSchema>;
export const OPERATION_SCHEMA_MATCHES: [FieldsApart<OperationFields, NodeOperationArgs>] extends [never] ? true : { fieldsApart: FieldsApart<OperationFields, NodeOperationArgs> } = true;
export const asOperationArgs = (v: OperationFields): NodeOperationArgs => v;

export const OPERATION_KEYS = Object.keys(operationSchema.shape) as (keyof NodeOperationArgs)[];
const COMPONENT_KEYS = new Set<string>(["connection", "restartAfter", "filesAfter", ...OPERATION_KEYS]);

/** Checks the component's own options; returns problems in the renderer's format. */
export function operationProblems(args: NodeOperationArgs, prefix = ""): Problem[] {
  const parsed = operationSchema.safeParse(args);
  if (parsed.success) return [];
  // A table's unknown fields first, then its fields' own problems (zod reports them the other way).
  const issues = [...parsed.error.issues];
  for (const u of issues.filter((i) => i.code === "unrecognized_keys")) {
    const first = issues.findIndex((i) => u.path.every((k, n) => i.path[n] === k));
    issues.splice(issues.indexOf(u), 1);
    issues.splice(first, 0, u);
  }
  return issues.flatMap((issue): Problem[] => {
    const at = (path: readonly PropertyKey[]) => `${prefix}${formatPath(path as (string | number)[])}`;
    if (issue.code === "unrecognized_keys") return issue.keys.map((k) => ({ path: at([...issue.path, k]), message: issue.message }));
    let value: unknown = args;
    for (const k of issue.path) value = value === null || typeof value !== "object" ? undefined : (value as Record<PropertyKey, unknown>)[k];
    return [{ path: at(issue.path), message: `${showValue(value)} ${issue.message}` }];
  });
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
