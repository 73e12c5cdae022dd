/**
 * ContainerdFleet's rollout rules on the local fleet (containerd 1.6.20, 1.7.24, 2.1.9), through the
 * real Pulumi engine (tests/support/engine.ts: the CLI and the command provider): waves gated on
 * health, a failing node stopping later waves (with and without --continue-on-error), hosts.toml
 * changes going out at once, what a preview names, and node removal.
 *
 * The engine's event timestamps are whole seconds, so the order of waves is proven by what each node
 * recorded: the time its new file arrived (the file's mtime: the node script writes the content to a
 * temporary file and renames it into place), the restart log's "start ok" line, the time the apply
 * was confirmed (the script writes its record, `<file>.sum`, only after the health check or probe
 * passed), and the node's audit trail of what each apply did. The nodes share this machine's clock.
 */
import * as fs from "fs";
import { ContainerdFleet, ContainerdFleetArgs, FleetNodeArgs } from "../../provider/src";
import { EngineStack, RunResult, StepRecord } from "../support/engine";
import * as F from "./fleet";
import type { FleetNode } from "./fleet";
import { CONFIG, HUB, MIRROR, MIRROR_B, REC, TINY, auditLines, connection, engineStack, fleet, mark } from "./fixture";
import type { Mark } from "./fixture";

jest.setTimeout(300_000);

const NODES = F.nodesByGeneration(fleet, ["1.6", "1.7", "2.1"]);
/** The script's record of each file's last confirmed apply (node-script.ts set_owner). */
const CONFIG_SUM = `${REC}/config.toml.sum`;
const HUB_SUM = "/etc/containerd/certs.d/docker.io/.containerd-node/hosts.toml.sum";

const node = (n: FleetNode, extra: Partial<FleetNodeArgs> = {}): FleetNodeArgs => ({
  name: n.name,
  containerdVersion: n.containerdVersion,
  connection: connection(n),
  ...extra,
});

function spec(over: Partial<ContainerdFleetArgs> = {}): ContainerdFleetArgs {
  return {
    systemdCgroup: true,
    sandboxImage: "registry.k8s.io/pause:3.9",
    registries: { "docker.io": { mirrors: [MIRROR] } },
    healthTimeoutSeconds: 20,
    nodes: NODES.map((n) => node(n)),
    rollout: { maxUnavailable: 1 },
    // These tests are about the rollout, not the program's read of the nodes (one SSH session per
    // node and run, on by default under the real engine): every session counted below is a command's.
    readNode: false,
    ...over,
  };
}

const fleetProgram = (args: ContainerdFleetArgs) => async () => void new ContainerdFleet("fleet", args);
const configStep = (steps: StepRecord[], n: FleetNode) => steps.find((s) => s.name === `${n.name}:${CONFIG}`);
const stepsOf = (r: RunResult, n: FleetNode) => r.steps.filter((s) => s.name.startsWith(`${n.name}:`));

// ---- what the nodes recorded ---------------------------------------------------------------------

/** What each node recorded since `before`: its new restart log lines, audit lines and SSH connections. */
interface Since {
  restarts: string[];
  audit: string[];
  ssh: number;
}

async function since(nodes: FleetNode[], before: Mark[]): Promise<Since[]> {
  return Promise.all(
    nodes.map(async (n, i) => ({
      restarts: F.restartLines(n).slice(before[i].restarts),
      audit: (await auditLines(n)).slice(before[i].audit),
      ssh: (await F.sshAccepted(n)) - before[i].ssh,
    })),
  );
}

/** The time (ms since the epoch) of a restart log line: `<ISO time with ms> start ok pid=N`. */
const lineTime = (l: string) => Date.parse(l.split(" ")[0]);

/** containerd's successful starts, by the restart log: their times, in order. */
const starts = (s: Since) => s.restarts.filter((l) => / start ok pid=\d+$/.test(l)).map(lineTime);

/** Modification times of files on a node, in ms since the epoch (to the microsecond); undefined where missing. */
async function mtimes(n: FleetNode, ...paths: string[]): Promise<(number | undefined)[]> {
  const out = await F.nodeSh(n, paths.map((p) => `stat -c %.9Y '${p}' 2>/dev/null || echo -`).join("; "));
  return out
    .trim()
    .split("\n")
    .map((v) => (v === "-" ? undefined : Number(v) * 1000));
}

