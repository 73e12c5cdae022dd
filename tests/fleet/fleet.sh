#!/bin/bash
# Local test fleet: "VMs" made of Linux namespaces, each running sshd and a real containerd, plus a
# plain-HTTP registry mirror. Run as root. See tests/fleet/README.md.
#
#   fleet.sh up [-n N] [--generations 1.6,1.7,2.1,2.2,2.3] [--initial-config default|debian|none]
#   fleet.sh status | down
#   fleet.sh exec NODE -- CMD [ARGS...]
#   fleet.sh reset NODE... | --all
#   fleet.sh fault NODE sshd-stop|sshd-start|containerd-fail-start|containerd-fix|cut|reconnect|kill-sessions
#                       |killmode-process|killmode-control-group|killmode-mixed
#                       |restart-kills-shims|restart-keeps-shims
#
# up and status print the fleet as JSON on stdout and nothing else; logs go to stderr.
# Everything started is recorded (pid and start time, namespace names) under the state dir, and
# down ends exactly that: never processes picked by name across the machine.
# Scripts run inside nodes are single-quoted on purpose: they expand there, not here.
# shellcheck disable=SC2016
set -eu
set -o pipefail
# A command that fails under set -e says which (also inside functions and the background jobs that
# bring nodes up), so a node that does not come up is never a silent "some nodes failed".
set -E
trap 'log "failed (exit $?) at line $LINENO: $BASH_COMMAND"' ERR

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/fleet/cgroups.sh
. "$here/cgroups.sh"
repo=$(cd "$here/../.." && pwd)
state=${FLEET_STATE_DIR:-/var/tmp/containerd-node-fleet}
state=${state%/}
case "$state" in /*) ;; *) state=$PWD/$state ;; esac
cache=${CONTAINERD_CACHE:-$repo/.cache/containerd}
# The sleeper, its OCI image and crictl (tests/fleet/build-pod-tools.sh).
pod_cache=${FLEET_CACHE:-$repo/.cache/fleet}

# One fleet per prefix and subnet. The defaults are what tests expect; another pair (e.g.
# FLEET_PREFIX=cdx FLEET_SUBNET=198.18.7 FLEET_STATE_DIR=/var/tmp/fleet-x) gives a second, separate
# fleet on the same machine.
prefix=${FLEET_PREFIX:-cdn}
subnet=${FLEET_SUBNET:-198.18.0}
bridge=${prefix}br0
host_addr=$subnet.1
registry_ports="5000 5001"
# A third instance over the same storage that wants credentials (htpasswd, Basic auth): the mirror
# for tests of registry auth. Its user and password are made once per fleet (registry/auth, 0600).
auth_port=5002
# What the registry serves. The tiny image: one file, nothing to run. The sleeper image (a static
# binary that waits for SIGTERM) under every pause name specs and containerd's defaults use (1.6:
# 3.6, 1.7: 3.8, 2.1: 3.10, 2.2: 3.10.1, 2.3: 3.10.2; the tests' 3.9), for docker.io and
# registry.k8s.io mirrors alike, and as a long-running container: pods run from it.
tiny_images="library/tiny:1.0"
sleeper_images="pause:3.9 google_containers/pause:3.9 pause:3.10 pause:3.10.1 pause:3.10.2 pause:3.8 pause:3.6 library/pause:3.10 library/sleeper:1.0"
images="$tiny_images $sleeper_images"
# The references a pod uses, for a node whose registry.k8s.io and docker.io hosts.toml name the mirror.
pod_sandbox_image=registry.k8s.io/pause:3.10
pod_container_image=docker.io/library/sleeper:1.0
node_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
max_nodes=200
# Nodes brought up at once: containerd's start is CPU-bound and the stand-in gives it ~10 s.
parallel=${FLEET_PARALLEL:-5}

log() { printf '%(%H:%M:%S)T fleet: %s\n' -1 "$*" >&2; }
die() { printf 'fleet: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# Recorded processes: "<pid> <start time>" files. The start time (field 22 of /proc/PID/stat)
# makes a recycled pid harmless: a record only matches the very process that was started.

# Sets proc_state and proc_start from /proc/PID/stat (pure bash: this runs in polling loops).
proc_info() { # pid
  local line f
  { read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
  # Fields after "pid (comm) ": state is the first, start time the 20th.
  read -r -a f <<<"${line##*) }"
  proc_state=${f[0]}
  proc_start=${f[19]}
}

record_pid() { # file pid
  proc_info "$2" || return 1
  printf '%s %s\n' "$2" "$proc_start" >"$1"
}

recorded_pid() { # file -> pid, if that process is still the one recorded and not a zombie
  local pid start
  [ -s "$1" ] || return 1
  read -r pid start <"$1" || return 1
  [ -n "$pid" ] && proc_info "$pid" || return 1
  [ "$proc_start" = "$start" ] && [ "$proc_state" != Z ] || return 1
  printf '%s\n' "$pid"
}

wait_gone() { # file seconds
  local i=0
  while recorded_pid "$1" >/dev/null && [ "$i" -lt $(($2 * 10)) ]; do
    sleep 0.1
    i=$((i + 1))
  done
  ! recorded_pid "$1" >/dev/null
}

stop_recorded() { # file: TERM, then KILL after 5 s
  local pid
  if pid=$(recorded_pid "$1"); then
    kill -TERM "$pid" 2>/dev/null || true
    wait_gone "$1" 5 || { kill -KILL "$pid" 2>/dev/null || true; wait_gone "$1" 5 || true; }
  fi
  rm -f "$1"
}

need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }

# Serialises up/down/reset/fault between concurrent callers, per fleet (prefix).
take_lock() {
  mkdir -p /run/lock
  exec 8>>"/run/lock/containerd-node-fleet-$prefix.lock"
  flock 8
}

# ---------------------------------------------------------------------------------------------
# JSON, built without subshells (status is called often, and a fork is not cheap here).

# Sets the variable named $1 to $2 as a JSON string literal.
jstr() {
  local s=$2
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  s=${s//$'\t'/\\t}
  printf -v "$1" '"%s"' "$s"
}

# Sets the variable named $1 to a JSON array of the remaining arguments (strings).
jarr() {
  local var=$1 out="" sep="" w j
  shift
  for w in "$@"; do jstr j "$w"; out+=$sep$j; sep=", "; done
  printf -v "$var" '[%s]' "$out"
}

# ---------------------------------------------------------------------------------------------
# Nodes: naming and lookup

node_dirs() { # existing node directories, in node order
  [ -d "$state/nodes" ] || return 0
  find "$state/nodes" -mindepth 1 -maxdepth 1 -type d -name 'node-*' | sort -V
}

node_dir_of() { # NAME -> dir; accepts "node-2" or "2"
  local name=$1
  case "$name" in [0-9]*) name=node-$name ;; esac
  [ -f "$state/nodes/$name/node.env" ] || die "no such node: $1 (is the fleet up?)"
  printf '%s\n' "$state/nodes/$name"
}

node_env() { # dir: load the node's recorded facts into NODE_* variables
  # shellcheck source=/dev/null
  . "$1/node.env"
}

node_init_pid() { recorded_pid "$1/init.pid"; }

node_alive() { # dir: init running and containerd/sshd setup reported done
  node_init_pid "$1" >/dev/null && [ -s "$1/fleet/ready" ]
}

# Runs a command inside a node: its network, mount, UTS and pid namespaces, a clean environment
# like an SSH session's (PATH starting with /usr/local/sbin, HOME=/root), in /root.
in_node() { # dir cmd...
  local dir=$1 pid
  shift
  pid=$(node_init_pid "$dir") || die "node $(basename "$dir") is not running"
  # 8>&-: what this starts in the node (sshd, containerd) must not hold the fleet lock.
  nsenter -t "$pid" -n -m -u -p -- \
    env -i -C /root PATH="$node_path" HOME=/root USER=root LOGNAME=root SHELL=/bin/bash \
    LANG=C.UTF-8 TERM="${TERM:-dumb}" "$@" 8>&-
}

# ---------------------------------------------------------------------------------------------
# containerd generations

bin_dir_of() { # generation -> directory with containerd, ctr, containerd-shim-runc-v2
  if [ "$1" = 1.6 ]; then echo /usr/bin; else echo "$cache/$1/usr/bin"; fi
}

version_of() { # containerd binary -> x.y.z
  "$1" --version | sed -n -e 's/^containerd [^ ]* v\{0,1\}\([0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*\).*/\1/p'
}

