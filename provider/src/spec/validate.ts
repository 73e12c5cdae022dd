/**
 * Turns an untrusted spec into a normalized one, or throws one SpecError that lists every problem
 * with its field path, the value received (never a secret) and what is allowed.
 */
import type { z } from "zod";
import { Problem, SpecError, formatPath, showValue } from "../errors";
import { isRecord } from "../records";
import { extractLegacyMirrors } from "./legacy-mirrors";
import { CRI_IMAGES, CRI_V1X, SERVER_PLUGIN_PREFIX, V3_GRPC_CRI_KEYS, V4_MOVED, v3HomeOf } from "./plugins";
import { nodeSpecSchema, registryUrl } from "./schema";
import type { NodeSpec, RegistryAuthOf, RegistryHost, RuntimeSpec } from "./types";
import {
  ConfigVersion,
  ContainerdVersion,
  atLeast,
  configVersionFor,
  parseVersion,
  supportsDefaultHostsDir,
  supportsDialTimeout,
  supportsReferrers,
  supportsRuntimeSnapshotter,
  unsupportedReason,
} from "./version";

export const DEFAULT_CONFIG_FILE = "/etc/containerd/config.toml";
export const DEFAULT_REGISTRY_CONFIG_PATH = "/etc/containerd/certs.d";
export const DEFAULT_GRPC_ADDRESS = "/run/containerd/containerd.sock";
export const DOCKER_HUB_UPSTREAM = "https://registry-1.docker.io";

/** A registry endpoint with every list normalized. */
export interface NormalizedHost {
  url: string;
  capabilities?: string[];
  skipVerify?: boolean;
  ca: string[];
  client: { cert: string; key?: string }[];
  headers: Record<string, string | string[]>;
  overridePath?: boolean;
  dialTimeout?: string;
  auth?: RegistryAuthOf<string>;
}

export interface NormalizedRegistry {
  namespace: string;
  /** `_default` for "*", the namespace otherwise. */
  directory: string;
  server?: NormalizedHost;
  mirrors: NormalizedHost[];
  /** Only the mirrors, never the upstream: the last mirror is rendered as the server. */
  skipFallback: boolean;
}

export interface NormalizedSpec {
  spec: NodeSpec;
  version: ContainerdVersion;
  configVersion: ConfigVersion;
  configFile: string;
  registryConfigPath: string;
  grpcAddress: string;
  registries: NormalizedRegistry[];
  /** settings without legacy mirrors, ready to merge. */
  settings: Record<string, unknown>;
  warnings: string[];
}

/** Fields whose values are never shown in messages. */
function isSecretPath(path: readonly PropertyKey[]): boolean {
  return path.some((s) => s === "auth" || s === "headers" || s === "key");
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = root;
  for (const s of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<PropertyKey, unknown>)[s];
  }
  return v;
}

const ARTICLE: Record<string, string> = {
  string: "a string",
  number: "a number",
  boolean: "true or false",
  array: "a list",
  object: "an object",
  int: "a whole number",
};

