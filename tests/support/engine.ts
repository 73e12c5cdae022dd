/**
 * The real Pulumi engine for the e2e tests: the CLI (built by tools/pulumi/build.sh) and the command
 * provider plugin carry out a program written in the test, through the Automation API
 * (`LocalWorkspace`, an inline program run in this process), against a file:// backend in a private
 * temporary directory with a test passphrase.
 *
 * A run's result is what the engine reported: each step from its engine events (op, changed keys,
 * inputs, success), the diagnostics, the stack outputs, and the CLI's own text. Nothing here decides
 * what the engine would do.
 */
import * as fs from "fs";
import * as path from "path";
import { LocalWorkspace, PulumiCommand, Stack } from "@pulumi/pulumi/automation";
import type { EngineEvent, OpType, PulumiFn } from "@pulumi/pulumi/automation";
import { PULUMI_HOME, privateDir, pulumiEnv, pulumiPath } from "./pulumi-env";

export const COMMAND_TYPE = "command:remote:Command";
export const PASSPHRASE = "e2e-test-passphrase";

export interface EngineOptions {
  /** Where the stack's private directory (backend, state) goes: the e2e run's private directory. */
  dir: string;
  project?: string;
  stack?: string;
  /** Stack config, "project:key" (or "key") => value. */
  config?: Record<string, string>;
  /** Keys of `config` stored as secrets. */
  secretConfigKeys?: string[];
}

export interface RunOptions {
  continueOnError?: boolean;
  parallel?: number;
  target?: string[];
  targetDependents?: boolean;
  expectNoChanges?: boolean;
}

export interface StepRecord {
  urn: string;
  name: string;
  type: string;
  op: OpType;
  /** The inputs the engine diffed on (diffs). */
  diffKeys: string[];
  oldInputs?: Record<string, unknown>;
  newInputs?: Record<string, unknown>;
  /** false when the engine reported the step failed (always true in a preview). */
  ok: boolean;
  /** The error diagnostics the engine reported for this resource, when it failed. */
  error?: string;
  /** Seconds (the engine's event timestamps). */
  startedAt: number;
  endedAt: number;
}

export interface Diagnostic {
  severity: string;
  message: string;
  urn?: string;
}

export interface RunResult {
  ok: boolean;
  steps: StepRecord[];
  error?: Error;
  /** Stack outputs (after an up), values as the program returned them. */
  outputs: Record<string, unknown>;
  /** Warning diagnostics, with the resource's name in front when they belong to one. */
  warnings: string[];
  diagnostics: Diagnostic[];
  /** The CLI's own display, as a user sees it (no colour): the steps and their diffs. */
  stdout: string;
  /** What the CLI writes to stderr: with --diff, every diagnostic (warnings, errors) as displayed. */
  stderr: string;
}

const nameOf = (urn: string) => urn.slice(urn.lastIndexOf("::") + 2);

/**
 * The real process, where jest's environment (tests/support/jest-environment.js) gives it: a test
 * file's own `process` is a copy whose listeners never fire.
 */
const hostProcess = (globalThis as { __hostProcess?: NodeJS.Process }).__hostProcess;
const HOST_EVENTS = ["unhandledRejection", "uncaughtException"] as const;

/**
 * Runs one deployment with the program's uncaught errors going where the Node.js language host would
 * take them: the Automation API's language server listens on this file's `process` (a copy under
 * jest), so for the length of the run the real process's uncaught errors are handed to those
 * listeners. An uncaught error that is not part of the run's own error fails the run loudly.
 */
