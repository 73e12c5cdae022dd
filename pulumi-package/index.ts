/**
 * ContainerdNode and ContainerdFleet as a Pulumi component package, for Python, Go and YAML programs
 * (`pulumi package add <this folder>`; see the README, "From Python, Go and YAML").
 *
 * Pulumi infers the package's schema from the TypeScript types of these two classes' `args`
 * (`@pulumi/pulumi/provider/experimental`), and that inference takes no union types. The library's
 * own args have unions (`string | RegistryHost`, `number | string`, literal unions), so the classes
 * here declare the same fields without them, hand what they get to the library's ContainerdNode and
 * ContainerdFleet unchanged (or, for `maxUnavailable`, as the number it spells), and expose the
 * same outputs. The library validates everything: a bad spec gets the same SpecError text as from
 * TypeScript, before anything is declared.
 *
 * What is plain and what is an Input follows the library: the spec is plain (known when the program
 * runs), and what may be secret or come from another resource is an Input: `connection` and its
 * fields, registry credentials (`auth`), header values and client keys.
 */
import * as pulumi from "@pulumi/pulumi";
// The built library (provider/bin; `npm install` at the top of the repository builds it). A
// relative path: this folder is its own npm package, outside the library's package scope.
import * as lib from "../provider/bin/index";
// The library's own checks, run before this component registers (as its constructors do), so that
// a refused spec leaves nothing half-declared.

/** How to reach a node over SSH: the command provider's `remote.Connection`. */
export interface Connection {
  /** The address of the node. */
  host: pulumi.Input<string>;
  /** The SSH port. Default 22. */
  port?: pulumi.Input<number>;
  /** The SSH user. Default "root". */
  user?: pulumi.Input<string>;
  /** The password of the SSH user. */
  password?: pulumi.Input<string>;
  /** The private key (its contents), e.g. a secret from `pulumi config set --secret`. */
  privateKey?: pulumi.Input<string>;
  /** The password of an encrypted private key. */
  privateKeyPassword?: pulumi.Input<string>;
  /** An SSH agent's socket. Default: SSH_AUTH_SOCK. */
  agentSocketPath?: pulumi.Input<string>;
  /** Dial attempts before giving up (-1: no limit). Default 10. */
  dialErrorLimit?: pulumi.Input<number>;
  /** Seconds per dial attempt (0: no limit). Default 15. */
  perDialTimeout?: pulumi.Input<number>;
  /** The node's host key (`ssh-keyscan -t ed25519 HOST | cut -d' ' -f2-`), pinned. */
  hostKey?: pulumi.Input<string>;
  /** A bastion host to connect through. */
  proxy?: pulumi.Input<ProxyConnection>;
}

/** A bastion host. */
export interface ProxyConnection {
  host: pulumi.Input<string>;
  port?: pulumi.Input<number>;
  user?: pulumi.Input<string>;
  password?: pulumi.Input<string>;
  privateKey?: pulumi.Input<string>;
  privateKeyPassword?: pulumi.Input<string>;
  agentSocketPath?: pulumi.Input<string>;
  dialErrorLimit?: pulumi.Input<number>;
  perDialTimeout?: pulumi.Input<number>;
  hostKey?: pulumi.Input<string>;
}

/** A CRI runtime (`containerd.runtimes.<name>`). */
export interface Runtime {
  /** `runtime_type`, the shim. Default "io.containerd.runc.v2". */
  runtimeType?: string;
  /** `runtime_path`: the shim binary, when not found on PATH. */
  runtimePath?: string;
  /** `options`, handed to the shim as they are: strings, numbers, booleans or lists of strings. */
  options?: Record<string, any>;
  /** `privileged_without_host_devices`. */
  privilegedWithoutHostDevices?: boolean;
  /** `pod_annotations` passed through to the runtime. */
  podAnnotations?: string[];
  /** `container_annotations` passed through to the runtime. */
  containerAnnotations?: string[];
  /** `base_runtime_spec`: a file with the OCI spec to start from. */
  baseRuntimeSpec?: string;
  /** `snapshotter` for this runtime's containers (containerd 1.7+). */
  snapshotter?: string;
}

/** CNI directories of the CRI plugin. */
export interface Cni {
  /** `bin_dir` (`bin_dirs` on 2.1+). Default /opt/cni/bin. */
  binDir?: string;
  /** `conf_dir`. Default /etc/cni/net.d. */
  confDir?: string;
}

/** Credentials for one registry endpoint: username and password, or a token. */
export interface RegistryAuth {
  username?: pulumi.Input<string>;
  password?: pulumi.Input<string>;
  token?: pulumi.Input<string>;
}

/** A TLS client certificate: `cert` is a path on the node or PEM content; `key` likewise, or absent when `cert` holds both. */
export interface ClientCertificate {
  cert: string;
  key?: pulumi.Input<string>;
}

