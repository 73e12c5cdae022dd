/**
 * Operating a fleet's state with the real `pulumi` CLI (issue 23, item 7): what `pulumi stack rm
 * --force`, `pulumi state delete` and `pulumi stack export` / `pulumi stack import` leave on the
 * nodes, and what a user does next. Each test deploys the root program (stack config, as the README's
 * "Run it" says) to three nodes of the local fleet (containerd 1.6, 1.7, 2.1; waves [1, 2], [3]) with
 * the real CLI, then runs the verb:
 *
 * - `stack rm --force`: no command runs; then the file:// backend's `<stack>.json.bak` imported into a
 *   re-created stack (up: no changes); a new stack of the same name re-creating everything (same bytes:
 *   nothing written, no restart) and its destroy restoring the nodes; a stack of another name taking
 *   the files over, whose destroy restores them but leaves the removed stack's claim and node script.
 * - `state delete` of one node: refused without `--target-dependents`, which also drops the next
 *   wave's file resources; the next up re-creates them (same bytes, no restart).
 * - `stack export` / `stack import`: no secret in plain text; into the same stack and into a stack of
 *   the same name in another backend the next up is a no-op with no SSH connection; into another name
 *   refused, and with `--force` everything re-created under the new URNs (the files change owner).
 *
 * The evidence is the nodes' own: every entry under /etc/containerd (type, mode, size, mtime, sha256),
 * the restart log, containerd's pid, the connections each node's sshd accepted, the owner and claim
 * records and the audit trail the node script keeps. `readNode: false` in the spec, so a run that
 * runs no command opens no SSH connection at all and the counts are those of the commands alone.
 */
import * as fs from "fs";
import * as path from "path";
import { CliRun, CliStack } from "../support/cli";
import * as F from "./fleet";
import type { FleetNode } from "./fleet";
import { AUDIT, CONFIG, DESTROY_LEAVES, HUB, MIRROR, PROJECT, REC, SCRIPT, backendOf, fleet, nodeUrn, rootCli, rootStack, sha256, summary, text } from "./fixture";
import type { RootStackArgs } from "./fixture";

jest.setTimeout(300_000);

const NODES = F.nodesByGeneration(fleet, ["1.6", "1.7", "2.1"]);
const [N1, N2, N3] = NODES;
const MIRROR_HOST = new URL(MIRROR).host;
const PASSWORD = "pw-operating-state-7";
const SPEC = {
  systemdCgroup: true,
  sandboxImage: "registry.k8s.io/pause:3.9",
  healthTimeoutSeconds: 30,
  readNode: false,
  registries: { "docker.io": { mirrors: [MIRROR] } },
};
/** What a destroy leaves by design (scenario 9): the node lock, an empty certs.d, the audit trail. */
const TOLERATED_LEFTOVERS = DESTROY_LEAVES.map((l) => `./${l}`);
/** What the CLI counts: the stack, the fleet, and per node its component, `<node>:host`, config.toml, hosts.toml and the latter's redacted companion. */
const RESOURCES = 17;

// ---- stacks ------------------------------------------------------------------------------------

/** The stack config of the root program for NODES, as root-program.test.ts sets it (key and credentials secret). */
const ROOT: RootStackArgs = {
  nodes: NODES,
  spec: SPEC,
  rollout: { maxUnavailable: "67%" },
  byPath: true,
  credentials: { [MIRROR_HOST]: { username: "robot", password: PASSWORD } },
};

/** A new stack of the root program: its own file:// backend unless `backend` (a file:// URL) is given. */
async function newStack(opts: { name?: string; backend?: string; configFrom?: string } = {}): Promise<CliStack> {
  const cli = { stack: opts.name, env: opts.backend ? { PULUMI_BACKEND_URL: opts.backend } : undefined };
  if (!opts.configFrom) return rootStack(ROOT, cli);
  const s = rootCli(cli);
  await initWithConfig(s, opts.configFrom);
  return s;
}

/**
 * `pulumi stack init NAME` in a project folder that still has the stack's Pulumi.NAME.yaml (a user's
 * kept copy): the file, with its encryption salt and encrypted secrets, is the new stack's config.
 */
