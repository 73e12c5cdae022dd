/**
 * A node's life on the local fleet, through the real Pulumi engine (tests/support/engine.ts: the CLI
 * and the command provider, an inline program in this process): it moves to another machine (the old
 * one restored first, shown by the nodes themselves), its node script changes, its outputs say what the
 * latest `up` did (the engine's resource hooks), a forgotten node is never contacted again, the
 * program's own read of the nodes ends cleanly (also in a `pulumi` process of its own), and what the
 * node script keeps safe holds on a real node: a restore without CRI, health on the activated file's
 * socket, rollback to the last confirmed file, the running daemon's version, bounded waits, symlinks,
 * a full disk, a node without flock, and no credentials in settings (containerd 1.6.20 and 1.7.24).
 *
 * SSH sessions are counted by the nodes' own sshd (F.sshAccepted). Tests not about the program's read
 * set `readNode: false`, so their counts are those of the commands alone.
 */
import * as fs from "fs";
import * as net from "net";
import * as path from "path";
import { ContainerdFleet, ContainerdNode, ContainerdNodeArgs } from "../../provider/src";
import type { NodeStateReport } from "../../provider/src/component/containerd-node";
import { criPullImage, criRemoveImage } from "../support/cri";
import { COMMAND_TYPE, EngineStack, RunResult } from "../support/engine";
import * as F from "./fleet";
import type { FleetNode } from "./fleet";
import { AUDIT, CONFIG, HUB, MIRROR, MIRROR_B, SCRIPT, TINY, argv, changed, configureRoot, connection, engineStack, fleet, nodeSpec, rootCli } from "./fixture";

jest.setTimeout(300_000);

const [N16, N17] = F.nodesByGeneration(fleet, ["1.6", "1.7"]);

// 1.6 renders a version 2 config.toml that 1.6 and 1.7 both take.
const spec = (on: FleetNode, extra: Partial<ContainerdNodeArgs> = {}) => nodeSpec(on, { containerdVersion: "1.6", ...extra });

const newStack = () => engineStack("lifecycle");
/** The Automation API stack behind an EngineStack (for `stack export`/`stack import` of a state edited by hand). */
/** The node's own directory on this machine, as the fleet JSON's config.toml path gives it. */
const etcOf = (n: FleetNode) => path.dirname(n.configToml);
/** When a file or directory of the node last changed, in ns since the epoch (this machine's clock, which the nodes share). */
const mtimeNs = (n: FleetNode, p: string): bigint => fs.statSync(path.join(etcOf(n), path.relative("/etc/containerd", p)), { bigint: true }).mtimeNs;
/** A restart log line's time ("2025-01-01T00:00:00.123Z start ok pid=1"), in ns since the epoch. */
const lineNs = (line: string): bigint => BigInt(Date.parse(line.split(" ")[0])) * 1_000_000n;

