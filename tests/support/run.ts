/** One program run without a shell, for the tests' drivers and the fleet helpers. */
import { spawn } from "child_process";

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  /** Seconds from start to exit. */
  seconds: number;
}

export interface RunOptions {
  input?: string;
  timeoutMs?: number;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Each chunk of stdout as it comes. */
  onStdout?: (s: string) => void;
}

/** Runs `cmd` with `args`; never throws for a non-zero exit, and kills it after `timeoutMs` (120 s). */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<Run> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
      opts.onStdout?.(d.toString());
    });
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr, seconds: (Date.now() - t0) / 1000 });
    });
    child.stdin.on("error", () => undefined);
    child.stdin.end(opts.input ?? "");
  });
}
