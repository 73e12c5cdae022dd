/**
 * A "node" in a scratch directory: a real containerd of one generation with its own config.toml,
 * root, state and socket, and a restart command that restarts it the way `systemctl restart` would
 * (stop by pid, start, wait until the socket answers or the process dies). The node script runs
 * against it with dash, exactly as sshd would run it, only without SSH.
 *
 * containerd runs under `unshare --mount` with a private tmpfs on /run: 2.1 creates /run/containerd
 * at start whatever its `state` says, and the machine's own /run must stay untouched.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { NodeSpec } from "../../provider/src";
import { ContainerdBinaries, Generation, containerdBinaries } from "./containerd-binaries";

export interface ScratchNode {
  gen: Generation;
  bin: ContainerdBinaries;
  dir: string;
  configFile: string;
  registryConfigPath: string;
  socket: string;
  lockFile: string;
  restartScript: string;
  restartLog: string;
  pidFile: string;
  /** Spec fields that keep containerd inside the scratch directory. */
  baseSpec(): NodeSpec;
  pid(): number | undefined;
  restarts(): number;
  stop(): void;
  remove(): void;
}

/**
 * A node that runs pods holds its sandbox image in k8s.io (the node script pulls a missing one
 * before a restart, and a scratch node has no registry to pull from): the restart script imports
 * the fleet's sleeper image (an OCI layout) under the pause names containerd's defaults and the
 * tests' specs use, once, the first time the daemon answers.
 */
export const SANDBOX_NAMES = [...["3.6", "3.8", "3.9", "3.10", "3.10.1", "3.10.2"].map((t) => `registry.k8s.io/pause:${t}`), "registry.aliyuncs.com/google_containers/pause:3.9"];

/** The fleet's sleeper image (tests/fleet/build-pod-tools.sh; .ci/install builds it). */
const SLEEPER_IMAGE = path.resolve(__dirname, "../../.cache/fleet/image");

const RESTART_SH = `#!/bin/sh
# restart containerd for a scratch node: $1 = node dir, $2 = containerd bin dir
set -eu
dir=$1 bindir=$2
pidfile="$dir/containerd.pid"
echo "restart $(date +%s.%N)" >>"$dir/restarts.log"
if [ -f "$pidfile" ]; then
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || :
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$pid" 2>/dev/null || :
  fi
  rm -f "$pidfile"
fi
[ -e "$dir/fail-start" ] && { echo "containerd failed to start (scratch fault)" >&2; exit 1; }
PATH="$bindir:$PATH" setsid unshare --mount --propagation private -- \\
  sh -c 'mount -t tmpfs -o mode=0755 scratch-run /run && exec "$0" "$@"' \\
  "$bindir/containerd" --config "$dir/etc/containerd/config.toml" \\
  </dev/null >>"$dir/containerd.log" 2>&1 &
echo $! >"$pidfile"
pid=$!
i=0
while [ $i -lt 100 ]; do
  if ! kill -0 "$pid" 2>/dev/null; then echo "containerd exited at start:" >&2; tail -n 5 "$dir/containerd.log" >&2; exit 1; fi
  if "$bindir/ctr" --address "$dir/run/containerd.sock" version >/dev/null 2>&1; then break; fi
  sleep 0.1; i=$((i + 1))
done
[ $i -lt 100 ] || { echo "containerd did not answer within 10s" >&2; exit 1; }
if [ -f "$dir/pause.tar" ] && [ ! -e "$dir/pause.imported" ]; then
  ctr="$bindir/ctr --address $dir/run/containerd.sock -n k8s.io"
  if $ctr images import --base-name registry.k8s.io/pause "$dir/pause.tar" >/dev/null 2>&1; then
    for n in ${SANDBOX_NAMES.join(" ")}; do $ctr images tag --force registry.k8s.io/pause:sleeper "$n" >/dev/null 2>&1 || :; done
    : >"$dir/pause.imported"
  fi
fi
`;



export function scratchNode(gen: Generation): ScratchNode {
  const bin = containerdBinaries(gen);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `cdn-scratch-${gen.replace(".", "")}-`));
  for (const d of ["etc/containerd", "run", "lib", "opt", "cni"]) fs.mkdirSync(path.join(dir, d), { recursive: true });
  const restartScript = path.join(dir, "restart.sh");
  fs.writeFileSync(restartScript, RESTART_SH, { mode: 0o755 });
  if (fs.existsSync(path.join(SLEEPER_IMAGE, "index.json"))) spawnSync("tar", ["-C", SLEEPER_IMAGE, "-cf", path.join(dir, "pause.tar"), "."]);
  const pidFile = path.join(dir, "containerd.pid");
  const node: ScratchNode = {
    gen,
    bin,
    dir,
    configFile: path.join(dir, "etc/containerd/config.toml"),
    registryConfigPath: path.join(dir, "etc/containerd/certs.d"),
    socket: path.join(dir, "run/containerd.sock"),
    lockFile: path.join(dir, "etc/containerd/.containerd-node.lock"),
    restartScript,
    restartLog: path.join(dir, "restarts.log"),
    pidFile,
    baseSpec(): NodeSpec {
      const v3 = gen.startsWith("2");
      const common = {
        "io.containerd.internal.v1.opt": { path: path.join(dir, "opt") },
        // Port 0: several scratch daemons may run at once.
        ...(v3
          ? {
              "io.containerd.grpc.v1.cri": { stream_server_port: "0" },
              "io.containerd.nri.v1.nri": { disable: true },
              "io.containerd.cri.v1.runtime": { cni: { conf_dir: path.join(dir, "cni") } },
            }
          : { "io.containerd.grpc.v1.cri": { stream_server_port: "0", cni: { conf_dir: path.join(dir, "cni") } } }),
      };
      return {
        containerdVersion: bin.version,
        root: path.join(dir, "lib"),
        state: path.join(dir, "run/state"),
        grpcAddress: this.socket,
        configFile: this.configFile,
        registryConfigPath: this.registryConfigPath,
        settings: { plugins: common },
      };
    },
    pid() {
      try {
        const pid = Number(fs.readFileSync(pidFile, "utf8").trim());
        process.kill(pid, 0);
        return pid;
      } catch {
        return undefined;
      }
    },
    restarts() {
      return fs.existsSync(node.restartLog) ? fs.readFileSync(node.restartLog, "utf8").split("\n").filter(Boolean).length : 0;
    },
    stop() {
      const pid = node.pid();
      if (pid === undefined) return;
      process.kill(pid, "SIGKILL");
      spawnSync("sh", ["-c", `while kill -0 ${pid} 2>/dev/null; do sleep 0.05; done`], { timeout: 5000 });
    },
    remove() {
      node.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return node;
}
