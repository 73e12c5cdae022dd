import * as pulumi from "@pulumi/pulumi";
import { mixedVersions } from "./program";

interface NodeConfig {
  name: string;
  host: string;
  hostKey: string;
  port?: number;
  containerdVersion: string;
}

const config = new pulumi.Config();
const privateKey = config.requireSecret("privateKey");
const fleet = mixedVersions("k8s-nodes", {
  dockerHubMirror: config.require("dockerHubMirror"),
  sandboxImage: config.get("sandboxImage"),
  nodes: config.requireObject<NodeConfig[]>("nodes").map((n) => ({
    name: n.name,
    containerdVersion: n.containerdVersion,
    connection: { host: n.host, port: n.port ?? 22, hostKey: n.hostKey, privateKey },
  })),
});

export const waves = fleet.waves;
export const configHashes = fleet.configHashes;
