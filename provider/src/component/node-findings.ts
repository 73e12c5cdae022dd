/**
 * What the program's read of a node (node-read.ts) means for the node's resources: drift to write
 * back, a running containerd the files are not for, registry directories the spec does not manage,
 * imports a new config.toml would drop, and the health of every mirror from the node. Pure: the
 * component turns the result into inputs, warnings and errors.
 */
import { createHash, randomBytes } from "crypto";
import { CREDENTIAL_KEY } from "../spec/validate";
import { parse as parseToml } from "smol-toml";
import type { RenderedFile } from "../spec/types";
import type { NodeRead } from "../remote/read";

export interface ReadOptions {
  /** The node's name, for messages. */
  label: string;
  /** config.toml's version: 2 (containerd 1.x), 3 or 4 (2.x). */
  configVersion: number;
  /** Lowest containerd version the spec allows, e.g. "1.7.0". */
  minimumVersion: string;
  /** The registry config directory (registryConfigPath). */
  certsDir: string;
  /** The directories under it that the spec manages (`_default` for "*"). */
  managedDirs: readonly string[];
  configFile: string;
  /** The import patterns the new config.toml has. */
  imports: readonly string[];
  /** Patterns of the node's current config.toml the spec lets go. */
  dropImports: readonly string[];
  unmanagedRegistries: "warn" | "remove";
  /** A node the read does not reach: a warning, or an error that stops the node. */
  unreadNode: "warn" | "fail";
  probePolicy: "warn" | "fail";
  allowDeadRegistries: boolean;
  /** The systemd unit of a `systemctl restart UNIT` restartCommand; "" for another restart command. */
  restartUnit: string;
  /** A restart may end the node's containers (allowContainerLoss). */
  allowContainerLoss: boolean;
}

/** One host of one hosts.toml as the node sees it. */
export interface MirrorHealth {
  /** The registry namespace ("docker.io", "*"), or the directory of an unmanaged one. */
  registry: string;
  host: string;
  role: "mirror" | "server";
  /** ok, auth-required, forbidden, not-a-registry, tls-error, dns-error, refused, timeout, error-N, unprobed. */
  class: string;
  seconds: number;
  httpStatus?: number;
  /** For auth-required: whether the credentials containerd has for it pass ("none": it has none). */
  credentials?: "pass" | "fail" | "none";
  /** What probed it on the node: curl, wget or none. */
  tool: string;
  managed: boolean;
}

export interface FileDrift {
  path: string;
  what: string;
  token: string;
}

export interface UnmanagedRegistry {
  directory: string;
  server?: string;
  hosts: string[];
  message: string;
}

export interface Findings {
  reached: boolean;
  readSeconds: number;
  runningVersion?: string;
  criStatus?: string;
  /** The drift token each file's apply carries (the repair recorded on the node, or a new one). */
  tokens: Map<string, string | undefined>;
  drift: FileDrift[];
  /** Said on the node: each is a warning. */
  warnings: string[];
  /** Warnings that belong to one file's resource. */
  fileWarnings: Map<string, string[]>;
  /** Each stops the node: nothing of it is applied. */
  errors: string[];
  unmanaged: UnmanagedRegistry[];
  /**
   * unmanagedRegistries "remove": the set-aside resource's list, each directory held aside or to be
   * set aside, as NAME, or NAME@N once N later copies of it were (or are now to be) set aside too.
   */
  setAside: string[];
  mirrors: MirrorHealth[];
}

/** A probe of one host: the read script's P group (read-script.ts). */
export interface ProbeTarget {
  id: string;
  registry: string;
  host: string;
  role: "mirror" | "server";
  managed: boolean;
  args: string[];
  /** The files the node uses for this host's TLS: its CA, client certificate and key. */
  tlsFiles?: string[];
  /** The hosts.toml that holds the Authorization header sent to it. */
  authFile?: string;
}

