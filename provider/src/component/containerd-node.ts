/**
 * ContainerdNode: one node's containerd configuration as Pulumi resources. One `remote.Command` per
 * managed file, whose stdin is the file's exact content, so `pulumi preview --diff` shows a changed
 * file as a line diff of that file on that node, and an unchanged file shows nothing.
 */
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { createHash } from "crypto";
import { Problem, SpecError, showValue } from "../errors";
import { renderNode } from "../render/render-node";
import {
  INSTALLED_SCRIPT,
  NodeCommandOptions,
  applyCommand,
  installCommand,
  probePullCommand,
  putBackCommand,
  readCommand,
  releaseCommand,
  restoreCommand,
  scriptPathFor,
  setAsideCommand,
} from "../remote/commands";
import { READ_SCRIPT, readBudgetSeconds } from "../remote/read-script";
import { emptyRead, readNode } from "./node-read";
import { Findings, MirrorHealth, UnmanagedRegistry, findings, probeTargets } from "./node-findings";
import { ranThisDeployment, whatRan } from "./what-ran";
import { imageReferenceProblem } from "../spec/image-reference";
import type { NodeSpecOf, RenderedFile } from "../spec/types";
import { DEFAULT_REGISTRY_CONFIG_PATH } from "../spec/validate";
import { ConfigVersion, parseVersion } from "../spec/version";
import { knownHostsName, knownHostsPath, lookupHostKey, hostKeyProblem, readKnownHosts } from "./known-hosts";
import { redactHostsToml } from "./redact";
import { Leaf, findInputLeaves, placeholder, withLeaves } from "./secret-leaves";

export type ConnectionArgs = command.types.input.remote.ConnectionArgs;

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

export class ContainerdNode extends pulumi.ComponentResource {
  /** config.toml's `version`: 2 for containerd 1.x, 3 for 2.0-2.2, 4 for 2.3+. */
  public readonly configVersion: ConfigVersion;
  /** Every managed file, in write order (certificates, hosts.toml, config.toml last). */
  public readonly files: pulumi.Output<ManagedFile[]>;
  /** sha256 of the rendered config.toml: changes exactly when containerd will restart. */
  public readonly configHash: pulumi.Output<string>;
  /** What each file's command did in this deployment: files whose command did not run are not listed. */
  public readonly lastApply: pulumi.Output<FileApplyReport[]>;
  /** Whether containerd restarted in this deployment. */
  public readonly restarted: pulumi.Output<boolean>;
  /**
   * containerd's own deprecation report (`ctr deprecations list`, 1.7+) read after config.toml's
   * command last ran (in this deployment or an earlier one): what this node's configuration still
   * uses that a later containerd removes. Logged as warnings by the deployment that read it.
   */
  public readonly deprecations: pulumi.Output<Deprecation[]>;
  /** The command that owns config.toml; waves chain on it. */
  public readonly configCommand: command.remote.Command;
  /**
   * The node's presence on its machine: installs the node script there, and on delete (the node
   * left the program, or moved to another host or port: a replace, delete first) restores every
   * file this node still holds on that machine.
   */
  public readonly hostCommand: command.remote.Command;
  /** One command per managed file, same order as `files`. */
  public readonly commands: command.remote.Command[];
  /**
   * What the program's read of the node found in this deployment (preview or up): reached or not,
   * the running containerd, CRI's status, drifted files, unmanaged registry directories. Undefined
   * values where the read is off.
   */
  public readonly nodeState: pulumi.Output<NodeStateReport>;
  /** Every host of every hosts.toml (and of unmanaged registry directories) as the node reached it. */
  public readonly mirrorHealth: pulumi.Output<MirrorHealth[]>;
  /** unmanagedRegistries "remove": the resource that holds the set-aside registry directories. */
  public readonly setAsideCommand?: command.remote.Command;

