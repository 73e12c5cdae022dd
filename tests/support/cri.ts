/**
 * A minimal CRI (Kubernetes Container Runtime Interface, `runtime.v1`) client over containerd's unix socket.
 *
 * Kubelet pulls images through `runtime.v1.ImageService/PullImage`, and that path is the one that honours
 * `config_path` and its hosts.toml files; `ctr` does not read them. crictl is not packaged in Debian 12, so the
 * tests talk CRI themselves with @grpc/grpc-js and the message subset in cri-api.proto. (The fleet's nodes
 * have a crictl built from source on their PATH; this client needs no node shell.)
 *
 * Pods run as kubelet runs them (`criRunPod`): RunPodSandbox, PullImage, CreateContainer, StartContainer, with
 * kubelet's labels, and the node's network (`network: NODE`: the fleet has no CNI plugin).
 *
 * Every function opens its own client, sets a deadline, and closes the client when the call ends. Field names
 * are camelCase on the JavaScript side (proto-loader `keepCase: false`); protobuf maps them to the upstream
 * snake_case names on the wire.
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import * as path from "path";
import { randomUUID } from "crypto";

const PROTO_FILE = path.join(__dirname, "cri-api.proto");
const PACKAGE = "runtime.v1";

/** Deadline of every RPC except PullImage. */
export const DEFAULT_RPC_TIMEOUT_MS = 10_000;
/** Deadline of PullImage unless the caller gives one. */
export const DEFAULT_PULL_TIMEOUT_MS = 120_000;

// ---- wire shapes (what proto-loader produces with the options below) -------------------------------------

interface ImageSpecMsg {
  image: string;
  annotations?: Record<string, string>;
}
interface VersionRequest {
  version: string;
}
interface VersionResponse {
  version: string;
  runtimeName: string;
  runtimeVersion: string;
  runtimeApiVersion: string;
}
interface StatusRequest {
  verbose: boolean;
}
interface RuntimeConditionMsg {
  type: string;
  status: boolean;
  reason: string;
  message: string;
}
interface StatusResponse {
  status: { conditions: RuntimeConditionMsg[] } | null;
  info: Record<string, string>;
}
interface ImageMsg {
  id: string;
  repoTags: string[];
  repoDigests: string[];
  /** uint64; `longs: Number` — image sizes stay far below 2^53. */
  size: number;
}
interface ListImagesRequest {
  filter?: { image: ImageSpecMsg };
}
interface ListImagesResponse {
  images: ImageMsg[];
}
interface ImageStatusRequest {
  image: ImageSpecMsg;
  verbose: boolean;
}
interface ImageStatusResponse {
  image: ImageMsg | null;
  info: Record<string, string>;
}
interface PullImageRequest {
  image: ImageSpecMsg;
}
interface PullImageResponse {
  imageRef: string;
}
interface RemoveImageRequest {
  image: ImageSpecMsg;
}
type RemoveImageResponse = Record<string, never>;

