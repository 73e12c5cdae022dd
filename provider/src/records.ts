/** A plain object (a TOML table, a JSON object, an args record): not null, not a list. */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
