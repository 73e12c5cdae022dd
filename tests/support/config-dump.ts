/**
 * `containerd --config FILE config dump` with a real binary, and the check that every value a
 * rendered file sets is present, at the same path, in what containerd loaded. containerd 1.x drops
 * misplaced keys silently and 2.x only warns, so "it loaded" proves nothing by itself.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse } from "smol-toml";
import { ContainerdBinaries } from "./containerd-binaries";

export interface DumpResult {
  status: number | null;
  stdout: string;
  stderr: string;
  /** The loaded configuration, parsed (undefined when the dump failed). */
  loaded?: Record<string, unknown>;
}

export function configDump(bin: ContainerdBinaries, content: string): DumpResult {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cdn-dump-"));
  try {
    const file = path.join(dir, "config.toml");
    fs.writeFileSync(file, content);
    const r = spawnSync(bin.containerd, ["--config", file, "config", "dump"], { encoding: "utf8", timeout: 30_000 });
    const out: DumpResult = { status: r.status, stdout: r.stdout, stderr: r.stderr };
    if (r.status === 0) out.loaded = parse(r.stdout) as Record<string, unknown>;
    return out;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

type Leaf = { path: string[]; value: unknown };

function leaves(v: unknown, at: string[] = []): Leaf[] {
  if (typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date)) {
    return Object.entries(v as Record<string, unknown>).flatMap(([k, x]) => leaves(x, [...at, k]));
  }
  return [{ path: at, value: v }];
}

/** The value at a key path in parsed TOML or JSON (undefined where the path does not exist). */
export function valueAtPath(root: unknown, p: readonly string[]): unknown {
  let v = root;
  for (const k of p) {
    if (typeof v !== "object" || v === null) return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return v;
}

/** Every leaf of `intended` that the loaded config does not hold (empty = all present). */
export function missingValues(intended: Record<string, unknown>, loaded: Record<string, unknown>): string[] {
  const missing: string[] = [];
  for (const { path: p, value } of leaves(intended)) {
    const got = valueAtPath(loaded, p);
    if (JSON.stringify(got) !== JSON.stringify(value)) {
      missing.push(`${p.join(".")}: intended ${JSON.stringify(value)}, loaded ${JSON.stringify(got)}`);
    }
  }
  return missing;
}
