import * as pulumi from "@pulumi/pulumi";
import { chinaMirrors } from "./program";

interface NodeConfig {
  name: string;
  host: string;
  hostKey: string;
  port?: number;
  user?: string;
  /** This node's containerd, when it differs from the fleet's containerdVersion. */
  containerdVersion?: string;
}

const config = new pulumi.Config();
const privateKey = config.requireSecret("privateKey");
const fleet = chinaMirrors("k8s-nodes", {
  containerdVersion: config.get("containerdVersion") ?? "1.7.22",
  // Mirrors die without notice: replace the guide's list with your own, no code change.
  dockerHubMirrors: config.getObject<string[]>("dockerHubMirrors"),
  k8sMirrors: config.getObject<string[]>("k8sMirrors"),
  sandboxImage: config.get("sandboxImage"),
  nodes: config.requireObject<NodeConfig[]>("nodes").map((n) => ({
    name: n.name,
    ...(n.containerdVersion ? { containerdVersion: n.containerdVersion } : {}),
    connection: { host: n.host, port: n.port ?? 22, user: n.user ?? "root", hostKey: n.hostKey, privateKey },
  })),
});

export const waves = fleet.waves;
export const restartedNodes = fleet.restartedNodes;
