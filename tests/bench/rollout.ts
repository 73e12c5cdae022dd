/**
 * Rollout benchmark: ContainerdFleet carried out by the real Pulumi engine against the local fleet,
 * next to the physical floor of the same change and the setup guides' sequential ssh + sed + restart
 * loop, in the same run on the same nodes. Prints tables; asserts nothing about speed.
 *
 *   npm run bench                      # 20 nodes
 *   BENCH_NODES=5 npm run bench
 *   npm run bench -- --scale           # 20, 100 and 200 nodes (BENCH_SCALE=20,50 for others)
 *   BENCH_PARALLEL=32 npm run bench    # pulumi --parallel 32 (default: the CLI's own, 4 per CPU)
 *   npm run bench -- --pods            # only the config change with pods running, and what its checks cost
 *
 * How ours runs: the `pulumi` CLI (what tools/pulumi/build.sh built) in a program folder that this
 * file writes into a private temporary directory: Pulumi.yaml (runtime nodejs, TypeScript, main
 * index.ts), a tsconfig.json, a package.json, node_modules linked to the repository's, and an
 * index.ts that imports the built library by absolute path (<repo>/provider/bin: run `npm run build`
 * first) and declares the fleet described by a JSON file that stack config `specFile` names (the
 * nodes' key wrapped in pulumi.secret, as the root program does). Each of ours is `pulumi up --yes
 * --skip-preview` or `pulumi preview --diff` through tests/support/cli.ts (CliStack: a file://
 * backend, passphrase secrets). The CLI rather than EngineStack (Automation API, an inline program
 * in this process) because it is what a user runs and sees: the CLI, the Node.js language host,
 * ts-node transpiling index.ts (both programs' tsconfig says noCheck, as the root program's does: the
 * type check is `npm run typecheck`'s job, and it cost every run about 2.5 s of CPU), the program in
 * a Node.js process of its own, the command provider
 * and the CLI's display; and because then this process is outside everything measured.
 *
 * Wall times are the `pulumi` process's own lifetime (its start time in /proc, to its exit). Beside it, the CPU seconds of the CLI and everything under it (this process's children
 * times), which move less than wall time on a shared machine. Peak memory is sampled from /proc
 * every 50 ms over the CLI's process tree (the CLI, the language host, the program's node, the
 * command provider). SSH sessions are what each node's own sshd logged (its `Accepted` lines)
 * before and after; restarts are each node's restart log.
 *
 * Floors, each run with OpenSSH right after ours, on the same nodes, writing the same files (with
 * one more comment line, so the bytes differ and the work is real):
 *   - first rollout: one session per node writing every file, restarting containerd and waiting for
 *     CRI ok; the nodes of a wave in parallel, waves in sequence (maxUnavailable 25%);
 *   - hosts-only: one session per node writing one file, all nodes in parallel;
 *   - config change: as the first rollout, with config.toml only.
 * Around each floor, outside its time, the files it writes are kept and put back byte for byte, so
 * that ours' next run (whose node read would see the floor's comment line as drift) starts from what
 * ours left.
 *
 * The control (CONTROL_PROGRAM), also through the CLI: the engine carrying out the floor's work with
 * ours' resources (the same remote.Commands by name, parent, connection and input sizes, doing only
 * what the floor does, in the same waves). It splits each gap: control - floor is the engine's, the
 * SDK's and the command provider's; ours - control is ours.
 *
 * The config change with pods running (podsRun, last in the run, printed beside the config change):
 * BENCH_PODS pods (2) of the fleet's sleeper on every node, started through CRI as kubelet starts
 * them, while a config.toml change rolls out through the CLI as above, with the spec pods need here
 * (systemdCgroup off, the fleet's sandbox image, crictlPath: so the apply runs every restart guard
 * and the pod-start check). Then every task must run with the pid it had (the row fails loudly if
 * not), and each node runs the guards' own functions BENCH_GUARD_REPS times (5) to say what each
 * check costs it: tests/bench/guard-cost.ts.
 *
 * It brings the nodes up (tests/fleet/fleet.sh up) and down again (unless KEEP_FLEET=1). Give it a
 * fleet of its own (FLEET_PREFIX, FLEET_SUBNET, FLEET_STATE_DIR) to run beside other tests.
 */
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { ConnectionArgs, ContainerdFleetArgs, FleetNodeArgs } from "../../provider/bin";
import { renderNode } from "../../provider/bin";
import { shellQuote } from "../../provider/bin/remote/commands";
import { NODE_SCRIPT } from "../../provider/bin/remote/node-script";
import { CRICTL, podSettings } from "../e2e/fleet";
import { CliRun, CliStack } from "../support/cli";
import { CriPod, criContainerStatus, criRemovePod, criRunPod } from "../support/cri";
import { privateDir, pulumiPath } from "../support/pulumi-env";
import { CHECKS, GuardCostSummary, RestartGuards, UNITS, guardCostScript, parseGuardCost, summarize } from "./guard-cost";

const REPO = path.resolve(__dirname, "..", "..");
const FLEET_SH = path.join(REPO, "tests", "fleet", "fleet.sh");
const N = Number(process.env.BENCH_NODES ?? 20);
const MAX_UNAVAILABLE = "25%";
const SCALE = process.argv.includes("--scale");
const PODS_ONLY = process.argv.includes("--pods");
const SCALE_SIZES = (process.env.BENCH_SCALE ?? "20,100,200").split(",").map(Number);
const PARALLEL = [
  ...(process.env.BENCH_PARALLEL ? ["--parallel", String(Number(process.env.BENCH_PARALLEL))] : []),
  // e.g. BENCH_PULUMI_ARGS="--profiling /tmp/cli": the CLI's own CPU profile of each of ours' runs.
  ...(process.env.BENCH_PULUMI_ARGS ?? "").split(/\s+/).filter(Boolean),
];

interface FleetNode {
  name: string;
  host: string;
  port: number;
  user: string;
  privateKey: string;
  privateKeyPath: string;
  hostKey: string;
  generation: string;
  containerdVersion: string;
  containerdSocket: string;
  configToml: string;
  restartLog: string;
}
interface FleetJson {
  registry: { mirrors: string[]; podImages: { sandbox: string; container: string } };
  nodes: FleetNode[];
}

