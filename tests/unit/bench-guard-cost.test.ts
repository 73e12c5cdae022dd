/**
 * The benchmark's measurement of the restart guards (tests/bench/guard-cost.ts) takes the node
 * script's own functions out of its text: when the script renames or reshapes one, this fails here,
 * in seconds, rather than in a benchmark run on a fleet. And its samples add up as documented.
 */
import { spawnSync } from "child_process";
import { NODE_SCRIPT } from "../../provider/src/remote/node-script";
import { CHECKS, UNITS, guardCostScript, parseGuardCost, scriptFunction, summarize } from "../bench/guard-cost";

describe("the guard benchmark's script", () => {
  it("takes each guard function whole out of the node script", () => {
    for (const name of ["killmode_guard", "record_tasks", "containers_guard", "sandbox_guard", "pod_ok", "running_tasks", "cri_of", "full_ref", "bounded_for"]) {
      const f = scriptFunction(NODE_SCRIPT, name);
      expect(f.startsWith(`${name}() {`)).toBe(true);
      expect(f.split("\n").pop()).toBe("}");
      expect(NODE_SCRIPT).toContain(f);
    }
    // One statement over two lines (its printf format holds a newline), not up to the next "}".
    const say = scriptFunction(NODE_SCRIPT, "say");
    expect(say.split("\n")).toHaveLength(2);
    expect(say.endsWith("; }")).toBe(true);
    expect(() => scriptFunction(NODE_SCRIPT, "no_such_guard")).toThrow("the node script has no function no_such_guard()");
  });

  it("is a POSIX sh script (dash -n) that runs every check in an apply's order", () => {
    const script = guardCostScript({ nodeScript: NODE_SCRIPT, label: "node-1", reps: 3, crictl: "/run/fleet/crictl" });
    const r = spawnSync("dash", ["-n"], { input: script, encoding: "utf8" });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const order = ["m killmode killmode_guard", "m sandbox sandbox_guard", "m before record_tasks", "m podstart pod_ok", "m after containers_guard"].map((call) => script.indexOf(call));
    expect(order.every((i) => i > 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
  });

  it("adds its samples up: medians, wall less the measurement's own, the five checks' total", () => {
    const ns = (x: number) => String(Math.round(x * 1e6));
    const lines: string[] = [];
    for (let rep = 1; rep <= 3; rep++) {
      lines.push(`sample nothing ${rep} ${ns(1)} 0 ${ns(0.1)}`);
      CHECKS.forEach((c, i) => lines.push(`sample ${c.key} ${rep} ${ns(11 + i + rep)} ${ns(5 + i)} ${ns(8 + i + rep)}`));
      for (const u of UNITS) lines.push(`sample unit-${u.key} ${rep} ${ns(3)} ${ns(2)} ${ns(2.5)}`);
      lines.push(`guards ${rep} {"unit":"containerd","killMode":"process","containersChecked":true,"running":4,"lost":0,"sandboxImage":{"image":"registry.k8s.io/pause:3.10","before":"present"},"podStart":"started"}`);
    }
    lines.push(`sample idle 0 ${ns(1000)} ${ns(0.5)} ${ns(4)}`);
    const parsed = parseGuardCost(lines.join("\n") + "\n");
    expect(parsed.guards).toHaveLength(3);
    expect(parsed.guards[0]).toMatchObject({ killMode: "process", running: 4, lost: 0, podStart: "started" });
    const s = summarize(parsed);
    expect(s.reps).toBe(3);
    // Median of 11+i+{1,2,3} is 13+i; less the 1 ms of the measurement's own.
    expect(s.checks.killmode.wallMs).toBeCloseTo(12);
    expect(s.checks.after.nodeMs).toBeCloseTo(14);
    expect(s.checks.podstart.commandsMs).toBeCloseTo(8);
    expect(s.total.nodeMs).toBeCloseTo(10 + 11 + 12 + 13 + 14);
    expect(s.total.commandsMs).toBeCloseTo(5 + 6 + 7 + 8 + 9);
    expect(s.units.ctr).toEqual({ wallMs: expect.closeTo(2), commandsMs: expect.closeTo(2), nodeMs: expect.closeTo(2.5) });
    expect(s.idleMsPerSecond).toBeCloseTo(4);
  });
});