  constructor(name: string, args: ContainerdNodeArgs, opts?: pulumi.ComponentResourceOptions) {
    // Validate before registering anything: a bad spec must not leave a half-declared node behind.
    const { rendered, leaves, contentOf } = prepare(name, args);
    // Also before anything is registered: a node whose host key cannot be pinned is refused.
    const warnings = [...rendered.warnings];
    let self: pulumi.Resource | undefined;
    const connection = pinnedConnection(name, args, (m) => (self ? pulumi.log.warn(m, self) : warnings.push(m)));
    super("containerd:index:ContainerdNode", name, {}, opts);
    self = this;
    for (const w of warnings) pulumi.log.warn(w, this);
    const certsDir = rendered.registryConfigPath;

    // The owner is added per command below: this component's URN, once it is registered.
    const nodeOpts: Omit<NodeCommandOptions, "owner"> = {
      label: name,
      lockFile: `${rendered.configFile.replace(/\/[^/]*$/, "")}/.containerd-node.lock`,
      containerd: args.containerdPath ?? "containerd",
      ctr: args.ctrPath ?? "ctr",
      grpcAddress: rendered.grpcAddress,
      restartCommand: args.restartCommand ?? "systemctl restart containerd",
      healthTimeoutSeconds: args.healthTimeoutSeconds ?? 60,
      configVersion: rendered.result.configVersion,
      minimumVersion: rendered.minimumVersion,
      healthChecks: args.healthChecks ?? [],
      sudo: args.sudo ?? false,
      script: scriptPathFor(rendered.configFile),
    };

    // Write order on the node: certificates, then the hosts.toml that points at them, then
    // config.toml (whose config_path must find complete hosts directories) with the restart.
    const files = rendered.result.files;
    const order = (f: RenderedFile) => (f.kind === "certificate" ? 0 : f.kind === "hosts" ? 1 : 2);
    const sorted = [...files].sort((a, b) => order(a) - order(b) || (a.path < b.path ? -1 : 1));
    const byRegistryCerts = new Map<string, command.remote.Command[]>();
    const commands: command.remote.Command[] = [];
    let configCommand: command.remote.Command | undefined;
    const contents = sorted.map((f) => contentOf(f, leaves));
    // The URN as a plain value: an Output of this.urn would make every child depend on this
    // component, which the SDK expands to all of its children, each waiting for the others.
    const owner = pulumi.output(new Promise<string>((resolve) => this.urn.apply(resolve)));
    const keep = (args.onDelete ?? "restore") === "keep";
    // A hosts.toml of a registry with a probe image is pulled through once written.
    const probesOf = (f: RenderedFile) => {
      const image = f.kind === "hosts" && f.registry !== undefined ? args.probeImages?.[f.registry] : undefined;
      return image === undefined ? [] : [probePullCommand(nodeOpts, certsDir, image)];
    };
    // Which commands ran in this deployment, for lastApply and restarted (see what-ran.ts).
    const hooks = whatRan();

    // The node as it is now (node-read.ts), read once while the program runs, before any of its
    // commands is registered: every file's apply carries its drift token, and a node the read
    // finds wrong (another containerd, an import that would vanish) registers no command at all.
    const reading = args.forget !== true && (args.readNode ?? !underMocks());
    const probe = mirrorProbeSettings(args.mirrorProbe);
    const targets = probe.enabled ? probeTargets(files) : [];
    const managedDirs = [...new Set(files.filter((f) => f.kind === "hosts").map((f) => f.path.slice(certsDir.length + 1).split("/")[0]))];
    const readArgs = [
      nodeOpts.ctr, nodeOpts.grpcAddress, certsDir, rendered.configFile, String(probe.timeoutSeconds), probe.enabled ? "1" : "0",
      ...managedDirs.flatMap((d) => ["M", d]),
      ...sorted.flatMap((f) => [f.secret ? "S" : "F", f.path]),
      ...targets.flatMap((t) => t.args),
    ];
    const readTimeout = args.readTimeoutSeconds ?? 10;
    const found: Promise<Findings | undefined> = reading
      ? knownConnection(connection)
          // Connecting gets readTimeoutSeconds; the script may also wait on its probes (a token
          // registry's check of credentials takes up to three requests).
          .then((c) =>
            c
              ? readNode(c, readCommand(nodeOpts, readArgs), READ_SCRIPT, {
                  connectSeconds: readTimeout,
                  totalSeconds: readBudgetSeconds({ connectSeconds: readTimeout, viaProxy: (c as { proxy?: unknown }).proxy !== undefined, probeSeconds: probe.timeoutSeconds, probing: probe.enabled }),
                })
              : { ...emptyRead(), error: "its connection is not known yet (it comes from a resource this run creates)" },
          )
          .then(async (read) => {
            // Secret files are compared by hash; the hash of what will be written, when it is known
            // now, tells the mirror probes which TLS files and credentials this up changes.
            const secretSha = await Promise.all(sorted.map(async (f, i) => {
              if (!f.secret) return undefined;
              const v = await knownValue(contents[i]);
              return v === undefined ? undefined : createHash("sha256").update(v).digest("hex");
            }));
            return findings(
              read,
              sorted.map((f, i) => ({ path: f.path, mode: f.mode, secret: f.secret, content: f.secret ? undefined : (contents[i] as string), sha256: secretSha[i] })),
              targets,
              {
                label: name,
                configVersion: rendered.result.configVersion,
                minimumVersion: rendered.minimumVersion,
                certsDir,
                managedDirs,
                configFile: rendered.configFile,
                imports: (args.imports as string[] | undefined) ?? [],
                dropImports: args.dropImports ?? [],
                unmanagedRegistries: args.unmanagedRegistries ?? "warn",
                unreadNode: args.unreadNode ?? "warn",
                probePolicy: probe.policy,
                allowDeadRegistries: probe.allowDeadRegistries,
              },
            );
          })
      : Promise.resolve(undefined);
    // Said once, on the node; a node with errors stops here: none of its commands is registered.
    const checked = found.then((fd) => {
      if (!fd) return undefined;
      for (const w of fd.warnings) pulumi.log.warn(w, this);
      for (const e of fd.errors) pulumi.log.error(e, this);
      if (fd.errors.length > 0) throw refusal(`${name}: nothing of this node is applied: its read found the errors above`);
      return fd;
    });
    const tokenOf = (path: string) => pulumi.output(checked.then((fd) => fd?.tokens.get(path) ?? ""));

    // The node on its machine. Its triggers are the SSH address: a new host or port is a replace,
    // delete first, so the machine the node leaves gets every file it still holds restored (its
    // delete runs with the old connection and the old file list) before the new one gets its apply.
    // Under onDelete "keep" only the files holding credentials are restored.
    // A forgotten node runs nothing: every input of its commands keeps its recorded value, so no
    // change can make an update that dials it: not its drift token (unknown without a read), nor a
    // new release of this library changing a command line, the node script or a delete.
    const forgotten = args.forget === true ? [...COMMAND_INPUTS] : undefined;
    const hostCommand = new command.remote.Command(
      `${name}:host`,
      {
        connection,
        create: owner.apply((o) => installCommand({ ...nodeOpts, owner: o })),
        delete: owner.apply((o) => releaseCommand(keep ? files.filter((f) => f.secret) : files, { ...nodeOpts, owner: o })),
        stdin: INSTALLED_SCRIPT,
        triggers: [addressOf(connection)],
        addPreviousOutputInEnv: false,
      },
      { parent: this, deleteBeforeReplace: true, retainOnDelete: args.forget === true, ignoreChanges: forgotten },
    );
    // An unread node (the read did not reach it): the set-aside list, which only a read can know,
    // keeps its recorded value (decided when the command registers, after the read). The files'
    // commands keep no recorded value: their command line carries the node's checks (version guard,
    // restart command, health checks, probes, paths), which must be the spec's own whenever new
    // content goes out. Only their drift token is unknown; it is left out, as with readNode: false,
    // so a file repaired once before shows one update (nothing to do on the node, where the script
    // then forgets that repair) the first time its node is not read.
    const unread = found.then((fd) => fd !== undefined && !fd.reached, () => false);
    const keepWhenUnread: pulumi.ResourceTransform[] | undefined = reading
      ? [async (a) => ((await unread) ? { props: a.props, opts: { ...a.opts, ignoreChanges: [...(a.opts.ignoreChanges ?? []), "create"] } } : undefined)]
      : undefined;

    // unmanagedRegistries "remove": registry directories the spec does not manage are set aside
    // (before the node's own registry files change), and put back when this resource is deleted.
    // Declared whether or not the node is read, so that turning the read off, or forgetting the
    // node, never deletes it (its put-back would dial the node).
    let setAside: command.remote.Command | undefined;
    if (args.unmanagedRegistries === "remove") {
      if (!reading && args.forget !== true) {
        pulumi.log.warn(`${name}: unmanagedRegistries is "remove" but the node is not read (readNode: false): no directory is looked for or set aside in this run; those set aside stay aside`, this);
      }
      const names = reading ? pulumi.output(checked.then((fd) => fd?.setAside ?? [])) : pulumi.output([] as string[]);
      setAside = new command.remote.Command(
        `${name}:unmanaged registries`,
        {
          connection,
          create: pulumi.all([owner, names]).apply(([o, n]) => setAsideCommand(certsDir, n, { ...nodeOpts, owner: o })),
          delete: owner.apply((o) => putBackCommand(certsDir, { ...nodeOpts, owner: o })),
          addPreviousOutputInEnv: false,
        },
        {
          parent: this,
          dependsOn: [hostCommand, ...(args.filesAfter ?? [])],
          deleteBeforeReplace: true,
          retainOnDelete: args.forget === true,
          // Without a read the list is unknown: the one recorded stays.
          ignoreChanges: forgotten ?? (reading ? undefined : ["create"]),
          transforms: keepWhenUnread,
        },
      );
    }

    sorted.forEach((f, i) => {
      const content = contents[i];
      const dependsOn: pulumi.Input<pulumi.Resource>[] = [hostCommand, ...(args.filesAfter ?? []), ...(setAside ? [setAside] : [])];
      if (f.kind === "hosts") dependsOn.push(...(byRegistryCerts.get(f.registry!) ?? []));
      // (restartAfter and filesAfter are the same resources in a fleet's registry waves: once each.)
      if (f.kind === "config") dependsOn.push(...[...commands, ...(args.restartAfter ?? [])].filter((r) => !dependsOn.includes(r)));
      const cmd = new command.remote.Command(
        `${name}:${f.path}`,
        {
          connection,
          // The owner recorded beside each file is this component's full URN (project, stack, parents,
          // type and name): a node moved into a fleet or another parent, or renamed, gets a new URN,
          // so the old resources' deletes, which run after the new ones applied, leave the files to
          // their new owner instead of putting the originals back.
          // The drift token: unchanged (the last repair's, or none) while the node's file is as the
          // last apply left it; new when the read found it changed, so the preview shows an update
          // and `up` writes it back through the usual path (node-findings.ts).
          create: pulumi.all([owner, tokenOf(f.path)]).apply(([o, t]) => applyCommand({ ...f, probes: probesOf(f) }, { ...nodeOpts, owner: o }, t || undefined)),
          // "keep" leaves files in place on delete, except those holding credentials: an
          // Authorization header left active after its registry was removed would be a leak.
          delete: !keep || f.secret ? owner.apply((o) => restoreCommand(f, { ...nodeOpts, owner: o })) : undefined,
          stdin: content,
          // We never read PULUMI_COMMAND_STDOUT; sending it only makes sshd refuse a Setenv and the
          // provider warn (pulumi-command remote/commandOutputs.go).
          addPreviousOutputInEnv: false,
        },
        // No triggers: every change is an update, never a replace whose old delete would run after
        // the new create and undo the new file. deleteBeforeReplace guards against replaces anyway.
        { parent: this, dependsOn, deleteBeforeReplace: true, retainOnDelete: args.forget === true, hooks, ignoreChanges: forgotten },
      );
      if (f.secret && f.kind === "hosts") {
        // A secret file's diff is `[secret] => [secret]`. Beside it, the same file with every
        // credential masked, as a plain input of a resource that runs nothing (a local.Command with
        // no command): `pulumi preview --diff` shows what changes in it, line by line.
        new command.local.Command(`${name}:${f.path} (redacted)`, { stdin: redactHostsToml(f.content) }, { parent: this, retainOnDelete: args.forget === true });
      }
      // Drift of this file, said on its own resource (with the line diff where it is not secret).
      void checked.then((fd) => fd?.fileWarnings.get(f.path)?.forEach((w) => pulumi.log.warn(w, cmd)), () => undefined);
      if (f.kind === "certificate") byRegistryCerts.set(f.registry!, [...(byRegistryCerts.get(f.registry!) ?? []), cmd]);
      if (f.kind === "config") configCommand = cmd;
      commands.push(cmd);
    });
    this.configVersion = rendered.result.configVersion;
    this.configCommand = configCommand!;
    this.hostCommand = hostCommand;
    this.commands = commands;
    this.files = pulumi.all(
      sorted.map((f, i) => pulumi.output(contents[i]).apply((content): ManagedFile => ({ path: f.path, mode: f.mode, kind: f.kind, secret: f.secret, content }))),
    );
    const config = files.find((f) => f.kind === "config")!;
    this.configHash = pulumi.output(createHash("sha256").update(config.content).digest("hex"));
    // A command's stdout is its last run's; only those that ran in this deployment count.
    this.lastApply = pulumi
      .all(commands.map((c) => pulumi.all([c.urn, c.stdout])))
      .apply((outs) => outs.filter(([urn]) => ranThisDeployment(urn)).map(([, out]) => parseReport(out)).filter((r): r is FileApplyReport => r !== undefined));
    this.restarted = this.lastApply.apply((rs) => rs.some((r) => r.restarted));
    this.deprecations = pulumi.all([configCommand!.urn, configCommand!.stdout]).apply(([urn, out]) => {
      const found = (parseReport(out)?.deprecations ?? []).map((d) => ({ id: String(d.id), message: String(d.message) }));
      // Upgrade readiness, node by node: said where the operator looks, during the `up` that applied.
      if (ranThisDeployment(urn)) for (const d of found) pulumi.log.warn(`${name}: containerd reports ${d.id}: ${d.message}`, this);
      return found;
    });
    this.setAsideCommand = setAside;
    const report = checked.then(
      (fd): NodeStateReport =>
        fd
          ? {
              read: true,
              reached: fd.reached,
              readSeconds: fd.readSeconds,
              runningVersion: fd.runningVersion,
              cri: fd.criStatus,
              drift: fd.drift.map((d) => ({ path: d.path, what: d.what })),
              unmanagedRegistries: fd.unmanaged,
              errors: fd.errors,
            }
          : { read: false, drift: [], unmanagedRegistries: [], errors: [] },
      // A node the read refused (the error is in the log; the output says it too), or a read that
      // failed in the program: reached only if the read itself got to the node.
      (e: Error): Promise<NodeStateReport> =>
        found.then(
          (fd) => ({ read: true, reached: fd?.reached ?? false, drift: [], unmanagedRegistries: [], errors: [e.message] }),
          () => ({ read: true, reached: false, drift: [], unmanagedRegistries: [], errors: [e.message] }),
        ),
    );
    this.nodeState = pulumi.output(report);
    this.mirrorHealth = pulumi.output(found.then((fd) => fd?.mirrors ?? []));
    this.registerOutputs(recordedOutputs(this));
  }
}

