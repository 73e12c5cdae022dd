/**
 * OpenSSH known_hosts, read the way `ssh` reads it (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"): one key
 * per line, `[@marker] patterns keytype base64 [comment]`. Patterns are comma-separated host names
 * with `*` and `?` wildcards and `!` negation, `[host]:port` for ports other than 22, or one hashed
 * name `|1|base64(salt)|base64(HMAC-SHA1(salt, name))` as `ssh-keygen -H` and HashKnownHosts write.
 * `@revoked` keys are never used; `@cert-authority` lines are skipped (the command provider pins one
 * plain key and cannot check certificates).
 */
import { createHmac } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

export interface KnownHostsEntry {
  marker?: "@revoked" | "@cert-authority";
  /** Plain patterns, or undefined for a hashed entry. */
  patterns?: string[];
  hashed?: { salt: Buffer; hash: Buffer };
  keyType: string;
  key: string;
  line: number;
}

export function parseKnownHosts(text: string): KnownHostsEntry[] {
  const out: KnownHostsEntry[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const fields = line.split(/\s+/);
    let marker: KnownHostsEntry["marker"];
    if (fields[0].startsWith("@")) {
      if (fields[0] !== "@revoked" && fields[0] !== "@cert-authority") return;
      marker = fields.shift() as KnownHostsEntry["marker"];
    }
    if (fields.length < 3) return;
    const [hosts, keyType, key] = fields;
    const entry: KnownHostsEntry = { marker, keyType, key, line: i + 1 };
    const hashed = /^\|1\|([^|]+)\|([^|]+)$/.exec(hosts);
    if (hashed) entry.hashed = { salt: Buffer.from(hashed[1], "base64"), hash: Buffer.from(hashed[2], "base64") };
    else entry.patterns = hosts.split(",");
    out.push(entry);
  });
  return out;
}

/** The name ssh looks up: `host` on port 22, `[host]:port` otherwise. */
export function knownHostsName(host: string, port = 22): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function globMatch(pattern: string, name: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`, "i");
  return re.test(name);
}

function matches(e: KnownHostsEntry, name: string): boolean {
  if (e.hashed) {
    const h = createHmac("sha1", e.hashed.salt).update(name).digest();
    return h.equals(e.hashed.hash);
  }
  let hit = false;
  for (const p of e.patterns ?? []) {
    if (p.startsWith("!")) {
      if (globMatch(p.slice(1), name)) return false;
    } else if (globMatch(p, name)) {
      hit = true;
    }
  }
  return hit;
}

/** Key types in the order we pin them: the provider offers only the pinned key's type. */
const PREFERENCE = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa"];

/**
 * Why `value` is not a host key the provider and the read can pin (`type base64 [comment]`, the
 * type one of those above and the blob of that type), or undefined when it is one.
 */
export function hostKeyProblem(value: string): string | undefined {
  const [type, b64] = value.trim().split(/\s+/);
  if (!PREFERENCE.includes(type ?? "") || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64 ?? "")) {
    return `is not an OpenSSH public key "TYPE BASE64" with TYPE one of ${PREFERENCE.join(", ")} (ssh-keyscan -t ed25519 HOST | cut -d' ' -f2-)`;
  }
  const blob = Buffer.from(b64, "base64");
  const n = blob.length >= 4 ? blob.readUInt32BE(0) : -1;
  if (n < 0 || blob.subarray(4, 4 + n).toString("latin1") !== type) return `is not an OpenSSH public key: its blob is not a ${type} key`;
  return undefined;
}

/** The host key algorithms to offer when `hostKey` is pinned: only its own type (as the provider). */
export function hostKeyAlgorithms(hostKey: string): string[] {
  const type = hostKey.trim().split(/\s+/)[0];
  return type === "ssh-rsa" ? ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] : [type];
}

export interface HostKeyLookup {
  /** `type base64`, ready for connection.hostKey; undefined when nothing usable was found. */
  hostKey?: string;
  /** Keys the file revokes for this host (never pinned). */
  revoked: number;
}

export function lookupHostKey(entries: KnownHostsEntry[], host: string, port = 22): HostKeyLookup {
  const name = knownHostsName(host, port);
  const found = entries.filter((e) => matches(e, name));
  const revoked = new Set(found.filter((e) => e.marker === "@revoked").map((e) => `${e.keyType} ${e.key}`));
  const usable = found
    .filter((e) => e.marker === undefined && PREFERENCE.includes(e.keyType) && !revoked.has(`${e.keyType} ${e.key}`))
    .sort((a, b) => PREFERENCE.indexOf(a.keyType) - PREFERENCE.indexOf(b.keyType) || a.line - b.line)
    .map((e) => `${e.keyType} ${e.key}`);
  return { hostKey: usable[0], revoked: revoked.size };
}

/** The operator's known_hosts: `file` when given (`~` expanded), else ~/.ssh/known_hosts. */
export function knownHostsPath(file?: string): string {
  if (file === undefined || file === "") return path.join(os.homedir(), ".ssh", "known_hosts");
  return file.startsWith("~/") ? path.join(os.homedir(), file.slice(2)) : file;
}

const cache = new Map<string, KnownHostsEntry[]>();

/** Reads (once per program run) and parses a known_hosts file; a missing file has no entries. */
export function readKnownHosts(file: string): KnownHostsEntry[] {
  let entries = cache.get(file);
  if (!entries) {
    entries = fs.existsSync(file) ? parseKnownHosts(fs.readFileSync(file, "utf8")) : [];
    cache.set(file, entries);
  }
  return entries;
}
