/**
 * ContainerdNode under pulumi.runtime.setMocks: which child resources it declares, their inputs,
 * their order, what is secret, and what a change touches. Nothing runs on a host here.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { ContainerdNode, ContainerdNodeArgs, SpecError, renderNode } from "../../provider/src";
import { INSTALLED_SCRIPT } from "../../provider/src/remote/commands";
import { NODE_SCRIPT } from "../../provider/src/remote/node-script";
import { TEST_CLIENT_CERT_PEM, TEST_CLIENT_KEY_PEM } from "../fixtures/pem";
import { seedSpec } from "../fixtures/specs";
import { MockWorld, installMocks, settle, valueOf } from "../support/mocks";

afterEach(settle);

const connection = { host: "10.0.0.11", user: "root", privateKey: "KEY", hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPtest" };
/** The file commands (not the node's host resource). */
const commands = (w: MockWorld) => w.registered.filter((r) => r.type === "command:remote:Command" && !r.name.endsWith(":host"));
const SCRIPT = "'/etc/containerd/.containerd-node/containerd-node.sh'";

async function declare(args: ContainerdNodeArgs, world: MockWorld, name = "node-1"): Promise<ContainerdNode> {
  const node = new ContainerdNode(name, args, { transformations: [world.transformation] });
  await valueOf(node.lastApply);
  return node;
}

