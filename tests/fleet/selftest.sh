#!/bin/bash
# Proves the test fleet does what tests rely on, end to end, from a fresh state:
# up/status/down, SSH with pinned host keys, one containerd generation per node, the systemctl
# stand-in and its restart log, pulls through the mirror (and no way around it), pods through
# crictl and what a restart does to them under each KillMode, the fault switches, reset, and that
# down leaves nothing behind (processes, namespaces, links, cgroups). Exits non-zero on the first failure.
#
#   tests/fleet/selftest.sh [--big N]    (default: also brings up 20 nodes and times it; --big 0 skips)
#
# Run as root on a machine where the fleet is down: it brings the fleet up and down itself. To run it
# beside a fleet someone else is using, give it its own: FLEET_PREFIX=cdx FLEET_SUBNET=198.18.7
# FLEET_STATE_DIR=/var/tmp/fleet-selftest tests/fleet/selftest.sh
# Commands for the nodes are single-quoted on purpose: they expand there, not here.
# shellcheck disable=SC2016
set -eu
set -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
fleet=$here/fleet.sh
big=20
while [ $# -gt 0 ]; do
  case "$1" in
    --big) big=${2:?}; shift ;;
    *) echo "usage: $0 [--big N]" >&2; exit 2 ;;
  esac
  shift
done

# Same knobs as fleet.sh: a second fleet on the machine uses another prefix, subnet and state dir.
prefix=${FLEET_PREFIX:-cdn}
reg=${FLEET_SUBNET:-198.18.0}.1
state=${FLEET_STATE_DIR:-/var/tmp/containerd-node-fleet}

