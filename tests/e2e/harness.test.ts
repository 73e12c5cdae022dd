/**
 * The deployment harness against a real sshd of its own (127.0.0.1, free port, ed25519 host key,
 * key-only login of a dedicated user whose login shell is /bin/sh, so no .bashrc runs).
 * Commands append to a log file on the "host" (this machine through sshd): the log is what ran.
 */
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { ChildProcess, execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { Harness, HarnessOptions, StepRecord, UNKNOWN, goQuote } from "../harness/harness";

jest.setTimeout(120_000);

const TEST_USER = "harness-ssh";

interface TestSshd {
  port: number;
  user: string;
  clientKey: string;
  hostKey: string;
  /** A directory the test user can write to. */
  work: string;
  /** A private directory for state files, removed with the sshd. */
  private: string;
  stop(): void;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address() as net.AddressInfo;
      srv.close(() => resolve(addr.port));
    });
  });
}

function ensureTestUser(home: string): void {
  try {
    execFileSync("id", ["-u", TEST_USER], { stdio: "ignore" });
  } catch {
    execFileSync("useradd", ["--create-home", "--home-dir", home, "--shell", "/bin/sh", TEST_USER]);
  }
  // sshd without PAM refuses an account whose password field is locked ("!"); "*" is not locked.
  execFileSync("usermod", ["-p", "*", TEST_USER]);
}

