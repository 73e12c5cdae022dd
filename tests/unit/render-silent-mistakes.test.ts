/**
 * Bad input that real users send and that used to pass without a word: a Harbor proxy-project URL
 * without overridePath, image references of any length, and registry entries that change nothing.
 */
import { SpecError, renderNode } from "../../provider/src";
import { operationProblems } from "../../provider/src/component/containerd-node";

const base = { containerdVersion: "1.7.22" };
const hub = (registry: unknown) => ({ ...base, registries: { "docker.io": registry } });

/** The message of the SpecError that `spec` gets, or "accepted". */
function refusal(spec: unknown): string {
  try {
    renderNode(spec);
  } catch (e) {
    expect(e).toBeInstanceOf(SpecError);
    return (e as Error).message;
  }
  return "accepted";
}

describe("a URL whose path starts with /v2/, without overridePath", () => {
  // containerd appends /v2 to a path that does not end in /v2 unless override_path is set
  // (remotes/docker/config/hosts.go): .../v2/dockerhub becomes .../v2/dockerhub/v2.
  const harbor = "https://harbor.example.com/v2/dockerhub";
  const fix = `has a path that starts with /v2/, the registry API root, and without override_path containerd appends /v2 to it again, so every pull through it fails; add overridePath: true: { url: "${harbor}", overridePath: true }`;

  test.each<[string, unknown, string]>([
    ["a mirror given as a string", hub({ mirrors: [harbor] }), `registries["docker.io"].mirrors[0]: "${harbor}" ${fix}`],
    ["a mirror given as an object", hub({ mirrors: [{ url: harbor, capabilities: ["pull"] }] }), `registries["docker.io"].mirrors[0]: "${harbor}" ${fix}`],
    ["a mirror with overridePath: false", hub({ mirrors: ["https://m.test", { url: harbor, overridePath: false }] }), `registries["docker.io"].mirrors[1]: "${harbor}" ${fix}`],
    ["the server", hub({ server: harbor }), `registries["docker.io"].server: "${harbor}" ${fix}`],
    ["the last mirror of skipFallback, which becomes the server", hub({ mirrors: [harbor], skipFallback: true }), `registries["docker.io"].mirrors[0]: "${harbor}" ${fix}`],
    [
      "a legacy registry.mirrors endpoint",
      { ...base, settings: { plugins: { "io.containerd.grpc.v1.cri": { registry: { mirrors: { "docker.io": { endpoint: [harbor] } } } } } } },
      `settings.plugins["io.containerd.grpc.v1.cri"].registry.mirrors["docker.io"].endpoint[0]: "${harbor}" has a path that starts with /v2/, the registry API root, and containerd appends /v2 to it again; declare it under registries["docker.io"] with overridePath: true`,
    ],
  ])("is refused as %s, naming the field, the value and the fix", (_name, spec, message) => {
    expect(refusal(spec)).toContain(message);
  });

  test.each([
    ["overridePath: true", { url: harbor, overridePath: true }],
    ["v2 inside a longer first segment", "https://m.test/registry-v2/hub"],
    ["v2 as a later segment", "https://m.test/cache/v2/hub"],
    ["a path that ends in /v2 (containerd uses it as it is)", "https://m.test/v2"],
    ["the same with a trailing slash", "https://m.test/v2/"],
    ["a first segment that only starts with v2", "https://m.test/v2cache/hub"],
    ["no path", "https://m.test"],
  ])("lets %s through", (_name, mirror) => {
    expect(refusal(hub({ mirrors: [mirror] }))).toBe("accepted");
    expect(refusal(hub({ server: mirror }))).toBe("accepted");
  });
});