function zodProblems(input: unknown, issue: z.core.$ZodIssue, base: PropertyKey[] = []): Problem[] {
  const path = [...base, ...issue.path];
  const at = formatPath(path as (string | number)[]);
  const value = valueAt(input, path);
  const shown = showValue(value, isSecretPath(path));
  switch (issue.code) {
    case "unrecognized_keys":
      return issue.keys.map((k) => ({ path: formatPath([...path, k] as (string | number)[]), message: issue.message }));
    case "invalid_type":
      if (value === undefined) return [{ path: at, message: "is required" }];
      return [{ path: at, message: `${shown} is not ${ARTICLE[issue.expected] ?? issue.expected}` }];
    case "invalid_value":
      return [{ path: at, message: `${shown} is not one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}` }];
    case "invalid_union": {
      // Report the branch of the same kind as the value (string vs object), else a summary.
      const kind = Array.isArray(value) ? "array" : typeof value;
      for (const branch of issue.errors) {
        const typeMiss = branch.length === 1 && branch[0].code === "invalid_type" && branch[0].path.length === 0;
        if (!typeMiss && branch.length > 0) return branch.flatMap((b) => zodProblems(input, b, path));
        if (typeMiss && (branch[0] as { expected: string }).expected === kind) {
          return branch.flatMap((b) => zodProblems(input, b, path));
        }
      }
      const kinds = issue.errors
        .map((b) => (b[0]?.code === "invalid_type" ? ARTICLE[(b[0] as { expected: string }).expected] : undefined))
        .filter(Boolean);
      return [{ path: at, message: `${shown} is not ${[...new Set(kinds)].join(" or ") || "an allowed value"}` }];
    }
    case "invalid_key": {
      // A map key (registry namespace, runtime name) failed its own check: show the key itself.
      const key = path[path.length - 1];
      return [{ path: at, message: `${showValue(key)} ${issue.issues.map((i) => i.message).join("; ")}` }];
    }
    case "too_small":
    case "too_big":
      return [{ path: at, message: `${shown} is ${issue.code === "too_small" ? "below the minimum" : "above the maximum"} of ${String(issue.code === "too_small" ? issue.minimum : issue.maximum)}` }];
    default:
      return [{ path: at, message: `${shown} ${issue.message}` }];
  }
}

/** Validates and normalizes, or throws SpecError(subject, problems). */
export function normalizeSpec(input: unknown, subject = "Invalid containerd node spec"): NormalizedSpec {
  const problems: Problem[] = [];
  const parsed = nodeSpecSchema.safeParse(input);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push(...zodProblems(input, issue));
  }
  const raw: Record<string, unknown> = isRecord(input) ? input : {};
  if (!isRecord(input)) {
    throw new SpecError(subject, [{ path: "", message: `${showValue(input)} is not an object` }]);
  }

  // The version decides everything else; without it, report what we have.
  const versionText = raw.containerdVersion;
  const version = typeof versionText === "string" ? parseVersion(versionText) : undefined;
  if (typeof versionText === "string") {
    if (!version) {
      problems.push({
        path: "containerdVersion",
        message: `${showValue(versionText)} is not a containerd version such as "1.7", "1.7.22" or "2.1.4"`,
      });
    } else {
      const why = unsupportedReason(version);
      if (why) problems.push({ path: "containerdVersion", message: `${showValue(versionText)} ${why}` });
    }
  }
  const ok = version && !unsupportedReason(version) ? version : undefined;
  const ctx: Ctx = { version: ok, versionText: String(versionText), problems };

  checkRuntimes(raw, ctx);
  const registries = checkRegistries(raw, ctx);
  const { settings, legacy } = checkSettings(raw, ctx);
  const warnings: string[] = [];
  if (legacy.length > 0 && ok) {
    const merged = mergeLegacy(legacy, registries, ctx);
    if (merged.length > 0) {
      const where = [...new Set(legacy.map((l) => l.path.replace(/\[[^\]]*\]$/, "")))].join(", ");
      warnings.push(
        `${where}: legacy registry.mirrors (deprecated since containerd 1.5) moved into hosts.toml files ` +
          `for ${merged.join(", ")}; containerd refuses mirrors together with config_path. ` +
          `Declare them under registries to silence this warning.`,
      );
    }
  }

  // By directory, before anything is said about them: the same spec in any key order gives the
  // same warnings in the same order, as it gives the same files.
  registries.sort((a, b) => (a.directory < b.directory ? -1 : a.directory > b.directory ? 1 : 0));
  warnings.push(...noOpRegistryWarnings(registries));
  if (ok) warnings.push(...generationWarnings(ok, String(versionText), registries, settings));

  if (problems.length > 0 || !parsed.success || !ok) {
    if (problems.length === 0) problems.push({ path: "", message: "is not a valid node spec" });
    throw new SpecError(subject, dedupe(problems));
  }
  const spec: NodeSpec = parsed.data;
  return {
    spec,
    version: ok,
    configVersion: configVersionFor(ok),
    configFile: spec.configFile ?? DEFAULT_CONFIG_FILE,
    registryConfigPath: spec.registryConfigPath ?? DEFAULT_REGISTRY_CONFIG_PATH,
    grpcAddress: spec.grpcAddress ?? DEFAULT_GRPC_ADDRESS,
    registries,
    settings,
    warnings,
  };
}

