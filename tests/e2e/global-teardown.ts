/**
 * jest globalTeardown of the e2e project: takes the fleet down if it is ours (see global-setup.ts),
 * unless KEEP_FLEET=1: then it stays up, marked as ours, and the next run reuses it and starts in
 * seconds.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import { FLEET_JSON, FLEET_SH, KEPT_JSON, SETUP_JSON, SetupRecord } from "./fleet";

export default async function globalTeardown(): Promise<void> {
  if (!fs.existsSync(SETUP_JSON)) return;
  const record = JSON.parse(fs.readFileSync(SETUP_JSON, "utf8")) as SetupRecord;
  fs.rmSync(SETUP_JSON, { force: true });
  if (!record.ours) {
    process.stderr.write(`e2e: the fleet was someone else's; left up\n`);
    return;
  }
  if (process.env.KEEP_FLEET === "1") {
    fs.writeFileSync(KEPT_JSON, JSON.stringify({ hostKeys: record.hostKeys }));
    process.stderr.write(`e2e: KEEP_FLEET=1: the fleet stays up (bash ${FLEET_SH} down removes it)\n`);
    return;
  }
  const down = spawnSync("bash", [FLEET_SH, "down"], { encoding: "utf8", timeout: 300_000 });
  fs.rmSync(FLEET_JSON, { force: true });
  if (down.status !== 0) throw new Error(`bash ${FLEET_SH} down failed (exit ${down.status ?? down.signal}):\n${down.stderr}`);
}
