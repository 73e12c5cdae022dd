/**
 * ContainerdFleet: many ContainerdNodes from one shared spec, rolled out in waves. Changes that
 * restart containerd (config.toml) go out wave by wave, each wave only after every node of the
 * previous one came back healthy; registry changes (hosts.toml, certificates) need no restart and
 * by default go in the same waves, gated by the probe pulls of rollout.probeImages.
 */
import { isRecord } from "../records";
import * as pulumi from "@pulumi/pulumi";
import { Problem, SpecError, showValue } from "../errors";
import type { NodeSpecOf } from "../spec/types";
import { ConnectionArgs, pinnedConnection } from "./connection";
import { ContainerdNode, withPlan } from "./containerd-node";
import type { ContainerdNodeArgs, NodeOperationArgs } from "./node-args";
import { NodePlan, planNode } from "./plan";
import { withoutPromiseStacks } from "./promise-stacks";

/** One node of the fleet: its name, how to reach it, and anything that differs from the shared spec. */
export interface FleetNodeArgs extends Partial<NodeSpecOf<pulumi.Input<string>>>, NodeOperationArgs {
  /** Unique within the fleet; the node's resources are named after it. */
  readonly name: string;
  readonly connection: pulumi.Input<ConnectionArgs>;
}

export interface RolloutArgs {
  /**
   * How many nodes may restart containerd at once: a number, or a percentage of the fleet
   * ("25%", rounded down, at least 1).
   * @default 1
   */
  readonly maxUnavailable?: number | string;
  /**
   * How many nodes (the first ones listed) form a first wave of their own.
   * @default 0
   */
  readonly canary?: number;
  /**
   * Shell commands run on every node after its restart, in addition to the CRI check; a wave
   * counts as healthy only when they pass on each of its nodes.
   * @default []
   */
  readonly healthChecks?: readonly string[];
  /**
   * An image per registry namespace, pulled on each node through that registry's new hosts.toml
   * right after it is written; a failed pull puts the node's previous file back, and with
   * `registryChanges: "waves"` later waves do not start. See ContainerdNode's probeImages.
   * @default {}
   */
  readonly probeImages?: Readonly<Record<string, string>>;
  /**
   * How hosts.toml and certificate changes go out: `"waves"`, in the same waves as config.toml
   * (canaries first, each wave after the previous one succeeded), or `"all-at-once"`, every node
   * at the same time (nothing restarts for them).
   * @default "waves"
   */
  readonly registryChanges?: "waves" | "all-at-once";
}

export interface ContainerdFleetArgs extends Partial<NodeSpecOf<pulumi.Input<string>>>, NodeOperationArgs {
  /** The nodes, in rollout order. */
  readonly nodes: readonly FleetNodeArgs[];
  readonly rollout?: RolloutArgs;
}

type AnyRecord = Record<string, unknown>;
const isPlainRecord = (v: unknown): v is AnyRecord => isRecord(v) && !pulumi.Output.isInstance(v) && !(v instanceof Promise);

/** Per-node overrides over the shared spec: tables merge, anything else (lists, scalars, Outputs) replaces. */
export function mergeSpec(base: AnyRecord, over: AnyRecord): AnyRecord {
  const out: AnyRecord = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    out[k] = isPlainRecord(v) && isPlainRecord(out[k]) ? mergeSpec(out[k] as AnyRecord, v) : v;
  }
  return out;
}

/** maxUnavailable as a node count. */
export function resolveMaxUnavailable(v: number | string | undefined, nodes: number): number | undefined {
  if (v === undefined) return 1;
  if (typeof v === "number") return Number.isInteger(v) && v >= 1 ? v : undefined;
  const m = /^(\d{1,3})%$/.exec(v);
  if (!m || Number(m[1]) < 1 || Number(m[1]) > 100) return undefined;
  return Math.max(1, Math.floor((nodes * Number(m[1])) / 100));
}

