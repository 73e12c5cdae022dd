/**
 * The component package (pulumi-package/): the schema Pulumi infers from it, with the very analyzer
 * `pulumi package add` runs (@pulumi/pulumi's provider/experimental), checked against the library's
 * own fields; its types, generated from the library's (tools/package-args.ts) and held to them by
 * pulumi-package/library-check.ts, so a field added to the library and not to the package fails the
 * type check; and the package's conversion of its args into the library's.
 */
import * as fs from "fs";
import * as path from "path";
import * as ts from "typescript";
import { Analyzer } from "@pulumi/pulumi/provider/experimental/analyzer";
import { nodeSpecSchema, registryHost } from "../../provider/src/spec/schema";
import { ContainerdFleet, ContainerdNode, fleetArgsOf, nodeArgsOf } from "../../pulumi-package/index";
import { ContainerdNode as LibraryNode } from "../../provider/bin/index";
import { NOT_CROSSING, OUT, generate, libraryFields, libraryProgram } from "../../tools/package-args";
import { installMocks, settle, valueOf } from "../support/mocks";

const ROOT = path.resolve(__dirname, "..", "..");
const DIR = path.join(ROOT, "pulumi-package");
// eslint-disable-next-line @typescript-eslint/no-require-imports
const PACKAGE_JSON = require(path.join(DIR, "package.json"));

type Prop = { type?: string; $ref?: string; plain?: boolean; optional?: boolean; items?: Prop; additionalProperties?: Prop };
let analyzed: ReturnType<Analyzer["analyze"]>;
const typeProps = (name: string) => (analyzed.typeDefinitions[name] as unknown as { properties: Record<string, Prop> }).properties;
let library: ts.Program;
const fields = (name: string) => libraryFields(library, name);
const sorted = (keys: Iterable<string>) => [...keys].sort();

beforeAll(() => {
  analyzed = new Analyzer(DIR, "containerd-node", PACKAGE_JSON, new Set(["ContainerdNode", "ContainerdFleet"])).analyze();
  library = libraryProgram();
}, 120_000);

describe("the package's schema", () => {
  const specKeys = Object.keys(nodeSpecSchema.shape);

  it("has ContainerdNode and ContainerdFleet, whose args are the library's, field for field", () => {
    const node = analyzed.components.ContainerdNode.inputs;
    const fleet = analyzed.components.ContainerdFleet.inputs;
    const operationKeys = fields("NodeOperationArgs");
    for (const k of [...specKeys, ...operationKeys, "connection"]) expect(Object.keys(node)).toContain(k);
    for (const k of [...specKeys, ...operationKeys, "nodes", "rollout"]) expect(Object.keys(fleet)).toContain(k);
    for (const k of [...specKeys, ...operationKeys, "name", "connection"]) expect(Object.keys(typeProps("FleetNode"))).toContain(k);
    const crossing = (name: string) => sorted(fields(name).filter((k) => !(NOT_CROSSING.args as readonly string[]).includes(k)));
    expect(sorted(Object.keys(node))).toEqual(crossing("ContainerdNodeArgs"));
    expect(sorted(Object.keys(fleet))).toEqual(crossing("ContainerdFleetArgs"));
    expect(sorted(Object.keys(typeProps("FleetNode")))).toEqual(crossing("FleetNodeArgs"));
    expect(sorted(Object.keys(typeProps("Rollout")))).toEqual(["canary", "healthChecks", "maxUnavailable", "probeImages", "registryChanges"]);
    expect(sorted(Object.keys(typeProps("Rollout")))).toEqual(sorted(fields("RolloutArgs")));
    // `rewrite` exists in the library only to be refused with a pointer to overridePath.
    expect(sorted(Object.keys(typeProps("RegistryHost")))).toEqual(sorted(Object.keys(registryHost.shape).filter((k) => k !== "rewrite")));
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
    const crossing = (name: string, skip: readonly string[]) => sorted(fields(name).filter((k) => !skip.includes(k)));
    expect(sorted(Object.keys(analyzed.components.ContainerdNode.outputs))).toEqual(crossing("ContainerdNode", NOT_CROSSING.nodeOutputs));
    expect(sorted(Object.keys(analyzed.components.ContainerdFleet.outputs))).toEqual(crossing("ContainerdFleet", NOT_CROSSING.fleetOutputs));
  });
});