describe("a node whose address moves to another machine", () => {
  let h: EngineStack;
  let originals: { n16: string; n17: string };
  beforeAll(async () => {
    await F.resetNodes([N16, N17]);
    originals = { n16: fs.readFileSync(N16.configToml, "utf8"), n17: fs.readFileSync(N17.configToml, "utf8") };
    h = newStack();
  });
  afterAll(async () => {
    await h?.destroy();
    h?.dispose();
  });

  it("shows the move in the preview, restores the machine it leaves before applying on the new one", async () => {
    const first = await h.up(async () => void new ContainerdNode("mover", spec(N16)));
    expect(first.error?.message).toBeUndefined();
    expect(await F.nodeFile(N16, HUB)).toContain(MIRROR);
    const before = { n16: F.restarts(N16), n17: F.restarts(N17) };

    // Preview: the host resource is replaced (its trigger is the address), delete first; the
    // files are updates (their connection changed); nothing runs.
    const moved = async () => void new ContainerdNode("mover", spec(N17));
    const sessions = await F.sshAcceptedAll([N16, N17]);
    const preview = await h.preview(moved);
    expect(preview.error?.message).toBeUndefined();
    // The engine reports a delete-before-replace as three steps of the one resource: the old one's
    // delete ("delete-replaced"), the replace itself, and the new one's create ("create-replacement").
    const hostSteps = preview.steps.filter((s) => s.name === "mover:host");
    expect(hostSteps.map((s) => s.op).sort()).toEqual(["create-replacement", "delete-replaced", "replace"]);
    const replace = hostSteps.find((s) => s.op === "replace")!;
    expect(replace.diffKeys).toContain("triggers");
    expect(replace.oldInputs!.triggers).toEqual([`${N16.host}:${N16.port}`]);
    expect(replace.newInputs!.triggers).toEqual([`${N17.host}:${N17.port}`]);
    for (const f of [CONFIG, HUB]) {
      const st = preview.steps.filter((s) => s.name === `mover:${f}`);
      expect(st.map((s) => s.op)).toEqual(["update"]);
      expect(st[0].diffKeys).toEqual(["connection"]);
    }
    // The CLI says it as a user reads it: the replace, delete first, and what triggers it.
    expect(preview.stdout).toMatch(/\+-\s*command:remote:Command: \(replace\)/);
    expect(preview.stdout).toContain(`"${N16.host}:${N16.port}" => "${N17.host}:${N17.port}"`);
    expect(await F.sshAcceptedAll([N16, N17])).toEqual(sessions);
    expect(F.restarts(N16)).toBe(before.n16);

    const res = await h.up(moved);
    expect(res.error?.message).toBeUndefined();
    expect(changed(res)).toEqual(
      [`mover:${CONFIG} update`, `mover:${HUB} update`, "mover:host create-replacement", "mover:host delete-replaced", "mover:host replace"].sort(),
    );
    // The machine it left: its original config.toml (one restart onto it), no hosts.toml, no script.
    expect(fs.readFileSync(N16.configToml, "utf8")).toBe(originals.n16);
    expect(await F.nodePathExists(N16, HUB)).toBe(false);
    expect(await F.nodePathExists(N16, SCRIPT)).toBe(false);
    expect(F.restarts(N16)).toBe(before.n16 + 1);
    expect((await F.criPlugins(N16))["io.containerd.grpc.v1.cri"]).toBe("ok");
    const oldAudit = (await F.nodeFile(N16, AUDIT))!;
    expect(oldAudit).toMatch(new RegExp(`restore path=${CONFIG} .*result=restored`));
    expect(oldAudit).toMatch(new RegExp(`restore path=${HUB} .*result=restored`));
    // The new machine: the node's files, one restart.
    expect(await F.nodeFile(N17, HUB)).toContain(MIRROR);
    expect(fs.readFileSync(N17.configToml, "utf8")).toContain("SystemdCgroup = true");
    expect(F.restarts(N17)).toBe(before.n17 + 1);

    // In that order, as the nodes recorded it (the engine's event times are whole seconds):
    // the old machine restarted onto its original config.toml, then the release ended there (the
    // script's removal, its last act, is the last change of its .containerd-node directory), and only
    // then did the new machine get the script, its hosts.toml, its config.toml and its restart.
    const oldRestart = lineNs(F.restartLines(N16).at(-1)!);
    const oldReleased = mtimeNs(N16, path.dirname(SCRIPT));
    const newScript = mtimeNs(N17, SCRIPT);
    const newHub = mtimeNs(N17, HUB);
    const newConfig = mtimeNs(N17, CONFIG);
    const newRestart = lineNs(F.restartLines(N17).at(-1)!);
    expect(oldRestart).toBeLessThan(oldReleased);
    expect(oldReleased).toBeLessThan(newScript);
    expect(newScript).toBeLessThan(newHub);
    expect(newHub).toBeLessThan(newConfig);
    expect(newConfig).toBeLessThan(newRestart);
  });
});

describe("a change of the node script alone", () => {
  it("costs one SSH session per node (its host resource), none per file", async () => {
    await F.resetNodes([N16]);
    const h = newStack();
    try {
      const program = async () => void new ContainerdNode("scripted", spec(N16));
      expect((await h.up(program)).error?.message).toBeUndefined();
      // As if the library had shipped another script: the state's copy differs from this one
      // (`pulumi stack export`, edited, `pulumi stack import`).
      await h.editState((d) => {
        const host = (d.resources as { urn: string; inputs: Record<string, unknown>; outputs: Record<string, unknown> }[]).find((r) => r.urn.endsWith("::scripted:host"))!;
        for (const props of [host.inputs, host.outputs]) props.stdin = String(props.stdin).replace("set -eu", "set -eu\n# an older revision");
      });
      const sessions = await F.sshAccepted(N16);
      const restarts = F.restarts(N16);
      const res = await h.up(program);
      expect(res.error?.message).toBeUndefined();
      expect(changed(res)).toEqual(["scripted:host update"]);
      expect((await F.sshAccepted(N16)) - sessions).toBe(1);
      expect(F.restarts(N16)).toBe(restarts);
      expect(await F.nodeFile(N16, SCRIPT)).not.toContain("# an older revision");
      expect((await h.destroy()).error?.message).toBeUndefined();
    } finally {
      h.dispose();
    }
  });
});