const DEAD = (c: string) => !["ok", "auth-required", "unprobed"].includes(c);
const sha = (s: string) => createHash("sha256").update(s).digest("hex");

/**
 * A file's text with every credential a hand edit may have put there masked: the value of a
 * `key = value` line whose key names a credential (Authorization and Proxy-Authorization headers,
 * and the names settings refuses: auth, password, token, secret, ...), and the user:password of a URL.
 * For the drift warnings of files that are not secret: the node's copy is shown, and a warning is
 * logged and kept in the engine's output.
 */
export function redactCredentials(text: string): string {
  return text
    .split("\n")
    .map((l) => {
      const m = /^(\s*"?)([A-Za-z0-9_.-]+)("?\s*=\s*)(.*)$/.exec(l);
      if (m && (/^(proxy-)?authorization$/i.test(m[2]) || CREDENTIAL_KEY.test(m[2]))) return `${m[1]}${m[2]}${m[3]}"[redacted]"`;
      return l.replace(/(\/\/)[^/@\s"]*:[^/@\s"]*@/g, "$1[redacted]@");
    })
    .join("\n");
}

function versionParts(v: string): number[] {
  return v.split(".").map((x) => Number(x) || 0);
}

function olderThan(a: string, b: string): boolean {
  const x = versionParts(a);
  const y = versionParts(b);
  for (let i = 0; i < 3; i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) < (y[i] ?? 0);
  return false;
}

/** The /v2/ endpoint containerd talks to for a host URL (docs/hosts.md: the path is a prefix, /v2 appended unless override_path). */
export function pingUrl(url: string, overridePath: boolean): string {
  const u = new URL(url);
  let p = u.pathname.replace(/\/+$/, "");
  if (!overridePath && !p.endsWith("/v2")) p += "/v2";
  return `${u.protocol}//${u.host}${p}/`;
}

type Table = Record<string, unknown>;
const first = (v: unknown): string | undefined => (Array.isArray(v) ? (typeof v[0] === "string" ? v[0] : undefined) : typeof v === "string" ? v : undefined);

/** The probes of the spec's hosts.toml files: every host, mirrors in order, server last. */
export function probeTargets(files: readonly RenderedFile[]): ProbeTarget[] {
  const out: ProbeTarget[] = [];
  for (const f of files) {
    if (f.kind !== "hosts" || f.registry === undefined) continue;
    let doc: Table;
    try {
      doc = parseToml(f.content) as Table;
    } catch {
      continue;
    }
    const one = (url: string, t: Table, role: "mirror" | "server", section: string) => {
      const client = t.client;
      const pair = Array.isArray(client) && Array.isArray(client[0]) ? (client[0] as string[]) : undefined;
      const cert = pair ? pair[0] : first(client);
      const key = pair && pair[1] ? pair[1] : undefined;
      const header = (t.header ?? {}) as Table;
      const auth = Object.keys(header).some((k) => k.toLowerCase() === "authorization");
      const id = `p${out.length}`;
      out.push({
        id,
        registry: f.registry!,
        host: url,
        role,
        managed: true,
        args: ["P", id, pingUrl(url, t.override_path === true), first(t.ca) ?? "-", t.skip_verify === true ? "1" : "0", cert ?? "-", key ?? "-", auth ? f.path : "-", auth ? section : "-"],
        tlsFiles: [first(t.ca), cert, key].filter((x): x is string => x !== undefined),
        authFile: auth ? f.path : undefined,
      });
    };
    const hosts = (doc.host ?? {}) as Record<string, Table>;
    for (const [url, t] of Object.entries(hosts)) if (url !== doc.server) one(url, t, "mirror", `host."${url}".header`);
    if (typeof doc.server === "string") one(doc.server, hosts[doc.server] ?? doc, "server", hosts[doc.server] ? `host."${doc.server}".header` : "header");
  }
  return out;
}

