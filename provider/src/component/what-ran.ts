/**
 * Which of the node's commands ran in this deployment. A command's stdout is that of its last run,
 * and an `up` that changes nothing on a file returns the old one; reports built from it alone would
 * say "restarted" on every later `up`. The engine says which resources it created or updated: an
 * afterCreate/afterUpdate resource hook runs when the step succeeded and before the engine answers
 * the resource's registration (pulumi/pulumi pkg/resource/deploy/step.go, CreateStep/UpdateStep
 * Apply: RunHooks, then reg.Done), so by the time a command's stdout resolves in the program, its
 * hook has recorded it.
 *
 * Where the monitor takes no hooks (a Pulumi CLI before resource hooks, or unit tests under
 * `setMocks`, whose mock monitor has no registerResourceHook), every report counts, as before.
 */
import * as pulumi from "@pulumi/pulumi";

interface Registry {
  hook: pulumi.ResourceHook;
  ran: Set<string>;
}

type Monitor = object & { registerResourceHook?: unknown };

/** One hook per deployment, shared by every copy of this library in the program (hook names are unique). */
const REGISTRIES_KEY = Symbol.for("@containerd-pulumi/containerd-node/what-ran");
const registries: WeakMap<Monitor, Registry> = ((globalThis as Record<symbol, unknown>)[REGISTRIES_KEY] as WeakMap<Monitor, Registry>) ??
  ((globalThis as Record<symbol, unknown>)[REGISTRIES_KEY] = new WeakMap<Monitor, Registry>());

function monitorTakesHooks(): Monitor | undefined {
  const monitor = pulumi.runtime.getMonitor() as Monitor | undefined;
  if (!monitor || typeof monitor.registerResourceHook !== "function") return undefined;
  if (typeof (pulumi as { ResourceHook?: unknown }).ResourceHook !== "function") return undefined;
  // The SDK asks the engine which features it has before the program runs; an older CLI has no hooks.
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const state = require("@pulumi/pulumi/runtime/state") as { getStore(): { supportsResourceHooks?: boolean } };
    return state.getStore().supportsResourceHooks ? monitor : undefined;
  } catch {
    return undefined;
  }
}

/** The hooks to bind to a file's command, or none where the monitor cannot take them. */
export function whatRan(): pulumi.ResourceHookBinding | undefined {
  const monitor = monitorTakesHooks();
  if (!monitor) return undefined;
  let r = registries.get(monitor);
  if (!r) {
    const ran = new Set<string>();
    const hook = new pulumi.ResourceHook("containerd-node-what-ran", (args) => {
      ran.add(args.urn);
    });
    r = { hook, ran };
    registries.set(monitor, r);
  }
  return { afterCreate: [r.hook], afterUpdate: [r.hook] };
}

/** Whether the command of this URN ran in this deployment (always true where hooks are not available). */
export function ranThisDeployment(urn: string): boolean {
  const monitor = monitorTakesHooks();
  if (!monitor) return true;
  return registries.get(monitor)?.ran.has(urn) ?? false;
}