type NamespaceMode = "POD" | "CONTAINER" | "NODE" | "TARGET";
/** PodSandboxConfig as it goes on the wire (the subset in cri-api.proto). */
export interface PodSandboxConfigMsg {
  metadata: { name: string; uid: string; namespace: string; attempt: number };
  hostname?: string;
  logDirectory?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  linux?: {
    cgroupParent?: string;
    securityContext?: { namespaceOptions?: { network?: NamespaceMode; pid?: NamespaceMode; ipc?: NamespaceMode } };
    sysctls?: Record<string, string>;
  };
}
interface ContainerConfigMsg {
  metadata: { name: string; attempt: number };
  image: ImageSpecMsg;
  command?: string[];
  args?: string[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  logPath?: string;
}
interface RunPodSandboxRequest {
  config: PodSandboxConfigMsg;
  runtimeHandler?: string;
}
interface RunPodSandboxResponse {
  podSandboxId: string;
}
interface PodSandboxIdRequest {
  podSandboxId: string;
}
type EmptyResponse = Record<string, never>;
type PodSandboxState = "SANDBOX_READY" | "SANDBOX_NOTREADY";
interface PodSandboxMsg {
  id: string;
  metadata: PodSandboxConfigMsg["metadata"] | null;
  state: PodSandboxState;
  createdAt: number;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  runtimeHandler: string;
}
interface ListPodSandboxRequest {
  filter?: { id?: string; state?: { state: PodSandboxState }; labelSelector?: Record<string, string> };
}
interface ListPodSandboxResponse {
  items: PodSandboxMsg[];
}
interface CreateContainerRequest {
  podSandboxId: string;
  config: ContainerConfigMsg;
  sandboxConfig: PodSandboxConfigMsg;
}
interface CreateContainerResponse {
  containerId: string;
}
interface ContainerIdRequest {
  containerId: string;
}
export type CriContainerState = "CONTAINER_CREATED" | "CONTAINER_RUNNING" | "CONTAINER_EXITED" | "CONTAINER_UNKNOWN";
interface ContainerMsg {
  id: string;
  podSandboxId: string;
  metadata: { name: string; attempt: number } | null;
  image: ImageSpecMsg | null;
  imageRef: string;
  state: CriContainerState;
  createdAt: number;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  imageId: string;
}
interface ListContainersRequest {
  filter?: { id?: string; state?: { state: CriContainerState }; podSandboxId?: string; labelSelector?: Record<string, string> };
}
interface ListContainersResponse {
  containers: ContainerMsg[];
}
interface ContainerStatusRequest {
  containerId: string;
  verbose: boolean;
}
interface ContainerStatusMsg {
  id: string;
  metadata: { name: string; attempt: number } | null;
  state: CriContainerState;
  createdAt: number;
  startedAt: number;
  finishedAt: number;
  exitCode: number;
  image: ImageSpecMsg | null;
  imageRef: string;
  reason: string;
  message: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}
interface ContainerStatusResponse {
  status: ContainerStatusMsg | null;
  info: Record<string, string>;
}

/** Request and response type of each RPC this client calls, keyed by `Service/Method`. */
interface CriRpcs {
  "RuntimeService/Version": [VersionRequest, VersionResponse];
  "RuntimeService/Status": [StatusRequest, StatusResponse];
  "ImageService/ListImages": [ListImagesRequest, ListImagesResponse];
  "ImageService/ImageStatus": [ImageStatusRequest, ImageStatusResponse];
  "ImageService/PullImage": [PullImageRequest, PullImageResponse];
  "ImageService/RemoveImage": [RemoveImageRequest, RemoveImageResponse];
  "RuntimeService/RunPodSandbox": [RunPodSandboxRequest, RunPodSandboxResponse];
  "RuntimeService/StopPodSandbox": [PodSandboxIdRequest, EmptyResponse];
  "RuntimeService/RemovePodSandbox": [PodSandboxIdRequest, EmptyResponse];
  "RuntimeService/ListPodSandbox": [ListPodSandboxRequest, ListPodSandboxResponse];
  "RuntimeService/CreateContainer": [CreateContainerRequest, CreateContainerResponse];
  "RuntimeService/StartContainer": [ContainerIdRequest, EmptyResponse];
  "RuntimeService/ListContainers": [ListContainersRequest, ListContainersResponse];
  "RuntimeService/ContainerStatus": [ContainerStatusRequest, ContainerStatusResponse];
}
export type CriRpc = keyof CriRpcs;

// ---- public shapes --------------------------------------------------------------------------------------

export interface CriVersion {
  runtimeName: string;
  runtimeVersion: string;
  runtimeApiVersion: string;
}

export interface CriCondition {
  type: string;
  status: boolean;
  reason: string;
  message: string;
}

export interface CriStatus {
  conditions: CriCondition[];
  /** `info` of the verbose status; each value parsed as JSON when it is JSON, else the raw string. */
  info: Record<string, unknown>;
}

export interface CriImage {
  id: string;
  repoTags: string[];
  repoDigests: string[];
  size: number;
}

/** A failed CRI call: names the socket, the RPC and what the runtime (or gRPC) said. */
export class CriError extends Error {
  constructor(
    readonly socket: string,
    readonly rpc: string,
    /** gRPC status code, when the failure came from gRPC. */
    readonly code: grpc.status | undefined,
    /** The runtime's own message (gRPC `details`). */
    readonly details: string,
  ) {
    const codeName = code === undefined ? "error" : `${grpc.status[code] ?? "UNKNOWN"} (${code})`;
    super(`CRI ${PACKAGE}.${rpc} on unix://${socket} failed: ${codeName}: ${details}`);
    this.name = "CriError";
  }
}

// ---- transport ------------------------------------------------------------------------------------------

let packageDefinition: protoLoader.PackageDefinition | undefined;

function loadDefinition(): protoLoader.PackageDefinition {
  packageDefinition ??= protoLoader.loadSync(PROTO_FILE, {
    keepCase: false,
    longs: Number,
    enums: String,
    defaults: true,
    arrays: true,
    objects: true,
    oneofs: true,
  });
  return packageDefinition;
}

function isServiceDefinition(def: protoLoader.AnyDefinition | undefined): def is protoLoader.ServiceDefinition {
  return def !== undefined && !("format" in def);
}

function methodDefinition(rpc: CriRpc): protoLoader.MethodDefinition<object, object> {
  const [service, method] = rpc.split("/");
  const svc = loadDefinition()[`${PACKAGE}.${service}`];
  if (!isServiceDefinition(svc)) throw new Error(`${PROTO_FILE} has no service ${PACKAGE}.${service}`);
  const def = svc[method];
  if (def === undefined) throw new Error(`${PROTO_FILE} has no rpc ${PACKAGE}.${rpc}`);
  return def;
}

/** One unary call on a fresh client, with a deadline; the client is closed whatever happens. */
async function call<R extends CriRpc>(
  socket: string,
  rpc: R,
  request: CriRpcs[R][0],
  timeoutMs: number = DEFAULT_RPC_TIMEOUT_MS,
): Promise<CriRpcs[R][1]> {
  if (!path.isAbsolute(socket)) {
    throw new CriError(socket, rpc, undefined, "the socket path must be absolute");
  }
  const def = methodDefinition(rpc);
  const client = new grpc.Client(`unix://${socket}`, grpc.credentials.createInsecure(), {
    // containerd's verbose status carries the whole CRI config: allow more than the 4 MiB default.
    "grpc.max_receive_message_length": 64 * 1024 * 1024,
  });
  try {
    return await new Promise<CriRpcs[R][1]>((resolve, reject) => {
      client.makeUnaryRequest<CriRpcs[R][0], CriRpcs[R][1]>(
        def.path,
        def.requestSerialize,
        (bytes) => def.responseDeserialize(bytes) as CriRpcs[R][1],
        request,
        new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs },
        (err, response) => {
          if (err) {
            reject(new CriError(socket, rpc, err.code, err.details || err.message));
          } else if (response === undefined) {
            reject(new CriError(socket, rpc, undefined, "empty response"));
          } else {
            resolve(response);
          }
        },
      );
    });
  } finally {
    client.close();
  }
}

