/**
 * The read-only POSIX sh program the component runs on every node while the program runs (preview
 * and up), in one SSH session per node: what the node has now, so a preview can show drift, a
 * running containerd of another version, unmanaged registry directories, imports a new config.toml
 * would drop, mirrors that do not answer from the node, and a containerd unit whose KillMode would
 * end every container on a restart.
 *
 * It is constant text sent on stdin (`sh -s`); everything it needs is a positional argument, quoted
 * by `commands.ts`, so no user string is ever code. It changes nothing on the node: the only files
 * it writes are a header file for a probe with credentials (0600, in a private temporary directory
 * removed on exit). Secret files are reported by sha256 and mode only, never by content.
 *
 * Arguments:
 *   1 ctr        ctr binary
 *   2 socket     containerd's gRPC socket
 *   3 certs      the registry config directory (registryConfigPath), or '-'
 *   4 config     config.toml's path
 *   5 ptimeout   seconds each mirror probe may take
 *   6 probing    1: probe the hosts of the P groups and of unmanaged registry directories; 0: no probes
 *   7.. groups, each led by a tag:
 *     M name                 a registry directory the spec manages
 *     F path                 a managed file whose content is read (not secret)
 *     S path                 a managed secret file: sha256 and mode only
 *     P id url ca insecure cert key hostsfile section
 *                            a mirror probe: GET <url> (the /v2/ endpoint) from the node; ca, cert,
 *                            key are paths or '-'; with hostsfile and section not '-', the
 *                            Authorization header of that TOML section of that file is tried on a 401
 *     K unit systemctl       the systemd unit of a `systemctl restart UNIT` restartCommand, and that
 *                            systemctl: the unit's KillMode is asked for (at most once, the last K)
 *
 * Output, one record per line (fields separated by one space; the last field may hold spaces):
 *   version V | version-unknown REASON        the running daemon's version ("ctr version", Server)
 *   cri ok | cri STATUS                        the CRI plugin's status now
 *   file PATH present SHA MODE | file PATH absent
 *   record PATH SHA MODE                       what the component last installed (.sum)
 *   repair PATH TOKEN                          the last drift repaired there (.repair)
 *   content PATH NBYTES, then NBYTES bytes and a newline
 *   regdir NAME, regserver NAME URL, reghost NAME URL        directories under certs
 *   regowned NAME                              a directory holding files a ContainerdNode manages
 *                                              (owner records in NAME/.containerd-node): not unmanaged
 *   probetarget ID NAME ROLE URL              a probe of a host of an unmanaged directory
 *   setaside NAME LATER                        a directory the component set aside (unmanagedRegistries "remove"),
 *                                              and how many later copies of it were set aside since
 *   import PATTERN, importfile PATH, then a content record for it
 *   probe ID CLASS HTTP SECONDS CREDS TOOL     CREDS: pass | fail | none | -
 *   killmode UNIT VALUE [LOADSTATE]            the K unit's KillMode (systemctl show), or unknown; then
 *                                              its LoadState when systemd has no usable unit by that
 *                                              name (not-found, masked, bad-setting, error)
 *   sandbox IMAGE present|absent|unknown       whether containerd's k8s.io namespace holds the I image
 *   end
 */
/**
 * How long each of the read's two ctr calls (version, plugins) may take on a wedged containerd, and
 * each of its systemctl calls (a K group's KillMode, and its LoadState when the KillMode is not process).
 */
export const READ_CTR_SECONDS = 5;

/**
 * The read's whole time budget: connecting (twice through a jump host), the two ctr calls, a K
 * group's two systemctl calls (systemd), and the probes (a token registry's check of credentials takes
 * up to three requests), plus a second of slack. Within it a wedged containerd, a slow systemd or a
 * slow jump host costs its parts, not the whole read.
 */
export function readBudgetSeconds(o: { connectSeconds: number; viaProxy: boolean; probeSeconds: number; probing: boolean; systemd?: boolean; sandbox?: boolean }): number {
  return o.connectSeconds * (o.viaProxy ? 2 : 1) + (2 + (o.systemd ? 2 : 0) + (o.sandbox ? 1 : 0)) * READ_CTR_SECONDS + (o.probing ? 3 * o.probeSeconds : 0) + 1;
}