function fleet(...args: string[]): string {
  const r = spawnSync("bash", [FLEET_SH, ...args], { encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`fleet.sh ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
}

function restarts(nodes: FleetNode[]): number {
  return nodes.reduce((sum, n) => sum + (fs.existsSync(n.restartLog) ? fs.readFileSync(n.restartLog, "utf8").split("\n").filter(Boolean).length : 0), 0);
}

/** Runs fn over items, at most `limit` at once. */
async function pool<T, R>(items: T[], limit: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** SSH logins each node's sshd has logged so far (its own log, in the node), summed. */
async function acceptedSessions(nodes: FleetNode[]): Promise<number> {
  const counts = await pool(nodes, 4, (n) =>
    new Promise<number>((resolve) => {
      const p = spawn("bash", [FLEET_SH, "exec", n.name, "/bin/sh", "-c", "grep -c '^Accepted ' /run/fleet/sshd.log || :"], { stdio: ["ignore", "pipe", "ignore"] });
      let out = "";
      p.stdout.on("data", (d: Buffer) => (out += d.toString()));
      p.on("close", () => resolve(Number(out.trim()) || 0));
    }),
  );
  return counts.reduce((a, b) => a + b, 0);
}

// ---- the program folders -------------------------------------------------------------------------

/** The library the program imports is the built one: it must be there and newer than the sources. */
function checkBuilt(): void {
  const newest = (dir: string, ext: string): number => {
    let t = 0;
    for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
      if (e.isFile() && e.name.endsWith(ext)) t = Math.max(t, fs.statSync(path.join(e.parentPath, e.name)).mtimeMs);
    }
    return t;
  };
  const bin = path.join(REPO, "provider", "bin");
  if (!fs.existsSync(path.join(bin, "index.js"))) throw new Error(`${bin}/index.js is missing: run npm run build`);
  if (newest(path.join(REPO, "provider", "src"), ".ts") > newest(bin, ".js")) throw new Error(`${bin} is older than provider/src: run npm run build`);
}

const PROGRAM = `// The benchmark's program, written by tests/bench/rollout.ts: the fleet that the JSON file named by
// stack config specFile describes (null: declare nothing), the nodes' private key as a secret.
import * as fs from "fs";
import * as pulumi from "@pulumi/pulumi";
import { ConnectionArgs, ContainerdFleet, ContainerdFleetArgs, FleetNodeArgs } from ${JSON.stringify(path.join(REPO, "provider", "bin"))};

interface BenchSpec extends Omit<ContainerdFleetArgs, "nodes"> {
  nodes: (FleetNodeArgs & { connection: ConnectionArgs })[];
}

const spec = JSON.parse(fs.readFileSync(new pulumi.Config().require("specFile"), "utf8")) as BenchSpec | null;
if (spec) {
  new ContainerdFleet("bench", {
    ...spec,
    nodes: spec.nodes.map((n) => ({ ...n, connection: { ...n.connection, privateKey: pulumi.secret(String(n.connection.privateKey)) } })),
  });
}
`;

/** The floor's restart and wait for CRI ok, as the control's config.toml command runs it. */
const CRI_OK_WAIT = "until ctr plugins ls 2>/dev/null | awk '$1 == \"io.containerd.grpc.v1\" && $2 == \"cri\" { print $NF }' | grep -qx ok; do sleep 0.1; done";
const CONTROL_RESTART = `cat >/dev/null && systemctl restart containerd && ${CRI_OK_WAIT} #`;

/**
 * The control: the engine carrying out the floor's work, with ours' resources. For each of ours'
 * remote.Command resources (read from ours' state after its first rollout), a remote.Command of the
 * same name and parent shape, on the same connection, with stdin, create and delete of the same
 * sizes. Its create does what the floor does for that file: config.toml's restarts containerd and
 * waits for its CRI plugin to say ok (the floor's loop), every other one only reads its stdin. Each
 * node's config.toml command waits for the node's other commands and for the previous wave's
 * config.toml commands (waves of MAX_UNAVAILABLE, as ours), as ours' do. No node script, no
 * validation, health gate or rollback, no node read, no transforms.
 *
 * So, for each row: the control minus the floor is what the engine, the SDK and the command provider
 * cost; ours minus the control is what ours adds (its program, and the node script's checks).
 */
const CONTROL_PROGRAM = `// The benchmark's control program, written by tests/bench/rollout.ts: plain remote.Commands shaped
// like ours' (same names, parents, stdin, create and delete sizes) doing the floor's work, from the
// JSON file stack config controlFile names.
import * as fs from "fs";
import * as pulumi from "@pulumi/pulumi";
import * as remote from "@pulumi/command/remote";

interface Cmd { name: string; kind: "config" | "other"; stdinBytes: number; createBytes: number; deleteBytes: number; version: number }
interface Node { name: string; wave: number; connection: { host: string; port: number; user: string; privateKey: string }; commands: Cmd[] }

const RESTART = ${JSON.stringify(CONTROL_RESTART)};
const nodes = JSON.parse(fs.readFileSync(new pulumi.Config().require("controlFile"), "utf8")) as Node[];
const fleet = new pulumi.ComponentResource("bench:index:Fleet", "bench", {});
const pad = (prefix: string, bytes: number) => prefix + "#".repeat(Math.max(0, bytes - prefix.length));
const configs: remote.Command[][] = [];
for (const n of nodes) {
  const node = new pulumi.ComponentResource("bench:index:Node", n.name, {}, { parent: fleet });
  const connection = { ...n.connection, privateKey: pulumi.secret(n.connection.privateKey) };
  const files: remote.Command[] = [];
  for (const c of [...n.commands.filter((x) => x.kind !== "config"), ...n.commands.filter((x) => x.kind === "config")]) {
    const config = c.kind === "config";
    const cmd = new remote.Command(c.name, {
      connection,
      create: pad(config ? RESTART : "cat >/dev/null #", c.createBytes),
      ...(c.deleteBytes > 0 ? { delete: pad("true #", c.deleteBytes) } : {}),
      stdin: pad(\`version \${c.version}\\n\`, c.stdinBytes),
      addPreviousOutputInEnv: false,
    }, { parent: node, dependsOn: config ? [...files, ...(configs[n.wave - 1] ?? [])] : [] });
    if (config) (configs[n.wave] ??= []).push(cmd);
    else files.push(cmd);
  }
}
`;

const EMPTY_PROGRAM = `// Declares nothing: what pulumi up costs by itself.
export {};
`;

/** A Pulumi project folder as a user has one: Pulumi.yaml, package.json, tsconfig.json, index.ts. */
function writeProject(dir: string, name: string, index: string): string {
  const deps = (JSON.parse(fs.readFileSync(path.join(REPO, "package.json"), "utf8")) as { dependencies: Record<string, string> }).dependencies;
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "Pulumi.yaml"), `name: ${name}\nruntime:\n  name: nodejs\n  options:\n    typescript: true\nmain: index.ts\n`);
  fs.writeFileSync(
    path.join(dir, "package.json"),
    JSON.stringify({ name, private: true, dependencies: { "@pulumi/pulumi": deps["@pulumi/pulumi"], "@pulumi/command": deps["@pulumi/command"] } }, null, 2) + "\n",
  );
  fs.writeFileSync(
    path.join(dir, "tsconfig.json"),
    JSON.stringify(
      {
        compilerOptions: { strict: true, target: "ES2022", module: "commonjs", moduleResolution: "node", esModuleInterop: true, skipLibCheck: true, noEmit: true, noCheck: true, types: ["node"] },
        include: ["index.ts"],
      },
      null,
      2,
    ) + "\n",
  );
  fs.writeFileSync(path.join(dir, "index.ts"), index);
  fs.symlinkSync(path.join(REPO, "node_modules"), path.join(dir, "node_modules"));
  return dir;
}

// ---- the CLI's process tree, from /proc ------------------------------------------------------------

const CLK_TCK = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout) || 100;
const PAGE = Number(spawnSync("getconf", ["PAGESIZE"], { encoding: "utf8" }).stdout) || 4096;
const uptime = () => Number(fs.readFileSync("/proc/uptime", "utf8").split(" ")[0]);
/** CPU seconds of this process's children that have ended and been waited for (cutime + cstime). */
const childrenCpu = (): number => {
  const line = fs.readFileSync("/proc/self/stat", "utf8");
  const f = line.slice(line.lastIndexOf(")") + 2).split(" ");
  return (Number(f[13]) + Number(f[14])) / CLK_TCK;
};

/** CPU seconds the whole machine has been busy since boot (/proc/stat: all but idle and iowait). */
const machineBusy = (): number => {
  const f = fs.readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = f;
  return (user + nice + system + irq + softirq + (steal ?? 0)) / CLK_TCK;
};

/** Children of pid, from every one of its threads (the Go CLI forks from any of them). */
function children(pid: number): number[] {
  let tasks: string[];
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const t of tasks) {
    try {
      out.push(...fs.readFileSync(`/proc/${pid}/task/${t}/children`, "utf8").split(" ").filter(Boolean).map(Number));
    } catch {
      // the thread ended
    }
  }
  return out;
}

/** argv by "pid start" (the main thread's name is no guide: Node.js 24 calls its own "MainThread"). */
const argvs = new Map<string, string[]>();

function procStat(pid: number): { argv: string[]; start: number; rss: number } | undefined {
  try {
    const line = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = line.slice(line.lastIndexOf(")") + 2).split(" ");
    // Fields 22 (start time, clock ticks after boot) and 24 (resident pages); f[0] is field 3.
    const start = Number(f[19]);
    const key = `${pid} ${start}`;
    let argv = argvs.get(key);
    if (!argv) {
      argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      argvs.set(key, argv);
    }
    return { argv, start, rss: Number(f[21]) * PAGE };
  } catch {
    return undefined;
  }
}

/** Samples this process's descendants (the pulumi CLI and everything under it) every 50 ms. */
class TreeSampler {
  peakTree = 0;
  peakProgram = 0;
  /** The CLI's start, seconds after boot. */
  cliStart?: number;
  /** childrenCpu() once the CLI runs (CliStack's lookup of the CLI, a child too, has ended by then). */
  cpu0?: number;
  private readonly timer = setInterval(() => this.sample(), 50);

