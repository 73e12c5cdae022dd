export { renderNode } from "./render/render-node";
export { SpecError } from "./errors";
export type { Problem } from "./errors";
export type {
  NodeSpec,
  NodeSpecOf,
  RuntimeSpec,
  CniSpec,
  RegistrySpec,
  RegistrySpecOf,
  RegistryHost,
  RegistryHostOf,
  RegistryAuthOf,
  ClientCertificateOf,
  RenderedFile,
  RenderResult,
} from "./spec/types";
export { ContainerdNode, recordedOutputs, validateNode } from "./component/containerd-node";
export type { ContainerdNodeArgs, NodeOperationArgs, ConnectionArgs, ManagedFile, FileApplyReport, Deprecation } from "./component/containerd-node";
export { ContainerdFleet, planWaves, resolveMaxUnavailable, validateFleet } from "./component/containerd-fleet";
export type { ContainerdFleetArgs, FleetNodeArgs, RolloutArgs } from "./component/containerd-fleet";
export { fleetFromStackConfig, fleetArgsFromConfig } from "./program/stack-config";
