/**
 * Bad input: one SpecError listing every problem, each with the field path, the value received
 * (never a secret) and what is allowed. This table is the one in docs/reference.md, "Bad input".
 */
import { SpecError, renderNode } from "../../provider/src";

const base = { containerdVersion: "1.7.22" };
const mirror = (m: unknown) => ({ ...base, registries: { "docker.io": { mirrors: [m] } } });

const cases: [string, unknown, string][] = [
  ["not an object", null, "null is not an object"],
  ["missing version", {}, "containerdVersion: is required"],
  ["unparsable version", { containerdVersion: "latest" }, 'containerdVersion: "latest" is not a containerd version such as "1.7", "1.7.22" or "2.1.4"'],
  ["unsupported version", { containerdVersion: "1.5.9" }, 'containerdVersion: "1.5.9" is not a supported containerd version (1.6, 1.7 or 2.x)'],
  ["unknown field", { ...base, systemdCgroups: true }, "systemdCgroups: is not a known field; allowed: containerdVersion, systemdCgroup,"],
  ["wrong type", { ...base, systemdCgroup: "true" }, 'systemdCgroup: "true" is not true or false'],
  ["bad enum", { ...base, debugLevel: "verbose" }, 'debugLevel: "verbose" is not one of "trace", "debug", "info", "warn", "error", "fatal", "panic"'],
  ["bad image", { ...base, sandboxImage: "Registry.k8s.io/Pause:3.9 " }, 'sandboxImage: "Registry.k8s.io/Pause:3.9 " is not an image reference such as "registry.k8s.io/pause:3.10"'],
  ["downloads below 1", { ...base, maxConcurrentDownloads: 0 }, "maxConcurrentDownloads: 0 is below the minimum of 1"],
  ["relative path", { ...base, root: "var/lib/containerd" }, 'root: "var/lib/containerd" is not an absolute path without \'..\''],
  ["shell in a node path", { ...base, configFile: "/etc/containerd/$(reboot).toml" }, 'configFile: "/etc/containerd/$(reboot).toml" is not an absolute path of letters, digits and . _ / + @ - (no \'..\', spaces or colons)'],
  ["colon list", { ...base, registryConfigPath: "/etc/containerd/certs.d:/etc/docker/certs.d" }, 'registryConfigPath: "/etc/containerd/certs.d:/etc/docker/certs.d" is not an absolute path'],
  ["bad namespace", { ...base, registries: { "Docker.io": { mirrors: ["https://m.test"] } } }, 'registries["Docker.io"]: "Docker.io" is not a registry host such as "docker.io", "10.0.0.1:5000" or "*"'],
  ["ftp mirror", mirror("ftp://x"), 'registries["docker.io"].mirrors[0]: "ftp://x" is not an http(s) URL'],
  ["docker.io server", { ...base, registries: { "docker.io": { server: "https://docker.io" } } }, 'registries["docker.io"].server: "https://docker.io" is Docker Hub\'s web site, not its registry API; use https://registry-1.docker.io'],
  ["credentials in URL", mirror("https://user:pw@m.test"), 'registries["docker.io"].mirrors[0]: "https://user:pw@m.test" has credentials in the URL; put them in auth instead'],
  ["quote in URL", mirror('https://m.test/a"b'), 'registries["docker.io"].mirrors[0]: "https://m.test/a\\"b" contains quotes, spaces or other characters outside'],
  ["TLS on http", mirror({ url: "http://m.test", ca: "/etc/ca.pem" }), 'registries["docker.io"].mirrors[0]: "http://m.test" is plain HTTP; ca, client and skipVerify apply to https only'],
  ["referrers on 1.7", mirror({ url: "https://m.test", capabilities: ["pull", "referrers"] }), 'registries["docker.io"].mirrors[0].capabilities: the "referrers" capability needs containerd 2.2+; containerdVersion is "1.7.22"'],
  ["unknown capability", mirror({ url: "https://m.test", capabilities: ["pull", "fetch"] }), 'registries["docker.io"].mirrors[0].capabilities[1]: "fetch" is not one of "pull", "resolve", "push", "referrers"'],
  ["dial_timeout on 1.7", mirror({ url: "https://m.test", dialTimeout: "3s" }), 'registries["docker.io"].mirrors[0].dialTimeout: dial_timeout needs containerd 2.0.7+ or 2.1+; containerdVersion is "1.7.22"'],
  ["bad duration", { containerdVersion: "2.1", registries: { "docker.io": { mirrors: [{ url: "https://m.test", dialTimeout: "3 seconds" }] } } }, 'registries["docker.io"].mirrors[0].dialTimeout: "3 seconds" is not a Go duration such as "3s" or "1m30s"'],
  ["half credentials", mirror({ url: "https://m.test", auth: { username: "u" } }), 'registries["docker.io"].mirrors[0].auth: [secret] needs either username and password, or token (not both)'],
  ["header injection", mirror({ url: "https://m.test", headers: { "X-Token": "a\r\nX-Evil: 1" } }), 'registries["docker.io"].mirrors[0].headers["X-Token"]: [secret] contains a newline or control character'],
  ["bad header name", mirror({ url: "https://m.test", headers: { "X Token": "a" } }), 'registries["docker.io"].mirrors[0].headers["X Token"]: "X Token" is not an HTTP header name'],
  ["ca neither path nor PEM", mirror({ url: "https://m.test", ca: "my-ca.crt" }), 'registries["docker.io"].mirrors[0].ca: "my-ca.crt" is neither an absolute path on the node nor complete PEM content'],
  ["repeated mirror", { ...base, registries: { "docker.io": { mirrors: ["https://m.test", "https://m.test/"] } } }, 'registries["docker.io"].mirrors[1]: "https://m.test/" repeats mirrors[0]; each mirror URL may appear once'],
  ['"*" before 1.6.17', { containerdVersion: "1.6.16", registries: { "*": { mirrors: ["https://m.test"] } } }, 'registries["*"]: the "*" registry (hosts directory _default) needs containerd 1.6.17+ or 1.7+; containerdVersion is "1.6.16"'],
  ['"*" without hosts', { ...base, registries: { "*": {} } }, 'registries["*"]: has no mirror and no server; "*" has no upstream of its own, so give at least one'],
  ["undeclared default runtime", { ...base, defaultRuntime: "nvidia" }, 'defaultRuntime: "nvidia" is not a declared runtime; allowed: "runc"'],
  ["runtime snapshotter on 1.6", { containerdVersion: "1.6.20", runtimes: { kata: { runtimeType: "io.containerd.kata.v2", snapshotter: "devmapper" } } }, "runtimes.kata.snapshotter: a per-runtime snapshotter needs containerd 1.7+"],
  ["settings version", { ...base, settings: { version: 3 } }, "settings.version: 3 cannot be set; the config version follows containerdVersion (2 for 1.x, 3 for 2.0-2.2, 4 for 2.3+)"],
  ["settings config_path", { ...base, settings: { plugins: { "io.containerd.grpc.v1.cri": { registry: { config_path: "/x" } } } } }, 'settings.plugins["io.containerd.grpc.v1.cri"].registry.config_path: "/x" cannot be set here; use registryConfigPath'],
  ["settings configs.tls", { ...base, settings: { plugins: { "io.containerd.grpc.v1.cri": { registry: { configs: { "m.test": { tls: { insecure_skip_verify: true } } } } } } } }, 'settings.plugins["io.containerd.grpc.v1.cri"].registry.configs["m.test"].tls: is refused: configs.tls breaks the CRI plugin when config_path is set'],
  ["1.x key in a v3 file", { containerdVersion: "2.1", settings: { plugins: { "io.containerd.grpc.v1.cri": { sandbox_image: "x" } } } }, 'settings.plugins["io.containerd.grpc.v1.cri"].sandbox_image: is a containerd 1.x key; containerd 2.1 (config version 3) ignores it here. It lives at plugins."io.containerd.cri.v1.images".pinned_images.sandbox'],
  ["2.x plugin in a v2 file", { ...base, settings: { plugins: { "io.containerd.cri.v1.images": { snapshotter: "x" } } } }, 'settings.plugins["io.containerd.cri.v1.images"]: is a containerd 2.x plugin; containerd 1.7.22 (config version 2) would ignore it silently'],
  ["null in settings", { ...base, settings: { oom_score: null } }, "settings.oom_score: null is not a TOML value"],
  ["settings registry.auths", { ...base, settings: { plugins: { "io.containerd.grpc.v1.cri": { registry: { auths: { "https://m.test": { username: "u", password: "p" } } } } } } }, 'settings.plugins["io.containerd.grpc.v1.cri"].registry.auths: [secret] is refused: config.toml is world-readable and not secret; use auth on registries[...]'],
  ["settings registry.headers", { containerdVersion: "2.1", settings: { plugins: { "io.containerd.cri.v1.images": { registry: { headers: { Authorization: ["Basic eA=="] } } } } } }, 'settings.plugins["io.containerd.cri.v1.images"].registry.headers: [secret] is refused: config.toml is world-readable and not secret; use headers on registries[...]'],
  ["a credential-like key anywhere in settings", { ...base, settings: { proxy_plugins: { vault: { type: "snapshot", address: "/run/v.sock", api_token: "t0k" } } } }, 'settings.proxy_plugins.vault.api_token: [secret] is refused: it looks like a credential, and config.toml is world-readable and not secret'],
  ["legacy endpoint not a URL", { ...base, settings: { plugins: { "io.containerd.grpc.v1.cri": { registry: { mirrors: { "docker.io": { endpoint: ["docker.mirror"] } } } } } } }, 'settings.plugins["io.containerd.grpc.v1.cri"].registry.mirrors["docker.io"].endpoint[0]: "docker.mirror" is not an http(s) URL'],
  ["colon in a username", mirror({ url: "https://m.test", auth: { username: "a:b", password: "p" } }), 'registries["docker.io"].mirrors[0].auth.username: [secret] contains a colon or control character'],
  ["newline in a token", mirror({ url: "https://m.test", auth: { token: "abc\n" } }), 'registries["docker.io"].mirrors[0].auth.token: [secret] is not a token of visible ASCII characters (no spaces or newlines)'],
  ["CRI plugin disabled", { ...base, disabledPlugins: ["io.containerd.grpc.v1.cri"] }, 'disabledPlugins[0]: "io.containerd.grpc.v1.cri" is a CRI plugin: kubelet needs it, and the health check after every restart waits for it'],
  ["SystemdCgroup as a string", { ...base, runtimes: { runc: { options: { SystemdCgroup: "true" } } } }, 'runtimes.runc.options.SystemdCgroup: "true" is not true or false'],
  ["imports in settings", { ...base, settings: { imports: ["/etc/containerd/conf.d/*.toml"] } }, 'settings.imports: ["/etc/containerd/conf.d/*.toml"] is refused: imported files replace whole plugin sections on containerd 1.x'],
  ["credentials in config.toml", { ...base, settings: { plugins: { "io.containerd.grpc.v1.cri": { registry: { configs: { "m.test": { auth: { password: "hunter2" } } } } } } } }, 'settings.plugins["io.containerd.grpc.v1.cri"].registry.configs["m.test"].auth: [secret] is refused: config.toml is world-readable and not secret'],
];

