import * as pulumi from "@pulumi/pulumi";
import { mixedVersions } from "./program";

interface NodeConfig {
  name: string;
  host: string;
  hostKey: string;
  containerdVersion: string;
}

const config = new pulumi.Config();
const privateKey = config.requireSecret("privateKey");
const fleet = mixedVersions("k8s-nodes", {
  dockerHubMirror: config.require("dockerHubMirror"),
  nodes: config.requireObject<NodeConfig[]>("nodes").map((n) => ({
    name: n.name,
    containerdVersion: n.containerdVersion,
    connection: { host: n.host, hostKey: n.hostKey, privateKey },
  })),
});

export const waves = fleet.waves;
export const configHashes = fleet.configHashes;
