/**
 * Every rendered config.toml is loaded by a real containerd of its generation: Debian's 1.6.20 and
 * 1.7.24 for version 2 files, 2.1.9 for version 3 files. A missing binary fails the test.
 */
import { parse } from "smol-toml";
import { renderNode } from "../../provider/src";
import { ContainerdBinaries, containerdBinaries } from "../support/containerd-binaries";
import { configDump, missingValues } from "../support/config-dump";
import { GOLDEN_CASES } from "../fixtures/specs";

const bins = {
  "1.6": containerdBinaries("1.6"),
  "1.7": containerdBinaries("1.7"),
  "2.1": containerdBinaries("2.1"),
};

function loaders(configVersion: 2 | 3): ContainerdBinaries[] {
  return configVersion === 2 ? [bins["1.6"], bins["1.7"]] : [bins["2.1"]];
}

const rows = GOLDEN_CASES.flatMap(({ name, spec }) => {
  const r = renderNode(spec);
  return loaders(r.configVersion).map((bin) => ({ name, bin, version: bin.version, rendered: r }));
});

describe.each(rows)("$name loaded by containerd $version", ({ bin, rendered }) => {
  const config = rendered.files.find((f) => f.kind === "config")!;

  it("passes `config dump` and holds every rendered value at its path", () => {
    const dump = configDump(bin, config.content);
    expect(dump.stderr).not.toMatch(/level=(error|fatal)/);
    expect(dump.status).toBe(0);
    expect(missingValues(parse(config.content) as Record<string, unknown>, dump.loaded!)).toEqual([]);
  });

  if (bin.generation === "2.1") {
    it("gives no 'Ignoring unknown key' warning", () => {
      const dump = configDump(bin, config.content);
      expect(dump.stderr).not.toContain("Ignoring unknown key");
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
