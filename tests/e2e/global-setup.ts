/**
 * jest globalSetup of the e2e project: brings the local fleet up once for the whole run (five nodes,
 * one per containerd generation: 1.6, 1.7, 2.1, 2.2, 2.3; E2E_FLEET_GENERATIONS names others) and
 * leaves its JSON where the tests read it (FLEET_JSON in ./fleet.ts, mode 0600: it holds the nodes'
 * private key).
 *
 * A fleet that is already up is reused. If an earlier KEEP_FLEET=1 run of these tests left it, it is
 * still ours and teardown takes it down (unless KEEP_FLEET=1 again); a fleet someone else brought up
 * is left up: there is one fleet per machine, and it is not ours to remove.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import { E2E_DIR, FLEET_JSON, FLEET_SH, Fleet, KEPT_JSON, SETUP_JSON, SetupRecord } from "./fleet";

function fleetSh(args: string[]) {
  return spawnSync("bash", [FLEET_SH, ...args], { encoding: "utf8", timeout: 600_000, maxBuffer: 64 * 1024 * 1024 });
}

export default async function globalSetup(): Promise<void> {
  const started = Date.now();
  const wasUp = fleetSh(["status"]).status === 0;
  // E2E_FLEET_GENERATIONS=1.6,2.1 brings up a smaller fleet (one node each) for a run of the test
  // files that need no more (languages.test.ts); the full run needs all five.
  const generations = process.env.E2E_FLEET_GENERATIONS ?? "1.6,1.7,2.1,2.2,2.3";
  const n = String(generations.split(",").length);
  const up = fleetSh(["up", "-n", n, "--generations", generations]);
  if (up.status !== 0) {
    throw new Error(`bash ${FLEET_SH} up -n ${n} failed (exit ${up.status ?? up.signal}):\n${up.stderr}`);
  }
  const fleet = JSON.parse(up.stdout) as Fleet;
  const hostKeys = fleet.nodes.map((n) => n.hostKey);
  let keptByUs = false;
  if (fs.existsSync(KEPT_JSON)) {
    const kept = JSON.parse(fs.readFileSync(KEPT_JSON, "utf8")) as { hostKeys: string[] };
    keptByUs = JSON.stringify(kept.hostKeys) === JSON.stringify(hostKeys);
    fs.rmSync(KEPT_JSON, { force: true });
  }
  fs.mkdirSync(E2E_DIR, { recursive: true, mode: 0o700 });
  fs.writeFileSync(FLEET_JSON, up.stdout, { mode: 0o600 });
  fs.chmodSync(FLEET_JSON, 0o600);
  const record: SetupRecord = { ours: !wasUp || keptByUs, hostKeys };
  fs.writeFileSync(SETUP_JSON, JSON.stringify(record));
  const how = !wasUp ? "brought up" : keptByUs ? "reused (left by KEEP_FLEET=1)" : "reused (someone else's: it stays up)";
  process.stderr.write(`\ne2e: fleet ${how} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
}
