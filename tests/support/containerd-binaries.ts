/**
 * Where the real containerd binaries of each generation live on a test machine.
 *
 * 1.6 is Debian bookworm's package (installed by .ci/install); 1.7 and 2.1 are Debian trixie's and
 * sid's packages unpacked, not installed, by tests/support/fetch-containerd.sh into
 * .cache/containerd/<gen>; 2.2 and 2.3 are built from containerd's Go module by
 * tests/support/build-containerd.sh into the same place. A missing binary is an error, never a skip:
 * CI must run against all five.
 */
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";

export type Generation = "1.6" | "1.7" | "2.1" | "2.2" | "2.3";
export const GENERATIONS: Generation[] = ["1.6", "1.7", "2.1", "2.2", "2.3"];

/** The real daemon that stands for a target version: its own generation, 2.0 by 2.1 (none is built). */
export function generationFor(containerdVersion: string): Generation {
  const m = /^v?(\d+)\.(\d+)/.exec(containerdVersion);
  const g = m ? `${m[1]}.${m[2]}` : containerdVersion;
  if (g === "2.0") return "2.1";
  if ((GENERATIONS as string[]).includes(g)) return g as Generation;
  throw new Error(`no test daemon for containerd ${containerdVersion}`);
}

export interface ContainerdBinaries {
  generation: Generation;
  /** Directory holding containerd, ctr and the runc shim. */
  binDir: string;
  containerd: string;
  ctr: string;
  /** What `containerd --version` reports, e.g. "1.7.24". */
  version: string;
}

const repoRoot = path.resolve(__dirname, "..", "..");

export function cacheDir(): string {
  return process.env.CONTAINERD_CACHE ?? path.join(repoRoot, ".cache", "containerd");
}

export function binDirOf(gen: Generation): string {
  return gen === "1.6" ? "/usr/bin" : path.join(cacheDir(), gen, "usr", "bin");
}

export function containerdBinaries(gen: Generation): ContainerdBinaries {
  const binDir = binDirOf(gen);
  const containerd = path.join(binDir, "containerd");
  const ctr = path.join(binDir, "ctr");
  for (const f of [containerd, ctr]) {
    if (!fs.existsSync(f)) {
      throw new Error(
        `containerd ${gen}: ${f} is missing. Run .ci/run, or: apt-get install containerd && ` +
          `sh tests/support/fetch-containerd.sh`,
      );
    }
  }
  const out = execFileSync(containerd, ["--version"], { encoding: "utf8" });
  const m = /^\S+ \S+ v?(\d+\.\d+\.\d+)/.exec(out);
  if (!m) throw new Error(`containerd ${gen}: cannot read a version from ${JSON.stringify(out)}`);
  if (!m[1].startsWith(gen + ".")) {
    throw new Error(`containerd ${gen}: ${containerd} reports ${m[1]}, expected ${gen}.x`);
  }
  return { generation: gen, binDir, containerd, ctr, version: m[1] };
}
