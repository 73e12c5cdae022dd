/**
 * Safety checks that must not switch off without a word: a private key the read could not use, a
 * node the read did not reach, a host key given as null. Under pulumi.runtime.setMocks where a
 * component is declared; the keys are real (made with Node's crypto) and parsed by ssh2 itself.
 */
import { generateKeyPairSync } from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { utils } from "ssh2";
import { ContainerdNode, ContainerdNodeArgs } from "../../provider/src";
import { operationProblems } from "../../provider/src/component/containerd-node";
import { findings } from "../../provider/src/component/node-findings";
import { connectConfig } from "../../provider/src/component/node-read";
import { emptyRead } from "../../provider/src/remote/read";
import { keyForSsh2 } from "../../provider/src/component/ssh-key";
import { seedSpec } from "../fixtures/specs";
import { MockWorld, installMocks, settle, valueOf } from "../support/mocks";

afterEach(settle);

const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPtest";

describe("private keys the command provider takes are read too (ssh2 takes no PKCS#8)", () => {
  // What openssl genpkey and @pulumi/tls's privateKeyPem hand out: "BEGIN PRIVATE KEY".
  const pairs = {
    ed25519: generateKeyPairSync("ed25519"),
    rsa: generateKeyPairSync("rsa", { modulusLength: 2048 }),
    "ecdsa p256": generateKeyPairSync("ec", { namedCurve: "P-256" }),
  };

  it.each(Object.entries(pairs))("a PKCS#8 %s key becomes a key ssh2 parses, with the same public key", (_type, pair) => {
    const pkcs8 = pair.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    expect(pkcs8).toContain("BEGIN PRIVATE KEY");
    expect(utils.parseKey(pkcs8)).toBeInstanceOf(Error);
    const { privateKey } = keyForSsh2(pkcs8);
    const parsed = utils.parseKey(privateKey);
    if (parsed instanceof Error || Array.isArray(parsed)) throw parsed;
    const publicPem = pair.publicKey.export({ type: "spki", format: "pem" }).toString();
    expect(parsed.getPublicPEM().replace(/\s+/g, "")).toBe(publicPem.replace(/\s+/g, ""));
    // It signs as the key it came from.
    const data = Buffer.from("containerd-node");
    const sig = parsed.sign(data);
    expect(sig).toBeInstanceOf(Buffer);
    expect(parsed.verify(data, sig as Buffer)).toBe(true);
  });

  it("an encrypted PKCS#8 key is read with privateKeyPassword", () => {
    const pem = pairs.ed25519.privateKey.export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "s3cret" }).toString();
    const { privateKey, passphrase } = keyForSsh2(pem, "s3cret");
    expect(passphrase).toBeUndefined();
    expect(utils.parseKey(privateKey)).not.toBeInstanceOf(Error);
    expect(() => keyForSsh2(pem, "wrong")).toThrow(/^its private key cannot be read \(/);
  });

  it("a key ssh2 already takes is passed as it is, and an unreadable one is refused without quoting it", () => {
    const pkcs1 = pairs.rsa.privateKey.export({ type: "pkcs1", format: "pem" }).toString();
    expect(keyForSsh2(pkcs1)).toEqual({ privateKey: pkcs1, passphrase: undefined });
    const broken = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIbroken\n-----END PRIVATE KEY-----\n";
    let message = "";
    try {
      keyForSsh2(broken);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/^its private key cannot be read/);
    expect(message).not.toContain("broken");
  });

  it("the read's connection takes the converted key, and answers keyboard-interactive with the password", () => {
    const pkcs8 = pairs.ed25519.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    const c = connectConfig({ host: "h", privateKey: pkcs8, hostKey: HOST_KEY } as never, 1000);
    expect(String(c.privateKey)).toContain("BEGIN OPENSSH PRIVATE KEY");
    expect(c.tryKeyboard).toBe(false);
    expect(connectConfig({ host: "h", password: "pw", hostKey: HOST_KEY } as never, 1000)).toMatchObject({ password: "pw", tryKeyboard: true });
  });
});

