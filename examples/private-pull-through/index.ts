import * as pulumi from "@pulumi/pulumi";
import { privatePullThrough } from "./program";

interface NodeConfig {
  name: string;
  host: string;
  hostKey: string;
  port?: number;
  /** This node's containerd, when it differs from the fleet's containerdVersion. */
  containerdVersion?: string;
}

const config = new pulumi.Config();
const privateKey = config.requireSecret("privateKey");
const fleet = privatePullThrough("k8s-nodes", {
  containerdVersion: config.get("containerdVersion") ?? "1.7.22",
  harborUrl: config.require("harborUrl"),
  projects: config.getObject<Record<string, string>>("projects") ?? {
    "docker.io": "dockerhub-proxy",
    "ghcr.io": "ghcr-proxy",
    "quay.io": "quay-proxy",
    "registry.k8s.io": "k8s-proxy",
  },
  caPem: config.get("caPem"),
  username: config.require("harborUser"),
  password: config.requireSecret("harborPassword"),
  nodes: config.requireObject<NodeConfig[]>("nodes").map((n) => ({
    name: n.name,
    ...(n.containerdVersion ? { containerdVersion: n.containerdVersion } : {}),
    connection: { host: n.host, port: n.port ?? 22, hostKey: n.hostKey, privateKey },
  })),
});

export const waves = fleet.waves;
