/**
 * A node's life on the local fleet, through the harness: it moves to another machine, its node
 * script changes, its outputs say what the latest `up` did (containerd 1.6.20 and 1.7.24), and what
 * the node script keeps safe holds on a real node: a restore without CRI, health on the activated
 * file's socket, rollback to the last confirmed file, the running daemon's version, bounded waits,
 * symlinks, a full disk, a node without flock, and no credentials in settings.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ContainerdFleet, ContainerdNode, ContainerdNodeArgs } from "../../provider/src";
import { criPullImage, criRemoveImage } from "../support/cri";
import { Harness, ResourceState } from "../harness/harness";
import * as F from "./fleet";
import type { FleetNode } from "./fleet";

jest.setTimeout(300_000);

const fleet = F.loadFleet();
const [N16, N17] = F.nodesByGeneration(fleet, ["1.6", "1.7"]);
const [MIRROR, MIRROR_B] = fleet.registry.mirrors;
const CONFIG = "/etc/containerd/config.toml";
const HUB = "/etc/containerd/certs.d/docker.io/hosts.toml";
const SCRIPT = "/etc/containerd/.containerd-node/containerd-node.sh";
const TINY = "docker.io/library/tiny:1.0";

const connection = (n: FleetNode) => ({ host: n.host, port: n.port, user: n.user, privateKey: n.privateKey, hostKey: n.hostKey, dialErrorLimit: 1 });

function spec(on: FleetNode, extra: Partial<ContainerdNodeArgs> = {}): ContainerdNodeArgs {
  return {
    // 1.6 renders a version 2 config.toml that 1.6 and 1.7 both take.
    containerdVersion: "1.6",
    systemdCgroup: true,
    healthTimeoutSeconds: 30,
    registries: { "docker.io": { mirrors: [MIRROR] } },
    connection: connection(on),
    ...extra,
  };
}

const newHarness = () => new Harness({ stateFile: path.join(fs.mkdtempSync(path.join(os.tmpdir(), "lifecycle-")), "state.json"), dialRetryDelayMs: 100 });

describe("a node whose address moves to another machine", () => {
  let h: Harness;
  let originals: { n16: string; n17: string };
  beforeAll(async () => {
    await F.resetNodes([N16, N17]);
    originals = { n16: fs.readFileSync(N16.configToml, "utf8"), n17: fs.readFileSync(N17.configToml, "utf8") };
    h = newHarness();
  });
  afterAll(async () => {
    await h?.destroy();
    h?.dispose();
  });

  it("shows the move in the preview, restores the machine it leaves before applying on the new one", async () => {
    const first = await h.up(() => void new ContainerdNode("mover", spec(N16)));
    expect(first.error?.message).toBeUndefined();
    expect(await F.nodeFile(N16, HUB)).toContain(MIRROR);
    const before = { n16: F.restarts(N16), n17: F.restarts(N17) };

    // Preview: the host resource is replaced (its trigger is the address), delete first; the
    // files are updates (their connection changed); nothing runs.
    const moved = () => void new ContainerdNode("mover", spec(N17));
    const preview = await h.preview(moved);
    expect(preview.error?.message).toBeUndefined();
    const hostSteps = preview.steps.filter((s) => s.name === "mover:host");
    expect(hostSteps.map((s) => s.op).sort()).toEqual(["delete", "replace"]);
    const replace = hostSteps.find((s) => s.op === "replace")!;
    expect(replace.diffKeys).toContain("triggers");
    expect(replace.oldInputs!.triggers).toEqual([`${N16.host}:${N16.port}`]);
    expect(replace.newInputs!.triggers).toEqual([`${N17.host}:${N17.port}`]);
    for (const f of [CONFIG, HUB]) {
      const st = preview.steps.find((s) => s.name === `mover:${f}`)!;
      expect(st.op).toBe("update");
      expect(st.diffKeys).toEqual(["connection"]);
    }
    expect(F.restarts(N16)).toBe(before.n16);

    const res = await h.up(moved);
    expect(res.error?.message).toBeUndefined();
    // The machine it left: its original config.toml (one restart onto it), no hosts.toml, no script.
    expect(fs.readFileSync(N16.configToml, "utf8")).toBe(originals.n16);
    expect(await F.nodePathExists(N16, HUB)).toBe(false);
    expect(await F.nodePathExists(N16, SCRIPT)).toBe(false);
    expect(F.restarts(N16)).toBe(before.n16 + 1);
    expect((await F.criPlugins(N16))["io.containerd.grpc.v1.cri"]).toBe("ok");
    // The new machine: the node's files, one restart.
    expect(await F.nodeFile(N17, HUB)).toContain(MIRROR);
    expect(fs.readFileSync(N17.configToml, "utf8")).toContain("SystemdCgroup = true");
    expect(F.restarts(N17)).toBe(before.n17 + 1);
    // In that order: the release on the old machine finished before the first file went to the new one.
    const release = res.steps.find((s) => s.name === "mover:host" && s.op === "delete")!;
    const fileSteps = res.steps.filter((s) => s.name.startsWith("mover:/"));
    expect(fileSteps.map((s) => s.name).sort()).toEqual([`mover:${HUB}`, `mover:${CONFIG}`]);
    const firstFile = Math.min(...fileSteps.map((s) => s.startedAt));
    expect(release.endedAt).toBeLessThanOrEqual(firstFile);
  });
});

describe("a change of the node script alone", () => {
  it("costs one SSH session per node (its host resource), none per file", async () => {
    await F.resetNodes([N16]);
    const h = newHarness();
    try {
      const program = () => void new ContainerdNode("scripted", spec(N16));
      expect((await h.up(program)).error?.message).toBeUndefined();
      // As if the library had shipped another script: the state's copy differs from this one.
      const stateFile = (h as unknown as { stateFile: string }).stateFile;
      const state = JSON.parse(fs.readFileSync(stateFile, "utf8")) as { resources: ResourceState[] };
      const host = state.resources.find((r) => r.name === "scripted:host")!;
      host.inputs.stdin = String(host.inputs.stdin).replace("set -eu", "set -eu\n# an older revision");
      fs.writeFileSync(stateFile, JSON.stringify(state));
      h.resetCounters();
      const restarts = F.restarts(N16);
      const res = await h.up(program);
      expect(res.error?.message).toBeUndefined();
      expect(res.steps.filter((s) => s.op !== "same").map((s) => `${s.name} ${s.op}`)).toEqual(["scripted:host update"]);
      expect(h.sessions(`${N16.host}:${N16.port}`)).toBe(1);
      expect(F.restarts(N16)).toBe(restarts);
      await h.destroy();
    } finally {
      h.dispose();
    }
  });
});

describe("outputs describe the latest up", () => {
  it("restarted, lastApply and the fleet's restartedNodes say what this up did, not what each command did last", async () => {
    await F.resetNodes([N16, N17]);
    const h = newHarness();
    const program = (mirror: string, downloads: number) => () => {
      const f = new ContainerdFleet("f", {
        containerdVersion: "1.6",
        systemdCgroup: true,
        healthTimeoutSeconds: 30,
        maxConcurrentDownloads: downloads,
        registries: { "docker.io": { mirrors: [mirror] } },
        nodes: [N16, N17].map((n) => ({ name: n.name, connection: connection(n) })),
      });
      const n = f.nodes[N16.name];
      return { restartedNodes: f.restartedNodes, restarted: n.restarted, lastApply: n.lastApply };
    };
    try {
      const first = await h.up(program(MIRROR, 3));
      expect(first.error?.message).toBeUndefined();
      expect(first.outputs.restartedNodes).toEqual([N16.name, N17.name]);
      expect(first.outputs.restarted).toBe(true);
      expect((first.outputs.lastApply as { path: string }[]).map((r) => r.path).sort()).toEqual([HUB, CONFIG]);

      // Nothing to do: nothing ran, nothing restarted.
      const noop = await h.up(program(MIRROR, 3));
      expect(noop.error?.message).toBeUndefined();
      expect(noop.outputs).toEqual({ restartedNodes: [], restarted: false, lastApply: [] });

      // A mirror change: the hosts.toml files ran, containerd did not restart.
      const hosts = await h.up(program(MIRROR_B, 3));
      expect(hosts.outputs.restartedNodes).toEqual([]);
      expect(hosts.outputs.restarted).toBe(false);
      expect(hosts.outputs.lastApply).toEqual([{ path: HUB, written: true, restarted: false, deprecations: [] }]);

      // A config change: both restart again, and say so.
      const config = await h.up(program(MIRROR_B, 5));
      expect(config.outputs.restartedNodes).toEqual([N16.name, N17.name]);
      expect((config.outputs.lastApply as { path: string; restarted: boolean }[]).map((r) => [r.path, r.restarted])).toEqual([[CONFIG, true]]);
      await h.destroy();
    } finally {
      h.dispose();
    }
  });
});

describe("what a node keeps safe, on a fleet node (containerd 1.6.20)", () => {
  const etc = () => path.dirname(N16.configToml);
  const run = async (h: Harness, extra: Partial<ContainerdNodeArgs> = {}) => h.up(() => void new ContainerdNode("safe", spec(N16, extra)));
  let h: Harness;
  beforeEach(async () => {
    await F.resetNodes([N16]);
    h = newHarness();
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

  it("refuses credentials in settings before any SSH session", async () => {
    const res = await run(h, { settings: { plugins: { "io.containerd.grpc.v1.cri": { registry: { auths: { "https://r.test": { password: "pw" } } } } } } });
    expect(res.error?.message).toContain("settings.plugins");
    expect(res.error?.message).toContain("registry.auths");
    expect(res.error?.message).not.toContain('"pw"');
    expect(h.sessions()).toEqual({});
  });
});

describe("skipFallback on real nodes", () => {
  it("renders a hosts.toml that 1.6 and 2.3 take: the probe and CRI pulls go through the mirror that is now the server", async () => {
    const [n23] = F.nodesByGeneration(fleet, ["2.3"]);
    await F.resetNodes([N16, n23]);
    const h = newHarness();
    try {
      const res = await h.up(() => {
        for (const n of [N16, n23]) {
          new ContainerdNode(n.name, {
            containerdVersion: n.containerdVersion,
            healthTimeoutSeconds: 30,
            registries: { "docker.io": { mirrors: [MIRROR], skipFallback: true } },
            // And the probe on both generations: ctr's pull through the new hosts.toml (2.3's via its transfer service).
            probeImages: { "docker.io": TINY },
            connection: connection(n),
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
      await h.destroy();
    } finally {
      h.dispose();
    }
  });
});
