/**
 * The program's own read of a node, its SSH transport: one session, one read-only script
 * (remote/read-script.ts; its arguments, records and parser in remote/read.ts), while the program
 * runs, in preview and in up. `remote.Command` has no read of its own (pulumi-command
 * implements Read as "return the state", so `pulumi refresh` sees nothing on a node), and a preview
 * runs nothing on nodes; this is how a preview learns what a node has now.
 *
 * ssh2 is the SSH client: pure JavaScript (no native build, which npm here does not run without an
 * approval), the library the Node.js SSH tooling is built on, and it gives host-key verification,
 * jump hosts (forwardOut) and agent and key authentication: the same options as the command
 * provider's connection, so the read reaches exactly the nodes the commands reach, the same way.
 */
import { Client, ConnectConfig } from "ssh2";
import type { ConnectionArgs } from "./connection";
import { hostKeyAlgorithms, hostKeyProblem } from "./known-hosts";
import { keyForSsh2 } from "./ssh-key";
import { NodeRead, emptyRead, parseRead } from "../remote/read";

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
