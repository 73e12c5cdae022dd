/**
 * The program's own read of the nodes (readNode), on the local fleet through the harness: drift
 * shown and repaired, unmanaged registry directories reported and set aside, imports kept or the
 * `up` refused, a running containerd the files are not for, a node that cannot be read, and every
 * mirror classified from the node itself against mirrors that are dead in distinct, real ways.
 */
import * as fs from "fs";
import * as http from "http";
import * as https from "https";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import type { AddressInfo } from "net";
import { ContainerdNode, ContainerdNodeArgs } from "../../provider/src";
import { applyCommand } from "../../provider/src/remote/commands";
import { END_MARKER_LINE } from "../../provider/src/remote/node-script";
import type { MirrorHealth } from "../../provider/src/component/node-findings";
import { Harness, UpResult } from "../harness/harness";
import { TEST_CLIENT_CERT_PEM, TEST_CLIENT_KEY_PEM } from "../fixtures/pem";
import * as F from "./fleet";
import type { FleetNode } from "./fleet";

jest.setTimeout(300_000);

const fleet = F.loadFleet();
const [N16, N17, N21, N23] = F.nodesByGeneration(fleet, ["1.6", "1.7", "2.1", "2.3"]);
const [MIRROR] = fleet.registry.mirrors;
const BRIDGE = fleet.registry.host;
const CONFIG = "/etc/containerd/config.toml";
const HUB = "/etc/containerd/certs.d/docker.io/hosts.toml";
const STAR = "/etc/containerd/certs.d/_default/hosts.toml";

const connection = (n: FleetNode) => ({ host: n.host, port: n.port, user: n.user, privateKey: n.privateKey, hostKey: n.hostKey, dialErrorLimit: 1 });
const versionOf = (n: FleetNode) => (n.generation.startsWith("1.") ? "1.6" : n.generation);

function spec(on: FleetNode, extra: Partial<ContainerdNodeArgs> = {}): ContainerdNodeArgs {
  return {
    containerdVersion: versionOf(on),
    systemdCgroup: true,
    healthTimeoutSeconds: 30,
    registries: { "docker.io": { mirrors: [MIRROR] } },
    connection: connection(on),
    readNode: true,
    ...extra,
  };
}

const newHarness = () => new Harness({ stateFile: path.join(fs.mkdtempSync(path.join(os.tmpdir(), "node-read-")), "state.json"), dialRetryDelayMs: 100 });
const changed = (r: UpResult) => r.steps.filter((s) => s.op !== "same").map((s) => `${s.name} ${s.op}`).sort();
const warnings = (r: UpResult) => r.diagnostics.filter((d) => d.severity === "warning").map((d) => d.message);
const errors = (r: UpResult) => r.diagnostics.filter((d) => d.severity === "error").map((d) => d.message);

