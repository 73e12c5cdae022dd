/**
 * Operating a fleet with the real `pulumi` CLI's verbs (the root program, run from the repository's
 * top folder as the README says, each stack with its own file:// backend), against three nodes of
 * the local fleet (containerd 1.6, 1.7, 2.1):
 *
 * - two `pulumi up` at once on one stack: the backend's lock refuses the second before it runs the
 *   program; and what the lock message's advice, `pulumi cancel`, does to an `up` that is running;
 * - `pulumi up --target` one node (with and without `--target-dependents`, and by URN globs) after a
 *   change for the whole fleet;
 * - a drift gate for a scheduled job: `pulumi preview --expect-no-changes` after hand edits on nodes,
 *   and what `pulumi refresh` (with and without `--run-program`) shows for these resources.
 *
 * Evidence comes from the nodes: their files, restart logs, audit logs and the connections their sshd
 * accepted. Tests whose SSH counts must be exact set `readNode: false` (the program's read opens one
 * session per node per program run); the drift gate keeps the read on (the default).
 */
import { createPrivateKey, generateKeyPairSync } from "crypto";
import { utils } from "ssh2";
import * as fs from "fs";
import * as path from "path";
import { CliRun, CliStack } from "../support/cli";
import * as F from "./fleet";
import type { FleetNode } from "./fleet";
import {
  AUDIT,
  CONFIG,
  HUB,
  MIRROR,
  MIRROR_B,
  PROJECT,
  ROOT_SPEC as BASE,
  argv,
  configNode,
  fileUrn,
  fleet,
  lockFiles,
  locksDir,
  nodeUrn,
  rootStack,
  setSpec,
  sha256,
  text,
  updateLine,
  updated,
} from "./fixture";

jest.setTimeout(300_000);

const NODES = F.nodesByGeneration(fleet, ["1.6", "1.7", "2.1"]);
const [N1, N2, N3] = NODES;

/** A stack of the root program: the three nodes in rollout order, the key as a secret, spec and rollout. */
const stack = (spec: Record<string, unknown>, rollout: Record<string, unknown>, opts: { privateKey?: string; nodes?: FleetNode[]; up?: boolean } = {}) =>
  rootStack({ nodes: opts.nodes ?? NODES, spec, rollout, privateKey: opts.privateKey, up: opts.up });

/** What a node shows: its managed files, restarts, audit lines and the SSH connections its sshd accepted. */
interface NodeView {
  config?: string;
  hub?: string;
  hubMode: string;
  restarts: number;
  audit: string[];
  ssh: number;
}
async function view(n: FleetNode): Promise<NodeView> {
  const [config, hub, hubMode, audit, ssh] = await Promise.all([
    F.nodeFile(n, CONFIG),
    F.nodeFile(n, HUB),
    F.nodeExec(n, "stat", "-c", "%a", HUB).then((r) => r.stdout.trim()),
    F.nodeFile(n, AUDIT).then((t) => (t ?? "").split("\n").filter((l) => l !== "")),
    F.sshAccepted(n),
  ]);
  return { config, hub, hubMode, restarts: F.restarts(n), audit, ssh };
}
const viewAll = () => Promise.all(NODES.map(view));

/** The stack's checkpoint in the file:// backend. */
const checkpoint = (s: CliStack) => fs.readFileSync(path.join(s.dir, "backend", ".pulumi", "stacks", PROJECT, `${s.stack}.json`), "utf8");
/** Each resource's URN and the outputs that say what was applied (the secret connection is re-encrypted by any write). */
const appliedState = (s: CliStack) =>
  (JSON.parse(checkpoint(s)).checkpoint.latest.resources as { urn: string; outputs?: Record<string, unknown> }[]).map((r) => ({
    urn: r.urn,
    create: r.outputs?.create,
    stdin: r.outputs?.stdin,
    stdout: r.outputs?.stdout,
  }));

/** `pulumi up` started and left running: its promise, and whether it has exited yet. */
function startUp(s: CliStack): { done: Promise<CliRun>; running: () => boolean } {
  let exited = false;
  const done = s.run(argv(s, ["up", "--yes", "--skip-preview"])).then((r) => {
    exited = true;
    return r;
  });
  return { done, running: () => !exited };
}