/**
 * What the state records of a node: what it found and runs, not what this run did (lastApply,
 * restarted), how long its read and probes took (readSeconds, seconds), nor the files' content (each
 * command's stdin has it): those are on the node's outputs only. The engine writes the whole
 * checkpoint for every component whose registered outputs differ from the last run's (pulumi
 * pkg/backend/snapshot.go: RegisterResourceOutputs elides only equal ones), so a value that changes
 * on every run costs one whole-state write per node per `up`: quadratic in the fleet (73% of the
 * CLI's CPU in a 60-node no-op). The component package's ContainerdNode records the same.
 */
export function recordedOutputs(node: {
  nodeState: pulumi.Output<{ readSeconds?: number }>;
  mirrorHealth: pulumi.Output<{ seconds: number }[]>;
  configVersion: pulumi.Input<number>;
  configHash: pulumi.Input<string>;
  deprecations: pulumi.Input<unknown[]>;
}): pulumi.Inputs {
  return {
    nodeState: node.nodeState.apply(({ readSeconds: _seconds, ...rest }) => rest),
    mirrorHealth: node.mirrorHealth.apply((ms) => ms.map(({ seconds: _seconds, ...m }) => m)),
    configVersion: node.configVersion,
    configHash: node.configHash,
    deprecations: node.deprecations,
  };
}

