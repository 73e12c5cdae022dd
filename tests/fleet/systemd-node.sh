#!/bin/bash
# One test node with real systemd: Debian bookworm (minbase, with systemd, dbus, containerd,
# openssh-server, iproute2) booted with systemd-nspawn in a network namespace of its own, where
# containerd and sshd run as Debian's own systemd units. For what the netns fleet (fleet.sh) cannot
# show: how real systemd answers (KillMode, systemctl restart). Run as root. See tests/fleet/README.md.
#
#   systemd-node.sh build                 the root file system only (debootstrap, cached)
#   systemd-node.sh up                    build if needed, boot the node; prints its JSON
#   systemd-node.sh status                the same JSON if the node is up, else exit 1 saying why
#   systemd-node.sh exec -- CMD [ARGS...] runs CMD inside the node (as its SSH sessions would)
#   systemd-node.sh down                  powers it off, removes its namespace, cgroups and state
#
# up and status print only the JSON on stdout; logs go to stderr. Processes are ended by their
# recorded pid and start time, never picked by name.
set -eu
set -o pipefail
set -E
trap 'log "failed (exit $?) at line $LINENO: $BASH_COMMAND"' ERR

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/fleet/cgroups.sh
. "$here/cgroups.sh"
repo=$(cd "$here/../.." && pwd)
state=${SYSTEMD_NODE_STATE_DIR:-/var/tmp/containerd-node-systemd}
state=${state%/}
case "$state" in /*) ;; *) state=$PWD/$state ;; esac
# The pristine root file system, built once and shared by every boot (each boot writes to an
# overlay of its own under the state dir).
cache=${SYSTEMD_NODE_CACHE:-$repo/.cache/systemd-node}
subnet=${SYSTEMD_NODE_SUBNET:-198.18.60}
host_addr=$subnet.1
node_addr=$subnet.2
name=systemd-node
netns=cdsd-node
veth=cdsd0
suite=bookworm
include=systemd,systemd-sysv,dbus,containerd,openssh-server,iproute2
# What the rootfs stamp records: a change to either rebuilds it.
rootfs_id="$suite $include finish-1"
node_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
boot_timeout=${SYSTEMD_NODE_BOOT_TIMEOUT:-120}

log() { printf '%(%H:%M:%S)T systemd-node: %s\n' -1 "$*" >&2; }
die() { printf 'systemd-node: %s\n' "$*" >&2; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }

need_tools() {
  local t missing=()
  for t in "$@"; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
  [ "${#missing[@]}" -eq 0 ] ||
    die "missing: ${missing[*]} (apt-get install systemd-container debootstrap iproute2 util-linux openssh-client)"
}

# Serialises build/up/down between concurrent callers.
take_lock() {
  mkdir -p /run/lock
  exec 8>>/run/lock/containerd-node-systemd.lock
  flock 8
}

# ---------------------------------------------------------------------------------------------
# Recorded processes: "<pid> <start time>" (field 22 of /proc/PID/stat), so a recycled pid is never
# taken for ours.

proc_start() { # pid -> start time
  local line f
  { read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
  read -r -a f <<<"${line##*) }"
  [ "${f[0]}" != Z ] || return 1
  printf '%s\n' "${f[19]}"
}

record_pid() { # file pid
  local s
  s=$(proc_start "$2") || return 1
  printf '%s %s\n' "$2" "$s" >"$1"
}

recorded_pid() { # file -> pid, while that very process runs
  local pid start s
  [ -s "$1" ] || return 1
  read -r pid start <"$1" || return 1
  s=$(proc_start "$pid") || return 1
  [ "$s" = "$start" ] || return 1
  printf '%s\n' "$pid"
}

wait_gone() { # file seconds
  local i=0
  while recorded_pid "$1" >/dev/null; do
    [ "$i" -lt $(($2 * 10)) ] || return 1
    sleep 0.1
    i=$((i + 1))
  done
}

# ---------------------------------------------------------------------------------------------
# The root file system

# The Debian archive this machine's apt uses for $suite, from its own sources (deb822 files in
# /etc/apt/sources.list.d, then one-line lists). SYSTEMD_NODE_ARCHIVE overrides it.
archive_uri() {
  local uri=${SYSTEMD_NODE_ARCHIVE:-} f
  if [ -z "$uri" ]; then
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] || continue
      uri=$(awk -v suite="$suite" 'BEGIN { RS = "" }
        {
          types = ""; uris = ""; suites = ""
          n = split($0, lines, "\n")
          for (i = 1; i <= n; i++) {
            if (lines[i] ~ /^Types:/) types = " " substr(lines[i], 7) " "
            else if (lines[i] ~ /^URIs:/) uris = substr(lines[i], 6)
            else if (lines[i] ~ /^Suites:/) suites = " " substr(lines[i], 8) " "
          }
          gsub(/[ \t]+/, " ", types); gsub(/[ \t]+/, " ", suites)
          if (types ~ / deb / && suites ~ (" " suite " ")) { split(uris, u, " "); if (u[1] != "") { print u[1]; exit } }
        }' "$f")
      [ -z "$uri" ] || break
    done
  fi
  if [ -z "$uri" ]; then
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list; do
      [ -f "$f" ] || continue
      uri=$(awk -v suite="$suite" '$1 == "deb" {
          i = 2; if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
          if ($(i + 1) == suite) { print $i; exit } }' "$f")
      [ -z "$uri" ] || break
    done
  fi
  [ -n "$uri" ] || die "no Debian archive for $suite in this machine's apt sources (/etc/apt/sources.list.d); set SYSTEMD_NODE_ARCHIVE"
  printf '%s\n' "$uri"
}

rootfs_ok() {
  [ -f "$cache/rootfs.stamp" ] && [ "$(cat "$cache/rootfs.stamp")" = "$rootfs_id" ] &&
    [ -x "$cache/rootfs/usr/bin/containerd" ] && [ -x "$cache/rootfs/lib/systemd/systemd" ]
}

build_rootfs() {
  local uri tmp=$cache/rootfs.tmp started
  rootfs_ok && return 0
  need_tools debootstrap
  # The rootfs is the lower layer of a running node's overlay: never replace it under one.
  [ ! -s "$state/nspawn.pid" ] || ! recorded_pid "$state/nspawn.pid" >/dev/null ||
    die "the node is up on an outdated root file system: run '$0 down' first"
  uri=$(archive_uri)
  started=$SECONDS
  log "building the root file system: debootstrap --variant=minbase $suite from $uri (about a minute)"
  mkdir -p "$cache"
  rm -rf "$tmp" "$cache/rootfs" "$cache/rootfs.stamp"
  if ! debootstrap --variant=minbase --include="$include" \
    --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
    "$suite" "$tmp" "$uri" >"$cache/debootstrap.log" 2>&1; then
    tail -n 20 "$cache/debootstrap.log" >&2 || true
    die "debootstrap failed (full log: $cache/debootstrap.log)"
  fi
  # Per-node things come from up: no host keys (each boot makes its own), no machine id (systemd
  # makes one at boot). Downloaded packages and lists are not needed to boot.
  rm -f "$tmp"/etc/ssh/ssh_host_*
  : >"$tmp/etc/machine-id"
  rm -f "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/cache/apt/*.bin
  rm -rf "$tmp"/var/lib/apt/lists/*
  mv "$tmp" "$cache/rootfs"
  printf '%s\n' "$rootfs_id" >"$cache/rootfs.stamp"
  log "root file system ready in $((SECONDS - started)) s ($(du -sh "$cache/rootfs" | cut -f1)), in $cache/rootfs"
}

# ---------------------------------------------------------------------------------------------
# The node

node_pid() { recorded_pid "$state/init.pid"; }

# Runs a command inside the node: all its namespaces, its root, a clean environment like an SSH
# session's.
in_node() {
  local pid
  pid=$(node_pid) || die "the node is not running (is it up? $0 status)"
  nsenter -t "$pid" -a -r -w -- \
    env -i -C /root PATH="$node_path" HOME=/root USER=root LOGNAME=root SHELL=/bin/bash LANG=C.UTF-8 "$@" 8>&-
}

# Moves the calling process into a cgroup of the node's own below its own one in every hierarchy
# (cdsd-node), and lists them: systemd-nspawn makes its payload and supervisor cgroups below the one
# it starts in, and the node's systemd its units' below that; down removes the lot.
join_cgroups() {
  join_own_cgroups "$netns" "$state/cgroups"
}

remove_cgroups() {
  local cg i
  [ -s "$state/cgroups" ] || return 0
  while IFS= read -r cg; do
    case "$cg" in /sys/fs/cgroup/*/"$netns" | /sys/fs/cgroup/"$netns") ;; *) continue ;; esac
    i=0
    while [ -d "$cg" ]; do
      find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
      [ -d "$cg" ] || break
      [ "$i" -lt 50 ] || { log "could not remove cgroup $cg (something still runs in it?)"; break; }
      sleep 0.1
      i=$((i + 1))
    done
  done <"$state/cgroups"
  rm -f "$state/cgroups"
}

