/**
 * The local test fleet (tests/fleet/fleet.sh) as the e2e scenarios use it: the JSON that `fleet.sh up`
 * printed (written by global-setup.ts), commands run inside a node (`fleet.sh exec`), resets, faults,
 * and a plain `ssh` for applies that must run beside a deployment.
 *
 * Everything goes through fleet.sh's documented interface and the host-side paths its JSON names
 * (containerdSocket, configToml, restartLog); nothing here knows how a node is built.
 */
import { Run, run } from "../support/run";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

export const REPO = path.resolve(__dirname, "..", "..");
export const FLEET_SH = path.join(REPO, "tests", "fleet", "fleet.sh");

/**
 * Where global-setup.ts leaves the fleet JSON for the test files (and what teardown must do): one
 * directory per fleet (FLEET_PREFIX, if fleet.sh is told to use another one).
 */
export const E2E_DIR = process.env.CONTAINERD_NODE_E2E_DIR ?? path.join(os.tmpdir(), `containerd-node-e2e-${process.env.FLEET_PREFIX ?? "cdn"}`);
export const FLEET_JSON = path.join(E2E_DIR, "fleet.json");
export const SETUP_JSON = path.join(E2E_DIR, "setup.json");
/** Left by a KEEP_FLEET=1 run whose fleet it was: the host keys identify that very fleet. */
export const KEPT_JSON = path.join(E2E_DIR, "kept.json");

/** One node as `fleet.sh up` describes it. Paths are host-side (the node's directories on this machine). */
export interface FleetNode {
  name: string;
  host: string;
  port: number;
  user: string;
  privateKey: string;
  hostKey: string;
  generation: string;
  containerdVersion: string;
  containerdSocket: string;
  configToml: string;
  restartLog: string;
}

export interface Fleet {
  stateDir: string;
  registry: {
    host: string;
    url: string;
    mirrors: string[];
    images: string[];
    /**
     * Image references a pod uses: the pause image and a long-running container (both the fleet's sleeper,
     * built from source), served by the mirror to a node whose registry.k8s.io and docker.io hosts.toml name it.
     */
    podImages: { sandbox: string; container: string };
    logs: string[];
    /** The same images behind htpasswd (Basic auth): pulls need these credentials. */
    authMirror: { url: string; username: string; password: string };
  };
  nodes: FleetNode[];
}

type Table = { [key: string]: unknown };
const isTable = (v: unknown): v is Table => typeof v === "object" && v !== null && !Array.isArray(v);
function mergeTables(a: Table, b: Table): Table {
  const out: Table = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = isTable(out[k]) && isTable(v) ? mergeTables(out[k] as Table, v) : v;
  return out;
}

/**
 * The `settings` a spec needs for pods to start on this fleet node, merged with `more` (the spec's own
 * settings, if any): CRI's `restrict_oom_score_adj = true`, at the node's generation's path
 * (`plugins."io.containerd.grpc.v1.cri"` on 1.x, `plugins."io.containerd.cri.v1.runtime"` on 2.x).
 *
 * Why: this machine's kernel refuses a negative oom_score_adj, and CRI gives every pod sandbox -998, so
 * without it RunPodSandbox fails (runc: "can't get final child's PID from pipe: EOF"); with it, containerd
 * caps the value at its own. The fleet's starting config.toml sets it, but a spec's config.toml replaces that
 * file: a spec without it leaves a node where no new pod can start.
 *
 * Specs for pods must also leave `systemdCgroup` off: the nodes have no systemd, so runc's systemd cgroup
 * driver cannot work ("systemd not running on this host, cannot use systemd cgroups manager"; without a
 * kubelet-style `*.slice` cgroup parent, "expected cgroupsPath to be of format \"slice:prefix:name\"").
 */
/**
 * The fleet's crictl inside a node: off its PATH (fleet.sh), so only a spec that gives it as
 * crictlPath gets the node script's pod-start check after a restart.
 */
export const CRICTL = "/run/fleet/crictl";

