/**
 * The package as a user gets it: `npm pack` (which builds it through `prepare`) makes a tarball that a
 * fresh project installs and uses by its name, types included. Dependencies come from npm's cache
 * (filled by this repository's own `npm ci`), through npm's own configuration.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

jest.setTimeout(300_000);

const repo = path.resolve(__dirname, "..", "..");
const NAME = "@containerd-pulumi/containerd-node";

function npm(args: string[], cwd: string) {
  const r = spawnSync("npm", [...args, "--no-audit", "--no-fund", "--loglevel=error"], { cwd, encoding: "utf8", timeout: 240_000 });
  if (r.status !== 0) throw new Error(`npm ${args.join(" ")} failed in ${cwd}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

let dir: string;
let tarball: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "packed-"));
  const out = JSON.parse(npm(["pack", "--json", "--pack-destination", dir], repo)) as { filename: string; files: { path: string }[] }[];
  tarball = path.join(dir, out[0].filename);
  fs.writeFileSync(path.join(dir, "files.json"), JSON.stringify(out[0].files.map((f) => f.path)));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

it("packs the built library with its types and documentation, and nothing of the tests", () => {
  const files = JSON.parse(fs.readFileSync(path.join(dir, "files.json"), "utf8")) as string[];
  expect(files).toEqual(expect.arrayContaining(["package.json", "README.md", "provider/bin/index.js", "provider/bin/index.d.ts", "provider/bin/remote/node-script.js"]));
  // README.md links to docs/*.md (the reference, troubleshooting, ...): they ship beside it, so its links
  // resolve in an installed package too.
  const docs = fs.readdirSync(path.join(repo, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`);
  expect(docs).toEqual(expect.arrayContaining(["docs/reference.md", "docs/troubleshooting.md"]));
  expect(files).toEqual(expect.arrayContaining(docs));
  expect(files.filter((f) => !f.startsWith("provider/bin/") && !["package.json", "README.md", ...docs].includes(f))).toEqual([]);
});

it("installs into a fresh project, which renders and declares a fleet through the package's name, type-checked", () => {
  const app = path.join(dir, "app");
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "app", version: "1.0.0", private: true }));
  npm(["install", "--prefer-offline", tarball, "typescript@5.9.3", "@types/node@20"], app);
  // A user's program, as the README's TypeScript section writes one.
  fs.writeFileSync(
    path.join(app, "index.ts"),
    `import * as pulumi from "@pulumi/pulumi";
import { ContainerdFleet, renderNode } from "${NAME}";

const files = renderNode({ containerdVersion: "2.3", registries: { "docker.io": { mirrors: ["https://m.example.com"] } } }).files;
console.log("rendered", files.map((f) => f.path).join(" "));

pulumi.runtime.setMocks({
  newResource: (a) => ({ id: a.name + "-id", state: a.inputs }),
  call: (a) => a.inputs,
}, "app", "dev", false);
const fleet = new ContainerdFleet("k8s", {
  containerdVersion: "1.7.22",
  systemdCgroup: true,
  nodes: [{ name: "node-1", connection: { host: "10.0.0.11", privateKey: "KEY", hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPtest" } }],
});
console.log("waves", JSON.stringify(fleet.waves));
`,
  );
  fs.writeFileSync(path.join(app, "tsconfig.json"), JSON.stringify({ compilerOptions: { strict: true, module: "commonjs", target: "es2020", esModuleInterop: true, skipLibCheck: true } }));
  const tsc = spawnSync(path.join(app, "node_modules", ".bin", "tsc"), ["-p", "."], { cwd: app, encoding: "utf8" });
  expect(tsc.stdout + tsc.stderr).toBe("");
  const run = spawnSync("node", ["index.js"], { cwd: app, encoding: "utf8" });
  expect(run.stderr).toBe("");
  expect(run.stdout).toContain("rendered /etc/containerd/config.toml /etc/containerd/certs.d/docker.io/hosts.toml");
  expect(run.stdout).toContain('waves [["node-1"]]');
});
