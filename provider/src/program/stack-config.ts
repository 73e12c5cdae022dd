/**
 * The zero-code entry: a ContainerdFleet read entirely from stack configuration, so `pulumi up`
 * on the root program needs no TypeScript from the user. Bad configuration gets the same field-by-field
 * errors as the TypeScript API, before anything is declared.
 *
 *   <project>:nodes        list of { name, host, port?, user?, hostKey?, ...per-node spec overrides }
 *   <project>:privateKey   SSH private key for every node (secret)
 *   <project>:spec         the shared node spec (containerdVersion, registries, settings, restartCommand ...)
 *   <project>:rollout      { maxUnavailable?, canary?, healthChecks? }
 *   <project>:credentials  registry credentials by URL or host: { "https://harbor.example.com": { username, password } } (secret)
 */
import { isRecord } from "../records";
import * as pulumi from "@pulumi/pulumi";
import { Problem, SpecError, showValue } from "../errors";
import { CREDENTIAL_KEY } from "../spec/validate";
import { ContainerdFleet, ContainerdFleetArgs, FleetNodeArgs, RolloutArgs } from "../component/containerd-fleet";

type AnyRecord = Record<string, unknown>;

const CONNECTION_KEYS = ["host", "port", "user", "hostKey"] as const;

interface RawConfig {
  nodes?: unknown;
  privateKey?: string;
  spec?: unknown;
  rollout?: unknown;
  credentials?: unknown;
}

/** `secret` tells whether a key was set with --secret (undefined when the SDK cannot tell). */
export function fleetArgsFromConfig(raw: RawConfig, isSecret: (key: string) => boolean | undefined): ContainerdFleetArgs {
  const problems: Problem[] = [];
  const at = (p: string) => `config ${p}`;
  for (const key of ["privateKey", "credentials"] as const) {
    if (raw[key] !== undefined && isSecret(key) === false) {
      problems.push({ path: at(key), message: `is stored in plain text; set it with \`pulumi config set --secret ${key} ...\`` });
    }
  }
  // spec and nodes are read as plain values (they shape the fleet): a secret in them would end up
  // in plain resource inputs. Credentials have their own secret key.
  for (const key of ["spec", "nodes", "rollout"] as const) {
    if (raw[key] !== undefined && isSecret(key) === true) {
      problems.push({ path: at(key), message: "holds a secret; keep credentials in the `credentials` key (set with --secret) and spec, nodes and rollout in plain config" });
    }
  }
  // Credentials written into spec or a node's overrides would be plain config, and plain resource
  // inputs: refused, with where to put them instead (nothing of the value is repeated).
  const plainCredentials = (v: unknown, where: string) => {
    if (!isRecord(v) || !isRecord(v.registries)) return;
    for (const [ns, reg] of Object.entries(v.registries)) {
      if (!isRecord(reg)) continue;
      const hosts: [string, unknown][] = [...(Array.isArray(reg.mirrors) ? reg.mirrors.map((m, i) => [`mirrors[${i}]`, m] as [string, unknown]) : []), ["server", reg.server]];
      for (const [k, h] of hosts) {
        if (!isRecord(h)) continue;
        const headers = isRecord(h.headers) ? Object.keys(h.headers).filter((name) => /^(proxy-)?authorization$/i.test(name) || CREDENTIAL_KEY.test(name)) : [];
        for (const field of [...(h.auth !== undefined ? ["auth"] : []), ...headers.map((name) => `headers[${JSON.stringify(name)}]`)]) {
          problems.push({
            path: at(`${where}.registries[${JSON.stringify(ns)}].${k}.${field}`),
            message: `[secret] is in plain config; put it in the secret credentials key: pulumi config set --secret --path 'credentials["${typeof h.url === "string" ? h.url : ns}"].password' ...`,
          });
        }
      }
    }
  };
  plainCredentials(raw.spec, "spec");
  (Array.isArray(raw.nodes) ? raw.nodes : []).forEach((n, i) => plainCredentials(n, `nodes[${i}]`));
  if (!Array.isArray(raw.nodes) || raw.nodes.length === 0) {
    problems.push({ path: at("nodes"), message: `${showValue(raw.nodes)} is not a non-empty list of { name, host, ... }` });
  }
  if (raw.privateKey === undefined) {
    problems.push({ path: at("privateKey"), message: "is required: `pulumi config set --secret privateKey < ~/.ssh/id_ed25519`" });
  }
  if (raw.spec !== undefined && !isRecord(raw.spec)) problems.push({ path: at("spec"), message: `${showValue(raw.spec)} is not an object` });
  if (raw.rollout !== undefined && !isRecord(raw.rollout)) problems.push({ path: at("rollout"), message: `${showValue(raw.rollout)} is not an object` });
  const credentials = raw.credentials === undefined ? {} : raw.credentials;
  if (!isRecord(credentials)) problems.push({ path: at("credentials"), message: "[secret] is not an object of { username, password } or { token } by registry URL or host" });

  const privateKey = pulumi.secret(raw.privateKey ?? "");
  const nodes: FleetNodeArgs[] = [];
  (Array.isArray(raw.nodes) ? raw.nodes : []).forEach((n, i) => {
    if (!isRecord(n)) {
      problems.push({ path: at(`nodes[${i}]`), message: `${showValue(n)} is not an object` });
      return;
    }
    if (typeof n.host !== "string" || n.host === "") problems.push({ path: at(`nodes[${i}].host`), message: `${showValue(n.host)} is not a host name or address` });
    if (n.port !== undefined && (!Number.isInteger(n.port) || (n.port as number) < 1 || (n.port as number) > 65535)) {
      problems.push({ path: at(`nodes[${i}].port`), message: `${showValue(n.port)} is not a port number` });
    }
    for (const k of ["user", "hostKey"] as const) {
      if (n[k] !== undefined && typeof n[k] !== "string") problems.push({ path: at(`nodes[${i}].${k}`), message: `${showValue(n[k])} is not a string` });
    }
    const overrides = Object.fromEntries(Object.entries(n).filter(([k]) => !(CONNECTION_KEYS as readonly string[]).includes(k)));
    const connection = {
      host: n.host as string,
      port: (n.port as number | undefined) ?? 22,
      user: (n.user as string | undefined) ?? "root",
      privateKey,
      ...(n.hostKey !== undefined ? { hostKey: n.hostKey as string } : {}),
    };
    nodes.push({ ...(overrides as unknown as FleetNodeArgs), connection });
  });
  if (problems.length > 0) throw new SpecError("Invalid stack configuration", problems);

  const shared = withCredentials((raw.spec ?? {}) as AnyRecord, credentials as AnyRecord);
  return { ...(shared as AnyRecord), nodes: nodes.map((n) => withCredentials(n as unknown as AnyRecord, credentials as AnyRecord) as unknown as FleetNodeArgs), rollout: raw.rollout as RolloutArgs | undefined };
}

