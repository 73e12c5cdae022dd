/**
 * ContainerdNode: one node's containerd configuration as Pulumi resources. One `remote.Command` per
 * managed file, whose stdin is the file's exact content, so `pulumi preview --diff` shows a changed
 * file as a line diff of that file on that node, and an unchanged file shows nothing.
 *
 * plan -> read -> declare: the node's plan (plan.ts) is worked out from its args before anything is
 * registered; the component pins the connection (connection.ts), reads the node (node-state.ts),
 * declares the plan's resources in one loop and maps the outputs.
 */
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { applyCommand, installCommand, INSTALLED_SCRIPT, putBackCommand, releaseCommand, restoreCommand, setAsideCommand } from "../remote/commands";
import type { ConfigVersion } from "../spec/version";
import { addressOf, pinnedConnection, withConnection } from "./connection";
import type { ContainerdNodeArgs, Deprecation, FileApplyReport, ManagedFile, NodeStateReport } from "./node-args";
import type { MirrorHealth } from "./node-findings";
import { readNodeState, stateReport } from "./node-state";
import { NodePlan, planOrThrow } from "./plan";
import { redactHostsToml } from "./redact";
import { RestartHookContext, restartHook } from "./restart-hooks";
import { ranThisDeployment, whatRan } from "./what-ran";

export type { ConnectionArgs } from "./connection";
export { pinnedConnection } from "./connection";
export type { ContainerdNodeArgs, Deprecation, FileApplyReport, ManagedFile, MirrorProbeArgs, NodeOperationArgs, NodeStateReport } from "./node-args";
export { OPERATION_KEYS, mirrorProbeSettings, operationProblems, specOf } from "./node-args";

/**
 * Checks a node's args as the component will, without declaring anything: its plan and its host
 * keys. Throws a SpecError naming every problem of the plan (or the first host key's).
 */
export function validateNode(name: string, args: ContainerdNodeArgs): void {
  planOrThrow(name, args);
  pinnedConnection(name, args, () => undefined);
}

