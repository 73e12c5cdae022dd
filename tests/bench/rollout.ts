/**
 * Rollout benchmark: ContainerdFleet through the harness against the local fleet, and the same config
 * change done the way setup guides do it (a sequential loop of ssh + sed + systemctl restart), in the
 * same run on the same nodes. Prints a table; asserts nothing about speed.
 *
 *   npm run bench                # 20 nodes
 *   BENCH_NODES=3 npm run bench
 *
 * The floor of a run is the slowest single-node apply of the same change times the number of waves.
 * Single-node applies are measured, not estimated: five probe nodes (one per containerd generation)
 * outside the fleet get each change alone, one after the other, just before the fleet does.
 *
 * It brings N + 5 nodes up (tests/fleet/fleet.sh up) and down again (unless KEEP_FLEET=1). Give it a
 * fleet of its own (FLEET_PREFIX, FLEET_SUBNET, FLEET_STATE_DIR) to run beside other tests.
 */
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ContainerdFleet, FleetNodeArgs } from "../../provider/src";
import { Harness, UpResult } from "../harness/harness";

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
  /** Slowest single-node apply of the same change (measured alone) x waves; undefined when nothing ran. */
  floorSeconds?: number;
  ok: boolean;
}

interface Scenario {
  name: string;
  mirror: string;
  downloads: number;
}

async function timed(h: Harness, program: () => void): Promise<{ seconds: number; res: UpResult }> {
  const t0 = Date.now();
  const res = await h.up(program);
  return { seconds: (Date.now() - t0) / 1000, res };
}

async function measure(
  s: Scenario,
  fleetRun: { h: Harness; nodes: FleetNode[]; waves: number; program: (s: Scenario) => () => void },
  probes: { h: Harness; program: (s: Scenario) => () => void }[],
): Promise<Row> {
  // The floor: the same change on one node alone, for each generation; the slowest counts.
  let single = 0;
  for (const p of probes) {
    const r = await timed(p.h, p.program(s));
    if (!r.res.ok) console.error(`${s.name} (probe): ${r.res.error?.message}`);
    single = Math.max(single, r.seconds);
  }
  const { h, nodes, waves } = fleetRun;
  h.resetCounters();
  const before = restarts(nodes);
  const r = await timed(h, fleetRun.program(s));
  if (!r.res.ok) console.error(`${s.name}: ${r.res.error?.message}`);
  const after = restarts(nodes);
  const sessions = nodes.reduce((sum, n) => sum + (h.sessions(`${n.host}:${n.port}`) as number), 0);
  const restarted = after.reduce((sum, a, i) => sum + a - before[i], 0);
  const w = restarted > 0 ? waves : 1;
  const ran = r.res.steps.some((x) => x.op !== "same");
  return {
    scenario: s.name,
    wallSeconds: r.seconds,
    sessionsPerNode: sessions / nodes.length,
    restarts: restarted,
    waves: w,
    floorSeconds: ran ? single * w : undefined,
    ok: r.res.ok,
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
  // The fleet cycles through its five generations, so five more nodes are one of each.
  const PROBES = 5;
  console.error(`bringing up ${N} + ${PROBES} nodes ...`);
  const t0 = Date.now();
  const f = JSON.parse(fleet("up", "-n", String(N + PROBES))) as FleetJson;
  const nodes = f.nodes.slice(0, N);
  const probeNodes = f.nodes.slice(N, N + PROBES);
  console.error(`fleet up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "bench-state-"));
  const [mirrorA, mirrorB] = f.registry.mirrors;
  const program = (name: string, members: FleetNode[]) => (s: Scenario) => () => {
    const fleetNodes: FleetNodeArgs[] = members.map((n) => ({
      name: n.name,
      containerdVersion: n.containerdVersion,
      connection: { host: n.host, port: n.port, user: n.user, privateKey: n.privateKey, hostKey: n.hostKey },
    }));
    new ContainerdFleet(name, {
      systemdCgroup: true,
      sandboxImage: "registry.k8s.io/pause:3.9",
      maxConcurrentDownloads: s.downloads,
      registries: { "docker.io": { mirrors: [s.mirror] }, "registry.k8s.io": { mirrors: [mirrorA] } },
      healthTimeoutSeconds: 30,
      nodes: fleetNodes,
      rollout: { maxUnavailable: MAX_UNAVAILABLE },
    });
  };
  const maxUnavailable = Math.max(1, Math.floor((nodes.length * 25) / 100));
  const fleetRun = {
    h: new Harness({ stateFile: path.join(tmp, "fleet.json"), dialRetryDelayMs: 200 }),
    nodes,
    waves: Math.ceil(nodes.length / maxUnavailable),
    program: program("bench", nodes),
  };
  const probes = probeNodes.map((n) => ({
    h: new Harness({ stateFile: path.join(tmp, `${n.name}.json`), dialRetryDelayMs: 200 }),
    program: program(`probe-${n.name}`, [n]),
  }));
  const scenarios: Scenario[] = [
    { name: "first rollout", mirror: mirrorA, downloads: 9 },
    { name: "no-op up", mirror: mirrorA, downloads: 9 },
    { name: "hosts.toml only (mirror switch)", mirror: mirrorB, downloads: 9 },
    { name: `config change, maxUnavailable ${MAX_UNAVAILABLE}`, mirror: mirrorB, downloads: 10 },
  ];
  const rows: Row[] = [];
  try {
    fleet("reset", "--all");
    for (const s of scenarios) rows.push(await measure(s, fleetRun, probes));
    rows.push(await baseline(nodes, 10, 11));
  } finally {
    for (const h of [fleetRun.h, ...probes.map((p) => p.h)]) h.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
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