describe("outputs describe the latest up", () => {
  it("restarted, lastApply and the fleet's restartedNodes say what this up did, not what each command did last", async () => {
    await F.resetNodes([N16, N17]);
    const h = newStack();
    const program = (mirror: string, downloads: number) => async () => {
      const f = new ContainerdFleet("f", {
        containerdVersion: "1.6",
        systemdCgroup: true,
        healthTimeoutSeconds: 30,
        maxConcurrentDownloads: downloads,
        readNode: false,
        registries: { "docker.io": { mirrors: [mirror] } },
        nodes: [N16, N17].map((n) => ({ name: n.name, connection: connection(n) })),
      });
      const n = f.nodes[N16.name];
      return { restartedNodes: f.restartedNodes, restarted: n.restarted, lastApply: n.lastApply };
    };
    const restarts = () => [N16, N17].map((n) => F.restarts(n));
    try {
      const first = await h.up(program(MIRROR, 3));
      expect(first.error?.message).toBeUndefined();
      expect(first.outputs.restartedNodes).toEqual([N16.name, N17.name]);
      expect(first.outputs.restarted).toBe(true);
      expect((first.outputs.lastApply as { path: string }[]).map((r) => r.path).sort()).toEqual([HUB, CONFIG]);
      expect(restarts()).toEqual([1, 1]);

      // Nothing to do: nothing ran (no SSH session at all), nothing restarted, and the outputs say so
      // although every command's stdout is still that of its last run.
      const sessions = await F.sshAcceptedAll([N16, N17]);
      const noop = await h.up(program(MIRROR, 3));
      expect(noop.error?.message).toBeUndefined();
      expect(changed(noop)).toEqual([]);
      expect(noop.outputs).toEqual({ restartedNodes: [], restarted: false, lastApply: [] });
      expect(await F.sshAcceptedAll([N16, N17])).toEqual(sessions);
      expect(restarts()).toEqual([1, 1]);

      // A mirror change: the hosts.toml files ran, containerd did not restart.
      const hosts = await h.up(program(MIRROR_B, 3));
      expect(hosts.error?.message).toBeUndefined();
      expect(changed(hosts)).toEqual([`${N16.name}:${HUB} update`, `${N17.name}:${HUB} update`]);
      expect(hosts.outputs.restartedNodes).toEqual([]);
      expect(hosts.outputs.restarted).toBe(false);
      expect(hosts.outputs.lastApply).toEqual([{ path: HUB, written: true, restarted: false, deprecations: [] }]);
      expect(restarts()).toEqual([1, 1]);

      // A config change: both restart again, and say so.
      const config = await h.up(program(MIRROR_B, 5));
      expect(config.error?.message).toBeUndefined();
      expect(changed(config)).toEqual([`${N16.name}:${CONFIG} update`, `${N17.name}:${CONFIG} update`]);
      expect(config.outputs.restartedNodes).toEqual([N16.name, N17.name]);
      expect(config.outputs.restarted).toBe(true);
      expect((config.outputs.lastApply as { path: string; restarted: boolean }[]).map((r) => [r.path, r.restarted])).toEqual([[CONFIG, true]]);
      expect(restarts()).toEqual([2, 2]);
      expect((await h.destroy()).error?.message).toBeUndefined();
    } finally {
      h.dispose();
    }
  });
});

