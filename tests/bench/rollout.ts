/**
 * Rollout benchmark: ContainerdFleet through the harness against the local fleet, next to the
 * physical floor of the same change and the setup guides' sequential ssh + sed + restart loop, in
 * the same run on the same nodes. Prints tables; asserts nothing about speed.
 *
 *   npm run bench                      # 20 nodes
 *   BENCH_NODES=5 npm run bench
 *   npm run bench -- --scale           # 20, 100 and 200 nodes (BENCH_SCALE=20,50 for others)
 *
 * Floors, each run with OpenSSH right after ours, on the same nodes, writing the same files (with
 * one more comment line, so the bytes differ and the work is real):
 *   - first rollout: one session per node writing every file, restarting containerd and waiting for
 *     CRI ok; the nodes of a wave in parallel, waves in sequence (maxUnavailable 25%);
 *   - hosts-only: one session per node writing one file, all nodes in parallel;
 *   - config change: as the first rollout, with config.toml only.
 *
 * It brings the nodes up (tests/fleet/fleet.sh up) and down again (unless KEEP_FLEET=1). Give it a
 * fleet of its own (FLEET_PREFIX, FLEET_SUBNET, FLEET_STATE_DIR) to run beside other tests.
 */
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ContainerdFleet, ContainerdFleetArgs, FleetNodeArgs, renderNode } from "../../provider/src";
import { shellQuote } from "../../provider/src/remote/commands";
import { Harness, UpResult } from "../harness/harness";

const REPO = path.resolve(__dirname, "..", "..");
const FLEET_SH = path.join(REPO, "tests", "fleet", "fleet.sh");
const N = Number(process.env.BENCH_NODES ?? 20);
const MAX_UNAVAILABLE = "25%";
const SCALE = process.argv.includes("--scale");
const SCALE_SIZES = (process.env.BENCH_SCALE ?? "20,100,200").split(",").map(Number);

interface FleetNode {
  name: string;
  host: string;
  port: number;
  user: string;
  privateKey: string;
  privateKeyPath: string;
  hostKey: string;
  containerdVersion: string;
  restartLog: string;
}
interface FleetJson {
  registry: { mirrors: string[] };
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

interface Scenario {
  name: string;
  mirror: string;
  downloads: number;
  /** Which files the floor writes, and whether it restarts: undefined = no floor (nothing to do). */
  floor?: { files: "all" | "config" | "hosts"; restart: boolean; parallel: "waves" | "all" };
  /** The goal for wall / floor, from the issue that set them. */
  goal?: string;
}

interface Row {
  scenario: string;
  wallSeconds: number;
  sessionsPerNode: number;
  restarts: number;
  floorSeconds?: number;
  goal?: string;
  ok: boolean;
}

/** The fleet's spec for a scenario: the same for ours and for the floor's rendered files. */
function fleetSpec(s: Scenario, mirrorA: string, nodes: FleetNode[]): ContainerdFleetArgs {
  const fleetNodes: FleetNodeArgs[] = nodes.map((n) => ({
    name: n.name,
    containerdVersion: n.containerdVersion,
    connection: { host: n.host, port: n.port, user: n.user, privateKey: n.privateKey, hostKey: n.hostKey },
  }));
  return {
    systemdCgroup: true,
    sandboxImage: "registry.k8s.io/pause:3.9",
    maxConcurrentDownloads: s.downloads,
    registries: { "docker.io": { mirrors: [s.mirror] }, "registry.k8s.io": { mirrors: [mirrorA] } },
    healthTimeoutSeconds: 30,
    nodes: fleetNodes,
    // Registry changes all at once, as the floor's hosts-only run is (the default is in waves).
    rollout: { maxUnavailable: MAX_UNAVAILABLE, registryChanges: "all-at-once" },
    // The floor reads nothing; the read has preview rows of its own.
    readNode: false,
  };
}

function ssh(n: FleetNode, known: string, script: string): Promise<number> {
  return new Promise<number>((resolve) => {
    const p = spawn("ssh", ["-F", "/dev/null", "-T", "-o", "BatchMode=yes", "-o", `UserKnownHostsFile=${known}`, "-o", "StrictHostKeyChecking=yes",
      "-i", n.privateKeyPath, "-p", String(n.port), `${n.user}@${n.host}`, script], { stdio: ["ignore", "ignore", "inherit"] });
    p.on("close", (c) => resolve(c ?? 1));
  });
}

function knownHosts(nodes: FleetNode[]): string {
  const known = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "bench-")), "known_hosts");
  fs.writeFileSync(known, nodes.map((n) => `${n.host} ${n.hostKey}\n`).join(""));
  return known;
}

