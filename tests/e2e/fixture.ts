/**
 * What the e2e files deploy on the local fleet, in one place: the fleet and its mirrors, the paths
 * the component manages on a node, a node's connection and a ContainerdNode spec for it (inline
 * programs through tests/support/engine.ts), the root program's stack (tests/support/cli.ts: the
 * `pulumi` CLI in the repository's top folder, with nodes, the private key as a secret, spec and
 * rollout in its stack config), and readers of what the CLI prints.
 *
 * fleet.ts stays the fleet's own interface (fleet.sh, a node's files, logs and faults); this module
 * knows nothing of how a node is built, only what the tests give the component and the program.
 * A file's own defaults stay in that file, as a small wrapper of these (its `spec`, its `stack`).
 */
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import type { ContainerdNodeArgs } from "../../provider/src";
import { CliOptions, CliRun, CliStack } from "../support/cli";
import { EngineStack, RunResult } from "../support/engine";
import * as F from "./fleet";
import type { FleetNode } from "./fleet";

// ---- the fleet -----------------------------------------------------------------------------------

/** The fleet the e2e project's globalSetup brought up (its JSON: tests/e2e/README.md). */
export const fleet = F.loadFleet();
/** The registry's plain-HTTP mirrors (:5000 and :5001): both serve TINY and PAUSE. */
export const [MIRROR, MIRROR_B] = fleet.registry.mirrors;
export const TINY = "docker.io/library/tiny:1.0";
export const PAUSE = "registry.k8s.io/pause:3.9";

// ---- on a node -----------------------------------------------------------------------------------

export const CONFIG = "/etc/containerd/config.toml";
export const CERTS = "/etc/containerd/certs.d";
/** docker.io's hosts.toml. */
export const HUB = `${CERTS}/docker.io/hosts.toml`;
/** The node script's directory: the records of each apply (`<file>.owner`, `.sum`), its claims, the installed script and the audit trail. */
export const REC = "/etc/containerd/.containerd-node";
export const AUDIT = `${REC}/audit.log`;
export const SCRIPT = `${REC}/containerd-node.sh`;
/**
 * What a destroy leaves under /etc/containerd by design, as "path type" relative to it: the node lock
 * file (removing a lock file others may be waiting on is racy), the certs.d the first hosts.toml apply
 * created (restore cannot know it was not there), and the node's audit trail, which outlives a destroy.
 */
export const DESTROY_LEAVES = [".containerd-node.lock f", "certs.d d", ".containerd-node d", ".containerd-node/audit.log f"];

/** The node's audit trail, a line per event (none before the first apply). */
export async function auditLines(n: FleetNode): Promise<string[]> {
  return ((await F.nodeFile(n, AUDIT)) ?? "").split("\n").filter((l) => l.trim() !== "");
}

/** A node's counters before a run: restart log and audit trail lengths, SSH connections its sshd accepted. */
export interface Mark {
  restarts: number;
  audit: number;
  ssh: number;
}
export const mark = (nodes: FleetNode[]): Promise<Mark[]> =>
  Promise.all(nodes.map(async (n) => ({ restarts: F.restarts(n), audit: (await auditLines(n)).length, ssh: await F.sshAccepted(n) })));

export const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

// ---- a node in an inline program -----------------------------------------------------------------

/** The node's connection: the fleet's key, its host key pinned, and a refused dial is not retried forever. */
export function connection(n: FleetNode, extra: { perDialTimeout?: number } = {}) {
  return { host: n.host, port: n.port, user: n.user, privateKey: n.privateKey, hostKey: n.hostKey, dialErrorLimit: 1, ...extra };
}

/** connection() without a host key: the node's key must come from known_hosts (or hostKeyPolicy). */
export function unpinnedConnection(n: FleetNode) {
  const { hostKey: _pinned, ...rest } = connection(n);
  return rest;
}

/**
 * A ContainerdNode spec for the node: its own containerd version, SystemdCgroup, docker.io through
 * MIRROR, a 30 s health timeout, its connection(), and no read of the node (readNode is on by default
 * under the real engine; tests that count SSH sessions count the commands' alone). `extra` wins.
 */
export function nodeSpec(n: FleetNode, extra: Partial<ContainerdNodeArgs> = {}): ContainerdNodeArgs {
  return {
    containerdVersion: n.containerdVersion,
    systemdCgroup: true,
    healthTimeoutSeconds: 30,
    registries: { "docker.io": { mirrors: [MIRROR] } },
    connection: connection(n),
    readNode: false,
    ...extra,
  };
}

/** A stack of the real engine with state of its own, in the e2e run's private directory. */
export const engineStack = (project?: string) => new EngineStack({ dir: F.E2E_DIR, project });

/** The steps that changed something, "name op", sorted. */
export const changed = (r: RunResult) => r.steps.filter((s) => s.op !== "same").map((s) => `${s.name} ${s.op}`).sort();

// ---- the root program (Pulumi.yaml at the top), through the CLI ------------------------------------

export const PROJECT = "containerd-fleet";

/** The root program's spec the operating tests start from: SystemdCgroup, docker.io through MIRROR, a 30 s health timeout. */
export const ROOT_SPEC = { systemdCgroup: true, healthTimeoutSeconds: 30, registries: { "docker.io": { mirrors: [MIRROR] } } };

/** A node's entry in a program's `nodes` stack config (the root program's, the examples'), with per-node overrides. */
export const configNode = (n: FleetNode, extra: Record<string, unknown> = {}) => ({
  name: n.name,
  host: n.host,
  port: n.port,
  hostKey: n.hostKey,
  containerdVersion: n.containerdVersion,
  ...extra,
});

