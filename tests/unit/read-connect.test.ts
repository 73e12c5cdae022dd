/**
 * readNode never rejects and never outlives its limits: a PKCS#8 "BEGIN PRIVATE KEY" key (which
 * the command provider's Go SSH takes and @pulumi/tls hands out, and ssh2 alone does not) is
 * converted and dialled; a key nothing can read makes it a "not read" node at once, and leaves no
 * timer behind. No node is needed: the key is parsed before the read dials.
 */
import { spawnSync } from "child_process";
import { generateKeyPairSync } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { READ_CTR_SECONDS, READ_SCRIPT, readBudgetSeconds } from "../../provider/src/remote/read-script";
import { connectConfig, readNode } from "../../provider/src/component/node-read";
import { parseRead } from "../../provider/src/remote/read";

const pkcs8 = generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }).toString();

test("a PKCS#8 key (which ssh2 alone does not parse) is converted: the read dials the node", async () => {
  const r = await readNode({ host: "127.0.0.1", port: 9, user: "root", privateKey: pkcs8, hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl" }, "true", "", { connectSeconds: 5, totalSeconds: 30 });
  expect(r.reached).toBe(false);
  expect(r.error).toBe("connect ECONNREFUSED 127.0.0.1:9");
});

test("a private key that cannot be read at all gives an unread node at once, not a rejection, and does not quote the key", async () => {
  const t0 = Date.now();
  const broken = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIbroken\n-----END PRIVATE KEY-----\n";
  const r = await readNode({ host: "127.0.0.1", port: 9, user: "root", privateKey: broken, hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl" }, "true", "", { connectSeconds: 5, totalSeconds: 30 });
  expect(r.reached).toBe(false);
  expect(r.error).toMatch(/^cannot use its connection: its private key cannot be read \(/);
  expect(r.error).not.toContain("PRIVATE KEY-----");
  expect(r.error).not.toContain("broken");
  expect(Date.now() - t0).toBeLessThan(2_000);
});

test("a hostKey that cannot be pinned refuses the read rather than accepting any host", async () => {
  const r = await readNode({ host: "127.0.0.1", port: 9, user: "root", privateKey: "unused", hostKey: "ssh-ed25519" }, "true", "", { connectSeconds: 5, totalSeconds: 30 });
  expect(r.reached).toBe(false);
  expect(r.error).toBe('cannot use its connection: hostKey of 127.0.0.1 is not an OpenSSH public key "TYPE BASE64" with TYPE one of ssh-ed25519, ecdsa-sha2-nistp256, ecdsa-sha2-nistp384, ecdsa-sha2-nistp521, ssh-rsa (ssh-keyscan -t ed25519 HOST | cut -d\' \' -f2-)');
});

test.each([
  ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPtest", ["ssh-ed25519"]],
  ["ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAA", ["ecdsa-sha2-nistp256"]],
  ["ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB", ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]],
])("the read offers only the pinned key's type (%s), as the provider does", (hostKey, algorithms) => {
  expect(connectConfig({ host: "h", hostKey } as never, 1000).algorithms?.serverHostKey).toEqual(algorithms);
});

describe("the read's time budget", () => {
  it("runs to its end on a wedged containerd (ctr never answers), each ctr call bounded", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wedged-"));
    try {
      const ctr = path.join(dir, "ctr");
      fs.writeFileSync(ctr, "#!/bin/sh\nexec sleep 60\n", { mode: 0o755 });
      const t0 = Date.now();
      const r = spawnSync("dash", ["-s", ctr, path.join(dir, "sock"), "-", path.join(dir, "config.toml"), "5", "0"], { input: READ_SCRIPT, encoding: "utf8", timeout: 30_000 });
      const seconds = (Date.now() - t0) / 1000;
      const read = parseRead(Buffer.from(r.stdout));
      expect(read.reached).toBe(true);
      expect(read.versionError).toBeDefined();
      expect(read.cri).toBe("missing");
      expect(seconds).toBeLessThan(2 * READ_CTR_SECONDS + 2);
      // ... which the whole budget leaves room for, after the slowest connect and the probes.
      expect(readBudgetSeconds({ connectSeconds: 10, viaProxy: false, probeSeconds: 5, probing: true })).toBeGreaterThanOrEqual(10 + seconds + 15);
      expect(readBudgetSeconds({ connectSeconds: 10, viaProxy: true, probeSeconds: 5, probing: true })).toBeGreaterThanOrEqual(2 * 10 + seconds + 15);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 40_000);
});

test("without a temporary directory (mktemp fails) the read writes no file and still reports the registry directories", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nomktemp-"));
  try {
    const certs = path.join(dir, "certs.d");
    fs.mkdirSync(path.join(certs, "docker.io"), { recursive: true });
    fs.writeFileSync(path.join(certs, "docker.io", "hosts.toml"), 'server = "https://registry-1.docker.io"\n[host."https://mirror.test"]\n');
    const before = fs.readdirSync("/");
    const r = spawnSync("dash", ["-s", "/bin/false", path.join(dir, "sock"), certs, path.join(dir, "config.toml"), "1", "1"], {
      input: READ_SCRIPT,
      encoding: "utf8",
      env: { ...process.env, TMPDIR: path.join(dir, "no-such-dir") },
      timeout: 30_000,
    });
    expect(fs.readdirSync("/")).toEqual(before);
    const read = parseRead(Buffer.from(r.stdout));
    expect(read.reached).toBe(true);
    expect(read.registryDirs.get("docker.io")).toEqual({ server: "https://registry-1.docker.io", hosts: ["https://mirror.test"] });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("a K group asks the unit's KillMode of the systemctl given, bounded like the ctr calls; a systemctl that says nothing is unknown", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "killmode-"));
  try {
    const log = path.join(dir, "calls");
    const stand = (name: string, body: string) => {
      const p = path.join(dir, name);
      fs.writeFileSync(p, `#!/bin/sh\necho "$*" >>${log}\n${body}\n`, { mode: 0o755 });
      return p;
    };
    const run = (systemctl: string, unit = "containerd.service") =>
      spawnSync("dash", ["-s", "/bin/false", path.join(dir, "sock"), "-", path.join(dir, "config.toml"), "1", "0", "M", "docker.io", "K", unit, systemctl], { input: READ_SCRIPT, encoding: "utf8", timeout: 30_000 });
    const controlGroup = stand("systemctl", "echo control-group");
    const r = run(controlGroup);
    expect(r.stdout).toContain("\nkillmode containerd.service control-group\n");
    expect(parseRead(Buffer.from(r.stdout))).toMatchObject({ reached: true, killMode: { unit: "containerd.service", value: "control-group" } });
    // Not process: its LoadState is asked too (systemd shows control-group for a unit it does not have).
    expect(fs.readFileSync(log, "utf8")).toBe("show --property=KillMode --value containerd.service\nshow --property=LoadState --value containerd.service\n");
    const missing = run(stand("missing", 'case "$2" in --property=LoadState) echo not-found ;; *) echo control-group ;; esac'), "containred.service");
    expect(missing.stdout).toContain("\nkillmode containred.service control-group not-found\n");
    expect(parseRead(Buffer.from(missing.stdout)).killMode).toEqual({ unit: "containred.service", value: "control-group", loadState: "not-found" });
    // process, and no answer, ask nothing more.
    fs.rmSync(log);
    run(stand("named", "echo KillMode=process"));
    run(stand("failing", "exit 1"));
    expect(fs.readFileSync(log, "utf8")).toBe("show --property=KillMode --value containerd.service\nshow --property=KillMode --value containerd.service\n");
    // A systemctl that also prints the property's name, or that fails, or answers nonsense.
    expect(parseRead(Buffer.from(run(stand("named", "echo KillMode=process")).stdout)).killMode).toEqual({ unit: "containerd.service", value: "process" });
    expect(parseRead(Buffer.from(run(stand("failing", "exit 1")).stdout)).killMode).toEqual({ unit: "containerd.service", value: "unknown" });
    expect(parseRead(Buffer.from(run(stand("odd", "echo 'a b; rm'")).stdout)).killMode).toEqual({ unit: "containerd.service", value: "unknown" });
    // A wedged systemd costs at most READ_CTR_SECONDS.
    const t0 = Date.now();
    const wedged = parseRead(Buffer.from(run(stand("wedged", "exec sleep 60")).stdout));
    expect((Date.now() - t0) / 1000).toBeLessThan(2 * READ_CTR_SECONDS + READ_CTR_SECONDS + 2);
    expect(wedged).toMatchObject({ reached: true, killMode: { unit: "containerd.service", value: "unknown" } });
    // Without a K group nothing is asked.
    fs.rmSync(log);
    const none = spawnSync("dash", ["-s", "/bin/false", path.join(dir, "sock"), "-", path.join(dir, "config.toml"), "1", "0"], { input: READ_SCRIPT, encoding: "utf8", timeout: 30_000 });
    expect(parseRead(Buffer.from(none.stdout)).killMode).toBeUndefined();
    expect(fs.existsSync(log)).toBe(false);
    expect(readBudgetSeconds({ connectSeconds: 10, viaProxy: false, probeSeconds: 5, probing: false, systemd: true })).toBe(readBudgetSeconds({ connectSeconds: 10, viaProxy: false, probeSeconds: 5, probing: false }) + 2 * READ_CTR_SECONDS);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);

test("an I group asks whether containerd's k8s.io namespace holds the sandbox image; a ctr that does not answer is unknown, not present", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sandbox-"));
  try {
    const log = path.join(dir, "calls");
    const ctr = (name: string, body: string) => {
      const p = path.join(dir, name);
      fs.writeFileSync(p, `#!/bin/sh\necho "$*" >>${log}\ncase "$*" in *"images ls"*) ${body} ;; *) exit 1 ;; esac\n`, { mode: 0o755 });
      return p;
    };
    const run = (c: string, image: string) =>
      parseRead(Buffer.from(spawnSync("dash", ["-s", c, path.join(dir, "sock"), "-", path.join(dir, "config.toml"), "1", "0", "I", image], { input: READ_SCRIPT, encoding: "utf8", timeout: 30_000 }).stdout));
    const holding = ctr("holding", "printf 'registry.k8s.io/pause:3.10\\nsha256:abc\\n'");
    expect(run(holding, "registry.k8s.io/pause:3.10")).toMatchObject({ reached: true, sandbox: { image: "registry.k8s.io/pause:3.10", state: "present" } });
    expect(fs.readFileSync(log, "utf8")).toContain(`--address ${path.join(dir, "sock")} -n k8s.io images ls -q`);
    // Whole names only: a longer tag of the same image is not it.
    expect(run(holding, "registry.k8s.io/pause:3.1").sandbox).toEqual({ image: "registry.k8s.io/pause:3.1", state: "absent" });
    expect(run(ctr("failing", "exit 1"), "registry.k8s.io/pause:3.10").sandbox).toEqual({ image: "registry.k8s.io/pause:3.10", state: "unknown" });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