async function initWithConfig(s: CliStack, file: string): Promise<void> {
  const text = fs.readFileSync(file, "utf8");
  fs.writeFileSync(path.join(F.REPO, `Pulumi.${s.stack}.yaml`), text, { mode: 0o600 });
  await s.init(); // moves it to s.configFile
  expect(fs.readFileSync(s.configFile, "utf8")).toBe(text);
}

/** The claim file the node script keeps for an owner on the installed script (INSTALL_SCRIPT in commands.ts). */
const claimName = (owner: string) => sha256(owner).slice(0, 16);

async function up(s: CliStack, extra: string[] = []): Promise<CliRun> {
  return s.ok(["up", "--yes", "--skip-preview", ...extra]);
}

// ---- what the nodes show -----------------------------------------------------------------------

/** Every entry under the node's /etc/containerd: "path type mode size mtime", then "sha256 path" of each file. */
async function tree(n: FleetNode): Promise<string[]> {
  const out = await F.nodeSh(n, "cd /etc/containerd && find . -mindepth 1 -printf '%p %y %m %s %T@\\n' | sort && find . -type f -exec sha256sum {} + | sort -k 2");
  return out.split("\n").filter((l) => l !== "");
}
/** Entries as "path type" (scenario 9's listing). */
const listing = (t: string[]) => t.filter((l) => l.startsWith("./")).map((l) => l.split(" ").slice(0, 2).join(" "));
/**
 * The files an apply of the same bytes must leave as they are (content, mode, mtime): everything but
 * directories (an apply makes its temp file in the target's directory), the owner and sum records and
 * the claims, which every successful apply and install writes again.
 */
function stable(t: string[]): string[] {
  const kept = t.filter((l) => !/\.owner( |$)|\.sum( |$)|\/claims(\/| )| d \d+ /.test(l));
  for (const f of ["./config.toml", "./certs.d/docker.io/hosts.toml", "./.containerd-node/config.toml.applied", "./.containerd-node/containerd-node.sh"]) {
    expect(kept.filter((l) => l.startsWith(`${f} f `) || l.endsWith(`  ${f}`))).toHaveLength(2);
  }
  return kept;
}

interface Picture {
  tree: string[];
  restarts: number;
  pid: number;
  ssh: number;
  audit: string[];
}
async function picture(n: FleetNode): Promise<Picture> {
  return {
    tree: await tree(n),
    restarts: F.restarts(n),
    pid: await F.containerdPid(n),
    ssh: await F.sshAccepted(n),
    audit: ((await F.nodeFile(n, AUDIT)) ?? "").split("\n").filter((l) => l !== ""),
  };
}
const pictures = async () => new Map(await Promise.all(NODES.map(async (n) => [n, await picture(n)] as const)));
type Pictures = Awaited<ReturnType<typeof pictures>>;

/** Nothing happened on any node: every entry byte- and mtime-identical, no restart, same pid, no SSH connection. */
async function expectUntouched(before: Pictures): Promise<void> {
  for (const n of NODES) {
    const was = before.get(n)!;
    const now = await picture(n);
    expect({ node: n.name, ...now }).toEqual({ node: n.name, ...was });
  }
}

/** The owner each managed file records on the node (`<file>.owner`). */
async function owners(n: FleetNode): Promise<string[]> {
  const out = await F.nodeSh(n, `cat ${REC}/config.toml.owner /etc/containerd/certs.d/docker.io/.containerd-node/hosts.toml.owner`);
  return out.trim().split("\n");
}
/** The owners' claims on the installed node script: "claim-file owner". */
async function claims(n: FleetNode): Promise<string[]> {
  const r = await F.nodeExec(n, "/bin/sh", "-c", `cd ${REC}/claims 2>/dev/null && for f in *; do printf '%s %s\\n' "$f" "$(cat "$f")"; done`);
  return r.stdout.split("\n").filter((l) => l !== "").sort();
}

/** The root program's pieces for one node in `pulumi stack export`'s resources. */
const ofNode = (urns: string[], n: FleetNode) => urns.filter((u) => u.endsWith(`::${n.name}`) || u.includes(`::${n.name}:`));

