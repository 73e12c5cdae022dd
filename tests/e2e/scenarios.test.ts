/**
 * End-to-end scenarios: the unmodified ContainerdNode component, deployed by the real Pulumi engine
 * and command provider (tests/support/engine.ts: the CLI through the Automation API, the program
 * inline in this process) over real SSH to the local fleet (tests/fleet): five nodes, one per containerd
 * generation (1.6, 1.7, 2.1, 2.2, 2.3: config versions 2, 2, 3, 3 and 4), each with its own sshd, containerd, restart log and files, and a
 * plain-HTTP registry mirror on :5000 and :5001 that serves docker.io/library/tiny:1.0 and pause:3.9.
 * The nodes have no route out: a pull succeeds only through the mirror.
 *
 * Each describe block is one scenario group with its own stack (its own backend and state), and starts
 * from reset nodes.
 * Tests inside a group run in order and build on each other. See tests/e2e/README.md.
 */
import { parse } from "smol-toml";
import * as fs from "fs";
import * as path from "path";
import { createHash, randomBytes } from "crypto";
import { ContainerdNode, ContainerdNodeArgs, SpecError, renderNode } from "../../provider/src";
import { specOf } from "../../provider/src/component/containerd-node";
import type { NodeSpec } from "../../provider/src";
import type { PulumiFn } from "@pulumi/pulumi/automation";
import { COMMAND_TYPE, EngineStack, RunOptions, RunResult, StepRecord } from "../support/engine";
import { CriError, criImageStatus, criPullImage, criRegistryConfigPath, criRemoveImage, criStatus } from "../support/cri";
import { valueAtPath } from "../support/config-dump";
import * as F from "./fleet";
import type { FleetNode } from "./fleet";
import { CERTS, CONFIG, DESTROY_LEAVES, HUB, MIRROR, MIRROR_B, PAUSE, TINY, connection, fleet } from "./fixture";

jest.setTimeout(240_000);

const NODES = F.nodesByGeneration(fleet, ["1.6", "1.7", "2.1", "2.2", "2.3"]);
const [N16, N17, N21] = NODES;
const K8S_HOSTS = `${CERTS}/registry.k8s.io/hosts.toml`;

const title = (n: FleetNode) => `containerd ${n.containerdVersion} (${n.name})`;
const v3 = (n: FleetNode) => n.containerdVersion.startsWith("2.");

// ---- specs and programs --------------------------------------------------------------------------

type Spec = Omit<ContainerdNodeArgs, "connection">;
type Specs = Map<FleetNode, Spec>;

/**
 * The operator's notes, pointed at the local mirror: docker.io and registry.k8s.io mirrors, pause,
 * SystemdCgroup. No read of the node (readNode, on by default under the real engine): these scenarios
 * are about the applies, and count every SSH session a run opens (tests/e2e/node-read.test.ts has the read).
 */
function seed(n: FleetNode, extra: Partial<Spec> = {}): Spec {
  return {
    containerdVersion: n.containerdVersion,
    systemdCgroup: true,
    sandboxImage: PAUSE,
    registries: { "docker.io": { mirrors: [MIRROR] }, "registry.k8s.io": { mirrors: [MIRROR] } },
    healthTimeoutSeconds: 30,
    readNode: false,
    ...extra,
  };
}

/** connection(), each dial given up after 5 s. */
const pinned = (n: FleetNode) => connection(n, { perDialTimeout: 5 });

/** One ContainerdNode per node, named after the node; outputs: what each node's commands reported. */
function program(specs: Specs): PulumiFn {
  return async () => {
    const out: Record<string, unknown> = {};
    for (const [n, spec] of specs) {
      const node = new ContainerdNode(n.name, { ...spec, connection: pinned(n) });
      out[n.name] = { restarted: node.restarted, lastApply: node.lastApply };
    }
    return out;
  };
}

const all = (f: (n: FleetNode) => Spec): Specs => new Map(NODES.map((n) => [n, f(n)]));

function rendered(spec: Spec) {
  return renderNode(specOf(spec as unknown as Record<string, unknown>) as unknown as NodeSpec);
}
const configOf = (spec: Spec) => rendered(spec).files.find((f) => f.kind === "config")!.content;
const fileOf = (spec: Spec, p: string) => {
  const f = rendered(spec).files.find((x) => x.path === p);
  if (!f) throw new Error(`the spec renders no ${p}`);
  return f.content;
};

// Each stack's backend (its state holds the nodes' private key) lives in a private directory of the
// e2e run's directory, removed when the file's tests are done.
const stacks: EngineStack[] = [];
afterAll(() => stacks.forEach((s) => s.dispose()));

/** A stack of the real engine with fresh state of its own; every up/preview/destroy takes `opts`. */
function deployment(opts: RunOptions = {}) {
  const stack = new EngineStack({ dir: F.E2E_DIR });
  stacks.push(stack);
  return {
    stack,
    up: (p: PulumiFn) => stack.up(p, opts),
    preview: (p: PulumiFn) => stack.preview(p, opts),
    destroy: () => stack.destroy(opts),
    state: () => stack.state(),
  };
}

