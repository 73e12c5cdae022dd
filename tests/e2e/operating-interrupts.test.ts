/**
 * Operating a fleet: what interrupting the real `pulumi up` (v3.276.0, the CLI tools/pulumi/build.sh
 * built) does to the nodes, to the stack's state, and what a user must do next. The root program runs
 * from the repository's top folder with stack config (as root-program.test.ts), on three nodes of
 * the local fleet rolled out one at a time (`rollout.maxUnavailable: 1`: three waves), with
 * `readNode: false` so that every SSH connection a node's sshd accepts is a command's.
 *
 * The faults are real: `pulumi up` runs in a process group of its own, as a shell runs a foreground
 * job, and Ctrl-C is SIGINT to that group (what the terminal sends). The CLI starts its plugins (the
 * Node.js language host, the command provider) each in a process group of their own, so, exactly as
 * in a terminal, only `pulumi` itself receives it; the tests check that. kill -9 is SIGKILL to the
 * `pulumi` process alone.
 *
 * A config.toml apply is slowed down with a health check (`sleep N`, which runs on the node after
 * the restart, before the apply is confirmed), so the interrupt lands while containerd has restarted
 * on the new file and the node script is waiting for it to be healthy.
 */
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { CliStack } from "../support/cli";
import { PASSPHRASE } from "../support/engine";
import { pulumiEnv, pulumiPath } from "../support/pulumi-env";
import * as F from "./fleet";
import type { FleetNode } from "./fleet";
import { CONFIG, HUB, MIRROR_B, PROJECT, ROOT_SPEC, argv, auditLines, backendOf, configNode, fleet, lockFiles, locksDir, mark, rootStack, setSpec, sha256 } from "./fixture";
import type { Mark } from "./fixture";

jest.setTimeout(300_000);

const NODES = F.nodesByGeneration(fleet, ["1.6", "1.7", "2.1"]);
const [FIRST, ...LATER] = NODES;

/** The shared spec of the first, uninterrupted rollout. */
const BASE = { ...ROOT_SPEC, readNode: false };

// ---- the stack and the CLI ----------------------------------------------------------------------

/** The root program's `nodes`: the three nodes, with spec overrides per node (by index). */
const nodesConfig = (overrides: Record<number, Record<string, unknown>> = {}) => NODES.map((n, i) => configNode(n, overrides[i] ?? {}));

/** A stack of the root program: the three nodes, the key as a secret, `spec`, one node per wave. */
const stack = (spec: Record<string, unknown>, up = false) => rootStack({ nodes: NODES, spec, rollout: { maxUnavailable: 1 }, up }, { passphrase: PASSPHRASE });

/** Where each interrupt starts: NODES reset and BASE rolled out by a new stack (removed again if that fails). */
async function deployed(): Promise<CliStack> {
  await F.resetNodes(NODES);
  return stack(BASE, true);
}

interface Exit {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A `pulumi up` we can interrupt: CliStack's environment and flags, in a process group of its own. */
interface LiveUp {
  pid: number;
  stdout: () => string;
  exit: Promise<Exit>;
}

function startUp(s: CliStack): LiveUp {
  // What CliStack gives each run (tests/support/cli.ts): our toolchain, this stack's backend and passphrase.
  const env = pulumiEnv({ PULUMI_BACKEND_URL: backendOf(s), PULUMI_CONFIG_PASSPHRASE: PASSPHRASE });
  delete env.PULUMI_STACK;
  const child: ChildProcess = spawn(pulumiPath(), argv(s, ["up", "--yes", "--skip-preview"]), { cwd: F.REPO, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const exit = new Promise<Exit>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (status, signal) => resolve({ status, signal, stdout, stderr }));
  });
  return { pid: child.pid!, stdout: () => stdout, exit };
}

/** Ctrl-C in a terminal: SIGINT to the foreground job's process group. */
const ctrlC = (up: LiveUp) => process.kill(-up.pid, "SIGINT");

interface Proc {
  pid: number;
  ppid: number;
  pgid: number;
  exe: string;
}