describe("a forgotten node (forget: true) is never contacted again", () => {
  // The read left on (its default): forget must stop it too.
  const program = (nodes: [FleetNode, Partial<ContainerdNodeArgs>][]) => async () => {
    for (const [n, extra] of nodes) {
      new ContainerdNode(n.name, spec(n, { readNode: undefined, registries: { "docker.io": { mirrors: [{ url: MIRROR, auth: { username: "robot", password: "pw-forget-1" } }] } }, ...extra }));
    }
  };
  let h: EngineStack;
  beforeAll(async () => {
    await F.resetNodes([N16, N17]);
    h = newStack();
  });
  afterAll(async () => {
    h?.dispose();
    // The forgotten nodes keep their files: the next tests start from the initial ones.
    await F.resetNodes([N16, N17]);
  });

  it("marks its resources retainOnDelete without contacting it; removing it, then destroy, run nothing on a node", async () => {
    expect((await h.up(program([[N16, {}], [N17, {}]]))).error?.message).toBeUndefined();
    const files = { n16: fs.readFileSync(N16.configToml, "utf8"), n17: fs.readFileSync(N17.configToml, "utf8") };
    const hubs = { n16: await F.nodeFile(N16, HUB), n17: await F.nodeFile(N17, HUB) };
    expect(hubs.n16).toContain("Authorization");
    const restarts = [F.restarts(N16), F.restarts(N17)];
    const ours = async (n: FleetNode) => (await h.state()).filter((r) => r.urn.includes(`::${n.name}:`));

    // forget on N16: its resources stay as they are (no step runs), retained on delete, and its
    // node is not contacted (not even by the read); N17 is read as usual (one session) and nothing more.
    let sessions = await F.sshAcceptedAll([N16, N17]);
    const forgot = await h.up(program([[N16, { forget: true }], [N17, {}]]));
    expect(forgot.error?.message).toBeUndefined();
    expect(changed(forgot)).toEqual([]);
    let now = await F.sshAcceptedAll([N16, N17]);
    expect([now[0] - sessions[0], now[1] - sessions[1]]).toEqual([0, 1]);
    const retained = await ours(N16);
    // Its host resource, both files and the redacted companion of the hosts.toml holding credentials.
    expect(retained.map((r) => r.urn.slice(r.urn.lastIndexOf("::") + 2)).sort()).toEqual(
      [`${N16.name}:${CONFIG}`, `${N16.name}:${HUB}`, `${N16.name}:${HUB} (redacted)`, `${N16.name}:host`].sort(),
    );
    expect(retained.every((r) => r.retainOnDelete === true)).toBe(true);
    expect((await ours(N17)).some((r) => r.retainOnDelete)).toBe(false);

    // A new release of this library while N16 stays forgotten: its recorded node script, command
    // lines and deletes differ from what the program now declares. Still nothing contacts it.
    await h.editState((d) => {
      for (const r of d.resources as { urn: string; inputs?: Record<string, unknown>; outputs?: Record<string, unknown> }[]) {
        if (!r.urn.includes(`::${N16.name}:`) || !r.urn.includes("command:remote:Command")) continue;
        for (const props of [r.inputs, r.outputs]) {
          if (!props) continue;
          for (const k of ["stdin", "create", "delete"]) if (typeof props[k] === "string") props[k] = `${props[k]}\n# an older release`;
        }
      }
    });
    sessions = await F.sshAcceptedAll([N16, N17]);
    const upgraded = await h.up(program([[N16, { forget: true }], [N17, {}]]));
    expect(upgraded.error?.message).toBeUndefined();
    expect(changed(upgraded)).toEqual([]);
    now = await F.sshAcceptedAll([N16, N17]);
    expect([now[0] - sessions[0], now[1] - sessions[1]]).toEqual([0, 1]);

    // Removed from the program: its resources leave the state, their deletes run nothing.
    sessions = now;
    const removed = await h.up(program([[N17, {}]]));
    expect(removed.error?.message).toBeUndefined();
    expect(changed(removed)).toEqual(
      [`${N16.name}:${CONFIG} delete`, `${N16.name}:${HUB} delete`, `${N16.name}:${HUB} (redacted) delete`, `${N16.name}:host delete`, `${N16.name} delete`].sort(),
    );
    now = await F.sshAcceptedAll([N16, N17]);
    expect([now[0] - sessions[0], now[1] - sessions[1]]).toEqual([0, 1]);
    expect(await ours(N16)).toEqual([]);

    // N17 forgotten, then the whole stack destroyed: no node is contacted, the state is empty.
    sessions = now;
    expect((await h.up(program([[N17, { forget: true }]]))).error?.message).toBeUndefined();
    expect((await ours(N17)).every((r) => r.retainOnDelete === true)).toBe(true);
    const destroyed = await h.destroy();
    expect(destroyed.error?.message).toBeUndefined();
    expect(destroyed.steps.filter((s) => s.type === COMMAND_TYPE).map((s) => s.op)).toEqual(["delete", "delete", "delete"]);
    expect(await F.sshAcceptedAll([N16, N17])).toEqual(sessions);
    expect(await h.state()).toEqual([]);

    // Both nodes were left exactly as they were.
    expect(fs.readFileSync(N16.configToml, "utf8")).toBe(files.n16);
    expect(fs.readFileSync(N17.configToml, "utf8")).toBe(files.n17);
    expect(await F.nodeFile(N16, HUB)).toBe(hubs.n16);
    expect(await F.nodeFile(N17, HUB)).toBe(hubs.n17);
    expect([F.restarts(N16), F.restarts(N17)]).toEqual(restarts);
  });
});

