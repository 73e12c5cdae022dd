/**
 * Image references as containerd parses them: the distribution reference grammar
 * (github.com/distribution/reference, reference.go and regexp.go), with its bounds.
 *
 *   reference := name [ ":" tag ] [ "@" digest ]
 *   name      := [ domain "/" ] path-component [ "/" path-component ]*    at most 255 characters
 *   domain    := host-label [ "." host-label ]* | "[" IPv6 "]", then [ ":" port ]
 *   tag       := [\w][\w.-]{0,127}
 *   digest    := algorithm ":" hex, of the algorithm's own length
 *
 * Each part's length is checked before any pattern runs, so a huge value costs no more than a short one.
 */
import { showValue } from "../errors";

/** reference.go's NameTotalLengthMax: domain and path together. */
export const NAME_MAX = 255;
const TAG_MAX = 128;

const HOST_LABEL = "[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?";
const DOMAIN_RE = new RegExp(`^(?:${HOST_LABEL}(?:\\.${HOST_LABEL})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]{1,5})?$`);
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG_RE = /^\w[\w.-]{0,127}$/;

/**
 * The digest algorithms containerd's go-digest has registered, by the length of their hex encoding.
 * The grammar allows any algorithm name, but containerd refuses one it does not know.
 */
const DIGEST_HEX: ReadonlyMap<string, number> = new Map([["sha256", 64], ["sha384", 96], ["sha512", 128]]);
const DIGEST_MAX = "sha512:".length + 128;

/** What makes `s` no image reference, as a phrase naming the part and what it may be; undefined when it is one. */
export function imageReferenceProblem(s: string): string | undefined {
  let name = s;
  let tag: string | undefined;
  let digest: string | undefined;
  const at = name.indexOf("@");
  if (at >= 0) {
    digest = name.slice(at + 1);
    name = name.slice(0, at);
  }
  // A colon after the last slash starts the tag; one before it is the domain's port.
  const colon = name.lastIndexOf(":");
  if (colon > name.lastIndexOf("/")) {
    tag = name.slice(colon + 1);
    name = name.slice(0, colon);
  }
  if (name === "") return "it has no name (repository path)";
  if (name.length > NAME_MAX) {
    return `its name (domain and path) is ${name.length} characters long; at most ${NAME_MAX} are allowed`;
  }
  const parts = name.split("/");
  const [first, ...rest] = parts;
  const withDomain = rest.length > 0 && DOMAIN_RE.test(first);
  const bad = parts.findIndex((p, i) => (i > 0 || !withDomain) && !PATH_COMPONENT_RE.test(p));
  if (bad === 0 && rest.length > 0 && /[.:[A-Z]/.test(first)) {
    // Neither a domain nor a path component, but shaped like a host: say what a domain may be.
    return `the domain ${showValue(first)} is not host name labels of letters, digits and - joined by dots (or an [IPv6] address), with an optional :port`;
  }
  if (bad >= 0) {
    return `the path component ${showValue(parts[bad])} is not lower-case letters and digits joined by one . or _, by __, or by dashes`;
  }
  if (tag !== undefined && (tag.length > TAG_MAX || !TAG_RE.test(tag))) {
    return `the tag ${showValue(tag)} is not a letter, digit or _ followed by at most ${TAG_MAX - 1} letters, digits, _ . or -`;
  }
  if (digest !== undefined) {
    const [algorithm, hex] = digest.length > DIGEST_MAX ? [] : digest.split(":");
    const length = algorithm === undefined ? undefined : DIGEST_HEX.get(algorithm);
    if (length === undefined || hex === undefined || !new RegExp(`^[a-f0-9]{${length}}$`).test(hex)) {
      return `the digest ${showValue(digest)} is not sha256:<64 hex digits>, sha384:<96> or sha512:<128>, in lower case`;
    }
  }
  return undefined;
}

/**
 * A reference as containerd names the image it pulled: Docker Hub's domain and library/ filled in,
 * and :latest without a tag or digest (node-script.ts full_ref does the same on the node).
 */
export function fullReference(ref: string): string {
  const parts = ref.split("/");
  let r = ref;
  if (parts.length === 1) r = `docker.io/library/${ref}`;
  else if (registryOfImage(ref) === "docker.io" && parts[0] !== "docker.io") r = `docker.io/${ref}`;
  if (/^docker\.io\/[^/]*$/.test(r)) r = r.replace(/^docker\.io\//, "docker.io/library/");
  const last = r.slice(r.lastIndexOf("/") + 1);
  return last.includes(":") || r.includes("@") ? r : `${r}:latest`;
}

/**
 * The registry namespace an image is pulled from, as containerd resolves it: the reference's domain
 * (a first component with a dot or a port, or localhost), else Docker Hub.
 */
export function registryOfImage(ref: string): string {
  const slash = ref.indexOf("/");
  const first = slash < 0 ? "" : ref.slice(0, slash);
  return first !== "" && (/[.:]/.test(first) || first === "localhost") ? first : "docker.io";
}
