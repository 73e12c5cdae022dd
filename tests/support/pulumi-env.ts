/**
 * Where the real Pulumi toolchain is on this machine, and the environment every CLI run of the tests,
 * the demo and the benchmark gets: the CLI, language hosts and command plugin that
 * `tools/pulumi/build.sh` built into the ignored .cache, a project-local PULUMI_HOME (nothing in a
 * user's ~/.pulumi is read or changed), no update check, no telemetry.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";

export const REPO = path.resolve(__dirname, "..", "..");
export const TOOLS_BIN = path.join(REPO, ".cache", "tools", "bin");
export const PULUMI_HOME = process.env.PULUMI_HOME ?? path.join(REPO, ".cache", "pulumi-home");

let cliPath: string | undefined;

/** The `pulumi` that build.sh reported usable (the machine's when it is new enough, else ours). */
export function pulumiPath(): string {
  if (cliPath) return cliPath;
  const r = spawnSync("sh", [path.join(REPO, "tools", "pulumi", "build.sh"), "--check"], { encoding: "utf8", env: { ...process.env, PULUMI_HOME } });
  const line = r.stdout.split("\n").find((l) => l.startsWith("pulumi "));
  const m = /^pulumi ok (\S+)/.exec(line ?? "");
  if (!m || r.status !== 0) {
    throw new Error(`the Pulumi toolchain is not complete (run: sh tools/pulumi/build.sh):\n${r.stdout}${r.stderr}`);
  }
  return (cliPath = m[1]);
}

/** The environment of a CLI run: our tools first on PATH, the project-local PULUMI_HOME. */
export function pulumiEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  const cli = path.dirname(pulumiPath());
  return {
    ...env,
    PATH: [cli, TOOLS_BIN, path.dirname(process.execPath), env.PATH ?? ""].filter((p, i, a) => p && a.indexOf(p) === i).join(":"),
    PULUMI_HOME,
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DIY_BACKEND_NO_LEGACY_WARNING: "true",
    PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK: "true",
    ...extra,
  };
}

/** A fresh private directory (0700) for a file:// backend: its state holds the nodes' private key. */
export function privateDir(parent: string, prefix: string): string {
  fs.mkdirSync(parent, { recursive: true, mode: 0o700 });
  const d = fs.mkdtempSync(path.join(parent, prefix));
  fs.chmodSync(d, 0o700);
  return d;
}
