/**
 * Deployment harness: runs a real Pulumi program (unmodified component code) under the SDK's mocks and
 * carries out every `command:remote:Command` over real SSH (the OpenSSH client), following the lifecycle
 * of the command provider (pulumi/pulumi-command, provider/pkg/provider/remote). It stands in for the
 * Pulumi engine in end-to-end tests. What it emulates, and what it cannot, is in ./README.md.
 */
import * as pulumi from "@pulumi/pulumi";
import { spawn } from "child_process";
import { randomBytes } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

// ---------------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------------

export interface HarnessOptions {
  /** JSON state persisted between runs (default: a file in a fresh temp dir). Written with mode 0600. */
  stateFile?: string;
  project?: string;
  stack?: string;
  /** Stack config, "project:key" => value. */
  config?: Record<string, string>;
  /** Keys of `config` that are secret (`config.requireSecret` then yields secret outputs). */
  secretConfigKeys?: string[];
  /** Like `pulumi up --continue-on-error`: independent steps go on after a failure. */
  continueOnError?: boolean;
  /** Pause between dial attempts (the provider retries dial errors up to connection.dialErrorLimit). */
  dialRetryDelayMs?: number;
  /**
   * Environment variable names (sshd `AcceptEnv` patterns, `*` and `?`) the target sshd accepts.
   * Default none, like an sshd without AcceptEnv: `environment` then fails the step and
   * PULUMI_COMMAND_STDOUT/STDERR only give a warning, as in the provider.
   */
  sshdAcceptEnv?: string[];
  /** How long nothing must happen before a run counts as quiescent (default 25 ms). */
  settleMs?: number;
}

export type StepOp = "create" | "update" | "replace" | "delete" | "same";

export interface StepRecord {
  urn: string;
  name: string;
  type: string;
  op: StepOp;
  /** "host:port" of the connection a command step used. */
  host?: string;
  /** Which inputs changed (for update/replace). */
  diffKeys: string[];
  /** Secrets unwrapped. */
  oldInputs?: Record<string, unknown>;
  newInputs?: Record<string, unknown>;
  ok: boolean;
  error?: string;
  startedAt: number;
  endedAt: number;
}

export interface UpResult {
  ok: boolean;
  steps: StepRecord[];
  error?: Error;
  /** The program's returned object, resolved (outputs that stay unknown are `UNKNOWN`). */
  outputs: Record<string, unknown>;
  warnings: string[];
  /**
   * What the program logged (pulumi.log.warn / pulumi.log.error), in order: the engine shows these
   * as the program's diagnostics. Under the SDK's mocks there is no engine, and the SDK writes them
   * to the console as "warning: [runtime] ..."; the harness takes them from there.
   */
  diagnostics: { severity: "warning" | "error"; message: string }[];
}

/** What is recorded for one resource. Inputs and outputs keep the SDK's wire form in the state file. */
export interface ResourceState {
  urn: string;
  type: string;
  name: string;
  custom: boolean;
  id?: string;
  inputs: Record<string, unknown>;
  outputs: Record<string, unknown>;
  dependencies: string[];
  propertyDependencies: Record<string, string[]>;
  deleteBeforeReplace: boolean;
  parent?: string;
  replaceOnChanges: string[];
  /** retainOnDelete: a delete drops it from the state without calling the provider. */
  retainOnDelete?: boolean;
  /** An old version left by a create-before-delete replacement whose delete has not run yet. */
  pendingDelete?: boolean;
}

export type Program = () =>
  | Promise<Record<string, unknown> | void>
  | Record<string, unknown>
  | void;

/** The value a program output resolves to in `UpResult.outputs` when it is unknown (preview, failures). */
export const UNKNOWN: string = pulumi.runtime.unknownValue;

export const COMMAND_TYPE = "command:remote:Command";

// ---------------------------------------------------------------------------------------------------
// SDK internals the harness needs (the mock monitor, its RPC queue, the protobuf types)
// ---------------------------------------------------------------------------------------------------

interface WireStruct {
  toJavaScript(): Record<string, unknown>;
}
interface PropertyDependencies {
  getUrnsList(): string[];
}
interface RegisterRequest {
  getType(): string;
  getName(): string;
  getParent(): string;
  getCustom(): boolean;
  getObject(): WireStruct | undefined;
  getDependenciesList(): string[];
  getDeletebeforereplace(): boolean;
  getReplaceonchangesList(): string[];
  getRetainondelete(): boolean | undefined;
  getPropertydependenciesMap(): { forEach(cb: (value: PropertyDependencies, key: string) => void): void };
  getHooks(): { getAfterCreateList(): string[]; getAfterUpdateList(): string[] } | undefined;
}
interface HookCallback {
  getTarget(): string;
  getToken(): string;
}
interface HookRegistration {
  getName(): string;
  getCallback(): HookCallback | undefined;
  getOnDryRun(): boolean;
  getIgnoreErrors(): boolean;
}
interface OutputsRequest {
  getUrn(): string;
  getOutputs(): WireStruct | undefined;
}
type RpcCallback = (err: unknown, response: unknown) => void;
interface MockMonitorInternals {
  resources: Map<string, { urn: string; id: string | null; state: unknown }>;
  registerResource(req: RegisterRequest, cb: RpcCallback): void;
  registerResourceOutputs(req: OutputsRequest, cb: RpcCallback): void;
  registerResourceHook?(req: HookRegistration, cb: RpcCallback): void;
}
interface RegisterResponse {
  setUrn(v: string): void;
  setId(v: string): void;
  setObject(v: unknown): void;
  setResult(v: number): void;
}

const sdkDir = path.dirname(require.resolve("@pulumi/pulumi/package.json"));
const sdkSettings = require(path.join(sdkDir, "runtime/settings")) as {
  getMonitor(): unknown;
  waitForRPCs(): Promise<void>;
};
const sdkState = require(path.join(sdkDir, "runtime/state")) as {
  getStore(): { settings: { rpcDone: Promise<void> } };
};
const resproto = require(path.join(sdkDir, "proto/resource_pb")) as {
  RegisterResourceResponse: new () => RegisterResponse;
  Result: { SUCCESS: number; FAIL: number };
  ResourceHookRequest: new () => {
    setUrn(v: string): void;
    setId(v: string): void;
    setName(v: string): void;
    setType(v: string): void;
    setNewInputs(v: unknown): void;
    setOldInputs(v: unknown): void;
    setNewOutputs(v: unknown): void;
    setOldOutputs(v: unknown): void;
    serializeBinary(): Uint8Array;
  };
  ResourceHookResponse: { deserializeBinary(b: Uint8Array): { getError(): string } };
};
const callbackProto = require(path.join(sdkDir, "proto/callback_pb")) as {
  CallbackInvokeRequest: new () => { setToken(v: string): void; setRequest(v: Uint8Array): void };
};
const callbackGrpc = require(path.join(sdkDir, "proto/callback_grpc_pb")) as {
  CallbacksClient: new (target: string, creds: unknown) => {
    invoke(req: unknown, cb: (err: Error | null, resp: { getResponse_asU8(): Uint8Array }) => void): void;
    close(): void;
  };
};
// The SDK's own grpc-js, whose credentials its generated client accepts.
const sdkGrpc = require(require.resolve("@grpc/grpc-js", { paths: [sdkDir] })) as { credentials: { createInsecure(): unknown } };
const sdkOutput = require(path.join(sdkDir, "output")) as { unknown: unknown };
// The SDK's own copy of google-protobuf, so that the Struct we hand back is the class it expects.
const { Struct } = require(require.resolve("google-protobuf/google/protobuf/struct_pb", { paths: [sdkDir] })) as {
  Struct: { fromJavaScript(v: Record<string, unknown>): unknown };
};