function processes(): Proc[] {
  const out: Proc[] = [];
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const exe = path.basename(fs.readFileSync(`/proc/${d}/cmdline`, "utf8").split("\0")[0]);
      out.push({ pid: Number(d), ppid: Number(f[1]), pgid: Number(f[2]), exe });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Every process below `pid` (the CLI's plugins and the program), as they are now. */
function descendants(pid: number): Proc[] {
  const all = processes();
  const found: Proc[] = [];
  for (let queue = [pid]; queue.length > 0; ) {
    const p = queue.shift()!;
    for (const c of all.filter((x) => x.ppid === p)) {
      found.push(c);
      queue.push(c.pid);
    }
  }
  return found;
}

const alive = (p: Proc) => {
  try {
    // Same pid and still the same program (not a reused pid).
    return path.basename(fs.readFileSync(`/proc/${p.pid}/cmdline`, "utf8").split("\0")[0]) === p.exe;
  } catch {
    return false;
  }
};

/** Ends what a killed CLI left behind: only these processes, by their pid. */
function endLeftovers(procs: Proc[]): void {
  for (const p of procs.filter(alive)) {
    try {
      process.kill(p.pid, "SIGKILL");
    } catch {
      // gone meanwhile
    }
  }
}

/** The state's pending operations, as `pulumi stack export` shows them: [type, resource name]. */
async function pendingOperations(s: CliStack): Promise<[string, string][]> {
  const d = JSON.parse((await s.ok(["stack", "export"])).stdout).deployment as { pending_operations?: { type: string; resource: { urn: string } }[] };
  return (d.pending_operations ?? []).map((o) => [o.type, o.resource.urn.split("::").pop()!]);
}

/** A resource of the state by its name (the part of the URN after the last `::`). */
async function stateResource(s: CliStack, name: string): Promise<{ inputs?: Record<string, unknown> } | undefined> {
  const d = JSON.parse((await s.ok(["stack", "export"])).stdout).deployment as { resources: { urn: string; inputs?: Record<string, unknown> }[] };
  return d.resources.find((r) => r.urn.endsWith(`::${name}`));
}

// ---- what the nodes show ------------------------------------------------------------------------

const configOf = (n: FleetNode) => fs.readFileSync(n.configToml, "utf8");

interface Files {
  config: string;
  hosts: string | undefined;
}
const filesOf = async (n: FleetNode): Promise<Files> => ({ config: configOf(n), hosts: await F.nodeFile(n, HUB) });

interface Since {
  restarts: number;
  audit: string[];
  ssh: number;
}
/** What each node recorded since `before`. */
const since = (nodes: FleetNode[], before: Mark[]): Promise<Since[]> =>
  Promise.all(
    nodes.map(async (n, i) => ({
      restarts: F.restarts(n) - before[i].restarts,
      audit: (await auditLines(n)).slice(before[i].audit),
      ssh: (await F.sshAccepted(n)) - before[i].ssh,
    })),
  );

/** `apply path=<file> ... result=<result>` lines. */
const applies = (lines: string[], file: string, result: string) => lines.filter((l) => l.includes(` apply path=${file} `) && l.includes(` result=${result} `));

/**
 * One look at a node, cheap enough to poll: the SSH connections its sshd accepted and its confirmed
 * config.toml applies (audit lines `apply path=config.toml ... result=healthy`), read together from
 * this machine's side of the node's directories: its /run/fleet (where restartLog is) and its
 * /etc/containerd (where configToml is).
 */
function look(n: FleetNode): { ssh: number; confirmed: number } {
  const read = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, "utf8").split("\n") : []);
  const ssh = read(path.join(path.dirname(n.restartLog), "sshd.log")).filter((l) => l.startsWith("Accepted ")).length;
  const audit = read(path.join(path.dirname(n.configToml), ".containerd-node", "audit.log"));
  return { ssh, confirmed: applies(audit, CONFIG, "healthy").length };
}

/** Every CRI plugin `ok` on the node's containerd. */
async function expectHealthy(n: FleetNode): Promise<void> {
  const cri = await F.criPlugins(n);
  expect(Object.keys(cri).length).toBeGreaterThan(0);
  expect(Object.values(cri).every((s) => s === "ok")).toBe(true);
}

/** Waits until the node has restarted on a config.toml other than `old`: the apply is in its health wait. */
const inHealthWait = (n: FleetNode, old: string, restarts: number) =>
  F.waitFor(`${n.name} to restart on its new config.toml`, () => F.restarts(n) > restarts && configOf(n) !== old, 120_000, 20);

/**
 * `pulumi up` started, then kill -9 (SIGKILL to the `pulumi` process alone) once the first node has
 * restarted on a config.toml other than `old`: the CLI, and its plugins and program as they were.
 */