describe("drift: a hand-edited config.toml, a deleted hosts.toml, a hosts.toml with another mode", () => {
  const nodes = [N16, N17, N21];
  let h: Harness;
  const program = () => {
    for (const n of nodes) new ContainerdNode(n.name, spec(n));
  };
  beforeAll(async () => {
    await F.resetNodes(nodes);
    h = newHarness();
  });
  afterAll(async () => {
    await h?.destroy();
    h?.dispose();
  });

  it("shows exactly those three files in the preview, repairs them (one restart, on the first node) and previews clean after", async () => {
    const first = await h.up(program);
    expect(first.error?.message).toBeUndefined();
    const clean = await h.preview(program);
    expect(clean.error?.message).toBeUndefined();
    expect(changed(clean)).toEqual([]);
    expect(warnings(clean).filter((w) => w.includes("since the last apply"))).toEqual([]);

    await F.nodeSh(N16, `printf '# tuned by hand\\n' >> ${CONFIG}`);
    await F.nodeSh(N17, `rm ${HUB}`);
    await F.nodeSh(N21, `chmod 0600 ${HUB}`);
    const restarts = nodes.map((n) => F.restarts(n));

    const preview = await h.preview(program);
    expect(preview.error?.message).toBeUndefined();
    expect(changed(preview)).toEqual([`${N16.name}:${CONFIG} update`, `${N17.name}:${HUB} update`, `${N21.name}:${HUB} update`].sort());
    const drift = warnings(preview).filter((w) => w.includes("since the last apply"));
    expect(drift).toHaveLength(3);
    expect(drift.find((w) => w.startsWith(`${N16.name}: ${CONFIG} has other content`))).toContain("- # tuned by hand");
    expect(drift.find((w) => w.startsWith(`${N17.name}: ${HUB} is missing`))).toBeDefined();
    expect(drift.find((w) => w.startsWith(`${N21.name}: ${HUB} has mode 0600, installed 0644`))).toBeDefined();
    // A preview changes nothing on the nodes.
    expect(await F.nodePathExists(N17, HUB)).toBe(false);

    const up = await h.up(program);
    expect(up.error?.message).toBeUndefined();
    expect(changed(up)).toEqual(changed(preview));
    expect(nodes.map((n) => F.restarts(n) - restarts[nodes.indexOf(n)])).toEqual([1, 0, 0]);
    expect(await F.nodeFile(N16, CONFIG)).not.toContain("tuned by hand");
    expect(await F.nodeFile(N17, HUB)).toContain(MIRROR);
    expect((await F.nodeSh(N21, `stat -c %a ${HUB}`)).trim()).toBe("644");

    const after = await h.preview(program);
    expect(after.error?.message).toBeUndefined();
    expect(changed(after)).toEqual([]);
    expect(warnings(after).filter((w) => w.includes("since the last apply"))).toEqual([]);
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

describe("mirrors classified from each node", () => {
  const nodes = [N16, N21, N23];
  const dead = new DeadMirrors();
  const AUTH = fleet.registry.authMirror;
  let h: Harness;
  beforeAll(async () => {
    await F.resetNodes(nodes);
    await dead.start();
    h = newHarness();
  });
  afterAll(async () => {
    await h?.destroy();
    h?.dispose();
    await dead.stop();
  });

  const program = (extra: Partial<ContainerdNodeArgs> = {}) => () => {
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
    for (const n of nodes) {
      const health = preview.outputs[n.name] as MirrorHealth[];
      const classes = Object.fromEntries(health.filter((m) => m.role === "mirror").map((m) => [m.host, m.class]));
      expect(classes).toEqual(want);
      for (const m of health) {
        expect(m.tool).toBe("curl");
        expect(m.seconds).toBeLessThan(3.5);
      }
      // The server (the Docker Hub upstream) is probed too; this machine has no way out.
      expect(health.find((m) => m.role === "server")?.host).toBe("https://registry-1.docker.io");
      for (const [url, cls] of Object.entries(want)) {
        if (cls === "ok" || cls === "auth-required") continue;
        expect(warnings(preview)).toContainEqual(expect.stringMatching(new RegExp(`^${n.name}: ${url.replace(/[.:/]/g, "\\$&")}: ${cls} in \\d+\\.\\d s; pulls from docker.io will fall through to the next host$`)));
      }
    }
  });

  it("checks the credentials containerd has for a mirror that asks for them", async () => {
    const up = await h.up(program());
    expect(up.error?.message).toBeUndefined();
    const preview = await h.preview(program());
    for (const n of nodes) {
      const auth = (preview.outputs[n.name] as MirrorHealth[]).find((m) => m.host === AUTH.url)!;
      expect([auth.class, auth.credentials]).toEqual(["auth-required", "pass"]);
    }
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
  let h: Harness;
  let web: http.Server;
  let webUrl: string;
  const HAND = "/etc/containerd/certs.d/docker.io";
  const program = (extra: Partial<ContainerdNodeArgs> = {}) => () => void new ContainerdNode(N16.name, spec(N16, { containerdVersion: "1.6.20", registries: { "*": { mirrors: [MIRROR] } }, ...extra }));
  beforeAll(async () => {
    await F.resetNodes([N16]);
    web = http.createServer((_q, r) => r.writeHead(200, { "content-type": "text/html" }).end("<html>hub</html>"));
    await new Promise<void>((resolve) => web.listen(0, BRIDGE, () => resolve()));
    webUrl = `http://${BRIDGE}:${(web.address() as AddressInfo).port}`;
    // The operator's notes: a hand-written docker.io directory whose server is a web site.
    await F.nodeSh(N16, `mkdir -p ${HAND} && printf 'server = "%s"\\n\\n[host."%s"]\\n  capabilities = ["pull", "resolve"]\\n' '${webUrl}' '${webUrl}' > ${HAND}/hosts.toml`);
    h = newHarness();
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

describe("imports of the node's config.toml", () => {
  let h: Harness;
  const DROPIN = "/etc/containerd/conf.d/99-nvidia.toml";
  const nvidia = (version: number, plugin: string) =>
    `version = ${version}\n\n[plugins."${plugin}".containerd.runtimes.nvidia]\n  runtime_type = "io.containerd.runc.v2"\n\n[plugins."${plugin}".containerd.runtimes.nvidia.options]\n  BinaryName = "/usr/bin/nvidia-container-runtime"\n`;
  const program = (extra: Partial<ContainerdNodeArgs> = {}) => () => void new ContainerdNode(N21.name, spec(N21, extra));
  beforeAll(async () => {
    await F.resetNodes([N21]);
    // What the NVIDIA container toolkit does: a drop-in, and an imports line in config.toml.
    await F.nodeSh(N21, `mkdir -p /etc/containerd/conf.d && cat > ${DROPIN} <<'EOF'\n${nvidia(3, "io.containerd.cri.v1.runtime")}EOF\n{ printf 'imports = ["${DROPIN}"]\\n'; cat ${CONFIG}; } > ${CONFIG}.new && mv ${CONFIG}.new ${CONFIG}`);
    h = newHarness();
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

describe("what the read cannot fix", () => {
  let h: Harness;
  beforeAll(async () => {
    await F.resetNodes([N16, N17]);
    h = newHarness();
  });
  afterAll(async () => {
    await F.fault(N16, "sshd-start");
    await h?.destroy();
    h?.dispose();
  });

  it("fails the preview of a node that runs another containerd than the spec says, with the node guard's words", async () => {
    const res = await h.preview(() => void new ContainerdNode(N17.name, spec(N17, { containerdVersion: "2.1" })));
    expect(res.error).toBeDefined();
    expect(errors(res)).toContainEqual(
      `${N17.name}: refusing a version 3 config.toml: the node runs containerd 1.7.24, but the spec renders for containerd 2.1.0 (containerdVersion); containerd 1.7.24 would ignore or misread it. Set containerdVersion to 1.7.24`,
    );
  });

  it("warns about a node it cannot reach, and the others go on", async () => {
    await F.fault(N16, "sshd-stop");
    const res = await h.preview(() => {
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
  let h: Harness;
  const ownerOf = (n: FleetNode) => `urn:pulumi:stack::project::containerd:index:ContainerdNode::${n.name}`;
  beforeAll(async () => {
    await F.resetNodes(nodes);
    h = newHarness();
    const up = await h.up(() => {
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