// ---------------------------------------------------------------------------------------------------
// Wire-form values
// ---------------------------------------------------------------------------------------------------

type Wire = Record<string, unknown>;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Removes the SDK's secret wrappers ({sig: secretSig, value}) at any depth. */
export function unwrapSecrets(v: unknown): unknown {
  if (pulumi.runtime.isRpcSecret(v)) return unwrapSecrets(pulumi.runtime.unwrapRpcSecret(v));
  if (Array.isArray(v)) return v.map(unwrapSecrets);
  if (isPlainObject(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = unwrapSecrets(x);
    return out;
  }
  return v;
}

function unwrapRecord(v: Wire): Record<string, unknown> {
  return unwrapSecrets(v) as Record<string, unknown>;
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => deepEqual(x, b[i]));
  }
  if (isPlainObject(a) && isPlainObject(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    return [...keys].every((k) => deepEqual(a[k], b[k]));
  }
  return false;
}

function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

// ---------------------------------------------------------------------------------------------------
// Diff: what the engine would do with a registration, given the old state
// ---------------------------------------------------------------------------------------------------

interface Registration {
  urn: string;
  type: string;
  name: string;
  custom: boolean;
  parent?: string;
  inputs: Wire;
  dependencies: string[];
  propertyDependencies: Record<string, string[]>;
  deleteBeforeReplace: boolean;
  replaceOnChanges: string[];
  retainOnDelete: boolean;
  /** Resource hook names bound to the resource (only the after hooks the harness runs). */
  afterCreate: string[];
  afterUpdate: string[];
}

interface Plan {
  op: Exclude<StepOp, "delete">;
  diffKeys: string[];
}

