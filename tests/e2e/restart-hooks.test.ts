/**
 * beforeRestart and afterRestart through the real engine and command provider on the local fleet:
 * hooks that append "<before|after> <node> <host> <epoch ns>" to a file on this machine, beside each
 * node's restart log (the same clock). They run in order around each node's restart, wave by wave;
 * not when nothing restarts (a no-op, a hosts.toml change, a change of the hook alone); around the
 * repair of a drifted config.toml; and a failing one stops the rollout.
 */
import * as fs from "fs";
import * as path from "path";
import { ContainerdFleet, ContainerdFleetArgs, FleetNodeArgs } from "../../provider/src";
import { EngineStack, RunResult } from "../support/engine";
import * as F from "./fleet";
import type { FleetNode } from "./fleet";
import { CONFIG, HUB, MIRROR, MIRROR_B, connection, engineStack, fleet } from "./fixture";

jest.setTimeout(300_000);

const NODES = F.nodesByGeneration(fleet, [...new Set(fleet.nodes.map((n) => n.generation))].slice(0, 2));
const [FIRST, SECOND] = NODES;
const LOG = path.join(F.E2E_DIR, "restart-hooks.log");
const record = (what: "before" | "after") => `printf '%s %s %s %s\\n' ${what} "$CONTAINERD_NODE_NAME" "$CONTAINERD_NODE_HOST" "$(date +%s%N)" >> '${LOG}'`;

interface Spec {
  /** maxConcurrentDownloads: a new value is a config.toml change. */
  downloads: number;
  hubMirror?: string;
  /** Per-node hooks over the shared recording ones. */
  over?: (n: FleetNode) => Partial<FleetNodeArgs>;
}

// A spec pods could run on (sandbox image and both registries through the fleet's mirror), read by
// the program on every run, as a user's would be: the drift repair below needs the read.
function spec(s: Spec): ContainerdFleetArgs {
  return {
    systemdCgroup: false,
    sandboxImage: fleet.registry.podImages.sandbox,
    registries: { "docker.io": { mirrors: [s.hubMirror ?? MIRROR] }, "registry.k8s.io": { mirrors: [MIRROR] } },
    healthTimeoutSeconds: 30,
    maxConcurrentDownloads: s.downloads,
    beforeRestart: record("before"),
    afterRestart: record("after"),
    nodes: NODES.map((n) => ({ name: n.name, containerdVersion: n.containerdVersion, connection: connection(n), settings: F.podSettings(n), ...(s.over?.(n) ?? {}) })),
    rollout: { maxUnavailable: 1 },
    readNode: true,
  };
}
const program = (args: ContainerdFleetArgs) => async () => void new ContainerdFleet("fleet", args);

interface HookLine {
  what: string;
  node: string;
  host: string;
  /** Milliseconds since the epoch, to the microsecond. */
  ms: number;
}
function hookLines(): HookLine[] {
  if (!fs.existsSync(LOG)) return [];
  return fs
    .readFileSync(LOG, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => {
      const [what, node, host, ns] = l.split(" ");
      return { what, node, host, ms: Number(BigInt(ns) / 1000n) / 1000 };
    });
}
/** containerd's successful starts on a node after its first `skip` restart log lines, in ms since the epoch. */
const startsSince = (n: FleetNode, skip: number) =>
  F.restartLines(n)
    .slice(skip)
    .filter((l) => / start ok pid=\d+$/.test(l))
    .map((l) => Date.parse(l.split(" ")[0]));
const said = (lines: HookLine[]) => lines.map((l) => `${l.what} ${l.node}`);
const config = (n: FleetNode) => F.nodeFile(n, CONFIG);
const opOf = (r: RunResult, name: string) => r.steps.filter((s) => s.name === name).map((s) => s.op);

