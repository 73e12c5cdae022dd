import * as pulumi from "@pulumi/pulumi";
import { ContainerdFleet, FleetNodeArgs, RegistryHostOf } from "@containerd-pulumi/containerd-node";

export interface PrivatePullThroughArgs {
  nodes: FleetNodeArgs[];
  containerdVersion: string;
  /** The cache's base URL, e.g. https://harbor.example.com. */
  harborUrl: string;
  /** Proxy-cache project per upstream registry, e.g. { "docker.io": "dockerhub" } ("" = the cache's root). */
  projects: Record<string, string>;
  /** The cache's CA certificate (PEM), shipped to every node beside hosts.toml; https only. */
  caPem?: string;
  /** A robot account of the cache: a Pulumi secret, rendered only into the files that need it. */
  username: pulumi.Input<string>;
  password: pulumi.Input<string>;
}

/**
 * A private Harbor-style pull-through cache for several registries: each upstream goes through its
 * proxy-cache project (`override_path`, since the project path already holds the API root),
 * credentials are Pulumi secrets, the cache's CA travels with the spec, and "*" sends every other
 * registry to the cache too.
 */
export function privatePullThrough(name: string, args: PrivatePullThroughArgs): ContainerdFleet {
  const base = args.harborUrl.replace(/\/+$/, "");
  const cache = (path: string): RegistryHostOf<pulumi.Input<string>> => ({
    url: `${base}${path}`,
    overridePath: path !== "",
    ...(args.caPem && base.startsWith("https://") ? { ca: args.caPem } : {}),
    auth: { username: args.username, password: args.password },
  });
  const registries: Record<string, { mirrors: RegistryHostOf<pulumi.Input<string>>[] }> = {};
  for (const [upstream, project] of Object.entries(args.projects)) {
    // An empty project name proxies at the cache's root API (/v2).
    registries[upstream] = { mirrors: [cache(project ? `/v2/${project}` : "/v2")] };
  }
  // Everything else: the cache itself, as a plain registry.
  registries["*"] = { mirrors: [cache("")] };
  return new ContainerdFleet(name, {
    containerdVersion: args.containerdVersion,
    systemdCgroup: true,
    registries,
    nodes: args.nodes,
    rollout: { maxUnavailable: "25%" },
  });
}
