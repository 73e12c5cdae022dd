/**
 * Writes pulumi-package/args.generated.ts: the component package's arg and output types, made from
 * the library's own (provider/src, through its public entry) so that Python, Go and YAML get every
 * field the library has, with the library's descriptions.
 *
 *   sh tools/env.sh ts-node --transpile-only tools/package-args.ts           # write it
 *   sh tools/env.sh ts-node --transpile-only tools/package-args.ts --check   # exit 1 when stale
 *
 * Pulumi's schema inference takes no unions, so each union of the library is spelled one way:
 * a string literal union is a string (its values go into the description), `X | X[]` is a list,
 * `string | { url, ... }` is the object, `number | string` is a string, and a mix of scalars (or
 * `unknown`) is `any` (JSON). A union no rule covers stops the generation. Types the library leaves
 * anonymous get their names from NAMES; a field spelled differently gets its description from DOCS.
 * What does not cross (resources, which other languages cannot hand over) is in NOT_CROSSING.
 */
import * as fs from "fs";
import * as path from "path";
import * as ts from "typescript";

const ROOT = path.resolve(__dirname, "..");
export const OUT = path.join(ROOT, "pulumi-package", "args.generated.ts");
const ENTRY = path.join(ROOT, "provider", "src", "index.ts");

/** Library fields the package does not have: resources (README, "What differs from TypeScript"). */
export const NOT_CROSSING = {
  args: ["restartAfter", "filesAfter"],
  nodeOutputs: ["configCommand", "hostCommand", "commands", "setAsideCommand", "beforeRestartCommand", "afterRestartCommand"],
  fleetOutputs: ["nodes"],
} as const;

/**
 * The package's names of library types, by the library's name or (for the types it leaves anonymous)
 * by where they are; any other library interface is named without Spec, Of or Args.
 */
const NAMES: Record<string, string> = { NodeStateReport: "NodeState", "RegistryHost.client": "ClientCertificate", "NodeState.drift": "Drift", "RestartGuards.sandboxImage": "SandboxImageCheck" };

/** The package's own descriptions, where its spelling (or the library's word) differs. */
const CONNECTION = "How to reach the node over SSH. Set hostKey: without it the known_hosts file is read (hostKeyPolicy).";
const DOCS: Record<string, string> = {
  "ContainerdNodeArgs.connection": CONNECTION,
  "FleetNode.connection": CONNECTION,
  "Registry.mirrors": "Mirrors (`[host.\"<url>\"]` tables), tried in this order before `server`.\nDefault: [].",
  "RegistryHost.client": "`client`: TLS client certificates, each `{ cert, key }`, or `{ cert }` alone for a file (a path on the node or PEM content) holding both.",
  "Rollout.maxUnavailable":
    "How many nodes may restart containerd at once: a whole number (\"3\") or a percentage of the fleet\n(\"25%\", rounded down, at least 1).\nDefault: \"1\".",
  "Connection.hostKey": "The node's host key (`ssh-keyscan -t ed25519 HOST | cut -d' ' -f2-`), pinned. Without it, hostKeyPolicy decides.",
  "ProxyConnection.hostKey": "The bastion's host key, pinned. Without it, hostKeyPolicy decides.",
};

// ---- the package's shape of a library type ------------------------------------------------------

type Shape =
  | { k: "string" | "number" | "boolean" | "any"; values?: string[] }
  | { k: "input" | "output" | "promise" | "array" | "record"; of: Shape }
  | { k: "object"; name: string };

const same = (a: Shape, b: Shape) => text(a) === text(b);

function text(s: Shape): string {
  switch (s.k) {
    case "input": return `pulumi.Input<${text(s.of)}>`;
    case "output": return `pulumi.Output<${text(s.of)}>`;
    case "promise": return `Promise<${text(s.of)}>`;
    case "array": return `${text(s.of)}[]`;
    case "record": return `Record<string, ${text(s.of)}>`;
    case "object": return s.name;
    default: return s.k;
  }
}

/**
 * The literal values a shape stands for, for the description: in the order the declaration writes
 * them (`order`), else alphabetically (the checker's order depends on what it met first).
 */
function valuesOf(s: Shape, order: string[], each = ""): string | undefined {
  const rank = (v: string) => (order.includes(v) ? order.indexOf(v) : order.length);
  if (s.k === "string" && s.values) {
    const values = [...s.values].sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : 1));
    return `${each || "One"} of ${values.map((v) => JSON.stringify(v)).join(", ")}.`;
  }
  if (s.k === "array" || s.k === "input") return valuesOf(s.of, order, s.k === "array" ? "Each one" : each);
  return undefined;
}