setup_net() {
  ip netns del "$netns" 2>/dev/null || true
  ip link del "$veth" 2>/dev/null || true
  ip netns add "$netns"
  ip link add "$veth" type veth peer name eth0 netns "$netns"
  ip addr add "$host_addr/24" dev "$veth"
  echo 0 >"/proc/sys/net/ipv4/conf/$veth/forwarding"
  echo 1 >"/proc/sys/net/ipv6/conf/$veth/disable_ipv6"
  ip link set "$veth" up
  ip -n "$netns" link set lo up
  ip -n "$netns" addr add "$node_addr/24" dev eth0
  ip -n "$netns" link set eth0 up
  # No default route, no NAT: the node reaches $subnet.0/24 only.
}

# What this boot adds to the shared rootfs, written into the overlay's upper dir before it is
# mounted: a hostname, an ed25519 host key, the client key authorised for root, key-only SSH.
prepare_files() {
  local up=$state/upper
  mkdir -p "$state/ssh" "$up/etc/ssh/sshd_config.d" "$up/root/.ssh" "$state/work" "$state/root" \
    "$state/var-lib-containerd" "$state/run-containerd"
  chmod 0700 "$state/ssh" "$up/root" "$up/root/.ssh"
  ssh-keygen -q -t ed25519 -N '' -C "containerd-node-$name-client" -f "$state/ssh/id_ed25519" >&2
  ssh-keygen -q -t ed25519 -N '' -C "root@$name" -f "$up/etc/ssh/ssh_host_ed25519_key" >&2
  cp "$up/etc/ssh/ssh_host_ed25519_key.pub" "$state/ssh/host_ed25519_key.pub"
  install -m 0600 "$state/ssh/id_ed25519.pub" "$up/root/.ssh/authorized_keys"
  printf '%s\n' "$name" >"$up/etc/hostname"
  cat >"$up/etc/ssh/sshd_config.d/systemd-node.conf" <<'EOF'
# The test node: root by key only.
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
EOF
  read -r kt kb _ <"$state/ssh/host_ed25519_key.pub"
  printf '%s %s %s\n' "$node_addr" "$kt" "$kb" >"$state/ssh/known_hosts"
  cat >"$state/ssh/config" <<EOF
Host $name
  HostName $node_addr
  User root
  IdentityFile $state/ssh/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $state/ssh/known_hosts
  StrictHostKeyChecking yes
EOF
}

