/**
 * A node's plan: everything the component will declare and run for one node, worked out from its
 * args before anything is declared or any host is contacted. Pure: it renders, orders and resolves;
 * the component (containerd-node.ts) pins the connection, reads the node and declares the plan.
 *
 * The only Pulumi values here are the spec's input leaves (credentials, header values, keys given
 * as Outputs), which stay Outputs: a file they feed gets its content from them when they resolve.
 */
import * as pulumi from "@pulumi/pulumi";
import { createHash } from "crypto";
import { Problem, SpecError } from "../errors";
import { NodeCommandOptions, probePullCommand, scriptPathFor, writeOrder } from "../remote/commands";
import type { ReadRequest } from "../remote/read";
import { renderNode } from "../render/render-node";
import { fullReference } from "../spec/image-reference";
import type { RenderedFile } from "../spec/types";
import { DEFAULT_REGISTRY_CONFIG_PATH } from "../spec/validate";
import { ConfigVersion, parseVersion } from "../spec/version";
import { ContainerdNodeArgs, mirrorProbeSettings, operationProblems, specOf } from "./node-args";
import { ProbeTarget, ReadOptions, probeTargets } from "./node-findings";
import { findInputLeaves, placeholder, withLeaves } from "./secret-leaves";

/** One managed file as the plan declares it. */
export interface PlannedFile {
  file: RenderedFile;
  /** Its content: plain, or (a secret file) an Output of the input leaves that feed it. */
  content: pulumi.Input<string>;
  /** Indexes (in the plan's files) of the files whose commands must finish first. */
  after: number[];
  /** Pulls run through a hosts.toml right after it is written (probeImages). */
  probes: string[];
}

export interface NodePlan {
  name: string;
  configVersion: ConfigVersion;
  /** The lowest containerd the files are for, e.g. "1.7.0". */
  minimumVersion: string;
  configFile: string;
  /** registryConfigPath. */
  certsDir: string;
  /** sha256 of config.toml: changes exactly when containerd will restart. */
  configHash: string;
  warnings: string[];
  /** In write order: certificates, then the hosts.toml that points at them, then config.toml. */
  files: PlannedFile[];
  /** The node script's options for every command of this node (the owner is added once known). */
  command: Omit<NodeCommandOptions, "owner">;
  /** onDelete "keep": deletes leave files without credentials in place. */
  keep: boolean;
  forget: boolean;
  /** The node read: what it asks, how long it may take, what its findings are judged against. */
  read: { request: ReadRequest; timeoutSeconds: number; probeSeconds: number; probing: boolean; targets: ProbeTarget[]; findings: ReadOptions };
}

export type PlanResult = { plan: NodePlan; problems?: undefined } | { plan?: undefined; problems: Problem[] };