export const CREDENTIAL_KEY = /(^|[_-])(auths?|password|passwd|token|secret|credentials?|identitytoken|registrytoken|bearer)([_-]|$)/i;

/** Paths of keys in settings whose name says credential (auth, password, token, secret, ...). */
function credentialKeys(v: unknown, at: string[]): string[] {
  if (!isRecord(v)) return [];
  const out: string[] = [];
  for (const [k, x] of Object.entries(v)) {
    const here = [...at, k];
    if (CREDENTIAL_KEY.test(k)) out.push(formatPath(here));
    else out.push(...credentialKeys(x, here));
  }
  return out;
}

/**
 * A registry entry with no mirror and no server renders a hosts.toml that names only the registry's
 * own upstream, which containerd contacts anyway: the entry changes nothing, and was most likely meant
 * to hold mirrors (`mirrors: []` left empty, `{}`, or only `skipFallback: false`). Warned, not refused:
 * the files are harmless. With a "*" entry it is not a no-op: a directory of its own takes that
 * registry out of "*"'s mirrors (containerd looks up `<host>` before `_default`), so no warning then.
 */
function noOpRegistryWarnings(registries: NormalizedRegistry[]): string[] {
  if (registries.some((r) => r.namespace === "*")) return [];
  return registries
    .filter((r) => r.mirrors.length === 0 && !r.server && !r.skipFallback)
    .sort((a, b) => (a.namespace < b.namespace ? -1 : a.namespace > b.namespace ? 1 : 0))
    .map(
      (r) =>
        `${formatPath(["registries", r.namespace])}: has no mirror and no server, so it changes nothing: its hosts.toml only names ` +
        `the registry's own upstream (${r.namespace === "docker.io" ? DOCKER_HUB_UPSTREAM : `https://${r.namespace}`}), where containerd pulls from anyway. ` +
        `Give it mirrors or a server, or remove the entry.`,
    );
}

/** Settings under the CRI images plugin that make containerd 2.1+ leave the transfer service. */
const LOCAL_PULL_TRIGGERS: { key: string; when: (v: unknown) => boolean; what: string }[] = [
  { key: "use_local_image_pull", when: (v) => v === true, what: "use_local_image_pull = true" },
  { key: "disable_snapshot_annotations", when: (v) => v === false, what: "disable_snapshot_annotations = false" },
  { key: "discard_unpacked_layers", when: (v) => v === true, what: "discard_unpacked_layers = true" },
  { key: "image_pull_with_sync_fs", when: (v) => v === true, what: "image_pull_with_sync_fs = true" },
  { key: "max_concurrent_downloads", when: (v) => v !== 3, what: "max_concurrent_downloads other than 3 (use maxConcurrentDownloads: it is written where the transfer service reads it)" },
];

/**
 * What a generation does silently with an accepted spec, said out loud. Each claim is checked against
 * containerd's source at the release tags (2.1.9, 2.2.9, 2.3.7) and by tests with the real daemons.
 */
