/** ContainerdFleet and the root program's stack configuration, under mocks. */
import * as pulumi from "@pulumi/pulumi";
import { ContainerdFleet, SpecError, fleetArgsFromConfig, planWaves, resolveMaxUnavailable } from "../../provider/src";
import { installMocks, settle, valueOf } from "../support/mocks";

afterEach(settle);

const conn = (i: number) => ({ host: `10.0.0.${10 + i}`, privateKey: "KEY", hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPtest" });
const nodes = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `node-${i + 1}`, connection: conn(i + 1) }));
const shared = {
  containerdVersion: "1.7.24",
  systemdCgroup: true,
  registries: { "docker.io": { mirrors: ["https://mirror.test"] } },
};

describe("waves", () => {
  it.each([
    [1, 10, 1],
    ["25%", 10, 2],
    ["25%", 3, 1],
    ["100%", 4, 4],
    [3, 5, 3],
  ] as const)("maxUnavailable %p of %p nodes is %p at once", (v, n, expected) => {
    expect(resolveMaxUnavailable(v, n)).toBe(expected);
  });

  it.each([0, -1, 1.5, "0%", "101%", "25", "x%"])("refuses maxUnavailable %p", (v) => {
    expect(resolveMaxUnavailable(v as number | string, 10)).toBeUndefined();
  });

  it("puts canaries first, then groups of maxUnavailable in list order", () => {
    expect(planWaves(7, 2, 1)).toEqual([[0], [1, 2], [3, 4], [5, 6]]);
    expect(planWaves(3, 5, 0)).toEqual([[0, 1, 2]]);
  });

  it("never puts more canaries in one wave than maxUnavailable", () => {
    expect(planWaves(7, 1, 5)).toEqual([[0], [1], [2], [3], [4], [5], [6]]);
    expect(planWaves(8, 2, 3)).toEqual([[0, 1], [2], [3, 4], [5, 6], [7]]);
    expect(planWaves(4, 5, 2)).toEqual([[0, 1], [2, 3]]);
  });
});

