import type { RenderResult } from "../spec/types";
import { normalizeSpec } from "../spec/validate";
import { renderConfigToml } from "./config-toml";
import { renderRegistry } from "./hosts-toml";

/**
 * Renders every file a node needs from its spec: config.toml first, then for each registry (by
 * directory name) its certificate files and hosts.toml. Pure and deterministic: the same spec gives
 * the same bytes whatever its key order. Throws SpecError listing every problem of a bad spec.
 */
export function renderNode(spec: unknown, options: { subject?: string } = {}): RenderResult {
  const n = normalizeSpec(spec, options.subject);
  const files: RenderResult["files"] = [
    { path: n.configFile, content: renderConfigToml(n), mode: 0o644, secret: false, kind: "config" },
  ];
  for (const reg of n.registries) files.push(...renderRegistry(reg, n.registryConfigPath));
  return { configVersion: n.configVersion, files, warnings: n.warnings };
}