function generationWarnings(v: ContainerdVersion, versionText: string, registries: NormalizedRegistry[], settings: Record<string, unknown>): string[] {
  const warnings: string[] = [];
  // Before 2.1 a header from hosts.toml goes only to the registry, never to the token endpoint
  // (remotes/docker/config/hosts.go in 1.6/1.7; containerd PR 11092 sends it there from 2.1 on).
  if (!atLeast(v, 2, 1)) {
    for (const r of registries) {
      const hosts = [...(r.server ? [r.server] : []), ...r.mirrors];
      if (hosts.some((h) => h.auth !== undefined || Object.keys(h.headers).some((k) => k.toLowerCase() === "authorization"))) {
        warnings.push(
          `${formatPath(["registries", r.namespace])}: containerd ${versionText} sends the Authorization header only to the registry, not to its token endpoint: ` +
            `it works with registries that take Basic auth on every request (docker-registry with htpasswd, Nexus, Artifactory), not with token-auth ones ` +
            `(Docker Hub, Harbor, GHCR), where pulls stay anonymous. Use containerd 2.1+, kubelet's image credential provider, or image pull secrets there.`,
        );
      }
    }
  }
  // 2.1+ pulls CRI images through the transfer service unless one of these is set; then it falls
  // back to the older local pull path (internal/cri/config/config.go, CheckLocalImagePullConfigs).
  if (atLeast(v, 2, 1)) {
    const plugins = isRecord(settings.plugins) ? settings.plugins : {};
    const images = plugins[CRI_IMAGES];
    if (isRecord(images)) {
      for (const t of LOCAL_PULL_TRIGGERS) {
        if (t.key in images && t.when(images[t.key])) {
          warnings.push(
            `settings.plugins["${CRI_IMAGES}"].${t.key}: with ${t.what}, containerd ${versionText} stops pulling CRI images through the transfer service ` +
              `and falls back to the local pull path (its log says "Falling back to local image pull mode").`,
          );
        }
      }
    }
  }
  return warnings;
}

interface Ctx {
  version?: ContainerdVersion;
  versionText: string;
  problems: Problem[];
}