/** Every problem of the args at once, or the plan. */
export function planNode(name: string, args: ContainerdNodeArgs): PlanResult {
  const subject = `Invalid ContainerdNode args for "${name}"`;
  const problems = operationProblems(args);
  if (args.connection === undefined) problems.push({ path: "connection", message: "is required" });
  const spec = specOf(args as unknown as Record<string, unknown>);
  const registries = Object.keys((args.registries as Record<string, unknown> | undefined) ?? {});
  if (args.probeImages && typeof args.probeImages === "object") {
    for (const reg of Object.keys(args.probeImages)) {
      if (!registries.includes(reg)) {
        problems.push({ path: `probeImages[${JSON.stringify(reg)}]`, message: `names no registry of registries (${registries.length ? registries.map((k) => JSON.stringify(k)).join(", ") : "there are none"})` });
      }
    }
  }
  problems.push(...outputsIn(spec.settings, "settings"));
  if (problems.some((p) => p.path.startsWith("settings"))) return { problems };

  // The input leaves as placeholders: the files and their order are known now. Rendered once more
  // with every leaf's other placeholder, the files that differ are those some leaf feeds: secret.
  const leaves = findInputLeaves(spec);
  const withPlaceholders = (variant: "a" | "b") => withLeaves(spec, leaves, leaves.map((l) => placeholder(l, variant)));
  let result;
  try {
    result = renderNode(withPlaceholders("a"), { subject });
  } catch (e) {
    if (e instanceof SpecError) return { problems: [...problems, ...e.problems] };
    throw e;
  }
  if (problems.length > 0) return { problems };
  const fed = new Set<string>();
  if (leaves.length > 0) {
    const other = renderNode(withPlaceholders("b"), { subject });
    other.files.forEach((f, i) => f.content !== result.files[i].content && fed.add(f.path));
  }
  // A file fed by an Output (a credential, a header value, a key) is treated as secret: 0600 on the
  // node and a secret input, whatever the value turns out to be.
  for (const f of result.files) if (fed.has(f.path)) Object.assign(f, { secret: true, mode: 0o600 });

  // The secret files' real content: one render of the spec with the leaves' values, shared by them.
  const real =
    leaves.length === 0
      ? undefined
      : pulumi.all(leaves.map((l) => l.value)).apply((values) => renderNode(withLeaves(spec, leaves, values), { subject }).files);
  const contentOf = (f: RenderedFile): pulumi.Input<string> => {
    if (!fed.has(f.path) || real === undefined) return f.secret ? pulumi.secret(f.content) : f.content;
    return pulumi.secret(
      real.apply((files) => {
        const same = files.find((x) => x.path === f.path);
        // Only a client key given as an Output can miss: its value decides whether a key file
        // exists, and it was taken for PEM content when the file list was made.
        if (!same) throw new SpecError(subject, [{ path: leaves.filter((l) => l.pem).map((l) => l.path.join(".")).join(", "), message: "[secret] must be PEM content when given as an Output (a path on the node must be a plain string)" }]);
        return same.content;
      }),
    );
  };

  const v = parseVersion(String(args.containerdVersion))!;
  const configFile = result.files.find((f) => f.kind === "config")!;
  const certsDir = (args.registryConfigPath as string | undefined) ?? DEFAULT_REGISTRY_CONFIG_PATH;
  const command: Omit<NodeCommandOptions, "owner"> = {
    label: name,
    lockFile: `${configFile.path.replace(/\/[^/]*$/, "")}/.containerd-node.lock`,
    containerd: args.containerdPath ?? "containerd",
    ctr: args.ctrPath ?? "ctr",
    grpcAddress: args.grpcAddress ?? "/run/containerd/containerd.sock",
    restartCommand: args.restartCommand ?? "systemctl restart containerd",
    healthTimeoutSeconds: args.healthTimeoutSeconds ?? 60,
    configVersion: result.configVersion,
    minimumVersion: `${v.major}.${v.minor}.${v.patch}`,
    healthChecks: args.healthChecks ?? [],
    sudo: args.sudo ?? false,
    script: scriptPathFor(configFile.path),
    allowContainerLoss: args.allowContainerLoss ?? false,
    ...(args.crictlPath !== undefined ? { crictl: args.crictlPath } : {}),
  };

  const sorted = writeOrder(result.files);
  const files: PlannedFile[] = sorted.map((f) => {
    const image = f.kind === "hosts" && f.registry !== undefined ? args.probeImages?.[f.registry] : undefined;
    return { file: f, content: contentOf(f), after: [], probes: image === undefined ? [] : [probePullCommand(command, certsDir, image)] };
  });
  // A hosts.toml waits for its registry's certificates; config.toml (whose config_path must find
  // complete hosts directories) for every other file.
  files.forEach((pf, i) => {
    if (pf.file.kind === "hosts") pf.after = sorted.flatMap((g, j) => (g.kind === "certificate" && g.registry === pf.file.registry ? [j] : []));
    if (pf.file.kind === "config") pf.after = sorted.flatMap((_, j) => (j < i ? [j] : []));
  });

  const probe = mirrorProbeSettings(args.mirrorProbe);
  const targets = probe.enabled ? probeTargets(result.files) : [];
  const unit = systemdUnitOf(command.restartCommand);
  // The read asks whether the node holds the spec's sandbox image (containerd's default, which
  // differs by release, is checked by the apply alone).
  const sandbox = typeof spec.sandboxImage === "string" ? spec.sandboxImage : undefined;
  const managedDirs = [...new Set(result.files.filter((f) => f.kind === "hosts").map((f) => f.path.slice(certsDir.length + 1).split("/")[0]))];
  return {
    plan: {
      name,
      configVersion: result.configVersion,
      minimumVersion: command.minimumVersion,
      configFile: configFile.path,
      certsDir,
      configHash: createHash("sha256").update(configFile.content).digest("hex"),
      warnings: result.warnings,
      files,
      command,
      keep: (args.onDelete ?? "restore") === "keep",
      forget: args.forget === true,
      read: {
        request: {
          ctr: command.ctr,
          grpcAddress: command.grpcAddress,
          certsDir,
          configFile: configFile.path,
          probeTimeoutSeconds: probe.timeoutSeconds,
          probing: probe.enabled,
          managedDirs,
          files: sorted.map((f) => ({ path: f.path, secret: f.secret })),
          probes: targets,
          ...(unit ? { killMode: unit } : {}),
          ...(sandbox !== undefined ? { sandboxImage: fullReference(sandbox) } : {}),
        },
        timeoutSeconds: args.readTimeoutSeconds ?? 10,
        probeSeconds: probe.timeoutSeconds,
        probing: probe.enabled,
        targets,
        findings: {
          label: name,
          configVersion: result.configVersion,
          minimumVersion: command.minimumVersion,
          certsDir,
          managedDirs,
          configFile: configFile.path,
          imports: (args.imports as string[] | undefined) ?? [],
          dropImports: args.dropImports ?? [],
          unmanagedRegistries: args.unmanagedRegistries ?? "warn",
          unreadNode: args.unreadNode ?? "warn",
          probePolicy: probe.policy,
          allowDeadRegistries: probe.allowDeadRegistries,
          restartUnit: unit?.unit ?? "",
          allowContainerLoss: command.allowContainerLoss === true,
        },
      },
    },
  };
}

