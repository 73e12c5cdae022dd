/**
 * The read's mirror probe, run for real by dash on this machine against registry-shaped servers (an
 * HTTPS one with a CA of its own, a plain HTTP one that answers slowly), with each tool a node may
 * have: curl; GNU wget where there is no curl; busybox's wget where wget is busybox. curl is hidden
 * and wget replaced by busybox in a private mount namespace (unshare -m, as root), so the script
 * finds exactly what such a node has.
 */
import { spawn } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as https from "https";
import * as os from "os";
import * as path from "path";
import type { AddressInfo } from "net";
import { parseRead } from "../../provider/src/remote/read";
import { READ_SCRIPT } from "../../provider/src/remote/read-script";
import { privateCa } from "../support/private-ca";

jest.setTimeout(60_000);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "read-probe-"));
const registry = (_q: http.IncomingMessage, r: http.ServerResponse) =>
  // Slow on purpose: the probe's own timing must show it.
  setTimeout(() => r.writeHead(200, { "docker-distribution-api-version": "registry/2.0" }).end("{}"), 300);
let secure: https.Server;
let plain: http.Server;
let httpsUrl = "";
let httpUrl = "";
const file = (name: string, text: string) => {
  fs.writeFileSync(path.join(dir, name), text);
  return path.join(dir, name);
};
let ownCa = "";
let otherCa = "";

beforeAll(async () => {
  const pki = privateCa(dir, "127.0.0.1");
  ownCa = file("own-ca.pem", pki.caPem);
  fs.mkdirSync(path.join(dir, "other"));
  otherCa = file("other-ca.pem", privateCa(path.join(dir, "other"), "127.0.0.1").caPem);
  secure = https.createServer({ cert: pki.certPem, key: pki.keyPem }, registry);
  plain = http.createServer(registry);
  const listen = (s: http.Server) => new Promise<number>((resolve) => s.listen(0, "127.0.0.1", () => resolve((s.address() as AddressInfo).port)));
  httpsUrl = `https://127.0.0.1:${await listen(secure)}/v2/`;
  httpUrl = `http://127.0.0.1:${await listen(plain)}/v2/`;
});
afterAll(async () => {
  await Promise.all([secure, plain].map((s) => new Promise((resolve) => s?.close(resolve))));
  fs.rmSync(dir, { recursive: true, force: true });
});

type Tool = "curl" | "gnu-wget" | "busybox-wget";
interface Probe {
  url: string;
  ca?: string;
  insecure?: boolean;
  /** The hosts.toml and its TOML section holding the Authorization header for this host. */
  auth?: [string, string];
}

/**
 * One read with the given probes (P groups), as the node with `tool` runs it; `roots` stands in for
 * the system's CA bundle (/etc/ssl/certs/ca-certificates.crt) when given.
 */
async function probe(tool: Tool, probes: Probe[], roots?: string) {
  const noexec = file("noexec", "");
  const mounts: string[] = [];
  if (tool !== "curl") mounts.push(`mount --bind ${noexec} "$(command -v curl)"`);
  if (tool === "busybox-wget") mounts.push(`mount --bind "$(command -v busybox)" "$(command -v wget)"`);
  if (roots) mounts.push(`mount --bind ${roots} /etc/ssl/certs/ca-certificates.crt`);
  const args = ["/bin/false", "-", "-", path.join(dir, "no-config.toml"), "5", "1"];
  probes.forEach((p, i) => args.push("P", `p${i}`, p.url, p.ca ?? "-", p.insecure ? "1" : "0", "-", "-", ...(p.auth ?? ["-", "-"])));
  // Not spawnSync: the servers answer from this process's event loop.
  const child = spawn("unshare", ["-m", "--propagation", "private", "sh", "-c", `${mounts.join(" && ") || ":"} && exec dash -s "$@"`, "sh", ...args]);
  const out: Buffer[] = [];
  let err = "";
  child.stdout.on("data", (d: Buffer) => out.push(d));
  child.stderr.on("data", (d: Buffer) => (err += d));
  child.stdin.end(READ_SCRIPT);
  await new Promise((resolve) => child.on("close", resolve));
  expect(err).toBe("");
  const read = parseRead(Buffer.concat(out));
  return probes.map((_p, i) => read.probes.get(`p${i}`));
}