/** SSH connections each node's own sshd accepted while `run` ran: what the run opened. */
async function sessionsDuring<T>(nodes: FleetNode[], run: () => Promise<T>): Promise<{ result: T; sessions: Map<FleetNode, number> }> {
  const before = await F.sshAcceptedAll(nodes);
  const result = await run();
  const after = await F.sshAcceptedAll(nodes);
  return { result, sessions: new Map(nodes.map((n, i) => [n, after[i] - before[i]])) };
}
const sessionsOf = (m: Map<FleetNode, number>) => Object.fromEntries([...m].map(([n, c]) => [n.name, c]));
const noSessions = (nodes: FleetNode[]) => Object.fromEntries(nodes.map((n) => [n.name, 0]));

// ---- what a run did --------------------------------------------------------------------------------

function describeRun(res: RunResult): string {
  const bad = res.steps.filter((s) => !s.ok).map((s) => `  ${s.op} ${s.name}: ${s.error}`);
  return `ok=${res.ok} error=${res.error?.message ?? "-"}\n${bad.join("\n")}`;
}

function expectOk(res: RunResult): void {
  if (!res.ok) throw new Error(`the run failed:\n${describeRun(res)}`);
}

const commandSteps = (res: RunResult, n?: FleetNode) =>
  res.steps.filter((s) => s.type === COMMAND_TYPE && (n === undefined || s.name.startsWith(`${n.name}:`)));

function stepOf(res: RunResult, n: FleetNode, file: string): StepRecord {
  const s = res.steps.find((x) => x.type === COMMAND_TYPE && x.name === `${n.name}:${file}`);
  if (!s) throw new Error(`no step for ${n.name}:${file}; steps: ${res.steps.map((x) => `${x.op} ${x.name}`).join(", ")}`);
  return s;
}

/** "op name" of every step that is not `same`. */
const changes = (res: RunResult) => res.steps.filter((s) => s.op !== "same").map((s) => `${s.op} ${s.name}`).sort();

// ---- what a node shows -----------------------------------------------------------------------------

const configBytes = (n: FleetNode) => fs.readFileSync(n.configToml, "utf8");

/** containerd answers CRI (RuntimeReady) and `ctr plugins ls` reports every CRI plugin ok. */
async function expectCriHealthy(n: FleetNode): Promise<void> {
  const status = await criStatus(n.containerdSocket);
  expect(status.conditions.find((c) => c.type === "RuntimeReady")?.status).toBe(true);
  const plugins = await F.criPlugins(n);
  const want = v3(n) ? ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime"] : ["io.containerd.grpc.v1.cri"];
  for (const p of want) expect(`${p}=${plugins[p]}`).toBe(`${p}=ok`);
}

/** `containerd config dump` run on the node: what its containerd loads from /etc/containerd/config.toml. */
async function configDump(n: FleetNode): Promise<Record<string, unknown>> {
  const r = await F.nodeExec(n, "containerd", "config", "dump");
  if (r.status !== 0) throw new Error(`${n.name}: containerd config dump exited ${r.status}: ${r.stderr}`);
  return parse(r.stdout) as Record<string, unknown>;
}

/** Where config_path, the sandbox image and runc's SystemdCgroup live for the node's config version. */
function dumpPaths(n: FleetNode) {
  if (v3(n)) {
    const images = ["plugins", "io.containerd.cri.v1.images"];
    return {
      configPath: [...images, "registry", "config_path"],
      sandbox: [...images, "pinned_images", "sandbox"],
      systemdCgroup: ["plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes", "runc", "options", "SystemdCgroup"],
    };
  }
  const cri = ["plugins", "io.containerd.grpc.v1.cri"];
  return {
    configPath: [...cri, "registry", "config_path"],
    sandbox: [...cri, "sandbox_image"],
    systemdCgroup: [...cri, "containerd", "runtimes", "runc", "options", "SystemdCgroup"],
  };
}

async function expectDump(n: FleetNode, want: { configPath: string; sandbox: string; systemdCgroup: boolean }): Promise<void> {
  const dump = await configDump(n);
  const p = dumpPaths(n);
  expect({
    configPath: valueAtPath(dump, p.configPath),
    sandbox: valueAtPath(dump, p.sandbox),
    systemdCgroup: valueAtPath(dump, p.systemdCgroup),
  }).toEqual(want);
}

/** Lines a registry mirror logged for requests from `n` since `offset` bytes (its access log). */
const { mirrorRequests, logSize } = F;
const MIRROR_LOG = fleet.registry.logs[0];
const MIRROR_B_LOG = fleet.registry.logs[1];

/** A CRI pull of `image`, as kubelet does it (ctr would ignore config_path). */
async function pull(n: FleetNode, image = TINY): Promise<string> {
  return criPullImage(n.containerdSocket, image, { timeoutMs: 60_000 });
}

async function removeImages(n: FleetNode, ...images: string[]): Promise<void> {
  for (const i of images) await criRemoveImage(n.containerdSocket, i);
  for (const i of images) expect(await criImageStatus(n.containerdSocket, i)).toBeNull();
}

/** Every entry under /etc/containerd on the node: "path type" (f file, d directory), sorted. */
async function etcListing(n: FleetNode): Promise<string[]> {
  const out = await F.nodeSh(n, "find /etc/containerd -mindepth 1 -printf '%p %y\\n'");
  return out.split("\n").filter((l) => l !== "").sort();
}

/**
 * What a destroy leaves behind: the node lock file (kept on purpose: removing a lock file others may
 * be waiting on is racy) and certs.d, which the first hosts.toml apply created (restore cannot know
 * it was not there). The record directory is gone.
 */
// The lock, the certs.d it created (empty), and the node's audit trail, which outlives a destroy.
const TOLERATED_LEFTOVERS = DESTROY_LEAVES.map((l) => `/etc/containerd/${l}`);