  sample(): void {
    let tree = 0;
    let program = 0;
    const queue = children(process.pid).map((pid) => ({ pid, top: true }));
    while (queue.length > 0) {
      const { pid, top } = queue.shift()!;
      const st = procStat(pid);
      if (!st) continue;
      if (top && path.basename(st.argv[0]) === "pulumi" && this.cliStart === undefined) {
        this.cliStart = st.start / CLK_TCK;
        this.cpu0 = childrenCpu();
      }
      tree += st.rss;
      // The language host's node running the program (ts-node, the SDK, the component, the node reads).
      if (st.argv.some((a) => a.includes(`${path.sep}@pulumi${path.sep}pulumi${path.sep}cmd${path.sep}run`))) program += st.rss;
      queue.push(...children(pid).map((c) => ({ pid: c, top: false })));
    }
    this.peakTree = Math.max(this.peakTree, tree);
    this.peakProgram = Math.max(this.peakProgram, program);
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

// ---- ours ------------------------------------------------------------------------------------------

interface Measured {
  ok: boolean;
  seconds: number;
  /**
   * CPU seconds of the CLI and everything under it (each process counts once its parent waited for
   * it): what the run costs whatever else the machine does, unlike wall time on a shared machine.
   */
  cpuSeconds?: number;
  /**
   * CPU seconds the whole machine was busy meanwhile: the CLI's tree plus the nodes' side (sshd, the
   * node script, ctr, containerd restarting), which here share the machine's 2 cores with the CLI.
   */
  machineCpuSeconds: number;
  /** Packets the machine's input queues dropped meanwhile (nodes' and loopback alike; 0 when healthy). */
  droppedPackets: number;
  /** The CLI's own summary: "Resources:" lines and its Duration. */
  summary: string;
  peakTreeMiB: number;
  peakProgramMiB: number;
  run: CliRun;
}

function summaryOf(out: string): string {
  const m = /^Resources:\n((?:[ \t]+\S.*(?:\n|$))+)/m.exec(out);
  const lines = m ? m[1].split("\n").map((l) => l.trim().replace(/^([+~-]|\+-) /, "$1")).filter(Boolean) : [];
  const d = /^Duration: (\S+)/m.exec(out);
  return lines.join(", ") + (d ? ` (${d[1]})` : "");
}

/** Where a failed run's whole output goes: kept after the run's temporary directory is removed. */
const FAILURE_LOGS = path.join(REPO, ".cache", "bench-failures");

/**
 * What a failed run printed: its last lines, the lines anywhere in it that name an error (a crash's
 * cause is often far above the last lines, under hundreds of follow-on errors), and the file that
 * keeps all of it.
 */
function failure(label: string, args: string[], run: CliRun): string {
  fs.mkdirSync(FAILURE_LOGS, { recursive: true, mode: 0o700 });
  const file = path.join(FAILURE_LOGS, `${new Date().toISOString().replace(/[:.]/g, "-")}-${label.replace(/[^A-Za-z0-9]+/g, "-")}.log`);
  fs.writeFileSync(file, `$ pulumi ${args.join(" ")}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`, { mode: 0o600 });
  const all = (run.stdout + "\n" + run.stderr).split("\n");
  const seen = new Set<string>();
  const errors = all
    .filter((l) => /error|fatal|panic|heap|killed|signal|ENOMEM|EMFILE|exception/i.test(l))
    .map((l) => l.trim().replace(/node-\d+/g, "node-N"))
    .filter((l) => !seen.has(l) && seen.add(l))
    .slice(0, 30);
  return [
    `${label}: pulumi ${args[0]} exited ${run.status}; its whole output: ${file}`,
    `  distinct error lines (node names as node-N), first 30:`,
    ...errors.map((l) => `    ${l}`),
    `  its last 20 lines:`,
    ...all.slice(-20).map((l) => `    ${l}`),
  ].join("\n");
}

/** One CLI command in the stack, timed from the CLI process's own start to its exit. */
async function measure(s: CliStack, args: string[], label: string): Promise<Measured> {
  const sampler = new TreeSampler();
  const busy0 = machineBusy();
  const dropped0 = droppedPackets();
  let run: CliRun;
  try {
    run = await s.cmd(args);
  } finally {
    sampler.stop();
  }
  const end = uptime();
  const machineCpuSeconds = machineBusy() - busy0;
  const cpuSeconds = sampler.cpu0 !== undefined ? childrenCpu() - sampler.cpu0 : undefined;
  const seconds = sampler.cliStart !== undefined ? end - sampler.cliStart : run.seconds;
  const ok = run.status === 0;
  const dropped = droppedPackets() - dropped0;
  if (!ok) console.error(failure(label, args, run) + (dropped ? `\n  the machine dropped ${dropped} packets meanwhile (/proc/net/softnet_stat)` : ""));
  return { ok, seconds, cpuSeconds, machineCpuSeconds, droppedPackets: dropped, summary: summaryOf(run.stdout), peakTreeMiB: sampler.peakTree / 2 ** 20, peakProgramMiB: sampler.peakProgram / 2 ** 20, run };
}

/** Our program's stack: each run writes the spec file, then runs the CLI. */
class Deployment {
  private constructor(
    readonly stack: CliStack,
    readonly specFile: string,
    readonly nodes: FleetNode[],
    readonly countSessions: boolean,
  ) {}

  static async create(dir: string, programDir: string, nodes: FleetNode[], countSessions: boolean): Promise<Deployment> {
    const stack = new CliStack({ cwd: programDir, dir });
    const specFile = path.join(stack.dir, "spec.json");
    await stack.init();
    await stack.set("specFile", specFile);
    return new Deployment(stack, specFile, nodes, countSessions);
  }

  up(spec: ContainerdFleetArgs | null, label: string) {
    return this.run(["up", "--yes", "--skip-preview", ...PARALLEL], spec, label);
  }

  preview(spec: ContainerdFleetArgs | null, label: string) {
    return this.run(["preview", "--diff", ...PARALLEL], spec, label);
  }

  private async run(args: string[], spec: ContainerdFleetArgs | null, label: string): Promise<Measured & { sessions?: number; restarted: number }> {
    fs.writeFileSync(this.specFile, JSON.stringify(spec), { mode: 0o600 });
    const sessions0 = this.countSessions ? await acceptedSessions(this.nodes) : 0;
    const restarts0 = restarts(this.nodes);
    const m = await measure(this.stack, args, label);
    const sessions = this.countSessions ? (await acceptedSessions(this.nodes)) - sessions0 : undefined;
    return { ...m, sessions, restarted: restarts(this.nodes) - restarts0 };
  }

  /** `pulumi stack export`: bytes, and the resources other than the stack and its providers. */
  async state(): Promise<{ bytes: number; resources: number }> {
    const r = await this.stack.ok(["stack", "export"]);
    const resources = ((JSON.parse(r.stdout) as { deployment?: { resources?: { type: string }[] } }).deployment?.resources ?? []).filter(
      (x) => x.type !== "pulumi:pulumi:Stack" && !x.type.startsWith("pulumi:providers:"),
    );
    return { bytes: Buffer.byteLength(r.stdout), resources: resources.length };
  }
}

/** The control program's stack (CONTROL_PROGRAM): ours' commands, as plain remote.Commands. */
class Control {
  private constructor(
    readonly stack: CliStack,
    readonly file: string,
    readonly nodes: { name: string; wave: number; connection: { host: string; port: number; user: string; privateKey: string }; commands: { name: string; kind: "config" | "other"; stdinBytes: number; createBytes: number; deleteBytes: number; version: number }[] }[],
  ) {}

  /** From ours' state: each remote.Command's name, its node, and the sizes of its stdin and create. */
  static async create(dir: string, controlDir: string, ours: Deployment): Promise<Control> {
    const r = await ours.stack.ok(["stack", "export"]);
    type Res = { urn: string; type: string; inputs?: { stdin?: unknown; create?: unknown; delete?: unknown } };
    const resources = (JSON.parse(r.stdout) as { deployment: { resources: Res[] } }).deployment.resources.filter((x) => x.type === "command:remote:Command");
    const size = (v: unknown) => (typeof v === "string" ? Buffer.byteLength(v) : 0);
    const nodes = ours.nodes.map((n, i) => ({
      name: n.name,
      wave: Math.floor(i / waveSize(ours.nodes.length)),
      connection: { host: n.host, port: n.port, user: n.user, privateKey: n.privateKey },
      commands: resources
        .map((x) => {
          const name = x.urn.slice(x.urn.lastIndexOf("::") + 2);
          const kind = name.endsWith("/config.toml") ? ("config" as const) : ("other" as const);
          return { name, kind, stdinBytes: size(x.inputs?.stdin), createBytes: size(x.inputs?.create), deleteBytes: size(x.inputs?.delete), version: 1 };
        })
        .filter((c) => c.name.startsWith(`${n.name}:`)),
    }));
    const stack = new CliStack({ cwd: controlDir, dir });
    await stack.init();
    const file = path.join(stack.dir, "control.json");
    await stack.set("controlFile", file);
    return new Control(stack, file, nodes);
  }

  /** A new stdin for the commands whose name matches: the next up updates (runs) them. */
  bump(match: (name: string) => boolean): number {
    let n = 0;
    for (const node of this.nodes) for (const c of node.commands) if (match(c.name)) (c.version++, n++);
    return n;
  }

  get count(): number {
    return this.nodes.reduce((a, n) => a + n.commands.length, 0);
  }

  up(label: string): Promise<Measured> {
    fs.writeFileSync(this.file, JSON.stringify(this.nodes), { mode: 0o600 });
    return measure(this.stack, ["up", "--yes", "--skip-preview", ...PARALLEL], label);
  }
}

/** The fleet's spec for a change: the same for ours and for the floor's rendered files. */
function fleetSpec(mirror: string, downloads: number, mirrorA: string, nodes: FleetNode[], extra: Partial<ContainerdFleetArgs> = {}): ContainerdFleetArgs {
  const fleetNodes: FleetNodeArgs[] = nodes.map((n) => ({
    name: n.name,
    containerdVersion: n.containerdVersion,
    connection: { host: n.host, port: n.port, user: n.user, privateKey: n.privateKey, hostKey: n.hostKey } satisfies ConnectionArgs,
  }));
  return {
    systemdCgroup: true,
    sandboxImage: "registry.k8s.io/pause:3.9",
    maxConcurrentDownloads: downloads,
    registries: { "docker.io": { mirrors: [mirror] }, "registry.k8s.io": { mirrors: [mirrorA] } },
    healthTimeoutSeconds: 30,
    nodes: fleetNodes,
    // Registry changes all at once, as the floor's hosts-only run is (the default is in waves).
    rollout: { maxUnavailable: MAX_UNAVAILABLE, registryChanges: "all-at-once" },
    // The floor reads nothing; the read has rows of its own.
    readNode: false,
    ...extra,
  };
}

// ---- the floor -------------------------------------------------------------------------------------

interface Floor {
  files: "all" | "config" | "hosts";
  restart: boolean;
  parallel: "waves" | "all";
}

function ssh(n: FleetNode, known: string, script: string): Promise<number> {
  return new Promise<number>((resolve) => {
    const p = spawn("ssh", ["-F", "/dev/null", "-T", "-o", "BatchMode=yes", "-o", `UserKnownHostsFile=${known}`, "-o", "StrictHostKeyChecking=yes",
      "-i", n.privateKeyPath, "-p", String(n.port), `${n.user}@${n.host}`, script], { stdio: ["ignore", "ignore", "inherit"] });
    p.on("close", (c) => resolve(c ?? 1));
  });
}

function knownHosts(dir: string, nodes: FleetNode[]): string {
  const known = path.join(dir, "known_hosts");
  fs.writeFileSync(known, nodes.map((n) => `${n.host} ${n.hostKey}\n`).join(""));
  return known;
}

const waveSize = (nodes: number) => Math.max(1, Math.floor((nodes * 25) / 100));

/** The files the floor writes on a node: what ours renders for it. */
function floorFiles(f: Floor, spec: ContainerdFleetArgs, n: FleetNode): { path: string; content: string }[] {
  const files = renderNode({
    containerdVersion: n.containerdVersion,
    systemdCgroup: spec.systemdCgroup,
    sandboxImage: spec.sandboxImage,
    maxConcurrentDownloads: spec.maxConcurrentDownloads,
    registries: spec.registries,
  }).files.filter((x) => f.files === "all" || (f.files === "config" ? x.kind === "config" : x.kind === "hosts"));
  return f.files === "hosts" ? files.slice(0, 1) : files;
}

/** Outside the floor's time: keep ours' files before it, put them back (bytes, mode, owner) after. */
async function keepOrRestore(what: "keep" | "restore", f: Floor, spec: ContainerdFleetArgs, nodes: FleetNode[], known: string): Promise<boolean> {
  const codes = await pool(nodes, 8, (n) =>
    ssh(n, known, ["set -e", ...floorFiles(f, spec, n).map((x) => {
      const p = shellQuote(x.path);
      const kept = shellQuote(x.path + ".bench-kept");
      return what === "keep" ? `cp -p ${p} ${kept}` : `mv -f ${kept} ${p}`;
    })].join("\n")),
  );
  return codes.every((c) => c === 0);
}

/**
 * The physical floor: per node, one OpenSSH session that writes the files (atomically, as ours
 * does), restarts containerd and waits for its CRI plugin to say ok; waves of maxUnavailable in
 * sequence, or all nodes at once.
 */
async function floorRun(f: Floor, spec: ContainerdFleetArgs, nodes: FleetNode[], known: string): Promise<{ seconds: number; machineCpuSeconds: number; ok: boolean }> {
  const scriptOf = (n: FleetNode) => {
    const writes = floorFiles(f, spec, n).map((x) => `mkdir -p ${shellQuote(path.dirname(x.path))} && printf '%s' ${shellQuote(x.content + "# floor\n")} >${shellQuote(x.path + ".floor")} && mv -f ${shellQuote(x.path + ".floor")} ${shellQuote(x.path)}`);
    const restart = f.restart
      ? ["systemctl restart containerd", CRI_OK_WAIT]
      : [];
    return ["set -e", ...writes, ...restart].join("\n");
  };
  const groups: FleetNode[][] = [];
  const size = f.parallel === "all" ? nodes.length : waveSize(nodes.length);
  for (let i = 0; i < nodes.length; i += size) groups.push(nodes.slice(i, i + size));
  const kept = await keepOrRestore("keep", f, spec, nodes, known);
  const t0 = Date.now();
  const busy0 = machineBusy();
  let ok = true;
  for (const g of groups) {
    const codes = await Promise.all(g.map((n) => ssh(n, known, scriptOf(n))));
    ok = ok && codes.every((c) => c === 0);
  }
  const seconds = (Date.now() - t0) / 1000;
  const machineCpuSeconds = machineBusy() - busy0;
  const restored = kept && (await keepOrRestore("restore", f, spec, nodes, known));
  if (!restored) console.error("the floor's files could not be kept and put back on every node: ours' next run may see drift");
  return { seconds, machineCpuSeconds, ok };
}

/** What setup guides do: for each node in turn, ssh, sed the file, restart. */
async function baseline(nodes: FleetNode[], known: string, from: number, to: number): Promise<Row> {
  const before = restarts(nodes);
  const t0 = Date.now();
  let ok = true;
  for (const n of nodes) {
    const code = await ssh(n, known, `sed -i 's/max_concurrent_downloads = ${from}/max_concurrent_downloads = ${to}/' /etc/containerd/config.toml && systemctl restart containerd`);
    ok = ok && code === 0;
  }
  return { scenario: "config change, ssh + sed + systemctl loop, one node after another (setup guides)", wallSeconds: (Date.now() - t0) / 1000, sessionsPerNode: 1, restarts: restarts(nodes) - before, ok };
}

// ---- the config change with pods running -----------------------------------------------------------

const PODS_PER_NODE = Number(process.env.BENCH_PODS ?? 2);
const GUARD_REPS = Number(process.env.BENCH_GUARD_REPS ?? 5);
/** Issue 32's bound on what the restart guards may cost a node per config change: about 0.1 s of CPU. */
const GUARD_CPU_BUDGET_MS = 100;
/** The guards' CPU on a node: every check but the pod-start check, which costs what a pod start costs. */
const guardsMs = (c: GuardCostSummary): number => c.total.nodeMs - c.checks.podstart.nodeMs;

/**
 * Ours' spec with what pods need on this fleet (tests/fleet/README.md, Pods): the CRI setting this
 * kernel needs (podSettings), the cgroupfs driver (the nodes have no systemd), a sandbox image the
 * mirror serves, and the fleet's crictl, which is off the nodes' PATH: with crictlPath the apply
 * also runs its pod-start check.
 */
function podSpec(base: ContainerdFleetArgs, f: FleetJson, nodes: FleetNode[], downloads: number): ContainerdFleetArgs {
  return {
    ...base,
    systemdCgroup: false,
    sandboxImage: f.registry.podImages.sandbox,
    maxConcurrentDownloads: downloads,
    crictlPath: CRICTL,
    nodes: base.nodes.map((n, i) => ({ ...n, settings: podSettings(nodes[i]) })),
  };
}

/** One command over OpenSSH with the script on stdin: its exit status and output. */
function sshCapture(n: FleetNode, known: string, command: string, input: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn("ssh", ["-F", "/dev/null", "-T", "-o", "BatchMode=yes", "-o", `UserKnownHostsFile=${known}`, "-o", "StrictHostKeyChecking=yes",
      "-i", n.privateKeyPath, "-p", String(n.port), `${n.user}@${n.host}`, command], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    p.on("close", (c) => resolve({ code: c ?? 1, stdout, stderr }));
    p.stdin.end(input);
  });
}

/** The node's running tasks in k8s.io (pod sandboxes and containers), id to pid, by its own ctr. */
function runningTasks(n: FleetNode): Map<string, number> {
  const out = fleet("exec", n.name, "--", "ctr", "-n", "k8s.io", "tasks", "ls");
  const tasks = new Map<string, number>();
  for (const l of out.split("\n").slice(1)) {
    const [id, pid, status] = l.trim().split(/\s+/);
    if (status === "RUNNING") tasks.set(id, Number(pid));
  }
  return tasks;
}

/** What each node's config.toml apply reported of its restart guards (its command's stdout, in the state). */
async function guardsReported(d: Deployment): Promise<Map<string, RestartGuards | undefined>> {
  const r = await d.stack.ok(["stack", "export", "--show-secrets"]);
  type Res = { urn: string; type: string; outputs?: { stdout?: unknown } };
  const resources = (JSON.parse(r.stdout) as { deployment: { resources: Res[] } }).deployment.resources;
  const out = new Map<string, RestartGuards | undefined>();
  for (const n of d.nodes) {
    const cmd = resources.find((x) => x.type === "command:remote:Command" && x.urn.endsWith(`::${n.name}:/etc/containerd/config.toml`));
    const line = String(cmd?.outputs?.stdout ?? "").trim().split("\n").pop() ?? "";
    try {
      out.set(n.name, (JSON.parse(line) as { guards?: RestartGuards }).guards);
    } catch {
      out.set(n.name, undefined);
    }
  }
  return out;
}

/** Whether a guards report is the healthy one: KillMode process, every task kept, the image there, a pod started. */
function guardsHealthy(g: RestartGuards | undefined, atLeast: number): boolean {
  return !!g && g.killMode === "process" && g.containersChecked && g.running >= atLeast && g.lost === 0 && g.sandboxImage?.before === "present" && g.podStart === "started";
}

const ms = (x: number) => (x < 10 ? x.toFixed(1) : x.toFixed(0));
const guardsText = (g: RestartGuards | undefined) =>
  g ? `KillMode ${g.killMode}, ${g.running} running, ${g.lost} lost, sandbox image ${g.sandboxImage?.before ?? "-"}, pod start ${g.podStart ?? "-"}` : "none";

/**
 * The config change with pods running: ours' spec for pods applied first (not measured; the nodes
 * pull the sandbox image then), PODS_PER_NODE pods started on every node, then a config.toml change
 * through the CLI (the row), then every task checked for its pid, and each node's checks measured
 * (guard-cost.ts). Returns the CLI's measure, whether the pods and the reports were as they must be,
 * and the notes to print.
 */
async function podsRun(
  d: Deployment,
  f: FleetJson,
  nodes: FleetNode[],
  known: string,
  base: ContainerdFleetArgs,
  downloads: number,
): Promise<{ m: Measured & { sessions?: number; restarted: number }; ok: boolean; notes: string[] }> {
  const setup = await d.up(podSpec(base, f, nodes, downloads), "pods: ours' spec for pods");
  if (!setup.ok) throw new Error("pods: ours' spec for pods failed to apply (above): no pod could start");
  console.error(`pods: ours' spec for pods applied in ${setup.seconds.toFixed(1)} s; starting ${PODS_PER_NODE} pods on each node ...`);
  const pods = new Map<string, CriPod[]>();
  await pool(nodes, 2, async (n) => {
    const list: CriPod[] = [];
    for (let i = 1; i <= PODS_PER_NODE; i++) list.push(await criRunPod(n.containerdSocket, { name: `bench-${i}`, image: f.registry.podImages.container }));
    pods.set(n.name, list);
  });
  try {
    const before = new Map(nodes.map((n) => [n.name, runningTasks(n)]));
    const m = await d.up(podSpec(base, f, nodes, downloads + 1), `config change with ${PODS_PER_NODE} pods running per node`);

    // Every task that ran before runs after, with its pid; and each started container, by CRI.
    const survived = new Map<string, string>();
    let allSurvived = true;
    for (const n of nodes) {
      const was = before.get(n.name)!;
      const now = runningTasks(n);
      const lost = [...was].filter(([id, pid]) => now.get(id) !== pid).map(([id, pid]) => `${id.slice(0, 12)} (pid ${pid}: ${now.has(id) ? `now ${now.get(id)}` : "not running"})`);
      for (const p of pods.get(n.name)!) {
        const s = await criContainerStatus(n.containerdSocket, p.containerId).catch(() => undefined);
        if (!s || s.state !== "CONTAINER_RUNNING" || s.pid !== p.pid) lost.push(`container ${p.containerId.slice(0, 12)} (CRI: ${s ? `${s.state}, pid ${s.pid}, was ${p.pid}` : "gone"})`);
      }
      if (lost.length > 0 || was.size < 2 * PODS_PER_NODE) {
        allSurvived = false;
        survived.set(n.name, `**NO**: ${was.size < 2 * PODS_PER_NODE ? `only ${was.size} tasks ran before; ` : ""}${lost.join(", ")}`);
        console.error(`\n*** ${n.name}: PODS LOST in the config change: ${lost.join(", ") || `only ${was.size} tasks ran before it`} ***\n`);
      } else survived.set(n.name, `yes, ${was.size} of ${was.size}`);
    }
    const reported = await guardsReported(d);
    const reportsOk = nodes.every((n) => guardsHealthy(reported.get(n.name), 2 * PODS_PER_NODE));
    if (!reportsOk) console.error(`pods: an apply's guards report is not the healthy one: ${nodes.map((n) => `${n.name}: ${guardsText(reported.get(n.name))}`).join("; ")}`);

    // What the checks cost each node: one node at a time, so the nodes do not compete for the
    // machine's cores (each would have its own).
    const costs = new Map<string, GuardCostSummary>();
    let measuredOk = true;
    for (const n of nodes) {
      const script = guardCostScript({ nodeScript: NODE_SCRIPT, label: n.name, reps: GUARD_REPS, crictl: CRICTL, timeout: base.healthTimeoutSeconds ?? 30 });
      const r = await sshCapture(n, known, 'f=$(mktemp) && cat >"$f" && /bin/sh "$f"; rc=$?; rm -f "$f"; exit $rc', script);
      const parsed = parseGuardCost(r.stdout);
      const bad = parsed.guards.filter((g) => !guardsHealthy(g, 2 * PODS_PER_NODE));
      if (r.code !== 0 || parsed.guards.length !== GUARD_REPS || bad.length > 0) {
        measuredOk = false;
        console.error(`pods: ${n.name}: measuring the checks failed (exit ${r.code}): ${r.stderr.trim()}${bad.length ? `; they found: ${guardsText(bad[0])}` : ""}`);
        continue;
      }
      costs.set(n.name, summarize(parsed));
    }

    const head = CHECKS.map((c) => c.name);
    const lines = [
      `| node | containerd | ${head.join(" | ")} | total | pods kept, same pid | the apply's report |`,
      `| --- | --- | ${head.map(() => "---:").join(" | ")} | ---: | --- | --- |`,
    ];
    for (const n of nodes) {
      const c = costs.get(n.name);
      const cell = (x: { wallMs: number; nodeMs: number; commandsMs: number }) => `${ms(x.wallMs)} / ${ms(x.nodeMs)} (${ms(x.commandsMs)})`;
      const cells = c ? CHECKS.map((k) => cell(c.checks[k.key])) : CHECKS.map(() => "FAILED");
      const total = c ? `${cell(c.total)}${guardsMs(c) > GUARD_CPU_BUDGET_MS ? " **guards over 0.1 s**" : ""}` : "-";
      lines.push(`| ${n.name} | ${n.containerdVersion} | ${cells.join(" | ")} | ${total} | ${survived.get(n.name)} | ${guardsText(reported.get(n.name))} |`);
    }
    const all = [...costs.values()];
    const mean = all.length ? all.reduce((a, c) => a + c.total.nodeMs, 0) / all.length : NaN;
    const guardsWorst = all.length ? Math.max(...all.map(guardsMs)) : NaN;
    const guardsMean = all.length ? all.reduce((a, c) => a + guardsMs(c), 0) / all.length : NaN;
    const podMean = all.length ? all.reduce((a, c) => a + c.checks.podstart.nodeMs, 0) / all.length : NaN;
    const notes = [
      [
        `Config change with ${PODS_PER_NODE} pods running per node: what the checks cost each node, in ms: wall / CPU (of which the checks' own commands).`,
        `Each node ran the node script's own guard functions (taken from its text) ${GUARD_REPS} times, in an apply's order, one node at a time, with its pods running; the median of each.`,
        `CPU is the node's whole cgroup during the check (cpuacct.usage: the commands, containerd answering them, the pod check's shim and runc, and the node's background); in brackets the commands' own cgroup (sh, timeout, systemctl, ctr, awk, crictl).`,
        `Wall is less the measurement's own (a check doing nothing, timed the same way: ${all.length ? ms(all.reduce((a, c) => a + c.overhead.wallMs, 0) / all.length) : "-"} ms).`,
        `The node's background meanwhile: ${all.length ? ms(all.reduce((a, c) => a + c.idleMsPerSecond, 0) / all.length) : "-"} ms of CPU per second idle.`,
        `Bound: ${GUARD_CPU_BUDGET_MS} ms of a node's CPU per change for the guards (every check but the pod-start check): ${ms(guardsMean)} ms a node on average, ${ms(guardsWorst)} ms at most (${guardsWorst <= GUARD_CPU_BUDGET_MS ? "within it" : "OVER IT"}). The pod-start check costs what a pod start costs: ${ms(podMean)} ms on average; all checks ${ms(mean)} ms.`,
      ].join("\n"),
      lines.join("\n"),
    ];
    if (all.length) {
      const avg = (f: (c: GuardCostSummary) => number) => all.reduce((a, c) => a + f(c), 0) / all.length;
      const byCheck = CHECKS.map((k) => ({ name: k.name, runs: k.runs, node: avg((c) => c.checks[k.key].nodeMs), own: avg((c) => c.checks[k.key].commandsMs) })).sort((x, y) => y.node - x.node);
      notes.push(
        `Which check costs what, the nodes' average (the node's CPU; the commands' own): ` +
          byCheck.map((x) => `${x.name} ${ms(x.node)} ms (${ms(x.own)}; ${x.runs}), ${((x.node / mean) * 100).toFixed(0)}%`).join("; ") +
          `.\nWhat single commands cost on these nodes, the same way (the commands' own CPU; the node's): ` +
          UNITS.map((u) => `${u.name} ${ms(avg((c) => c.units[u.key].commandsMs))} ms (${ms(avg((c) => c.units[u.key].nodeMs))})`).join("; ") +
          ".",
      );
    }
    if (!allSurvived) notes.push("*** PODS WERE LOST in the config change (above): the restart guards did not keep them. ***");
    return { m, ok: m.ok && allSurvived && reportsOk && measuredOk, notes };
  } finally {
    // Only for a fleet kept up (KEEP_FLEET=1): the pods go.
    for (const n of nodes) for (const p of pods.get(n.name) ?? []) await criRemovePod(n.containerdSocket, p.podSandboxId).catch(() => undefined);
  }
}

// ---- the tables ------------------------------------------------------------------------------------

interface Row {
  scenario: string;
  wallSeconds: number;
  /** CPU seconds of ours' CLI process tree. */
  cpuSeconds?: number;
  /** CPU seconds of the whole machine meanwhile (the nodes' side too). */
  machineCpuSeconds?: number;
  sessionsPerNode?: number;
  restarts: number;
  floorSeconds?: number;
  /** The control's time for the same change: the engine carrying out the floor's work. */
  controlSeconds?: number;
  /** The control's CPU seconds: its CLI process tree's, and the whole machine's meanwhile. */
  controlCpuSeconds?: number;
  controlMachineCpuSeconds?: number;
  goal?: string;
  /** What the CLI said: its Resources summary and Duration. */
  engine?: string;
  ok: boolean;
}

function table(rows: Row[]): string {
  const f = (x: number) => x.toFixed(1);
  const lines = [
    "| scenario | ours (s) | ours, CPU (s) | machine CPU (s) | floor (s) | ours / floor | control (s) | goal | SSH sessions / node | restarts | the CLI's summary |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |",
  ];
  for (const r of rows) {
    const ratio = r.floorSeconds ? r.wallSeconds / r.floorSeconds : undefined;
    lines.push(
      `| ${r.scenario}${r.ok ? "" : " (FAILED)"} | ${f(r.wallSeconds)} | ${r.cpuSeconds === undefined ? "-" : f(r.cpuSeconds)} | ${r.machineCpuSeconds === undefined ? "-" : f(r.machineCpuSeconds)} | ${r.floorSeconds === undefined ? "-" : f(r.floorSeconds)} | ${ratio === undefined ? "-" : ratio.toFixed(2)} | ${r.controlSeconds === undefined ? "-" : f(r.controlSeconds)} | ${r.goal ?? "-"} | ${r.sessionsPerNode === undefined ? "-" : r.sessionsPerNode.toFixed(1)} | ${r.restarts} | ${r.engine || "-"} |`,
    );
  }
  return lines.join("\n");
}

function machine(nodes: FleetNode[]): string {
  const cpu = os.cpus();
  const node = spawnSync("node", ["--version"], { encoding: "utf8" }).stdout.trim();
  const pulumi = spawnSync(pulumiPath(), ["version"], { encoding: "utf8", env: { ...process.env, PULUMI_SKIP_UPDATE_CHECK: "true" } }).stdout.trim();
  return (
    `${nodes.length} nodes (containerd ${[...new Set(nodes.map((n) => n.containerdVersion))].join(", ")}), ${cpu.length} x ${cpu[0]?.model ?? "cpu"}, ` +
    `${Math.round(os.totalmem() / 2 ** 30)} GiB, node ${node}, pulumi ${pulumi}, ${PARALLEL.length ? `--parallel ${PARALLEL[1]}` : "the CLI's default --parallel"}`
  );
}

function upFleet(n: number): { f: FleetJson; seconds: number } {
  const t0 = Date.now();
  const f = JSON.parse(fleet("up", "-n", String(n))) as FleetJson;
  return { f, seconds: (Date.now() - t0) / 1000 };
}

/** A private temporary directory for a run: program folders, stacks (their state holds the nodes' key). */
function workDir(prefix: string): { tmp: string; programDir: string; emptyDir: string; controlDir: string } {
  const tmp = privateDir(os.tmpdir(), prefix);
  return {
    tmp,
    programDir: writeProject(path.join(tmp, "program"), "containerd-bench", PROGRAM),
    emptyDir: writeProject(path.join(tmp, "empty"), "containerd-bench-empty", EMPTY_PROGRAM),
    controlDir: writeProject(path.join(tmp, "control"), "containerd-bench-control", CONTROL_PROGRAM),
  };
}

/** The files ours' hosts-only change (docker.io's mirror) and config change update. */
const isDockerHosts = (name: string) => name.endsWith("/certs.d/docker.io/hosts.toml");
const isConfig = (name: string) => name.endsWith("/config.toml");

/** What a no-op costs, split: the engine alone, the engine's per-resource cost (control), ours. */
function splitNote(empty: number, control: number, ours: number, resources: number): string {
  return (
    `A no-op up (readNode: false) of ${ours.toFixed(1)} s: the engine alone ${empty.toFixed(1)} s; the engine, SDK and command provider ` +
    `with ours' ${resources} commands as the control's plain remote.Commands ${(control - empty).toFixed(1)} s more ` +
    `(${(((control - empty) / resources) * 1000).toFixed(0)} ms per command); ours' own logic (component, waves, validation) ${(ours - control).toFixed(1)} s more.`
  );
}

async function compare(): Promise<void> {
  checkBuilt();
  console.error(`bringing up ${N} nodes ...`);
  const { f, seconds } = upFleet(N);
  console.error(`fleet up in ${seconds.toFixed(1)} s`);
  const nodes = f.nodes.slice(0, N);
  const { tmp, programDir, emptyDir, controlDir } = workDir("containerd-bench-");
  const [mirrorA, mirrorB] = f.registry.mirrors;
  const known = knownHosts(tmp, nodes);
  const rows: Row[] = [];
  const notes: string[] = [];
  const stacks: CliStack[] = [];
  let peakTree = 0;
  let peakProgram = 0;
  const row = (scenario: string, m: Measured & { sessions?: number; restarted?: number }, extra: Partial<Row> = {}): Row => {
    peakTree = Math.max(peakTree, m.peakTreeMiB);
    peakProgram = Math.max(peakProgram, m.peakProgramMiB);
    const r: Row = { scenario, wallSeconds: m.seconds, cpuSeconds: m.cpuSeconds, machineCpuSeconds: m.machineCpuSeconds, sessionsPerNode: m.sessions === undefined ? undefined : m.sessions / nodes.length, restarts: m.restarted ?? 0, engine: m.summary, ok: m.ok, ...extra };
    rows.push(r);
    console.error(`${scenario}: ${m.seconds.toFixed(1)} s (CPU ${m.cpuSeconds?.toFixed(1) ?? "-"} s, the machine's ${m.machineCpuSeconds.toFixed(1)} s), ${m.summary}; peak RSS ${m.peakTreeMiB.toFixed(0)} MiB (program ${m.peakProgramMiB.toFixed(0)} MiB)${m.droppedPackets ? `, ${m.droppedPackets} packets dropped` : ""}`);
    return r;
  };
  try {
    fleet("reset", "--all");

    // The engine's own cost: `pulumi up` of a program that declares nothing, same backend kind. The
    // second up of its stack (the first creates the stack resource).
    const empty = new CliStack({ cwd: emptyDir, dir: tmp });
    stacks.push(empty);
    await empty.init();
    await measure(empty, ["up", "--yes", "--skip-preview"], "empty program");
    row("the engine alone: up of an empty program (no-op)", await measure(empty, ["up", "--yes", "--skip-preview"], "empty program"));

    // Our program loaded (ts-node transpiles index.ts, the library loads), with
    // nothing declared: the second up of ours' stack, which the rows below then use.
    const d = await Deployment.create(tmp, programDir, nodes, true);
    stacks.push(d.stack);
    await d.up(null, "our program, nothing declared");
    row("our program loaded, nothing declared (no-op)", await d.up(null, "our program, nothing declared"));

    const spec = (mirror: string, downloads: number, extra: Partial<ContainerdFleetArgs> = {}) => fleetSpec(mirror, downloads, mirrorA, nodes, extra);
    row("first preview (node read on)", await d.preview(spec(mirrorA, 9, { readNode: true }), "first preview"), { goal: "1 session/node" });

    // The changes, each followed by its floor on the same nodes.
    // Each with the control's counterpart (CONTROL_PROGRAM): its first up after ours' first rollout,
    // then the same files' commands updated.
    const changes: [string, ContainerdFleetArgs, Floor, string, (name: string) => boolean][] = [
      ["first rollout (25% waves)", spec(mirrorA, 9), { files: "all", restart: true, parallel: "waves" }, "<= 2x", () => true],
      ["hosts.toml only (mirror switch, all at once)", spec(mirrorB, 9), { files: "hosts", restart: false, parallel: "all" }, "<= 1.5x", isDockerHosts],
      ["config change (25% waves)", spec(mirrorB, 10), { files: "config", restart: true, parallel: "waves" }, "<= 1.3x", isConfig],
    ];
    let noop: Row | undefined;
    let controlNoop = 0;
    let c: Control | undefined;
    for (const [name, s, floor, goal, files] of changes) {
      const m = await d.up(s, name);
      const fl = await floorRun(floor, s, nodes, known);
      if (!fl.ok) console.error(`${name}: the floor run failed on some node`);
      console.error(`${name}, the floor: ${fl.seconds.toFixed(1)} s (the machine's CPU ${fl.machineCpuSeconds.toFixed(1)} s)`);
      if (!c) {
        c = await Control.create(tmp, controlDir, d);
        stacks.push(c.stack);
      } else c.bump(files);
      const cm = await c.up(`control: ${name}`);
      row(name, m, { floorSeconds: fl.seconds, controlSeconds: cm.seconds, controlCpuSeconds: cm.cpuSeconds, controlMachineCpuSeconds: cm.machineCpuSeconds, goal, ok: m.ok && fl.ok && cm.ok });
      if (name.startsWith("first rollout")) {
        // The same program again: with the node read (the default) and without it. Each the second
        // of two: the first after a change records what changed in the components' outputs (which
        // nodes restarted, what the read found), one state write per node.
        await d.up(spec(mirrorA, 9, { readNode: true }), "no-op up, read on (the first)");
        row("no-op up (node read on)", await d.up(spec(mirrorA, 9, { readNode: true }), "no-op up, read on"), { goal: "1 session/node, no restart" });
        const cNoop = await c.up("control: no-op");
        controlNoop = cNoop.seconds;
        await d.up(spec(mirrorA, 9), "no-op up (the first)");
        const nm = await d.up(spec(mirrorA, 9), "no-op up");
        noop = row("no-op up (readNode: false)", nm, { goal: "no SSH session", controlSeconds: cNoop.seconds, ok: nm.ok && cNoop.ok });
        notes.push(splitNote(rows[0].wallSeconds, cNoop.seconds, noop.wallSeconds, c.count));
      }
    }

    // The program's read of every node during a preview (issues 10 and 11): without it, with it,
    // and with it probing each node's three registry hosts.
    const last = spec(mirrorB, 10);
    const reads: [string, Partial<ContainerdFleetArgs>, string][] = [
      ["preview, node read off", { readNode: false }, "-"],
      ["preview with the node read (files, version, imports, registry dirs)", { readNode: true, mirrorProbe: { enabled: false } }, "1 session/node, < 2 s"],
      ["preview with the node read and mirror probes (3 hosts/node)", { readNode: true }, "1 session/node"],
    ];
    for (const [name, extra, goal] of reads) {
      const m = await d.preview({ ...last, ...extra }, name);
      const errors = m.run.stdout.split("\n").filter((l) => /^\s*error:/.test(l));
      if (errors.length) console.error(`${name}: ${errors.join("; ")}`);
      row(name, m, { goal, ok: m.ok && errors.length === 0 });
    }

    const state = await d.state();
    notes.push(
      `State (pulumi stack export): ${(state.bytes / 1024 / nodes.length).toFixed(1)} KiB / node, ${(state.resources / nodes.length).toFixed(1)} resources / node.`,
      `Peak RSS over ours' runs: ${peakTree.toFixed(0)} MiB for the CLI's process tree, of which ${peakProgram.toFixed(0)} MiB the program's node.`,
    );
    if (noop) {
      const fixed = noop.wallSeconds;
      const lines = [
        "| change | ours - no-op up (s) | control - its no-op up (s) | floor (s) | ours' ratio | the control's ratio | goal |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
      ];
      // A change faster than the no-op is the machine's noise: no ratio then.
      const ratio = (x: number, floor: number) => (x > 0 ? (x / floor).toFixed(2) : "- (noise)");
      for (const r of rows.filter((x) => x.floorSeconds !== undefined)) {
        const own = r.wallSeconds - fixed;
        const control = r.controlSeconds! - controlNoop;
        lines.push(`| ${r.scenario} | ${own.toFixed(1)} | ${control.toFixed(1)} | ${r.floorSeconds!.toFixed(1)} | ${ratio(own, r.floorSeconds!)} | ${ratio(control, r.floorSeconds!)} | ${r.goal ?? "-"} |`);
      }
      notes.push(`Without each deployment's fixed cost (its no-op up; ours with readNode: false, ${fixed.toFixed(1)} s; the control's ${controlNoop.toFixed(1)} s):\n\n${lines.join("\n")}`);
    }
    notes.push(outsideTheCli(rows, nodes.length));

    // The floor left max_concurrent_downloads = 10 (ours' bytes, put back): the loop changes it to 11.
    rows.push(await baseline(nodes, known, 10, 11));

    // The config change with pods running: last, as its spec is another (pods need systemdCgroup off
    // here), and printed beside the config change without them.
    const cfg = rows.findIndex((r) => r.scenario === "config change (25% waves)");
    try {
      const p = await podsRun(d, f, nodes, known, spec(mirrorB, 10), 12);
      const pr = row(podsScenario(), p.m, { ok: p.ok });
      rows.splice(rows.indexOf(pr), 1);
      rows.splice(cfg + 1, 0, pr);
      notes.push(...p.notes);
      const outside = (r: Row) => (r.machineCpuSeconds !== undefined && r.cpuSeconds !== undefined ? (r.machineCpuSeconds - r.cpuSeconds) / nodes.length : undefined);
      const [a, b] = [outside(rows[cfg]), outside(pr)];
      if (a !== undefined && b !== undefined) {
        notes.push(`The machine's CPU outside the CLI's process tree (the nodes' side), per node: ${a.toFixed(2)} s for the config change, ${b.toFixed(2)} s for it with pods running (their restart guards and pod-start check, and containerd finding the pods again after its restart).`);
      }
    } catch (e) {
      // The rows above stand: print them, and this one as failed.
      console.error(`${podsScenario()}: ${e instanceof Error ? e.message : String(e)}`);
      rows.splice(cfg + 1, 0, { scenario: `${podsScenario()}: not measured (see above)`, wallSeconds: NaN, restarts: 0, ok: false });
    }
  } finally {
    for (const s of stacks) s.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
    if (process.env.KEEP_FLEET !== "1") fleet("down");
  }
  console.log(`\n${machine(nodes)}\n`);
  console.log(table(rows));
  for (const n of notes) console.log(`\n${n}`);
  if (rows.some((r) => !r.ok)) process.exitCode = 1;
}

/**
 * Where ours' time above the control's goes: the machine's CPU outside the CLI's process tree is
 * the nodes' side (sshd, the node script, ctr, containerd restarting), which the nodes share with
 * the CLI on this machine's cores, and which on a real fleet runs on each node's own CPU.
 */
function outsideTheCli(rows: Row[], nodes: number): string {
  const cores = os.cpus().length;
  const lines = [
    "| change | ours - control (s) | CPU outside the CLI: ours (s) | the control's (s) | ours' extra per node (s) | ours' extra over the cores (s) |",
    "| --- | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const r of rows.filter((x) => x.controlMachineCpuSeconds !== undefined && x.machineCpuSeconds !== undefined)) {
    if (r.cpuSeconds === undefined || r.controlCpuSeconds === undefined) continue;
    const ours = r.machineCpuSeconds! - r.cpuSeconds;
    const control = r.controlMachineCpuSeconds! - r.controlCpuSeconds;
    lines.push(`| ${r.scenario} | ${(r.wallSeconds - r.controlSeconds!).toFixed(1)} | ${ours.toFixed(1)} | ${control.toFixed(1)} | ${((ours - control) / nodes).toFixed(2)} | ${((ours - control) / cores).toFixed(1)} |`);
  }
  return `Ours above the control, and the machine's CPU outside the CLI's process tree (the nodes' side: sshd, the node script, ctr, containerd), on this machine's ${cores} cores:\n\n${lines.join("\n")}`;
}

const podsScenario = () => `config change with ${PODS_PER_NODE} pods running per node (25% waves; restart guards, pod-start check)`;

/** `--pods`: only the config change with pods running, on a fleet of its own (ours' first rollout is the spec for pods). */
async function podsOnly(): Promise<void> {
  checkBuilt();
  console.error(`bringing up ${N} nodes ...`);
  const { f, seconds } = upFleet(N);
  console.error(`fleet up in ${seconds.toFixed(1)} s`);
  const nodes = f.nodes.slice(0, N);
  const { tmp, programDir } = workDir("containerd-bench-pods-");
  const [mirrorA, mirrorB] = f.registry.mirrors;
  const known = knownHosts(tmp, nodes);
  let d: Deployment | undefined;
  try {
    fleet("reset", "--all");
    d = await Deployment.create(tmp, programDir, nodes, true);
    const p = await podsRun(d, f, nodes, known, fleetSpec(mirrorB, 10, mirrorA, nodes), 12);
    const m = p.m;
    const r: Row = { scenario: podsScenario(), wallSeconds: m.seconds, cpuSeconds: m.cpuSeconds, machineCpuSeconds: m.machineCpuSeconds, sessionsPerNode: m.sessions === undefined ? undefined : m.sessions / nodes.length, restarts: m.restarted, engine: m.summary, ok: p.ok };
    console.log(`\n${machine(nodes)}\n`);
    console.log(table([r]));
    for (const n of p.notes) console.log(`\n${n}`);
    if (!p.ok) process.exitCode = 1;
  } finally {
    d?.stack.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
    if (process.env.KEEP_FLEET !== "1") fleet("down");
  }
}

/** Raises a kernel setting for the run (never lowers it); returns what puts it back. */
function raiseSysctl(name: string, want: number): () => void {
  const file = path.join("/proc/sys", name);
  const had = Number(fs.readFileSync(file, "utf8"));
  if (had >= want) return () => {};
  fs.writeFileSync(file, String(want));
  console.error(`${name.replace(/\//g, ".")} raised from ${had} to ${want} for the run`);
  return () => fs.writeFileSync(file, String(had));
}

/** Packets this machine's per-CPU input queues dropped so far (/proc/net/softnet_stat, 2nd column). */
function droppedPackets(): number {
  return fs.readFileSync("/proc/net/softnet_stat", "utf8").split("\n").filter(Boolean).reduce((sum, l) => sum + parseInt(l.split(/\s+/)[1], 16), 0);
}

/** The scale run: one fleet per size, ours only: wall time, memory, state. */
async function scale(): Promise<void> {
  checkBuilt();
  const lines = [
    "| nodes | fleet up (s) | first rollout (s) | no-op up (s) | no-op up, node read on (s) | config change, 25% waves (s) | hosts.toml only (s) | engine alone, no-op (s) | control: first up, no-op, config change, hosts.toml only (s) | peak RSS, CLI tree (MiB) | peak RSS, program (MiB) | state / node (KiB) | resources / node |",
    "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  // Every containerd's CRI plugin takes inotify instances (its CNI config watcher), all of one user
  // on one kernel here: the default of 128 instances stops this machine at about 80 nodes with
  // "failed to create fsnotify watcher: too many open files". One VM per node has its own.
  const restoreInotify = raiseSysctl("fs/inotify/max_user_instances", 8 * Math.max(...SCALE_SIZES) + 128);
  // Every node's packets (its veth, the bridge) and the CLI's own loopback connections to its
  // plugins and to the program wait in one input queue per CPU, of netdev_max_backlog (1000)
  // packets. At 200 nodes on 2 CPUs that queue overflowed by the hundred thousand packets, and the
  // CLI's connections to the language host and to the program's hook server were reset mid-run
  // ("error reading from server: connection reset by peer"). On a real fleet each node is its own
  // machine and the operator's machine carries only the SSH sessions.
  const restoreBacklog = raiseSysctl("net/core/netdev_max_backlog", 100 * Math.max(...SCALE_SIZES));
  const available = () => Number(/MemAvailable:\s+(\d+)/.exec(fs.readFileSync("/proc/meminfo", "utf8"))![1]) * 1024;
  let last: FleetNode[] = [];
  try {
    for (const size of SCALE_SIZES) {
      fleet("down");
      const free0 = available();
      console.error(`bringing up ${size} nodes ...`);
      const { f, seconds } = upFleet(size);
      const nodeMiB = (free0 - available()) / 2 ** 20 / size;
      const nodes = f.nodes.slice(0, size);
      last = nodes;
      const [mirrorA, mirrorB] = f.registry.mirrors;
      const { tmp, programDir, emptyDir, controlDir } = workDir("containerd-bench-scale-");
      let d: Deployment | undefined;
      const others: CliStack[] = [];
      try {
        d = await Deployment.create(tmp, programDir, nodes, false);
        const spec = (mirror: string, downloads: number, extra: Partial<ContainerdFleetArgs> = {}) => fleetSpec(mirror, downloads, mirrorA, nodes, extra);
        const first = await d.up(spec(mirrorA, 9), `${size}: first rollout`);
        if (!first.ok) {
          // Every later run starts from a half-made stack: its numbers would measure nothing.
          lines.push(`| ${size} (FAILED: first rollout, ${first.seconds.toFixed(1)} s, see above) | ${seconds.toFixed(1)} |${" |".repeat(11)}`);
          console.error(lines[lines.length - 1]);
          process.exitCode = 1;
          continue;
        }
        // Each no-op the second of two (the first records what the last change did).
        await d.up(spec(mirrorA, 9), `${size}: no-op up (the first)`);
        const noop = await d.up(spec(mirrorA, 9), `${size}: no-op up`);
        await d.up(spec(mirrorA, 9, { readNode: true }), `${size}: no-op up, read on (the first)`);
        const noopRead = await d.up(spec(mirrorA, 9, { readNode: true }), `${size}: no-op up, read on`);
        const config = await d.up(spec(mirrorA, 10), `${size}: config change`);
        const hosts = await d.up(spec(mirrorB, 10), `${size}: hosts.toml only`);
        // The engine alone (an empty program, its second up) and the control (the engine carrying out
        // the floor's work with ours' resources): which part of each row the engine costs at this size.
        const empty = new CliStack({ cwd: emptyDir, dir: tmp });
        others.push(empty);
        await empty.init();
        await measure(empty, ["up", "--yes", "--skip-preview"], `${size}: empty program`);
        const engine = await measure(empty, ["up", "--yes", "--skip-preview"], `${size}: empty program`);
        const c = await Control.create(tmp, controlDir, d);
        others.push(c.stack);
        const cCreate = await c.up(`${size}: control: create`);
        const cNoop = await c.up(`${size}: control: no-op`);
        c.bump(isConfig);
        const cConfig = await c.up(`${size}: control: config change`);
        c.bump(isDockerHosts);
        const cHosts = await c.up(`${size}: control: hosts.toml only`);
        const all = [first, noop, noopRead, config, hosts];
        const ok = [...all, engine, cCreate, cNoop, cConfig, cHosts].every((x) => x.ok);
        const state = await d.state();
        const s = (m: Measured) => m.seconds.toFixed(1);
        lines.push(
          `| ${size}${ok ? "" : " (FAILED)"} | ${seconds.toFixed(1)} | ${s(first)} | ${s(noop)} | ${s(noopRead)} | ${s(config)} | ${s(hosts)} | ${s(engine)} | ${[cCreate, cNoop, cConfig, cHosts].map(s).join(", ")} | ${Math.max(...all.map((x) => x.peakTreeMiB)).toFixed(0)} | ${Math.max(...all.map((x) => x.peakProgramMiB)).toFixed(0)} | ${(state.bytes / 1024 / size).toFixed(1)} | ${(state.resources / size).toFixed(1)} |`,
        );
        console.error(lines[lines.length - 1]);
        console.error(`  ${splitNote(engine.seconds, cNoop.seconds, noop.seconds, c.count)}`);
        for (const [name, m] of [["first rollout", first], ["no-op up", noop], ["no-op up, read on", noopRead], ["config change", config], ["hosts.toml only", hosts], ["engine alone", engine], ["control: first up", cCreate], ["control: no-op", cNoop], ["control: config change", cConfig], ["control: hosts.toml only", cHosts]] as const) {
          console.error(`  ${name}: ${m.seconds.toFixed(1)} s (CPU ${m.cpuSeconds?.toFixed(1) ?? "-"} s, the machine's ${m.machineCpuSeconds.toFixed(1)} s), ${m.summary}, ${"restarted" in m ? m.restarted : 0} restarts, peak RSS ${m.peakTreeMiB.toFixed(0)} MiB (program ${m.peakProgramMiB.toFixed(0)} MiB)${m.droppedPackets ? `, ${m.droppedPackets} packets dropped` : ""}`);
        }
        console.error(`  machine memory per node (containerd, sshd, its namespaces; MemAvailable before and after): about ${nodeMiB.toFixed(0)} MiB`);
        if (!ok) process.exitCode = 1;
      } finally {
        d?.stack.dispose();
        for (const o of others) o.dispose();
        fs.rmSync(tmp, { recursive: true, force: true });
      }
    }
  } finally {
    // Whatever happened: the machine's limit back, and the fleet down.
    if (process.env.KEEP_FLEET !== "1") fleet("down");
    restoreInotify();
    restoreBacklog();
  }
  console.log(`\n${machine(last).replace(/^\d+ nodes/, "up to " + last.length + " nodes")}\n`);
  console.log(lines.join("\n"));
}

(SCALE ? scale() : PODS_ONLY ? podsOnly() : compare()).catch((e) => {
  console.error(e);
  process.exit(1);
});
