/**
 * ContainerdFleet from Python, Go and YAML: each of examples/china-mirrors-{python,go,yaml} run the
 * way its README tells a user, with the real `pulumi` CLI in its own folder: `pulumi package add
 * ../../pulumi-package` (the component package of this repository: Pulumi generates the language's SDK
 * from pulumi-package/index.ts), stack config with `pulumi config set`, then preview, up, a mirror change,
 * a refused spec and destroy, against one containerd 1.x and one 2.x node of the local fleet.
 *
 * What the engine ran is checked against the TypeScript library itself: every file on the nodes is
 * byte for byte what `renderNode` gives for the same spec, and a bad spec is refused with the very
 * SpecError text that the library's TypeScript API throws.
 */
import * as fs from "fs";
import * as path from "path";
import { spawnSync } from "child_process";
import { CliStack } from "../support/cli";
import { criPullImage, criRemoveImage } from "../support/cri";
import { serveGit } from "../support/git-https";
import { privateDir, pulumiPath, TOOLS_BIN } from "../support/pulumi-env";
import { renderNode } from "../../provider/src/render/render-node";
import { validateFleet } from "../../provider/src/component/containerd-fleet";
import type { ContainerdFleetArgs } from "../../provider/src/component/containerd-fleet";
import * as F from "./fleet";
import type { FleetNode } from "./fleet";
import { HUB, MIRROR, MIRROR_B, PAUSE, configNode, fleet } from "./fixture";

// Go compiles the program (and, the first time, the Pulumi Go SDK) before each run.
jest.setTimeout(900_000);

/** One node of each containerd major version the fleet has: config version 2 and 3 (or 4). */
const NODES = ["1.", "2."].map((major) => {
  const n = fleet.nodes.find((x) => x.containerdVersion.startsWith(major));
  if (!n) throw new Error(`the fleet has no containerd ${major}x node (it has ${fleet.nodes.map((x) => x.containerdVersion).join(", ")})`);
  return n;
});
const FLEET = "k8s-nodes";
const CACHE = path.join(F.REPO, ".cache");
const PY_VENV = path.join(CACHE, "python");

/**
 * The environment each language's toolchain needs on top of the CLI's: for Python the virtual
 * environment .ci/install made, activated (as the README's `. venv/bin/activate`); for Go the
 * module and build caches that build.sh fills.
 */
function languageEnv(lang: string): Record<string, string> {
  const base = [path.dirname(pulumiPath()), TOOLS_BIN, path.dirname(process.execPath)];
  if (lang === "python") {
    return { PATH: [...base, path.join(PY_VENV, "bin"), process.env.PATH ?? ""].join(":"), VIRTUAL_ENV: PY_VENV, PIP_DISABLE_PIP_VERSION_CHECK: "1" };
  }
  if (lang === "go") {
    return {
      PATH: [...base, process.env.PATH ?? "", "/usr/local/go/bin"].join(":"),
      GOMODCACHE: path.join(CACHE, "go", "mod"),
      GOCACHE: path.join(CACHE, "go", "build"),
      GOFLAGS: "-modcacherw",
    };
  }
  return {};
}

/** The TypeScript args that the example programs declare, for the library's own renderer and validator. */
function tsArgs(dockerHubMirrors: string[]): ContainerdFleetArgs {
  return {
    containerdVersion: "1.7.22",
    systemdCgroup: true,
    sandboxImage: PAUSE,
    registries: {
      "docker.io": { mirrors: dockerHubMirrors.map((url) => ({ url })) },
      "registry.k8s.io": { mirrors: [{ url: MIRROR }] },
    },
    nodes: NODES.map((n) => ({ name: n.name, containerdVersion: n.containerdVersion, connection: { host: n.host, port: n.port, user: "root", hostKey: n.hostKey, privateKey: n.privateKey } })),
    rollout: { maxUnavailable: 1, canary: 1 },
  };
}

/** What the library renders for one node of the fleet (the files the engine must have written). */
function rendered(n: FleetNode, dockerHubMirrors: string[]) {
  const { nodes: _nodes, rollout: _rollout, ...shared } = tsArgs(dockerHubMirrors);
  return renderNode({ ...shared, containerdVersion: n.containerdVersion });
}