export interface RootStackArgs {
  /** The nodes, in rollout order. */
  nodes: FleetNode[];
  spec: Record<string, unknown>;
  /** Unset: the program's default rollout. */
  rollout?: Record<string, unknown>;
  /** The `privateKey` config: the first node's (the fleet's one key) unless given. */
  privateKey?: string;
  /** Store the key in plain text, without --secret (the program refuses it). */
  plainKey?: boolean;
  /**
   * Set the nodes the way the README's "Run it" does, a key at a time (`pulumi config set --path
   * 'nodes[0].name' ...`: name, host, hostKey, containerdVersion); otherwise the whole `nodes` list
   * at once (`pulumi config set-all`), each entry `node(n)` (default configNode).
   */
  byPath?: boolean;
  node?: (n: FleetNode) => Record<string, unknown>;
  /** Registry credentials by registry host (`credentials["host"].username` and `.password`), set by path as secrets. */
  credentials?: Record<string, { username: string; password: string }>;
  /** rootStack() only: then deploy it (`pulumi up`). */
  up?: boolean;
}

/** A CliStack of the root program: the CLI in the repository's top folder, its backend in the e2e run's private directory. */
export const rootCli = (opts: Partial<CliOptions> = {}) => new CliStack({ cwd: F.REPO, dir: F.E2E_DIR, ...opts });

/** The root program's stack config, with the CLI's `pulumi config set` (key and credentials as secrets). */
export async function configureRoot(s: CliStack, a: RootStackArgs): Promise<void> {
  await s.set("privateKey", a.privateKey ?? a.nodes[0].privateKey, { secret: !a.plainKey });
  const rollout = a.rollout ? { [`${PROJECT}:rollout`]: a.rollout } : {};
  if (a.byPath) {
    for (const [i, n] of a.nodes.entries()) {
      for (const key of ["name", "host", "hostKey", "containerdVersion"] as const) await s.set(`nodes[${i}].${key}`, n[key], { path: true });
    }
    await s.setAll({ [`${PROJECT}:spec`]: a.spec, ...rollout });
  } else {
    await s.setAll({ [`${PROJECT}:nodes`]: a.nodes.map((n) => (a.node ?? configNode)(n)), [`${PROJECT}:spec`]: a.spec, ...rollout });
  }
  for (const [host, c] of Object.entries(a.credentials ?? {})) {
    await s.set(`credentials["${host}"].username`, c.username, { path: true, secret: true });
    await s.set(`credentials["${host}"].password`, c.password, { path: true, secret: true });
  }
}

/** A new stack of the root program (`pulumi stack init`), configured and, with `up`, deployed; removed again if any of that fails. */
export async function rootStack(a: RootStackArgs, cli: Partial<CliOptions> = {}): Promise<CliStack> {
  const s = rootCli(cli);
  try {
    await s.init();
    await configureRoot(s, a);
    if (a.up) await s.ok(["up", "--yes", "--skip-preview"]);
  } catch (e) {
    s.dispose();
    throw e;
  }
  return s;
}

/** A new spec for the whole fleet (`pulumi config set-all`, as a user would with --path per key). */
export const setSpec = (s: CliStack, spec: Record<string, unknown>) => s.setAll({ [`${PROJECT}:spec`]: spec });

/** The arguments CliStack adds to up/preview/refresh (its `flags`), for runs started without waiting. */
export const argv = (s: CliStack, args: string[]) => [...args, "--stack", s.stack, "--config-file", s.configFile, "--non-interactive"];

/** The stack's file:// backend, as PULUMI_BACKEND_URL names it. */
export const backendOf = (s: CliStack) => `file://${path.join(s.dir, "backend")}`;

/** The file backend's lock directory of a stack, and the lock files in it (relative to it; not their .attrs companions). */
export const locksDir = (s: CliStack) => path.join(s.dir, "backend", ".pulumi", "locks");
export function lockFiles(s: CliStack): string[] {
  if (!fs.existsSync(locksDir(s))) return [];
  return (fs.readdirSync(locksDir(s), { recursive: true }) as string[]).filter((f) => f.endsWith(".json"));
}

export const nodeUrn = (stack: string, n: FleetNode) => `urn:pulumi:${stack}::${PROJECT}::containerd:index:ContainerdFleet$containerd:index:ContainerdNode::${n.name}`;
export const fileUrn = (stack: string, n: FleetNode, p: string) =>
  `urn:pulumi:${stack}::${PROJECT}::containerd:index:ContainerdFleet$containerd:index:ContainerdNode$command:remote:Command::${n.name}:${p}`;

// ---- what the CLI prints -------------------------------------------------------------------------

/** stdout and stderr together (without a terminal the CLI prints the program's warnings on stderr). */
export const text = (r: CliRun) => r.stdout + r.stderr;
/** The resources a preview or up lists as updated, "node:path", sorted. */
export const updated = (r: CliRun) => [...new Set([...r.stdout.matchAll(/~\s+command:remote:Command (\S+) update/g)].map((m) => m[1]))].sort();
/** A resource's line in the CLI's progress/summary output, e.g. ` ~  command:remote:Command node-1:/etc/containerd/config.toml update`. */
export const updateLine = (n: FleetNode, p: string) => new RegExp(`~\\s+command:remote:Command ${n.name}:${p.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")} update`);
/** The CLI's "Resources:" block on one line, e.g. "+ 5 created 12 unchanged". */
export const summary = (r: CliRun) => (/Resources:\n((?:[ \t]+\S.*\n)+)/.exec(r.stdout)?.[1] ?? "").replace(/\s+/g, " ").trim();