export function podSettings(node: FleetNode, more: Table = {}): Table {
  const plugin = node.generation.startsWith("1.") ? "io.containerd.grpc.v1.cri" : "io.containerd.cri.v1.runtime";
  return mergeTables(more, { plugins: { [plugin]: { restrict_oom_score_adj: true } } });
}

/** A registry log's request lines from one node, written after `offset` (the log's size before). */
export function mirrorRequests(logFile: string, offset: number, n: FleetNode): string[] {
  const text = fs.readFileSync(logFile, "utf8").slice(offset);
  return text.split("\n").filter((l) => l.startsWith(`${n.host} `));
}

export const logSize = (f: string): number => fs.statSync(f).size;

/** What global-setup did, for global-teardown. */
export interface SetupRecord {
  /**
   * Setup brought the fleet up (or reused the one an earlier KEEP_FLEET=1 run of these tests left):
   * teardown takes it down unless KEEP_FLEET=1.
   */
  ours: boolean;
  hostKeys: string[];
}

export function loadFleet(): Fleet {
  if (!fs.existsSync(FLEET_JSON)) {
    throw new Error(
      `${FLEET_JSON} is missing: the e2e project's globalSetup (tests/e2e/global-setup.ts) writes it. ` +
        "Run through jest's e2e project: npx jest --selectProjects e2e --runInBand tests/e2e/scenarios.test.ts",
    );
  }
  return JSON.parse(fs.readFileSync(FLEET_JSON, "utf8")) as Fleet;
}

/** The first node of each generation, in the given order. */
export function nodesByGeneration(fleet: Fleet, generations: readonly string[]): FleetNode[] {
  return generations.map((g) => {
    const n = fleet.nodes.find((x) => x.generation === g);
    if (!n) {
      throw new Error(
        `the fleet has no containerd ${g} node (generations: ${fleet.nodes.map((x) => x.generation).join(", ")}). ` +
          "Bring it down (bash tests/fleet/fleet.sh down) and let the e2e setup bring up 1.6, 1.7, 2.1, 2.2 and 2.3.",
      );
    }
    return n;
  });
}

// ---- processes ---------------------------------------------------------------------------------

export { run };
export type { Run };

async function fleetSh(args: string[], timeoutMs = 300_000): Promise<string> {
  const r = await run("bash", [FLEET_SH, ...args], { timeoutMs });
  if (r.status !== 0) throw new Error(`fleet.sh ${args.join(" ")} exited ${r.status}:\n${r.stderr.trim()}`);
  return r.stdout;
}

/** `fleet.sh exec NODE -- cmd...`: runs inside the node; the result, whatever the exit status. */
export function nodeExec(node: FleetNode, ...cmd: string[]): Promise<Run> {
  return run("bash", [FLEET_SH, "exec", node.name, "--", ...cmd]);
}

/** nodeExec with `input` on the command's stdin. */
export function nodeExecInput(node: FleetNode, input: string, ...cmd: string[]): Promise<Run> {
  return run("bash", [FLEET_SH, "exec", node.name, "--", ...cmd], { input });
}

