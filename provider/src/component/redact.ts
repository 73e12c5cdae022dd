/**
 * A secret file as an operator may see it in a preview: every value of a `header` table (where
 * `auth` and header credentials live in hosts.toml) replaced by one fixed mask. The mask never
 * depends on the value (no hash, no length), so nothing about a credential can be learned from it;
 * everything else (servers, mirrors, capabilities, TLS settings) reads as written.
 */
export const MASK = '"[redacted]"';

export function redactHostsToml(content: string): string {
  let inHeader = false;
  return content
    .split("\n")
    .map((line) => {
      const table = /^\s*\[(.*)\]\s*$/.exec(line);
      if (table) {
        // [header], [host."https://m".header], [host."https://m".header."X"] (never emitted, but safe)
        inHeader = /(^|\.)header(\.|$)/.test(table[1].replace(/"[^"]*"/g, '""'));
        return line;
      }
      if (!inHeader) return line;
      const kv = /^(\s*(?:"[^"]*"|[A-Za-z0-9_-]+)\s*=\s*).*$/.exec(line);
      return kv ? `${kv[1]}${MASK}` : line;
    })
    .join("\n");
}
