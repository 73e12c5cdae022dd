/**
 * What each containerd generation silently does with a rendered config.toml, shown by starting the
 * real daemons (2.1.9 from Debian, 2.2.9 and 2.3.7 built from containerd's Go module) in scratch
 * directories and reading what they log, beside what renderNode warns about.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { renderNode } from "../../provider/src";
import type { NodeSpec } from "../../provider/src";
import { ScratchNode, scratchNode } from "../support/scratch-node";

jest.setTimeout(60_000);

const FALLBACK = "Falling back to local image pull mode";

function start(node: ScratchNode, spec: NodeSpec): string {
  const rendered = renderNode(spec);
  fs.writeFileSync(node.configFile, rendered.files[0].content);
  fs.rmSync(path.join(node.dir, "containerd.log"), { force: true });
  const r = spawnSync("sh", [node.restartScript, node.dir, node.bin.binDir], { encoding: "utf8", timeout: 30_000 });
  if (r.status !== 0) throw new Error(`containerd ${node.bin.version} did not start: ${r.stderr}`);
  // The CRI images plugin decides its pull path while it loads, before the socket answers.
  return fs.readFileSync(path.join(node.dir, "containerd.log"), "utf8");
}

describe.each(["2.1", "2.2", "2.3"] as const)("containerd %s pulls CRI images through the transfer service", (gen) => {
  let node: ScratchNode;
  beforeAll(() => {
    node = scratchNode(gen);
  });
  afterAll(() => node?.remove());

  it("keeps it when maxConcurrentDownloads is set: the limit goes to the transfer service", () => {
    const spec = { ...node.baseSpec(), maxConcurrentDownloads: 5 };
    const rendered = renderNode(spec);
    expect(rendered.files[0].content).toContain('[plugins."io.containerd.transfer.v1.local"]\nmax_concurrent_downloads = 5');
    expect(rendered.warnings).toEqual([]);
    const log = start(node, spec);
    // The CRI images plugin has loaded (it decides the pull path while loading), and the CRI
    // plugins after it too: had it fallen back, the line would be there by now.
    expect(log).toMatch(/loading plugin.*id=io\.containerd\.cri\.v1\.images/);
    expect(log).toMatch(/loading plugin.*id=io\.containerd\.grpc\.v1\.cri/);
    expect(log).not.toContain(FALLBACK);
  });

  it("falls back to the local pull path when the CRI plugin's own limit is set, and renderNode says so", () => {
    const base = node.baseSpec();
    const plugins = (base.settings!.plugins ?? {}) as Record<string, unknown>;
    const spec = { ...base, settings: { plugins: { ...plugins, "io.containerd.cri.v1.images": { max_concurrent_downloads: 5 } } } };
    expect(renderNode(spec).warnings.join("\n")).toContain(`max_concurrent_downloads: with max_concurrent_downloads other than 3`);
    const log = start(node, spec);
    expect(log).toContain(`Found 'MaxConcurrentDownloads' in CRI config which is incompatible with transfer service`);
    expect(log).toContain(FALLBACK);
  });
});