/** A line diff of `a` (node now) against `b` (to be written), with two lines of context. */
export function lineDiff(a: string, b: string, context = 2): string {
  const x = a.split("\n");
  const y = b.split("\n");
  const n = x.length;
  const m = y.length;
  // LCS table; the files are small (a config.toml is a few hundred lines at most).
  const L: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) L[i][j] = x[i] === y[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const ops: { t: " " | "-" | "+"; s: string }[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && x[i] === y[j]) {
      ops.push({ t: " ", s: x[i] });
      i++;
      j++;
    } else if (i < n && (j >= m || L[i + 1][j] >= L[i][j + 1])) ops.push({ t: "-", s: x[i++] });
    else ops.push({ t: "+", s: y[j++] });
  }
  const show = ops.map((o, k) => o.t !== " " || ops.slice(Math.max(0, k - context), k + context + 1).some((p) => p.t !== " "));
  const lines: string[] = [];
  ops.forEach((o, k) => {
    if (show[k]) lines.push(`${o.t} ${o.s}`);
    else if (k === 0 || show[k - 1]) lines.push("  ...");
  });
  return lines.join("\n");
}

/** What a drop-in defines, by name only (its values may be anything, and are never shown). */
function definitions(content: string): { version?: number; runtimes: string[]; plugins: string[]; error?: string } {
  let doc: Table;
  try {
    doc = parseToml(content) as Table;
  } catch (e) {
    return { runtimes: [], plugins: [], error: (e as Error).message.split("\n")[0] };
  }
  const runtimes = new Set<string>();
  const plugins = Object.keys((doc.plugins ?? {}) as Table);
  const walk = (t: unknown) => {
    if (typeof t !== "object" || t === null || Array.isArray(t)) return;
    for (const [k, v] of Object.entries(t as Table)) {
      if (k === "runtimes" && typeof v === "object" && v !== null) for (const r of Object.keys(v as Table)) runtimes.add(r);
      else walk(v);
    }
  };
  walk(doc.plugins);
  return { version: typeof doc.version === "number" ? doc.version : undefined, runtimes: [...runtimes], plugins };
}

export interface DesiredFile {
  path: string;
  mode: number;
  secret: boolean;
  /** Plain content for non-secret files; undefined for secret ones (compared by hash only). */
  content?: string;
  /** sha256 of the content to be written, also for secret files when it is known (never shown). */
  sha256?: string;
}

/** Reads the read: see the module comment. */
/**
 * What a read of the node means for this plan, concern by concern: the running version, drift of
 * each managed file, config.toml's imports, the mirrors as the node reaches them, and the registry
 * directories the spec does not manage. A node the read did not reach is judged by unreadNode only.
 */
export function findings(read: NodeRead, files: readonly DesiredFile[], probes: readonly ProbeTarget[], o: ReadOptions): Findings {
  const f: Findings = {
    reached: read.reached,
    readSeconds: read.seconds,
    runningVersion: read.version,
    criStatus: read.cri,
    tokens: new Map(),
    drift: [],
    warnings: [],
    fileWarnings: new Map(),
    errors: [],
    unmanaged: [],
    setAside: [],
    mirrors: [],
  };
  if (!read.reached) {
    unreadFindings(read, o, f);
    return f;
  }
  versionFindings(read, o, f);
  driftFindings(read, files, o, f);
  importFindings(read, o, f);
  mirrorFindings(read, files, probes, o, f);
  unmanagedFindings(read, o, f);
  killModeFindings(read, o, f);
  sandboxFindings(read, f, o);
  return f;
}

/** A node the read did not reach: a warning that says what it loses, or (unreadNode "fail") an error. */
function unreadFindings(read: NodeRead, o: ReadOptions, f: Findings): void {
  const say = `${o.label}:`;
  const why = `${say} not read (${read.error ?? "no answer"}): this run compares with the recorded state only, so its drift check, version guard, mirror gates and dropImports guard are off`;
  if (o.unreadNode === "fail") f.errors.push(`${why}; refused (unreadNode: "fail")`);
  else f.warnings.push(`${why}, and a drift gate (pulumi preview --expect-no-changes) passes over it; set unreadNode: "fail" to refuse such a node. Nor can the preview say its unit's KillMode or whether it holds its sandbox image: the apply still checks both on the node before a restart`);
}

