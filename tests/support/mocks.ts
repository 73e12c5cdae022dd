/**
 * Pulumi mocks for component tests: records every registration with its inputs (secrets unwrapped
 * and noted) and, through a transformation on the component, the resource options that mocks do
 * not pass to newResource (dependsOn, deleteBeforeReplace, parent).
 */
import * as pulumi from "@pulumi/pulumi";

const SECRET_SIG = "4dabf18193072939515e22adb298388d";

export interface Registered {
  type: string;
  name: string;
  inputs: Record<string, any>;
  /** Input names whose value arrived as a secret. */
  secretInputs: string[];
}

export interface RecordedOptions {
  name: string;
  dependsOn: string[];
  deleteBeforeReplace?: boolean;
  retainOnDelete?: boolean;
  ignoreChanges?: string[];
  parent?: string;
}

export interface MockWorld {
  registered: Registered[];
  options: RecordedOptions[];
  /** Pass as `transformations` in the component's options. */
  transformation: pulumi.ResourceTransformation;
  byName(name: string): Registered;
}

function unwrap(v: any): { value: any; secret: boolean } {
  if (v && typeof v === "object" && v[SECRET_SIG] !== undefined) return { value: v.value, secret: true };
  return { value: v, secret: false };
}

export function installMocks(opts: { preview?: boolean; stdout?: (r: Registered) => string } = {}): MockWorld {
  const world: MockWorld = {
    registered: [],
    options: [],
    transformation: (t) => {
      const deps = (t.opts.dependsOn ?? []) as pulumi.Resource[];
      world.options.push({
        name: t.name,
        dependsOn: (Array.isArray(deps) ? deps : [deps]).map((r) => (r as unknown as { __name?: string }).__name ?? "?"),
        deleteBeforeReplace: (t.opts as pulumi.CustomResourceOptions).deleteBeforeReplace,
        retainOnDelete: t.opts.retainOnDelete,
        ignoreChanges: t.opts.ignoreChanges,
        parent: (t.opts.parent as unknown as { __name?: string } | undefined)?.__name,
      });
      return undefined;
    },
    byName(name) {
      const r = world.registered.find((x) => x.name === name);
      if (!r) throw new Error(`no resource named ${name}; have ${world.registered.map((x) => x.name).join(", ")}`);
      return r;
    },
  };
  pulumi.runtime.setMocks(
    {
      newResource(args) {
        const inputs: Record<string, any> = {};
        const secretInputs: string[] = [];
        for (const [k, v] of Object.entries(args.inputs)) {
          const u = unwrap(v);
          inputs[k] = u.value;
          if (u.secret) secretInputs.push(k);
        }
        const rec = { type: args.type, name: args.name, inputs, secretInputs };
        world.registered.push(rec);
        const state = args.type === "command:remote:Command" ? { ...args.inputs, stdout: opts.stdout?.(rec) ?? "", stderr: "" } : args.inputs;
        return { id: `${args.name}-id`, state };
      },
      call: () => ({}),
    },
    "containerd-node-test",
    "test",
    opts.preview ?? false,
  );
  return world;
}

/** Resolves an Output (never resolves for an unknown value: do not use in preview). */
export function valueOf<T>(o: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => o.apply(resolve));
}

/**
 * Waits until the SDK has no RPC in flight (registrations, registerOutputs). Call after each test:
 * a straggler from one test reaching the next test's fresh mock monitor fails as "unknown resource".
 */
export async function settle(): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const settings = require("@pulumi/pulumi/runtime/settings") as { waitForRPCs: () => Promise<void> };
  await new Promise((r) => setTimeout(r, 10));
  await settings.waitForRPCs();
}
