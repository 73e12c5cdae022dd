/**
 * The SDK records a stack trace (`new Error().stack`) on every promise it makes while a resource is
 * constructed (pulumi/runtime/debuggable.js, debuggablePromise: about a dozen per remote.Command,
 * one per input and output). It reads them only to explain leaked promises when the program runs
 * with PULUMI_DEBUG_PROMISE_LEAKS set. Under ts-node every one of them also goes through
 * source-map-support's prepareStackTrace, frame by frame: at 20 nodes (101 resources) that was
 * about 0.65 s of the program's CPU in the fleet's constructor alone, more than everything else the
 * constructor does (render, validation, the SDK's own registration work).
 *
 * `withoutPromiseStacks(fn)` runs fn with no frames recorded in new Errors, unless the promise-leak
 * report is asked for. It does not touch the stack traces the SDK records for each resource
 * (`Resource.callsites` sets its own unlimited limit), and everything that can throw a user-facing
 * error in the fleet runs outside it (validation runs before).
 */
export function withoutPromiseStacks<T>(fn: () => T): T {
  if (process.env.PULUMI_DEBUG_PROMISE_LEAKS) return fn();
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return fn();
  } finally {
    Error.stackTraceLimit = limit;
  }
}
