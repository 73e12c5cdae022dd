/**
 * The test fleet runs pods, and models what a containerd restart does to them.
 *
 * On one node of each containerd generation in the fleet (E2E_FLEET_GENERATIONS), configured as a spec for
 * pods would configure it (the library's rendering of: the fleet's pause image as sandbox image, the mirror
 * for docker.io and registry.k8s.io, `podSettings`), a pod starts through CRI as kubelet starts one
 * (RunPodSandbox on the node's network, PullImage, CreateContainer, StartContainer) from the sleeper images
 * the mirror serves (the node has no route out). crictl on the node lists it. Then, as containerd's own unit
 * file promises with KillMode=process, `systemctl restart containerd` leaves it running with the same pid;
 * with KillMode=control-group or mixed (the fleet's faults, as systemd would) and with the
 * restart-kills-shims fault, the restart ends it, and a new pod still starts.
 */
import { renderNode } from "../../provider/src";
import {
  CriPod,
  criContainerStatus,
  criListContainers,
  criListPodSandbox,
  criRemovePod,
  criRunPod,
  criVersion,
} from "../support/cri";
import * as F from "./fleet";
import type { FleetNode } from "./fleet";

jest.setTimeout(120_000);

const fleet = F.loadFleet();
/** The first node of each generation present. */
const NODES = F.nodesByGeneration(fleet, [...new Set(fleet.nodes.map((n) => n.generation))]);
const MIRROR = fleet.registry.mirrors[0];
const { sandbox: SANDBOX, container: SLEEPER } = fleet.registry.podImages;

const title = (n: FleetNode) => `containerd ${n.containerdVersion} (${n.name})`;

/** The spec a pods test deploys, rendered by the library, written to the node; then one restart. */
async function configureForPods(n: FleetNode): Promise<void> {
  const { files } = renderNode({
    containerdVersion: n.containerdVersion,
    sandboxImage: SANDBOX,
    registries: { "docker.io": { mirrors: [MIRROR] }, "registry.k8s.io": { mirrors: [MIRROR] } },
    settings: F.podSettings(n),
  });
  for (const f of files) {
    const w = await F.nodeExecInput(n, f.content, "/bin/sh", "-c", 'mkdir -p "$(dirname "$1")" && cat >"$1" && chmod "$2" "$1"', "sh", f.path, f.mode.toString(8));
    if (w.status !== 0) throw new Error(`${n.name}: writing ${f.path}: ${w.stderr}`);
  }
  await restartContainerd(n);
}

/** `systemctl restart containerd` on the node, as the component's default restart command runs it; then CRI answers. */
async function restartContainerd(n: FleetNode): Promise<void> {
  await F.nodeSh(n, "systemctl restart containerd");
  await F.waitFor(`CRI on ${n.name}`, async () => {
    try {
      await criVersion(n.containerdSocket);
      await criListContainers(n.containerdSocket);
      return true;
    } catch {
      return false;
    }
  }, 30_000, 100);
}

/** The command name of a pid in the node ("" when there is no such process). */
async function commOf(n: FleetNode, pid: number): Promise<string> {
  const r = await F.nodeExec(n, "cat", `/proc/${pid}/comm`);
  return r.status === 0 ? r.stdout.trim() : "";
}

async function killMode(n: FleetNode): Promise<string> {
  return (await F.nodeSh(n, "systemctl show --property=KillMode --value containerd")).trim();
}

let podCount = 0;
async function startPod(n: FleetNode): Promise<CriPod> {
  const pod = await criRunPod(n.containerdSocket, { name: `sleeper-${++podCount}`, image: SLEEPER });
  expect(await commOf(n, pod.pid)).toBe("sleeper");
  return pod;
}

/** After a restart that ends the shims: the container is not running and its process is gone. */
async function expectGone(n: FleetNode, pod: CriPod): Promise<void> {
  await F.waitFor(`${pod.containerId.slice(0, 12)} not running on ${n.name}`, async () => (await criContainerStatus(n.containerdSocket, pod.containerId)).state !== "CONTAINER_RUNNING", 30_000, 200);
  expect(await commOf(n, pod.pid)).not.toBe("sleeper");
  const running = await criListContainers(n.containerdSocket, { state: "CONTAINER_RUNNING" });
  expect(running.map((c) => c.id)).not.toContain(pod.containerId);
  const sandbox = (await criListPodSandbox(n.containerdSocket)).find((p) => p.id === pod.podSandboxId);
  expect(sandbox?.state).toBe("SANDBOX_NOTREADY");
}

