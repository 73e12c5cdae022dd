/**
 * config.toml for one node, at the plugin paths of its config version (containerd-facts, "Where
 * settings live"): version 2 for containerd 1.x, version 3 for 2.x.
 */
import type { RuntimeSpec } from "../spec/types";
import type { NormalizedSpec } from "../spec/validate";
import { usesCniBinDirs } from "../spec/version";
import { CRI_IMAGES, CRI_RUNTIME, CRI_V1X } from "./plugins";
import { deepMerge, managedToml } from "./toml";

type Table = Record<string, unknown>;

const RUNC_V2 = "io.containerd.runc.v2";

function set(t: Table, key: string, value: unknown): void {
  if (value !== undefined) t[key] = value;
}

function runtimeTable(rt: RuntimeSpec, systemdCgroup: boolean | undefined): Table {
  const t: Table = { runtime_type: rt.runtimeType ?? RUNC_V2 };
  set(t, "runtime_path", rt.runtimePath);
  set(t, "privileged_without_host_devices", rt.privilegedWithoutHostDevices);
  set(t, "pod_annotations", rt.podAnnotations ? [...rt.podAnnotations] : undefined);
  set(t, "container_annotations", rt.containerAnnotations ? [...rt.containerAnnotations] : undefined);
  set(t, "base_runtime_spec", rt.baseRuntimeSpec);
  set(t, "snapshotter", rt.snapshotter);
  const options: Table = { ...(rt.options ?? {}) };
  // SystemdCgroup belongs to every runc-shim runtime (nvidia's included), unless set explicitly.
  if (systemdCgroup !== undefined && t.runtime_type === RUNC_V2 && !("SystemdCgroup" in options)) {
    options.SystemdCgroup = systemdCgroup;
  }
  if (Object.keys(options).length > 0) t.options = options;
  return t;
}

export function renderConfigToml(n: NormalizedSpec): string {
  const s = n.spec;
  const root: Table = { version: n.configVersion };
  set(root, "root", s.root);
  set(root, "state", s.state);
  set(root, "required_plugins", s.requiredPlugins ? [...s.requiredPlugins] : undefined);
  set(root, "disabled_plugins", s.disabledPlugins ? [...s.disabledPlugins] : undefined);
  if (s.grpcAddress) root.grpc = { address: s.grpcAddress };
  if (s.debugLevel) root.debug = { level: s.debugLevel };

  const runtimes: Table = {};
  const declared = { runc: {}, ...(s.runtimes ?? {}) } as Record<string, RuntimeSpec>;
  for (const [name, rt] of Object.entries(declared)) runtimes[name] = runtimeTable(rt, s.systemdCgroup);
  const containerd: Table = { runtimes };
  set(containerd, "default_runtime_name", s.defaultRuntime);

  const cni: Table = {};
  if (s.cni?.binDir !== undefined) {
    if (usesCniBinDirs(n.version)) cni.bin_dirs = [s.cni.binDir];
    else cni.bin_dir = s.cni.binDir;
  }
  set(cni, "conf_dir", s.cni?.confDir);

  const registry = { config_path: n.registryConfigPath };
  let plugins: Table;
  if (n.configVersion === 2) {
    const cri: Table = { containerd, registry };
    set(cri, "sandbox_image", s.sandboxImage);
    set(cri, "max_concurrent_downloads", s.maxConcurrentDownloads);
    set(containerd, "snapshotter", s.snapshotter);
    if (Object.keys(cni).length > 0) cri.cni = cni;
    plugins = { [CRI_V1X]: cri };
  } else {
    const images: Table = { registry };
    set(images, "snapshotter", s.snapshotter);
    set(images, "max_concurrent_downloads", s.maxConcurrentDownloads);
    if (s.sandboxImage) images.pinned_images = { sandbox: s.sandboxImage };
    const runtime: Table = { containerd };
    if (Object.keys(cni).length > 0) runtime.cni = cni;
    plugins = { [CRI_IMAGES]: images, [CRI_RUNTIME]: runtime };
  }
  root.plugins = plugins;
  return managedToml(deepMerge(root, n.settings), { first: ["version"] });
}