// =====================================================================================================

describe("pulumi stack rm --force: the state goes, the nodes stay as they are", () => {
  let original: Map<FleetNode, string>;
  let origListing: Map<FleetNode, string[]>;
  const stacks: CliStack[] = [];
  beforeEach(async () => {
    await F.resetNodes(NODES);
    original = new Map(await Promise.all(NODES.map(async (n) => [n, (await F.nodeFile(n, CONFIG))!] as const)));
    origListing = new Map(await Promise.all(NODES.map(async (n) => [n, listing(await tree(n))] as const)));
  });
  afterAll(() => stacks.forEach((s) => s.dispose()));

  /** up a fresh stack; then `pulumi stack rm --force`, checking that nothing on the nodes moved. */
  async function deployThenRemove(): Promise<{ s: CliStack; deployed: Pictures }> {
    const s = await newStack();
    stacks.push(s);
    expect(summary(await up(s))).toContain(`+ ${RESOURCES} created`);
    const deployed = await pictures();

    // Without --force the CLI refuses a stack that still has resources.
    const refused = await s.cmd(["stack", "rm", "--yes"]);
    expect(refused.status).not.toBe(0);
    expect(text(refused)).toContain(`'${s.stack}' still has resources; removal rejected`);
    expect(text(refused)).toContain("Run `pulumi stack rm --force` to override this error");

    // The user's Pulumi.<stack>.yaml in the project folder: `stack rm` deletes it (unless --preserve-config).
    const inProject = path.join(F.REPO, `Pulumi.${s.stack}.yaml`);
    fs.copyFileSync(s.configFile, inProject);
    const rm = await s.cmd(["stack", "rm", "--force", "--yes"]);
    expect(rm.status).toBe(0);
    expect(rm.stdout).toContain(`Stack '${s.stack}' has been removed!`);
    expect(fs.existsSync(inProject)).toBe(false);
    const gone = await s.cmd(["stack", "export"]);
    expect(gone.status).not.toBe(0);
    expect(text(gone)).toContain(`no stack named '${s.stack}' found`);

    // No command ran: no connection, no restart, every entry under /etc/containerd as it was.
    await expectUntouched(deployed);
    for (const n of NODES) {
      expect(await owners(n)).toEqual([nodeUrn(s.stack, n), nodeUrn(s.stack, n)]);
      expect(await claims(n)).toEqual([`${claimName(nodeUrn(s.stack, n))} ${nodeUrn(s.stack, n)}`]);
    }
    return { s, deployed };
  }

  it("leaves every file, record and the running containerd as they are; the DIY backend's .bak brings the stack back (next up: no changes, no connection)", async () => {
    const { s, deployed } = await deployThenRemove();

    // The file:// backend keeps the removed stack's last checkpoint beside where it was.
    const bak = path.join(s.dir, "backend", ".pulumi", "stacks", PROJECT, `${s.stack}.json.bak`);
    expect(fs.existsSync(bak)).toBe(true);
    const checkpoint = JSON.parse(fs.readFileSync(bak, "utf8")) as { version: number; checkpoint: { latest: unknown } };
    const exportFile = path.join(s.dir, "recovered.json");
    fs.writeFileSync(exportFile, JSON.stringify({ version: 3, deployment: checkpoint.checkpoint.latest }), { mode: 0o600 });

    // Same name, same backend, the kept config file: stack init, stack import, up.
    await initWithConfig(s, s.configFile);
    const imported = await s.ok(["stack", "import", "--file", exportFile]);
    expect(imported.stdout).toContain("Import complete.");
    const again = await up(s, ["--expect-no-changes"]);
    expect(summary(again)).toBe(`${RESOURCES} unchanged`);
    await expectUntouched(deployed);
  });

  it("a new stack of the same name and spec takes the nodes back without writing or restarting; its destroy restores them completely", async () => {
    const { s, deployed } = await deployThenRemove();

    // A user who kept Pulumi.<stack>.yaml (or sets the same config again) re-creates the stack and runs up.
    const again = await newStack({ name: s.stack, backend: backendOf(s), configFrom: s.configFile });
    stacks.push(again);
    const r = await up(again);
    // The CLI knows nothing of the nodes: it creates every resource again.
    expect(summary(r)).toBe(`+ ${RESOURCES} created`);
    for (const n of NODES) {
      const was = deployed.get(n)!;
      const now = await picture(n);
      // One session per command (<node>:host, config.toml, hosts.toml); same bytes: nothing written,
      // no restart, no audit line, same containerd.
      expect(now.ssh - was.ssh).toBe(3);
      expect({ node: n.name, restarts: now.restarts, pid: now.pid, audit: now.audit, files: stable(now.tree) }).toEqual({ node: n.name, restarts: was.restarts, pid: was.pid, audit: was.audit, files: stable(was.tree) });
      // The same URN as before: the files are this stack's, its claim the one that was there.
      expect(await owners(n)).toEqual([nodeUrn(s.stack, n), nodeUrn(s.stack, n)]);
      expect(await claims(n)).toEqual([`${claimName(nodeUrn(s.stack, n))} ${nodeUrn(s.stack, n)}`]);
    }
    expect((await again.ok(["preview", "--expect-no-changes"])).stdout).toMatch(new RegExp(`${RESOURCES} unchanged`));

    // Its destroy restores the nodes as a destroy of the original stack would have (scenario 9).
    const before = await pictures();
    const d = await again.ok(["destroy", "--yes", "--skip-preview"]);
    expect(summary(d)).toBe(`- ${RESOURCES} deleted`);
    for (const n of NODES) {
      expect(await F.nodeFile(n, CONFIG)).toBe(original.get(n));
      expect(F.restarts(n)).toBe(before.get(n)!.restarts + 1);
      expect(await F.nodePathExists(n, HUB)).toBe(false);
      const left = listing(await tree(n)).filter((e) => !origListing.get(n)!.includes(e));
      expect(left.filter((e) => !TOLERATED_LEFTOVERS.includes(e))).toEqual([]);
      expect(((await F.nodeFile(n, AUDIT)) ?? "").trim().split("\n").pop()).toMatch(/ restore path=.* result=restored /);
    }
  });

  it("a stack of another name takes the files over (owner = its URN) without writing or restarting; its destroy restores them but leaves the removed stack's claim and the node script", async () => {
    const { s, deployed } = await deployThenRemove();

    const other = await newStack({ name: `${s.stack}-new`, backend: backendOf(s) });
    stacks.push(other);
    expect(summary(await up(other))).toBe(`+ ${RESOURCES} created`);
    for (const n of NODES) {
      const was = deployed.get(n)!;
      const now = await picture(n);
      expect(now.ssh - was.ssh).toBe(3);
      expect({ node: n.name, restarts: now.restarts, pid: now.pid, audit: now.audit, files: stable(now.tree) }).toEqual({ node: n.name, restarts: was.restarts, pid: was.pid, audit: was.audit, files: stable(was.tree) });
      // The files are the new stack's now; the removed stack's claim on the script is still there.
      expect(await owners(n)).toEqual([nodeUrn(other.stack, n), nodeUrn(other.stack, n)]);
      expect(await claims(n)).toEqual(
        [`${claimName(nodeUrn(s.stack, n))} ${nodeUrn(s.stack, n)}`, `${claimName(nodeUrn(other.stack, n))} ${nodeUrn(other.stack, n)}`].sort(),
      );
    }

    const before = await pictures();
    const d = await other.ok(["destroy", "--yes", "--skip-preview"]);
    expect(summary(d)).toBe(`- ${RESOURCES} deleted`);
    for (const n of NODES) {
      expect(await F.nodeFile(n, CONFIG)).toBe(original.get(n));
      expect(F.restarts(n)).toBe(before.get(n)!.restarts + 1);
      expect(await F.nodePathExists(n, HUB)).toBe(false);
      // Restored, but the removed stack never released its claim: the script and that claim stay.
      const left = listing(await tree(n)).filter((e) => !origListing.get(n)!.includes(e) && !TOLERATED_LEFTOVERS.includes(e));
      expect(left.sort()).toEqual(["./.containerd-node/claims d", `./.containerd-node/claims/${claimName(nodeUrn(s.stack, n))} f`, "./.containerd-node/containerd-node.sh f"].sort());
      expect(await claims(n)).toEqual([`${claimName(nodeUrn(s.stack, n))} ${nodeUrn(s.stack, n)}`]);
      // They hold no file: removing them by hand is all that is left to do.
      await F.nodeSh(n, `rm -r ${REC}/claims ${SCRIPT}`);
      const clean = listing(await tree(n)).filter((e) => !origListing.get(n)!.includes(e));
      expect(clean.filter((e) => !TOLERATED_LEFTOVERS.includes(e))).toEqual([]);
    }
  });
});

