#!/bin/bash
# Init (pid 1) of one fleet node. fleet.sh starts it, from the node's own cgroups, as
#   nsenter --net=/run/netns/<ns> unshare --cgroup --mount --uts --pid --fork --mount-proc \
#     --propagation private bash init.sh <node dir>
# so it already has the node's network, and a cgroup, mount, UTS and pid namespace of its own.
# It lays out the node's private file system, starts sshd and containerd, reports readiness in
# /run/fleet/ready, then stays alive as the node's init: it reaps orphans (containerd is re-parented
# to it) and, when it is killed from the machine, the kernel ends every process of the node.
set -eu

node_dir=$1
# shellcheck source=/dev/null
. "$node_dir/node.env" # NODE_NAME NODE_ADDR NODE_GEN NODE_BIN_DIR

log() { printf '%s init[%s]: %s\n' "$(date -u '+%H:%M:%S.%3N')" "$NODE_NAME" "$*" >&2; }

# Copies of the machine's /run/netns/* mounts came along into this mount namespace and would keep
# other nodes' network namespaces alive after they are deleted: drop them first.
drop_netns_mounts() {
  local m
  awk '$5 ~ "^/run/netns(/|$)" { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

# Writable private copies of /etc, /opt and /var/lib: whatever the code under test (or containerd
# itself: /etc/cni/net.d, /opt/containerd) creates there lands in the node directory, never on the
# machine. The machine's files stay readable underneath.
overlay() { # dir name
  mkdir -p "$node_dir/overlay/$2/upper" "$node_dir/overlay/$2/work"
  mount -t overlay "fleet-$2" \
    -o "lowerdir=$1,upperdir=$node_dir/overlay/$2/upper,workdir=$node_dir/overlay/$2/work" "$1"
}

bind() { # source target
  mkdir -p "$2"
  mount --bind "$1" "$2"
}

layout() {
  drop_netns_mounts
  # This node's containerd generation, over the machine's binaries, in this mount namespace only.
  # First of all: the binaries may live under /tmp or /run (a clone of the repository there), which
  # the private mounts below hide.
  if [ "$NODE_BIN_DIR" != /usr/bin ]; then
    local b
    for b in containerd ctr containerd-shim-runc-v2; do
      mount --bind "$NODE_BIN_DIR/$b" "/usr/bin/$b"
    done
  fi
  # A private /run like a VM's: sshd's privilege separation dir, containerd's NRI socket and
  # anything else under /run stay inside the node.
  mount -t tmpfs -o mode=0755,size=64m "fleet-run-$NODE_NAME" /run
  mkdir -p /run/sshd /run/lock
  chmod 0755 /run/sshd
  overlay /etc etc
  overlay /opt opt
  overlay /var/lib var-lib
  bind "$node_dir/fleet" /run/fleet
  bind "$node_dir/etc-containerd" /etc/containerd
  bind "$node_dir/run-containerd" /run/containerd
  bind "$node_dir/var-lib-containerd" /var/lib/containerd
  bind "$node_dir/root" /root
  bind "$node_dir/tmp" /tmp
  bind "$node_dir/sbin" /usr/local/sbin
  # Also put the stand-in where the real systemctl is, for callers whose PATH does not start with
  # /usr/local/sbin (inside this mount namespace only).
  [ ! -e /usr/bin/systemctl ] || mount --bind "$node_dir/sbin/systemctl" /usr/bin/systemctl
  [ ! -e /usr/bin/journalctl ] || mount --bind "$node_dir/sbin/journalctl" /usr/bin/journalctl
  hostname "$NODE_NAME"
  printf '%s\t%s\n' "$NODE_ADDR" "$NODE_NAME" >>/etc/hosts
}

# The node's cgroups. fleet.sh starts init in a cgroup of its own in every hierarchy (below the one it
# was started from; `fleet.sh down` removes it) and in a cgroup namespace rooted there, so the node
# sees that cgroup as its root, as a VM sees its own. The mounts it inherited from the machine still
# show the machine's tree (and a namespace entered with `ip netns exec`, which remounts /sys, has
# none: runc then fails with "no cgroup mount found in mountinfo"), so mount the hierarchies afresh:
# a tmpfs on /sys/fs/cgroup and one mount per hierarchy this process is in (/proc/self/cgroup), v1
# controllers, `name=systemd` and a v2 `unified` included; or the one v2 hierarchy. Every cgroup
# path containerd and runc use (`/k8s.io/<id>`, kubelet's `/kubepods/...`) then lands below the
# node's cgroup. A node started without a cgroup namespace keeps the machine's mounts, if it has any.
# /run/fleet/cgroupns says the node has its own (the systemctl stand-in moves containerd into the root
# of this view, the node's cgroup, whoever ran systemctl).
mount_cgroups() {
  local id ctrls dir c
  rm -f /run/fleet/cgroupns
  # fleet.sh lists the node's cgroups (machine paths) in /run/fleet/cgroups when it made them.
  if [ ! -s /run/fleet/cgroups ] && grep -Eq ' /sys/fs/cgroup(/[^ ]*)? .* - cgroup2? ' /proc/self/mountinfo; then
    return 0
  fi
  # The machine's mounts go first (in this mount namespace only): runc reads mountinfo, and a hidden
  # mount still listed there would be taken for the live one.
  if awk '$5 ~ "^/sys/fs/cgroup(/|$)" { found = 1 } END { exit !found }' /proc/self/mountinfo; then
    umount -R /sys/fs/cgroup
  fi
  if [ "$(cut -d: -f1 /proc/self/cgroup | sort -u)" = 0 ]; then
    mount -t cgroup2 cgroup2 /sys/fs/cgroup
  else
    mount -t tmpfs -o mode=0755 cgroup /sys/fs/cgroup
    while IFS=: read -r id ctrls _; do
      if [ "$id" = 0 ]; then
        mkdir -p /sys/fs/cgroup/unified
        mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified
        continue
      fi
      dir=${ctrls#name=}
      mkdir -p "/sys/fs/cgroup/$dir"
      case "$ctrls" in
        name=*) mount -t cgroup -o "none,$ctrls" cgroup "/sys/fs/cgroup/$dir" ;;
        *) mount -t cgroup -o "$ctrls" cgroup "/sys/fs/cgroup/$dir" ;;
      esac
      # Co-mounted controllers (cpu,cpuacct) are found by either name too, as on Debian.
      case "$ctrls" in
        *,*) for c in ${ctrls//,/ }; do [ -e "/sys/fs/cgroup/$c" ] || ln -s "$dir" "/sys/fs/cgroup/$c"; done ;;
      esac
    done </proc/self/cgroup
  fi
  [ ! -s /run/fleet/cgroups ] || : >/run/fleet/cgroupns
  log "mounted the cgroup hierarchies: $(cut -d: -f2 /proc/self/cgroup | tr '\n' ' ')"
}

# crictl (/run/fleet/crictl, off the node's PATH: fleet.sh says why) talks to containerd's socket without being told, as on a
# kubeadm node.
crictl_config() {
  printf '%s\n' "runtime-endpoint: unix:///run/containerd/containerd.sock" \
    "image-endpoint: unix:///run/containerd/containerd.sock" "timeout: 10" >/etc/crictl.yaml
}

start_sshd() {
  /usr/sbin/sshd -f /run/fleet/sshd_config -E /run/fleet/sshd.log
}

main() {
  cd /
  layout
  mount_cgroups
  crictl_config
  start_sshd
  if ! systemctl start containerd; then
    echo containerd-failed >/run/fleet/ready
  elif ! /run/fleet/cri-ok; then
    echo cri-failed >/run/fleet/ready
  else
    echo ok >/run/fleet/ready
  fi
  log "up: $(cat /run/fleet/ready)"
  # Stay alive as init and reap whatever gets re-parented here (bash reaps any child while it waits).
  while :; do
    sleep 3600 &
    wait "$!" || true
  done
}

main