check_generation() { # generation -> prints version, or dies with how to get it
  local dir ver b
  dir=$(bin_dir_of "$1")
  for b in containerd ctr containerd-shim-runc-v2; do
    [ -x "$dir/$b" ] || die "containerd $1: $dir/$b is missing (apt-get install containerd; sh tests/support/fetch-containerd.sh)"
  done
  ver=$(version_of "$dir/containerd")
  case "$ver" in "$1".*) ;; *) die "containerd $1: $dir/containerd reports '$ver'" ;; esac
  printf '%s\n' "$ver"
}

# Debian's packaged /etc/containerd/config.toml. The machine's copy is used when dpkg says it is
# unmodified; otherwise the copy kept next to this script (the same bytes, bookworm 1.6.20).
debian_config() {
  local want have
  want=$(dpkg-query -W -f='${Conffiles}\n' containerd 2>/dev/null |
    awk '$1 == "/etc/containerd/config.toml" { print $2 }')
  if [ -n "$want" ] && [ -f /etc/containerd/config.toml ]; then
    have=$(md5sum </etc/containerd/config.toml | cut -d' ' -f1)
    if [ "$have" = "$want" ]; then cat /etc/containerd/config.toml; return; fi
  fi
  cat "$here/debian-config.toml"
}

# ---------------------------------------------------------------------------------------------
# Shared pieces: client key, bridge, registry mirror

ensure_client_key() {
  mkdir -p "$state/ssh"
  chmod 0700 "$state/ssh"
  [ -f "$state/ssh/id_ed25519" ] ||
    ssh-keygen -q -t ed25519 -N '' -C containerd-node-fleet -f "$state/ssh/id_ed25519" >&2
}

ensure_bridge() {
  if ! ip link show "$bridge" >/dev/null 2>&1; then
    ip link add "$bridge" type bridge
  fi
  ip -4 addr show dev "$bridge" | grep -q "inet $host_addr/24" ||
    ip addr add "$host_addr/24" dev "$bridge"
  # Nothing from the nodes is ever routed on, even on a machine with ip_forward=1 and even if
  # something in a node adds a default route: IPv4 forwarding off for packets arriving on the
  # bridge, and no IPv6 on it at all.
  echo 0 >"/proc/sys/net/ipv4/conf/$bridge/forwarding"
  echo 1 >"/proc/sys/net/ipv6/conf/$bridge/disable_ipv6"
  ip link set "$bridge" up
}

registry_config() { # port
  cat <<EOF
version: 0.1
log:
  level: info
  formatter: text
  fields:
    service: fleet-registry-$1
storage:
  filesystem:
    rootdirectory: $state/registry/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $host_addr:$1
  # Same secret for both instances: they share the storage.
  secret: containerd-node-fleet
  headers:
    X-Content-Type-Options: [nosniff]
EOF
  if [ "$1" = "$auth_port" ]; then
    cat <<EOF
auth:
  htpasswd:
    realm: containerd-node-fleet
    path: $state/registry/htpasswd
EOF
  fi
}