/** Each language's stack config: the same values, in the shape its example reads. */
async function configure(lang: string, s: CliStack, dockerHubMirrors: string[]): Promise<void> {
  const project = `china-mirrors-${lang}`;
  if (lang === "yaml") {
    await s.setAll({
      [`${project}:dockerHubMirror`]: dockerHubMirrors[0],
      [`${project}:k8sMirror`]: MIRROR,
      [`${project}:sandboxImage`]: PAUSE,
      [`${project}:nodes`]: NODES.map((n) => configNode(n)),
    });
    return;
  }
  await s.setAll({
    [`${project}:containerdVersion`]: "1.7.22",
    [`${project}:dockerHubMirrors`]: dockerHubMirrors,
    [`${project}:k8sMirrors`]: [MIRROR],
    [`${project}:sandboxImage`]: PAUSE,
    [`${project}:nodes`]: NODES.map((n) => configNode(n)),
  });
}

const hostsToml = (n: FleetNode) => F.nodeFile(n, HUB);

describe.each(["python", "go", "yaml"])("examples/china-mirrors-%s through the component package", (lang) => {
  const cwd = path.join(F.REPO, "examples", `china-mirrors-${lang}`);
  let s: CliStack;
  const originals = new Map<string, string | undefined>();

  beforeAll(async () => {
    await F.resetNodes(NODES);
    for (const n of NODES) originals.set(n.name, await F.nodeFile(n, "/etc/containerd/config.toml"));
    s = new CliStack({ cwd, dir: F.E2E_DIR, env: languageEnv(lang) });
  });
  afterAll(() => s?.dispose());

  it("`pulumi package add ../../pulumi-package` generates the SDK from the package's schema", async () => {
    fs.rmSync(path.join(cwd, "sdks"), { recursive: true, force: true });
    const add = await s.run(["package", "add", "../../pulumi-package"], { timeoutMs: 600_000 });
    const out = add.stdout + add.stderr;
    // The project names the package (for YAML, by hand: see below), which is how the engine finds it.
    expect(fs.readFileSync(path.join(cwd, "Pulumi.yaml"), "utf8")).toMatch(/packages:\s+containerd-node: \.\.\/\.\.\/pulumi-package\n/);
    if (lang === "python") {
      expect({ status: add.status, out }).toMatchObject({ status: 0 });
      expect(out).toContain("import pulumi_containerd_node");
      const sdk = path.join(cwd, "sdks", "containerd-node", "pulumi_containerd_node");
      expect(fs.readFileSync(path.join(sdk, "containerd_fleet.py"), "utf8")).toContain("nodes: Sequence['FleetNodeArgs']");
      // Credentials stay Inputs (a secret Output may go there); the spec is plain, as in TypeScript.
      expect(fs.readFileSync(path.join(sdk, "_inputs.py"), "utf8")).toContain("password: pulumi.Input[Optional[_builtins.str]] = None");
      expect(fs.readFileSync(path.join(cwd, "requirements.txt"), "utf8")).toContain("sdks/containerd-node");
    } else if (lang === "go") {
      expect({ status: add.status, out }).toMatchObject({ status: 0 });
      expect(out).toContain("example.com/pulumi-containerd-node/sdk/go/containerdnode");
      expect(fs.readFileSync(path.join(cwd, "go.mod"), "utf8")).toContain("replace example.com/pulumi-containerd-node/sdk/go => ./sdks/containerd-node");
      expect(fs.readFileSync(path.join(cwd, "sdks", "containerd-node", "containerdnode", "pulumiTypes.go"), "utf8")).toMatch(/Password pulumi\.StringPtrInput/);
    } else {
      // pulumi-language-yaml v1.25 writes the package declaration, then has no Link to add it to
      // Pulumi.yaml: the example's packages entry is written by hand, as its README says.
      expect(add.status).toBe(1);
      expect(out).toContain("linking package: method Link not implemented");
      expect(fs.readFileSync(path.join(cwd, "sdks", "containerd-node", "containerd-node-0.1.0.yaml"), "utf8")).toContain("name: containerd-node");
    }
  });

  it("previews every node's files on a fresh stack, and touches no node", async () => {
    await s.init();
    await s.set("privateKey", NODES[0].privateKey, { secret: true });
    await configure(lang, s, [MIRROR]);
    const before = NODES.map(F.restarts);
    const preview = await s.ok(["preview", "--diff"]);
    for (const n of NODES) {
      expect(preview.stdout).toContain(`containerd:index:ContainerdNode::${n.name}]`);
      expect(preview.stdout).toContain(`command:remote:Command::${n.name}:/etc/containerd/config.toml]`);
      expect(preview.stdout).toContain(`command:remote:Command::${n.name}:/etc/containerd/certs.d/docker.io/hosts.toml]`);
    }
    expect(preview.stdout).toContain(`containerd-node:index:ContainerdFleet::${FLEET}]`);
    // The fleet, its library fleet, per node the node, its host resource, config.toml and two hosts.toml.
    expect(preview.stdout).toMatch(/\+ 13 to create/);
    expect(preview.stdout + preview.stderr).not.toContain(NODES[0].privateKey.trim().split("\n")[1]);
    expect(NODES.map(F.restarts)).toEqual(before);
  });

  it("deploys: one restart per node, the files the TypeScript renderer gives, the outputs, the key a secret", async () => {
    const before = NODES.map(F.restarts);
    const up = await s.ok(["up", "--yes", "--skip-preview"]);
    expect(up.stdout).toMatch(/\+ \d+ created/);
    expect(NODES.map(F.restarts)).toEqual(before.map((b) => b + 1));
    for (const n of NODES) {
      const r = rendered(n, [MIRROR]);
      for (const f of r.files) expect(await F.nodeFile(n, f.path)).toBe(f.content);
      const cri = Object.values(await F.criPlugins(n));
      expect(cri.length).toBeGreaterThan(0);
      expect(cri.every((st) => st === "ok")).toBe(true);
    }
    const outputs = JSON.parse((await s.ok(["stack", "output", "--json"])).stdout) as { waves: string[][]; restartedNodes: string[] };
    // canary 1, then one node at a time.
    expect(outputs.waves).toEqual([[NODES[0].name], [NODES[1].name]]);
    expect([...outputs.restartedNodes].sort()).toEqual(NODES.map((n) => n.name).sort());
    // The private key crossed from the program to the component as a secret: nowhere in the state in clear.
    const exported = (await s.ok(["stack", "export"])).stdout;
    expect(exported).not.toContain(NODES[0].privateKey.trim().split("\n")[1]);
    expect(exported).toContain("4dabf18193072939515e22adb298388d"); // the engine's secret signature
  });

  it("previews a mirror change as the hosts.toml line diff, and applies it with no restart", async () => {
    await configure(lang, s, [MIRROR_B]);
    const preview = await s.ok(["preview", "--diff"]);
    expect(preview.stdout).toContain(`- [host."${MIRROR}"]`);
    expect(preview.stdout).toContain(`+ [host."${MIRROR_B}"]`);
    // Exactly the two docker.io hosts.toml files, nothing else (config.toml would restart containerd).
    expect(preview.stdout).toMatch(/~ 2 to update/);
    const updated = [...preview.stdout.matchAll(/~ command:remote:Command: \(update\)\s+(?:\[id=[^\]]*\]\s+)?\[urn=[^\]]*::([^\]]+)\]/g)].map((m) => m[1]).sort();
    expect(updated).toEqual(NODES.map((n) => `${n.name}:/etc/containerd/certs.d/docker.io/hosts.toml`).sort());
    const before = NODES.map(F.restarts);
    await s.ok(["up", "--yes", "--skip-preview"]);
    expect(NODES.map(F.restarts)).toEqual(before);
    for (const n of NODES) {
      const want = rendered(n, [MIRROR_B]).files.find((f) => f.path.endsWith("docker.io/hosts.toml"))!;
      expect(await hostsToml(n)).toBe(want.content);
    }
  });

  it("refuses a bad spec with the TypeScript API's SpecError text, and changes nothing", async () => {
    // Docker Hub's web site as a mirror: the library refuses it (it is not the registry).
    const bad = "https://docker.io";
    let expected = "";
    try {
      validateFleet(FLEET, tsArgs([bad]));
    } catch (e) {
      expected = (e as Error).message;
    }
    expect(expected).toContain('Invalid ContainerdFleet args for "k8s-nodes"');
    await configure(lang, s, [bad]);
    const before = NODES.map(F.restarts);
    const hosts = await Promise.all(NODES.map(hostsToml));
    const r = await s.cmd(["up", "--yes", "--skip-preview"]);
    expect(r.status).not.toBe(0);
    for (const line of expected.split("\n")) expect(r.stdout + r.stderr).toContain(line.trim());
    expect(NODES.map(F.restarts)).toEqual(before);
    expect(await Promise.all(NODES.map(hostsToml))).toEqual(hosts);
    await configure(lang, s, [MIRROR_B]);
  });

  it("destroy puts every node's original config.toml back and removes the hosts.toml files", async () => {
    await s.ok(["destroy", "--yes", "--skip-preview"]);
    for (const n of NODES) {
      expect(await F.nodeFile(n, "/etc/containerd/config.toml")).toBe(originals.get(n.name));
      expect(await F.nodePathExists(n, "/etc/containerd/certs.d/docker.io/hosts.toml")).toBe(false);
      expect(await F.nodePathExists(n, "/etc/containerd/certs.d/registry.k8s.io/hosts.toml")).toBe(false);
    }
  });
});

