/** withoutPromiseStacks: no frames in new Errors while it runs, the limit back afterwards, leak reports untouched. */
import { withoutPromiseStacks } from "../../provider/src/component/promise-stacks";

const frames = (e: Error) => (e.stack ?? "").split("\n").filter((l) => l.trimStart().startsWith("at ")).length;

describe("withoutPromiseStacks", () => {
  const saved = process.env.PULUMI_DEBUG_PROMISE_LEAKS;
  afterEach(() => {
    if (saved === undefined) delete process.env.PULUMI_DEBUG_PROMISE_LEAKS;
    else process.env.PULUMI_DEBUG_PROMISE_LEAKS = saved;
  });

  test("records no frames inside, and puts the limit back after", () => {
    delete process.env.PULUMI_DEBUG_PROMISE_LEAKS;
    const limit = Error.stackTraceLimit;
    const inside = withoutPromiseStacks(() => new Error("inside"));
    expect(frames(inside)).toBe(0);
    expect(Error.stackTraceLimit).toBe(limit);
    expect(frames(new Error("after"))).toBeGreaterThan(0);
  });

  test("puts the limit back when fn throws", () => {
    delete process.env.PULUMI_DEBUG_PROMISE_LEAKS;
    const limit = Error.stackTraceLimit;
    expect(() => withoutPromiseStacks(() => { throw new Error("boom"); })).toThrow("boom");
    expect(Error.stackTraceLimit).toBe(limit);
  });

  test("keeps the stacks when the promise-leak report is asked for", () => {
    process.env.PULUMI_DEBUG_PROMISE_LEAKS = "1";
    expect(frames(withoutPromiseStacks(() => new Error("inside")))).toBeGreaterThan(0);
  });
});
