/**
 * A minimal CRI (Kubernetes Container Runtime Interface, `runtime.v1`) client over containerd's unix socket.
 *
 * Kubelet pulls images through `runtime.v1.ImageService/PullImage`, and that path is the one that honours
 * `config_path` and its hosts.toml files; `ctr` does not read them. crictl is not packaged in Debian 12, so the
 * tests talk CRI themselves with @grpc/grpc-js and the message subset in cri-api.proto.
 *
 * Every function opens its own client, sets a deadline, and closes the client when the call ends. Field names
 * are camelCase on the JavaScript side (proto-loader `keepCase: false`); protobuf maps them to the upstream
 * snake_case names on the wire.
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import * as path from "path";

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

/** Request and response type of each RPC this client calls, keyed by `Service/Method`. */
interface CriRpcs {
  "RuntimeService/Version": [VersionRequest, VersionResponse];
  "RuntimeService/Status": [StatusRequest, StatusResponse];
  "ImageService/ListImages": [ListImagesRequest, ListImagesResponse];
  "ImageService/ImageStatus": [ImageStatusRequest, ImageStatusResponse];
  "ImageService/PullImage": [PullImageRequest, PullImageResponse];
  "ImageService/RemoveImage": [RemoveImageRequest, RemoveImageResponse];
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
