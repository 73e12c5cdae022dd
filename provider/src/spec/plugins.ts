/** Plugin IDs whose tables config.toml writes, by config version (containerd docs/cri/config.md). */
export const CRI_V1X = "io.containerd.grpc.v1.cri";
export const CRI_IMAGES = "io.containerd.cri.v1.images";
export const CRI_RUNTIME = "io.containerd.cri.v1.runtime";
/** The transfer service, through which containerd 2.1+ pulls CRI images. */
export const TRANSFER = "io.containerd.transfer.v1.local";
/** Version 4 (containerd 2.3+): the server settings are plugins of their own. */
export const SERVER_GRPC = "io.containerd.server.v1.grpc";
export const SERVER_TTRPC = "io.containerd.server.v1.ttrpc";
export const SERVER_PLUGIN_PREFIX = "io.containerd.server.v1.";
/**
 * Top-level tables and keys that version 4 moves into server plugins. containerd 2.3 still migrates
 * them from a version 4 file, but a file should say one thing in one place.
 */
export const V4_MOVED: Record<string, string> = {
  grpc: `plugins."io.containerd.server.v1.grpc" (and "io.containerd.server.v1.grpc-tcp" for tcp_address)`,
  ttrpc: `plugins."io.containerd.server.v1.ttrpc"`,
  metrics: `plugins."io.containerd.server.v1.metrics"`,
  "debug.address": `plugins."io.containerd.server.v1.debug".address`,
  "debug.uid": `plugins."io.containerd.server.v1.debug".uid`,
  "debug.gid": `plugins."io.containerd.server.v1.debug".gid`,
};

/** Keys that stay in `io.containerd.grpc.v1.cri` in version 3 (the CRI gRPC server's own settings). */
export const V3_GRPC_CRI_KEYS = new Set([
  "disable_tcp_service",
  "stream_server_address",
  "stream_server_port",
  "stream_idle_timeout",
  "enable_tls_streaming",
  "x509_key_pair_streaming",
]);

/** Where a version-2 CRI key lives in version 3, for the error that points a user there. */
export function v3HomeOf(v2Key: string): string {
  const images = new Set([
    "sandbox_image",
    "registry",
    "max_concurrent_downloads",
    "image_pull_progress_timeout",
    "stats_collect_period",
    "image_decryption",
  ]);
  if (v2Key === "sandbox_image") return `plugins."${CRI_IMAGES}".pinned_images.sandbox`;
  if (images.has(v2Key)) return `plugins."${CRI_IMAGES}".${v2Key}`;
  if (v2Key === "containerd") {
    return `plugins."${CRI_RUNTIME}".containerd (snapshotter and disable_snapshot_annotations: plugins."${CRI_IMAGES}")`;
  }
  return `plugins."${CRI_RUNTIME}".${v2Key}`;
}
