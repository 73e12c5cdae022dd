# shellcheck shell=bash
# Sourced by fleet.sh and systemd-node.sh.

# Moves the calling process into a cgroup NAME made below the one it is in, in every hierarchy, and
# lists them in LIST (machine paths): what it starts from there (a node's init in a cgroup namespace
# of its own, systemd-nspawn) lands below it, where the caller's `down` removes the lot. Best
# effort: a hierarchy where that fails is left out.
join_own_cgroups() { # name list
  local name=$1 list=$2 m p own cg f
  : >"$list"
  own=$(cut -d: -f3- /proc/self/cgroup | sort -u)
  while read -r m; do
    # This process's cgroup there: the path of /proc/self/cgroup whose cgroup.procs lists it.
    cg=""
    while read -r p; do
      if grep -qx "$BASHPID" "$m${p%/}/cgroup.procs" 2>/dev/null; then cg=$m${p%/}/$name; break; fi
    done <<<"$own"
    [ -n "$cg" ] || continue
    mkdir -p "$cg" 2>/dev/null || continue
    # A new v1 cpuset cgroup has no CPUs or memory nodes: nothing could join it.
    for f in cpuset.cpus cpuset.mems; do
      [ ! -f "${cg%/*}/$f" ] || [ -n "$(cat "$cg/$f")" ] || cat "${cg%/*}/$f" >"$cg/$f"
    done
    if echo "$BASHPID" >"$cg/cgroup.procs"; then
      printf '%s\n' "$cg" >>"$list"
    else
      rmdir "$cg" 2>/dev/null || true
    fi
  done < <(awk '$5 ~ "^/sys/fs/cgroup(/|$)" && / - cgroup2? / { print $5 }' /proc/self/mountinfo | sort -u)
}