/** Puts credentials (as Pulumi secrets) on every registry endpoint whose URL or host they name. */
function withCredentials(spec: AnyRecord, credentials: AnyRecord): AnyRecord {
  if (!isRecord(spec.registries) || Object.keys(credentials).length === 0) return spec;
  const lookup = (url: string): AnyRecord | undefined => {
    let host: string | undefined;
    try {
      host = new URL(url).host;
    } catch {
      host = undefined;
    }
    const c = credentials[url] ?? credentials[url.replace(/\/+$/, "")] ?? (host ? credentials[host] : undefined);
    return isRecord(c) ? c : undefined;
  };
  const endpoint = (e: unknown): unknown => {
    const obj = typeof e === "string" ? { url: e } : e;
    if (!isRecord(obj) || typeof obj.url !== "string" || obj.auth !== undefined) return e;
    const c = lookup(obj.url);
    if (!c) return e;
    // `pulumi config set --path` stores digits-only values as numbers: credentials are strings.
    const auth = Object.fromEntries(
      Object.entries(c).map(([k, v]) => [k, typeof v === "string" || typeof v === "number" ? pulumi.secret(String(v)) : v]),
    );
    return { ...obj, auth };
  };
  const registries = Object.fromEntries(
    Object.entries(spec.registries).map(([ns, r]) => {
      if (!isRecord(r)) return [ns, r];
      const out: AnyRecord = { ...r };
      if (r.server !== undefined) out.server = endpoint(r.server);
      if (Array.isArray(r.mirrors)) out.mirrors = r.mirrors.map(endpoint);
      return [ns, out];
    }),
  );
  return { ...spec, registries };
}

function readJson(config: pulumi.Config, key: string): unknown {
  const text = pulumi.runtime.getConfig(`${config.name}:${key}`);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Reads the stack configuration and declares the fleet. The program of the root Pulumi.yaml. */
export function fleetFromStackConfig(name = "fleet", config = new pulumi.Config()): ContainerdFleet {
  // Secret values are read raw here (getSecret would only give an Output, and the fleet's shape must
  // be known now); they are wrapped in pulumi.secret before they go anywhere.
  const isConfigSecret = (pulumi.runtime as unknown as { isConfigSecret?: (k: string) => boolean }).isConfigSecret;
  const raw: RawConfig = {
    nodes: readJson(config, "nodes"),
    privateKey: pulumi.runtime.getConfig(`${config.name}:privateKey`),
    spec: readJson(config, "spec"),
    rollout: readJson(config, "rollout"),
    credentials: readJson(config, "credentials"),
  };
  const args = fleetArgsFromConfig(raw, (k) => isConfigSecret?.(`${config.name}:${k}`));
  return new ContainerdFleet(name, args);
}