describe("image references: the distribution reference grammar and its bounds", () => {
  const megabyte = "a".repeat(1 << 20);
  const prefix = (value: string) => `sandboxImage: "${value}" is not an image reference such as "registry.k8s.io/pause:3.10": `;

  it("refuses a megabyte sandboxImage in a short message that says what is allowed", () => {
    const message = refusal({ ...base, sandboxImage: megabyte });
    expect(message).toContain(`sandboxImage: "${"a".repeat(76)}... is not an image reference such as "registry.k8s.io/pause:3.10": its name (domain and path) is 1048576 characters long; at most 255 are allowed`);
    expect(message.length).toBeLessThan(400);
  });

  test.each<[string, string, string]>([
    ["a name of 256 characters", `registry.k8s.io/${"p".repeat(240)}:3.10`, "its name (domain and path) is 256 characters long; at most 255 are allowed"],
    ["a tag of 129 characters", `registry.k8s.io/pause:${"1".repeat(129)}`, `the tag "${"1".repeat(76)}... is not a letter, digit or _ followed by at most 127 letters, digits, _ . or -`],
    ["a tag starting with a dot", "registry.k8s.io/pause:.3", 'the tag ".3" is not a letter, digit or _ followed by at most 127 letters, digits, _ . or -'],
    ["a short digest", "registry.k8s.io/pause@sha256:abc", 'the digest "sha256:abc" is not sha256:<64 hex digits>, sha384:<96> or sha512:<128>, in lower case'],
    ["a digest of an unknown algorithm", `registry.k8s.io/pause@md5:${"a".repeat(32)}`, `the digest "md5:${"a".repeat(32)}" is not sha256:<64 hex digits>`],
    ["an upper-case digest", `registry.k8s.io/pause@sha256:${"A".repeat(64)}`, "is not sha256:<64 hex digits>, sha384:<96> or sha512:<128>, in lower case"],
    ["a megabyte digest", `registry.k8s.io/pause@sha256:${megabyte}`, 'the digest "sha256:aaaa'],
    ["a domain label starting with a dash", "-registry.test:5000/pause:3.10", 'the domain "-registry.test:5000" is not host name labels of letters, digits and - joined by dots (or an [IPv6] address), with an optional :port'],
    ["an upper-case path", "Registry.k8s.io/Pause:3.9", 'the path component "Pause" is not lower-case letters and digits joined by one . or _, by __, or by dashes'],
    ["an empty path component", "registry.k8s.io//pause", 'the path component "" is not lower-case letters and digits'],
    ["no name", ":3.10", "it has no name (repository path)"],
  ])("refuses %s, saying which part is wrong", (_name, image, why) => {
    const message = refusal({ ...base, sandboxImage: image });
    expect(message).toContain(image.length > 78 ? "sandboxImage: " : prefix(image));
    expect(message).toContain(why);
    expect(message.length).toBeLessThan(500);
  });

  test.each([
    ["a name of exactly 255 characters", `registry.k8s.io/${"p".repeat(239)}:3.10`],
    ["a tag of exactly 128 characters", `registry.k8s.io/pause:_${"x".repeat(127)}`],
    ["a sha256 digest", `registry.k8s.io/pause:3.10@sha256:${"0".repeat(64)}`],
    ["a sha512 digest", `registry.k8s.io/pause@sha512:${"f".repeat(128)}`],
    ["a port and separators", "my-registry.test:5000/team__a/app.v2--x/pause_1:v1.2-rc_3"],
    ["an IPv6 host", "[fd00::1]:5000/pause:3.10"],
    ["no domain", "pause:3.10"],
  ])("accepts %s", (_name, image) => {
    expect(refusal({ ...base, sandboxImage: image })).toBe("accepted");
  });

  it("holds ContainerdNode's probeImages to the same grammar, in a short message", () => {
    const problems = operationProblems({ probeImages: { "docker.io": `docker.io/library/${megabyte}:1` } });
    expect(problems).toHaveLength(1);
    expect(problems[0].path).toBe('probeImages["docker.io"]');
    expect(problems[0].message).toMatch(/^"docker\.io\/library\/a+\.\.\. is not an image reference such as "docker\.io\/library\/busybox:1\.36": its name \(domain and path\) is 1048594 characters long; at most 255 are allowed$/);
    expect(problems[0].message.length).toBeLessThan(400);
    expect(operationProblems({ probeImages: { "docker.io": "docker.io/library/busybox:1.36" } })).toEqual([]);
    expect(operationProblems({ probeImages: { "docker.io": "docker.io/library/busybox@sha256:abc" } })[0].message).toContain(
      'the digest "sha256:abc" is not sha256:<64 hex digits>',
    );
  });
});

describe("a registry entry that changes nothing", () => {
  const nothing = (ns: string, upstream: string) =>
    `registries["${ns}"]: has no mirror and no server, so it changes nothing: its hosts.toml only names the registry's own upstream (${upstream}), where containerd pulls from anyway. Give it mirrors or a server, or remove the entry.`;

  test.each<[string, unknown]>([
    ["{}", {}],
    ["mirrors: []", { mirrors: [] }],
    ["only skipFallback: false", { skipFallback: false }],
  ])("is warned about when it is %s", (_name, entry) => {
    const r = renderNode({ ...base, registries: { "docker.io": entry, "quay.io": { mirrors: ["https://m.test"] } } });
    expect(r.warnings).toEqual([nothing("docker.io", "https://registry-1.docker.io")]);
  });

  it("names the namespace's own upstream for other registries", () => {
    expect(renderNode({ ...base, registries: { "10.0.0.1:5000": { mirrors: [] } } }).warnings).toEqual([nothing("10.0.0.1:5000", "https://10.0.0.1:5000")]);
  });

  it('is not warned about when it has a server, or when it takes its registry out of "*"', () => {
    expect(renderNode({ ...base, registries: { "docker.io": { mirrors: [], server: "https://hub.m.test" } } }).warnings).toEqual([]);
    // Its own directory is looked up before _default: docker.io then goes straight to its upstream.
    expect(renderNode({ ...base, registries: { "docker.io": {}, "*": { mirrors: ["https://m.test"] } } }).warnings).toEqual([]);
  });
});