const waveSize = (nodes: number) => Math.max(1, Math.floor((nodes * 25) / 100));

/**
 * The physical floor: per node, one OpenSSH session that writes the files (atomically, as ours
 * does), restarts containerd and waits for its CRI plugin to say ok; waves of maxUnavailable in
 * sequence, or all nodes at once.
 */
async function floorRun(s: Scenario, spec: ContainerdFleetArgs, nodes: FleetNode[], known: string): Promise<{ seconds: number; ok: boolean }> {
  const f = s.floor!;
  const scriptOf = (n: FleetNode) => {
    const files = renderNode({
      containerdVersion: n.containerdVersion,
      systemdCgroup: spec.systemdCgroup,
      sandboxImage: spec.sandboxImage,
      maxConcurrentDownloads: spec.maxConcurrentDownloads,
      registries: spec.registries,
    } as never).files.filter(
      (x) => f.files === "all" || (f.files === "config" ? x.kind === "config" : x.kind === "hosts"),
    );
    const pick = f.files === "hosts" ? files.slice(0, 1) : files;
    const writes = pick.map((x) => `mkdir -p ${shellQuote(path.dirname(x.path))} && printf '%s' ${shellQuote(x.content + "# floor\n")} >${shellQuote(x.path + ".floor")} && mv -f ${shellQuote(x.path + ".floor")} ${shellQuote(x.path)}`);
    const restart = f.restart
      ? ["systemctl restart containerd", "until ctr plugins ls 2>/dev/null | awk '$1 == \"io.containerd.grpc.v1\" && $2 == \"cri\" { print $NF }' | grep -qx ok; do sleep 0.1; done"]
      : [];
    return ["set -e", ...writes, ...restart].join("\n");
  };
  const groups: FleetNode[][] = [];
  const size = f.parallel === "all" ? nodes.length : waveSize(nodes.length);
  for (let i = 0; i < nodes.length; i += size) groups.push(nodes.slice(i, i + size));
  const t0 = Date.now();
  let ok = true;
  for (const g of groups) {
    const codes = await Promise.all(g.map((n) => ssh(n, known, scriptOf(n))));
    ok = ok && codes.every((c) => c === 0);
  }
  return { seconds: (Date.now() - t0) / 1000, ok };
}

/** Peak resident memory of this process (program + harness) while fn runs, sampled every 50 ms. */
async function withPeakRss<T>(fn: () => Promise<T>): Promise<{ value: T; peakMiB: number }> {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
  try {
    const value = await fn();
    peak = Math.max(peak, process.memoryUsage().rss);
    return { value, peakMiB: peak / 2 ** 20 };
  } finally {
    clearInterval(timer);
  }
}

async function ours(h: Harness, program: () => void, nodes: FleetNode[]): Promise<{ seconds: number; res: UpResult; sessions: number; restarted: number }> {
  h.resetCounters();
  const before = restarts(nodes);
  const t0 = Date.now();
  const res = await h.up(program);
  const seconds = (Date.now() - t0) / 1000;
  if (!res.ok) console.error(`up failed: ${res.error?.message}`);
  const sessions = nodes.reduce((sum, n) => sum + (h.sessions(`${n.host}:${n.port}`) as number), 0);
  return { seconds, res, sessions, restarted: restarts(nodes) - before };
}

