/** The rendering rules, one test each (containerd-facts.md is the source of each rule). */
import { parse } from "smol-toml";
import { renderNode } from "../../provider/src";
import { TEST_CA_PEM, TEST_CLIENT_CERT_PEM, TEST_CLIENT_KEY_PEM } from "../fixtures/pem";
import { seedSpec } from "../fixtures/specs";

const file = (r: ReturnType<typeof renderNode>, suffix: string) => {
  const f = r.files.find((x) => x.path.endsWith(suffix));
  if (!f) throw new Error(`no file ending in ${suffix}: ${r.files.map((x) => x.path).join(", ")}`);
  return f;
};
const toml = (r: ReturnType<typeof renderNode>, suffix: string) => parse(file(r, suffix).content) as Record<string, any>;

describe("config.toml", () => {
  it("is version 2 with grpc.v1.cri paths for 1.x", () => {
    const c = toml(renderNode(seedSpec("1.7.22")), "config.toml");
    expect(c.version).toBe(2);
    const cri = c.plugins["io.containerd.grpc.v1.cri"];
    expect(cri.sandbox_image).toBe("registry.aliyuncs.com/google_containers/pause:3.9");
    expect(cri.containerd.runtimes.runc.options.SystemdCgroup).toBe(true);
    expect(cri.registry.config_path).toBe("/etc/containerd/certs.d");
    expect(c.plugins["io.containerd.cri.v1.images"]).toBeUndefined();
  });

  it("is version 3 with cri.v1.images / cri.v1.runtime paths for 2.x", () => {
    const c = toml(renderNode(seedSpec("2.1.4")), "config.toml");
    expect(c.version).toBe(3);
    expect(c.plugins["io.containerd.cri.v1.images"].pinned_images.sandbox).toBe("registry.aliyuncs.com/google_containers/pause:3.9");
    expect(c.plugins["io.containerd.cri.v1.images"].registry.config_path).toBe("/etc/containerd/certs.d");
    expect(c.plugins["io.containerd.cri.v1.runtime"].containerd.runtimes.runc.options.SystemdCgroup).toBe(true);
    expect(c.plugins["io.containerd.grpc.v1.cri"]).toBeUndefined();
  });

  it("sets one single registry directory, never a colon list", () => {
    const r = renderNode({ containerdVersion: "2.2", registryConfigPath: "/srv/certs.d" });
    expect(toml(r, "config.toml").plugins["io.containerd.cri.v1.images"].registry.config_path).toBe("/srv/certs.d");
    expect(() => renderNode({ containerdVersion: "2.2", registryConfigPath: "/a:/b" })).toThrow(/registryConfigPath: "\/a:\/b" is not an absolute path/);
  });

  it("applies systemdCgroup to every runc-shim runtime but not to other shims or explicit options", () => {
    const r = renderNode({
      containerdVersion: "1.7",
      systemdCgroup: true,
      runtimes: {
        nvidia: { options: { BinaryName: "/usr/bin/nvidia-container-runtime" } },
        kata: { runtimeType: "io.containerd.kata.v2" },
        legacy: { options: { SystemdCgroup: false } },
      },
    });
    const rts = toml(r, "config.toml").plugins["io.containerd.grpc.v1.cri"].containerd.runtimes;
    expect(rts.runc.options.SystemdCgroup).toBe(true);
    expect(rts.nvidia.options).toEqual({ BinaryName: "/usr/bin/nvidia-container-runtime", SystemdCgroup: true });
    expect(rts.kata.options).toBeUndefined();
    expect(rts.legacy.options.SystemdCgroup).toBe(false);
  });

  it("writes CNI bin_dir before 2.1 and bin_dirs from 2.1", () => {
    const at = (v: string) => renderNode({ containerdVersion: v, cni: { binDir: "/opt/cni/bin" } });
    expect(toml(at("1.6"), "config.toml").plugins["io.containerd.grpc.v1.cri"].cni.bin_dir).toBe("/opt/cni/bin");
    expect(toml(at("2.0.5"), "config.toml").plugins["io.containerd.cri.v1.runtime"].cni.bin_dir).toBe("/opt/cni/bin");
    expect(toml(at("2.1"), "config.toml").plugins["io.containerd.cri.v1.runtime"].cni.bin_dirs).toEqual(["/opt/cni/bin"]);
  });

  it("deep-merges settings last, over typed fields", () => {
    const r = renderNode({
      containerdVersion: "1.6",
      sandboxImage: "registry.k8s.io/pause:3.9",
      settings: { oom_score: -999, plugins: { "io.containerd.grpc.v1.cri": { sandbox_image: "example.test/pause:1", enable_selinux: true } } },
    });
    const c = toml(r, "config.toml");
    expect(c.oom_score).toBe(-999);
    expect(c.plugins["io.containerd.grpc.v1.cri"].sandbox_image).toBe("example.test/pause:1");
    expect(c.plugins["io.containerd.grpc.v1.cri"].enable_selinux).toBe(true);
    expect(c.plugins["io.containerd.grpc.v1.cri"].registry.config_path).toBe("/etc/containerd/certs.d");
  });

  it("starts with the managed-file header and ends with the end marker", () => {
    for (const f of renderNode(seedSpec("1.6")).files) {
      expect(f.content.split("\n")[0]).toMatch(/^# Managed by containerd-node .*Local edits are overwritten/);
      expect(f.content.endsWith("\n# containerd-node: end of file\n")).toBe(true);
    }
  });
});

describe("hosts.toml", () => {
  it("points Docker Hub at registry-1.docker.io, never docker.io", () => {
    const h = toml(renderNode(seedSpec("1.6")), "docker.io/hosts.toml");
    expect(h.server).toBe("https://registry-1.docker.io");
    expect(file(renderNode(seedSpec("1.6")), "docker.io/hosts.toml").content).not.toMatch(/"https:\/\/docker\.io"/);
  });

  it("renders one hosts.toml per registry, each with at least one [host] table", () => {
    const r = renderNode({
      containerdVersion: "1.7",
      registries: {
        "quay.io": {},
        "10.0.0.1:5000": { server: "http://10.0.0.1:5000" },
        "*": { mirrors: ["https://fallback.example.test"] },
      },
    });
    const hosts = r.files.filter((f) => f.kind === "hosts").map((f) => f.path);
    expect(hosts).toEqual([
      "/etc/containerd/certs.d/10.0.0.1:5000/hosts.toml",
      "/etc/containerd/certs.d/_default/hosts.toml",
      "/etc/containerd/certs.d/quay.io/hosts.toml",
    ]);
    for (const f of r.files.filter((x) => x.kind === "hosts")) {
      expect(Object.keys((parse(f.content) as any).host).length).toBeGreaterThan(0);
    }
    expect(toml(r, "quay.io/hosts.toml")).toEqual({ server: "https://quay.io", host: { "https://quay.io": {} } });
    expect(toml(r, "_default/hosts.toml").server).toBeUndefined();
  });

  it("keeps mirror order and defaults mirrors to pull+resolve", () => {
    const h = toml(renderNode(seedSpec("1.6")), "registry.k8s.io/hosts.toml");
    expect(Object.keys(h.host)).toEqual(["https://k8s.m.daocloud.io", "https://registry.cn-hangzhou.aliyuncs.com"]);
    for (const v of Object.values(h.host) as any[]) expect(v.capabilities).toEqual(["pull", "resolve"]);
  });

  it("gives plain-HTTP mirrors no TLS fields and refuses TLS fields on them", () => {
    const h = toml(renderNode({ containerdVersion: "1.7", registries: { "docker.io": { mirrors: ["http://10.1.1.1:5000"] } } }), "docker.io/hosts.toml");
    expect(h.host["http://10.1.1.1:5000"]).toEqual({ capabilities: ["pull", "resolve"] });
    expect(() => renderNode({ containerdVersion: "1.7", registries: { "docker.io": { mirrors: [{ url: "http://m.test", skipVerify: true }] } } })).toThrow(
      /mirrors\[0\]: "http:\/\/m.test" is plain HTTP/,
    );
  });

  it("gates referrers on 2.2 and dial_timeout on 2.0.7 / 2.1", () => {
    const mirror = (extra: object) => ({ registries: { "ghcr.io": { mirrors: [{ url: "https://m.test", ...extra }] } } });
    expect(() => renderNode({ containerdVersion: "2.1.9", ...mirror({ capabilities: ["pull", "referrers"] }) })).toThrow(/"referrers" capability needs containerd 2\.2\+/);
    expect(toml(renderNode({ containerdVersion: "2.2.0", ...mirror({ capabilities: ["pull", "referrers"] }) }), "ghcr.io/hosts.toml").host["https://m.test"].capabilities).toEqual(["pull", "referrers"]);
    expect(() => renderNode({ containerdVersion: "2.0.6", ...mirror({ dialTimeout: "3s" }) })).toThrow(/dial_timeout needs containerd 2\.0\.7\+ or 2\.1\+/);
    expect(() => renderNode({ containerdVersion: "2.0", ...mirror({ dialTimeout: "3s" }) })).toThrow(/dial_timeout/);
    expect(toml(renderNode({ containerdVersion: "2.0.7", ...mirror({ dialTimeout: "3s" }) }), "ghcr.io/hosts.toml").host["https://m.test"].dial_timeout).toBe("3s");
    expect(toml(renderNode({ containerdVersion: "2.1", ...mirror({ dialTimeout: "3s" }) }), "ghcr.io/hosts.toml").host["https://m.test"].dial_timeout).toBe("3s");
  });

  it("makes the port part of the directory name", () => {
    const r = renderNode({ containerdVersion: "1.6", registries: { "registry.example.test:5443": { mirrors: ["https://m.test"] } } });
    expect(r.files.map((f) => f.path)).toContain("/etc/containerd/certs.d/registry.example.test:5443/hosts.toml");
    expect(toml(r, "registry.example.test:5443/hosts.toml").server).toBe("https://registry.example.test:5443");
  });

  it('renders "*" as _default, from 1.6.17 and 1.7.0 on', () => {
    const spec = (v: string) => ({ containerdVersion: v, registries: { "*": { mirrors: ["https://m.test"] } } });
    expect(renderNode(spec("1.6.17")).files.map((f) => f.path)).toContain("/etc/containerd/certs.d/_default/hosts.toml");
    expect(renderNode(spec("1.7")).files.map((f) => f.path)).toContain("/etc/containerd/certs.d/_default/hosts.toml");
    expect(() => renderNode(spec("1.6.16"))).toThrow(/registries\["\*"\]: the "\*" registry \(hosts directory _default\) needs containerd 1\.6\.17\+ or 1\.7\+; containerdVersion is "1\.6\.16"/);
    expect(() => renderNode(spec("1.6"))).toThrow(/needs containerd 1\.6\.17\+/);
  });

  it("ships PEM content as files beside hosts.toml and points at them; a node path stays a path", () => {
    const r = renderNode({
      containerdVersion: "1.7",
      registries: {
        "registry.example.test": {
          server: { url: "https://registry.example.test", ca: [TEST_CA_PEM, "/etc/ssl/extra-ca.pem"], client: { cert: TEST_CLIENT_CERT_PEM, key: TEST_CLIENT_KEY_PEM } },
        },
      },
    });
    const dir = "/etc/containerd/certs.d/registry.example.test";
    const byPath = Object.fromEntries(r.files.map((f) => [f.path, f]));
    expect(byPath[`${dir}/registry.example.test.ca.crt`]).toMatchObject({ mode: 0o644, secret: false, kind: "certificate" });
    expect(byPath[`${dir}/registry.example.test.ca.crt`].content).toContain(TEST_CA_PEM.trim());
    expect(byPath[`${dir}/registry.example.test.client.cert`]).toMatchObject({ mode: 0o644, secret: false });
    expect(byPath[`${dir}/registry.example.test.client.key`]).toMatchObject({ mode: 0o600, secret: true });
    const host = toml(r, "registry.example.test/hosts.toml").host["https://registry.example.test"];
    expect(host.ca).toEqual([`${dir}/registry.example.test.ca.crt`, "/etc/ssl/extra-ca.pem"]);
    expect(host.client).toEqual([[`${dir}/registry.example.test.client.cert`, `${dir}/registry.example.test.client.key`]]);
    // The hosts.toml itself holds no secret: only the key file is secret.
    expect(byPath[`${dir}/hosts.toml`]).toMatchObject({ secret: false, mode: 0o644 });
  });

  it("turns credentials into that entry's Authorization header, only in that registry's hosts.toml, 0600", () => {
    const r = renderNode({
      containerdVersion: "2.1",
      registries: {
        "docker.io": { mirrors: [{ url: "https://harbor.test/v2/hub", overridePath: true, auth: { username: "robot$ci", password: "p@ss:word" } }] },
        "ghcr.io": { mirrors: [{ url: "https://ghcr-cache.test", auth: { token: "tok123" } }] },
        "quay.io": { mirrors: ["https://quay-cache.test"] },
      },
    });
    const hub = file(r, "docker.io/hosts.toml");
    expect(hub).toMatchObject({ secret: true, mode: 0o600 });
    expect((parse(hub.content) as any).host["https://harbor.test/v2/hub"].header.Authorization).toBe(
      "Basic " + Buffer.from("robot$ci:p@ss:word").toString("base64"),
    );
    expect((parse(file(r, "ghcr.io/hosts.toml").content) as any).host["https://ghcr-cache.test"].header.Authorization).toBe("Bearer tok123");
    for (const f of r.files.filter((x) => !x.path.includes("docker.io") && !x.path.includes("ghcr.io"))) {
      expect(f.secret).toBe(false);
      expect(f.content).not.toMatch(/Authorization|tok123|cm9ib3Qk/);
    }
  });
});

describe("skipFallback: only the mirrors, never the upstream", () => {
  it("renders the last mirror as the server, so no upstream is left to fall back to", () => {
    for (const v of ["1.6", "1.7", "2.1", "2.3"]) {
      const r = renderNode({ containerdVersion: v, registries: { "docker.io": { mirrors: ["https://a.test", { url: "https://b.test/v2/hub", overridePath: true }], skipFallback: true } } });
      const f = file(r, "docker.io/hosts.toml");
      expect(f.content).not.toContain("registry-1.docker.io");
      const t = toml(r, "docker.io/hosts.toml");
      expect(t.server).toBe("https://b.test/v2/hub");
      expect(t.override_path).toBe(true);
      expect(t.capabilities).toEqual(["pull", "resolve"]);
      expect(Object.keys(t.host)).toEqual(["https://a.test"]);
    }
  });

  it("keeps a [host] table with one mirror (1.6 and 1.7 refuse a hosts.toml without one), and works for \"*\"", () => {
    const r = renderNode({ containerdVersion: "1.6.20", registries: { "*": { mirrors: ["http://m.test:5000"], skipFallback: true } } });
    const t = toml(r, "_default/hosts.toml");
    expect(t.server).toBe("http://m.test:5000");
    expect(Object.keys(t.host)).toEqual(["http://m.test:5000"]);
  });

  it("needs a mirror, and no server (the server is the upstream it removes)", () => {
    expect(() => renderNode({ containerdVersion: "2.1", registries: { "quay.io": { skipFallback: true } } })).toThrow(
      /registries\["quay.io"\].skipFallback: true needs at least one mirror: the mirrors become the only way to the registry/,
    );
    expect(() => renderNode({ containerdVersion: "2.1", registries: { "quay.io": { server: "https://quay.io", mirrors: ["https://m.test"], skipFallback: true } } })).toThrow(
      /registries\["quay.io"\].server: is the upstream that skipFallback: true never contacts; give one of them/,
    );
  });
});

describe("k3s's rewrite", () => {
  it("is refused wherever it is put, pointing at overridePath", () => {
    const spec = {
      containerdVersion: "2.1",
      registries: { "docker.io": { mirrors: [{ url: "https://m.test", rewrite: { "^library/(.*)": "hub/$1" } }], rewrite: { "^(.*)": "x/$1" } } },
    };
    let message = "";
    try {
      renderNode(spec as never);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain('registries["docker.io"].rewrite: is a k3s registries.yaml key; containerd\'s hosts.toml has no rewrite.');
    expect(message).toContain('registries["docker.io"].mirrors[0].rewrite: is a k3s registries.yaml key');
    expect(message).toContain('overridePath: true, e.g. { url: "https://harbor.example.com/v2/dockerhub", overridePath: true }');
  });
});

describe("hand-written Authorization headers", () => {
  it("make that hosts.toml secret and 0600 as well", () => {
    const r = renderNode({ containerdVersion: "1.7", registries: { "ghcr.io": { mirrors: [{ url: "https://g.test", headers: { authorization: "Bearer x" } }] }, "quay.io": { mirrors: [{ url: "https://q.test", headers: { "X-Team": "a" } }] } } });
    expect(file(r, "ghcr.io/hosts.toml")).toMatchObject({ secret: true, mode: 0o600 });
    expect(file(r, "quay.io/hosts.toml")).toMatchObject({ secret: false, mode: 0o644 });
  });
});

describe("legacy registry.mirrors in settings", () => {
  const legacy = (v: string, id = "io.containerd.grpc.v1.cri") => ({
    containerdVersion: v,
    settings: { plugins: { [id]: { registry: { mirrors: { "docker.io": { endpoint: ["https://a.test", "https://b.test"] }, "*": { endpoint: ["https://c.test"] } } } } } },
  });

  it("moves them into hosts.toml ('*' becomes _default) with a warning; never both mirrors and config_path", () => {
    const r = renderNode(legacy("1.7"));
    expect(r.warnings).toHaveLength(1);
    expect(r.warnings[0]).toMatch(/legacy registry\.mirrors .* moved into hosts\.toml files for docker\.io, \*/);
    const cfg = file(r, "config.toml").content;
    expect(cfg).not.toMatch(/mirrors/);
    expect(cfg).toMatch(/config_path = "\/etc\/containerd\/certs\.d"/);
    expect(Object.keys(toml(r, "docker.io/hosts.toml").host)).toEqual(["https://a.test", "https://b.test"]);
    expect(Object.keys(toml(r, "_default/hosts.toml").host)).toEqual(["https://c.test"]);
  });

  it("finds them under the 2.x plugin too", () => {
    const r = renderNode(legacy("2.1", "io.containerd.cri.v1.images"));
    expect(file(r, "config.toml").content).not.toMatch(/mirrors/);
    expect(r.files.map((f) => f.path)).toContain("/etc/containerd/certs.d/docker.io/hosts.toml");
  });

  it("refuses a namespace configured both ways", () => {
    expect(() => renderNode({ ...legacy("1.7"), registries: { "docker.io": { mirrors: ["https://z.test"] } } })).toThrow(
      /registry\.mirrors\["docker\.io"\]: configures "docker\.io", which registries\["docker\.io"\] configures too; keep one/,
    );
  });

  it("does not modify the caller's settings object", () => {
    const spec = legacy("1.7");
    const before = JSON.stringify(spec);
    renderNode(spec);
    expect(JSON.stringify(spec)).toBe(before);
  });
});