/**
 * The hooks of a describe whose tests share one stack, in order: before them NODES reset and `spec`
 * deployed one node per wave (`set` receives the stack); after them `after`, if given, then the
 * stack removed.
 */
function sharedStack(spec: Record<string, unknown>, set: (s: CliStack) => void, after?: () => Promise<void>): void {
  let s: CliStack | undefined;
  beforeAll(async () => {
    await F.resetNodes(NODES);
    s = await stack(spec, { maxUnavailable: 1 }, { up: true });
    set(s);
  });
  afterAll(async () => {
    await after?.();
    s?.dispose();
  });
}

describe("two `pulumi up` at once on one stack (file:// backend)", () => {
  let s: CliStack;
  // A config.toml change whose every apply waits 12 s after the restart before it is healthy, one
  // node per wave: an `up` that is still running, with long quiet moments (no new SSH connection).
  const SLOW = { ...BASE, readNode: false, healthChecks: ["sleep 12"] };

  sharedStack({ ...BASE, readNode: false }, (x) => (s = x));

  it("refuses the second `up` with the backend's lock: it runs no program and writes nothing to any node or to the state", async () => {
    await setSpec(s, { ...SLOW, systemdCgroup: false });
    const before = await viewAll();
    const a = startUp(s);
    // The first `up` is in node-1's config.toml apply: restarted, now waiting on its health check.
    await F.waitFor("node-1's restart by the first up", () => F.restarts(N1) > before[0].restarts, 90_000);
    expect(a.running()).toBe(true);
    const during = await viewAll();
    const state = checkpoint(s);
    const locks = lockFiles(s);
    expect(locks).toHaveLength(1);

    const b = await s.cmd(["up", "--yes", "--skip-preview"]);
    const after = await viewAll();
    // Still inside the first `up`'s quiet moment: it has not finished node-1 or started node-2.
    expect(a.running()).toBe(true);
    expect(F.restarts(N2)).toBe(before[1].restarts);

    expect(b.status).toBe(1);
    expect(b.seconds).toBeLessThan(10);
    const lockUrl = `file://${path.join(locksDir(s), locks[0])}?no_tmp_dir=true`;
    expect(b.stderr).toContain(
      "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or delete the lock file with `pulumi cancel`.\n" +
        `  ${lockUrl}: created by `,
    );
    expect(b.stderr).toMatch(/: created by \S+@\S+ \(pid \d+\) at \d{4}-\d\d-\d\dT/);
    // Refused before the program ran: nothing was previewed, no resource was touched.
    expect(b.stdout).not.toMatch(/Previewing|Updating|command:remote:Command/);
    // Not one SSH connection, file, restart or audit line on any node; the state and lock are the first up's.
    expect(after).toEqual(during);
    expect(checkpoint(s)).toBe(state);
    expect(lockFiles(s)).toEqual(locks);

    // `pulumi preview` takes no lock: it runs beside the `up`, from its unfinished checkpoint, and
    // lists what the `up` is still doing as changes (a drift gate scheduled then would fail).
    const p = await s.cmd(["preview", "--expect-no-changes"]);
    expect(a.running()).toBe(true);
    expect(p.status).toBe(7);
    expect(text(p)).not.toContain("locked");
    expect(updated(p)).toContain(`${N3.name}:${CONFIG}`);

    // The first `up` carries on undisturbed: one restart per node, in waves, and releases its lock.
    const done = await a.done;
    expect(done.status).toBe(0);
    expect(done.stdout).toMatch(/~ 3 updated/);
    const end = await viewAll();
    for (const [i] of NODES.entries()) {
      expect(end[i].restarts).toBe(before[i].restarts + 1);
      expect(end[i].config).not.toContain("SystemdCgroup = true");
      expect(end[i].config).toContain("SystemdCgroup = false");
      expect(end[i].ssh).toBe(before[i].ssh + 1);
      expect(end[i].audit.slice(before[i].audit.length).filter((l) => l.includes(` apply path=${CONFIG} `))).toHaveLength(1);
    }
    expect(lockFiles(s)).toEqual([]);
    expect((await s.cmd(["preview", "--expect-no-changes"])).status).toBe(0);
  });

  it("`pulumi cancel` (the lock message's advice) only deletes the lock: the running `up` goes on, and a second `up` then runs beside it", async () => {
    await setSpec(s, { ...SLOW, systemdCgroup: true });
    const before = await viewAll();
    const a = startUp(s);
    await F.waitFor("node-1's restart by the first up", () => F.restarts(N1) > before[0].restarts, 90_000);

    const cancel = await s.cmd(["cancel", "--yes"]);
    expect(cancel.status).toBe(0);
    expect(cancel.stdout).toContain(`The currently running update for '${s.stack}' has been canceled!`);
    expect(lockFiles(s)).toEqual([]);
    // Nothing was cancelled: the first `up` is still running (and goes on to node-2 and node-3).
    expect(a.running()).toBe(true);

    const c = await s.cmd(["up", "--yes", "--skip-preview"]);
    const first = await a.done;
    // The second `up` was not refused: it ran while the first did, from the first's unfinished
    // checkpoint (node-1's config.toml update still pending in it).
    expect(c.status).toBe(0);
    expect(c.stdout).toContain("Attempting to deploy or update resources with 1 pending operations from previous deployment.");
    expect(c.stdout).toContain(`* ${fileUrn(s.stack, N1, CONFIG)}, interrupted while updating`);
    // The first finds its lock gone when it ends, says so, and still exits 0.
    expect(first.status).toBe(0);
    expect(text(first)).toContain("error: there was a problem deleting the lock at ");
    expect(text(first)).toContain("manual clean up may be required");

    // On the nodes both `up`s ran every config.toml apply, one after the other under the node's lock:
    // one write and one restart per node (the later apply found the same bytes), two connections each.
    const end = await viewAll();
    for (const [i] of NODES.entries()) {
      expect(end[i].restarts).toBe(before[i].restarts + 1);
      expect(end[i].config).toContain("SystemdCgroup = true");
      expect(end[i].ssh).toBe(before[i].ssh + 2);
      expect(end[i].audit.slice(before[i].audit.length).filter((l) => l.includes(` apply path=${CONFIG} `))).toHaveLength(1);
    }
    expect(lockFiles(s)).toEqual([]);
    expect((await s.cmd(["preview", "--expect-no-changes"])).status).toBe(0);
  });
});