describe("child resources", () => {
  it("declares one remote.Command per rendered file, named after node and path, whose stdin is the file", async () => {
    const world = installMocks();
    const spec = seedSpec("1.7.24");
    await declare({ ...spec, connection }, world);
    const rendered = renderNode(spec);
    expect(commands(world).map((c) => c.name).sort()).toEqual(rendered.files.map((f) => `node-1:${f.path}`).sort());
    for (const f of rendered.files) expect(world.byName(`node-1:${f.path}`).inputs.stdin).toBe(f.content);
    expect(world.byName("node-1").type).toBe("containerd:index:ContainerdNode");
  });

  it("puts the content only on stdin: the command is a short constant line that runs the installed script with quoted arguments, no environment", async () => {
    const world = installMocks();
    await declare({ ...seedSpec("1.7"), connection }, world);
    for (const c of commands(world)) {
      expect(c.inputs.create.startsWith(`/bin/sh -c '[ -f "$0" ] || `)).toBe(true);
      expect(c.inputs.create).toContain(`${SCRIPT} 'apply' `);
      // Not the script itself: a change of it touches the host resource only.
      expect(c.inputs.create).not.toContain(NODE_SCRIPT.split("\n")[0]);
      expect(c.inputs.create.length).toBeLessThan(800);
      expect(c.inputs.create).not.toContain("docker.mirrors.sjtug.sjtu.edu.cn");
      expect(c.inputs.environment).toBeUndefined();
      expect(c.inputs.addPreviousOutputInEnv).toBe(false);
      expect(c.inputs.triggers).toBeUndefined();
      expect(c.inputs.connection).toMatchObject(connection);
      expect(c.inputs.delete.length).toBeLessThan(800);
    }
    const config = world.byName("node-1:/etc/containerd/config.toml").inputs.create as string;
    expect(config).toMatch(/'apply' 'config' '\/etc\/containerd\/config\.toml' '0644' '\/etc\/containerd\/\.containerd-node\.lock' 'node-1' 'containerd' 'ctr' '\/run\/containerd\/containerd\.sock' 'systemctl restart containerd' '60' '2' '1\.7\.0' 'urn:pulumi:test::containerd-node-test::containerd:index:ContainerdNode::node-1'$/);
    const hosts = world.byName("node-1:/etc/containerd/certs.d/docker.io/hosts.toml").inputs.create as string;
    // Files get the version guard (containerd, config version, minimum) but no restart settings.
    expect(hosts).toMatch(/'apply' 'file' '\/etc\/containerd\/certs\.d\/docker\.io\/hosts\.toml' '0644' .* 'node-1' 'containerd' 'ctr' '\/run\/containerd\/containerd\.sock' '' '' '2' '1\.7\.0' 'urn:pulumi:test::containerd-node-test::containerd:index:ContainerdNode::node-1'$/);
  });

  it("orders writes: certificates, then their hosts.toml, then config.toml after everything; no replace can undo a file", async () => {
    const world = installMocks();
    await declare(
      {
        containerdVersion: "2.1",
        connection,
        registries: {
          "registry.example.test": { server: { url: "https://registry.example.test", client: { cert: TEST_CLIENT_CERT_PEM, key: TEST_CLIENT_KEY_PEM } } },
          "quay.io": { mirrors: ["https://q.test"] },
        },
      },
      world,
    );
    const dir = "node-1:/etc/containerd/certs.d/registry.example.test";
    const opt = (n: string) => world.options.find((o) => o.name === n)!;
    // Everything waits for the host resource, which installs the node script.
    expect(opt(`${dir}/hosts.toml`).dependsOn.sort()).toEqual([`${dir}/registry.example.test.client.cert`, `${dir}/registry.example.test.client.key`, "node-1:host"].sort());
    expect(opt("node-1:/etc/containerd/certs.d/quay.io/hosts.toml").dependsOn).toEqual(["node-1:host"]);
    expect(opt("node-1:/etc/containerd/config.toml").dependsOn.sort()).toEqual(
      ["node-1:host", ...commands(world).map((c) => c.name).filter((n) => !n.endsWith("config.toml"))].sort(),
    );
    expect(opt("node-1:host").dependsOn).toEqual([]);
    for (const o of world.options.filter((x) => x.name.includes(":/") || x.name.endsWith(":host"))) {
      expect(o.deleteBeforeReplace).toBe(true);
      expect(o.parent).toBe("node-1");
    }
  });

  it("restores on delete by default and leaves files with onDelete keep", async () => {
    const w1 = installMocks();
    await declare({ ...seedSpec("1.7"), connection }, w1);
    expect(w1.byName("node-1:/etc/containerd/config.toml").inputs.delete).toContain(`${SCRIPT} 'restore' 'config' `);
    const w2 = installMocks();
    await declare({ ...seedSpec("1.7"), connection, onDelete: "keep" }, w2);
    for (const c of commands(w2)) expect(c.inputs.delete).toBeUndefined();
  });

  it("under onDelete keep still restores the files that hold credentials", async () => {
    const w = installMocks();
    const registries = { "docker.io": { mirrors: [{ url: "https://m.test", auth: { username: "u", password: "p" } }] }, "quay.io": { mirrors: ["https://q.test"] } };
    await declare({ containerdVersion: "1.7", connection, onDelete: "keep", registries }, w);
    expect(w.byName("node-1:/etc/containerd/certs.d/docker.io/hosts.toml").inputs.delete).toContain(`${SCRIPT} 'restore' 'file' '/etc/containerd/certs.d/docker.io/hosts.toml'`);
    expect(w.byName("node-1:/etc/containerd/certs.d/quay.io/hosts.toml").inputs.delete).toBeUndefined();
    expect(w.byName("node-1:/etc/containerd/config.toml").inputs.delete).toBeUndefined();
  });

  it("passes options through: restart command, timeout, health checks, sudo, binaries", async () => {
    const world = installMocks();
    await declare(
      { ...seedSpec("2.1.9"), connection, restartCommand: "rc-service containerd restart", healthTimeoutSeconds: 90, healthChecks: ["crictl pull busybox"], sudo: true, containerdPath: "/usr/local/bin/containerd" },
      world,
    );
    const create = world.byName("node-1:/etc/containerd/config.toml").inputs.create as string;
    expect(create.startsWith("sudo -n /bin/sh -c ")).toBe(true);
    expect(world.byName("node-1:host").inputs.create.startsWith("sudo -n /bin/sh -c ")).toBe(true);
    expect(world.byName("node-1:host").inputs.delete.startsWith("sudo -n /bin/sh -c ")).toBe(true);
    expect(create).toMatch(/'\/usr\/local\/bin\/containerd' 'ctr' '\/run\/containerd\/containerd\.sock' 'rc-service containerd restart' '90' '3' '2\.1\.9' 'urn:pulumi:test::containerd-node-test::containerd:index:ContainerdNode::node-1' 'crictl pull busybox'$/);
  });
});

