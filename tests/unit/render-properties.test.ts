/** Properties over generated specs: determinism, and hostile strings escaped or refused, never raw. */
import fc from "fast-check";
import { parse } from "smol-toml";
import { SpecError, renderNode } from "../../provider/src";

/** The same object with its keys in another order, at every depth. */
function shuffleKeys(v: unknown, rand: () => number): unknown {
  if (Array.isArray(v)) return v.map((x) => shuffleKeys(x, rand));
  if (typeof v !== "object" || v === null) return v;
  const entries = Object.entries(v as Record<string, unknown>);
  for (let i = entries.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [entries[i], entries[j]] = [entries[j], entries[i]];
  }
  return Object.fromEntries(entries.map(([k, x]) => [k, shuffleKeys(x, rand)]));
}

const label = fc.stringMatching(/^[a-z][a-z0-9]{0,8}$/);
const host = fc.tuple(label, label).map(([a, b]) => `${a}.${b}.test`);
const mirrorUrl = fc.tuple(fc.constantFrom("http", "https"), host, fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }))
  .map(([s, h, p]) => `${s}://${h}${p ? `:${p}` : ""}`);
const version = fc.constantFrom("1.6.20", "1.7", "1.7.24", "2.0.7", "2.1", "2.2.0");

const spec = fc.record(
  {
    containerdVersion: version,
    systemdCgroup: fc.boolean(),
    sandboxImage: fc.constantFrom("registry.k8s.io/pause:3.10", "example.test:5000/pause:3.9"),
    maxConcurrentDownloads: fc.integer({ min: 1, max: 20 }),
    registries: fc.dictionary(host, fc.record({ mirrors: fc.uniqueArray(mirrorUrl, { maxLength: 3 }) }), { maxKeys: 4 }),
    settings: fc.record({ oom_score: fc.integer({ min: -1000, max: 0 }), debug: fc.record({ format: fc.constantFrom("text", "json") }) }),
  },
  { requiredKeys: ["containerdVersion"] },
);

test("same spec in any key order gives the same bytes", () => {
  fc.assert(
    fc.property(spec, fc.integer(), (s, seed) => {
      let x = seed;
      const rand = () => ((x = (x * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
      const a = renderNode(s);
      const b = renderNode(shuffleKeys(s, rand));
      expect(b).toEqual(a);
    }),
    { numRuns: 200 },
  );
});

/** Strings that break TOML or a shell when spliced raw. */
const hostile = fc.oneof(
  fc.string(),
  fc.constantFrom('"', "'", "\\", "\n", "\r\n", "$(touch /tmp/pwned)", "`id`", '"]\n[host."evil"]\n', "'''", '"""', "\u0000", "${IFS}", "\u2028"),
  fc.array(fc.constantFrom('"', "'", "\\", "\n", "$(", ")", "`", "[", "]", "=", "#", "a", " "), { maxLength: 12 }).map((a) => a.join("")),
);

/** Either refused with a SpecError, or every value survives a TOML parse exactly. */
function escapedOrRefused(build: (h: string) => unknown, read: (files: Record<string, any>) => unknown, h: string): void {
  let r;
  try {
    r = renderNode(build(h));
  } catch (e) {
    expect(e).toBeInstanceOf(SpecError);
    return;
  }
  const parsed: Record<string, any> = {};
  for (const f of r.files) if (!f.kind.startsWith("cert")) parsed[f.path] = parse(f.content);
  expect(read(parsed)).toBe(h);
}

test("hostile header values are escaped exactly or refused", () => {
  fc.assert(
    fc.property(hostile, (h) =>
      escapedOrRefused(
        (v) => ({ containerdVersion: "1.7", registries: { "docker.io": { mirrors: [{ url: "https://m.test", headers: { "X-A": v } }] } } }),
        (p) => p["/etc/containerd/certs.d/docker.io/hosts.toml"].host["https://m.test"].header["X-A"],
        h,
      ),
    ),
    { numRuns: 300 },
  );
});

test("hostile passwords end up base64 inside the Authorization header, never raw (or are refused)", () => {
  fc.assert(
    fc.property(hostile, (h) => {
      let r;
      try {
        r = renderNode({ containerdVersion: "2.1", registries: { "docker.io": { mirrors: [{ url: "https://m.test", auth: { username: "u", password: h } }] } } });
      } catch (e) {
        expect(e).toBeInstanceOf(SpecError);
        expect(h).toContain("\u0000");
        return;
      }
      const hosts = r.files.find((f) => f.kind === "hosts")!;
      const auth = (parse(hosts.content) as any).host["https://m.test"].header.Authorization as string;
      expect(Buffer.from(auth.replace(/^Basic /, ""), "base64").toString("utf8")).toBe(`u:${h}`);
    }),
    { numRuns: 300 },
  );
});

test("hostile settings strings are escaped exactly or refused", () => {
  fc.assert(
    fc.property(hostile, (h) =>
      escapedOrRefused(
        (v) => ({ containerdVersion: "1.6.20", settings: { plugins: { "io.containerd.grpc.v1.cri": { sandbox_image: v } } } }),
        (p) => p["/etc/containerd/config.toml"].plugins["io.containerd.grpc.v1.cri"].sandbox_image,
        h,
      ),
    ),
    { numRuns: 300 },
  );
});

test("hostile mirror URLs, sandbox images and paths are refused", () => {
  fc.assert(
    fc.property(hostile.filter((h) => /["'\\\n`$ ]/.test(h)), (h) => {
      expect(() => renderNode({ containerdVersion: "1.7", registries: { "docker.io": { mirrors: [`https://m.test/${h}`] } } })).toThrow(SpecError);
      expect(() => renderNode({ containerdVersion: "1.7", sandboxImage: `pause${h}:3.9` })).toThrow(SpecError);
      expect(() => renderNode({ containerdVersion: "1.7", configFile: `/etc/${h}/config.toml` })).toThrow(SpecError);
    }),
    { numRuns: 300 },
  );
});

test("warnings about several registries come in the same order whatever the spec's key order (1.x, credentials on two registries)", () => {
  const auth = { username: "robot", password: "pw" };
  const a = { "b.example.test": { mirrors: [{ url: "https://b.test", auth }] }, "a.example.test": { mirrors: [{ url: "https://a.test", auth }] } };
  const b = { "a.example.test": a["a.example.test"], "b.example.test": a["b.example.test"] };
  const warnings = (registries: object) => renderNode({ containerdVersion: "1.7.24", registries } as never).warnings;
  expect(warnings(a).length).toBe(2);
  expect(warnings(a)).toEqual(warnings(b));
  expect(warnings(a)[0]).toMatch(/^registries\["a\.example\.test"\]/);
});
