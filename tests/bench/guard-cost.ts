/**
 * What config.toml's restart guards cost a node: the node script's own guard functions, taken out of
 * its text (NODE_SCRIPT as built, not a copy, so the benchmark measures whatever the script runs today), run
 * on the node in a POSIX sh script of their own, each timed and charged for CPU, several times, in
 * the order an apply runs them:
 *
 *   killmode  killmode_guard    the unit's KillMode (systemctl show --property=KillMode --value UNIT)
 *   sandbox   sandbox_guard     the sandbox image in k8s.io? (ctr images ls -q; a pull only when absent)
 *   before    record_tasks      the running tasks (ctr namespaces ls, then tasks ls per namespace)
 *   podstart  pod_ok            a throwaway pod sandbox (crictl runp, rmp --force)
 *   after     containers_guard  the running tasks again, compared with the ones before (and the report)
 *
 * There is no restart between "before" and "after" here (the restart itself is not the guards'
 * cost), so every task runs with its pid and the guards find none lost: the healthy path, which is
 * the one every healthy node takes.
 *
 * How the CPU is charged: the script moves itself into a cgroup of its own below the node's (cgroup
 * v1 cpuacct, or v2), so every process a check starts (sh, timeout, ctr, awk, grep, systemctl,
 * crictl) is charged there, to the nanosecond (cpuacct.usage; v2: cpu.stat usage_usec); and it
 * reads the node's own cgroup, which holds everything on the node (containerd answering those calls,
 * the shim and runc that the pod check's sandbox starts, the node's pods, sshd), in the same window.
 * The checks' CPU is the node's: its commands' and containerd's (and whatever else the node did
 * meanwhile: `idle` measures that background, the node doing nothing for a second). Wall time is
 * `date +%s%N` around each check; a check that does nothing (`nothing`, `:`) measures what the
 * measurement itself adds to it (the two dates' fork and exec), and summarize() takes that off.
 *
 * The script reads nothing from its stdin and writes its samples at the end only, so the SSH session
 * that carries it does no work while a check runs.
 */
import type { RestartGuards } from "../../provider/src/component/node-args";

/** Single-quoted for sh (the values here are paths and names; no NUL). */
const shellQuote = (s: string) => `'${s.replace(/'/g, `'"'"'`)}'`;

export type { RestartGuards };

/** The guards' functions, and the node script's helpers they call. */
const FUNCTIONS = ["say", "bounded", "bounded_for", "killmode_guard", "running_tasks", "name_of", "record_tasks", "containers_guard", "cri_of", "full_ref", "sandbox_guard", "pod_ok"];

/** The checks, in an apply's order, with what each one runs. */
export const CHECKS = [
  { key: "killmode", name: "KillMode read", runs: "systemctl show --property=KillMode --value containerd" },
  { key: "sandbox", name: "sandbox image check", runs: "ctr -n k8s.io images ls -q, grep (a pull only when absent)" },
  { key: "before", name: "running tasks before", runs: "ctr namespaces ls -q; ctr -n NS tasks ls for each" },
  { key: "podstart", name: "pod-start check", runs: "crictl runp, then rmp --force, of a throwaway pod sandbox" },
  { key: "after", name: "running tasks after, compared", runs: "ctr -n NS tasks ls for the namespaces that held tasks before, then awk against the list before" },
] as const;
export type CheckKey = (typeof CHECKS)[number]["key"];

/** Single commands the checks are made of, measured the same way. */
export const UNITS = [
  { key: "tool", name: "a small tool's start (tr)" },
  { key: "timeout", name: "the same under timeout(1), as the script bounds its ctr and crictl calls" },
  { key: "ctr", name: "one ctr call (ctr version)" },
  { key: "crictl", name: "one crictl call (crictl version)" },
  { key: "systemctl", name: "systemctl show --property=KillMode --value containerd" },
] as const;
export type UnitKey = (typeof UNITS)[number]["key"];

/**
 * One function of the node script, by name. One that opens with `name() {` (and maybe a comment) on
 * a line of its own ends at the first `}` alone on a line; any other is one statement, which may
 * run over lines (a printf format holds a newline: the script has no backslashes), up to where its
 * braces balance.
 */