work=$(mktemp -d)
owns_fleet=0
# On failure the fleet this test brought up goes down again (FLEET_SELFTEST_KEEP=1 keeps it to look at).
cleanup() {
  local rc=$?
  if [ "$rc" -ne 0 ] && [ "$owns_fleet" = 1 ] && [ "${FLEET_SELFTEST_KEEP:-}" != 1 ]; then
    "$fleet" down >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

step=""
begin() { step=$*; printf '\n== %s\n' "$step" >&2; }
ok() { printf '   ok: %s\n' "$*" >&2; }
fail() { printf 'FAIL [%s]: %s\n' "$step" "$*" >&2; exit 1; }
check() { # description command...: the command must succeed
  local what=$1
  shift
  "$@" >"$work/out" 2>&1 || { cat "$work/out" >&2; fail "$what"; }
  ok "$what"
}
check_fails() { # description command...: the command must fail
  local what=$1
  shift
  if "$@" >"$work/out" 2>&1; then cat "$work/out" >&2; fail "$what (it succeeded)"; fi
  ok "$what"
}
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# Node facts from the fleet's JSON, one tab-separated line per node.
node_table() { # json file
  node -e '
    const f = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    for (const n of f.nodes) console.log([n.name, n.host, n.generation, n.containerdVersion,
      n.dir, n.containerdSocket, n.configToml, n.restartLog, n.hostKey, n.privateKeyPath].join("\t"));
  ' "$1"
}
json_get() { # json file, JS expression on `f`
  node -e 'const f = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const v = eval(process.argv[2]); console.log(typeof v === "string" ? v : JSON.stringify(v));' "$1" "$2"
}

declare -A HOST GEN VERSION DIR SOCK CONF RLOG HOSTKEY
KEY=""
NODES=()
load_nodes() { # json file
  local name host gen ver dir sock conf rlog hkey key
  NODES=()
  while IFS=$'\t' read -r name host gen ver dir sock conf rlog hkey key; do
    NODES+=("$name")
    HOST[$name]=$host GEN[$name]=$gen VERSION[$name]=$ver DIR[$name]=$dir SOCK[$name]=$sock
    CONF[$name]=$conf RLOG[$name]=$rlog HOSTKEY[$name]=$hkey
    KEY=$key
  done < <(node_table "$1")
}

# ssh exactly as a client that pins the node's host key would.
node_ssh() { # name command...
  local name=$1
  shift
  printf '%s %s\n' "${HOST[$name]}" "${HOSTKEY[$name]}" >"$work/known_hosts.$name"
  ssh -i "$KEY" -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=5 \
    -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$work/known_hosts.$name" \
    -o LogLevel=ERROR "root@${HOST[$name]}" "$@"
}

in_node() { "$fleet" exec "$@"; }

# Host pids of every process of the fleet right now: each node's unshare and everything in its
# pid namespace, and the registries. Used to prove that down ends them all.
fleet_pids() { # state dir
  local d pid
  tree() { local c; for c in $(pgrep -P "$1"); do echo "$c"; tree "$c"; done; }
  for d in "$1"/nodes/node-*; do
    for f in unshare.pid init.pid; do
      pid=$(cut -d' ' -f1 "$d/$f")
      echo "$pid"
    done
    tree "$(cut -d' ' -f1 "$d/init.pid")"
  done
  cut -d' ' -f1 "$1"/registry/*.pid
}

# A process counts as ended if it is gone or a zombie (this machine's pid 1 reaps orphans late).
alive() { # pid
  local st
  [ -e "/proc/$1/stat" ] || return 1
  st=$(sed -e 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}

pull_via() { # node mirror-url-or-empty
  in_node "$1" -- /bin/sh -c '
    d=$(mktemp -d)
    if [ -n "$1" ]; then
      mkdir -p "$d/docker.io"
      printf "[host.\"%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n" "$1" >"$d/docker.io/hosts.toml"
    fi
    ctr -a /run/containerd/containerd.sock images rm docker.io/library/tiny:1.0 >/dev/null 2>&1 || true
    timeout 60 ctr -a /run/containerd/containerd.sock images pull --plain-http --hosts-dir "$d" \
      docker.io/library/tiny:1.0
    rc=$?
    rm -rf "$d"
    exit "$rc"' sh "$2"
}

lines() { wc -l <"$1"; }

# ---------------------------------------------------------------------------------------------

begin "fresh state"
if "$fleet" status >/dev/null 2>&1; then
  fail "the fleet is already up; bring it down first (tests/fleet/fleet.sh down)"
fi
check "down when already down is harmless" "$fleet" down
owns_fleet=1
check "no state dir" test ! -e "$state"

begin "up -n 3"
t0=$(date +%s.%N)
"$fleet" up -n 3 >"$work/up.json" 2>"$work/up.err" || { cat "$work/up.err" >&2; fail "up -n 3"; }
up3=$(elapsed "$t0")
ok "up -n 3 took ${up3} s"
awk -v t="$up3" 'BEGIN { exit !(t < 60) }' || fail "up -n 3 took ${up3} s (want well under a minute)"
check "stdout is JSON only" node -e 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))' "$work/up.json"
load_nodes "$work/up.json"
[ ${#NODES[@]} -eq 3 ] || fail "expected 3 nodes, got ${#NODES[@]}"
[ "$(json_get "$work/up.json" 'f.registry.url')" = "http://$reg:5000" ] || fail "registry url"
[ "$(json_get "$work/up.json" 'f.registry.mirrors.length')" = 2 ] || fail "two mirrors"
[ "$(json_get "$work/up.json" 'f.nodes[0].privateKey.startsWith("-----BEGIN OPENSSH PRIVATE KEY-----\n")')" = true ] ||
  fail "privateKey in JSON"
ok "JSON has registry, mirrors and keys"

# node-1's config.toml as up wrote it, for reset to be checked against.
init_conf_1=$(sha256sum <"${CONF[node-1]}")

begin "generations: node-1=1.6, node-2=1.7, node-3=2.1"
want_versions=(1.6.20 1.7.24 2.1.9)
for i in 0 1 2; do
  n=${NODES[$i]}
  [ "${VERSION[$n]}" = "${want_versions[$i]}" ] || fail "$n: JSON says ${VERSION[$n]}"
  v=$(node_ssh "$n" containerd --version) || fail "$n: ssh with pinned host key"
  case "$v" in *" ${want_versions[$i]}"* | *" v${want_versions[$i]}"*) ;; *) fail "$n: containerd --version: $v" ;; esac
  sv=$(node_ssh "$n" 'ctr version' | awk '/^Server:/ { s = 1 } s && /Version:/ { print $2; exit }')
  case "$sv" in "${want_versions[$i]}"*) ;; *) fail "$n: running daemon reports '$sv'" ;; esac
  ok "$n: ssh with pinned host key; containerd $v; daemon $sv"
done

begin "host key pinning is real"
printf '%s %s\n' "${HOST[node-1]}" "${HOSTKEY[node-2]}" >"$work/wrong_known_hosts"
check_fails "node-1 with node-2's host key is refused" \
  ssh -i "$KEY" -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=5 -o StrictHostKeyChecking=yes \
  -o UserKnownHostsFile="$work/wrong_known_hosts" "root@${HOST[node-1]}" true

begin "each node is its own machine"
for n in "${NODES[@]}"; do
  [ "$(node_ssh "$n" hostname)" = "$n" ] || fail "$n: hostname"
  p=$(node_ssh "$n" 'echo "$PATH"')
  [ "${p%%:*}" = /usr/local/sbin ] || fail "$n: PATH starts with ${p%%:*}"
  [ "$(node_ssh "$n" 'command -v systemctl')" = /usr/local/sbin/systemctl ] || fail "$n: systemctl is not the stand-in"
  # Not the machine's /root/.bashrc (pyenv): an SSH session must be quick.
  [ ! -s "${DIR[$n]}/root/.bashrc" ] || fail "$n: .bashrc not empty"
  check "$n: no default route in the node" /bin/sh -c "! '$fleet' exec '$n' -- ip route | grep -q default"
  check "$n: plugins cri ok" /bin/sh -c \
    "'$fleet' exec '$n' -- ctr -a /run/containerd/containerd.sock plugins ls | grep -Eq 'io.containerd.grpc.v1 +cri +.* ok'"
  if [ "${GEN[$n]}" = 2.1 ]; then
    for p in images runtime; do
      check "$n: io.containerd.cri.v1 $p ok" /bin/sh -c \
        "'$fleet' exec '$n' -- ctr -a /run/containerd/containerd.sock plugins ls | grep -Eq 'io.containerd.cri.v1 +$p +.* ok'"
    done
  fi
  check "$n: config.toml is that generation's config default, with restrict_oom_score_adj = true" \
    /bin/sh -c "'$fleet' exec '$n' -- containerd config default 2>/dev/null |
      sed -e 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' | cmp - '${CONF[$n]}'"
  check "$n: socket answers from the machine" \
    ctr -a "${SOCK[$n]}" version
  check "$n: node tools present" node_ssh "$n" 'command -v flock mktemp cmp sync sha256sum'
done
check "exec passes the exit code through" /bin/sh -c "'$fleet' exec node-2 -- sh -c 'exit 7'; [ \$? -eq 7 ]"
check "files written in a node stay there" /bin/sh -c \
  "'$fleet' exec node-1 -- sh -c 'mkdir -p /etc/fleet-selftest && echo x >/etc/fleet-selftest/f' &&
   [ ! -e /etc/fleet-selftest ] && '$fleet' exec node-2 -- test ! -e /etc/fleet-selftest/f"

begin "systemctl restart containerd over SSH"
for n in "${NODES[@]}"; do
  before=$(lines "${RLOG[$n]}")
  pid1=$(node_ssh "$n" 'systemctl show -p MainPID --value containerd')
  check "$n: restart exits 0" node_ssh "$n" 'systemctl restart containerd'
  pid2=$(node_ssh "$n" 'systemctl show -p MainPID --value containerd')
  after=$(lines "${RLOG[$n]}")
  [ "$after" -eq $((before + 1)) ] || fail "$n: restart log $before -> $after lines"
  if [ "$pid1" = "$pid2" ] || [ "$pid2" = 0 ]; then fail "$n: containerd pid $pid1 -> $pid2"; fi
  [ "$(node_ssh "$n" 'systemctl is-active containerd')" = active ] || fail "$n: not active after restart"
  ok "$n: restart log $before -> $after, pid $pid1 -> $pid2, active"
done

begin "pull through the mirror, and only through it"
for n in "${NODES[@]}"; do
  check "$n: pull via http://$reg:5000" pull_via "$n" "http://$reg:5000"
  check "$n: pull via http://$reg:5001" pull_via "$n" "http://$reg:5001"
  check_fails "$n: pull without a mirror fails (no route out)" pull_via "$n" ""
  grep -q 'network is unreachable' "$work/out" || { cat "$work/out" >&2; fail "$n: not 'network is unreachable'"; }
done
for img in pause:3.9 google_containers/pause:3.9; do
  check "registry serves $img" skopeo --insecure-policy inspect --raw --tls-verify=false "docker://$reg:5000/$img"
done
check "the image is for this machine's platform" /bin/sh -c \
  "skopeo --insecure-policy inspect --tls-verify=false docker://$reg:5000/library/tiny:1.0 |
   grep -q '\"Architecture\": \"$(dpkg --print-architecture)\"'"

begin "fault sshd-stop / sshd-start"
check "fault sshd-stop" "$fleet" fault node-1 sshd-stop
check_fails "ssh fails while sshd is stopped" node_ssh node-1 true
check "fault sshd-start" "$fleet" fault node-1 sshd-start
check "ssh works again" node_ssh node-1 true

begin "fault containerd-fail-start / containerd-fix"
check "fault containerd-fail-start" "$fleet" fault node-2 containerd-fail-start
before=$(lines "${RLOG[node-2]}")
check_fails "systemctl restart containerd exits non-zero" node_ssh node-2 'systemctl restart containerd'
[ "$(lines "${RLOG[node-2]}")" -eq $((before + 1)) ] || fail "failed start not in the restart log"
check_fails "containerd is not running" node_ssh node-2 'ctr version'
[ "$(node_ssh node-2 'systemctl is-active containerd' || true)" = failed ] || fail "is-active should say failed"
ok "is-active says failed"
check "fault containerd-fix" "$fleet" fault node-2 containerd-fix
check "systemctl start containerd works again" node_ssh node-2 'systemctl start containerd && ctr version'

begin "fault kill-sessions"
node_ssh node-3 'sleep 100' >"$work/cut.out" 2>&1 &
sshpid=$!
i=0
until "$fleet" exec node-3 -- pgrep -f '^sleep 100$' >/dev/null 2>&1; do
  i=$((i + 1))
  [ "$i" -lt 50 ] || fail "sleep 100 did not start over ssh"
  sleep 0.1
done
cpid=$(node_ssh node-3 'systemctl show -p MainPID --value containerd')
check "fault kill-sessions" "$fleet" fault node-3 kill-sessions
t0=$(date +%s.%N)
if wait "$sshpid"; then fail "the ssh session survived kill-sessions"; fi
ok "ssh session ended (exit non-zero) $(elapsed "$t0") s after kill-sessions"
check_fails "sleep 100 is gone from the node" "$fleet" exec node-3 -- pgrep -f '^sleep 100$'
check "sshd still listens" node_ssh node-3 true
[ "$(node_ssh node-3 'systemctl show -p MainPID --value containerd')" = "$cpid" ] ||
  fail "containerd should survive kill-sessions"
ok "containerd survived kill-sessions"

begin "pods through crictl, and KillMode"
# On the node: the mirror for docker.io and registry.k8s.io, config_path on, then a pod of the sleeper
# on the node's network, with the generation's default sandbox image; prints "<container id> <pid>".
# shellcheck disable=SC2089,SC2090 # a script for the node, expanded there
pod_script='set -eu
for r in docker.io registry.k8s.io; do
  mkdir -p "/etc/containerd/certs.d/$r"
  printf "[host.\"%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n" "$1" >"/etc/containerd/certs.d/$r/hosts.toml"
done
sed -i -e "s#config_path = \"\"#config_path = \"/etc/containerd/certs.d\"#" \
  -e "s#config_path = '"''"'#config_path = '"'/etc/containerd/certs.d'"'#" /etc/containerd/config.toml
systemctl restart containerd
echo "{\"metadata\": {\"name\": \"selftest\", \"namespace\": \"default\", \"uid\": \"selftest-$2\"},
  \"linux\": {\"security_context\": {\"namespace_options\": {\"network\": 2}}}}" >/tmp/pod.json
echo "{\"metadata\": {\"name\": \"sleeper\"}, \"image\": {\"image\": \"docker.io/library/sleeper:1.0\"}}" >/tmp/ctr.json
/run/fleet/crictl pull docker.io/library/sleeper:1.0 >/dev/null
p=$(/run/fleet/crictl runp /tmp/pod.json)
c=$(/run/fleet/crictl create "$p" /tmp/ctr.json /tmp/pod.json)
/run/fleet/crictl start "$c" >/dev/null
echo "$c $(/run/fleet/crictl inspect -o go-template --template "{{.info.pid}}" "$c")"'
container_state() { # node id: "<state> <pid>" as CRI reports it
  node_ssh "$1" "/run/fleet/crictl inspect -o go-template --template '{{.status.state}} {{.info.pid}}' '$2'" 2>/dev/null
}
for n in "${NODES[@]}"; do
  check "$n: crictl off PATH (/run/fleet/crictl), /etc/crictl.yaml" node_ssh "$n" '! command -v crictl && test -x /run/fleet/crictl && test -s /etc/crictl.yaml'
  node_ssh "$n" "sh -s -- 'http://$reg:5000' '$n'" <<<"$pod_script" >"$work/pod" 2>"$work/pod.err" ||
    { cat "$work/pod.err" >&2; fail "$n: a pod through crictl"; }
  read -r cid cpid <"$work/pod"
  [ "$(container_state "$n" "$cid")" = "CONTAINER_RUNNING $cpid" ] || fail "$n: the container does not run"
  ok "$n: a pod with its sleeper runs (pid $cpid), from the mirror's images"
  check "$n: crictl ps lists it" /bin/sh -c "'$fleet' exec '$n' -- /run/fleet/crictl ps -q | grep -qx '$cid'"
  [ "$(node_ssh "$n" 'systemctl show --property=KillMode containerd')" = KillMode=process ] || fail "$n: KillMode is not process"
  check "$n: restart with KillMode=process" node_ssh "$n" 'systemctl restart containerd'
  [ "$(container_state "$n" "$cid")" = "CONTAINER_RUNNING $cpid" ] || fail "$n: the container did not survive KillMode=process"
  ok "$n: KillMode=process: the container runs on with pid $cpid"
  check "fault killmode-control-group" "$fleet" fault "$n" killmode-control-group
  [ "$(node_ssh "$n" 'systemctl show --property=KillMode --value containerd')" = control-group ] || fail "$n: KillMode is not control-group"
  check "$n: restart with KillMode=control-group" node_ssh "$n" 'systemctl restart containerd'
  i=0
  while [ "$(container_state "$n" "$cid")" = "CONTAINER_RUNNING $cpid" ]; do
    [ "$i" -lt 50 ] || fail "$n: the container survived KillMode=control-group"
    sleep 0.2
    i=$((i + 1))
  done
  check_fails "$n: no shim or sleeper left" "$fleet" exec "$n" -- pgrep -x 'containerd-shim|sleeper'
done
check "fault killmode-mixed" "$fleet" fault node-1 killmode-mixed
check "KillMode=mixed" /bin/sh -c "[ \"\$('$fleet' exec node-1 -- systemctl show -p KillMode --value containerd)\" = mixed ]"
node_ssh node-1 'mkdir -p /etc/systemd/system/containerd.service.d &&
  printf "[Service]\nKillMode=process\n" >/etc/systemd/system/containerd.service.d/killmode.conf'
[ "$(node_ssh node-1 'systemctl show -p KillMode --value containerd')" = mixed ] || fail "a drop-in acted before daemon-reload"
node_ssh node-1 'systemctl daemon-reload'
[ "$(node_ssh node-1 'systemctl show -p KillMode --value containerd')" = process ] || fail "the drop-in did not act after daemon-reload"
ok "a drop-in with KillMode=process wins after daemon-reload"
# A running pod on node-2 for reset to end.
node_ssh node-2 "sh -s -- 'http://$reg:5000' node-2b" <<<"$pod_script" >/dev/null 2>&1 || fail "node-2: a second pod"

begin "reset"
n=node-1
init_conf=$init_conf_1
node_ssh "$n" "mkdir -p /etc/containerd/certs.d/docker.io &&
  printf '[host.\"http://$reg:5000\"]\n' >/etc/containerd/certs.d/docker.io/hosts.toml &&
  echo '# changed' >>/etc/containerd/config.toml && touch /etc/containerd/extra.toml && systemctl restart containerd"
"$fleet" fault "$n" containerd-fail-start
"$fleet" fault "$n" sshd-stop
check "reset $n" "$fleet" reset "$n"
[ "$(sha256sum <"${CONF[$n]}")" = "$init_conf" ] || fail "config.toml not restored"
if [ -e "${DIR[$n]}/etc-containerd/certs.d" ] || [ -e "${DIR[$n]}/etc-containerd/extra.toml" ]; then
  fail "files added under /etc/containerd survived"
fi
[ "$(lines "${RLOG[$n]}")" -eq 0 ] || fail "restart log not emptied"
check "ssh works after reset" node_ssh "$n" true
check "containerd healthy after reset" node_ssh "$n" 'systemctl is-active containerd && ctr plugins ls | grep -Eq "grpc.v1 +cri .* ok"'
check "fail-start fault cleared by reset" node_ssh "$n" 'systemctl restart containerd'
ok "config back, extra files gone, log empty, faults cleared"
check "reset --all" "$fleet" reset --all
for n in "${NODES[@]}"; do
  [ "$(lines "${RLOG[$n]}")" -eq 0 ] || fail "$n: restart log not emptied"
  check "$n: active after reset --all" node_ssh "$n" 'systemctl is-active containerd'
  check_fails "$n: no shim or sleeper after reset" "$fleet" exec "$n" -- pgrep -x 'containerd-shim|sleeper'
  check "$n: no pod cgroups after reset" /bin/sh -c "[ -z \"\$('$fleet' exec '$n' -- find /sys/fs/cgroup/pids -mindepth 1 -type d)\" ]"
  [ "$(node_ssh "$n" 'systemctl show -p KillMode --value containerd')" = process ] || fail "$n: KillMode not back to process"
done
check "reset removed the drop-in" node_ssh node-1 'test ! -e /etc/systemd/system/containerd.service.d'

begin "up twice, status"
pids_before=$(cat "$state"/nodes/*/init.pid)
check "up -n 3 again" /bin/sh -c "'$fleet' up -n 3 >'$work/up2.json'"
[ "$(cat "$state"/nodes/*/init.pid)" = "$pids_before" ] || fail "second up restarted nodes"
check "same nodes" cmp "$work/up.json" "$work/up2.json"
check "up -n 2 on a 3-node fleet prints the 3 nodes" /bin/sh -c \
  "'$fleet' up -n 2 | node -e 'process.exit(JSON.parse(require(\"fs\").readFileSync(0)).nodes.length === 3 ? 0 : 1)'"
check "status prints the same JSON" /bin/sh -c "'$fleet' status | cmp - '$work/up.json'"

begin "down"
# A pod left running on node-3: down ends it, and the node's cgroups (listed per node) go too.
node_ssh node-3 "sh -s -- 'http://$reg:5000' node-3b" <<<"$pod_script" >/dev/null 2>&1 || fail "node-3: a pod before down"
cat "$state"/nodes/*/fleet/cgroups >"$work/cgroups"
[ -s "$work/cgroups" ] || fail "no node cgroups recorded"
fleet_pids "$state" | sort -u >"$work/pids"
[ "$(wc -l <"$work/pids")" -gt 10 ] || fail "too few recorded processes: $(wc -l <"$work/pids")"
check "down" "$fleet" down
sleep 0.5
while read -r p; do
  ! alive "$p" || fail "pid $p ($(tr '\0' ' ' <"/proc/$p/cmdline")) still running"
done <"$work/pids"
ok "none of the $(wc -l <"$work/pids") fleet processes is running"
check "no namespaces of ours" /bin/sh -c "! ip netns list | grep -q '^$prefix-'"
while read -r cg; do [ ! -e "$cg" ] || fail "cgroup $cg left behind"; done <"$work/cgroups"
ok "none of the $(wc -l <"$work/cgroups") node cgroups is left"
check "no links of ours" /bin/sh -c "! ip -o link show | grep -Eq ': (${prefix}br0|${prefix}v[0-9]+)[@:]'"
check "state dir removed" test ! -e "$state"
check "down again is harmless" "$fleet" down
check_fails "status after down exits non-zero" "$fleet" status

begin "--generations and --initial-config debian|none"
check "up -n 2 --generations 2.1,1.6 --initial-config debian" \
  /bin/sh -c "'$fleet' up -n 2 --generations 2.1,1.6 --initial-config debian >'$work/deb.json'"
load_nodes "$work/deb.json"
if [ "${GEN[node-1]}" != 2.1 ] || [ "${GEN[node-2]}" != 1.6 ]; then fail "generations not in the order given"; fi
for n in node-1 node-2; do
  if ! grep -q '^version = 2$' "${CONF[$n]}" || ! grep -q 'bin_dir = "/usr/lib/cni"' "${CONF[$n]}"; then
    fail "$n: not Debian's config.toml"
  fi
  check "$n: containerd healthy on Debian's file" /bin/sh -c \
    "'$fleet' exec '$n' -- ctr -a /run/containerd/containerd.sock plugins ls | grep -Eq 'io.containerd.grpc.v1 +cri +.* ok'"
done
check "down" "$fleet" down
check "up -n 1 --initial-config none" /bin/sh -c "'$fleet' up -n 1 --initial-config none >'$work/none.json'"
load_nodes "$work/none.json"
check "no config.toml" test ! -e "${CONF[node-1]}"
check "containerd runs on built-in defaults" node_ssh node-1 'systemctl is-active containerd && ctr version'
node_ssh node-1 'echo "version = 2" >/etc/containerd/config.toml'
check "reset removes a config.toml that was not there" /bin/sh -c "'$fleet' reset node-1 && test ! -e '${CONF[node-1]}'"
check "down" "$fleet" down

if [ "$big" -gt 0 ]; then
  begin "up -n $big"
  t0=$(date +%s.%N)
  "$fleet" up -n "$big" >"$work/big.json" 2>"$work/big.err" || { cat "$work/big.err" >&2; fail "up -n $big"; }
  upbig=$(elapsed "$t0")
  ok "up -n $big took ${upbig} s"
  load_nodes "$work/big.json"
  [ ${#NODES[@]} -eq "$big" ] || fail "expected $big nodes"
  # Several concurrent sessions to every node at once.
  t0=$(date +%s.%N)
  spids=()
  for n in "${NODES[@]}"; do
    for s in 1 2 3; do
      node_ssh "$n" 'systemctl is-active containerd >/dev/null && hostname' >"$work/s.$n.$s" 2>&1 &
      spids+=("$!")
    done
  done
  bad=0
  for p in "${spids[@]}"; do wait "$p" || bad=$((bad + 1)); done
  [ "$bad" -eq 0 ] || fail "$bad of ${#spids[@]} concurrent sessions failed"
  ok "${#spids[@]} concurrent SSH sessions in $(elapsed "$t0") s"
  t0=$(date +%s.%N)
  check "down" "$fleet" down
  ok "down of $big nodes took $(elapsed "$t0") s"
fi

printf '\nselftest passed: up -n 3 in %s s%s\n' "$up3" "${upbig:+, up -n $big in $upbig s}" >&2