/** A registry endpoint: hosts.toml's `server` or one `[host."<url>"]` table. */
export interface RegistryHost {
  /** http(s) URL; a path is allowed (see overridePath). */
  url: string;
  /** "pull", "resolve", "push", "referrers" (2.2+). Default ["pull", "resolve"] for mirrors. */
  capabilities?: string[];
  /** `skip_verify` (https only). */
  skipVerify?: boolean;
  /** `ca`: paths on the node or PEM content. */
  ca?: string[];
  /** `client`: TLS client certificates. */
  client?: ClientCertificate[];
  /** `[header]`: extra HTTP headers, each with its values. */
  headers?: Record<string, pulumi.Input<string>[]>;
  /** `override_path`: the URL's path already includes the API root. */
  overridePath?: boolean;
  /** `dial_timeout`, a Go duration such as "3s" (2.0.7+ / 2.1+). */
  dialTimeout?: string;
  /** Credentials, sent as this host's Authorization header; they make the hosts.toml secret, mode 0600. */
  auth?: RegistryAuth;
}

/** One registry namespace: its upstream and its mirrors, in the order they are tried. */
export interface Registry {
  /** The upstream, tried after every mirror. Default: the namespace's own registry (registry-1.docker.io for docker.io). */
  server?: RegistryHost;
  /** Mirrors, tried in this order before the server. */
  mirrors?: RegistryHost[];
  /** Pull only through the mirrors, never from the upstream. */
  skipFallback?: boolean;
}

/** The read's probe of every mirror from the node. */
export interface MirrorProbe {
  enabled?: boolean;
  /** "warn" or "fail". */
  policy?: string;
  timeoutSeconds?: number;
  allowDeadRegistries?: boolean;
}

/** The spec of a node (containerd's own names) and what the node does with it; see the README's spec reference. */
export interface NodeSettings {
  /** The containerd version the node runs: "1.6", "1.7.22", "2.1.4", "2.3". */
  containerdVersion?: string;
  /** `SystemdCgroup` of every runc runtime. */
  systemdCgroup?: boolean;
  /** The pause image of pod sandboxes. */
  sandboxImage?: string;
  /** The CRI snapshotter. */
  snapshotter?: string;
  /** `max_concurrent_downloads`, 1..1000. */
  maxConcurrentDownloads?: number;
  /** CRI runtimes by name (runc always exists). */
  runtimes?: Record<string, Runtime>;
  /** `default_runtime_name`. */
  defaultRuntime?: string;
  /** CNI directories. */
  cni?: Cni;
  /** containerd's `root`. */
  root?: string;
  /** containerd's `state`. */
  state?: string;
  /** The socket containerd serves on. Default /run/containerd/containerd.sock. */
  grpcAddress?: string;
  /** `debug.level`: trace, debug, info, warn, error, fatal or panic. */
  debugLevel?: string;
  /** `required_plugins`. */
  requiredPlugins?: string[];
  /** `disabled_plugins`. */
  disabledPlugins?: string[];
  /** Where config.toml lives. Default /etc/containerd/config.toml. */
  configFile?: string;
  /** The registry hosts directory. Default /etc/containerd/certs.d. */
  registryConfigPath?: string;
  /** config.toml's `imports`. */
  imports?: string[];
  /** Registries by namespace ("docker.io", "registry.k8s.io", "host:port", or "*"). */
  registries?: Record<string, Registry>;
  /** TOML tables deep-merged over config.toml last. */
  settings?: Record<string, any>;
  /** Shell command that restarts containerd. Default "systemctl restart containerd". */
  restartCommand?: string;
  /** Seconds to wait for containerd to come back healthy before rolling back. Default 60. */
  healthTimeoutSeconds?: number;
  /** Extra shell commands that must pass after a restart. */
  healthChecks?: string[];
  /** "restore" (default) or "keep": what deleting does on the node. */
  onDelete?: string;
  /** Run node commands through `sudo -n`. */
  sudo?: boolean;
  /** The containerd binary on the node. */
  containerdPath?: string;
  /** The ctr binary on the node. */
  ctrPath?: string;
  /** "known-hosts" (default) or "accept-any": what to do when connection.hostKey is not set. */
  hostKeyPolicy?: string;
  /** The known_hosts file read under hostKeyPolicy "known-hosts". */
  knownHostsFile?: string;
  /** Let go of a dead or decommissioned node. */
  forget?: boolean;
  /** An image per registry namespace, pulled through its new hosts.toml right after it is written. */
  probeImages?: Record<string, string>;
  /** Read the node while the program runs (preview and up). Default true. */
  readNode?: boolean;
  /** Seconds the read may take. Default 10. */
  readTimeoutSeconds?: number;
  /** "warn" (default) or "fail": a node the read does not reach fails the run. */
  unreadNode?: string;
  /** "warn" (default) or "remove": registry directories the spec does not manage. */
  unmanagedRegistries?: string;
  /** The read's probe of every mirror. */
  mirrorProbe?: MirrorProbe;
  /** Import patterns of the node's current config.toml that the new one may drop. */
  dropImports?: string[];
}