describe("the node's host resource", () => {
  it("installs the node script from stdin, triggers on the SSH address, and is replaced delete-first", async () => {
    const world = installMocks();
    await declare({ ...seedSpec("1.7"), connection: { ...connection, port: 2222 } }, world);
    const host = world.byName("node-1:host");
    expect(host.inputs.stdin).toBe(INSTALLED_SCRIPT);
    expect(host.inputs.triggers).toEqual(["10.0.0.11:2222"]);
    expect(host.inputs.create).toMatch(/ 'containerd-node-install' '\/etc\/containerd\/\.containerd-node\/containerd-node\.sh' 'urn:pulumi:test::containerd-node-test::containerd:index:ContainerdNode::node-1' 'node-1' '\d+'$/);
    expect(host.inputs.addPreviousOutputInEnv).toBe(false);
    const opt = world.options.find((o) => o.name === "node-1:host")!;
    expect(opt.deleteBeforeReplace).toBe(true);
    expect(opt.retainOnDelete).toBe(false);
  });

  it("releases on delete every file of the node, config.toml first, with the restore settings", async () => {
    const world = installMocks();
    await declare({ ...seedSpec("1.7"), connection }, world);
    const del = world.byName("node-1:host").inputs.delete as string;
    expect(del).toContain(`${SCRIPT} 'release' 'all' '-' '0' '/etc/containerd/.containerd-node.lock' 'node-1' 'containerd' 'ctr' '/run/containerd/containerd.sock' 'systemctl restart containerd' '60' '2' '1.7.0' 'urn:pulumi:test::containerd-node-test::containerd:index:ContainerdNode::node-1' 'config' '/etc/containerd/config.toml' 'file' '/etc/containerd/certs.d/`);
    for (const c of commands(world)) expect(del).toContain(`'${c.name.slice("node-1:".length)}'`);
  });

  it("under onDelete keep releases only the files that hold credentials; forget retains it like the files", async () => {
    const world = installMocks();
    const registries = { "docker.io": { mirrors: [{ url: "https://m.test", auth: { username: "u", password: "p" } }] }, "quay.io": { mirrors: ["https://q.test"] } };
    await declare({ containerdVersion: "1.7", connection, onDelete: "keep", registries }, world);
    const del = world.byName("node-1:host").inputs.delete as string;
    expect(del).toMatch(/'1\.7\.0' '[^']*node-1' 'file' '\/etc\/containerd\/certs\.d\/docker\.io\/hosts\.toml'$/);
    const w2 = installMocks();
    await declare({ ...seedSpec("1.7"), connection, forget: true }, w2);
    const retained = w2.options.filter((x) => x.name.startsWith("node-1:"));
    expect(retained.map((o) => o.name).sort()).toEqual([
      "node-1:/etc/containerd/certs.d/docker.io/hosts.toml",
      "node-1:/etc/containerd/certs.d/registry.k8s.io/hosts.toml",
      "node-1:/etc/containerd/config.toml",
      "node-1:host",
    ]);
    for (const o of retained) expect(o.retainOnDelete).toBe(true);
    // Every input keeps its recorded value: no change (a new release's command lines or node
    // script included) can make an update that dials a forgotten node.
    const inputs = ["connection", "create", "update", "delete", "stdin", "environment", "triggers", "logging", "addPreviousOutputInEnv"];
    for (const o of retained) expect([...(o.ignoreChanges ?? [])].sort()).toEqual([...inputs].sort());
    // Every input a remote.Command has is among them.
    const cmd = w2.byName("node-1:/etc/containerd/config.toml");
    for (const k of Object.keys(cmd.inputs)) expect(inputs).toContain(k);
  });

  it("takes the address from a connection given as an Output", async () => {
    const world = installMocks();
    await declare({ ...seedSpec("1.7"), connection: pulumi.output({ ...connection, host: "node-7.example.test" }) }, world);
    expect(world.byName("node-1:host").inputs.triggers).toEqual(["node-7.example.test:22"]);
  });
});