describe("pulumi package add of a git URL (this repository's HEAD, served over HTTPS from this machine)", () => {
  // The CLI takes https:// (or git://, fetched as https) git sources only, and reads the folder
  // after `.git`; a fresh clone, so pulumi-package's install builds the library there first. The
  // server is https://localhost on port 443: a URL with a port makes pulumi v3.276 panic after the
  // install (see tests/support/git-https.ts).
  const node = NODES[1];
  const head = spawnSync("git", ["-C", F.REPO, "rev-parse", "HEAD"], { encoding: "utf8" }).stdout.trim();
  let dir: string;
  let home: string;
  let server: Awaited<ReturnType<typeof serveGit>>;
  let url: string;
  beforeAll(async () => {
    dir = privateDir(F.E2E_DIR, "git-");
    const gitDir = path.join(dir, "git");
    fs.mkdirSync(path.join(gitDir, "containerd-pulumi"), { recursive: true });
    const clone = spawnSync("git", ["clone", "-q", "--bare", F.REPO, path.join(gitDir, "containerd-pulumi", "containerd-node.git")], { encoding: "utf8" });
    expect(clone.stderr).toBe("");
    server = await serveGit(gitDir, "containerd-pulumi/containerd-node");
    url = `${server.url}/pulumi-package`;
    // A PULUMI_HOME of their own: the clone (with the library's node_modules) goes under its plugins/,
    // once for the three projects. The command provider the component uses is the one
    // tools/pulumi/build.sh installed. (Copied: with a symlink to it, the engine did not find it and
    // tried to download it.)
    home = path.join(dir, "pulumi-home");
    fs.mkdirSync(path.join(home, "plugins"), { recursive: true });
    const shared = path.join(CACHE, "pulumi-home", "plugins");
    for (const p of fs.readdirSync(shared).filter((d) => d.startsWith("resource-command-"))) fs.cpSync(path.join(shared, p), path.join(home, "plugins", p), { recursive: true });
  });
  afterAll(async () => {
    await server?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });
  const stackIn = (project: string, lang: string) => new CliStack({ cwd: project, dir, env: { ...languageEnv(lang), PULUMI_HOME: home, SSL_CERT_FILE: server.caFile } });

  it("Python: clones it, builds the library in the clone, generates the SDK, records the package, and a program from it deploys and destroys", async () => {
    const project = path.join(dir, "python");
    fs.mkdirSync(project);
    fs.writeFileSync(path.join(project, "Pulumi.yaml"), "name: from-git\nruntime:\n  name: python\n  options:\n    toolchain: pip\n");
    fs.writeFileSync(path.join(project, "requirements.txt"), "pulumi>=3.231.0,<4.0.0\n");
    const s = stackIn(project, "python");
    try {
      await F.resetNodes([node]);
      const original = await F.nodeFile(node, "/etc/containerd/config.toml");
      expect(url).toBe("https://localhost/containerd-pulumi/containerd-node.git/pulumi-package");
      const add = await s.run(["package", "add", url], { timeoutMs: 900_000 });
      const out = add.stdout + add.stderr;
      expect({ status: add.status, out }).toMatchObject({ status: 0 });
      expect(out).toContain("installing and building the library in");
      const plugins = fs.readdirSync(path.join(home, "plugins")).filter((d) => d.includes("containerd-node.git_pulumi-package") && !d.endsWith(".lock"));
      expect(plugins).toHaveLength(1);
      expect(fs.existsSync(path.join(home, "plugins", plugins[0], "provider", "bin", "index.js"))).toBe(true);
      expect(out).toContain("Successfully generated an SDK for the containerd-node package");
      // The owner path segment became the package's namespace, so the SDK's names carry it.
      const sdk = path.join(project, "sdks", "containerd-pulumi-containerd-node", "containerd_pulumi_containerd_node");
      expect(fs.readFileSync(path.join(sdk, "containerd_fleet.py"), "utf8")).toContain("class ContainerdFleet(pulumi.ComponentResource)");
      expect(out).toContain("Successfully installed containerd_pulumi_containerd_node");
      // The package is recorded by its git source (the scheme dropped) at the commit it was taken at.
      const yaml = fs.readFileSync(path.join(project, "Pulumi.yaml"), "utf8");
      expect(yaml).toContain(`packages:\n  containerd-node: localhost/containerd-pulumi/containerd-node.git/pulumi-package@${head}\n`);

      // A program from that SDK: the docker.io mirror on one node, up and destroy.
      fs.writeFileSync(path.join(project, "__main__.py"), [
        "import pulumi",
        "import containerd_pulumi_containerd_node as containerd",
        "",
        "config = pulumi.Config()",
        "node = containerd.ContainerdNode(",
        `    ${JSON.stringify(node.name)},`,
        `    containerd_version=${JSON.stringify(node.containerdVersion)},`,
        `    registries={"docker.io": containerd.RegistryArgs(mirrors=[containerd.RegistryHostArgs(url=${JSON.stringify(MIRROR)})])},`,
        "    connection=containerd.ConnectionArgs(",
        `        host=${JSON.stringify(node.host)}, port=${node.port}, user="root", host_key=${JSON.stringify(node.hostKey)},`,
        "        private_key=config.require_secret(\"privateKey\"),",
        "    ),",
        ")",
        'pulumi.export("restarted", node.restarted)',
        'pulumi.export("lastApply", node.last_apply)',
        'pulumi.export("readSeconds", node.node_state.read_seconds)',
        'pulumi.export("mirrorSeconds", node.mirror_health.apply(lambda ms: [m.seconds for m in ms]))',
        "",
      ].join("\n"));
      await s.init();
      await s.set("privateKey", node.privateKey, { secret: true });
      const up = await s.ok(["up", "--yes", "--skip-preview"]);
      expect(up.stdout).toMatch(/\+ \d+ created/);
      const want = renderNode({ containerdVersion: node.containerdVersion, registries: { "docker.io": { mirrors: [{ url: MIRROR }] } } });
      for (const f of want.files) expect(await F.nodeFile(node, f.path)).toBe(f.content);
      // What this run did and how long the read took reach the program; the state records neither
      // (as the library's node), so a no-op does not rewrite the checkpoint once per node.
      const outputs = JSON.parse((await s.ok(["stack", "output", "--json"])).stdout) as { restarted: boolean; lastApply: unknown[]; readSeconds: number; mirrorSeconds: number[] };
      expect(outputs.restarted).toBe(true);
      expect(outputs.lastApply.length).toBe(want.files.length);
      expect(outputs.readSeconds).toBeGreaterThan(0);
      expect(outputs.mirrorSeconds.length).toBeGreaterThan(0);
      const recorded = (await s.resources()).find((r) => r.type === "containerd-node:index:ContainerdNode");
      expect(recorded?.outputs).toMatchObject({ configHash: expect.any(String), nodeState: { read: true, reached: true } });
      for (const key of ["restarted", "lastApply", "files"]) expect(recorded!.outputs).not.toHaveProperty(key);
      expect(recorded!.outputs!.nodeState).not.toHaveProperty("readSeconds");
      for (const m of recorded!.outputs!.mirrorHealth as object[]) expect(m).not.toHaveProperty("seconds");
      await s.ok(["destroy", "--yes", "--skip-preview"]);
      expect(await F.nodeFile(node, "/etc/containerd/config.toml")).toBe(original);
      expect(await F.nodePathExists(node, "/etc/containerd/certs.d/docker.io/hosts.toml")).toBe(false);
    } finally {
      s.dispose();
    }
  });

  it("Go: the same source gives the Go SDK, and examples/china-mirrors-go on it previews every node's files", async () => {
    const project = path.join(dir, "go");
    const example = path.join(F.REPO, "examples", "china-mirrors-go");
    fs.mkdirSync(project);
    fs.copyFileSync(path.join(example, "go.sum"), path.join(project, "go.sum"));
    // The example's project without its local package: go.mod without its require and replace lines,
    // Pulumi.yaml without packages, and until the SDK is there (its module path carries the
    // namespace), a main.go that imports nothing of it.
    fs.writeFileSync(path.join(project, "go.mod"), fs.readFileSync(path.join(example, "go.mod"), "utf8").replace(/^replace .*\n/m, "").replace(/^\s*example\.com\/pulumi-containerd-node\/sdk\/go .*\n/m, ""));
    fs.writeFileSync(path.join(project, "main.go"), 'package main\n\nimport "github.com/pulumi/pulumi/sdk/v3/go/pulumi"\n\nfunc main() { pulumi.Run(func(*pulumi.Context) error { return nil }) }\n');
    fs.writeFileSync(path.join(project, "Pulumi.yaml"), fs.readFileSync(path.join(example, "Pulumi.yaml"), "utf8").replace(/^packages:\n(  .*\n)+/m, ""));
    const s = stackIn(project, "go");
    try {
      const add = await s.run(["package", "add", url], { timeoutMs: 900_000 });
      const out = add.stdout + add.stderr;
      expect(add.status === 0 ? "" : out).toBe("");
      expect(fs.readFileSync(path.join(project, "Pulumi.yaml"), "utf8")).toContain(`  containerd-node: localhost/containerd-pulumi/containerd-node.git/pulumi-package@${head}\n`);
      // The module path carries the namespace: the program imports what go.mod's replace line names.
      const replace = /^replace (\S+) => \.\/sdks\/(\S+)$/m.exec(fs.readFileSync(path.join(project, "go.mod"), "utf8"));
      expect(replace).not.toBeNull();
      const pkgDir = fs.readdirSync(path.join(project, "sdks", replace![2]), { withFileTypes: true }).find((e) => e.isDirectory() && fs.existsSync(path.join(project, "sdks", replace![2], e.name, "containerdFleet.go")));
      expect(pkgDir).toBeDefined();
      const main = fs.readFileSync(path.join(example, "main.go"), "utf8");
      fs.writeFileSync(path.join(project, "main.go"), main.replace('"example.com/pulumi-containerd-node/sdk/go/containerdnode"', JSON.stringify(`${replace![1]}/${pkgDir!.name}`)));
      const tidy = spawnSync("go", ["mod", "tidy"], { cwd: project, env: { ...process.env, ...languageEnv("go") }, encoding: "utf8" });
      expect(tidy.status).toBe(0);
      await s.init();
      await s.set("privateKey", NODES[0].privateKey, { secret: true });
      await configure("go", s, [MIRROR]);
      const before = NODES.map(F.restarts);
      const preview = await s.ok(["preview", "--diff"]);
      for (const n of NODES) expect(preview.stdout).toContain(`command:remote:Command::${n.name}:/etc/containerd/certs.d/docker.io/hosts.toml]`);
      expect(preview.stdout).toMatch(/\+ 13 to create/);
      expect(NODES.map(F.restarts)).toEqual(before);
    } finally {
      s.dispose();
    }
  });

  it("YAML: package add writes the package declaration (then fails on Link), and with Pulumi.yaml naming the git source examples/china-mirrors-yaml previews", async () => {
    const project = path.join(dir, "yaml");
    fs.mkdirSync(project);
    const example = fs.readFileSync(path.join(F.REPO, "examples", "china-mirrors-yaml", "Pulumi.yaml"), "utf8");
    expect(example).toContain("  containerd-node: ../../pulumi-package\n");
    fs.writeFileSync(path.join(project, "Pulumi.yaml"), example.replace(/^packages:\n(  .*\n)+/m, ""));
    const s0 = stackIn(project, "yaml");
    try {
      // The declaration in sdks/ is what the YAML host resolves the package from: its version and
      // its git download URL. Without it the host asks GitHub for a pulumi-containerd-node release.
      const add = await s0.run(["package", "add", url], { timeoutMs: 900_000 });
      expect(add.status).toBe(1);
      expect(add.stdout + add.stderr).toContain("linking package: method Link not implemented");
    } finally {
      s0.dispose();
    }
    const decls = fs.readdirSync(path.join(project, "sdks"), { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".yaml"));
    expect(decls).toHaveLength(1);
    expect(fs.readFileSync(path.join(project, "sdks", decls[0]), "utf8")).toContain("git://localhost/containerd-pulumi/containerd-node.git/pulumi-package");
    fs.writeFileSync(path.join(project, "Pulumi.yaml"), example.replace("  containerd-node: ../../pulumi-package\n", `  containerd-node: localhost/containerd-pulumi/containerd-node.git/pulumi-package@${head}\n`));
    const s = stackIn(project, "yaml");
    try {
      await s.init();
      await s.set("privateKey", NODES[0].privateKey, { secret: true });
      await configure("yaml", s, [MIRROR]);
      const preview = await s.ok(["preview", "--diff"]);
      for (const n of NODES) expect(preview.stdout).toContain(`command:remote:Command::${n.name}:/etc/containerd/certs.d/docker.io/hosts.toml]`);
      expect(preview.stdout).toMatch(/\+ 13 to create/);
    } finally {
      s.dispose();
    }
  });
});