/** When a file's new content arrived on the node (apply started) and when that apply was confirmed. */
async function applyTimes(n: FleetNode, file: string, sum: string): Promise<{ arrived: number; confirmed: number }> {
  const [arrived, confirmed] = await mtimes(n, file, sum);
  return { arrived: arrived!, confirmed: confirmed! };
}

/** The audit lines of one kind of event on one file: `apply path=<file> ... result=<result>`. */
const audited = (s: Since, event: string, file: string, result: string) =>
  s.audit.filter((l) => new RegExp(` ${event} path=${file.replace(/[.]/g, "\\.")} .* result=${result} `).test(l));

describe("ContainerdFleet rollout", () => {
  let h: EngineStack;
  beforeAll(async () => {
    await F.resetNodes(NODES);
    h = engineStack("fleet-rollout");
  });
  afterAll(() => h?.dispose());

  it("restarts one wave at a time, canaries included: each node's config.toml starts after the previous wave's finished", async () => {
    // canary: 2 with maxUnavailable: 1 is two canary waves of one node each, never both at once.
    const before = await mark(NODES);
    const res = await h.up(fleetProgram(spec({ rollout: { maxUnavailable: 1, canary: 2 } })));
    expect(res.error?.message).toBeUndefined();
    expect(NODES.map((n) => configStep(res.steps, n)?.op)).toEqual(["create", "create", "create"]);
    const seen = await since(NODES, before);
    // One restart per node, and its audit line: applied, restarted, healthy.
    expect(seen.map((s) => s.restarts.length)).toEqual([1, 1, 1]);
    for (const s of seen) expect(audited(s, "apply", CONFIG, "healthy")).toEqual([expect.stringContaining(" restarted=true ")]);
    const t = await Promise.all(NODES.map((n) => applyTimes(n, CONFIG, CONFIG_SUM)));
    for (const [i, s] of seen.entries()) {
      // On each node: the file arrived, containerd started on it, the apply was confirmed.
      expect(starts(s)[0]).toBeGreaterThan(t[i].arrived);
      expect(t[i].confirmed).toBeGreaterThan(starts(s)[0]);
    }
    for (const i of [1, 2]) {
      // The next wave's file arrived only after the previous wave was confirmed healthy.
      expect(t[i].arrived).toBeGreaterThan(t[i - 1].confirmed);
      expect(starts(seen[i])[0]).toBeGreaterThan(t[i - 1].confirmed);
    }
    expect(NODES.map(F.restarts)).toEqual([1, 1, 1]);
  });

  it("with registryChanges all-at-once, sends a hosts.toml-only change to every node at once, without restarts", async () => {
    // The first node's apply is held back by its own lock (the node script waits for it), taken here
    // for a few seconds: with waves the other nodes would wait for it; all at once, they do not.
    const [first, ...rest] = NODES;
    const LOCK = "/etc/containerd/.containerd-node.lock";
    const held = F.nodeExec(first, "flock", LOCK, "/bin/sh", "-c", "date +%s.%N > /run/lock-held; sleep 6; date +%s.%N > /run/lock-released");
    await F.waitFor("the first node's lock to be held", async () => (await F.nodeExec(first, "test", "-s", "/run/lock-held")).status === 0, 10_000, 50);
    const before = await mark(NODES);
    const res = await h.up(fleetProgram(spec({ registries: { "docker.io": { mirrors: [MIRROR_B] } }, rollout: { maxUnavailable: 1, registryChanges: "all-at-once" } })));
    expect((await held).status).toBe(0);
    expect(res.ok).toBe(true);
    const changed = res.steps.filter((s) => s.op !== "same");
    expect(changed.map((s) => `${s.op} ${s.name}`).sort()).toEqual(NODES.map((n) => `update ${n.name}:${HUB}`).sort());
    const seen = await since(NODES, before);
    for (const s of seen) {
      expect(audited(s, "apply", HUB, "applied")).toHaveLength(1);
      expect(s.restarts).toEqual([]);
    }
    const released = Number((await F.nodeSh(first, "cat /run/lock-released; rm -f /run/lock-held /run/lock-released")).trim()) * 1000;
    const t = await Promise.all(NODES.map((n) => applyTimes(n, HUB, HUB_SUM)));
    // Every other node was confirmed while the first was still waiting for its lock, which it took after.
    for (const i of rest.keys()) expect(t[i + 1].confirmed).toBeLessThan(released);
    expect(t[0].confirmed).toBeGreaterThan(released);
    expect(NODES.map(F.restarts)).toEqual([1, 1, 1]);
  });

  it("previews, per node, the files that will change and which nodes will restart", async () => {
    const next = spec({ registries: { "docker.io": { mirrors: [MIRROR_B] } }, maxConcurrentDownloads: 4 });
    const before = await F.sshAcceptedAll(NODES);
    const res = await h.preview(fleetProgram(next));
    expect(res.ok).toBe(true);
    const changes = res.steps.filter((s) => s.op !== "same").map((s) => `${s.op} ${s.name} [${s.diffKeys.join(",")}]`).sort();
    expect(changes).toEqual(NODES.map((n) => `update ${n.name}:${CONFIG} [stdin]`).sort());
    // As `pulumi preview --diff` shows it: each node's config.toml, with the new line in its diff.
    for (const n of NODES) {
      const block = new RegExp(`~ command:remote:Command: \\(update\\)\\n(?:.*\\n)*?\\s*\\[urn=[^\\]]*::${n.name}:${CONFIG.replace(/[.]/g, "\\.")}\\]\\n(?:.*\\n)*?\\s*~ stdin: `);
      expect(res.stdout).toMatch(block);
    }
    expect(res.stdout).toMatch(/\+ max_concurrent_downloads = 4/);
    expect(res.stdout).toMatch(/~ 3 to update/);
    expect(await F.sshAcceptedAll(NODES)).toEqual(before);
  });

  it("stops later waves when a node fails; that node rolls itself back", async () => {
    // A change that breaks the CRI plugin of the second node only (a default runtime it does not have).
    const broken = NODES[1];
    const before = NODES.map((n) => fs.readFileSync(n.configToml, "utf8"));
    const marks = await mark(NODES);
    const res = await h.up(
      fleetProgram(
        spec({
          registries: { "docker.io": { mirrors: [MIRROR_B] } },
          maxConcurrentDownloads: 4,
          nodes: NODES.map((n) =>
            n === broken ? node(n, { settings: { plugins: { "io.containerd.grpc.v1.cri": { containerd: { default_runtime_name: "missing" } } } } }) : node(n),
          ),
        }),
      ),
    );
    expect(res.ok).toBe(false);
    expect(res.error?.message).toContain(`${broken.name}: containerd was not healthy with the new ${CONFIG}`);
    expect(res.error?.message).toContain("rolled back to the previous config.toml and containerd is healthy again");
    // The engine: wave 1's config.toml updated, wave 2's failed, wave 3's never registered (it waits
    // on wave 2's, and the engine stopped at the failure).
    expect(NODES.map((n) => res.steps.filter((s) => s.name === `${n.name}:${CONFIG}`).map((s) => `${s.op} ${s.ok}`))).toEqual([["update true"], ["update false"], []]);
    const after = NODES.map((n) => fs.readFileSync(n.configToml, "utf8"));
    expect(after[0]).not.toBe(before[0]); // wave 1 went out
    expect(after[0]).toContain("max_concurrent_downloads = 4");
    expect(after[1]).toBe(before[1]); // wave 2 failed and rolled back
    expect(after[2]).toBe(before[2]); // wave 3 never started
    const seen = await since(NODES, marks);
    expect(seen.map((s) => s.restarts.length)).toEqual([1, 2, 0]);
    expect(audited(seen[0], "apply", CONFIG, "healthy")).toHaveLength(1);
    expect(audited(seen[1], "rollback", CONFIG, "healthy-again")).toHaveLength(1);
    // Wave 2 began only once wave 1 was confirmed.
    const t0 = await applyTimes(NODES[0], CONFIG, CONFIG_SUM);
    expect(starts(seen[1])[0]).toBeGreaterThan(t0.confirmed);
    // Nothing reached wave 3's node: no SSH connection, no audit line.
    expect([seen[2].ssh, seen[2].audit.length]).toEqual([0, 0]);
    expect((await F.criPlugins(broken))["io.containerd.grpc.v1.cri"]).toBe("ok");
  });

  it("converges once the bad override is gone, restarting only the nodes still behind", async () => {
    const marks = await mark(NODES);
    const res = await h.up(fleetProgram(spec({ registries: { "docker.io": { mirrors: [MIRROR_B] } }, maxConcurrentDownloads: 4 })));
    expect(res.error?.message).toBeUndefined();
    const seen = await since(NODES, marks);
    expect(seen.map((s) => s.restarts.length)).toEqual([0, 1, 1]);
    // Wave 1 had nothing to do: not contacted at all.
    expect(seen[0].ssh).toBe(0);
    for (const n of NODES) expect(fs.readFileSync(n.configToml, "utf8")).toContain("max_concurrent_downloads = 4");
    const [t1, t2] = await Promise.all([applyTimes(NODES[1], CONFIG, CONFIG_SUM), applyTimes(NODES[2], CONFIG, CONFIG_SUM)]);
    expect(t2.arrived).toBeGreaterThan(t1.confirmed);
  });

  it("under --continue-on-error too, a canary that fails its health check keeps every later wave from starting", async () => {
    // A config.toml change for every node plus a registry change (in waves, the default); the canary's
    // config.toml names a default runtime it does not have, so its CRI plugin fails after the restart.
    const canary = NODES[0];
    const files = await Promise.all(NODES.map(async (n) => [fs.readFileSync(n.configToml, "utf8"), await F.nodeFile(n, HUB)]));
    const marks = await mark(NODES);
    const res = await h.up(
      fleetProgram(
        spec({
          registries: { "docker.io": { mirrors: [MIRROR] } },
          maxConcurrentDownloads: 5,
          rollout: { maxUnavailable: 1, canary: 1 },
          nodes: NODES.map((n) =>
            n === canary ? node(n, { settings: { plugins: { "io.containerd.grpc.v1.cri": { containerd: { default_runtime_name: "missing" } } } } }) : node(n),
          ),
        }),
      ),
      { continueOnError: true },
    );
    expect(res.ok).toBe(false);
    expect(res.error?.message).toContain(`${canary.name}: containerd was not healthy with the new ${CONFIG}`);
    expect(res.error?.message).toContain("rolled back to the previous config.toml and containerd is healthy again");
    // What the engine did: the canary's hosts.toml (its own wave) went out and its config.toml
    // failed. No resource of a later wave's node reached it: the program registers a resource only
    // once the resources it depends on are done, and those files all wait on the canary's. So it
    // started no step for them, reported neither a failure nor a skip for them, and (the run having
    // failed) deleted none of them: they stay in the state as they were.
    expect(stepsOf(res, canary).filter((s) => s.op !== "same").map((s) => `${s.op} ${s.name} ${s.ok}`).sort()).toEqual(
      [`update ${canary.name}:${CONFIG} false`, `update ${canary.name}:${HUB} true`].sort(),
    );
    for (const n of NODES.slice(1)) expect(stepsOf(res, n).map((s) => `${s.op} ${s.name} ${s.ok}`)).toEqual([`same ${n.name}:host true`]);
    const failed = res.diagnostics.filter((d) => d.severity === "error");
    expect(failed.map((d) => (d.urn ? d.urn.slice(d.urn.lastIndexOf("::") + 2) : "-"))).toEqual([`${canary.name}:${CONFIG}`, "-"]);
    expect(failed[1].message).toBe("update failed");
    expect(res.stdout).toMatch(/~ 1 updated\n\s*8 unchanged\n.*1 errored/);
    const state = (await h.state()).map((r) => r.urn.slice(r.urn.lastIndexOf("::") + 2));
    for (const n of NODES.slice(1)) expect(state).toEqual(expect.arrayContaining([`${n.name}:host`, `${n.name}:${CONFIG}`, `${n.name}:${HUB}`]));
    // What the nodes did: the canary restarted twice (the new file, then the rollback), is healthy on
    // its old config.toml, and has the new hosts.toml; the later nodes saw no connection at all.
    const seen = await since(NODES, marks);
    expect(seen.map((s) => s.restarts.length)).toEqual([2, 0, 0]);
    expect(audited(seen[0], "rollback", CONFIG, "healthy-again")).toHaveLength(1);
    expect(audited(seen[0], "apply", HUB, "applied")).toHaveLength(1);
    expect(fs.readFileSync(canary.configToml, "utf8")).toBe(files[0][0]);
    expect(await F.nodeFile(canary, HUB)).toContain(MIRROR);
    expect((await F.criPlugins(canary))["io.containerd.grpc.v1.cri"]).toBe("ok");
    for (const [i, n] of NODES.entries()) {
      if (i === 0) continue;
      expect([seen[i].ssh, seen[i].audit.length]).toEqual([0, 0]);
      expect(fs.readFileSync(n.configToml, "utf8")).toBe(files[i][0]);
      expect(await F.nodeFile(n, HUB)).toBe(files[i][1]);
    }
    // Back to the spec of the tests before: converges (the canary's hosts.toml back to MIRROR_B).
    const back = await h.up(fleetProgram(spec({ registries: { "docker.io": { mirrors: [MIRROR_B] } }, maxConcurrentDownloads: 4 })));
    expect(back.error?.message).toBeUndefined();
    expect(back.steps.filter((s) => s.op !== "same").map((s) => `${s.op} ${s.name}`)).toEqual([`update ${canary.name}:${HUB}`]);
  });

  it("by default sends a registry change in waves, each node's probe pull through its new hosts.toml passing first", async () => {
    const marks = await mark(NODES);
    const mirrorLog = fleet.registry.logs[0];
    const offset = F.logSize(mirrorLog);
    const res = await h.up(fleetProgram(spec({ maxConcurrentDownloads: 4, rollout: { maxUnavailable: 1, probeImages: { "docker.io": TINY } } })));
    expect(res.error?.message).toBeUndefined();
    expect(res.steps.filter((s) => s.op !== "same").map((s) => `${s.op} ${s.name}`).sort()).toEqual(NODES.map((n) => `update ${n.name}:${HUB}`).sort());
    const seen = await since(NODES, marks);
    for (const [i, n] of NODES.entries()) {
      expect(await F.nodeFile(n, HUB)).toContain(MIRROR);
      // The probe reached the new mirror from that node, and the apply was confirmed after it.
      expect(F.mirrorRequests(mirrorLog, offset, n).some((l) => l.includes("/v2/library/tiny/manifests/1.0"))).toBe(true);
      expect(audited(seen[i], "apply", HUB, "applied")).toHaveLength(1);
    }
    // Each wave's new file arrived after the previous wave's probe passed (its apply confirmed).
    const t = await Promise.all(NODES.map((n) => applyTimes(n, HUB, HUB_SUM)));
    expect(t[1].arrived).toBeGreaterThan(t[0].confirmed);
    expect(t[2].arrived).toBeGreaterThan(t[1].confirmed);
    expect(seen.map((s) => s.restarts.length)).toEqual([0, 0, 0]);
  });

  it("stops a registry change whose new mirror breaks pulls at the canary: its file is put back, later waves never start", async () => {
    const dead = `http://${new URL(MIRROR).hostname}:5999`; // nothing listens there: connection refused
    const before = await Promise.all(NODES.map((n) => F.nodeFile(n, HUB)));
    const marks = await mark(NODES);
    const res = await h.up(
      fleetProgram(spec({ registries: { "docker.io": { mirrors: [dead] } }, maxConcurrentDownloads: 4, rollout: { maxUnavailable: 1, canary: 1, probeImages: { "docker.io": TINY } } })),
    );
    expect(res.ok).toBe(false);
    const canary = res.steps.find((s) => s.name === `${NODES[0].name}:${HUB}`)!;
    expect(canary.ok).toBe(false);
    expect(canary.error).toContain(`the probe through the new ${HUB} failed`);
    expect(canary.error).toContain("the previous file is back");
    for (const [i, n] of NODES.entries()) expect(await F.nodeFile(n, HUB)).toBe(before[i]);
    const seen = await since(NODES, marks);
    expect(audited(seen[0], "probe", HUB, "previous-file-back")).toHaveLength(1);
    // The later waves' files never ran: the engine registered no step for them (they wait on the
    // canary's), and their nodes saw no connection.
    for (const [i, n] of NODES.entries()) {
      if (i === 0) continue;
      expect(res.steps.find((s) => s.name === `${n.name}:${HUB}`)).toBeUndefined();
      expect([seen[i].ssh, seen[i].audit.length]).toEqual([0, 0]);
    }
    expect(seen.map((s) => s.restarts.length)).toEqual([0, 0, 0]);
    // Back to the working mirror: converges.
    expect((await h.up(fleetProgram(spec({ maxConcurrentDownloads: 4, rollout: { maxUnavailable: 1, probeImages: { "docker.io": TINY } } })))).error?.message).toBeUndefined();
  });

  it("restores a node that leaves the fleet", async () => {
    const gone = NODES[2];
    const res = await h.up(fleetProgram(spec({ registries: { "docker.io": { mirrors: [MIRROR_B] } }, maxConcurrentDownloads: 4, nodes: NODES.slice(0, 2).map((n) => node(n)) })));
    expect(res.error?.message).toBeUndefined();
    expect(res.steps.filter((s) => s.op === "delete" && s.type === "command:remote:Command").map((s) => s.name).sort()).toEqual([`${gone.name}:${CONFIG}`, `${gone.name}:${HUB}`, `${gone.name}:host`].sort());
    expect(fs.readFileSync(gone.configToml, "utf8")).not.toContain("containerd-node");
    expect(await F.nodePathExists(gone, HUB)).toBe(false);
    // Its host resource went last and took the node script with it.
    expect(await F.nodePathExists(gone, "/etc/containerd/.containerd-node/containerd-node.sh")).toBe(false);
    expect((await F.criPlugins(gone))["io.containerd.grpc.v1.cri"]).toBe("ok");
    expect((await h.destroy()).ok).toBe(true);
  });

  it("lets go of a dead node (sshd stopped) with forget: no step contacts it, and removing it then runs nothing on it", async () => {
    const dead = NODES[1];
    const base = () => spec({ registries: { "docker.io": { mirrors: [MIRROR] } } });
    expect((await h.up(fleetProgram(base()))).error?.message).toBeUndefined();
    const files = fs.readFileSync(dead.configToml, "utf8");
    await F.fault(dead, "sshd-stop");
    try {
      // Without forget, removing the dead node means deletes that must reach it.
      const without = await h.preview(fleetProgram({ ...base(), nodes: NODES.filter((n) => n !== dead).map((n) => node(n)) }));
      expect(without.steps.filter((st) => st.op === "delete" && st.name.startsWith(`${dead.name}:`)).length).toBeGreaterThan(0);
      const forgot = await h.up(fleetProgram({ ...base(), nodes: NODES.map((n) => node(n, n === dead ? { forget: true } : {})) }));
      expect(forgot.error?.message).toBeUndefined();
      expect(forgot.steps.filter((st) => st.name.startsWith(`${dead.name}:`)).every((st) => st.op === "same")).toBe(true);
      const removed = await h.up(fleetProgram({ ...base(), nodes: NODES.filter((n) => n !== dead).map((n) => node(n)) }));
      expect(removed.error?.message).toBeUndefined();
      // Its host resource and two files were dropped, each without running its delete (a dial
      // to the stopped sshd would have failed the up).
      const drops = removed.steps.filter((st) => st.op === "delete" && st.name.startsWith(`${dead.name}:`));
      expect(drops.map((st) => st.name).sort()).toEqual([`${dead.name}:${CONFIG}`, `${dead.name}:${HUB}`, `${dead.name}:host`].sort());
      expect(drops.every((st) => st.ok)).toBe(true);
      expect((await h.state()).some((r) => r.urn.slice(r.urn.lastIndexOf("::") + 2).startsWith(`${dead.name}:`))).toBe(false);
      // The node was left as it was.
      expect(fs.readFileSync(dead.configToml, "utf8")).toBe(files);
    } finally {
      await F.fault(dead, "sshd-start");
    }
    expect((await h.destroy()).ok).toBe(true);
  });
});