export interface ContainerdNodeArgs extends NodeSettings {
  /** How to reach the node. Set hostKey: without it the known_hosts file is read (hostKeyPolicy). */
  connection: pulumi.Input<Connection>;
  /** The containerd version the node runs: "1.6", "1.7.22", "2.1.4", "2.3". */
  containerdVersion: string;
}

/** One node of a fleet: its name, how to reach it, and any spec field that differs from the fleet's. */
export interface FleetNode extends NodeSettings {
  /** Unique within the fleet; the node's resources are named after it. */
  name: string;
  connection: pulumi.Input<Connection>;
}

export interface Rollout {
  /** How many nodes may restart at once: a whole number ("1", "3") or a percentage ("25%"). Default "1". */
  maxUnavailable?: string;
  /** How many nodes (the first ones) form a first wave of their own. Default 0. */
  canary?: number;
  /** Shell commands run on every node after its restart. */
  healthChecks?: string[];
  /** An image per registry namespace, pulled on each node through its new hosts.toml. */
  probeImages?: Record<string, string>;
  /** "waves" (default) or "all-at-once": how hosts.toml changes go out. */
  registryChanges?: string;
}

export interface ContainerdFleetArgs extends NodeSettings {
  /** The nodes, in rollout order. */
  nodes: FleetNode[];
  rollout?: Rollout;
}

/** A managed file as the component reports it. */
export interface ManagedFile {
  path: string;
  mode: number;
  /** "config", "hosts" or "certificate". */
  kind: string;
  secret: boolean;
  /** The exact content (secret for secret files). */
  content: string;
}

/** What the last run of one file's command did on the node. */
export interface FileApplyReport {
  path: string;
  written: boolean;
  restarted: boolean;
  deprecations?: Deprecation[];
}

/** A feature the node's configuration uses that a later containerd removes. */
export interface Deprecation {
  id: string;
  message: string;
}

export interface Drift {
  path: string;
  what: string;
}

export interface UnmanagedRegistry {
  directory: string;
  server?: string;
  hosts: string[];
  message: string;
}

/** What the program's read of the node found. */
export interface NodeState {
  read: boolean;
  reached?: boolean;
  readSeconds?: number;
  runningVersion?: string;
  cri?: string;
  drift: Drift[];
  unmanagedRegistries: UnmanagedRegistry[];
  errors: string[];
}

/** One host of one hosts.toml as the node reached it. */
export interface MirrorHealth {
  registry: string;
  host: string;
  /** "mirror" or "server". */
  role: string;
  class: string;
  seconds: number;
  httpStatus?: number;
  /** "pass", "fail" or "none". */
  credentials?: string;
  tool: string;
  managed: boolean;
}

// ---- from the package's shape to the library's args ---------------------------------------------

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

/** `maxUnavailable: "3"` is the library's `3`; anything else ("25%", a mistake) goes as it is. */
function rolloutOf(rollout: unknown): unknown {
  if (typeof rollout !== "object" || rollout === null) return rollout;
  const r = { ...(rollout as AnyRecord) };
  if (typeof r.maxUnavailable === "string" && /^[0-9]{1,9}$/.test(r.maxUnavailable)) r.maxUnavailable = Number(r.maxUnavailable);
  return r;
}

export function nodeArgsOf(args: ContainerdNodeArgs): lib.ContainerdNodeArgs {
  return withoutNulls(args) as unknown as lib.ContainerdNodeArgs;
}

export function fleetArgsOf(args: ContainerdFleetArgs): lib.ContainerdFleetArgs {
  const a = withoutNulls(args) as AnyRecord;
  if (a.rollout !== undefined) a.rollout = rolloutOf(a.rollout);
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
    lib.validateNode(name, real);
    super("containerd-node:index:ContainerdNode", name, {}, opts);
    const node = new lib.ContainerdNode(name, real, { parent: this });
    this.configVersion = pulumi.output(node.configVersion);
    this.files = node.files;
    this.configHash = node.configHash;
    this.lastApply = node.lastApply;
    this.restarted = node.restarted;
    this.deprecations = node.deprecations;
    this.nodeState = node.nodeState as pulumi.Output<NodeState>;
    this.mirrorHealth = node.mirrorHealth as pulumi.Output<MirrorHealth[]>;
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
    lib.validateFleet(name, real);
    super("containerd-node:index:ContainerdFleet", name, {}, opts);
    const fleet = new lib.ContainerdFleet(name, real, { parent: this });
    this.waves = pulumi.output(fleet.waves);
    this.configHashes = fleet.configHashes;
    this.restartedNodes = fleet.restartedNodes;
    this.registerOutputs({ waves: this.waves, configHashes: this.configHashes, restartedNodes: this.restartedNodes });
  }
}