function dedupe(problems: Problem[]): Problem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const k = `${p.path}\u0000${p.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function needs(ctx: Ctx, path: string, what: string, minimum: string): void {
  ctx.problems.push({
    path,
    message: `${what} needs containerd ${minimum}; containerdVersion is ${JSON.stringify(ctx.versionText)}`,
  });
}

/** The health check needs these: disabling one would make every config change roll back. */
const CRI_PLUGIN_IDS = new Set([CRI_V1X, CRI_IMAGES, "io.containerd.cri.v1.runtime"]);

/** Runtime options that the runc shim reads as booleans; a string there is dropped without a word. */
const BOOLEAN_RUNC_OPTIONS = new Set(["SystemdCgroup", "NoPivotRoot", "NoNewKeyring"]);

function checkRuntimes(raw: Record<string, unknown>, ctx: Ctx): void {
  if (Array.isArray(raw.disabledPlugins)) {
    raw.disabledPlugins.forEach((id, i) => {
      if (typeof id === "string" && CRI_PLUGIN_IDS.has(id)) {
        ctx.problems.push({ path: `disabledPlugins[${i}]`, message: `${showValue(id)} is a CRI plugin: kubelet needs it, and the health check after every restart waits for it` });
      }
    });
  }
  const runtimes = isRecord(raw.runtimes) ? (raw.runtimes as Record<string, RuntimeSpec>) : {};
  for (const [name, rt] of Object.entries(runtimes)) {
    if (!isRecord(rt) || !isRecord(rt.options)) continue;
    for (const [k, v] of Object.entries(rt.options)) {
      if (BOOLEAN_RUNC_OPTIONS.has(k) && typeof v !== "boolean") {
        ctx.problems.push({ path: formatPath(["runtimes", name, "options", k]), message: `${showValue(v)} is not true or false` });
      }
    }
  }
  for (const [name, rt] of Object.entries(runtimes)) {
    if (isRecord(rt) && rt.snapshotter !== undefined && ctx.version && !supportsRuntimeSnapshotter(ctx.version)) {
      needs(ctx, formatPath(["runtimes", name, "snapshotter"]), "a per-runtime snapshotter", "1.7+");
    }
  }
  if (typeof raw.defaultRuntime === "string" && raw.defaultRuntime !== "runc" && !(raw.defaultRuntime in runtimes)) {
    ctx.problems.push({
      path: "defaultRuntime",
      message: `${showValue(raw.defaultRuntime)} is not a declared runtime; allowed: ${["runc", ...Object.keys(runtimes).filter((n) => n !== "runc")].map((n) => JSON.stringify(n)).join(", ")}`,
    });
  }
}

function normalizeHost(entry: unknown, isMirror: boolean): NormalizedHost | undefined {
  if (typeof entry === "string") return { url: entry, capabilities: isMirror ? ["pull", "resolve"] : undefined, ca: [], client: [], headers: {} };
  if (!isRecord(entry) || typeof entry.url !== "string") return undefined;
  const h = entry as unknown as RegistryHost;
  const list = <T>(v: T | readonly T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? [...(v as T[])] : [v as T]);
  return {
    url: h.url,
    capabilities: h.capabilities ? [...h.capabilities] : isMirror ? ["pull", "resolve"] : undefined,
    skipVerify: h.skipVerify,
    ca: list(h.ca),
    client: list(h.client).map((c) => (typeof c === "string" ? { cert: c } : { cert: c.cert, key: c.key })),
    headers: isRecord(h.headers) ? { ...(h.headers as Record<string, string | string[]>) } : {},
    overridePath: h.overridePath,
    dialTimeout: h.dialTimeout,
    auth: h.auth,
  };
}

/**
 * A URL whose path starts with /v2/ and goes on (Harbor's proxy projects: https://harbor/v2/dockerhub)
 * already holds the registry API root. Without override_path containerd appends /v2 to any path that
 * does not end in /v2 (remotes/docker/config/hosts.go) and asks .../v2/dockerhub/v2/<repository>, which
 * the mirror answers with an error or its web page: every pull through it fails over to the next host.
 * That is never what the user meant, so it is refused rather than warned about. Only a first segment
 * of exactly "v2" counts: /registry-v2/ or /cache/v2 are prefixes containerd uses as they are, and a
 * bare /v2 is left alone by containerd.
 */
function v2PathWithoutOverride(url: string, overridePath: boolean | undefined): boolean {
  if (overridePath === true) return false;
  let segments: string[];
  try {
    const u = new URL(url);
    if (u.protocol !== "http:" && u.protocol !== "https:") return false;
    segments = u.pathname.split("/").filter((x) => x !== "");
  } catch {
    return false;
  }
  return segments.length > 1 && segments[0] === "v2";
}

function v2PathMessage(url: string): string {
  return (
    `${showValue(url)} has a path that starts with /v2/, the registry API root, and without override_path containerd appends /v2 ` +
    `to it again, so every pull through it fails; add overridePath: true: { url: ${showValue(url)}, overridePath: true }`
  );
}

function checkHost(host: NormalizedHost, path: (string | number)[], ctx: Ctx): void {
  const at = formatPath(path);
  if (v2PathWithoutOverride(host.url, host.overridePath)) ctx.problems.push({ path: at, message: v2PathMessage(host.url) });
  if (host.url.startsWith("http://") && (host.ca.length > 0 || host.client.length > 0 || host.skipVerify !== undefined)) {
    ctx.problems.push({
      path: at,
      message: `${showValue(host.url)} is plain HTTP; ca, client and skipVerify apply to https only (any TLS field makes containerd try HTTPS first)`,
    });
  }
  if (host.capabilities && host.capabilities.length === 0) {
    ctx.problems.push({ path: formatPath([...path, "capabilities"]), message: "[] is empty; allowed: some of \"pull\", \"resolve\", \"push\", \"referrers\"" });
  }
  if (host.capabilities?.includes("referrers") && ctx.version && !supportsReferrers(ctx.version)) {
    needs(ctx, formatPath([...path, "capabilities"]), 'the "referrers" capability', "2.2+");
  }
  if (host.dialTimeout !== undefined && ctx.version && !supportsDialTimeout(ctx.version)) {
    needs(ctx, formatPath([...path, "dialTimeout"]), "dial_timeout", "2.0.7+ or 2.1+");
  }
  const auth = host.auth;
  if (isRecord(auth)) {
    const hasUser = auth.username !== undefined || auth.password !== undefined;
    const complete = auth.token !== undefined ? !hasUser : auth.username !== undefined && auth.password !== undefined;
    if (!complete) {
      ctx.problems.push({ path: formatPath([...path, "auth"]), message: "[secret] needs either username and password, or token (not both)" });
    }
    if (Object.keys(host.headers).some((k) => k.toLowerCase() === "authorization")) {
      ctx.problems.push({ path: formatPath([...path, "headers", "Authorization"]), message: "[secret] conflicts with auth, which sets the Authorization header; keep one" });
    }
  }
}

function checkRegistries(raw: Record<string, unknown>, ctx: Ctx): NormalizedRegistry[] {
  const out: NormalizedRegistry[] = [];
  if (!isRecord(raw.registries)) return out;
  for (const [ns, reg] of Object.entries(raw.registries)) {
    if (!isRecord(reg)) continue;
    if (ns === "*" && ctx.version && !supportsDefaultHostsDir(ctx.version)) {
      needs(ctx, formatPath(["registries", ns]), 'the "*" registry (hosts directory _default)', "1.6.17+ or 1.7+");
    }
    const server = reg.server === undefined ? undefined : normalizeHost(reg.server, false);
    if (server) checkHost(server, ["registries", ns, "server"], ctx);
    const mirrors: NormalizedHost[] = [];
    const seen = new Map<string, number>();
    (Array.isArray(reg.mirrors) ? reg.mirrors : []).forEach((m, i) => {
      const host = normalizeHost(m, true);
      if (!host) return;
      checkHost(host, ["registries", ns, "mirrors", i], ctx);
      const key = host.url.replace(/\/+$/, "");
      if (seen.has(key)) {
        ctx.problems.push({
          path: formatPath(["registries", ns, "mirrors", i]),
          message: `${showValue(host.url)} repeats mirrors[${seen.get(key)}]; each mirror URL may appear once`,
        });
      }
      seen.set(key, i);
      mirrors.push(host);
    });
    // k3s's registries.yaml rewrites repository paths; containerd's hosts.toml has no such key.
    const rewrites = [
      ...(reg.rewrite !== undefined ? [["registries", ns, "rewrite"]] : []),
      ...(Array.isArray(reg.mirrors) ? reg.mirrors : []).flatMap((m, i) => (isRecord(m) && m.rewrite !== undefined ? [["registries", ns, "mirrors", i, "rewrite"]] : [])),
      ...(isRecord(reg.server) && reg.server.rewrite !== undefined ? [["registries", ns, "server", "rewrite"]] : []),
    ];
    for (const at of rewrites) {
      ctx.problems.push({
        path: formatPath(at as (string | number)[]),
        message:
          "is a k3s registries.yaml key; containerd's hosts.toml has no rewrite. To pull through a path on a mirror, give the mirror " +
          'its full URL with overridePath: true, e.g. { url: "https://harbor.example.com/v2/dockerhub", overridePath: true }',
      });
    }
    const skipFallback = reg.skipFallback === true;
    if (skipFallback && mirrors.length === 0) {
      ctx.problems.push({ path: formatPath(["registries", ns, "skipFallback"]), message: "true needs at least one mirror: the mirrors become the only way to the registry" });
    }
    if (skipFallback && server) {
      ctx.problems.push({ path: formatPath(["registries", ns, "server"]), message: "is the upstream that skipFallback: true never contacts; give one of them" });
    }
    if (ns === "*" && mirrors.length === 0 && !server) {
      ctx.problems.push({
        path: formatPath(["registries", ns]),
        message: 'has no mirror and no server; "*" has no upstream of its own, so give at least one',
      });
    }
    out.push({ namespace: ns, directory: ns === "*" ? "_default" : ns, server, mirrors, skipFallback });
  }
  return out;
}

function checkTomlValue(v: unknown, path: (string | number)[], ctx: Ctx): void {
  if (v === null || v === undefined || typeof v === "function" || typeof v === "symbol" || typeof v === "bigint") {
    ctx.problems.push({ path: formatPath(path), message: `${showValue(v)} is not a TOML value (string, number, boolean, list or table)` });
  } else if (typeof v === "number" && !Number.isFinite(v)) {
    ctx.problems.push({ path: formatPath(path), message: `${String(v)} is not a finite number` });
  } else if (Array.isArray(v)) {
    v.forEach((x, i) => checkTomlValue(x, [...path, i], ctx));
  } else if (typeof v === "object" && !(v instanceof Date)) {
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) checkTomlValue(x, [...path, k], ctx);
  }
}

function checkSettings(raw: Record<string, unknown>, ctx: Ctx) {
  const empty = { settings: {}, legacy: [] as ReturnType<typeof extractLegacyMirrors>["mirrors"] };
  if (!isRecord(raw.settings)) return empty;
  const { settings, mirrors } = extractLegacyMirrors(raw.settings);
  checkTomlValue(settings, ["settings"], ctx);
  if ("imports" in settings) {
    ctx.problems.push({
      path: "settings.imports",
      message: `${showValue(settings.imports)} is refused: imported files replace whole plugin sections on containerd 1.x and merge on 2.x; use the typed imports field, which the node validates with the imports resolved and the program's read checks against what the node imports now`,
    });
  }
  if ("version" in settings) {
    ctx.problems.push({ path: "settings.version", message: `${showValue(settings.version)} cannot be set; the config version follows containerdVersion (2 for 1.x, 3 for 2.0-2.2, 4 for 2.3+)` });
  }
  const plugins = isRecord(settings.plugins) ? settings.plugins : {};
  for (const id of [CRI_V1X, CRI_IMAGES]) {
    const registry = isRecord(plugins[id]) ? (plugins[id] as Record<string, unknown>).registry : undefined;
    if (!isRecord(registry)) continue;
    if ("config_path" in registry) {
      ctx.problems.push({
        path: `settings.plugins["${id}"].registry.config_path`,
        message: `${showValue(registry.config_path)} cannot be set here; use registryConfigPath (one directory: the hosts.toml files are written there)`,
      });
    }
    if (isRecord(registry.configs)) {
      for (const [host, c] of Object.entries(registry.configs)) {
        if (isRecord(c) && "auth" in c) {
          ctx.problems.push({
            path: `settings.plugins["${id}"].registry.configs[${JSON.stringify(host)}].auth`,
            message: `[secret] is refused: config.toml is world-readable and not secret; use auth on registries[...] (its hosts.toml is 0600 and a Pulumi secret)`,
          });
        }
        if (isRecord(c) && "tls" in c) {
          ctx.problems.push({
            path: `settings.plugins["${id}"].registry.configs[${JSON.stringify(host)}].tls`,
            message: `is refused: configs.tls breaks the CRI plugin when config_path is set (and is gone in containerd 2.x); use ca, client and skipVerify on registries[...] instead`,
          });
        }
      }
    }
    for (const key of ["auths", "headers"] as const) {
      if (key in registry) {
        ctx.problems.push({
          path: `settings.plugins["${id}"].registry.${key}`,
          message: `[secret] is refused: config.toml is world-readable and not secret; use ${key === "auths" ? "auth" : "headers"} on registries[...] (its hosts.toml is 0600 and a Pulumi secret)`,
        });
      }
    }
  }
  // Anything else shaped like a credential, anywhere in settings: config.toml is 0644 on the node and
  // a plain input in Pulumi's state, so no credential may travel in it.
  const reported = new Set(ctx.problems.map((p) => p.path));
  for (const at of credentialKeys(settings, ["settings"])) {
    if ([...reported].some((r) => at === r || at.startsWith(`${r}.`) || at.startsWith(`${r}[`))) continue;
    ctx.problems.push({
      path: at,
      message: `[secret] is refused: it looks like a credential, and config.toml is world-readable and not secret; registry credentials belong in registries[...].auth or headers (hosts.toml, 0600, a Pulumi secret)`,
    });
  }
  if (ctx.version) {
    const cfgver = configVersionFor(ctx.version);
    const v3 = cfgver >= 3;
    if (cfgver === 4) {
      for (const [key, home] of Object.entries(V4_MOVED)) {
        const [top, sub] = key.split(".");
        const t = settings[top];
        if (sub === undefined ? top in settings : isRecord(t) && sub in t) {
          ctx.problems.push({
            path: `settings.${key}`,
            message: `is a server setting of config version 3 and earlier; containerd ${ctx.versionText} gets config version 4, where it lives at ${home}`,
          });
        }
      }
    }
    for (const [id, table] of Object.entries(plugins)) {
      if (cfgver < 4 && id.startsWith(SERVER_PLUGIN_PREFIX)) {
        ctx.problems.push({
          path: `settings.plugins["${id}"]`,
          message: `is a server plugin of config version 4 (containerd 2.3+); containerd ${ctx.versionText} (config version ${cfgver}) has no such plugin. Use the top-level ${id.endsWith("debug") ? "debug" : id.slice(SERVER_PLUGIN_PREFIX.length).replace("grpc-tcp", "grpc")} table`,
        });
      }
      if (!v3 && id.startsWith("io.containerd.cri.v1.")) {
        ctx.problems.push({
          path: `settings.plugins["${id}"]`,
          message: `is a containerd 2.x plugin; containerd ${ctx.versionText} (config version 2) would ignore it silently. Use plugins."${CRI_V1X}"`,
        });
      }
      if (v3 && id === CRI_V1X && isRecord(table)) {
        for (const key of Object.keys(table)) {
          if (!V3_GRPC_CRI_KEYS.has(key)) {
            ctx.problems.push({
              path: `settings.plugins["${id}"].${key}`,
              message: `is a containerd 1.x key; containerd ${ctx.versionText} (config version ${cfgver}) ignores it here. It lives at ${v3HomeOf(key)}`,
            });
          }
        }
      }
    }
  }
  return { settings, legacy: mirrors };
}