describe("restart hooks: beforeRestart and afterRestart around each node's restart", () => {
  let h: EngineStack;
  let downloads = 3;
  beforeAll(async () => {
    await F.resetNodes(NODES);
    fs.rmSync(LOG, { force: true });
    h = engineStack("restart-hooks");
  }, 180_000);
  afterAll(async () => {
    h?.dispose();
    fs.rmSync(LOG, { force: true });
    await F.resetNodes(NODES);
  }, 180_000);

  it("runs them in order: before(node 1) < node 1's restart < after(node 1) < before(node 2) < node 2's restart < after(node 2)", async () => {
    const restarts = NODES.map(F.restarts);
    const res = await h.up(program(spec({ downloads })));
    expect(res.error?.message).toBeUndefined();
    const lines = hookLines();
    expect(lines.map((l) => `${l.what} ${l.node} ${l.host}`)).toEqual([
      `before ${FIRST.name} ${FIRST.host}`,
      `after ${FIRST.name} ${FIRST.host}`,
      `before ${SECOND.name} ${SECOND.host}`,
      `after ${SECOND.name} ${SECOND.host}`,
    ]);
    const [start1, start2] = NODES.map((n, i) => startsSince(n, restarts[i]));
    expect([start1.length, start2.length]).toEqual([1, 1]);
    const t = [lines[0].ms, start1[0], lines[1].ms, lines[2].ms, start2[0], lines[3].ms];
    expect(t).toEqual([...t].sort((a, b) => a - b));
    expect(new Set(t).size).toBe(t.length);
    for (const n of NODES) expect([...opOf(res, `${n.name}:beforeRestart`), ...opOf(res, `${n.name}:afterRestart`)]).toEqual(["create", "create"]);
  });

  it("runs none when nothing restarts: the same program, a mirror change (hosts.toml only), a change of the hook alone", async () => {
    const restarts = NODES.map(F.restarts);
    const again = await h.up(program(spec({ downloads })));
    expect(again.error?.message).toBeUndefined();
    expect(again.steps.filter((s) => s.op !== "same")).toEqual([]);

    const mirror = await h.up(program(spec({ downloads, hubMirror: MIRROR_B })));
    expect(mirror.error?.message).toBeUndefined();
    expect(mirror.steps.filter((s) => s.op !== "same").map((s) => `${s.name} ${s.op}`).sort()).toEqual(NODES.map((n) => `${n.name}:${HUB} update`).sort());

    // The new command is recorded (an update that runs nothing) and used at the next restart.
    const edited = await h.up(program(spec({ downloads, hubMirror: MIRROR_B, over: () => ({ afterRestart: `${record("after")} # edited` }) })));
    expect(edited.error?.message).toBeUndefined();
    expect(edited.steps.filter((s) => s.op !== "same").map((s) => `${s.name} ${s.op}`).sort()).toEqual(NODES.map((n) => `${n.name}:afterRestart update`).sort());

    expect(hookLines()).toHaveLength(4);
    expect(NODES.map(F.restarts)).toEqual(restarts);
  });

  it("runs a node's hooks around the repair of its drifted config.toml (a restart), and not on the next run", async () => {
    await F.nodeSh(FIRST, `echo '# edited by hand' >> ${CONFIG}`);
    const restarts = NODES.map(F.restarts);
    const seen = hookLines().length;
    const res = await h.up(program(spec({ downloads, hubMirror: MIRROR_B })));
    expect(res.error?.message).toBeUndefined();
    expect(opOf(res, `${FIRST.name}:${CONFIG}`)).toEqual(["update"]);
    expect(said(hookLines().slice(seen))).toEqual([`before ${FIRST.name}`, `after ${FIRST.name}`]);
    expect(NODES.map(F.restarts)).toEqual([restarts[0] + 1, restarts[1]]);

    const next = await h.up(program(spec({ downloads, hubMirror: MIRROR_B })));
    expect(next.error?.message).toBeUndefined();
    expect(next.steps.filter((s) => s.op !== "same")).toEqual([]);

    // Not read, the node has no drift token: its config.toml's command updates once (nothing to do on
    // the node), and that is no repair: the recorded token stays, no hook runs. Read again, the same.
    const unread = await h.up(program({ ...spec({ downloads, hubMirror: MIRROR_B }), readNode: false }));
    expect(unread.error?.message).toBeUndefined();
    expect(unread.steps.filter((s) => s.op !== "same").map((s) => `${s.name} ${s.op}`)).toEqual([`${FIRST.name}:${CONFIG} update`]);
    const read = await h.up(program(spec({ downloads, hubMirror: MIRROR_B })));
    expect(read.error?.message).toBeUndefined();
    expect(read.steps.filter((s) => s.op !== "same")).toEqual([]);
    expect(hookLines()).toHaveLength(seen + 2);
    expect(NODES.map(F.restarts)).toEqual([restarts[0] + 1, restarts[1]]);
  });

  it("a failing beforeRestart on the first wave: its config.toml unchanged and not restarted, the next node untouched, up fails naming the hook; the next up converges", async () => {
    downloads++;
    const files = await Promise.all(NODES.map(config));
    const restarts = NODES.map(F.restarts);
    const seen = hookLines().length;
    const failing = (n: FleetNode) => (n === FIRST ? { beforeRestart: "echo 'cannot drain: PodDisruptionBudget' >&2; exit 3" } : {});
    // The preview names every node whose hooks will run: they are replaced.
    const preview = await h.preview(program(spec({ downloads, hubMirror: MIRROR_B, over: failing })));
    expect(preview.error?.message).toBeUndefined();
    for (const n of NODES) for (const hook of ["beforeRestart", "afterRestart"]) expect(opOf(preview, `${n.name}:${hook}`)).toContain("replace");
    const res = await h.up(program(spec({ downloads, hubMirror: MIRROR_B, over: failing })));
    expect(res.ok).toBe(false);
    expect(res.error?.message).toContain(`${FIRST.name}:beforeRestart: `);
    expect(res.error?.message).toContain("cannot drain: PodDisruptionBudget");
    expect(await Promise.all(NODES.map(config))).toEqual(files);
    expect(NODES.map(F.restarts)).toEqual(restarts);
    expect(hookLines()).toHaveLength(seen);
    for (const n of NODES) expect(opOf(res, `${n.name}:${CONFIG}`)).toEqual([]);

    const fixed = await h.up(program(spec({ downloads, hubMirror: MIRROR_B })));
    expect(fixed.error?.message).toBeUndefined();
    expect(said(hookLines().slice(seen))).toEqual([`before ${FIRST.name}`, `after ${FIRST.name}`, `before ${SECOND.name}`, `after ${SECOND.name}`]);
    expect(NODES.map(F.restarts)).toEqual(restarts.map((r) => r + 1));
  });

  it("a failing afterRestart: that node restarted, the next wave does not start; the next up runs it and then the next wave", async () => {
    downloads++;
    const files = await Promise.all(NODES.map(config));
    const restarts = NODES.map(F.restarts);
    const seen = hookLines().length;
    const res = await h.up(program(spec({ downloads, hubMirror: MIRROR_B, over: (n) => (n === FIRST ? { afterRestart: "exit 4" } : {}) })));
    expect(res.ok).toBe(false);
    expect(res.error?.message).toContain(`${FIRST.name}:afterRestart: `);
    expect(said(hookLines().slice(seen))).toEqual([`before ${FIRST.name}`]);
    expect(NODES.map(F.restarts)).toEqual([restarts[0] + 1, restarts[1]]);
    expect(await config(FIRST)).not.toBe(files[0]);
    expect(await config(SECOND)).toBe(files[1]);

    const fixed = await h.up(program(spec({ downloads, hubMirror: MIRROR_B })));
    expect(fixed.error?.message).toBeUndefined();
    // The first node's apply is done: only its afterRestart runs, and restarts nothing there.
    expect(said(hookLines().slice(seen))).toEqual([`before ${FIRST.name}`, `after ${FIRST.name}`, `before ${SECOND.name}`, `after ${SECOND.name}`]);
    expect(NODES.map(F.restarts)).toEqual([restarts[0] + 1, restarts[1] + 1]);
  });
});