describe("ContainerdFleet", () => {
  it("chains config.toml (the restart) wave after wave; with registryChanges all-at-once, hosts.toml files wait for nothing", async () => {
    const world = installMocks();
    const fleet = new ContainerdFleet("fleet", { ...shared, nodes: nodes(5), rollout: { maxUnavailable: 2, canary: 1, registryChanges: "all-at-once" } }, { transformations: [world.transformation] });
    await valueOf(fleet.configHashes);
    expect(fleet.waves).toEqual([["node-1"], ["node-2", "node-3"], ["node-4", "node-5"]]);
    const deps = (n: string) => world.options.find((o) => o.name === `${n}:/etc/containerd/config.toml`)!.dependsOn.filter((d) => d.endsWith("config.toml")).sort();
    expect(deps("node-1")).toEqual([]);
    expect(deps("node-2")).toEqual(["node-1:/etc/containerd/config.toml"]);
    expect(deps("node-3")).toEqual(["node-1:/etc/containerd/config.toml"]);
    expect(deps("node-4")).toEqual(["node-2:/etc/containerd/config.toml", "node-3:/etc/containerd/config.toml"]);
    expect(deps("node-5")).toEqual(["node-2:/etc/containerd/config.toml", "node-3:/etc/containerd/config.toml"]);
    // hosts.toml files wait only for their own node's host resource (the node script's install).
    for (const o of world.options.filter((x) => x.name.endsWith("hosts.toml"))) expect(o.dependsOn).toEqual([`${o.name.split(":")[0]}:host`]);
  });

  it("by default sends registry changes in the same waves: a wave's files wait for every file of the previous wave", async () => {
    const world = installMocks();
    const fleet = new ContainerdFleet(
      "fleet",
      { ...shared, nodes: nodes(3), rollout: { maxUnavailable: 1, canary: 1, probeImages: { "docker.io": "docker.io/library/busybox:1.36" } } },
      { transformations: [world.transformation] },
    );
    await valueOf(fleet.restartedNodes);
    const hub = (n: string) => `${n}:/etc/containerd/certs.d/docker.io/hosts.toml`;
    const deps = (n: string) => world.options.find((o) => o.name === hub(n))!.dependsOn.sort();
    expect(deps("node-1")).toEqual(["node-1:host"]);
    expect(deps("node-2")).toEqual(expect.arrayContaining([hub("node-1"), "node-1:/etc/containerd/config.toml", "node-2:host"]));
    expect(deps("node-3")).toEqual(expect.arrayContaining([hub("node-2"), "node-2:/etc/containerd/config.toml"]));
    expect(deps("node-3")).not.toContain(hub("node-1"));
    // Each node pulls the probe image through its new hosts.toml, with the health timeout as the bound.
    const create = world.byName(hub("node-2")).inputs.create as string;
    expect(create).toContain(`'' '60' `);
    expect(create).toContain(`'ctr'"'"' '"'"'--address'"'"' '"'"'/run/containerd/containerd.sock'"'"' '"'"'-n'"'"' '"'"'k8s.io'"'"' '"'"'images'"'"' '"'"'pull'"'"' '"'"'--hosts-dir'"'"' '"'"'/etc/containerd/certs.d'"'"' '"'"'docker.io/library/busybox:1.36'"'"''`);
  });

  it("refuses a probe image for a registry the spec does not have, and an unknown registryChanges", () => {
    const world = installMocks();
    expect(
      () => new ContainerdFleet("fleet", { ...shared, nodes: nodes(2), rollout: { probeImages: { "quay.io": "quay.io/x:1" }, registryChanges: "later" as never } }, { transformations: [world.transformation] }),
    ).toThrow(/rollout.registryChanges: "later" is not one of "waves", "all-at-once"[\s\S]*nodes\[0\] \(node-1\).probeImages\["quay.io"\]: names no registry of registries \("docker.io"/);
  });

  it("deep-merges per-node overrides over the shared spec", async () => {
    const world = installMocks();
    new ContainerdFleet("fleet", {
      ...shared,
      nodes: [
        { name: "a", connection: conn(1) },
        { name: "b", connection: conn(2), containerdVersion: "2.1.9", registries: { "quay.io": { mirrors: ["https://q.test"] } } },
        { name: "c", connection: conn(3), runtimes: { nvidia: { options: { BinaryName: "/usr/bin/nvidia-container-runtime" } } } },
      ],
    }, { transformations: [world.transformation] });
    await new Promise((r) => setTimeout(r, 100));
    const stdin = (n: string) => world.byName(n).inputs.stdin as string;
    expect(stdin("a:/etc/containerd/config.toml")).toContain("version = 2");
    expect(stdin("b:/etc/containerd/config.toml")).toContain("version = 3");
    expect(stdin("b:/etc/containerd/certs.d/docker.io/hosts.toml")).toContain("https://mirror.test");
    expect(stdin("b:/etc/containerd/certs.d/quay.io/hosts.toml")).toContain("https://q.test");
    expect(world.registered.map((r) => r.name)).not.toContain("a:/etc/containerd/certs.d/quay.io/hosts.toml");
    expect(stdin("c:/etc/containerd/config.toml")).toMatch(/runtimes\.nvidia\.options\]\nBinaryName = "\/usr\/bin\/nvidia-container-runtime"\nSystemdCgroup = true/);
  });

  it("adds the rollout's health checks to every node's config.toml command", async () => {
    const world = installMocks();
    new ContainerdFleet("fleet", { ...shared, nodes: nodes(2), rollout: { healthChecks: ["ctr -n k8s.io images pull registry.k8s.io/pause:3.10"] } }, { transformations: [world.transformation] });
    await new Promise((r) => setTimeout(r, 100));
    for (const n of ["node-1", "node-2"]) {
      expect(world.byName(`${n}:/etc/containerd/config.toml`).inputs.create).toMatch(/'ctr -n k8s\.io images pull registry\.k8s\.io\/pause:3\.10'$/);
    }
  });

  it("reports every problem of every node at once, before declaring anything", () => {
    const world = installMocks();
    let error: unknown;
    try {
      new ContainerdFleet("fleet", {
        ...shared,
        nodes: [
          { name: "ok", connection: conn(1) },
          { name: "bad", connection: conn(2), containerdVersion: "9.9" },
          { name: "ok", connection: conn(3) },
          { name: "also bad", connection: conn(4) },
          { name: "m", connection: conn(5), registries: { "docker.io": { mirrors: ["ftp://m"] } } },
          { name: "k", connection: { ...conn(6), hostKey: "ssh-ed25519" } },
          { name: "j", connection: { ...conn(7), proxy: { host: "10.0.0.99", privateKey: "KEY" } }, knownHostsFile: "/nonexistent/known_hosts" },
        ],
        rollout: { maxUnavailable: "150%", canary: 9 },
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SpecError);
    expect((error as Error).message).toBe(
      [
        'Invalid ContainerdFleet args for "fleet":',
        ' - rollout.maxUnavailable: "150%" is not a whole number of nodes (1 or more) or a percentage such as "25%"',
        " - rollout.canary: 9 is not a whole number from 0 to 6 (the canaries must leave nodes for later waves)",
        ' - nodes[1] (bad).containerdVersion: "9.9" is not a supported containerd version (1.6, 1.7 or 2.x)',
        ' - nodes[2].name: "ok" repeats nodes[0].name; names must be unique',
        ' - nodes[3].name: "also bad" is not a node name of letters, digits and . _ - (up to 63)',
        ' - nodes[4] (m).registries["docker.io"].mirrors[0]: "ftp://m" is not an http(s) URL',
        ` - nodes[5] (k).connection.hostKey: "ssh-ed25519" is not an OpenSSH public key "TYPE BASE64" with TYPE one of ssh-ed25519, ecdsa-sha2-nistp256, ecdsa-sha2-nistp384, ecdsa-sha2-nistp521, ssh-rsa (ssh-keyscan -t ed25519 HOST | cut -d' ' -f2-)`,
        " - nodes[6] (j).connection.proxy.hostKey: is not set and 10.0.0.99 has no ed25519, ecdsa or rsa key in /nonexistent/known_hosts; add it (check its fingerprint first: ssh-keyscan -t ed25519 10.0.0.99 >> /nonexistent/known_hosts), set hostKey, or set hostKeyPolicy: \"accept-any\" to accept any host key",
      ].join("\n"),
    );
    expect(world.registered).toEqual([]);
  });
});

describe("root program stack configuration", () => {
  const secret = (k: string) => k === "privateKey" || k === "credentials";
  const raw = {
    nodes: [
      { name: "node-1", host: "10.0.0.11", hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPtest" },
      { name: "node-2", host: "10.0.0.12", port: 2222, user: "ubuntu", sudo: true, containerdVersion: "2.1.4", hostKeyPolicy: "accept-any" },
    ],
    privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n",
    spec: {
      containerdVersion: "1.7.22",
      registries: { "docker.io": { mirrors: [{ url: "https://harbor.example.test/v2/hub", overridePath: true }] }, "quay.io": { mirrors: ["https://q.example.test"] } },
    },
    rollout: { maxUnavailable: "50%" },
    credentials: { "harbor.example.test": { username: "robot", password: "pw" } },
  };

  it("turns stack config into fleet args: connections with the secret key, overrides, rollout", async () => {
    const args = fleetArgsFromConfig(raw, secret);
    expect(args.nodes.map((n) => n.name)).toEqual(["node-1", "node-2"]);
    const c2 = await valueOf(pulumi.output(args.nodes[1].connection));
    expect(c2).toMatchObject({ host: "10.0.0.12", port: 2222, user: "ubuntu" });
    expect(await pulumi.isSecret(pulumi.output(args.nodes[0].connection))).toBe(true);
    expect(args.nodes[1]).toMatchObject({ sudo: true, containerdVersion: "2.1.4", hostKeyPolicy: "accept-any" });
    expect(args.rollout).toEqual({ maxUnavailable: "50%" });
  });

  it("puts credentials, as secrets, on the endpoints of the host they name", async () => {
    const world = installMocks();
    const args = fleetArgsFromConfig(raw, secret);
    new ContainerdFleet("fleet", args);
    await new Promise((r) => setTimeout(r, 200));
    const hub = world.byName("node-1:/etc/containerd/certs.d/docker.io/hosts.toml");
    expect(hub.secretInputs).toContain("stdin");
    expect(hub.inputs.stdin).toContain(`Authorization = "Basic ${Buffer.from("robot:pw").toString("base64")}"`);
    expect(world.byName("node-1:/etc/containerd/certs.d/quay.io/hosts.toml").inputs.stdin).not.toContain("Authorization");
  });

  it("refuses bad config with field paths, and plain-text secrets", () => {
    expect(() => fleetArgsFromConfig({ ...raw, nodes: [{ name: "x", port: "22" }] }, (k) => k === "credentials")).toThrow(
      [
        "Invalid stack configuration:",
        " - config privateKey: is stored in plain text; set it with `pulumi config set --secret privateKey ...`",
        " - config nodes[0].host: undefined is not a host name or address",
        ' - config nodes[0].port: "22" is not a port number',
      ].join("\n"),
    );
    expect(() => fleetArgsFromConfig({ nodes: [] }, secret)).toThrow(/config nodes: \[\] is not a non-empty list[\s\S]*config privateKey: is required/);
  });

  it("refuses secrets in spec or nodes, and takes numeric credentials as strings", async () => {
    expect(() => fleetArgsFromConfig(raw, () => true)).toThrow(/config spec: holds a secret; keep credentials in the `credentials` key/);
    const world = installMocks();
    new ContainerdFleet("fleet", fleetArgsFromConfig({ ...raw, credentials: { "harbor.example.test": { username: "robot", password: 12345 } } }, (k) => k === "privateKey" || k === "credentials"));
    await new Promise((r) => setTimeout(r, 200));
    expect(world.byName("node-1:/etc/containerd/certs.d/docker.io/hosts.toml").inputs.stdin).toContain(Buffer.from("robot:12345").toString("base64"));
  });

  it("refuses credentials written into plain spec or node config, naming where they go instead, repeating nothing of them", () => {
    const spec = { ...raw.spec, registries: { "docker.io": { mirrors: [{ url: "https://harbor.example.test", auth: { username: "robot", password: "pw-plain-9" } }] } } };
    const nodes = [{ ...(raw.nodes as object[])[0], registries: { "quay.io": { server: { url: "https://q.test", headers: { Authorization: "Bearer tok-plain-9" } } } } }];
    let message = "";
    try {
      fleetArgsFromConfig({ ...raw, spec, nodes }, secret);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain(`config spec.registries["docker.io"].mirrors[0].auth: [secret] is in plain config; put it in the secret credentials key: pulumi config set --secret --path 'credentials["https://harbor.example.test"].password' ...`);
    expect(message).toContain(`config nodes[0].registries["quay.io"].server.headers["Authorization"]: [secret] is in plain config`);
    expect(message).not.toMatch(/pw-plain-9|tok-plain-9/);
  });

  it("gives spec errors from stack config the same messages as the TypeScript API", () => {
    installMocks();
    const args = fleetArgsFromConfig({ ...raw, spec: { ...raw.spec, systemdCgroup: "yes" } }, secret);
    expect(() => new ContainerdFleet("fleet", args)).toThrow(/nodes\[0\] \(node-1\)\.systemdCgroup: "yes" is not true or false/);
  });
});