ensure_registry_auth() {
  local dir=$state/registry user pass
  if [ ! -s "$dir/auth" ]; then
    (umask 077 && printf 'robot %s\n' "$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')" >"$dir/auth")
  fi
  read -r user pass <"$dir/auth"
  (umask 077 && htpasswd -Bbn "$user" "$pass" >"$dir/htpasswd")
}

port_open() { # port
  (exec 3<>"/dev/tcp/$host_addr/$1") 2>/dev/null
}

start_registry() { # port
  local port=$1 dir=$state/registry pid i
  if recorded_pid "$dir/$port.pid" >/dev/null; then return 0; fi
  # A registry listening on all addresses (Debian's docker-registry service uses :5000) would
  # answer in place of ours.
  ! port_open "$port" ||
    die "something else listens on $host_addr:$port (the machine's docker-registry service? stop it)"
  registry_config "$port" >"$dir/config-$port.yml"
  # 8>&-: long-lived processes must not inherit (and so hold) the fleet lock.
  setsid docker-registry serve "$dir/config-$port.yml" </dev/null >>"$dir/$port.log" 2>&1 8>&- &
  pid=$!
  disown "$pid" # not one of the jobs `wait -n` waits for
  i=0
  while ! port_open "$port"; do
    [ -e "/proc/$pid" ] || die "registry on port $port exited; see $dir/$port.log"
    [ "$i" -lt 100 ] || die "registry on port $port does not listen; see $dir/$port.log"
    sleep 0.1
    i=$((i + 1))
  done
  [ -e "/proc/$pid" ] || die "registry on port $port exited; see $dir/$port.log"
  record_pid "$dir/$port.pid" "$pid"
  log "registry mirror on $host_addr:$port (pid $pid)"
}

# A tiny image made offline: one layer holding one file, config for this machine's platform
# (CRI pulls for the host platform), OCI layout built with umoci, pushed with skopeo.
build_image() {
  local dir=$state/image arch
  [ -f "$dir/done" ] && return 0
  rm -rf "$dir"
  mkdir -p "$dir/src"
  arch=$(dpkg --print-architecture)
  printf 'hello from the containerd node fleet\n' >"$dir/src/hello.txt"
  umoci init --layout "$dir/oci"
  umoci new --image "$dir/oci:tiny"
  umoci insert --image "$dir/oci:tiny" "$dir/src/hello.txt" /hello.txt >&2
  umoci config --image "$dir/oci:tiny" --os linux --architecture "$arch" \
    --config.cmd /hello.txt --author containerd-node-fleet >&2
  : >"$dir/done"
}

# The sleeper binary, its image and crictl, built once into the cache (.ci/install does it too), and
# the fleet's own copy of crictl, which every node links (one copy per fleet, not per node).
ensure_pod_tools() {
  if ! sh "$here/build-pod-tools.sh" --check >/dev/null 2>&1; then
    log "building the sleeper, its image and crictl (tests/fleet/build-pod-tools.sh)"
    sh "$here/build-pod-tools.sh" >/dev/null || die "tests/fleet/build-pod-tools.sh failed"
  fi
  if ! cmp -s "$pod_cache/bin/crictl" "$state/bin/crictl"; then
    mkdir -p "$state/bin"
    cp "$pod_cache/bin/crictl" "$state/bin/crictl.tmp"
    mv "$state/bin/crictl.tmp" "$state/bin/crictl"
  fi
  sandbox_tar
}

# The sleeper image as an OCI archive, for preload_pause (a fleet left up by an older fleet.sh gets
# it on its next reset). Written under a name of this process's own, so nodes reset at once do not race.
sandbox_tar() {
  if [ ! -s "$state/bin/sandbox.tar" ] || [ "$pod_cache/.image.stamp" -nt "$state/bin/sandbox.tar" ]; then
    mkdir -p "$state/bin"
    tar -C "$pod_cache/image" -cf "$state/bin/sandbox.tar.$BASHPID" .
    mv "$state/bin/sandbox.tar.$BASHPID" "$state/bin/sandbox.tar"
  fi
}

# A node that has run pods holds its sandbox image in CRI's k8s.io namespace (kubeadm's nodes pull
# it with `kubeadm config images pull`): each node gets the sleeper image under the pause names
# containerd's defaults and the tests' specs use. A config.toml change on a node without its
# sandbox image pulls it before the restart, and is refused when that fails (node-script.ts), so
# without these every spec would have to mirror the sandbox image's registry.
preloaded_pause="registry.k8s.io/pause:3.6 registry.k8s.io/pause:3.8 registry.k8s.io/pause:3.9 registry.k8s.io/pause:3.10 registry.k8s.io/pause:3.10.1 registry.k8s.io/pause:3.10.2 registry.aliyuncs.com/google_containers/pause:3.9"
preload_pause() { # dir
  local dir=$1
  sandbox_tar
  ln -f "$state/bin/sandbox.tar" "$dir/fleet/sandbox.tar" 2>/dev/null || cp "$state/bin/sandbox.tar" "$dir/fleet/sandbox.tar"
  # shellcheck disable=SC2086 # the names are words
  in_node "$dir" /bin/sh -c 'set -e
    ctr -n k8s.io images import --base-name registry.k8s.io/pause /run/fleet/sandbox.tar >/dev/null
    for n in "$@"; do ctr -n k8s.io images tag --force registry.k8s.io/pause:sleeper "$n" >/dev/null; done
    ctr -n k8s.io images rm registry.k8s.io/pause:sleeper >/dev/null' preload $preloaded_pause ||
    die "$NODE_NAME: could not preload the pause images"
}

