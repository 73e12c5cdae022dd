/**
 * known_hosts as OpenSSH writes and reads it: files made by ssh-keygen (keys, `-H` hashing, `-R`
 * removal), looked up by our parser and by `ssh-keygen -F` (OpenSSH's own matcher) side by side.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { lookupHostKey, parseKnownHosts } from "../../provider/src/component/known-hosts";

let dir: string;
const keys: Record<string, string> = {};

function keygen(type: string): string {
  const f = path.join(dir, `key-${type}-${Object.keys(keys).length}`);
  const r = spawnSync("ssh-keygen", ["-q", "-t", type, "-N", "", "-f", f], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(r.stderr);
  return fs.readFileSync(`${f}.pub`, "utf8").trim().split(/\s+/).slice(0, 2).join(" ");
}

/** The key lines OpenSSH's own lookup finds for a name (`ssh-keygen -F`), as "type base64". */
function opensshFinds(file: string, name: string): string[] {
  const r = spawnSync("ssh-keygen", ["-F", name, "-f", file], { encoding: "utf8" });
  return r.stdout
    .split("\n")
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((l) => l.split(/\s+/).filter((f) => !f.startsWith("@")).slice(1, 3).join(" "));
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "known-hosts-"));
  for (const t of ["ed25519", "ecdsa", "rsa"]) keys[t] = keygen(t);
  keys.other = keygen("ed25519");
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function write(name: string, lines: string[]): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, lines.join("\n") + "\n");
  return f;
}

describe("known_hosts lookups agree with OpenSSH", () => {
  it("plain names, [host]:port, comma lists and wildcards; ed25519 is preferred over ecdsa and rsa", () => {
    const f = write("plain", [
      `node-1.test,10.0.0.11 ${keys.rsa}`,
      `10.0.0.11 ${keys.ecdsa}`,
      `10.0.0.11 ${keys.ed25519}`,
      `[10.0.0.11]:2222 ${keys.other}`,
      `*.fleet.test,!bad.fleet.test ${keys.ecdsa}`,
    ]);
    const entries = parseKnownHosts(fs.readFileSync(f, "utf8"));
    expect(lookupHostKey(entries, "10.0.0.11").hostKey).toBe(keys.ed25519);
    expect(opensshFinds(f, "10.0.0.11")).toContain(keys.ed25519);
    expect(lookupHostKey(entries, "node-1.test").hostKey).toBe(keys.rsa);
    expect(lookupHostKey(entries, "10.0.0.11", 2222).hostKey).toBe(keys.other);
    expect(opensshFinds(f, "[10.0.0.11]:2222")).toEqual([keys.other]);
    expect(lookupHostKey(entries, "a.fleet.test").hostKey).toBe(keys.ecdsa);
    expect(opensshFinds(f, "a.fleet.test")).toEqual([keys.ecdsa]);
    expect(lookupHostKey(entries, "bad.fleet.test").hostKey).toBeUndefined();
    expect(opensshFinds(f, "bad.fleet.test")).toEqual([]);
    expect(lookupHostKey(entries, "10.0.0.12").hostKey).toBeUndefined();
  });

  it("hashed names written by `ssh-keygen -H` (HashKnownHosts)", () => {
    const f = write("hashed", [`10.0.0.11 ${keys.ed25519}`, `[10.0.0.11]:2222 ${keys.other}`]);
    const r = spawnSync("ssh-keygen", ["-H", "-f", f], { encoding: "utf8" });
    expect(r.status).toBe(0);
    const text = fs.readFileSync(f, "utf8");
    expect(text).not.toContain("10.0.0.11");
    expect(text).toMatch(/^\|1\|/);
    const entries = parseKnownHosts(text);
    expect(lookupHostKey(entries, "10.0.0.11").hostKey).toBe(keys.ed25519);
    expect(lookupHostKey(entries, "10.0.0.11", 2222).hostKey).toBe(keys.other);
    expect(opensshFinds(f, "10.0.0.11")).toEqual([keys.ed25519]);
    expect(lookupHostKey(entries, "10.0.0.12").hostKey).toBeUndefined();
  });

  it("@revoked keys are never pinned; @cert-authority lines are skipped", () => {
    const f = write("revoked", [`10.0.0.11 ${keys.ed25519}`, `10.0.0.11 ${keys.ecdsa}`, `@revoked * ${keys.ed25519}`, `@cert-authority *.test ${keys.other}`]);
    const found = lookupHostKey(parseKnownHosts(fs.readFileSync(f, "utf8")), "10.0.0.11");
    expect(found.hostKey).toBe(keys.ecdsa);
    expect(found.revoked).toBe(1);
    expect(lookupHostKey(parseKnownHosts(fs.readFileSync(f, "utf8")), "x.test").hostKey).toBeUndefined();
  });

  it("a host removed with `ssh-keygen -R` is no longer found", () => {
    const f = write("removed", [`10.0.0.11 ${keys.ed25519}`, `10.0.0.12 ${keys.ecdsa}`]);
    expect(spawnSync("ssh-keygen", ["-R", "10.0.0.11", "-f", f]).status).toBe(0);
    const entries = parseKnownHosts(fs.readFileSync(f, "utf8"));
    expect(lookupHostKey(entries, "10.0.0.11").hostKey).toBeUndefined();
    expect(lookupHostKey(entries, "10.0.0.12").hostKey).toBe(keys.ecdsa);
  });
});
