/**
 * The node script, run for real by dash (Debian's /bin/sh, what sshd runs the command with) against
 * real containerd daemons in scratch directories: containerd 1.6.20 (config version 2), 2.1.9 (3) and
 * 2.3.7 (4).
 */
import { spawn, spawnSync } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { type NodeSpec, renderNode } from "../../provider/src";
import {
  INSTALLED_SCRIPT,
  INSTALL_SCRIPT,
  NodeCommandOptions,
  RUN_SCRIPT,
  SENT_SCRIPT,
  applyCommand,
  installCommand,
  putBackCommand,
  releaseCommand,
  restoreCommand,
  scriptPathFor,
  setAsideCommand,
  shellQuote,
} from "../../provider/src/remote/commands";
import { END_MARKER_LINE, NODE_SCRIPT, SCRIPT_REVISION } from "../../provider/src/remote/node-script";
import { fullReference } from "../../provider/src/spec/image-reference";
import { configDump } from "../support/config-dump";
import { containerdBinaries } from "../support/containerd-binaries";
import { ScratchNode, scratchNode } from "../support/scratch-node";

jest.setTimeout(120_000);

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, stdin = ""): Run {
  const r = spawnSync("dash", ["-c", command], { input: stdin, encoding: "utf8", timeout: 110_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function runAsync(command: string, stdin: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn("dash", ["-c", command]);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (status) => resolve({ status, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

const read = (p: string) => fs.readFileSync(p, "utf8");
const modeOf = (p: string) => fs.statSync(p).mode & 0o777;

/** Runs config.toml's restore and checks that it put the original back with one restart. */
function restoreConfig(node: ScratchNode, opts: NodeCommandOptions, original: string): void {
  const restarts = node.restarts();
  const r = run(restoreCommand({ path: node.configFile, mode: 0o644, kind: "config" }, opts));
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  expect(read(node.configFile)).toBe(original);
  expect(node.restarts()).toBe(restarts + 1);
}

/** The command options for a scratch node: its binaries, socket, lock, restart script and script path. */
function scratchOptions(node: ScratchNode, label: string, owner: string, healthTimeoutSeconds: number, configVersion: NodeCommandOptions["configVersion"]): NodeCommandOptions {
  return {
    label,
    lockFile: node.lockFile,
    containerd: node.bin.containerd,
    ctr: node.bin.ctr,
    grpcAddress: node.socket,
    restartCommand: `sh ${shellQuote(node.restartScript)} ${shellQuote(node.dir)} ${shellQuote(node.bin.binDir)}`,
    healthTimeoutSeconds,
    configVersion,
    minimumVersion: node.bin.version,
    healthChecks: [],
    owner,
    sudo: false,
    script: scriptPathFor(node.configFile),
  };
}

/** What the node's host resource does first: install the node script and claim it. */
function installScript(opts: NodeCommandOptions): void {
  const r = run(installCommand(opts), INSTALLED_SCRIPT);
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
}

function criStatus(node: ScratchNode): string {
  const r = spawnSync(node.bin.ctr, ["--address", node.socket, "plugins", "ls"], { encoding: "utf8" });
  const line = r.stdout.split("\n").find((l) => /^io\.containerd\.grpc\.v1\s+cri\s/.test(l));
  return line ? line.trim().split(/\s+/).pop()! : `no answer: ${r.stderr}`;
}

describe.each(["1.6", "2.1", "2.3"] as const)("node script against containerd %s", (gen) => {
  let node: ScratchNode;
  let opts: NodeCommandOptions;
  let original: string;

  const configRef = () => ({ path: node.configFile, mode: 0o644, kind: "config" as const });
  const render = (extra: object = {}) => {
    const base = node.baseSpec();
    const spec = { ...base, ...extra, settings: { ...(base.settings ?? {}), ...((extra as { settings?: object }).settings ?? {}) } };
    return renderNode(spec);
  };
  const configOf = (extra: object = {}) => render(extra).files.find((f) => f.kind === "config")!.content;
  const apply = (content: string, o: Partial<NodeCommandOptions> = {}) => run(applyCommand(configRef(), { ...opts, ...o }), content);

  beforeAll(() => {
    node = scratchNode(gen);
    opts = scratchOptions(node, `scratch-${gen}`, `test/scratch/${gen}`, 15, renderNode(node.baseSpec()).configVersion);
    installScript(opts);
    // The node's own config before we manage it: a plain file like an installer leaves.
    original = configOf().replace(/^# Managed.*\n/, "# written by the installer\n");
    fs.writeFileSync(node.configFile, original, { mode: 0o644 });
    const r = run(opts.restartCommand);
    expect(r.stderr).toBe("");
    expect(criStatus(node)).toBe("ok");
  });
  afterAll(() => node?.remove());

  it("installs a new config.toml atomically, keeps the original, restarts once, and is healthy", () => {
    const pid = node.pid();
    const restarts = node.restarts();
    const content = configOf({ systemdCgroup: true, sandboxImage: "registry.aliyuncs.com/google_containers/pause:3.9" });
    const r = apply(content);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ path: node.configFile, written: true, restarted: true });
    expect(read(node.configFile)).toBe(content);
    expect(modeOf(node.configFile)).toBe(0o644);
    expect(read(path.join(node.dir, "etc/containerd/.containerd-node/config.toml.original"))).toBe(original);
    expect(node.restarts()).toBe(restarts + 1);
    expect(node.pid()).not.toBe(pid);
    expect(criStatus(node)).toBe("ok");
    // No temp files are left behind.
    expect(fs.readdirSync(path.dirname(node.configFile)).filter((f) => f.startsWith(".config.toml."))).toEqual([]);
  });

  it("leaves one audit line per apply, without any secret, in a root-only file where there is no syslog socket", () => {
    const audit = path.join(path.dirname(node.lockFile), ".containerd-node", "audit.log");
    const count = () => read(audit).trim().split("\n").length;
    const before = count();
    expect(apply(configOf({ systemdCgroup: true, maxConcurrentDownloads: 17 })).status).toBe(0);
    expect(count()).toBe(before + 1);
    const lines = read(audit).trim().split("\n");
    const last = lines[lines.length - 1];
    const sha = createHash("sha256").update(read(node.configFile)).digest("hex");
    expect(last).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT[0-9:]+Z apply path=${node.configFile} old=[0-9a-f]{64} new=${sha} restarted=true result=healthy owner=test/scratch/${gen} node=scratch-${gen}$`));
    expect(modeOf(audit)).toBe(0o600);
  });

  it("does nothing for identical content: no write, no restart", () => {
    const pid = node.pid();
    const restarts = node.restarts();
    const before = fs.statSync(node.configFile).mtimeMs;
    const r = apply(read(node.configFile));
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ path: node.configFile, written: false, restarted: false });
    expect(node.restarts()).toBe(restarts);
    expect(node.pid()).toBe(pid);
    expect(fs.statSync(node.configFile).mtimeMs).toBe(before);
  });

  it("records a repair's drift token, and forgets it when an apply comes without one (its node was not read)", () => {
    const repair = path.join(path.dirname(node.configFile), ".containerd-node", `${path.basename(node.configFile)}.repair`);
    const same = read(node.configFile);
    const withToken = run(applyCommand(configRef(), opts, "00ff00ff00ff00ff"), same);
    expect(withToken.status).toBe(0);
    const restarts = node.restarts();
    expect(read(repair)).toBe("00ff00ff00ff00ff\n");
    const without = apply(same);
    expect(without.status).toBe(0);
    expect(JSON.parse(without.stdout)).toMatchObject({ written: false, restarted: false });
    expect(fs.existsSync(repair)).toBe(false);
    expect(node.restarts()).toBe(restarts);
  });

  it("writes hosts.toml and certificates without restarting, with their modes, and skips identical ones", () => {
    const restarts = node.restarts();
    const r = render({ registries: { "docker.io": { mirrors: [{ url: "https://m.test", auth: { username: "u", password: "p'\"$(x)" } }] } } });
    const hosts = r.files.find((f) => f.kind === "hosts")!;
    const cmd = applyCommand(hosts, opts);
    expect(cmd).not.toContain("p'");
    const first = run(cmd, hosts.content);
    expect(first.status).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ path: hosts.path, written: true, restarted: false });
    expect(read(hosts.path)).toBe(hosts.content);
    expect(modeOf(hosts.path)).toBe(0o600);
    expect(fs.existsSync(path.join(path.dirname(hosts.path), ".containerd-node", "hosts.toml.absent"))).toBe(true);
    const again = run(cmd, hosts.content);
    expect(JSON.parse(again.stdout).written).toBe(false);
    expect(node.restarts()).toBe(restarts);
  });

  it("refuses content that arrived incomplete, changing nothing", () => {
    const before = read(node.configFile);
    const pid = node.pid();
    const content = configOf({ maxConcurrentDownloads: 7 });
    const r = apply(content.slice(0, content.length - END_MARKER_LINE.length - 5));
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("arrived incomplete (no end marker); nothing changed");
    expect(read(node.configFile)).toBe(before);
    expect(node.pid()).toBe(pid);
  });

  it("refuses a config containerd rejects, with containerd's message; file and daemon untouched", () => {
    const before = read(node.configFile);
    const pid = node.pid();
    const restarts = node.restarts();
    const bad = `version = ${opts.configVersion}\nroot = 42\n${END_MARKER_LINE}\n`;
    const r = apply(bad);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`containerd ${node.bin.version.replace(/\./g, "\\.")} rejected the new .*config\\.toml; nothing changed: .*`));
    expect(read(node.configFile)).toBe(before);
    expect(node.pid()).toBe(pid);
    expect(node.restarts()).toBe(restarts);
  });

  it("refuses a config of the other major version, naming both versions", () => {
    const before = read(node.configFile);
    const other = gen === "1.6" ? { configVersion: 3 as const, minimumVersion: "2.1.0" } : { configVersion: 2 as const, minimumVersion: "1.7.0" };
    const r = apply(`version = ${other.configVersion}\n${END_MARKER_LINE}\n`, other);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`refusing a version ${other.configVersion} config.toml: the node runs containerd ${node.bin.version}, but the spec renders for containerd ${other.minimumVersion}`);
    expect(read(node.configFile)).toBe(before);
  });

  it("refuses a hosts.toml rendered for the other major version too, leaving the file as it was", () => {
    const other = gen === "1.6" ? { configVersion: 3 as const, minimumVersion: "2.2.0" } : { configVersion: 2 as const, minimumVersion: "1.7.0" };
    const file = { path: path.join(node.registryConfigPath, "guarded.test", "hosts.toml"), mode: 0o644, kind: "hosts" as const };
    const r = run(applyCommand(file, { ...opts, ...other }), `server = "https://guarded.test"\n${END_MARKER_LINE}\n`);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`refusing ${file.path}: the node runs containerd ${node.bin.version}, but the spec renders for containerd ${other.minimumVersion}`);
    expect(fs.existsSync(file.path)).toBe(false);
  });

  it("asks the running daemon for its version, not the containerd binary first on PATH (a tarball upgrade in progress)", () => {
    // The binary on PATH is another generation's; the daemon that runs is this node's.
    const other = containerdBinaries(gen === "1.6" ? "2.1" : "1.6");
    const file = { path: path.join(node.registryConfigPath, "upgrade.test", "hosts.toml"), mode: 0o644, kind: "hosts" as const };
    const r = run(applyCommand(file, { ...opts, containerd: other.containerd }), `server = "https://upgrade.test"\n${END_MARKER_LINE}\n`);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    // With no daemon to ask (a wrong socket), the binary's own version decides, and refuses.
    const refused = run(applyCommand({ ...file, path: path.join(node.registryConfigPath, "upgrade2.test", "hosts.toml") }, { ...opts, containerd: other.containerd, grpcAddress: path.join(node.dir, "nothing.sock") }), `server = "https://upgrade2.test"\n${END_MARKER_LINE}\n`);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain(`the node runs containerd ${other.version}`);
  });

  it("refuses a node older than the spec's containerdVersion", () => {
    const newer = `${gen}.99`;
    const r = apply(configOf({ maxConcurrentDownloads: 9 }), { minimumVersion: newer });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`the node runs containerd ${node.bin.version}, older than containerdVersion ${newer}`);
  });

  if (gen !== "1.6") {
    it("reports containerd's own deprecations after the apply (a cni.bin_dir that 2.x deprecates)", () => {
      const content = configOf({ settings: { plugins: { "io.containerd.cri.v1.runtime": { cni: { bin_dir: path.join(node.dir, "cni-bin") } } } } });
      const r = apply(content);
      expect(r.stderr).toBe("");
      const report = JSON.parse(r.stdout) as { deprecations: { id: string; message: string }[] };
      expect(report.deprecations.map((d) => d.id)).toContain("io.containerd.deprecation/cri-cni-bin-dir");
      expect(report.deprecations.find((d) => d.id.endsWith("cri-cni-bin-dir"))!.message).toMatch(/bin_dir/);
      // Back to a file without it: containerd forgets the warning at its restart.
      const clean = apply(configOf());
      expect(clean.status).toBe(0);
      expect((JSON.parse(clean.stdout) as { deprecations: { id: string }[] }).deprecations.map((d) => d.id)).not.toContain("io.containerd.deprecation/cri-cni-bin-dir");
    });

    it("refuses a config whose keys containerd 2.x would ignore", () => {
      const bad = configOf().replace(END_MARKER_LINE, `[plugins."io.containerd.cri.v1.images".bogus]\nsetting = 1\n${END_MARKER_LINE}`);
      const r = apply(bad);
      expect(r.status).toBe(1);
      expect(r.stderr).toContain("would ignore keys of the new");
      expect(r.stderr).toContain("Ignoring unknown key");
    });
  }

  /** Passes `config dump` but breaks the CRI plugin (containerd-facts: 1.x legacy mirrors, 2.x a missing default runtime). */
  const breaksCri = (extra: object = {}) =>
    gen === "1.6"
      ? configOf(extra).replace(END_MARKER_LINE, `[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]\nendpoint = ["https://m.test"]\n${END_MARKER_LINE}`)
      : configOf({ ...extra, settings: { plugins: { "io.containerd.cri.v1.runtime": { containerd: { default_runtime_name: "missing" } } } } });

  it("rolls back by itself when the new config breaks CRI although `config dump` accepts it", () => {
    const before = read(node.configFile);
    const restarts = node.restarts();
    const breaking = breaksCri();
    expect(configDump(node.bin, breaking).status).toBe(0);
    const r = apply(breaking, { healthTimeoutSeconds: 5 });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/containerd was not healthy with the new .*config\.toml \(CRI plugin .* is (error|missing)/);
    expect(r.stderr).toContain("rolled back to the previous config.toml and containerd is healthy again");
    expect(read(node.configFile)).toBe(before);
    expect(node.restarts()).toBe(restarts + 2);
    expect(criStatus(node)).toBe("ok");
    // The audit trail says so: the node is back on the file it had (new = old).
    const last = read(path.join(path.dirname(node.lockFile), ".containerd-node", "audit.log")).trim().split("\n").pop()!;
    const sha = createHash("sha256").update(before).digest("hex");
    expect(last).toContain(`rollback path=${node.configFile} old=${sha} new=${sha} restarted=true result=healthy-again owner=test/scratch/${gen}`);
  });

  it("rolls back to the last config confirmed healthy, not to one an interrupted apply left unconfirmed", () => {
    const confirmed = configOf({ maxConcurrentDownloads: 41 });
    expect(apply(confirmed).status).toBe(0);
    // An apply renamed its file into place and was cut before the restart: on disk, never confirmed.
    const unconfirmed = configOf({ maxConcurrentDownloads: 42 });
    fs.writeFileSync(node.configFile, unconfirmed);
    const r = apply(breaksCri(), { healthTimeoutSeconds: 5 });
    expect(r.stderr).toContain("rolled back to the previous config.toml and containerd is healthy again");
    expect(read(node.configFile)).toBe(confirmed);
    expect(criStatus(node)).toBe("ok");
  });

  it("checks health on the socket of the file being activated: a change that moves grpcAddress rolls back healthy", () => {
    const before = read(node.configFile);
    const moved = path.join(node.dir, "run", "moved.sock");
    // The component passes the spec's (new) address; the rolled-back file listens on the old one.
    const r = apply(breaksCri({ grpcAddress: moved }), { healthTimeoutSeconds: 5, grpcAddress: moved });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("rolled back to the previous config.toml and containerd is healthy again");
    expect(read(node.configFile)).toBe(before);
    expect(criStatus(node)).toBe("ok");
  });

  it("rolls back when a user health check fails, and reports the check", () => {
    const before = read(node.configFile);
    // A timeout that leaves the restart command room on a loaded machine: it is bounded by it too.
    const r = apply(configOf({ maxConcurrentDownloads: 4 }), { healthTimeoutSeconds: 8, healthChecks: ["echo canary pull failed >&2; exit 3"] });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("health check failed: echo canary pull failed >&2; exit 3: canary pull failed");
    // The old file is not judged by the new checks: it is back and healthy as it was confirmed.
    expect(r.stderr).toContain("rolled back to the previous config.toml and containerd is healthy again");
    expect(read(node.configFile)).toBe(before);
    expect(criStatus(node)).toBe("ok");
  });

  it("rolls back when the restart command itself fails", () => {
    const before = read(node.configFile);
    fs.writeFileSync(path.join(node.dir, "fail-start"), "");
    try {
      const r = apply(configOf({ maxConcurrentDownloads: 6 }), { healthTimeoutSeconds: 5 });
      expect(r.status).toBe(1);
      expect(r.stderr).toContain("restart command failed: containerd failed to start (scratch fault)");
      expect(r.stderr).toContain("but containerd is still not healthy");
      expect(read(node.configFile)).toBe(before);
    } finally {
      fs.rmSync(path.join(node.dir, "fail-start"));
    }
    expect(run(opts.restartCommand).status).toBe(0);
    expect(criStatus(node)).toBe("ok");
  });

  it("finishes an apply that was interrupted after the file was installed but before the restart", () => {
    const content = configOf({ maxConcurrentDownloads: 8 });
    fs.writeFileSync(node.configFile, content); // the new file is on disk, containerd never restarted with it
    const restarts = node.restarts();
    const r = apply(content);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ path: node.configFile, written: false, restarted: true });
    expect(node.restarts()).toBe(restarts + 1);
    expect(JSON.parse(apply(content).stdout).restarted).toBe(false);
  });

  /** Two applies at once, each with a health check that logs when it starts and ends. */
  const twoAtOnce = async () => {
    const log = path.join(node.dir, `overlap-${Date.now()}.log`);
    const check = (who: string) => `echo "begin ${who}" >>${shellQuote(log)}; sleep 0.5; echo "end ${who}" >>${shellQuote(log)}`;
    const a = configOf({ maxConcurrentDownloads: 11 });
    const b = configOf({ maxConcurrentDownloads: 12 });
    const restarts = node.restarts();
    const [ra, rb] = await Promise.all([
      runAsync(applyCommand(configRef(), { ...opts, healthChecks: [check("a")] }), a),
      runAsync(applyCommand(configRef(), { ...opts, healthChecks: [check("b")] }), b),
    ]);
    expect([ra.stderr, rb.stderr]).toEqual(["", ""]);
    expect([ra.status, rb.status]).toEqual([0, 0]);
    expect([a, b]).toContain(read(node.configFile));
    expect(node.restarts()).toBe(restarts + 2);
    expect(criStatus(node)).toBe("ok");
    // Never both inside at once: each begin is followed by its own end.
    const lines = read(log).trim().split("\n");
    expect(lines).toHaveLength(4);
    expect([lines[0].split(" ")[1], lines[2].split(" ")[1]].sort()).toEqual(["a", "b"]);
    expect(lines[1]).toBe(lines[0].replace("begin", "end"));
    expect(lines[3]).toBe(lines[2].replace("begin", "end"));
  };

  it("serialises two applies on one node: both succeed, and their health checks never overlap", () => twoAtOnce());

  if (gen === "1.6") {
    it("refuses, changing nothing, on a node without flock", () => {
      // flock gone from this test's own mount namespace (/dev/null is not executable).
      const before = read(node.configFile);
      const r = run(`unshare --mount --propagation private sh -c ${shellQuote('mount --bind /dev/null "$(command -v flock)" && exec dash -c "$1"')} sh ${shellQuote(applyCommand(configRef(), opts))}`, configOf({ maxConcurrentDownloads: 31 }));
      expect(r.status).toBe(1);
      expect(r.stderr).toContain("flock is required on the node (util-linux's, or busybox's flock applet); nothing changed");
      expect(read(node.configFile)).toBe(before);
    });

    it("fails loudly and changes nothing when the original cannot be kept (a full disk)", () => {
      const dir = path.join(node.dir, "full");
      fs.mkdirSync(dir, { recursive: true });
      const file = { path: path.join(dir, "hosts.toml"), mode: 0o644, kind: "hosts" as const };
      // A 16 KiB tmpfs: a 6000-byte original (2 pages) and a 1-page filler leave 1 page, enough for
      // the new file's temp copy but not for keeping the original.
      const setup = [
        `mount -t tmpfs -o size=16k full ${shellQuote(dir)}`,
        `head -c 6000 /dev/zero | tr '\\000' x >${shellQuote(file.path)}`,
        `head -c 4096 /dev/zero >${shellQuote(path.join(dir, "filler"))}`,
        'dash -c "$1"; echo "rc=$?"',
        `wc -c <${shellQuote(file.path)}`,
        `echo "records:$(ls -A ${shellQuote(path.join(dir, ".containerd-node"))} 2>/dev/null)"`,
      ].join("; ");
      const r = run(`unshare --mount --propagation private sh -c ${shellQuote(setup)} sh ${shellQuote(applyCommand(file, opts))}`, `server = "https://m.test"\n${END_MARKER_LINE}\n`);
      expect(r.stderr).toContain(`cannot keep the original ${file.path}`);
      expect(r.stderr).toContain("nothing changed");
      // The file is the original, and no record of a half-kept original is left behind.
      expect(r.stdout.trim().split("\n")).toEqual(["rc=1", "6000", "records:"]);
    });
  }

  it("passes a hostile health check to sh exactly as written", () => {
    const out = path.join(node.dir, "check-out");
    // Quotes of both kinds, a backtick and $(...) inside quotes: intact, it writes exactly this text.
    const check = `printf '%s' "it's \\"fine\\" \\\`ok\\\` \\$(not run)" >${shellQuote(out)}`;
    const r = apply(configOf({ maxConcurrentDownloads: 21 }), { healthChecks: [check] });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(read(out)).toBe('it\'s "fine" `ok` $(not run)');
  });

  it("never runs a hostile label, path or check argument as code", () => {
    const marker = path.join(node.dir, "pwned");
    const hostile = `x'"$(touch ${marker})\`touch ${marker}\`;touch ${marker}`;
    const file = { path: path.join(node.dir, "etc/containerd/certs.d/odd dir/hosts.toml"), mode: 0o644, kind: "hosts" as const };
    const r = run(applyCommand(file, { ...opts, label: hostile }), `x = 1\n${END_MARKER_LINE}\n`);
    expect(r.status).toBe(0);
    const bad = apply(`broken = [\n${END_MARKER_LINE}\n`, { label: hostile });
    expect(bad.stderr).toContain(hostile);
    expect(fs.existsSync(marker)).toBe(false);
  });

  it("restores the original config.toml on delete, restarts, and forgets its records", () => {
    restoreConfig(node, opts, original);
    expect(criStatus(node)).toBe("ok");
    // Its records are gone; only the node's audit trail stays, with the restore as its last line.
    const records = path.join(node.dir, "etc/containerd/.containerd-node");
    expect(fs.readdirSync(records).sort()).toEqual(["audit.log", "claims", "containerd-node.sh"]);
    const last = read(path.join(records, "audit.log")).trim().split("\n").pop()!;
    expect(last).toMatch(new RegExp(`restore path=${node.configFile} old=[0-9a-f]{64} new=[0-9a-f]{64} restarted=true result=restored owner=test/scratch/${gen} `));
  });

  it("leaves a file alone when another owner applied it since (a renamed node's old resource is deleted last)", () => {
    const content = configOf({ maxConcurrentDownloads: 13 });
    expect(apply(content).status).toBe(0);
    // The renamed resource applies the same content: no restart, but it becomes the owner.
    const restarts = node.restarts();
    const renamed = apply(content, { owner: "test/scratch/renamed" });
    expect(JSON.parse(renamed.stdout)).toMatchObject({ written: false, restarted: false });
    expect(node.restarts()).toBe(restarts);
    // Then the old resource's delete runs: it must not put the original back.
    const r = run(restoreCommand(configRef(), opts));
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("is managed by test/scratch/renamed now; left in place");
    expect(read(node.configFile)).toBe(content);
    expect(node.restarts()).toBe(restarts);
    // The new owner can still restore it.
    const back = run(restoreCommand(configRef(), { ...opts, owner: "test/scratch/renamed" }));
    expect(back.status).toBe(0);
    expect(read(node.configFile)).toBe(original);
  });

  it("restarts onto the original when an earlier restore was killed after putting the file back", () => {
    expect(apply(configOf({ maxConcurrentDownloads: 14 })).status).toBe(0);
    // The killed restore got as far as the file: containerd still runs the managed config.
    fs.writeFileSync(node.configFile, original);
    const restarts = node.restarts();
    const r = run(restoreCommand(configRef(), opts));
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout.trim().split("\n").pop()!)).toMatchObject({ restarted: true });
    expect(node.restarts()).toBe(restarts + 1);
    expect(read(node.configFile)).toBe(original);
  });

  it("writes through a symlinked hosts.toml to its target, and a restore gives back exactly what was there", () => {
    const shared = path.join(node.dir, "shared");
    fs.mkdirSync(shared, { recursive: true });
    const target = path.join(shared, "hosts.toml");
    fs.writeFileSync(target, 'server = "https://original.test"\n');
    const link = path.join(node.registryConfigPath, "linked.test", "hosts.toml");
    fs.mkdirSync(path.dirname(link), { recursive: true });
    fs.symlinkSync("../../../../shared/hosts.toml", link);
    expect(fs.realpathSync(link)).toBe(target);
    const file = { path: link, mode: 0o644, kind: "hosts" as const };
    // (1.6 takes no hosts.toml without a [host] table: the node would refuse it.)
    const content = `server = "https://linked.test"\n\n[host."https://linked.test"]\n${END_MARKER_LINE}\n`;
    const r = run(applyCommand(file, opts), content);
    expect(r.stderr).toBe("");
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
    expect(read(target)).toBe(content);
    const back = run(restoreCommand(file, opts));
    expect(back.status).toBe(0);
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
    expect(fs.readlinkSync(link)).toBe("../../../../shared/hosts.toml");
    expect(read(target)).toBe('server = "https://original.test"\n');
  });

  it("removes a hosts.toml that did not exist before, and its empty directory", () => {
    const hosts = render({ registries: { "docker.io": { mirrors: ["https://m.test"] } } }).files.find((f) => f.kind === "hosts")!;
    const r = run(restoreCommand(hosts, opts));
    expect(r.status).toBe(0);
    expect(fs.existsSync(hosts.path)).toBe(false);
    expect(fs.existsSync(path.dirname(hosts.path))).toBe(false);
  });
});

describe("a node whose containerd had no CRI before it was managed (Docker's containerd.io: disabled_plugins = [\"cri\"])", () => {
  let node: ScratchNode;
  let opts: NodeCommandOptions;
  const configRef = () => ({ path: node.configFile, mode: 0o644, kind: "config" as const });
  beforeAll(() => {
    node = scratchNode("1.6");
    opts = scratchOptions(node, "scratch-nocri", "test/scratch/nocri", 10, 2);
    installScript(opts);
  });
  afterAll(() => node?.remove());

  it("applies a config with CRI, then restores the original without waiting for a CRI that never comes", () => {
    const managed = renderNode(node.baseSpec()).files[0].content;
    // The containerd.io file has no version line and says "cri"; in a version 2 file the same is the URI.
    const original = managed.replace(/^# Managed.*\n/, 'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n');
    fs.writeFileSync(node.configFile, original);
    expect(run(opts.restartCommand).status).toBe(0);
    expect(criStatus(node)).not.toBe("ok");
    const a = run(applyCommand(configRef(), opts), managed);
    expect(a.stderr).toBe("");
    expect(criStatus(node)).toBe("ok");
    restoreConfig(node, opts, original);
    // containerd answers, without CRI, as before it was managed.
    expect(spawnSync(node.bin.ctr, ["--address", node.socket, "version"]).status).toBe(0);
    expect(criStatus(node)).not.toBe("ok");
  });
});

describe("the installed node script: install, release, and the short file commands that call it (containerd 1.6)", () => {
  let node: ScratchNode;
  let opts: NodeCommandOptions;
  let original: string;
  const configRef = () => ({ path: node.configFile, mode: 0o644, kind: "config" as const });
  beforeAll(() => {
    node = scratchNode("1.6");
    opts = scratchOptions(node, "scratch-installed", "test/scratch/installed", 15, 2);
    original = renderNode(node.baseSpec()).files[0].content.replace(/^# Managed.*\n/, "# written by the installer\n");
    fs.writeFileSync(node.configFile, original);
    expect(run(opts.restartCommand).status).toBe(0);
  });
  afterAll(() => node?.remove());

  it("says plainly that the script is missing, instead of running anything", () => {
    const r = run(applyCommand(configRef(), opts), original);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`containerd-node: the node script ${opts.script} is missing on this host`);
    expect(read(node.configFile)).toBe(original);
  });

  it("installs the script root-only-writable with its revision, once: an identical install changes nothing", () => {
    installScript(opts);
    expect(modeOf(opts.script)).toBe(0o755);
    expect(read(opts.script).split("\n")[1]).toBe(`# containerd-node revision ${SCRIPT_REVISION}: installed by a Pulumi ContainerdNode; do not edit`);
    const inode = fs.statSync(opts.script).ino;
    const again = run(installCommand(opts), INSTALLED_SCRIPT);
    expect(again.status).toBe(0);
    expect(again.stdout).not.toContain("installed");
    expect(fs.statSync(opts.script).ino).toBe(inode);
    const claims = path.join(path.dirname(opts.script), "claims");
    expect(fs.readdirSync(claims).map((f) => read(path.join(claims, f)))).toEqual(["test/scratch/installed\n"]);
  });

  it("refuses a script cut short on its way (no end marker), and never replaces a newer revision", () => {
    const before = read(opts.script);
    const cut = run(installCommand(opts), INSTALLED_SCRIPT.slice(0, 4000));
    expect(cut.status).toBe(1);
    expect(cut.stderr).toContain("the node script arrived incomplete; nothing changed");
    expect(read(opts.script)).toBe(before);
    // Another program (or a newer library) installed revision N+1: an older install keeps it.
    const newer = before.replace(`revision ${SCRIPT_REVISION}:`, `revision ${SCRIPT_REVISION + 1}:`);
    fs.writeFileSync(opts.script, newer, { mode: 0o755 });
    const r = run(installCommand(opts), INSTALLED_SCRIPT);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`is of revision ${SCRIPT_REVISION + 1}, newer than ${SCRIPT_REVISION}: kept`);
    expect(read(opts.script)).toBe(newer);
    fs.writeFileSync(opts.script, before, { mode: 0o755 });
  });

  it("release restores every file this owner still holds (config.toml first, one restart), leaves other owners' files, and keeps the script while another claim remains", () => {
    const managed = renderNode({ ...node.baseSpec(), maxConcurrentDownloads: 21 }).files[0].content;
    const hosts = { path: path.join(node.registryConfigPath, "released.test", "hosts.toml"), mode: 0o644, kind: "hosts" as const };
    const theirs = { path: path.join(node.registryConfigPath, "theirs.test", "hosts.toml"), mode: 0o644, kind: "hosts" as const };
    const gone = { path: path.join(node.registryConfigPath, "never-applied.test", "hosts.toml"), mode: 0o644, kind: "hosts" as const };
    expect(run(applyCommand(configRef(), opts), managed).status).toBe(0);
    expect(run(applyCommand(hosts, opts), `server = "https://released.test"\n${END_MARKER_LINE}\n`).status).toBe(0);
    const other = { ...opts, owner: "test/scratch/other" };
    installScript(other);
    expect(run(applyCommand(theirs, other), `server = "https://theirs.test"\n${END_MARKER_LINE}\n`).status).toBe(0);
    const restarts = node.restarts();

    const r = run(releaseCommand([hosts, theirs, gone, configRef()], opts));
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(read(node.configFile)).toBe(original);
    expect(node.restarts()).toBe(restarts + 1);
    expect(criStatus(node)).toBe("ok");
    expect(fs.existsSync(hosts.path)).toBe(false);
    expect(read(theirs.path)).toContain("https://theirs.test");
    expect(fs.existsSync(gone.path)).toBe(false);
    // Its claim is gone; the other owner's keeps the script.
    expect(fs.existsSync(opts.script)).toBe(true);
    // A second release (the file deletes ran first in a destroy) finds nothing of its own.
    const twice = run(releaseCommand([hosts, configRef()], opts));
    expect(twice.status).toBe(0);
    expect(node.restarts()).toBe(restarts + 1);

    // The last owner lets go: its files, its claim, and the script go.
    const last = run(releaseCommand([theirs], other));
    expect(last.status).toBe(0);
    expect(fs.existsSync(theirs.path)).toBe(false);
    expect(fs.existsSync(opts.script)).toBe(false);
    expect(fs.existsSync(path.join(path.dirname(opts.script), "claims"))).toBe(false);
  });

  it("probes a hosts.toml once written: a failed probe puts the previous file back, a passing one keeps the new", () => {
    installScript(opts);
    const hosts = { path: path.join(node.registryConfigPath, "probed.test", "hosts.toml"), mode: 0o644, kind: "hosts" as const };
    const v1 = `server = "https://one.test"\n\n[host."https://one.test"]\n  capabilities = ["pull", "resolve"]\n${END_MARKER_LINE}\n`;
    const v2 = `server = "https://two.test"\n\n[host."https://two.test"]\n  capabilities = ["pull", "resolve"]\n${END_MARKER_LINE}\n`;
    expect(run(applyCommand(hosts, opts), v1).stderr).toBe("");
    // The probe sees the new file in place, then fails.
    const failing = `grep -q two.test ${shellQuote(hosts.path)} && echo "pull failed: 502 from two.test" && false`;
    const r = run(applyCommand({ ...hosts, probes: [failing] }, opts), v2);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`the probe through the new ${hosts.path} failed (health check failed: ${failing}: pull failed: 502 from two.test); the previous file is back`);
    expect(read(hosts.path)).toBe(v1);
    const ok = run(applyCommand({ ...hosts, probes: [`grep -q two.test ${shellQuote(hosts.path)}`] }, opts), v2);
    expect(ok.stderr).toBe("");
    expect(read(hosts.path)).toBe(v2);
    // A file that did not exist before is removed again when its probe fails.
    const fresh = { ...hosts, path: path.join(node.registryConfigPath, "fresh.test", "hosts.toml"), probes: ["false"] };
    expect(run(applyCommand(fresh, opts), v1).status).toBe(1);
    expect(fs.existsSync(fresh.path)).toBe(false);
    expect(run(restoreCommand(hosts, opts)).status).toBe(0);
  });

  it("under bash as /bin/sh (RHEL, Amazon Linux: POSIX mode), the hosts.toml check's dead proxy does not reach the probes after it", () => {
    installScript(opts);
    const hosts = { path: path.join(node.registryConfigPath, "proxied.test", "hosts.toml"), mode: 0o644, kind: "hosts" as const };
    const file = `server = "https://proxied.test"\n\n[host."https://proxied.test"]\n  capabilities = ["pull", "resolve"]\n${END_MARKER_LINE}\n`;
    // A probe (a pull, in real use) must see the node's own proxy settings: here, none.
    const probe = 'test -z "${HTTPS_PROXY:-}${HTTP_PROXY:-}${https_proxy:-}${http_proxy:-}" || { echo "proxy set: ${HTTPS_PROXY:-}"; false; }';
    const asBash = `unshare --mount --propagation private sh -c ${shellQuote('mount --bind "$(command -v bash)" /bin/sh && exec /bin/sh -c "$1"')} sh ${shellQuote(applyCommand({ ...hosts, probes: [probe] }, opts))}`;
    const r = run(asBash, file);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(read(hosts.path)).toBe(file);
    expect(run(restoreCommand(hosts, opts)).status).toBe(0);
  });

  /** A probe that does what a kill -9 or a reboot would at that moment: the node script dies, its new file in place. */
  const killTheScript = 'p=$PPID; [ "$(cat /proc/$p/comm)" = timeout ] && p=$(awk \'{ print $4 }\' /proc/$p/stat); kill -KILL "$p"; exit 1';

  it("runs the probes an interrupted apply never ran before recording its file, puts the previous one back when they fail, and keeps no previous copy", () => {
    installScript(opts);
    const hosts = { path: path.join(node.registryConfigPath, "cut.test", "hosts.toml"), mode: 0o644, kind: "hosts" as const };
    const records = path.join(path.dirname(hosts.path), ".containerd-node");
    const kept = () => fs.readdirSync(records).filter((f) => /\.(previous|pending)$/.test(f));
    const v1 = `server = "https://one.test"\n\n[host."https://one.test"]\n  capabilities = ["pull", "resolve"]\n${END_MARKER_LINE}\n`;
    const v2 = `server = "https://two.test"\n\n[host."https://two.test"]\n  capabilities = ["pull", "resolve"]\n${END_MARKER_LINE}\n`;
    expect(run(applyCommand(hosts, opts), v1).stderr).toBe("");
    const failing = `grep -q two.test ${shellQuote(hosts.path)} && echo "pull failed: 502 from two.test" && false`;

    // Cut between the install of the new file and its probes.
    expect(run(applyCommand({ ...hosts, probes: [killTheScript] }, opts), v2).status).not.toBe(0);
    expect(read(hosts.path)).toBe(v2);
    // The retry (same file, so nothing to write) runs the probes first: they fail, the old file is back.
    const r = run(applyCommand({ ...hosts, probes: [failing] }, opts), v2);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`the probe through the new ${hosts.path} failed (health check failed: ${failing}: pull failed: 502 from two.test); the previous file is back`);
    expect(read(hosts.path)).toBe(v1);
    expect(kept()).toEqual([]);

    // Cut again; a retry whose probes pass keeps the new file, records it, and leaves no previous copy.
    expect(run(applyCommand({ ...hosts, probes: [killTheScript] }, opts), v2).status).not.toBe(0);
    const ok = run(applyCommand({ ...hosts, probes: [`grep -q two.test ${shellQuote(hosts.path)}`] }, opts), v2);
    expect(ok.stderr).toBe("");
    expect(ok.status).toBe(0);
    expect(read(hosts.path)).toBe(v2);
    expect(kept()).toEqual([]);
    const sha = (s: string) => createHash("sha256").update(s).digest("hex");
    expect(read(path.join(records, "hosts.toml.sum"))).toBe(`${sha(v2)} 644\n`);
    const last = read(path.join(path.dirname(node.lockFile), ".containerd-node", "audit.log")).trim().split("\n").pop()!;
    expect(last).toContain(`apply path=${hosts.path} old=${sha(v1)} new=${sha(v2)} restarted=false result=applied `);

    // A registry that had no hosts.toml: the retry's failed probe removes the file again.
    const fresh = { ...hosts, path: path.join(node.registryConfigPath, "cut-fresh.test", "hosts.toml") };
    expect(run(applyCommand({ ...fresh, probes: [killTheScript] }, opts), v2).status).not.toBe(0);
    expect(read(fresh.path)).toBe(v2);
    expect(run(applyCommand({ ...fresh, probes: ["false"] }, opts), v2).status).toBe(1);
    expect(fs.existsSync(fresh.path)).toBe(false);

    // A cut apply followed by another content: the rollback target stays the file from before the cut.
    expect(run(applyCommand({ ...hosts, probes: [killTheScript] }, opts), v1).status).not.toBe(0);
    expect(read(hosts.path)).toBe(v1);
    const v3 = v2.replace(/two\.test/g, "three.test");
    expect(run(applyCommand({ ...hosts, probes: ["false"] }, opts), v3).status).toBe(1);
    expect(read(hosts.path)).toBe(v2);
    expect(kept()).toEqual([]);
    expect(run(restoreCommand(hosts, opts)).status).toBe(0);
    expect(run(restoreCommand(fresh, opts)).status).toBe(0);
  });

  it("leaves no scratch copy of a registry's hosts.toml (its credentials) after an apply, a failed apply or a delete, and removes one an older script left", () => {
    installScript(opts);
    // A registry named without a dot or port: containerd's check cannot ask for it by name.
    const render = (password: string) =>
      renderNode({ ...node.baseSpec(), registries: { myregistry: { mirrors: [{ url: "https://m.test", auth: { username: "robot", password } }] } } }).files.find((f) => f.kind === "hosts")!;
    const hosts = render("hunter2-first");
    expect(hosts).toMatchObject({ path: path.join(node.registryConfigPath, "myregistry", "hosts.toml"), secret: true, mode: 0o600 });
    const records = path.join(path.dirname(hosts.path), ".containerd-node");
    const scratch = () => (fs.existsSync(records) ? fs.readdirSync(records).filter((f) => f.startsWith(".validate.")) : []);

    const first = run(applyCommand(hosts, opts), hosts.content);
    expect(first.stderr).toBe("");
    expect(scratch()).toEqual([]);
    // What an older node script left: a copy of the file, credentials and all. The next apply removes it.
    fs.mkdirSync(path.join(records, ".validate.Ab12Cd", "myregistry"), { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(records, ".validate.Ab12Cd", "myregistry", "hosts.toml"), hosts.content, { mode: 0o600 });
    const rotated = render("hunter2-rotated");
    expect(run(applyCommand(rotated, opts), rotated.content).status).toBe(0);
    expect(read(hosts.path)).toBe(rotated.content);
    expect(scratch()).toEqual([]);
    // A failed apply (its probe fails) leaves none either.
    const again = render("hunter2-third");
    expect(run(applyCommand({ ...again, probes: ["false"] }, opts), again.content).status).toBe(1);
    expect(scratch()).toEqual([]);
    // A delete: the registry's directory goes, with nothing of the credentials left anywhere in it.
    fs.mkdirSync(path.join(records, ".validate.Ef34Gh", "myregistry"), { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(records, ".validate.Ef34Gh", "myregistry", "hosts.toml"), hosts.content, { mode: 0o600 });
    expect(run(restoreCommand(hosts, opts)).status).toBe(0);
    expect(fs.existsSync(path.dirname(hosts.path))).toBe(false);
  });

  it("keeps the scratch copy containerd's check reads private: a 0700 directory and a 0600 file, gone afterwards", () => {
    installScript(opts);
    // ctr as the node has it, with a look at what the check hands it.
    const seen = path.join(node.dir, "scratch-modes");
    const spy = path.join(node.dir, "ctr-spy");
    fs.writeFileSync(
      spy,
      `#!/bin/sh\nprev=''\nfor a in "$@"; do if [ "$prev" = --hosts-dir ]; then find "$a" -exec stat -c '%a %F' {} + >>${shellQuote(seen)}; fi; prev=$a; done\nexec ${shellQuote(node.bin.ctr)} "$@"\n`,
      { mode: 0o755 },
    );
    const hosts = renderNode({ ...node.baseSpec(), registries: { "private.test": { mirrors: [{ url: "https://m.test", auth: { username: "robot", password: "hunter2" } }] } } }).files.find((f) => f.kind === "hosts")!;
    const r = run(applyCommand(hosts, { ...opts, ctr: spy }), hosts.content);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(read(seen).trim().split("\n").sort()).toEqual(["600 regular file", "700 directory", "700 directory"]);
    expect(fs.readdirSync(path.join(path.dirname(hosts.path), ".containerd-node")).filter((f) => f.startsWith(".validate."))).toEqual([]);
    expect(run(restoreCommand(hosts, opts)).status).toBe(0);
  });

  it("names no sum of a secret file in the audit trail (the sum of a file with credentials lets one test guesses of them), and keeps its record root-only", () => {
    installScript(opts);
    const audit = path.join(path.dirname(node.lockFile), ".containerd-node", "audit.log");
    const render = (password: string) =>
      renderNode({ ...node.baseSpec(), registries: { "audited.test": { mirrors: [{ url: "https://m.test", auth: { username: "robot", password } }] } } }).files.find((f) => f.kind === "hosts")!;
    const sha = (s: string) => createHash("sha256").update(s).digest("hex");
    const lines = () => read(audit).trim().split("\n");
    const before = lines().length;
    const a = render("hunter2-a");
    const b = render("hunter2-b");
    expect(run(applyCommand(a, opts), a.content).status).toBe(0);
    expect(run(applyCommand(b, opts), b.content).status).toBe(0);
    expect(modeOf(path.join(path.dirname(b.path), ".containerd-node", "hosts.toml.sum"))).toBe(0o600);
    expect(run(restoreCommand(b, opts)).status).toBe(0);
    const added = lines().slice(before);
    expect(added.map((l) => l.replace(/^\S+ /, "").replace(/ owner=.*$/, ""))).toEqual([
      `apply path=${a.path} old=none new=secret restarted=false result=applied`,
      `apply path=${a.path} old=secret new=secret restarted=false result=applied`,
      `restore path=${a.path} old=secret new=none restarted=false result=restored`,
    ]);
    for (const x of [a, b]) expect(read(audit)).not.toContain(sha(x.content));
    // A file that is not secret keeps its sums.
    const plain = { path: path.join(node.registryConfigPath, "plain.test", "hosts.toml"), mode: 0o644, kind: "hosts" as const };
    const content = `server = "https://plain.test"\n\n[host."https://plain.test"]\n${END_MARKER_LINE}\n`;
    expect(run(applyCommand(plain, opts), content).status).toBe(0);
    expect(lines().pop()).toContain(`apply path=${plain.path} old=none new=${sha(content)} restarted=false result=applied `);
    expect(run(restoreCommand(plain, opts)).status).toBe(0);
  });

  it("sets aside only unmanaged registry directories, keeps the first copy of one made again, and puts back all it set aside", () => {
    const certs = path.join(node.dir, "certs.d");
    const hub = path.join(certs, "docker.io");
    const quay = path.join(certs, "quay.io");
    fs.mkdirSync(hub, { recursive: true });
    fs.writeFileSync(path.join(hub, "hosts.toml"), 'server = "https://docker.io"\n');
    // quay.io holds a hosts.toml a ContainerdNode manages (its owner record): not ours to move.
    fs.mkdirSync(path.join(quay, ".containerd-node"), { recursive: true });
    fs.writeFileSync(path.join(quay, "hosts.toml"), 'server = "https://quay.io"\n');
    fs.writeFileSync(path.join(quay, ".containerd-node", "hosts.toml.owner"), "test/scratch/other\n");
    const aside = path.join(certs, ".containerd-node", "set-aside");

    let r = run(setAsideCommand(certs, ["docker.io", "quay.io"], opts));
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(fs.existsSync(hub)).toBe(false);
    expect(read(path.join(aside, "docker.io", "hosts.toml"))).toBe('server = "https://docker.io"\n');
    expect(read(path.join(quay, "hosts.toml"))).toBe('server = "https://quay.io"\n');
    expect(r.stdout).toContain(`${quay} holds files a ContainerdNode manages; not set aside`);

    // Made again by hand: set aside again, the first copy staying what put-back restores.
    fs.mkdirSync(hub);
    fs.writeFileSync(path.join(hub, "hosts.toml"), 'server = "https://again.example"\n');
    r = run(setAsideCommand(certs, ["docker.io@1", "quay.io"], opts));
    expect(r.status).toBe(0);
    expect(fs.existsSync(hub)).toBe(false);
    expect(read(path.join(aside, "docker.io", "hosts.toml"))).toBe('server = "https://docker.io"\n');
    expect(read(path.join(aside, ".later", "docker.io.1", "hosts.toml"))).toBe('server = "https://again.example"\n');
    expect(fs.existsSync(path.join(aside, "docker.io.old"))).toBe(false);

    // Put back without names: every directory this owner set aside; another owner's stays aside.
    fs.mkdirSync(path.join(aside, "gcr.io"));
    fs.writeFileSync(path.join(aside, "gcr.io.owner"), "test/scratch/other\n");
    r = run(putBackCommand(certs, opts));
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(read(path.join(hub, "hosts.toml"))).toBe('server = "https://docker.io"\n');
    expect(fs.existsSync(path.join(aside, "gcr.io"))).toBe(true);
    expect(fs.existsSync(path.join(certs, "gcr.io"))).toBe(false);
    expect(r.stdout).toContain(`copies set aside again stay in ${aside}/.later`);
    fs.rmSync(certs, { recursive: true });
  });

  it("a release whose restore fails keeps the claim and the script for the next try", () => {
    installScript(opts);
    const managed = renderNode({ ...node.baseSpec(), maxConcurrentDownloads: 22 }).files[0].content;
    expect(run(applyCommand(configRef(), opts), managed).status).toBe(0);
    // The original cannot start and the managed one neither: the restore fails.
    fs.writeFileSync(path.join(node.dir, "fail-start"), "");
    try {
      const r = run(releaseCommand([configRef()], opts));
      expect(r.status).toBe(1);
      expect(r.stderr).toContain("not every managed file could be restored (above); the node script stays for the next try");
      expect(fs.existsSync(opts.script)).toBe(true);
    } finally {
      fs.rmSync(path.join(node.dir, "fail-start"));
    }
    expect(run(opts.restartCommand).status).toBe(0);
    const retry = run(releaseCommand([configRef()], opts));
    expect(retry.stderr).toBe("");
    expect(read(node.configFile)).toBe(original);
    expect(fs.existsSync(opts.script)).toBe(false);
  });
});

/**
 * The restart guards on a scratch node (containerd 1.6): a `systemctl restart containerd` restart command
 * through a stand-in systemctl (its KillMode from a file; restart runs the scratch node's restart), and
 * the running tasks from a ctr stand-in (namespaces, tasks and container info from files; every other
 * call to the real ctr), so a restart that ends a task is one that rewrites the task list.
 */
describe("the restart guards: KillMode, the running containers, the sandbox image and a pod that starts (containerd 1.6)", () => {
  let node: ScratchNode;
  let opts: NodeCommandOptions;
  let fake: string;
  let n = 0;
  const configRef = () => ({ path: node.configFile, mode: 0o644, kind: "config" as const });
  // Every apply is a change: a new maxConcurrentDownloads.
  const next = (more: Partial<NodeSpec> = {}) => renderNode({ ...node.baseSpec(), maxConcurrentDownloads: 10 + ++n, ...more }).files.find((f) => f.kind === "config")!.content;
  const put = (name: string, text: string) => fs.writeFileSync(path.join(fake, name), text);
  const calls = () => (fs.existsSync(path.join(fake, "calls")) ? fs.readFileSync(path.join(fake, "calls"), "utf8") : "");
  /** opts with the pod-start check (the fake crictl below) and a shorter health timeout. */
  let pods: NodeCommandOptions;
  const TASKS = "TASK                                                                PID     STATUS\n";
  const A = "a".repeat(64);
  const B = "b".repeat(64);
  const C = "c".repeat(64);
  const info = (pod: string, container: string) =>
    `{\n    "ID": "x",\n    "Labels": {\n        "io.kubernetes.container.name": "${container}",\n        "io.kubernetes.pod.name": "${pod}",\n        "io.kubernetes.pod.namespace": "default"\n    }\n}\n`;

  beforeAll(() => {
    node = scratchNode("1.6");
    fake = path.join(node.dir, "fake");
    fs.mkdirSync(fake);
    // show: the KillMode from a file; the LoadState from another (absent: loaded).
    put("systemctl", `#!/bin/sh\ncase "$1 $2" in\n"show --property=LoadState") cat ${shellQuote(fake)}/loadstate 2>/dev/null || echo loaded ;;\nshow*) cat ${shellQuote(fake)}/killmode ;;\nrestart*) exec sh ${shellQuote(node.restartScript)} ${shellQuote(node.dir)} ${shellQuote(node.bin.binDir)} ;;\nesac\n`);
    put("ctr", `#!/bin/sh\nfor a in "$@"; do\n  case "$a" in\n    namespaces) exec cat ${shellQuote(fake)}/namespaces ;;\n    tasks) exec cat ${shellQuote(fake)}/tasks ;;\n    containers) exec cat ${shellQuote(fake)}/info ;;\n  esac\ndone\nexec ${shellQuote(node.bin.ctr)} "$@"\n`);
    fs.chmodSync(path.join(fake, "systemctl"), 0o755);
    fs.chmodSync(path.join(fake, "ctr"), 0o755);
    // A CRI client that records its calls: runp answers a sandbox id, or fails like a sandbox that cannot start.
    put("crictl", `#!/bin/sh
echo "$*" >>${shellQuote(fake)}/calls
for a in "$@"; do
  case "$a" in
    runp) if [ -e ${shellQuote(fake)}/runp-fails ]; then echo 'failed to get sandbox image "registry.k8s.io/pause:3.9": not found' >&2; exit 1; fi; echo 0123456789abcdef; exit 0 ;;
    stopp | rmp) exit 0 ;;
  esac
done
exit 2
`);
    fs.chmodSync(path.join(fake, "crictl"), 0o755);
    put("killmode", "process\n");
    put("namespaces", "k8s.io\n");
    put("tasks", TASKS);
    put("info", "");
    opts = { ...scratchOptions(node, "scratch-guards", "test/scratch/guards", 15, 2), ctr: path.join(fake, "ctr"), restartCommand: `${fake}/systemctl restart containerd` };
    pods = { ...opts, crictl: path.join(fake, "crictl"), healthTimeoutSeconds: 5 };
    installScript(opts);
    fs.writeFileSync(node.configFile, next());
    expect(run(`sh ${shellQuote(node.restartScript)} ${shellQuote(node.dir)} ${shellQuote(node.bin.binDir)}`).status).toBe(0);
  });
  afterAll(() => node?.remove());

  it("refuses to restart a unit whose KillMode is not process, changing nothing, naming the node, the unit, its KillMode and the fix", () => {
    put("killmode", "control-group\n");
    const before = read(node.configFile);
    const restarts = node.restarts();
    const r = run(applyCommand(configRef(), opts), next());
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("containerd-node: scratch-guards: refusing to restart containerd: its systemd unit containerd has KillMode=control-group");
    expect(r.stderr).not.toContain("LoadState");
    expect(r.stderr).toContain("/etc/systemd/system/containerd.service.d/killmode.conf with [Service] and KillMode=process, then systemctl daemon-reload");
    expect(r.stderr).toContain("allowContainerLoss");
    expect(read(node.configFile)).toBe(before);
    expect(node.restarts()).toBe(restarts);
  });

  it("refuses a unit systemd does not have (it shows its default, control-group, for one), allowContainerLoss or not, saying so", () => {
    put("killmode", "control-group\n");
    put("loadstate", "not-found\n");
    try {
      const before = read(node.configFile);
      const restarts = node.restarts();
      for (const allowContainerLoss of [false, true]) {
        const r = run(applyCommand(configRef(), { ...opts, allowContainerLoss }), next());
        expect(r.status).toBe(1);
        expect(r.stderr).toContain(
          "containerd-node: scratch-guards: refusing to restart containerd: systemd has no usable unit containerd (LoadState=not-found), so the KillMode it shows (control-group) is only its default and the restart command cannot restart containerd; nothing restarted and the old config.toml stays. Fix: name containerd's unit in restartCommand",
        );
      }
      expect(read(node.configFile)).toBe(before);
      expect(node.restarts()).toBe(restarts);
    } finally {
      fs.rmSync(path.join(fake, "loadstate"));
      put("killmode", "process\n");
    }
  });

  it("refuses when the unit's KillMode cannot be read: an unanswered check does not pass", () => {
    put("killmode", "");
    const before = read(node.configFile);
    const restarts = node.restarts();
    const r = run(applyCommand(configRef(), opts), next());
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("refusing to restart containerd: the KillMode of its systemd unit containerd cannot be read");
    expect(read(node.configFile)).toBe(before);
    expect(node.restarts()).toBe(restarts);
    put("killmode", "process\n");
  });

  it("with allowContainerLoss restarts anyway, and reports the KillMode", () => {
    put("killmode", "mixed\n");
    const content = next();
    const r = run(applyCommand(configRef(), { ...opts, allowContainerLoss: true }), content);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ restarted: true, guards: { unit: "containerd", killMode: "mixed", containersChecked: true, running: 0, lost: 0 } });
    expect(read(node.configFile)).toBe(content);
    put("killmode", "process\n");
  });

  it("passes when every running task runs on with its pid; stopped tasks do not count", () => {
    put("tasks", `${TASKS}${A} 4242 RUNNING\n${B} 4343 RUNNING\n${C} 0 STOPPED\n`);
    const restarts = node.restarts();
    const r = run(applyCommand(configRef(), opts), next());
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ restarted: true, guards: { unit: "containerd", killMode: "process", containersChecked: true, running: 2, lost: 0 } });
    expect(node.restarts()).toBe(restarts + 1);
  });

  it("fails an apply whose restart ended a container or gave it a new pid, naming them, and leaves the node on the new config.toml", () => {
    put("tasks", `${TASKS}${A} 4242 RUNNING\n${B} 4343 RUNNING\n${C} 4444 RUNNING\n`);
    put("info", info("web-1", "app"));
    put("after", `${TASKS}${A} 4242 RUNNING\n${B} 5555 RUNNING\n${C} 4444 STOPPED\n`);
    const restarts = node.restarts();
    const content = next();
    const r = run(applyCommand(configRef(), { ...opts, restartCommand: `${opts.restartCommand} && cp ${fake}/after ${fake}/tasks` }), content);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("containerd-node: scratch-guards: the restart ended 2 of the 3 containers that ran before it");
    expect(r.stderr).toContain(`pod web-1 container app (${B.slice(0, 12)})`);
    expect(r.stderr).toContain(`pod web-1 container app (${C.slice(0, 12)})`);
    expect(r.stderr).not.toContain(A.slice(0, 12));
    expect(r.stderr).toContain("Rolling config.toml back cannot bring them back");
    expect(r.stderr).toContain("the node is on the new config.toml and containerd is healthy");
    // Not rolled back: one restart, the new file, recorded as applied (the next apply of it is a no-op).
    expect(node.restarts()).toBe(restarts + 1);
    expect(read(node.configFile)).toBe(content);
    expect(read(path.join(path.dirname(node.configFile), ".containerd-node", "config.toml.applied"))).toBe(content);
    const again = run(applyCommand(configRef(), opts), content);
    expect(again.status).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ written: false, restarted: false });
    expect(fs.readdirSync(path.join(path.dirname(node.configFile), ".containerd-node")).filter((f) => f.includes(".tasks"))).toEqual([]);
  });

  it("names a lost container without CRI labels by its id and namespace; allowContainerLoss only reports it", () => {
    put("namespaces", "moby\n");
    put("tasks", `${TASKS}${A} 4242 RUNNING\n`);
    put("info", "");
    put("after", TASKS);
    const restart = `${opts.restartCommand} && cp ${fake}/after ${fake}/tasks`;
    const lost = run(applyCommand(configRef(), { ...opts, restartCommand: restart }), next());
    expect(lost.status).toBe(1);
    expect(lost.stderr).toContain(`the restart ended 1 of the 1 containers that ran before it (not running after it, or running with a new pid): ${A} in namespace moby.`);
    put("tasks", `${TASKS}${A} 4242 RUNNING\n`);
    const allowed = run(applyCommand(configRef(), { ...opts, restartCommand: restart, allowContainerLoss: true }), next());
    expect(allowed.stderr).toBe("");
    expect(allowed.status).toBe(0);
    expect(JSON.parse(allowed.stdout.split("\n").filter(Boolean).pop()!)).toMatchObject({ guards: { running: 1, lost: 1 } });
    put("namespaces", "k8s.io\n");
  });

  it("guards a delete's restart onto the original as an apply's: refused under KillMode=control-group, failed when containers were lost", () => {
    put("killmode", "control-group\n");
    const managed = read(node.configFile);
    const restarts = node.restarts();
    const refused = run(restoreCommand(configRef(), opts));
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain("refusing to restart containerd: its systemd unit containerd has KillMode=control-group");
    expect(refused.stderr).toContain("nothing was restored and the managed config.toml stays (or set onDelete to keep)");
    expect(read(node.configFile)).toBe(managed);
    expect(node.restarts()).toBe(restarts);
    put("killmode", "process\n");
    put("tasks", `${TASKS}${A} 4242 RUNNING\n`);
    put("after", TASKS);
    const lost = run(restoreCommand(configRef(), { ...opts, restartCommand: `${opts.restartCommand} && cp ${fake}/after ${fake}/tasks` }));
    expect(lost.status).toBe(1);
    expect(lost.stderr).toContain("the restart ended 1 of the 1 containers that ran before it");
    expect(lost.stderr).toContain("the node is on its original config.toml (the restore is done)");
    expect(node.restarts()).toBe(restarts + 1);
    // Managed again, as the tests after this one expect.
    put("tasks", TASKS);
    expect(run(applyCommand(configRef(), opts), next()).status).toBe(0);
  });

  it("skips the KillMode check where the restart command is not systemctl restart UNIT, and says so in the report", () => {
    put("killmode", "control-group\n");
    put("tasks", `${TASKS}${A} 4242 RUNNING\n`);
    const r = run(applyCommand(configRef(), { ...opts, restartCommand: `sh ${shellQuote(node.restartScript)} ${shellQuote(node.dir)} ${shellQuote(node.bin.binDir)}` }), next());
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ restarted: true, guards: { unit: "", killMode: "unchecked", containersChecked: true, running: 1, lost: 0 } });
    put("killmode", "process\n");
  });

  it("refuses a config.toml whose sandbox image no registry serves before anything changes, naming the image and the registry's answer", () => {
    const before = read(node.configFile);
    const restarts = node.restarts();
    const r = run(applyCommand(configRef(), pods), next({ sandboxImage: "registry.k8s.io/pause:0.0-missing" }));
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`containerd-node: scratch-guards: refusing the new ${node.configFile}: its sandbox image registry.k8s.io/pause:0.0-missing could not be pulled into containerd's k8s.io namespace through the registry directory ${node.registryConfigPath}: `);
    // The registry's answer: here, that its host does not resolve (the machine has no route out).
    expect(r.stderr).toMatch(/registry\.k8s\.io.*(no such host|unreachable|dial)/);
    expect(r.stderr).toContain("After a restart no new pod could start on this node; nothing restarted and the old config.toml stays");
    expect(read(node.configFile)).toBe(before);
    expect(node.restarts()).toBe(restarts);
  });

  it("asks no registry for a sandbox image k8s.io holds, and starts and removes a pod sandbox after the restart", () => {
    fs.rmSync(path.join(fake, "calls"), { force: true });
    const content = next({ sandboxImage: "registry.k8s.io/pause:3.9" });
    const r = run(applyCommand(configRef(), pods), content);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ restarted: true, guards: { sandboxImage: { image: "registry.k8s.io/pause:3.9", before: "present" }, podStart: "started" } });
    const lines = calls().trim().split("\n");
    expect(lines.map((l) => l.split(" ").find((w) => ["runp", "stopp", "rmp"].includes(w)))).toEqual(["runp", "rmp"]);
    // On containerd's new socket, a host-network sandbox (no CNI), and the id runp answered.
    expect(lines[0]).toContain(`--runtime-endpoint unix://${node.socket}`);
    expect(lines[1]).toMatch(/rmp --force 0123456789abcdef$/);
    expect(read(node.configFile)).toBe(content);
  });

  it("rolls back a config.toml after which no pod sandbox starts, and says so", () => {
    put("runp-fails", "");
    const before = read(node.configFile);
    const restarts = node.restarts();
    const r = run(applyCommand(configRef(), pods), next({ sandboxImage: "registry.k8s.io/pause:3.9" }));
    fs.rmSync(path.join(fake, "runp-fails"));
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("containerd was not healthy with the new");
    expect(r.stderr).toContain('no pod can start: a pod sandbox did not start through CRI');
    expect(r.stderr).toContain('failed to get sandbox image "registry.k8s.io/pause:3.9": not found');
    expect(r.stderr).toContain("rolled back to the previous config.toml and containerd is healthy again");
    expect(read(node.configFile)).toBe(before);
    // Onto the new file, then back: the rolled-back file is not held to the pod check.
    expect(node.restarts()).toBe(restarts + 2);
  });

  it("says which check it skipped on a node without a CRI client", () => {
    const r = run(applyCommand(configRef(), { ...pods, crictl: path.join(fake, "no-such-crictl") }), next());
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ restarted: true, guards: { podStart: `skipped: no ${path.join(fake, "no-such-crictl")} on the node` } });
  });
});