describe("a node the read does not reach", () => {
  const opts = { label: "n1", configVersion: 2, minimumVersion: "1.7.0", certsDir: "/etc/containerd/certs.d", managedDirs: [], configFile: "/etc/containerd/config.toml", imports: [], dropImports: [], unmanagedRegistries: "warn" as const, probePolicy: "warn" as const, allowDeadRegistries: false, restartUnit: "containerd", allowContainerLoss: false };
  const unreached = { ...emptyRead(), error: "connect ECONNREFUSED 10.0.0.1:22" };

  it('warns by default, saying what the node loses and how to refuse it; unreadNode "fail" makes it an error', () => {
    const warned = findings(unreached, [], [], { ...opts, unreadNode: "warn" });
    expect(warned.errors).toEqual([]);
    expect(warned.warnings).toEqual([
      'n1: not read (connect ECONNREFUSED 10.0.0.1:22): this run compares with the recorded state only, so its drift check, version guard, mirror gates and dropImports guard are off, and a drift gate (pulumi preview --expect-no-changes) passes over it; set unreadNode: "fail" to refuse such a node. Nor can the preview say its unit\'s KillMode or whether it holds its sandbox image: the apply still checks both on the node before a restart',
    ]);
    const failed = findings(unreached, [], [], { ...opts, unreadNode: "fail" });
    expect(failed.warnings).toEqual([]);
    expect(failed.errors).toEqual([
      'n1: not read (connect ECONNREFUSED 10.0.0.1:22): this run compares with the recorded state only, so its drift check, version guard, mirror gates and dropImports guard are off; refused (unreadNode: "fail")',
    ]);
  });

  it("unreadNode takes only warn or fail", () => {
    expect(operationProblems({ unreadNode: "ignore" as never })).toEqual([{ path: "unreadNode", message: '"ignore" is not one of "warn", "fail"' }]);
    expect(operationProblems({ unreadNode: "fail" })).toEqual([]);
  });

  /** A port on this machine that refuses connections at once: a node that cannot be read. */
  async function closedPort(): Promise<number> {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const port = (srv.address() as net.AddressInfo).port;
    await new Promise<void>((r) => srv.close(() => r()));
    return port;
  }

  async function declareUnread(world: MockWorld, extra: Partial<ContainerdNodeArgs>): Promise<ContainerdNode> {
    const port = await closedPort();
    const node = new ContainerdNode("node-1", { ...seedSpec("1.7"), readNode: true, readTimeoutSeconds: 2, ...extra, connection: { host: "127.0.0.1", port, privateKey: "KEY", hostKey: HOST_KEY } } as ContainerdNodeArgs, {
      transformations: [world.transformation],
    });
    await valueOf(node.nodeState);
    return node;
  }

  it("keeps the node's new checks: its file commands carry the spec's health checks and options, nothing of create is ignored", async () => {
    const world = installMocks();
    const warn = jest.spyOn(pulumi.log, "warn").mockImplementation(() => Promise.resolve());
    try {
      const node = await declareUnread(world, { healthChecks: ["false"], restartCommand: "systemctl restart containerd.service" });
      await valueOf(node.lastApply);
      expect((await valueOf(node.nodeState)).reached).toBe(false);
      const config = world.byName("node-1:/etc/containerd/config.toml");
      expect(config.inputs.create).toContain("'systemctl restart containerd.service'");
      expect(config.inputs.create).toContain("'false'");
      for (const o of world.options.filter((x) => x.name.startsWith("node-1:/"))) expect(o.ignoreChanges ?? []).not.toContain("create");
      expect(warn.mock.calls.map((c) => String(c[0]))).toContainEqual(expect.stringMatching(/^node-1: not read \(.*\): .*drift check, version guard, mirror gates and dropImports guard are off/));
    } finally {
      warn.mockRestore();
    }
  });
  // unreadNode "fail" through the real engine: tests/e2e/operating-verbs.test.ts (the drift gate).
});

describe("hostKey null is a missing host key, never 'accept any'", () => {
  const spec = seedSpec("1.7");
  let dir: string;
  let knownHostsFile: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "kh-"));
    knownHostsFile = path.join(dir, "known_hosts");
    fs.writeFileSync(knownHostsFile, `10.0.0.11 ${HOST_KEY}\n`);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const conn = (w: MockWorld) => w.registered.find((r) => r.type === "command:remote:Command" && r.name.endsWith(":host"))!.inputs.connection;

  it("is refused before anything is declared when known_hosts has no key for the host", async () => {
    const world = installMocks();
    expect(() => new ContainerdNode("node-2", { ...spec, knownHostsFile, connection: { host: "10.0.0.12", privateKey: "KEY", hostKey: null as never } })).toThrow(
      /Invalid ContainerdNode args for "node-2":\n - connection\.hostKey: is not set and 10\.0\.0\.12 has no ed25519, ecdsa or rsa key in /,
    );
    expect(world.registered).toEqual([]);
  });

  it("is pinned from known_hosts like a missing key", async () => {
    const world = installMocks();
    const node = new ContainerdNode("node-1", { ...spec, knownHostsFile, connection: { host: "10.0.0.11", privateKey: "KEY", hostKey: null as never } }, { transformations: [world.transformation] });
    await valueOf(node.lastApply);
    expect(conn(world)).toMatchObject({ host: "10.0.0.11", hostKey: HOST_KEY });
  });

  it("inside an Output (a Python program's None) is pinned when it resolves", async () => {
    const world = installMocks();
    const node = new ContainerdNode("node-1", { ...spec, knownHostsFile, connection: pulumi.output({ host: "10.0.0.11", privateKey: "KEY", hostKey: null as never }) }, { transformations: [world.transformation] });
    await valueOf(node.lastApply);
    expect(conn(world)).toMatchObject({ host: "10.0.0.11", hostKey: HOST_KEY });
  });

  it('under hostKeyPolicy "accept-any" sends no null to the provider, and says so', async () => {
    const world = installMocks();
    const warn = jest.spyOn(pulumi.log, "warn").mockImplementation(() => Promise.resolve());
    try {
      const node = new ContainerdNode("node-4", { ...spec, hostKeyPolicy: "accept-any", connection: { host: "10.0.0.14", privateKey: "KEY", hostKey: null as never } }, { transformations: [world.transformation] });
      await valueOf(node.lastApply);
      expect(conn(world)).not.toHaveProperty("hostKey");
      expect(warn.mock.calls.map((c) => String(c[0]))).toContain('node-4: hostKeyPolicy is "accept-any": any SSH host key of 10.0.0.14 is accepted');
    } finally {
      warn.mockRestore();
    }
  });
});
