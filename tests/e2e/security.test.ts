/**
 * Secure by default, on the local fleet: host keys from the operator's known_hosts (written by
 * OpenSSH's own ssh-keyscan and ssh-keygen -H), refusal without one, "host key mismatch" with a wrong
 * one, the audit trail each node keeps, and the redacted diff of a hosts.toml holding credentials as
 * `pulumi preview --diff` shows it. Deployed through the real Pulumi engine (tests/support/engine.ts:
 * the CLI and the command provider, an inline program in this process). SSH sessions are counted by
 * the nodes' own sshd (F.sshAccepted); the specs set `readNode: false`, since these tests are about
 * the commands' host keys and files, not the program's read.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as zlib from "zlib";
import * as pulumi from "@pulumi/pulumi";
import type { PulumiFn } from "@pulumi/pulumi/automation";
import { ContainerdFleet, ContainerdNode, ContainerdNodeArgs } from "../../provider/src";
import { criPullImage, criRemoveImage } from "../support/cri";
import { COMMAND_TYPE, EngineStack, PASSPHRASE } from "../support/engine";
import { pulumiEnv, pulumiPath } from "../support/pulumi-env";
import * as F from "./fleet";
import type { FleetNode } from "./fleet";
import { AUDIT, CONFIG, HUB, MIRROR, MIRROR_B, connection, engineStack, fleet, nodeSpec, unpinnedConnection } from "./fixture";

jest.setTimeout(240_000);

const [N16, N23] = F.nodesByGeneration(fleet, ["1.6", "2.3"]);
const PASSWORD = "pw-audit-7f3";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "security-"));
beforeAll(() => F.resetNodes([N16, N23]), 180_000);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** No hostKey: the node's key must come from known_hosts (or hostKeyPolicy). docker.io's mirror takes credentials. */
const spec = (n: FleetNode, extra: Partial<ContainerdNodeArgs> = {}) =>
  nodeSpec(n, { registries: { "docker.io": { mirrors: [{ url: MIRROR, auth: { username: "robot", password: PASSWORD } }] } }, connection: unpinnedConnection(n), ...extra });

function program(specs: [FleetNode, ContainerdNodeArgs][]): PulumiFn {
  return async () => {
    for (const [n, s] of specs) new ContainerdNode(n.name, s);
    return {};
  };
}

function keyscan(n: FleetNode): string {
  const r = spawnSync("ssh-keyscan", ["-p", String(n.port), "-t", "ed25519", n.host], { encoding: "utf8", timeout: 30_000 });
  expect(r.stdout).toContain("ssh-ed25519");
  return r.stdout;
}

const engine = () => engineStack("security");
/** The Authorization header hosts.toml carries for robot:PASSWORD. */
const BASIC = `Basic ${Buffer.from(`robot:${PASSWORD}`).toString("base64")}`;

