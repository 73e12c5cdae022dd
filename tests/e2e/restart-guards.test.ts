/**
 * What a config.toml change does to the pods running on a node, through the real engine on the local
 * fleet (containerd 1.6, 1.7 and 2.x) with real pods (tests/support/cri.ts, as kubelet starts them):
 * they run on with their pid; a node whose containerd unit has KillMode=control-group is named in
 * preview and refused before anything changes, unless allowContainerLoss; a node whose restart ends its containers anyway
 * fails its apply, naming them, and the later waves do not start.
 */
import * as pulumi from "@pulumi/pulumi";
import { ContainerdFleet, ContainerdFleetArgs, FleetNodeArgs } from "../../provider/src";
import { CriPod, criContainerStatus, criRunPod } from "../support/cri";
import { EngineStack } from "../support/engine";
import * as F from "./fleet";
import type { FleetNode } from "./fleet";
import { CONFIG, MIRROR, connection, engineStack, fleet } from "./fixture";

jest.setTimeout(300_000);

const NODES = F.nodesByGeneration(fleet, [...new Set(fleet.nodes.map((n) => n.generation))].slice(0, 3));
const { sandbox: SANDBOX, container: SLEEPER } = fleet.registry.podImages;

// Pods need systemdCgroup off and podSettings on this fleet (fleet.ts podSettings).
const node = (n: FleetNode, extra: Partial<FleetNodeArgs> = {}): FleetNodeArgs => ({
  name: n.name,
  containerdVersion: n.containerdVersion,
  connection: connection(n),
  settings: F.podSettings(n),
  ...extra,
});
let downloads = 3;
/** A spec for pods; every call is a config.toml change (a new maxConcurrentDownloads). */
function spec(over: (n: FleetNode) => Partial<FleetNodeArgs> = () => ({})): ContainerdFleetArgs {
  return {
    systemdCgroup: false,
    sandboxImage: SANDBOX,
    registries: { "docker.io": { mirrors: [MIRROR] }, "registry.k8s.io": { mirrors: [MIRROR] } },
    healthTimeoutSeconds: 30,
    maxConcurrentDownloads: ++downloads,
    nodes: NODES.map((n) => node(n, over(n))),
    rollout: { maxUnavailable: 1 },
    readNode: false,
  };
}
/** The fleet, and each node's config.toml report of this run (its restart guards) as a stack output. */
const program = (args: ContainerdFleetArgs) => async () => {
  const f = new ContainerdFleet("fleet", args);
  return { guards: pulumi.all(NODES.map((n) => f.nodes[n.name].lastApply.apply((rs) => rs.find((r) => r.path === CONFIG)?.guards))) };
};

let pods = 0;
async function startPod(n: FleetNode): Promise<CriPod & { name: string }> {
  const name = `guarded-${++pods}`;
  return { name, ...(await criRunPod(n.containerdSocket, { name, image: SLEEPER })) };
}
async function running(n: FleetNode, pod: CriPod): Promise<{ state: string; pid: number }> {
  const s = await criContainerStatus(n.containerdSocket, pod.containerId);
  return { state: s.state, pid: s.pid };
}
const config = (n: FleetNode) => F.nodeFile(n, CONFIG);