/** Every input of a remote.Command (pulumi-command 1.2.1): what a forgotten node's commands keep. */
const COMMAND_INPUTS = ["connection", "create", "update", "delete", "stdin", "environment", "triggers", "logging", "addPreviousOutputInEnv"] as const;

/**
 * The mirror probe's settings with their defaults. A field given as undefined (what
 * `cfg.getNumber` returns for an unset key) takes its default too, rather than spreading over it.
 */
export function mirrorProbeSettings(given: MirrorProbeArgs | undefined): Required<MirrorProbeArgs> {
  const set = Object.fromEntries(Object.entries(given ?? {}).filter(([, v]) => v !== undefined));
  return { enabled: true, policy: "warn", timeoutSeconds: 5, allowDeadRegistries: false, ...set };
}

/**
 * `fn` of the connection: at once when its host, port and host key are plain values (so a bad one
 * is refused before any resource exists, and the result stays a plain value), else when it resolves.
 */
function withConnection<T>(connection: pulumi.Input<ConnectionArgs>, fn: (c: ConnectionArgs, host: string, port: number) => T): pulumi.Input<T> {
  const c = connection as ConnectionArgs;
  const plain = (v: unknown) => v === undefined || v === null || typeof v === "string" || typeof v === "number";
  const plainHost = (h: ConnectionArgs | undefined) =>
    h !== undefined && !pulumi.Output.isInstance(h) && !(h instanceof Promise) && plain(h.host) && plain(h.port) && (h.hostKey === null || typeof h.hostKey !== "object");
  const proxy = (c as { proxy?: ConnectionArgs } | undefined)?.proxy;
  if (plainHost(c) && (proxy === undefined || plainHost(proxy))) {
    return fn(c, String(c.host), Number(c.port ?? 22));
  }
  return pulumi.output(connection).apply((r) => fn(r as unknown as ConnectionArgs, String(r.host), Number(r.port ?? 22)) as never);
}

