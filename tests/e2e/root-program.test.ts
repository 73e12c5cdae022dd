/**
 * The root program (Pulumi.yaml at the top, program/index.ts: everything from stack configuration)
 * run the way the README tells a user: the real `pulumi` CLI in the repository's top folder, stack
 * config set with `pulumi config set`, then `pulumi preview --diff`, `pulumi up`, `pulumi destroy`,
 * against three nodes of the local fleet.
 */
import { criPullImage, criRemoveImage } from "../support/cri";
import * as F from "./fleet";
import { MIRROR, fleet, rootStack } from "./fixture";

jest.setTimeout(300_000);

const NODES = F.nodesByGeneration(fleet, ["1.6", "1.7", "2.1"]);
const MIRROR_HOST = new URL(MIRROR).host;
const PASSWORD = "pw-root-program";

/** A stack of the root program with the README's commands: nodes by path, the key as a secret. */
const stack = (spec: Record<string, unknown>, opts: { plainKey?: boolean } = {}) =>
  rootStack({ nodes: NODES, spec, rollout: { maxUnavailable: "67%" }, byPath: true, plainKey: opts.plainKey, credentials: { [MIRROR_HOST]: { username: "robot", password: PASSWORD } } });

describe("the root program, through the pulumi CLI from the repository's top folder", () => {
  beforeAll(() => F.resetNodes(NODES));

  it("previews and deploys the fleet described by stack config, with the credentials only in hosts.toml (0600)", async () => {
    const s = await stack({ systemdCgroup: true, sandboxImage: "registry.k8s.io/pause:3.9", healthTimeoutSeconds: 30, registries: { "docker.io": { mirrors: [MIRROR] } } });
    try {
      const preview = await s.ok(["preview", "--diff"]);
      // What the program declares: the fleet, a node per entry, and per node its host resource,
      // config.toml and the docker.io hosts.toml (with its redacted companion: it holds credentials).
      // A program that registers nothing (the language host running the library instead) fails here.
      for (const n of NODES) {
        expect(preview.stdout).toContain(`containerd:index:ContainerdFleet$containerd:index:ContainerdNode::${n.name}]`);
        expect(preview.stdout).toContain(`command:remote:Command::${n.name}:/etc/containerd/config.toml]`);
        expect(preview.stdout).toContain(`command:remote:Command::${n.name}:/etc/containerd/certs.d/docker.io/hosts.toml]`);
      }
      expect(preview.stdout).toMatch(/\+ 17 to create/);
      expect(preview.stdout).not.toContain(PASSWORD);

      const up = await s.ok(["up", "--yes", "--skip-preview"]);
      expect(up.stdout).toMatch(/\+ 17 created/);
      expect(up.stdout).not.toContain(PASSWORD);
      const outputs = JSON.parse((await s.ok(["stack", "output", "--json"])).stdout) as { waves: string[][] };
      // 67% of 3 nodes, rounded down: 2 at once.
      expect(outputs.waves).toEqual([[NODES[0].name, NODES[1].name], [NODES[2].name]]);
      for (const n of NODES) {
        const hosts = await F.nodeFile(n, "/etc/containerd/certs.d/docker.io/hosts.toml");
        expect(hosts).toContain(`Authorization = "Basic ${Buffer.from(`robot:${PASSWORD}`).toString("base64")}"`);
        expect((await F.nodeSh(n, "stat -c %a /etc/containerd/certs.d/docker.io/hosts.toml")).trim()).toBe("600");
        expect(await F.nodeFile(n, "/etc/containerd/config.toml")).not.toContain(PASSWORD);
        await criRemoveImage(n.containerdSocket, "docker.io/library/tiny:1.0").catch(() => undefined);
        await expect(criPullImage(n.containerdSocket, "docker.io/library/tiny:1.0", { timeoutMs: 60_000 })).resolves.toBeTruthy();
      }
      // The state holds no credential or private key in plain text.
      const exported = (await s.ok(["stack", "export"])).stdout;
      expect(exported).not.toContain(PASSWORD);
      expect(exported).not.toContain(NODES[0].privateKey.split("\n")[1]);

      const again = await s.ok(["preview", "--diff", "--expect-no-changes"]);
      expect(again.stdout).toMatch(/17 unchanged/);
      const destroy = await s.ok(["destroy", "--yes", "--skip-preview"]);
      expect(destroy.stdout).toMatch(/- 17 deleted/);
      for (const n of NODES) expect(await F.nodePathExists(n, "/etc/containerd/certs.d/docker.io/hosts.toml")).toBe(false);
    } finally {
      s.dispose();
    }
  });

  it("refuses bad stack config with field paths before touching any node", async () => {
    const s = await stack({ systemdCgroup: "yes", registries: { "docker.io": { mirrors: ["ftp://x"] } } });
    try {
      const before = await F.sshAcceptedAll(NODES);
      const r = await s.cmd(["up", "--yes", "--skip-preview"]);
      expect(r.status).not.toBe(0);
      const text = r.stdout + r.stderr;
      expect(text).toContain('nodes[0] (node-1).systemdCgroup: "yes" is not true or false');
      expect(text).toContain('nodes[2] (node-3).registries["docker.io"].mirrors[0]: "ftp://x" is not an http(s) URL');
      expect(await F.sshAcceptedAll(NODES)).toEqual(before);
    } finally {
      s.dispose();
    }
  });

  it("refuses a private key stored in plain text", async () => {
    const s = await stack({}, { plainKey: true });
    try {
      const r = await s.cmd(["preview"]);
      expect(r.status).not.toBe(0);
      expect(r.stdout + r.stderr).toContain("config privateKey: is stored in plain text; set it with `pulumi config set --secret privateKey ...`");
    } finally {
      s.dispose();
    }
  });
});
