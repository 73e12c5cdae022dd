/**
 * The typed description of one containerd node: what `renderNode` turns into files.
 *
 * Names follow containerd's own words (`sandbox_image` -> `sandboxImage`, `config_path` ->
 * `registryConfigPath`). `S` is the type of the few leaves that may hold secrets (credentials, header
 * values, private keys): `string` for the pure renderer, `pulumi.Input<string>` for the component.
 *
 * @see https://github.com/containerd/containerd/blob/main/docs/cri/config.md
 * @see https://github.com/containerd/containerd/blob/main/docs/hosts.md
 */
import type { ConfigVersion } from "./version";

export interface NodeSpecOf<S> {
  /**
   * The containerd version the node runs, `MAJOR.MINOR` or `MAJOR.MINOR.PATCH` ("1.6", "1.7.22", "2.1.4").
   * 1.x nodes get a `version = 2` config, 2.x nodes `version = 3`, with the plugin paths of that version.
   * A missing patch counts as `.0` when a feature needs a minimum patch release (e.g. `"*"` registries
   * need 1.6.17), so give the exact version to use such features. On the node the running binary must
   * be of the same major version and at least this version.
   */
  readonly containerdVersion: string;
  /**
   * `SystemdCgroup` of every runc runtime (`runtimeType` `io.containerd.runc.v2`). Must match kubelet's
   * `cgroupDriver`.
   * @default - not written; containerd's default (false, cgroupfs) applies
   */
  readonly systemdCgroup?: boolean;
  /**
   * The pause image of pod sandboxes (`sandbox_image` on 1.x, `pinned_images.sandbox` on 2.x).
   * @default - not written; containerd's default (registry.k8s.io/pause:3.6 on 1.6, 3.8 on 1.7, 3.10 on 2.x)
   */
  readonly sandboxImage?: string;
  /**
   * The CRI snapshotter.
   * @default - not written; "overlayfs"
   */
  readonly snapshotter?: string;
  /**
   * `max_concurrent_downloads`: layers pulled at once per image.
   * @default - not written; 3
   */
  readonly maxConcurrentDownloads?: number;
  /**
   * CRI runtimes by name. `runc` always exists; add others (nvidia, kata, gvisor) here.
   * @default - { runc: { runtimeType: "io.containerd.runc.v2" } }
   */
  readonly runtimes?: Readonly<Record<string, RuntimeSpec>>;
  /**
   * `default_runtime_name`: must name a runtime of `runtimes` (or "runc").
   * @default - not written; "runc"
   */
  readonly defaultRuntime?: string;
  /** CNI directories of the CRI plugin. */
  readonly cni?: CniSpec;
  /**
   * containerd's persistent data directory (`root`).
   * @default - not written; /var/lib/containerd
   */
  readonly root?: string;
  /**
   * containerd's runtime state directory (`state`).
   * @default - not written; /run/containerd
   */
  readonly state?: string;
  /**
   * The unix socket containerd serves on (`grpc.address`); the health check talks to it.
   * @default "/run/containerd/containerd.sock"
   */
  readonly grpcAddress?: string;
  /**
   * `debug.level`.
   * @default - not written; "info"
   */
  readonly debugLevel?: "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "panic";
  /**
   * `required_plugins`: plugins whose failure makes containerd exit at start instead of running
   * degraded, e.g. ["io.containerd.grpc.v1.cri"].
   * @default - not written; none
   */
  readonly requiredPlugins?: readonly string[];
  /**
   * `disabled_plugins`.
   * @default - not written; none
   */
  readonly disabledPlugins?: readonly string[];
  /**
   * Where config.toml lives on the node.
   * @default "/etc/containerd/config.toml"
   */
  readonly configFile?: string;
  /**
   * The registry hosts directory (`registry.config_path`): one single directory, never a colon list
   * (containerd 2.1+'s transfer service does not split lists, containerd issue 12636).
   * @default "/etc/containerd/certs.d"
   */
  readonly registryConfigPath?: string;
  /**
   * config.toml's `imports`: drop-in files (paths or globs, relative to config.toml's directory)
   * such as the NVIDIA container toolkit's `conf.d/99-nvidia.toml`. On containerd 1.x an imported
   * file replaces whole plugin tables of config.toml; on 2.x it merges into them. A drop-in must
   * not have a higher `version` than config.toml. The node validates the new config.toml with its
   * imports resolved, and the program's read refuses to drop an import the node's current
   * config.toml has unless `dropImports` names it.
   * @default []
   */
  readonly imports?: readonly string[];
  /**
   * Registries by namespace: "docker.io", "registry.k8s.io", "10.0.0.1:5000", or "*" for every
   * registry without an entry of its own (rendered as `_default`, containerd 1.6.17+/1.7+). Each one
   * becomes `<registryConfigPath>/<namespace>/hosts.toml`.
   * @default {}
   */
  readonly registries?: Readonly<Record<string, RegistrySpecOf<S>>>;
  /**
   * Free-form TOML tables deep-merged over the rendered config.toml last: the escape hatch for what is
   * not typed. Use the plugin paths of the node's config version. A legacy `registry.mirrors` table is
   * moved into hosts.toml files with a warning.
   * @default {}
   */
  readonly settings?: Readonly<Record<string, unknown>>;
}

export type NodeSpec = NodeSpecOf<string>;