# systemd-nspawn boots the node in a mount namespace of its own (so the overlay and the tmpfs
# nspawn needs go away with it), in a cgroup of the node's own. On these machines pid 1 is not
# systemd: no bus to register the machine with or to get a scope from (--register=no
# --keep-unit), and /run/systemd/nspawn is on disk, where nspawn refuses to clean up: a tmpfs there.
# /var/lib/containerd is a directory of the state dir (containerd's overlayfs snapshotter cannot
# work on an overlay), and so is /run/containerd: its socket is reachable from the machine.
launch() {
  local pid ipid i
  (
    join_cgroups 2>>"$state/nspawn.log" || true
    # shellcheck disable=SC2016 # expanded by that bash, from its arguments
    exec setsid unshare --mount --propagation private -- /bin/bash -c '
      set -e
      mkdir -p /run/systemd/nspawn
      mount -t tmpfs -o mode=0755 tmpfs /run/systemd/nspawn
      mount -t overlay overlay -o "lowerdir=$1/rootfs,upperdir=$2/upper,workdir=$2/work" "$2/root"
      exec systemd-nspawn -D "$2/root" -b -M "$3" --register=no --keep-unit --console=passive \
        --network-namespace-path="/run/netns/$4" --bind="$2/var-lib-containerd:/var/lib/containerd" --bind="$2/run-containerd:/run/containerd"
    ' systemd-node "$cache" "$state" "$name" "$netns"
  ) </dev/null >>"$state/nspawn.log" 2>&1 8>&- &
  pid=$!
  # The subshell, setsid, unshare and bash exec one another: $! ends up as systemd-nspawn, whose
  # child is the node's init (systemd).
  i=0
  while :; do
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = systemd-nspawn ]; then
      ipid=$(pgrep -P "$pid" 2>/dev/null | head -n 1 || true)
      if [ -n "$ipid" ] && [ "$(cat "/proc/$ipid/comm" 2>/dev/null)" = systemd ]; then break; fi
    fi
    [ -e "/proc/$pid" ] || { tail -n 20 "$state/nspawn.log" >&2; die "systemd-nspawn exited before the node booted (log: $state/nspawn.log)"; }
    [ "$i" -lt 300 ] || { tail -n 20 "$state/nspawn.log" >&2; die "the node's systemd did not start within 30 s (log: $state/nspawn.log)"; }
    sleep 0.1
    i=$((i + 1))
  done
  record_pid "$state/nspawn.pid" "$pid"
  record_pid "$state/init.pid" "$ipid"
}