// =====================================================================================================

describe("pulumi state delete of one node", () => {
  let s: CliStack;
  beforeAll(async () => {
    await F.resetNodes(NODES);
    s = await newStack();
  });
  afterAll(async () => {
    await s?.cmd(["destroy", "--yes", "--skip-preview"]);
    s?.dispose();
  });

  it("needs --target-dependents, which also drops the next wave's file resources; the nodes keep everything, and the next up re-creates them with the same bytes (no write, no restart)", async () => {
    expect(summary(await up(s))).toBe(`+ ${RESOURCES} created`);
    const deployed = await pictures();
    const all = (await s.resources()).map((r) => r.urn);
    const target = nodeUrn(s.stack, N1);

    // Refused without the flag: the node has children (and the next wave waits on its config.toml).
    const refused = await s.cmd(["state", "delete", target, "--yes"]);
    expect(refused.status).not.toBe(0);
    expect(text(refused)).toContain(`${target} can't be safely deleted because the following resources depend on it:`);
    expect(text(refused)).toContain("Delete those resources first or pass --target-dependents.");
    const listed = text(refused).split("\n").flatMap((l) => /^ \* ".*" +\((urn:pulumi:.*)\)$/.exec(l)?.[1] ?? []);
    expect((await s.resources()).map((r) => r.urn)).toEqual(all);

    const del = await s.cmd(["state", "delete", target, "--target-dependents", "--yes"]);
    expect(del.status).toBe(0);
    // It says one resource, and drops every dependent with it.
    expect(del.stdout.trim()).toBe("Resource deleted");
    const left = (await s.resources()).map((r) => r.urn);
    const dropped = all.filter((u) => !left.includes(u));
    // The node, its four children, and node-3's config.toml and hosts.toml (wave 2 waits on wave 1's
    // files): the next wave's node loses its file resources from the state too.
    const n3Files = ofNode(all, N3).filter((u) => u.includes("command:remote:Command") && !u.endsWith(":host"));
    expect(dropped.sort()).toEqual([...ofNode(all, N1), ...n3Files].sort());
    expect(ofNode(dropped, N2)).toEqual([]);
    // Exactly what the refusal listed.
    expect([...listed, target].sort()).toEqual(dropped.sort());
    await expectUntouched(deployed);

    // The next preview shows them as new; the up creates them again; on the nodes the same bytes:
    // nothing written, no restart.
    expect(summary(await s.ok(["preview"]))).toBe(`+ ${dropped.length} to create ${RESOURCES - dropped.length} unchanged`);
    const r = await up(s);
    expect(summary(r)).toBe(`+ ${dropped.length} created ${RESOURCES - dropped.length} unchanged`);
    for (const n of NODES) {
      const was = deployed.get(n)!;
      const now = await picture(n);
      expect({ node: n.name, restarts: now.restarts, pid: now.pid, audit: now.audit, files: stable(now.tree) }).toEqual({ node: n.name, restarts: was.restarts, pid: was.pid, audit: was.audit, files: stable(was.tree) });
      expect(await owners(n)).toEqual([nodeUrn(s.stack, n), nodeUrn(s.stack, n)]);
      expect(await claims(n)).toEqual([`${claimName(nodeUrn(s.stack, n))} ${nodeUrn(s.stack, n)}`]);
    }
    // node-1: <node>:host, config.toml, hosts.toml; node-3: its two files; node-2: nothing.
    expect((await F.sshAccepted(N1)) - deployed.get(N1)!.ssh).toBe(3);
    expect((await F.sshAccepted(N2)) - deployed.get(N2)!.ssh).toBe(0);
    expect((await F.sshAccepted(N3)) - deployed.get(N3)!.ssh).toBe(2);
    expect(summary(await up(s, ["--expect-no-changes"]))).toBe(`${RESOURCES} unchanged`);
  });
});