/** Node indexes by wave: canaries first, then groups of maxUnavailable in list order. */
export function planWaves(nodes: number, maxUnavailable: number, canary: number): number[][] {
  const waves: number[][] = [];
  const order = [...Array(nodes).keys()];
  // The canaries go first and alone, but never more of them down at once than maxUnavailable.
  const canaries = order.splice(0, canary);
  while (canaries.length > 0) waves.push(canaries.splice(0, maxUnavailable));
  while (order.length > 0) waves.push(order.splice(0, maxUnavailable));
  return waves;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export class ContainerdFleet extends pulumi.ComponentResource {
  /** The nodes by name. */
  public readonly nodes: Record<string, ContainerdNode>;
  /** Node names by wave, in rollout order. */
  public readonly waves: string[][];
  /** config.toml hash per node: a node whose hash changes restarts in its wave. */
  public readonly configHashes: pulumi.Output<Record<string, string>>;
  /** Nodes whose containerd restarted when their config.toml last ran. */
  public readonly restartedNodes: pulumi.Output<string[]>;

  constructor(name: string, args: ContainerdFleetArgs, opts?: pulumi.ComponentResourceOptions) {
    const { specs, waves } = validateFleet(name, args);
    super("containerd:index:ContainerdFleet", name, {}, opts);
    this.waves = waves.map((w) => w.map((i) => specs[i].name));
    this.nodes = {};
    const registryWaves = (args.rollout?.registryChanges ?? "waves") === "waves";
    // The nodes' resources without the SDK's per-promise stack traces (promise-stacks.ts).
    const nodes = withoutPromiseStacks(() => {
      const made: Record<string, ContainerdNode> = {};
      let previous: pulumi.Resource[] = [];
      for (const wave of waves) {
        const current: pulumi.Resource[] = [];
        for (const i of wave) {
          const { name: nodeName, args: nodeArgs, plan } = specs[i];
          const nodeSpec = { ...(nodeArgs as unknown as ContainerdNodeArgs), restartAfter: previous, filesAfter: registryWaves ? previous : [] };
          const node = new ContainerdNode(nodeName, withPlan(nodeSpec, plan), { parent: this });
          made[nodeName] = node;
          // The next wave waits for this one's config.toml, and in registry waves for all its files;
          // and for its afterRestart (an uncordon): a node is back only when that succeeded.
          current.push(...(registryWaves ? node.commands : [node.configCommand]));
          if (node.afterRestartCommand) current.push(node.afterRestartCommand);
        }
        previous = current;
      }
      return made;
    });
    Object.assign(this.nodes, nodes);
    const names = Object.keys(this.nodes);
    this.configHashes = pulumi.all(names.map((n) => this.nodes[n].configHash)).apply((hs) => Object.fromEntries(names.map((n, i) => [n, hs[i]])));
    this.restartedNodes = pulumi.all(names.map((n) => this.nodes[n].restarted)).apply((rs) => names.filter((_, i) => rs[i]));
    this.registerOutputs({ waves: this.waves, configHashes: this.configHashes, restartedNodes: this.restartedNodes });
  }
}

/**
 * Every problem of the fleet at once, each node's under `nodes[i] (name).`; nothing declared on
 * failure. Each node's plan is made here, once, and handed to the node.
 */
export function validateFleet(name: string, args: ContainerdFleetArgs) {
  const subject = `Invalid ContainerdFleet args for "${name}"`;
  const problems: Problem[] = [];
  const nodes = Array.isArray(args.nodes) ? args.nodes : [];
  if (!Array.isArray(args.nodes) || nodes.length === 0) {
    problems.push({ path: "nodes", message: `${showValue(args.nodes)} is not a non-empty list of nodes` });
  }
  const rollout = args.rollout ?? {};
  const maxUnavailable = resolveMaxUnavailable(rollout.maxUnavailable, nodes.length);
  if (maxUnavailable === undefined) {
    problems.push({ path: "rollout.maxUnavailable", message: `${showValue(rollout.maxUnavailable)} is not a whole number of nodes (1 or more) or a percentage such as "25%"` });
  }
  const canary = rollout.canary ?? 0;
  if (!Number.isInteger(canary) || canary < 0 || (nodes.length > 0 && canary >= nodes.length && canary !== 0)) {
    problems.push({ path: "rollout.canary", message: `${showValue(canary)} is not a whole number from 0 to ${Math.max(0, nodes.length - 1)} (the canaries must leave nodes for later waves)` });
  }
  const checks = rollout.healthChecks ?? [];
  if (!Array.isArray(checks)) problems.push({ path: "rollout.healthChecks", message: `${showValue(checks)} is not a list of shell commands` });
  if (rollout.registryChanges !== undefined && rollout.registryChanges !== "waves" && rollout.registryChanges !== "all-at-once") {
    problems.push({ path: "rollout.registryChanges", message: `${showValue(rollout.registryChanges)} is not one of "waves", "all-at-once"` });
  }

  const { nodes: _n, rollout: _r, ...shared } = args as unknown as AnyRecord;
  const seen = new Map<string, number>();
  const specs: { name: string; args: AnyRecord; plan: NodePlan }[] = [];
  nodes.forEach((node, i) => {
    const at = `nodes[${i}]`;
    if (!isPlainRecord(node)) {
      problems.push({ path: at, message: `${showValue(node)} is not an object` });
      return;
    }
    const nodeName = node.name;
    if (typeof nodeName !== "string" || !NAME_RE.test(nodeName)) {
      problems.push({ path: `${at}.name`, message: `${showValue(nodeName)} is not a node name of letters, digits and . _ - (up to 63)` });
      return;
    }
    if (seen.has(nodeName)) {
      problems.push({ path: `${at}.name`, message: `${showValue(nodeName)} repeats nodes[${seen.get(nodeName)}].name; names must be unique` });
      return;
    }
    seen.set(nodeName, i);
    const { name: _name, ...overrides } = node as unknown as AnyRecord;
    const merged = mergeSpec(shared, overrides);
    merged.healthChecks = [...((merged.healthChecks as string[] | undefined) ?? []), ...(Array.isArray(checks) ? checks : [])];
    if (rollout.probeImages !== undefined) merged.probeImages = { ...((merged.probeImages as Record<string, string> | undefined) ?? {}), ...rollout.probeImages };
    // The node's plan (made once: the node is handed it), then the host keys (the node's and its
    // jump host's, known or given): a key that cannot be pinned is a problem of the fleet's list
    // too, not a second error after a fix.
    const nodeProblems: Problem[] = [];
    const planned = planNode(nodeName, merged as unknown as ContainerdNodeArgs);
    nodeProblems.push(...(planned.problems ?? []));
    try {
      pinnedConnection(nodeName, merged as unknown as ContainerdNodeArgs, () => undefined);
    } catch (e) {
      if (!(e instanceof SpecError)) throw e;
      nodeProblems.push(...e.problems);
    }
    for (const p of nodeProblems) problems.push({ path: `${at} (${nodeName})${p.path ? "." + p.path : ""}`, message: p.message });
    if (planned.plan) specs.push({ name: nodeName, args: merged, plan: planned.plan });
  });
  if (problems.length > 0) throw new SpecError(subject, problems);
  return { specs, waves: planWaves(specs.length, maxUnavailable!, canary) };
}