async function asLanguageHost(run: () => Promise<RunResult>): Promise<RunResult> {
  if (!hostProcess || hostProcess === (process as unknown)) return run();
  const late: unknown[] = [];
  const saved = HOST_EVENTS.map((ev) => [ev, (hostProcess as NodeJS.EventEmitter).listeners(ev)] as const);
  const forward = (ev: (typeof HOST_EVENTS)[number]) => (err: unknown) => {
    const servers = process.listeners(ev as "unhandledRejection") as ((e: unknown) => void)[];
    if (servers.length === 0) late.push(err);
    for (const l of servers) l(err);
  };
  for (const [ev] of saved) {
    hostProcess.removeAllListeners(ev);
    (hostProcess as NodeJS.EventEmitter).on(ev, forward(ev));
  }
  let res: RunResult;
  try {
    res = await run();
    // Rejections are reported at the end of a tick: let the last ones arrive while this is in place.
    await new Promise((r) => setImmediate(r));
  } finally {
    for (const [ev, ls] of saved) {
      hostProcess.removeAllListeners(ev);
      for (const l of ls) (hostProcess as NodeJS.EventEmitter).on(ev, l as (...a: unknown[]) => void);
    }
  }
  for (const e of late) {
    const text = e instanceof Error ? e.message : String(e);
    if (res.ok || !res.error!.message.includes(text)) throw new Error(`an uncaught error outside the run's own error: ${e instanceof Error ? e.stack : text}`);
  }
  return res;
}

/** One stack of the real engine, with its own file backend. Runs take turns within a process. */
export class EngineStack {
  readonly dir: string;
  readonly project: string;
  readonly stackName: string;
  private stack?: Stack;
  private readonly opts: EngineOptions;

  constructor(opts: EngineOptions) {
    this.opts = opts;
    this.project = opts.project ?? "e2e";
    this.stackName = opts.stack ?? "e2e";
    this.dir = privateDir(opts.dir, "stack-");
  }

  private async open(program: PulumiFn): Promise<Stack> {
    if (this.stack) {
      this.stack.workspace.program = program;
      return this.stack;
    }
    const backend = path.join(this.dir, "backend");
    fs.mkdirSync(backend, { recursive: true, mode: 0o700 });
    const cli = pulumiPath();
    const stack = await LocalWorkspace.createOrSelectStack(
      { stackName: this.stackName, projectName: this.project, program },
      {
        workDir: this.dir,
        pulumiHome: PULUMI_HOME,
        pulumiCommand: await PulumiCommand.get({ root: path.dirname(path.dirname(cli)), skipVersionCheck: true }),
        envVars: { ...pulumiEnv({ PULUMI_CONFIG_PASSPHRASE: PASSPHRASE }) },
        secretsProvider: "passphrase",
        projectSettings: { name: this.project, runtime: "nodejs", backend: { url: `file://${backend}` } },
      },
    );
    const config: Record<string, { value: string; secret: boolean }> = {};
    for (const [k, v] of Object.entries(this.opts.config ?? {})) {
      config[k] = { value: v, secret: (this.opts.secretConfigKeys ?? []).includes(k) };
    }
    if (Object.keys(config).length > 0) await stack.setAllConfig(config);
    this.stack = stack;
    return stack;
  }

  async up(program: PulumiFn, opts: RunOptions = {}): Promise<RunResult> {
    const stack = await this.open(program);
    return this.collect(false, (onEvent, onOutput, onError) =>
      stack.up({ program, onEvent, onOutput, onError, color: "never", diff: true, ...opts }).then((r) => r.outputs),
    );
  }

  async preview(program: PulumiFn, opts: RunOptions = {}): Promise<RunResult> {
    const stack = await this.open(program);
    return this.collect(true, (onEvent, onOutput, onError) =>
      stack.preview({ program, onEvent, onOutput, onError, color: "never", diff: true, ...opts }).then(() => undefined),
    );
  }

  async destroy(opts: RunOptions = {}): Promise<RunResult> {
    const stack = await this.open(async () => undefined);
    return this.collect(false, (onEvent, onOutput, onError) =>
      stack.destroy({ onEvent, onOutput, onError, color: "never", continueOnError: opts.continueOnError }).then(() => undefined),
    );
  }