describe("restart guards: running pods survive a config.toml change, or the apply fails", () => {
  let h: EngineStack;
  beforeAll(async () => {
    await F.resetNodes(NODES);
    h = engineStack("restart-guards");
    const first = await h.up(program(spec()));
    expect(first.error?.message).toBeUndefined();
  }, 300_000);
  afterAll(async () => {
    h?.dispose();
    await F.resetNodes(NODES);
  }, 180_000);

  it("a pod that runs before a config change runs after it, with the same pid, on every node", async () => {
    const before = await Promise.all(NODES.map(startPod));
    const restarts = NODES.map(F.restarts);
    const res = await h.up(program(spec()));
    expect(res.error?.message).toBeUndefined();
    expect(NODES.map(F.restarts)).toEqual(restarts.map((r) => r + 1));
    for (const [i, n] of NODES.entries()) expect(await running(n, before[i])).toEqual({ state: "CONTAINER_RUNNING", pid: before[i].pid });
    // Each node checked them: its unit's KillMode, and every running container before and after.
    expect(res.outputs.guards).toEqual(NODES.map(() => ({ unit: "containerd", killMode: "process", containersChecked: true, running: 2, lost: 0 })));
    // (2: the pod's sandbox is a task too.)
  });

  it("names a node whose containerd unit has KillMode=control-group in preview, before anything is written, and a node systemd does not restart", async () => {
    const bad = NODES[1];
    const custom = NODES[0];
    await F.fault(bad, "killmode-control-group");
    try {
      const files = await Promise.all(NODES.map(config));
      const restarts = NODES.map(F.restarts);
      const read = (over: (n: FleetNode) => Partial<FleetNodeArgs>) =>
        h.preview(program({ ...spec((n) => ({ ...(n === custom ? { restartCommand: "/bin/sh -c 'systemctl restart containerd'" } : {}), ...over(n) })), readNode: true }));
      const res = await read(() => ({}));
      expect(res.error?.message).toBeUndefined();
      const killMode = res.warnings.filter((w) => w.includes("KillMode"));
      expect(killMode.filter((w) => w.includes(`${bad.name}: containerd's systemd unit`))).toEqual([
        expect.stringContaining(
          `${bad.name}: containerd's systemd unit containerd has KillMode=control-group, which ends every container on the node with the daemon (only KillMode=process leaves them running): up will refuse to restart containerd for a config.toml change (nothing restarted, the old config.toml stays) unless allowContainerLoss is set. Fix: a drop-in /etc/systemd/system/containerd.service.d/killmode.conf with [Service] and KillMode=process, then systemctl daemon-reload`,
        ),
      ]);
      expect(killMode.filter((w) => w.includes(`${custom.name}: the restart command (restartCommand) is not "systemctl restart UNIT": systemd does not manage the restart here, so the KillMode of containerd's unit is not checked; the running-containers check still guards`))).toHaveLength(1);
      // The nodes whose unit says process are not named.
      for (const n of NODES.filter((n) => n !== bad && n !== custom)) expect(killMode.filter((w) => w.includes(`${n.name}:`))).toEqual([]);
      const allowed = await read((n) => (n === bad ? { allowContainerLoss: true } : {}));
      expect(allowed.warnings.filter((w) => w.includes(`${bad.name}: containerd's systemd unit containerd has KillMode=control-group`))).toEqual([
        expect.stringContaining("allowContainerLoss is set, so each restart of containerd (a config.toml change) ends every pod on the node"),
      ]);
      // A preview: nothing written, nothing restarted.
      expect(await Promise.all(NODES.map(config))).toEqual(files);
      expect(NODES.map(F.restarts)).toEqual(restarts);
    } finally {
      await F.fault(bad, "killmode-process");
    }
  });

  it("refuses a node whose containerd unit has KillMode=control-group, pods alive and config.toml unchanged, naming the fix; allowContainerLoss restarts it and loses them", async () => {
    const bad = NODES[1];
    await F.fault(bad, "killmode-control-group");
    try {
      const pod = await startPod(bad);
      const file = await config(bad);
      const restarts = NODES.map(F.restarts);
      const res = await h.up(program(spec()));
      expect(res.ok).toBe(false);
      const msg = res.error?.message ?? "";
      expect(msg).toContain(`${bad.name}: refusing to restart containerd: its systemd unit containerd has KillMode=control-group`);
      expect(msg).toContain("/etc/systemd/system/containerd.service.d/killmode.conf with [Service] and KillMode=process, then systemctl daemon-reload");
      expect(await config(bad)).toBe(file);
      expect(NODES.map(F.restarts)).toEqual([restarts[0] + 1, restarts[1], restarts[2]]);
      expect(await running(bad, pod)).toEqual({ state: "CONTAINER_RUNNING", pid: pod.pid });

      const allowed = await h.up(program(spec((n) => (n === bad ? { allowContainerLoss: true } : {}))));
      expect(allowed.error?.message).toBeUndefined();
      expect(F.restarts(bad)).toBe(restarts[1] + 1);
      expect(await config(bad)).not.toBe(file);
      await F.waitFor("the pod's container to end", async () => (await running(bad, pod)).state !== "CONTAINER_RUNNING", 30_000, 200);
    } finally {
      await F.fault(bad, "killmode-process");
    }
  });

  it("fails the apply of a node whose restart ends its containers anyway, naming them, and the later waves do not start", async () => {
    const bad = NODES[0];
    await F.fault(bad, "restart-kills-shims");
    try {
      const pod = await startPod(bad);
      const files = await Promise.all(NODES.map(config));
      const restarts = NODES.map(F.restarts);
      const res = await h.up(program(spec()));
      expect(res.ok).toBe(false);
      const msg = res.error?.message ?? "";
      expect(msg).toMatch(new RegExp(`${bad.name}: the restart ended [1-9][0-9]* of the [1-9][0-9]* containers that ran before it`));
      expect(msg).toContain(`pod ${pod.name} container main (${pod.containerId.slice(0, 12)})`);
      expect(msg).toContain(`pod ${pod.name} sandbox (${pod.podSandboxId.slice(0, 12)})`);
      expect(msg).toContain("Rolling config.toml back cannot bring them back");
      expect(msg).toContain("the node is on the new config.toml and containerd is healthy");
      // The node stays on the new file (one restart, no rollback); the later waves never started.
      expect(NODES.map(F.restarts)).toEqual([restarts[0] + 1, restarts[1], restarts[2]]);
      const after = await Promise.all(NODES.map(config));
      expect(after[0]).not.toBe(files[0]);
      expect(after.slice(1)).toEqual(files.slice(1));
      expect(NODES.map((n) => res.steps.filter((s) => s.name === `${n.name}:${CONFIG}`).map((s) => `${s.op} ${s.ok}`))).toEqual([["update false"], [], []]);
    } finally {
      await F.fault(bad, "restart-keeps-shims");
    }
  });
});
