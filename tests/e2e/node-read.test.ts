/**
 * The program's own read of the nodes (readNode), on the local fleet through the real Pulumi engine
 * (tests/support/engine.ts: the CLI and the command provider): drift shown in `pulumi preview --diff`
 * and repaired, unmanaged registry directories reported and set aside, imports kept or the `up`
 * refused, a running containerd the files are not for, a node that cannot be read, and every mirror
 * classified from the node itself against mirrors that are dead in distinct, real ways. What the read
 * finds is asserted as the engine reports it to a user: its diagnostics, the steps, and the CLI's text.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as http from "http";
import * as https from "https";
import * as net from "net";
import type { AddressInfo } from "net";
import { ContainerdNode, ContainerdNodeArgs } from "../../provider/src";
import { applyCommand } from "../../provider/src/remote/commands";
import { END_MARKER_LINE } from "../../provider/src/remote/node-script";
import type { MirrorHealth } from "../../provider/src/component/node-findings";
import { EngineStack, RunResult } from "../support/engine";
import { TEST_CLIENT_CERT_PEM, TEST_CLIENT_KEY_PEM } from "../fixtures/pem";
import { privateCa } from "../support/private-ca";
import * as F from "./fleet";
import type { FleetNode } from "./fleet";
import { CONFIG, HUB, MIRROR, changed, engineStack, fleet, nodeSpec } from "./fixture";

jest.setTimeout(300_000);

const [N16, N17, N21, N23] = F.nodesByGeneration(fleet, ["1.6", "1.7", "2.1", "2.3"]);
const BRIDGE = fleet.registry.host;
const STAR = "/etc/containerd/certs.d/_default/hosts.toml";

const versionOf = (n: FleetNode) => (n.generation.startsWith("1.") ? "1.6" : n.generation);
/** The node's spec, with the program's read of the node on. */
const spec = (on: FleetNode, extra: Partial<ContainerdNodeArgs> = {}) => nodeSpec(on, { containerdVersion: versionOf(on), readNode: true, ...extra });

const newStack = () => engineStack("node-read");
/** A stack of a describe's own: its nodes reset before it, the stack destroyed and removed after. */
function stackFor(nodes: FleetNode[]): () => EngineStack {
  let h: EngineStack | undefined;
  beforeAll(async () => {
    await F.resetNodes(nodes);
    h = newStack();
  });
  afterAll(async () => {
    await h?.destroy();
    h?.dispose();
  });
  return () => h!;
}
/** The engine's diagnostics as the program logged them (RunResult.warnings puts the resource's name in front). */
const warnings = (r: RunResult) => r.diagnostics.filter((d) => d.severity === "warning").map((d) => d.message);
const errors = (r: RunResult) => r.diagnostics.filter((d) => d.severity === "error").map((d) => d.message);

/**
 * The stack outputs as `pulumi preview --diff` shows them (its `--outputs:--` section), here lists of
 * flat objects: `name: [`, `[i]: {`, `key : <JSON value>`; an output that changed since the last
 * up is shown as a diff (`~ key : <old> => <new>`): the new value is taken.
 */