/** The lines the CLI's display gives one resource (after its `[urn=...]` line, up to the next resource), trimmed. */
function blockOf(stdout: string, urnTail: string): string[] {
  const lines = stdout.split("\n");
  const start = lines.findIndex((l) => l.trim().startsWith("[urn=") && l.trim().endsWith(`${urnTail}]`));
  if (start === -1) throw new Error(`no resource ending ${urnTail} in the display:\n${stdout}`);
  const out: string[] = [];
  for (const l of lines.slice(start + 1)) {
    if (/^\s*([-+~]+\s*)?[\w-]+:[\w-]+:[\w-]+: \(/.test(l) || /^\s*Resources:/.test(l)) break;
    out.push(l.trim());
  }
  return out;
}

/**
 * `pulumi stack export` as a user runs it, in the stack's project folder (EngineStack's work
 * directory: its Pulumi.yaml names the backend); EngineStack.state() asks for --show-secrets.
 */
function rawExport(h: EngineStack): string {
  const r = spawnSync(pulumiPath(), ["stack", "export", "--stack", h.stackName, "--non-interactive"], {
    cwd: h.dir,
    env: pulumiEnv({ PULUMI_CONFIG_PASSPHRASE: PASSPHRASE }),
    encoding: "utf8",
    timeout: 120_000,
  });
  if (r.status !== 0) throw new Error(`pulumi stack export exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** Every file of the stack's file backend (state, backups, history), as text (gunzipped where gzipped). */
function backendFiles(h: EngineStack): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else {
        const b = fs.readFileSync(p);
        out.push((b[0] === 0x1f && b[1] === 0x8b ? zlib.gunzipSync(b) : b).toString("utf8"));
      }
    }
  };
  walk(path.join(h.dir, "backend"));
  expect(out.length).toBeGreaterThan(0);
  return out;
}

/** Where `needle` occurs outside a secret value ({"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", ...}) of a state. */
function outsideSecrets(v: unknown, needle: string, at = "$"): string[] {
  if (typeof v === "string") return v.includes(needle) ? [at] : [];
  if (Array.isArray(v)) return v.flatMap((x, i) => outsideSecrets(x, needle, `${at}[${i}]`));
  if (v && typeof v === "object") {
    if ((v as Record<string, unknown>)["4dabf18193072939515e22adb298388d"] === "1b47061264138c4ac30d75fd1eb44270") return [];
    return Object.entries(v).flatMap(([k, x]) => outsideSecrets(x, needle, `${at}.${k}`));
  }
  return [];
}

test("a node with no pinned key and no known_hosts entry is refused before any SSH session", async () => {
  const knownHostsFile = path.join(dir, "empty_known_hosts");
  fs.writeFileSync(knownHostsFile, "");
  const h = engine();
  try {
    const sessions = await F.sshAccepted(N16);
    // The read left on (its default), so that nothing at all may dial the node.
    const res = await h.up(program([[N16, spec(N16, { knownHostsFile, readNode: true })]]));
    expect(res.ok).toBe(false);
    expect(res.error!.message).toContain(`connection.hostKey: is not set and ${N16.host} has no ed25519, ecdsa or rsa key in ${knownHostsFile}`);
    expect(res.error!.message).toContain(`ssh-keyscan -t ed25519 ${N16.host} >> ${knownHostsFile}`);
    expect(res.steps.filter((s) => s.type === COMMAND_TYPE)).toEqual([]);
    expect(await F.sshAccepted(N16)).toBe(sessions);
    expect(await F.nodePathExists(N16, HUB)).toBe(false);
  } finally {
    h.dispose();
  }
});

// Without a hostKey, known_hosts decides; a JavaScript program's null, or a Python or Go program's
// None or nil inside a connection Output, must count as missing too (the provider alone would take
// either as "no hostKey" and accept any host key).
test.each([
  ["left out", (c: Record<string, unknown>) => c],
  ["given as a plain null", (c: Record<string, unknown>) => ({ ...c, hostKey: null })],
  ["given as null inside an Output", (c: Record<string, unknown>) => pulumi.output({ ...c, hostKey: null })],
])("hostKey %s and a wrong key in known_hosts: the node's commands fail with 'host key mismatch' and nothing is written", async (what, connectionOf) => {
  const wrong = path.join(dir, `wrong_known_hosts_${what.replace(/\W+/g, "_")}`);
  const impostorKey = path.join(dir, `impostor_${what.replace(/\W+/g, "_")}`);
  spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", impostorKey]);
  const impostor = fs.readFileSync(`${impostorKey}.pub`, "utf8").split(" ").slice(0, 2).join(" ");
  fs.writeFileSync(wrong, `${N16.host} ${impostor}\n`);
  const before = fs.readFileSync(N16.configToml, "utf8");
  const h = engine();
  try {
    const sessions = await F.sshAccepted(N16);
    const base = spec(N16, { knownHostsFile: wrong });
    const res = await h.up(program([[N16, { ...base, connection: connectionOf(base.connection as unknown as Record<string, unknown>) as never }]]));
    expect(res.ok).toBe(false);
    const failed = res.steps.filter((s) => s.type === COMMAND_TYPE && !s.ok);
    expect(failed.length).toBeGreaterThan(0);
    expect(failed[0].error).toContain("host key mismatch");
    // The handshake stopped at the host key: the node's sshd accepted no session.
    expect(await F.sshAccepted(N16)).toBe(sessions);
    expect(fs.readFileSync(N16.configToml, "utf8")).toBe(before);
    expect(await F.nodePathExists(N16, HUB)).toBe(false);
  } finally {
    h.dispose();
  }
});

describe("keys from known_hosts written by ssh-keyscan, plain and hashed; audit trail; redacted diffs", () => {
  let h: EngineStack;
  beforeAll(() => (h = engine()));
  afterAll(() => h?.dispose());
  const plain = path.join(os.tmpdir(), `kh-plain-${process.pid}`);
  const hashed = path.join(os.tmpdir(), `kh-hashed-${process.pid}`);
  afterAll(() => [plain, hashed, `${hashed}.old`].forEach((f) => fs.rmSync(f, { force: true })));
  let specs: [FleetNode, ContainerdNodeArgs][];

  test("the nodes deploy with the keys ssh-keyscan recorded (N16 plain, N23 hashed by ssh-keygen -H)", async () => {
    fs.writeFileSync(plain, keyscan(N16));
    fs.writeFileSync(hashed, keyscan(N23));
    expect(spawnSync("ssh-keygen", ["-H", "-f", hashed]).status).toBe(0);
    expect(fs.readFileSync(hashed, "utf8")).not.toContain(N23.host);
    specs = [
      [N16, spec(N16, { knownHostsFile: plain })],
      [N23, spec(N23, { knownHostsFile: hashed })],
    ];
    const res = await h.up(program(specs));
    expect(res.error?.message).toBeUndefined();
    for (const n of [N16, N23]) expect(await F.nodeFile(n, HUB)).toContain(`[host."${MIRROR}"]`);
  });

  test("each node's audit trail has one line per file applied: paths, sha256 sums (none of a secret file), outcome, owner; no credential", async () => {
    for (const n of [N16, N23]) {
      const audit = (await F.nodeFile(n, AUDIT))!;
      expect(audit).toMatch(new RegExp(`apply path=${HUB} old=none new=secret restarted=false result=applied owner=[^ ]+::${n.name} node=${n.name}`));
      expect(audit).toMatch(new RegExp(`apply path=${CONFIG} old=[0-9a-f]{64} new=[0-9a-f]{64} restarted=true result=healthy owner=[^ ]+::${n.name}`));
      expect(audit).not.toContain(PASSWORD);
      expect(audit).not.toContain(BASIC.slice("Basic ".length));
      expect((await F.nodeSh(n, `stat -c %a ${AUDIT}`)).trim()).toBe("600");
    }
  });

  test("a mirror change in a registry with credentials: `pulumi preview --diff` shows it line by line, with the credential masked", async () => {
    const changed: [FleetNode, ContainerdNodeArgs][] = specs.map(([n, s]) => [
      n,
      { ...s, registries: { "docker.io": { mirrors: [{ url: MIRROR_B, auth: { username: "robot", password: PASSWORD } }] } } },
    ]);
    const res = await h.preview(program(changed));
    expect(res.error?.message).toBeUndefined();
    for (const n of [N16, N23]) {
      const secretStep = res.steps.find((s) => s.name === `${n.name}:${HUB}`)!;
      expect(secretStep.op).toBe("update");
      const shadow = res.steps.find((s) => s.name === `${n.name}:${HUB} (redacted)`)!;
      expect(shadow.op).toBe("update");
      expect(shadow.diffKeys).toEqual(["stdin"]);
      expect(String(shadow.oldInputs!.stdin)).toContain(`[host."${MIRROR}"]`);
      expect(String(shadow.newInputs!.stdin)).toContain(`[host."${MIRROR_B}"]`);
      expect(String(shadow.newInputs!.stdin)).toContain('Authorization = "[redacted]"');

      // What the CLI shows the user. The secret file: its stdin changes, and says nothing more.
      expect(blockOf(res.stdout, `command:remote:Command::${n.name}:${HUB}`)).toContainEqual(expect.stringMatching(/^~ stdin: \[secret\] => \[secret\]$/));
      // Its redacted companion: the mirror's lines, old and new, next to the masked, unchanged header.
      const diff = blockOf(res.stdout, `command:local:Command::${n.name}:${HUB} (redacted)`);
      expect(diff).toContainEqual(expect.stringMatching(/^~ stdin: ?$/));
      const at = (line: string) => diff.indexOf(line);
      expect(at(`- [host."${MIRROR}"]`)).toBeGreaterThan(0);
      expect(at(`+ [host."${MIRROR_B}"]`)).toBe(at(`- [host."${MIRROR}"]`) + 1);
      expect(at(`- [host."${MIRROR}".header]`)).toBeGreaterThan(at(`+ [host."${MIRROR_B}"]`));
      expect(at(`+ [host."${MIRROR_B}".header]`)).toBe(at(`- [host."${MIRROR}".header]`) + 1);
      expect(at('Authorization = "[redacted]"')).toBe(at(`+ [host."${MIRROR_B}".header]`) + 1);
    }
    expect(JSON.stringify(res.steps.filter((s) => s.name.endsWith("(redacted)")))).not.toMatch(/pw-audit-7f3|Basic /);
    // No credential anywhere in what the CLI printed (the password, or the header built from it).
    for (const text of [res.stdout, res.stderr, res.warnings.join("\n"), JSON.stringify(res.steps)]) {
      expect(text).not.toContain(PASSWORD);
      expect(text).not.toContain(BASIC.slice("Basic ".length));
      // Nor any Basic credential at all (the warnings may speak of "Basic auth").
      expect(text).not.toMatch(/Basic [A-Za-z0-9+/]{12,}/);
    }

    // Nor in the state: `pulumi stack export` (as a user runs it, secrets encrypted) and every file
    // of the backend (the state, its backups and history).
    const exported = rawExport(h);
    expect(exported).toContain(`${N16.name}:${HUB} (redacted)`);
    // (the secret hosts.toml is in it, encrypted)
    expect(exported).toContain('"ciphertext"');
    for (const text of [exported, ...backendFiles(h)]) {
      expect(text).not.toContain(PASSWORD);
      expect(text).not.toContain(BASIC.slice("Basic ".length));
    }
    // Decrypted (`stack export --show-secrets`, what EngineStack.state() gives), the credential is
    // there, and only inside values marked secret; the companion holds the mask.
    const state = await h.state();
    expect(JSON.stringify(state)).toContain(BASIC);
    expect(outsideSecrets(state, PASSWORD)).toEqual([]);
    expect(outsideSecrets(state, BASIC)).toEqual([]);
    const companion = state.find((r) => r.urn.endsWith(`::${N16.name}:${HUB} (redacted)`))!;
    expect(String(companion.inputs!.stdin)).toContain(`[host."${MIRROR}".header]\nAuthorization = "[redacted]"`);
  });

  test("destroy restores each node, and the audit trail records the restores", async () => {
    const res = await h.destroy();
    expect(res.ok).toBe(true);
    for (const n of [N16, N23]) {
      expect(await F.nodePathExists(n, HUB)).toBe(false);
      const audit = (await F.nodeFile(n, AUDIT))!;
      expect(audit).toMatch(new RegExp(`restore path=${HUB} old=secret new=none restarted=false result=restored`));
      expect(audit).toMatch(new RegExp(`restore path=${CONFIG} old=[0-9a-f]{64} new=[0-9a-f]{64} restarted=true result=restored`));
    }
  });
});

test('removing a registry under onDelete "keep" still removes the hosts.toml that holds its credentials', async () => {
  const QUAY = "/etc/containerd/certs.d/quay.io/hosts.toml";
  const h = engine();
  const pinned = (regs: ContainerdNodeArgs["registries"]) =>
    spec(N16, { onDelete: "keep", registries: regs, connection: connection(N16) });
  try {
    const withBoth = { "docker.io": { mirrors: [{ url: MIRROR, auth: { username: "robot", password: "pw-keep-1" } }] }, "quay.io": { mirrors: [MIRROR] } };
    expect((await h.up(program([[N16, pinned(withBoth)]]))).error?.message).toBeUndefined();
    expect(await F.nodeFile(N16, HUB)).toContain("Authorization");
    const res = await h.up(program([[N16, pinned({})]]));
    expect(res.error?.message).toBeUndefined();
    // The credential is gone from the node; the registry without one stays, as "keep" says.
    expect(await F.nodePathExists(N16, HUB)).toBe(false);
    expect(await F.nodeFile(N16, QUAY)).toContain(`[host."${MIRROR}"]`);
  } finally {
    h.dispose();
  }
});

test("moving a standalone node into a fleet never wipes it: the new resources take the files over, the old deletes leave them", async () => {
  const n = N23;
  const h = engine();
  const pinned = connection(n);
  const registries = { "docker.io": { mirrors: [MIRROR] } };
  try {
    const first = await h.up(async () => void new ContainerdNode(n.name, { containerdVersion: n.containerdVersion, systemdCgroup: true, registries, connection: pinned, readNode: false }));
    expect(first.error?.message).toBeUndefined();
    const config = fs.readFileSync(n.configToml, "utf8");
    const restarts = F.restarts(n);
    // The same node, now inside a fleet: new URNs for every file resource.
    const moved = await h.up(async () => void new ContainerdFleet("fleet", { containerdVersion: n.containerdVersion, systemdCgroup: true, registries, readNode: false, nodes: [{ name: n.name, connection: pinned }] }));
    expect(moved.error?.message).toBeUndefined();
    const ops = moved.steps.filter((s) => s.type === COMMAND_TYPE).map((s) => s.op).sort();
    // Two files and the host resource each side; the old host resource's release finds nothing of its own.
    expect(ops).toEqual(["create", "create", "create", "delete", "delete", "delete"]);
    // Nothing was restored: the files are there, unchanged, and containerd did not restart.
    expect(fs.readFileSync(n.configToml, "utf8")).toBe(config);
    expect(await F.nodeFile(n, HUB)).toContain(`[host."${MIRROR}"]`);
    expect(F.restarts(n)).toBe(restarts);
    expect(await F.nodeFile(n, AUDIT)).toContain("result=left-to-new-owner");
    // And the new owner's destroy restores the node.
    expect((await h.destroy()).ok).toBe(true);
    expect(await F.nodePathExists(n, HUB)).toBe(false);
  } finally {
    h.dispose();
  }
});

describe("registry credentials against a mirror that checks them (docker-registry with htpasswd, Basic auth)", () => {
  const AUTH = fleet.registry.authMirror;
  const TINY = "docker.io/library/tiny:1.0";
  let h: EngineStack;
  beforeAll(() => (h = engine()));
  afterAll(async () => {
    await h?.destroy();
    h?.dispose();
  });
  const pinned = (n: FleetNode, auth?: { username: string; password: string }) =>
    spec(n, {
      registries: { "docker.io": { mirrors: [{ url: AUTH.url, ...(auth ? { auth } : {}) }] } },
      connection: connection(n),
    });
  const pull = async (n: FleetNode) => {
    await criRemoveImage(n.containerdSocket, TINY).catch(() => undefined);
    return criPullImage(n.containerdSocket, TINY, { timeoutMs: 60_000 }).then(
      () => "pulled",
      (e: Error) => `failed: ${e.message}`,
    );
  };

  test.each([N16, N23])("$containerdVersion ($name): pulls with the right credentials, fails without them or with wrong ones", async (n) => {
    // The mirror's log is appended to across runs: only what this test adds counts.
    const authLog = path.join(fleet.stateDir, "registry", "5002.log");
    const authLogOffset = F.logSize(authLog);
    for (const [auth, want] of [
      [undefined, /^failed/],
      [{ username: AUTH.username, password: "wrong-password" }, /^failed/],
      [{ username: AUTH.username, password: AUTH.password }, /^pulled$/],
    ] as const) {
      const res = await h.up(program([[n, pinned(n, auth)]]));
      expect(res.error?.message).toBeUndefined();
      expect(await pull(n)).toMatch(want);
    }
    // The mirror itself checked them: from this node it refused no credentials and the wrong ones,
    // and served the right ones.
    const log = fs
      .readFileSync(authLog, "utf8")
      .slice(authLogOffset)
      .split("\n")
      .filter((l) => l.includes(`remoteaddr="${n.host}:`) || l.startsWith(`${n.host} `));
    const text = log.join("\n");
    expect(text).toContain("invalid authorization credential");
    expect(text).toContain(`error authenticating user \\"${AUTH.username}\\": authentication failure`);
    expect(text).toMatch(/"(GET|HEAD) \/v2\/library\/tiny\/manifests\/1\.0\?ns=docker\.io HTTP\/1\.1" 401/);
    expect(text).toMatch(/"(GET|HEAD) \/v2\/library\/tiny\/manifests\/1\.0\?ns=docker\.io HTTP\/1\.1" 200/);
  });
});