/** The SSH address of a connection, "host:port": the host resource's trigger. */
function addressOf(connection: pulumi.Input<ConnectionArgs>): pulumi.Input<string> {
  return withConnection(connection, (_c, host, port) => `${host}:${port}`);
}

/** Why a host has no usable key, and what to run: the refusal text of hostKeyPolicy "known-hosts". */
function noHostKey(host: string, port: number, file: string, revoked: number): Problem {
  const scan = `ssh-keyscan ${port === 22 ? "" : `-p ${port} `}-t ed25519 ${host} >> ${file}`;
  return {
    path: "connection.hostKey",
    message:
      `is not set and ${knownHostsName(host, port)} has no ${revoked > 0 ? "unrevoked " : ""}ed25519, ecdsa or rsa key in ${file}; ` +
      `add it (check its fingerprint first: ${scan}), set hostKey, or set hostKeyPolicy: "accept-any" to accept any host key`,
  };
}

/**
 * The connection the node's commands use: as given when it pins `hostKey`; otherwise with the key
 * the operator's known_hosts holds for the host pinned into it (refused when there is none), or
 * unchanged under hostKeyPolicy "accept-any". Hosts known when the program runs are checked here,
 * before any resource exists; a host given as an Output is checked when it resolves, and its
 * node's commands then fail without contacting it.
 */