/** The running version, with the node guard's own words (node-script.ts check_version). */
function versionFindings(read: NodeRead, o: ReadOptions, f: Findings): void {
  const say = `${o.label}:`;
  if (read.version) {
    const v = read.version;
    const wantMajor = o.configVersion >= 3 ? 2 : 1;
    if (versionParts(v)[0] !== wantMajor) {
      f.errors.push(`${say} refusing a version ${o.configVersion} config.toml: the node runs containerd ${v}, but the spec renders for containerd ${o.minimumVersion} (containerdVersion); containerd ${v} would ignore or misread it. Set containerdVersion to ${v}`);
    } else if (olderThan(v, o.minimumVersion)) {
      f.errors.push(`${say} refusing a version ${o.configVersion} config.toml: the node runs containerd ${v}, older than containerdVersion ${o.minimumVersion} in the spec; set containerdVersion to ${v}`);
    }
  }
}

/**
 * The KillMode of containerd's systemd unit, as the apply's restart guard (node-script.ts
 * killmode_guard) will find it: anything but process ends every container with the daemon, and up
 * refuses that restart unless allowContainerLoss. A warning, not an error: an error here stops all
 * of the node's commands, but a hosts.toml change needs no restart and is safe on such a node, and
 * whether this run changes config.toml is the engine's diff, not known here. The apply still refuses
 * the restart on the node itself, before anything changes. A restart command systemd does not run
 * is said too: its KillMode is not checked, and only the running-containers check guards it. So is a
 * unit systemd does not have (a typo in restartCommand): systemd shows control-group for it.
 */
/**
 * The spec's sandbox image, where containerd's k8s.io namespace does not hold it: the next pod on the
 * node pulls it through the registries as they are then, and a config.toml change pulls it before it
 * restarts (node-script.ts sandbox_guard). A warning: nothing is wrong yet, and the apply itself
 * refuses a change whose image cannot be pulled. A read that could not tell says so rather than
 * passing for "present".
 */
function sandboxFindings(read: NodeRead, f: Findings, o: ReadOptions): void {
  const s = read.sandbox;
  if (s === undefined || s.state === "present") return;
  if (s.state === "unknown") {
    f.warnings.push(`${o.label}: whether the sandbox image ${s.image} is on the node could not be read (ctr images ls did not answer); a config.toml change pulls it before restarting containerd if it is not`);
    return;
  }
  f.warnings.push(
    `${o.label}: the sandbox image ${s.image} (sandboxImage) is not in containerd's k8s.io namespace: the next pod on this node pulls it through the registries as they are then. A config.toml change pulls it through the new registry config before restarting containerd, and is refused on this node if that fails`,
  );
}