/** The string literals a declaration's type writes, in order. */
function literalsIn(node: ts.Node | undefined): string[] {
  if (!node) return [];
  if (ts.isStringLiteral(node)) return [node.text];
  const out: string[] = [];
  node.forEachChild((child) => void out.push(...literalsIn(child)));
  return out;
}

/** One way to spell a union of the library's (the rules above), or an Error naming where. */
function combine(members: Shape[], at: string, shown: string): Shape {
  let list = members.filter((m, i) => members.findIndex((n) => JSON.stringify(n) === JSON.stringify(m)) === i);
  // Input<T>: T | Promise<T> | Output<T>, and what else the union holds (`S | S[]`).
  const promise = list.find((m) => m.k === "promise") as { of: Shape } | undefined;
  const output = list.find((m) => m.k === "output") as { of: Shape } | undefined;
  if (promise && output && same(promise.of, output.of)) {
    const rest = list.filter((m) => m.k !== "promise" && m.k !== "output" && !same(m, promise.of));
    list = [{ k: "input", of: promise.of }, ...rest];
  }
  if (list.length === 1) return list[0];
  const kinds = new Set(list.map((m) => m.k));
  if (kinds.size === 1 && list[0].k === "string") {
    const values = list.every((m) => m.k === "string" && m.values) ? list.flatMap((m) => (m as { values: string[] }).values) : undefined;
    return { k: "string", values };
  }
  if (kinds.size === 1 && (list[0].k === "number" || list[0].k === "boolean")) return { k: list[0].k };
  // One value or a list of them: a list.
  const arrays = list.filter((m) => m.k === "array") as { of: Shape }[];
  const single = list.filter((m) => m.k !== "array");
  if (arrays.length > 0 && single.length > 0) {
    const element = combine(arrays.map((a) => a.of), at, shown);
    const one = tryCombine(single, at, shown);
    if (one && same(one, element)) return { k: "array", of: element };
  }
  // A URL or `{ url, ... }` (and the like): the object.
  const objects = list.filter((m) => m.k === "object");
  if (objects.length === 1 && list.every((m) => m.k === "object" || m.k === "string")) return objects[0];
  // `number | string` (maxUnavailable): a string.
  if (list.every((m) => m.k === "string" || m.k === "number")) return { k: "string" };
  // A mix of scalars (and lists of them): JSON.
  const scalar = (m: Shape): boolean => m.k === "string" || m.k === "number" || m.k === "boolean" || (m.k === "array" && scalar(m.of));
  if (list.every(scalar)) return { k: "any" };
  throw new Error(`${at}: no rule spells the union ${shown} without a union (tools/package-args.ts)`);
}

function tryCombine(members: Shape[], at: string, shown: string): Shape | undefined {
  try {
    return combine(members, at, shown);
  } catch {
    return undefined;
  }
}

class Generator {
  private readonly checker: ts.TypeChecker;
  private readonly exports: Map<string, ts.Symbol>;
  /** Interfaces to write, by name: the library type and where it was first met. */
  private readonly named = new Map<string, { type: ts.Type; at: string }>();
  private readonly queue: string[] = [];

  constructor(program: ts.Program) {
    this.checker = program.getTypeChecker();
    const entry = program.getSourceFile(ENTRY);
    if (!entry) throw new Error(`no ${ENTRY} in the program`);
    const module = this.checker.getSymbolAtLocation(entry)!;
    this.exports = new Map(this.checker.getExportsOfModule(module).map((s) => [s.getName(), s]));
  }

  /** The declared type of an export of the library's entry (an interface, a class's instance). */
  exported(name: string): ts.Type {
    let s = this.exports.get(name);
    if (!s) throw new Error(`the library's entry does not export ${name}`);
    if (s.flags & ts.SymbolFlags.Alias) s = this.checker.getAliasedSymbol(s);
    return this.checker.getDeclaredTypeOfSymbol(s);
  }

  properties(type: ts.Type): ts.Symbol[] {
    return this.checker.getPropertiesOfType(type).filter((p) => {
      const decl = p.declarations?.[0];
      // Members of the SDK's classes (urn, getProvider ...) are not the component's.
      return !decl || !/node_modules[\\/]@pulumi[\\/]pulumi[\\/]/.test(decl.getSourceFile().fileName);
    });
  }

  typeOf(p: ts.Symbol): ts.Type {
    return this.checker.getNonNullableType(this.checker.getTypeOfSymbol(p));
  }

