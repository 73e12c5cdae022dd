/**
 * allowContainerLoss from the args to the node's command line: checked by the operation schema,
 * resolved by the plan (false by default), and sent to the node script (as an environment variable
 * its constant code sets) by config.toml's apply only.
 */
import { operationProblems } from "../../provider/src/component/node-args";
import { planOrThrow } from "../../provider/src/component/plan";
import { ALLOW_CONTAINER_LOSS, applyCommand, restoreCommand } from "../../provider/src/remote/commands";
import { seedSpec } from "../fixtures/specs";

const connection = { host: "10.0.0.1", user: "root", privateKey: "k", hostKey: "ssh-ed25519 AAAA" };

describe("allowContainerLoss", () => {
  it("is false unless set, and reaches config.toml's apply command line only", () => {
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
    expect(restoreCommand(config, owner)).not.toContain("ALLOW_CONTAINER_LOSS");
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
