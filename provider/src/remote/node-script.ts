/**
 * The POSIX sh program that runs on a node for every managed file. It is constant text: everything
 * it needs arrives as positional arguments (single-quoted by `commands.ts`) and the file content
 * arrives on stdin, so no user string is ever part of the code. It never writes secrets anywhere but
 * the target file: content is not echoed, and messages name paths only.
 *
 * It is installed on the node by the node's host resource (`<node>:host`) at
 * `<config dir>/.containerd-node/containerd-node.sh` and each file's command calls it there, so a
 * change of this text costs one session per node, not one per file. Its arguments only ever grow:
 * a newer script must accept what an older file command sends (see SCRIPT_REVISION).
 *
 * Arguments, in order:
 *   1 action      apply | restore | release
 *   2 kind        config | file
 *   3 path        the managed file
 *   4 mode        octal, e.g. 0644
 *   5 lock        lock file serialising every apply on the node
 *   6 label       the node's name, for messages
 *   7 containerd  containerd binary: validation and the version guard
 *   8 ctr         ctr binary: health, and the running daemon's version for the guard
 *   9 socket      containerd's gRPC socket as the spec sets it
 *  10 restart     restart command, run by sh  (config only)
 *  11 timeout     health timeout in seconds    (config; files with probes)
 *  12 cfgver      config.toml version, 2 | 3 | 4: which containerd major the files are for
 *  13 minver      lowest containerd version the spec allows, e.g. 1.7.0
 *  14 owner       who manages the file (the ContainerdNode's URN): a restore by anyone else is a no-op
 *  15.. checks    extra health checks, each run by sh; all must exit 0 (config.toml: after the
 *                 restart; a hosts.toml: its registry's probe pulls, after the write, and a failure
 *                 puts the previous file back)
 *
 * release (the host resource's delete: the node moved to another machine, or is gone from the
 * program) takes kind 'all', path '-' and mode '0', and instead of checks the node's files as
 * pairs "kind path", in restore order: each one this owner still holds is restored as its
 * own delete would; then the owner's claim on the script goes, and the script with the last claim.
 *
 * Files it keeps beside a managed file F in directory D (D/.containerd-node/):
 *   F.original  the file as it was before it was first managed (restored on delete)
 *   F.absent    marker: there was no such file before
 *   F.applied   config.toml only: the content containerd last ran healthy with
 *   F.previous  during an apply: what to roll back to (config.toml; a hosts.toml with probes)
 *   F.pending   a hosts.toml with probes: installed and not yet probed (an interrupted apply's
 *               retry runs the probes before it records the file; F.previous, or none when there
 *               was no file, is then still what a failed probe puts back)
 *   F.owner     the owner argument of the last successful apply
 *   F.sum       "sha256 mode" of the file as the last successful apply left it: what the program's
 *               read compares the node's file with (drift)
 *   F.repair    the drift token of the last repair (env CONTAINERD_NODE_REPAIR of that apply): the
 *               read gives it back, so the repaired file's command stays unchanged afterwards;
 *               an apply without a token removes it
 *
 * set-aside / put-back (unmanagedRegistries "remove"): kind 'dirs', path the registry config
 * directory, mode '0', and instead of checks the names of the registry directories (NAME or
 * NAME@N). set-aside moves each one that exists and holds no managed file to
 * <path>/.containerd-node/set-aside/<name> (owner recorded), or, when a copy is held there already,
 * to set-aside/.later/<name>.<k>; put-back moves back the ones this owner set aside (all of them
 * without names), where nothing took their place.
 *
 * Environment (set by the command line's constant prefix, commands.ts; never code):
 *   CONTAINERD_NODE_REPAIR                the drift token this apply repairs (F.repair)
 *   CONTAINERD_NODE_ALLOW_CONTAINER_LOSS  1: restart even where that ends the node's containers
 *   CONTAINERD_NODE_CRICTL                the CRI client for the pod-start check (default: crictl)
 *
 * stdout: one JSON line {"path":..,"written":..,"restarted":..,"deprecations":[..]} for the component's
 * outputs; deprecations is containerd's own list (`ctr deprecations list`) after a config.toml apply.
 */
/** The managed files' last line (spec/managed-file.ts), which the script checks content for. */
import { END_MARKER } from "../spec/managed-file";

export const END_MARKER_LINE = END_MARKER;

/**
 * Goes up by one with every change of NODE_SCRIPT (a unit test holds the text's hash to it). An
 * install never replaces a script of a higher revision: two programs, or an older library, may
 * manage the same node, and the newer script still takes the older arguments.
 */
export const SCRIPT_REVISION = 8;