push_images() {
  local img want
  # What was pushed, and from which sleeper image: a fleet left up by an older fleet.sh gets the rest.
  want="$images $(cat "$pod_cache/.image.stamp")"
  [ "$(cat "$state/registry/pushed" 2>/dev/null)" = "$want" ] && return 0
  build_image
  # Both instances share the storage: one push serves both mirrors.
  for img in $tiny_images; do
    skopeo --insecure-policy copy -q --dest-tls-verify=false \
      "oci:$state/image/oci:tiny" "docker://$host_addr:5000/$img" >&2
  done
  for img in $sleeper_images; do
    skopeo --insecure-policy copy -q --dest-tls-verify=false \
      "oci:$pod_cache/image:sleeper" "docker://$host_addr:5000/$img" >&2
  done
  skopeo --insecure-policy inspect --raw --tls-verify=false \
    "docker://$host_addr:5001/library/tiny:1.0" >/dev/null ||
    die "image pushed to :5000 is not served by :5001"
  printf '%s\n' "$want" >"$state/registry/pushed"
  log "pushed $images"
}

ensure_registry() {
  local port
  mkdir -p "$state/registry/data"
  ensure_registry_auth
  for port in $registry_ports $auth_port; do start_registry "$port"; done
  push_images
}

stop_registry() {
  local port
  for port in $registry_ports $auth_port; do stop_recorded "$state/registry/$port.pid"; done
}

# ---------------------------------------------------------------------------------------------
# One node

sshd_config() { # address
  cat <<EOF
# sshd of one fleet node: key-only root login, no PAM, its own host key and pid file.
ListenAddress $1:22
HostKey /run/fleet/ssh_host_ed25519_key
PidFile /run/fleet/sshd.pid
AuthorizedKeysFile .ssh/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
# Many concurrent sessions: a benchmark runs 20 nodes with several sessions each.
MaxStartups 200
MaxSessions 100
LoginGraceTime 60
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
}

write_node_env() { # dir name index gen initial
  local addr=$subnet.$((10 + $3)) bin
  bin=$(bin_dir_of "$4")
  cat >"$1/node.env" <<EOF
NODE_NAME='$2'
NODE_INDEX='$3'
NODE_ADDR='$addr'
NODE_NETNS='$prefix-$2'
NODE_VETH='${prefix}v$3'
NODE_GEN='$4'
NODE_VERSION='$(version_of "$bin/containerd")'
NODE_BIN_DIR='$bin'
NODE_INITIAL_CONFIG='$5'
EOF
}

# The node's starting config.toml carries CRI's restrict_oom_score_adj = true (1.x:
# plugins."io.containerd.grpc.v1.cri", 2.x: plugins."io.containerd.cri.v1.runtime"; a version 2
# file on 2.x is migrated there): this machine's kernel refuses the negative oom_score_adj that CRI
# gives every pod sandbox (runc: "can't get final child's PID from pipe"), and with it containerd
# caps that at its own. `default` changes its own line; `debian` has none and gets it added.
restrict_oom() { # stdin -> stdout
  local conf
  conf=$(cat)
  if [[ "$conf" == *"restrict_oom_score_adj = false"* ]]; then
    conf=${conf/restrict_oom_score_adj = false/restrict_oom_score_adj = true}
  else
    conf=${conf/$'\n'  \[plugins.\"io.containerd.grpc.v1.cri\"\]$'\n'/$'\n'  [plugins.\"io.containerd.grpc.v1.cri\"]$'\n'    restrict_oom_score_adj = true$'\n'}
  fi
  [[ "$conf" == *"restrict_oom_score_adj = true"* ]] || return 1
  printf '%s\n' "$conf"
}

# The node's files on the machine side; init.sh bind-mounts them over the real paths.
prepare_node_files() { # dir
  local dir=$1
  node_env "$dir"
  mkdir -p "$dir/fleet" "$dir/etc-containerd" "$dir/run-containerd" "$dir/var-lib-containerd" \
    "$dir/root/.ssh" "$dir/sbin" "$dir/tmp"
  chmod 1777 "$dir/tmp"
  chmod 0700 "$dir/root" "$dir/root/.ssh"
  # Empty shell start-up files: otherwise SSH sessions would run the machine's /root/.bashrc.
  : >"$dir/root/.bashrc"
  : >"$dir/root/.profile"
  cp "$state/ssh/id_ed25519.pub" "$dir/root/.ssh/authorized_keys"
  install -m 0755 "$here/node/systemctl" "$here/node/journalctl" "$dir/sbin/"
  cp "$here/node/init.sh" "$dir/init.sh"
  install -m 0755 "$here/node/cri-ok" "$here/node/kill-shims" "$dir/fleet/"
  # crictl (ensure_pod_tools made the fleet's copy) at /run/fleet/crictl, off the node's PATH: the
  # node script's pod-start check after a restart uses a crictl it finds, and most tests deploy
  # specs a node here cannot start pods with (systemdCgroup without systemd, no
  # restrict_oom_score_adj). Tests that run pods give crictlPath; the others are nodes without one.
  rm -f "$dir/sbin/crictl"
  ln -f "$state/bin/crictl" "$dir/fleet/crictl" 2>/dev/null || cp "$state/bin/crictl" "$dir/fleet/crictl"
  [ -f "$dir/fleet/ssh_host_ed25519_key" ] ||
    ssh-keygen -q -t ed25519 -N '' -C "root@$NODE_NAME" -f "$dir/fleet/ssh_host_ed25519_key" >&2
  sshd_config "$NODE_ADDR" >"$dir/fleet/sshd_config"
  : >>"$dir/fleet/restart.log"
  # The initial /etc/containerd, kept aside for reset.
  if [ ! -d "$dir/initial-etc" ]; then
    mkdir -p "$dir/initial-etc"
    case "$NODE_INITIAL_CONFIG" in
      default)
        "$NODE_BIN_DIR/containerd" config default 2>/dev/null | restrict_oom >"$dir/initial-etc/config.toml" ||
          die "$NODE_NAME: no restrict_oom_score_adj in containerd $NODE_VERSION's config default"
        ;;
      debian) debian_config | restrict_oom >"$dir/initial-etc/config.toml" || die "$NODE_NAME: no CRI table in Debian's config.toml" ;;
      none) ;;
    esac
  fi
  restore_etc "$dir"
}