function mergeLegacy(legacy: ReturnType<typeof extractLegacyMirrors>["mirrors"], registries: NormalizedRegistry[], ctx: Ctx): string[] {
  const merged: string[] = [];
  for (const entry of legacy) {
    if (entry.namespace === "") {
      ctx.problems.push({ path: entry.path, message: `${showValue(entry.endpoints)} is not a table of registries` });
      continue;
    }
    const endpoints = entry.endpoints;
    if (!Array.isArray(endpoints) || endpoints.length === 0) {
      ctx.problems.push({ path: `${entry.path}.endpoint`, message: `${showValue(endpoints)} is not a non-empty list of URLs` });
      continue;
    }
    if (registries.some((r) => r.namespace === entry.namespace)) {
      ctx.problems.push({
        path: entry.path,
        message: `configures ${JSON.stringify(entry.namespace)}, which registries[${JSON.stringify(entry.namespace)}] configures too; keep one`,
      });
      continue;
    }
    if (entry.namespace !== "*" && !/^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(?::[0-9]{1,5})?$/.test(entry.namespace)) {
      ctx.problems.push({ path: entry.path, message: `${showValue(entry.namespace)} is not a registry host` });
      continue;
    }
    if (entry.namespace === "*" && ctx.version && !supportsDefaultHostsDir(ctx.version)) {
      needs(ctx, entry.path, 'the "*" registry (hosts directory _default)', "1.6.17+ or 1.7+");
    }
    const mirrors: NormalizedHost[] = [];
    endpoints.forEach((url, i) => {
      const r = registryUrl.safeParse(url);
      if (!r.success) {
        ctx.problems.push({ path: `${entry.path}.endpoint[${i}]`, message: `${showValue(url)} ${r.error.issues[0].message}` });
        return;
      }
      if (v2PathWithoutOverride(url, undefined)) {
        ctx.problems.push({
          path: `${entry.path}.endpoint[${i}]`,
          message: `${showValue(url)} has a path that starts with /v2/, the registry API root, and containerd appends /v2 to it again; declare it under registries[${JSON.stringify(entry.namespace)}] with overridePath: true`,
        });
        return;
      }
      if (!mirrors.some((m) => m.url === url)) mirrors.push(normalizeHost(url, true)!);
    });
    registries.push({
      namespace: entry.namespace,
      directory: entry.namespace === "*" ? "_default" : entry.namespace,
      mirrors,
      skipFallback: false,
    });
    merged.push(entry.namespace);
  }
  return merged;
}