// =====================================================================================================

describe("pulumi stack export, then pulumi stack import", () => {
  let s: CliStack;
  let deployed: Pictures;
  let exportFile: string;
  const others: CliStack[] = [];
  beforeAll(async () => {
    await F.resetNodes(NODES);
    s = await newStack();
    expect(summary(await up(s))).toBe(`+ ${RESOURCES} created`);
    deployed = await pictures();
    exportFile = path.join(s.dir, "exported.json");
    await s.ok(["stack", "export", "--file", exportFile]);
  });
  afterAll(async () => {
    await s?.cmd(["destroy", "--yes", "--skip-preview"]);
    s?.dispose();
    others.forEach((o) => o.dispose());
  });

  it("the exported file holds no private key or credential in plain text: secrets are ciphertext", async () => {
    const exported = fs.readFileSync(exportFile, "utf8");
    const key = N1.privateKey.split("\n").filter((l) => l.length > 20 && !l.startsWith("-----"));
    expect(key.length).toBeGreaterThan(0);
    for (const line of key) expect(exported).not.toContain(line);
    expect(exported).not.toContain(PASSWORD);
    expect(exported).not.toContain(Buffer.from(`robot:${PASSWORD}`).toString("base64"));
    const dep = JSON.parse(exported) as { deployment: { secrets_providers: { type: string }; resources: { urn: string; inputs?: Record<string, unknown> }[] } };
    expect(dep.deployment.secrets_providers.type).toBe("passphrase");
    // The connection (private key) of every command and the stdin of the credentialed hosts.toml are secrets.
    const secret = (v: unknown) => typeof v === "object" && v !== null && "ciphertext" in v && (v as Record<string, unknown>)["4dabf18193072939515e22adb298388d"] === "1b47061264138c4ac30d75fd1eb44270";
    for (const n of NODES) {
      const hosts = dep.deployment.resources.find((r) => r.urn.endsWith(`::${n.name}:${HUB}`))!;
      expect(secret(hosts.inputs!.connection)).toBe(true);
      expect(secret(hosts.inputs!.stdin)).toBe(true);
    }
    // Only --show-secrets writes them out in plain text.
    const shown = (await s.ok(["stack", "export", "--show-secrets"])).stdout;
    expect(shown).toContain(key[0]);
    expect(shown).toContain(Buffer.from(`robot:${PASSWORD}`).toString("base64"));
  });

  it("imported into the same stack: the next up changes nothing and opens no SSH connection", async () => {
    const r = await s.ok(["stack", "import", "--file", exportFile]);
    expect(r.stdout).toContain("Import complete.");
    expect(summary(await up(s, ["--expect-no-changes"]))).toBe(`${RESOURCES} unchanged`);
    await expectUntouched(deployed);
  });

  it("imported into a new stack of the same name (another backend, the same config file): the next up changes nothing and opens no SSH connection", async () => {
    const moved = await newStack({ name: s.stack, configFrom: s.configFile });
    others.push(moved);
    const r = await moved.ok(["stack", "import", "--file", exportFile]);
    expect(r.stdout).toContain("Import complete.");
    expect(summary(await up(moved, ["--expect-no-changes"]))).toBe(`${RESOURCES} unchanged`);
    await expectUntouched(deployed);
  });

  it("imported into a stack of another name: refused; with --force the next up creates everything under the new URNs and deletes the old ones: the new stack owns the files, nothing is written or restarted", async () => {
    const renamed = await newStack({ name: `${s.stack}-b` });
    others.push(renamed);
    const r = await renamed.cmd(["stack", "import", "--file", exportFile]);
    expect(r.status).not.toBe(0);
    expect(text(r)).toContain(`is from a different stack (${s.stack} != ${renamed.stack})`);
    expect(text(r)).toContain("importing this file could be dangerous; rerun with --force to proceed anyway");
    expect(await renamed.resources()).toEqual([]);
    await expectUntouched(deployed);

    // --force, as the message offers: imported with a warning per resource.
    const forced = await renamed.ok(["stack", "import", "--file", exportFile, "--force"]);
    expect(forced.stdout).toContain("Import complete.");
    expect(text(forced)).toContain(`is from a different stack (${s.stack} != ${renamed.stack})`);
    await expectUntouched(deployed);

    // The program's URNs name the new stack: every resource is created anew, the imported ones deleted.
    expect(summary(await renamed.ok(["preview"]))).toBe(`+ ${RESOURCES} to create - ${RESOURCES} to delete ${2 * RESOURCES} changes`);
    const before = await pictures();
    const u = await up(renamed);
    expect(summary(u)).toBe(`+ ${RESOURCES} created - ${RESOURCES} deleted ${2 * RESOURCES} changes`);
    for (const n of NODES) {
      const was = before.get(n)!;
      const now = await picture(n);
      // The new commands (3) apply the same bytes; the old ones' deletes (3) find a new owner and leave the files.
      expect(now.ssh - was.ssh).toBe(6);
      expect({ node: n.name, restarts: now.restarts, pid: now.pid, files: stable(now.tree).filter((l) => !l.includes("audit.log")) }).toEqual({ node: n.name, restarts: was.restarts, pid: was.pid, files: stable(was.tree).filter((l) => !l.includes("audit.log")) });
      const added = now.audit.slice(was.audit.length);
      expect(now.audit.slice(0, was.audit.length)).toEqual(was.audit);
      expect(added.map((l) => l.replace(/^\S+ /, "").replace(/ old=\S+ new=\S+/, ""))).toEqual(
        expect.arrayContaining([
          `restore path=${CONFIG} restarted=false result=left-to-new-owner owner=${nodeUrn(s.stack, n)} node=${n.name}`,
          `restore path=${HUB} restarted=false result=left-to-new-owner owner=${nodeUrn(s.stack, n)} node=${n.name}`,
        ]),
      );
      expect(added.length).toBe(2);
      expect(await owners(n)).toEqual([nodeUrn(renamed.stack, n), nodeUrn(renamed.stack, n)]);
      // The imported <node>:host's delete released the old owner's claim: only the new one is left.
      expect(await claims(n)).toEqual([`${claimName(nodeUrn(renamed.stack, n))} ${nodeUrn(renamed.stack, n)}`]);
    }
    expect(summary(await up(renamed, ["--expect-no-changes"]))).toBe(`${RESOURCES} unchanged`);

    // The original stack still records the nodes; its destroy leaves them to their new owner.
    const mid = await pictures();
    const d0 = await s.ok(["destroy", "--yes", "--skip-preview"]);
    expect(summary(d0)).toBe(`- ${RESOURCES} deleted`);
    for (const n of NODES) {
      const now = await picture(n);
      expect({ node: n.name, restarts: now.restarts, pid: now.pid, files: stable(now.tree).filter((l) => !l.includes("audit.log")) }).toEqual({ node: n.name, restarts: mid.get(n)!.restarts, pid: mid.get(n)!.pid, files: stable(mid.get(n)!.tree).filter((l) => !l.includes("audit.log")) });
      expect(now.audit.slice(mid.get(n)!.audit.length).every((l) => l.includes("result=left-to-new-owner"))).toBe(true);
      expect(await owners(n)).toEqual([nodeUrn(renamed.stack, n), nodeUrn(renamed.stack, n)]);
    }
    // The new stack's destroy restores the nodes.
    const d1 = await renamed.ok(["destroy", "--yes", "--skip-preview"]);
    expect(summary(d1)).toBe(`- ${RESOURCES} deleted`);
    for (const n of NODES) {
      expect(F.restarts(n)).toBe(mid.get(n)!.restarts + 1);
      expect(await F.nodePathExists(n, HUB)).toBe(false);
      expect(await F.nodePathExists(n, SCRIPT)).toBe(false);
      expect(((await F.nodeFile(n, AUDIT)) ?? "").trim().split("\n").pop()).toMatch(/ restore path=.* result=restored /);
    }
  });
});
