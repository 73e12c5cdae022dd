/**
 * The few spec leaves that may be `pulumi.Input<string>` (credentials, header values, private keys)
 * are swapped for placeholders so that the spec can be validated and its file list known at once,
 * while the real values stay Outputs (secret ones stay secret) and only reach the files they feed.
 */
import { isRecord } from "../records";
import * as pulumi from "@pulumi/pulumi";

/** Where an input leaf sits, and whether it is a private key (which needs a PEM placeholder). */
export interface Leaf {
  path: (string | number)[];
  value: pulumi.Input<string>;
  pem: boolean;
}

type AnyRecord = Record<string, unknown>;

/** Every leaf that is not a plain string (an Output or a Promise). */
export function findInputLeaves(spec: AnyRecord): Leaf[] {
  const leaves: Leaf[] = [];
  const take = (path: (string | number)[], v: unknown, pem = false) => {
    if (v !== undefined && typeof v !== "string" && (pulumi.Output.isInstance(v) || v instanceof Promise)) {
      leaves.push({ path, value: v as pulumi.Input<string>, pem });
    }
  };
  const host = (path: (string | number)[], h: unknown) => {
    if (!isRecord(h)) return;
    if (isRecord(h.auth)) for (const k of ["username", "password", "token"]) take([...path, "auth", k], h.auth[k]);
    if (isRecord(h.headers)) {
      for (const [name, v] of Object.entries(h.headers)) {
        if (Array.isArray(v)) v.forEach((x, i) => take([...path, "headers", name, i], x));
        else take([...path, "headers", name], v);
      }
    }
    const clients = Array.isArray(h.client) ? h.client : h.client === undefined ? [] : [h.client];
    clients.forEach((c, i) => {
      if (isRecord(c)) take([...path, "client", ...(Array.isArray(h.client) ? [i] : []), "key"], c.key, true);
    });
  };
  const registries = isRecord(spec.registries) ? spec.registries : {};
  for (const [ns, reg] of Object.entries(registries)) {
    if (!isRecord(reg)) continue;
    host(["registries", ns, "server"], reg.server);
    if (Array.isArray(reg.mirrors)) reg.mirrors.forEach((m, i) => host(["registries", ns, "mirrors", i], m));
  }
  return leaves;
}

function setAt(root: AnyRecord, path: (string | number)[], value: string): void {
  let v: unknown = root;
  for (const k of path.slice(0, -1)) v = (v as AnyRecord)[k];
  (v as AnyRecord)[path[path.length - 1]] = value;
}

/** A copy of spec with leaf i set to values[i] (the rest of the spec is cloned, Outputs included). */
export function withLeaves(spec: AnyRecord, leaves: Leaf[], values: string[]): AnyRecord {
  const copy = cloneSpec(spec) as AnyRecord;
  leaves.forEach((l, i) => setAt(copy, l.path, values[i]));
  return copy;
}

/** Deep copy of plain data; Outputs and Promises are kept as they are (they are replaced after). */
function cloneSpec(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(cloneSpec);
  if (isRecord(v) && !pulumi.Output.isInstance(v) && !(v instanceof Promise)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, cloneSpec(x)]));
  }
  return v;
}

/** Two distinct placeholder values per leaf: files whose bytes differ between them depend on it. */
export function placeholder(leaf: Leaf, variant: "a" | "b"): string {
  if (!leaf.pem) return `placeholder-${variant}`;
  return `-----BEGIN PRIVATE KEY-----\nplaceholder-${variant}\n-----END PRIVATE KEY-----\n`;
}