// One brace group: sh parses all of it before it runs any of it, so nothing run here can eat the
// rest of the script from stdin, and stdin is then closed for everything the read runs.
export const READ_SCRIPT = `{
exec </dev/null
set -u
trap '' PIPE
PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
export PATH
umask 077
ctr=$1 socket=$2 certs=$3 config=$4 ptimeout=$5 probing=$6
shift 6
managed=''
_prev=''
for _a in "$@"; do
  [ "$_prev" = M ] && managed="$managed $_a"
  _prev=$_a
done
ids=''
uid=0
probed=''
work=$(mktemp -d 2>/dev/null || echo '')
trap '[ -n "$work" ] && rm -rf "$work"' EXIT

bounded() { if command -v timeout >/dev/null 2>&1; then timeout "$@"; else shift; "$@"; fi; }

_v=$(bounded ${READ_CTR_SECONDS} "$ctr" --address "$socket" version 2>&1)
node_ver=$(printf '%s\\n' "$_v" | awk '$1 == "Server:" { s = 1 } s && $1 == "Version:" { print $2; exit }' | sed -e 's/^v//' -e 's/[^0-9.].*$//')
if [ -n "$node_ver" ]; then echo "version $node_ver"; else printf 'version-unknown %s\\n' "$(printf '%s' "$_v" | tail -n 1 | tr -d '\\r')"; fi
_p=$(bounded ${READ_CTR_SECONDS} "$ctr" --address "$socket" plugins ls 2>/dev/null | awk '$1 == "io.containerd.grpc.v1" && $2 == "cri" { print $NF }')
echo "cri \${_p:-missing}"

content() { # path
  printf 'content %s %s\\n' "$1" "$(wc -c <"$1" | tr -d ' ')"
  cat "$1"
  echo
}
state_of() { # path: the records beside it (through a symlink, beside its target)
  _t=$1
  if [ -L "$_t" ]; then _t=$(readlink -f "$_t" 2>/dev/null) || _t=$1; fi
  _st="\${_t%/*}/.containerd-node/\${_t##*/}"
  if [ -f "$_st.sum" ]; then printf 'record %s %s\\n' "$1" "$(cat "$_st.sum")"; fi
  if [ -f "$_st.repair" ]; then printf 'repair %s %s\\n' "$1" "$(cat "$_st.repair")"; fi
}
file_of() { # path secret
  if [ -f "$1" ]; then
    printf 'file %s present %s %s\\n' "$1" "$(sha256sum <"$1" | cut -d ' ' -f 1)" "$(stat -L -c %a "$1")"
    [ "$2" = 1 ] || content "$1"
  else
    printf 'file %s absent\\n' "$1"
  fi
  state_of "$1"
}

# The imports of config.toml as the node has it now, each pattern and the files it matches (paths
# relative to config.toml's directory, globs as containerd expands them).
if [ -f "$config" ]; then
  awk 'BEGIN { q = sprintf("%c", 34) }
    /^[ \\t]*imports[ \\t]*=/ { on = 1 }
    on { l = $0; while (match(l, q "[^" q "]*" q)) { print substr(l, RSTART + 1, RLENGTH - 2); l = substr(l, RSTART + RLENGTH) } }
    on && index($0, "]") { on = 0 }
    /^[ \\t]*\\[/ { exit }' "$config" | while IFS= read -r pat; do
    printf 'import %s\\n' "$pat"
    case "$pat" in /*) full=$pat ;; *) full="\${config%/*}/$pat" ;; esac
    set +f
    for f in $full; do
      [ -f "$f" ] || continue
      printf 'importfile %s\\n' "$f"
      content "$f"
    done
  done
fi

# Mirror probes: all at once, each bounded by ptimeout; results collected in order.
tool=none
if command -v curl >/dev/null 2>&1; then tool=curl; elif command -v wget >/dev/null 2>&1; then tool=wget; fi
# GNU wget takes a CA and a client pair; busybox's takes neither (a probe that needs them is not made).
wget_gnu=false
if [ "$tool" = wget ] && wget --version 2>/dev/null | grep -q 'GNU Wget'; then wget_gnu=true; fi
# containerd adds a host's ca to the system's roots; curl's --cacert and wget's --ca-certificate
# replace them. The probe gets both, as one bundle in the private directory.
system_roots=''
for _r in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/ca-bundle.pem /etc/ssl/cert.pem; do
  if [ -f "$_r" ]; then system_roots=$_r; break; fi
done
ca_bundle() { # ca out: prints the file to use
  if [ -n "$system_roots" ] && cat "$system_roots" "$1" >"$2" 2>/dev/null; then echo "$2"; else echo "$1"; fi
}
# Milliseconds since boot, for how long a probe took: /proc/uptime (busybox's date has no %N).
now_ms() {
  if [ -r /proc/uptime ]; then awk '{ printf "%d\\n", $1 * 1000 }' /proc/uptime; else echo $(($(date +%s) * 1000)); fi
}
classify_curl() { # rc http headers-file
  case "$1" in
    0) ;;
    6) echo dns-error; return ;;
    7) echo refused; return ;;
    28) echo timeout; return ;;
    35|51|53|54|58|59|60|64|66|77|80|82|83|90|91) echo tls-error; return ;;
    52|56) echo not-a-registry; return ;;
    *) echo "error-$1"; return ;;
  esac
  case "$2" in
    2??) if grep -qi '^docker-distribution-api-version:' "$3" 2>/dev/null; then echo ok; else echo not-a-registry; fi ;;
    401) if grep -qi '^www-authenticate:' "$3" 2>/dev/null; then echo auth-required; else echo not-a-registry; fi ;;
    403) echo forbidden ;;
    *) echo not-a-registry ;;
  esac
}
# The Authorization header of one section of a hosts.toml, as a curl header file (0600).
auth_header() { # hostsfile section out
  sec=$2 awk 'BEGIN { q = sprintf("%c", 34); want = "[" ENVIRON["sec"] "]" }
    { l = $0; gsub(/^[ \\t]+|[ \\t]+$/, "", l) }
    substr(l, 1, 1) == "[" { on = (l == want); next }
    on && l ~ /^"?Authorization"?[ \\t]*=/ { v = l; sub(/^[^=]*=[ \\t]*/, "", v); gsub(q, "", v); print "Authorization: " v; exit }' "$1" >"$3" 2>/dev/null
  [ -s "$3" ]
}
probe_one() { # id url ca insecure cert key hostsfile section
  _o="$work/$1"
  set -- "$@"
  _id=$1 _url=$2 _ca=$3 _k=$4 _cert=$5 _key=$6 _hf=$7 _sec=$8
  _t0=$(now_ms)
  _creds=-
  if [ "$_ca" != - ]; then _ca=$(ca_bundle "$_ca" "$_o.ca"); fi
  if [ "$tool" = curl ]; then
    set -- -sS -o /dev/null -D "$_o.h" -w '%{http_code} %{time_total}' --connect-timeout "$ptimeout" --max-time "$ptimeout"
    [ "$_ca" = - ] || set -- "$@" --cacert "$_ca"
    [ "$_k" = 1 ] && set -- "$@" -k
    [ "$_cert" = - ] || set -- "$@" --cert "$_cert"
    [ "$_key" = - ] || set -- "$@" --key "$_key"
    _w=$(curl "$@" "$_url" 2>/dev/null)
    _rc=$?
    _http=\${_w% *}
    _secs=\${_w#* }
    _class=$(classify_curl "$_rc" "$_http" "$_o.h")
    if [ "$_class" = auth-required ]; then
      _creds=none
      if [ "$_hf" != - ] && [ -f "$_hf" ] && auth_header "$_hf" "$_sec" "$_o.a"; then
        _w2=$(curl "$@" -H @"$_o.a" "$_url" 2>/dev/null)
        case "\${_w2% *}" in 2??) _creds=pass ;; *)
          # A token registry answers 401 to any Basic header at /v2/: ask its token endpoint.
          _realm=$(awk 'tolower($1) == "www-authenticate:" { print }' "$_o.h" | sed -n 's/.*realm="\\([^"]*\\)".*/\\1/p' | head -n 1)
          _svc=$(awk 'tolower($1) == "www-authenticate:" { print }' "$_o.h" | sed -n 's/.*service="\\([^"]*\\)".*/\\1/p' | head -n 1)
          _creds=fail
          # The credentials go to the realm only over https, or http when the registry itself is
          # plain http: never to another scheme (file, ftp, ...) a 401 may name.
          _proto=''
          case "$_realm" in
            https://*) _proto='=https' ;;
            http://*) case "$_url" in http://*) _proto='=http' ;; esac ;;
          esac
          if [ -n "$_realm" ] && [ -z "$_proto" ]; then
            _creds=-
          elif [ -n "$_realm" ]; then
            _w3=$(curl "$@" --proto "$_proto" --proto-redir "$_proto" -H @"$_o.a" -G --data-urlencode "service=$_svc" "$_realm" 2>/dev/null)
            case "\${_w3% *}" in 2??) _creds=pass ;; esac
          fi ;;
        esac
        rm -f "$_o.a"
      fi
    fi
    [ "$_rc" = 0 ] || _http=-
  elif [ "$tool" = wget ] && [ "$wget_gnu" = false ] && { [ "$_ca" != - ] || [ "$_cert" != - ] || [ "$_key" != - ]; }; then
    # busybox wget cannot use the host's CA or client certificate: no verdict rather than a wrong one.
    _class=unprobed _http=- _secs=0
  elif [ "$tool" = wget ]; then
    # busybox's wget has no -t, and Debian's 1.35 crashes on -T: bounded keeps the time for both.
    set -- -S -O /dev/null
    [ "$wget_gnu" = true ] && set -- "$@" -T "$ptimeout" -t 1
    [ "$_k" = 1 ] && set -- "$@" --no-check-certificate
    [ "$_ca" = - ] || set -- "$@" --ca-certificate="$_ca"
    [ "$_cert" = - ] || set -- "$@" --certificate="$_cert"
    [ "$_key" = - ] || set -- "$@" --private-key="$_key"
    _err=$(bounded "$ptimeout" wget "$@" "$_url" 2>&1)
    _rc=$?
    _http=$(printf '%s\\n' "$_err" | awk '$1 ~ /^HTTP\\// { c = $2 } END { print c }')
    # An answer first: with skip_verify wget still warns about the certificate it did not check.
    case "$_http" in
      2??) case "$_err" in *[Dd]ocker-[Dd]istribution-[Aa]pi-[Vv]ersion*) _class=ok ;; *) _class=not-a-registry ;; esac ;;
      401) _class=auth-required; _creds=- ;;
      403) _class=forbidden ;;
      '')
        case "$_err" in
          *"unable to resolve"*|*"bad address"*|*"resolve host"*) _class=dns-error ;;
          *"refused"*) _class=refused ;;
          *"timed out"*|*"Timed out"*) _class=timeout ;;
          *"certificate"*|*"SSL"*|*"TLS"*|*"tls"*) _class=tls-error ;;
          *) if [ "$_rc" = 124 ]; then _class=timeout; else _class="error-$_rc"; fi ;;
        esac ;;
      *) _class=not-a-registry ;;
    esac
    _t1=$(now_ms)
    _secs=$(awk -v a="$_t0" -v b="$_t1" 'BEGIN { printf "%.3f", (b - a) / 1000 }')
    _http=\${_http:--}
  else
    _class=unprobed _http=- _secs=0
  fi
  printf 'probe %s %s %s %s %s %s\\n' "$_id" "$_class" "$_http" "$_secs" "$_creds" "$tool" >"$_o"
}

# Registry directories under certs: what each sends pulls to. The hosts of those the spec does not
# manage (no M group) are probed too, when probing is on.
regdir_records() { # name hosts.toml -> "regserver NAME URL" / "reghost NAME URL" lines, each once
  awk -v n="$1" 'BEGIN { q = sprintf("%c", 34) }
    /^[ \\t]*server[ \\t]*=/ && !sec { v = $0; sub(/^[^=]*=[ \\t]*/, "", v); gsub(q, "", v); gsub(/[ \\t]+$/, "", v); print "regserver " n " " v }
    /^[ \\t]*\\[/ { sec = 1 }
    /^[ \\t]*\\[host\\./ { v = $0; if (match(v, q "[^" q "]*" q)) print "reghost " n " " substr(v, RSTART + 1, RLENGTH - 2) }' "$2" | awk '!seen[$0]++'
}
if [ "$certs" != - ] && [ -d "$certs" ]; then
  for d in "$certs"/*/; do
    [ -d "$d" ] || continue
    n=\${d%/}
    n=\${n##*/}
    echo "regdir $n"
    for _of in "$d".containerd-node/*.owner; do
      if [ -f "$_of" ]; then echo "regowned $n"; break; fi
    done
    case " $managed " in *" $n "*) unmanaged=false ;; *) unmanaged=true ;; esac
    [ -f "$d/hosts.toml" ] || continue
    # Without a private temporary directory (mktemp failed: a full or read-only /tmp) the records
    # go straight out and nothing is probed: never a file outside that directory.
    if [ -z "$work" ]; then
      regdir_records "$n" "$d/hosts.toml"
      continue
    fi
    regdir_records "$n" "$d/hosts.toml" >"$work/regdir"
    while IFS=' ' read -r _tag _n _url; do
      echo "$_tag $_n $_url"
      if [ "$unmanaged" = true ] && [ "$probing" = 1 ] && [ -n "$work" ]; then
        case "$_url" in http://*|https://*) ;; *) continue ;; esac
        case " $probed " in *" $_n/$_url "*) continue ;; esac
        probed="$probed $_n/$_url"
        _ping=\${_url%/}
        case "$_ping" in */v2) ;; *) _ping="$_ping/v2" ;; esac
        uid=$((uid + 1))
        _role=mirror
        [ "$_tag" = regserver ] && _role=server
        echo "probetarget u$uid $_n $_role $_url"
        probe_one "u$uid" "$_ping/" - 0 - - - - &
        ids="$ids u$uid"
      fi
    done <"$work/regdir"
  done
  for d in "$certs"/.containerd-node/set-aside/*/; do
    [ -d "$d" ] || continue
    n=\${d%/}
    n=\${n##*/}
    _k=0
    for _l in "$certs/.containerd-node/set-aside/.later/$n".[0-9]*; do
      if [ -d "$_l" ]; then _k=$((_k + 1)); fi
    done
    echo "setaside $n $_k"
  done
fi

# The KillMode of containerd's systemd unit, as node-script.ts killmode_guard reads it before a
# restart: anything but process ends every container with the daemon; no answer is unknown.
# systemd answers its default, control-group, for a unit it does not have (or a masked one): then
# its LoadState follows the value, as the guard asks it.
killmode_of() { # unit systemctl
  _km=$(bounded ${READ_CTR_SECONDS} "$2" show --property=KillMode --value "$1" 2>/dev/null) || _km=''
  _km=$(printf '%s' "$_km" | tr -d '[:space:]')
  _km=\${_km#KillMode=}
  case "$_km" in '' | *[!a-z-]*) _km=unknown ;; esac
  if [ "$_km" != process ] && [ "$_km" != unknown ]; then
    _ls=$(bounded ${READ_CTR_SECONDS} "$2" show --property=LoadState --value "$1" 2>/dev/null) || _ls=''
    _ls=$(printf '%s' "$_ls" | tr -d '[:space:]')
    case "\${_ls#LoadState=}" in not-found | masked | bad-setting | error) _km="$_km \${_ls#LoadState=}" ;; esac
  fi
  printf 'killmode %s %s\\n' "$1" "$_km"
}
kunit='' ksystemctl='' simage=''
while [ "$#" -gt 0 ]; do
  case "$1" in
    F) file_of "$2" 0; shift 2 ;;
    S) file_of "$2" 1; shift 2 ;;
    M) shift 2 ;;
    P)
      if [ -n "$work" ] && [ "$probing" = 1 ]; then
        probe_one "$2" "$3" "$4" "$5" "$6" "$7" "$8" "$9" &
        ids="$ids $2"
      fi
      shift 9 ;;
    K) kunit=$2 ksystemctl=$3; shift 3 ;;
    I) simage=$2; shift 2 ;;
    *) shift ;;
  esac
done
# While the probes run.
if [ -n "$kunit" ]; then killmode_of "$kunit" "$ksystemctl"; fi
# The sandbox image every new pod starts from: absent, the first pod pulls it through the registries
# as they are at that moment.
if [ -n "$simage" ]; then
  if _il=$(bounded ${READ_CTR_SECONDS} "$ctr" --address "$socket" -n k8s.io images ls -q 2>/dev/null); then
    if printf '%s\\n' "$_il" | grep -Fqx -- "$simage"; then echo "sandbox $simage present"; else echo "sandbox $simage absent"; fi
  else
    echo "sandbox $simage unknown"
  fi
fi
wait
for i in $ids; do cat "$work/$i" 2>/dev/null || echo "probe $i error - 0 - $tool"; done
echo end
}
`;