ssh_node() { # command...
  ssh -T -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$state/ssh/known_hosts" \
    -o IdentitiesOnly=yes -o IdentityAgent=none -o ConnectTimeout=5 -i "$state/ssh/id_ed25519" \
    -l root "$node_addr" -- "$@"
}

# Booted: systemd done starting (running, or degraded with what failed named), containerd and ssh
# active as its units, and an SSH session with the pinned host key that sees them so.
wait_booted() {
  local i=0 sys out
  while :; do
    node_pid >/dev/null || { tail -n 30 "$state/nspawn.log" >&2; die "the node's systemd exited while booting (log: $state/nspawn.log)"; }
    sys=$(in_node systemctl is-system-running 2>/dev/null || true)
    case "$sys" in running | degraded) break ;; esac
    [ "$i" -lt $((boot_timeout * 5)) ] || die "the node's systemd is '$sys' after ${boot_timeout} s (log: $state/nspawn.log; $0 exec -- systemctl list-jobs)"
    sleep 0.2
    i=$((i + 1))
  done
  if [ "$sys" = degraded ]; then
    log "systemd is degraded; failed units: $(in_node systemctl --failed --plain --no-legend --no-pager | awk '{ printf "%s ", $1 }')"
  fi
  in_node systemctl is-active --quiet containerd.service ||
    die "containerd.service is not active in the node: $(in_node systemctl status --no-pager containerd.service 2>&1 | tail -n 15)"
  in_node systemctl is-active --quiet ssh.service ||
    die "ssh.service is not active in the node: $(in_node systemctl status --no-pager ssh.service 2>&1 | tail -n 15)"
  out=$(ssh_node systemctl is-active containerd ssh 2>&1) ||
    die "ssh root@$node_addr with the node's key failed: $out"
  [ "$out" = $'active\nactive' ] || die "over SSH, systemctl is-active containerd ssh said: $out"
}

# ---------------------------------------------------------------------------------------------
# Output

jstr() { # var value
  local s=$2
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\t'/\\t}
  printf -v "$1" '"%s"' "$s"
}

node_json() {
  local key="" kt kb j_name j_host j_key j_keypath j_hostkey j_ver j_sock j_state j_kh j_cfg
  IFS= read -r -d '' key <"$state/ssh/id_ed25519" || true
  read -r kt kb _ <"$state/ssh/host_ed25519_key.pub"
  jstr j_name "$name"
  jstr j_host "$node_addr"
  jstr j_key "$key"
  jstr j_keypath "$state/ssh/id_ed25519"
  jstr j_hostkey "$kt $kb"
  jstr j_ver "$(cat "$state/containerd-version")"
  jstr j_sock "$state/run-containerd/containerd.sock"
  jstr j_state "$state"
  jstr j_kh "$state/ssh/known_hosts"
  jstr j_cfg "$state/ssh/config"
  printf '{ "name": %s, "host": %s, "port": 22, "user": "root",\n' "$j_name" "$j_host"
  printf '  "privateKey": %s,\n' "$j_key"
  printf '  "privateKeyPath": %s,\n' "$j_keypath"
  printf '  "hostKey": %s,\n' "$j_hostkey"
  printf '  "containerdVersion": %s, "containerdSocket": %s,\n' "$j_ver" "$j_sock"
  printf '  "stateDir": %s, "knownHosts": %s, "sshConfig": %s }\n' "$j_state" "$j_kh" "$j_cfg"
}

