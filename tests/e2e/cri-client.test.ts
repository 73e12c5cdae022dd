/**
 * The CRI client (tests/support/cri.ts) against real containerd daemons of two generations.
 *
 * Each daemon runs from its own scratch directory: its own config.toml, root, state, grpc socket, CNI conf dir
 * and `opt` dir (the CNI conf dir matters: the CRI plugin creates it when missing). It is started under
 * `unshare --mount` with a private tmpfs on /run, because containerd 2.1.9 creates /run/containerd at start even
 * with its own `state` (seen with strace); the machine's /run, /etc and /var/lib are never touched. The image is
 * pushed with the registry's HTTP API rather than skopeo, which as root writes a cache under /var/lib/containers.
 *
 * A local `docker-registry` serves a tiny image built offline with umoci. The daemon's `config_path` points at a
 * certs.d of its own, whose `docker.io/hosts.toml` decides where `docker.io/library/tiny:1.0` comes from:
 * first an unused loopback port (the CRI pull must fail fast, naming the RPC and the address from hosts.toml),
 * then the local registry (the pull succeeds although the machine has no route to Docker Hub). hosts.toml is
 * read on every pull, so no restart is needed between the two.
 *
 * Missing binaries fail the suite: containerdBinaries() throws, and so does spawning an absent tool.
 */
