/**
 * The root program (program/index.ts: everything from stack configuration) against the local fleet,
 * through the harness with the stack config a user would set with `pulumi config set`.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { fleetFromStackConfig } from "../../provider/src";
import { Harness } from "../harness/harness";
import { criPullImage, criRemoveImage } from "../support/cri";
import * as F from "./fleet";

jest.setTimeout(300_000);

const fleet = F.loadFleet();
const NODES = F.nodesByGeneration(fleet, ["1.6", "1.7", "2.1"]);
const [MIRROR] = fleet.registry.mirrors;
const P = "containerd-fleet";

function stackConfig(spec: object): Record<string, string> {
  return {
    [`${P}:nodes`]: JSON.stringify(NODES.map((n) => ({ name: n.name, host: n.host, port: n.port, hostKey: n.hostKey, containerdVersion: n.containerdVersion }))),
    [`${P}:privateKey`]: NODES[0].privateKey,
    [`${P}:spec`]: JSON.stringify(spec),
    [`${P}:rollout`]: JSON.stringify({ maxUnavailable: "67%" }),
    [`${P}:credentials`]: JSON.stringify({ [new URL(MIRROR).host]: { username: "robot", password: "pw-root-program" } }),
  };
}

const harness = (config: Record<string, string>, secret = [`${P}:privateKey`, `${P}:credentials`]) =>
  new Harness({ project: P, stack: "e2e", config, secretConfigKeys: secret, stateFile: path.join(fs.mkdtempSync(path.join(os.tmpdir(), "root-")), "state.json"), dialRetryDelayMs: 100 });

describe("the root program", () => {
  beforeAll(() => F.resetNodes(NODES));

  it("deploys the fleet described by stack config, with the credentials only in hosts.toml (0600)", async () => {
    const h = harness(stackConfig({ systemdCgroup: true, sandboxImage: "registry.k8s.io/pause:3.9", healthTimeoutSeconds: 30, registries: { "docker.io": { mirrors: [MIRROR] } } }));
    try {
      const res = await h.up(() => {
        const f = fleetFromStackConfig();
        return { waves: f.waves };
      });
      expect(res.error?.message).toBeUndefined();
      // 67% of 3 nodes, rounded down: 2 at once.
      expect(res.outputs.waves).toEqual([[NODES[0].name, NODES[1].name], [NODES[2].name]]);
      for (const n of NODES) {
        const hosts = await F.nodeFile(n, "/etc/containerd/certs.d/docker.io/hosts.toml");
        expect(hosts).toContain(`Authorization = "Basic ${Buffer.from("robot:pw-root-program").toString("base64")}"`);
        expect((await F.nodeSh(n, "stat -c %a /etc/containerd/certs.d/docker.io/hosts.toml")).trim()).toBe("600");
        expect(fs.readFileSync(n.configToml, "utf8")).not.toContain("pw-root-program");
        await criRemoveImage(n.containerdSocket, "docker.io/library/tiny:1.0").catch(() => undefined);
        await expect(criPullImage(n.containerdSocket, "docker.io/library/tiny:1.0", { timeoutMs: 60_000 })).resolves.toBeTruthy();
      }
      for (const s of res.steps) expect(JSON.stringify(s.newInputs?.create ?? "")).not.toContain("pw-root-program");
      expect((await h.destroy()).ok).toBe(true);
    } finally {
      h.dispose();
    }
  });

  it("refuses bad stack config with field paths before touching any node", async () => {
    const h = harness(stackConfig({ systemdCgroup: "yes", registries: { "docker.io": { mirrors: ["ftp://x"] } } }));
    try {
      const res = await h.up(() => void fleetFromStackConfig());
      expect(res.ok).toBe(false);
      expect(res.error?.message).toContain('nodes[0] (node-1).systemdCgroup: "yes" is not true or false');
      expect(res.error?.message).toContain('nodes[2] (node-3).registries["docker.io"].mirrors[0]: "ftp://x" is not an http(s) URL');
      expect(NODES.map((n) => h.sessions(`${n.host}:${n.port}`))).toEqual([0, 0, 0]);
    } finally {
      h.dispose();
    }
  });

  it("refuses a private key stored in plain text", async () => {
    const h = harness(stackConfig({}), [`${P}:credentials`]);
    try {
      const res = await h.up(() => void fleetFromStackConfig());
      expect(res.ok).toBe(false);
      expect(res.error?.message).toContain("config privateKey: is stored in plain text; set it with `pulumi config set --secret privateKey ...`");
    } finally {
      h.dispose();
    }
  });
});
