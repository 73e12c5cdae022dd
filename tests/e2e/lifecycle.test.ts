/**
 * A node's life on the local fleet, through the harness: it moves to another machine, its node
 * script changes, and its outputs say what the latest `up` did (containerd 1.6.20 and 1.7.24).
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ContainerdFleet, ContainerdNode, ContainerdNodeArgs } from "../../provider/src";
import { Harness, ResourceState } from "../harness/harness";
import * as F from "./fleet";
import type { FleetNode } from "./fleet";

jest.setTimeout(300_000);

const fleet = F.loadFleet();
const [N16, N17] = F.nodesByGeneration(fleet, ["1.6", "1.7"]);
const [MIRROR, MIRROR_B] = fleet.registry.mirrors;
const CONFIG = "/etc/containerd/config.toml";
const HUB = "/etc/containerd/certs.d/docker.io/hosts.toml";
const SCRIPT = "/etc/containerd/.containerd-node/containerd-node.sh";

const connection = (n: FleetNode) => ({ host: n.host, port: n.port, user: n.user, privateKey: n.privateKey, hostKey: n.hostKey, dialErrorLimit: 1 });

function spec(on: FleetNode, extra: Partial<ContainerdNodeArgs> = {}): ContainerdNodeArgs {
  return {
    // 1.6 renders a version 2 config.toml that 1.6 and 1.7 both take.
    containerdVersion: "1.6",
    systemdCgroup: true,
    healthTimeoutSeconds: 30,
    registries: { "docker.io": { mirrors: [MIRROR] } },
    connection: connection(on),
    ...extra,
  };
}

const newHarness = () => new Harness({ stateFile: path.join(fs.mkdtempSync(path.join(os.tmpdir(), "lifecycle-")), "state.json"), dialRetryDelayMs: 100 });

describe("a node whose address moves to another machine", () => {
  let h: Harness;
  let originals: { n16: string; n17: string };
  beforeAll(async () => {
    await F.resetNodes([N16, N17]);
    originals = { n16: fs.readFileSync(N16.configToml, "utf8"), n17: fs.readFileSync(N17.configToml, "utf8") };
    h = newHarness();
  });
  afterAll(async () => {
    await h?.destroy();
    h?.dispose();
  });

  it("shows the move in the preview, restores the machine it leaves before applying on the new one", async () => {
    const first = await h.up(() => void new ContainerdNode("mover", spec(N16)));
    expect(first.error?.message).toBeUndefined();
    expect(await F.nodeFile(N16, HUB)).toContain(MIRROR);
    const before = { n16: F.restarts(N16), n17: F.restarts(N17) };

    // Preview: the host resource is replaced (its trigger is the address), delete first; the
    // files are updates (their connection changed); nothing runs.
    const moved = () => void new ContainerdNode("mover", spec(N17));
    const preview = await h.preview(moved);
    expect(preview.error?.message).toBeUndefined();
    const hostSteps = preview.steps.filter((s) => s.name === "mover:host");
    expect(hostSteps.map((s) => s.op).sort()).toEqual(["delete", "replace"]);
    const replace = hostSteps.find((s) => s.op === "replace")!;
    expect(replace.diffKeys).toContain("triggers");
    expect(replace.oldInputs!.triggers).toEqual([`${N16.host}:${N16.port}`]);
    expect(replace.newInputs!.triggers).toEqual([`${N17.host}:${N17.port}`]);
    for (const f of [CONFIG, HUB]) {
      const st = preview.steps.find((s) => s.name === `mover:${f}`)!;
      expect(st.op).toBe("update");
      expect(st.diffKeys).toEqual(["connection"]);
    }
    expect(F.restarts(N16)).toBe(before.n16);

    const res = await h.up(moved);
    expect(res.error?.message).toBeUndefined();
    // The machine it left: its original config.toml (one restart onto it), no hosts.toml, no script.
    expect(fs.readFileSync(N16.configToml, "utf8")).toBe(originals.n16);
    expect(await F.nodePathExists(N16, HUB)).toBe(false);
    expect(await F.nodePathExists(N16, SCRIPT)).toBe(false);
    expect(F.restarts(N16)).toBe(before.n16 + 1);
    expect((await F.criPlugins(N16))["io.containerd.grpc.v1.cri"]).toBe("ok");
    // The new machine: the node's files, one restart.
    expect(await F.nodeFile(N17, HUB)).toContain(MIRROR);
    expect(fs.readFileSync(N17.configToml, "utf8")).toContain("SystemdCgroup = true");
    expect(F.restarts(N17)).toBe(before.n17 + 1);
    // In that order: the release on the old machine finished before the first file went to the new one.
    const release = res.steps.find((s) => s.name === "mover:host" && s.op === "delete")!;
    const firstFile = Math.min(...res.steps.filter((s) => s.name.startsWith("mover:/")).map((s) => s.startedAt));
    expect(release.endedAt).toBeLessThanOrEqual(firstFile);
  });
});

describe("a change of the node script alone", () => {
  it("costs one SSH session per node (its host resource), none per file", async () => {
    await F.resetNodes([N16]);
    const h = newHarness();
    try {
      const program = () => void new ContainerdNode("scripted", spec(N16));
      expect((await h.up(program)).error?.message).toBeUndefined();
      // As if the library had shipped another script: the state's copy differs from this one.
      const stateFile = (h as unknown as { stateFile: string }).stateFile;
      const state = JSON.parse(fs.readFileSync(stateFile, "utf8")) as { resources: ResourceState[] };
      const host = state.resources.find((r) => r.name === "scripted:host")!;
      host.inputs.stdin = String(host.inputs.stdin).replace("set -eu", "set -eu\n# an older revision");
      fs.writeFileSync(stateFile, JSON.stringify(state));
      h.resetCounters();
      const restarts = F.restarts(N16);
      const res = await h.up(program);
      expect(res.error?.message).toBeUndefined();
      expect(res.steps.filter((s) => s.op !== "same").map((s) => `${s.name} ${s.op}`)).toEqual(["scripted:host update"]);
      expect(h.sessions(`${N16.host}:${N16.port}`)).toBe(1);
      expect(F.restarts(N16)).toBe(restarts);
      await h.destroy();
    } finally {
      h.dispose();
    }
  });
});

describe("outputs describe the latest up", () => {
  it("restarted, lastApply and the fleet's restartedNodes say what this up did, not what each command did last", async () => {
    await F.resetNodes([N16, N17]);
    const h = newHarness();
    const program = (mirror: string, downloads: number) => () => {
      const f = new ContainerdFleet("f", {
        containerdVersion: "1.6",
        systemdCgroup: true,
        healthTimeoutSeconds: 30,
        maxConcurrentDownloads: downloads,
        registries: { "docker.io": { mirrors: [mirror] } },
        nodes: [N16, N17].map((n) => ({ name: n.name, connection: connection(n) })),
      });
      const n = f.nodes[N16.name];
      return { restartedNodes: f.restartedNodes, restarted: n.restarted, lastApply: n.lastApply };
    };
    try {
      const first = await h.up(program(MIRROR, 3));
      expect(first.error?.message).toBeUndefined();
      expect(first.outputs.restartedNodes).toEqual([N16.name, N17.name]);
      expect(first.outputs.restarted).toBe(true);
      expect((first.outputs.lastApply as { path: string }[]).map((r) => r.path).sort()).toEqual([HUB, CONFIG]);

      // Nothing to do: nothing ran, nothing restarted.
      const noop = await h.up(program(MIRROR, 3));
      expect(noop.error?.message).toBeUndefined();
      expect(noop.outputs).toEqual({ restartedNodes: [], restarted: false, lastApply: [] });

      // A mirror change: the hosts.toml files ran, containerd did not restart.
      const hosts = await h.up(program(MIRROR_B, 3));
      expect(hosts.outputs.restartedNodes).toEqual([]);
      expect(hosts.outputs.restarted).toBe(false);
      expect(hosts.outputs.lastApply).toEqual([{ path: HUB, written: true, restarted: false, deprecations: [] }]);

      // A config change: both restart again, and say so.
      const config = await h.up(program(MIRROR_B, 5));
      expect(config.outputs.restartedNodes).toEqual([N16.name, N17.name]);
      expect((config.outputs.lastApply as { path: string; restarted: boolean }[]).map((r) => [r.path, r.restarted])).toEqual([[CONFIG, true]]);
      await h.destroy();
    } finally {
      h.dispose();
    }
  });
});