/** Top-level property a replaceOnChanges path such as `triggers[*]` or `a.b` refers to. */
function topLevelKey(p: string): string {
  const m = /^[^.[]*/.exec(p);
  return m ? m[0] : p;
}

/**
 * Any changed input is an update, unless it is named by replaceOnChanges: the command SDK registers
 * every Command with `replaceOnChanges: ["triggers[*]"]` (sdk remote/command.ts), so a `triggers`
 * change is a replace. Secrets compare by value.
 */
export function planStep(old: ResourceState | undefined, reg: Registration): Plan {
  if (!old) return { op: "create", diffKeys: [] };
  const before = unwrapRecord(old.inputs);
  const after = unwrapRecord(reg.inputs);
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
  const diffKeys = keys.filter((k) => !deepEqual(before[k], after[k]));
  if (diffKeys.length === 0) return { op: "same", diffKeys };
  const replaceKeys = new Set(reg.replaceOnChanges.map(topLevelKey));
  const replaces = reg.custom && diffKeys.some((k) => replaceKeys.has("*") || replaceKeys.has(k));
  return { op: replaces ? "replace" : "update", diffKeys };
}

/** URN as the engine builds it: the parent's qualified type chain, except the root stack's. */
function makeUrn(project: string, stack: string, parent: string | undefined, type: string, name: string): string {
  let prefix = `urn:pulumi:${stack}::${project}::`;
  if (parent) {
    const p = parent.substring(0, parent.lastIndexOf("::")) + "$";
    if (!p.endsWith("::pulumi:pulumi:Stack$")) prefix = p;
  }
  return `${prefix}${type}::${name}`;
}

function parseRegistration(req: RegisterRequest, project: string, stack: string): Registration {
  const parent = req.getParent() || undefined;
  const propertyDependencies: Record<string, string[]> = {};
  req.getPropertydependenciesMap().forEach((v, k) => {
    propertyDependencies[k] = v.getUrnsList();
  });
  return {
    urn: makeUrn(project, stack, parent, req.getType(), req.getName()),
    type: req.getType(),
    name: req.getName(),
    custom: req.getCustom(),
    parent,
    inputs: req.getObject()?.toJavaScript() ?? {},
    dependencies: req.getDependenciesList(),
    propertyDependencies,
    deleteBeforeReplace: req.getDeletebeforereplace(),
    replaceOnChanges: req.getReplaceonchangesList(),
    retainOnDelete: req.getRetainondelete() ?? false,
    afterCreate: req.getHooks()?.getAfterCreateList() ?? [],
    afterUpdate: req.getHooks()?.getAfterUpdateList() ?? [],
  };
}

/** Every URN a resource waits for: explicit and property dependencies, and its parent. */
function dependencyUrns(r: Pick<ResourceState, "dependencies" | "propertyDependencies" | "parent">): Set<string> {
  const all = new Set(r.dependencies);
  for (const urns of Object.values(r.propertyDependencies)) urns.forEach((u) => all.add(u));
  if (r.parent) all.add(r.parent);
  return all;
}

// ---------------------------------------------------------------------------------------------------
// SSH execution with the OpenSSH client
// ---------------------------------------------------------------------------------------------------

interface ConnectionInput {
  host?: string;
  port?: number;
  user?: string;
  password?: string;
  privateKey?: string;
  privateKeyPassword?: string;
  agentSocketPath?: string;
  dialErrorLimit?: number;
  perDialTimeout?: number;
  hostKey?: string;
  proxy?: unknown;
}

interface SshTarget {
  host: string;
  port: number;
  user: string;
  privateKey: string;
  hostKey?: string;
  dialErrorLimit: number;
  perDialTimeout: number;
}

function unsupported(what: string): Error {
  return new Error(`the deployment harness does not support ${what}`);
}

/** Connection defaults are those of the provider (connection.go) and the SDK's connectionArgsProvideDefaults. */
export function sshTarget(c: ConnectionInput | undefined): SshTarget {
  if (!c || typeof c.host !== "string" || c.host === "") throw new Error("connection.host is required");
  if (c.proxy) throw unsupported("connection.proxy (jump hosts)");
  if (c.agentSocketPath) throw unsupported("connection.agentSocketPath (it never uses an agent)");
  if (c.privateKeyPassword) throw unsupported("connection.privateKeyPassword (encrypted keys)");
  if (!c.privateKey) {
    throw c.password
      ? unsupported("password authentication: give connection.privateKey")
      : new Error("connection.privateKey is required by the deployment harness (it uses no agent and no default keys)");
  }
  return {
    host: c.host,
    port: c.port ?? 22,
    user: c.user ?? "root",
    privateKey: c.privateKey,
    hostKey: c.hostKey || undefined,
    dialErrorLimit: c.dialErrorLimit ?? 10,
    perDialTimeout: c.perDialTimeout ?? 15,
  };
}

function endpoint(t: Pick<SshTarget, "host" | "port">): string {
  return t.host.includes(":") ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`;
}

interface ProcResult {
  stdout: string;
  stderr: string;
  /** stdout and stderr in the order they arrived, like the provider's stdouterrbuf. */
  combined: string;
  code: number | null;
  signal: string | null;
}

function runProcess(cmd: string, args: string[], env: NodeJS.ProcessEnv, stdin?: string): Promise<ProcResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const all: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => (out.push(d), all.push(d)));
    child.stderr.on("data", (d: Buffer) => (err.push(d), all.push(d)));
    child.on("error", reject);
    child.on("close", (code, signal) =>
      resolve({
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
        combined: Buffer.concat(all).toString("utf8"),
        code,
        signal,
      }),
    );
    // The remote command may exit without reading its stdin: ignore the broken pipe.
    child.stdin.on("error", () => undefined);
    // The provider sets session.Stdin only for a non-empty stdin (commandOutputs.go); EOF either way.
    if (stdin) child.stdin.write(stdin);
    child.stdin.end();
  });
}

/** An environment for ssh without the caller's agent (the provider would use SSH_AUTH_SOCK). */
function sshEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.SSH_AUTH_SOCK;
  return env;
}

interface SshFiles {
  dir: string;
  key: string;
  knownHosts: string;
  log: string;
}

function writeSshFiles(t: SshTarget): SshFiles {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "harness-ssh-"));
  const files = {
    dir,
    key: path.join(dir, "id"),
    knownHosts: path.join(dir, "known_hosts"),
    log: path.join(dir, "ssh.log"),
  };
  // OpenSSH refuses a key file without its final newline ("invalid format").
  const key = t.privateKey.endsWith("\n") ? t.privateKey : `${t.privateKey}\n`;
  fs.writeFileSync(files.key, key, { mode: 0o600 });
  if (t.hostKey) {
    const [keyType, keyData] = t.hostKey.trim().split(/\s+/);
    const pattern = t.port === 22 ? t.host : `[${t.host}]:${t.port}`;
    fs.writeFileSync(files.knownHosts, `${pattern} ${keyType} ${keyData}\n`, { mode: 0o600 });
  }
  return files;
}

function sshArgs(t: SshTarget, files: SshFiles, command: string, sendEnv: string[]): string[] {
  const o = (opt: string) => ["-o", opt];
  const hostKeyChecking = t.hostKey
    ? [...o("StrictHostKeyChecking=yes"), ...o(`UserKnownHostsFile=${files.knownHosts}`)]
    : // Without hostKey the provider accepts any host key (ssh.InsecureIgnoreHostKey).
      [...o("StrictHostKeyChecking=no"), ...o("UserKnownHostsFile=/dev/null")];
  return [
    "-T",
    "-F", "/dev/null",
    // ssh's own messages go to a file, so stderr holds only the remote command's output; the
    // "Authenticated to" line (VERBOSE) tells a dial failure from a command exiting 255.
    "-E", files.log,
    ...o("LogLevel=VERBOSE"),
    ...o("BatchMode=yes"),
    ...hostKeyChecking,
    ...o("GlobalKnownHostsFile=/dev/null"),
    ...o("CheckHostIP=no"),
    ...o("UpdateHostKeys=no"),
    ...o("IdentitiesOnly=yes"),
    ...o("IdentityAgent=none"),
    ...o("PasswordAuthentication=no"),
    ...o("KbdInteractiveAuthentication=no"),
    ...o("ControlMaster=no"),
    ...o("ControlPath=none"),
    ...o("ForwardAgent=no"),
    ...o("ForwardX11=no"),
    ...o("ClearAllForwardings=yes"),
    ...(t.perDialTimeout > 0 ? o(`ConnectTimeout=${t.perDialTimeout}`) : []),
    // A cut network: the provider has no keepalive and waits for TCP to give up (many minutes);
    // the harness gives up after about 6 s of silence, so tests of a cut end.
    ...o("ServerAliveInterval=2"),
    ...o("ServerAliveCountMax=3"),
    ...sendEnv.flatMap((name) => o(`SendEnv=${name}`)),
    "-i", files.key,
    "-p", String(t.port),
    "-l", t.user,
    "--", t.host,
    command,
  ];
}

/** A dial error worded like the Go errors the provider reports, with the ssh client's own line. */
function dialErrorMessage(t: SshTarget, log: string): string {
  const lines = log
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !/^(Transferred:|Bytes per second:)/.test(l));
  const last = lines[lines.length - 1] ?? "ssh printed nothing";
  let text: string;
  if (/Connection refused/.test(log)) text = `dial tcp ${endpoint(t)}: connect: connection refused`;
  else if (/timed out/i.test(log)) text = `dial tcp ${endpoint(t)}: i/o timeout`;
  else if (/Could not resolve hostname/.test(log)) text = `dial tcp: lookup ${t.host}: no such host`;
  else if (/host key|HOST IDENTIFICATION/i.test(log)) text = "ssh: handshake failed: ssh: host key mismatch";
  else if (/Permission denied/.test(log))
    text = "ssh: handshake failed: ssh: unable to authenticate, attempted methods [none publickey], no supported methods remain";
  else text = "ssh: handshake failed";
  return `${text} (ssh client: ${last})`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

class SshRunner {
  readonly sessions = new Map<string, number>();

  constructor(private readonly retryDelayMs: () => number) {}

  /** Runs one command in a new session; dial errors are retried like the provider's dialWithRetry. */
  async exec(t: SshTarget, command: string, stdin: string | undefined, env: Record<string, string>): Promise<ProcResult> {
    const files = writeSshFiles(t);
    try {
      await checkPrivateKey(files.key);
      const args = sshArgs(t, files, command, Object.keys(env));
      for (let attempt = 0; ; attempt++) {
        fs.rmSync(files.log, { force: true });
        const res = await runProcess("ssh", args, sshEnv(env), stdin);
        const log = fs.existsSync(files.log) ? fs.readFileSync(files.log, "utf8") : "";
        if (/^Authenticated to /m.test(log)) {
          this.sessions.set(endpoint(t), (this.sessions.get(endpoint(t)) ?? 0) + 1);
          return res;
        }
        // connection.go: reachedDialingErrorLimit(dials, limit) is `limit > -1 && dials > limit`, and
        // the message counts the zero-based try: a limit of N makes N+1 attempts, "after N failed attempts".
        if (t.dialErrorLimit > -1 && attempt + 1 > t.dialErrorLimit) {
          throw new Error(`after ${attempt} failed attempts: ${dialErrorMessage(t, log)}`);
        }
        await sleep(this.retryDelayMs());
      }
    } finally {
      fs.rmSync(files.dir, { recursive: true, force: true });
    }
  }
}

/** The provider parses the key before dialling (ssh.ParsePrivateKey): a bad key is not retried. */
async function checkPrivateKey(file: string): Promise<void> {
  const res = await runProcess("ssh-keygen", ["-y", "-P", "", "-f", file], sshEnv({}));
  if (res.code !== 0) throw new Error(`ssh: cannot parse connection.privateKey: ${res.stderr.trim()}`);
}

/** Go's %q (strconv.Quote), which the provider uses for the command in its error message. */
export function goQuote(s: string): string {
  const named: Record<string, string> = { '"': '\\"', "\\": "\\\\", "\x07": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v" };
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    if (named[ch] !== undefined) out += named[ch];
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, "0")}`;
    else if (c >= 0x80 && c < 0xa0) out += `\\u${c.toString(16).padStart(4, "0")}`;
    else out += ch;
  }
  return `${out}"`;
}