describe("the program's own read of the nodes ends cleanly", () => {
  const READ_TIMEOUT = 3;
  const nodes = [N16, N17];
  const program = async () => {
    const out: Record<string, unknown> = {};
    for (const n of nodes) out[n.name] = new ContainerdNode(n.name, spec(n, { readNode: true, readTimeoutSeconds: READ_TIMEOUT })).nodeState;
    return out;
  };
  /** Why N17 was not read (ssh2's words): its sshd stopped, or its link down (no handshake within readTimeoutSeconds). */
  const REFUSED = `connect ECONNREFUSED ${N17.host.replace(/\./g, "\\.")}:${N17.port}`;
  const NO_ANSWER = "Timed out while waiting for handshake|connect EHOSTUNREACH \\S+";
  const stateOf = (r: RunResult, n: FleetNode) => r.outputs[n.name] as NodeStateReport;
  /** This process's open TCP sockets to a node's sshd (the read's ssh2 connections would be these). */
  const openToNodes = () =>
    ((process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles())
      .filter((x): x is net.Socket => x instanceof net.Socket)
      .filter((s) => nodes.some((n) => s.remoteAddress === n.host && s.remotePort === n.port))
      .map((s) => `${s.remoteAddress}:${s.remotePort}`);
  let h: EngineStack;
  beforeAll(async () => {
    await F.resetNodes(nodes);
    h = newStack();
    expect((await h.up(program)).error?.message).toBeUndefined();
  });
  afterAll(async () => {
    for (const n of nodes) await F.fault(n, "sshd-start");
    await F.fault(N17, "reconnect");
    await h?.destroy();
    h?.dispose();
  });

  it("reachable nodes: one read session each, the run finishes promptly and no connection is left open in the program's process", async () => {
    const sessions = await F.sshAcceptedAll(nodes);
    const t0 = Date.now();
    const res = await h.up(program);
    const took = Date.now() - t0;
    expect(res.error?.message).toBeUndefined();
    expect(changed(res)).toEqual([]);
    for (const n of nodes) {
      expect(stateOf(res, n)).toMatchObject({ read: true, reached: true, runningVersion: n.containerdVersion, cri: "ok", drift: [], errors: [] });
      expect(stateOf(res, n).readSeconds).toBeLessThan(READ_TIMEOUT);
    }
    expect(res.warnings.filter((w) => w.includes("not read"))).toEqual([]);
    const now = await F.sshAcceptedAll(nodes);
    expect(now.map((x, i) => x - sessions[i])).toEqual([1, 1]);
    expect(openToNodes()).toEqual([]);
    expect(took).toBeLessThan(30_000);
  });

  it.each([
    ["sshd stopped", "sshd-stop", "sshd-start", REFUSED],
    ["its link down", "cut", "reconnect", NO_ANSWER],
  ] as const)("an unreachable node (%s): its 'not read' warning within readTimeoutSeconds, the run still finishes", async (_what, fault, repair, why) => {
    await F.fault(N17, fault);
    try {
      const t0 = Date.now();
      const res = await h.up(program);
      const took = Date.now() - t0;
      expect(res.error?.message).toBeUndefined();
      expect(changed(res)).toEqual([]);
      expect(res.warnings).toContainEqual(
        expect.stringMatching(new RegExp(`^${N17.name}: ${N17.name}: not read \\((?:${why})\\): this run compares with the recorded state only`)),
      );
      expect(stateOf(res, N17)).toMatchObject({ read: true, reached: false });
      expect(stateOf(res, N17).readSeconds).toBeLessThanOrEqual(READ_TIMEOUT + 0.5);
      expect(stateOf(res, N16)).toMatchObject({ read: true, reached: true, cri: "ok" });
      expect(openToNodes()).toEqual([]);
      expect(took).toBeLessThan(30_000);
    } finally {
      await F.fault(N17, repair);
    }
  });

  it("in a `pulumi` process of its own (the root program): the program exits, with a reachable node and an unreachable one", async () => {
    // A handle the read left open (a socket, a timer) would keep the program's Node.js process, and
    // so `pulumi preview`, from ever ending; here nothing but the process's own exit ends it.
    const s = rootCli();
    const preview = () => s.run(argv(s, ["preview", "--diff"]), { timeoutMs: 120_000 });
    try {
      await s.init();
      await configureRoot(s, {
        nodes,
        privateKey: N16.privateKey,
        node: (n) => ({ name: n.name, host: n.host, hostKey: n.hostKey }),
        spec: { containerdVersion: "1.6", systemdCgroup: true, readTimeoutSeconds: READ_TIMEOUT, registries: { "docker.io": { mirrors: [MIRROR] } } },
      });
      const sessions = await F.sshAcceptedAll(nodes);
      const reachable = await preview();
      // Exit status 0, not the timeout's kill (null).
      expect(reachable.status).toBe(0);
      expect(reachable.seconds).toBeLessThan(60);
      expect(reachable.stdout).toMatch(/\+ 10 to create/);
      // The CLI prints the program's warnings on stderr when it is not interactive.
      expect(reachable.stderr).not.toContain("not read");
      expect((await F.sshAcceptedAll(nodes)).map((x, i) => x - sessions[i])).toEqual([1, 1]);

      // Unreachable: its sshd stopped (refused at once), or its link down (the connect hangs until
      // readTimeoutSeconds, and the socket still connecting must not outlive the read).
      for (const [fault, repair, why] of [
        ["sshd-stop", "sshd-start", REFUSED],
        ["cut", "reconnect", NO_ANSWER],
      ] as const) {
        await F.fault(N17, fault);
        try {
          const unreachable = await preview();
          expect(unreachable.status).toBe(0);
          expect(unreachable.stdout).toMatch(/\+ 10 to create/);
          expect(unreachable.stderr).toMatch(new RegExp(`warning: ${N17.name}: not read \\((?:${why})\\): this run compares with the recorded state only`));
          expect(unreachable.stderr).not.toMatch(new RegExp(`${N16.name}: not read`));
          // The unreachable node costs at most its read timeout over the reachable run (and some slack for a busy machine).
          expect(unreachable.seconds).toBeLessThan(reachable.seconds + READ_TIMEOUT + 15);
        } finally {
          await F.fault(N17, repair);
        }
      }
    } finally {
      s.dispose();
    }
  });
});

describe("what a node keeps safe, on a fleet node (containerd 1.6.20)", () => {
  const etc = () => etcOf(N16);
  const run = async (h: EngineStack, extra: Partial<ContainerdNodeArgs> = {}) => h.up(async () => void new ContainerdNode("safe", spec(N16, extra)));
  let h: EngineStack;
  beforeEach(async () => {
    await F.resetNodes([N16]);
    h = newStack();
  });
  afterEach(async () => {
    h.dispose();
    await F.resetNodes([N16]);
  });

  it("restores a node whose original config.toml disables CRI (Docker's containerd.io) without waiting for CRI", async () => {
    const original = 'version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n';
    fs.writeFileSync(N16.configToml, original);
    await F.nodeSh(N16, "systemctl restart containerd");
    expect((await F.criPlugins(N16))["io.containerd.grpc.v1.cri"]).not.toBe("ok");
    expect((await run(h)).error?.message).toBeUndefined();
    expect((await F.criPlugins(N16))["io.containerd.grpc.v1.cri"]).toBe("ok");
    const started = Date.now();
    const res = await h.destroy();
    expect(res.error?.message).toBeUndefined();
    expect(Date.now() - started).toBeLessThan(20_000); // not the 30 s health timeout
    expect(fs.readFileSync(N16.configToml, "utf8")).toBe(original);
    await F.nodeSh(N16, "ctr version >/dev/null");
  });

  it("checks health on the socket of the file being activated: a failed change that also moves grpcAddress rolls back healthy", async () => {
    expect((await run(h)).error?.message).toBeUndefined();
    const applied = fs.readFileSync(N16.configToml, "utf8");
    const res = await run(h, { grpcAddress: "/run/containerd/moved.sock", healthChecks: ["false"], healthTimeoutSeconds: 5 });
    expect(res.error?.message).toContain("rolled back to the previous config.toml and containerd is healthy again");
    expect(fs.readFileSync(N16.configToml, "utf8")).toBe(applied);
    expect((await F.criPlugins(N16))["io.containerd.grpc.v1.cri"]).toBe("ok");
  });

  it("rolls back to the last configuration confirmed healthy, not to a file an interrupted apply left unconfirmed", async () => {
    expect((await run(h, { maxConcurrentDownloads: 7 })).error?.message).toBeUndefined();
    const confirmed = fs.readFileSync(N16.configToml, "utf8");
    // An apply killed after its rename: its file is on disk, never confirmed healthy.
    fs.writeFileSync(N16.configToml, confirmed.replace("max_concurrent_downloads = 7", "max_concurrent_downloads = 8"));
    const res = await run(h, { maxConcurrentDownloads: 9, healthChecks: ["false"], healthTimeoutSeconds: 5 });
    expect(res.error?.message).toContain("healthy again");
    expect(fs.readFileSync(N16.configToml, "utf8")).toBe(confirmed);
  });

  it("asks the running daemon for its version, not the containerd binary first on PATH (a tarball upgrade in progress)", async () => {
    // The binary the node would run next says 2.1.9; the daemon running is 1.6.20.
    const fake = path.join(etc(), "next-containerd");
    fs.writeFileSync(fake, '#!/bin/sh\nif [ "$1" = --version ]; then echo "containerd github.com/containerd/containerd/v2 v2.1.9 0"; exit 0; fi\nexec containerd "$@"\n', { mode: 0o755 });
    const res = await run(h, { containerdPath: "/etc/containerd/next-containerd" });
    expect(res.error?.message).toBeUndefined();
    expect(await F.nodeFile(N16, HUB)).toContain(MIRROR);
  });

  it("bounds every wait: a restart command that hangs fails the apply within its timeout and leaves the old file", async () => {
    expect((await run(h)).error?.message).toBeUndefined();
    const applied = fs.readFileSync(N16.configToml, "utf8");
    const started = Date.now();
    const res = await run(h, { maxConcurrentDownloads: 11, restartCommand: "sleep 600", healthTimeoutSeconds: 4 });
    const took = Date.now() - started;
    expect(res.error?.message).toContain("restart command failed");
    // Two bounded restarts (the change, then the rollback) and their checks: well under a minute.
    expect(took).toBeLessThan(30_000);
    expect(fs.readFileSync(N16.configToml, "utf8")).toBe(applied);
  });

  it("keeps a symlinked hosts.toml a symlink, writes through to its target, and gives back the target on destroy", async () => {
    fs.mkdirSync(path.join(etc(), "shared"), { recursive: true });
    fs.mkdirSync(path.join(etc(), "certs.d/docker.io"), { recursive: true });
    fs.writeFileSync(path.join(etc(), "shared/hub.toml"), 'server = "https://registry-1.docker.io"\n');
    fs.symlinkSync("../../shared/hub.toml", path.join(etc(), "certs.d/docker.io/hosts.toml"));
    expect((await run(h)).error?.message).toBeUndefined();
    expect(fs.lstatSync(path.join(etc(), "certs.d/docker.io/hosts.toml")).isSymbolicLink()).toBe(true);
    expect(fs.readFileSync(path.join(etc(), "shared/hub.toml"), "utf8")).toContain(MIRROR);
    expect((await h.destroy()).error?.message).toBeUndefined();
    expect(fs.readlinkSync(path.join(etc(), "certs.d/docker.io/hosts.toml"))).toBe("../../shared/hub.toml");
    expect(fs.readFileSync(path.join(etc(), "shared/hub.toml"), "utf8")).toBe('server = "https://registry-1.docker.io"\n');
  });

  it("fails loudly, changing nothing, when the original cannot be kept (a full disk)", async () => {
    const dir = path.join(etc(), "certs.d/docker.io");
    fs.mkdirSync(path.join(dir, ".containerd-node"), { recursive: true });
    fs.writeFileSync(path.join(dir, "hosts.toml"), 'server = "https://registry-1.docker.io"\n');
    // In the node's own mount namespace: a 4 KB tmpfs, full, where the original would be kept.
    await F.nodeSh(N16, "mount -t tmpfs -o size=4k full /etc/containerd/certs.d/docker.io/.containerd-node && dd if=/dev/zero of=/etc/containerd/certs.d/docker.io/.containerd-node/fill bs=4k count=1 2>/dev/null || :");
    try {
      const res = await run(h);
      expect(res.error?.message).toContain("cannot keep the original /etc/containerd/certs.d/docker.io/hosts.toml");
      expect(await F.nodeFile(N16, HUB)).toBe('server = "https://registry-1.docker.io"\n');
    } finally {
      await F.nodeSh(N16, "umount /etc/containerd/certs.d/docker.io/.containerd-node");
    }
  });

  it("refuses plainly on a node without flock (busybox without the applet), changing nothing", async () => {
    const flock = (await F.nodeSh(N16, "command -v flock")).trim();
    expect(flock).toMatch(/^\//);
    await F.nodeSh(N16, `mount --bind /dev/null ${flock}`);
    try {
      const before = fs.readFileSync(N16.configToml, "utf8");
      const res = await run(h);
      expect(res.error?.message).toContain("flock is required on the node (util-linux's, or busybox's flock applet); nothing changed");
      expect(fs.readFileSync(N16.configToml, "utf8")).toBe(before);
      expect(await F.nodePathExists(N16, HUB)).toBe(false);
    } finally {
      await F.nodeSh(N16, `umount ${flock}`);
    }
  });

  it("refuses credentials in settings before any SSH session (not even the read)", async () => {
    const sessions = await F.sshAccepted(N16);
    const res = await run(h, { readNode: true, settings: { plugins: { "io.containerd.grpc.v1.cri": { registry: { auths: { "https://r.test": { password: "pw" } } } } } } });
    expect(res.error?.message).toContain("settings.plugins");
    expect(res.error?.message).toContain("registry.auths");
    expect(res.error?.message).not.toContain('"pw"');
    expect(res.stdout).not.toContain('"pw"');
    expect(res.steps.filter((s) => s.type === COMMAND_TYPE)).toEqual([]);
    expect(await F.sshAccepted(N16)).toBe(sessions);
  });
});

describe("skipFallback on real nodes", () => {
  it("renders a hosts.toml that 1.6 and 2.3 take: the probe and CRI pulls go through the mirror that is now the server", async () => {
    const [n23] = F.nodesByGeneration(fleet, ["2.3"]);
    await F.resetNodes([N16, n23]);
    const h = newStack();
    try {
      const res = await h.up(async () => {
        for (const n of [N16, n23]) {
          new ContainerdNode(n.name, {
            containerdVersion: n.containerdVersion,
            healthTimeoutSeconds: 30,
            registries: { "docker.io": { mirrors: [MIRROR], skipFallback: true } },
            // And the probe on both generations: ctr's pull through the new hosts.toml (2.3's via its transfer service).
            probeImages: { "docker.io": TINY },
            connection: connection(n),
            readNode: false,
          });
        }
      });
      expect(res.error?.message).toBeUndefined();
      for (const n of [N16, n23]) {
        const hub = (await F.nodeFile(n, HUB))!;
        expect(hub).toContain(`server = "${MIRROR}"`);
        expect(hub).not.toContain("registry-1.docker.io");
        await criRemoveImage(n.containerdSocket, TINY).catch(() => undefined);
        expect(await criPullImage(n.containerdSocket, TINY, { timeoutMs: 60_000 })).toMatch(/^sha256:/);
      }
      expect((await h.destroy()).error?.message).toBeUndefined();
    } finally {
      h.dispose();
    }
  });
});