# ---------------------------------------------------------------------------------------------
# Commands

node_up_ok() {
  node_pid >/dev/null && [ -s "$state/ready" ] && ip netns list | grep -qx "$netns\( .*\)\{0,1\}"
}

cmd_status() {
  [ -s "$state/ready" ] || { log "down (no $state/ready)"; exit 1; }
  node_pid >/dev/null || { log "not running: its systemd (pid recorded in $state/init.pid) is gone"; exit 1; }
  ip netns list | grep -q "^$netns\b" || { log "its network namespace $netns is gone"; exit 1; }
  node_json
}

cmd_up() {
  local started=$SECONDS ver
  need_tools systemd-nspawn unshare nsenter ip ssh ssh-keygen pgrep
  take_lock
  build_rootfs
  if node_up_ok; then
    node_json
    return 0
  fi
  if [ -e "$state" ]; then
    log "removing what an earlier boot left"
    node_down
  fi
  mkdir -p "$state"
  chmod 0700 "$state"
  prepare_files
  setup_net
  launch
  wait_booted
  ver=$(in_node containerd --version | sed -n 's/^containerd [^ ]* v\{0,1\}\([0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*\).*/\1/p')
  [ -n "$ver" ] || die "containerd --version in the node printed no version"
  printf '%s\n' "$ver" >"$state/containerd-version"
  echo ok >"$state/ready"
  log "up in $((SECONDS - started)) s: $name at $node_addr (systemd $(in_node systemctl --version | awk 'NR == 1 { print $2 }'), containerd $ver); ssh -F $state/ssh/config $name"
  node_json
}

# Powers the node off (systemd-nspawn turns TERM into the container's poweroff), KILL after 30 s;
# then its cgroups, its network namespace and the state dir. The mounts were in the boot's own mount
# namespace and went with its last process.
node_down() {
  local pid
  if pid=$(recorded_pid "$state/nspawn.pid"); then
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$state/nspawn.pid" 30; then
      log "not powered off after 30 s: killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  if pid=$(recorded_pid "$state/init.pid"); then kill -KILL "$pid" 2>/dev/null || true; fi
  wait_gone "$state/init.pid" 10 || die "the node's systemd (pid $(cat "$state/init.pid")) does not end"
  wait_gone "$state/nspawn.pid" 10 || die "systemd-nspawn (pid $(cat "$state/nspawn.pid")) does not end"
  remove_cgroups
  ip netns del "$netns" 2>/dev/null || true
  ip link del "$veth" 2>/dev/null || true
  if grep -qF " $state/" /proc/self/mountinfo; then die "mounts under $state are still there: $(grep -F " $state/" /proc/self/mountinfo | awk '{ print $5 }')"; fi
  rm -rf "$state"
}

cmd_down() {
  take_lock
  if [ ! -e "$state" ] && ! ip netns list | grep -q "^$netns\b"; then
    log "already down"
    return 0
  fi
  node_down
  log "down"
}

cmd_exec() {
  [ "${1:-}" = -- ] && shift
  [ $# -gt 0 ] || die "usage: $0 exec -- CMD [ARGS...]"
  in_node "$@"
}

main() {
  local cmd=${1:-}
  [[ "$subnet" =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || die "SYSTEMD_NODE_SUBNET must look like 198.18.60"
  [ $# -gt 0 ] && shift
  case "$cmd" in
    build) need_root; take_lock; build_rootfs ;;
    up) need_root; cmd_up ;;
    status) cmd_status ;;
    exec) need_root; cmd_exec "$@" ;;
    down) need_root; cmd_down ;;
    *)
      sed -n -e '2,/^# up and status/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
      exit 2
      ;;
  esac
}

main "$@"