/** SSH logins each node's sshd has logged so far (its own log, in the node). */
async function acceptedSessions(nodes: FleetNode[]): Promise<number> {
  const counts = nodes.map((n) => {
    const out = spawnSync("bash", [FLEET_SH, "exec", n.name, "/bin/sh", "-c", "grep -c '^Accepted ' /run/fleet/sshd.log || :"], { encoding: "utf8" });
    return Number(out.stdout.trim()) || 0;
  });
  return counts.reduce((a, b) => a + b, 0);
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

function table(rows: Row[]): string {
  const f = (x: number) => x.toFixed(1);
  const lines = [
    "| scenario | ours (s) | floor (s) | ours / floor | goal | SSH sessions / node | restarts |",
    "| --- | ---: | ---: | ---: | --- | ---: | ---: |",
  ];
  for (const r of rows) {
    const ratio = r.floorSeconds ? r.wallSeconds / r.floorSeconds : undefined;
    lines.push(
      `| ${r.scenario}${r.ok ? "" : " (FAILED)"} | ${f(r.wallSeconds)} | ${r.floorSeconds === undefined ? "-" : f(r.floorSeconds)} | ${ratio === undefined ? "-" : ratio.toFixed(2)} | ${r.goal ?? "-"} | ${r.sessionsPerNode.toFixed(1)} | ${r.restarts} |`,
    );
  }
  return lines.join("\n");
}

function machine(nodes: FleetNode[]): string {
  const cpu = os.cpus();
  return `${nodes.length} nodes (containerd ${[...new Set(nodes.map((n) => n.containerdVersion))].join(", ")}), ${cpu.length} x ${cpu[0]?.model ?? "cpu"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, node ${process.version}`;
}

function upFleet(n: number): { f: FleetJson; seconds: number } {
  const t0 = Date.now();
  const f = JSON.parse(fleet("up", "-n", String(n))) as FleetJson;
  return { f, seconds: (Date.now() - t0) / 1000 };
}

async function compare(): Promise<void> {
  console.error(`bringing up ${N} nodes ...`);
  const { f, seconds } = upFleet(N);
  console.error(`fleet up in ${seconds.toFixed(1)} s`);
  const nodes = f.nodes.slice(0, N);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "bench-state-"));
  const [mirrorA, mirrorB] = f.registry.mirrors;
  const known = knownHosts(nodes);
  const h = new Harness({ stateFile: path.join(tmp, "fleet.json"), dialRetryDelayMs: 200 });
  const scenarios: Scenario[] = [
    { name: "first rollout (25% waves)", mirror: mirrorA, downloads: 9, floor: { files: "all", restart: true, parallel: "waves" }, goal: "<= 2x" },
    { name: "no-op up", mirror: mirrorA, downloads: 9, goal: "no SSH session" },
    { name: "hosts.toml only (mirror switch)", mirror: mirrorB, downloads: 9, floor: { files: "hosts", restart: false, parallel: "all" }, goal: "<= 1.5x" },
    { name: "config change (25% waves)", mirror: mirrorB, downloads: 10, floor: { files: "config", restart: true, parallel: "waves" }, goal: "<= 1.3x" },
  ];
  const rows: Row[] = [];
  try {
    fleet("reset", "--all");
    for (const s of scenarios) {
      const spec = fleetSpec(s, mirrorA, nodes);
      const r = await ours(h, () => void new ContainerdFleet("bench", spec), nodes);
      const floor = s.floor ? await floorRun(s, spec, nodes, known) : undefined;
      if (floor && !floor.ok) console.error(`${s.name}: the floor run failed on some node`);
      rows.push({ scenario: s.name, wallSeconds: r.seconds, sessionsPerNode: r.sessions / nodes.length, restarts: r.restarted, floorSeconds: floor?.seconds, goal: s.goal, ok: r.res.ok && (floor?.ok ?? true) });
    }
    // The program's read of every node during a preview (issues 10 and 11): without it, with it,
    // and with it probing each node's three registry hosts. Sessions as the nodes' sshd logged them.
    const last = fleetSpec(scenarios[scenarios.length - 1], mirrorA, nodes);
    const reads: [string, Partial<ContainerdFleetArgs>, string][] = [
      ["preview, node read off", { readNode: false }, "-"],
      ["preview with the node read (files, version, imports, registry dirs)", { readNode: true, mirrorProbe: { enabled: false } }, "1 session/node, < 2 s"],
      ["preview with the node read and mirror probes (3 hosts/node)", { readNode: true }, "1 session/node"],
    ];
    for (const [name, extra, goal] of reads) {
      const before = await acceptedSessions(nodes);
      const t0 = Date.now();
      const res = await h.preview(() => void new ContainerdFleet("bench", { ...last, ...extra }));
      const seconds = (Date.now() - t0) / 1000;
      const sessions = (await acceptedSessions(nodes)) - before;
      const problems = res.diagnostics.filter((d) => d.severity === "error");
      if (!res.ok || problems.length) console.error(`${name}: ${res.error?.message ?? ""} ${problems.map((d) => d.message).join("; ")}`);
      rows.push({ scenario: name, wallSeconds: seconds, sessionsPerNode: sessions / nodes.length, restarts: 0, goal, ok: res.ok && problems.length === 0 });
    }
    // The floor left max_concurrent_downloads = 10 with a comment line: the loop changes it to 11.
    rows.push(await baseline(nodes, known, 10, 11));
  } finally {
    h.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
    if (process.env.KEEP_FLEET !== "1") fleet("down");
  }
  console.log(`\n${machine(nodes)}\n`);
  console.log(table(rows));
  if (rows.some((r) => !r.ok)) process.exitCode = 1;
}