describe("`pulumi up --target` one node after a change for the whole fleet", () => {
  let s: CliStack;
  const NEW = { ...BASE, readNode: false, systemdCgroup: false, registries: { "docker.io": { mirrors: [MIRROR_B] } } };
  const isNew = (v: NodeView) => v.config!.includes("SystemdCgroup = false") && v.hub!.includes(new URL(MIRROR_B).host);
  const isOld = (v: NodeView) => v.config!.includes("SystemdCgroup = true") && v.hub!.includes(new URL(MIRROR).host) && !v.hub!.includes(new URL(MIRROR_B).host);

  // One node per wave: node-1, then node-2, then node-3.
  sharedStack({ ...BASE, readNode: false }, (x) => (s = x));
  beforeAll(() => setSpec(s, NEW));

  it("--target of a node without --target-dependents changes nothing (its files are its children, not the node), yet the stack outputs take the new hashes", async () => {
    const before = await viewAll();
    const r = await s.cmd(["up", "--yes", "--skip-preview", "--target", nodeUrn(s.stack, N1)]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/Resources:\n\s+14 unchanged/);
    expect(updated(r)).toEqual([]);
    expect(await viewAll()).toEqual(before);
    // The root program's configHashes output is what the program renders, not what the nodes hold:
    // after this `up` it names node-1's new hash while node-1 still has the old file.
    const out = JSON.parse((await s.ok(["stack", "output", "--json"])).stdout) as { configHashes: Record<string, string> };
    expect(out.configHashes[N1.name]).not.toBe(sha256(before[0].config!));
  });

  it("--target-dependents follows the waves: the first wave's node takes every later wave with it", async () => {
    const before = await viewAll();
    const r = await s.cmd(["preview", "--target", nodeUrn(s.stack, N1), "--target-dependents"]);
    expect(r.status).toBe(0);
    expect(updated(r)).toEqual(NODES.flatMap((n) => [`${n.name}:${HUB}`, `${n.name}:${CONFIG}`]).sort());
    expect(r.stdout).toMatch(/~ 6 to update/);
    expect(await viewAll()).toEqual(before);
  });

  it("--target the last wave's node --target-dependents: only that node changes (its files, one restart); the others are not contacted", async () => {
    const before = await viewAll();
    const r = await s.cmd(["up", "--yes", "--skip-preview", "--target", nodeUrn(s.stack, N3), "--target-dependents"]);
    expect(r.status).toBe(0);
    expect(updated(r)).toEqual([`${N3.name}:${CONFIG}`, `${N3.name}:${HUB}`].sort());
    expect(r.stdout).toMatch(/~ 2 updated/);
    const after = await viewAll();
    expect(isNew(after[2])).toBe(true);
    expect(after[2].restarts).toBe(before[2].restarts + 1);
    expect(after[2].ssh).toBe(before[2].ssh + 2);
    expect(after[2].audit.slice(before[2].audit.length).map((l) => / result=(\S+)/.exec(l)?.[1])).toEqual(["applied", "healthy"]);
    // node-1 and node-2 (the earlier waves): same files, no restart, no SSH connection.
    expect(after.slice(0, 2)).toEqual(before.slice(0, 2));
    expect(isOld(after[0]) && isOld(after[1])).toBe(true);
  });

  it("one middle-wave node alone by URN globs (the node and its children), then a full `up` finishes the rest", async () => {
    const before = await viewAll();
    const one = await s.cmd(["up", "--yes", "--skip-preview", "--target", `**::${N2.name}`, "--target", `**::${N2.name}:**`]);
    expect(one.status).toBe(0);
    expect(updated(one)).toEqual([`${N2.name}:${CONFIG}`, `${N2.name}:${HUB}`].sort());
    const mid = await viewAll();
    expect(isNew(mid[1])).toBe(true);
    expect(mid[1].restarts).toBe(before[1].restarts + 1);
    // Ahead of its wave: node-1 (the wave before) is still on the old files, and was not contacted.
    expect(mid[0]).toEqual(before[0]);
    expect(mid[2]).toEqual(before[2]);

    const all = await s.cmd(["up", "--yes", "--skip-preview"]);
    expect(all.status).toBe(0);
    expect(updated(all)).toEqual([`${N1.name}:${CONFIG}`, `${N1.name}:${HUB}`].sort());
    const end = await viewAll();
    expect(end.every(isNew)).toBe(true);
    expect(end[0].restarts).toBe(before[0].restarts + 1);
    expect(end[0].ssh).toBe(before[0].ssh + 2);
    expect(end.slice(1)).toEqual(mid.slice(1));
    expect((await s.cmd(["preview", "--expect-no-changes"])).status).toBe(0);
  });

  it("with the node read on (the default), a targeted run still reads every node: one read-only session each, nothing else", async () => {
    const { readNode: _off, ...withRead } = NEW;
    await setSpec(s, withRead);
    const before = await viewAll();
    const r = await s.cmd(["up", "--yes", "--skip-preview", "--target", nodeUrn(s.stack, N3), "--target-dependents"]);
    expect(r.status).toBe(0);
    expect(updated(r)).toEqual([]);
    const after = await viewAll();
    for (const [i] of NODES.entries()) expect(after[i]).toEqual({ ...before[i], ssh: before[i].ssh + 1 });
  });
});

