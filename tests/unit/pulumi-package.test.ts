/**
 * The component package (pulumi-package/): the schema Pulumi infers from it, with the very analyzer
 * `pulumi package add` runs (@pulumi/pulumi's provider/experimental), checked against the library's
 * own field lists, so a field added to the library and not to the package fails here; and the
 * package's conversion of its args into the library's.
 */
import * as path from "path";
import { Analyzer } from "@pulumi/pulumi/provider/experimental/analyzer";
import { OPERATION_KEYS } from "../../provider/src/component/containerd-node";
import { nodeSpecSchema, registryHost } from "../../provider/src/spec/schema";
import { ContainerdFleet, ContainerdNode, fleetArgsOf, nodeArgsOf } from "../../pulumi-package/index";
import { ContainerdNode as LibraryNode } from "../../provider/bin/index";
import { installMocks, settle, valueOf } from "../support/mocks";

const DIR = path.resolve(__dirname, "..", "..", "pulumi-package");
// eslint-disable-next-line @typescript-eslint/no-require-imports
const PACKAGE_JSON = require(path.join(DIR, "package.json"));

type Prop = { type?: string; $ref?: string; plain?: boolean; optional?: boolean; items?: Prop; additionalProperties?: Prop };
let analyzed: ReturnType<Analyzer["analyze"]>;
const typeProps = (name: string) => (analyzed.typeDefinitions[name] as unknown as { properties: Record<string, Prop> }).properties;

beforeAll(() => {
  analyzed = new Analyzer(DIR, "containerd-node", PACKAGE_JSON, new Set(["ContainerdNode", "ContainerdFleet"])).analyze();
}, 120_000);

describe("the package's schema", () => {
  const specKeys = Object.keys(nodeSpecSchema.shape);

  it("has ContainerdNode and ContainerdFleet, whose args are the library's, field for field", () => {
    const node = analyzed.components.ContainerdNode.inputs;
    const fleet = analyzed.components.ContainerdFleet.inputs;
    for (const k of [...specKeys, ...OPERATION_KEYS, "connection"]) expect(Object.keys(node)).toContain(k);
    for (const k of [...specKeys, ...OPERATION_KEYS, "nodes", "rollout"]) expect(Object.keys(fleet)).toContain(k);
    for (const k of [...specKeys, ...OPERATION_KEYS, "name", "connection"]) expect(Object.keys(typeProps("FleetNode"))).toContain(k);
    expect(Object.keys(typeProps("Rollout")).sort()).toEqual(["canary", "healthChecks", "maxUnavailable", "probeImages", "registryChanges"]);
    // `rewrite` exists in the library only to be refused with a pointer to overridePath.
    expect(Object.keys(typeProps("RegistryHost")).sort()).toEqual(Object.keys(registryHost.shape).filter((k) => k !== "rewrite").sort());
    expect(node.containerdVersion.optional).toBeUndefined();
    expect(fleet.containerdVersion.optional).toBe(true);
  });

  it("keeps the spec plain and what may be secret an Input, as the library's types do", () => {
    const node = analyzed.components.ContainerdNode.inputs as Record<string, Prop>;
    expect(node.connection.plain).toBeUndefined();
    for (const k of specKeys.filter((k) => k !== "settings")) expect([k, node[k].plain]).toEqual([k, true]);
    for (const k of ["host", "port", "user", "password", "privateKey", "privateKeyPassword", "hostKey", "proxy"]) {
      expect([k, typeProps("Connection")[k].plain]).toEqual([k, undefined]);
    }
    for (const k of ["username", "password", "token"]) expect([k, typeProps("RegistryAuth")[k].plain]).toEqual([k, undefined]);
    expect(typeProps("ClientCertificate").key.plain).toBeUndefined();
    expect(typeProps("RegistryHost").headers.additionalProperties!.items!.plain).toBeUndefined();
    expect(typeProps("RegistryHost").url.plain).toBe(true);
  });

  it("exposes the library's outputs", () => {
    expect(Object.keys(analyzed.components.ContainerdNode.outputs).sort()).toEqual(
      ["configHash", "configVersion", "deprecations", "files", "lastApply", "mirrorHealth", "nodeState", "restarted"],
    );
    expect(Object.keys(analyzed.components.ContainerdFleet.outputs).sort()).toEqual(["configHashes", "restartedNodes", "waves"]);
  });
});