restore_etc() { # dir: /etc/containerd exactly as at the start
  find "$1/etc-containerd" -mindepth 1 -delete
  cp -a "$1/initial-etc/." "$1/etc-containerd/"
}

setup_node_net() { # dir
  node_env "$1"
  ip netns del "$NODE_NETNS" 2>/dev/null || true
  ip link del "$NODE_VETH" 2>/dev/null || true
  ip netns add "$NODE_NETNS"
  ip link add "$NODE_VETH" type veth peer name eth0 netns "$NODE_NETNS"
  ip link set "$NODE_VETH" master "$bridge" up
  ip -n "$NODE_NETNS" link set lo up
  ip -n "$NODE_NETNS" addr add "$NODE_ADDR/24" dev eth0
  ip -n "$NODE_NETNS" link set eth0 up
  # No default route and no NAT: only $subnet.0/24 is reachable from the node.
}

# Moves the calling process into a cgroup of the node's own in every hierarchy, made below the one
# it is in (fleet-<namespace>), and lists them in fleet/cgroups: a node started from there, in a
# cgroup namespace of its own, sees that cgroup as its root, and its containers' cgroups land below
# it (init.sh), where `down` removes them. Best effort: a hierarchy where that fails is left out.
join_node_cgroups() { # dir
  join_own_cgroups "fleet-$NODE_NETNS" "$1/fleet/cgroups"
}

launch_node() { # dir
  local dir=$1 upid ipid i
  node_env "$dir"
  rm -f "$dir/fleet/ready" "$dir/init.pid" "$dir/unshare.pid"
  (
    join_node_cgroups "$dir" 2>>"$dir/init.log" || true
    exec setsid nsenter --net="/run/netns/$NODE_NETNS" \
      env -i PATH="$node_path" HOME=/root LANG=C.UTF-8 \
      unshare --cgroup --mount --uts --pid --fork --mount-proc --propagation private \
      /bin/bash "$dir/init.sh" "$dir"
  ) </dev/null >>"$dir/init.log" 2>&1 8>&- &
  upid=$!
  # The subshell, setsid, nsenter and env exec one another: $! ends up as unshare, whose child is the
  # node's init.
  i=0
  while :; do
    ipid=$(pgrep -P "$upid" 2>/dev/null | head -n 1 || true)
    if [ -n "$ipid" ] && [ "$(cat "/proc/$upid/comm" 2>/dev/null)" = unshare ]; then break; fi
    [ -e "/proc/$upid" ] || die "$NODE_NAME: failed to start; see $dir/init.log"
    [ "$i" -lt 100 ] || die "$NODE_NAME: init did not appear"
    sleep 0.05
    i=$((i + 1))
  done
  record_pid "$dir/unshare.pid" "$upid"
  record_pid "$dir/init.pid" "$ipid"
  i=0
  while [ ! -s "$dir/fleet/ready" ]; do
    node_init_pid "$dir" >/dev/null || die "$NODE_NAME: init exited; see $dir/init.log"
    [ "$i" -lt 600 ] || die "$NODE_NAME: not ready after 60 s; see $dir/init.log"
    sleep 0.1
    i=$((i + 1))
  done
  case "$(cat "$dir/fleet/ready")" in
    ok) ;;
    cri-failed) die "$NODE_NAME: containerd runs but its CRI plugins are not ok; see $dir/init.log" ;;
    *) die "$NODE_NAME: containerd did not start; see $dir/run-containerd/containerd.log" ;;
  esac
}

node_up() { # index generation initial-config
  local name=node-$1 dir
  dir=$state/nodes/$name
  if node_alive "$dir"; then return 0; fi
  if [ -f "$dir/node.env" ]; then
    # A node left over from an earlier run (e.g. the machine rebooted): rebuild it as it was.
    log "$name: restarting"
    node_down "$dir" keep
  else
    mkdir -p "$dir"
    write_node_env "$dir" "$name" "$1" "$2" "$3"
  fi
  node_env "$dir"
  prepare_node_files "$dir"
  setup_node_net "$dir"
  launch_node "$dir"
  preload_pause "$dir"
  log "$name: up at $NODE_ADDR, containerd $NODE_VERSION, initial config $NODE_INITIAL_CONFIG"
}

# Ends the node's processes: KILL to its init ends every process in its pid namespace, and with the
# last one its mount namespace (all the node's mounts) goes away.
node_kill() { # dir
  local pid
  if pid=$(recorded_pid "$1/init.pid"); then kill -KILL "$pid" 2>/dev/null || true; fi
  wait_gone "$1/init.pid" 5 || true
  stop_recorded "$1/unshare.pid"
  rm -f "$1/init.pid" "$1/fleet/ready"
}