describe("registry credentials from a YAML program, through ContainerdNode", () => {
  // The fleet's mirror that wants Basic auth; the password is a secret of the stack's config.
  const AUTH = fleet.registry.authMirror;
  const node = NODES[1];
  const TINY = "docker.io/library/tiny:1.0";

  it("reach hosts.toml (0600) as the Authorization header, pull through the mirror, and are nowhere else in clear", async () => {
    const dir = privateDir(F.E2E_DIR, "auth-");
    const project = path.join(dir, "project");
    fs.mkdirSync(project);
    fs.writeFileSync(path.join(project, "Pulumi.yaml"), [
      "name: auth-yaml",
      "runtime: yaml",
      "packages:",
      `  containerd-node: ${path.join(F.REPO, "pulumi-package")}`,
      "config:",
      "  privateKey: { type: string, secret: true }",
      "  mirrorPassword: { type: string, secret: true }",
      "resources:",
      `  ${node.name}:`,
      "    type: containerd-node:index:ContainerdNode",
      "    properties:",
      `      containerdVersion: ${node.containerdVersion}`,
      "      registries:",
      "        docker.io:",
      "          mirrors:",
      `            - url: ${AUTH.url}`,
      "              auth:",
      `                username: ${AUTH.username}`,
      "                password: ${mirrorPassword}",
      "      connection:",
      `        host: ${node.host}`,
      `        port: ${node.port}`,
      `        hostKey: ${node.hostKey}`,
      "        privateKey: ${privateKey}",
      "outputs:",
      `  files: \${${node.name}.files}`,
      "",
    ].join("\n"));
    await F.resetNodes([node]);
    const s = new CliStack({ cwd: project, dir });
    try {
      await s.init();
      await s.set("privateKey", node.privateKey, { secret: true });
      await s.set("mirrorPassword", AUTH.password, { secret: true });
      const up = await s.ok(["up", "--yes"]);
      const basic = Buffer.from(`${AUTH.username}:${AUTH.password}`).toString("base64");
      const hosts = await F.nodeFile(node, "/etc/containerd/certs.d/docker.io/hosts.toml");
      expect(hosts).toContain(`Authorization = "Basic ${basic}"`);
      expect((await F.nodeSh(node, "stat -c %a /etc/containerd/certs.d/docker.io/hosts.toml")).trim()).toBe("600");
      await criRemoveImage(node.containerdSocket, TINY).catch(() => undefined);
      await expect(criPullImage(node.containerdSocket, TINY, { timeoutMs: 60_000 })).resolves.toMatch(/^sha256:|tiny/);
      // The password crossed from the YAML program to the component as a secret: not in the
      // CLI's output, and only encrypted in the state, in neither form.
      const exported = (await s.ok(["stack", "export"])).stdout;
      const outputs = (await s.ok(["stack", "output", "--json"])).stdout;
      for (const text of [up.stdout + up.stderr, exported, outputs]) {
        expect(text).not.toContain(AUTH.password);
        expect(text).not.toContain(basic);
      }
      expect(JSON.parse(outputs).files).toBe("[secret]");
      await s.ok(["destroy", "--yes", "--skip-preview"]);
      expect(await F.nodePathExists(node, "/etc/containerd/certs.d/docker.io/hosts.toml")).toBe(false);
    } finally {
      s.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