/** planNode, or a SpecError naming every problem. */
export function planOrThrow(name: string, args: ContainerdNodeArgs): NodePlan {
  const r = planNode(name, args);
  if (r.problems) throw new SpecError(`Invalid ContainerdNode args for "${name}"`, r.problems);
  return r.plan;
}

/**
 * The systemd unit a restart command restarts, and the systemctl it runs, as node-script.ts
 * killmode_guard works it out on the node: its first line's first word is systemctl (or a path
 * ending in /systemctl), the second `restart`, and the unit is the first word after that is not an
 * option, trimmed of a trailing ; & | or ). A unit name of other characters, or another command, is
 * no unit: systemd does not manage that restart, as far as the guard can tell.
 */
export function systemdUnitOf(restartCommand: string): { unit: string; systemctl: string } | undefined {
  const words = (restartCommand.split("\n")[0] ?? "").split(/[ \t]+/).filter((w) => w !== "");
  if (words.length < 3 || !/(^|\/)systemctl$/.test(words[0]) || words[1] !== "restart") return undefined;
  const first = words.slice(2).find((w) => !w.startsWith("-"));
  if (first === undefined) return undefined;
  const unit = first.replace(/[;&|)]+$/, "");
  return /^[A-Za-z0-9:_.@-]+$/.test(unit) ? { unit, systemctl: words[0] } : undefined;
}

/** Outputs and Promises in settings cannot be rendered now; say where they are. */
function outputsIn(v: unknown, at: string): Problem[] {
  if (pulumi.Output.isInstance(v) || v instanceof Promise) {
    return [{ path: at, message: "is an Output or Promise; settings must be plain values known when the program runs (credentials belong in registries[...].auth)" }];
  }
  if (Array.isArray(v)) return v.flatMap((x, i) => outputsIn(x, `${at}[${i}]`));
  if (typeof v === "object" && v !== null) {
    return Object.entries(v).flatMap(([k, x]) => outputsIn(x, /^[A-Za-z_][A-Za-z0-9_]*$/.test(k) ? `${at}.${k}` : `${at}[${JSON.stringify(k)}]`));
  }
  return [];
}