/** restart log lines per node, taken before a step, to count what the step added. */
const restartCounts = () => new Map(NODES.map((n) => [n, F.restarts(n)]));

// =====================================================================================================
// Scenarios 1-4 and 9: one deployment's life: first rollout, a no-op, a mirror change, a config
// change, destroy.
// =====================================================================================================

describe("a deployment's life on containerd 1.6, 1.7, 2.1, 2.2 and 2.3 (scenarios 1-4, 9)", () => {
  const h = deployment();
  const original = new Map<FleetNode, string>();
  const originalListing = new Map<FleetNode, string[]>();
  const specs = all((n) => seed(n));

  beforeAll(async () => {
    await F.resetNodes(NODES);
    for (const n of NODES) {
      original.set(n, configBytes(n));
      originalListing.set(n, await etcListing(n));
    }
  }, 180_000);

  test.each(NODES)("1. before the rollout, a CRI pull of docker.io/library/tiny:1.0 fails on $containerdVersion ($name): no mirror is configured", async (n) => {
    await removeImages(n, TINY);
    await expect(criPullImage(n.containerdSocket, TINY, { timeoutMs: 60_000 })).rejects.toThrow(CriError);
    expect(await criImageStatus(n.containerdSocket, TINY)).toBeNull();
    expect(F.restarts(n)).toBe(0);
  });

  test("1. first rollout of the seed-like spec succeeds on all three nodes", async () => {
    const res = await h.up(program(specs));
    expectOk(res);
    for (const n of NODES) {
      // Its host resource (the node script's install) and its three files.
      expect(commandSteps(res, n).map((s) => s.op)).toEqual(["create", "create", "create", "create"]);
      expect((res.outputs[n.name] as { restarted: boolean }).restarted).toBe(true);
    }
  });

  test.each(NODES)("1. $containerdVersion ($name): restarted exactly once; files as rendered; CRI pulls go through the mirror", async (n) => {
    const lines = F.restartLines(n);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/start ok/);
    const spec = specs.get(n)!;
    expect(configBytes(n)).toBe(configOf(spec));
    expect(await F.nodeFile(n, HUB)).toBe(fileOf(spec, HUB));
    expect(await F.nodeFile(n, K8S_HOSTS)).toBe(fileOf(spec, K8S_HOSTS));
    await expectCriHealthy(n);

    const offset = logSize(MIRROR_LOG);
    await pull(n, TINY);
    await pull(n, PAUSE);
    expect(await criImageStatus(n.containerdSocket, TINY)).not.toBeNull();
    // The mirror served this node: only the mirror can, the node has no route out.
    const seen = mirrorRequests(MIRROR_LOG, offset, n);
    expect(seen.some((l) => l.includes("/v2/library/tiny/manifests/1.0"))).toBe(true);
    expect(seen.some((l) => l.includes("/v2/pause/manifests/3.9"))).toBe(true);
  });

  test.each(NODES)("1. $containerdVersion ($name): the running containerd and `config dump` on the node show config_path, the sandbox image and SystemdCgroup", async (n) => {
    await expectDump(n, { configPath: CERTS, sandbox: PAUSE, systemdCgroup: true });
    const status = await criStatus(n.containerdSocket);
    if (!v3(n)) {
      // 1.x reports the CRI config it runs with; 2.x moved the registry config out of the status.
      expect(criRegistryConfigPath(status)).toBe(CERTS);
      expect(valueAtPath(status.info, ["config", "sandboxImage"])).toBe(PAUSE);
    } else {
      expect(criRegistryConfigPath(status)).toBeUndefined();
    }
  });

  test("2. the same program again: no SSH session, no restart, every step `same`", async () => {
    const before = restartCounts();
    const { result: res, sessions } = await sessionsDuring(NODES, () => h.up(program(specs)));
    expectOk(res);
    expect(res.steps.length).toBeGreaterThan(0);
    expect(changes(res)).toEqual([]);
    expect(sessionsOf(sessions)).toEqual(noSessions(NODES));
    for (const n of NODES) expect(F.restarts(n)).toBe(before.get(n));
  });

  test("3. one mirror changes (docker.io -> :5001): only that hosts.toml is updated on each node, no restart", async () => {
    const before = restartCounts();
    for (const [n, s] of specs) specs.set(n, { ...s, registries: { ...s.registries, "docker.io": { mirrors: [MIRROR_B] } } });
    const res = await h.up(program(specs));
    expectOk(res);
    expect(changes(res)).toEqual(NODES.map((n) => `update ${n.name}:${HUB}`).sort());
    for (const n of NODES) {
      expect(stepOf(res, n, HUB).diffKeys).toEqual(["stdin"]);
      expect(F.restarts(n)).toBe(before.get(n));
    }
  });

  test.each(NODES)("3. $containerdVersion ($name): hosts.toml names :5001 and a new CRI pull goes there", async (n) => {
    const hosts = (await F.nodeFile(n, HUB))!;
    expect(hosts).toBe(fileOf(specs.get(n)!, HUB));
    expect(hosts).toContain(`[host."${MIRROR_B}"]`);
    expect(hosts).not.toContain(MIRROR);
    await removeImages(n, TINY);
    const offsetA = logSize(MIRROR_LOG);
    const offsetB = logSize(MIRROR_B_LOG);
    await pull(n, TINY);
    expect(mirrorRequests(MIRROR_B_LOG, offsetB, n).some((l) => l.includes("/v2/library/tiny/manifests/1.0"))).toBe(true);
    expect(mirrorRequests(MIRROR_LOG, offsetA, n).filter((l) => l.includes("/v2/library/tiny/"))).toEqual([]);
  });

  const NEW_SANDBOX = "registry.k8s.io/google_containers/pause:3.9";

  test("4. SystemdCgroup and the sandbox image change: config.toml is updated and containerd restarts once per node", async () => {
    const before = restartCounts();
    for (const [n, s] of specs) specs.set(n, { ...s, systemdCgroup: false, sandboxImage: NEW_SANDBOX });
    const res = await h.up(program(specs));
    expectOk(res);
    expect(changes(res)).toEqual(NODES.map((n) => `update ${n.name}:${CONFIG}`).sort());
    for (const n of NODES) {
      expect(F.restarts(n)).toBe(before.get(n)! + 1);
      expect(F.restartLines(n).slice(-1)[0]).toMatch(/start ok/);
      expect(configBytes(n)).toBe(configOf(specs.get(n)!));
      expect((res.outputs[n.name] as { restarted: boolean }).restarted).toBe(true);
    }
  });

  test.each(NODES)("4. $containerdVersion ($name): `config dump` on the node shows SystemdCgroup = false and the new sandbox image", async (n) => {
    await expectDump(n, { configPath: CERTS, sandbox: NEW_SANDBOX, systemdCgroup: false });
    if (!v3(n)) expect(valueAtPath((await criStatus(n.containerdSocket)).info, ["config", "sandboxImage"])).toBe(NEW_SANDBOX);
    await expectCriHealthy(n);
  });

  test("9. destroy restores every node's original config.toml byte for byte and removes the hosts.toml files and their directories", async () => {
    const before = restartCounts();
    const res = await h.destroy();
    expectOk(res);
    expect(await h.state()).toEqual([]);
    for (const n of NODES) {
      expect(commandSteps(res, n).map((s) => s.op)).toEqual(["delete", "delete", "delete", "delete"]);
      expect(configBytes(n)).toBe(original.get(n));
      expect(F.restarts(n)).toBe(before.get(n)! + 1);
      for (const p of [HUB, K8S_HOSTS, path.dirname(HUB), path.dirname(K8S_HOSTS)]) {
        expect(`${p} exists: ${await F.nodePathExists(n, p)}`).toBe(`${p} exists: false`);
      }
      // Nothing else is left in /etc/containerd but what the component cannot know it may remove
      // (the node lock, the certs.d it created, empty) and the audit trail, which ends with restores.
      const left = (await etcListing(n)).filter((e) => !originalListing.get(n)!.includes(e));
      expect(left.filter((e) => !TOLERATED_LEFTOVERS.includes(e))).toEqual([]);
      expect((await F.nodeFile(n, "/etc/containerd/.containerd-node/audit.log"))!.trim().split("\n").pop()).toMatch(/ restore path=.* result=restored /);
      await expectCriHealthy(n);
    }
  });
});

