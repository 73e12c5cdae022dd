/**
 * A node's plan as plain data (plan.ts): no mocks, no resources. What it orders, what each file
 * waits for, what the node's commands and read are given, which files are secret, and what it
 * costs: each node of a fleet is planned once, and an input leaf costs no render of its own.
 */
import fc from "fast-check";
import * as pulumi from "@pulumi/pulumi";
import * as render from "../../provider/src/render/render-node";
import { validateFleet } from "../../provider/src/component/containerd-fleet";
import { planNode, planOrThrow } from "../../provider/src/component/plan";
import { TEST_CA_PEM, TEST_CLIENT_CERT_PEM, TEST_CLIENT_KEY_PEM } from "../fixtures/pem";
import { seedSpec } from "../fixtures/specs";

const connection = { host: "10.0.0.11", privateKey: "KEY", hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPtest" };
const kinds = (p: ReturnType<typeof planOrThrow>) => p.files.map((f) => f.file.kind);

describe("planNode", () => {
  it("orders certificates, then hosts.toml, then config.toml, each waiting for what it needs", () => {
    const plan = planOrThrow("n1", {
      containerdVersion: "2.1",
      connection,
      registries: {
        "registry.example.test": { server: { url: "https://registry.example.test", ca: TEST_CA_PEM, client: { cert: TEST_CLIENT_CERT_PEM, key: TEST_CLIENT_KEY_PEM } } },
        "quay.io": { mirrors: ["https://q.test"] },
      },
    });
    expect(kinds(plan)).toEqual(["certificate", "certificate", "certificate", "hosts", "hosts", "config"]);
    const at = (suffix: string) => plan.files.findIndex((f) => f.file.path.endsWith(suffix));
    const example = at("registry.example.test/hosts.toml");
    expect(plan.files[example].after.map((j) => plan.files[j].file.kind)).toEqual(["certificate", "certificate", "certificate"]);
    expect(plan.files[at("quay.io/hosts.toml")].after).toEqual([]);
    expect(plan.files[at("config.toml")].after).toEqual([0, 1, 2, 3, 4]);
  });

  it("resolves the node's command options, read request and findings options from the args and their defaults", () => {
    const plan = planOrThrow("n1", { ...seedSpec("1.7.24"), connection, healthChecks: ["true"], readTimeoutSeconds: 7, unreadNode: "fail", probeImages: { "docker.io": "docker.io/library/busybox:1.36" } });
    expect(plan.command).toMatchObject({
      label: "n1",
      lockFile: "/etc/containerd/.containerd-node.lock",
      containerd: "containerd",
      ctr: "ctr",
      grpcAddress: "/run/containerd/containerd.sock",
      restartCommand: "systemctl restart containerd",
      healthTimeoutSeconds: 60,
      configVersion: 2,
      minimumVersion: "1.7.24",
      healthChecks: ["true"],
      sudo: false,
      script: "/etc/containerd/.containerd-node/containerd-node.sh",
    });
    expect(plan.read.timeoutSeconds).toBe(7);
    expect(plan.read.findings).toMatchObject({ label: "n1", configVersion: 2, unreadNode: "fail", unmanagedRegistries: "warn", probePolicy: "warn" });
    expect(plan.read.request.managedDirs).toEqual(["docker.io", "registry.k8s.io"]);
    expect(plan.read.request.files.map((f) => f.path)).toEqual(plan.files.map((f) => f.file.path));
    const hub = plan.files.find((f) => f.file.path.endsWith("docker.io/hosts.toml"))!;
    expect(hub.probes).toEqual(["'ctr' '--address' '/run/containerd/containerd.sock' '-n' 'k8s.io' 'images' 'pull' '--hosts-dir' '/etc/containerd/certs.d' 'docker.io/library/busybox:1.36'"]);
    expect(plan.configHash).toMatch(/^[0-9a-f]{64}$/);
  });

  it("has the read ask for the spec's sandbox image as containerd names it, and leaves the hosts.toml commands alone", () => {
    const mirrors = { mirrors: ["https://m.test"] };
    const at = (sandboxImage?: string) => planOrThrow("n1", { containerdVersion: "1.7", connection, ...(sandboxImage ? { sandboxImage } : {}), registries: { "registry.k8s.io": mirrors, "*": mirrors } });
    expect(at("registry.k8s.io/pause:3.10").read.request.sandboxImage).toBe("registry.k8s.io/pause:3.10");
    // A Docker Hub short name: its full name, as containerd stores it.
    expect(at("kubesphere/pause:3.9").read.request.sandboxImage).toBe("docker.io/kubesphere/pause:3.9");
    expect(at("pause").read.request.sandboxImage).toBe("docker.io/library/pause:latest");
    // Without sandboxImage (containerd's default, which differs by release) the read does not ask.
    expect(at().read.request.sandboxImage).toBeUndefined();
    // A new sandbox image changes config.toml only: no hosts.toml command shows an update for it.
    expect(at("registry.k8s.io/pause:3.9").files.flatMap((f) => f.probes)).toEqual([]);
  });

  it("returns every problem at once rather than a plan", () => {
    const r = planNode("n1", { containerdVersion: "1.7", connection, healthTimeoutSeconds: 0, registries: { "docker.io": { mirrors: ["ftp://x"] } } });
    expect(r.plan).toBeUndefined();
    expect(r.problems).toEqual([
      { path: "healthTimeoutSeconds", message: "0 is not a whole number of seconds from 1 to 3600" },
      { path: 'registries["docker.io"].mirrors[0]', message: '"ftp://x" is not an http(s) URL' },
    ]);
  });

  it("makes a file fed by an Output secret (0600), and plain otherwise", async () => {
    const plan = planOrThrow("n1", {
      containerdVersion: "2.1",
      connection,
      registries: {
        "ghcr.io": { mirrors: [{ url: "https://m.test", auth: { username: "robot", password: pulumi.secret("pw") } }] },
        "quay.io": { mirrors: ["https://q.test"] },
      },
    });
    const ghcr = plan.files.find((f) => f.file.path.endsWith("ghcr.io/hosts.toml"))!;
    const quay = plan.files.find((f) => f.file.path.endsWith("quay.io/hosts.toml"))!;
    expect(ghcr.file).toMatchObject({ secret: true, mode: 0o600 });
    expect(pulumi.Output.isInstance(ghcr.content)).toBe(true);
    expect(quay.file).toMatchObject({ secret: false, mode: 0o644 });
    expect(typeof quay.content).toBe("string");
  });
});

describe("what a plan costs", () => {
  afterEach(() => jest.restoreAllMocks());

  it("an input leaf costs no render of its own: two renders for any number of leaves", () => {
    const renders = jest.spyOn(render, "renderNode");
    const auth = (i: number) => ({ username: `robot${i}`, password: pulumi.secret(`pw${i}`) });
    planOrThrow("n1", {
      containerdVersion: "2.1",
      connection,
      registries: Object.fromEntries([1, 2, 3, 4, 5].map((i) => [`r${i}.example.test`, { mirrors: [{ url: `https://m${i}.test`, auth: auth(i) }] }])),
    });
    expect(renders).toHaveBeenCalledTimes(2);
    renders.mockClear();
    planOrThrow("n1", { ...seedSpec("1.7"), connection });
    expect(renders).toHaveBeenCalledTimes(1);
  });

  it("a fleet's validation plans each node once, and hands the nodes those plans", () => {
    const renders = jest.spyOn(render, "renderNode");
    const { specs } = validateFleet("f", { ...seedSpec("1.7"), nodes: [1, 2, 3].map((i) => ({ name: `n${i}`, connection: { ...connection, host: `10.0.0.${i}` } })) });
    expect(renders).toHaveBeenCalledTimes(3);
    expect(specs.map((s) => s.plan.name)).toEqual(["n1", "n2", "n3"]);
  });
});

describe("plans of generated specs", () => {
  const label = fc.stringMatching(/^[a-z][a-z0-9]{0,6}$/);
  const registry = fc.tuple(label, label).map(([a, b]) => `${a}.${b}.test`);
  const entry = fc.record({
    mirrors: fc.uniqueArray(registry.map((h) => `https://${h}`), { minLength: 1, maxLength: 2 }),
    ca: fc.boolean(),
  });

  it("keep the write order and its waits whatever the registries", () => {
    fc.assert(
      fc.property(fc.dictionary(registry, entry, { maxKeys: 4 }), fc.constantFrom("1.7.24", "2.1", "2.3"), (regs, version) => {
        const registries = Object.fromEntries(Object.entries(regs).map(([ns, e]) => [ns, { mirrors: e.mirrors.map((url) => (e.ca ? { url, ca: TEST_CA_PEM } : url)) }]));
        const plan = planOrThrow("n", { containerdVersion: version, connection, registries });
        const rank = { certificate: 0, hosts: 1, config: 2 } as const;
        const ranks = plan.files.map((f) => rank[f.file.kind]);
        expect(ranks).toEqual([...ranks].sort());
        plan.files.forEach((f, i) => {
          for (const j of f.after) expect(j).toBeLessThan(i);
          if (f.file.kind === "hosts") for (const j of f.after) expect(plan.files[j].file).toMatchObject({ kind: "certificate", registry: f.file.registry });
        });
        expect(plan.files[plan.files.length - 1].after).toEqual(plan.files.slice(0, -1).map((_, j) => j));
        expect(plan.read.request.files.map((f) => f.path)).toEqual(plan.files.map((f) => f.file.path));
      }),
      { numRuns: 60 },
    );
  });
});