function displayedOutputs(stdout: string): Record<string, Record<string, unknown>[]> {
  const lines = stdout.split("\n");
  const at = lines.findIndex((l) => l.trim() === "--outputs:--");
  const out: Record<string, Record<string, unknown>[]> = {};
  if (at === -1) return out;
  let list: Record<string, unknown>[] = [];
  let item: Record<string, unknown> | undefined;
  for (const l of lines.slice(at + 1)) {
    const t = l.trim().replace(/^[~+] /, "");
    if (t === "" || t.startsWith("Resources:")) break;
    let m: RegExpExecArray | null;
    if ((m = /^([^\s[][^:]*): \[$/.exec(t))) {
      out[m[1]] = list = [];
      item = undefined;
    } else if (/^\[\d+\]: \{$/.test(t)) list.push((item = {}));
    else if ((m = /^(\w+)\s*: (.*)$/.exec(t)) && item) item[m[1]] = JSON.parse(m[2].split(" => ").pop()!);
  }
  return out;
}

describe("drift: a hand-edited config.toml, a deleted hosts.toml, a hosts.toml with another mode", () => {
  const nodes = [N16, N17, N21];
  const stack = stackFor(nodes);
  const program = async () => {
    for (const n of nodes) new ContainerdNode(n.name, spec(n));
  };

  it("shows exactly those three files in the preview, repairs them (one restart, on the first node) and previews clean after", async () => {
    const first = await stack().up(program);
    expect(first.error?.message).toBeUndefined();
    const clean = await stack().preview(program);
    expect(clean.error?.message).toBeUndefined();
    expect(changed(clean)).toEqual([]);
    expect(warnings(clean).filter((w) => w.includes("since the last apply"))).toEqual([]);

    await F.nodeSh(N16, `printf '# tuned by hand\\n' >> ${CONFIG}`);
    await F.nodeSh(N17, `rm ${HUB}`);
    await F.nodeSh(N21, `chmod 0600 ${HUB}`);
    const restarts = nodes.map((n) => F.restarts(n));

    const preview = await stack().preview(program);
    expect(preview.error?.message).toBeUndefined();
    const drifted = [`${N16.name}:${CONFIG}`, `${N17.name}:${HUB}`, `${N21.name}:${HUB}`];
    expect(changed(preview)).toEqual(drifted.map((r) => `${r} update`).sort());
    // The engine diffs one input of each: the command line, which now carries the drift token; the
    // file's content (stdin) is what the last apply sent.
    for (const step of preview.steps.filter((s) => s.op === "update")) {
      expect(step.diffKeys).toEqual(["create"]);
      expect(String(step.oldInputs?.create)).not.toContain("CONTAINERD_NODE_REPAIR");
      expect(String(step.newInputs?.create)).toMatch(/^\/bin\/sh -c 'CONTAINERD_NODE_REPAIR=\$1; export CONTAINERD_NODE_REPAIR; shift; .*' '[0-9a-f]{16}' 'apply' /);
    }
    // `pulumi preview --diff` as a user reads it: on stdout each drifted file's resource as an update
    // of its command line, and nothing else; on stderr the read's warnings, the hand edit as a line diff.
    const updates = [...preview.stdout.matchAll(/~ command:remote:Command: \(update\)\n(?:.*\n)*?\s*\[urn=[^\]]*::([^\]]+)\]/g)].map((m) => m[1]);
    expect(updates.sort()).toEqual([...drifted].sort());
    expect(preview.stdout.match(/^\s*~ create: "/gm)).toHaveLength(3);
    expect(preview.stdout).toMatch(/~ 3 to update\n\s*10 unchanged/);
    const drift = preview.diagnostics.filter((d) => d.severity === "warning" && d.message.includes("since the last apply"));
    expect(drift).toHaveLength(3);
    // Each said on its own file's resource.
    expect(drift.map((d) => d.urn?.slice(d.urn.lastIndexOf("::") + 2)).sort()).toEqual([...drifted].sort());
    const n16 = drift.find((d) => d.message.startsWith(`${N16.name}: ${CONFIG} has other content since the last apply; up writes it back (- on the node now, + to be written):\n`))!;
    expect(n16.message).toMatch(/\n- # tuned by hand$/);
    expect(drift.map((d) => d.message)).toContainEqual(`${N17.name}: ${HUB} is missing since the last apply; up writes it back`);
    expect(drift.map((d) => d.message)).toContainEqual(`${N21.name}: ${HUB} has mode 0600, installed 0644 since the last apply; up writes it back`);
    for (const d of drift) expect(preview.stderr).toContain(`warning: ${d.message}\n`);
    // A preview changes nothing on the nodes.
    expect(await F.nodePathExists(N17, HUB)).toBe(false);
    expect(await F.nodeFile(N16, CONFIG)).toContain("# tuned by hand");

    const up = await stack().up(program);
    expect(up.error?.message).toBeUndefined();
    expect(changed(up)).toEqual(changed(preview));
    expect(nodes.map((n) => F.restarts(n) - restarts[nodes.indexOf(n)])).toEqual([1, 0, 0]);
    expect(await F.nodeFile(N16, CONFIG)).not.toContain("tuned by hand");
    expect(await F.nodeFile(N17, HUB)).toContain(MIRROR);
    expect((await F.nodeSh(N21, `stat -c %a ${HUB}`)).trim()).toBe("644");

    const after = await stack().preview(program);
    expect(after.error?.message).toBeUndefined();
    expect(changed(after)).toEqual([]);
    expect(warnings(after).filter((w) => w.includes("since the last apply"))).toEqual([]);
    expect(after.stdout).not.toContain("(update)");
    expect(after.stderr).not.toContain("since the last apply");
  });
});

/** Mirrors dead in distinct ways, on the fleet's bridge, as the nodes reach them. */
class DeadMirrors {
  readonly servers: (net.Server | http.Server)[] = [];
  readonly sockets = new Set<net.Socket>();
  urls = { refused: "", timeout: "", tls: "", web: "", forbidden: "", dns: "http://no-such-mirror.invalid" };

  async start(): Promise<void> {
    const listen = (s: net.Server) =>
      new Promise<number>((resolve) => {
        s.on("connection", (c: net.Socket) => {
          this.sockets.add(c);
          c.on("close", () => this.sockets.delete(c));
        });
        s.listen(0, BRIDGE, () => resolve((s.address() as AddressInfo).port));
        this.servers.push(s);
      });
    // A port that accepts and never answers.
    const hang = net.createServer(() => undefined);
    this.urls.timeout = `http://${BRIDGE}:${await listen(hang)}`;
    // TLS with a certificate of a CA the nodes do not know.
    const tls = https.createServer({ cert: TEST_CLIENT_CERT_PEM, key: TEST_CLIENT_KEY_PEM }, (_q, r) => r.end("{}"));
    this.urls.tls = `https://${BRIDGE}:${await listen(tls)}`;
    // A plain web server: 200 and HTML everywhere, no registry API.
    const web = http.createServer((_q, r) => r.writeHead(200, { "content-type": "text/html" }).end("<html>welcome</html>"));
    this.urls.web = `http://${BRIDGE}:${await listen(web)}`;
    // A registry API that answers 403 (an allow-list mirror).
    const forbidden = http.createServer((_q, r) => r.writeHead(403, { "docker-distribution-api-version": "registry/2.0" }).end('{"errors":[{"code":"DENIED"}]}'));
    this.urls.forbidden = `http://${BRIDGE}:${await listen(forbidden)}`;
    // A closed port: listen, take the port, close it.
    const closed = net.createServer();
    const port = await new Promise<number>((resolve) => closed.listen(0, BRIDGE, () => resolve((closed.address() as AddressInfo).port)));
    await new Promise((resolve) => closed.close(resolve));
    this.urls.refused = `http://${BRIDGE}:${port}`;
  }

  async stop(): Promise<void> {
    for (const c of this.sockets) c.destroy();
    await Promise.all(this.servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }
}


describe("a registry with its own CA", () => {
  const nodes = [N16, N23];
  let h: EngineStack;
  let server: https.Server;
  let url = "";
  let dir = "";
  let ca = "";
  beforeAll(async () => {
    await F.resetNodes(nodes);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "own-ca-"));
    const pki = privateCa(dir, BRIDGE);
    ca = pki.caPem;
    // A registry API: /v2/ answers 200 with its version header.
    server = https.createServer({ cert: pki.certPem, key: pki.keyPem }, (_q, r) => r.writeHead(200, { "docker-distribution-api-version": "registry/2.0" }).end("{}"));
    await new Promise<void>((resolve) => server.listen(0, BRIDGE, () => resolve()));
    url = `https://${BRIDGE}:${(server.address() as AddressInfo).port}`;
    h = newStack();
  });
  afterAll(async () => {
    h?.dispose();
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("rolls out the first time (the probe runs before its CA is on the node), and the next preview finds the host ok", async () => {
    const ns = `${BRIDGE}:${new URL(url).port}`;
    const program = async () => {
      const out: Record<string, unknown> = {};
      for (const n of nodes) out[n.name] = new ContainerdNode(n.name, spec(n, { registries: { [ns]: { server: { url, ca } } } })).mirrorHealth;
      return out;
    };
    const first = await h.up(program);
    expect(first.error?.message).toBeUndefined();
    for (const n of nodes) {
      expect(warnings(first)).toContainEqual(expect.stringMatching(new RegExp(`^${n.name}: ${url.replace(/[.]/g, "\\.")}: tls-error with the node's current files, not judged: its CA or client certificate changes in this up`)));
      expect(await F.nodeFile(n, `/etc/containerd/certs.d/${ns}/hosts.toml`)).toContain(`ca = "/etc/containerd/certs.d/${ns}/`);
    }
    const after = await h.preview(program);
    expect(after.error?.message).toBeUndefined();
    expect(warnings(after).filter((w) => w.includes(url))).toEqual([]);
    const outputs = displayedOutputs(after.stdout);
    for (const n of nodes) expect(outputs[n.name]?.map((m) => m.class)).toEqual(["ok"]);
  });
});

describe("mirrors classified from each node", () => {
  const nodes = [N16, N21, N23];
  const dead = new DeadMirrors();
  const AUTH = fleet.registry.authMirror;
  let h: EngineStack;
  beforeAll(async () => {
    await F.resetNodes(nodes);
    await dead.start();
    h = newStack();
  });
  afterAll(async () => {
    await h?.destroy();
    h?.dispose();
    await dead.stop();
  });

  const program = (extra: Partial<ContainerdNodeArgs> = {}) => async () => {
    const out: Record<string, unknown> = {};
    for (const n of nodes) {
      const node = new ContainerdNode(
        n.name,
        spec(n, {
          registries: {
            "docker.io": { mirrors: [dead.urls.refused, dead.urls.timeout, dead.urls.tls, dead.urls.web, dead.urls.forbidden, dead.urls.dns, { url: AUTH.url, auth: { username: AUTH.username, password: AUTH.password } }, MIRROR] },
          },
          mirrorProbe: { timeoutSeconds: 3 },
          ...extra,
        }),
      );
      out[n.name] = node.mirrorHealth;
    }
    return out;
  };

  it("says which class each dead mirror is on every node, in the preview and as outputs, within the probe timeout", async () => {
    const preview = await h.preview(program());
    expect(preview.error?.message).toBeUndefined();
    const want: Record<string, string> = {
      [dead.urls.refused]: "refused",
      [dead.urls.timeout]: "timeout",
      [dead.urls.tls]: "tls-error",
      [dead.urls.web]: "not-a-registry",
      [dead.urls.forbidden]: "forbidden",
      [dead.urls.dns]: "dns-error",
      [AUTH.url]: "auth-required",
      [MIRROR]: "ok",
    };
    // The outputs as the preview displays them (the Automation API's preview result has none).
    const outputs = displayedOutputs(preview.stdout);
    expect(Object.keys(outputs).sort()).toEqual(nodes.map((n) => n.name).sort());
    for (const n of nodes) {
      const health = outputs[n.name] as unknown as MirrorHealth[];
      const classes = Object.fromEntries(health.filter((m) => m.role === "mirror").map((m) => [m.host, m.class]));
      expect(classes).toEqual(want);
      for (const m of health) {
        expect(m.tool).toBe("curl");
        expect(m.seconds).toBeLessThan(3.5);
      }
      // The server (the Docker Hub upstream) is probed too; this machine has no way out.
      expect(health.find((m) => m.role === "server")?.host).toBe("https://registry-1.docker.io");
      // Each dead host a warning of its node, with its class and time, on the CLI's stderr.
      for (const [url, cls] of Object.entries(want)) {
        const said = warnings(preview).filter((w) => w.startsWith(`${n.name}: ${url}: `));
        if (cls === "ok" || cls === "auth-required") {
          expect(said).toEqual([]);
          continue;
        }
        expect(said).toEqual([expect.stringMatching(new RegExp(`^${n.name}: ${url.replace(/[.:/]/g, "\\$&")}: ${cls} in \\d+\\.\\d s; pulls from docker.io will fall through to the next host$`))]);
        expect(preview.stderr).toContain(`warning: ${said[0]}\n`);
      }
    }
  });

  it("checks the credentials containerd has for a mirror that asks for them", async () => {
    const up = await h.up(program());
    expect(up.error?.message).toBeUndefined();
    // The up's read ran before its hosts.toml, and the credentials in it, were on the nodes.
    for (const n of nodes) expect((up.outputs[n.name] as MirrorHealth[]).find((m) => m.host === AUTH.url)?.credentials).toBe("none");
    const preview = await h.preview(program());
    const outputs = displayedOutputs(preview.stdout);
    for (const n of nodes) {
      const auth = (outputs[n.name] as unknown as MirrorHealth[]).find((m) => m.host === AUTH.url)!;
      expect([auth.class, auth.credentials]).toEqual(["auth-required", "pass"]);
    }
    // As the preview shows it against the outputs the up recorded.
    expect(preview.stdout.match(/~ credentials: "none" => "pass"\n/g)).toHaveLength(nodes.length);
  });

  it("refuses a registry none of whose hosts answers, unless allowed", async () => {
    const deadOnly = { registries: { "docker.io": { mirrors: [dead.urls.refused, dead.urls.web], skipFallback: true } } };
    const refused = await h.preview(program(deadOnly));
    expect(refused.error).toBeDefined();
    for (const n of nodes) expect(errors(refused)).toContainEqual(expect.stringContaining(`${n.name}: no host of docker.io answers as a registry from this node`));
    const allowed = await h.preview(program({ ...deadOnly, mirrorProbe: { timeoutSeconds: 3, allowDeadRegistries: true } }));
    expect(allowed.error?.message).toBeUndefined();
    const failPolicy = await h.preview(program({ mirrorProbe: { timeoutSeconds: 3, policy: "fail" } }));
    expect(failPolicy.error).toBeDefined();
    expect(errors(failPolicy)).toContainEqual(expect.stringContaining(`${N16.name}: ${dead.urls.web}: not-a-registry`));
  });
});

describe("registry directories the spec does not manage", () => {
  let h: EngineStack;
  let web: http.Server;
  let webUrl: string;
  const HAND = "/etc/containerd/certs.d/docker.io";
  const program = (extra: Partial<ContainerdNodeArgs> = {}) => async () => void new ContainerdNode(N16.name, spec(N16, { containerdVersion: "1.6.20", registries: { "*": { mirrors: [MIRROR] } }, ...extra }));
  beforeAll(async () => {
    await F.resetNodes([N16]);
    web = http.createServer((_q, r) => r.writeHead(200, { "content-type": "text/html" }).end("<html>hub</html>"));
    await new Promise<void>((resolve) => web.listen(0, BRIDGE, () => resolve()));
    webUrl = `http://${BRIDGE}:${(web.address() as AddressInfo).port}`;
    // The operator's notes: a hand-written docker.io directory whose server is a web site.
    await F.nodeSh(N16, `mkdir -p ${HAND} && printf 'server = "%s"\\n\\n[host."%s"]\\n  capabilities = ["pull", "resolve"]\\n' '${webUrl}' '${webUrl}' > ${HAND}/hosts.toml`);
    h = newStack();
  });
  afterAll(async () => {
    await h?.destroy();
    h?.dispose();
    await new Promise((resolve) => web.close(resolve));
  });

  it("reports it with what it does, sets it aside under remove, and puts it back on destroy", async () => {
    const warned = await h.preview(program());
    expect(warned.error?.message).toBeUndefined();
    expect(warnings(warned)).toContainEqual(
      `${N16.name}: certs.d/docker.io is not managed and takes precedence over \`*\` for docker.io; its hosts.toml sends pulls to ${webUrl}, which is not a registry; set unmanagedRegistries: "remove" to set it aside`,
    );
    const original = await F.nodeFile(N16, `${HAND}/hosts.toml`);

    const removed = await h.up(program({ unmanagedRegistries: "remove" }));
    expect(removed.error?.message).toBeUndefined();
    expect(await F.nodePathExists(N16, HAND)).toBe(false);
    expect(await F.nodeFile(N16, `/etc/containerd/certs.d/.containerd-node/set-aside/docker.io/hosts.toml`)).toBe(original);
    expect(await F.nodeFile(N16, STAR)).toContain(MIRROR);

    const again = await h.preview(program({ unmanagedRegistries: "remove" }));
    expect(changed(again)).toEqual([]);

    const destroyed = await h.destroy();
    expect(destroyed.error?.message).toBeUndefined();
    expect(await F.nodeFile(N16, `${HAND}/hosts.toml`)).toBe(original);
    expect(await F.nodePathExists(N16, "/etc/containerd/certs.d/.containerd-node")).toBe(false);
  });
});

describe("unmanagedRegistries \"remove\" next to the node's own registries", () => {
  let h: EngineStack;
  const HAND = "/etc/containerd/certs.d/docker.io";
  const QUAY = "/etc/containerd/certs.d/quay.io";
  const ASIDE = "/etc/containerd/certs.d/.containerd-node/set-aside";
  const registries = (quay: boolean): ContainerdNodeArgs["registries"] => ({ "*": { mirrors: [MIRROR] }, ...(quay ? { "quay.io": { mirrors: [MIRROR] } } : {}) });
  const program = (quay: boolean) => async () => void new ContainerdNode(N23.name, spec(N23, { registries: registries(quay), unmanagedRegistries: "remove" }));
  const handWritten = (server: string) => F.nodeSh(N23, `mkdir -p ${HAND} && printf 'server = "%s"\\n' '${server}' > ${HAND}/hosts.toml`);
  beforeAll(async () => {
    await F.resetNodes([N23]);
    h = newStack();
  });
  afterAll(async () => {
    await h?.destroy();
    h?.dispose();
  });

  it("never sets aside a registry the spec drops (its delete restores it), keeps the first copy of a directory made again, and destroy leaves what was there", async () => {
    await handWritten("https://docker.io");
    const first = await h.up(program(true));
    expect(first.error?.message).toBeUndefined();
    expect(await F.nodePathExists(N23, HAND)).toBe(false);
    expect(await F.nodeFile(N23, `${QUAY}/hosts.toml`)).toContain(MIRROR);

    // quay.io leaves the spec: its hosts.toml's delete removes it (there was none before). It is
    // not an unmanaged directory to set aside, so nothing brings it back later.
    const dropped = await h.up(program(false));
    expect(dropped.error?.message).toBeUndefined();
    expect(changed(dropped)).toContain(`${N23.name}:${QUAY}/hosts.toml delete`);
    expect(changed(dropped)).not.toContain(`${N23.name}:unmanaged registries update`);
    expect(await F.nodePathExists(N23, QUAY)).toBe(false);
    expect(await F.nodePathExists(N23, `${ASIDE}/quay.io`)).toBe(false);

    // docker.io made again by hand: set aside again, the first copy staying what destroy puts back.
    await handWritten("https://again.example");
    const again = await h.up(program(false));
    expect(again.error?.message).toBeUndefined();
    expect(changed(again)).toEqual([`${N23.name}:unmanaged registries update`]);
    expect(await F.nodePathExists(N23, HAND)).toBe(false);
    expect(await F.nodeFile(N23, `${ASIDE}/docker.io/hosts.toml`)).toBe('server = "https://docker.io"\n');
    expect(await F.nodeFile(N23, `${ASIDE}/.later/docker.io.1/hosts.toml`)).toBe('server = "https://again.example"\n');
    expect(await F.nodePathExists(N23, `${ASIDE}/docker.io.old`)).toBe(false);
    expect(changed(await h.preview(program(false)))).toEqual([]);

    const destroyed = await h.destroy();
    expect(destroyed.error?.message).toBeUndefined();
    expect(await F.nodeFile(N23, `${HAND}/hosts.toml`)).toBe('server = "https://docker.io"\n');
    expect(await F.nodePathExists(N23, QUAY)).toBe(false);
  });
});

describe("a node read cannot reach, or must not: what was recorded stays", () => {
  let h: EngineStack;
  const HAND = "/etc/containerd/certs.d/docker.io";
  const program = (extra: Partial<ContainerdNodeArgs> = {}) => async () =>
    void new ContainerdNode(N23.name, spec(N23, { registries: { "*": { mirrors: [MIRROR] } }, unmanagedRegistries: "remove", ...extra }));
  beforeAll(async () => {
    await F.resetNodes([N23]);
    await F.nodeSh(N23, `mkdir -p ${HAND} && printf 'server = "https://docker.io"\\n' > ${HAND}/hosts.toml`);
    h = newStack();
  });
  afterAll(async () => {
    await F.fault(N23, "sshd-start");
    h?.dispose();
    await F.resetNodes([N23]);
  });

  // A node not read keeps its set-aside list, but not its files' command lines: they carry the
  // spec's checks, which must never go out stale (issue: an unread node ran new content with its old
  // arguments). Only their drift token is unknown and left out, so a file repaired before previews
  // one update (its apply finds the same bytes and does nothing), and nothing once it is read again.
  it("with its sshd stopped, previews one update only for a file repaired before (its drift token left out), none of the set-aside list, and none when it is back", async () => {
    expect((await h.up(program())).error?.message).toBeUndefined();
    await F.nodeSh(N23, `chmod 0600 ${STAR}`);
    const repaired = await h.up(program());
    expect(repaired.error?.message).toBeUndefined();
    expect(changed(repaired)).toEqual([`${N23.name}:${STAR} update`]);

    await F.fault(N23, "sshd-stop");
    const down = await h.preview(program());
    expect(down.error?.message).toBeUndefined();
    expect(warnings(down).some((w) => w.startsWith(`${N23.name}: not read (`))).toBe(true);
    expect(changed(down)).toEqual([`${N23.name}:${STAR} update`]);

    await F.fault(N23, "sshd-start");
    const back = await h.preview(program());
    expect(back.error?.message).toBeUndefined();
    expect(changed(back)).toEqual([]);
  });

  it("forgotten with its sshd stopped, and then removed from the program: no step dials it", async () => {
    await F.fault(N23, "sshd-stop");
    const forgot = await h.up(program({ forget: true }));
    expect(forgot.error?.message).toBeUndefined();
    expect(changed(forgot)).toEqual([]);
    // Removed: every resource of the node is retained (nothing runs), the set-aside one too.
    const removed = await h.up(async () => undefined);
    expect(removed.error?.message).toBeUndefined();
    expect(removed.steps.filter((s) => s.op === "delete").length).toBeGreaterThan(0);
    await F.fault(N23, "sshd-start");
    // Its directory stays set aside: nothing put it back.
    expect(await F.nodePathExists(N23, HAND)).toBe(false);
  });
});

describe("imports of the node's config.toml", () => {
  let h: EngineStack;
  const DROPIN = "/etc/containerd/conf.d/99-nvidia.toml";
  const nvidia = (version: number, plugin: string) =>
    `version = ${version}\n\n[plugins."${plugin}".containerd.runtimes.nvidia]\n  runtime_type = "io.containerd.runc.v2"\n\n[plugins."${plugin}".containerd.runtimes.nvidia.options]\n  BinaryName = "/usr/bin/nvidia-container-runtime"\n`;
  const program = (extra: Partial<ContainerdNodeArgs> = {}) => async () => void new ContainerdNode(N21.name, spec(N21, extra));
  beforeAll(async () => {
    await F.resetNodes([N21]);
    // What the NVIDIA container toolkit does: a drop-in, and an imports line in config.toml.
    await F.nodeSh(N21, `mkdir -p /etc/containerd/conf.d && cat > ${DROPIN} <<'EOF'\n${nvidia(3, "io.containerd.cri.v1.runtime")}EOF\n{ printf 'imports = ["${DROPIN}"]\\n'; cat ${CONFIG}; } > ${CONFIG}.new && mv ${CONFIG}.new ${CONFIG}`);
    h = newStack();
  });
  afterAll(async () => {
    await h?.destroy();
    h?.dispose();
  });

  it("refuses an up that would drop the nvidia runtime, and says which file and runtime would vanish", async () => {
    const before = await F.nodeFile(N21, CONFIG);
    const res = await h.up(program());
    expect(res.error).toBeDefined();
    expect(errors(res)).toContainEqual(
      `${N21.name}: ${CONFIG} imports ${DROPIN} (${DROPIN}: runtime nvidia; plugins io.containerd.cri.v1.runtime), which the new config.toml does not: what it defines would vanish. Add "${DROPIN}" to imports to keep it, or to dropImports to let it go`,
    );
    expect(res.steps.filter((s) => s.name.startsWith(`${N21.name}:/`))).toEqual([]);
    expect(await F.nodeFile(N21, CONFIG)).toBe(before);
  });

  it("keeps it with imports: the node validates with it resolved, and containerd runs with the nvidia runtime", async () => {
    const res = await h.up(program({ imports: [DROPIN] }));
    expect(res.error?.message).toBeUndefined();
    expect(await F.nodeFile(N21, CONFIG)).toContain(`imports = [ "${DROPIN}" ]`);
    const dump = await F.nodeSh(N21, `containerd --config ${CONFIG} config dump`);
    expect(dump).toMatch(/runtimes\.nvidia\]/);
    // The drop-in merges on 2.x: this config.toml's own settings stay beside it.
    expect(dump).toContain("config_path = '/etc/containerd/certs.d'");
    expect(F.restarts(N21)).toBeGreaterThan(0);
  });

  it("refuses a drop-in of a higher config version than config.toml", async () => {
    await F.nodeSh(N21, `cat > ${DROPIN} <<'EOF'\n${nvidia(4, "io.containerd.cri.v1.runtime")}EOF`);
    const res = await h.preview(program({ imports: [DROPIN] }));
    expect(res.error).toBeDefined();
    expect(errors(res)).toContainEqual(`${N21.name}: imported ${DROPIN} has version 4, higher than config.toml's 3; containerd refuses a drop-in newer than its root config`);
    await F.nodeSh(N21, `cat > ${DROPIN} <<'EOF'\n${nvidia(3, "io.containerd.cri.v1.runtime")}EOF`);
  });
});

describe("a no-op with the node read leaves the state as it was", () => {
  // The engine rewrites the whole checkpoint for each component whose registered outputs changed
  // (pulumi pkg/backend/snapshot.go): this run's timings and what it did stay out of the state.
  const nodes = [N16, N23];
  const stack = stackFor(nodes);

  it("records no read or probe timings, per-run report or file content in the state, and keeps them on the outputs", async () => {
    const program = async () => {
      const out: Record<string, unknown> = {};
      for (const n of nodes) {
        const node = new ContainerdNode(n.name, spec(n));
        out[n.name] = { nodeState: node.nodeState, mirrorHealth: node.mirrorHealth, restarted: node.restarted };
      }
      return out;
    };
    expect((await stack().up(program)).error?.message).toBeUndefined();
    const runs: { state: unknown; outputs: Record<string, { nodeState: { readSeconds?: number }; mirrorHealth: { seconds: number }[]; restarted: boolean }> }[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await stack().up(program);
      expect(r.error?.message).toBeUndefined();
      expect(changed(r)).toEqual([]);
      runs.push({ state: await stack().state(), outputs: r.outputs as never });
    }
    // Both no-ops: the same resources, inputs and outputs. Order is not ours to compare: the engine
    // meets resources in a different order each run, and stores a resource's dependencies from a hash
    // set (pkg/resource/deploy/source_eval.go, `dependencies.ToSlice()`); its own check for a needed
    // write sorts them first (pkg/backend/snapshot.go, sameSnapshotMutation.mustWrite).
    type Recorded = { urn: string; dependencies?: string[]; propertyDependencies?: Record<string, string[]> };
    const sorted = (urns: string[]) => [...urns].sort();
    const byUrn = (st: unknown) => Object.fromEntries((st as Recorded[]).map((r) => [r.urn, {
      ...r,
      ...(r.dependencies && { dependencies: sorted(r.dependencies) }),
      ...(r.propertyDependencies && { propertyDependencies: Object.fromEntries(Object.entries(r.propertyDependencies).map(([k, v]) => [k, sorted(v)])) }),
    }]));
    expect(byUrn(runs[1].state)).toEqual(byUrn(runs[0].state));
    for (const n of nodes) {
      const o = runs[1].outputs[n.name];
      expect(o.nodeState.readSeconds).toBeGreaterThan(0);
      expect(o.mirrorHealth.length).toBeGreaterThan(0);
      expect(o.mirrorHealth.every((m) => typeof m.seconds === "number")).toBe(true);
      expect(o.restarted).toBe(false);
      const recorded = (runs[1].state as { type: string; urn: string; outputs?: { nodeState?: Record<string, unknown>; mirrorHealth?: Record<string, unknown>[] } }[])
        .find((r) => r.type === "containerd:index:ContainerdNode" && r.urn.endsWith(`::${n.name}`))!.outputs!;
      expect(recorded.nodeState).toMatchObject({ read: true, reached: true });
      expect(recorded.nodeState).not.toHaveProperty("readSeconds");
      expect(recorded.mirrorHealth!.length).toBe(o.mirrorHealth.length);
      for (const m of recorded.mirrorHealth!) expect(m).not.toHaveProperty("seconds");
      expect(recorded).not.toHaveProperty("lastApply");
      expect(recorded).not.toHaveProperty("restarted");
      expect(recorded).not.toHaveProperty("files");
    }
  });
});

describe("what the read cannot fix", () => {
  let h: EngineStack;
  beforeAll(async () => {
    await F.resetNodes([N16, N17]);
    h = newStack();
  });
  afterAll(async () => {
    await F.fault(N16, "sshd-start");
    await h?.destroy();
    h?.dispose();
  });

  it("fails the preview of a node that runs another containerd than the spec says, with the node guard's words", async () => {
    const res = await h.preview(async () => void new ContainerdNode(N17.name, spec(N17, { containerdVersion: "2.1" })));
    expect(res.error).toBeDefined();
    expect(errors(res)).toContainEqual(
      `${N17.name}: refusing a version 3 config.toml: the node runs containerd 1.7.24, but the spec renders for containerd 2.1.0 (containerdVersion); containerd 1.7.24 would ignore or misread it. Set containerdVersion to 1.7.24`,
    );
  });

  it("warns about a node it cannot reach, and the others go on", async () => {
    await F.fault(N16, "sshd-stop");
    const res = await h.preview(async () => {
      new ContainerdNode(N16.name, spec(N16, { readTimeoutSeconds: 3 }));
      new ContainerdNode(N17.name, spec(N17));
    });
    expect(warnings(res)).toContainEqual(expect.stringMatching(new RegExp(`^${N16.name}: not read \\(.+\\): this run compares with the recorded state only`)));
    expect(res.steps.filter((s) => s.name.startsWith(`${N17.name}:/`) && s.op === "create")).toHaveLength(2);
    expect(res.steps.filter((s) => s.name.startsWith(`${N16.name}:/`) && s.op === "create")).toHaveLength(2);
  });
});

describe("a hosts.toml containerd would skip never lands", () => {
  const nodes = [N16, N23];
  let h: EngineStack;
  // The owner the node's own resources record (the ContainerdNode's URN in this stack), so the sends
  // below stand for this deployment's apply, and its destroy restores what they wrote.
  const ownerOf = (n: FleetNode) => `urn:pulumi:${h.stackName}::${h.project}::containerd:index:ContainerdNode::${n.name}`;
  beforeAll(async () => {
    await F.resetNodes(nodes);
    h = newStack();
    const up = await h.up(async () => {
      for (const n of nodes) new ContainerdNode(n.name, spec(n));
    });
    expect(up.error?.message).toBeUndefined();
  });
  afterAll(async () => {
    await h?.destroy();
    h?.dispose();
  });

  it.each(nodes.map((n) => [n.generation, n] as const))("on %s: a file it cannot parse is refused before the write, a good one lands", async (_g, n) => {
    const o = {
      label: n.name, lockFile: "/etc/containerd/.containerd-node.lock", containerd: "containerd", ctr: "ctr", grpcAddress: "/run/containerd/containerd.sock",
      restartCommand: "", healthTimeoutSeconds: 30, configVersion: (n.generation.startsWith("1.") ? 2 : n.generation === "2.3" ? 4 : 3) as 2 | 3 | 4,
      minimumVersion: `${versionOf(n)}.0`, healthChecks: [], owner: ownerOf(n), sudo: false, script: "/etc/containerd/.containerd-node/containerd-node.sh",
    };
    const before = await F.nodeFile(n, HUB);
    const cmd = applyCommand({ path: HUB, mode: 0o644, kind: "hosts" }, o);
    // A table header without its closing bracket: containerd skips the file and pulls from the upstream.
    const broken = `server = "https://registry-1.docker.io"\n\n[host."${MIRROR}"\n  capabilities = ["pull", "resolve"]\n${END_MARKER_LINE}\n`;
    const refused = await F.sshRun(n, cmd, broken);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain(`would not use the new ${HUB} (it would ask registry-1.docker.io first, not ${MIRROR.replace("http://", "")})`);
    expect(await F.nodeFile(n, HUB)).toBe(before);

    const good = `server = "https://registry-1.docker.io"\n\n[host."${MIRROR}/"]\n  capabilities = ["pull", "resolve"]\n${END_MARKER_LINE}\n`;
    const landed = await F.sshRun(n, cmd, good);
    expect(landed.stderr).toBe("");
    expect(landed.status).toBe(0);
    expect(await F.nodeFile(n, HUB)).toBe(good);
  });
});