async function killInHealthWait(s: CliStack, old: string, restarts: number): Promise<{ up: LiveUp; plugins: Proc[] }> {
  const up = startUp(s);
  await inHealthWait(FIRST, old, restarts);
  const plugins = descendants(up.pid);
  process.kill(up.pid, "SIGKILL");
  return { up, plugins };
}

/** The one-line JSON report of a step, as the CLI prints it for `<node>:<file>` when it finished. */
const stepReport = (stdout: string, n: FleetNode, file: string, verb: string) =>
  stdout.split("\n").find((l) => l.includes(`command:remote:Command ${n.name}:${file} ${verb} (`));

describe("operating a fleet: interrupting `pulumi up` (the real CLI)", () => {
  it("Ctrl-C once in the middle of a wave: the running apply finishes, no later wave starts, the next up completes the rollout", async () => {
    const s = await deployed();
    try {
      // The change: a mirror (hosts.toml) and config.toml, whose apply waits 3 s after the restart.
      const next = { ...BASE, maxConcurrentDownloads: 5, healthChecks: ["sleep 3"], registries: { "docker.io": { mirrors: [MIRROR_B] } } };
      await setSpec(s, next);
      const old = await Promise.all(NODES.map(filesOf));
      const before = await mark(NODES);

      const up = startUp(s);
      await inHealthWait(FIRST, old[0].config, before[0].restarts);
      const plugins = descendants(up.pid);
      // The CLI's plugins (and the program) are not in its process group: Ctrl-C reaches `pulumi` only.
      expect(plugins.map((p) => p.exe)).toEqual(expect.arrayContaining(["pulumi-language-nodejs", "pulumi-resource-command"]));
      expect(plugins.filter((p) => p.pgid === up.pid)).toEqual([]);
      expect(look(FIRST).confirmed).toBe(1); // the first rollout's: this config.toml apply is not yet confirmed
      ctrlC(up);
      const r = await up.exit;

      // The CLI: cancelling, not terminating; it waited for the running step and exited 1.
      expect(r.stdout).toContain("^C received; cancelling. If you would like to terminate immediately, press ^C again.");
      expect(r.stdout).not.toContain("^C received; terminating");
      expect(r.status).toBe(1);
      // The step finished on the node, but the CLI reports it failed: on cancel the language host
      // stops the program, and the component's after-update hook (served by the program) cannot
      // be called. The engine still commits the step's new state (step.go: "only the after-hook failed").
      const failed = stepReport(r.stdout, FIRST, CONFIG, "**updating failed");
      expect(failed).toContain('error: after hook "containerd-node-what-ran" failed: rpc error: code = Unavailable');
      expect(r.stdout).toMatch(/error: update failed/);
      for (const n of LATER) expect(r.stdout).not.toContain(`${n.name}:/etc/containerd`);

      // The nodes: the first on the new files, the later waves on the old ones, every one healthy.
      const seen = await since(NODES, before);
      const now = await Promise.all(NODES.map(filesOf));
      expect(now[0].config).toContain("max_concurrent_downloads = 5");
      expect(now[0].hosts).toContain(new URL(MIRROR_B).host);
      expect(seen[0].restarts).toBe(1);
      expect(applies(seen[0].audit, HUB, "applied")).toHaveLength(1);
      expect(applies(seen[0].audit, CONFIG, "healthy")).toEqual([expect.stringContaining(` new=${sha256(now[0].config)} restarted=true `)]);
      expect(seen[0].audit).toHaveLength(2);
      expect(seen[0].ssh).toBe(2); // hosts.toml and config.toml
      for (const i of [1, 2]) {
        expect(now[i]).toEqual(old[i]);
        expect(seen[i]).toEqual({ restarts: 0, audit: [], ssh: 0 });
      }
      for (const n of NODES) await expectHealthy(n);

      // The state: no pending operation, no lock; it records what the first node has.
      expect(await pendingOperations(s)).toEqual([]);
      expect(lockFiles(s)).toEqual([]);
      expect((await stateResource(s, `${FIRST.name}:${CONFIG}`))?.inputs?.stdin).toBe(now[0].config);

      // The next `pulumi up` completes the rollout: the later waves, and nothing on the first node.
      const before2 = await mark(NODES);
      const again = await s.ok(["up", "--yes", "--skip-preview"]);
      expect(again.stdout).not.toContain("pending operations");
      const seen2 = await since(NODES, before2);
      expect(seen2[0]).toEqual({ restarts: 0, audit: [], ssh: 0 });
      for (const i of [1, 2]) {
        expect(seen2[i].restarts).toBe(1);
        expect(applies(seen2[i].audit, CONFIG, "healthy")).toHaveLength(1);
        expect(applies(seen2[i].audit, HUB, "applied")).toHaveLength(1);
        const f = await filesOf(NODES[i]);
        expect(f.config).toContain("max_concurrent_downloads = 5");
        expect(f.hosts).toContain(new URL(MIRROR_B).host);
      }
      expect(await filesOf(FIRST)).toEqual(now[0]);
      const outputs = JSON.parse((await s.ok(["stack", "output", "--json"])).stdout) as { restartedNodes: string[] };
      expect(outputs.restartedNodes).toEqual(LATER.map((n) => n.name));
      for (const n of NODES) await expectHealthy(n);
      await s.ok(["preview", "--expect-no-changes"]);
    } finally {
      s.dispose();
    }
  });

  it("Ctrl-C twice during a config.toml apply: the CLI exits at once, the node finishes the apply without it; the next up goes past the pending update and runs nothing twice", async () => {
    const s = await deployed();
    let plugins: Proc[] = [];
    try {
      await setSpec(s, { ...BASE, maxConcurrentDownloads: 5, healthChecks: ["sleep 5"] });
      const old = await Promise.all(NODES.map(filesOf));
      const before = await mark(NODES);

      const up = startUp(s);
      await inHealthWait(FIRST, old[0].config, before[0].restarts);
      plugins = descendants(up.pid);
      expect(plugins.filter((p) => p.pgid === up.pid)).toEqual([]);
      ctrlC(up);
      await F.waitFor("the CLI to say it is cancelling", () => up.stdout().includes("^C received; cancelling"), 10_000, 20);
      ctrlC(up);
      const r = await up.exit;

      expect(r.stdout).toContain("^C received; terminating");
      expect(r.stdout).toContain(`command:remote:Command ${FIRST.name}:${CONFIG} updating (interrupted)`);
      expect(r.stderr).toContain("error: update cancelled");
      expect(r.status).toBe(8);

      // The CLI ended its plugins with it: the command provider, and with it the SSH connection of
      // the running apply, are gone while the node has not yet confirmed the apply.
      await F.waitFor("the CLI's plugins to end", () => !plugins.some(alive), 10_000, 20);
      expect(plugins.map((p) => p.exe)).toContain("pulumi-resource-command");
      expect(look(FIRST).confirmed).toBe(1); // the first rollout's only

      // The node finishes the apply by itself (the node script ignores hangups): new file, one
      // restart, confirmed healthy. The later waves never started.
      await F.waitFor(`${FIRST.name} to confirm the apply on its own`, () => look(FIRST).confirmed === 2, 60_000, 100);
      const seen = await since(NODES, before);
      const now = await filesOf(FIRST);
      expect(now.config).toContain("max_concurrent_downloads = 5");
      expect(seen[0].restarts).toBe(1);
      expect(seen[0].audit).toEqual([expect.stringMatching(new RegExp(` apply path=${CONFIG} old=${sha256(old[0].config)} new=${sha256(now.config)} restarted=true result=healthy `))]);
      for (const i of [1, 2]) {
        expect(await filesOf(NODES[i])).toEqual(old[i]);
        expect(seen[i]).toEqual({ restarts: 0, audit: [], ssh: 0 });
      }
      for (const n of NODES) await expectHealthy(n);

      // The state: the interrupted update is a pending operation; the CLI removed its lock.
      expect(await pendingOperations(s)).toEqual([["updating", `${FIRST.name}:${CONFIG}`]]);
      expect(lockFiles(s)).toEqual([]);

      // The next `pulumi up` warns and proceeds: it runs the first node's step again, which finds
      // the file in place and confirmed (no write, no restart), then the later waves.
      const before2 = await mark(NODES);
      const again = await s.cmd(["up", "--yes", "--skip-preview"]);
      expect(again.status).toBe(0);
      expect(again.stdout).toContain("warning: Attempting to deploy or update resources with 1 pending operations from previous deployment.");
      expect(again.stdout).toContain(`::${FIRST.name}:${CONFIG}, interrupted while updating`);
      expect(stepReport(again.stdout, FIRST, CONFIG, "updated")).toContain('{"path":"/etc/containerd/config.toml","written":false,"restarted":false,');
      const seen2 = await since(NODES, before2);
      expect(seen2[0]).toEqual({ restarts: 0, audit: [], ssh: 1 });
      for (const i of [1, 2]) {
        expect(seen2[i].restarts).toBe(1);
        expect(applies(seen2[i].audit, CONFIG, "healthy")).toHaveLength(1);
      }
      expect(await pendingOperations(s)).toEqual([]);
      for (const n of NODES) await expectHealthy(n);
      await s.ok(["preview", "--expect-no-changes"]);
    } finally {
      endLeftovers(plugins);
      s.dispose();
    }
  });

  it("kill -9 of pulumi during a config.toml apply: the stale lock refuses the next up until `pulumi cancel`; cancel and up at once converge with one restart", async () => {
    const s = await deployed();
    let plugins: Proc[] = [];
    try {
      // The change; the first node's apply waits 25 s after its restart, long enough for the whole
      // recovery below (about 13 s here) to reach that node while it is still inside the interrupted apply.
      await s.setAll({ [`${PROJECT}:spec`]: { ...BASE, maxConcurrentDownloads: 5 }, [`${PROJECT}:nodes`]: nodesConfig({ 0: { healthChecks: ["sleep 25"] } }) });
      const old = await Promise.all(NODES.map(filesOf));
      const before = await mark(NODES);

      const { up, plugins: left } = await killInHealthWait(s, old[0].config, before[0].restarts);
      plugins = left;
      const r = await up.exit;
      expect(r.signal).toBe("SIGKILL");

      // The CLI's plugins outlive it: the command provider keeps the running apply's SSH session.
      const provider = plugins.find((p) => p.exe === "pulumi-resource-command")!;
      expect(alive(provider)).toBe(true);

      // The state: the update is pending, and the killed CLI's lock is left in the backend.
      expect(await pendingOperations(s)).toEqual([["updating", `${FIRST.name}:${CONFIG}`]]);
      const locks = lockFiles(s);
      expect(locks).toHaveLength(1);
      expect(JSON.parse(fs.readFileSync(path.join(locksDir(s), locks[0]), "utf8")).pid).toBe(up.pid);
      const refused = await s.cmd(["up", "--yes", "--skip-preview"]);
      expect(refused.status).toBe(1);
      expect(refused.stderr).toContain("error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or delete the lock file with `pulumi cancel`.");
      expect(refused.stderr).toContain(`(pid ${up.pid})`);
      expect(refused.stdout).not.toContain(FIRST.name);

      // The recovery, at once: `pulumi cancel` (on a file backend it deletes the stack's lock
      // files), then `pulumi up`.
      const cancel = await s.cmd(["cancel", "--yes"]);
      expect(cancel.status).toBe(0);
      expect(cancel.stdout).toContain(`The currently running update for '${s.stack}' has been canceled!`);
      expect(lockFiles(s)).toEqual([]);
      const start = look(FIRST);
      expect(start.confirmed).toBe(1); // the first rollout's: the interrupted apply is still running
      const recovery = s.cmd(["up", "--yes", "--skip-preview"]);
      let ended = false;
      void recovery.then(() => (ended = true));
      // The moment the recovery's own command reaches the first node.
      let reached: { ssh: number; confirmed: number } | undefined;
      while (!ended && !reached) {
        const l = look(FIRST);
        if (l.ssh > start.ssh) reached = l;
        else await F.sleep(20);
      }
      const again = await recovery;
      expect(again.status).toBe(0);
      expect(again.stdout).toContain(`::${FIRST.name}:${CONFIG}, interrupted while updating`);
      // It connected while the interrupted apply was still unconfirmed, so the node script's lock
      // made it wait; then the file was in place and confirmed: no write, no second restart.
      expect(reached).toEqual({ ssh: start.ssh + 1, confirmed: 1 });
      expect(stepReport(again.stdout, FIRST, CONFIG, "updated")).toContain('{"path":"/etc/containerd/config.toml","written":false,"restarted":false,');

      const seen = await since(NODES, before);
      expect(seen[0].restarts).toBe(1);
      expect(seen[0].audit).toEqual([expect.stringMatching(new RegExp(` apply path=${CONFIG} old=${sha256(old[0].config)} new=${sha256(configOf(FIRST))} restarted=true result=healthy `))]);
      expect(configOf(FIRST)).toContain("max_concurrent_downloads = 5");
      for (const i of [1, 2]) {
        expect(seen[i].restarts).toBe(1);
        expect(applies(seen[i].audit, CONFIG, "healthy")).toHaveLength(1);
      }
      for (const n of NODES) await expectHealthy(n);
      expect(await pendingOperations(s)).toEqual([]);
      // The orphaned provider ended by itself once the node's command had finished; the orphaned
      // Node.js language host did not (endLeftovers ends it).
      await F.waitFor("the orphaned command provider to end", () => !alive(provider), 30_000, 200);
      expect(plugins.filter(alive).map((p) => p.exe)).toEqual(["pulumi-language-nodejs"]);
      await s.ok(["preview", "--expect-no-changes"]);
    } finally {
      endLeftovers(plugins);
      s.dispose();
    }
  });

  it("kill -9 of pulumi during the first rollout: the pending CREATE outlives every up until `pulumi refresh --clear-pending-creates`", async () => {
    await F.resetNodes(NODES);
    const s = await stack({ ...BASE, healthChecks: ["sleep 5"] });
    let plugins: Proc[] = [];
    try {
      const old = await Promise.all(NODES.map(filesOf));
      const before = await mark(NODES);
      const { up, plugins: left } = await killInHealthWait(s, old[0].config, before[0].restarts);
      plugins = left;
      expect((await up.exit).signal).toBe("SIGKILL");
      await F.waitFor(`${FIRST.name} to confirm the apply on its own`, () => look(FIRST).confirmed === 1, 60_000, 100);
      const provider = plugins.find((p) => p.exe === "pulumi-resource-command")!;
      await F.waitFor("the orphaned command provider to end", () => !alive(provider), 30_000, 200);
      expect(plugins.filter(alive).map((p) => p.exe)).toEqual(["pulumi-language-nodejs"]);

      // The state: a pending CREATE, and the resource itself not in it.
      expect(await pendingOperations(s)).toEqual([["creating", `${FIRST.name}:${CONFIG}`]]);
      expect(await stateResource(s, `${FIRST.name}:${CONFIG}`)).toBeUndefined();
      expect(lockFiles(s)).toHaveLength(1);
      await s.ok(["cancel", "--yes"]);

      // `pulumi up` warns and proceeds: it creates the first node's config.toml again (the node
      // finds it in place and confirmed), then the later waves. The pending CREATE stays.
      const before2 = await mark(NODES);
      const again = await s.cmd(["up", "--yes", "--skip-preview"]);
      expect(again.status).toBe(0);
      expect(again.stdout).toContain(`::${FIRST.name}:${CONFIG}, interrupted while creating`);
      expect(stepReport(again.stdout, FIRST, CONFIG, "created")).toContain('{"path":"/etc/containerd/config.toml","written":false,"restarted":false,');
      const seen2 = await since(NODES, before2);
      expect(seen2[0]).toEqual({ restarts: 0, audit: [], ssh: 1 });
      for (const i of [1, 2]) expect(seen2[i].restarts).toBe(1);
      expect(await pendingOperations(s)).toEqual([["creating", `${FIRST.name}:${CONFIG}`]]);
      expect(await stateResource(s, `${FIRST.name}:${CONFIG}`)).toBeDefined();
      await s.ok(["preview", "--expect-no-changes"]);
      const third = await s.ok(["up", "--yes", "--skip-preview"]);
      expect(third.stdout).toContain("interrupted while creating");

      // A plain `pulumi refresh` (non-interactive) keeps it; `--clear-pending-creates` drops it.
      // Neither contacts a node: the command provider's read returns the state as it is.
      const before3 = await mark(NODES);
      const refresh = await s.cmd(["refresh", "--yes"]);
      expect(refresh.status).toBe(0);
      expect(await pendingOperations(s)).toEqual([["creating", `${FIRST.name}:${CONFIG}`]]);
      const clear = await s.cmd(["refresh", "--yes", "--clear-pending-creates"]);
      expect(clear.status).toBe(0);
      expect(await pendingOperations(s)).toEqual([]);
      expect(await since(NODES, before3)).toEqual(NODES.map(() => ({ restarts: 0, audit: [], ssh: 0 })));
      const clean = await s.ok(["up", "--yes", "--skip-preview"]);
      expect(clean.stdout).not.toContain("pending operations");

      // Over all of it, each node applied config.toml once and restarted once.
      const seen = await since(NODES, before);
      for (const x of seen) {
        expect(x.restarts).toBe(1);
        expect(applies(x.audit, CONFIG, "healthy")).toHaveLength(1);
      }
      for (const n of NODES) await expectHealthy(n);
    } finally {
      endLeftovers(plugins);
      s.dispose();
    }
  });
});