/** Like nodeExec, but the exit status must be 0; returns stdout. */
export async function nodeSh(node: FleetNode, script: string): Promise<string> {
  const r = await nodeExec(node, "/bin/sh", "-c", script);
  if (r.status !== 0) throw new Error(`${node.name}: sh -c ${JSON.stringify(script)} exited ${r.status}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Every named node back to its initial /etc/containerd, empty containerd state, fresh restart log. */
export async function resetNodes(nodes: FleetNode[]): Promise<void> {
  await fleetSh(["reset", ...nodes.map((n) => n.name)]);
}

export type FaultSwitch =
  | "sshd-stop"
  | "sshd-start"
  | "containerd-fail-start"
  | "containerd-fix"
  | "cut"
  | "reconnect"
  | "kill-sessions"
  | "killmode-process"
  | "killmode-control-group"
  | "killmode-mixed"
  | "restart-kills-shims"
  | "restart-keeps-shims";

export async function fault(node: FleetNode, what: FaultSwitch): Promise<void> {
  await fleetSh(["fault", node.name, what], 60_000);
}

// ---- what a node shows -------------------------------------------------------------------------

/** Start attempts of containerd since the last reset (one line each in the node's restart log). */
export function restartLines(node: FleetNode): string[] {
  if (!fs.existsSync(node.restartLog)) return [];
  return fs.readFileSync(node.restartLog, "utf8").split("\n").filter((l) => l.trim() !== "");
}

export function restarts(node: FleetNode): number {
  return restartLines(node).length;
}

/**
 * SSH connections the node's own sshd accepted since it started (its log's "Accepted" lines): every
 * command the provider runs and every read of the program opens one. Take it before and after a run.
 */
export async function sshAccepted(node: FleetNode): Promise<number> {
  const r = await nodeExec(node, "grep", "-c", "^Accepted ", "/run/fleet/sshd.log");
  return Number(r.stdout.trim() || "0");
}

/** sshAccepted of every node, in order. */
export const sshAcceptedAll = (nodes: FleetNode[]): Promise<number[]> => Promise.all(nodes.map(sshAccepted));

/** containerd's main pid as the node's service manager reports it. */
export async function containerdPid(node: FleetNode): Promise<number> {
  const out = await nodeSh(node, "systemctl show --property MainPID --value containerd");
  return Number(out.trim());
}

/** A file inside the node, by its path there (host-side paths are only documented for config.toml). */
export async function nodeFile(node: FleetNode, file: string): Promise<string | undefined> {
  const r = await nodeExec(node, "cat", file);
  return r.status === 0 ? r.stdout : undefined;
}

export async function nodePathExists(node: FleetNode, p: string): Promise<boolean> {
  return (await nodeExec(node, "test", "-e", p)).status === 0;
}

/** `ctr plugins ls` on the node: the status column of each CRI plugin ("ok", "error", ...). */
export async function criPlugins(node: FleetNode): Promise<Record<string, string>> {
  const r = await nodeExec(node, "ctr", "--address", "/run/containerd/containerd.sock", "plugins", "ls");
  if (r.status !== 0) throw new Error(`${node.name}: ctr plugins ls exited ${r.status}: ${r.stderr.trim()}`);
  const out: Record<string, string> = {};
  for (const line of r.stdout.split("\n")) {
    const f = line.trim().split(/\s+/);
    const cri = (f[0] === "io.containerd.grpc.v1" && f[1] === "cri") || f[0] === "io.containerd.cri.v1";
    if (f.length >= 4 && cri) {
      out[`${f[0]}.${f[1]}`] = f[f.length - 1];
    }
  }
  return out;
}

// ---- plain ssh ---------------------------------------------------------------------------------

/**
 * One command over SSH to a node, as the provider sends it (exec request, no PTY, content on stdin),
 * with the node's pinned host key. For a second apply that must run while a deployment is going on
 * (the engine's runs take turns within one process).
 */
export async function sshRun(node: FleetNode, command: string, stdin: string): Promise<Run> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "e2e-ssh-"));
  try {
    const key = path.join(dir, "id");
    fs.writeFileSync(key, node.privateKey, { mode: 0o600 });
    const known = path.join(dir, "known_hosts");
    fs.writeFileSync(known, `${node.host} ${node.hostKey}\n`);
    return await run(
      "ssh",
      [
        "-T", "-F", "/dev/null",
        "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=yes",
        "-o", `UserKnownHostsFile=${known}`,
        "-o", "IdentitiesOnly=yes",
        "-o", "IdentityAgent=none",
        "-o", "ConnectTimeout=10",
        "-i", key,
        "-p", String(node.port),
        "-l", node.user,
        "--", node.host, command,
      ],
      { input: stdin, timeoutMs: 300_000 },
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `cond` every `everyMs` until it holds; throws after `timeoutMs`. */
export async function waitFor(what: string, cond: () => Promise<boolean> | boolean, timeoutMs = 60_000, everyMs = 50): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}