  /** The stack's resources as the engine's state has them (secrets decrypted: test passphrase). */
  async state(): Promise<{ urn: string; type: string; inputs?: Record<string, unknown>; outputs?: Record<string, unknown>; retainOnDelete?: boolean; pendingReplacement?: boolean; delete?: boolean }[]> {
    if (!this.stack) return [];
    const d = await this.stack.exportStack();
    const resources = (d.deployment?.resources ?? []) as { urn: string; type: string }[];
    return resources.filter((r) => r.type !== "pulumi:pulumi:Stack" && !r.type.startsWith("pulumi:providers:"));
  }

  /**
   * `pulumi stack export` (secrets decrypted: the Automation API exports with --show-secrets), `fn`
   * to edit it, then `pulumi stack import`: how a test puts the state where a user's could be.
   */
  async editState(fn: (deployment: { resources: Record<string, unknown>[] }) => void): Promise<void> {
    if (!this.stack) throw new Error("editState before any run");
    const state = await this.stack.exportStack();
    fn(state.deployment as { resources: Record<string, unknown>[] });
    await this.stack.importStack(state);
  }

  /** Removes the backend directory (its state holds the nodes' private key). */
  dispose(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
    this.stack = undefined;
  }

  private collect(
    preview: boolean,
    run: (onEvent: (e: EngineEvent) => void, onOutput: (s: string) => void, onError: (s: string) => void) => Promise<Record<string, { value: unknown }> | undefined>,
  ): Promise<RunResult> {
    return asLanguageHost(() => this.collectRun(preview, run));
  }

  private async collectRun(
    preview: boolean,
    run: (onEvent: (e: EngineEvent) => void, onOutput: (s: string) => void, onError: (s: string) => void) => Promise<Record<string, { value: unknown }> | undefined>,
  ): Promise<RunResult> {
    const steps = new Map<string, StepRecord>();
    const diagnostics: Diagnostic[] = [];
    let stdout = "";
    let stderr = "";
    const onEvent = (e: EngineEvent) => {
      const pre = e.resourcePreEvent?.metadata;
      if (pre) {
        if (pre.type === "pulumi:pulumi:Stack" || pre.type.startsWith("pulumi:providers:")) return;
        steps.set(`${pre.op} ${pre.urn}`, {
          urn: pre.urn,
          name: nameOf(pre.urn),
          type: pre.type,
          op: pre.op,
          diffKeys: pre.diffs ?? [],
          oldInputs: pre.old?.inputs,
          newInputs: pre.new?.inputs,
          ok: true,
          startedAt: e.timestamp,
          endedAt: e.timestamp,
        });
      }
      const done = e.resOutputsEvent?.metadata ?? e.resOpFailedEvent?.metadata;
      if (done) {
        const s = steps.get(`${done.op} ${done.urn}`);
        if (s) {
          s.endedAt = e.timestamp;
          if (e.resOpFailedEvent) s.ok = false;
        }
      }
      const d = e.diagnosticEvent;
      if (d && !d.ephemeral && (d.severity === "warning" || d.severity === "error")) {
        diagnostics.push({ severity: d.severity, message: d.message.trimEnd(), urn: d.urn });
      }
    };
    let outputs: Record<string, unknown> = {};
    let error: Error | undefined;
    try {
      const out = await run(onEvent, (s) => (stdout += s), (s) => (stderr += s));
      for (const [k, v] of Object.entries(out ?? {})) outputs[k] = v.value;
    } catch (e) {
      const errors = diagnostics.filter((d) => d.severity === "error").map((d) => (d.urn ? `${nameOf(d.urn)}: ${d.message}` : d.message));
      error = new Error(errors.length > 0 ? errors.join("\n") : String((e as Error).message ?? e));
      outputs = {};
    }
    for (const s of steps.values()) {
      if (preview) s.ok = true;
      if (!s.ok) s.error = diagnostics.filter((d) => d.severity === "error" && d.urn === s.urn).map((d) => d.message).join("\n");
    }
    const warnings = diagnostics.filter((d) => d.severity === "warning").map((d) => (d.urn ? `${nameOf(d.urn)}: ${d.message}` : d.message));
    return { ok: error === undefined, steps: [...steps.values()], error, outputs, warnings, diagnostics, stdout, stderr };
  }
}
