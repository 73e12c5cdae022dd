/**
 * `npm run demo`: the main job on a local fleet, start to finish, saying what it does as it goes.
 *
 *   1. a fleet of three SSH nodes (containerd 1.6, 1.7, 2.1) and a registry mirror, in network
 *      namespaces on this machine (tests/fleet), none of which can reach the internet;
 *   2. a stack of the root program (Pulumi.yaml, program/) made from the fleet: nodes, pinned host
 *      keys, the private key as a secret, the operator notes' mirrors pointed at the local mirror;
 *   3. preview with a diff, then up; a CRI pull (what kubelet does) through the mirror on each node;
 *   4. a mirror change: its preview (only hosts.toml, no restart) and its up.
 *
 * The deployment is the real Pulumi CLI (`pulumi preview --diff`, `pulumi up`) with the command
 * provider 1.2.1 and the Node.js language host, built from source by tools/pulumi/build.sh (run by
 * `npm run demo` through .ci/install), running the root program from the top of this repository
 * exactly as the README tells a user. The fleet stays up to explore; `npm run demo -- down` removes
 * it all.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { criPullImage, criRemoveImage } from "../tests/support/cri";
import { pulumiEnv, pulumiPath } from "../tests/support/pulumi-env";

const repo = path.resolve(__dirname, "..");
// A fleet of its own (names, subnet, state), so the demo and the tests never touch each other's.
const env = {
  ...process.env,
  FLEET_PREFIX: "cdd",
  FLEET_SUBNET: "198.18.9",
  FLEET_STATE_DIR: "/var/tmp/containerd-node-demo",
};
const state = env.FLEET_STATE_DIR;
const FLEET_SH = path.join(repo, "tests/fleet/fleet.sh");
const PROJECT = "containerd-fleet";
const STACK = "demo";
const PASSPHRASE = "containerd-node-demo"; // the local demo backend's, not a real secret

interface FleetNode {
  name: string;
  host: string;
  port: number;
  hostKey: string;
  privateKey: string;
  containerdVersion: string;
  containerdSocket: string;
  restartLog: string;
}
interface Fleet {
  nodes: FleetNode[];
  registry: { mirrors: string[] };
}

const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const say = (s: string) => process.stdout.write(`\n${bold(`==> ${s}`)}\n`);
const note = (s: string): void => void process.stdout.write(`    ${s}\n`);

function sh(cmd: string, args: string[], opts: { input?: string; quiet?: boolean; cwd?: string; extraEnv?: NodeJS.ProcessEnv } = {}) {
  const r = spawnSync(cmd, args, {
    encoding: "utf8",
    input: opts.input,
    cwd: opts.cwd ?? repo,
    env: { ...env, ...(opts.extraEnv ?? {}) },
    maxBuffer: 64 * 1024 * 1024,
    stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
  });
  if (!opts.quiet) process.stdout.write(r.stdout);
  return r;
}

function fleetSh(args: string[]): string {
  const r = sh("bash", [FLEET_SH, ...args], { quiet: true });
  if (r.status !== 0) throw new Error(`fleet.sh ${args.join(" ")} failed:\n${r.stderr}`);
  return r.stdout;
}

function restarts(n: FleetNode): number {
  // One line per start attempt of containerd (the node's service manager writes it).
  return fs.existsSync(n.restartLog) ? fs.readFileSync(n.restartLog, "utf8").split("\n").filter((l) => l.trim() !== "").length : 0;
}

/** The stack configuration a user would set with `pulumi config set` (README, root program). */
function stackConfig(fleet: Fleet, mirror: string) {
  return {
    nodes: fleet.nodes.map((n) => ({ name: n.name, host: n.host, port: n.port, hostKey: n.hostKey, containerdVersion: n.containerdVersion })),
    spec: {
      containerdVersion: "1.6",
      systemdCgroup: true,
      sandboxImage: "registry.k8s.io/pause:3.9",
      healthTimeoutSeconds: 30,
      registries: { "docker.io": { mirrors: [mirror] }, "registry.k8s.io": { mirrors: [mirror] } },
    },
    rollout: { maxUnavailable: 1 },
  };
}

// ---- the real CLI ---------------------------------------------------------------------------------

function pulumi(args: string[], input?: string, quiet = false) {
  const r = sh(pulumiPath(), args, {
    input,
    quiet,
    extraEnv: pulumiEnv({ PULUMI_BACKEND_URL: `file://${state}/backend`, PULUMI_CONFIG_PASSPHRASE: PASSPHRASE }),
  });
  if (r.status !== 0) throw new Error(`pulumi ${args.join(" ")} failed:\n${r.stderr}`);
  return r.stdout;
}