import { ChildProcess, execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import {
  CriError,
  criImageStatus,
  criListImages,
  criPullImage,
  criRegistryConfigPath,
  criRemoveImage,
  criStatus,
  criVersion,
} from "../support/cri";
import { ContainerdBinaries, Generation, containerdBinaries } from "../support/containerd-binaries";

const IMAGE = "docker.io/library/tiny:1.0";
const START_TIMEOUT_MS = 30_000;
const HOOK_TIMEOUT_MS = 90_000;
const TEST_TIMEOUT_MS = 60_000;

// ---- processes ------------------------------------------------------------------------------------------

interface Proc {
  name: string;
  child: ChildProcess;
  /** The recorded pid: the only handle used to stop the process. */
  pid: number | undefined;
  log: string;
  exited: boolean;
  exitInfo: string;
  exit: Promise<void>;
}

function startProc(name: string, cmd: string, args: string[], log: string, env?: NodeJS.ProcessEnv): Proc {
  const fd = fs.openSync(log, "a");
  let child: ChildProcess;
  try {
    child = spawn(cmd, args, { stdio: ["ignore", fd, fd], env: env ?? process.env });
  } finally {
    fs.closeSync(fd);
  }
  const proc: Proc = { name, child, pid: child.pid, log, exited: false, exitInfo: "", exit: Promise.resolve() };
  proc.exit = new Promise<void>((resolve) => {
    child.once("exit", (code, signal) => {
      proc.exited = true;
      proc.exitInfo = signal ? `killed by ${signal}` : `exit code ${code}`;
      resolve();
    });
    child.once("error", (err) => {
      proc.exited = true;
      proc.exitInfo = `${cmd}: ${err.message}`;
      resolve();
    });
  });
  return proc;
}

function logTail(file: string, lines = 25): string {
  try {
    return fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

function timeout(ms: number): Promise<"timeout"> {
  return new Promise((resolve) => setTimeout(() => resolve("timeout"), ms).unref());
}

/** SIGTERM by recorded pid, SIGKILL after 10 s; resolves once the process is gone. */
async function stopProc(proc: Proc | undefined): Promise<void> {
  if (!proc || proc.exited || proc.pid === undefined) return;
  process.kill(proc.pid, "SIGTERM");
  if ((await Promise.race([proc.exit, timeout(10_000)])) !== "timeout") return;
  if (!proc.exited) process.kill(proc.pid, "SIGKILL");
  if ((await Promise.race([proc.exit, timeout(5_000)])) === "timeout") {
    throw new Error(`${proc.name} (pid ${proc.pid}) did not exit after SIGKILL`);
  }
}

async function waitUntil(what: string, proc: Proc, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let last = "";
  for (;;) {
    if (proc.exited) throw new Error(`${proc.name} ended (${proc.exitInfo}) before ${what}:\n${logTail(proc.log)}`);
    try {
      if (await check()) return;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > deadline) {
      throw new Error(`${proc.name}: no ${what} after ${START_TIMEOUT_MS} ms (${last}):\n${logTail(proc.log)}`);
    }
    await timeout(100);
  }
}

// ---- local registry with a tiny image -------------------------------------------------------------------

interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function httpRequest(method: string, url: string, body?: Buffer, contentType?: string): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = {};
    if (body) headers["content-length"] = body.length;
    if (contentType) headers["content-type"] = contentType;
    const req = http.request(url, { method, headers, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${url}: timed out`)));
    req.on("error", reject);
    req.end(body);
  });
}

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", resolve);
  });
  const addr = srv.address();
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  if (addr === null || typeof addr === "string") throw new Error("no TCP port from the kernel");
  return addr.port;
}

interface OciDescriptor {
  mediaType: string;
  digest: string;
  size: number;
}

/** Builds `tiny:1.0` (one layer with one file) as an OCI layout with umoci, offline. */
function buildTinyImage(dir: string): string {
  const layout = path.join(dir, "oci");
  const src = path.join(dir, "tiny-src");
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, "hello.txt"), "tiny test image\n");
  const umoci = (...args: string[]) => execFileSync("umoci", args, { stdio: ["ignore", "pipe", "pipe"] });
  umoci("init", "--layout", layout);
  umoci("new", "--image", `${layout}:1.0`);
  umoci("insert", "--image", `${layout}:1.0`, path.join(src, "hello.txt"), "/hello.txt");
  return layout;
}

function readBlob(layout: string, digest: string): Buffer {
  const [alg, hex] = digest.split(":");
  return fs.readFileSync(path.join(layout, "blobs", alg, hex));
}

/** Pushes tag `1.0` of an OCI layout with the registry's HTTP API (blob uploads, then the manifest). */
async function pushLayout(layout: string, registry: string, repo: string): Promise<void> {
  const index = JSON.parse(fs.readFileSync(path.join(layout, "index.json"), "utf8")) as {
    manifests: (OciDescriptor & { annotations?: Record<string, string> })[];
  };
  const desc = index.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === "1.0");
  if (!desc) throw new Error(`${layout}: no manifest tagged 1.0`);
  const manifestBytes = readBlob(layout, desc.digest);
  const manifest = JSON.parse(manifestBytes.toString("utf8")) as { config: OciDescriptor; layers: OciDescriptor[] };
  for (const blob of [manifest.config, ...manifest.layers]) {
    const start = await httpRequest("POST", `${registry}/v2/${repo}/blobs/uploads/`);
    const location = start.headers.location;
    if (start.status !== 202 || !location) throw new Error(`upload start for ${blob.digest}: HTTP ${start.status}`);
    const url = new URL(location, registry);
    url.searchParams.set("digest", blob.digest);
    const put = await httpRequest("PUT", url.toString(), readBlob(layout, blob.digest), "application/octet-stream");
    if (put.status !== 201) throw new Error(`upload of ${blob.digest}: HTTP ${put.status} ${put.body.toString()}`);
  }
  const put = await httpRequest("PUT", `${registry}/v2/${repo}/manifests/1.0`, manifestBytes, desc.mediaType);
  if (put.status !== 201) throw new Error(`manifest push: HTTP ${put.status} ${put.body.toString()}`);
}

interface Registry {
  proc: Proc;
  url: string;
}

async function startRegistry(dir: string): Promise<Registry> {
  const port = await freePort();
  const config = path.join(dir, "registry.yml");
  fs.writeFileSync(
    config,
    [
      "version: 0.1",
      "log:",
      "  level: warn",
      "storage:",
      "  filesystem:",
      `    rootdirectory: ${path.join(dir, "registry-data")}`,
      "http:",
      `  addr: 127.0.0.1:${port}`,
      "  secret: cri-client-test",
      "",
    ].join("\n"),
  );
  const proc = startProc("docker-registry", "docker-registry", ["serve", config], path.join(dir, "registry.log"));
  const url = `http://127.0.0.1:${port}`;
  await waitUntil("answer on /v2/", proc, async () => (await httpRequest("GET", `${url}/v2/`)).status === 200);
  return { proc, url };
}

// ---- containerd -----------------------------------------------------------------------------------------

interface Daemon {
  proc: Proc;
  dir: string;
  socket: string;
  configPath: string;
}

/** config.toml for the generation: v2 with the grpc.v1.cri plugin on 1.x, v3 with cri.v1.* on 2.x. */
function configToml(gen: Generation, dir: string, configPath: string): string {
  const q = (s: string) => JSON.stringify(s);
  const common = [
    `root = ${q(path.join(dir, "root"))}`,
    `state = ${q(path.join(dir, "state"))}`,
    // A CRI plugin that fails to load must stop the daemon at start, not leave it degraded.
    `required_plugins = ["io.containerd.grpc.v1.cri"]`,
    "",
    "[grpc]",
    `  address = ${q(path.join(dir, "containerd.sock"))}`,
    "",
    `[plugins."io.containerd.internal.v1.opt"]`,
    `  path = ${q(path.join(dir, "opt"))}`,
  ];
  if (gen === "1.6" || gen === "1.7") {
    return [
      "version = 2",
      ...common,
      "",
      `[plugins."io.containerd.grpc.v1.cri"]`,
      // Port 0: several daemons may run at once; the default 10010 would collide.
      `  stream_server_port = "0"`,
      `  [plugins."io.containerd.grpc.v1.cri".cni]`,
      `    conf_dir = ${q(path.join(dir, "cni", "net.d"))}`,
      `  [plugins."io.containerd.grpc.v1.cri".registry]`,
      `    config_path = ${q(configPath)}`,
      "",
    ].join("\n");
  }
  return [
    "version = 3",
    ...common,
    "",
    `[plugins."io.containerd.nri.v1.nri"]`,
    "  disable = true",
    "",
    `[plugins."io.containerd.grpc.v1.cri"]`,
    `  stream_server_port = "0"`,
    "",
    `[plugins."io.containerd.cri.v1.runtime".cni]`,
    `  conf_dir = ${q(path.join(dir, "cni", "net.d"))}`,
    "",
    `[plugins."io.containerd.cri.v1.images".registry]`,
    `  config_path = ${q(configPath)}`,
    "",
  ].join("\n");
}

async function startContainerd(bins: ContainerdBinaries, dir: string): Promise<Daemon> {
  const configPath = path.join(dir, "certs.d");
  fs.mkdirSync(configPath);
  const config = path.join(dir, "config.toml");
  fs.writeFileSync(config, configToml(bins.generation, dir, configPath));
  const socket = path.join(dir, "containerd.sock");
  // unshare without --fork execs sh, which execs containerd: the recorded pid is the daemon's own.
  const proc = startProc(
    `containerd ${bins.version}`,
    "unshare",
    [
      "--mount",
      "--propagation",
      "private",
      "--",
      "sh",
      "-c",
      'mount -t tmpfs -o mode=0755 cri-client-test-run /run && exec "$0" "$@"',
      bins.containerd,
      "--config",
      config,
    ],
    path.join(dir, "containerd.log"),
    { ...process.env, PATH: `${bins.binDir}:${process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin"}` },
  );
  await waitUntil("CRI answer on its socket", proc, async () => {
    if (!fs.existsSync(socket)) return false;
    await criVersion(socket);
    return true;
  });
  const exe = fs.readlinkSync(`/proc/${proc.pid}/exe`);
  if (exe !== fs.realpathSync(bins.containerd)) throw new Error(`pid ${proc.pid} is ${exe}, not ${bins.containerd}`);
  return { proc, dir, socket, configPath };
}

/** Points docker.io at `url` only (as `server` and as the one host table, with pull and resolve). */
function writeDockerIoHosts(configPath: string, url: string): void {
  const dir = path.join(configPath, "docker.io");
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(
    path.join(dir, "hosts.toml"),
    `server = ${JSON.stringify(url)}\n\n[host.${JSON.stringify(url)}]\n  capabilities = ["pull", "resolve"]\n`,
  );
}

// ---- suite ----------------------------------------------------------------------------------------------

/** Whether the generation's verbose CRI status carries the registry config (1.x: yes; 2.x: no, see cri.ts). */
const STATUS_HAS_REGISTRY: Record<"1.6" | "2.1", boolean> = { "1.6": true, "2.1": false };

function lookup(gen: Generation): ContainerdBinaries | Error {
  try {
    return containerdBinaries(gen);
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}

let scratch: string;
let registry: Registry | undefined;

beforeAll(async () => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), "cri-client-"));
  const layout = buildTinyImage(scratch);
  registry = await startRegistry(scratch);
  await pushLayout(layout, registry.url, "library/tiny");
}, HOOK_TIMEOUT_MS);

afterAll(async () => {
  await stopProc(registry?.proc);
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
}, HOOK_TIMEOUT_MS);

test("a CRI call on a socket nobody listens on rejects naming the socket and the RPC", async () => {
  const socket = path.join(scratch, "nobody.sock");
  const err = await criVersion(socket).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CriError);
  expect((err as CriError).message).toContain(`unix://${socket}`);
  expect((err as CriError).message).toContain("runtime.v1.RuntimeService/Version");
});

