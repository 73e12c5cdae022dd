/**
 * The library's layers, as its imports draw them: no module imports itself back through others, and
 * no two folders of provider/src import each other (spec/ and render/, component/ and remote/ ...
 * each depend in one direction only). Type-only imports count: a cycle of types is still a cycle
 * for a reader following them.
 */
import * as fs from "fs";
import * as path from "path";

const SRC = path.resolve(__dirname, "..", "..", "provider", "src");

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : p.endsWith(".ts") ? [p] : [];
  });
}

/** Each module's relative imports (import and export ... from), as module paths under SRC. */
function graph(): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const file of sources(SRC)) {
    const text = fs.readFileSync(file, "utf8");
    const deps = [...text.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s+"(\.[^"]+)"/gms)].map((m) => {
      const target = path.resolve(path.dirname(file), m[1]);
      return path.relative(SRC, fs.existsSync(`${target}.ts`) ? `${target}.ts` : path.join(target, "index.ts"));
    });
    g.set(path.relative(SRC, file), [...new Set(deps)]);
  }
  return g;
}

/** Every cycle, each as the modules in order, starting at its smallest name. */
export function cycles(g: Map<string, string[]>): string[][] {
  const found = new Map<string, string[]>();
  const walk = (node: string, stack: string[]) => {
    const at = stack.indexOf(node);
    if (at !== -1) {
      const cycle = stack.slice(at);
      const start = cycle.indexOf([...cycle].sort()[0]);
      const norm = [...cycle.slice(start), ...cycle.slice(0, start)];
      found.set(norm.join(" -> "), norm);
      return;
    }
    for (const d of g.get(node) ?? []) walk(d, [...stack, node]);
  };
  for (const n of g.keys()) walk(n, []);
  return [...found.values()];
}

describe("provider/src imports", () => {
  const g = graph();

  it("reads every module and its imports", () => {
    expect(g.size).toBeGreaterThan(20);
    expect(g.get("component/containerd-node.ts")).toContain("component/plan.ts");
  });

  it("has no import cycle", () => {
    expect(cycles(g).map((c) => [...c, c[0]].join(" -> "))).toEqual([]);
  });

  it("has no two folders that import each other", () => {
    // A top-level module is a layer of its own (errors.ts, which everything uses); the entry
    // (index.ts) only re-exports and is left out.
    const folder = (m: string) => (m.includes("/") ? m.split("/")[0] : m);
    const edges = new Set<string>();
    for (const [m, deps] of g) {
      if (m === "index.ts") continue;
      for (const d of deps) if (folder(m) !== folder(d)) edges.add(`${folder(m)} -> ${folder(d)}`);
    }
    const both = [...edges].filter((e) => {
      const [a, b] = e.split(" -> ");
      return a < b && edges.has(`${b} -> ${a}`);
    });
    expect(both).toEqual([]);
  });

  it("the check finds a cycle when there is one", () => {
    const c = cycles(new Map([["a.ts", ["b.ts"]], ["b.ts", ["c.ts"]], ["c.ts", ["a.ts"]], ["d.ts", ["a.ts"]]]));
    expect(c).toEqual([["a.ts", "b.ts", "c.ts"]]);
  });
});
