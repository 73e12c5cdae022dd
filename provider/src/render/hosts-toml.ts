/**
 * `<config_path>/<namespace>/hosts.toml` and the certificate files that travel with it
 * (containerd docs/hosts.md). Host order is meaningful: mirrors are tried in file order, `server` last.
 */
import { isPem } from "../spec/schema";
import type { RenderedFile } from "../spec/types";
import { DOCKER_HUB_UPSTREAM, NormalizedHost, NormalizedRegistry } from "../spec/validate";
import { managedPem, managedToml, sortKeys } from "./toml";

type Table = Record<string, unknown>;

/** The upstream of a namespace when the spec names none; "*" has none. */
export function defaultServer(namespace: string): string | undefined {
  if (namespace === "*") return undefined;
  if (namespace === "docker.io") return DOCKER_HUB_UPSTREAM;
  return `https://${namespace}`;
}

/** File-name stem for a host's certificates: "mirror.example.com_5000". */
function stemOf(url: string): string {
  const u = new URL(url);
  return (u.port ? `${u.hostname}_${u.port}` : u.hostname).replace(/[^A-Za-z0-9._-]/g, "_");
}

interface Context {
  dir: string;
  namespace: string;
  files: RenderedFile[];
  usedNames: Set<string>;
}

/** A PEM value becomes a file beside hosts.toml and its path is returned; a path is returned as is. */
function ship(value: string, stem: string, suffix: string, secret: boolean, ctx: Context): string {
  if (!isPem(value)) return value;
  let name = `${stem}${suffix}`;
  for (let i = 2; ctx.usedNames.has(name); i++) name = `${stem}-${i}${suffix}`;
  ctx.usedNames.add(name);
  const path = `${ctx.dir}/${name}`;
  ctx.files.push({
    path,
    content: managedPem(value),
    mode: secret ? 0o600 : 0o644,
    secret,
    kind: "certificate",
    registry: ctx.namespace,
  });
  return path;
}

function authorization(host: NormalizedHost): string | undefined {
  const a = host.auth;
  if (!a) return undefined;
  if (a.token !== undefined) return `Bearer ${a.token}`;
  return `Basic ${Buffer.from(`${a.username}:${a.password}`, "utf8").toString("base64")}`;
}

/** The fields of one host, in a fixed, readable order. */
function hostFields(host: NormalizedHost, ctx: Context): Table {
  const t: Table = {};
  if (host.capabilities) t.capabilities = [...host.capabilities];
  const stem = stemOf(host.url);
  if (host.ca.length > 0) {
    const cas = host.ca.map((ca) => ship(ca, stem, ".ca.crt", false, ctx));
    t.ca = cas.length === 1 ? cas[0] : cas;
  }
  if (host.client.length > 0) {
    const pairs = host.client.map((c) => [
      ship(c.cert, stem, ".client.cert", c.key === undefined && isPem(c.cert), ctx),
      c.key === undefined ? "" : ship(c.key, stem, ".client.key", true, ctx),
    ]);
    t.client = pairs.length === 1 && pairs[0][1] === "" ? pairs[0][0] : pairs;
  }
  if (host.skipVerify !== undefined) t.skip_verify = host.skipVerify;
  if (host.overridePath !== undefined) t.override_path = host.overridePath;
  if (host.dialTimeout !== undefined) t.dial_timeout = host.dialTimeout;
  const header: Table = { ...(sortKeys(host.headers) as Table) };
  const auth = authorization(host);
  if (auth !== undefined) header.Authorization = auth;
  if (Object.keys(header).length > 0) t.header = header;
  return t;
}

/** hosts.toml plus certificate files for one registry. */
export function renderRegistry(reg: NormalizedRegistry, registryConfigPath: string): RenderedFile[] {
  const dir = `${registryConfigPath}/${reg.directory}`;
  const ctx: Context = { dir, namespace: reg.namespace, files: [], usedNames: new Set() };
  const body: Table = {};
  // skipFallback: containerd tries the [host] entries in order and `server` last, and `server` is
  // the upstream when none is given (docs/hosts.md). The last mirror as the server leaves no
  // upstream to fall back to: with every mirror down, pulls of this registry fail.
  const fallback = reg.skipFallback ? reg.mirrors[reg.mirrors.length - 1] : undefined;
  const mirrors = fallback ? reg.mirrors.slice(0, -1) : reg.mirrors;
  const server: NormalizedHost | undefined =
    fallback ?? reg.server ?? (defaultServer(reg.namespace) ? { url: defaultServer(reg.namespace)!, ca: [], client: [], headers: {} } : undefined);
  if (server) body.server = server.url;
  const hosts: Table = {};
  if (mirrors.length > 0) {
    if (server) Object.assign(body, hostFields(server, ctx));
    for (const m of mirrors) hosts[m.url] = hostFields(m, ctx);
  } else if (server) {
    // 1.6 and 1.7 (up to 1.7.31) reject a hosts.toml without a [host] table ("invalid `host` tree"):
    // with no mirror, the server is also its one host, which is how docs/hosts.md writes it.
    hosts[server.url] = hostFields(server, ctx);
  }
  body.host = hosts;
  // Credentials make the file secret (0600, a Pulumi secret): auth, or a hand-written
  // Authorization / Proxy-Authorization header.
  const secret = [reg.server, ...reg.mirrors].some(
    (h) => h !== undefined && (h.auth !== undefined || Object.keys(h.headers).some((k) => /^(proxy-)?authorization$/i.test(k))),
  );
  const hostsFile: RenderedFile = {
    path: `${dir}/hosts.toml`,
    content: managedToml(body, { ordered: true }),
    mode: secret ? 0o600 : 0o644,
    secret,
    kind: "hosts",
    registry: reg.namespace,
  };
  const certs = ctx.files.sort((a, b) => (a.path < b.path ? -1 : 1));
  return [...certs, hostsFile];
}