function globMatch(pattern: string, name: string): boolean {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${re}$`).test(name);
}

// ---------------------------------------------------------------------------------------------------
// The command provider's lifecycle (remote/commandController.go, commandOutputs.go)
// ---------------------------------------------------------------------------------------------------

interface CommandInputs {
  connection?: ConnectionInput;
  create?: string;
  update?: string;
  delete?: string;
  stdin?: string;
  environment?: Record<string, string>;
  addPreviousOutputInEnv?: boolean;
}

interface BaseOutputs {
  stdout: string;
  stderr: string;
}

const PREVIOUS_OUTPUT_ENV: [keyof BaseOutputs, string][] = [
  ["stdout", "PULUMI_COMMAND_STDOUT"],
  ["stderr", "PULUMI_COMMAND_STDERR"],
];

function previousOutputs(outputs: Wire | undefined): BaseOutputs {
  const o = unwrapRecord(outputs ?? {});
  return { stdout: typeof o.stdout === "string" ? o.stdout : "", stderr: typeof o.stderr === "string" ? o.stderr : "" };
}

interface CommandContext {
  runner: SshRunner;
  acceptEnv: (name: string) => boolean;
  warn: (msg: string) => void;
}

/**
 * CommandOutputs.run: environment entries are a hard error when sshd refuses them; the previous
 * stdout/stderr only warn. The OpenSSH client sends env requests without asking for a reply, so the
 * harness decides from `sshdAcceptEnv` what sshd would answer, and fails before dialling.
 */
async function runCommand(
  ctx: CommandContext,
  step: StepRecord,
  wireInputs: Wire,
  command: string,
  previous: BaseOutputs,
): Promise<BaseOutputs> {
  const inputs = unwrapRecord(wireInputs) as CommandInputs;
  const target = sshTarget(inputs.connection);
  step.host = endpoint(target);
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(inputs.environment ?? {}).sort(([a], [b]) => a.localeCompare(b))) {
    if (!ctx.acceptEnv(k)) throw new Error(`could not set environment variable ${goQuote(k)}: ssh: setenv failed`);
    env[k] = String(v);
  }
  if (inputs.addPreviousOutputInEnv !== false) {
    for (const [field, name] of PREVIOUS_OUTPUT_ENV) {
      if (previous[field] === "") continue;
      if (ctx.acceptEnv(name)) env[name] = previous[field];
      else
        ctx.warn(
          `${step.urn}: Unable to set '${name}'. This only works if your SSH server is configured to accept ` +
            `these variables via AcceptEnv. Alternatively, if a Bash-like shell runs the command on the remote ` +
            `host, you could prefix the command itself with the variables in the form 'VAR=value command'`,
        );
    }
  }
  const res = await ctx.runner.exec(target, command, inputs.stdin, env);
  if (res.code !== 0) {
    const status = res.code === null ? `signal ${res.signal}` : `status ${res.code}`;
    throw new Error(`Process exited with ${status}: running ${goQuote(command)}:\n${res.combined}`);
  }
  // One trailing newline trimmed (strings.TrimSuffix(..., "\n")).
  const trim = (s: string) => (s.endsWith("\n") ? s.slice(0, -1) : s);
  return { stdout: trim(res.stdout), stderr: trim(res.stderr) };
}

function commandOf(inputs: Wire, key: "create" | "update" | "delete"): string | undefined {
  const v = unwrapRecord(inputs)[key];
  return typeof v === "string" ? v : undefined;
}

// ---------------------------------------------------------------------------------------------------
// One deployment (up, preview or destroy)
// ---------------------------------------------------------------------------------------------------

interface Snapshot {
  live: ResourceState[];
  pendingDeletes: ResourceState[];
}

interface DeploymentOptions {
  preview: boolean;
  continueOnError: boolean;
  command: CommandContext;
  persist: (s: Snapshot) => void;
}

interface RegisterOutcome {
  ok: boolean;
  id?: string;
  outputs: Wire;
}

class SkipError extends Error {}

function newId(name: string): string {
  return `${name}-${randomBytes(4).toString("hex")}`;
}

class Deployment {
  readonly steps: StepRecord[] = [];
  readonly warnings: string[] = [];
  readonly diagnostics: UpResult["diagnostics"] = [];
  private firstError?: Error;
  private aborted = false;
  /** URNs whose step failed or was skipped in this run: their dependents do not run. */
  private readonly failed = new Set<string>();
  private readonly registered = new Set<string>();
  private readonly live: Map<string, ResourceState>;
  private readonly pendingDeletes: ResourceState[];
  private inflight = 0;
  private activity = 0;

  constructor(
    snapshot: Snapshot,
    private readonly opts: DeploymentOptions,
  ) {
    this.live = new Map(snapshot.live.map((r) => [r.urn, r]));
    this.pendingDeletes = [...snapshot.pendingDeletes];
    opts.command.warn = (m) => this.warnings.push(m);
  }

  get ok(): boolean {
    return this.firstError === undefined;
  }

  get error(): Error | undefined {
    return this.firstError;
  }

  /** A failure that is not a step (the program threw): no new step starts. */
  fail(err: Error): void {
    this.firstError ??= err;
    this.aborted = true;
  }

  snapshot(): Snapshot {
    return { live: [...this.live.values()], pendingDeletes: [...this.pendingDeletes] };
  }

  private persist(): void {
    if (!this.opts.preview) this.opts.persist(this.snapshot());
  }

  /** End of a run: the state as it is, with any write a same step elided (the engine's Close). */
  flush(): void {
    this.persist();
  }

  // --- registrations --------------------------------------------------------------------------

  async register(reg: Registration): Promise<RegisterOutcome> {
    this.inflight++;
    this.activity++;
    try {
      return await this.registerStep(reg);
    } finally {
      this.inflight--;
      this.activity++;
    }
  }

  private async registerStep(reg: Registration): Promise<RegisterOutcome> {
    const old = this.live.get(reg.urn);
    const plan = planStep(old, reg);
    const step = this.startStep(reg.urn, reg.name, reg.type, plan.op, plan.diffKeys, old?.inputs, reg.inputs);
    if (this.registered.has(reg.urn)) {
      return this.stepFailed(step, reg.urn, new Error(`Duplicate resource URN '${reg.urn}'; try giving it a unique name`), old);
    }
    this.registered.add(reg.urn);
    if (plan.op === "same") return this.same(step, old as ResourceState, reg);
    const blocked = this.blockedBy(reg);
    if (blocked) return this.stepFailed(step, reg.urn, new SkipError(blocked), old);
    if (this.opts.preview) return this.previewOutcome(step, reg, old);
    try {
      const state = await this.apply(plan, reg, old, step);
      // After hooks run when the step succeeded and before the registration is answered (the
      // engine's CreateStep/UpdateStep Apply; a replace is a create). A hook's error does not undo
      // the step, whose state stands; it fails the deployment (RecordPostStepError), or is only a
      // warning for a hook registered with ignoreErrors.
      await this.runHooks(plan.op === "update" ? reg.afterUpdate : reg.afterCreate, reg, state, old);
      this.endStep(step);
      return { ok: true, id: state.id, outputs: state.outputs };
    } catch (e) {
      return this.stepFailed(step, reg.urn, asError(e), old);
    }
  }

  /** Hooks the program registered (registerResourceHook), by name. */
  readonly hooks = new Map<string, { callback: HookCallback; ignoreErrors: boolean }>();

  /** Calls each hook over the program's callback server, as the engine does. */
  private async runHooks(names: string[], reg: Registration, state: ResourceState, old: ResourceState | undefined): Promise<void> {
    for (const name of names) {
      const hook = this.hooks.get(name);
      if (!hook) throw new Error(`resource hook ${name} is not registered`);
      const cb = hook.callback;
      const req = new resproto.ResourceHookRequest();
      req.setUrn(reg.urn);
      req.setId(state.id ?? "");
      req.setName(reg.name);
      req.setType(reg.type);
      req.setNewInputs(Struct.fromJavaScript(reg.inputs));
      req.setNewOutputs(Struct.fromJavaScript(state.outputs));
      if (old) {
        req.setOldInputs(Struct.fromJavaScript(old.inputs));
        req.setOldOutputs(Struct.fromJavaScript(old.outputs));
      }
      const invoke = new callbackProto.CallbackInvokeRequest();
      invoke.setToken(cb.getToken());
      invoke.setRequest(req.serializeBinary());
      const client = new callbackGrpc.CallbacksClient(cb.getTarget(), sdkGrpc.credentials.createInsecure());
      try {
        const bytes = await new Promise<Uint8Array>((resolve, reject) => client.invoke(invoke, (err, resp) => (err ? reject(err) : resolve(resp.getResponse_asU8()))));
        const error = resproto.ResourceHookResponse.deserializeBinary(bytes).getError();
        if (error) {
          const message = `resource hook ${name} failed for ${reg.urn}: ${error}`;
          if (hook.ignoreErrors) this.warnings.push(message);
          else this.firstError ??= new Error(message);
        }
      } finally {
        client.close();
      }
    }
  }

  /** Why a step must not start: an earlier failure, or (continue-on-error) a failed dependency. */
  private blockedBy(reg: Registration): string | undefined {
    if (this.aborted) return `${reg.urn}: skipped because an earlier step failed`;
    const dep = [...dependencyUrns(reg)].find((u) => this.failed.has(u));
    return dep ? `${reg.urn}: skipped because its dependency ${dep} failed` : undefined;
  }

  private same(step: StepRecord, old: ResourceState, reg: Registration): RegisterOutcome {
    if (!this.opts.preview) {
      // A same step keeps the outputs but records the new inputs (equal by value, secretness may
      // differ) and options (dependencies, parent), as the engine's SameStep does. Like the engine's
      // snapshot manager (pkg/backend/snapshot.go, sameSnapshotMutation.mustWrite), it writes the
      // state only when that changed something: a no-op up of N resources writes nothing, instead
      // of N whole snapshots.
      const next = { ...old, ...stateOptions(reg), inputs: reg.inputs };
      this.live.set(reg.urn, next);
      if (JSON.stringify(next) !== JSON.stringify(old)) this.persist();
    }
    this.endStep(step);
    return { ok: true, id: old.id, outputs: old.outputs };
  }

  /** Preview runs nothing: outputs the provider would compute (stdout, stderr) stay unknown. */
  private previewOutcome(step: StepRecord, reg: Registration, old: ResourceState | undefined): RegisterOutcome {
    if (step.op === "replace") this.recordPreviewDelete(old as ResourceState);
    this.endStep(step);
    const keepId = step.op === "update" ? old?.id : undefined;
    return { ok: true, id: keepId, outputs: { ...reg.inputs } };
  }

  private async apply(plan: Plan, reg: Registration, old: ResourceState | undefined, step: StepRecord): Promise<ResourceState> {
    if (plan.op === "update") return this.update(reg, old as ResourceState, step);
    if (plan.op === "replace" && reg.deleteBeforeReplace) {
      // Delete-before-replace: the old delete runs first, and a failure leaves the old resource.
      const deleted = await this.deleteResource(old as ResourceState, false);
      if (!deleted) throw new SkipError(`${reg.urn}: the delete of the old resource failed`);
    }
    const state = await this.create(reg, step);
    if (plan.op === "replace" && !reg.deleteBeforeReplace) {
      // Create-before-delete: the old version waits for the end of the deployment (pending delete).
      this.pendingDeletes.push({ ...(old as ResourceState), pendingDelete: true });
    }
    this.live.set(reg.urn, state);
    this.persist();
    return state;
  }

  private async create(reg: Registration, step: StepRecord): Promise<ResourceState> {
    let outputs: Wire = { ...reg.inputs };
    if (reg.custom && reg.type === COMMAND_TYPE) {
      const cmd = commandOf(reg.inputs, "create");
      const base = cmd === undefined ? { stdout: "", stderr: "" } : await runCommand(this.opts.command, step, reg.inputs, cmd, { stdout: "", stderr: "" });
      outputs = { ...reg.inputs, ...base };
    }
    return { ...stateOptions(reg), inputs: reg.inputs, outputs, id: reg.custom ? newId(reg.name) : undefined };
  }

  /** Update runs `update`, else `create`, with the NEW inputs; with neither, the old stdout/stderr stay. */
  private async update(reg: Registration, old: ResourceState, step: StepRecord): Promise<ResourceState> {
    let outputs: Wire = { ...reg.inputs };
    if (reg.custom && reg.type === COMMAND_TYPE) {
      const previous = previousOutputs(old.outputs);
      const cmd = commandOf(reg.inputs, "update") ?? commandOf(reg.inputs, "create");
      const base = cmd === undefined ? previous : await runCommand(this.opts.command, step, reg.inputs, cmd, previous);
      outputs = { ...reg.inputs, ...base };
    } else if (!reg.custom) {
      outputs = old.outputs;
    }
    const state: ResourceState = { ...stateOptions(reg), inputs: reg.inputs, outputs, id: old.id };
    this.live.set(reg.urn, state);
    this.persist();
    return state;
  }

  /** Component outputs arrive after registration (registerOutputs). */
  recordOutputs(urn: string, outputs: Wire): void {
    const r = this.live.get(urn);
    if (!r || this.opts.preview || !this.registered.has(urn) || this.failed.has(urn)) return;
    this.live.set(urn, { ...r, outputs });
    this.persist();
  }

  // --- deletes ----------------------------------------------------------------------------------

  /**
   * Runs the old state's `delete` with the old inputs (connection, stdin) and old stdout/stderr
   * (commandController.go Delete). Returns whether the resource is gone.
   */
  private async deleteResource(r: ResourceState, honourAbort: boolean): Promise<boolean> {
    const step = this.startStep(r.urn, r.name, r.type, "delete", [], r.inputs, undefined);
    if (honourAbort && this.aborted) {
      this.stepFailed(step, r.urn, new SkipError(`${r.urn}: delete skipped because an earlier step failed`), r);
      return false;
    }
    if (this.opts.preview) {
      this.endStep(step);
      return true;
    }
    try {
      const cmd = commandOf(r.inputs, "delete");
      // retainOnDelete: the engine removes it from the state and never calls the provider's Delete.
      if (r.custom && r.type === COMMAND_TYPE && cmd !== undefined && !r.retainOnDelete) {
        await runCommand(this.opts.command, step, r.inputs, cmd, previousOutputs(r.outputs));
      }
      this.forget(r);
      this.endStep(step);
      return true;
    } catch (e) {
      this.stepFailed(step, r.urn, asError(e), r);
      return false;
    }
  }

  private recordPreviewDelete(r: ResourceState): void {
    const step = this.startStep(r.urn, r.name, r.type, "delete", [], r.inputs, undefined);
    this.endStep(step);
  }

  private forget(r: ResourceState): void {
    if (r.pendingDelete) {
      const i = this.pendingDeletes.indexOf(r);
      if (i >= 0) this.pendingDeletes.splice(i, 1);
    } else {
      this.live.delete(r.urn);
    }
    this.persist();
  }

  /**
   * Deletes in reverse dependency order: a resource goes only after every resource of the set that
   * depends on it (explicitly, through a property, or as its child) is gone. Independent deletes run
   * in parallel, like the engine's. A resource whose dependent failed to go stays.
   */
  async deleteAll(entries: ResourceState[]): Promise<void> {
    const remaining = new Set(entries);
    const stuck = new Set<string>();
    while (remaining.size > 0) {
      const list = [...remaining];
      const dependents = (r: ResourceState) => list.filter((o) => o !== r && dependencyUrns(o).has(r.urn));
      let ready = list.filter((r) => dependents(r).length === 0);
      if (ready.length === 0) ready = list; // a cycle cannot come from the SDK; do not hang on one
      await Promise.all(
        ready.map(async (r) => {
          const blockedBy = entries.find((o) => stuck.has(o.urn) && o !== r && dependencyUrns(o).has(r.urn));
          if (blockedBy) {
            const step = this.startStep(r.urn, r.name, r.type, "delete", [], r.inputs, undefined);
            this.stepFailed(step, r.urn, new SkipError(`${r.urn}: delete skipped because ${blockedBy.urn} was not deleted`), r);
          } else {
            await this.deleteResource(r, !this.opts.continueOnError);
          }
          if (this.failed.has(r.urn)) stuck.add(r.urn);
        }),
      );
      ready.forEach((r) => remaining.delete(r));
    }
  }

  /** Destroy: everything in state. */
  async deleteEverything(): Promise<void> {
    await this.deleteAll([...this.pendingDeletes, ...this.live.values()]);
  }

  /** Pending deletes left by an earlier failed run go first, as the engine's do. */
  async runLeftoverPendingDeletes(): Promise<void> {
    await this.deleteAll([...this.pendingDeletes]);
  }

  /** End of an up: old versions of replaced resources and resources the program no longer registers. */
  async finish(): Promise<void> {
    if (!this.ok) return;
    const removed = [...this.live.values()].filter((r) => !this.registered.has(r.urn));
    await this.deleteAll([...this.pendingDeletes, ...removed]);
  }

  // --- quiescence -------------------------------------------------------------------------------

  /**
   * Waits until the SDK's RPC queue is drained, no registration is in flight, and nothing new
   * started during a settle period: registrations made inside `.apply` callbacks appear only after
   * the outputs they wait on resolve.
   */
  async quiesce(settleMs: number): Promise<void> {
    for (;;) {
      const activity = this.activity;
      await sdkSettings.waitForRPCs();
      const rpcDone = sdkState.getStore().settings.rpcDone;
      await sleep(settleMs);
      if (this.inflight === 0 && activity === this.activity && rpcDone === sdkState.getStore().settings.rpcDone) return;
    }
  }

  // --- steps ------------------------------------------------------------------------------------

  private startStep(
    urn: string,
    name: string,
    type: string,
    op: StepOp,
    diffKeys: string[],
    oldInputs: Wire | undefined,
    newInputs: Wire | undefined,
  ): StepRecord {
    const now = Date.now();
    const step: StepRecord = {
      urn,
      name,
      type,
      op,
      diffKeys,
      oldInputs: oldInputs && unwrapRecord(oldInputs),
      newInputs: newInputs && unwrapRecord(newInputs),
      ok: false,
      startedAt: now,
      endedAt: now,
    };
    this.steps.push(step);
    return step;
  }

  private endStep(step: StepRecord): void {
    step.ok = true;
    step.endedAt = Date.now();
  }

  /** A failed step changes nothing in state: a failed create is not recorded, a failed update keeps the old. */
  private stepFailed(step: StepRecord, urn: string, err: Error, old: ResourceState | undefined): RegisterOutcome {
    step.ok = false;
    step.error = err.message;
    step.endedAt = Date.now();
    this.failed.add(urn);
    if (!(err instanceof SkipError)) {
      this.firstError ??= err;
      if (!this.opts.continueOnError) this.aborted = true;
    }
    return { ok: false, id: old?.id, outputs: {} };
  }
}

function stateOptions(reg: Registration): Omit<ResourceState, "inputs" | "outputs" | "id"> {
  return {
    urn: reg.urn,
    type: reg.type,
    name: reg.name,
    custom: reg.custom,
    dependencies: reg.dependencies,
    propertyDependencies: reg.propertyDependencies,
    deleteBeforeReplace: reg.deleteBeforeReplace,
    parent: reg.parent,
    replaceOnChanges: reg.replaceOnChanges,
    retainOnDelete: reg.retainOnDelete || undefined,
  };
}

// ---------------------------------------------------------------------------------------------------
// Mocks: the SDK's mock monitor, with registerResource answered by the deployment
// ---------------------------------------------------------------------------------------------------

function registerResponse(urn: string, outcome: RegisterOutcome): RegisterResponse {
  const resp = new resproto.RegisterResourceResponse();
  resp.setUrn(urn);
  resp.setId(outcome.id ?? "");
  resp.setObject(Struct.fromJavaScript(outcome.outputs));
  // A failed or skipped step answers FAIL, as the engine does with result reporting: the SDK then
  // resolves the resource's outputs as unknown instead of rejecting them, so the program goes on.
  resp.setResult(outcome.ok ? resproto.Result.SUCCESS : resproto.Result.FAIL);
  return resp;
}

/**
 * `setMocks` resets the SDK's per-deployment state (resetOptions) and installs a fresh MockMonitor.
 * Its registerResource gives `mocks.newResource` no resource options, so the harness answers the
 * register requests itself and reads dependencies, parent, deleteBeforeReplace, replaceOnChanges.
 */
async function installMonitor(dep: Deployment, project: string, stack: string, preview: boolean): Promise<void> {
  await pulumi.runtime.setMocks(
    {
      newResource: (a) => ({ id: a.id || `${a.name}-id`, state: a.inputs }),
      call: (a) => {
        throw unsupported(`provider functions (invoke of ${a.token})`);
      },
    },
    project,
    stack,
    preview,
  );
  const monitor = sdkSettings.getMonitor() as MockMonitorInternals;
  monitor.registerResource = (req, cb) => {
    const reg = parseRegistration(req, project, stack);
    dep.register(reg).then(
      (outcome) => {
        monitor.resources.set(reg.urn, { urn: reg.urn, id: outcome.id ?? null, state: outcome.outputs });
        cb(null, registerResponse(reg.urn, outcome));
      },
      (err) => cb(err, undefined),
    );
  };
  monitor.registerResourceHook = (req, cb) => {
    const callback = req.getCallback();
    if (callback) dep.hooks.set(req.getName(), { callback, ignoreErrors: req.getIgnoreErrors() });
    cb(null, {});
  };
  monitor.registerResourceOutputs = (req, cb) => {
    const outputs = req.getOutputs()?.toJavaScript() ?? {};
    const known = monitor.resources.get(req.getUrn());
    if (known) known.state = outputs;
    dep.recordOutputs(req.getUrn(), outputs);
    cb(null, {});
  };
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === "object" && v !== null && typeof (v as { then?: unknown }).then === "function";
}

/** Resolves a program's returned value: outputs awaited (unknown ones become UNKNOWN), resources by URN. */
async function resolveDeep(v: unknown): Promise<unknown> {
  if (pulumi.Output.isInstance(v)) {
    const o = v as unknown as { isKnown: Promise<boolean>; promise(): Promise<unknown> };
    return (await o.isKnown) ? resolveDeep(await o.promise()) : UNKNOWN;
  }
  if (pulumi.Resource.isInstance(v)) return resolveDeep(v.urn);
  if (isThenable(v)) return resolveDeep(await v);
  if (Array.isArray(v)) return Promise.all(v.map(resolveDeep));
  if (isPlainObject(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = await resolveDeep(x);
    return out;
  }
  return v;
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

type ApplyFn = (func: (v: unknown) => unknown, runWithUnknowns?: boolean) => unknown;

/**
 * An exception in an `.apply` callback fails a real program (the language host's unhandled-rejection
 * handler). Under jest such a rejection fails the test from outside, so the harness catches it where it
 * is thrown, records it as the run's error, and lets the output become unknown instead: the dependent
 * resources are then skipped like any step after a failure.
 */
function interceptApplyErrors(onError: (e: Error) => void): () => void {
  const proto = (pulumi.Output as unknown as { prototype: { apply: ApplyFn } }).prototype;
  const original = proto.apply;
  proto.apply = function (this: unknown, func, runWithUnknowns) {
    const guarded = async (v: unknown) => {
      try {
        return await func(v);
      } catch (e) {
        onError(asError(e));
        return sdkOutput.unknown;
      }
    };
    return original.call(this, guarded, runWithUnknowns);
  };
  return () => {
    proto.apply = original;
  };
}

/** Other unhandled rejections (outside jest, which keeps its own handlers): they fail the run. */
/** The SDK's console form of pulumi.log.warn/error without an engine (sdk/nodejs/log/index.ts). */
function captureDiagnostics(into: UpResult["diagnostics"]): () => void {
  const { warn, error } = console;
  const take = (severity: "warning" | "error", orig: (...a: unknown[]) => void) => (...a: unknown[]) => {
    const m = typeof a[0] === "string" ? /^(warning|error): \[runtime\] ([\s\S]*)$/.exec(a[0]) : null;
    if (m && m[1] === severity) into.push({ severity, message: m[2] });
    else orig.apply(console, a);
  };
  console.warn = take("warning", warn);
  console.error = take("error", error);
  return () => {
    console.warn = warn;
    console.error = error;
  };
}

/**
 * The program's uncaught rejections, as the language host takes them (sdk/nodejs/cmd/run: its own
 * process handlers, one report per error object, and the program fails). While the program runs,
 * the harness's handler is the only one: the test runner's would fail the test for the program's error.
 */
function captureRejections(): { stop(): Promise<Error | undefined> } {
  let first: Error | undefined;
  const handler = (reason: unknown) => {
    first ??= asError(reason);
  };
  // Under jest, the process events reach the real process only (tests/harness/jest-environment.js).
  const host = ((globalThis as Record<string, unknown>).__harnessHostProcess as NodeJS.Process | undefined) ?? process;
  const theirs = host.listeners("unhandledRejection");
  host.removeAllListeners("unhandledRejection");
  host.on("unhandledRejection", handler);
  return {
    async stop() {
      // Node reports a rejection without a handler after the microtasks of its turn: let it.
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));
      host.off("unhandledRejection", handler);
      for (const l of theirs) host.on("unhandledRejection", l as (...a: unknown[]) => void);
      return first;
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------------

interface StateFile {
  version: 1;
  resources: ResourceState[];
}

export class Harness {
  /** The SDK keeps one deployment per process: runs of every Harness take turns. */
  private static turn: Promise<unknown> = Promise.resolve();

  private readonly stateFile: string;
  /** The temp dir of a default state file, which `dispose` removes. */
  private readonly ownStateDir?: string;
  private readonly project: string;
  private readonly stack: string;
  private readonly runner: SshRunner;

  constructor(private readonly opts: HarnessOptions = {}) {
    if (opts.stateFile === undefined) this.ownStateDir = fs.mkdtempSync(path.join(os.tmpdir(), "harness-state-"));
    this.stateFile = opts.stateFile ?? path.join(this.ownStateDir as string, "state.json");
    this.project = opts.project ?? "project";
    this.stack = opts.stack ?? "stack";
    this.runner = new SshRunner(() => this.opts.dialRetryDelayMs ?? 1000);
  }

  up(program: Program): Promise<UpResult> {
    return this.exclusive(() => this.runProgram(program, false));
  }

  /** Runs nothing on hosts; ops come from the state diff; state is unchanged. */
  preview(program: Program): Promise<UpResult> {
    return this.exclusive(() => this.runProgram(program, true));
  }

  /** Deletes everything in state, in reverse dependency order. */
  destroy(): Promise<UpResult> {
    return this.exclusive(async () => {
      const dep = this.newDeployment(false);
      await dep.deleteEverything();
      return this.result(dep, {});
    });
  }

  /** SSH sessions opened so far: for one "host:port" (or all ports of a host), or all of them. */
  sessions(host?: string): number | Record<string, number> {
    if (host === undefined) return Object.fromEntries(this.runner.sessions);
    if (this.runner.sessions.has(host)) return this.runner.sessions.get(host) ?? 0;
    let n = 0;
    for (const [k, v] of this.runner.sessions) if (k.slice(0, k.lastIndexOf(":")) === host) n += v;
    return n;
  }

  resetCounters(): void {
    this.runner.sessions.clear();
  }

  /** Removes the default state file's temp dir (it holds secrets); a given stateFile is left alone. */
  dispose(): void {
    if (this.ownStateDir) fs.rmSync(this.ownStateDir, { recursive: true, force: true });
  }

  /** The recorded state, secrets unwrapped (the file keeps them marked as secrets). */
  state(): ResourceState[] {
    const snap = this.readState();
    return [...snap.live, ...snap.pendingDeletes].map((r) => ({
      ...clone(r),
      inputs: unwrapRecord(r.inputs),
      outputs: unwrapRecord(r.outputs),
    }));
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = Harness.turn.then(fn, fn);
    Harness.turn = run.catch(() => undefined);
    return run;
  }

  private newDeployment(preview: boolean): Deployment {
    const accept = this.opts.sshdAcceptEnv ?? [];
    return new Deployment(this.readState(), {
      preview,
      continueOnError: this.opts.continueOnError ?? false,
      command: { runner: this.runner, acceptEnv: (n) => accept.some((p) => globMatch(p, n)), warn: () => undefined },
      persist: (s) => this.writeState(s),
    });
  }

  private async runProgram(program: Program, preview: boolean): Promise<UpResult> {
    const dep = this.newDeployment(preview);
    // A preview shows leftover pending deletes among the end-of-run deletes (finish).
    if (!preview) await dep.runLeftoverPendingDeletes();
    if (!dep.ok) return this.result(dep, {});
    await installMonitor(dep, this.project, this.stack, preview);
    pulumi.runtime.setAllConfig(this.opts.config ?? {}, this.opts.secretConfigKeys ?? []);
    const rejections = captureRejections();
    const restoreApply = interceptApplyErrors((e) => dep.fail(e));
    const restoreConsole = captureDiagnostics(dep.diagnostics);
    let resolved: Record<string, unknown> = {};
    try {
      let outputs: Promise<unknown> = Promise.resolve({});
      try {
        const returned = await program();
        outputs = resolveDeep(returned ?? {});
        outputs.catch(() => undefined); // awaited below, after quiescence
      } catch (e) {
        dep.fail(asError(e));
      }
      await dep.quiesce(this.opts.settleMs ?? 25);
      try {
        resolved = (await outputs) as Record<string, unknown>;
      } catch (e) {
        dep.fail(asError(e));
      }
    } finally {
      restoreApply();
      restoreConsole();
      const rejection = await rejections.stop();
      if (rejection) dep.fail(rejection);
    }
    await dep.finish();
    dep.flush();
    // The program's callback server (hooks) ends with its deployment.
    (sdkState.getStore() as { callbacks?: { shutdown(): void } }).callbacks?.shutdown();
    return this.result(dep, resolved);
  }

  private result(dep: Deployment, outputs: Record<string, unknown>): UpResult {
    return { ok: dep.ok, steps: dep.steps, error: dep.error, outputs, warnings: dep.warnings, diagnostics: dep.diagnostics };
  }

  private readState(): Snapshot {
    if (!fs.existsSync(this.stateFile)) return { live: [], pendingDeletes: [] };
    const file = JSON.parse(fs.readFileSync(this.stateFile, "utf8")) as StateFile;
    return {
      live: file.resources.filter((r) => !r.pendingDelete),
      pendingDeletes: file.resources.filter((r) => r.pendingDelete),
    };
  }

  /** Atomic, mode 0600: the state holds the connection's private key and secret stdin. */
  private writeState(s: Snapshot): void {
    const file: StateFile = { version: 1, resources: [...s.live, ...s.pendingDeletes] };
    const tmp = `${this.stateFile}.${process.pid}.tmp`;
    fs.mkdirSync(path.dirname(this.stateFile), { recursive: true });
    fs.writeFileSync(tmp, JSON.stringify(file, null, 2), { mode: 0o600 });
    fs.chmodSync(tmp, 0o600);
    fs.renameSync(tmp, this.stateFile);
  }
}