beforeAll(async () => {
  await F.resetNodes(NODES);
  await Promise.all(NODES.map(configureForPods));
}, 180_000);

// Running pods, faults and written files go: the next test file starts from the fleet's starting state.
afterAll(async () => {
  await F.resetNodes(NODES);
}, 180_000);

describe.each(NODES.map((n) => [title(n), n] as const))("%s", (_t, n) => {
  let pod: CriPod;

  test("a pod starts through CRI, as kubelet starts one, from the sleeper images the mirror serves", async () => {
    // The fleet preloads the pause images (as a node that ran pods holds them): without this one the
    // sandbox comes from the mirror.
    await F.nodeSh(n, `ctr -n k8s.io images rm ${SANDBOX} >/dev/null`);
    const logBefore = F.logSize(fleet.registry.logs[0]);
    pod = await startPod(n);
    const containers = await criListContainers(n.containerdSocket, { podSandboxId: pod.podSandboxId });
    expect(containers).toEqual([expect.objectContaining({ id: pod.containerId, name: "main", image: SLEEPER, state: "CONTAINER_RUNNING" })]);
    expect(containers[0].labels).toEqual(expect.objectContaining({ "io.kubernetes.pod.name": `sleeper-${podCount}`, "io.kubernetes.container.name": "main" }));
    const sandbox = (await criListPodSandbox(n.containerdSocket)).find((p) => p.id === pod.podSandboxId);
    expect(sandbox).toEqual(expect.objectContaining({ name: `sleeper-${podCount}`, namespace: "default", state: "SANDBOX_READY" }));
    // Both images came from the mirror (nothing else is reachable from the node).
    const seen = F.mirrorRequests(fleet.registry.logs[0], logBefore, n);
    const [, sandboxPath, sandboxTag] = /^[^/]+\/(.+):([^:]+)$/.exec(SANDBOX)!;
    expect(seen.some((l) => l.includes(`/v2/${sandboxPath}/manifests/${sandboxTag}`))).toBe(true);
    expect(seen.some((l) => l.includes("/v2/library/sleeper/manifests/1.0"))).toBe(true);
  });

  test("crictl on the node, over SSH and without endpoint options, lists the running container", async () => {
    const r = await F.sshRun(n, `${F.CRICTL} ps -q && ${F.CRICTL} pods -q --state ready`, "");
    expect(r.status).toBe(0);
    const ids = r.stdout.trim().split("\n");
    expect(ids).toContain(pod.containerId);
    expect(ids).toContain(pod.podSandboxId);
  });

  test("with KillMode=process (the default) it keeps running with the same pid across systemctl restart containerd", async () => {
    expect(await killMode(n)).toBe("process");
    const restarts = F.restarts(n);
    await restartContainerd(n);
    expect(F.restarts(n)).toBe(restarts + 1);
    const status = await criContainerStatus(n.containerdSocket, pod.containerId);
    expect(status.state).toBe("CONTAINER_RUNNING");
    expect(status.pid).toBe(pod.pid);
    expect(await commOf(n, pod.pid)).toBe("sleeper");
  });

  test("with KillMode=control-group the restart ends it, and a new pod starts after", async () => {
    await F.fault(n, "killmode-control-group");
    expect(await killMode(n)).toBe("control-group");
    await restartContainerd(n);
    await expectGone(n, pod);
    await criRemovePod(n.containerdSocket, pod.podSandboxId);
    pod = await startPod(n);
  });

  test("with KillMode=mixed, and with the restart-kills-shims fault under KillMode=process, the restart ends it too", async () => {
    await F.fault(n, "killmode-mixed");
    expect(await killMode(n)).toBe("mixed");
    await restartContainerd(n);
    await expectGone(n, pod);
    await criRemovePod(n.containerdSocket, pod.podSandboxId);

    await F.fault(n, "killmode-process");
    await F.fault(n, "restart-kills-shims");
    pod = await startPod(n);
    expect(await killMode(n)).toBe("process");
    await restartContainerd(n);
    await expectGone(n, pod);
    await F.fault(n, "restart-keeps-shims");
    await criRemovePod(n.containerdSocket, pod.podSandboxId);
    expect(await criListContainers(n.containerdSocket)).toEqual([]);
  });
});
