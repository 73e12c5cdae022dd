/**
 * Every rendered config.toml is loaded by a real containerd of its generation: Debian's 1.6.20 and
 * 1.7.24 for version 2 files, Debian's 2.1.9 for 2.0/2.1 targets, and 2.2.9 and 2.3.7 built from
 * containerd's Go module for 2.2 and 2.3 targets (version 3 and 4 files). A missing binary fails.
 */
import { parse } from "smol-toml";
import { renderNode } from "../../provider/src";
import { ContainerdBinaries, GENERATIONS, Generation, containerdBinaries, generationFor } from "../support/containerd-binaries";
import { configDump, missingValues } from "../support/config-dump";
import { GOLDEN_CASES } from "../fixtures/specs";

const bins = Object.fromEntries(GENERATIONS.map((g) => [g, containerdBinaries(g)])) as Record<Generation, ContainerdBinaries>;

/** A version 2 file is loaded by both 1.x daemons; a 2.x file by the daemon of its target. */
function loaders(containerdVersion: string, configVersion: number): ContainerdBinaries[] {
  return configVersion === 2 ? [bins["1.6"], bins["1.7"]] : [bins[generationFor(containerdVersion)]];
}

const rows = GOLDEN_CASES.flatMap(({ name, spec }) => {
  const r = renderNode(spec);
  return loaders(spec.containerdVersion, r.configVersion).map((bin) => ({ name, bin, version: bin.version, rendered: r }));
});

describe.each(rows)("$name loaded by containerd $version", ({ bin, rendered }) => {
  const config = rendered.files.find((f) => f.kind === "config")!;

  it("passes `config dump` and holds every rendered value at its path", () => {
    const dump = configDump(bin, config.content);
    expect(dump.stderr).not.toMatch(/level=(error|fatal)/);
    expect(dump.status).toBe(0);
    expect(missingValues(parse(config.content) as Record<string, unknown>, dump.loaded!)).toEqual([]);
  });

  if (bin.generation.startsWith("2.")) {
    it("gives no 'Ignoring unknown key' warning and needs no migration", () => {
      const dump = configDump(bin, config.content);
      expect(dump.stderr).not.toContain("Ignoring unknown key");
      // A file of an older version is migrated in memory at every start, with this warning.
      expect(dump.stderr).not.toContain("Configuration migrated");
    });
  }

  it("renders hosts.toml files that parse and have at least one [host] table", () => {
    for (const f of rendered.files.filter((x) => x.kind === "hosts")) {
      const doc = parse(f.content) as { host?: Record<string, unknown> };
      expect(Object.keys(doc.host ?? {}).length).toBeGreaterThan(0);
    }
  });
});

describe("the loaded-values check can fail", () => {
  // The checks above are only worth something if a misplaced key is caught: a v2 key in a v3 file.
  const misplaced = 'version = 3\n[plugins."io.containerd.grpc.v1.cri"]\nsandbox_image = "example.test/pause:1"\n';

  it(`containerd ${bins["2.1"].version} warns and drops a 1.x key in a version 3 file`, () => {
    const dump = configDump(bins["2.1"], misplaced);
    expect(dump.status).toBe(0);
    expect(dump.stderr).toContain("Ignoring unknown key");
    expect(missingValues(parse(misplaced) as Record<string, unknown>, dump.loaded!)).toHaveLength(1);
  });

  it(`containerd ${bins["1.6"].version} drops a 2.x plugin table silently`, () => {
    const text = 'version = 2\n[plugins."io.containerd.cri.v1.images".pinned_images]\nsandbox = "example.test/pause:1"\n';
    const dump = configDump(bins["1.6"], text);
    expect(dump.status).toBe(0);
    expect(missingValues(parse(text) as Record<string, unknown>, dump.loaded!)).toEqual([
      'plugins.io.containerd.cri.v1.images.pinned_images.sandbox: intended "example.test/pause:1", loaded undefined',
    ]);
  });

  it(`containerd ${bins["1.7"].version} refuses a wrong scalar type`, () => {
    const dump = configDump(bins["1.7"], 'version = 2\n[plugins."io.containerd.grpc.v1.cri"]\nmax_concurrent_downloads = "three"\n');
    expect(dump.status).not.toBe(0);
  });
});

describe("config version 4 and containerd 2.2 / 2.3, as the real daemons load it", () => {
  const server = (loaded: Record<string, unknown>, p: string) =>
    (loaded.plugins as Record<string, Record<string, unknown>>)[`io.containerd.server.v1.${p}`];

  it(`containerd ${bins["2.2"].version} refuses a version 4 file, so 2.2 targets get version 3`, () => {
    const dump = configDump(bins["2.2"], 'version = 4\n');
    expect(dump.status).not.toBe(0);
    expect(dump.stderr).toContain("expected containerd config version equal to or less than `3`, got `4`");
    expect(renderNode({ containerdVersion: "2.2.9" }).configVersion).toBe(3);
  });

  it(`containerd ${bins["2.3"].version} migrates a version 3 file at every load, and not a version 4 one`, () => {
    const v3 = configDump(bins["2.3"], 'version = 3\n[grpc]\naddress = "/run/x/containerd.sock"\n');
    expect(v3.status).toBe(0);
    expect(v3.stderr).toContain("Configuration migrated from version 3");
    expect(server(v3.loaded!, "grpc").address).toBe("/run/x/containerd.sock");
    // Before version 4 the ttrpc socket follows the gRPC one.
    expect(server(v3.loaded!, "ttrpc").address).toBe("/run/x/containerd.sock.ttrpc");
    const rendered = renderNode({ containerdVersion: "2.3", grpcAddress: "/run/x/containerd.sock" });
    expect(rendered.configVersion).toBe(4);
    const v4 = configDump(bins["2.3"], rendered.files[0].content);
    expect(v4.stderr).not.toContain("Configuration migrated");
    expect(server(v4.loaded!, "grpc").address).toBe("/run/x/containerd.sock");
    expect(server(v4.loaded!, "ttrpc").address).toBe("/run/x/containerd.sock.ttrpc");
  });

  it(`containerd ${bins["2.3"].version} keeps the default ttrpc socket in version 4 unless it is written`, () => {
    const dump = configDump(bins["2.3"], 'version = 4\n[plugins."io.containerd.server.v1.grpc"]\naddress = "/run/x/containerd.sock"\n');
    expect(server(dump.loaded!, "ttrpc").address).toBe("/run/containerd/containerd.sock.ttrpc");
  });

  it(`containerd ${bins["2.3"].version} silently ignores a top-level [grpc] table in a version 4 file (so settings.grpc is refused)`, () => {
    const dump = configDump(bins["2.3"], 'version = 4\n[grpc]\naddress = "/run/x/containerd.sock"\n');
    expect(dump.status).toBe(0);
    expect(dump.stderr).not.toMatch(/level=(warning|error)/);
    expect(server(dump.loaded!, "grpc").address).toBe("/run/containerd/containerd.sock");
    expect(() => renderNode({ containerdVersion: "2.3", settings: { grpc: { address: "/run/x/containerd.sock" } } })).toThrow(
      'settings.grpc: is a server setting of config version 3 and earlier; containerd 2.3 gets config version 4, where it lives at plugins."io.containerd.server.v1.grpc"',
    );
  });
});
