/**
 * ContainerdFleet's rollout rules on the local fleet (containerd 1.6.20, 1.7.24, 2.1.9), through the
 * harness: waves gated on health, a failing node stopping later waves, hosts.toml changes going out
 * at once, what a preview names, and node removal.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ContainerdFleet, ContainerdFleetArgs, FleetNodeArgs } from "../../provider/src";
import { Harness, StepRecord } from "../harness/harness";
import * as F from "./fleet";
import type { FleetNode } from "./fleet";

jest.setTimeout(300_000);

const fleet = F.loadFleet();
const NODES = F.nodesByGeneration(fleet, ["1.6", "1.7", "2.1"]);
const [MIRROR, MIRROR_B] = fleet.registry.mirrors;
const CONFIG = "/etc/containerd/config.toml";
const HUB = "/etc/containerd/certs.d/docker.io/hosts.toml";
const TINY = "docker.io/library/tiny:1.0";

const node = (n: FleetNode, extra: Partial<FleetNodeArgs> = {}): FleetNodeArgs => ({
  name: n.name,
  containerdVersion: n.containerdVersion,
  connection: { host: n.host, port: n.port, user: n.user, privateKey: n.privateKey, hostKey: n.hostKey, dialErrorLimit: 1 },
  ...extra,
});

function spec(over: Partial<ContainerdFleetArgs> = {}): ContainerdFleetArgs {
  return {
    systemdCgroup: true,
    sandboxImage: "registry.k8s.io/pause:3.9",
    registries: { "docker.io": { mirrors: [MIRROR] } },
    healthTimeoutSeconds: 20,
    nodes: NODES.map((n) => node(n)),
    rollout: { maxUnavailable: 1 },
    ...over,
  };
}

const configStep = (steps: StepRecord[], n: FleetNode) => steps.find((s) => s.name === `${n.name}:${CONFIG}`);

describe("ContainerdFleet rollout", () => {
  let h: Harness;
  beforeAll(async () => {
    await F.resetNodes(NODES);
    h = new Harness({ stateFile: path.join(fs.mkdtempSync(path.join(os.tmpdir(), "rollout-")), "state.json"), dialRetryDelayMs: 100 });
  });
  afterAll(() => h?.dispose());

  it("restarts one wave at a time, canaries included: each node's config.toml starts after the previous wave's finished", async () => {
    // canary: 2 with maxUnavailable: 1 is two canary waves of one node each, never both at once.
    const res = await h.up(() => void new ContainerdFleet("fleet", spec({ rollout: { maxUnavailable: 1, canary: 2 } })));
    expect(res.error?.message).toBeUndefined();
    const [a, b, c] = NODES.map((n) => configStep(res.steps, n)!);
    expect(b.startedAt).toBeGreaterThanOrEqual(a.endedAt);
    expect(c.startedAt).toBeGreaterThanOrEqual(b.endedAt);
    expect(NODES.map(F.restarts)).toEqual([1, 1, 1]);
  });

  it("with registryChanges all-at-once, sends a hosts.toml-only change to every node at once, without restarts", async () => {
    const res = await h.up(() => void new ContainerdFleet("fleet", spec({ registries: { "docker.io": { mirrors: [MIRROR_B] } }, rollout: { maxUnavailable: 1, registryChanges: "all-at-once" } })));
    expect(res.ok).toBe(true);
    const changed = res.steps.filter((s) => s.op !== "same");
    expect(changed.map((s) => s.name).sort()).toEqual(NODES.map((n) => `${n.name}:/etc/containerd/certs.d/docker.io/hosts.toml`).sort());
    // Side by side: every one started before any finished.
    expect(Math.max(...changed.map((s) => s.startedAt))).toBeLessThan(Math.min(...changed.map((s) => s.endedAt)));
    expect(NODES.map(F.restarts)).toEqual([1, 1, 1]);
  });

  it("previews, per node, the files that will change and which nodes will restart", async () => {
    const next = spec({ registries: { "docker.io": { mirrors: [MIRROR_B] } }, maxConcurrentDownloads: 4 });
    h.resetCounters();
    const res = await h.preview(() => void new ContainerdFleet("fleet", next));
    expect(res.ok).toBe(true);
    const changes = res.steps.filter((s) => s.op !== "same").map((s) => `${s.op} ${s.name} [${s.diffKeys.join(",")}]`).sort();
    expect(changes).toEqual(NODES.map((n) => `update ${n.name}:${CONFIG} [stdin]`).sort());
    expect(NODES.map((n) => h.sessions(`${n.host}:${n.port}`))).toEqual([0, 0, 0]);
  });

  it("stops later waves when a node fails; that node rolls itself back", async () => {
    // A change that breaks the CRI plugin of the second node only (a default runtime it does not have).
    const broken = NODES[1];
    const before = NODES.map((n) => fs.readFileSync(n.configToml, "utf8"));
    const restartsBefore = NODES.map(F.restarts);
    const res = await h.up(
      () =>
        void new ContainerdFleet(
          "fleet",
          spec({
            registries: { "docker.io": { mirrors: [MIRROR_B] } },
            maxConcurrentDownloads: 4,
            nodes: NODES.map((n) =>
              n === broken ? node(n, { settings: { plugins: { "io.containerd.grpc.v1.cri": { containerd: { default_runtime_name: "missing" } } } } }) : node(n),
            ),
          }),
        ),
    );
    expect(res.ok).toBe(false);
    expect(res.error?.message).toContain(`${broken.name}: containerd was not healthy with the new ${CONFIG}`);
    expect(res.error?.message).toContain("rolled back to the previous config.toml and containerd is healthy again");
    const after = NODES.map((n) => fs.readFileSync(n.configToml, "utf8"));
    expect(after[0]).not.toBe(before[0]); // wave 1 went out
    expect(after[0]).toContain("max_concurrent_downloads = 4");
    expect(after[1]).toBe(before[1]); // wave 2 failed and rolled back
    expect(after[2]).toBe(before[2]); // wave 3 never started
    expect(NODES.map(F.restarts)).toEqual([restartsBefore[0] + 1, restartsBefore[1] + 2, restartsBefore[2]]);
    expect((await F.criPlugins(broken))["io.containerd.grpc.v1.cri"]).toBe("ok");
  });

  it("converges once the bad override is gone, restarting only the nodes still behind", async () => {
    const restartsBefore = NODES.map(F.restarts);
    const res = await h.up(() => void new ContainerdFleet("fleet", spec({ registries: { "docker.io": { mirrors: [MIRROR_B] } }, maxConcurrentDownloads: 4 })));
    expect(res.error?.message).toBeUndefined();
    expect(NODES.map(F.restarts)).toEqual([restartsBefore[0], restartsBefore[1] + 1, restartsBefore[2] + 1]);
    for (const n of NODES) expect(fs.readFileSync(n.configToml, "utf8")).toContain("max_concurrent_downloads = 4");
  });

  it("by default sends a registry change in waves, each node's probe pull through its new hosts.toml passing first", async () => {
    const restarted = NODES.map(F.restarts);
    const mirrorLog = fleet.registry.logs[0];
    const offset = F.logSize(mirrorLog);
    const res = await h.up(() => void new ContainerdFleet("fleet", spec({ maxConcurrentDownloads: 4, rollout: { maxUnavailable: 1, probeImages: { "docker.io": TINY } } })));
    expect(res.error?.message).toBeUndefined();
    const steps = NODES.map((n) => res.steps.find((s) => s.name === `${n.name}:${HUB}` && s.op === "update")!);
    expect(steps[1].startedAt).toBeGreaterThanOrEqual(steps[0].endedAt);
    expect(steps[2].startedAt).toBeGreaterThanOrEqual(steps[1].endedAt);
    for (const n of NODES) {
      expect(await F.nodeFile(n, HUB)).toContain(MIRROR);
      // The probe reached the new mirror from that node.
      expect(F.mirrorRequests(mirrorLog, offset, n).some((l) => l.includes("/v2/library/tiny/manifests/1.0"))).toBe(true);
    }
    expect(NODES.map(F.restarts)).toEqual(restarted);
  });

  it("stops a registry change whose new mirror breaks pulls at the canary: its file is put back, later waves never start", async () => {
    const dead = `http://${new URL(MIRROR).hostname}:5999`; // nothing listens there: connection refused
    const before = await Promise.all(NODES.map((n) => F.nodeFile(n, HUB)));
    const restarted = NODES.map(F.restarts);
    const res = await h.up(
      () => void new ContainerdFleet("fleet", spec({ registries: { "docker.io": { mirrors: [dead] } }, maxConcurrentDownloads: 4, rollout: { maxUnavailable: 1, canary: 1, probeImages: { "docker.io": TINY } } })),
    );
    expect(res.ok).toBe(false);
    const canary = res.steps.find((s) => s.name === `${NODES[0].name}:${HUB}`)!;
    expect(canary.error).toContain(`the probe through the new ${HUB} failed`);
    expect(canary.error).toContain("the previous file is back");
    for (const [i, n] of NODES.entries()) expect(await F.nodeFile(n, HUB)).toBe(before[i]);
    // The later waves' files never ran: skipped after the canary's failure.
    for (const n of NODES.slice(1)) expect(res.steps.find((s) => s.name === `${n.name}:${HUB}`)!.error).toMatch(/skipped because/);
    expect(NODES.map(F.restarts)).toEqual(restarted);
    // Back to the working mirror: converges.
    expect((await h.up(() => void new ContainerdFleet("fleet", spec({ maxConcurrentDownloads: 4, rollout: { maxUnavailable: 1, probeImages: { "docker.io": TINY } } })))).error?.message).toBeUndefined();
  });

  it("restores a node that leaves the fleet", async () => {
    const gone = NODES[2];
    const res = await h.up(() => void new ContainerdFleet("fleet", spec({ registries: { "docker.io": { mirrors: [MIRROR_B] } }, maxConcurrentDownloads: 4, nodes: NODES.slice(0, 2).map((n) => node(n)) })));
    expect(res.error?.message).toBeUndefined();
    expect(res.steps.filter((s) => s.op === "delete" && s.type === "command:remote:Command").map((s) => s.name).sort()).toEqual(
      [`${gone.name}:${CONFIG}`, `${gone.name}:/etc/containerd/certs.d/docker.io/hosts.toml`, `${gone.name}:host`].sort(),
    );
    expect(fs.readFileSync(gone.configToml, "utf8")).not.toContain("containerd-node");
    expect(await F.nodePathExists(gone, "/etc/containerd/certs.d/docker.io/hosts.toml")).toBe(false);
    // Its host resource went last and took the node script with it.
    expect(await F.nodePathExists(gone, "/etc/containerd/.containerd-node/containerd-node.sh")).toBe(false);
    expect((await F.criPlugins(gone))["io.containerd.grpc.v1.cri"]).toBe("ok");
    expect((await h.destroy()).ok).toBe(true);
  });

  it("lets go of a dead node (sshd stopped) with forget: no step contacts it, and removing it then runs nothing on it", async () => {
    const dead = NODES[1];
    const base = () => spec({ registries: { "docker.io": { mirrors: [MIRROR] } } });
    expect((await h.up(() => void new ContainerdFleet("fleet", base()))).error?.message).toBeUndefined();
    const files = fs.readFileSync(dead.configToml, "utf8");
    await F.fault(dead, "sshd-stop");
    try {
      // Without forget, removing the dead node means deletes that must reach it.
      const without = await h.preview(() => void new ContainerdFleet("fleet", { ...base(), nodes: NODES.filter((n) => n !== dead).map((n) => node(n)) }));
      expect(without.steps.filter((st) => st.op === "delete" && st.name.startsWith(`${dead.name}:`)).length).toBeGreaterThan(0);
      h.resetCounters();
      const forgot = await h.up(() => void new ContainerdFleet("fleet", { ...base(), nodes: NODES.map((n) => node(n, n === dead ? { forget: true } : {})) }));
      expect(forgot.error?.message).toBeUndefined();
      expect(forgot.steps.filter((st) => st.name.startsWith(`${dead.name}:`)).every((st) => st.op === "same")).toBe(true);
      const removed = await h.up(() => void new ContainerdFleet("fleet", { ...base(), nodes: NODES.filter((n) => n !== dead).map((n) => node(n)) }));
      expect(removed.error?.message).toBeUndefined();
      // Its host resource and two files were dropped, each without running its delete (a dial
      // to the stopped sshd would have failed the up).
      const drops = removed.steps.filter((st) => st.op === "delete" && st.name.startsWith(`${dead.name}:`));
      expect(drops.map((st) => st.name).sort()).toEqual([`${dead.name}:${CONFIG}`, `${dead.name}:${HUB}`, `${dead.name}:host`].sort());
      expect(drops.every((st) => st.ok)).toBe(true);
      expect(h.state().some((r) => r.name.startsWith(`${dead.name}:`))).toBe(false);
      // The node was left as it was.
      expect(fs.readFileSync(dead.configToml, "utf8")).toBe(files);
    } finally {
      await F.fault(dead, "sshd-start");
    }
    expect((await h.destroy()).ok).toBe(true);
  });
});