# The node's cgroups (join_node_cgroups lists them in fleet/cgroups, machine paths), with
# whatever containers left below them, once every process of the node has ended.
remove_cgroups() { # dir
  local cg i
  [ -s "$1/fleet/cgroups" ] || return 0
  while IFS= read -r cg; do
    case "$cg" in /sys/fs/cgroup/*/fleet-"$prefix"-node-* | /sys/fs/cgroup/fleet-"$prefix"-node-*) ;; *) continue ;; esac
    i=0
    while [ -d "$cg" ]; do
      find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
      [ -d "$cg" ] || break
      [ "$i" -lt 50 ] || { log "could not remove cgroup $cg"; break; }
      sleep 0.1
      i=$((i + 1))
    done
  done <"$1/fleet/cgroups"
  rm -f "$1/fleet/cgroups"
}

node_down() { # dir [keep]
  local dir=$1
  node_kill "$dir"
  remove_cgroups "$dir"
  if [ -f "$dir/node.env" ]; then
    node_env "$dir"
    ip netns del "$NODE_NETNS" 2>/dev/null || true
    ip link del "$NODE_VETH" 2>/dev/null || true
  fi
  [ "${2:-}" = keep ] || rm -rf "$dir"
}

# ---------------------------------------------------------------------------------------------
# Output

node_json() { # dir private-key
  local dir=$1 j_name j_host j_key j_keypath j_hostkey j_gen j_ver j_init j_dir j_sock j_conf j_rlog kt kb
  node_env "$dir"
  read -r kt kb _ <"$dir/fleet/ssh_host_ed25519_key.pub"
  jstr j_name "$NODE_NAME"
  jstr j_host "$NODE_ADDR"
  jstr j_key "$2"
  jstr j_keypath "$state/ssh/id_ed25519"
  jstr j_hostkey "$kt $kb"
  jstr j_gen "$NODE_GEN"
  jstr j_ver "$NODE_VERSION"
  jstr j_init "$NODE_INITIAL_CONFIG"
  jstr j_dir "$dir"
  jstr j_sock "$dir/run-containerd/containerd.sock"
  jstr j_conf "$dir/etc-containerd/config.toml"
  jstr j_rlog "$dir/fleet/restart.log"
  printf '    { "name": %s, "host": %s, "port": 22, "user": "root",\n' "$j_name" "$j_host"
  printf '      "privateKey": %s,\n' "$j_key"
  printf '      "privateKeyPath": %s,\n' "$j_keypath"
  printf '      "hostKey": %s,\n' "$j_hostkey"
  printf '      "generation": %s, "containerdVersion": %s, "initialConfig": %s,\n' "$j_gen" "$j_ver" "$j_init"
  printf '      "dir": %s,\n' "$j_dir"
  printf '      "containerdSocket": %s,\n' "$j_sock"
  printf '      "configToml": %s,\n' "$j_conf"
  printf '      "restartLog": %s }' "$j_rlog"
}

fleet_json() {
  local sep="" dir key="" port mirrors=() j_state j_host j_url j_mirrors j_images j_logs j_kh j_cfg j_auth_url j_user j_pass user pass j_sandbox j_container
  for port in $registry_ports; do mirrors+=("http://$host_addr:$port"); done
  # The key file's exact bytes, final newline included.
  IFS= read -r -d '' key <"$state/ssh/id_ed25519" || true
  jstr j_state "$state"
  jstr j_host "$host_addr"
  jstr j_url "http://$host_addr:5000"
  jarr j_mirrors "${mirrors[@]}"
  # shellcheck disable=SC2086
  jarr j_images $images
  jstr j_sandbox "$pod_sandbox_image"
  jstr j_container "$pod_container_image"
  jarr j_logs "$state/registry/5000.log" "$state/registry/5001.log"
  read -r user pass <"$state/registry/auth"
  jstr j_auth_url "http://$host_addr:$auth_port"
  jstr j_user "$user"
  jstr j_pass "$pass"
  jstr j_kh "$state/ssh/known_hosts"
  jstr j_cfg "$state/ssh/config"
  {
    printf '{ "stateDir": %s,\n' "$j_state"
    printf '  "registry": { "host": %s, "port": 5000, "url": %s,\n' "$j_host" "$j_url"
    printf '                "mirrors": %s,\n' "$j_mirrors"
    printf '                "images": %s,\n' "$j_images"
    printf '                "podImages": { "sandbox": %s, "container": %s },\n' "$j_sandbox" "$j_container"
    printf '                "authMirror": { "url": %s, "username": %s, "password": %s },\n' "$j_auth_url" "$j_user" "$j_pass"
    printf '                "logs": %s },\n' "$j_logs"
    printf '  "knownHosts": %s,\n' "$j_kh"
    printf '  "sshConfig": %s,\n' "$j_cfg"
    printf '  "nodes": [\n'
    for dir in $(node_dirs); do
      printf '%s' "$sep"
      node_json "$dir" "$key"
      sep=$',\n'
    done
    printf '\n  ] }\n'
  }
}

# known_hosts and an ssh_config for people: `ssh -F <state>/ssh/config node-1`.
write_ssh_files() {
  local dir kt kb
  : >"$state/ssh/known_hosts.tmp"
  : >"$state/ssh/config.tmp"
  for dir in $(node_dirs); do
    node_env "$dir"
    read -r kt kb _ <"$dir/fleet/ssh_host_ed25519_key.pub"
    printf '%s %s %s\n' "$NODE_ADDR" "$kt" "$kb" >>"$state/ssh/known_hosts.tmp"
    cat >>"$state/ssh/config.tmp" <<EOF
Host $NODE_NAME
  HostName $NODE_ADDR
  User root
  IdentityFile $state/ssh/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $state/ssh/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes

EOF
  done
  mv "$state/ssh/known_hosts.tmp" "$state/ssh/known_hosts"
  mv "$state/ssh/config.tmp" "$state/ssh/config"
}

# What is wrong with the fleet, one line each; nothing when it is fully up.
fleet_problems() {
  local port dir
  [ -f "$state/fleet.env" ] || { echo "fleet is down (no $state/fleet.env)"; return; }
  ip link show "$bridge" >/dev/null 2>&1 || echo "bridge $bridge is missing"
  for port in $registry_ports $auth_port; do
    recorded_pid "$state/registry/$port.pid" >/dev/null || echo "registry :$port is not running"
  done
  [ -n "$(node_dirs)" ] || echo "no nodes"
  for dir in $(node_dirs); do
    node_alive "$dir" || echo "$(basename "$dir") is not running"
  done
}

# ---------------------------------------------------------------------------------------------
# Commands

cmd_up() {
  local n=5 gens=1.6,1.7,2.1,2.2,2.3 initial=default gen i active=0 failed=0 t0 problems
  while [ $# -gt 0 ]; do
    case "$1" in
      -n) n=${2:?-n needs a number}; shift ;;
      -n*) n=${1#-n} ;;
      --generations) gens=${2:?--generations needs a list}; shift ;;
      --generations=*) gens=${1#--generations=} ;;
      --initial-config) initial=${2:?--initial-config needs a value}; shift ;;
      --initial-config=*) initial=${1#--initial-config=} ;;
      *) die "up: unknown argument: $1" ;;
    esac
    shift
  done
  case "$n" in '' | *[!0-9]*) die "up: -n wants a number" ;; esac
  if [ "$n" -lt 1 ] || [ "$n" -gt "$max_nodes" ]; then die "up: -n must be 1..$max_nodes"; fi
  case "$initial" in default | debian | none) ;; *) die "up: --initial-config default|debian|none" ;; esac
  IFS=, read -r -a gen_list <<<"$gens"
  [ ${#gen_list[@]} -gt 0 ] || die "up: empty --generations"
  for gen in "${gen_list[@]}"; do check_generation "$gen" >/dev/null; done
  for tool in sshd ssh-keygen docker-registry skopeo umoci nsenter unshare ip flock htpasswd runc; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] ||
      die "$tool is missing (apt-get install -y containerd runc openssh-server openssh-client docker-registry skopeo umoci iproute2 apache2-utils)"
  done

  take_lock
  t0=$(date +%s.%N)
  mkdir -p "$state/nodes"
  [ -f "$state/fleet.env" ] || printf 'FLEET_CREATED=%s\n' "$(date -u +%FT%TZ)" >"$state/fleet.env"
  ensure_client_key
  ensure_pod_tools
  ensure_bridge
  ensure_registry

  # Missing nodes come up a few at a time, in the background; each logs to stderr.
  for ((i = 1; i <= n; i++)); do
    node_alive "$state/nodes/node-$i" && continue
    gen=${gen_list[$(((i - 1) % ${#gen_list[@]}))]}
    job_start node_up "$i" "$gen" "$initial"
  done
  jobs_wait
  [ "$failed" = 0 ] || die "up: some nodes failed; see the messages above"

  write_ssh_files
  problems=$(fleet_problems)
  [ -z "$problems" ] || die "up: $problems"
  log "fleet up: $(node_dirs | wc -l) nodes in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
  fleet_json
}

cmd_status() {
  local problems
  problems=$(fleet_problems)
  if [ -n "$problems" ]; then
    printf 'fleet: %s\n' "$problems" >&2
    exit 1
  fi
  fleet_json
}

cmd_down() {
  local dir ns pid
  need_root
  take_lock
  # Processes first, all nodes at once, so no node's namespaces outlive the others'.
  for dir in $(node_dirs); do
    if pid=$(recorded_pid "$dir/init.pid"); then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  for dir in $(node_dirs); do node_down "$dir"; done
  stop_registry
  # Namespaces of ours whose records are gone (state dir removed by hand): end what runs in them.
  for ns in $(ip netns list 2>/dev/null | awk -v p="^$prefix-node-[0-9]+\$" '$1 ~ p { print $1 }'); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  for dev in $(ip -o link show type veth 2>/dev/null | awk -F': ' '{ print $2 }' | sed -e 's/@.*//' |
    grep -E "^${prefix}v[0-9]+\$" || true); do
    ip link del "$dev" 2>/dev/null || true
  done
  ip link del "$bridge" 2>/dev/null || true
  rm -rf "$state"
  log "fleet down"
}