/** A CRI runtime (`containerd.runtimes.<name>`). */
export interface RuntimeSpec {
  /**
   * `runtime_type`, the shim.
   * @default "io.containerd.runc.v2"
   */
  readonly runtimeType?: string;
  /** `runtime_path`: the shim binary, when not found on PATH. */
  readonly runtimePath?: string;
  /** `options`, handed to the shim as they are (e.g. `BinaryName` for nvidia-container-runtime). */
  readonly options?: Readonly<Record<string, string | number | boolean | readonly string[]>>;
  /** `privileged_without_host_devices`. */
  readonly privilegedWithoutHostDevices?: boolean;
  /** `pod_annotations` passed through to the runtime. */
  readonly podAnnotations?: readonly string[];
  /** `container_annotations` passed through to the runtime. */
  readonly containerAnnotations?: readonly string[];
  /** `base_runtime_spec`: a file with the OCI spec to start from. */
  readonly baseRuntimeSpec?: string;
  /** `snapshotter` for this runtime's containers (containerd 1.7+). */
  readonly snapshotter?: string;
}

/** CNI settings of the CRI plugin. */
export interface CniSpec {
  /**
   * The CNI plugin binaries directory (`bin_dir`; `bin_dirs = [..]` on containerd 2.1+).
   * @default - not written; /opt/cni/bin
   */
  readonly binDir?: string;
  /**
   * The CNI network configuration directory (`conf_dir`).
   * @default - not written; /etc/cni/net.d
   */
  readonly confDir?: string;
}

/** One registry namespace: its upstream and its mirrors, in the order they are tried. */
export interface RegistrySpecOf<S> {
  /**
   * The upstream (`server`), tried after every mirror. To make a mirror the only source, put it here.
   * @default - the namespace's own registry: https://registry-1.docker.io for docker.io,
   * https://<namespace> otherwise; none for "*"
   */
  readonly server?: string | RegistryHostOf<S>;
  /**
   * Mirrors (`[host."<url>"]` tables), tried in this order before `server`. A plain string is a URL.
   * @default []
   */
  readonly mirrors?: ReadonlyArray<string | RegistryHostOf<S>>;
  /**
   * Pull only through the mirrors, never from the upstream (air-gapped or policy-bound fleets): the
   * last mirror is rendered as `server`, so nothing is left to fall back to. With every mirror down,
   * pulls of this registry fail. Needs a mirror, and no `server`.
   * @default false
   */
  readonly skipFallback?: boolean;
}
export type RegistrySpec = RegistrySpecOf<string>;

/** A registry endpoint: hosts.toml's `server` or one `[host."<url>"]` table. */
export interface RegistryHostOf<S> {
  /** http(s) URL; a path is allowed (see `overridePath`). */
  readonly url: string;
  /**
   * `capabilities`: "pull", "resolve", "push", and "referrers" (containerd 2.2+).
   * @default ["pull", "resolve"] for mirrors; containerd's default (all) for the server
   */
  readonly capabilities?: ReadonlyArray<"pull" | "resolve" | "push" | "referrers">;
  /** `skip_verify`: do not verify the TLS certificate (https only). */
  readonly skipVerify?: boolean;
  /**
   * `ca`: CA certificates, each a path that exists on the node or PEM content. PEM content is
   * shipped as a managed file beside this registry's hosts.toml.
   */
  readonly ca?: string | readonly string[];
  /** `client`: TLS client certificates, each a cert+key PEM path/content or a `{ cert, key }` pair. */
  readonly client?: ClientCertificateOf<S> | ReadonlyArray<ClientCertificateOf<S>>;
  /** `[header]`: extra HTTP headers sent to this host. */
  readonly headers?: Readonly<Record<string, S | readonly S[]>>;
  /** `override_path`: the URL's path already includes the API root (e.g. Harbor proxy projects). */
  readonly overridePath?: boolean;
  /** `dial_timeout`, a Go duration such as "3s" (containerd 2.0.7+ / 2.1+). */
  readonly dialTimeout?: string;
  /**
   * Credentials, sent as this host's `Authorization` header: Basic for username/password, Bearer for
   * a token. They make this registry's hosts.toml a secret, mode 0600.
   */
  readonly auth?: RegistryAuthOf<S>;
}
export type RegistryHost = RegistryHostOf<string>;

/** Credentials for one registry endpoint: either username and password, or a token. */
export interface RegistryAuthOf<S> {
  readonly username?: S;
  readonly password?: S;
  readonly token?: S;
}

/**
 * A TLS client certificate: a path to (or PEM content of) a file holding certificate and key, or a
 * pair. A key given as PEM content is shipped as a secret file, mode 0600.
 */
export type ClientCertificateOf<S> = string | { readonly cert: string; readonly key?: S };

/** One file that `renderNode` produces. */
export interface RenderedFile {
  /** Absolute path on the node. */
  path: string;
  /** Exact bytes to write (UTF-8). */
  content: string;
  /** File mode, e.g. 0o644. */
  mode: number;
  /** Holds credentials or a private key: keep it out of logs and diffs. */
  secret: boolean;
  /** What the file is: decides restart and write order on the node. */
  kind: "config" | "hosts" | "certificate";
  /** The registry namespace a hosts or certificate file belongs to. */
  registry?: string;
}

export interface RenderResult {
  /** config.toml's `version`: 2 for containerd 1.x, 3 for 2.0-2.2, 4 for 2.3+. */
  configVersion: ConfigVersion;
  /** config.toml first, then each registry's certificates and hosts.toml, by path. */
  files: RenderedFile[];
  /** Things that were accepted but deserve attention (e.g. legacy mirrors moved to hosts.toml). */
  warnings: string[];
}