describe("a drift gate for a scheduled job: `pulumi preview --expect-no-changes` (node read on)", () => {
  let s: CliStack;

  sharedStack(BASE, (x) => (s = x), () => F.fault(N2, "sshd-start"));

  it("exits 0 on a clean fleet, reading each node once and changing nothing", async () => {
    const before = await viewAll();
    const r = await s.cmd(["preview", "--expect-no-changes"]);
    expect(r.status).toBe(0);
    expect(updated(r)).toEqual([]);
    expect(text(r)).not.toContain("since the last apply");
    const after = await viewAll();
    for (const [i] of NODES.entries()) expect(after[i]).toEqual({ ...before[i], ssh: before[i].ssh + 1 });
  });

  it("exits 7 after hand edits, naming each node and file (with the line diff), and changes nothing on the nodes", async () => {
    await F.nodeSh(N1, `printf '# tuned by hand\\n' >> ${CONFIG}`);
    await F.nodeSh(N3, `chmod 0600 ${HUB}`);
    const before = await viewAll();
    const r = await s.cmd(["preview", "--expect-no-changes"]);
    expect(r.status).toBe(7);
    expect(r.stderr).toContain("error: no changes were expected for preview but changes were proposed");
    expect(updated(r)).toEqual([`${N1.name}:${CONFIG}`, `${N3.name}:${HUB}`]);
    expect(r.stdout).toMatch(updateLine(N1, CONFIG));
    expect(r.stdout).toContain(`warning: ${N1.name}: ${CONFIG} has other content since the last apply; up writes it back (- on the node now, + to be written):`);
    expect(r.stdout).toMatch(/\n\s+- # tuned by hand\n/);
    expect(r.stdout).toContain(`warning: ${N3.name}: ${HUB} has mode 0600, installed 0644 since the last apply; up writes it back`);
    expect(r.stdout).not.toContain(`${N2.name}: ${CONFIG}`);
    const after = await viewAll();
    for (const [i] of NODES.entries()) expect(after[i]).toEqual({ ...before[i], ssh: before[i].ssh + 1 });
    expect(after[0].config).toContain("# tuned by hand");
  });

  it("`pulumi refresh` sees nothing (no SSH; --expect-no-changes exits 0); the next preview still fails", async () => {
    const before = await viewAll();
    const state = appliedState(s);
    const r = await s.cmd(["refresh", "--yes", "--expect-no-changes"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/Resources:\n\s+14 unchanged/);
    expect(text(r)).not.toContain("since the last apply");
    expect(text(r)).not.toContain("warning");
    expect(await viewAll()).toEqual(before);
    expect(appliedState(s)).toEqual(state);
    expect((await s.cmd(["preview", "--expect-no-changes"])).status).toBe(7);
  });

  it("`pulumi refresh --run-program` runs the read (the drift warnings, a session per node per phase) but still reports no changes and exits 0", async () => {
    const before = await viewAll();
    const r = await s.cmd(["refresh", "--yes", "--run-program", "--expect-no-changes"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`warning: ${N1.name}: ${CONFIG} has other content since the last apply; up writes it back`);
    expect(r.stdout).toContain(`warning: ${N3.name}: ${HUB} has mode 0600, installed 0644 since the last apply; up writes it back`);
    // The refresh display marks the drifted commands, yet counts nothing as changed.
    expect(r.stdout).toMatch(new RegExp(`command:remote:Command ${N1.name}:${CONFIG.replace(/\./g, "\\.")} refreshing \\(\\d+s\\) \\[diff: ~create\\]`));
    expect(r.stdout).toMatch(/Refreshing[\s\S]*Resources:\n\s+14 unchanged/);
    const after = await viewAll();
    // Its preview phase and its refresh phase each run the program: two reads per node, nothing else.
    for (const [i] of NODES.entries()) expect(after[i]).toEqual({ ...before[i], ssh: before[i].ssh + 2 });
    expect((await s.cmd(["preview", "--expect-no-changes"])).status).toBe(7);
  });

  it("`up` repairs the drift (one restart, for config.toml only); the gate then exits 0", async () => {
    const before = await viewAll();
    const r = await s.cmd(["up", "--yes", "--skip-preview"]);
    expect(r.status).toBe(0);
    expect(updated(r)).toEqual([`${N1.name}:${CONFIG}`, `${N3.name}:${HUB}`]);
    const after = await viewAll();
    expect(after[0].config).not.toContain("# tuned by hand");
    expect(after[2].hubMode).toBe("644");
    expect(after.map((v) => v.restarts)).toEqual([before[0].restarts + 1, before[1].restarts, before[2].restarts]);
    expect((await s.cmd(["preview", "--expect-no-changes"])).status).toBe(0);
  });

  it("a node that cannot be read is only a warning: the gate exits 0 over its drift until the node answers again", async () => {
    await F.nodeSh(N2, `printf '# tuned by hand\\n' >> ${CONFIG}`);
    await F.fault(N2, "sshd-stop");
    const blind = await s.cmd(["preview", "--expect-no-changes"]);
    expect(blind.status).toBe(0);
    expect(blind.stdout).toMatch(new RegExp(`warning: ${N2.name}: not read \\([^)]*\\): this run compares with the recorded state only, so its drift check, version guard, mirror gates and dropImports guard are off, and a drift gate \\(pulumi preview --expect-no-changes\\) passes over it`));
    expect(updated(blind)).toEqual([]);
    await F.fault(N2, "sshd-start");
    const seen = await s.cmd(["preview", "--expect-no-changes"]);
    expect(seen.status).toBe(7);
    expect(updated(seen)).toEqual([`${N2.name}:${CONFIG}`]);
  });

  it('with unreadNode "fail", a node that cannot be read fails the gate and the up, naming it; nothing of it runs', async () => {
    await setSpec(s, { ...BASE, unreadNode: "fail" });
    await F.fault(N2, "sshd-stop");
    try {
      const before = await viewAll();
      const gate = await s.cmd(["preview", "--expect-no-changes"]);
      expect(gate.status).not.toBe(0);
      expect(gate.status).not.toBe(7);
      expect(text(gate)).toMatch(new RegExp(`error: ${N2.name}: not read \\([^)]*\\): .*dropImports guard are off; refused \\(unreadNode: "fail"\\)`));
      expect(text(gate)).toContain(`${N2.name}: nothing of this node is applied: its read found the errors above`);
      const up = await s.cmd(["up", "--yes", "--skip-preview"]);
      expect(up.status).not.toBe(0);
      expect(text(up)).toContain(`${N2.name}: nothing of this node is applied`);
      const after = await viewAll();
      // N2 keeps its hand edit (nothing was written to it); the others were read twice (preview and up).
      expect(after[1]).toEqual(before[1]);
      expect(after[1].config).toContain("# tuned by hand");
      for (const i of [0, 2]) expect(after[i]).toEqual({ ...before[i], ssh: before[i].ssh + 2 });
    } finally {
      await F.fault(N2, "sshd-start");
    }
    // Read again: its drift shows, and the gate fails for that reason.
    const seen = await s.cmd(["preview", "--expect-no-changes"]);
    expect(seen.status).toBe(7);
    expect(updated(seen)).toEqual([`${N2.name}:${CONFIG}`]);
  });
});

/**
 * Keys in PKCS#8 ("BEGIN PRIVATE KEY": what openssl genpkey and @pulumi/tls's privateKeyPem hand
 * out), which the command provider takes and ssh2 by itself does not: the read must reach the node
 * with them, or a drift gate passes over it.
 */
describe("the drift gate on nodes reached with a PKCS#8 private key (ed25519, rsa)", () => {
  const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const rsaPublic = (() => {
    const k = utils.parseKey(rsa.privateKey.export({ type: "pkcs1", format: "pem" }).toString());
    if (k instanceof Error || Array.isArray(k)) throw k;
    return `ssh-rsa ${k.getPublicSSH().toString("base64")}`;
  })();
  const fleetKeyPkcs8 = (() => {
    const k = utils.parseKey(N1.privateKey);
    if (k instanceof Error || Array.isArray(k)) throw k;
    return createPrivateKey(k.getPrivatePEM()).export({ type: "pkcs8", format: "pem" }).toString();
  })();
  const AUTHORIZED = "/root/.ssh/authorized_keys";

  beforeAll(async () => {
    await F.resetNodes([N1, N3]);
    await F.nodeSh(N3, `printf '%s\\n' '${rsaPublic}' >> ${AUTHORIZED}`);
  });
  afterAll(async () => {
    await F.nodeSh(N3, `grep -v -F '${rsaPublic}' ${AUTHORIZED} > ${AUTHORIZED}.new; cat ${AUTHORIZED}.new > ${AUTHORIZED}; rm -f ${AUTHORIZED}.new`);
  });

  it.each([
    ["ed25519", () => N1, () => fleetKeyPkcs8],
    ["rsa", () => N3, () => rsa.privateKey.export({ type: "pkcs8", format: "pem" }).toString()],
  ])("%s: up works, a hand edit fails the gate (exit 7) naming the file, and up writes it back", async (_type, node, key) => {
    const n = node();
    expect(key()).toContain("-----BEGIN PRIVATE KEY-----");
    const s = await stack(BASE, { maxUnavailable: 1 }, { privateKey: key(), nodes: [n] });
    try {
      const first = await s.cmd(["up", "--yes", "--skip-preview"]);
      expect(first.status).toBe(0);
      expect(text(first)).not.toContain("not read");
      const clean = await s.cmd(["preview", "--expect-no-changes"]);
      expect(clean.status).toBe(0);
      expect(text(clean)).not.toContain("not read");
      await F.nodeSh(n, `printf '# tuned by hand\\n' >> ${CONFIG}`);
      const gate = await s.cmd(["preview", "--expect-no-changes"]);
      expect(gate.status).toBe(7);
      expect(updated(gate)).toEqual([`${n.name}:${CONFIG}`]);
      expect(gate.stdout).toContain(`warning: ${n.name}: ${CONFIG} has other content since the last apply; up writes it back`);
      const repair = await s.cmd(["up", "--yes", "--skip-preview"]);
      expect(repair.status).toBe(0);
      expect(await F.nodeFile(n, CONFIG)).not.toContain("# tuned by hand");
      expect((await s.cmd(["preview", "--expect-no-changes"])).status).toBe(0);
    } finally {
      await s.cmd(["destroy", "--yes", "--skip-preview"]);
      s.dispose();
    }
  });
});

/**
 * A node the read does not reach but the commands do (its sshd down while the program reads, back
 * before its wave dials: the provider retries a refused dial). Its commands must carry the spec's
 * new checks: here a health check that fails, on the second node only. The rollout must stop there,
 * with that node back on its old config.toml and the third node untouched.
 */
describe("a node not read while its program ran still gets the spec's new checks", () => {
  let s: CliStack;
  sharedStack(BASE, (x) => (s = x), () => F.fault(N2, "sshd-start"));

  it("a config change with a failing health check on the unread node fails there, rolls it back, and stops the rollout", async () => {
    await s.setAll({
      [`${PROJECT}:nodes`]: NODES.map((n) => configNode(n, n === N2 ? { healthChecks: ["false"] } : {})),
    });
    await setSpec(s, { ...BASE, systemdCgroup: false });
    const before = await viewAll();
    await F.fault(N2, "sshd-stop");
    let out = "";
    const up = s.run(argv(s, ["up", "--yes", "--skip-preview"]), { onStdout: (c) => (out += c) });
    try {
      // The program's reads are over once the first wave restarts N1 (no command registers before
      // its node's read); N2's wave comes after N1's, and its dial is retried until sshd answers.
      await F.waitFor("node-1's restart", () => F.restarts(N1) > before[0].restarts, 120_000);
    } finally {
      await F.fault(N2, "sshd-start");
    }
    const r = await up;
    out += r.stderr;
    expect(out).toMatch(new RegExp(`${N2.name}: not read \\(`));
    expect(r.status).not.toBe(0);
    const after = await viewAll();
    expect(after[0].config).toContain("SystemdCgroup = false");
    // N2 ran its new health check ("false"), failed and rolled back: two restarts, the old file.
    expect(after[1].config).toBe(before[1].config);
    expect(after[1].restarts).toBe(before[1].restarts + 2);
    expect(after[1].audit.join("\n")).toMatch(new RegExp(`rollback path=${CONFIG} .*result=healthy-again`));
    // Later waves do not start.
    expect(after[2].config).toBe(before[2].config);
    expect(after[2].restarts).toBe(before[2].restarts);
  });
});
