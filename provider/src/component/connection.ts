/**
 * How a node is reached: the connection its commands and its read use, with the host key pinned
 * (given, or from the operator's known_hosts) or refused before anything is declared.
 */
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { Problem, SpecError, showValue } from "../errors";
import { hostKeyProblem, knownHostsName, knownHostsPath, lookupHostKey, readKnownHosts } from "./known-hosts";

export type ConnectionArgs = command.types.input.remote.ConnectionArgs;

/** What pinning needs of a node's args, and nothing more. */
export interface HostKeySettings {
  readonly connection: pulumi.Input<ConnectionArgs>;
  readonly hostKeyPolicy?: "known-hosts" | "accept-any";
  readonly knownHostsFile?: string;
}

/**
 * `fn` of the connection: at once when its host, port and host key are plain values (so a bad one
 * is refused before any resource exists, and the result stays a plain value), else when it resolves.
 */
export function withConnection<T>(connection: pulumi.Input<ConnectionArgs>, fn: (c: ConnectionArgs, host: string, port: number) => T): pulumi.Input<T> {
  const c = connection as ConnectionArgs;
  const plain = (v: unknown) => v === undefined || v === null || typeof v === "string" || typeof v === "number";
  const plainHost = (h: ConnectionArgs | undefined) =>
    h !== undefined && !pulumi.Output.isInstance(h) && !(h instanceof Promise) && plain(h.host) && plain(h.port) && (h.hostKey === null || typeof h.hostKey !== "object");
  const proxy = (c as { proxy?: ConnectionArgs } | undefined)?.proxy;
  if (plainHost(c) && (proxy === undefined || plainHost(proxy))) {
    return fn(c, String(c.host), Number(c.port ?? 22));
  }
  return pulumi.output(connection).apply((r) => fn(r as unknown as ConnectionArgs, String(r.host), Number(r.port ?? 22)) as never);
}

/** The SSH address of a connection, "host:port": the host resource's trigger. */
export function addressOf(connection: pulumi.Input<ConnectionArgs>): pulumi.Input<string> {
  return withConnection(connection, (_c, host, port) => `${host}:${port}`);
}

/** Why a host has no usable key, and what to run: the refusal text of hostKeyPolicy "known-hosts". */
function noHostKey(host: string, port: number, file: string, revoked: number): Problem {
  const scan = `ssh-keyscan ${port === 22 ? "" : `-p ${port} `}-t ed25519 ${host} >> ${file}`;
  return {
    path: "connection.hostKey",
    message:
      `is not set and ${knownHostsName(host, port)} has no ${revoked > 0 ? "unrevoked " : ""}ed25519, ecdsa or rsa key in ${file}; ` +
      `add it (check its fingerprint first: ${scan}), set hostKey, or set hostKeyPolicy: "accept-any" to accept any host key`,
  };
}

/**
 * The connection the node's commands use: as given when it pins `hostKey`; otherwise with the key
 * the operator's known_hosts holds for the host pinned into it (refused when there is none), or
 * unchanged under hostKeyPolicy "accept-any". Hosts known when the program runs are checked here,
 * before any resource exists; a host given as an Output is checked when it resolves, and its
 * node's commands then fail without contacting it.
 */
export function pinnedConnection(name: string, args: HostKeySettings, warn: (m: string) => void): pulumi.Input<ConnectionArgs> {
  const policy = args.hostKeyPolicy ?? "known-hosts";
  const file = knownHostsPath(args.knownHostsFile);
  const refuse = (problem: Problem) => new SpecError(`Invalid ContainerdNode args for "${name}"`, [problem]);
  // One host (the node, or its jump host at `at`): its hostKey checked, or the known one pinned.
  const pinOne = (given: ConnectionArgs, host: string, port: number, at: string): ConnectionArgs => {
    // null is a missing key, never "no check": the provider takes a null hostKey as unset and then
    // accepts any host key (pulumi-command connection.go, `if con.HostKey != nil`). A JavaScript
    // program can pass null, and a Python or Go program's None or nil arrives as null, also inside
    // an Output, which is pinned here when it resolves.
    const { hostKey: key, ...c } = given;
    if (key !== undefined && key !== null && key !== "") {
      const problem = typeof key === "string" ? hostKeyProblem(key) : undefined;
      if (problem) throw refuse({ path: `${at}.hostKey`, message: `${showValue(key)} ${problem}` });
      return given;
    }
    if (policy === "accept-any") {
      warn(`${name}: hostKeyPolicy is "accept-any": any SSH host key of ${knownHostsName(host, port)} is accepted`);
      return c;
    }
    const found = lookupHostKey(readKnownHosts(file), host, port);
    if (!found.hostKey) throw refuse({ ...noHostKey(host, port, file, found.revoked), path: `${at}.hostKey` });
    return { ...c, hostKey: found.hostKey };
  };
  const pin = (c: ConnectionArgs, host: string, port: number): ConnectionArgs => {
    const node = pinOne(c, host, port, "connection");
    const proxy = (c as { proxy?: ConnectionArgs }).proxy;
    if (!proxy) return node;
    // The jump host is pinned the same way: a jump host that anyone can impersonate sees every
    // session to the node (the provider's proxy connection takes hostKey like the node's).
    return { ...node, proxy: pinOne(proxy, String(proxy.host), Number(proxy.port ?? 22), "connection.proxy") } as ConnectionArgs;
  };
  return withConnection(args.connection, pin);
}

/**
 * The connection's value, or undefined while it is unknown (a preview of a node whose address comes
 * from a resource not created yet): an apply on an unknown Output never runs, and a read waiting
 * on one would hold every command of the node back for good.
 */
export async function knownConnection(connection: pulumi.Input<ConnectionArgs>): Promise<ConnectionArgs | undefined> {
  const out = pulumi.output(connection) as unknown as { isKnown: Promise<boolean>; promise(): Promise<ConnectionArgs> };
  return (await out.isKnown) ? out.promise() : undefined;
}