function killModeFindings(read: NodeRead, o: ReadOptions, f: Findings): void {
  const say = `${o.label}:`;
  if (o.restartUnit === "") {
    f.warnings.push(
      `${say} the restart command (restartCommand) is not "systemctl restart UNIT": systemd does not manage the restart here, so the KillMode of containerd's unit is not checked; the running-containers check still guards a config.toml restart (an apply after which a container that ran before no longer runs fails${o.allowContainerLoss ? "; with allowContainerLoss it only reports them" : " and stops the later waves"})`,
    );
    return;
  }
  const k = read.killMode;
  if (k === undefined || k.value === "process") return;
  const unit = k.unit;
  if (k.loadState !== undefined) {
    // systemd shows its default KillMode for a unit it does not have; no drop-in changes that, and
    // the restart could not work: the apply refuses it, allowContainerLoss or not.
    f.warnings.push(
      `${say} containerd's systemd unit ${unit} is not loaded (LoadState=${k.loadState}): systemd has no usable unit by that name, so the KillMode it shows (${k.value}) is only its default and the restart command cannot restart containerd. up will refuse to restart containerd for a config.toml change (nothing restarted, the old config.toml stays). Fix: name containerd's unit in restartCommand (systemctl list-units 'containerd*' lists it)`,
    );
    return;
  }
  const what =
    k.value === "unknown"
      ? `the KillMode of containerd's systemd unit ${unit} cannot be read (systemctl show --property=KillMode --value ${unit} gave no answer), and only KillMode=process leaves the containers running`
      : `containerd's systemd unit ${unit} has KillMode=${k.value}, which ends every container on the node with the daemon (only KillMode=process leaves them running)`;
  if (o.allowContainerLoss) {
    f.warnings.push(`${say} ${what}: allowContainerLoss is set, so each restart of containerd (a config.toml change) ends every pod on the node`);
    return;
  }
  const fix = k.value === "unknown" ? "Check the unit" : `Fix: a drop-in /etc/systemd/system/${unit.replace(/\.service$/, "")}.service.d/killmode.conf with [Service] and KillMode=process, then systemctl daemon-reload`;
  f.warnings.push(`${say} ${what}: up will refuse to restart containerd for a config.toml change (nothing restarted, the old config.toml stays) unless allowContainerLoss is set. ${fix}; or set allowContainerLoss to restart anyway and lose them`);
}

/** Drift: each managed file against what the component's last apply left there (its record), and its drift token. */
function driftFindings(read: NodeRead, files: readonly DesiredFile[], o: ReadOptions, f: Findings): void {
  const say = `${o.label}:`;
  // A file without a record was never applied by this script revision: nothing to compare with.
  for (const d of files) {
    const now = read.files.get(d.path);
    const rec = now?.record;
    if (!now || !rec) {
      f.tokens.set(d.path, now?.repair);
      continue;
    }
    const mode = (s: string) => parseInt(s, 8);
    let what: string | undefined;
    if (!now.present) what = "is missing";
    else if (now.sha256 !== rec.sha256) what = d.secret ? "has other content (a secret file is compared by hash only; nothing of it is shown)" : "has other content";
    else if (mode(now.mode!) !== mode(rec.mode)) what = `has mode ${now.mode!.padStart(4, "0")}, installed ${rec.mode.padStart(4, "0")}`;
    if (!what) {
      f.tokens.set(d.path, now.repair);
      continue;
    }
    // A new token for every repair: chained to the last one, so the same drift twice is two repairs.
    // A secret file's is random: the token goes into plain state and the node's command line, and
    // one made from its sha256 would let anyone who reads either test guesses of its credential.
    // It only has to be new for this repair; the repairing apply records it on the node.
    const token = d.secret ? randomBytes(8).toString("hex") : sha(`${now.repair ?? ""}|${now.present ? `${now.sha256}:${now.mode}` : "absent"}`).slice(0, 16);
    f.tokens.set(d.path, token);
    f.drift.push({ path: d.path, what, token });
    let msg = `${say} ${d.path} ${what} since the last apply; up writes it back`;
    if (!d.secret && d.content !== undefined && now.present && now.content !== undefined && now.sha256 !== rec.sha256) {
      msg += ` (- on the node now, + to be written):\n${lineDiff(redactCredentials(now.content), redactCredentials(d.content))}`;
    }
    f.fileWarnings.set(d.path, [...(f.fileWarnings.get(d.path) ?? []), msg]);
  }
}