export function pinnedConnection(name: string, args: ContainerdNodeArgs, warn: (m: string) => void): pulumi.Input<ConnectionArgs> {
  const policy = args.hostKeyPolicy ?? "known-hosts";
  const file = knownHostsPath(args.knownHostsFile);
  const refuse = (problem: Problem) => new SpecError(`Invalid ContainerdNode args for "${name}"`, [problem]);
  // One host (the node, or its jump host at `at`): its hostKey checked, or the known one pinned.
  const pinOne = (given: ConnectionArgs, host: string, port: number, at: string): ConnectionArgs => {
    // null is a missing key, never "no check": the provider takes a null hostKey as unset and then
    // accepts any host key (pulumi-command connection.go, `if con.HostKey != nil`). A JavaScript
    // program can pass null, and a Python or Go program's None or nil arrives as null, also inside
    // an Output, which is pinned here when it resolves.
    const { hostKey: key, ...c } = given;
    if (key !== undefined && key !== null && key !== "") {
      const problem = typeof key === "string" ? hostKeyProblem(key) : undefined;
      if (problem) throw refuse({ path: `${at}.hostKey`, message: `${showValue(key)} ${problem}` });
      return given;
    }
    if (policy === "accept-any") {
      warn(`${name}: hostKeyPolicy is "accept-any": any SSH host key of ${knownHostsName(host, port)} is accepted`);
      return c;
    }
    const found = lookupHostKey(readKnownHosts(file), host, port);
    if (!found.hostKey) throw refuse({ ...noHostKey(host, port, file, found.revoked), path: `${at}.hostKey` });
    return { ...c, hostKey: found.hostKey };
  };
  const pin = (c: ConnectionArgs, host: string, port: number): ConnectionArgs => {
    const node = pinOne(c, host, port, "connection");
    const proxy = (c as { proxy?: ConnectionArgs }).proxy;
    if (!proxy) return node;
    // The jump host is pinned the same way: a jump host that anyone can impersonate sees every
    // session to the node (the provider's proxy connection takes hostKey like the node's).
    return { ...node, proxy: pinOne(proxy, String(proxy.host), Number(proxy.port ?? 22), "connection.proxy") } as ConnectionArgs;
  };
  return withConnection(args.connection, pin);
}

