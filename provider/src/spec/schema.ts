/**
 * The shape of a node spec, field by field, with the checks that need no other field. Checks that
 * relate fields to each other or to the containerd version are in `validate.ts`.
 */
import { z } from "zod";
import { imageReferenceProblem } from "./image-reference";
import type { NodeSpec, RegistryAuthOf, RegistryHost, RegistrySpec, RuntimeSpec } from "./types";

/** Every field message is a phrase that follows the received value: `"ftp://x" is not an http(s) URL`. */
const strictObject = <T extends z.ZodRawShape>(shape: T) =>
  z.strictObject(shape, {
    error: (iss) =>
      iss.code === "unrecognized_keys"
        ? `is not a known field; allowed: ${Object.keys(shape).join(", ")}`
        : undefined,
  });

// No control characters (newline, NUL, escape ...): they would break a TOML line or a log line.
const CONTROL = /[\u0000-\u001f\u007f]/;

const plainString = z.string().refine((s) => !CONTROL.test(s), "contains a control character (newline, tab, NUL ...)");

/** An absolute path as written into a TOML file. */
export const absolutePath = plainString.refine(
  (s) => s.startsWith("/") && !s.split("/").includes(".."),
  "is not an absolute path without '..'",
);

/** An absolute path that the node's shell scripts receive as an argument: a conservative charset. */
/** An import of config.toml: a path or glob, absolute or relative to config.toml's directory. */
export const importPattern = z
  .string()
  .refine((s) => /^[A-Za-z0-9._\/+@*?-]+$/.test(s) && !s.split("/").includes(".."), {
    message: "is not a path or glob of letters, digits and . _ / + @ - * ? (no '..', spaces or colons)",
  });

export const nodePath = z
  .string()
  .refine((s) => /^\/[A-Za-z0-9._\/+@-]*$/.test(s) && !s.split("/").includes(".."), {
    message: "is not an absolute path of letters, digits and . _ / + @ - (no '..', spaces or colons)",
  });

/** Go duration: "300ms", "3s", "1m30s". */
const goDuration = z
  .string()
  .refine((s) => /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(s), "is not a Go duration such as \"3s\" or \"1m30s\"");

/**
 * An image reference by the distribution reference grammar and its bounds (image-reference.ts): a
 * megabyte of letters is refused like any other bad reference, and the message says which part is wrong.
 */
export const imageReference = z.string().superRefine((s, ctx) => {
  const why = imageReferenceProblem(s);
  if (why !== undefined) ctx.addIssue({ code: "custom", message: `is not an image reference such as "registry.k8s.io/pause:3.10": ${why}` });
});

const identifier = z.string().refine((s) => /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(s), "is not a name of letters, digits and . _ -");
const pluginId = z.string().refine((s) => /^[a-z0-9][a-z0-9._-]*$/.test(s), "is not a plugin ID such as \"io.containerd.grpc.v1.cri\"");

/** http(s) URL without credentials, query or fragment. */
export const registryUrl = z.string().superRefine((s, ctx) => {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    ctx.addIssue({ code: "custom", message: "is not an http(s) URL" });
    return;
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    ctx.addIssue({ code: "custom", message: "is not an http(s) URL" });
  } else if (u.username || u.password) {
    ctx.addIssue({ code: "custom", message: "has credentials in the URL; put them in auth instead" });
  } else if (u.search || u.hash || s.includes("?") || s.includes("#")) {
    ctx.addIssue({ code: "custom", message: "has a query or fragment; only scheme, host, port and path are allowed" });
  } else if (!/^[A-Za-z0-9._~:\/@%+,;=!*&\[\]-]+$/.test(s)) {
    // Conservative on purpose: quotes, `$`, backticks and spaces have no place in a registry URL.
    ctx.addIssue({ code: "custom", message: "contains quotes, spaces or other characters outside A-Z a-z 0-9 - . _ ~ : / @ % + , ; = ! * & [ ]" });
  } else if (u.hostname === "docker.io" || u.hostname === "www.docker.io" || u.hostname === "hub.docker.com") {
    ctx.addIssue({
      code: "custom",
      message: "is Docker Hub's web site, not its registry API; use https://registry-1.docker.io",
    });
  }
});

/** HTTP header field name (RFC 9110 token). */
const headerName = z.string().refine((s) => /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(s), "is not an HTTP header name");
/** Header values go on one HTTP line: no CR/LF (header injection) or other control characters. */
const headerValue = z.string().refine((s) => !/[\u0000-\u0008\u000a-\u001f\u007f]/.test(s), "contains a newline or control character");

/** A path that exists on the node, or PEM content to ship beside hosts.toml. */
export const pemOrPath = z
  .string()
  .refine(
    (s) => (s.startsWith("/") && !CONTROL.test(s) && !s.split("/").includes("..")) || isPem(s),
    "is neither an absolute path on the node nor complete PEM content (-----BEGIN ... -----END ...)",
  );

export function isPem(s: string): boolean {
  return /^\s*-----BEGIN [A-Z0-9 ]+-----[\s\S]+-----END [A-Z0-9 ]+-----\s*$/.test(s);
}

const clientCertificate = z.union([
  pemOrPath,
  strictObject({ cert: pemOrPath, key: pemOrPath.optional() }),
]);