/** The scale run: one fleet per size, ours only: wall time, memory, the harness's own time, state. */
async function scale(): Promise<void> {
  const lines = [
    "| nodes | fleet up (s) | first rollout (s) | no-op up (s) | config change, 25% waves (s) | hosts.toml only (s) | peak program RSS (MiB) | state / node (KiB) | resources / node |",
    "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  // Every containerd's CRI plugin takes inotify instances (its CNI config watcher), all of one user
  // on one kernel here: the default of 128 instances stops this machine at about 80 nodes with
  // "failed to create fsnotify watcher: too many open files". One VM per node has its own.
  const inotify = "/proc/sys/fs/inotify/max_user_instances";
  const want = 8 * Math.max(...SCALE_SIZES) + 128;
  const had = Number(fs.readFileSync(inotify, "utf8"));
  if (had < want) {
    fs.writeFileSync(inotify, String(want));
    console.error(`fs.inotify.max_user_instances raised from ${had} to ${want} for the run`);
  }
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
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "bench-scale-"));
      const stateFile = path.join(tmp, "fleet.json");
      const h = new Harness({ stateFile, dialRetryDelayMs: 200 });
      try {
        const run = (mirror: string, downloads: number) => ours(h, () => void new ContainerdFleet("bench", fleetSpec({ name: "", mirror, downloads }, mirrorA, nodes)), nodes);
        const first = await withPeakRss(() => run(mirrorA, 9));
        const noop = await withPeakRss(() => run(mirrorA, 9));
        const config = await withPeakRss(() => run(mirrorA, 10));
        const hosts = await withPeakRss(() => run(mirrorB, 10));
        const ok = [first, noop, config, hosts].every((x) => x.value.res.ok);
        const state = JSON.parse(fs.readFileSync(stateFile, "utf8")) as { resources: unknown[] };
        const peak = Math.max(first.peakMiB, noop.peakMiB, config.peakMiB, hosts.peakMiB);
        lines.push(
          `| ${size}${ok ? "" : " (FAILED)"} | ${seconds.toFixed(1)} | ${first.value.seconds.toFixed(1)} | ${noop.value.seconds.toFixed(1)} | ${config.value.seconds.toFixed(1)} | ${hosts.value.seconds.toFixed(1)} | ${peak.toFixed(0)} | ${(fs.statSync(stateFile).size / 1024 / size).toFixed(1)} | ${(state.resources.length / size).toFixed(1)} |`,
        );
        console.error(lines[lines.length - 1]);
        console.error(`  machine memory per node (containerd, sshd, its namespaces; MemAvailable before and after): about ${nodeMiB.toFixed(0)} MiB`);
        if (!ok) process.exitCode = 1;
      } finally {
        h.dispose();
        fs.rmSync(tmp, { recursive: true, force: true });
      }
    }
  } finally {
    // Whatever happened: the machine's limit back, and the fleet down.
    if (process.env.KEEP_FLEET !== "1") fleet("down");
    if (had < want) fs.writeFileSync(inotify, String(had));
  }
  console.log(`\n${machine(last).replace(/^\d+ nodes/, "up to " + last.length + " nodes")}\n`);
  console.log(lines.join("\n"));
}

(SCALE ? scale() : compare()).catch((e) => {
  console.error(e);
  process.exit(1);
});