function configure(fleet: Fleet, mirror: string, first: boolean): void {
  if (first) {
    fs.mkdirSync(`${state}/backend`, { recursive: true });
    const stacks = pulumi(["stack", "ls", "--json"], undefined, true);
    if (!stacks.includes(`"${STACK}"`)) pulumi(["stack", "init", STACK, "--non-interactive"], undefined, true);
    pulumi(["stack", "select", STACK], undefined, true);
    pulumi(["config", "set", "--stack", STACK, "--secret", "privateKey"], fleet.nodes[0].privateKey, true);
  }
  // `pulumi config set-all --json` takes what `pulumi config --json` prints: structured values as
  // both their JSON text and the object.
  const values = Object.fromEntries(
    Object.entries(stackConfig(fleet, mirror)).map(([k, v]) => [`${PROJECT}:${k}`, { value: JSON.stringify(v), objectValue: v, secret: false }]),
  );
  pulumi(["config", "set-all", "--stack", STACK, "--json", JSON.stringify(values)], undefined, true);
}

// ---- the demo -------------------------------------------------------------------------------------

async function pullThroughMirror(fleet: Fleet): Promise<void> {
  for (const n of fleet.nodes) {
    await criRemoveImage(n.containerdSocket, "docker.io/library/tiny:1.0").catch(() => undefined);
    const t0 = Date.now();
    await criPullImage(n.containerdSocket, "docker.io/library/tiny:1.0", { timeoutMs: 60_000 });
    note(`${n.name} (containerd ${n.containerdVersion}): CRI PullImage docker.io/library/tiny:1.0 ok in ${((Date.now() - t0) / 1000).toFixed(1)} s (the node has no route out: only the mirror serves it)`);
  }
}

async function main(): Promise<void> {
  // The demo's backend, its stack file and the fleet hold the fleet's private key, encrypted with a
  // passphrase that is written above: nothing the demo makes is for other users to read.
  process.umask(0o077);
  if (process.argv[2] === "down") {
    say("removing the demo fleet and its state");
    fleetSh(["down"]);
    fs.rmSync(path.join(repo, `Pulumi.${STACK}.yaml`), { force: true });
    fs.rmSync(state, { recursive: true, force: true });
    return;
  }

  say("bringing up a local fleet: 3 SSH nodes (containerd 1.6, 1.7, 2.1) and a registry mirror");
  const again = sh("bash", [FLEET_SH, "status"], { quiet: true }).status === 0;
  const fleet = JSON.parse(fleetSh(["up", "-n", "3", "--generations", "1.6,1.7,2.1"])) as Fleet;
  if (again) {
    // A second run starts where the first did: nodes as installed, no stack state.
    note("the demo fleet was up: resetting its nodes and the demo's stack");
    fleetSh(["reset", "--all"]);
    fs.rmSync(`${state}/backend`, { recursive: true, force: true });
    fs.rmSync(path.join(repo, `Pulumi.${STACK}.yaml`), { force: true });
  }
  for (const n of fleet.nodes) note(`${n.name}: ${n.host}:${n.port}, containerd ${n.containerdVersion}, host key ${n.hostKey.slice(0, 28)}...`);
  const [mirrorA, mirrorB] = fleet.registry.mirrors;
  note(`registry mirror: ${mirrorA} and ${mirrorB} (the nodes reach nothing else)`);

  say(`deploying with the real Pulumi CLI (${pulumiPath()}) and the command provider`);
  const step = (what: "preview" | "up", mirror: string, first: boolean) => {
    configure(fleet, mirror, first && what === "preview");
    if (what === "preview") pulumi(["preview", "--diff", "--non-interactive", "--stack", STACK]);
    else pulumi(["up", "--yes", "--skip-preview", "--non-interactive", "--stack", STACK]);
  };

  say(`stack "${STACK}" of the root program: nodes and host keys from the fleet, the private key as a secret, docker.io and registry.k8s.io through ${mirrorA}`);
  say("preview");
  step("preview", mirrorA, true);
  const before = fleet.nodes.map(restarts);
  say("up: config.toml and hosts.toml on every node, one node at a time (maxUnavailable: 1)");
  step("up", mirrorA, false);
  note(`restarts per node: ${fleet.nodes.map((n, i) => `${n.name} ${restarts(n) - before[i]}`).join(", ")}`);

  say("a pull the way kubelet does it (CRI), on each node");
  await pullThroughMirror(fleet);

  say(`the mirror moves to ${mirrorB}: preview`);
  step("preview", mirrorB, false);
  const before2 = fleet.nodes.map(restarts);
  say("up: only hosts.toml changes, and nothing restarts");
  step("up", mirrorB, false);
  note(`restarts per node: ${fleet.nodes.map((n, i) => `${n.name} ${restarts(n) - before2[i]}`).join(", ")}`);
  await pullThroughMirror(fleet);

  say("done; the fleet is still up");
  note(`ssh -F ${state}/ssh/config ${fleet.nodes[0].name} 'cat /etc/containerd/certs.d/docker.io/hosts.toml'`);
  note("npm run demo -- down    # removes the fleet and the demo's state");
}

main().catch((e: Error) => {
  process.stderr.write(`\ndemo: ${e.message}\n`);
  process.exit(1);
});
