/**
 * What a config.toml change does to the pods running on a node, through the real engine on the local
 * fleet (one node of each containerd generation present: 1.6, 1.7, 2.1, 2.2, 2.3) with real pods
 * (tests/support/cri.ts, as kubelet starts them): they run on with their pid, and a new pod starts
 * after every change (the apply's own pod-start check, with the fleet's crictl); a sandbox image
 * the mirror lacks is refused before any restart, and a new one is pulled before the restart, so a
 * pod starts after it with the node's network cut; a node whose containerd unit has
 * KillMode=control-group is named in preview and refused before anything changes, unless
 * allowContainerLoss; a node whose restart ends its containers anyway fails its apply, naming them,
 * and the later waves do not start.
 */
import * as pulumi from "@pulumi/pulumi";
import { ContainerdFleet, ContainerdFleetArgs, FleetNodeArgs } from "../../provider/src";
import { CriPod, criContainerStatus, criPullImage, criRemovePod, criRunPod, criRunPodSandbox, podSandboxConfig } from "../support/cri";
import { EngineStack } from "../support/engine";
import * as F from "./fleet";
import type { FleetNode } from "./fleet";
import { CONFIG, MIRROR, connection, engineStack, fleet } from "./fixture";

jest.setTimeout(300_000);

const NODES = F.nodesByGeneration(fleet, [...new Set(fleet.nodes.map((n) => n.generation))]);
const { sandbox: SANDBOX, container: SLEEPER } = fleet.registry.podImages;

// Pods need systemdCgroup off and podSettings on this fleet (fleet.ts podSettings); the fleet's
// crictl, off the nodes' PATH, turns on the apply's pod-start check.
const node = (n: FleetNode, extra: Partial<FleetNodeArgs> = {}): FleetNodeArgs => ({
  name: n.name,
  containerdVersion: n.containerdVersion,
  connection: connection(n),
  settings: F.podSettings(n),
  crictlPath: F.CRICTL,
  ...extra,
});
/** The restarts of every node now, but the first's one more: what a run that stops after the first node leaves. */
const firstOnly = (restarts: number[]) => restarts.map((r, i) => (i === 0 ? r + 1 : r));
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
    // Each node checked them: its unit's KillMode, and every running container before and after
    // (2: the pod's sandbox is a task too); its sandbox image was there before the restart, and a pod
    // sandbox started (and was removed) after it.
    expect(res.outputs.guards).toEqual(
      NODES.map(() => ({ unit: "containerd", killMode: "process", containersChecked: true, running: 2, lost: 0, sandboxImage: { image: SANDBOX, before: "present" }, podStart: "started" })),
    );
    // And a pod of the test's own starts on each, as kubelet would start one.
    for (const n of NODES) {
      const p = await startPod(n);
      expect(await running(n, p)).toEqual({ state: "CONTAINER_RUNNING", pid: p.pid });
    }
  });

  it("refuses a sandbox image the mirror does not serve on the first node, before any restart, with its pods alive, and the later waves do not start", async () => {
    const missing = "registry.k8s.io/pause:0.404";
    const pod = await startPod(NODES[0]);
    const files = await Promise.all(NODES.map(config));
    const restarts = NODES.map(F.restarts);
    const res = await h.up(program({ ...spec(), sandboxImage: missing }));
    expect(res.ok).toBe(false);
    const msg = res.error?.message ?? "";
    expect(msg).toContain(`${NODES[0].name}: refusing the new ${CONFIG}: its sandbox image ${missing} could not be pulled into containerd's k8s.io namespace through the registry directory /etc/containerd/certs.d`);
    // The mirror's answer: it has no such manifest (1.x names each host it tried; 2.x says it once).
    expect(msg).toMatch(NODES[0].generation.startsWith("1.") ? new RegExp(`${fleet.registry.host}:5000 answered http.StatusNotFound`) : /not found/);
    expect(msg).toContain("nothing restarted and the old config.toml stays");
    expect(NODES.map(F.restarts)).toEqual(restarts);
    expect(await Promise.all(NODES.map(config))).toEqual(files);
    expect(await running(NODES[0], pod)).toEqual({ state: "CONTAINER_RUNNING", pid: pod.pid });
  });

  it("pulls a new sandbox image through the new registry config before the restart: a pod starts after it with the node's network cut", async () => {
    // A pause image the mirror serves that no other test uses, removed from every node first.
    const fresh = "registry.k8s.io/google_containers/pause:3.9";
    for (const n of NODES) await F.nodeSh(n, `ctr -n k8s.io images rm ${fresh} >/dev/null 2>&1 || true`);
    const res = await h.up(program({ ...spec(), sandboxImage: fresh }));
    expect(res.error?.message).toBeUndefined();
    expect((res.outputs.guards as { sandboxImage: unknown; podStart: string }[]).map((g) => [g.sandboxImage, g.podStart])).toEqual(
      NODES.map(() => [{ image: fresh, before: "pulled" }, "started"]),
    );
    const n = NODES[NODES.length - 1];
    await F.fault(n, "cut");
    try {
      // The registry is out of reach (a pull fails), yet a pod sandbox starts: its image is on the node.
      await expect(criPullImage(n.containerdSocket, fresh, { timeoutMs: 20_000 })).rejects.toThrow();
      const id = await criRunPodSandbox(n.containerdSocket, podSandboxConfig({ name: "after-cut" }), { timeoutMs: 30_000 });
      expect(id).toMatch(/^[0-9a-f]{64}$/);
      await criRemovePod(n.containerdSocket, id);
    } finally {
      await F.fault(n, "reconnect");
    }
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
      expect(NODES.map(F.restarts)).toEqual(firstOnly(restarts));
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
      expect(NODES.map(F.restarts)).toEqual(firstOnly(restarts));
      const after = await Promise.all(NODES.map(config));
      expect(after[0]).not.toBe(files[0]);
      expect(after.slice(1)).toEqual(files.slice(1));
      expect(NODES.map((n) => res.steps.filter((s) => s.name === `${n.name}:${CONFIG}`).map((s) => `${s.op} ${s.ok}`))).toEqual(NODES.map((_, i) => (i === 0 ? ["update false"] : [])));
    } finally {
      await F.fault(bad, "restart-keeps-shims");
    }
  });
});