describe("bad specs are refused with the field, the value and what is allowed", () => {
  test.each(cases)("%s", (_name, spec, message) => {
    let error: unknown;
    try {
      renderNode(spec);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SpecError);
    expect((error as Error).message).toMatch(/^Invalid containerd node spec:\n - /);
    expect((error as Error).message).toContain(message);
  });
});

it("lists every problem at once", () => {
  try {
    renderNode({ containerdVersion: "1.7", systemdCgroup: 1, debugLevel: "loud", registries: { "docker.io": { mirrors: ["ftp://a", "gopher://b"] } } });
    throw new Error("accepted");
  } catch (e) {
    expect((e as SpecError).problems.map((p) => p.path)).toEqual(
      expect.arrayContaining(["systemdCgroup", "debugLevel", 'registries["docker.io"].mirrors[0]', 'registries["docker.io"].mirrors[1]']),
    );
    expect((e as SpecError).problems).toHaveLength(4);
  }
});

it("never shows a secret in an error", () => {
  const password = "hunter2-very-secret";
  const token = "tok-very-secret";
  try {
    renderNode({
      containerdVersion: "1.7",
      registries: {
        "docker.io": { mirrors: [{ url: "https://m.test", auth: { password }, headers: { "X-Key": `${token}\n` } }] },
        "ghcr.io": { mirrors: [{ url: "ftp://m.test", auth: { token, username: "u", password } }] },
      },
    });
    throw new Error("accepted");
  } catch (e) {
    expect((e as Error).message).toMatch(/auth: \[secret\]/);
    expect((e as Error).message).not.toContain(password);
    expect((e as Error).message).not.toContain(token);
  }
});