describe.each<Tool>(["curl", "gnu-wget", "busybox-wget"])("a probe with %s", (tool) => {
  it("times itself (0.3 s on a slow registry) and calls a live registry ok", async () => {
    const [p] = await probe(tool, [{ url: httpUrl }]);
    expect(p).toMatchObject({ class: "ok", tool: tool === "curl" ? "curl" : "wget" });
    expect(p!.seconds).toBeGreaterThanOrEqual(0.29);
    expect(p!.seconds).toBeLessThan(5);
  });

  it("honours skip_verify on a certificate of an unknown CA", async () => {
    const [p] = await probe(tool, [{ url: httpsUrl, insecure: true }]);
    expect(p?.class).toBe("ok");
  });
});

describe.each<Tool>(["curl", "gnu-wget"])("a probe with %s and the host's ca", (tool) => {
  it("trusts the host's ca, and not another CA's certificate", async () => {
    const [own, other, none] = await probe(tool, [{ url: httpsUrl, ca: ownCa }, { url: httpsUrl, ca: otherCa }, { url: httpsUrl }]);
    expect(own?.class).toBe("ok");
    expect(other?.class).toBe("tls-error");
    expect(none?.class).toBe("tls-error");
  });

  it("adds the host's ca to the system's roots, as containerd does, instead of replacing them", async () => {
    // The server's CA is a system root here; the hosts.toml's ca is another one.
    const [p] = await probe(tool, [{ url: httpsUrl, ca: otherCa }], ownCa);
    expect(p?.class).toBe("ok");
  });
});

describe("a probe with busybox's wget", () => {
  it("makes no verdict where the host needs a CA or client certificate it cannot use", async () => {
    const [p] = await probe("busybox-wget", [{ url: httpsUrl, ca: ownCa }]);
    expect(p).toMatchObject({ class: "unprobed", tool: "wget" });
  });
});

describe("credentials checked against a token realm", () => {
  it("go to the realm a 401 names only over https (or http for a plain-http registry), never downgraded", async () => {
    // A token server on plain http that counts what reaches it, and an https registry whose 401
    // names it as its realm.
    const asked: string[] = [];
    const token = http.createServer((q, r) => {
      asked.push(String(q.headers.authorization ?? ""));
      r.writeHead(200).end("{}");
    });
    const tokenPort = await new Promise<number>((resolve) => token.listen(0, "127.0.0.1", () => resolve((token.address() as AddressInfo).port)));
    const pki = privateCa(fs.mkdtempSync(path.join(dir, "realm-")), "127.0.0.1");
    const realm = `http://127.0.0.1:${tokenPort}/token`;
    const challenge = (_q: http.IncomingMessage, r: http.ServerResponse) =>
      r.writeHead(401, { "docker-distribution-api-version": "registry/2.0", "www-authenticate": `Bearer realm="${realm}",service="test"` }).end("{}");
    const reg = https.createServer({ cert: pki.certPem, key: pki.keyPem }, challenge);
    const plainReg = http.createServer(challenge);
    const listen = (s: http.Server) => new Promise<number>((resolve) => s.listen(0, "127.0.0.1", () => resolve((s.address() as AddressInfo).port)));
    const regUrl = `https://127.0.0.1:${await listen(reg)}`;
    const plainUrl = `http://127.0.0.1:${await listen(plainReg)}`;
    const hostsToml = (url: string) => file(`hosts-${url.replace(/\W/g, "")}.toml`, `[host."${url}"]\n  [host."${url}".header]\n    Authorization = "Basic dTpw"\n`);
    try {
      const [secure] = await probe("curl", [{ url: `${regUrl}/v2/`, insecure: true, auth: [hostsToml(regUrl), `host."${regUrl}".header`] }]);
      expect(secure).toMatchObject({ class: "auth-required", credentials: "-" });
      expect(asked).toEqual([]);
      // A plain-http registry's own http realm is asked, with the credentials.
      const [plain] = await probe("curl", [{ url: `${plainUrl}/v2/`, auth: [hostsToml(plainUrl), `host."${plainUrl}".header`] }]);
      expect(plain).toMatchObject({ class: "auth-required", credentials: "pass" });
      expect(asked).toEqual(["Basic dTpw"]);
    } finally {
      await Promise.all([token, reg, plainReg].map((s) => new Promise((resolve) => s.close(resolve))));
    }
  });
});