for (const gen of ["1.6", "2.1"] as const) {
  const found = lookup(gen);
  const title = found instanceof Error ? `containerd ${gen} (binaries missing)` : `containerd ${found.version}`;

  describe(`${title} over CRI runtime.v1`, () => {
    let bins: ContainerdBinaries;
    let daemon: Daemon | undefined;
    let dir: string | undefined;

    beforeAll(async () => {
      if (found instanceof Error) throw found;
      bins = found;
      dir = fs.mkdtempSync(path.join(scratch, `containerd-${gen}-`));
      daemon = await startContainerd(bins, dir);
    }, HOOK_TIMEOUT_MS);

    afterAll(async () => {
      await stopProc(daemon?.proc);
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    }, HOOK_TIMEOUT_MS);

    const d = (): Daemon => {
      if (!daemon) throw new Error(`containerd ${gen} did not start`);
      return daemon;
    };

    test(`criVersion names containerd ${gen}`, async () => {
      const v = await criVersion(d().socket);
      expect(v.runtimeName).toBe("containerd");
      expect(v.runtimeVersion.startsWith(bins.version)).toBe(true);
      expect(v.runtimeApiVersion).toBe("v1");
    }, TEST_TIMEOUT_MS);

    const statusTitle = STATUS_HAS_REGISTRY[gen]
      ? `criStatus on ${gen}: RuntimeReady, and registry.configPath is the config_path written`
      : `criStatus on ${gen}: RuntimeReady; the verbose status carries no registry config (2.x), so criRegistryConfigPath is undefined`;
    test(statusTitle, async () => {
      const status = await criStatus(d().socket);
      const ready = status.conditions.find((c) => c.type === "RuntimeReady");
      expect(ready).toEqual({ type: "RuntimeReady", status: true, reason: "", message: "" });
      expect(status.conditions.map((c) => c.type)).toContain("NetworkReady");
      expect(typeof status.info.config).toBe("object");
      expect(status.info.golang).toEqual(expect.stringMatching(/^go\d/));
      if (STATUS_HAS_REGISTRY[gen]) {
        expect(criRegistryConfigPath(status)).toBe(d().configPath);
      } else {
        expect(criRegistryConfigPath(status)).toBeUndefined();
        expect(JSON.stringify(status.info)).not.toContain(d().configPath);
      }
    }, TEST_TIMEOUT_MS);

    test(`criPullImage on ${gen} follows config_path to an unreachable docker.io host and rejects fast, naming the RPC`, async () => {
      writeDockerIoHosts(d().configPath, "http://127.0.0.1:1");
      const started = Date.now();
      const err = await criPullImage(d().socket, IMAGE, { timeoutMs: 20_000 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(CriError);
      const message = (err as CriError).message;
      expect(message).toContain("runtime.v1.ImageService/PullImage");
      expect(message).toContain(`unix://${d().socket}`);
      expect(message).toContain(IMAGE);
      // The address comes from hosts.toml under config_path: the CRI pull read it.
      expect(message).toMatch(/127\.0\.0\.1:1\b.*connection refused/);
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(await criImageStatus(d().socket, IMAGE)).toBeNull();
    }, TEST_TIMEOUT_MS);

    test(`criPullImage on ${gen} pulls ${IMAGE} through the local registry named in hosts.toml; criImageStatus finds it`, async () => {
      if (!registry) throw new Error("registry did not start");
      writeDockerIoHosts(d().configPath, registry.url);
      const ref = await criPullImage(d().socket, IMAGE, { timeoutMs: 30_000 });
      expect(ref).toMatch(/^sha256:[0-9a-f]{64}$/);

      const image = await criImageStatus(d().socket, IMAGE);
      expect(image).not.toBeNull();
      expect(image?.id).toBe(ref);
      expect(image?.repoTags).toContain(IMAGE);
      expect(image?.repoDigests.every((r) => r.startsWith("docker.io/library/tiny@sha256:"))).toBe(true);
      expect(image?.size).toBeGreaterThan(0);
      expect((await criListImages(d().socket)).map((i) => i.id)).toContain(ref);

      await criRemoveImage(d().socket, IMAGE);
      expect(await criImageStatus(d().socket, IMAGE)).toBeNull();
      // RemoveImage is idempotent.
      await criRemoveImage(d().socket, IMAGE);
    }, TEST_TIMEOUT_MS);
  });
}
