/**
 * Each example's program, unmodified, deployed through the harness to the local fleet (one node per
 * containerd generation) with the fleet's mirror in place of the real ones: it converges, a CRI pull
 * of docker.io/library/tiny:1.0 succeeds through the mirror on every node, and destroy restores
 * every node's original config.toml.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { chinaMirrors } from "../../examples/china-mirrors/program";
import { mixedVersions } from "../../examples/mixed-versions/program";
import { privatePullThrough } from "../../examples/private-pull-through/program";
import type { FleetNodeArgs } from "../../provider/src";
import { Harness } from "../harness/harness";
import { criPullImage, criRemoveImage } from "../support/cri";
import * as F from "./fleet";
import type { FleetNode } from "./fleet";

jest.setTimeout(240_000);

const fleet = F.loadFleet();
const NODES = F.nodesByGeneration(fleet, ["1.6", "1.7", "2.1"]);
const [MIRROR] = fleet.registry.mirrors;
const TINY = "docker.io/library/tiny:1.0";

const fleetNodes = (): (FleetNodeArgs & { containerdVersion: string })[] =>
  NODES.map((n) => ({
    name: n.name,
    containerdVersion: n.containerdVersion,
    healthTimeoutSeconds: 30,
    connection: { host: n.host, port: n.port, user: n.user, privateKey: n.privateKey, hostKey: n.hostKey, dialErrorLimit: 1 },
  }));

async function pullEverywhere(nodes: FleetNode[]): Promise<void> {
  for (const n of nodes) {
    await criRemoveImage(n.containerdSocket, TINY).catch(() => undefined);
    await expect(criPullImage(n.containerdSocket, TINY, { timeoutMs: 60_000 })).resolves.toMatch(/^sha256:|tiny/);
  }
}

const cases: [string, () => void][] = [
  ["china-mirrors", () => {
    chinaMirrors("china", { containerdVersion: "1.7.24", nodes: fleetNodes(), dockerHubMirrors: [MIRROR], k8sMirrors: [MIRROR], sandboxImage: "registry.k8s.io/pause:3.9" });
  }],
  ["private-pull-through", () => {
    privatePullThrough("cache", {
      containerdVersion: "1.7.24",
      harborUrl: MIRROR,
      projects: { "docker.io": "", "registry.k8s.io": "" },
      username: "robot$puller",
      password: pulumi.secret("not-checked-by-the-local-registry"),
      nodes: fleetNodes(),
    });
  }],
  ["mixed-versions", () => {
    mixedVersions("mixed", { dockerHubMirror: MIRROR, sandboxImage: "registry.k8s.io/pause:3.9", nodes: fleetNodes() });
  }],
];

describe.each(cases)("example %s on containerd 1.6.20, 1.7.24 and 2.1.9", (_name, program) => {
  let h: Harness;
  const originals = new Map<string, string>();

  beforeAll(async () => {
    await F.resetNodes(NODES);
    for (const n of NODES) originals.set(n.name, fs.readFileSync(n.configToml, "utf8"));
    h = new Harness({ stateFile: path.join(fs.mkdtempSync(path.join(os.tmpdir(), "examples-")), "state.json"), dialRetryDelayMs: 100 });
  });
  afterAll(() => h?.dispose());

  it("converges with one restart per node, and pulls go through the mirror", async () => {
    const before = NODES.map(F.restarts);
    const res = await h.up(program);
    expect(res.error?.message).toBeUndefined();
    expect(res.ok).toBe(true);
    expect(NODES.map(F.restarts)).toEqual(before.map((b) => b + 1));
    await pullEverywhere(NODES);
  });

  it("does nothing on a second up", async () => {
    h.resetCounters();
    const res = await h.up(program);
    expect(res.ok).toBe(true);
    expect(res.steps.filter((s) => s.op !== "same")).toEqual([]);
    expect(NODES.map((n) => h.sessions(`${n.host}:${n.port}`))).toEqual(NODES.map(() => 0));
  });

  it("restores every node's original config.toml on destroy", async () => {
    const res = await h.destroy();
    expect(res.ok).toBe(true);
    for (const n of NODES) {
      expect(fs.readFileSync(n.configToml, "utf8")).toBe(originals.get(n.name));
      expect((await F.criPlugins(n))["io.containerd.grpc.v1.cri"]).toBe("ok");
      expect(await F.nodePathExists(n, "/etc/containerd/certs.d/docker.io/hosts.toml")).toBe(false);
    }
  });
});
