/**
 * The root program: everything comes from stack configuration (see the README, "Root program").
 *   pulumi config set --path 'nodes[0].name' node-1 ... ; pulumi config set --secret privateKey < key
 *   pulumi preview --diff ; pulumi up
 */
import { fleetFromStackConfig } from "@containerd-pulumi/containerd-node";

const fleet = fleetFromStackConfig();

/** Node names by rollout wave. */
export const waves = fleet.waves;
/** config.toml hash per node. */
export const configHashes = fleet.configHashes;
/** Nodes whose containerd restarted when their config.toml was last applied. */
export const restartedNodes = fleet.restartedNodes;
