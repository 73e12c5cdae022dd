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
import { fleetArgsOf, nodeArgsOf } from "../../pulumi-package/index";

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