/**
 * The error that stops a node's commands from registering. Every input of the node rejects with
 * this one object, so the language host (which reports an uncaught error once per object) says it
 * once, and as a RunError without a stack; the SDK prefixes the message of an input's error with
 * the property it was serializing, so the message here does not take writes.
 */
function refusal(message: string): pulumi.RunError {
  const e = new pulumi.RunError(message);
  Object.defineProperty(e, "message", { get: () => message, set: () => undefined });
  return e;
}

/**
 * The connection's value, or undefined while it is unknown (a preview of a node whose address comes
 * from a resource not created yet): an apply on an unknown Output never runs, and a read waiting
 * on one would hold every command of the node back for good.
 */
async function knownConnection(connection: pulumi.Input<ConnectionArgs>): Promise<ConnectionArgs | undefined> {
  const out = pulumi.output(connection) as unknown as { isKnown: Promise<boolean>; promise(): Promise<ConnectionArgs> };
  return (await out.isKnown) ? out.promise() : undefined;
}

/** An input's value, or undefined while it is unknown (never waits on an unknown Output). */
async function knownValue(v: pulumi.Input<string>): Promise<string | undefined> {
  const out = pulumi.output(v) as unknown as { isKnown: Promise<boolean>; promise(): Promise<string> };
  return (await out.isKnown) ? out.promise() : undefined;
}

/** Under `pulumi.runtime.setMocks` (unit tests): no node exists to read. */
function underMocks(): boolean {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { MockMonitor } = require("@pulumi/pulumi/runtime/mocks") as { MockMonitor: new (...a: unknown[]) => unknown };
    return pulumi.runtime.getMonitor() instanceof MockMonitor;
  } catch {
    return false;
  }
}

/** Outputs and Promises in settings cannot be rendered now; say where they are. */
function outputsIn(v: unknown, at: string): Problem[] {
  if (pulumi.Output.isInstance(v) || v instanceof Promise) {
    return [{ path: at, message: "is an Output or Promise; settings must be plain values known when the program runs (credentials belong in registries[...].auth)" }];
  }
  if (Array.isArray(v)) return v.flatMap((x, i) => outputsIn(x, `${at}[${i}]`));
  if (typeof v === "object" && v !== null) {
    return Object.entries(v).flatMap(([k, x]) => outputsIn(x, /^[A-Za-z_][A-Za-z0-9_]*$/.test(k) ? `${at}.${k}` : `${at}[${JSON.stringify(k)}]`));
  }
  return [];
}