describe("the package's types follow the library's", () => {
  const CHECK = path.join(DIR, "library-check.ts");
  const config = ts.getParsedCommandLineOfConfigFile(path.join(ROOT, "tsconfig.json"), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => undefined })!;
  // Every path of a failing check in its message (tsc shows the first few, then "... 6 more ...").
  config.options.noErrorTruncation = true;

  /** Where the body of an interface the library's entry exports starts, to add a field there. */
  function bodyOf(name: string): { file: string; at: number } {
    const checker = library.getTypeChecker();
    const entry = checker.getSymbolAtLocation(library.getSourceFile(path.join(ROOT, "provider", "src", "index.ts"))!)!;
    const symbol = checker.getAliasedSymbol(checker.getExportsOfModule(entry).find((s) => s.getName() === name)!);
    const decl = symbol.declarations!.find(ts.isInterfaceDeclaration)!;
    return { file: decl.getSourceFile().fileName, at: decl.members.pos };
  }

  /** A program whose files have these edits (each a function of the file's text). */
  function edited(roots: string[], edits: Record<string, (text: string) => string>, old?: ts.Program): ts.Program {
    const host = ts.createCompilerHost(config.options);
    const read = host.getSourceFile.bind(host);
    host.getSourceFile = (file, language, onError, create) => {
      const edit = edits[path.resolve(file)];
      return edit ? ts.createSourceFile(file, edit(fs.readFileSync(file, "utf8")), language) : read(file, language, onError, create);
    };
    return ts.createProgram({ rootNames: roots, options: config.options, host, oldProgram: old });
  }

  const errorsOf = (program: ts.Program) =>
    program.getSemanticDiagnostics(program.getSourceFile(CHECK)).map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n")).join("\n");

  it("args.generated.ts is what tools/package-args.ts writes from the library's types", () => {
    expect(generate(library)).toBe(fs.readFileSync(OUT, "utf8"));
  }, 60_000);

  it("fails the type check, naming the field, when the library has a field the package lacks (until it is generated again)", () => {
    // One field of the component's own, one deep in the spec, and one the package loses.
    const operation = bodyOf("NodeOperationArgs");
    const host = bodyOf("RegistryHostOf");
    const insert = (at: number, field: string) => (s: string) => s.slice(0, at) + `\n  readonly ${field};` + s.slice(at);
    const edits: Record<string, (text: string) => string> = {};
    const add = (file: string, f: (s: string) => string) => {
      const before = edits[file];
      edits[file] = before ? (s) => f(before(s)) : f;
    };
    // Later positions first, so that the earlier one stays where it is when both are in one file.
    const both = [{ ...operation, field: "newOperationField?: string" }, { ...host, field: "newHostField?: boolean" }].sort((a, b) => b.at - a.at);
    for (const e of both) add(e.file, insert(e.at, e.field));
    add(OUT, (s) => s.replace("  skipVerify?: boolean;\n", ""));
    const failing = edited([CHECK], edits, library);
    const errors = errorsOf(failing);
    expect(errors).toContain('"ContainerdNodeArgs.newOperationField: not in the package"');
    expect(errors).toContain('"ContainerdFleetArgs.nodes[].newOperationField: not in the package"');
    expect(errors).toContain('"ContainerdNodeArgs.registries[*].mirrors[].newHostField: not in the package"');
    expect(errors).toContain('"ContainerdNodeArgs.registries[*].server.skipVerify: not in the package"');
    expect(errors).toMatch(/does not satisfy the constraint 'never'/);

    // Generated again from that library, the package has both fields, and the check passes.
    const regenerated = generate(edited([path.join(ROOT, "provider", "src", "index.ts")], edits, failing));
    expect(regenerated).toContain("  newOperationField?: string;\n");
    expect(regenerated).toContain("  newHostField?: boolean;\n");
    expect(errorsOf(edited([CHECK], { ...edits, [OUT]: () => regenerated }, failing))).toBe("");
  }, 120_000);
});

describe("the package's imports", () => {
  it("take the library from its public entry only (the package.json at the top: provider/bin/index.js)", () => {
    const runtime = ["index.ts", "args.generated.ts"].map((f) => fs.readFileSync(path.join(DIR, f), "utf8"));
    const specifiers = runtime.flatMap((s) => [...s.matchAll(/^(?:import|export)\b[^;]*?from "([^"]+)"/gm)].map((m) => m[1]));
    expect(new Set(specifiers)).toEqual(new Set(["@pulumi/pulumi", "..", "./args.generated"]));
    expect(require.resolve("..", { paths: [DIR] })).toBe(path.join(ROOT, "provider", "bin", "index.js"));
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
