/**
 * beforeRestart and afterRestart under mocks: declared only when set, as local.Commands that run by
 * `sh -c` with the node's name and host, triggered by what restarts containerd (config.toml's hash,
 * the node's address, a repair), and chained so that a failing one stops config.toml and later waves.
 */
import { ContainerdFleet, ContainerdNode, ContainerdNodeArgs, NodeSpec, SpecError } from "../../provider/src";
import { operationProblems } from "../../provider/src/component/node-args";
import { seedSpec } from "../fixtures/specs";
import { MockWorld, installMocks, settle, valueOf } from "../support/mocks";

afterEach(settle);

const connection = { host: "10.0.0.11", user: "root", privateKey: "KEY", hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPtest" };
const DRAIN = 'kubectl drain "$CONTAINERD_NODE_NAME" --ignore-daemonsets';
const UNCORDON = 'kubectl uncordon "$CONTAINERD_NODE_NAME"';
const CONFIG = "/etc/containerd/config.toml";
const hooks = (w: MockWorld) => w.registered.filter((r) => /:(before|after)Restart$/.test(r.name));
const deps = (w: MockWorld, name: string) => w.options.find((o) => o.name === name)!.dependsOn.sort();

async function declare(args: ContainerdNodeArgs, world: MockWorld, name = "node-1"): Promise<ContainerdNode> {
  const node = new ContainerdNode(name, args, { transformations: [world.transformation] });
  await valueOf(node.lastApply);
  return node;
}

describe("ContainerdNode", () => {
  it("declares no hook unless one is set", async () => {
    const world = installMocks();
    const node = await declare({ ...seedSpec("1.7.24"), connection }, world);
    expect(hooks(world)).toEqual([]);
    expect(node.beforeRestartCommand).toBeUndefined();
    expect(node.afterRestartCommand).toBeUndefined();
    expect(deps(world, `node-1:${CONFIG}`)).not.toContainEqual(expect.stringMatching(/Restart$/));
  });

  it("declares each hook as a local.Command run by sh -c, with the node's name and host, triggered by config.toml's hash and the node's address", async () => {
    const world = installMocks();
    const node = await declare({ ...seedSpec("1.7.24"), connection, beforeRestart: DRAIN, afterRestart: UNCORDON }, world);
    const hash = await valueOf(node.configHash);
    expect(hooks(world).map((h) => [h.name, h.type])).toEqual([
      ["node-1:beforeRestart", "command:local:Command"],
      ["node-1:afterRestart", "command:local:Command"],
    ]);
    for (const [name, create] of [["node-1:beforeRestart", DRAIN], ["node-1:afterRestart", UNCORDON]]) {
      expect(world.byName(name).inputs).toEqual({
        create,
        // A changed command alone runs nothing: it waits for the next restart.
        update: "true",
        interpreter: ["/bin/sh", "-c"],
        environment: { CONTAINERD_NODE_NAME: "node-1", CONTAINERD_NODE_HOST: "10.0.0.11" },
        triggers: [hash, "10.0.0.11:22", ""],
        addPreviousOutputInEnv: false,
      });
      // Not read (mocks): the drift token cannot say a repair, and is never compared.
      expect(world.options.find((o) => o.name === name)).toMatchObject({ parent: "node-1", ignoreChanges: ["triggers[2]"] });
    }
    expect(node.beforeRestartCommand).toBeDefined();
    expect(node.afterRestartCommand).toBeDefined();
  });

  it("runs beforeRestart after the node's other files and right before config.toml; afterRestart after config.toml", async () => {
    const world = installMocks();
    await declare({ ...seedSpec("1.7.24"), connection, beforeRestart: DRAIN, afterRestart: UNCORDON }, world);
    const hub = "node-1:/etc/containerd/certs.d/docker.io/hosts.toml";
    expect(deps(world, "node-1:beforeRestart")).toEqual(expect.arrayContaining(["node-1:host", hub]));
    expect(deps(world, "node-1:beforeRestart")).not.toContain(`node-1:${CONFIG}`);
    expect(deps(world, `node-1:${CONFIG}`)).toContain("node-1:beforeRestart");
    expect(deps(world, "node-1:afterRestart")).toEqual([`node-1:${CONFIG}`]);
    // Nothing else waits for a hook: a hosts.toml change never runs one.
    expect(deps(world, hub)).toEqual(["node-1:host"]);
  });

  it("takes either hook alone", async () => {
    const world = installMocks();
    await declare({ ...seedSpec("1.7.24"), connection, afterRestart: UNCORDON }, world);
    expect(hooks(world).map((h) => h.name)).toEqual(["node-1:afterRestart"]);
    expect(deps(world, "node-1:afterRestart")).toEqual([`node-1:${CONFIG}`]);
  });

  it("is triggered by a config.toml change and not by a mirror change (hosts.toml only)", async () => {
    const triggersOf = async (args: NodeSpec) => {
      const world = installMocks();
      await declare({ ...args, connection, beforeRestart: DRAIN }, world);
      await settle();
      return world.byName("node-1:beforeRestart").inputs.triggers as string[];
    };
    const spec = seedSpec("1.7.24");
    const before = await triggersOf(spec);
    const mirror = await triggersOf({ ...spec, registries: { ...spec.registries, "docker.io": { mirrors: ["https://other-mirror.test"] } } });
    const config = await triggersOf({ ...spec, systemdCgroup: false });
    expect(mirror).toEqual(before);
    expect(config[0]).not.toBe(before[0]);
    expect(config.slice(1)).toEqual(before.slice(1));
  });

  it("declares no hook for a forgotten node", async () => {
    const world = installMocks();
    const node = await declare({ ...seedSpec("1.7.24"), connection, beforeRestart: DRAIN, afterRestart: UNCORDON, forget: true }, world);
    expect(hooks(world)).toEqual([]);
    expect(node.afterRestartCommand).toBeUndefined();
  });
});

describe("ContainerdFleet", () => {
  const conn = (i: number) => ({ ...connection, host: `10.0.0.${10 + i}` });
  const nodes = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `node-${i + 1}`, connection: conn(i + 1) }));

  it.each(["waves", "all-at-once"] as const)("with registryChanges %s, starts a wave only after the previous wave's afterRestart", async (registryChanges) => {
    const world = installMocks();
    const fleet = new ContainerdFleet(
      "fleet",
      { ...seedSpec("1.7.24"), beforeRestart: DRAIN, afterRestart: UNCORDON, nodes: nodes(3), rollout: { maxUnavailable: 1, registryChanges } },
      { transformations: [world.transformation] },
    );
    await valueOf(fleet.restartedNodes);
    expect(deps(world, "node-1:beforeRestart")).not.toContainEqual(expect.stringMatching(/Restart$/));
    expect(deps(world, "node-2:beforeRestart")).toContain("node-1:afterRestart");
    expect(deps(world, `node-2:${CONFIG}`)).toEqual(expect.arrayContaining(["node-1:afterRestart", "node-2:beforeRestart"]));
    expect(deps(world, `node-3:${CONFIG}`)).toContain("node-2:afterRestart");
    expect(deps(world, `node-3:${CONFIG}`)).not.toContain("node-1:afterRestart");
    // Each node's own name and host.
    expect(world.byName("node-3:afterRestart").inputs.environment).toEqual({ CONTAINERD_NODE_NAME: "node-3", CONTAINERD_NODE_HOST: "10.0.0.13" });
  });

  it("takes the hooks shared, and per node over the shared ones", async () => {
    const world = installMocks();
    const fleet = new ContainerdFleet(
      "fleet",
      { ...seedSpec("1.7.24"), beforeRestart: DRAIN, nodes: [{ ...nodes(2)[0], beforeRestart: "echo first" }, { ...nodes(2)[1], afterRestart: UNCORDON }] },
      { transformations: [world.transformation] },
    );
    await valueOf(fleet.restartedNodes);
    expect(hooks(world).map((h) => [h.name, h.inputs.create])).toEqual([
      ["node-1:beforeRestart", "echo first"],
      ["node-2:beforeRestart", DRAIN],
      ["node-2:afterRestart", UNCORDON],
    ]);
  });
});