function parseReport(stdout: string | undefined): FileApplyReport | undefined {
  const line = (stdout ?? "").split("\n").reverse().find((l) => l.startsWith("{"));
  if (!line) return undefined;
  try {
    const r = JSON.parse(line) as FileApplyReport;
    return typeof r.path === "string" ? r : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Validates the args (all problems at once, before any resource exists) and renders the file list
 * with placeholders; `contentOf` gives each file's real content, plain when it depends on no input
 * leaf, otherwise an Output of the leaves it depends on (secret when any of them is).
 */
export function prepare(name: string, args: ContainerdNodeArgs) {
  const subject = `Invalid ContainerdNode args for "${name}"`;
  const problems = operationProblems(args);
  if (args.connection === undefined) problems.push({ path: "connection", message: "is required" });
  const spec = specOf(args as unknown as Record<string, unknown>);
  if (args.probeImages && typeof args.probeImages === "object") {
    const known = Object.keys((args.registries as Record<string, unknown> | undefined) ?? {});
    for (const reg of Object.keys(args.probeImages)) {
      if (!known.includes(reg)) {
        problems.push({ path: `probeImages[${JSON.stringify(reg)}]`, message: `names no registry of registries (${known.length ? known.map((k) => JSON.stringify(k)).join(", ") : "there are none"})` });
      }
    }
  }
  problems.push(...outputsIn(spec.settings, "settings"));
  const leaves = findInputLeaves(spec);
  const withPlaceholders = (variant: (i: number) => "a" | "b") =>
    withLeaves(spec, leaves, leaves.map((l, i) => placeholder(l, variant(i))));
  if (problems.some((p) => p.path.startsWith("settings"))) throw new SpecError(subject, problems);
  let result;
  try {
    result = renderNode(withPlaceholders(() => "a"), { subject });
  } catch (e) {
    if (e instanceof SpecError) throw new SpecError(subject, [...problems, ...e.problems]);
    throw e;
  }
  if (problems.length > 0) throw new SpecError(subject, problems);

  // Which files each leaf feeds: render once more per leaf with only that leaf changed.
  const feeds: Set<string>[] = leaves.map((_, k) => {
    const other = renderNode(withPlaceholders((i) => (i === k ? "b" : "a")), { subject });
    return new Set(other.files.filter((f, i) => f.content !== result.files[i].content).map((f) => f.path));
  });

  // A file fed by an Output (a credential, a header value, a key) is treated as secret: 0600 on the
  // node and a secret input, whatever the value turns out to be.
  for (const f of result.files) {
    if (feeds.some((paths) => paths.has(f.path))) {
      f.secret = true;
      f.mode = 0o600;
    }
  }

  const contentOf = (f: RenderedFile, ls: Leaf[]): pulumi.Input<string> => {
    const deps = ls.map((l, k) => ({ l, k })).filter(({ k }) => feeds[k].has(f.path));
    let content: pulumi.Input<string>;
    if (deps.length === 0) content = f.content;
    else {
      content = pulumi.all(deps.map(({ l }) => l.value)).apply((values) => {
        const vals = ls.map((l, k) => {
          const d = deps.findIndex((x) => x.k === k);
          return d === -1 ? placeholder(l, "a") : values[d];
        });
        const real = renderNode(withLeaves(spec, ls, vals), { subject });
        const same = real.files.find((x) => x.path === f.path);
        if (!same) {
          // Only a client key given as an Output can do this: its value decides whether a key file
          // exists, and it was taken for PEM content when the file list was made.
          throw new SpecError(subject, [{ path: deps.map(({ l }) => l.path.join(".")).join(", "), message: "[secret] must be PEM content when given as an Output (a path on the node must be a plain string)" }]);
        }
        return same.content;
      });
    }
    return f.secret ? pulumi.secret(content) : content;
  };

  const v = parseVersion(String(args.containerdVersion))!;
  return {
    leaves,
    contentOf,
    rendered: {
      result,
      warnings: result.warnings,
      configFile: result.files.find((f) => f.kind === "config")!.path,
      registryConfigPath: (args.registryConfigPath as string | undefined) ?? DEFAULT_REGISTRY_CONFIG_PATH,
      grpcAddress: args.grpcAddress ?? "/run/containerd/containerd.sock",
      minimumVersion: `${v.major}.${v.minor}.${v.patch}`,
    },
  };
}