/** Plans a fleet already made for its nodes (containerd-fleet.ts): each node's spec is planned once. */
const planned = new WeakMap<object, NodePlan>();
export function withPlan<A extends object>(args: A, plan: NodePlan): A {
  planned.set(args, plan);
  return args;
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
  /** beforeRestart: runs where `pulumi up` runs before config.toml's apply restarts containerd. */
  public readonly beforeRestartCommand?: command.local.Command;
  /** afterRestart: runs after that apply succeeded; a fleet's next wave waits for it. */
  public readonly afterRestartCommand?: command.local.Command;

  constructor(name: string, args: ContainerdNodeArgs, opts?: pulumi.ComponentResourceOptions) {
    // Planned and pinned before anything is registered: a bad spec, or a host key that cannot be
    // pinned, must not leave a half-declared node behind.
    const plan = planned.get(args) ?? planOrThrow(name, args);
    const warnings = [...plan.warnings];
    let self: pulumi.Resource | undefined;
    const connection = pinnedConnection(name, args, (m) => (self ? pulumi.log.warn(m, self) : warnings.push(m)));
    super("containerd:index:ContainerdNode", name, {}, opts);
    self = this;
    for (const w of warnings) pulumi.log.warn(w, this);
    // The URN as a plain value: an Output of this.urn would make every child depend on this
    // component, which the SDK expands to all of its children, each waiting for the others.
    const owner = pulumi.output(new Promise<string>((resolve) => this.urn.apply(resolve)));
    const withOwner = <T>(fn: (o: string) => T) => owner.apply(fn);
    const nodeOpts = (o: string) => ({ ...plan.command, owner: o });
    // Which commands ran in this deployment, for lastApply and restarted (see what-ran.ts).
    const hooks = whatRan();

    // The node as it is now, read once while the program runs, before any of its commands is
    // registered: every file's apply carries its drift token, and a node the read finds wrong
    // (another containerd, an import that would vanish) registers no command at all.
    const reading = !plan.forget && (args.readNode ?? !underMocks());
    const found = reading ? readNodeState(plan, connection) : Promise.resolve(undefined);
    // Said once, on the node; a node with errors stops here: none of its commands is registered.
    const checked = found.then((fd) => {
      if (!fd) return undefined;
      for (const w of fd.warnings) pulumi.log.warn(w, this);
      for (const e of fd.errors) pulumi.log.error(e, this);
      if (fd.errors.length > 0) throw refusal(`${name}: nothing of this node is applied: its read found the errors above`);
      return fd;
    });
    const tokenOf = (path: string) => pulumi.output(checked.then((fd) => fd?.tokens.get(path) ?? ""));

    // A forgotten node runs nothing: every input of its commands keeps its recorded value, so no
    // change can make an update that dials it: not its drift token (unknown without a read), nor a
    // new release of this library changing a command line, the node script or a delete.
    const forgotten = plan.forget ? [...COMMAND_INPUTS] : undefined;
    const common = { parent: this, deleteBeforeReplace: true, retainOnDelete: plan.forget };

    // The node on its machine. Its triggers are the SSH address: a new host or port is a replace,
    // delete first, so the machine the node leaves gets every file it still holds restored (its
    // delete runs with the old connection and the old file list) before the new one gets its apply.
    // Under onDelete "keep" only the files holding credentials are restored.
    const files = plan.files.map((pf) => pf.file);
    const hostCommand = new command.remote.Command(
      `${name}:host`,
      {
        connection,
        create: withOwner((o) => installCommand(nodeOpts(o))),
        delete: withOwner((o) => releaseCommand(plan.keep ? files.filter((f) => f.secret) : files, nodeOpts(o))),
        stdin: INSTALLED_SCRIPT,
        triggers: [addressOf(connection)],
        addPreviousOutputInEnv: false,
      },
      { ...common, ignoreChanges: forgotten },
    );

    // unmanagedRegistries "remove": registry directories the spec does not manage are set aside
    // (before the node's own registry files change), and put back when this resource is deleted.
    // Declared whether or not the node is read, so that turning the read off, or forgetting the
    // node, never deletes it (its put-back would dial the node). Its list only a read can know: a
    // node not read (or not reached) keeps the recorded one.
    let setAside: command.remote.Command | undefined;
    if (args.unmanagedRegistries === "remove") {
      if (!reading && !plan.forget) {
        pulumi.log.warn(`${name}: unmanagedRegistries is "remove" but the node is not read (readNode: false): no directory is looked for or set aside in this run; those set aside stay aside`, this);
      }
      const names = reading ? pulumi.output(checked.then((fd) => fd?.setAside ?? [])) : pulumi.output([] as string[]);
      const unread = found.then((fd) => fd !== undefined && !fd.reached, () => false);
      setAside = new command.remote.Command(
        `${name}:unmanaged registries`,
        {
          connection,
          create: pulumi.all([owner, names]).apply(([o, n]) => setAsideCommand(plan.certsDir, n, nodeOpts(o))),
          delete: withOwner((o) => putBackCommand(plan.certsDir, nodeOpts(o))),
          addPreviousOutputInEnv: false,
        },
        {
          ...common,
          dependsOn: [hostCommand, ...(args.filesAfter ?? [])],
          ignoreChanges: forgotten ?? (reading ? undefined : ["create"]),
          transforms: reading ? [async (a) => ((await unread) ? { props: a.props, opts: { ...a.opts, ignoreChanges: [...(a.opts.ignoreChanges ?? []), "create"] } } : undefined)] : undefined,
        },
      );
    }

    // The files, in the plan's write order. The files of an unread node carry the spec's own checks
    // (version guard, restart command, health checks, probes): new content never goes out with old
    // ones. Only their drift token is unknown; it is left out, as with readNode: false, so a file
    // repaired once before shows one update (nothing to do on the node, which then forgets that
    // repair) the first time its node is not read.
    const commands: command.remote.Command[] = [];
    // beforeRestart and afterRestart (restart-hooks.ts); a forgotten node runs none.
    const hookContext: RestartHookContext = {
      name,
      host: withConnection(connection, (_c, host) => host),
      address: addressOf(connection),
      configHash: plan.configHash,
      repairToken: tokenOf(plan.configFile),
      repairing: reading ? checked.then((fd) => fd?.drift.some((d) => d.path === plan.configFile) ?? false, () => false) : undefined,
      parent: this,
    };
    let beforeRestart: command.local.Command | undefined;
    for (const pf of plan.files) {
      const f = pf.file;
      // (restartAfter and filesAfter are the same resources in a fleet's registry waves: once each.)
      const waits = [hostCommand, ...(args.filesAfter ?? []), ...(setAside ? [setAside] : []), ...pf.after.map((j) => commands[j])];
      if (f.kind === "config") {
        waits.push(...(args.restartAfter ?? []).filter((r) => !waits.includes(r)));
        // As late as it can run: after the previous wave and this node's other files.
        beforeRestart = plan.forget ? undefined : restartHook("beforeRestart", args.beforeRestart, hookContext, [...waits]);
        if (beforeRestart) waits.push(beforeRestart);
      }
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
          create: pulumi.all([owner, tokenOf(f.path)]).apply(([o, t]) => applyCommand({ ...f, probes: pf.probes }, nodeOpts(o), t || undefined)),
          // "keep" leaves files in place on delete, except those holding credentials: an
          // Authorization header left active after its registry was removed would be a leak.
          delete: !plan.keep || f.secret ? withOwner((o) => restoreCommand(f, nodeOpts(o))) : undefined,
          stdin: pf.content,
          // We never read PULUMI_COMMAND_STDOUT; sending it only makes sshd refuse a Setenv and the
          // provider warn (pulumi-command remote/commandOutputs.go).
          addPreviousOutputInEnv: false,
        },
        // No triggers: every change is an update, never a replace whose old delete would run after
        // the new create and undo the new file. deleteBeforeReplace guards against replaces anyway.
        { ...common, dependsOn: waits, hooks, ignoreChanges: forgotten },
      );
      if (f.secret && f.kind === "hosts") {
        // A secret file's diff is `[secret] => [secret]`. Beside it, the same file with every
        // credential masked, as a plain input of a resource that runs nothing (a local.Command with
        // no command): `pulumi preview --diff` shows what changes in it, line by line.
        new command.local.Command(`${name}:${f.path} (redacted)`, { stdin: redactHostsToml(f.content) }, { parent: this, retainOnDelete: plan.forget });
      }
      // Drift of this file, said on its own resource (with the line diff where it is not secret).
      void checked.then((fd) => fd?.fileWarnings.get(f.path)?.forEach((w) => pulumi.log.warn(w, cmd)), () => undefined);
      commands.push(cmd);
    }

    this.configVersion = plan.configVersion;
    this.hostCommand = hostCommand;
    this.commands = commands;
    this.configCommand = commands[plan.files.findIndex((pf) => pf.file.kind === "config")];
    this.setAsideCommand = setAside;
    this.beforeRestartCommand = beforeRestart;
    this.afterRestartCommand = plan.forget ? undefined : restartHook("afterRestart", args.afterRestart, hookContext, [this.configCommand]);
    this.files = pulumi.all(plan.files.map((pf) => pulumi.output(pf.content).apply((content): ManagedFile => ({ path: pf.file.path, mode: pf.file.mode, kind: pf.file.kind, secret: pf.file.secret, content }))));
    this.configHash = pulumi.output(plan.configHash);
    // A command's stdout is its last run's; only those that ran in this deployment count.
    this.lastApply = pulumi
      .all(commands.map((c) => pulumi.all([c.urn, c.stdout])))
      .apply((outs) => outs.filter(([urn]) => ranThisDeployment(urn)).map(([, out]) => parseReport(out)).filter((r): r is FileApplyReport => r !== undefined));
    this.restarted = this.lastApply.apply((rs) => rs.some((r) => r.restarted));
    this.deprecations = pulumi.all([this.configCommand.urn, this.configCommand.stdout]).apply(([urn, out]) => {
      const reported = (parseReport(out)?.deprecations ?? []).map((d) => ({ id: String(d.id), message: String(d.message) }));
      // Upgrade readiness, node by node: said where the operator looks, during the `up` that applied.
      if (ranThisDeployment(urn)) for (const d of reported) pulumi.log.warn(`${name}: containerd reports ${d.id}: ${d.message}`, this);
      return reported;
    });
    this.nodeState = pulumi.output(stateReport(found, checked));
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
