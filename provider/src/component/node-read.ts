/**
 * The program's own read of a node: one SSH session, one read-only script (remote/read-script.ts),
 * while the program runs, in preview and in up. `remote.Command` has no read of its own (pulumi-command
 * implements Read as "return the state", so `pulumi refresh` sees nothing on a node), and a preview
 * runs nothing on nodes; this is how a preview learns what a node has now.
 *
 * ssh2 is the SSH client: pure JavaScript (no native build, which npm here does not run without an
 * approval), the library the Node.js SSH tooling is built on, and it gives host-key verification,
 * jump hosts (forwardOut) and agent and key authentication: the same options as the command
 * provider's connection, so the read reaches exactly the nodes the commands reach, the same way.
 */
import { Client, ConnectConfig } from "ssh2";
import type { ConnectionArgs } from "./containerd-node";
import { hostKeyAlgorithms, hostKeyProblem } from "./known-hosts";
import { keyForSsh2 } from "./ssh-key";

export interface ReadFile {
  present: boolean;
  sha256?: string;
  /** Octal, e.g. "644". */
  mode?: string;
  /** Non-secret files only. */
  content?: string;
  /** What the component's last apply left ("sha256 mode", node-script.ts F.sum). */
  record?: { sha256: string; mode: string };
  /** The drift token of the last repair of this file. */
  repair?: string;
}

export interface ReadProbe {
  class: string;
  http?: number;
  seconds: number;
  credentials: "pass" | "fail" | "none" | "-";
  tool: string;
}

export interface NodeRead {
  /** The node answered and the read completed. */
  reached: boolean;
  /** Why not, when it did not. */
  error?: string;
  /** Wall time of the read, seconds. */
  seconds: number;
  version?: string;
  versionError?: string;
  /** The CRI plugin's status now ("ok" when healthy). */
  cri?: string;
  files: Map<string, ReadFile>;
  imports: { pattern: string; files: { path: string; content: string }[] }[];
  registryDirs: Map<string, { server?: string; hosts: string[] }>;
  /** Registry directories holding files a ContainerdNode manages (this one, or another). */
  ownedDirs: Set<string>;
  /** The directories set aside, each with how many later copies of it were set aside since. */
  setAside: { name: string; later: number }[];
  probes: Map<string, ReadProbe>;
  /** The hosts of unmanaged registry directories the read probed. */
  unmanagedProbes: { id: string; directory: string; role: "mirror" | "server"; url: string }[];
}

export function emptyRead(): NodeRead {
  return { reached: false, seconds: 0, files: new Map(), imports: [], registryDirs: new Map(), ownedDirs: new Set(), setAside: [], probes: new Map(), unmanagedProbes: [] };
}

/** Parses the read script's output (see its header for the records). */
export function parseRead(out: Buffer): NodeRead {
  const r = emptyRead();
  let i = 0;
  const nextLine = (): string | undefined => {
    if (i >= out.length) return undefined;
    const nl = out.indexOf(0x0a, i);
    const end = nl === -1 ? out.length : nl;
    const l = out.subarray(i, end).toString("utf8");
    i = end + 1;
    return l;
  };
  const file = (p: string): ReadFile => {
    let f = r.files.get(p);
    if (!f) r.files.set(p, (f = { present: false }));
    return f;
  };
  let lastImportFile: { path: string; content: string } | undefined;
  let ended = false;
  for (let l = nextLine(); l !== undefined; l = nextLine()) {
    const sp = l.indexOf(" ");
    const tag = sp === -1 ? l : l.slice(0, sp);
    const rest = sp === -1 ? "" : l.slice(sp + 1);
    const words = rest.split(" ");
    const last = (n: number) => words.slice(words.length - n);
    const head = (n: number) => words.slice(0, words.length - n).join(" ");
    switch (tag) {
      case "version":
        r.version = rest;
        break;
      case "version-unknown":
        r.versionError = rest;
        break;
      case "cri":
        r.cri = rest;
        break;
      case "file":
        if (words[words.length - 1] === "absent") file(head(1)).present = false;
        else {
          const [, sha, mode] = last(3);
          Object.assign(file(head(3)), { present: true, sha256: sha, mode });
        }
        break;
      case "record": {
        const [sha, mode] = last(2);
        file(head(2)).record = { sha256: sha, mode };
        break;
      }
      case "repair":
        file(head(1)).repair = words[words.length - 1];
        break;
      case "content": {
        const n = Number(words[words.length - 1]);
        const p = head(1);
        const body = out.subarray(i, i + n).toString("utf8");
        i += n + 1;
        if (lastImportFile && lastImportFile.path === p && lastImportFile.content === "") lastImportFile.content = body;
        else file(p).content = body;
        break;
      }
      case "import":
        r.imports.push({ pattern: rest, files: [] });
        break;
      case "importfile":
        lastImportFile = { path: rest, content: "" };
        r.imports[r.imports.length - 1]?.files.push(lastImportFile);
        break;
      case "regdir":
        r.registryDirs.set(rest, { hosts: [] });
        break;
      case "regserver":
      case "reghost": {
        const name = words[0];
        const url = words.slice(1).join(" ");
        const d = r.registryDirs.get(name) ?? { hosts: [] };
        if (tag === "regserver") d.server = url;
        else d.hosts.push(url);
        r.registryDirs.set(name, d);
        break;
      }
      case "regowned":
        r.ownedDirs.add(rest);
        break;
      case "setaside":
        r.setAside.push({ name: words[0], later: Number(words[1]) || 0 });
        break;
      case "probetarget": {
        const [id, directory, role, ...url] = words;
        r.unmanagedProbes.push({ id, directory, role: role === "server" ? "server" : "mirror", url: url.join(" ") });
        break;
      }
      case "probe": {
        const [id, cls, http, secs, creds, tool] = words;
        r.probes.set(id, { class: cls, http: http === "-" ? undefined : Number(http), seconds: Number(secs) || 0, credentials: creds as ReadProbe["credentials"], tool });
        break;
      }
      case "end":
        ended = true;
        break;
    }
  }
  r.reached = ended;
  if (!ended) r.error = "the read ended early";
  return r;
}