// ---- API ------------------------------------------------------------------------------------------------

/** `RuntimeService/Version`: containerd answers runtimeName "containerd" and its own version. */
export async function criVersion(socket: string): Promise<CriVersion> {
  const r = await call(socket, "RuntimeService/Version", { version: "0.1.0" });
  return { runtimeName: r.runtimeName, runtimeVersion: r.runtimeVersion, runtimeApiVersion: r.runtimeApiVersion };
}

function parseInfoValue(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

/** `RuntimeService/Status` with `verbose: true` (what `crictl info` prints). */
export async function criStatus(socket: string): Promise<CriStatus> {
  const r = await call(socket, "RuntimeService/Status", { verbose: true });
  const info: Record<string, unknown> = {};
  for (const [key, raw] of Object.entries(r.info)) info[key] = parseInfoValue(raw);
  const conditions = (r.status?.conditions ?? []).map(({ type, status, reason, message }) => ({
    type,
    status,
    reason,
    message,
  }));
  return { conditions, info };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function registryConfigPathIn(v: unknown): string | undefined {
  if (!isRecord(v)) return undefined;
  const registry = v.registry;
  if (isRecord(registry) && typeof registry.configPath === "string") return registry.configPath;
  return undefined;
}

/**
 * The registry `config_path` the running CRI plugin reports in a verbose status, or undefined.
 *
 * containerd 1.x (seen on 1.6.20) puts the whole CRI plugin config, registry included, as JSON under
 * `info.config`: the answer is `info.config.registry.configPath`.
 *
 * containerd 2.x split the CRI plugin: `io.containerd.cri.v1.images` owns the registry config, and the verbose
 * status only carries the runtime side. On 2.1.9 the info keys are `config` (runtime config: containerd, cni,
 * rootDir, stateDir...), `golang`, `cniconfig`, `lastCNILoadStatus` and `lastCNILoadStatus.default`: no key holds
 * `registry` or `configPath`, and `ctr plugins ls -d` exports nothing for the images plugin either. So on 2.x
 * this returns undefined, and whether `config_path` is honoured has to be proved by behaviour (a CRI pull that
 * follows a hosts.toml under it). Every info value is searched for a `registry.configPath`, so a later release
 * that exposes it again (under `config` or another key) is found without a change here.
 */
export function criRegistryConfigPath(status: CriStatus): string | undefined {
  const { info } = status;
  const found = registryConfigPathIn(info.config);
  if (found !== undefined) return found;
  for (const value of Object.values(info)) {
    const other = registryConfigPathIn(value);
    if (other !== undefined) return other;
  }
  return undefined;
}

function toImage(m: ImageMsg): CriImage {
  return { id: m.id, repoTags: m.repoTags, repoDigests: m.repoDigests, size: m.size };
}

/** `ImageService/PullImage`; resolves to the image ref containerd returns (the image id). */
export async function criPullImage(socket: string, image: string, opts: { timeoutMs?: number } = {}): Promise<string> {
  const r = await call(socket, "ImageService/PullImage", { image: { image } }, opts.timeoutMs ?? DEFAULT_PULL_TIMEOUT_MS);
  return r.imageRef;
}

/** `ImageService/ImageStatus`; null when the runtime does not have the image. */
export async function criImageStatus(socket: string, image: string): Promise<CriImage | null> {
  const r = await call(socket, "ImageService/ImageStatus", { image: { image }, verbose: false });
  return r.image === null ? null : toImage(r.image);
}

/** `ImageService/ListImages` without a filter. */
export async function criListImages(socket: string): Promise<CriImage[]> {
  const r = await call(socket, "ImageService/ListImages", {});
  return r.images.map(toImage);
}

/** `ImageService/RemoveImage`; idempotent on the runtime's side. */
export async function criRemoveImage(socket: string, image: string): Promise<void> {
  await call(socket, "ImageService/RemoveImage", { image: { image } });
}

// ---- pods -----------------------------------------------------------------------------------------------

/** A pod sandbox as `ListPodSandbox` reports it. */
export interface CriPodSandbox {
  id: string;
  name: string;
  namespace: string;
  uid: string;
  state: PodSandboxState;
  labels: Record<string, string>;
}

/** A container as `ListContainers` reports it. */
export interface CriContainer {
  id: string;
  podSandboxId: string;
  name: string;
  image: string;
  state: CriContainerState;
  labels: Record<string, string>;
}

/** `ContainerStatus` with `verbose: true`: the status, and the runtime's `info` (containerd: `info.pid`). */
export interface CriContainerStatus {
  id: string;
  name: string;
  state: CriContainerState;
  exitCode: number;
  reason: string;
  message: string;
  labels: Record<string, string>;
  /** The container's first process as the runtime sees it (containerd's verbose `info.pid`); 0 when not running. */
  pid: number;
  /** Every `info` value, parsed as JSON when it is JSON. */
  info: Record<string, unknown>;
}

/** What `criRunPod` started. */
export interface CriPod {
  podSandboxId: string;
  containerId: string;
  /** The container's pid (in containerd's, so the node's, pid namespace). */
  pid: number;
  /** The config the sandbox was made with (CreateContainer takes it again). */
  sandboxConfig: PodSandboxConfigMsg;
}

export interface CriPodOptions {
  /** Pod name (metadata and kubelet's `io.kubernetes.pod.name` label). */
  name: string;
  /** The long-running container's image (pulled first, as kubelet does). */
  image: string;
  /** Pod namespace; default "default". */
  namespace?: string;
  /** Pod UID; default a random one. */
  uid?: string;
  /** Container name; default "main". */
  containerName?: string;
  /** Command and args for the container; default the image's. */
  command?: string[];
  args?: string[];
  /**
   * Parent cgroup, as kubelet gives it (`/kubepods/besteffort/pod<uid>`); default none (containerd's
   * `/k8s.io/<id>`). On the fleet, either lands below the node's own cgroup.
   */
  cgroupParent?: string;
  /** Extra labels on the sandbox and the container. */
  labels?: Record<string, string>;
  /** Deadline of RunPodSandbox (which pulls the sandbox image if absent) and of the image pull. */
  timeoutMs?: number;
}

/**
 * The sandbox config kubelet would send for a pod on the node's network (`network: NODE`, so no CNI plugin is
 * needed), with kubelet's labels. No log directory: a node's /var/log is the machine's.
 */
export function podSandboxConfig(opts: Pick<CriPodOptions, "name" | "namespace" | "uid" | "cgroupParent" | "labels">): PodSandboxConfigMsg {
  const namespace = opts.namespace ?? "default";
  const uid = opts.uid ?? randomUUID();
  return {
    metadata: { name: opts.name, uid, namespace, attempt: 0 },
    labels: {
      "io.kubernetes.pod.name": opts.name,
      "io.kubernetes.pod.namespace": namespace,
      "io.kubernetes.pod.uid": uid,
      ...opts.labels,
    },
    linux: {
      ...(opts.cgroupParent === undefined ? {} : { cgroupParent: opts.cgroupParent }),
      securityContext: { namespaceOptions: { network: "NODE", pid: "POD", ipc: "POD" } },
    },
  };
}

/** `RuntimeService/RunPodSandbox`; resolves to the sandbox id. Pulls the sandbox image if the node lacks it. */
export async function criRunPodSandbox(socket: string, config: PodSandboxConfigMsg, opts: { timeoutMs?: number } = {}): Promise<string> {
  const r = await call(socket, "RuntimeService/RunPodSandbox", { config }, opts.timeoutMs ?? DEFAULT_PULL_TIMEOUT_MS);
  return r.podSandboxId;
}

/** `RuntimeService/CreateContainer` in a sandbox; resolves to the container id. The image must be there. */
export async function criCreateContainer(
  socket: string,
  podSandboxId: string,
  container: { name: string; image: string; command?: string[]; args?: string[]; labels?: Record<string, string> },
  sandboxConfig: PodSandboxConfigMsg,
): Promise<string> {
  const config: ContainerConfigMsg = {
    metadata: { name: container.name, attempt: 0 },
    image: { image: container.image },
    ...(container.command ? { command: container.command } : {}),
    ...(container.args ? { args: container.args } : {}),
    labels: container.labels ?? {},
  };
  const r = await call(socket, "RuntimeService/CreateContainer", { podSandboxId, config, sandboxConfig });
  return r.containerId;
}

/** `RuntimeService/StartContainer`. */
export async function criStartContainer(socket: string, containerId: string): Promise<void> {
  await call(socket, "RuntimeService/StartContainer", { containerId });
}

/** `RuntimeService/StopPodSandbox`: stops its containers too; idempotent. */
export async function criStopPodSandbox(socket: string, podSandboxId: string): Promise<void> {
  await call(socket, "RuntimeService/StopPodSandbox", { podSandboxId }, DEFAULT_PULL_TIMEOUT_MS);
}

/** `RuntimeService/RemovePodSandbox`: removes its containers too; idempotent. */
export async function criRemovePodSandbox(socket: string, podSandboxId: string): Promise<void> {
  await call(socket, "RuntimeService/RemovePodSandbox", { podSandboxId }, DEFAULT_PULL_TIMEOUT_MS);
}

/** `RuntimeService/ListPodSandbox`, all of them or those in one state. */
export async function criListPodSandbox(socket: string, filter: { state?: PodSandboxState } = {}): Promise<CriPodSandbox[]> {
  const r = await call(socket, "RuntimeService/ListPodSandbox", filter.state ? { filter: { state: { state: filter.state } } } : {});
  return r.items.map((p) => ({
    id: p.id,
    name: p.metadata?.name ?? "",
    namespace: p.metadata?.namespace ?? "",
    uid: p.metadata?.uid ?? "",
    state: p.state,
    labels: p.labels,
  }));
}

/** `RuntimeService/ListContainers`, all of them or filtered by state and/or sandbox. */
export async function criListContainers(socket: string, filter: { state?: CriContainerState; podSandboxId?: string } = {}): Promise<CriContainer[]> {
  const f: NonNullable<ListContainersRequest["filter"]> = {};
  if (filter.state) f.state = { state: filter.state };
  if (filter.podSandboxId) f.podSandboxId = filter.podSandboxId;
  const r = await call(socket, "RuntimeService/ListContainers", { filter: f });
  return r.containers.map((c) => ({
    id: c.id,
    podSandboxId: c.podSandboxId,
    name: c.metadata?.name ?? "",
    image: c.image?.image ?? "",
    state: c.state,
    labels: c.labels,
  }));
}

/** `RuntimeService/ContainerStatus` with `verbose: true`. */
export async function criContainerStatus(socket: string, containerId: string): Promise<CriContainerStatus> {
  const r = await call(socket, "RuntimeService/ContainerStatus", { containerId, verbose: true });
  if (r.status === null) throw new CriError(socket, "RuntimeService/ContainerStatus", undefined, `no status for container ${containerId}`);
  const info: Record<string, unknown> = {};
  for (const [key, raw] of Object.entries(r.info)) info[key] = parseInfoValue(raw);
  // containerd puts its verbose status under info.info: {"pid": N, ...}.
  const inner = info.info;
  const pid = isRecord(inner) && typeof inner.pid === "number" ? inner.pid : 0;
  const s = r.status;
  return { id: s.id, name: s.metadata?.name ?? "", state: s.state, exitCode: s.exitCode, reason: s.reason, message: s.message, labels: s.labels, pid, info };
}

/**
 * A pod as kubelet starts one: RunPodSandbox (the node's network; containerd pulls the sandbox image it is
 * configured with, through its registry config, if absent), PullImage of the container's image, CreateContainer
 * (kubelet's container labels), StartContainer. Resolves once the container runs, with its pid.
 */
export async function criRunPod(socket: string, opts: CriPodOptions): Promise<CriPod> {
  const sandboxConfig = podSandboxConfig(opts);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_PULL_TIMEOUT_MS;
  const podSandboxId = await criRunPodSandbox(socket, sandboxConfig, { timeoutMs });
  await criPullImage(socket, opts.image, { timeoutMs });
  const name = opts.containerName ?? "main";
  const m = sandboxConfig.metadata;
  const containerId = await criCreateContainer(
    socket,
    podSandboxId,
    {
      name,
      image: opts.image,
      command: opts.command,
      args: opts.args,
      labels: {
        "io.kubernetes.container.name": name,
        "io.kubernetes.pod.name": m.name,
        "io.kubernetes.pod.namespace": m.namespace,
        "io.kubernetes.pod.uid": m.uid,
        ...opts.labels,
      },
    },
    sandboxConfig,
  );
  await criStartContainer(socket, containerId);
  const status = await criContainerStatus(socket, containerId);
  if (status.state !== "CONTAINER_RUNNING" || status.pid <= 0) {
    throw new CriError(socket, "RuntimeService/ContainerStatus", undefined, `container ${containerId} is ${status.state} (pid ${status.pid}) right after StartContainer ${status.reason} ${status.message}`.trim());
  }
  return { podSandboxId, containerId, pid: status.pid, sandboxConfig };
}

/** Stops and removes a pod sandbox with its containers, as kubelet does when a pod goes. */
export async function criRemovePod(socket: string, podSandboxId: string): Promise<void> {
  await criStopPodSandbox(socket, podSandboxId);
  await criRemovePodSandbox(socket, podSandboxId);
}
