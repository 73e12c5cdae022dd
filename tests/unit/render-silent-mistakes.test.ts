/**
 * Bad input that real users send and that used to pass without a word: a Harbor proxy-project URL
 * without overridePath, image references of any length, and registry entries that change nothing.
 */
import { SpecError, renderNode } from "../../provider/src";

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
