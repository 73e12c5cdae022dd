/**
 * Golden files: the exact bytes rendered for representative specs. Run with UPDATE_GOLDEN=1 to
 * rewrite them after an intended change, then review the diff like any other code.
 */
import * as fs from "fs";
import * as path from "path";
import { renderNode } from "../../provider/src";
import { GOLDEN_CASES } from "../fixtures/specs";

const GOLDEN = path.join(__dirname, "..", "golden");

/** One text per case: every file with its path, mode and secrecy, in render order. */
function snapshot(spec: unknown): string {
  const r = renderNode(spec);
  const parts = [`# configVersion: ${r.configVersion}`, ...r.warnings.map((w) => `# warning: ${w}`)];
  for (const f of r.files) {
    parts.push(`=== ${f.path} (${f.kind}, mode ${f.mode.toString(8)}${f.secret ? ", secret" : ""})`, f.content);
  }
  return parts.join("\n") + "\n";
}

describe.each(GOLDEN_CASES)("golden $name", ({ name, spec }) => {
  it("renders exactly the golden file", () => {
    const file = path.join(GOLDEN, `${name}.txt`);
    const text = snapshot(spec);
    if (process.env.UPDATE_GOLDEN === "1") fs.writeFileSync(file, text);
    expect(text).toBe(fs.readFileSync(file, "utf8"));
  });
});
