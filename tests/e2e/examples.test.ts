/**
 * Each example run the way its README tells a user: the real `pulumi` CLI in the example's own folder,
 * its stack config set with `pulumi config set`, against three nodes of the local fleet (containerd
 * 1.6, 1.7 and 2.1), with the fleet's mirror in place of the real ones (the nodes reach nothing else):
 * it converges with one restart per node, a CRI pull of docker.io/library/tiny:1.0 succeeds through
 * the mirror on every node, a second up changes nothing and opens no SSH session but the program's
 * read, and destroy restores every node's original config.toml.
 */
import * as path from "path";
import { CliStack } from "../support/cli";
import { criPullImage, criRemoveImage } from "../support/cri";
import * as F from "./fleet";
import type { FleetNode } from "./fleet";
import { CONFIG, HUB, MIRROR, TINY, configNode, fleet } from "./fixture";

jest.setTimeout(300_000);

const NODES = F.nodesByGeneration(fleet, ["1.6", "1.7", "2.1"]);

/** The stack config each example's README sets, with the local fleet's values. */
const cases: [string, Record<string, unknown>, Record<string, string>][] = [
  [
    "china-mirrors",
    { containerdVersion: "1.7.24", dockerHubMirrors: [MIRROR], k8sMirrors: [MIRROR], sandboxImage: "registry.k8s.io/pause:3.9" },
    {},
  ],
  [
    "private-pull-through",
    { containerdVersion: "1.7.24", harborUrl: MIRROR, harborUser: "robot$puller", projects: { "docker.io": "", "registry.k8s.io": "" } },
    { harborPassword: "not-checked-by-the-local-registry" },
  ],
  ["mixed-versions", { dockerHubMirror: MIRROR, sandboxImage: "registry.k8s.io/pause:3.9" }, {}],
];

async function pullEverywhere(nodes: FleetNode[]): Promise<void> {
  for (const n of nodes) {
    await criRemoveImage(n.containerdSocket, TINY).catch(() => undefined);
    await expect(criPullImage(n.containerdSocket, TINY, { timeoutMs: 60_000 })).resolves.toMatch(/^sha256:|tiny/);
  }
}

describe.each(cases)("example %s, from its folder, on containerd 1.6.20, 1.7.24 and 2.1.9", (name, config, secrets) => {
  let s: CliStack;
  const originals = new Map<string, string | undefined>();

  beforeAll(async () => {
    await F.resetNodes(NODES);
    for (const n of NODES) originals.set(n.name, await F.nodeFile(n, CONFIG));
    s = new CliStack({ cwd: path.join(F.REPO, "examples", name), dir: F.E2E_DIR });
    await s.init();
    await s.set("privateKey", NODES[0].privateKey, { secret: true });
    for (const [k, v] of Object.entries(secrets)) await s.set(k, v, { secret: true });
    await s.setAll(Object.fromEntries([...Object.entries(config), ["nodes", NODES.map((n) => configNode(n))]].map(([k, v]) => [`${name}:${k}`, v])));
  });
  afterAll(() => s?.dispose());

  it("previews every node's files, converges with one restart per node, and pulls go through the mirror", async () => {
    const preview = await s.ok(["preview", "--diff"]);
    for (const n of NODES) expect(preview.stdout).toContain(`command:remote:Command::${n.name}:${CONFIG}]`);
    const before = NODES.map(F.restarts);
    const up = await s.ok(["up", "--yes", "--skip-preview"]);
    expect(up.stdout).toMatch(/\+ \d+ created/);
    for (const v of Object.values(secrets)) expect(up.stdout + preview.stdout).not.toContain(v);
    expect(NODES.map(F.restarts)).toEqual(before.map((b) => b + 1));
    await pullEverywhere(NODES);
  });

  it("does nothing on a second up: no step, and no SSH session but the program's read of each node", async () => {
    const before = await F.sshAcceptedAll(NODES);
    const up = await s.ok(["up", "--yes", "--skip-preview", "--expect-no-changes"]);
    expect(up.stdout).not.toMatch(/\d+ (created|updated|deleted|replaced)/);
    expect(await F.sshAcceptedAll(NODES)).toEqual(before.map((b) => b + 1));
  });

  it("restores every node's original config.toml on destroy", async () => {
    await s.ok(["destroy", "--yes", "--skip-preview"]);
    for (const n of NODES) {
      expect(await F.nodeFile(n, CONFIG)).toBe(originals.get(n.name));
      expect((await F.criPlugins(n))["io.containerd.grpc.v1.cri"]).toBe("ok");
      expect(await F.nodePathExists(n, HUB)).toBe(false);
    }
  });
});
