/**
 * config.toml for one node, at the plugin paths of its config version (containerd-facts, "Where
 * settings live"): version 2 for containerd 1.x, version 3 for 2.0-2.2, version 4 for 2.3+ (the CRI
 * tables of 3, with the server settings moved into io.containerd.server.v1.* plugins).
 */
import type { RuntimeSpec } from "../spec/types";
import type { NormalizedSpec } from "../spec/validate";
import { atLeast, usesCniBinDirs } from "../spec/version";
import { CRI_IMAGES, CRI_RUNTIME, CRI_V1X, SERVER_GRPC, SERVER_TTRPC, TRANSFER } from "../spec/plugins";
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
  set(root, "imports", s.imports && s.imports.length > 0 ? [...s.imports] : undefined);
  set(root, "root", s.root);
  set(root, "state", s.state);
  set(root, "required_plugins", s.requiredPlugins ? [...s.requiredPlugins] : undefined);
  set(root, "disabled_plugins", s.disabledPlugins ? [...s.disabledPlugins] : undefined);
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
  const plugins: Table = {};
  if (n.configVersion === 2) {
    const cri: Table = { containerd, registry };
    set(cri, "sandbox_image", s.sandboxImage);
    set(cri, "max_concurrent_downloads", s.maxConcurrentDownloads);
    set(containerd, "snapshotter", s.snapshotter);
    if (Object.keys(cni).length > 0) cri.cni = cni;
    plugins[CRI_V1X] = cri;
  } else {
    const images: Table = { registry };
    set(images, "snapshotter", s.snapshotter);
    if (s.maxConcurrentDownloads !== undefined && atLeast(n.version, 2, 1)) {
      // 2.1+ pulls CRI images through the transfer service, which has its own limit; the CRI one at
      // anything but 3 would switch pulls back to the local path (CheckLocalImagePullConfigs).
      plugins[TRANSFER] = { max_concurrent_downloads: s.maxConcurrentDownloads };
    } else {
      set(images, "max_concurrent_downloads", s.maxConcurrentDownloads);
    }
    if (s.sandboxImage) images.pinned_images = { sandbox: s.sandboxImage };
    const runtime: Table = { containerd };
    if (Object.keys(cni).length > 0) runtime.cni = cni;
    Object.assign(plugins, { [CRI_IMAGES]: images, [CRI_RUNTIME]: runtime });
  }
  if (s.grpcAddress) {
    if (n.configVersion === 4) {
      // Version 4 reads the server settings from plugins. Before 4, an unset ttrpc address follows
      // the gRPC one (address + ".ttrpc"); in 4 the ttrpc plugin keeps its own default
      // (/run/containerd/containerd.sock.ttrpc), so a moved socket would leave the shims' socket
      // behind, beside another containerd's. Write both to keep 1.x-3 behaviour
      // (cmd/containerd/server/config/config.go, serviceMigrate, v2.3.7).
      plugins[SERVER_GRPC] = { address: s.grpcAddress };
      plugins[SERVER_TTRPC] = { address: `${s.grpcAddress}.ttrpc` };
    } else {
      root.grpc = { address: s.grpcAddress };
    }
  }
  root.plugins = plugins;
  return managedToml(deepMerge(root, n.settings), { first: ["version", "imports"] });
}