// =====================================================================================================
// Scenarios 5, 12, 6, 10: what must be refused, and what must roll back.
// =====================================================================================================

describe("refusals and rollback on containerd 1.6, 1.7, 2.1, 2.2 and 2.3 (scenarios 5, 12, 6, 10)", () => {
  const h = deployment({ continueOnError: true });
  const specs = all((n) => seed(n));

  beforeAll(() => F.resetNodes(NODES), 180_000);

  /** A setting our validator accepts (any TOML value goes in `settings`) but containerd's types refuse. */
  const rejected = (n: FleetNode): Spec =>
    seed(n, {
      healthTimeoutSeconds: 15,
      settings: { plugins: { [v3(n) ? "io.containerd.cri.v1.runtime" : "io.containerd.grpc.v1.cri"]: { max_container_log_line_size: "big" } } },
    });
  const containerdReason = (n: FleetNode) =>
    v3(n) ? "toml: cannot decode TOML string into struct field config.RuntimeConfig.MaxContainerLogLineSize of type int" : "Can't convert big(string) to int";

  test("5. a config.toml containerd rejects is refused on every node before it is installed; the up fails naming node and reason", async () => {
    const before = new Map<FleetNode, { bytes: string; pid: number; restarts: number }>();
    for (const n of NODES) before.set(n, { bytes: configBytes(n), pid: await F.containerdPid(n), restarts: F.restarts(n) });
    const res = await h.up(program(all(rejected)));
    expect(res.ok).toBe(false);
    expect(res.error?.message).toMatch(/containerd-node: node-\d+: containerd \S+ rejected the new \/etc\/containerd\/config\.toml; nothing changed: /);
    for (const n of NODES) {
      const step = stepOf(res, n, CONFIG);
      expect(step.ok).toBe(false);
      expect(step.error).toContain(`containerd-node: ${n.name}: containerd ${n.containerdVersion} rejected the new ${CONFIG}; nothing changed: `);
      expect(step.error).toContain(containerdReason(n));
      const b = before.get(n)!;
      expect(configBytes(n)).toBe(b.bytes);
      expect(await F.containerdPid(n)).toBe(b.pid);
      expect(F.restarts(n)).toBe(b.restarts);
      await expectCriHealthy(n);
    }
  });

  test.each([
    { n: N16, specVersion: "2.1" },
    { n: N21, specVersion: "1.7" },
  ])("12. a spec for containerd $specVersion aimed at containerd $n.containerdVersion ($n.name) is refused by the node's version guard, naming both versions", async ({ n, specVersion }) => {
    const own = deployment({ continueOnError: true });
    const bytes = configBytes(n);
    const pid = await F.containerdPid(n);
    const restarts = F.restarts(n);
    const res = await own.up(program(new Map([[n, seed(n, { containerdVersion: specVersion })]])));
    expect(res.ok).toBe(false);
    // Its hosts.toml files are already the same bytes (nothing to guard); config.toml is refused.
    const step = stepOf(res, n, CONFIG);
    expect(step.error).toContain(
      `containerd-node: ${n.name}: refusing a version ${specVersion.startsWith("2") ? 3 : 2} config.toml: the node runs containerd ${n.containerdVersion}, but the spec renders for containerd ${specVersion}.0`,
    );
    expect(configBytes(n)).toBe(bytes);
    expect(await F.containerdPid(n)).toBe(pid);
    expect(F.restarts(n)).toBe(restarts);
    await expectCriHealthy(n);
  });

  test("6. baseline: the seed-like spec converges on every node (one restart each)", async () => {
    const before = restartCounts();
    const res = await h.up(program(specs));
    expectOk(res);
    for (const n of NODES) {
      expect(configBytes(n)).toBe(configOf(specs.get(n)!));
      expect(F.restarts(n)).toBe(before.get(n)! + 1);
    }
  });

  /** Passes `config dump`, but the CRI plugin refuses a default runtime that is not in `runtimes`. */
  const breaksCri = (n: FleetNode): Spec =>
    seed(n, {
      healthTimeoutSeconds: 15,
      settings: { plugins: { [v3(n) ? "io.containerd.cri.v1.runtime" : "io.containerd.grpc.v1.cri"]: { containerd: { default_runtime_name: "missing" } } } },
    });

  const beforeBreak = new Map<FleetNode, { bytes: string; restarts: number }>();

  test("6. a config.toml that passes `config dump` but breaks CRI: restart, health fails, automatic rollback on every node", async () => {
    for (const n of NODES) {
      beforeBreak.set(n, { bytes: configBytes(n), restarts: F.restarts(n) });
      // The premise: the node's own containerd loads the file without complaint.
      const r = await F.nodeExecInput(n, configOf(breaksCri(n)), "/bin/sh", "-c", 'f=$(mktemp) && cat >"$f" && containerd --config "$f" config dump >/dev/null 2>"$f.err"; s=$?; cat "$f.err" >&2; rm -f "$f" "$f.err"; exit $s');
      expect(`${r.status} ${r.stderr.trim()}`).toBe("0 ");
    }
    const res = await h.up(program(all(breaksCri)));
    expect(res.ok).toBe(false);
    for (const n of NODES) {
      const step = stepOf(res, n, CONFIG);
      expect(step.ok).toBe(false);
      expect(step.error).toMatch(
        new RegExp(`containerd-node: ${n.name}: containerd was not healthy with the new /etc/containerd/config\\.toml \\(CRI plugin .* is (error|missing)`),
      );
      expect(step.error).toContain("rolled back to the previous config.toml and containerd is healthy again");
    }
  });

  test.each(NODES)("6. $containerdVersion ($name): exactly two restarts, the old file back byte for byte, CRI ok", async (n) => {
    const b = beforeBreak.get(n)!;
    const added = F.restartLines(n).slice(b.restarts);
    // One restart with the broken file (containerd starts, its CRI plugin does not), one with the old.
    expect(added).toHaveLength(2);
    expect(added.every((l) => /start ok/.test(l))).toBe(true);
    expect(configBytes(n)).toBe(b.bytes);
    expect(configBytes(n)).toBe(configOf(specs.get(n)!));
    await expectCriHealthy(n);
    // The node's audit trail says what happened: back on the file it had (new = old).
    const sha = createHash("sha256").update(b.bytes).digest("hex");
    expect(await F.nodeFile(n, "/etc/containerd/.containerd-node/audit.log")).toContain(
      `rollback path=${CONFIG} old=${sha} new=${sha} restarted=true result=healthy-again`,
    );
  });

  // ---- 10: hostile strings ----------------------------------------------------------------------------

  const marker = `/tmp/pwned-${randomBytes(6).toString("hex")}`;

  test.each([
    { what: "a mirror URL with $(...)", registry: { mirrors: [`${MIRROR}/$(touch ${marker})`] }, where: 'registries["docker.io"].mirrors[0]' },
    { what: "a mirror URL with backticks", registry: { mirrors: [`${MIRROR}/\`touch ${marker}\``] }, where: 'registries["docker.io"].mirrors[0]' },
    { what: "a mirror URL with a double quote", registry: { mirrors: [`${MIRROR}/"]\n[x`] }, where: 'registries["docker.io"].mirrors[0]' },
    { what: "a mirror URL with a newline", registry: { mirrors: [`${MIRROR}/\ntouch ${marker}`] }, where: 'registries["docker.io"].mirrors[0]' },
    { what: "a server URL with single quotes", registry: { server: `${MIRROR}/'; touch ${marker}; '` }, where: 'registries["docker.io"].server' },
    {
      what: "a header value with a newline",
      registry: { mirrors: [{ url: MIRROR, headers: { "X-Test": `ok\n[host."http://evil"]\n$(touch ${marker})` } }] },
      where: 'registries["docker.io"].mirrors[0].headers["X-Test"]',
    },
    { what: "a header name with $(...)", registry: { mirrors: [{ url: MIRROR, headers: { [`X-$(touch ${marker})`]: "v" } }] }, where: "registries[\"docker.io\"].mirrors[0].headers[\"X-$(touch" },
  ])("10. $what is refused by the constructor (SpecError) before any host is touched: no SSH session", async ({ registry, where }) => {
    const hostile = all((n) => seed(n, { registries: { "docker.io": registry, "registry.k8s.io": { mirrors: [MIRROR] } } }));
    // The constructor's own error, outside any deployment: a SpecError, thrown before anything registers.
    let thrown: unknown;
    try {
      new ContainerdNode(N16.name, { ...hostile.get(N16)!, connection: pinned(N16) });
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(SpecError);
    expect((thrown as Error).message).toContain(`Invalid ContainerdNode args for "${N16.name}":\n - ${where}`);

    // The engine reports the program's error as text (the object does not cross the engine).
    const stateBefore = await h.state();
    const { result: res, sessions } = await sessionsDuring(NODES, () => h.up(program(hostile)));
    expect(res.ok).toBe(false);
    expect(res.error!.message).toContain(`SpecError: Invalid ContainerdNode args for "${N16.name}":\n - ${where}`);
    expect(commandSteps(res)).toEqual([]);
    expect(sessionsOf(sessions)).toEqual(noSessions(NODES));
    expect(await h.state()).toEqual(stateBefore);
    for (const n of NODES) expect(await F.nodePathExists(n, marker)).toBe(false);
  });

  const hostileHeaders: Record<string, string | string[]> = {
    "X-Quotes": `"double" 'single' """triple""" \\"escaped\\"`,
    "X-Subst": `$(touch ${marker})`,
    "X-Backticks": `\`touch ${marker}\``,
    "X-Break-Out": `'; touch ${marker}; echo '`,
    "X-Toml-Break": `"]\n`.replace("\n", "") + ` = 1 # [host."http://evil"]`,
    "X-List": [`$(touch ${marker})`, `\${IFS}\`id\`;touch ${marker}`],
  };
  const withHeaders = (n: FleetNode): Spec => {
    const base = specs.get(n)!;
    return { ...base, registries: { ...base.registries, "docker.io": { mirrors: [{ url: MIRROR, headers: hostileHeaders }] } } };
  };

  test("10. header values full of quotes, $(...) and backticks are accepted, and only docker.io's hosts.toml changes", async () => {
    const before = restartCounts();
    const res = await h.up(program(all(withHeaders)));
    expectOk(res);
    // (Each node's host resource may update too: its release still carries the health timeout of
    // test 6, whose config.toml update failed; it installs nothing new.)
    expect(changes(res).filter((c) => !c.endsWith(":host"))).toEqual(NODES.map((n) => `update ${n.name}:${HUB}`).sort());
    for (const n of NODES) expect(F.restarts(n)).toBe(before.get(n));
  });

  test.each(NODES)("10. $containerdVersion ($name): nothing ran, hosts.toml holds the exact values, and containerd reads it (a CRI pull works)", async (n) => {
    expect(await F.nodePathExists(n, marker)).toBe(false);
    const text = (await F.nodeFile(n, HUB))!;
    expect(text).toBe(fileOf(withHeaders(n), HUB));
    const parsed = parse(text) as { host: Record<string, { header: Record<string, unknown> }> };
    expect(parsed.host[MIRROR].header).toEqual(hostileHeaders);
    // containerd ignores a hosts.toml it cannot parse and goes upstream, which fails here: a pull
    // that works proves containerd parsed the file.
    await removeImages(n, TINY);
    const offset = logSize(MIRROR_LOG);
    await pull(n, TINY);
    expect(mirrorRequests(MIRROR_LOG, offset, n).some((l) => l.includes("/v2/library/tiny/manifests/1.0"))).toBe(true);
    expect(await F.nodePathExists(n, marker)).toBe(false);
  });

  // The version guard covers hosts.toml too: a feature of a newer version in it (the referrers
  // capability, 2.2+) would make the node's containerd drop the whole file ("failed to decode
  // hosts.toml": containerd-facts) and pull upstream, so a wrong containerdVersion is refused
  // before any file whose bytes change is installed.
  test(`12. a 2.2 spec aimed at ${title(N16)} is refused for every file, hosts.toml included: the mirror keeps working`, async () => {
    const n = N16;
    const good = withHeaders(n);
    const wrong: Spec = {
      ...good,
      containerdVersion: "2.2.0",
      registries: { ...good.registries, "docker.io": { mirrors: [{ url: MIRROR, capabilities: ["pull", "resolve", "referrers"] }] } },
    };
    const others = all(withHeaders);
    const bytes = configBytes(n);
    const hostsBefore = await F.nodeFile(n, HUB);
    const res = await h.up(program(new Map([...others, [n, wrong]])));
    expect(res.ok).toBe(false);
    // The hosts.toml with a capability 1.6 cannot decode would make it skip the file and pull
    // upstream: the version guard refuses it before it is installed.
    expect(stepOf(res, n, HUB)).toMatchObject({ ok: false });
    expect(stepOf(res, n, HUB).error).toContain(
      `refusing ${HUB}: the node runs containerd ${n.containerdVersion}, but the spec renders for containerd 2.2.0`,
    );
    expect(await F.nodeFile(n, HUB)).toBe(hostsBefore);
    expect(configBytes(n)).toBe(bytes);
    await removeImages(n, TINY);
    await pull(n, TINY);

    // The right spec converges the node.
    const back = await h.up(program(others));
    expectOk(back);
    expect(await F.nodeFile(n, HUB)).toBe(fileOf(good, HUB));
    await pull(n, TINY);
  });
});

// =====================================================================================================
// Scenarios 7, 8, 11: an unreachable node, a connection cut in the middle of an apply, and two
// applies racing for one node.
// =====================================================================================================

describe("faults: unreachable node, cut connection, concurrent applies (scenarios 7, 8, 11)", () => {
  // Like `pulumi up --continue-on-error`: one node's failure must not stop the others.
  const h = deployment({ continueOnError: true });
  const specs = all((n) => seed(n));

  beforeAll(() => F.resetNodes(NODES), 180_000);
  afterAll(() => F.fault(N17, "sshd-start")); // whatever happened in 7
  afterAll(() => Promise.all([N16, N21].map((n) => F.fault(n, "reconnect")))); // and in 8

  test(`7. ${title(N17)} unreachable (sshd stopped): with continueOnError the other nodes converge`, async () => {
    const originalBytes = configBytes(N17);
    await F.fault(N17, "sshd-stop");
    const started = Date.now();
    const res = await h.up(program(specs));
    const took = Date.now() - started;
    expect(res.ok).toBe(false);
    // Its host resource fails to dial (the provider's own error)...
    expect(commandSteps(res, N17).map((s) => `${s.op} ${s.name} ok=${s.ok}`)).toEqual([`create ${N17.name}:host ok=false`]);
    expect(stepOf(res, N17, "host").error).toMatch(/^after 1 failed attempts: dial tcp .*: connect: connection refused$/);
    // ...and its files, which depend on it, are skipped: under --continue-on-error the engine skips
    // the dependents of a failed resource without a step event or an error of their own (their
    // outputs are unknown to the program), and nothing of them is in the state.
    const files = [HUB, K8S_HOSTS, CONFIG].map((f) => `::${N17.name}:${f}`);
    expect(res.diagnostics.filter((d) => files.some((f) => d.urn?.endsWith(f)))).toEqual([]);
    expect((await h.state()).filter((r) => r.urn.includes(`::${N17.name}:`)).map((r) => r.urn)).toEqual([]);
    expect(configBytes(N17)).toBe(originalBytes);
    expect(F.restarts(N17)).toBe(0);
    for (const n of [N16, N21]) {
      expect(commandSteps(res, n).every((s) => s.ok && s.op === "create")).toBe(true);
      expect(configBytes(n)).toBe(configOf(specs.get(n)!));
      expect(F.restarts(n)).toBe(1);
      await expectCriHealthy(n);
    }
    expect(took).toBeLessThan(60_000);
  });

  test(`7. after sshd-start the next up converges ${title(N17)}, and only it runs commands`, async () => {
    await F.fault(N17, "sshd-start");
    const { result: res, sessions } = await sessionsDuring(NODES, () => h.up(program(specs)));
    expectOk(res);
    expect(changes(res)).toEqual([`create ${N17.name}:${CONFIG}`, `create ${N17.name}:${HUB}`, `create ${N17.name}:${K8S_HOSTS}`, `create ${N17.name}:host`].sort());
    // One connection per command it ran; none to the nodes that had nothing to do.
    expect(sessionsOf(sessions)).toEqual({ ...noSessions(NODES), [N17.name]: 4 });
    expect(configBytes(N17)).toBe(configOf(specs.get(N17)!));
    expect(F.restarts(N17)).toBe(1);
    await expectCriHealthy(N17);
  });

  // 8: the cut comes while the node script is inside an apply. On the 1.6 node the restart command
  // starts with a pause (the new file is installed, containerd not restarted yet); on the 2.1 node a
  // health check pauses (containerd restarted with the new file, not yet confirmed healthy).
  // The command provider sends no SSH keepalive: its session on the cut link ends only when the
  // kernel's TCP keepalive (Go's default for the dial: 15 s idle, then 9 probes 15 s apart) gives
  // up, about 150 s after the cut ("wait: remote command exited without exit status or exit signal").
  const cutSpecs = () => {
    const m: Specs = new Map(specs);
    m.set(N16, { ...specs.get(N16)!, systemdCgroup: false, restartCommand: "sleep 5; systemctl restart containerd" });
    m.set(N21, { ...specs.get(N21)!, systemdCgroup: false, healthChecks: ["sleep 5"] });
    return m;
  };
  const cutNodes = [N16, N21];
  const beforeCut = new Map<FleetNode, { old: string; next: string; restarts: number }>();

  test(`8. the network to ${title(N16)} (before its restart) and ${title(N21)} (during its health check) is cut mid-apply: those steps fail`, async () => {
    const next = cutSpecs();
    for (const n of cutNodes) beforeCut.set(n, { old: configBytes(n), next: configOf(next.get(n)!), restarts: F.restarts(n) });
    const up = h.up(program(next));
    const windows = [
      F.waitFor(`the new config.toml on ${N16.name}`, () => configBytes(N16) === beforeCut.get(N16)!.next, 60_000).then(() => F.fault(N16, "cut")),
      F.waitFor(`a restart on ${N21.name}`, () => F.restarts(N21) > beforeCut.get(N21)!.restarts, 60_000).then(() => F.fault(N21, "cut")),
    ];
    const cuts = await Promise.allSettled(windows);
    const res = await up;
    for (const c of cuts) if (c.status === "rejected") throw c.reason;
    expect(res.ok).toBe(false);
    for (const n of cutNodes) {
      expect(stepOf(res, n, CONFIG).ok).toBe(false);
      expect(stepOf(res, n, CONFIG).op).toBe("update");
      // The session was lost, not refused by the node script.
      expect(stepOf(res, n, CONFIG).error).toMatch(/^wait: remote command exited without exit status or exit signal: running /);
    }
    expect(commandSteps(res, N17).every((s) => s.ok && s.op === "same")).toBe(true);
  }, 420_000);

  test.each(cutNodes)("8. $containerdVersion ($name) finished the apply on its own while cut off: the new file, one restart, healthy", async (n) => {
    const b = beforeCut.get(n)!;
    await F.fault(n, "reconnect");
    // The node script ignores the hangup and goes on; wait for it to let go of the node's lock.
    await F.waitFor(`${n.name}'s apply to end`, async () => (await F.nodeSh(n, "flock -n /etc/containerd/.containerd-node.lock true && echo free || echo held")).trim() === "free", 60_000, 200);
    expect(configBytes(n)).toBe(b.next);
    expect(F.restarts(n)).toBe(b.restarts + 1);
    const dir = path.dirname(n.configToml);
    expect(fs.readdirSync(dir).filter((f) => f.startsWith(".config.toml."))).toEqual([]);
    // Its own line, for the file it finished: the new content's sum.
    const sum = createHash("sha256").update(b.next).digest("hex");
    expect(await F.nodeFile(n, "/etc/containerd/.containerd-node/audit.log")).toMatch(new RegExp(`apply path=/etc/containerd/config\\.toml old=[0-9a-f]{64} new=${sum} restarted=true result=healthy `));
    await expectCriHealthy(n);
  });

  test("8. the next up converges without touching them again: the file is already applied and healthy, no restart", async () => {
    const next = cutSpecs();
    const before = restartCounts();
    const res = await h.up(program(next));
    expectOk(res);
    for (const n of cutNodes) {
      // Pulumi kept the old state for the failed steps, so it runs them again; the node has nothing to do.
      expect(stepOf(res, n, CONFIG).op).toBe("update");
      expect(configBytes(n)).toBe(configOf(next.get(n)!));
      expect(F.restarts(n)).toBe(before.get(n)!);
      await expectCriHealthy(n);
      await expectDump(n, { configPath: CERTS, sandbox: PAUSE, systemdCgroup: false });
    }
    for (const [n, s] of next) specs.set(n, s);
  });

  test(`11. two applies to ${title(N17)} at once (this deployment and a second one over plain ssh) are serialised by the node lock`, async () => {
    const n = N17;
    const trace = `/tmp/e2e-trace-${randomBytes(6).toString("hex")}`;
    const stamp = "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)";
    const tracing = (label: string, downloads: number): Spec => ({
      ...specs.get(n)!,
      maxConcurrentDownloads: downloads,
      healthChecks: [`echo "${label} start ${stamp}" >>${trace}; sleep 1; echo "${label} end ${stamp}" >>${trace}`],
    });
    const X = tracing("X", 4);
    const Y = tracing("Y", 5);
    // The second deployment's command for the node's config.toml, exactly as the component builds it.
    const pv = await deployment().preview(program(new Map([[n, Y]])));
    const command = stepOf(pv, n, CONFIG).newInputs!.create as string;
    const stdin = stepOf(pv, n, CONFIG).newInputs!.stdin as string;
    expect(stdin).toBe(configOf(Y));
    const restartsBefore = F.restarts(n);

    const mine = new Map(specs);
    mine.set(n, X);
    const [res, raw] = await Promise.all([h.up(program(mine)), F.sshRun(n, command, stdin)]);

    expectOk(res);
    expect(`${raw.status} ${raw.stderr}`).toBe("0 ");
    expect(JSON.parse(raw.stdout.trim().split("\n").pop()!)).toMatchObject({ path: CONFIG, written: true, restarted: true });
    expect(changes(res)).toEqual([`update ${n.name}:${CONFIG}`]);

    // Both restarted containerd, one after the other: each apply's health check (inside the lock)
    // ended before the other apply's restart began.
    const added = F.restartLines(n).slice(restartsBefore);
    expect(added).toHaveLength(2);
    const restartAt = added.map((l) => l.split(" ")[0]);
    const lines = (await F.nodeFile(n, trace))!.trim().split("\n").map((l) => l.split(" "));
    const span = (label: string) => {
      const mine = lines.filter((l) => l[0] === label);
      return { start: mine.find((l) => l[1] === "start")![2], end: mine.filter((l) => l[1] === "end").pop()![2] };
    };
    const [first, second] = [span("X"), span("Y")].sort((a, b) => (a.start < b.start ? -1 : 1));
    expect(first.end < second.start).toBe(true);
    expect(restartAt[0] < first.start).toBe(true);
    expect(first.end < restartAt[1]).toBe(true);
    expect(restartAt[1] < second.start).toBe(true);

    // The file is the one whose apply finished last, whole; containerd runs healthy on it.
    const last = span("X").end > span("Y").end ? X : Y;
    expect(configBytes(n)).toBe(configOf(last));
    await expectCriHealthy(n);
    await F.nodeExec(n, "rm", "-f", trace);
  });
});