describe("secrets", () => {
  it("makes only the hosts.toml holding credentials secret", async () => {
    const world = installMocks();
    await declare(
      { containerdVersion: "1.7", connection, registries: { "docker.io": { mirrors: [{ url: "https://m.test", auth: { username: "u", password: "pw" } }] }, "quay.io": { mirrors: ["https://q.test"] } } },
      world,
    );
    expect(world.byName("node-1:/etc/containerd/certs.d/docker.io/hosts.toml").secretInputs).toContain("stdin");
    expect(world.byName("node-1:/etc/containerd/certs.d/quay.io/hosts.toml").secretInputs).not.toContain("stdin");
    expect(world.byName("node-1:/etc/containerd/config.toml").secretInputs).not.toContain("stdin");
    for (const c of commands(world)) {
      expect(c.inputs.create).not.toContain("pw");
      expect(c.inputs.delete).not.toContain("pw");
    }
  });

  it("puts a redacted copy of each secret hosts.toml beside it: readable, not secret, no credential", async () => {
    for (const password of ["pw-plain-1", pulumi.secret("pw-secret-2")]) {
      const world = installMocks();
      await declare(
        {
          containerdVersion: "2.1",
          connection,
          registries: {
            "docker.io": { mirrors: [{ url: "https://m.test", auth: { username: "robot", password }, headers: { "X-Team": "platform" } }] },
            "quay.io": { mirrors: ["https://q.test"] },
          },
        },
        world,
      );
      const shadow = world.byName("node-1:/etc/containerd/certs.d/docker.io/hosts.toml (redacted)");
      expect(shadow.type).toBe("command:local:Command");
      expect(shadow.secretInputs).toEqual([]);
      expect(Object.keys(shadow.inputs).sort()).toEqual(["stdin"]);
      const text = String(shadow.inputs.stdin);
      expect(text).toContain('[host."https://m.test"]');
      expect(text).toContain('[host."https://m.test".header]\n');
      expect(text).toContain('\nAuthorization = "[redacted]"\n');
      expect(text).toContain('\nX-Team = "[redacted]"\n');
      expect(text).not.toMatch(/pw-|Basic|cm9ib3Q/);
      // Only secret files get one.
      expect(world.registered.filter((r) => r.type === "command:local:Command").map((r) => r.name)).toEqual([shadow.name]);
    }
  });

  it("takes credentials as Pulumi secrets, renders the real value, and keeps it secret", async () => {
    const world = installMocks();
    const node = await declare(
      {
        containerdVersion: "2.1",
        connection,
        registries: {
          "docker.io": { mirrors: [{ url: "https://m.test", auth: { username: "robot", password: pulumi.secret("s3cret") } }] },
          "ghcr.io": { mirrors: [{ url: "https://g.test", headers: { "X-Tenant": pulumi.output("team-a") } }] },
          "quay.io": { server: { url: "https://quay.example.test", client: { cert: TEST_CLIENT_CERT_PEM, key: pulumi.secret(TEST_CLIENT_KEY_PEM) } } },
        },
      },
      world,
    );
    const hub = world.byName("node-1:/etc/containerd/certs.d/docker.io/hosts.toml");
    expect(hub.secretInputs).toContain("stdin");
    expect(hub.inputs.stdin).toContain(`Authorization = "Basic ${Buffer.from("robot:s3cret").toString("base64")}"`);
    const ghcr = world.byName("node-1:/etc/containerd/certs.d/ghcr.io/hosts.toml");
    expect(ghcr.inputs.stdin).toContain('X-Tenant = "team-a"');
    // Fed by an Output: treated as secret even though this one was not marked secret.
    expect(ghcr.secretInputs).toContain("stdin");
    expect(world.byName("node-1:/etc/containerd/config.toml").secretInputs).not.toContain("stdin");
    const key = world.byName("node-1:/etc/containerd/certs.d/quay.io/quay.example.test.client.key");
    expect(key.secretInputs).toContain("stdin");
    expect(key.inputs.stdin).toContain(TEST_CLIENT_KEY_PEM.trim());
    expect(world.byName("node-1:/etc/containerd/certs.d/quay.io/quay.example.test.client.cert").secretInputs).not.toContain("stdin");
    const files = await valueOf(node.files);
    expect(files.find((f) => f.path.endsWith("docker.io/hosts.toml"))!.secret).toBe(true);
  });

  it("treats any file fed by an Output as secret and 0600, whatever the header is called", async () => {
    const world = installMocks();
    const node = await declare({ containerdVersion: "2.1", connection, registries: { "ghcr.io": { mirrors: [{ url: "https://g.test", headers: { "X-Api-Key": pulumi.secret("k-123") } }] } } }, world);
    const hosts = world.byName("node-1:/etc/containerd/certs.d/ghcr.io/hosts.toml");
    expect(hosts.secretInputs).toContain("stdin");
    expect(hosts.inputs.create).toMatch(/'apply' 'file' '\/etc\/containerd\/certs\.d\/ghcr\.io\/hosts\.toml' '0600' /);
    expect((await valueOf(node.files)).find((f) => f.path.endsWith("ghcr.io/hosts.toml"))).toMatchObject({ secret: true, mode: 0o600 });
  });

  it("refuses Outputs inside settings, saying where", () => {
    installMocks();
    expect(() => new ContainerdNode("node-8", { containerdVersion: "1.7", connection, settings: { plugins: { "io.containerd.grpc.v1.cri": { sandbox_image: pulumi.output("x") } } } })).toThrow(
      'Invalid ContainerdNode args for "node-8":\n - settings.plugins["io.containerd.grpc.v1.cri"].sandbox_image: is an Output or Promise; settings must be plain values known when the program runs',
    );
  });

  it("refuses a node whose host key is neither pinned nor in known_hosts, naming the ssh-keyscan line; accept-any warns", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kh-"));
    const knownHostsFile = path.join(dir, "known_hosts");
    fs.writeFileSync(knownHostsFile, "other.test ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOther\n");
    const warn = jest.spyOn(pulumi.log, "warn").mockImplementation(() => Promise.resolve());
    try {
      const world = installMocks();
      await expect(declare({ ...seedSpec("1.7"), knownHostsFile, connection: { host: "10.0.0.12", port: 2222, privateKey: "KEY" } }, world, "node-2")).rejects.toThrow(
        `Invalid ContainerdNode args for "node-2":\n - connection.hostKey: is not set and [10.0.0.12]:2222 has no ed25519, ecdsa or rsa key in ${knownHostsFile}; ` +
          `add it (check its fingerprint first: ssh-keyscan -p 2222 -t ed25519 10.0.0.12 >> ${knownHostsFile}), set hostKey, or set hostKeyPolicy: "accept-any" to accept any host key`,
      );
      expect(commands(world)).toEqual([]);
      await declare({ ...seedSpec("1.7"), hostKeyPolicy: "accept-any", connection: { host: "10.0.0.13", privateKey: "KEY" } }, world, "node-3");
      await declare({ ...seedSpec("1.7"), connection }, world, "node-4");
      const msgs = warn.mock.calls.map((c) => String(c[0])).filter((m) => m.includes("host key"));
      expect(msgs).toEqual(['node-3: hostKeyPolicy is "accept-any": any SSH host key of 10.0.0.13 is accepted']);
    } finally {
      warn.mockRestore();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("pins the key known_hosts holds for the host when hostKey is not given", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kh-"));
    const knownHostsFile = path.join(dir, "known_hosts");
    fs.writeFileSync(knownHostsFile, "[10.0.0.12]:2222 ssh-rsa AAAAB3NzaRSA\n[10.0.0.12]:2222 ssh-ed25519 AAAAC3NzaED\n");
    try {
      const world = installMocks();
      await declare({ ...seedSpec("1.7"), knownHostsFile, connection: { host: "10.0.0.12", port: 2222, privateKey: "KEY" } }, world, "node-2");
      const conn = commands(world)[0].inputs.connection;
      expect(conn).toMatchObject({ host: "10.0.0.12", port: 2222, hostKey: "ssh-ed25519 AAAAC3NzaED" });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("host keys that cannot be pinned, and jump hosts", () => {
  const KH = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPtest";

  it.each([
    ["a key without its base64 field", "ssh-ed25519"],
    ["a type the provider does not pin", "ssh-dss AAAAB3NzaC1kc3MAAACBAP"],
    ["a blob of another type", "ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQAB"],
    ["not base64", "ssh-ed25519 not-base64!"],
  ])("refuses %s in connection.hostKey before anything is declared", async (_what, hostKey) => {
    const world = installMocks();
    await expect(declare({ ...seedSpec("1.7"), connection: { ...connection, hostKey } }, world, "node-2")).rejects.toThrow(
      new RegExp(`Invalid ContainerdNode args for "node-2":\\n - connection\\.hostKey: "${hostKey.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}" is not an OpenSSH public key`),
    );
    expect(commands(world)).toEqual([]);
  });

  it("pins the jump host's key from known_hosts, and refuses a jump host with none", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kh-"));
    const knownHostsFile = path.join(dir, "known_hosts");
    fs.writeFileSync(knownHostsFile, `bastion.test ${KH}\n`);
    try {
      const world = installMocks();
      await declare({ ...seedSpec("1.7"), knownHostsFile, connection: { ...connection, proxy: { host: "bastion.test", privateKey: "KEY" } } as never }, world, "node-2");
      expect(commands(world)[0].inputs.connection).toMatchObject({ hostKey: connection.hostKey, proxy: { host: "bastion.test", hostKey: KH } });
      await expect(
        declare({ ...seedSpec("1.7"), knownHostsFile, connection: { ...connection, proxy: { host: "other-bastion.test", port: 2200, privateKey: "KEY" } } as never }, world, "node-3"),
      ).rejects.toThrow(`Invalid ContainerdNode args for "node-3":\n - connection.proxy.hostKey: is not set and [other-bastion.test]:2200 has no ed25519, ecdsa or rsa key in ${knownHostsFile}`);
      await expect(
        declare({ ...seedSpec("1.7"), connection: { ...connection, proxy: { host: "b", privateKey: "KEY", hostKey: "ssh-ed25519" } } as never }, world, "node-4"),
      ).rejects.toThrow('connection.proxy.hostKey: "ssh-ed25519" is not an OpenSSH public key');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("what a change touches", () => {
  const inputsOf = async (spec: ContainerdNodeArgs) => {
    const world = installMocks();
    await declare(spec, world);
    return Object.fromEntries(commands(world).map((c) => [c.name, c.inputs]));
  };

  it("changing one registry's mirror changes only that hosts.toml child, and nothing that restarts", async () => {
    const before = await inputsOf({ ...seedSpec("1.7"), connection });
    const spec = seedSpec("1.7");
    const after = await inputsOf({ ...spec, connection, registries: { ...spec.registries, "docker.io": { mirrors: ["https://other-mirror.test"] } } });
    const changed = Object.keys(after).filter((k) => JSON.stringify(after[k]) !== JSON.stringify(before[k]));
    expect(changed).toEqual(["node-1:/etc/containerd/certs.d/docker.io/hosts.toml"]);
    expect(Object.keys(after).sort()).toEqual(Object.keys(before).sort());
  });

  it("changing SystemdCgroup changes only config.toml", async () => {
    const before = await inputsOf({ ...seedSpec("2.1"), connection });
    const after = await inputsOf({ ...seedSpec("2.1"), connection, systemdCgroup: false });
    const changed = Object.keys(after).filter((k) => JSON.stringify(after[k]) !== JSON.stringify(before[k]));
    expect(changed).toEqual(["node-1:/etc/containerd/config.toml"]);
  });

  it("changing the restart command or health checks touches config.toml only, not hosts files", async () => {
    const before = await inputsOf({ ...seedSpec("1.7"), connection });
    const after = await inputsOf({ ...seedSpec("1.7"), connection, restartCommand: "service containerd restart", healthChecks: ["true"] });
    const changed = Object.keys(after).filter((k) => JSON.stringify(after[k]) !== JSON.stringify(before[k]));
    expect(changed).toEqual(["node-1:/etc/containerd/config.toml"]);
  });

  it("removing a registry removes its child (its delete then restores the node)", async () => {
    const spec = seedSpec("1.7");
    const after = await inputsOf({ ...spec, connection, registries: { "docker.io": spec.registries!["docker.io"] } });
    expect(Object.keys(after)).not.toContain("node-1:/etc/containerd/certs.d/registry.k8s.io/hosts.toml");
  });
});

describe("preview", () => {
  it("declares the same children with the same inputs, so an unchanged node shows no change", async () => {
    const up = installMocks();
    await declare({ ...seedSpec("1.7"), connection }, up);
    const preview = installMocks({ preview: true });
    new ContainerdNode("node-1", { ...seedSpec("1.7"), connection }, { transformations: [preview.transformation] });
    await new Promise((r) => setTimeout(r, 200));
    const strip = (w: MockWorld) => commands(w).map((c) => [c.name, c.inputs]).sort();
    expect(strip(preview)).toEqual(strip(up));
  });
});

describe("outputs", () => {
  it("reports files, the config hash and what the last apply did", async () => {
    const world = installMocks({ stdout: (r) => JSON.stringify({ path: r.name.split(":").slice(1).join(":"), written: true, restarted: r.name.endsWith("config.toml") }) });
    const node = await declare({ ...seedSpec("1.6.20"), connection }, world);
    const files = await valueOf(node.files);
    expect(files.map((f) => f.kind)).toEqual(["hosts", "hosts", "config"]);
    expect(node.configVersion).toBe(2);
    expect(await valueOf(node.configHash)).toMatch(/^[0-9a-f]{64}$/);
    expect(await valueOf(node.restarted)).toBe(true);
    expect((await valueOf(node.lastApply)).find((r) => r.path === "/etc/containerd/config.toml")).toEqual({ path: "/etc/containerd/config.toml", written: true, restarted: true });
  });
});

describe("bad args", () => {
  it("are refused before any resource is declared, every problem at once", () => {
    const world = installMocks();
    expect(() =>
      new ContainerdNode("node-9", {
        containerdVersion: "1.7",
        connection,
        healthTimeoutSeconds: 0,
        onDelete: "wipe" as "keep",
        restartCommand: "",
        registries: { "docker.io": { mirrors: ["ftp://x"] } },
      }),
    ).toThrow(SpecError);
    try {
      new ContainerdNode("node-9", { containerdVersion: "1.7", connection, healthTimeoutSeconds: 0, registries: { "docker.io": { mirrors: ["ftp://x"] } } });
    } catch (e) {
      expect((e as Error).message).toBe(
        'Invalid ContainerdNode args for "node-9":\n - healthTimeoutSeconds: 0 is not a whole number of seconds from 1 to 3600\n - registries["docker.io"].mirrors[0]: "ftp://x" is not an http(s) URL',
      );
    }
    expect(world.registered).toEqual([]);
  });
});
