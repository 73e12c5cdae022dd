/**
 * Deterministic TOML text: same value, same bytes, whatever the key order of the input. A changed
 * byte is a changed resource and, for config.toml, a containerd restart, so this matters.
 */
import { isRecord } from "../records";
import { END_MARKER } from "../spec/managed-file";
import { stringify } from "smol-toml";

/** First line of every managed file. */
export const MANAGED_HEADER =
  "# Managed by containerd-node (Pulumi). Local edits are overwritten on the next `pulumi up`.";
export { END_MARKER } from "../spec/managed-file";

type Table = Record<string, unknown>;

/** A TOML table: a record that is not a TOML date. */
function isTable(v: unknown): v is Table {
  return isRecord(v) && !(v instanceof Date);
}

/** Recursively sorts table keys by code unit order (not locale: the same on every machine). */
export function sortKeys(v: unknown, first: readonly string[] = []): unknown {
  if (Array.isArray(v)) return v.map((x) => sortKeys(x));
  if (!isTable(v)) return v;
  const keys = Object.keys(v).sort((a, b) => {
    const fa = first.indexOf(a);
    const fb = first.indexOf(b);
    if (fa !== -1 || fb !== -1) return (fa === -1 ? Infinity : fa) - (fb === -1 ? Infinity : fb);
    return a < b ? -1 : a > b ? 1 : 0;
  });
  const out: Table = {};
  for (const k of keys) out[k] = sortKeys(v[k]);
  return out;
}

/** Deep merge: tables merge key by key, anything else in `over` replaces. Inputs are not modified. */
export function deepMerge(base: Table, over: Readonly<Table>): Table {
  const out: Table = { ...base };
  for (const [k, v] of Object.entries(over)) {
    out[k] = isTable(v) && isTable(out[k]) ? deepMerge(out[k] as Table, v) : structuredClone(v);
  }
  return out;
}

/** The managed file: header, TOML body, end marker. `ordered` keeps insertion order (hosts.toml). */
export function managedToml(body: Table, opts: { ordered?: boolean; first?: string[] } = {}): string {
  const value = opts.ordered ? body : (sortKeys(body, opts.first) as Table);
  const text = stringify(value).replace(/\n+$/, "");
  return `${MANAGED_HEADER}\n\n${text}\n\n${END_MARKER}\n`;
}

/** A PEM file with the same header and end marker (PEM readers skip text outside the blocks). */
export function managedPem(pem: string): string {
  const body = pem.replace(/\r\n/g, "\n").trim();
  return `${MANAGED_HEADER}\n${body}\n${END_MARKER}\n`;
}
