/**
 * Rollout benchmark: ContainerdFleet through the harness against the local fleet, and the same config
 * change done the way setup guides do it (a sequential loop of ssh + sed + systemctl restart), in the
 * same run on the same nodes. Prints a table; asserts nothing about speed.
 *
 *   npm run bench                # 20 nodes
 *   BENCH_NODES=3 npm run bench
 *
 * It brings the fleet up (tests/fleet/fleet.sh up -n N) and down again (unless KEEP_FLEET=1), so it
 * must not run while the end-to-end tests hold the fleet.
 */
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ContainerdFleet, FleetNodeArgs } from "../../provider/src";
import { Harness, StepRecord, UpResult } from "../harness/harness";

const REPO = path.resolve(__dirname, "..", "..");
const FLEET_SH = path.join(REPO, "tests", "fleet", "fleet.sh");
const N = Number(process.env.BENCH_NODES ?? 20);
const MAX_UNAVAILABLE = "25%";

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

function restarts(nodes: FleetNode[]): number[] {
  return nodes.map((n) => (fs.existsSync(n.restartLog) ? fs.readFileSync(n.restartLog, "utf8").split("\n").filter(Boolean).length : 0));
}

interface Row {
  scenario: string;
  wallSeconds: number;
  sessionsPerNode: number;
  restarts: number;
  waves: number;
  /** Slowest single-node apply (its steps' chain) x waves; undefined when nothing ran. */
  floorSeconds?: number;
  ok: boolean;
}

/** A node's apply: its certificate/hosts steps run side by side, config.toml after them. */
function nodeApplySeconds(steps: StepRecord[], node: string): number {
  const mine = steps.filter((s) => s.name.startsWith(`${node}:`) && s.op !== "same");
  if (mine.length === 0) return 0;
  const d = (s: StepRecord) => (s.endedAt - s.startedAt) / 1000;
  const files = mine.filter((s) => !s.name.endsWith("config.toml")).map(d);
  const config = mine.filter((s) => s.name.endsWith("config.toml")).map(d);
  return Math.max(0, ...files) + Math.max(0, ...config);
}

async function measure(
  scenario: string,
  h: Harness,
  nodes: FleetNode[],
  waves: number,
  program: () => void,
): Promise<Row> {
  h.resetCounters();
  const before = restarts(nodes);
  const t0 = Date.now();
  const res: UpResult = await h.up(program);
  const wall = (Date.now() - t0) / 1000;
  if (!res.ok) console.error(`${scenario}: ${res.error?.message}`);
  const after = restarts(nodes);
  const sessions = nodes.reduce((sum, n) => sum + (h.sessions(`${n.host}:${n.port}`) as number), 0);
  const slowest = Math.max(0, ...nodes.map((n) => nodeApplySeconds(res.steps, n.name)));
  const restarted = after.reduce((s, a, i) => s + a - before[i], 0);
  return {
    scenario,
    wallSeconds: wall,
    sessionsPerNode: sessions / nodes.length,
    restarts: restarted,
    waves: restarted > 0 ? waves : 1,
    floorSeconds: slowest > 0 ? slowest * (restarted > 0 ? waves : 1) : undefined,
    ok: res.ok,
  };
}

