/**
 * The node read's protocol, beside its script (read-script.ts), as commands.ts is beside the node
 * script: what the program asks (a ReadRequest, as the script's positional arguments), the command
 * line that runs it, and what the node answers (its records, parsed into a NodeRead).
 */
import { readCommand } from "./commands";
import type { NodeCommandOptions } from "./commands";

/** What the program asks a node's read for (read-script.ts's arguments, in order). */
export interface ReadRequest {
  ctr: string;
  grpcAddress: string;
  /** The registry config directory (registryConfigPath). */
  certsDir: string;
  configFile: string;
  probeTimeoutSeconds: number;
  probing: boolean;
  /** Registry directories the spec manages (`_default` for "*"). */
  managedDirs: readonly string[];
  /** Managed files, in write order: secret ones are read by sha256 and mode only. */
  files: readonly { path: string; secret: boolean }[];
  /** Each mirror probe's arguments (a "P" group, node-findings.ts probeTargets). */
  probes: readonly { args: readonly string[] }[];
  /**
   * The systemd unit of a `systemctl restart UNIT` restartCommand and that systemctl (a "K" group):
   * the read answers the unit's KillMode. Absent for another restart command.
   */
  killMode?: { unit: string; systemctl: string };
  /**
   * The spec's sandbox image as containerd names it (docker.io/library/..., a tag): an "I" group,
   * for which the read answers whether containerd's k8s.io namespace holds it.
   */
  sandboxImage?: string;
}

/** The read script's positional arguments for a request. */
export function readArguments(r: ReadRequest): string[] {
  return [
    r.ctr, r.grpcAddress, r.certsDir, r.configFile, String(r.probeTimeoutSeconds), r.probing ? "1" : "0",
    ...r.managedDirs.flatMap((d) => ["M", d]),
    ...r.files.flatMap((f) => [f.secret ? "S" : "F", f.path]),
    ...r.probes.flatMap((t) => [...t.args]),
    ...(r.killMode ? ["K", r.killMode.unit, r.killMode.systemctl] : []),
    ...(r.sandboxImage ? ["I", r.sandboxImage] : []),
  ];
}

/** The command line that runs the read (its script arrives on stdin). */
export function readRequestCommand(r: ReadRequest, o: Pick<NodeCommandOptions, "sudo">): string {
  return readCommand(o, readArguments(r));
}

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
  /**
   * The KillMode of the unit the request named ("unknown" when systemctl did not say), and the unit's
   * LoadState when systemd has no usable unit by that name ("not-found", "masked", ...): systemd then
   * shows its default KillMode, control-group, which no drop-in changes.
   */
  killMode?: { unit: string; value: string; loadState?: string };
  /** The I group's image, and whether k8s.io holds it ("unknown": ctr did not answer). */
  sandbox?: { image: string; state: "present" | "absent" | "unknown" };
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
      case "killmode":
        r.killMode = { unit: words[0], value: words[1] || "unknown", ...(words[2] ? { loadState: words[2] } : {}) };
        break;
      case "sandbox": {
        const state = words[words.length - 1];
        r.sandbox = { image: head(1), state: state === "present" || state === "absent" ? state : "unknown" };
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