export function scriptFunction(script: string, name: string): string {
  const lines = script.split("\n");
  const i = lines.findIndex((l) => l.startsWith(`${name}() {`));
  if (i < 0) throw new Error(`the node script has no function ${name}(): the guard benchmark (tests/bench/guard-cost.ts) must follow it`);
  if (/^[a-z_]+\(\) \{\s*(#.*)?$/.test(lines[i])) {
    const j = lines.findIndex((l, k) => k > i && l === "}");
    if (j < 0) throw new Error(`the node script's function ${name}() has no closing line`);
    return lines.slice(i, j + 1).join("\n");
  }
  let depth = 0;
  for (let k = i; k < lines.length; k++) {
    for (const ch of lines[k]) depth += ch === "{" ? 1 : ch === "}" ? -1 : 0;
    if (depth === 0) return lines.slice(i, k + 1).join("\n");
  }
  throw new Error(`the node script's function ${name}() does not end`);
}

export interface GuardCostOptions {
  /** The node script whose functions run: the bench gives the built one, which its program installs. */
  nodeScript: string;
  /** The node's name, for messages. */
  label: string;
  /** Times each check runs. */
  reps: number;
  /** The CRI client the apply is given (crictlPath). */
  crictl: string;
  ctr?: string;
  containerd?: string;
  restart?: string;
  /** healthTimeoutSeconds: the pod check's deadline. */
  timeout?: number;
  socket?: string;
  config?: string;
}

/** The script that runs on the node (as root, over SSH, by /bin/sh): prints one sample a line. */
export function guardCostScript(o: GuardCostOptions): string {
  const q = shellQuote;
  const socket = o.socket ?? "/run/containerd/containerd.sock";
  return `set -eu
PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
umask 077
work=$(mktemp -d)
label=${q(o.label)} ctr=${q(o.ctr ?? "ctr")} containerd=${q(o.containerd ?? "containerd")}
restart=${q(o.restart ?? "systemctl restart containerd")} timeout=${Number(o.timeout ?? 30)} reps=${Number(o.reps)}
CONTAINERD_NODE_CRICTL=${q(o.crictl)}
# What the node script's globals are for a config.toml apply on a node whose containerd runs.
vsock=${q(socket)} hsock=${q(socket)}
path=${q(o.config ?? "/etc/containerd/config.toml")} state=$work base=config.toml
tasks=$work/config.toml.tasks out=$work/config.toml.out
allow_loss=false unit='' killmode=unchecked running=0 lost=0 checked=false
kept="nothing restarted and the old config.toml stays"
now_on="the node is on the new config.toml and containerd is healthy"
podcheck=false sb_image='' sb_before='' podstart='' pod_cgroups=cgroupfs
daemon_up=true guards='' reason=''

# --- the node script's own functions ---
${FUNCTIONS.map((f) => scriptFunction(o.nodeScript, f)).join("\n")}

# A check that fails ends the measurement, loudly (the apply would have failed); no audit line.
fail() { printf 'containerd-node: %s: %s\\n' "$label" "$*" >&2; exit 1; }
audit() { :; }

# --- the node's CPU, and this script's: a cgroup of its own below the node's ---
cg='' cgv=''
for d in /sys/fs/cgroup/cpuacct /sys/fs/cgroup/cpu,cpuacct /sys/fs/cgroup/cpuacct,cpu; do
  if [ -r "$d/cpuacct.usage" ]; then cg=$d cgv=1; break; fi
done
if [ -z "$cg" ]; then
  for d in /sys/fs/cgroup /sys/fs/cgroup/unified; do
    if [ -r "$d/cpu.stat" ]; then cg=$d cgv=2; break; fi
  done
fi
[ -n "$cg" ] || fail "no cpuacct or cgroup v2 hierarchy under /sys/fs/cgroup: the node's CPU cannot be read"
if [ "$cgv" = 1 ]; then usage_file=cpuacct.usage; else usage_file=cpu.stat; fi
own="$cg/containerd-node-bench.$$"
cleanup() {
  echo "$$" >"$cg/cgroup.procs" 2>/dev/null || :
  rmdir "$own" 2>/dev/null || :
  rm -rf "$work"
}
trap cleanup EXIT
mkdir "$own"
echo "$$" >"$own/cgroup.procs"
# No fork: the sh's own read, in nanoseconds.
usage() { # file
  if [ "$cgv" = 1 ]; then read -r _u <"$1"; return 0; fi
  while read -r _k _v; do
    if [ "$_k" = usage_usec ]; then _u=$((_v * 1000)); return 0; fi
  done <"$1"
}

"$containerd" --config "$path" config dump >"$work/dump" 2>/dev/null </dev/null
# One sample: name rep wall_ns commands_ns node_ns. The dates run outside the CPU window.
m() { # name command...
  _name=$1
  shift
  _t0=$(date +%s%N)
  usage "$cg/$usage_file"; _n0=$_u
  usage "$own/$usage_file"; _o0=$_u
  "$@" || fail "$_name: $* returned $? \${reason:+($reason)}"
  usage "$own/$usage_file"; _o1=$_u
  usage "$cg/$usage_file"; _n1=$_u
  _t1=$(date +%s%N)
  echo "sample $_name $rep $((_t1 - _t0)) $((_o1 - _o0)) $((_n1 - _n0))" >>"$work/samples"
}
rep=0
while [ "$rep" -lt "$reps" ]; do
  rep=$((rep + 1))
  m nothing :
  m killmode killmode_guard
  m sandbox sandbox_guard "$work/dump"
  m before record_tasks
  podcheck=true
  m podstart pod_ok "$timeout"
  podcheck=false
  m after containers_guard
  echo "guards $rep \${guards#*:}" >>"$work/samples"
  podstart=''
done
# What single commands cost here, the checks' building blocks.
u_tool() { tr -d x </dev/null; }
u_timeout() { timeout 10 tr -d x </dev/null; }
u_ctr() { "$ctr" --address "$vsock" version >/dev/null; }
u_crictl() { "$CONTAINERD_NODE_CRICTL" --runtime-endpoint "unix://$hsock" version >/dev/null; }
u_systemctl() { systemctl show --property=KillMode --value containerd >/dev/null; }
rep=0
while [ "$rep" -lt "$reps" ]; do
  rep=$((rep + 1))
  for _u in tool timeout ctr crictl systemctl; do m "unit-$_u" "u_$_u"; done
done
rep=0
m idle sleep 1
cat "$work/samples"
`;
}

export interface GuardSample {
  check: string;
  rep: number;
  wallNs: number;
  /** CPU of the check's own processes (its cgroup). */
  commandsNs: number;
  /** CPU of the whole node meanwhile (the commands', containerd's, the shim's and runc's, the rest's). */
  nodeNs: number;
}

export interface GuardCost {
  samples: GuardSample[];
  /** What containers_guard reported on each repetition. */
  guards: RestartGuards[];
}

export function parseGuardCost(out: string): GuardCost {
  const samples: GuardSample[] = [];
  const guards: RestartGuards[] = [];
  for (const line of out.split("\n")) {
    const f = line.trim().split(" ");
    if (f[0] === "sample" && f.length === 6) samples.push({ check: f[1], rep: Number(f[2]), wallNs: Number(f[3]), commandsNs: Number(f[4]), nodeNs: Number(f[5]) });
    else if (f[0] === "guards") guards.push(JSON.parse(f.slice(2).join(" ")) as RestartGuards);
  }
  return { samples, guards };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

export interface CheckCost {
  /** Median wall time, ms, less the measurement's own (the `nothing` check's median). */
  wallMs: number;
  /** Median CPU of the check's own processes, ms. */
  commandsMs: number;
  /** Median CPU of the whole node during the check, ms. */
  nodeMs: number;
}

export interface GuardCostSummary {
  checks: Record<CheckKey, CheckCost>;
  /** The five checks' medians added up. */
  total: CheckCost;
  /** The measurement's own, from the `nothing` check: wall ms, node CPU ms. */
  overhead: { wallMs: number; nodeMs: number };
  /** Single commands (UNITS): the median CPU of their own processes, and the node's, ms. */
  units: Record<UnitKey, CheckCost>;
  /** The node's CPU while idle, ms per second (containerd's own ticking, the pods, sshd). */
  idleMsPerSecond: number;
  reps: number;
}

export function summarize(c: GuardCost): GuardCostSummary {
  const of = (check: string) => c.samples.filter((s) => s.check === check);
  const nothing = of("nothing");
  const overheadWall = median(nothing.map((s) => s.wallNs)) / 1e6;
  const cost = (check: string): CheckCost => {
    const s = of(check);
    if (s.length === 0) throw new Error(`no samples of ${check}`);
    return {
      wallMs: Math.max(0, median(s.map((v) => v.wallNs)) / 1e6 - overheadWall),
      commandsMs: median(s.map((v) => v.commandsNs)) / 1e6,
      nodeMs: median(s.map((v) => v.nodeNs)) / 1e6,
    };
  };
  const checks = {} as Record<CheckKey, CheckCost>;
  const total: CheckCost = { wallMs: 0, commandsMs: 0, nodeMs: 0 };
  for (const { key } of CHECKS) {
    const x = (checks[key] = cost(key));
    total.wallMs += x.wallMs;
    total.commandsMs += x.commandsMs;
    total.nodeMs += x.nodeMs;
  }
  const units = {} as Record<UnitKey, CheckCost>;
  for (const { key } of UNITS) units[key] = cost(`unit-${key}`);
  const idle = of("idle")[0];
  return {
    checks,
    total,
    units,
    overhead: { wallMs: overheadWall, nodeMs: median(nothing.map((s) => s.nodeNs)) / 1e6 },
    idleMsPerSecond: idle ? idle.nodeNs / 1e6 / (idle.wallNs / 1e9) : NaN,
    reps: nothing.length,
  };
}