// A plain template: `\${` below is shell expansion, `${...}` without the backslash is TypeScript's.
// The script itself has no backslashes, so it reads the same in any POSIX login shell's quoting.
export const NODE_SCRIPT = `set -eu
# Finish the transaction even if the SSH connection drops: a half-done apply is what we must avoid.
trap '' HUP PIPE
umask 077
PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
export PATH

action=$1 kind=$2 path=$3 mode=$4 lock=$5 label=$6 containerd=$7 ctr=$8 socket=$9
shift 9
restart=$1 timeout=$2 cfgver=$3 minver=$4 owner=$5
shift 5

end_marker='${END_MARKER_LINE}'

# The owner recorded beside a managed file (through a symlink, beside its target), or nothing.
owner_of() { # path
  _p=$1
  if [ -L "$_p" ]; then _p=$(readlink -f "$_p" 2>/dev/null) || return 0; fi
  _f="\${_p%/*}/.containerd-node/\${_p##*/}.owner"
  if [ -f "$_f" ]; then cat "$_f"; fi
  return 0
}

# --- release (the host resource's delete) --------------------------------------------------------
if [ "$action" = release ]; then
  self=$0
  rc=0
  while [ "$#" -ge 2 ]; do
    _k=$1 _p=$2
    shift 2
    # Files another owner took over, or that were restored already, are not ours to touch.
    [ "$(owner_of "$_p")" = "$owner" ] || continue
    /bin/sh "$self" restore "$_k" "$_p" 0 "$lock" "$label" "$containerd" "$ctr" "$socket" "$restart" "$timeout" "$cfgver" "$minver" "$owner" || rc=1
  done
  if [ "$rc" -ne 0 ]; then
    printf 'containerd-node: %s: not every managed file could be restored (above); the node script stays for the next try\n' "$label" >&2
    exit 1
  fi
  claims="\${self%/*}/claims"
  rm -f "$claims/$(printf '%s' "$owner" | sha256sum | cut -c 1-16)"
  # The last claim gone, the script goes too (a running sh keeps its open copy).
  if rmdir "$claims" 2>/dev/null; then rm -f "$self"; fi
  printf 'containerd-node: %s: released its managed files and its claim on %s\n' "$label" "$self"
  exit 0
fi
# A managed path that is a symlink stays one: write through to its target (and keep the records
# beside the target), so a restore gives back exactly what was there.
if [ -L "$path" ]; then
  _real=$(readlink -f "$path" 2>/dev/null) || _real=''
  if [ -z "$_real" ]; then
    printf 'containerd-node: %s: cannot resolve the symlink %s; nothing changed' "$label" "$path" >&2
    echo >&2
    exit 1
  fi
  path=$_real
fi
dir=\${path%/*}
base=\${path##*/}
state="$dir/.containerd-node"
orig="$state/$base.original"
absent="$state/$base.absent"
applied="$state/$base.applied"
prev="$state/$base.previous"
pending="$state/$base.pending"
ownerf="$state/$base.owner"
before="$state/$base.before"
tasks="$state/$base.tasks"
tmp=''
scratch=''
written=false
restarted=false
audited=false
# What "healthy" means for the config being activated, and where to ask: cri (the CRI plugins ok),
# daemon (containerd answers), none (it was not running before we managed the node).
hmode=cri
hsock=$socket
vsock=$socket

say() { printf '%s\n' "$*" 2>/dev/null || :; }
fail() {
  printf 'containerd-node: %s: %s\n' "$label" "$*" >&2 2>/dev/null || :
  [ "$audited" = true ] || audit "$action" failed
  exit 1
}
cleanup() {
  if [ -n "$tmp" ]; then rm -f "$tmp" "$tmp.err"; fi
  if [ -n "$scratch" ]; then rm -rf "$scratch"; fi
  rm -f "$state/$base.out" "$tasks.before" "$tasks.after" "$tasks.ns" "$tasks.t" "$state/$base.pod.json"
}
trap cleanup EXIT
deprecations='[]'
old_sum=''
# --- audit trail: one line per apply, rollback and restore, in the node's system log ------------
# (logger -t containerd-node, where a syslog socket exists; journalctl -t containerd-node reads it),
# else in a root-only file beside the lock. Paths, sha256 sums, outcome and owner: nothing secret.
auditf="\${lock%/*}/.containerd-node/audit.log"
sum_of() {
  if [ -f "$1" ]; then sha256sum "$1" 2>/dev/null | cut -d ' ' -f 1 || echo unknown; else echo none; fi
}
# The audit names a file's sum only when its content is readable beyond its owner anyway: the sum
# of a file that holds a credential (0600: a hosts.toml with auth, a client key) would let anyone
# who reads the log test guesses of the credential offline. Such a file is "secret".
audit_sum() {
  if [ ! -f "$1" ]; then echo none; return 0; fi
  case "$(stat -L -c %a "$1" 2>/dev/null)" in
    *[4567]? | *[4567]) sum_of "$1" ;;
    *) echo secret ;;
  esac
}
audit() { # event result
  audited=true
  _line="$1 path=$path old=\${old_sum:-none} new=$(audit_sum "$path") restarted=$restarted result=$2 owner=$owner node=$label"
  if command -v logger >/dev/null 2>&1 && [ -S /dev/log ] && logger -t containerd-node -- "$_line" 2>/dev/null; then return 0; fi
  { (umask 022 && mkdir -p "\${auditf%/*}") && { printf '%s %s' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$_line"; echo; } >>"$auditf"; } 2>/dev/null || :
  return 0
}
# What the restart guards found (config.toml, when it restarted): a JSON fragment, or nothing.
guards=''
report() { printf '{"path":"%s","written":%s,"restarted":%s,"deprecations":%s%s}' "$path" "$written" "$restarted" "$deprecations" "$guards" 2>/dev/null || :; echo 2>/dev/null || :; }

# --- one apply at a time per node --------------------------------------------------------------
# flock -n (take it or fail at once) is the one form util-linux and busybox's applet both have, so
# the wait is ours: poll every 0.2 s (1 s where sleep takes whole seconds only), long enough for
# another apply's restart, health wait and rollback at the largest timeout.
command -v flock >/dev/null 2>&1 || fail "flock is required on the node (util-linux's, or busybox's flock applet); nothing changed"
(umask 022 && mkdir -p "\${lock%/*}")
exec 9>>"$lock"
_t0=$(date +%s)
until flock -n 9; do
  [ $(( $(date +%s) - _t0 )) -ge 7500 ] && fail "another apply held $lock for over two hours; giving up"
  sleep 0.2 2>/dev/null || sleep 1
done
old_sum=$(audit_sum "$path")
# A scratch copy of a hosts.toml that an older node script left behind (up to revision 6 it kept
# the one of a registry named without a dot or port, credentials and all): it goes.
if [ "$action" = apply ] || [ "$action" = restore ]; then rm -rf "$state"/.validate.*; fi

# --- helpers -----------------------------------------------------------------------------------
sync_path() { sync "$1" 2>/dev/null || sync; }

# Atomic replace: copy to a temp file in the same directory, fsync, rename over the target.
install_copy() { # src dst
  _t=$(mktemp "\${2%/*}/.\${2##*/}.XXXXXX")
  if ! cp -p "$1" "$_t"; then rm -f "$_t"; return 1; fi
  sync_path "$_t"
  if ! mv -f "$_t" "$2"; then rm -f "$_t"; return 1; fi
  sync_path "\${2%/*}"
}

keep_original() {
  (umask 022 && mkdir -p "$state")
  if [ ! -e "$orig" ] && [ ! -e "$absent" ]; then
    # Without this record a delete could not put the node back: fail before anything changes.
    [ "$kind" = config ] && record_before
    if [ -e "$path" ]; then
      { cp -p "$path" "$orig.tmp" && mv -f "$orig.tmp" "$orig"; } 2>/dev/null ||
        { rm -f "$orig.tmp"; fail "cannot keep the original $path in $state (disk full?); nothing changed"; }
    else
      : 2>/dev/null >"$absent" || fail "cannot record in $state that $path did not exist (disk full?); nothing changed"
    fi
    sync_path "$state"
  fi
}

# The restart command and health checks are the user's own shell commands: run them with sh, with
# the lock's descriptor closed (a daemon started by them must not inherit and hold the lock).
run_restart() { bounded sh -c "$restart" 9>&- </dev/null; }
# Nothing that can hang may hold the node's lock forever: the restart command, checks, ctr calls,
# config dump and --version are bounded by the timeout (60 s for files, which have none), with
# timeout(1) where the node has it.
bounded() { bounded_for "\${timeout:-60}" "$@"; }
bounded_for() { # seconds command...
  _secs=$1
  shift
  if command -v timeout >/dev/null 2>&1; then timeout "$_secs" "$@"; else "$@"; fi
}

version_of() { # "containerd github.com/containerd/containerd 1.7.24~ds1 ..." -> 1.7.24
  printf '%s\n' "$1" | awk '{print $3}' | sed -e 's/^v//' -e 's/[^0-9.].*$//'
}
ver_part() { # version index(1..3)
  printf '%s\n' "$1" | awk -F. -v i="$2" '{ v = $i; if (v == "") v = 0; print v + 0 }'
}
ver_ge() { # a b : a >= b
  for _i in 1 2 3; do
    _a=$(ver_part "$1" "$_i")
    _b=$(ver_part "$2" "$_i")
    [ "$_a" -gt "$_b" ] && return 0
    [ "$_a" -lt "$_b" ] && return 1
  done
  return 0
}

reason=''
cri_ok() { # seconds
  if ! _out=$(bounded_for "$1" "$ctr" --address "$hsock" plugins ls 2>&1); then
    reason="containerd does not answer on $hsock: $(printf '%s' "$_out" | tail -n 3)"
    return 1
  fi
  if [ "$cfgver" -ge 3 ]; then _want='io.containerd.grpc.v1:cri io.containerd.cri.v1:images io.containerd.cri.v1:runtime'; else _want='io.containerd.grpc.v1:cri'; fi
  for _p in $_want; do
    _status=$(printf '%s\n' "$_out" | awk -v t="\${_p%%:*}" -v i="\${_p#*:}" '$1 == t && $2 == i { print $NF }')
    if [ "$_status" != ok ]; then
      reason="CRI plugin \${_p%%:*} \${_p#*:} is \${_status:-missing} (see containerd's log)"
      return 1
    fi
  done
  return 0
}

# Output goes to a file, not through $(...): a command substitution would wait for any process the
# command left running with its output open (a daemon started in the background), possibly forever.
out="$state/$base.out"
checks_ok() { # seconds checks...
  _secs=$1
  shift
  for _c in "$@"; do
    if ! bounded_for "$_secs" sh -c "$_c" 9>&- </dev/null >"$out" 2>&1; then
      reason="health check failed: $_c: $(tail -n 5 "$out")"
      return 1
    fi
  done
  return 0
}

# Healthy = containerd answers, its CRI plugins are ok, and every extra check passes, within timeout.
healthy_now() { # seconds
  case "$hmode" in
    none) return 0 ;;
    daemon)
      if bounded_for "$1" "$ctr" --address "$hsock" version >/dev/null 2>&1; then return 0; fi
      reason="containerd does not answer on $hsock"
      return 1
      ;;
    *) cri_ok "$1" ;;
  esac
}

# The gRPC address a config file makes containerd listen on, from its own config dump: the file
# being activated decides where the health check dials, not the spec. Version 4 keeps it in the
# io.containerd.server.v1.grpc plugin, earlier versions in [grpc]; containerd's default otherwise.
address_in_dump() {
  awk 'BEGIN { q1 = sprintf("%c", 39); q2 = sprintf("%c", 34) }
    { l = $0; gsub(/^[ ]+|[ ]+$/, "", l) }
    substr(l, 1, 1) == "[" { sec = l; next }
    index(l, "address") == 1 && (sec == "[grpc]" || (index(sec, "io.containerd.server.v1.grpc") > 0 && index(sec, "grpc-tcp") == 0)) {
      v = l; sub(/^address[ ]*=[ ]*/, "", v); gsub(q1, "", v); gsub(q2, "", v)
      if (sec == "[grpc]") g = v; else p = v
    }
    END { if (p != "") print p; else print g }'
}
socket_of() { # file
  _a=''
  if [ -f "$1" ]; then _a=$(bounded "$containerd" --config "$1" config dump 2>/dev/null | address_in_dump) || _a=''; fi
  printf '%s' "\${_a:-/run/containerd/containerd.sock}"
}

# What was true before we first managed config.toml, so a restore (and a rollback to that file)
# checks for what the node had, not for what today's spec wants: Docker's containerd.io package,
# for one, ships disabled_plugins = ["cri"].
# (vsock: the socket of the file on disk, read once for the version guard just before.)
record_before() {
  hsock=$vsock
  if cri_ok 10 >/dev/null 2>&1; then _m=cri
  elif bounded_for 10 "$ctr" --address "$hsock" version >/dev/null 2>&1; then _m=daemon
  else _m=none; fi
  if ! { printf '%s\n' "$_m" >"$before.tmp" && mv -f "$before.tmp" "$before"; } 2>/dev/null; then
    fail "cannot record the state of containerd before $path was managed, in $state (disk full?); nothing changed"
  fi
}
mode_before() { if [ -f "$before" ]; then cat "$before"; else echo cri; fi; }

# Each probe gets only what is left of the deadline, so the wait ends at most one probe after it.
wait_healthy() {
  _deadline=$(( $(date +%s) + timeout ))
  while :; do
    _left=$(( _deadline - $(date +%s) ))
    [ "$_left" -ge 1 ] || _left=1
    if healthy_now "$_left" && checks_ok "$_left" "$@" && pod_ok "$_left"; then return 0; fi
    [ "$(date +%s)" -ge "$_deadline" ] && return 1
    # As soon as containerd may be up again, not a second later: a probe costs one ctr call.
    sleep 0.2 2>/dev/null || sleep 1
  done
}

restart_healthy() {
  restarted=true
  (umask 022 && mkdir -p "$state")
  if ! run_restart >"$out" 2>&1; then
    reason="restart command failed: $(tail -n 5 "$out")"
    return 1
  fi
  wait_healthy "$@"
}

# containerd's own report of what this node still uses that a later release removes (ctr 1.7+:
# "deprecations list"; 1.6 has none). It is JSON already; control characters are only its layout.
read_deprecations() {
  if _d=$(bounded "$ctr" --address "$hsock" deprecations list --format json 2>/dev/null); then
    _d=$(printf '%s' "$_d" | tr -d '[:cntrl:]')
    case "$_d" in '['*']') deprecations=$_d ;; esac
  fi
  return 0
}

# --- what a restart does to the containers running on the node ------------------------------------
# Each container runs under its own shim, which outlives the daemon only when systemd stops the daemon
# alone: KillMode=process, as containerd's own unit file says. systemd's default, control-group, and
# mixed end every shim and so every container with it. allowContainerLoss (the environment below,
# set by the command line) accepts that knowingly.
allow_loss=false
[ "\${CONTAINERD_NODE_ALLOW_CONTAINER_LOSS:-}" = 1 ] && allow_loss=true
unit='' killmode=unchecked running=0 lost=0 checked=false
# What a refusal keeps, and where the node is after containers were lost: an apply's words; a
# restore sets its own.
kept="nothing restarted and the old config.toml stays"
now_on="the node is on the new config.toml and containerd is healthy"
# The unit of a restart command "systemctl restart UNIT ..." (or a path to systemctl), asked through
# that same systemctl; another restart command leaves the KillMode unchecked.
killmode_guard() {
  _w=$(printf '%s\n' "$restart" | awk 'NR == 1 && $1 ~ /(^|[/])systemctl$/ && $2 == "restart" {
    for (i = 3; i <= NF; i++) if (substr($i, 1, 1) != "-") { u = $i; sub(/[;&|)]+$/, "", u); print $1, u; exit } }')
  _sc=\${_w%% *}
  _u=\${_w#* }
  case "$_w" in *' '*) ;; *) return 0 ;; esac
  case "$_u" in '' | *[!A-Za-z0-9:_.@-]*) return 0 ;; esac
  unit=$_u
  _k=$(bounded_for 10 "$_sc" show --property=KillMode --value "$unit" 9>&- </dev/null 2>/dev/null) || _k=''
  _k=$(printf '%s' "$_k" | tr -d '[:space:]')
  _k=\${_k#KillMode=}
  # A KillMode that cannot be read is not taken for process: the check fails closed.
  case "$_k" in '' | *[!a-z-]*) killmode=unknown ;; *) killmode=$_k ;; esac
  [ "$killmode" = process ] && return 0
  # systemd shows its default, control-group, for a unit it does not have (or a masked one), and no
  # drop-in changes that: its LoadState says so, and such a restart cannot work, allowed loss or not.
  if [ "$killmode" != unknown ]; then
    _l=$(bounded_for 10 "$_sc" show --property=LoadState --value "$unit" 9>&- </dev/null 2>/dev/null) || _l=''
    _l=$(printf '%s' "$_l" | tr -d '[:space:]')
    case "\${_l#LoadState=}" in not-found | masked | bad-setting | error) fail "refusing to restart containerd: systemd has no usable unit $unit (LoadState=\${_l#LoadState=}), so the KillMode it shows ($killmode) is only its default and the restart command cannot restart containerd; $kept. Fix: name containerd's unit in restartCommand (systemctl list-units 'containerd*' lists it)" ;; esac
  fi
  [ "$allow_loss" = true ] && return 0
  [ "$killmode" = unknown ] && fail "refusing to restart containerd: the KillMode of its systemd unit $unit cannot be read ($_sc show --property=KillMode --value $unit gave no answer), and only KillMode=process leaves the containers running; $kept. Check the unit, or set allowContainerLoss to restart anyway"
  fail "refusing to restart containerd: its systemd unit $unit has KillMode=$killmode, which ends every container on the node with the daemon (only KillMode=process leaves them running); $kept. Fix: a drop-in /etc/systemd/system/\${unit%.service}.service.d/killmode.conf with [Service] and KillMode=process, then systemctl daemon-reload; or set allowContainerLoss to restart anyway and lose them"
}

# The running tasks, one "namespace id pid" line each, of the namespaces listed in $tasks.ns.
running_tasks() { # socket file
  : >"$2"
  while IFS= read -r _ns; do
    [ -n "$_ns" ] || continue
    bounded_for 10 "$ctr" --address "$1" -n "$_ns" tasks ls 9>&- </dev/null >"$tasks.t" 2>/dev/null || return 1
    awk -v ns="$_ns" 'NR > 1 && $3 == "RUNNING" { print ns, $1, $2 }' "$tasks.t" >>"$2"
  done <"$tasks.ns"
  return 0
}
# A lost container's name: pod and container from the CRI labels where it has them (a pod's sandbox
# has no container name), else its id.
name_of() { # namespace id
  _i=$(bounded_for 10 "$ctr" --address "$hsock" -n "$1" containers info "$2" 9>&- </dev/null 2>/dev/null) || _i=''
  printf '%s\n' "$_i" | awk -v id="$2" -v ns="$1" 'BEGIN { q = sprintf("%c", 34) }
    function val(l) { sub(/^[^:]*:[ ]*/, "", l); gsub(q, "", l); sub(/,[ ]*$/, "", l); return l }
    index($0, q "io.kubernetes.pod.name" q) > 0 && p == "" { p = val($0) }
    index($0, q "io.kubernetes.container.name" q) > 0 && c == "" { c = val($0) }
    END {
      if (p != "") n = "pod " p " " (c != "" ? "container " c : "sandbox") " (" substr(id, 1, 12) ")"; else n = id
      if (ns != "k8s.io") n = n " in namespace " ns
      print n
    }'
}
# Before the restart: what runs now, on the socket of the daemon running now.
record_tasks() {
  checked=false
  if [ -n "$ctr" ] && bounded_for 10 "$ctr" --address "$vsock" namespaces ls -q 9>&- </dev/null >"$tasks.ns" 2>/dev/null &&
    running_tasks "$vsock" "$tasks.before"; then
    checked=true
    running=$(awk 'END { print NR }' "$tasks.before")
  fi
}
# After the health gate: every container that ran before runs now, with the same pid. One that does
# not is gone for good: its process ended, and rolling config.toml back (one more restart) cannot
# bring it back and could only end more. The node stays on the new config.toml, healthy and recorded
# as applied, and the apply fails so no later wave starts.
containers_guard() {
  # Only the namespaces that held running tasks before can have lost one.
  [ "$checked" = true ] && awk '!seen[$1]++ { print $1 }' "$tasks.before" >"$tasks.ns"
  if [ "$checked" = true ] && running_tasks "$hsock" "$tasks.after"; then
    awk 'FILENAME == ARGV[1] { now[$0] = 1; next } !($0 in now) { print $1, $2 }' "$tasks.after" "$tasks.before" >"$tasks.t"
    lost=$(awk 'END { print NR }' "$tasks.t")
  else
    checked=false
  fi
  _sb=''
  case "$sb_before" in pulled | present) _sb=$(printf ',"sandboxImage":{"image":"%s","before":"%s"}' "$(printf '%s' "$sb_image" | tr -cd 'A-Za-z0-9._/:@+-')" "$sb_before") ;; esac
  [ -z "$podstart" ] || _sb=$(printf '%s,"podStart":"%s"' "$_sb" "$(printf '%s' "$podstart" | tr -cd 'A-Za-z0-9._/:;@+ -')")
  guards=$(printf ',"guards":{"unit":"%s","killMode":"%s","containersChecked":%s,"running":%s,"lost":%s%s}' "$unit" "$killmode" "$checked" "$running" "$lost" "$_sb")
  [ "$lost" -gt 0 ] || return 0
  _names=''
  while IFS=' ' read -r _ns _id; do
    _names="\${_names:+$_names, }$(name_of "$_ns" "$_id")"
  done <"$tasks.t"
  if [ "$allow_loss" = true ]; then
    say "the restart ended $lost of the $running running containers (allowContainerLoss): $_names"
    return 0
  fi
  audit apply containers-lost
  fail "the restart ended $lost of the $running containers that ran before it (not running after it, or running with a new pid): $_names. Rolling config.toml back cannot bring them back, so it was not rolled back (another restart would only risk more): $now_on. Find what ended them (the unit's KillMode, a stop that also ends the shims) before the next node restarts"
}

# --- the sandbox (pause) image, and a pod that starts ------------------------------------------
# Every pod starts from the CRI plugin's sandbox image, which containerd pulls on the first pod that
# needs it, through the registry config in effect then. A restart onto a config whose sandbox image
# its registries do not serve leaves a node on which no new pod can start, and says nothing until one
# tries. So before the restart the node pulls it into k8s.io (CRI's namespace) through the new
# config's registry directory, and after it the health gate starts a throwaway pod sandbox.
podcheck=false sb_image='' sb_before='' podstart='' pod_cgroups=cgroupfs podtries=0
# A config dump's (stdin) sandbox image, registry config_path, CRI snapshotter, and whether its
# default runtime uses the systemd cgroup driver: four lines. 1.x keeps them in the cri plugin,
# 2.x in cri.v1.images (pinned_images.sandbox) and cri.v1.runtime.
cri_of() {
  awk 'BEGIN { q1 = sprintf("%c", 39); q2 = sprintf("%c", 34); rt = "runc" }
    function val(l) { sub(/^[^=]*=[ ]*/, "", l); gsub(q1, "", l); gsub(q2, "", l); return l }
    { l = $0; gsub(/^[ ]+|[ ]+$/, "", l) }
    substr(l, 1, 1) == "[" { s = l; gsub(q1, "", s); gsub(q2, "", s); next }
    s == "[plugins.io.containerd.grpc.v1.cri]" && l ~ /^sandbox_image[ ]*=/ { img = val(l) }
    s == "[plugins.io.containerd.cri.v1.images.pinned_images]" && l ~ /^sandbox[ ]*=/ { img = val(l) }
    (s == "[plugins.io.containerd.grpc.v1.cri.registry]" || s == "[plugins.io.containerd.cri.v1.images.registry]") && l ~ /^config_path[ ]*=/ { cp = val(l) }
    (s == "[plugins.io.containerd.grpc.v1.cri.containerd]" || s == "[plugins.io.containerd.cri.v1.images]") && l ~ /^snapshotter[ ]*=/ { sn = val(l) }
    (s == "[plugins.io.containerd.grpc.v1.cri.containerd]" || s == "[plugins.io.containerd.cri.v1.runtime.containerd]") && l ~ /^default_runtime_name[ ]*=/ { rt = val(l) }
    s ~ /[.]containerd[.]runtimes[.][^.]*[.]options[]]$/ && l ~ /^SystemdCgroup[ ]*=[ ]*true/ { n = s; sub(/[.]options[]]$/, "", n); sub(/^.*[.]/, "", n); sd[n] = 1 }
    END { print img; print cp; print sn; print ((rt in sd) ? "systemd" : "cgroupfs") }'
}
# An image reference as containerd names it: docker.io/library/ for a bare name, :latest without a tag.
full_ref() {
  printf '%s\n' "$1" | awk '{ r = $0; n = split(r, p, "/"); d = p[1]
    if (n == 1) r = "docker.io/library/" r
    else if (index(d, ".") == 0 && index(d, ":") == 0 && d != "localhost") r = "docker.io/" r
    if (r ~ /^docker[.]io[/][^/]*$/) sub(/^docker[.]io[/]/, "docker.io/library/", r)
    last = r; sub(/^.*[/]/, "", last)
    if (index(last, ":") == 0 && index(r, "@") == 0) r = r ":latest"
    print r }'
}
# What each registry host answered a failed pull (ctr logs each host it gives up on, 1.x), then ctr's
# own last word, on one line.
pull_answer() { # ctr output
  awk 'BEGIN { q = sprintf("%c", 34); b = sprintf("%c", 92) }
    index($0, "trying next host") > 0 {
      h = $0; sub(/^.* host=/, "", h); gsub(q, "", h); r = $0
      if (index(r, "response was ") > 0) { sub(/^.*response was /, "", r); sub(q ".*$", "", r) }
      else if (index(r, "error=" q) > 0) { r = substr(r, index(r, "error=" q) + 7); e = index(r, q " host="); if (e > 0) r = substr(r, 1, e - 1) }
      gsub(b b q, q, r)
      a = a (a == "" ? "" : "; ") h " answered " r
      next
    }
    index($0, "level=") == 0 && $0 !~ /^ *$/ { last = $0 }
    END { if (last != "") a = a (a == "" ? "" : "; ") last; print a }' "$1"
}
# Before the restart (nothing written yet): the new config's sandbox image is pulled when k8s.io does
# not hold it (a new image, or one kubelet's image collection removed on 1.6), and a failed pull
# refuses the change. Present, nothing is asked of the registries: the first pod after the restart
# finds it there, so a mirror down at this moment does not hold up a change that needs nothing of it.
sandbox_guard() { # new config dump
  cri_of <"$1" >"$tasks.t"
  { IFS= read -r sb_image; IFS= read -r _path; IFS= read -r _snap; IFS= read -r pod_cgroups; } <"$tasks.t" || :
  [ -n "$sb_image" ] || return 0
  # Without a running daemon (the node's first apply, containerd stopped) there is no one to pull.
  if [ "$daemon_up" != true ]; then sb_before=unchecked; return 0; fi
  _ref=$(full_ref "$sb_image")
  sb_before=present
  if bounded_for 10 "$ctr" --address "$vsock" -n k8s.io images ls -q 9>&- </dev/null 2>/dev/null | grep -Fqx -- "$_ref"; then
    return 0
  fi
  set -- "$ctr" --address "$vsock" -n k8s.io images pull
  [ -n "$_path" ] && set -- "$@" --hosts-dir "$_path"
  [ -n "$_snap" ] && set -- "$@" --snapshotter "$_snap"
  if ! bounded "$@" "$_ref" 9>&- </dev/null >"$out" 2>&1; then
    _via="the registry directory \${_path:-(none: config_path is not set, so straight from the registry)}"
    fail "refusing the new $path: its sandbox image $sb_image could not be pulled into containerd's k8s.io namespace through $_via: $(pull_answer "$out"). After a restart no new pod could start on this node; nothing restarted and the old config.toml stays. Serve the image from a mirror of its registry, or set sandboxImage to one they serve"
  fi
  sb_before=pulled
}
# The pod sandbox kubelet would start, on the node's network (no CNI needed), then stopped and
# removed. Its cgroup parent follows the default runtime's driver: containerd makes a systemd
# slice:prefix:name path only from a parent named *.slice.
pod_ok() { # seconds
  [ "$podcheck" = true ] || return 0
  _cc=\${CONTAINERD_NODE_CRICTL:-crictl}
  if ! command -v "$_cc" >/dev/null 2>&1; then
    podstart="skipped: no $_cc on the node"
    return 0
  fi
  _parent=''
  [ "$pod_cgroups" = systemd ] && _parent=system.slice
  podtries=$((podtries + 1))
  _n="containerd-node-check-$$-$podtries"
  printf '{"metadata":{"name":"%s","namespace":"containerd-node","uid":"%s","attempt":0},"labels":{"containerd-node":"health-check"},"linux":{"cgroup_parent":"%s","security_context":{"namespace_options":{"network":2}}}}' "$_n" "$_n" "$_parent" >"$state/$base.pod.json"
  _s=$1
  set -- "$_cc" --runtime-endpoint "unix://$hsock" --image-endpoint "unix://$hsock" --timeout "\${_s}s"
  if ! _id=$(bounded_for "$_s" "$@" runp "$state/$base.pod.json" 9>&- </dev/null 2>"$out"); then
    reason="no pod can start: a pod sandbox did not start through CRI ($_cc runp): $(grep -v '^ *$' "$out" | tail -n 3)"
    podstart="failed"
    return 1
  fi
  # (One process less than stopp and rmp: --force stops it first.)
  if bounded_for 20 "$@" rmp --force "$_id" 9>&- </dev/null >/dev/null 2>&1; then
    podstart=started
  else
    podstart="started; not removed: $_id"
    say "the health check's pod sandbox $_id started, but could not be removed ($_cc rmp $_id)"
  fi
  return 0
}

set_owner() {
  (umask 022 && mkdir -p "$state")
  printf '%s\n' "$owner" >"$ownerf.tmp" && mv -f "$ownerf.tmp" "$ownerf"
  printf '%s %s\n' "$(sum_of "$path")" "$(stat -L -c %a "$path" 2>/dev/null || echo 0)" >"$state/$base.sum.tmp" && mv -f "$state/$base.sum.tmp" "$state/$base.sum"
  # An apply without a token (its node was not read, or readNode is off) forgets the last repair:
  # its command carries none, so the next read must hand none back, or it would show an update.
  if [ -n "\${CONTAINERD_NODE_REPAIR:-}" ]; then
    printf '%s\n' "$CONTAINERD_NODE_REPAIR" >"$state/$base.repair.tmp" && mv -f "$state/$base.repair.tmp" "$state/$base.repair"
  else
    rm -f "$state/$base.repair"
  fi
  return 0
}

# --- set-aside / put-back: registry directories the spec does not manage -------------------------
# A directory holding files a ContainerdNode manages (its owner records) is never moved: it is this
# node's (a registry being dropped, whose deletes restore it) or another resource's.
managed_dir() { # dir
  for _of in "$1"/.containerd-node/*.owner; do
    if [ -f "$_of" ]; then return 0; fi
  done
  return 1
}
if [ "$action" = set-aside ] || [ "$action" = put-back ]; then
  certs=$path
  aside="$certs/.containerd-node/set-aside"
  (umask 022 && mkdir -p "$aside")
  if [ "$action" = set-aside ]; then
    for _e in "$@"; do
      _n=\${_e%%@*}
      case "$_n" in '' | . | .. | */* | .*) continue ;; esac
      path="$certs/$_n"
      [ -e "$certs/$_n" ] || continue
      if managed_dir "$certs/$_n"; then
        say "$certs/$_n holds files a ContainerdNode manages; not set aside"
        continue
      fi
      if [ -e "$aside/$_n" ]; then
        # Held since an earlier set-aside: that copy is what put-back restores. This one, made
        # since, is kept beside it and is not put back.
        (umask 022 && mkdir -p "$aside/.later")
        _k=1
        while [ -e "$aside/.later/$_n.$_k" ]; do _k=$((_k + 1)); done
        mv -f "$certs/$_n" "$aside/.later/$_n.$_k" || fail "cannot set $certs/$_n aside"
        sync_path "$aside/.later"
        audit set-aside moved-again
        say "set aside $certs/$_n again; the first copy stays in $aside/$_n (put back when this resource is deleted), this one is kept in $aside/.later/$_n.$_k"
        continue
      fi
      mv -f "$certs/$_n" "$aside/$_n" || fail "cannot set $certs/$_n aside"
      printf '%s\n' "$owner" >"$aside/$_n.owner"
      sync_path "$aside"
      audit set-aside moved
      say "set aside $certs/$_n (in $aside/$_n until this resource is deleted)"
    done
  else
    # Every directory this owner set aside (names, when given, narrow it: older libraries gave them).
    if [ "$#" -eq 0 ]; then
      for _d in "$aside"/*/; do
        [ -d "$_d" ] || continue
        _d=\${_d%/}
        set -- "$@" "\${_d##*/}"
      done
    fi
    for _e in "$@"; do
      _n=\${_e%%@*}
      case "$_n" in '' | . | .. | */* | .*) continue ;; esac
      path="$certs/$_n"
      [ -d "$aside/$_n" ] || continue
      [ "$(cat "$aside/$_n.owner" 2>/dev/null)" = "$owner" ] || continue
      if [ -e "$certs/$_n" ]; then
        say "$certs/$_n exists again; the set-aside copy stays in $aside/$_n"
        continue
      fi
      mv -f "$aside/$_n" "$certs/$_n" || fail "cannot put $certs/$_n back"
      rm -f "$aside/$_n.owner"
      audit put-back restored
      say "put back $certs/$_n"
    done
    if [ -d "$aside/.later" ]; then say "copies set aside again stay in $aside/.later"; fi
  fi
  rmdir "$aside" "$certs/.containerd-node" 2>/dev/null || :
  exit 0
fi

# --- restore (delete) --------------------------------------------------------------------------
if [ "$action" = restore ]; then
  # Another owner took the file over (the node or stack was renamed, and the new resource applied
  # before this old one is deleted): restoring now would undo the new owner's file.
  if [ -e "$ownerf" ] && [ "$(cat "$ownerf")" != "$owner" ]; then
    say "$path is managed by $(cat "$ownerf") now; left in place"
    audit restore left-to-new-owner
    report
    exit 0
  fi
  if [ "$kind" = file ]; then
    if [ -e "$orig" ]; then
      install_copy "$orig" "$path"
      rm -f "$orig"
      written=true
    elif [ -e "$absent" ]; then
      [ -e "$path" ] && written=true
      rm -f "$path" "$absent"
    else
      say "no record of the original $path; left in place"
    fi
    rm -f "$ownerf" "$state/$base.sum" "$state/$base.repair" "$prev" "$pending" "$out"
    rmdir "$state" 2>/dev/null || :
    rmdir "$dir" 2>/dev/null || :
    if [ "$written" = true ]; then audit restore restored; else audit restore nothing-to-restore; fi
    report
    exit 0
  fi
  # config.toml: put the original back, restart, and keep the managed file if that is not healthy.
  if [ ! -e "$orig" ] && [ ! -e "$absent" ]; then
    say "no record of the original $path; left in place"
    report
    exit 0
  fi
  # containerd last ran healthy with the managed file: it must restart onto the original even if
  # an earlier, interrupted restore already put the file back.
  needs_restart=false
  [ -e "$applied" ] && needs_restart=true
  if [ -e "$orig" ]; then
    if [ -e "$path" ] && cmp -s "$orig" "$path"; then :; else needs_restart=true; fi
  elif [ -e "$path" ]; then
    needs_restart=true
  fi
  # The restart onto the original is guarded as an apply's is: refused before the file is touched
  # where it would end every container, and failed where containers did not survive it.
  if [ "$needs_restart" = true ]; then
    kept="nothing was restored and the managed config.toml stays (or set onDelete to keep)"
    now_on="the node is on its original config.toml (the restore is done)"
    vsock=$(socket_of "$path")
    killmode_guard
    record_tasks
  fi
  if [ -e "$path" ]; then cp -p "$path" "$prev"; else rm -f "$prev"; fi
  if [ -e "$orig" ]; then
    if [ -e "$path" ] && cmp -s "$orig" "$path"; then :; else install_copy "$orig" "$path"; written=true; fi
  elif [ -e "$path" ]; then
    rm -f "$path"
    written=true
  fi
  # Healthy on the original means what it meant before we managed the node, on its socket; today's
  # spec's health checks do not apply to it.
  hmode=$(mode_before)
  hsock=$(socket_of "$path")
  if [ "$needs_restart" = true ] && ! restart_healthy; then
    why=$reason
    if [ -e "$prev" ]; then install_copy "$prev" "$path"; fi
    hmode=cri
    hsock=$(socket_of "$path")
    if restart_healthy "$@"; then
      audit restore original-unhealthy-managed-file-back
      fail "containerd was not healthy on the original $path ($why); the managed config.toml is back and containerd is healthy"
    fi
    fail "containerd was not healthy on the original $path ($why), nor after putting the managed one back ($reason)"
  fi
  rm -f "$orig" "$absent" "$applied" "$prev" "$out" "$ownerf" "$before" "$state/$base.sum" "$state/$base.repair"
  [ "$needs_restart" = true ] && containers_guard
  rmdir "$state" 2>/dev/null || :
  audit restore restored
  report
  exit 0
fi

# --- apply ---------------------------------------------------------------------------------------
# Files rendered for another containerd are ignored or misread without a word: a version 3
# config.toml on 1.x (before 1.6.32/1.7.17) loads and drops every CRI setting, and a hosts.toml with a
# capability 1.6 does not know ("referrers") is skipped whole, so pulls bypass the mirror. Refuse
# before anything changes.
# The version is the running daemon's ("ctr version", its Server part): during a tarball upgrade the
# containerd first on PATH is the new binary, not the one running. A daemon that does not answer
# (not started yet) leaves the binary's own --version.
check_version() { # what
  node_ver='' daemon_up=false
  if [ -n "$ctr" ] && _v=$(bounded "$ctr" --address "$vsock" version 2>/dev/null); then
    daemon_up=true
    node_ver=$(printf '%s\n' "$_v" | awk '$1 == "Server:" { s = 1 } s && $1 == "Version:" { print $2; exit }' | sed -e 's/^v//' -e 's/[^0-9.].*$//')
  fi
  if [ -z "$node_ver" ]; then
    ver_line=$(bounded "$containerd" --version 2>&1) || fail "cannot run $containerd --version: $ver_line"
    node_ver=$(version_of "$ver_line")
    [ -n "$node_ver" ] || fail "cannot read a version from: $ver_line"
  fi
  want_major=1
  [ "$cfgver" -ge 3 ] && want_major=2
  if [ "$(ver_part "$node_ver" 1)" != "$want_major" ]; then
    fail "refusing $1: the node runs containerd $node_ver, but the spec renders for containerd $minver (containerdVersion); containerd $node_ver would ignore or misread it. Set containerdVersion to $node_ver"
  fi
  ver_ge "$node_ver" "$minver" || fail "refusing $1: the node runs containerd $node_ver, older than containerdVersion $minver in the spec; set containerdVersion to $node_ver"
}

[ "$action" = apply ] || fail "unknown action $action"
(umask 022 && mkdir -p "$dir")
tmp=$(mktemp "$dir/.$base.XXXXXX")
cat >"$tmp"
# A connection cut while the content travelled on stdin leaves it without its last line.
[ "$(tail -n 1 "$tmp")" = "$end_marker" ] || fail "the new $path arrived incomplete (no end marker); nothing changed"
chmod "$mode" "$tmp"

same=false
if [ -f "$path" ] && cmp -s "$tmp" "$path"; then same=true; fi

# A new hosts.toml must be one the node's containerd takes: containerd skips a file it cannot use
# (bad TOML, a capability or key its version does not know; 1.6 does so without an error) and then
# pulls straight from the upstream. Its own resolver, run by ctr on a scratch hosts directory
# holding only the new file, with every request sent to a proxy on a closed port (so nothing leaves
# the node and nothing waits on a dead mirror), shows which host it would ask first: the file is
# taken when that is the file's first host for resolving (its server when it has none), read
# leniently here (a table header without its bracket still names its host), so a file containerd
# cannot parse asks for another host than it names.
first_host() { # hosts.toml -> host[:port] containerd asks first for a manifest
  awk 'BEGIN { q = sprintf("%c", 34) }
    function flush() { if (cur != "" && first == "" && (caps == "" || index(caps, q "resolve" q) > 0)) first = cur }
    { l = $0; gsub(/^[ ]+|[ ]+$/, "", l) }
    l ~ /^[[]host[.]"[^"]*"[]]?$/ { flush(); cur = l; sub(/^[^"]*"/, "", cur); sub(/".*$/, "", cur); caps = ""; intable = 1; next }
    substr(l, 1, 1) == "[" { flush(); cur = ""; intable = 1; next }
    cur != "" && l ~ /^capabilities[ ]*=/ { caps = l }
    !intable && l ~ /^server[ ]*=/ { server = l; sub(/^[^"]*"/, "", server); sub(/".*$/, "", server) }
    END { flush(); h = (first != "" ? first : server); sub(/^[a-z]+:[/][/]/, "", h); sub(/[/].*$/, "", h); print h }' "$1"
}
validate_hosts() { # new-file
  _ns=\${path%/hosts.toml}
  _ns=\${_ns##*/}
  _want=$(first_host "$1")
  [ -n "$_want" ] || return 0
  # A reference names its registry only by a host with a dot or a port (else it is Docker Hub's):
  # a registry named otherwise cannot be asked for, and gets no scratch copy.
  case "$_ns" in
    _default) _ref='containerd-node-validate.invalid/validate/probe:0' ;;
    *.* | *:* | localhost) _ref="$_ns/containerd-node/validate:0" ;;
    *) return 0 ;;
  esac
  # The copy may hold credentials: a 0700 directory (mktemp) and a 0600 file (umask 077), removed
  # here and, on any way out, by cleanup.
  scratch=$(mktemp -d "$state/.validate.XXXXXX") || { scratch=''; return 0; }
  mkdir -p "$scratch/$_ns" && cp "$1" "$scratch/$_ns/hosts.toml"
  _p=http://127.0.0.1:9
  # Through env, not as assignments before the function: POSIX leaves their scope after a function
  # call unspecified, and bash 4's POSIX mode (/bin/sh on RHEL 8, Amazon Linux 2) keeps them.
  bounded_for 20 env HTTPS_PROXY=$_p HTTP_PROXY=$_p https_proxy=$_p http_proxy=$_p NO_PROXY='' no_proxy='' \
    "$ctr" --debug --address "$vsock" -n k8s.io content fetch --hosts-dir "$scratch" "$_ref" </dev/null >"$out" 2>&1 || :
  rm -rf "$scratch"
  scratch=''
  # No request at all: ctr could not reach the daemon; there is nothing to judge by.
  grep -Eq 'https?://' "$out" || return 0
  grep -Fq "//$_want/" "$out" && return 0
  _got=$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^"?https*:[/][/]/) { h = $i; gsub(/"/, "", h); sub(/^https*:[/][/]/, "", h); sub(/[/].*$/, "", h); print h; exit } }' "$out")
  fail "containerd $node_ver would not use the new $path (it would ask \${_got:-the upstream} first, not $_want): it skips a hosts.toml it cannot use; nothing changed"
}

# The probes of a hosts.toml (pulls through this registry, with the file in place): when one fails,
# the previous file is put back (or none, when there was none).
probe_gate() { # checks...
  if [ "$#" -gt 0 ] && ! checks_ok "\${timeout:-60}" "$@"; then
    why=$reason
    if [ -e "$prev" ]; then install_copy "$prev" "$path"; else rm -f "$path"; fi
    rm -f "$prev" "$pending"
    audit probe previous-file-back
    fail "the probe through the new $path failed ($why); the previous file is back"
  fi
  rm -f "$prev" "$pending"
}

if [ "$kind" = file ]; then
  # An apply cut (killed, the node rebooted) after it installed its file and before its probes
  # passed leaves its marker, or (an older node script) its previous copy: that file was never
  # judged. Whatever comes now, the previous copy stays what a failed probe puts back.
  interrupted=false
  if [ -e "$pending" ] || [ -e "$prev" ]; then interrupted=true; fi
  if [ "$same" = true ]; then
    chmod "$mode" "$path"
    # The interrupted apply's file is the one asked for: its probes run now, before it is recorded.
    if [ "$interrupted" = true ]; then
      if [ -e "$prev" ]; then old_sum=$(audit_sum "$prev"); else old_sum=none; fi
      probe_gate "$@"
      audit apply applied
    fi
  else
    check_version "$path"
    keep_original
    case "$path" in */hosts.toml) validate_hosts "$tmp" ;; esac
    # With probes (a pull through this registry's new hosts.toml), keep what is there to put back,
    # then mark the file pending until they pass.
    if [ "$#" -gt 0 ] && [ "$interrupted" = false ]; then
      (umask 022 && mkdir -p "$state")
      if [ -e "$path" ]; then cp -p "$path" "$prev"; else rm -f "$prev"; fi
      : >"$pending"
      sync_path "$state"
    fi
    sync_path "$tmp"
    mv -f "$tmp" "$path"
    sync_path "$dir"
    written=true
    probe_gate "$@"
    audit apply applied
  fi
  set_owner
  report
  exit 0
fi

# config.toml. Unchanged and known healthy: nothing to do, no restart.
if [ "$same" = true ] && [ -f "$applied" ] && cmp -s "$path" "$applied"; then
  chmod "$mode" "$path"
  set_owner
  report
  exit 0
fi

vsock=$(socket_of "$path")
check_version "a version $cfgver config.toml"

# The node's own containerd must load the candidate, and must not ignore any of its keys.
if ! bounded "$containerd" --config "$tmp" config dump >"$tmp.dump" 2>"$tmp.err"; then
  fail "containerd $node_ver rejected the new $path; nothing changed: $(tail -n 5 "$tmp.err")"
fi
if grep -q 'Ignoring unknown key' "$tmp.err"; then
  fail "containerd $node_ver would ignore keys of the new $path; nothing changed: $(grep 'Ignoring unknown key' "$tmp.err" | head -n 5)"
fi
new_sock=$(address_in_dump <"$tmp.dump")
new_sock=\${new_sock:-/run/containerd/containerd.sock}
# A restart that would end every container is refused before anything changes, and so is one after
# which no pod could start for want of its sandbox image.
killmode_guard
(umask 022 && mkdir -p "$state")
sandbox_guard "$tmp.dump"
rm -f "$tmp.err" "$tmp.dump"

# What to roll back to: the last config containerd was confirmed healthy with (an earlier apply may
# have been interrupted after its rename: that file was never confirmed, and is no target); before
# the first confirmed apply, what the node had.
(umask 022 && mkdir -p "$state")
keep_original
prev_mode=$(mode_before)
if [ -e "$applied" ]; then
  cp -p "$applied" "$prev"
  prev_mode=cri
elif [ -e "$orig" ]; then
  cp -p "$orig" "$prev"
else
  rm -f "$prev"
fi
if [ "$same" != true ]; then
  sync_path "$tmp"
  mv -f "$tmp" "$path"
  sync_path "$dir"
  written=true
fi

record_tasks
hmode=cri
hsock=$new_sock
podcheck=true
if ! restart_healthy "$@"; then
  why=$reason
  podcheck=false
  if [ -e "$prev" ]; then install_copy "$prev" "$path"; else rm -f "$path"; fi
  # The rolled-back file is checked on its own socket for what it was confirmed with (CRI ok, or for
  # the node's original what was true before us), not with the new spec's checks: those may be the
  # very thing that failed (a canary pull through a new mirror) and say nothing of the old file.
  hmode=$prev_mode
  hsock=$(socket_of "$path")
  if restart_healthy; then
    rm -f "$prev"
    audit rollback healthy-again
    fail "containerd was not healthy with the new $path ($why); rolled back to the previous config.toml and containerd is healthy again"
  fi
  audit rollback still-unhealthy
  fail "containerd was not healthy with the new $path ($why); rolled back to the previous config.toml, but containerd is still not healthy ($reason)"
fi
cp -p "$path" "$applied.tmp" && mv -f "$applied.tmp" "$applied"
rm -f "$prev"
set_owner
sync_path "$state"
read_deprecations
containers_guard
audit apply healthy
report
`;