function waitForBanner(port: number, deadline: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const sock = net.connect(port, "127.0.0.1");
      sock.once("data", (d) => {
        sock.destroy();
        if (d.toString().startsWith("SSH-")) resolve();
        else reject(new Error(`unexpected banner ${d.toString()}`));
      });
      sock.once("error", () => {
        sock.destroy();
        if (Date.now() > deadline) reject(new Error("sshd did not start"));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

async function startSshd(): Promise<TestSshd> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "harness-sshd-"));
  fs.chmodSync(dir, 0o755);
  const work = path.join(dir, "work");
  fs.mkdirSync(work, { mode: 0o777 });
  fs.chmodSync(work, 0o777);
  ensureTestUser(`/home/${TEST_USER}`);
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", path.join(dir, "host_ed25519")]);
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", path.join(dir, "client")]);
  fs.copyFileSync(path.join(dir, "client.pub"), path.join(dir, "authorized_keys"));
  const port = await freePort();
  fs.writeFileSync(
    path.join(dir, "sshd_config"),
    [
      `ListenAddress 127.0.0.1:${port}`,
      `HostKey ${dir}/host_ed25519`,
      `PidFile ${dir}/sshd.pid`,
      `AuthorizedKeysFile ${dir}/authorized_keys`,
      `AllowUsers ${TEST_USER}`,
      "PubkeyAuthentication yes",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PermitRootLogin no",
      "UsePAM no",
      "StrictModes no",
      "PrintMotd no",
      "MaxStartups 100",
      "LogLevel VERBOSE",
      "", // no AcceptEnv: every Setenv is refused
    ].join("\n"),
  );
  fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  const log = fs.openSync(path.join(dir, "sshd.log"), "a");
  const child: ChildProcess = spawn("/usr/sbin/sshd", ["-D", "-e", "-f", path.join(dir, "sshd_config")], {
    stdio: ["ignore", log, log],
  });
  fs.closeSync(log);
  await waitForBanner(port, Date.now() + 10_000);
  return {
    port,
    user: TEST_USER,
    clientKey: fs.readFileSync(path.join(dir, "client"), "utf8"),
    hostKey: fs.readFileSync(path.join(dir, "host_ed25519.pub"), "utf8").trim(),
    work,
    private: dir,
    stop() {
      if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, "SIGTERM");
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

let sshd: TestSshd;
beforeAll(async () => {
  sshd = await startSshd();
});
afterAll(() => sshd?.stop());

// --- helpers ---------------------------------------------------------------------------------------

let counter = 0;

/** A fresh log file on the host and a harness with its own state. */
function fixture(opts: HarnessOptions = {}) {
  counter++;
  const log = path.join(sshd.work, `log-${counter}-${process.pid}`);
  const stateFile = path.join(sshd.private, `state-${counter}.json`);
  const harness = new Harness({ dialRetryDelayMs: 10, stateFile, ...opts });
  const lines = () => (fs.existsSync(log) ? fs.readFileSync(log, "utf8").split("\n").filter((l) => l !== "") : []);
  return { log, harness, lines };
}

function conn(extra: Record<string, unknown> = {}) {
  return {
    host: "127.0.0.1",
    port: sshd.port,
    user: sshd.user,
    privateKey: sshd.clientKey,
    hostKey: sshd.hostKey,
    dialErrorLimit: 0,
    ...extra,
  };
}

const endpoint = () => `127.0.0.1:${sshd.port}`;

/** `echo <tag> >> log` */
function append(log: string, tag: string): string {
  return `echo ${tag} >> ${log}`;
}

/** Appends "<tag>:<stdin>" to the log. */
function appendStdin(log: string, tag: string): string {
  return `printf '%s:%s\\n' ${tag} "$(cat)" >> ${log}`;
}

function step(res: { steps: StepRecord[] }, name: string, op?: string): StepRecord {
  const s = res.steps.find((x) => x.name === name && (op === undefined || x.op === op));
  if (!s) throw new Error(`no ${op ?? ""} step for ${name}: ${JSON.stringify(res.steps.map((x) => [x.name, x.op]))}`);
  return s;
}

function commandSteps(res: { steps: StepRecord[] }): StepRecord[] {
  return res.steps.filter((s) => s.type === "command:remote:Command");
}

class Group extends pulumi.ComponentResource {
  constructor(name: string) {
    super("test:index:Group", name, {}, {});
  }
  done(outputs: Record<string, unknown>): void {
    this.registerOutputs(outputs);
  }
}

/** A custom resource of some other provider. */
class Thing extends pulumi.CustomResource {
  declare readonly size: pulumi.Output<number>;
  constructor(name: string, args: { size: number; label: pulumi.Input<string> }) {
    super("test:index:Thing", name, args, {});
  }
}

// --- tests -----------------------------------------------------------------------------------------

describe("create and same", () => {
  test("create runs once, stdout loses one trailing newline, outputs resolve", async () => {
    const { log, harness, lines } = fixture();
    const program = () => {
      const c = new command.remote.Command("a", {
        connection: conn(),
        create: `${append(log, "created")}; printf 'out\\n\\n'; printf 'err\\n' >&2`,
      });
      return { stdout: c.stdout, stderr: c.stderr };
    };
    const first = await harness.up(program);
    expect(first.error).toBeUndefined();
    expect(first.ok).toBe(true);
    expect(lines()).toEqual(["created"]);
    expect(first.outputs).toEqual({ stdout: "out\n", stderr: "err" });
    expect(step(first, "a").op).toBe("create");
    expect(step(first, "a").host).toBe(endpoint());
    expect(harness.sessions(endpoint())).toBe(1);
    expect(harness.sessions("127.0.0.1")).toBe(1);
    expect(harness.sessions()).toEqual({ [endpoint()]: 1 });

    harness.resetCounters();
    const second = await harness.up(program);
    expect(second.ok).toBe(true);
    expect(step(second, "a").op).toBe("same");
    expect(harness.sessions(endpoint())).toBe(0);
    expect(harness.sessions()).toEqual({});
    expect(lines()).toEqual(["created"]);
    // "same" hands back the stored outputs
    expect(second.outputs).toEqual({ stdout: "out\n", stderr: "err" });
  });

  test("state records inputs, outputs, dependencies, parent and deleteBeforeReplace", async () => {
    const { log, harness } = fixture();
    const res = await harness.up(() => {
      const parent = new Group("g");
      const a = new command.remote.Command("a", { connection: conn(), create: append(log, "a") }, { parent });
      parent.done({ answer: 42 });
      new command.remote.Command(
        "b",
        { connection: conn(), create: append(log, "b") },
        { parent, dependsOn: [a], deleteBeforeReplace: true },
      );
    });
    expect(res.ok).toBe(true);
    const state = harness.state();
    const group = state.find((r) => r.name === "g");
    const a = state.find((r) => r.name === "a");
    const b = state.find((r) => r.name === "b");
    expect(group?.custom).toBe(false);
    expect(group?.outputs).toEqual({ answer: 42 });
    expect(a?.urn).toBe("urn:pulumi:stack::project::test:index:Group$command:remote:Command::a");
    expect(b?.parent).toBe(group?.urn);
    expect(b?.dependencies).toContain(a?.urn);
    expect(b?.deleteBeforeReplace).toBe(true);
    expect(a?.deleteBeforeReplace).toBe(false);
    expect(b?.replaceOnChanges).toEqual(["triggers[*]"]);
    expect((b?.inputs.connection as { host: string }).host).toBe("127.0.0.1");
    expect(b?.outputs.stdout).toBe("");
  });
});

test("other custom resources echo their inputs, are recorded and diffed, and run nothing", async () => {
  const { harness } = fixture();
  const program = (size?: number) => () => {
    if (size === undefined) return {};
    const thing = new Thing("t", { size, label: pulumi.secret("x") });
    return { size: thing.size };
  };
  const created = await harness.up(program(1));
  expect(created.outputs).toEqual({ size: 1 });
  expect(step(created, "t").op).toBe("create");
  expect(harness.state()[0].outputs).toEqual({ size: 1, label: "x" });
  expect(step(await harness.up(program(1)), "t").op).toBe("same");
  const updated = await harness.up(program(2));
  expect(step(updated, "t").op).toBe("update");
  expect(step(updated, "t").diffKeys).toEqual(["size"]);
  expect(step(await harness.up(program()), "t").op).toBe("delete");
  expect(harness.state()).toEqual([]);
  expect(harness.sessions()).toEqual({});
});

describe("updates", () => {
  test("a stdin change runs update with the new stdin; without update, create runs", async () => {
    const { log, harness, lines } = fixture();
    const program = (stdin: string) => () => {
      new command.remote.Command("withUpdate", {
        connection: conn(),
        create: appendStdin(log, "create1"),
        update: appendStdin(log, "update1"),
        stdin,
      });
      new command.remote.Command("noUpdate", {
        connection: conn(),
        create: appendStdin(log, "create2"),
        stdin,
      });
    };
    expect((await harness.up(program("v1"))).ok).toBe(true);
    harness.resetCounters();
    const res = await harness.up(program("v2"));
    expect(res.ok).toBe(true);
    expect(step(res, "withUpdate").op).toBe("update");
    expect(step(res, "withUpdate").diffKeys).toEqual(["stdin"]);
    expect(step(res, "withUpdate").oldInputs?.stdin).toBe("v1");
    expect(step(res, "withUpdate").newInputs?.stdin).toBe("v2");
    expect(lines().sort()).toEqual(["create1:v1", "create2:v1", "create2:v2", "update1:v2"]);
    expect(harness.sessions(endpoint())).toBe(2);
    expect(harness.state().find((r) => r.name === "withUpdate")?.inputs.stdin).toBe("v2");
  });

  test("previous stdout is not sent (sshd refuses Setenv): a warning, and the command still runs", async () => {
    const { log, harness, lines } = fixture();
    const program = (stdin: string, addPreviousOutputInEnv?: boolean) => () => {
      new command.remote.Command("a", {
        connection: conn(),
        create: `echo "\${PULUMI_COMMAND_STDOUT:-unset}" >> ${log}; cat`,
        stdin,
        addPreviousOutputInEnv,
      });
    };
    await harness.up(program("one"));
    const res = await harness.up(program("two"));
    expect(res.ok).toBe(true);
    expect(res.warnings).toHaveLength(1);
    expect(res.warnings[0]).toMatch(/Unable to set 'PULUMI_COMMAND_STDOUT'/);
    expect(lines()).toEqual(["unset", "unset"]);
    const quiet = await harness.up(program("three", false));
    expect(quiet.ok).toBe(true);
    expect(quiet.warnings).toEqual([]);
    expect(lines()).toHaveLength(3);
  });

  test("with sshdAcceptEnv the previous stdout is sent without a warning", async () => {
    const { log, harness, lines } = fixture({ sshdAcceptEnv: ["PULUMI_COMMAND_*"] });
    // The test sshd itself has no AcceptEnv, so the variable is sent but sshd drops it: the harness
    // only decides what to send, the server still decides what to accept.
    const program = (stdin: string) => () => {
      new command.remote.Command("a", {
        connection: conn(),
        create: `echo "\${PULUMI_COMMAND_STDOUT:-unset}" >> ${log}; cat`,
        stdin,
      });
    };
    await harness.up(program("one"));
    const res = await harness.up(program("two"));
    expect(res.warnings).toEqual([]);
    expect(lines()).toEqual(["unset", "unset"]);
  });

  test("environment is a hard error when sshd refuses it, and nothing runs", async () => {
    const { log, harness, lines } = fixture();
    const res = await harness.up(() => {
      new command.remote.Command("a", {
        connection: conn(),
        create: append(log, "ran"),
        environment: { FOO: "bar" },
      });
    });
    expect(res.ok).toBe(false);
    expect(res.error?.message).toBe('could not set environment variable "FOO": ssh: setenv failed');
    expect(step(res, "a").ok).toBe(false);
    expect(lines()).toEqual([]);
    expect(harness.state().find((r) => r.name === "a")).toBeUndefined();
  });
});

describe("replacement", () => {
  const program = (log: string, trigger: string, stdin: string, deleteBeforeReplace: boolean) => () => {
    const r = new command.remote.Command(
      "r",
      {
        connection: conn(),
        create: appendStdin(log, "create"),
        delete: appendStdin(log, "delete"),
        stdin,
        triggers: [trigger],
      },
      { deleteBeforeReplace },
    );
    new command.remote.Command(
      "after",
      { connection: conn(), create: appendStdin(log, "after"), stdin },
      { dependsOn: [r] },
    );
  };

  test("a triggers change runs the new create, and the old delete (old stdin) at the end", async () => {
    const { log, harness, lines } = fixture();
    await harness.up(program(log, "t1", "old", false));
    const res = await harness.up(program(log, "t2", "new", false));
    expect(res.ok).toBe(true);
    expect(step(res, "r", "replace").diffKeys).toEqual(["stdin", "triggers"]);
    expect(lines()).toEqual(["create:old", "after:old", "create:new", "after:new", "delete:old"]);
    const ops = commandSteps(res).map((s) => `${s.name}:${s.op}`);
    expect(ops).toEqual(["r:replace", "after:update", "r:delete"]);
    expect(harness.state().filter((s) => s.name === "r").map((s) => s.inputs.stdin)).toEqual(["new"]);
  });

  test("with deleteBeforeReplace the old delete runs first", async () => {
    const { log, harness, lines } = fixture();
    await harness.up(program(log, "t1", "old", true));
    const res = await harness.up(program(log, "t2", "new", true));
    expect(res.ok).toBe(true);
    expect(lines()).toEqual(["create:old", "after:old", "delete:old", "create:new", "after:new"]);
    const del = step(res, "r", "delete");
    const rep = step(res, "r", "replace");
    expect(del.endedAt).toBeLessThanOrEqual(rep.endedAt);
  });

  test("when a step fails the old version's delete waits, and runs first in the next up", async () => {
    const { log, harness, lines } = fixture();
    const prog = (trigger: string, failing: boolean) => () => {
      new command.remote.Command("r", {
        connection: conn(),
        create: appendStdin(log, "create"),
        delete: appendStdin(log, "delete"),
        stdin: trigger,
        triggers: [trigger],
      });
      // The failure comes late enough that r's create has surely started.
      new command.remote.Command("bad", { connection: conn(), create: failing ? "sleep 0.5; exit 4" : "true" });
    };
    await harness.up(prog("t1", false));
    const res = await harness.up(prog("t2", true));
    expect(res.ok).toBe(false);
    expect(lines()).toEqual(["create:t1", "create:t2"]);
    expect(harness.state().filter((s) => s.name === "r").map((s) => [s.inputs.stdin, !!s.pendingDelete])).toEqual([
      ["t2", false],
      ["t1", true],
    ]);
    const next = await harness.up(prog("t2", false));
    expect(next.ok).toBe(true);
    expect(lines()).toEqual(["create:t1", "create:t2", "delete:t1"]);
    expect(harness.state().filter((s) => s.name === "r")).toHaveLength(1);
  });
});

describe("order and deletes", () => {
  const program = (log: string, withB: boolean) => () => {
    const a = new command.remote.Command("a", {
      connection: conn(),
      create: `sleep 0.3; ${append(log, "create-a")}`,
      delete: `sleep 0.3; ${append(log, "delete-a")}`,
    });
    if (withB) {
      new command.remote.Command(
        "b",
        { connection: conn(), create: append(log, "create-b"), delete: appendStdin(log, "delete-b"), stdin: "b-stdin" },
        { dependsOn: [a] },
      );
    }
  };

  test("dependsOn is respected on create, and destroy deletes in reverse", async () => {
    const { log, harness, lines } = fixture();
    const res = await harness.up(program(log, true));
    expect(res.ok).toBe(true);
    expect(lines()).toEqual(["create-a", "create-b"]);
    expect(step(res, "b").startedAt).toBeGreaterThanOrEqual(step(res, "a").endedAt);
    const destroyed = await harness.destroy();
    expect(destroyed.ok).toBe(true);
    expect(lines()).toEqual(["create-a", "create-b", "delete-b:b-stdin", "delete-a"]);
    expect(harness.state()).toEqual([]);
    expect(commandSteps(destroyed).map((s) => `${s.name}:${s.op}`)).toEqual(["b:delete", "a:delete"]);
  });

  test("removing a resource runs its delete with the old stdin", async () => {
    const { log, harness, lines } = fixture();
    await harness.up(program(log, true));
    const res = await harness.up(program(log, false));
    expect(res.ok).toBe(true);
    expect(step(res, "b", "delete").oldInputs?.stdin).toBe("b-stdin");
    expect(lines()).toEqual(["create-a", "create-b", "delete-b:b-stdin"]);
    expect(harness.state().map((s) => s.name)).toEqual(["a"]);
  });

  test("a resource without delete is just dropped from state", async () => {
    const { log, harness, lines } = fixture();
    await harness.up(() => {
      new command.remote.Command("x", { connection: conn(), create: append(log, "x") });
    });
    harness.resetCounters();
    const res = await harness.up(() => undefined);
    expect(res.ok).toBe(true);
    expect(step(res, "x").op).toBe("delete");
    expect(harness.sessions(endpoint())).toBe(0);
    expect(harness.state()).toEqual([]);
    expect(lines()).toEqual(["x"]);
  });

  test("resources registered inside apply are waited for", async () => {
    const { log, harness, lines } = fixture();
    const res = await harness.up(() => {
      const a = new command.remote.Command("a", { connection: conn(), create: "echo hello" });
      // Nothing awaits b: only the harness's wait for quiescence can see it.
      a.stdout.apply(
        (out) => new command.remote.Command("b", { connection: conn(), create: `sleep 0.2; ${append(log, out)}` }),
      );
    });
    expect(res.ok).toBe(true);
    expect(step(res, "b").ok).toBe(true);
    expect(lines()).toEqual(["hello"]);
    expect(harness.state().map((s) => s.name).sort()).toEqual(["a", "b"]);
  });
});

describe("failures", () => {
  test("a failed update fails the up, keeps the old state, and the next up retries", async () => {
    const { log, harness, lines } = fixture();
    const marker = `${log}.marker`;
    const program = (stdin: string) => () => {
      new command.remote.Command("a", {
        connection: conn(),
        create: appendStdin(log, "create"),
        update: `if [ -f ${marker} ]; then ${appendStdin(log, "update")}; else touch ${marker}; echo boom; exit 3; fi`,
        stdin,
      });
    };
    await harness.up(program("v1"));
    const failed = await harness.up(program("v2"));
    expect(failed.ok).toBe(false);
    const cmd = `if [ -f ${marker} ]; then ${appendStdin(log, "update")}; else touch ${marker}; echo boom; exit 3; fi`;
    expect(failed.error?.message).toBe(`Process exited with status 3: running ${goQuote(cmd)}:\nboom\n`);
    expect(step(failed, "a").error).toBe(failed.error?.message);
    expect(harness.state().find((s) => s.name === "a")?.inputs.stdin).toBe("v1");
    const retried = await harness.up(program("v2"));
    expect(retried.ok).toBe(true);
    expect(step(retried, "a").op).toBe("update");
    expect(lines()).toEqual(["create:v1", "update:v2"]);
    expect(harness.state().find((s) => s.name === "a")?.inputs.stdin).toBe("v2");
  });

  test("a failed create is not recorded", async () => {
    const { harness } = fixture();
    const res = await harness.up(() => {
      new command.remote.Command("a", { connection: conn(), create: "echo nope >&2; exit 7" });
    });
    expect(res.ok).toBe(false);
    expect(res.error?.message).toBe('Process exited with status 7: running "echo nope >&2; exit 7":\nnope\n');
    expect(harness.state()).toEqual([]);
  });

  const failingProgram = (log: string) => () => {
    new command.remote.Command("bad", { connection: conn(), create: "exit 1" });
    const slow = new command.remote.Command("slow", { connection: conn(), create: `sleep 1; ${append(log, "slow")}` });
    new command.remote.Command("late", { connection: conn(), create: append(log, "late") }, { dependsOn: [slow] });
  };

  test("after a failure no new step starts; running ones finish", async () => {
    const { log, harness, lines } = fixture();
    const res = await harness.up(failingProgram(log));
    expect(res.ok).toBe(false);
    expect(res.error?.message).toMatch(/^Process exited with status 1: running "exit 1"/);
    expect(lines()).toEqual(["slow"]);
    expect(step(res, "late").ok).toBe(false);
    expect(step(res, "late").error).toMatch(/skipped because an earlier step failed/);
    expect(harness.state().map((s) => s.name)).toEqual(["slow"]);
  });

  test("with continueOnError independent steps go on, dependents of a failure do not", async () => {
    const { log, harness, lines } = fixture({ continueOnError: true });
    const res = await harness.up(() => {
      failingProgram(log)();
      const bad2 = new command.remote.Command("bad2", { connection: conn(), create: "exit 2" });
      new command.remote.Command("child", { connection: conn(), create: append(log, "child") }, { dependsOn: [bad2] });
    });
    expect(res.ok).toBe(false);
    expect(res.error?.message).toMatch(/^Process exited with status [12]/);
    expect(lines()).toEqual(["slow", "late"]);
    expect(step(res, "child").error).toMatch(/skipped because its dependency .*::bad2 failed/);
    expect(harness.state().map((s) => s.name).sort()).toEqual(["late", "slow"]);
  });

  test("removed resources are not deleted when the up fails", async () => {
    const { log, harness, lines } = fixture();
    await harness.up(() => {
      new command.remote.Command("old", { connection: conn(), create: "true", delete: append(log, "deleted") });
    });
    const res = await harness.up(() => {
      new command.remote.Command("bad", { connection: conn(), create: "exit 1" });
    });
    expect(res.ok).toBe(false);
    expect(lines()).toEqual([]);
    expect(harness.state().map((s) => s.name)).toEqual(["old"]);
  });

  test("an error thrown inside apply fails the up; what depends on it does not run", async () => {
    const { log, harness, lines } = fixture();
    const res = await harness.up(() => {
      const a = new command.remote.Command("a", { connection: conn(), create: "echo x" });
      const broken = a.stdout.apply((): string => {
        throw new Error("apply broke");
      });
      new command.remote.Command("b", { connection: conn(), create: append(log, "b"), stdin: broken });
    });
    expect(res.ok).toBe(false);
    expect(res.error?.message).toBe("apply broke");
    expect(step(res, "a").ok).toBe(true);
    expect(step(res, "b").ok).toBe(false);
    expect(lines()).toEqual([]);
    expect(harness.state().map((s) => s.name)).toEqual(["a"]);
  });

  test("a program that throws fails the up", async () => {
    const { harness } = fixture();
    const res = await harness.up(() => {
      throw new Error("program broke");
    });
    expect(res.ok).toBe(false);
    expect(res.error?.message).toBe("program broke");
  });
});

describe("connections", () => {
  test("secret stdin reaches the command; the state file is private", async () => {
    const stateFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "harness-test-")), "state.json");
    const { log, harness, lines } = fixture({ stateFile });
    const res = await harness.up(() => {
      new command.remote.Command("s", { connection: conn(), create: `cat >> ${log}`, stdin: pulumi.secret("s3cr3t") });
    });
    expect(res.ok).toBe(true);
    expect(lines()).toEqual(["s3cr3t"]);
    expect(step(res, "s").newInputs?.stdin).toBe("s3cr3t");
    expect(fs.statSync(stateFile).mode & 0o777).toBe(0o600);
    const onDisk = JSON.parse(fs.readFileSync(stateFile, "utf8")) as { resources: { inputs: { stdin: unknown } }[] };
    expect(pulumi.runtime.isRpcSecret(onDisk.resources[0].inputs.stdin)).toBe(true);
    fs.rmSync(path.dirname(stateFile), { recursive: true, force: true });
  });

  test("a wrong pinned hostKey fails to connect, after the dial retries", async () => {
    const { log, harness, lines } = fixture();
    const other = fs.mkdtempSync(path.join(os.tmpdir(), "harness-key-"));
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", path.join(other, "k")]);
    const wrong = fs.readFileSync(path.join(other, "k.pub"), "utf8").trim();
    fs.rmSync(other, { recursive: true, force: true });
    const res = await harness.up(() => {
      new command.remote.Command("a", { connection: conn({ hostKey: wrong, dialErrorLimit: 2 }), create: append(log, "ran") });
    });
    expect(res.ok).toBe(false);
    expect(res.error?.message).toMatch(/^after 2 failed attempts: ssh: handshake failed: ssh: host key mismatch/);
    expect(lines()).toEqual([]);
    expect(harness.sessions(endpoint())).toBe(0);
  });

  test("without hostKey any host key is accepted", async () => {
    const { log, harness, lines } = fixture();
    const res = await harness.up(() => {
      new command.remote.Command("a", { connection: conn({ hostKey: undefined }), create: append(log, "ran") });
    });
    expect(res.ok).toBe(true);
    expect(lines()).toEqual(["ran"]);
  });

  test("a refused connection is a dial error", async () => {
    const { harness } = fixture();
    const closed = await freePort();
    const res = await harness.up(() => {
      new command.remote.Command("a", { connection: conn({ port: closed, dialErrorLimit: 1 }), create: "true" });
    });
    expect(res.error?.message).toMatch(
      new RegExp(`^after 1 failed attempts: dial tcp 127\\.0\\.0\\.1:${closed}: connect: connection refused`),
    );
  });

  test("a password without a key is refused clearly", async () => {
    const { harness } = fixture();
    const res = await harness.up(() => {
      new command.remote.Command("a", { connection: { host: "127.0.0.1", port: sshd.port, password: "pw" }, create: "true" });
    });
    expect(res.error?.message).toMatch(/does not support password authentication/);
  });
});

