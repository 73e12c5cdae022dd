/**
 * Legacy `registry.mirrors` tables (deprecated since containerd 1.5, still in countless guides:
 * `[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"] endpoint = [...]`).
 *
 * containerd refuses `mirrors` together with a non-empty `config_path` (the CRI plugin fails to
 * load: containerd-facts, "A running daemon can be degraded"), and we always set `config_path`, so
 * such a table found in `settings` is moved into hosts.toml files instead.
 */
import { isRecord } from "../records";
import { CRI_IMAGES, CRI_V1X } from "./plugins";

export interface LegacyMirror {
  /** Registry namespace as written ("docker.io", "*"). */
  namespace: string;
  /** The `endpoint` value as found (validated by the caller). */
  endpoints: unknown;
  /** Field path of the entry, for messages. */
  path: string;
}

export interface LegacyMirrors {
  /** settings with every `registry.mirrors` table removed (a copy; the input is untouched). */
  settings: Record<string, unknown>;
  mirrors: LegacyMirror[];
}


/** Takes `plugins."<cri>".registry.mirrors` out of settings, under either CRI plugin ID. */
export function extractLegacyMirrors(settings: Readonly<Record<string, unknown>>): LegacyMirrors {
  const copy = structuredClone(settings) as Record<string, unknown>;
  const mirrors: LegacyMirror[] = [];
  const plugins = copy.plugins;
  if (!isRecord(plugins)) return { settings: copy, mirrors };
  for (const id of [CRI_V1X, CRI_IMAGES]) {
    const cri = plugins[id];
    if (!isRecord(cri) || !isRecord(cri.registry) || !("mirrors" in cri.registry)) continue;
    const registry = cri.registry;
    const table = registry.mirrors;
    const path = `settings.plugins["${id}"].registry.mirrors`;
    delete registry.mirrors;
    if (Object.keys(registry).length === 0) delete cri.registry;
    if (Object.keys(cri).length === 0) delete plugins[id];
    if (!isRecord(table)) {
      mirrors.push({ namespace: "", endpoints: table, path });
      continue;
    }
    for (const [namespace, entry] of Object.entries(table)) {
      mirrors.push({
        namespace,
        endpoints: isRecord(entry) ? entry.endpoint : entry,
        path: `${path}[${JSON.stringify(namespace)}]`,
      });
    }
  }
  if (Object.keys(plugins).length === 0) delete copy.plugins;
  return { settings: copy, mirrors };
}