/** Imports of the node's config.toml now, against the new one's: none may vanish unless dropImports says so. */
function importFindings(read: NodeRead, o: ReadOptions, f: Findings): void {
  const say = `${o.label}:`;
  const kept = new Set(o.imports);
  for (const imp of read.imports) {
    const defs = imp.files.map((x) => ({ path: x.path, ...definitions(x.content) }));
    const what = defs.length
      ? defs.map((d) => `${d.path}${d.runtimes.length ? `: runtime ${d.runtimes.join(", ")}` : ""}${d.plugins.length ? `${d.runtimes.length ? ";" : ":"} plugins ${d.plugins.join(", ")}` : ""}`).join("; ")
      : "no file matches it now";
    if (!kept.has(imp.pattern)) {
      if (o.dropImports.includes(imp.pattern)) {
        f.warnings.push(`${say} ${o.configFile} imports ${imp.pattern} (${what}); the new one does not, as dropImports says: that goes`);
      } else {
        f.errors.push(
          `${say} ${o.configFile} imports ${imp.pattern} (${what}), which the new config.toml does not: what it defines would vanish. ` +
            `Add ${JSON.stringify(imp.pattern)} to imports to keep it, or to dropImports to let it go`,
        );
      }
      continue;
    }
    for (const d of defs) {
      if (d.error) f.errors.push(`${say} imported ${d.path} is not valid TOML (${d.error}); containerd would refuse to start`);
      else if (d.version !== undefined && d.version > o.configVersion) {
        f.errors.push(`${say} imported ${d.path} has version ${d.version}, higher than config.toml's ${o.configVersion}; containerd refuses a drop-in newer than its root config`);
      } else if (o.configVersion === 2 && d.plugins.length) {
        f.warnings.push(`${say} on containerd 1.x an imported file replaces whole plugin tables: ${d.path} replaces this config.toml's ${d.plugins.map((p) => `[plugins."${p}"]`).join(", ")} (settings there, such as the registry config_path, come from the drop-in only)`);
      }
    }
  }
}

/** The mirrors as the node reaches them: dead hosts, and registries none of whose hosts answers. */
function mirrorFindings(read: NodeRead, files: readonly DesiredFile[], probes: readonly ProbeTarget[], o: ReadOptions, f: Findings): void {
  const say = `${o.label}:`;
  const unmanagedProbes: ProbeTarget[] = read.unmanagedProbes.map((u) => ({ id: u.id, registry: u.directory, host: u.url, role: u.role, managed: false, args: [] }));
  for (const p of [...probes, ...unmanagedProbes]) {
    const r = read.probes.get(p.id);
    if (!r) continue;
    f.mirrors.push({
      registry: p.registry,
      host: p.host,
      role: p.role,
      class: r.class,
      seconds: r.seconds,
      httpStatus: r.http,
      credentials: r.credentials === "-" ? undefined : r.credentials,
      tool: r.tool,
      managed: p.managed,
    });
  }
  // The probe runs before this up writes anything: a host whose CA or client files, or whose
  // credentials (its hosts.toml), this up changes was probed with the node's old ones (or none).
  // A TLS failure, or refused credentials, then says nothing about the new spec: not judged.
  const desired = new Map(files.map((d) => [d.path, d]));
  const changing = (p: string) => {
    const d = desired.get(p);
    if (!d) return false;
    const now = read.files.get(p);
    const want = d.sha256 ?? (d.content !== undefined ? sha(d.content) : undefined);
    return !now?.present || want === undefined || now.sha256 !== want;
  };
  const unjudged = new Map<MirrorHealth, string>();
  for (const p of probes) {
    const m = f.mirrors.find((x) => x.managed && x.registry === p.registry && x.host === p.host && x.role === p.role);
    if (!m) continue;
    if (m.class === "tls-error" && (p.tlsFiles ?? []).some(changing)) unjudged.set(m, "its CA or client certificate changes in this up");
    else if (m.credentials === "fail" && p.authFile !== undefined && changing(p.authFile)) unjudged.set(m, "its credentials change in this up");
  }
  const isDead = (m: MirrorHealth) => !unjudged.has(m) && (DEAD(m.class) || m.credentials === "fail");
  const byRegistry = new Map<string, MirrorHealth[]>();
  for (const m of f.mirrors.filter((x) => x.managed)) byRegistry.set(m.registry, [...(byRegistry.get(m.registry) ?? []), m]);
  for (const [reg, hosts] of byRegistry) {
    const pulls = reg === "*" ? "every registry without its own directory" : reg;
    hosts.forEach((m, k) => {
      const pending = unjudged.get(m);
      if (pending) {
        f.warnings.push(`${say} ${m.host}: ${m.credentials === "fail" ? "credentials refused" : m.class} with the node's current files, not judged: ${pending}; the next preview probes it with the new ones`);
        return;
      }
      const dead = isDead(m);
      if (!dead) return;
      const why = m.credentials === "fail" ? "auth-required, and its credentials are refused" : m.class;
      const next = k < hosts.length - 1 ? `pulls from ${pulls} will fall through to the next host` : `it is the last host for ${pulls}`;
      const msg = `${say} ${m.host}: ${why} in ${m.seconds.toFixed(1)} s; ${next}`;
      (o.probePolicy === "fail" ? f.errors : f.warnings).push(msg);
    });
    if (hosts.every(isDead) && !o.allowDeadRegistries && o.probePolicy !== "fail") {
      f.errors.push(`${say} no host of ${reg} answers as a registry from this node (${hosts.map((m) => `${m.host}: ${m.class}`).join(", ")}); pulls from ${pulls} would fail. Set mirrorProbe.allowDeadRegistries to go on anyway`);
    }
  }
}