  shape(type: ts.Type, at: string): Shape {
    const c = this.checker;
    const shown = c.typeToString(type);
    // A name that does not resolve (an import gone wrong) is an `any` too: not one to write.
    if ((type as { intrinsicName?: string }).intrinsicName === "error") throw new Error(`${at}: the library's type does not resolve`);
    if (type.flags & (ts.TypeFlags.Any | ts.TypeFlags.Unknown)) return { k: "any" };
    if (type.flags & ts.TypeFlags.StringLiteral) return { k: "string", values: [(type as ts.StringLiteralType).value] };
    if (type.flags & ts.TypeFlags.StringLike) return { k: "string" };
    if (type.flags & ts.TypeFlags.NumberLike) return { k: "number" };
    if (type.flags & ts.TypeFlags.BooleanLike) return { k: "boolean" };
    if (type.isUnion()) {
      const members = type.types.filter((t) => !(t.flags & (ts.TypeFlags.Undefined | ts.TypeFlags.Null)));
      // `boolean` is `true | false`.
      if (members.every((t) => t.flags & ts.TypeFlags.BooleanLike)) return { k: "boolean" };
      return combine(members.map((t) => this.shape(t, at)), at, shown);
    }
    if (type.isIntersection()) {
      // Output<T> is OutputInstance<T> & Lifted<T>.
      const instance = type.types.find((t) => t.getSymbol()?.getName() === "OutputInstance");
      if (instance) return this.shape(instance, at);
      throw new Error(`${at}: no rule spells the intersection ${shown}`);
    }
    const symbol = type.getSymbol()?.getName();
    if (symbol === "Promise" || symbol === "OutputInstance" || symbol === "Output") {
      const [inner] = c.getTypeArguments(type as ts.TypeReference);
      return { k: symbol === "Promise" ? "promise" : "output", of: this.shape(inner, at) };
    }
    if (c.isArrayType(type)) return { k: "array", of: this.shape(c.getTypeArguments(type as ts.TypeReference)[0], at) };
    const index = c.getIndexInfoOfType(type, ts.IndexKind.String);
    if (index && c.getPropertiesOfType(type).length === 0) return { k: "record", of: this.shape(index.type, `${at}[*]`) };
    // An interface or object literal; a class (a resource) does not cross.
    if (type.flags & ts.TypeFlags.Object && c.getPropertiesOfType(type).length > 0 && !((type.getSymbol()?.flags ?? 0) & ts.SymbolFlags.Class)) {
      return { k: "object", name: this.nameFor(type, at) };
    }
    throw new Error(`${at}: no rule spells ${shown}`);
  }

  /** The package's name of a library interface (NAMES); `written`: declared by generate() itself. */
  nameFor(type: ts.Type, at: string, written?: string): string {
    const symbol = (type.aliasSymbol ?? type.getSymbol())?.getName() ?? "__type";
    const name = written ?? (symbol.startsWith("__") ? NAMES[at.replace(/\[\*\]$/, "")] : NAMES[symbol] ?? symbol.replace(/(Spec)?(Of)?$/, "").replace(/Args$/, ""));
    if (!name) throw new Error(`${at}: the library's type here has no name; give it one in NAMES (tools/package-args.ts)`);
    const known = this.named.get(name);
    if (!known) {
      this.named.set(name, { type, at });
      if (!written) this.queue.push(name);
    } else if (known.type !== type) {
      throw new Error(`${at}: ${name} names two different library types (also at ${known.at})`);
    }
    return name;
  }

  /** A property as the package declares it, with the library's description. */
  member(p: ts.Symbol, owner: string, optional = (p.flags & ts.SymbolFlags.Optional) !== 0): string {
    const at = `${owner}.${p.getName()}`;
    const shape = this.shape(this.typeOf(p), at);
    let doc = DOCS[at];
    if (doc === undefined) {
      const parts = [ts.displayPartsToString(p.getDocumentationComment(this.checker)).trim()];
      const decl = p.declarations?.[0];
      const declared = decl && (ts.isPropertySignature(decl) || ts.isPropertyDeclaration(decl)) ? decl.type : undefined;
      parts.push(valuesOf(shape, literalsIn(declared)) ?? "");
      for (const tag of p.getJsDocTags(this.checker)) {
        if (tag.name === "default") parts.push(`Default: ${ts.displayPartsToString(tag.text).replace(/^- /, "").trim()}.`.replace(/\.\.$/, "."));
      }
      doc = parts.filter((x) => x !== "").join("\n");
    }
    return `${comment(doc, "  ")}  ${p.getName()}${optional ? "?" : ""}: ${text(shape)};\n`;
  }

  /** The interfaces met so far (and the ones they use), in the order met. */
  interfaces(): string {
    let out = "";
    while (this.queue.length > 0) {
      const name = this.queue.shift()!;
      const { type } = this.named.get(name)!;
      const doc = ts.displayPartsToString((type.aliasSymbol ?? type.getSymbol())?.getDocumentationComment(this.checker) ?? []).trim();
      const members = this.properties(type).map((p) => this.member(p, name)).join("");
      out += `\n${comment(doc, "")}export interface ${name} {\n${members}}\n`;
    }
    return out;
  }
}