const auth = strictObject({
  // Basic auth joins username and password with ":", so the username cannot hold one.
  username: z.string().refine((s) => !/[\u0000-\u001f\u007f:]/.test(s), "contains a colon or control character").optional(),
  // The password is base64-encoded into the header, so any character survives; NUL does not.
  password: z.string().refine((s) => !s.includes("\u0000"), "contains a NUL character").optional(),
  // A token goes into the header as it is: one line of visible characters.
  token: z.string().refine((s) => /^[\x21-\x7e]+$/.test(s), "is not a token of visible ASCII characters (no spaces or newlines)").optional(),
});

export const registryHost = strictObject({
  url: registryUrl,
  capabilities: z.array(z.enum(["pull", "resolve", "push", "referrers"])).optional(),
  skipVerify: z.boolean().optional(),
  ca: z.union([pemOrPath, z.array(pemOrPath)]).optional(),
  client: z.union([clientCertificate, z.array(clientCertificate)]).optional(),
  headers: z.record(headerName, z.union([headerValue, z.array(headerValue)])).optional(),
  overridePath: z.boolean().optional(),
  dialTimeout: goDuration.optional(),
  auth: auth.optional(),
  /** k3s's registries.yaml key, refused with a pointer to overridePath (validate.ts). */
  rewrite: z.unknown().optional(),
});

const registry = strictObject({
  server: z.union([registryUrl, registryHost]).optional(),
  mirrors: z.array(z.union([registryUrl, registryHost])).optional(),
  skipFallback: z.boolean().optional(),
  /** k3s's registries.yaml key, refused with a pointer to overridePath (validate.ts). */
  rewrite: z.unknown().optional(),
});

/**
 * A registry namespace: a host name (lower case) or IPv4 address with an optional port, or "*".
 * The port is part of the hosts directory name (docs/hosts.md).
 */
export const registryNamespace = z.string().refine(
  (s) =>
    s === "*" ||
    /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::[0-9]{1,5})?$/.test(s),
  'is not a registry host such as "docker.io", "10.0.0.1:5000" or "*" (lower case, optional port)',
);

const scalarOption = z.union([z.string(), z.number(), z.boolean(), z.array(z.string())]);

const runtime = strictObject({
  runtimeType: identifier.optional(),
  runtimePath: absolutePath.optional(),
  options: z.record(identifier, scalarOption).optional(),
  privilegedWithoutHostDevices: z.boolean().optional(),
  podAnnotations: z.array(plainString).optional(),
  containerAnnotations: z.array(plainString).optional(),
  baseRuntimeSpec: absolutePath.optional(),
  snapshotter: identifier.optional(),
});

export const nodeSpecSchema = strictObject({
  containerdVersion: z.string(),
  systemdCgroup: z.boolean().optional(),
  sandboxImage: imageReference.optional(),
  snapshotter: identifier.optional(),
  maxConcurrentDownloads: z.number().int().min(1).max(1000).optional(),
  runtimes: z.record(identifier, runtime).optional(),
  defaultRuntime: identifier.optional(),
  cni: strictObject({ binDir: absolutePath.optional(), confDir: absolutePath.optional() }).optional(),
  root: absolutePath.optional(),
  state: absolutePath.optional(),
  grpcAddress: nodePath.optional(),
  debugLevel: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "panic"]).optional(),
  requiredPlugins: z.array(pluginId).optional(),
  disabledPlugins: z.array(pluginId).optional(),
  configFile: nodePath.optional(),
  registryConfigPath: nodePath.optional(),
  imports: z.array(importPattern).optional(),
  registries: z.record(registryNamespace, registry).optional(),
  settings: z.record(z.string(), z.unknown()).optional(),
});

/**
 * The fields that one of two shapes has and the other lacks, `Extra` allowed on the first: never
 * when they agree. The schema here and the documented types in types.ts describe the same spec; a
 * field added to one and not the other is a compile error naming it (below), and a parsed spec is a
 * NodeSpec without a cast (validate.ts).
 */
export type FieldsApart<Schema, Type, Extra extends PropertyKey = never> = Exclude<keyof Schema, keyof Type | Extra> | Exclude<keyof Type, keyof Schema>;
type Agree<Schema, Type, Extra extends PropertyKey = never> = [FieldsApart<Schema, Type, Extra>] extends [never] ? true : { fieldsApart: FieldsApart<Schema, Type, Extra> };
type Parsed = z.infer<typeof nodeSpecSchema>;
type ParsedRegistry = NonNullable<Parsed["registries"]>[string];
type ParsedHost = Exclude<NonNullable<ParsedRegistry["server"]>, string>;
// `rewrite` (k3s's key) is in the schema only to be refused with a pointer to overridePath.
export const SCHEMA_MATCHES_TYPES: [
  Agree<Parsed, NodeSpec>,
  Agree<ParsedRegistry, RegistrySpec, "rewrite">,
  Agree<ParsedHost, RegistryHost, "rewrite">,
  Agree<NonNullable<ParsedHost["auth"]>, RegistryAuthOf<string>>,
  Agree<NonNullable<Parsed["runtimes"]>[string], RuntimeSpec>,
  Agree<NonNullable<Parsed["cni"]>, NonNullable<NodeSpec["cni"]>>,
] = [true, true, true, true, true, true];
