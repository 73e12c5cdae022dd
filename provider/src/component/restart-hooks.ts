/**
 * beforeRestart and afterRestart: the user's own commands run where `pulumi up` runs, around a
 * node's restart of containerd (`kubectl drain`, then `uncordon`, as kubespray does around its
 * upgrades). Each is a `local.Command` that runs exactly when config.toml's apply restarts containerd:
 *
 * - its triggers are config.toml's hash, the node's SSH address and config.toml's drift token: a
 *   trigger change is a replace, and a replace runs `create` (the hook). Those are the three things
 *   that make the apply restart: a new config.toml, a new machine (its first apply), and the repair
 *   of a config.toml the read found drifted (a mode-only repair does not restart; the hooks run anyway).
 * - the drift token counts only when this run's read found config.toml drifted (otherwise it is
 *   ignored and the recorded one stays): a node not read, or not reached, has no token, and that
 *   must not pass for a repair.
 * - any other change (the command itself, the node's host in its environment) is an update, and
 *   `update` runs nothing: the hook is used as it now reads at the next restart.
 *
 * A failed hook fails its resource, so whatever depends on it does not run: config.toml's apply
 * depends on the before hook, and the next wave of a fleet on the after hook.
 */
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";

export type RestartHookKind = "beforeRestart" | "afterRestart";

/** What both hooks of one node share. */
export interface RestartHookContext {
  /** The node's name in the program: CONTAINERD_NODE_NAME, and the prefix of the hooks' names. */
  name: string;
  /** connection.host: CONTAINERD_NODE_HOST. */
  host: pulumi.Input<string>;
  /** "host:port": a new machine is a first apply, which restarts. */
  address: pulumi.Input<string>;
  configHash: string;
  /** config.toml's drift token (rejects for a node its read refused: then no hook registers either). */
  repairToken: pulumi.Input<string>;
  /** Whether this run's read found config.toml drifted; undefined when the node is not read. */
  repairing?: Promise<boolean>;
  parent: pulumi.Resource;
}

/** The index of the drift token in triggers, as ignoreChanges names it. */
const REPAIR_TRIGGER = "triggers[2]";

/** A node's hook as a local.Command run by `sh -c`; undefined when the command is not set. */
export function restartHook(kind: RestartHookKind, shell: string | undefined, c: RestartHookContext, dependsOn: pulumi.Input<pulumi.Resource>[]): command.local.Command | undefined {
  if (shell === undefined) return undefined;
  const repairing = c.repairing;
  return new command.local.Command(
    `${c.name}:${kind}`,
    {
      create: shell,
      update: "true",
      interpreter: ["/bin/sh", "-c"],
      environment: pulumi.output(c.host).apply((host) => ({ CONTAINERD_NODE_NAME: c.name, CONTAINERD_NODE_HOST: host })),
      triggers: [c.configHash, c.address, c.repairToken],
      addPreviousOutputInEnv: false,
    },
    {
      parent: c.parent,
      dependsOn,
      ignoreChanges: repairing ? undefined : [REPAIR_TRIGGER],
      transforms: repairing ? [async (a) => ((await repairing) ? undefined : { props: a.props, opts: { ...a.opts, ignoreChanges: [...(a.opts.ignoreChanges ?? []), REPAIR_TRIGGER] } })] : undefined,
    },
  );
}