cmd_exec() {
  local dir
  [ $# -ge 1 ] || die "usage: fleet.sh exec NODE -- CMD [ARGS...]"
  dir=$(node_dir_of "$1")
  shift
  [ "${1:-}" = -- ] && shift
  [ $# -ge 1 ] || die "usage: fleet.sh exec NODE -- CMD [ARGS...]"
  in_node "$dir" "$@"
}

sshd_start_in() { # dir
  in_node "$1" /bin/sh -c '
    if [ -s /run/fleet/sshd.pid ] && kill -0 "$(cat /run/fleet/sshd.pid)" 2>/dev/null; then exit 0; fi
    /usr/sbin/sshd -f /run/fleet/sshd_config -E /run/fleet/sshd.log </dev/null >/dev/null 2>&1'
}

sshd_stop_in() { # dir
  in_node "$1" /bin/sh -c '
    [ -s /run/fleet/sshd.pid ] || exit 0
    pid=$(cat /run/fleet/sshd.pid)
    kill -TERM "$pid" 2>/dev/null || exit 0
    i=0
    while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f /run/fleet/sshd.pid'
}

# Kills every SSH session of the node, as if the network dropped: each per-connection sshd (any
# sshd but the listener) and everything below it. Processes that left the session (setsid and
# re-parented, like containerd) live on, as they would on a real machine.
cut_sessions_in() { # dir
  in_node "$1" /bin/bash -c '
    listener=$(cat /run/fleet/sshd.pid 2>/dev/null || echo none)
    tree() { local c; for c in $(pgrep -P "$1"); do echo "$c"; tree "$c"; done; }
    victims=()
    for p in $(pgrep -x sshd); do
      [ "$p" = "$listener" ] && continue
      victims+=("$p" $(tree "$p"))
    done
    [ ${#victims[@]} -eq 0 ] || kill -KILL "${victims[@]}" 2>/dev/null || true
    echo "${#victims[@]}"'
}

node_reset() { # dir
  local dir=$1
  node_env "$dir"
  node_init_pid "$dir" >/dev/null || die "$NODE_NAME is not running"
  rm -f "$dir/fleet/fault-containerd-fail-start" "$dir/fleet/fault-restart-kills-shims" \
    "$dir/fleet/killmode" "$dir/fleet/killmode-loaded"
  ip link set "$NODE_VETH" up 2>/dev/null || log "$NODE_NAME: could not bring $NODE_VETH up"
  in_node "$dir" systemctl stop containerd
  # Pods too: their shims and containers, their mounts, their cgroups; and any systemd unit file or
  # drop-in for containerd written into the node.
  in_node "$dir" /bin/sh -c '
    [ ! -x /run/fleet/kill-shims ] || /run/fleet/kill-shims KILL >/dev/null
    awk '"'"'$5 ~ "^/(run|var/lib)/containerd/." { print $5 }'"'"' /proc/self/mountinfo | sort -r |
      while read -r m; do umount -l "$m" 2>/dev/null || true; done
    if [ -e /run/fleet/cgroupns ]; then
      for cg in $(awk '"'"'$0 ~ / - cgroup2? / { print $5 }'"'"' /proc/self/mountinfo); do
        find "$cg" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null || true
      done
    fi
    rm -rf /etc/systemd/system/containerd.service /etc/systemd/system/containerd.service.d' ||
    log "$NODE_NAME: could not end every pod"
  restore_etc "$dir"
  # containerd's own state back to empty as well (pulled images, metadata, the log).
  find "$dir/var-lib-containerd" "$dir/run-containerd" -mindepth 1 -delete 2>/dev/null ||
    log "$NODE_NAME: could not empty all of /var/lib/containerd, /run/containerd"
  rm -f "$dir/fleet/containerd.failed"
  sshd_start_in "$dir"
  in_node "$dir" systemctl start containerd ||
    die "$NODE_NAME: containerd does not start after reset; its log ends: $(tail -n 5 "$dir/run-containerd/containerd.log" 2>/dev/null)"
  in_node "$dir" /run/fleet/cri-ok || die "$NODE_NAME: CRI plugins not ok after reset"
  preload_pause "$dir"
  : >"$dir/fleet/restart.log"
  log "$NODE_NAME: reset"
}

# Bounded background jobs, at most $parallel at once (process starts are what is slow here). The
# caller declares `active=0 failed=0`; bash's dynamic scope lets these two update them.
job_start() {
  if [ "$active" -ge "$parallel" ]; then
    wait -n || failed=1
    active=$((active - 1))
  fi
  "$@" &
  active=$((active + 1))
}

jobs_wait() {
  while [ "$active" -gt 0 ]; do
    wait -n || failed=1
    active=$((active - 1))
  done
}

cmd_reset() {
  local dirs=() d active=0 failed=0
  [ $# -ge 1 ] || die "usage: fleet.sh reset NODE...|--all"
  if [ "$1" = --all ]; then
    mapfile -t dirs < <(node_dirs)
  else
    for d in "$@"; do dirs+=("$(node_dir_of "$d")"); done
  fi
  take_lock
  for d in "${dirs[@]}"; do
    job_start node_reset "$d"
  done
  jobs_wait
  [ "$failed" = 0 ] || die "reset failed"
}

cmd_fault() {
  local dir n
  [ $# -eq 2 ] || die "usage: fleet.sh fault NODE sshd-stop|sshd-start|containerd-fail-start|containerd-fix|cut|reconnect|kill-sessions|killmode-process|killmode-control-group|killmode-mixed|restart-kills-shims|restart-keeps-shims"
  dir=$(node_dir_of "$1")
  take_lock
  case "$2" in
    sshd-stop) sshd_stop_in "$dir" ;;
    sshd-start) sshd_start_in "$dir" ;;
    containerd-fail-start) : >"$dir/fleet/fault-containerd-fail-start" ;;
    containerd-fix) rm -f "$dir/fleet/fault-containerd-fail-start" ;;
    # The KillMode of the node's containerd unit, as if its unit file said so (and was loaded).
    killmode-process | killmode-control-group | killmode-mixed)
      printf '%s\n' "${2#killmode-}" >"$dir/fleet/killmode"
      log "$(basename "$dir"): containerd's KillMode is ${2#killmode-}"
      ;;
    restart-kills-shims) : >"$dir/fleet/fault-restart-kills-shims" ;;
    restart-keeps-shims) rm -f "$dir/fleet/fault-restart-kills-shims" ;;
    cut)
      # The network drops: the node's link goes down, nothing on the node is touched.
      node_env "$dir"
      ip link set "$NODE_VETH" down
      log "$NODE_NAME: link $NODE_VETH down"
      ;;
    reconnect)
      node_env "$dir"
      ip link set "$NODE_VETH" up
      log "$NODE_NAME: link $NODE_VETH up"
      ;;
    kill-sessions)
      n=$(cut_sessions_in "$dir")
      log "$(basename "$dir"): killed $n session processes"
      ;;
    *) die "unknown fault: $2" ;;
  esac
}

check_names() {
  case "$prefix" in [a-z] | [a-z][a-z] | [a-z][a-z][a-z] | [a-z][a-z][a-z][a-z] | [a-z][a-z][a-z][a-z][a-z]) ;;
    *) die "FLEET_PREFIX must be 1-5 lower-case letters (interface names are limited to 15 bytes)" ;;
  esac
  [[ "$subnet" =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || die "FLEET_SUBNET must look like 198.18.0"
}

main() {
  local cmd=${1:-}
  check_names
  [ $# -gt 0 ] && shift
  case "$cmd" in
    up) need_root; cmd_up "$@" ;;
    status) cmd_status ;;
    down) cmd_down ;;
    exec) need_root; cmd_exec "$@" ;;
    reset) need_root; cmd_reset "$@" ;;
    fault) need_root; cmd_fault "$@" ;;
    *)
      # The usage is the header comment down to the list of commands.
      sed -n -e '2,/^# up and status/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
      exit 2
      ;;
  esac
}

main "$@"