describe("the package's args as the library's", () => {
  const connection = { host: "10.0.0.11", privateKey: "KEY" };

  it("reads maxUnavailable \"3\" as 3 nodes and leaves \"25%\" (and mistakes) to the library", () => {
    const base = { containerdVersion: "1.7.24", nodes: [{ name: "n", connection }] };
    expect(fleetArgsOf({ ...base, rollout: { maxUnavailable: "3" } }).rollout!.maxUnavailable).toBe(3);
    expect(fleetArgsOf({ ...base, rollout: { maxUnavailable: "25%" } }).rollout!.maxUnavailable).toBe("25%");
    expect(fleetArgsOf({ ...base, rollout: { maxUnavailable: "3 nodes" } }).rollout!.maxUnavailable).toBe("3 nodes");
  });

  it("drops the nulls other languages send for absent fields, and keeps everything else as it is", () => {
    const args = nodeArgsOf({
      connection,
      containerdVersion: "2.1",
      sandboxImage: null as unknown as string,
      registries: { "docker.io": { mirrors: [{ url: "https://m.test", auth: { username: "u", password: "p", token: null as unknown as string } }] } },
    });
    expect(args).toEqual({
      connection,
      containerdVersion: "2.1",
      registries: { "docker.io": { mirrors: [{ url: "https://m.test", auth: { username: "u", password: "p" } }] } },
    });
    expect("sandboxImage" in args).toBe(false);
  });
});

describe("the package's components, under mocks", () => {
  afterEach(settle);
  const connection = (i: number) => ({ host: `10.0.0.${10 + i}`, privateKey: "KEY", hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPtest" });

  it("refuse a bad spec with the library's text, before registering anything", async () => {
    const world = installMocks();
    const args = { connection: connection(1), containerdVersion: "latest", readNode: false };
    let expected = "";
    try {
      new LibraryNode("n", args);
    } catch (e) {
      expected = (e as Error).message;
    }
    expect(expected).toContain('Invalid ContainerdNode args for "n":\n - containerdVersion: "latest" is not a containerd version');
    expect(() => new ContainerdNode("n", args)).toThrow(expected);
    await settle();
    expect(world.registered).toEqual([]);
  });

  it("declare the library's component under their own, with its outputs", async () => {
    const world = installMocks();
    const fleet = new ContainerdFleet("f", {
      containerdVersion: "1.7.24",
      readNode: false,
      registries: { "docker.io": { mirrors: [{ url: "https://mirror.test" }] } },
      nodes: [{ name: "a", connection: connection(1) }, { name: "b", connection: connection(2), containerdVersion: "2.1.4" }],
      rollout: { maxUnavailable: "2" },
    });
    expect(await valueOf(fleet.waves)).toEqual([["a", "b"]]);
    expect(await valueOf(fleet.urn)).toMatch(/::containerd-node:index:ContainerdFleet::f$/);
    expect(Object.keys(await valueOf(fleet.configHashes)).sort()).toEqual(["a", "b"]);
    // The library's fleet declared each node's files: config.toml and the docker.io hosts.toml.
    await settle();
    // (The mocks see components too: so the bad spec above registered nothing, not even its own.)
    expect(world.registered.map((r) => `${r.type} ${r.name}`)).toEqual(expect.arrayContaining([
      "containerd-node:index:ContainerdFleet f", "containerd:index:ContainerdFleet f", "containerd:index:ContainerdNode a", "containerd:index:ContainerdNode b",
    ]));
    const commands = world.registered.filter((r) => r.type === "command:remote:Command").map((r) => r.name);
    expect(commands).toEqual(expect.arrayContaining([
      "a:/etc/containerd/config.toml", "a:/etc/containerd/certs.d/docker.io/hosts.toml",
      "b:/etc/containerd/config.toml", "b:/etc/containerd/certs.d/docker.io/hosts.toml",
    ]));
  });
});