function comment(doc: string, indent: string): string {
  if (doc === "") return "";
  const lines = doc.replace(/\*\//g, "*\\/").split("\n");
  if (lines.length === 1) return `${indent}/** ${lines[0]} */\n`;
  return `${indent}/**\n${lines.map((l) => `${indent} *${l ? " " + l : ""}`).join("\n")}\n${indent} */\n`;
}

/** The library's program: its public entry, with the repository's compiler options. */
export function libraryProgram(host?: ts.CompilerHost): ts.Program {
  const config = ts.getParsedCommandLineOfConfigFile(path.join(ROOT, "tsconfig.json"), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => undefined });
  if (!config) throw new Error("cannot read tsconfig.json");
  return ts.createProgram({ rootNames: [ENTRY], options: config.options, host });
}

/** The field names of a type the library's entry exports (an interface, or a class's instances). */
export function libraryFields(program: ts.Program, name: string): string[] {
  const g = new Generator(program);
  return g.properties(g.exported(name)).map((p) => p.getName());
}

/** The text of args.generated.ts for the library of `program`. */
export function generate(program: ts.Program = libraryProgram()): string {
  const g = new Generator(program);
  const top = { ContainerdNodeArgs: g.exported("ContainerdNodeArgs"), FleetNode: g.exported("FleetNodeArgs"), ContainerdFleetArgs: g.exported("ContainerdFleetArgs") };
  const crossing = (t: ts.Type) => g.properties(t).filter((p) => !(NOT_CROSSING.args as readonly string[]).includes(p.getName()));
  // NodeSettings: what the node, the fleet and a fleet's node all take (spec and operation fields).
  const names = Object.values(top).map((t) => new Set(crossing(t).map((p) => p.getName())));
  const settings = crossing(top.ContainerdFleetArgs).filter((p) => names.every((n) => n.has(p.getName())));
  let out = "";
  out += `\n/** The spec of a node (containerd's own names) and what the node does with it: every field optional. */\n`;
  out += `export interface NodeSettings {\n${settings.map((p) => g.member(p, "NodeSettings", true)).join("")}}\n`;
  const docs: Record<string, string> = {
    ContainerdNodeArgs: "ContainerdNode's args: the library's, without restartAfter and filesAfter (use the dependsOn resource option).",
    FleetNode: "One node of a fleet: its name, how to reach it, and any spec field that differs from the fleet's.",
    ContainerdFleetArgs: "ContainerdFleet's args: the shared spec, the nodes and the rollout.",
  };
  for (const [name, type] of Object.entries(top)) g.nameFor(type, name, name);
  for (const [name, type] of Object.entries(top)) {
    // A field of NodeSettings that is required here, or spelled otherwise, is declared again.
    const own = crossing(type).filter((p) => {
      const base = settings.find((s) => s.getName() === p.getName());
      return !base || !(p.flags & ts.SymbolFlags.Optional) || text(g.shape(g.typeOf(p), name)) !== text(g.shape(g.typeOf(base), name));
    });
    out += `\n${comment(docs[name], "")}export interface ${name} extends NodeSettings {\n${own.map((p) => g.member(p, name)).join("")}}\n`;
  }
  // The outputs' types, from the library's components' outputs that cross.
  for (const [component, skip] of [["ContainerdNode", NOT_CROSSING.nodeOutputs], ["ContainerdFleet", NOT_CROSSING.fleetOutputs]] as const) {
    for (const p of g.properties(g.exported(component))) {
      if (!(skip as readonly string[]).includes(p.getName())) g.shape(g.typeOf(p), `${component}.${p.getName()}`);
    }
  }
  out += g.interfaces();
  return (
    "// Generated by tools/package-args.ts from the library's types (provider/src/index.ts): do not edit.\n" +
    "// `sh tools/env.sh ts-node --transpile-only tools/package-args.ts` writes it again.\n" +
    'import * as pulumi from "@pulumi/pulumi";\n' +
    out
  );
}

if (require.main === module) {
  const want = generate();
  const have = fs.existsSync(OUT) ? fs.readFileSync(OUT, "utf8") : "";
  if (process.argv.includes("--check")) {
    if (want !== have) {
      console.error(`${path.relative(process.cwd(), OUT)} is stale: run tools/package-args.ts`);
      process.exit(1);
    }
  } else if (want !== have) {
    fs.writeFileSync(OUT, want);
    console.log(`wrote ${path.relative(process.cwd(), OUT)}`);
  }
}