describe("preview", () => {
  test("runs nothing, computes ops from state, leaves state alone", async () => {
    const { log, harness, lines } = fixture();
    const program = (stdin: string, withB: boolean) => () => {
      const a = new command.remote.Command("a", { connection: conn(), create: appendStdin(log, "a"), stdin });
      if (withB) new command.remote.Command("b", { connection: conn(), create: append(log, "b"), delete: append(log, "del-b") });
      return { a: a.stdout };
    };
    const first = await harness.preview(program("v1", true));
    expect(first.ok).toBe(true);
    expect(commandSteps(first).map((s) => `${s.name}:${s.op}`)).toEqual(["a:create", "b:create"]);
    expect(first.outputs).toEqual({ a: UNKNOWN });
    expect(harness.state()).toEqual([]);
    await harness.up(program("v1", true));
    const before = JSON.stringify(harness.state());
    harness.resetCounters();
    const res = await harness.preview(program("v2", false));
    expect(res.ok).toBe(true);
    expect(commandSteps(res).map((s) => `${s.name}:${s.op}:${s.diffKeys.join(",")}`)).toEqual(["a:update:stdin", "b:delete:"]);
    expect(harness.sessions(endpoint())).toBe(0);
    expect(lines().sort()).toEqual(["a:v1", "b"]);
    expect(JSON.stringify(harness.state())).toBe(before);
    const same = await harness.preview(program("v1", true));
    expect(same.outputs).toEqual({ a: "" });
    expect(commandSteps(same).map((s) => s.op)).toEqual(["same", "same"]);
  });

  test("a program error fails the preview", async () => {
    const { harness } = fixture();
    const res = await harness.preview(() => {
      throw new Error("bad program");
    });
    expect(res.ok).toBe(false);
  });
});

describe("config", () => {
  test("stack config, secret values included, reaches the program", async () => {
    const { log, harness, lines } = fixture({
      project: "proj",
      config: { "proj:greeting": "hi", "proj:token": "t0k" },
      secretConfigKeys: ["proj:token"],
    });
    const res = await harness.up(() => {
      const cfg = new pulumi.Config();
      new command.remote.Command("a", {
        connection: conn(),
        create: `${appendStdin(log, "token")}; ${append(log, cfg.require("greeting"))}`,
        stdin: cfg.requireSecret("token"),
      });
    });
    expect(res.ok).toBe(true);
    expect(lines()).toEqual(["token:t0k", "hi"]);
    expect(harness.state()[0].urn).toBe("urn:pulumi:stack::proj::command:remote:Command::a");
  });
});
