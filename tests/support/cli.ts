/**
 * The `pulumi` CLI run as a user runs it, from a project's own folder (the root program, an example),
 * with the Node.js language host and the command provider that tools/pulumi/build.sh built. Each
 * stack has a file:// backend and a stack config file in a private temporary directory, so nothing is
 * written into the repository and no user state is touched.
 */
import { randomBytes } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { privateDir, pulumiEnv, pulumiPath } from "./pulumi-env";
import { Run, run } from "./run";

export type CliRun = Run;

export interface CliOptions {
  /** The project folder (Pulumi.yaml). */
  cwd: string;
  /** Parent of the private directory (backend, stack config). */
  dir: string;
  stack?: string;
  passphrase?: string;
  /** Extra environment for every run. */
  env?: Record<string, string>;
}

export class CliStack {
  readonly dir: string;
  readonly stack: string;
  readonly configFile: string;
  private readonly env: Record<string, string>;

  constructor(readonly opts: CliOptions) {
    this.dir = privateDir(opts.dir, "cli-");
    // A name of its own: `stack init` writes Pulumi.<stack>.yaml (the passphrase's salt) into the
    // project folder, and init() moves it out at once; two stacks in one folder must not share it.
    this.stack = opts.stack ?? `e2e-${randomBytes(4).toString("hex")}`;
    this.configFile = path.join(this.dir, `Pulumi.${this.stack}.yaml`);
    fs.mkdirSync(path.join(this.dir, "backend"), { mode: 0o700 });
    this.env = pulumiEnv({
      PULUMI_BACKEND_URL: `file://${path.join(this.dir, "backend")}`,
      PULUMI_CONFIG_PASSPHRASE: opts.passphrase ?? "e2e-test-passphrase",
      ...(opts.env ?? {}),
    });
    delete this.env.PULUMI_STACK;
  }

  /** `pulumi <args>` in the project folder; never throws for a non-zero exit. */
  run(args: string[], opts: { input?: string; timeoutMs?: number; onStdout?: (s: string) => void } = {}): Promise<CliRun> {
    return run(pulumiPath(), args, { cwd: this.opts.cwd, env: this.env, timeoutMs: opts.timeoutMs ?? 600_000, input: opts.input, onStdout: opts.onStdout });
  }

  /** The flags every command gets: this stack, and its config file for the commands that read one. */
  private flags(args: string[]): string[] {
    const config = ["config", "up", "preview", "destroy", "refresh"].includes(args[0]) ? ["--config-file", this.configFile] : [];
    return [...args, "--stack", this.stack, ...config, "--non-interactive"];
  }

  /** Like run, with the stack's flags; throws with the CLI's output on a non-zero exit. */
  async ok(args: string[], input?: string): Promise<CliRun> {
    const r = await this.run(this.flags(args), { input });
    if (r.status !== 0) throw new Error(`pulumi ${args.join(" ")} exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
    return r;
  }

  /** `pulumi <args>` with the stack's flags, whatever the exit status. */
  cmd(args: string[], input?: string): Promise<CliRun> {
    return this.run(this.flags(args), { input });
  }

  async init(): Promise<void> {
    const r = await this.run(["stack", "init", this.stack, "--non-interactive"]);
    if (r.status !== 0) throw new Error(`pulumi stack init exited ${r.status}:\n${r.stderr}`);
    const written = path.join(this.opts.cwd, `Pulumi.${this.stack}.yaml`);
    if (fs.existsSync(written)) fs.renameSync(written, this.configFile);
  }

  /** `pulumi config set [--secret] [--path] KEY VALUE` (a secret value goes on stdin, as the README says). */
  async set(key: string, value: string, opts: { secret?: boolean; path?: boolean } = {}): Promise<void> {
    const args = ["config", "set", ...(opts.path ? ["--path"] : []), ...(opts.secret ? ["--secret"] : []), key];
    // On stdin when secret (as `pulumi config set --secret privateKey < key`), or when it would read as a flag.
    const stdin = opts.secret || value.startsWith("-");
    await this.ok(stdin ? args : [...args, value], stdin ? value : undefined);
  }

  /** Structured values at once: `pulumi config set-all --json` (what `pulumi config --json` prints). */
  async setAll(values: Record<string, unknown>, opts: { secret?: string[] } = {}): Promise<void> {
    const json: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(values)) {
      const secret = (opts.secret ?? []).includes(k);
      json[k] = typeof v === "string" ? { value: v, secret } : { value: JSON.stringify(v), objectValue: v, secret };
    }
    await this.ok(["config", "set-all", "--json", JSON.stringify(json)]);
  }

  /** The stack's resources from `pulumi stack export` (secrets stay encrypted). */
  async resources(): Promise<{ urn: string; type: string; outputs?: Record<string, unknown> }[]> {
    const r = await this.ok(["stack", "export"]);
    return (JSON.parse(r.stdout).deployment?.resources ?? []) as { urn: string; type: string }[];
  }

  dispose(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
