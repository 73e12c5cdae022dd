/**
 * containerd versions and what each one understands. Sources: containerd RELEASES.md, docs/hosts.md
 * and the config migration code (summarised in the project's containerd facts).
 */
export interface ContainerdVersion {
  major: number;
  minor: number;
  /** 0 when the spec gave only MAJOR.MINOR: features gated on a patch release stay off. */
  patch: number;
  /** Whether the patch was given. */
  exact: boolean;
  text: string;
}

const VERSION_RE = /^v?(\d{1,3})\.(\d{1,3})(?:\.(\d{1,4}))?$/;

/** Parses "1.7", "1.7.22", "v2.1.4". Returns undefined when the text is not such a version. */
export function parseVersion(text: string): ContainerdVersion | undefined {
  const m = VERSION_RE.exec(text);
  if (!m) return undefined;
  return {
    major: Number(m[1]),
    minor: Number(m[2]),
    patch: m[3] === undefined ? 0 : Number(m[3]),
    exact: m[3] !== undefined,
    text,
  };
}

export function atLeast(v: ContainerdVersion, major: number, minor: number, patch = 0): boolean {
  if (v.major !== major) return v.major > major;
  if (v.minor !== minor) return v.minor > minor;
  return v.patch >= patch;
}

/** Why a version is not supported, or undefined when it is. */
export function unsupportedReason(v: ContainerdVersion): string | undefined {
  if (v.major === 1 && (v.minor === 6 || v.minor === 7)) return undefined;
  if (v.major === 2) return undefined;
  return "is not a supported containerd version (1.6, 1.7 or 2.x)";
}

/** config.toml's `version`: what a node's containerd reads as its own. */
export type ConfigVersion = 2 | 3 | 4;

/**
 * config.toml `version` for a node: 2 on 1.x, 3 on 2.0-2.2, 4 on 2.3+. 2.3 still loads a version 3
 * file, but migrates its server settings in memory at every start; version 4 is what 2.3's own
 * `config default` writes, and 2.0-2.2 refuse it ("expected containerd config version equal to or
 * less than `3`"), so it is written only for 2.3+ (containerd cmd/containerd/server/config/config.go,
 * `migrations` and `serviceMigrate`, at v2.3.7).
 */
export function configVersionFor(v: ContainerdVersion): ConfigVersion {
  if (v.major >= 2) return atLeast(v, 2, 3) ? 4 : 3;
  return 2;
}

/** Version 4 moves the server settings (grpc, ttrpc, debug address, metrics) into plugins. */
export function usesServerPlugins(v: ContainerdVersion): boolean {
  return atLeast(v, 2, 3);
}

/** The `_default` hosts directory ("*" registry): 1.6.17+ and 1.7.0+. */
export function supportsDefaultHostsDir(v: ContainerdVersion): boolean {
  return v.major >= 2 || (v.minor === 7) || atLeast(v, 1, 6, 17);
}

/** hosts.toml `dial_timeout`: 2.0.7+ and 2.1+. */
export function supportsDialTimeout(v: ContainerdVersion): boolean {
  return atLeast(v, 2, 1) || atLeast(v, 2, 0, 7);
}

/** hosts.toml capability "referrers": 2.2+. */
export function supportsReferrers(v: ContainerdVersion): boolean {
  return atLeast(v, 2, 2);
}

/** Per-runtime `snapshotter`: 1.7+. */
export function supportsRuntimeSnapshotter(v: ContainerdVersion): boolean {
  return atLeast(v, 1, 7);
}

/** CNI `bin_dirs` (a list) replaces `bin_dir` in 2.1. */
export function usesCniBinDirs(v: ContainerdVersion): boolean {
  return atLeast(v, 2, 1);
}
