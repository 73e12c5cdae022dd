/**
 * allowContainerLoss and crictlPath from the args to the node's command lines: checked by the
 * operation schema, resolved by the plan, and sent to the node script (as environment variables its
 * constant code sets) by config.toml's commands only: allowContainerLoss by its apply and by the
 * restores (a delete's restart onto the original is guarded too), crictlPath by its apply (the only
 * one that starts a pod to check).
 */
import { operationProblems } from "../../provider/src/component/node-args";
import { planOrThrow } from "../../provider/src/component/plan";
import { ALLOW_CONTAINER_LOSS, CRICTL_FROM_ARG, applyCommand, releaseCommand, restoreCommand } from "../../provider/src/remote/commands";
import { seedSpec } from "../fixtures/specs";

const connection = { host: "10.0.0.1", user: "root", privateKey: "k", hostKey: "ssh-ed25519 AAAA" };

describe("allowContainerLoss", () => {
  it("is false unless set, and reaches config.toml's apply and restore command lines only (and the release's)", () => {
    const off = planOrThrow("n1", { ...seedSpec("1.7.24"), connection });
    expect(off.command.allowContainerLoss).toBe(false);
    const on = planOrThrow("n1", { ...seedSpec("1.7.24"), connection, allowContainerLoss: true, registries: { "docker.io": { mirrors: ["http://m.test:5000"] } } });
    expect(on.command.allowContainerLoss).toBe(true);
    const config = on.files.find((f) => f.file.kind === "config")!.file;
    const hosts = on.files.find((f) => f.file.kind === "hosts")!.file;
    const owner = { ...on.command, owner: "urn:x" };
    expect(applyCommand(config, owner)).toContain(`/bin/sh -c '${ALLOW_CONTAINER_LOSS}`);
    expect(applyCommand(config, owner, "00ff00ff00ff00ff")).toContain("CONTAINERD_NODE_ALLOW_CONTAINER_LOSS=1; export CONTAINERD_NODE_ALLOW_CONTAINER_LOSS; CONTAINERD_NODE_REPAIR=$1");
    expect(applyCommand(hosts, owner)).not.toContain("ALLOW_CONTAINER_LOSS");
    expect(restoreCommand(config, owner)).toContain(`/bin/sh -c '${ALLOW_CONTAINER_LOSS}`);
    expect(restoreCommand(hosts, owner)).not.toContain("ALLOW_CONTAINER_LOSS");
    expect(releaseCommand([config, hosts], owner)).toContain(`/bin/sh -c '${ALLOW_CONTAINER_LOSS}`);
    // Off, the command line is exactly what it was before the option existed.
    const offOwner = { ...off.command, owner: "urn:x" };
    const offConfig = off.files.find((f) => f.file.kind === "config")!.file;
    expect(applyCommand(offConfig, offOwner)).toBe(applyCommand(offConfig, { ...offOwner, allowContainerLoss: undefined }));
    expect(applyCommand(offConfig, offOwner)).not.toContain("ALLOW_CONTAINER_LOSS");
  });

  it("is checked by the operation schema", () => {
    expect(operationProblems({ allowContainerLoss: "yes" as unknown as boolean })).toEqual([{ path: "allowContainerLoss", message: '"yes" is not true or false' }]);
    expect(operationProblems({ allowContainerLoss: true })).toEqual([]);
  });
});

describe("crictlPath", () => {
  it("reaches config.toml's apply command line only, as a quoted value, and only when it is not the default", () => {
    const plan = (crictlPath?: string) => planOrThrow("n1", { ...seedSpec("1.7.24"), connection, ...(crictlPath ? { crictlPath } : {}), registries: { "docker.io": { mirrors: ["http://m.test:5000"] } } });
    const lines = (p: ReturnType<typeof plan>, repair?: string) => {
      const owner = { ...p.command, owner: "urn:x" };
      const file = (k: string) => p.files.find((f) => f.file.kind === k)!.file;
      return { apply: applyCommand(file("config"), owner, repair), restore: restoreCommand(file("config"), owner), hosts: applyCommand(file("hosts"), owner) };
    };
    const set = lines(plan("/opt/bin/crictl"));
    expect(set.apply).toContain(`/bin/sh -c '${CRICTL_FROM_ARG}`);
    expect(set.apply).toMatch(/containerd-node\.sh' '\/opt\/bin\/crictl' 'apply' 'config'/);
    // With a drift token: the CRI client first, then the token.
    expect(lines(plan("/opt/bin/crictl"), "00ff00ff00ff00ff").apply).toMatch(/'\/opt\/bin\/crictl' '00ff00ff00ff00ff' 'apply'/);
    expect(set.restore).not.toContain("CRICTL");
    expect(set.hosts).not.toContain("CRICTL");
    // Unset or the default: the command lines of before the option.
    expect(lines(plan("crictl"))).toEqual(lines(plan()));
    expect(lines(plan()).apply).not.toContain("CRICTL");
    expect(operationProblems({ crictlPath: "crictl; rm -rf /" } as never)).toEqual([{ path: "crictlPath", message: '"crictl; rm -rf /" is not a command name or path of letters, digits and . _ / + -' }]);
  });
});
