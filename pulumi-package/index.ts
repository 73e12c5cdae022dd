/**
 * ContainerdNode and ContainerdFleet as a Pulumi component package, for Python, Go and YAML programs
 * (`pulumi package add <this folder>`; see docs/languages.md).
 *
 * Pulumi infers the package's schema from the types of these two classes' `args`, and that inference
 * takes no union types. args.generated.ts, written from the library's types by tools/package-args.ts,
 * spells the library's args without them; library-check.ts holds it to the library's, field for
 * field, when the repository type-checks. The classes here hand what they get to the library's
 * ContainerdNode and ContainerdFleet unchanged (or, for `maxUnavailable`, as the number it spells),
 * and expose the same outputs. The library validates everything: a bad spec gets the same SpecError
 * text as from TypeScript, before anything is declared.
 */
import * as pulumi from "@pulumi/pulumi";
// The library's public entry: the package at the top of this repository (its main,
// provider/bin/index.js, which `npm install` there builds). A path: this folder is its own npm
// package, outside the library's package scope.
import * as lib from "..";
import type { ContainerdFleetArgs, ContainerdNodeArgs, Deprecation, FileApplyReport, ManagedFile, MirrorHealth, NodeState } from "./args.generated";

export * from "./args.generated";

type AnyRecord = Record<string, unknown>;

/** Absent fields may come as null from other languages; the library wants them absent. */
function withoutNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutNulls);
  if (typeof value === "object" && value !== null && !pulumi.Output.isInstance(value) && !(value instanceof Promise) && Object.getPrototypeOf(value) === Object.prototype) {
    const out: AnyRecord = {};
    for (const [k, v] of Object.entries(value)) if (v !== null && v !== undefined) out[k] = withoutNulls(v);
    return out;
  }
  return value;
}

export function nodeArgsOf(args: ContainerdNodeArgs): lib.ContainerdNodeArgs {
  return withoutNulls(args) as unknown as lib.ContainerdNodeArgs;
}

/** `maxUnavailable: "3"` is the library's `3`; anything else ("25%", a mistake) goes as it is. */
export function fleetArgsOf(args: ContainerdFleetArgs): lib.ContainerdFleetArgs {
  const a = withoutNulls(args) as AnyRecord;
  const r = a.rollout as AnyRecord | undefined;
  if (typeof r === "object" && r !== null && typeof r.maxUnavailable === "string" && /^[0-9]{1,9}$/.test(r.maxUnavailable)) {
    a.rollout = { ...r, maxUnavailable: Number(r.maxUnavailable) };
  }
  return a as unknown as lib.ContainerdFleetArgs;
}

/**
 * ContainerdNode: one node's containerd configuration, rendered for the containerd it runs and
 * rolled out over SSH (config.toml validated by the node's containerd first, a restart only when it
 * changed, rolled back if the CRI plugin does not come back healthy).
 */
export class ContainerdNode extends pulumi.ComponentResource {
  /** config.toml's `version`: 2 for containerd 1.x, 3 for 2.0-2.2, 4 for 2.3+. */
  public readonly configVersion: pulumi.Output<number>;
  /** Every managed file, in write order. */
  public readonly files: pulumi.Output<ManagedFile[]>;
  /** sha256 of the rendered config.toml: changes exactly when containerd will restart. */
  public readonly configHash: pulumi.Output<string>;
  /** What each file's command did in this deployment. */
  public readonly lastApply: pulumi.Output<FileApplyReport[]>;
  /** Whether containerd restarted in this deployment. */
  public readonly restarted: pulumi.Output<boolean>;
  /** containerd's own deprecation report after config.toml's command last ran. */
  public readonly deprecations: pulumi.Output<Deprecation[]>;
  /** What the program's read of the node found in this deployment. */
  public readonly nodeState: pulumi.Output<NodeState>;
  /** Every host of every hosts.toml as the node reached it. */
  public readonly mirrorHealth: pulumi.Output<MirrorHealth[]>;

  constructor(name: string, args: ContainerdNodeArgs, opts?: pulumi.ComponentResourceOptions) {
    const real = nodeArgsOf(args);
    // The library's own checks, before this component registers: a refused spec leaves nothing
    // half-declared.
    lib.validateNode(name, real);
    super("containerd-node:index:ContainerdNode", name, {}, opts);
    const node = new lib.ContainerdNode(name, real, { parent: this });
    this.configVersion = pulumi.output(node.configVersion);
    this.files = node.files;
    this.configHash = node.configHash;
    this.lastApply = node.lastApply;
    this.restarted = node.restarted;
    this.deprecations = node.deprecations;
    this.nodeState = node.nodeState;
    this.mirrorHealth = node.mirrorHealth;
    // The state records what the library's node records. Every output above still reaches the
    // program: the engine hands a remote component's Construct answer (all of them) back to the
    // program without storing it (pkg/resource/deploy/source_eval.go), and stores what is
    // registered here, where a value that changes on every run would cost a state write per node.
    this.registerOutputs(lib.recordedOutputs(this));
  }
}

/**
 * ContainerdFleet: many nodes from one shared spec, rolled out in waves; each wave starts only when
 * every node of the previous one came back healthy.
 */
export class ContainerdFleet extends pulumi.ComponentResource {
  /** Node names by wave, in rollout order. */
  public readonly waves: pulumi.Output<string[][]>;
  /** config.toml hash per node. */
  public readonly configHashes: pulumi.Output<Record<string, string>>;
  /** Nodes whose containerd restarted when their config.toml last ran. */
  public readonly restartedNodes: pulumi.Output<string[]>;

  constructor(name: string, args: ContainerdFleetArgs, opts?: pulumi.ComponentResourceOptions) {
    const real = fleetArgsOf(args);
    lib.validateFleet(name, real); // likewise
    super("containerd-node:index:ContainerdFleet", name, {}, opts);
    const fleet = new lib.ContainerdFleet(name, real, { parent: this });
    this.waves = pulumi.output(fleet.waves);
    this.configHashes = fleet.configHashes;
    this.restartedNodes = fleet.restartedNodes;
    this.registerOutputs({ waves: this.waves, configHashes: this.configHashes, restartedNodes: this.restartedNodes });
  }
}
