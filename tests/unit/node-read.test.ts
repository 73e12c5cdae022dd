/**
 * The program's read of a node, without a node: the read script's output format, what the findings
 * make of it (drift tokens, the version guard's words, imports, mirror classes, unmanaged registry
 * directories), the probes taken from rendered hosts.toml files, and the options' checks.
 */
import { spawnSync } from "child_process";
import { createHash } from "crypto";
import { applyCommand, readCommand, REPAIR_RUN_SCRIPT } from "../../provider/src/remote/commands";
import { READ_SCRIPT } from "../../provider/src/remote/read-script";
import { NodeRead, emptyRead, parseRead, readArguments } from "../../provider/src/remote/read";
import { planOrThrow, systemdUnitOf } from "../../provider/src/component/plan";
import { DesiredFile, ReadOptions, findings, lineDiff, pingUrl, probeTargets } from "../../provider/src/component/node-findings";
import { mirrorProbeSettings, operationProblems } from "../../provider/src/component/containerd-node";
import { renderNode } from "../../provider/src";

const CONFIG = "/etc/containerd/config.toml";
const HUB = "/etc/containerd/certs.d/docker.io/hosts.toml";

const opts = (o: Partial<ReadOptions> = {}): ReadOptions => ({
  label: "n1",
  configVersion: 2,
  minimumVersion: "1.7.0",
  certsDir: "/etc/containerd/certs.d",
  managedDirs: ["docker.io"],
  configFile: CONFIG,
  imports: [],
  dropImports: [],
  unmanagedRegistries: "warn",
  unreadNode: "warn",
  probePolicy: "warn",
  allowDeadRegistries: false,
  restartUnit: "containerd",
  allowContainerLoss: false,
  ...o,
});

const hashOf = (t: string) => createHash("sha256").update(t).digest("hex");
const read = (r: Partial<NodeRead> = {}): NodeRead => ({ ...emptyRead(), reached: true, version: "1.7.24", cri: "ok", ...r });
const files: DesiredFile[] = [
  { path: HUB, mode: 0o644, secret: false, content: 'server = "https://registry-1.docker.io"\n' },
  { path: CONFIG, mode: 0o644, secret: false, content: "version = 2\nroot = '/var/lib/containerd'\n" },
];

describe("the read script's output", () => {
  it("is parsed record by record, content by its byte count (newlines and all)", () => {
    const body = "version = 2\n[plugins]\n  x = 'é'\n";
    const out = Buffer.concat([
      Buffer.from("version 1.7.24\ncri ok\n"),
      Buffer.from(`file ${CONFIG} present abc 644\ncontent ${CONFIG} ${Buffer.byteLength(body)}\n${body}\n`),
      Buffer.from(`record ${CONFIG} abd 644\nrepair ${CONFIG} 00ff00ff00ff00ff\n`),
      Buffer.from(`file ${HUB} absent\n`),
      Buffer.from("import /etc/containerd/conf.d/*.toml\nimportfile /etc/containerd/conf.d/99-nvidia.toml\ncontent /etc/containerd/conf.d/99-nvidia.toml 12\nversion = 2\n\n"),
      Buffer.from("regdir docker.io\nregserver docker.io https://docker.io\nprobetarget u1 docker.io server https://docker.io\nregdir gcr.io\nregowned gcr.io\nsetaside quay.io 2\n"),
      Buffer.from("probe p0 ok 200 0.012 - curl\nprobe u1 dns-error - 0.001 - curl\nend\n"),
    ]);
    const r = parseRead(out);
    expect(r.reached).toBe(true);
    expect(r.version).toBe("1.7.24");
    expect(r.files.get(CONFIG)).toEqual({ present: true, sha256: "abc", mode: "644", content: body, record: { sha256: "abd", mode: "644" }, repair: "00ff00ff00ff00ff" });
    expect(r.files.get(HUB)).toEqual({ present: false });
    expect(r.imports).toEqual([{ pattern: "/etc/containerd/conf.d/*.toml", files: [{ path: "/etc/containerd/conf.d/99-nvidia.toml", content: "version = 2\n" }] }]);
    expect(r.registryDirs.get("docker.io")).toEqual({ server: "https://docker.io", hosts: [] });
    expect(r.unmanagedProbes).toEqual([{ id: "u1", directory: "docker.io", role: "server", url: "https://docker.io" }]);
    expect(r.ownedDirs).toEqual(new Set(["gcr.io"]));
    expect(r.setAside).toEqual([{ name: "quay.io", later: 2 }]);
    expect(r.probes.get("p0")).toEqual({ class: "ok", http: 200, seconds: 0.012, credentials: "-", tool: "curl" });
  });

  it("without its end line is a read that did not complete", () => {
    expect(parseRead(Buffer.from("version 1.7.24\n")).reached).toBe(false);
  });

  it("comes from a script dash parses, that takes its values as arguments only", () => {
    const r = spawnSync("dash", ["-n"], { input: READ_SCRIPT, encoding: "utf8" });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const lint = spawnSync("shellcheck", ["-s", "sh", "-"], { input: READ_SCRIPT, encoding: "utf8" });
    expect(lint.error).toBeUndefined();
    expect(lint.stdout).toBe("");
    expect(readCommand({ sudo: true }, ["ctr", "a b'c"])).toBe(`sudo -n /bin/sh -s 'ctr' 'a b'"'"'c'`);
  });
});

