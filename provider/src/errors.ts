/** One problem with an input: where, what was received (never a secret), and what is allowed. */
export interface Problem {
  /** Field path such as `registries["docker.io"].mirrors[0].url`. */
  path: string;
  /** The complete sentence after the path, e.g. `"ftp://x" is not an http(s) URL`. */
  message: string;
}

/** Every problem of an input at once, one per line. Thrown before anything touches a host. */
export class SpecError extends Error {
  readonly problems: Problem[];
  constructor(subject: string, problems: Problem[]) {
    super(`${subject}:\n${problems.map((p) => ` - ${p.path ? p.path + ": " : ""}${p.message}`).join("\n")}`);
    this.name = "SpecError";
    this.problems = problems;
  }
}

type Segment = string | number;

/** `registries["docker.io"].mirrors[0].url`: identifiers dotted, everything else bracketed. */
export function formatPath(segments: readonly Segment[]): string {
  let out = "";
  for (const s of segments) {
    if (typeof s === "number") out += `[${s}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(s)) out += out ? `.${s}` : s;
    else out += `[${JSON.stringify(s)}]`;
  }
  return out;
}

/** A received value as shown in an error: JSON, shortened; secrets are never shown. */
export function showValue(value: unknown, secret = false): string {
  if (secret) return "[secret]";
  if (value === undefined) return "undefined";
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 80 ? text.slice(0, 77) + "..." : text;
}