describe("the node script's text", () => {
  it("has its revision bumped with every change (installs never replace a higher revision)", () => {
    // Change SCRIPT_REVISION with the script, then this hash.
    const sha = createHash("sha256").update(NODE_SCRIPT).digest("hex");
    expect({ revision: SCRIPT_REVISION, sha }).toEqual({ revision: 8, sha: "e7f74fd88bb740f2401fb6dabd337ab27778c07725abe8d6b16bdba8885a1fda" });
  });

  it.each([
    ["source", NODE_SCRIPT],
    ["as sent, without comment lines", SENT_SCRIPT],
    ["as installed", INSTALLED_SCRIPT],
    ["its install", INSTALL_SCRIPT],
    ["the line that runs it", RUN_SCRIPT],
  ])("is clean POSIX sh for shellcheck (%s)", (_name, script) => {
    const r = spawnSync("shellcheck", ["-s", "sh", "-"], { input: script, encoding: "utf8" });
    expect(r.error).toBeUndefined();
    expect(r.stdout).toBe("");
    expect(r.status).toBe(0);
  });

  it("never puts variable assignments before a call of one of its own functions (their scope after the call is unspecified)", () => {
    const functions = [...NODE_SCRIPT.matchAll(/^\s*([a-z_][a-z0-9_]*)\(\) *\{/gm)].map((m) => m[1]);
    expect(functions.length).toBeGreaterThan(10);
    const prefixed = NODE_SCRIPT.split("\n").filter((l) => new RegExp(`^\\s*(?:[A-Za-z_][A-Za-z0-9_]*=\\S*\\s+)+(?:${functions.join("|")})\\b`).test(l));
    expect(prefixed).toEqual([]);
  });

  it("parses under dash -n and has no backslash, so any POSIX login shell's quoting carries it unchanged", () => {
    expect(spawnSync("dash", ["-n"], { input: NODE_SCRIPT }).status).toBe(0);
    expect(NODE_SCRIPT).not.toContain("\\");
  });
});

describe("the sandbox image's name, on both sides of the SSH line", () => {
  it("is the same in the node script (full_ref, what the apply asks k8s.io for) and in the plan (fullReference, what the read asks for)", () => {
    const fn = /\nfull_ref\(\) \{[\s\S]*?\n\}\n/.exec(NODE_SCRIPT)![0];
    const refs = ["pause", "pause:3.9", "library/pause:3.9", "kubesphere/pause:3.9", "docker.io/pause:3.9", "docker.io/library/pause", "registry.k8s.io/pause:3.10", "registry.k8s.io/pause", "localhost/pause:1", "localhost:5000/pause", "10.0.0.1:5000/k8s/pause:3.10", "registry.k8s.io/pause@sha256:" + "a".repeat(64)];
    const script = `${fn}\nfor r in "$@"; do full_ref "$r"; done\n`;
    const r = spawnSync("dash", ["-c", script, "full_ref", ...refs], { encoding: "utf8" });
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split("\n")).toEqual(refs.map(fullReference));
  });
});