describe("drift", () => {
  const present = (sha: string, mode = "644", extra: object = {}) => ({ present: true, sha256: sha, mode, record: { sha256: "s1", mode: "644" }, ...extra });

  it("is nothing where the node has what the last apply left, and the last repair's token stays", () => {
    const f = findings(read({ files: new Map([[CONFIG, present("s1", "644", { repair: "aaaaaaaaaaaaaaaa" })]]) }), files, [], opts());
    expect(f.drift).toEqual([]);
    expect(f.tokens.get(CONFIG)).toBe("aaaaaaaaaaaaaaaa");
  });

  it("is nothing for a file with no record (never applied by this script revision)", () => {
    const f = findings(read({ files: new Map([[CONFIG, { present: false }]]) }), files, [], opts());
    expect(f.drift).toEqual([]);
    expect(f.tokens.get(CONFIG)).toBeUndefined();
  });

  it("names content, mode and missing files, with a line diff of node-now against what will be written", () => {
    const now = "version = 2\nroot = '/data/containerd'\n";
    const f = findings(
      read({
        files: new Map<string, NodeRead["files"] extends Map<string, infer V> ? V : never>([
          [CONFIG, present("s9", "644", { content: now })],
          [HUB, { present: false, record: { sha256: "s1", mode: "644" } }],
        ]),
      }),
      files,
      [],
      opts(),
    );
    expect(f.drift.map((d) => [d.path, d.what])).toEqual([
      [HUB, "is missing"],
      [CONFIG, "has other content"],
    ]);
    expect(f.fileWarnings.get(CONFIG)![0]).toBe(
      `n1: ${CONFIG} has other content since the last apply; up writes it back (- on the node now, + to be written):\n  version = 2\n- root = '/data/containerd'\n+ root = '/var/lib/containerd'\n  `,
    );
    const mode = findings(read({ files: new Map([[CONFIG, present("s1", "600")]]) }), files, [], opts());
    expect(mode.drift[0].what).toBe("has mode 0600, installed 0644");
  });

  it("gives each repair a new token, chained to the last: the same drift twice is two updates", () => {
    const once = findings(read({ files: new Map([[CONFIG, present("s9")]]) }), files, [], opts()).tokens.get(CONFIG)!;
    const twice = findings(read({ files: new Map([[CONFIG, present("s9", "644", { repair: once })]]) }), files, [], opts()).tokens.get(CONFIG)!;
    expect(once).toMatch(/^[0-9a-f]{16}$/);
    expect(twice).not.toBe(once);
  });

  it("gives a secret file's repair a random token: nothing of its hash reaches the state or the node's command line", () => {
    const secret: DesiredFile[] = [{ path: HUB, mode: 0o600, secret: true }];
    const sha = "9".repeat(64);
    const now = { present: true, sha256: sha, mode: "600", record: { sha256: "1".repeat(64), mode: "600" }, repair: "00ff00ff00ff00ff" };
    const tokens = [0, 1, 2].map(() => findings(read({ files: new Map([[HUB, now]]) }), secret, [], opts()).tokens.get(HUB)!);
    for (const t of tokens) expect(t).toMatch(/^[0-9a-f]{16}$/);
    // The same drift read again gives another token: it is made from none of the file.
    expect(new Set(tokens).size).toBe(3);
    expect(tokens).not.toContain(hashOf(`00ff00ff00ff00ff|${sha}:600`).slice(0, 16));
    // A file that is not secret keeps its chained token, the same for the same drift.
    const plain = findings(read({ files: new Map([[HUB, { ...now, mode: "644", record: { sha256: "1".repeat(64), mode: "644" } }]]) }), files, [], opts()).tokens.get(HUB)!;
    expect(plain).toBe(hashOf(`00ff00ff00ff00ff|${sha}:644`).slice(0, 16));
  });

  it("compares a secret file by hash only and shows none of it", () => {
    const secret: DesiredFile[] = [{ path: HUB, mode: 0o600, secret: true }];
    const f = findings(read({ files: new Map([[HUB, { present: true, sha256: "9".repeat(64), mode: "600", record: { sha256: "1".repeat(64), mode: "600" } }]]) }), secret, [], opts());
    expect(f.fileWarnings.get(HUB)).toEqual([`n1: ${HUB} has other content (a secret file is compared by hash only; nothing of it is shown) since the last apply; up writes it back`]);
  });

  it("shows no credential a hand edit put into a file that is not secret", () => {
    const now = [
      'server = "https://registry-1.docker.io"',
      '[host."https://robot:pa55word@mirror.test"]',
      "  [host.\"https://mirror.test\".header]",
      '    Authorization = "Basic cm9ib3Q6aHVudGVyMg=="',
      '    "X-Registry-Token" = "tok-4f9a"',
      '    password = "hunter2"',
      "",
    ].join("\n");
    const f = findings(read({ files: new Map([[CONFIG, present("s9", "644", { content: now })]]) }), files, [], opts());
    const w = f.fileWarnings.get(CONFIG)![0];
    for (const secret of ["pa55word", "cm9ib3Q6aHVudGVyMg", "tok-4f9a", "hunter2"]) expect(w).not.toContain(secret);
    expect(w).toContain('- [host."https://[redacted]@mirror.test"]');
    expect(w).toContain('-     Authorization = "[redacted]"');
    expect(w).toContain('-     "X-Registry-Token" = "[redacted]"');
    expect(w).toContain('-     password = "[redacted]"');
  });

  it("travels to the node as a quoted argument of a constant wrapper, and only as a hex digest", () => {
    const o = { label: "n", lockFile: "/l", containerd: "containerd", ctr: "ctr", grpcAddress: "/s", restartCommand: "r", healthTimeoutSeconds: 5, configVersion: 2 as const, minimumVersion: "1.7.0", healthChecks: [], owner: "u", sudo: false, script: "/x.sh" };
    const cmd = applyCommand({ path: HUB, mode: 0o644, kind: "hosts" }, o, "0123456789abcdef");
    expect(cmd.startsWith(`/bin/sh -c '${REPAIR_RUN_SCRIPT.replace(/'/g, `'"'"'`)}' '/x.sh' '0123456789abcdef' 'apply'`)).toBe(true);
    expect(() => applyCommand({ path: HUB, mode: 0o644, kind: "hosts" }, o, "$(reboot)")).toThrow(/hex digest/);
  });
});

describe("the running version", () => {
  it("refuses another major with the node guard's words, and an older minor", () => {
    expect(findings(read({ version: "2.1.9" }), [], [], opts()).errors).toEqual([
      "n1: refusing a version 2 config.toml: the node runs containerd 2.1.9, but the spec renders for containerd 1.7.0 (containerdVersion); containerd 2.1.9 would ignore or misread it. Set containerdVersion to 2.1.9",
    ]);
    expect(findings(read({ version: "1.6.20" }), [], [], opts()).errors).toEqual([
      "n1: refusing a version 2 config.toml: the node runs containerd 1.6.20, older than containerdVersion 1.7.0 in the spec; set containerdVersion to 1.6.20",
    ]);
    expect(findings(read({ version: "1.7.24" }), [], [], opts()).errors).toEqual([]);
  });

  it("is a warning, not an error, when the node cannot be read", () => {
    const f = findings({ ...emptyRead(), error: "connect ECONNREFUSED 10.0.0.1:22" }, files, [], opts());
    expect(f.errors).toEqual([]);
    expect(f.warnings).toEqual([
      'n1: not read (connect ECONNREFUSED 10.0.0.1:22): this run compares with the recorded state only, so its drift check, version guard, mirror gates and dropImports guard are off, and a drift gate (pulumi preview --expect-no-changes) passes over it; set unreadNode: "fail" to refuse such a node. Nor can the preview say its unit\'s KillMode or whether it holds its sandbox image: the apply still checks both on the node before a restart',
    ]);
  });
});

describe("imports", () => {
  const nvidia = { path: "/etc/containerd/conf.d/99-nvidia.toml", content: 'version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]\nruntime_type = "io.containerd.runc.v2"\n' };
  const withImport = read({ imports: [{ pattern: "conf.d/*.toml", files: [nvidia] }] });

  it("refuses to drop one, naming the file and the runtime that would vanish", () => {
    expect(findings(withImport, [], [], opts()).errors).toEqual([
      `n1: ${CONFIG} imports conf.d/*.toml (/etc/containerd/conf.d/99-nvidia.toml: runtime nvidia; plugins io.containerd.grpc.v1.cri), which the new config.toml does not: what it defines would vanish. Add "conf.d/*.toml" to imports to keep it, or to dropImports to let it go`,
    ]);
  });

  it("lets it go under dropImports, with a warning", () => {
    const f = findings(withImport, [], [], opts({ dropImports: ["conf.d/*.toml"] }));
    expect(f.errors).toEqual([]);
    expect(f.warnings[0]).toContain("as dropImports says");
  });

  it("keeps it, and on 1.x says which plugin tables the drop-in replaces whole", () => {
    const f = findings(withImport, [], [], opts({ imports: ["conf.d/*.toml"] }));
    expect(f.errors).toEqual([]);
    expect(f.warnings).toEqual([
      `n1: on containerd 1.x an imported file replaces whole plugin tables: /etc/containerd/conf.d/99-nvidia.toml replaces this config.toml's [plugins."io.containerd.grpc.v1.cri"] (settings there, such as the registry config_path, come from the drop-in only)`,
    ]);
    expect(findings(withImport, [], [], opts({ imports: ["conf.d/*.toml"], configVersion: 3, minimumVersion: "2.0.0" })).warnings).toEqual([]);
  });

  it("refuses a kept drop-in of a higher version than config.toml, and one that is not TOML", () => {
    const v3 = read({ imports: [{ pattern: "a.toml", files: [{ path: "/etc/containerd/a.toml", content: "version = 3\n" }] }] });
    expect(findings(v3, [], [], opts({ imports: ["a.toml"] })).errors).toEqual(["n1: imported /etc/containerd/a.toml has version 3, higher than config.toml's 2; containerd refuses a drop-in newer than its root config"]);
    const bad = read({ imports: [{ pattern: "a.toml", files: [{ path: "/etc/containerd/a.toml", content: "version = = 3\n" }] }] });
    expect(findings(bad, [], [], opts({ imports: ["a.toml"] })).errors[0]).toMatch(/^n1: imported \/etc\/containerd\/a.toml is not valid TOML/);
  });
});

describe("mirrors", () => {
  const rendered = renderNode({
    containerdVersion: "2.1",
    registries: {
      "docker.io": {
        mirrors: [
          { url: "https://mirror-a.example", auth: { username: "u", password: "p" } },
          { url: "https://mirror-b.example/cache", ca: "/etc/ssl/mirror-b.pem", skipVerify: false },
        ],
      },
    },
  }).files;
  const targets = probeTargets(rendered);

  it("are probed from the rendered hosts.toml: every host, mirrors first, with its CA and where its credentials are", () => {
    expect(targets.map((t) => [t.host, t.role, ...t.args.slice(2)])).toEqual([
      ["https://mirror-a.example", "mirror", "https://mirror-a.example/v2/", "-", "0", "-", "-", HUB, 'host."https://mirror-a.example".header'],
      ["https://mirror-b.example/cache", "mirror", "https://mirror-b.example/cache/v2/", "/etc/ssl/mirror-b.pem", "0", "-", "-", "-", "-"],
      ["https://registry-1.docker.io", "server", "https://registry-1.docker.io/v2/", "-", "0", "-", "-", "-", "-"],
    ]);
    expect(pingUrl("https://h.example/v2/hub", true)).toBe("https://h.example/v2/hub/");
  });

  const probes = (classes: string[]) => new Map(targets.map((t, i) => [t.id, { class: classes[i], seconds: 0.25, credentials: "-" as const, tool: "curl" }]));

  it("say per dead host what it means for pulls, and refuse a registry with no live host unless allowed", () => {
    const some = findings(read({ probes: probes(["dns-error", "ok", "timeout"]) }), [], targets, opts());
    expect(some.errors).toEqual([]);
    expect(some.warnings).toEqual([
      "n1: https://mirror-a.example: dns-error in 0.3 s; pulls from docker.io will fall through to the next host",
      "n1: https://registry-1.docker.io: timeout in 0.3 s; it is the last host for docker.io",
    ]);
    expect(some.mirrors.map((m) => m.class)).toEqual(["dns-error", "ok", "timeout"]);
    const none = findings(read({ probes: probes(["refused", "tls-error", "timeout"]) }), [], targets, opts());
    expect(none.errors).toEqual([
      "n1: no host of docker.io answers as a registry from this node (https://mirror-a.example: refused, https://mirror-b.example/cache: tls-error, https://registry-1.docker.io: timeout); pulls from docker.io would fail. Set mirrorProbe.allowDeadRegistries to go on anyway",
    ]);
    expect(findings(read({ probes: probes(["refused", "tls-error", "timeout"]) }), [], targets, opts({ allowDeadRegistries: true })).errors).toEqual([]);
    expect(findings(read({ probes: probes(["forbidden", "ok", "ok"]) }), [], targets, opts({ probePolicy: "fail" })).errors).toEqual([
      "n1: https://mirror-a.example: forbidden in 0.3 s; pulls from docker.io will fall through to the next host",
    ]);
  });

  it("count refused credentials as dead", () => {
    const p = probes(["auth-required", "ok", "ok"]);
    p.set(targets[0].id, { class: "auth-required", seconds: 0.1, credentials: "fail" as never, tool: "curl" });
    expect(findings(read({ probes: p }), [], targets, opts()).warnings[0]).toBe(
      "n1: https://mirror-a.example: auth-required, and its credentials are refused in 0.1 s; pulls from docker.io will fall through to the next host",
    );
  });
});

describe("mirror probes before this up writes the files they depend on", () => {
  const CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n";
  const spec = (password: string) =>
    renderNode({
      containerdVersion: "1.7",
      registries: { "harbor.test": { server: { url: "https://harbor.test", ca: CA_PEM, auth: { username: "robot", password } } } },
    }).files;
  const rendered = spec("pw-1");
  const targets = probeTargets(rendered);
  const hosts = rendered.find((x) => x.kind === "hosts")!;
  const ca = rendered.find((x) => x.path.endsWith(".crt"))!;
  const desired: DesiredFile[] = rendered.map((x) => ({ path: x.path, mode: x.mode, secret: x.secret, content: x.secret ? undefined : x.content, sha256: hashOf(x.content) }));
  const o = opts({ managedDirs: ["harbor.test"] });
  const probed = (cls: string, credentials: "pass" | "fail" | "none" | "-" = "-") => new Map(targets.map((t) => [t.id, { class: cls, seconds: 0.1, credentials, tool: "curl" }]));
  const node = (...present: { path: string; content: string }[]) => new Map(present.map((x) => [x.path, { present: true, sha256: hashOf(x.content), mode: "644" }]));

  it("does not judge a TLS failure of a host whose CA file this up writes (a first rollout with its own CA)", () => {
    expect(targets.map((t) => t.tlsFiles)).toEqual([[ca.path]]);
    const first = findings(read({ probes: probed("tls-error"), files: new Map() }), desired, targets, o);
    expect(first.errors).toEqual([]);
    expect(first.warnings).toEqual([`n1: https://harbor.test: tls-error with the node's current files, not judged: its CA or client certificate changes in this up; the next preview probes it with the new ones`]);
    // Once the CA on the node is the one of the spec, a TLS failure is the host's own.
    const after = findings(read({ probes: probed("tls-error"), files: node(ca, hosts) }), desired, targets, o);
    expect(after.errors).toEqual([expect.stringContaining("no host of harbor.test answers as a registry from this node (https://harbor.test: tls-error)")]);
  });

  it("does not judge refused credentials when this up writes new ones (a rotation), and judges the ones in place", () => {
    const rotated = spec("pw-2");
    const want: DesiredFile[] = rotated.map((x) => ({ path: x.path, mode: x.mode, secret: x.secret, content: x.secret ? undefined : x.content, sha256: hashOf(x.content) }));
    const rotation = findings(read({ probes: probed("auth-required", "fail"), files: node(ca, hosts) }), want, probeTargets(rotated), o);
    expect(rotation.errors).toEqual([]);
    expect(rotation.warnings).toEqual([`n1: https://harbor.test: credentials refused with the node's current files, not judged: its credentials change in this up; the next preview probes it with the new ones`]);
    const same = findings(read({ probes: probed("auth-required", "fail"), files: node(ca, hosts) }), desired, targets, o);
    expect(same.errors).toEqual([expect.stringContaining("no host of harbor.test answers")]);
  });
});

describe("unmanaged registry directories", () => {
  const star: DesiredFile[] = [{ path: "/etc/containerd/certs.d/_default/hosts.toml", mode: 0o644, secret: false, content: "" }];
  const r = read({
    registryDirs: new Map([["docker.io", { server: "https://docker.io", hosts: [] }], ["_default", { hosts: ["https://m.example"] }]]),
    unmanagedProbes: [{ id: "u1", directory: "docker.io", role: "server", url: "https://docker.io" }],
    probes: new Map([["u1", { class: "not-a-registry", http: 301, seconds: 0.2, credentials: "-", tool: "curl" }]]),
  });

  it("are reported with what they do: precedence over * and where they send pulls", () => {
    const f = findings(r, star, [], opts({ managedDirs: ["_default"] }));
    expect(f.unmanaged.map((u) => u.directory)).toEqual(["docker.io"]);
    expect(f.warnings).toEqual([
      'n1: certs.d/docker.io is not managed and takes precedence over `*` for docker.io; its hosts.toml sends pulls to https://docker.io, which is not a registry; set unmanagedRegistries: "remove" to set it aside',
    ]);
    expect(f.setAside).toEqual([]);
  });

  it("are set aside under remove, and stay in the list once set aside (no change on the next preview)", () => {
    expect(findings(r, star, [], opts({ managedDirs: ["_default"], unmanagedRegistries: "remove" })).setAside).toEqual(["docker.io"]);
    const after = read({ registryDirs: new Map([["_default", { hosts: [] }]]), setAside: [{ name: "docker.io", later: 0 }] });
    expect(findings(after, star, [], opts({ managedDirs: ["_default"], unmanagedRegistries: "remove" })).setAside).toEqual(["docker.io"]);
  });

  it("leave out a directory holding files a ContainerdNode manages: a registry this spec drops is its files' deletes to restore", () => {
    // quay.io was in the last spec: its hosts.toml has this node's owner record; the new spec lacks it.
    const dropped = read({ registryDirs: new Map([["_default", { hosts: [] }], ["quay.io", { hosts: ["https://q.example"] }]]), ownedDirs: new Set(["quay.io"]) });
    const f = findings(dropped, star, [], opts({ managedDirs: ["_default"], unmanagedRegistries: "remove" }));
    expect(f.unmanaged).toEqual([]);
    expect(f.warnings).toEqual([]);
    expect(f.setAside).toEqual([]);
  });

  it("count a held directory made again by hand one generation up, and stay there once that copy is aside too", () => {
    const remove = opts({ managedDirs: ["_default"], unmanagedRegistries: "remove" });
    const back = read({ registryDirs: new Map([["_default", { hosts: [] }], ["docker.io", { hosts: [] }]]), setAside: [{ name: "docker.io", later: 0 }] });
    expect(findings(back, star, [], remove).setAside).toEqual(["docker.io@1"]);
    const asideAgain = read({ registryDirs: new Map([["_default", { hosts: [] }]]), setAside: [{ name: "docker.io", later: 1 }] });
    expect(findings(asideAgain, star, [], remove).setAside).toEqual(["docker.io@1"]);
    // Held, and managed now: listed (no change), and the node script leaves a managed directory where it is.
    const managed = read({ registryDirs: new Map([["_default", { hosts: [] }], ["docker.io", { hosts: [] }]]), ownedDirs: new Set(["docker.io"]), setAside: [{ name: "docker.io", later: 0 }] });
    expect(findings(managed, star, [], opts({ managedDirs: ["_default", "docker.io"], unmanagedRegistries: "remove" })).setAside).toEqual(["docker.io"]);
  });
});

describe("the read's options", () => {
  it("name the field, the value and what is allowed", () => {
    expect(operationProblems({ readNode: "yes" as never, readTimeoutSeconds: 0, unmanagedRegistries: "delete" as never, mirrorProbe: { policy: "strict" as never, timeoutSeconds: 99, extra: 1 } as never, dropImports: [""] })).toEqual([
      { path: "readNode", message: '"yes" is not true or false' },
      { path: "readTimeoutSeconds", message: "0 is not a whole number of seconds from 1 to 600" },
      { path: "unmanagedRegistries", message: '"delete" is not one of "warn", "remove"' },
      { path: "mirrorProbe.extra", message: "is not a field; allowed: enabled, policy, timeoutSeconds, allowDeadRegistries" },
      { path: "mirrorProbe.policy", message: '"strict" is not one of "warn", "fail"' },
      { path: "mirrorProbe.timeoutSeconds", message: "99 is not a whole number of seconds from 1 to 60" },
      { path: "dropImports", message: '[""] is not a list of import patterns' },
    ]);
  });

  it("take their defaults for fields given as undefined (cfg.getNumber of an unset key)", () => {
    expect(mirrorProbeSettings({ timeoutSeconds: undefined, policy: undefined })).toEqual({ enabled: true, policy: "warn", timeoutSeconds: 5, allowDeadRegistries: false });
    expect(mirrorProbeSettings({ timeoutSeconds: 2 })).toEqual({ enabled: true, policy: "warn", timeoutSeconds: 2, allowDeadRegistries: false });
    expect(mirrorProbeSettings(undefined).timeoutSeconds).toBe(5);
  });
});

describe("lineDiff", () => {
  it("shows changed lines with two lines of context and elides the rest", () => {
    const a = ["1", "2", "3", "4", "5", "6", "7", "8"].join("\n");
    const b = ["1", "2", "3", "4", "5", "six", "7", "8"].join("\n");
    expect(lineDiff(a, b)).toBe(["  ...", "  4", "  5", "- 6", "+ six", "  7", "  8"].join("\n"));
  });
});

describe("the KillMode of containerd's systemd unit", () => {
  const unitFix = "Fix: a drop-in /etc/systemd/system/containerd.service.d/killmode.conf with [Service] and KillMode=process, then systemctl daemon-reload";

  it("is asked for the unit of a systemctl restart command (found as the apply's guard finds it), as a K group last", () => {
    const request = (restartCommand?: string) => planOrThrow("n1", { containerdVersion: "1.7", connection: { host: "10.0.0.1", user: "root", privateKey: "k" }, ...(restartCommand ? { restartCommand } : {}) }).read.request;
    expect(request().killMode).toEqual({ unit: "containerd", systemctl: "systemctl" });
    expect(request("/usr/bin/systemctl restart --no-block containerd.service; sleep 1").killMode).toEqual({ unit: "containerd.service", systemctl: "/usr/bin/systemctl" });
    expect(request("systemctl restart containerd&&true").killMode).toBeUndefined();
    expect(request("systemctl restart 'containerd'").killMode).toBeUndefined();
    expect(request("systemctl stop containerd").killMode).toBeUndefined();
    expect(request("rc-service containerd restart").killMode).toBeUndefined();
    expect(request("mysystemctl restart containerd").killMode).toBeUndefined();
    expect(systemdUnitOf("systemctl restart containerd)")).toEqual({ unit: "containerd", systemctl: "systemctl" });
    expect(systemdUnitOf("systemctl restart -- ;")).toBeUndefined();
    const args = readArguments(request());
    expect(args.slice(-3)).toEqual(["K", "containerd", "systemctl"]);
    expect(readArguments(request("rc-service containerd restart"))).not.toContain("K");
    // The findings are judged against the same unit, and against allowContainerLoss.
    const plan = planOrThrow("n1", { containerdVersion: "1.7", connection: { host: "10.0.0.1", user: "root", privateKey: "k" }, restartCommand: "service containerd restart", allowContainerLoss: true });
    expect([plan.read.findings.restartUnit, plan.read.findings.allowContainerLoss]).toEqual(["", true]);
    expect(planOrThrow("n1", { containerdVersion: "1.7", connection: { host: "10.0.0.1", user: "root", privateKey: "k" } }).read.findings).toMatchObject({ restartUnit: "containerd", allowContainerLoss: false });
  });

  it("is parsed from its record", () => {
    expect(parseRead(Buffer.from("version 1.7.24\nkillmode containerd.service control-group\nend\n")).killMode).toEqual({ unit: "containerd.service", value: "control-group" });
    expect(parseRead(Buffer.from("killmode containerd\nend\n")).killMode).toEqual({ unit: "containerd", value: "unknown" });
    expect(parseRead(Buffer.from("killmode containred control-group not-found\nend\n")).killMode).toEqual({ unit: "containred", value: "control-group", loadState: "not-found" });
    expect(parseRead(Buffer.from("end\n")).killMode).toBeUndefined();
  });

  it("says nothing when it is process", () => {
    const f = findings(read({ killMode: { unit: "containerd", value: "process" } }), files, [], opts());
    expect([f.warnings, f.errors]).toEqual([[], []]);
  });

  it("is a warning on the node otherwise, in the words of up's refusal, and not an error (hosts.toml changes need no restart)", () => {
    const f = findings(read({ killMode: { unit: "containerd", value: "control-group" } }), files, [], opts());
    expect(f.errors).toEqual([]);
    expect(f.warnings).toEqual([
      `n1: containerd's systemd unit containerd has KillMode=control-group, which ends every container on the node with the daemon (only KillMode=process leaves them running): up will refuse to restart containerd for a config.toml change (nothing restarted, the old config.toml stays) unless allowContainerLoss is set. ${unitFix}; or set allowContainerLoss to restart anyway and lose them`,
    ]);
    const mixed = findings(read({ killMode: { unit: "containerd.service", value: "mixed" } }), files, [], opts({ restartUnit: "containerd.service" }));
    expect(mixed.warnings[0]).toContain("containerd's systemd unit containerd.service has KillMode=mixed");
    expect(mixed.warnings[0]).toContain(unitFix);
  });

  it("of a unit systemd does not have (it shows its default, control-group) says the unit is not loaded and how to name it, allowContainerLoss or not", () => {
    const said =
      "n1: containerd's systemd unit containred is not loaded (LoadState=not-found): systemd has no usable unit by that name, so the KillMode it shows (control-group) is only its default and the restart command cannot restart containerd. up will refuse to restart containerd for a config.toml change (nothing restarted, the old config.toml stays). Fix: name containerd's unit in restartCommand (systemctl list-units 'containerd*' lists it)";
    for (const allowContainerLoss of [false, true]) {
      const f = findings(read({ killMode: { unit: "containred", value: "control-group", loadState: "not-found" } }), files, [], opts({ restartUnit: "containred", allowContainerLoss }));
      expect([f.warnings, f.errors]).toEqual([[said], []]);
    }
  });

  it("that cannot be read is not taken for process", () => {
    const f = findings(read({ killMode: { unit: "containerd", value: "unknown" } }), files, [], opts());
    expect(f.errors).toEqual([]);
    expect(f.warnings).toEqual([
      "n1: the KillMode of containerd's systemd unit containerd cannot be read (systemctl show --property=KillMode --value containerd gave no answer), and only KillMode=process leaves the containers running: up will refuse to restart containerd for a config.toml change (nothing restarted, the old config.toml stays) unless allowContainerLoss is set. Check the unit; or set allowContainerLoss to restart anyway and lose them",
    ]);
  });

  it("with allowContainerLoss is a plain warning that each restart ends the node's pods", () => {
    const f = findings(read({ killMode: { unit: "containerd", value: "control-group" } }), files, [], opts({ allowContainerLoss: true }));
    expect(f.errors).toEqual([]);
    expect(f.warnings).toEqual([
      "n1: containerd's systemd unit containerd has KillMode=control-group, which ends every container on the node with the daemon (only KillMode=process leaves them running): allowContainerLoss is set, so each restart of containerd (a config.toml change) ends every pod on the node",
    ]);
  });

  it("is not checked where systemd does not run the restart, and preview says so", () => {
    const f = findings(read(), files, [], opts({ restartUnit: "" }));
    expect(f.errors).toEqual([]);
    expect(f.warnings).toEqual([
      `n1: the restart command (restartCommand) is not "systemctl restart UNIT": systemd does not manage the restart here, so the KillMode of containerd's unit is not checked; the running-containers check still guards a config.toml restart (an apply after which a container that ran before no longer runs fails and stops the later waves)`,
    ]);
    expect(findings(read(), files, [], opts({ restartUnit: "", allowContainerLoss: true })).warnings[0]).toMatch(/no longer runs fails; with allowContainerLoss it only reports them\)$/);
    // A node the read does not reach is judged by unreadNode only.
    expect(findings({ ...emptyRead(), error: "x" }, files, [], opts({ restartUnit: "" })).warnings).toHaveLength(1);
  });
});

describe("the sandbox image", () => {
  it("is parsed from its record", () => {
    expect(parseRead(Buffer.from("sandbox registry.k8s.io/pause:3.10 absent\nend\n")).sandbox).toEqual({ image: "registry.k8s.io/pause:3.10", state: "absent" });
    expect(parseRead(Buffer.from("sandbox registry.k8s.io/pause:3.10 garbled\nend\n")).sandbox).toEqual({ image: "registry.k8s.io/pause:3.10", state: "unknown" });
    expect(parseRead(Buffer.from("end\n")).sandbox).toBeUndefined();
  });

  it("says nothing where the node holds it, warns where it does not, and says when the read could not tell", () => {
    const at = (state: "present" | "absent" | "unknown") => findings(read({ sandbox: { image: "registry.k8s.io/pause:3.10", state } }), files, [], opts());
    expect([at("present").warnings, at("present").errors]).toEqual([[], []]);
    expect(at("absent").errors).toEqual([]);
    expect(at("absent").warnings).toEqual([
      "n1: the sandbox image registry.k8s.io/pause:3.10 (sandboxImage) is not in containerd's k8s.io namespace: the next pod on this node pulls it through the registries as they are then. A config.toml change pulls it through the new registry config before restarting containerd, and is refused on this node if that fails",
    ]);
    expect(at("unknown").warnings).toEqual([expect.stringContaining("n1: whether the sandbox image registry.k8s.io/pause:3.10 is on the node could not be read")]);
  });
});