/** Registry directories the spec does not manage, and (unmanagedRegistries "remove") the set-aside list. */
function unmanagedFindings(read: NodeRead, o: ReadOptions, f: Findings): void {
  const say = `${o.label}:`;
  const managedDirs = new Set(o.managedDirs);
  const starManaged = managedDirs.has("_default");
  for (const [dir, d] of read.registryDirs) {
    // A directory with files a ContainerdNode manages is not unmanaged: a registry this spec drops
    // (its files' deletes, in this up, put back what was there) or another node resource's.
    if (managedDirs.has(dir) || read.ownedDirs.has(dir)) continue;
    const ns = dir === "_default" ? "*" : dir;
    const hosts = [...d.hosts.filter((h) => h !== d.server), ...(d.server ? [d.server] : [])];
    const health = (h: string) => {
      const m = f.mirrors.find((x) => !x.managed && x.registry === dir && x.host === h);
      if (!m) return h;
      if (m.class === "not-a-registry") return `${h}, which is not a registry`;
      return DEAD(m.class) ? `${h} (${m.class})` : h;
    };
    const target = hosts.length ? `its hosts.toml sends pulls to ${hosts.map(health).join(", then ")}` : "it has no hosts.toml hosts (containerd then uses the registry itself)";
    const rel = `${o.certsDir.split("/").pop()}/${dir}`;
    const message =
      `${say} ${rel} is not managed` +
      (starManaged && dir !== "_default" ? ` and takes precedence over \`*\` for ${ns}` : "") +
      `; ${target}` +
      (o.unmanagedRegistries === "remove" ? "; unmanagedRegistries is \"remove\": up sets it aside (put back when the node is deleted)" : "; set unmanagedRegistries: \"remove\" to set it aside");
    f.unmanaged.push({ directory: dir, server: d.server, hosts: d.hosts, message });
    f.warnings.push(message);
  }
  if (o.unmanagedRegistries === "remove") {
    // The set-aside resource's list: every directory held aside and every unmanaged one here now,
    // stable across runs so a set-aside is one update. A held directory that is back (made again by
    // hand) counts one generation up, which is what it counts once that later copy is aside too.
    const held = new Map(read.setAside.map((a) => [a.name, a.later]));
    const present = new Set(f.unmanaged.map((u) => u.directory));
    f.setAside = [...new Set([...held.keys(), ...present])].sort().map((n) => {
      const generation = (held.get(n) ?? 0) + (held.has(n) && present.has(n) ? 1 : 0);
      return generation === 0 ? n : `${n}@${generation}`;
    });
  }
}
