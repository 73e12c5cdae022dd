import * as pulumi from "@pulumi/pulumi";
import { chinaMirrors } from "./program";

interface NodeConfig {
  name: string;
  host: string;
  hostKey: string;
  user?: string;
}

const config = new pulumi.Config();
const privateKey = config.requireSecret("privateKey");
const fleet = chinaMirrors("k8s-nodes", {
  containerdVersion: config.get("containerdVersion") ?? "1.7.22",
  nodes: config.requireObject<NodeConfig[]>("nodes").map((n) => ({
    name: n.name,
    connection: { host: n.host, user: n.user ?? "root", hostKey: n.hostKey, privateKey },
  })),
});

export const waves = fleet.waves;
export const restartedNodes = fleet.restartedNodes;