describe("bad hooks", () => {
  it.each([
    ["beforeRestart", "", '"" is not a non-empty shell command'],
    ["beforeRestart", "  \n", '"  \\n" is not a non-empty shell command'],
    ["afterRestart", "kubectl\u0000uncordon", '"kubectl\\u0000uncordon" is not a non-empty shell command'],
    ["afterRestart", 5, "5 is not a non-empty shell command"],
    ["afterRestart", ["kubectl", "uncordon"], '["kubectl","uncordon"] is not a non-empty shell command'],
  ])("%s %j is refused, naming the field and the value", (field, value, message) => {
    expect(operationProblems({ [field]: value } as never)).toEqual([{ path: field, message }]);
  });

  it("are refused before anything is declared, by the node and by the fleet (naming the node)", () => {
    const world = installMocks();
    expect(() => new ContainerdNode("node-1", { ...seedSpec("1.7.24"), connection, beforeRestart: "" })).toThrow(
      new SpecError('Invalid ContainerdNode args for "node-1"', [{ path: "beforeRestart", message: '"" is not a non-empty shell command' }]),
    );
    expect(() => new ContainerdFleet("fleet", { ...seedSpec("1.7.24"), afterRestart: "", nodes: [{ name: "a", connection }, { name: "b", connection, afterRestart: "ok" }] })).toThrow(
      /nodes\[0\] \(a\)\.afterRestart: "" is not a non-empty shell command/,
    );
    expect(world.registered).toEqual([]);
  });
});
