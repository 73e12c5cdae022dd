import { ContainerdFleet, FleetNodeArgs } from "@containerd-pulumi/containerd-node";

export interface ChinaMirrorsArgs {
  nodes: FleetNodeArgs[];
  /** The containerd version the nodes run. */
  containerdVersion: string;
  /** Docker Hub mirrors, tried in order before registry-1.docker.io. */
  dockerHubMirrors?: string[];
  /** registry.k8s.io mirrors, tried in order before registry.k8s.io. */
  k8sMirrors?: string[];
  /** The pause image, from a registry reachable from the nodes. */
  sandboxImage?: string;
}

/**
 * The classic setup guide, declared: SystemdCgroup on, config_path set, the pause image from a
 * domestic registry, docker.io and registry.k8s.io through domestic mirrors.
 */
export function chinaMirrors(name: string, args: ChinaMirrorsArgs): ContainerdFleet {
  return new ContainerdFleet(name, {
    containerdVersion: args.containerdVersion,
    // sed -i 's/SystemdCgroup = false/SystemdCgroup = true/' /etc/containerd/config.toml
    systemdCgroup: true,
    // sed -i 's+registry.k8s.io+registry.aliyuncs.com/google_containers+' (the pause image only)
    sandboxImage: args.sandboxImage ?? "registry.aliyuncs.com/google_containers/pause:3.9",
    // sed -i 's+config_path = ""+config_path = "/etc/containerd/certs.d"+': always set; one directory.
    registries: {
      // mkdir -p /etc/containerd/certs.d/docker.io && cat > .../hosts.toml: with the right server
      // (registry-1.docker.io, not docker.io) and pull+resolve only.
      "docker.io": { mirrors: args.dockerHubMirrors ?? ["https://docker.mirrors.sjtug.sjtu.edu.cn", "https://docker.m.daocloud.io"] },
      "registry.k8s.io": { mirrors: args.k8sMirrors ?? ["https://k8s.m.daocloud.io"] },
    },
    nodes: args.nodes,
    // systemctl restart containerd, one node at a time after a first canary, each checked healthy.
    rollout: { maxUnavailable: 1, canary: 1 },
  });
}
