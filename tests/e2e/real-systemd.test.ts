/**
 * The KillMode guard and the node read against real systemd, through the real engine: one node that
 * boots Debian bookworm under systemd-nspawn (tests/fleet/systemd-node.sh), with containerd 1.6.20
 * and sshd as Debian's own units, deployed with a ContainerdNode whose restart command is the
 * default `systemctl restart containerd`. The netns fleet's `systemctl` is a stand-in that models
 * KillMode; here systemd itself answers `systemctl show --property=KillMode --value`, loads the
 * drop-ins at `daemon-reload`, and runs the restart.
 *
 * The node is booted in beforeAll and powered off in afterAll: if it cannot boot, every test fails.
 * No pods run in it (runc cannot start containers under nspawn on these machines), so what the
 * guard protects is shown by what it does to containerd: restarted or not, on which config.toml.
 */
import * as path from "path";
import { ContainerdNode, ContainerdNodeArgs } from "../../provider/src";
import { criStatus } from "../support/cri";
import { EngineStack, RunResult } from "../support/engine";
import { Run, run } from "../support/run";
import * as F from "./fleet";

jest.setTimeout(300_000);

const SYSTEMD_NODE_SH = path.join(F.REPO, "tests", "fleet", "systemd-node.sh");
const CONFIG = "/etc/containerd/config.toml";
const DROP_IN = "/etc/systemd/system/containerd.service.d/killmode.conf";
/** The spec's sandbox image, put into the node's k8s.io namespace (the fleet's sleeper image): nothing is pulled. */
const SANDBOX = "registry.k8s.io/pause:3.10";
const POD_IMAGE = path.join(F.REPO, ".cache", "fleet", "image");

/** What `systemd-node.sh up` prints: a fleet node's connection and socket, and its state directory. */
type SystemdNode = Pick<F.FleetNode, "name" | "host" | "port" | "user" | "privateKey" | "hostKey" | "containerdVersion" | "containerdSocket"> & { stateDir: string };