/**
 * ssh2's options for a connection. Never less strict than the provider's commands: a `hostKey` that
 * is set is pinned, and only its type is offered (so a server with several keys shows that one), and
 * one that cannot be pinned is refused rather than ignored (throws).
 */
export function connectConfig(c: ConnectionArgs, timeoutMs: number, sock?: NodeJS.ReadableStream): ConnectConfig {
  const hostKey = c.hostKey === undefined || c.hostKey === "" ? undefined : String(c.hostKey);
  const problem = hostKey === undefined ? undefined : hostKeyProblem(hostKey);
  if (problem) throw new Error(`hostKey of ${String(c.host)} ${problem}`);
  const pinned = hostKey === undefined ? undefined : Buffer.from(hostKey.trim().split(/\s+/)[1], "base64");
  const password = typeof c.password === "string" ? c.password : undefined;
  return {
    ...(hostKey === undefined ? {} : { algorithms: { serverHostKey: hostKeyAlgorithms(hostKey) as never } }),
    host: String(c.host),
    port: Number(c.port ?? 22),
    username: String(c.user ?? "root"),
    ...(typeof c.privateKey === "string" && c.privateKey !== ""
      ? keyForSsh2(c.privateKey, typeof c.privateKeyPassword === "string" ? c.privateKeyPassword : undefined)
      : {}),
    password,
    // The provider answers a keyboard-interactive prompt with the password too (pulumi-command
    // connection.go): a server that offers only that method is read the same way.
    tryKeyboard: password !== undefined,
    agent: typeof c.agentSocketPath === "string" ? c.agentSocketPath : process.env.SSH_AUTH_SOCK,
    readyTimeout: timeoutMs,
    // The key the node's commands pin, or any key where the node's policy accepts any.
    hostVerifier: pinned ? (key: Buffer) => key.equals(pinned) : undefined,
    sock: sock as ConnectConfig["sock"],
  };
}

/**
 * Runs `command` with `script` on stdin on the node over one SSH session and parses the output.
 * Never rejects: a node that cannot be read gives `reached: false` and the reason, which never
 * holds a credential (ssh2's messages name the host and the failure only).
 */
export function readNode(connection: ConnectionArgs, command: string, script: string, limits: { connectSeconds: number; totalSeconds: number }): Promise<NodeRead> {
  const t0 = Date.now();
  const timeoutMs = limits.connectSeconds * 1000;
  return new Promise<NodeRead>((resolve) => {
    const clients: Client[] = [];
    let done = false;
    const finish = (r: NodeRead) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      for (const c of clients) c.end();
      r.seconds = (Date.now() - t0) / 1000;
      resolve(r);
    };
    const fail = (why: string) => finish({ ...emptyRead(), error: why });
    const timer = setTimeout(() => fail(`no answer within ${limits.totalSeconds} s`), limits.totalSeconds * 1000);
    const run = (client: Client) => {
      client.exec(command, (err, stream) => {
        if (err) return fail(`cannot run the read: ${err.message}`);
        const chunks: Buffer[] = [];
        const errs: Buffer[] = [];
        stream.on("data", (b: Buffer) => chunks.push(b));
        stream.stderr.on("data", (b: Buffer) => errs.push(b));
        stream.on("close", (code: number | null) => {
          const r = parseRead(Buffer.concat(chunks));
          if (!r.reached) r.error = `the read failed (exit ${code}): ${Buffer.concat(errs).toString("utf8").trim().split("\n").slice(-2).join(" ")}`;
          finish(r);
        });
        stream.end(script);
      });
    };
    const onError = (e: Error) => fail(e.message.includes("verification failed") ? "its SSH host key is not the pinned one" : e.message);
    // Every prompt answered with the connection's password, as the provider does (tryKeyboard is
    // set only where there is one).
    const answer = (c: ConnectionArgs) => (_n: string, _i: string, _l: string, prompts: unknown[], finish: (answers: string[]) => void) =>
      finish(prompts.map(() => (typeof c.password === "string" ? c.password : "")));
    // ssh2 throws, rather than emitting an error, for what it cannot use (a private key neither it
    // nor Node's crypto reads, a host key that cannot be pinned): the read must still end.
    const connect = (client: Client, config: () => ConnectConfig) => {
      try {
        client.connect(config());
      } catch (e) {
        fail(`cannot use its connection: ${(e as Error).message}`);
      }
    };
    const proxy = (connection as { proxy?: ConnectionArgs }).proxy;
    const client = new Client();
    clients.push(client);
    client.on("error", onError).on("keyboard-interactive", answer(connection)).on("ready", () => run(client));
    if (proxy) {
      const jump = new Client();
      clients.push(jump);
      jump
        .on("error", onError)
        .on("keyboard-interactive", answer(proxy))
        .on("ready", () =>
          jump.forwardOut("127.0.0.1", 0, String(connection.host), Number(connection.port ?? 22), (err, stream) => {
            if (err) return fail(`the proxy cannot reach it: ${err.message}`);
            connect(client, () => connectConfig(connection, timeoutMs, stream));
          }),
        );
      connect(jump, () => connectConfig(proxy, timeoutMs));
    } else {
      connect(client, () => connectConfig(connection, timeoutMs));
    }
  });
}