/** What setup guides do: for each node in turn, ssh, sed the file, restart. */
async function baseline(nodes: FleetNode[], from: number, to: number): Promise<Row> {
  const before = restarts(nodes);
  const known = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "bench-")), "known_hosts");
  fs.writeFileSync(known, nodes.map((n) => `${n.host} ${n.hostKey}\n`).join(""));
  const t0 = Date.now();
  let ok = true;
  for (const n of nodes) {
    const script = `sed -i 's/max_concurrent_downloads = ${from}/max_concurrent_downloads = ${to}/' /etc/containerd/config.toml && systemctl restart containerd`;
    const code = await new Promise<number>((resolve) => {
      const p = spawn("ssh", ["-F", "/dev/null", "-T", "-o", "BatchMode=yes", "-o", `UserKnownHostsFile=${known}`, "-o", "StrictHostKeyChecking=yes",
        "-i", n.privateKeyPath, "-p", String(n.port), `${n.user}@${n.host}`, script], { stdio: ["ignore", "ignore", "inherit"] });
      p.on("close", (c) => resolve(c ?? 1));
    });
    ok = ok && code === 0;
  }
  const wall = (Date.now() - t0) / 1000;
  const after = restarts(nodes);
  return { scenario: "config change, ssh + sed + systemctl loop (baseline)", wallSeconds: wall, sessionsPerNode: 1, restarts: after.reduce((s, a, i) => s + a - before[i], 0), waves: nodes.length, ok };
}

function table(rows: Row[]): string {
  const f = (x: number) => x.toFixed(1);
  const lines = [
    "| scenario | wall (s) | SSH sessions / node | restarts | waves | floor (s) | wall / floor |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.scenario}${r.ok ? "" : " (FAILED)"} | ${f(r.wallSeconds)} | ${r.sessionsPerNode.toFixed(1)} | ${r.restarts} | ${r.waves} | ${r.floorSeconds === undefined ? "-" : f(r.floorSeconds)} | ${r.floorSeconds ? (r.wallSeconds / r.floorSeconds).toFixed(2) : "-"} |`,
    );
  }
  return lines.join("\n");
}

async function main(): Promise<void> {
  console.error(`bringing up ${N} nodes ...`);
  const t0 = Date.now();
  const f = JSON.parse(fleet("up", "-n", String(N))) as FleetJson;
  const nodes = f.nodes.slice(0, N);
  console.error(`fleet up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const stateFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "bench-state-")), "state.json");
  const h = new Harness({ stateFile, dialRetryDelayMs: 200 });
  const [mirrorA, mirrorB] = f.registry.mirrors;
  const program = (mirror: string, downloads: number) => () => {
    const fleetNodes: FleetNodeArgs[] = nodes.map((n) => ({
      name: n.name,
      containerdVersion: n.containerdVersion,
      connection: { host: n.host, port: n.port, user: n.user, privateKey: n.privateKey, hostKey: n.hostKey },
    }));
    new ContainerdFleet("bench", {
      systemdCgroup: true,
      sandboxImage: "registry.k8s.io/pause:3.9",
      maxConcurrentDownloads: downloads,
      registries: { "docker.io": { mirrors: [mirror] }, "registry.k8s.io": { mirrors: [mirrorA] } },
      healthTimeoutSeconds: 30,
      nodes: fleetNodes,
      rollout: { maxUnavailable: MAX_UNAVAILABLE },
    });
  };
  const maxUnavailable = Math.max(1, Math.floor((nodes.length * 25) / 100));
  const waves = Math.ceil(nodes.length / maxUnavailable);
  const rows: Row[] = [];
  try {
    fleet("reset", "--all");
    rows.push(await measure("first rollout", h, nodes, waves, program(mirrorA, 9)));
    rows.push(await measure("no-op up", h, nodes, waves, program(mirrorA, 9)));
    rows.push(await measure("hosts.toml only (mirror switch)", h, nodes, waves, program(mirrorB, 9)));
    rows.push(await measure(`config change, maxUnavailable ${MAX_UNAVAILABLE}`, h, nodes, waves, program(mirrorB, 10)));
    rows.push(await baseline(nodes, 10, 11));
  } finally {
    h.dispose?.();
    if (process.env.KEEP_FLEET !== "1") fleet("down");
  }
  const cpu = os.cpus();
  console.log(`\n${nodes.length} nodes (containerd ${[...new Set(nodes.map((n) => n.containerdVersion))].join(", ")}), ${cpu.length} x ${cpu[0]?.model ?? "cpu"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, node ${process.version}\n`);
  console.log(table(rows));
  if (rows.some((r) => !r.ok)) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