const systemdNodeSh = (args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<Run> =>
  run("bash", [SYSTEMD_NODE_SH, ...args], { timeoutMs: 120_000, ...opts });

/** A shell command inside the node (`systemd-node.sh exec`); its stdout, the exit status must be 0. */
async function nodeSh(script: string): Promise<string> {
  const r = await systemdNodeSh(["exec", "--", "/bin/sh", "-c", script]);
  if (r.status !== 0) throw new Error(`systemd node: sh -c ${JSON.stringify(script)} exited ${r.status}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** containerd's unit as systemd reports it: its main pid and when that started (µs, monotonic), and how many times systemd started it since boot. */
async function unitState(): Promise<{ pid: number; startedUs: number; starts: number; active: string }> {
  const out = await nodeSh(
    "systemctl show --property=MainPID --property=ExecMainStartTimestampMonotonic --property=ActiveState containerd; " +
      "echo starts=$(journalctl -b -u containerd.service -o cat | grep -c '^Started containerd.service')",
  );
  const v = Object.fromEntries(out.trim().split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
  return { pid: Number(v.MainPID), startedUs: Number(v.ExecMainStartTimestampMonotonic), starts: Number(v.starts), active: v.ActiveState };
}

const config = () => nodeSh(`cat ${CONFIG}`);

/** A drop-in for containerd's unit with this KillMode (or none), then daemon-reload: what systemd itself now says. */
async function setKillMode(mode: "control-group" | "mixed" | undefined): Promise<string> {
  const write = mode
    ? `mkdir -p ${path.dirname(DROP_IN)} && printf '[Service]\\nKillMode=${mode}\\n' >${DROP_IN}`
    : `rm -f ${DROP_IN} && rmdir ${path.dirname(DROP_IN)} 2>/dev/null; true`;
  return (await nodeSh(`${write} && systemctl daemon-reload && systemctl show --property=KillMode --value containerd`)).trim();
}

/** The live CRI config's max_concurrent_downloads (1.x puts the CRI plugin's config in its verbose status). */
async function liveDownloads(n: SystemdNode): Promise<number> {
  const s = await criStatus(n.containerdSocket);
  return (s.info.config as { maxConcurrentDownloads: number }).maxConcurrentDownloads;
}

const warnings = (r: RunResult) => r.diagnostics.filter((d) => d.severity === "warning").map((d) => d.message);
const killModeWarnings = (r: RunResult) => warnings(r).filter((w) => w.includes("KillMode"));

describe("the KillMode guard against real systemd (Debian bookworm booted by systemd-nspawn, containerd 1.6 as Debian's unit)", () => {
  let node: SystemdNode;
  let h: EngineStack;
  let downloads = 3;

  const spec = (extra: Partial<ContainerdNodeArgs> = {}): ContainerdNodeArgs => ({
    containerdVersion: "1.6",
    connection: { host: node.host, port: node.port, user: node.user, privateKey: node.privateKey, hostKey: node.hostKey, dialErrorLimit: 1 },
    systemdCgroup: true,
    sandboxImage: SANDBOX,
    maxConcurrentDownloads: downloads,
    healthTimeoutSeconds: 30,
    readNode: false,
    ...extra,
  });
  /** The node, and its config.toml report of this run (the restart guards) as a stack output. */
  const program = (args: ContainerdNodeArgs) => async () => {
    const n = new ContainerdNode(node.name, args);
    return { config: n.lastApply.apply((rs) => rs.find((r) => r.path === CONFIG) ?? null), restarted: n.restarted };
  };
  /** A config.toml change: the next maxConcurrentDownloads. */
  const change = (extra: Partial<ContainerdNodeArgs> = {}) => program(spec({ ...extra, maxConcurrentDownloads: ++downloads }));
  const read = (extra: Partial<ContainerdNodeArgs> = {}) => h.preview(program(spec({ ...extra, maxConcurrentDownloads: downloads + 1, readNode: true })));

  beforeAll(async () => {
    // A cold cache builds the root file system first (debootstrap: about a minute).
    const up = await systemdNodeSh(["up"], { timeoutMs: 600_000 });
    if (up.status !== 0) throw new Error(`bash ${SYSTEMD_NODE_SH} up failed (exit ${up.status}): the node with real systemd did not boot:\n${up.stderr}`);
    node = JSON.parse(up.stdout) as SystemdNode;
    // The sandbox image is on the node, as on a node that has run pods: the apply pulls nothing (the
    // node has no registry to reach).
    const load = await run("bash", [
      "-c",
      'set -eo pipefail; tar -C "$1" -cf - . | ctr -a "$2" -n k8s.io images import --base-name registry.k8s.io/pause - && ctr -a "$2" -n k8s.io images tag --force registry.k8s.io/pause:sleeper "$3"',
      "import",
      POD_IMAGE,
      node.containerdSocket,
      SANDBOX,
    ]);
    if (load.status !== 0) throw new Error(`importing ${POD_IMAGE} (tests/fleet/build-pod-tools.sh builds it) into the node as ${SANDBOX} failed: ${load.stderr.trim()}`);
    h = new EngineStack({ dir: F.E2E_DIR, project: "real-systemd" });
    const first = await h.up(program(spec()));
    expect(first.error?.message).toBeUndefined();
  }, 900_000);

  afterAll(async () => {
    h?.dispose();
    const down = await systemdNodeSh(["down"]);
    if (down.status !== 0) throw new Error(`bash ${SYSTEMD_NODE_SH} down failed (exit ${down.status}):\n${down.stderr}`);
  }, 120_000);

  it("Debian's unit says KillMode=process: preview says nothing of it, and up restarts containerd through systemd onto the new config.toml", async () => {
    expect((await nodeSh("systemctl show --property=KillMode --value containerd")).trim()).toBe("process");
    const preview = await read();
    expect(preview.error?.message).toBeUndefined();
    expect(killModeWarnings(preview)).toEqual([]);

    const before = await unitState();
    const res = await h.up(change());
    expect(res.error?.message).toBeUndefined();
    expect(res.outputs.restarted).toBe(true);
    expect(res.outputs.config).toMatchObject({ path: CONFIG, written: true, restarted: true, guards: { unit: "containerd", killMode: "process", containersChecked: true, lost: 0 } });
    // systemd ran the restart: a new main process, started later, one more start in the unit's journal.
    const after = await unitState();
    expect(after.active).toBe("active");
    expect(after.pid).not.toBe(before.pid);
    expect(after.startedUs).toBeGreaterThan(before.startedUs);
    expect(after.starts).toBe(before.starts + 1);
    // The new config.toml is on the node and live in the daemon.
    expect(await config()).toContain(`max_concurrent_downloads = ${downloads}`);
    expect(await liveDownloads(node)).toBe(downloads);
  });

  it("a drop-in with KillMode=control-group: preview names the node, the unit and control-group; up refuses the restart, config.toml and containerd untouched", async () => {
    expect(await setKillMode("control-group")).toBe("control-group");
    try {
      const preview = await read();
      expect(preview.error?.message).toBeUndefined();
      expect(killModeWarnings(preview)).toEqual([
        `${node.name}: containerd's systemd unit containerd has KillMode=control-group, which ends every container on the node with the daemon (only KillMode=process leaves them running): up will refuse to restart containerd for a config.toml change (nothing restarted, the old config.toml stays) unless allowContainerLoss is set. Fix: a drop-in /etc/systemd/system/containerd.service.d/killmode.conf with [Service] and KillMode=process, then systemctl daemon-reload; or set allowContainerLoss to restart anyway and lose them`,
      ]);

      const file = await config();
      const before = await unitState();
      const live = await liveDownloads(node);
      const res = await h.up(change());
      expect(res.ok).toBe(false);
      const msg = res.error?.message ?? "";
      expect(msg).toContain(`${node.name}: refusing to restart containerd: its systemd unit containerd has KillMode=control-group, which ends every container on the node with the daemon`);
      expect(msg).toContain("nothing restarted and the old config.toml stays");
      expect(msg).toContain(`Fix: a drop-in ${DROP_IN} with [Service] and KillMode=process, then systemctl daemon-reload`);
      expect(await config()).toBe(file);
      expect(await unitState()).toEqual(before);
      expect(await liveDownloads(node)).toBe(live);
    } finally {
      expect(await setKillMode(undefined)).toBe("process");
    }
  });

  it("allowContainerLoss: true lets the same change apply under KillMode=control-group, through systemd's restart", async () => {
    expect(await setKillMode("control-group")).toBe("control-group");
    try {
      const preview = await read({ allowContainerLoss: true });
      expect(killModeWarnings(preview)).toEqual([
        `${node.name}: containerd's systemd unit containerd has KillMode=control-group, which ends every container on the node with the daemon (only KillMode=process leaves them running): allowContainerLoss is set, so each restart of containerd (a config.toml change) ends every pod on the node`,
      ]);
      const before = await unitState();
      const res = await h.up(change({ allowContainerLoss: true }));
      expect(res.error?.message).toBeUndefined();
      expect(res.outputs.config).toMatchObject({ written: true, restarted: true, guards: { unit: "containerd", killMode: "control-group", lost: 0 } });
      const after = await unitState();
      expect(after.active).toBe("active");
      expect(after.pid).not.toBe(before.pid);
      expect(after.starts).toBe(before.starts + 1);
      expect(await config()).toContain(`max_concurrent_downloads = ${downloads}`);
      expect(await liveDownloads(node)).toBe(downloads);
    } finally {
      expect(await setKillMode(undefined)).toBe("process");
    }
  });

  it("KillMode=mixed is refused too, for a restart command that names containerd.service", async () => {
    expect(await setKillMode("mixed")).toBe("mixed");
    try {
      const restartCommand = "systemctl restart containerd.service";
      const preview = await read({ restartCommand });
      expect(killModeWarnings(preview)).toEqual([expect.stringContaining(`${node.name}: containerd's systemd unit containerd.service has KillMode=mixed`)]);
      const file = await config();
      const before = await unitState();
      const res = await h.up(change({ restartCommand }));
      expect(res.ok).toBe(false);
      const msg = res.error?.message ?? "";
      expect(msg).toContain(`${node.name}: refusing to restart containerd: its systemd unit containerd.service has KillMode=mixed`);
      expect(msg).toContain(`Fix: a drop-in ${DROP_IN} with [Service] and KillMode=process, then systemctl daemon-reload`);
      expect(await config()).toBe(file);
      expect(await unitState()).toEqual(before);
    } finally {
      expect(await setKillMode(undefined)).toBe("process");
    }
  });

  it("a restart command naming a unit systemd does not have: systemd shows control-group for it, and preview and up say the unit is not loaded instead, allowContainerLoss or not", async () => {
    // What real systemd answers (the fleet's stand-in says "could not be found" and exits 5).
    expect((await nodeSh("systemctl show --property=KillMode --value containred; systemctl show --property=LoadState --value containred")).trim().split("\n")).toEqual(["control-group", "not-found"]);
    const restartCommand = "systemctl restart containred";
    const preview = await read({ restartCommand });
    expect(preview.error?.message).toBeUndefined();
    expect(killModeWarnings(preview)).toEqual([
      `${node.name}: containerd's systemd unit containred is not loaded (LoadState=not-found): systemd has no usable unit by that name, so the KillMode it shows (control-group) is only its default and the restart command cannot restart containerd. up will refuse to restart containerd for a config.toml change (nothing restarted, the old config.toml stays). Fix: name containerd's unit in restartCommand (systemctl list-units 'containerd*' lists it)`,
    ]);
    const file = await config();
    const before = await unitState();
    for (const allowContainerLoss of [false, true]) {
      const res = await h.up(change({ restartCommand, allowContainerLoss }));
      expect(res.ok).toBe(false);
      expect(res.error?.message ?? "").toContain(
        `${node.name}: refusing to restart containerd: systemd has no usable unit containred (LoadState=not-found), so the KillMode it shows (control-group) is only its default and the restart command cannot restart containerd; nothing restarted and the old config.toml stays. Fix: name containerd's unit in restartCommand`,
      );
      expect(await config()).toBe(file);
      expect(await unitState()).toEqual(before);
    }
  });
});
