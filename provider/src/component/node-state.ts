/**
 * The node as it is now, for one plan: the read (node-read.ts, its protocol in remote/read.ts) and
 * what it finds against the plan (node-findings.ts), while the program runs, in preview and in up.
 */
import * as pulumi from "@pulumi/pulumi";
import { createHash } from "crypto";
import { READ_SCRIPT, readBudgetSeconds } from "../remote/read-script";
import { emptyRead, readRequestCommand } from "../remote/read";
import { ConnectionArgs, knownConnection } from "./connection";
import type { NodeStateReport } from "./node-args";
import { Findings, findings } from "./node-findings";
import { readNode } from "./node-read";
import type { NodePlan } from "./plan";

/** Reads the node over its (pinned) connection and judges what it found; never rejects for a node that cannot be read. */
export async function readNodeState(plan: NodePlan, connection: pulumi.Input<ConnectionArgs>): Promise<Findings> {
  const { read: r } = plan;
  const c = await knownConnection(connection);
  // Connecting gets readTimeoutSeconds; the script may also wait on its probes (a token registry's
  // check of credentials takes up to three requests).
  const read = c
    ? await readNode(c, readRequestCommand(r.request, plan.command), READ_SCRIPT, {
        connectSeconds: r.timeoutSeconds,
        totalSeconds: readBudgetSeconds({ connectSeconds: r.timeoutSeconds, viaProxy: (c as { proxy?: unknown }).proxy !== undefined, probeSeconds: r.probeSeconds, probing: r.probing, systemd: r.request.killMode !== undefined, sandbox: r.request.sandboxImage !== undefined }),
      })
    : { ...emptyRead(), error: "its connection is not known yet (it comes from a resource this run creates)" };
  // Secret files are compared by hash; the hash of what will be written, when it is known now,
  // tells the mirror probes which TLS files and credentials this up changes.
  const desired = await Promise.all(
    plan.files.map(async ({ file: f, content }) => {
      if (!f.secret) return { path: f.path, mode: f.mode, secret: false, content: content as string, sha256: undefined };
      const v = await knownValue(content);
      return { path: f.path, mode: f.mode, secret: true, content: undefined, sha256: v === undefined ? undefined : createHash("sha256").update(v).digest("hex") };
    }),
  );
  return findings(read, desired, r.targets, r.findings);
}

/**
 * The nodeState output: what the read found, or, for a node the read refused (the error is in the
 * log; the output says it too) or a read that failed in the program, reached only if the read
 * itself got to the node.
 */
export function stateReport(found: Promise<Findings | undefined>, checked: Promise<Findings | undefined>): Promise<NodeStateReport> {
  return checked.then(
    (fd): NodeStateReport =>
      fd
        ? {
            read: true,
            reached: fd.reached,
            readSeconds: fd.readSeconds,
            runningVersion: fd.runningVersion,
            cri: fd.criStatus,
            drift: fd.drift.map((d) => ({ path: d.path, what: d.what })),
            unmanagedRegistries: fd.unmanaged,
            errors: fd.errors,
          }
        : { read: false, drift: [], unmanagedRegistries: [], errors: [] },
    (e: Error): Promise<NodeStateReport> =>
      found.then(
        (fd) => ({ read: true, reached: fd?.reached ?? false, drift: [], unmanagedRegistries: [], errors: [e.message] }),
        () => ({ read: true, reached: false, drift: [], unmanagedRegistries: [], errors: [e.message] }),
      ),
  );
}

/** An input's value, or undefined while it is unknown (never waits on an unknown Output). */
async function knownValue(v: pulumi.Input<string>): Promise<string | undefined> {
  const out = pulumi.output(v) as unknown as { isKnown: Promise<boolean>; promise(): Promise<string> };
  return (await out.isKnown) ? out.promise() : undefined;
}
