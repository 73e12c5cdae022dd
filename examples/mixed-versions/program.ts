import { ContainerdFleet, FleetNodeArgs } from "@containerd-pulumi/containerd-node";

export interface MixedVersionsArgs {
  /** Each node names the containerd version it runs: 1.6, 1.7 and 2.x may be mixed. */
  nodes: (FleetNodeArgs & { containerdVersion: string })[];
  dockerHubMirror: string;
  sandboxImage?: string;
}

/**
 * One spec for a fleet in the middle of a containerd upgrade: 1.x nodes get a version 2 config.toml,
 * 2.x nodes a version 3 one, each with every setting at the path its version reads.
 */
export function mixedVersions(name: string, args: MixedVersionsArgs): ContainerdFleet {
  return new ContainerdFleet(name, {
    systemdCgroup: true,
    sandboxImage: args.sandboxImage ?? "registry.k8s.io/pause:3.10",
    maxConcurrentDownloads: 5,
    registries: { "docker.io": { mirrors: [args.dockerHubMirror] } },
    nodes: args.nodes,
    rollout: { maxUnavailable: "50%" },
  });
}
