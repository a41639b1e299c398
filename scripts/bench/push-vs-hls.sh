#!/usr/bin/env bash
# Push against polling (issue #18, item 3): Surge's push (RTMP and HTTP-FLV) against HLS
# polling from a real HLS server (nginx-rtmp `hls on`, Debian's libnginx-mod-rtmp), viewers
# behind an emulated WAN (scripts/netem), with the end-to-end delay broken down per protocol,
# next to the Periscope paper's 1.4 s (RTMP) against 11.7 s (HLS: 6.9 s client buffer, 3 s
# chunking, 1.2 s polling, 0.3 s CDN hop); then the server CPU per viewer of each (the
# paper's Fig. 14: push costs more CPU per viewer than HLS).
#
# Topology (one netem run): a `broadcaster` node (UP_RATE access, UP_DELAY one way to the
# server), a `server` node and, per protocol, VIEWERS viewer nodes (RATE access each, RTT/2
# one way to the server), one viewer per node so no two share a cap.
# On `server`: a surge-relay origin (the publisher's target), a surge-relay edge pulling from
# it (one relay hop), and nginx-rtmp pulling the same stream from the origin (`pull ...
# static`: one relay hop too) with `hls on; hls_fragment FRAGMENT`, its playlist and
# segments served by nginx's http module. So every viewer sees the very same frames, with
# the same timing SEI (the broadcaster's clock) in them.
#   surge RTMP viewers:     edge, rtmp://SERVER:1936/live/bench
#   surge HTTP-FLV viewers: edge, http://SERVER:8081/live/bench.flv
#   HLS viewers:            nginx, http://SERVER:8082/live/bench.m3u8 (`--protocol hls`)
# Three local probes on `server` (one RTMP viewer each, no WAN) time the stages: at the
# origin (upload), at the edge (upload + hop), at nginx's RTMP side (upload + nginx's pull).
#
# The breakdown per protocol (ms; medians over the viewers' frames unless said):
#   upload      origin probe's delivery delay (broadcaster's clock to the origin's socket)
#   relay hops  edge probe (nginx probe for HLS) minus the origin probe
#   chunking    HLS: publish to segment close, mean per frame (the segment duration is what
#               its first frame waits; the paper's 3 s is that)
#   polling     HLS: segment close to the playlist that lists it, mean per frame, minus
#               upload and hop (which the measured interval includes)
#   last mile   push: the viewers' delivery delay minus the edge probe's; HLS: the segment
#               download (playlist arrival to last byte), mean per frame
#   client buf  the player model's buffering delay (arrival to play), median
#   end to end  the player model's playback latency (broadcaster's clock to play), p50/p99
# HLS viewers start --hls-start-segments segments from the playlist's end (RFC 8216 §6.3.3
# asks for at least three target durations), which is where an HLS player's buffer comes
# from; push viewers start at the newest keyframe (the relay's GOP cache). All viewers use
# the same player model (pre-buffer --player-buffer).
#
# CPU phase (after the delay phase; no WAN: the viewers run on `server`, loopback, so the
# cap and the proxy are not in the way): per protocol, CPU_VIEWERS viewers for CPU_DURATION s
# of the edge (surge RTMP, surge HTTP-FLV) or nginx (HLS); the server's CPU (user + system,
# its whole process tree) over that window, minus its CPU over an idle window just before
# (the stream flowing, no viewers but a keeper on the edge), per viewer-minute.
#
# Needs root, iproute2, nftables, nginx with the rtmp module, python3 and cargo (or
# --bin-dir). Run --help for flags.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/bench/lib.sh
source scripts/bench/lib.sh

me="push-vs-hls"
die() {
  echo "$me: error: $*" >&2
  exit 1
}
progress() { echo "$me: [$(date -u +%H:%M:%S)] $*"; }

usage() {
  cat <<'EOF'
Usage: scripts/bench/push-vs-hls.sh [options]

Surge push (RTMP, HTTP-FLV) against nginx-rtmp HLS polling on an emulated WAN: end-to-end
delay per protocol with its breakdown, then server CPU per viewer. Options (environment
variable in brackets):

  --viewers N            viewers per protocol in the delay phase, one per capped node
                         [VIEWERS] default 4
  --duration S           delay phase length, seconds (20-3600) [DURATION] default 60
  --rate R               viewers' access cap (tc units: 5mbit, 20mbit) [RATE] default 5mbit
  --rtt-ms N             viewer <-> server round trip, ms [RTT_MS] default 80
  --up-rate R            broadcaster's access cap [UP_RATE] default 20mbit
  --up-delay-ms N        broadcaster -> server one way, ms [UP_DELAY_MS] default 20
  --bitrate-kbps K       stream's video bitrate [BITRATE_KBPS] default 1200
  --gop-seconds S        keyframe interval (segments end on keyframes) [GOP] default 1
  --fragment S           nginx hls_fragment, seconds [FRAGMENT] default 3
  --player-buffer S      the player model's pre-buffer, seconds [PLAYER_BUFFER] default 2
  --hls-start-segments N HLS players start N segments from the end [HLS_START] default 3
  --cpu-viewers N        viewers per protocol in the CPU phase (0: skip it) [CPU_VIEWERS]
                         default 200
  --cpu-duration S       CPU window per protocol, seconds [CPU_DURATION] default 40
  --out DIR              results [OUT] default target/bench/push-vs-hls-<time>
  --id ID                netem run id (1-12 of a-z0-9) [NETEM_ID] default ph<pid>
  --bin-dir DIR          surge-relay, surge-load, surge-netem from DIR [SURGE_BIN_DIR]
                         default: cargo build --release and use those
  -h, --help             this text

Output: the delay table (p50/p99 end to end and the breakdown per protocol, the paper's
figures beside), the CPU table (CPU-s per viewer-minute), OUT/results.json, OUT/results.md,
the viewers' reports in OUT/viewers/ and the servers' logs. The netem run is removed on exit
(also on failure or Ctrl-C); only processes this script started are stopped, by pid.
Takes about DURATION + 3 x (CPU_DURATION + 25) + 40 s once built.
EOF
}

viewers="${VIEWERS:-4}"
duration="${DURATION:-60}"
rate="${RATE:-5mbit}"
rtt="${RTT_MS:-80}"
up_rate="${UP_RATE:-20mbit}"
up_delay="${UP_DELAY_MS:-20}"
bitrate="${BITRATE_KBPS:-1200}"
gop="${GOP:-1}"
fragment="${FRAGMENT:-3}"
player_buffer="${PLAYER_BUFFER:-2}"
hls_start="${HLS_START:-3}"
cpu_viewers="${CPU_VIEWERS:-200}"
cpu_duration="${CPU_DURATION:-40}"
out="${OUT:-}"
id="${NETEM_ID:-ph$$}"
bin_dir="${SURGE_BIN_DIR:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --viewers | --duration | --rate | --rtt-ms | --up-rate | --up-delay-ms | --bitrate-kbps | \
      --gop-seconds | --fragment | --player-buffer | --hls-start-segments | --cpu-viewers | \
      --cpu-duration | --out | --id | --bin-dir)
      [ $# -ge 2 ] || die "$1 needs a value (see --help)"
      case "$1" in
        --viewers) viewers="$2" ;;
        --duration) duration="$2" ;;
        --rate) rate="$2" ;;
        --rtt-ms) rtt="$2" ;;
        --up-rate) up_rate="$2" ;;
        --up-delay-ms) up_delay="$2" ;;
        --bitrate-kbps) bitrate="$2" ;;
        --gop-seconds) gop="$2" ;;
        --fragment) fragment="$2" ;;
        --player-buffer) player_buffer="$2" ;;
        --hls-start-segments) hls_start="$2" ;;
        --cpu-viewers) cpu_viewers="$2" ;;
        --cpu-duration) cpu_duration="$2" ;;
        --out) out="$2" ;;
        --id) id="$2" ;;
        --bin-dir) bin_dir="$2" ;;
      esac
      shift 2
      ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

# --- Input, checked before anything is built or created.
int_in() {
  if ! [[ "$2" =~ ^[0-9]{1,5}$ ]] || [ "$2" -lt "$3" ] || [ "$2" -gt "$4" ]; then
    die "$1 '$2' must be an integer from $3 to $4"
  fi
}
int_in --viewers "$viewers" 1 40
int_in --duration "$duration" 20 3600
int_in --rtt-ms "$rtt" 0 2000
int_in --up-delay-ms "$up_delay" 0 2000
int_in --bitrate-kbps "$bitrate" 100 20000
int_in --gop-seconds "$gop" 1 10
int_in --fragment "$fragment" 1 10
int_in --hls-start-segments "$hls_start" 1 10
int_in --cpu-viewers "$cpu_viewers" 0 2000
int_in --cpu-duration "$cpu_duration" 10 600
for r in "$rate" "$up_rate"; do
  [[ "$r" =~ ^[0-9]+(\.[0-9]+)?(kbit|mbit|gbit)$ ]] || die "rate '$r' is not a rate (e.g. 5mbit, 500kbit)"
done
[[ "$player_buffer" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--player-buffer '$player_buffer' must be seconds (e.g. 2)"
[[ "$id" =~ ^[a-z0-9]{1,12}$ ]] || die "--id '$id' must be 1-12 of a-z and 0-9"
for tool in ip:iproute2 tc:iproute2 nft:nftables python3:python3 nginx:nginx; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || die "${tool%%:*} not found on PATH (Debian package ${tool#*:}; scripts/install-deps installs it)"
done
[ -r /usr/lib/nginx/modules/ngx_rtmp_module.so ] || die "nginx's rtmp module is not installed (Debian package libnginx-mod-rtmp)"
[ "$(id -u)" -eq 0 ] || die "network namespaces need root (run with sudo)"
if [ -n "$bin_dir" ]; then
  for b in surge-relay surge-load surge-netem; do
    [ -x "$bin_dir/$b" ] || die "--bin-dir $bin_dir has no executable $b"
  done
  bin_dir="$(cd "$bin_dir" && pwd)"
else
  command -v cargo >/dev/null 2>&1 || die "cargo not found on PATH (or give --bin-dir with built binaries)"
fi
if ip netns list | awk '{print $1}' | grep "^surgenet-$id-" >/dev/null; then
  die "netem run id '$id' is in use (namespaces surgenet-$id-*): choose another --id"
fi

if [ -z "$bin_dir" ]; then
  # Release: the CPU phase compares servers, and a debug relay would not be a fair one.
  progress "building surge-relay, surge-load, surge-netem (release)"
  build_log="$(mktemp)"
  if ! cargo build --release -q -p surge-relay -p surge-load -p surge-netem >"$build_log" 2>&1; then
    msg="$(grep -m1 -E '^error' "$build_log" || tail -1 "$build_log")"
    rm -f "$build_log"
    die "cargo build failed: $msg"
  fi
  rm -f "$build_log"
  bin_dir="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release"
fi
relay="$bin_dir/surge-relay"
load="$bin_dir/surge-load"
export SURGE_NETEM_BIN="$bin_dir/surge-netem"

# --- The run.
[ -n "$out" ] || out="target/bench/push-vs-hls-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out/viewers" "$out/cpu"
out="$(cd "$out" && pwd)"
work="$(mktemp -d)"
state="$work/net"
pids=()
finished=0
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  scripts/netem/down --state "$state" >/dev/null 2>&1 || true
  rm -rf "$work"
  if [ "$finished" -eq 0 ]; then
    echo "$me: the run did not finish (exit $rc); its logs are in $out" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

protocols=(rtmp flv hls)
topo="$work/push-vs-hls.topo"
{
  echo "# $me: broadcaster -> server, and $viewers viewer nodes per protocol"
  echo "node broadcaster rate=$up_rate"
  echo "node server"
  for p in "${protocols[@]}"; do
    for j in $(seq "$viewers"); do echo "node v$p-$j rate=$rate"; done
  done
  echo "link up broadcaster server delay=${up_delay}ms"
  for p in "${protocols[@]}"; do
    for j in $(seq "$viewers"); do echo "link l$p-$j server v$p-$j delay=$((rtt / 2))ms"; done
  done
} >"$topo"
cp "$topo" "$out/topology.topo"
{ date -u; uptime; top -b -n 1 -w 200 | head -20; } >"$out/machine.txt" 2>&1 || true
load_start="$(cut -d' ' -f1-3 /proc/loadavg)"

progress "netem up: id $id ($((3 * viewers + 2)) nodes; viewers $rate, ${rtt} ms RTT; broadcaster $up_rate, ${up_delay} ms one way)"
scripts/netem/up --topology "$topo" --state "$state" --id "$id" >"$work/up.out" 2>&1 ||
  die "netem up failed: $(tail -1 "$work/up.out")"
run=(scripts/netem/run --state "$state")
srv="$(scripts/netem/addr --state "$state" server)"

# wait_tcp NODE PORT...: until NODE reaches every PORT on the server (or 10 s pass).
wait_tcp() {
  local node=$1 check="" p
  shift
  for p in "$@"; do check+="echo >/dev/tcp/$srv/$p && "; done
  for _ in $(seq 100); do
    "${run[@]}" "$node" -- bash -c "${check}true" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

progress "surge origin ($srv:1935) and edge ($srv:1936, HTTP-FLV :8081)"
RUST_LOG=warn "${run[@]}" server -- "$relay" --rtmp-listen "$srv:1935" --http-listen "$srv:8080" \
  --admin-listen "$srv:9090" >"$out/origin.log" 2>&1 &
pids+=($!)
RUST_LOG=warn "${run[@]}" server -- "$relay" --tier edge --upstream "rtmp://$srv:1935/live" \
  --rtmp-listen "$srv:1936" --http-listen "$srv:8081" --admin-listen "$srv:9091" >"$out/edge.log" 2>&1 &
edge=$!
pids+=("$edge")
wait_tcp server 1935 8080 1936 8081 || die "the relays did not start: $(tail -1 "$out/origin.log") / $(tail -1 "$out/edge.log")"

progress "publisher: ${bitrate} kbit/s, 30 fps, ${gop} s GOP, broadcaster -> rtmp://$srv:1935/live/bench"
RUST_LOG=warn "${run[@]}" broadcaster -- "$load" publish --url "rtmp://$srv:1935/live/bench" \
  --bitrate-kbps "$bitrate" --fps 30 --gop-seconds "$gop" --duration forever >"$out/publish.log" 2>&1 &
pub=$!
pids+=("$pub")
sleep 2
kill -0 "$pub" 2>/dev/null || die "the publisher exited: $(tail -1 "$out/publish.log")"

# nginx-rtmp, started once the stream is live at the origin (a static pull that finds no
# stream retries only after a while).
ngx="$out/nginx"
# The playlist's window: room for the segments players start back from, and one more.
window=$((hls_start + 1 > 4 ? hls_start + 1 : 4))
mkdir -p "$ngx/hls" "$ngx/tmp"
cat >"$ngx/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
# Workers as root: they write and serve the segments under OUT, which may sit below
# directories that nginx's default user (nobody) cannot enter (mktemp -d is 0700).
user root root;
worker_processes 1;
worker_rlimit_nofile 20000;
pid $ngx/nginx.pid;
events { worker_connections 10000; }
rtmp {
  server {
    listen $srv:1937;
    chunk_size 4096;
    application live {
      live on;
      pull rtmp://$srv:1935/live/bench name=bench static;
      hls on;
      hls_path $ngx/hls/live;
      hls_fragment ${fragment}s;
      hls_playlist_length $((fragment * window))s;
    }
  }
}
http {
  access_log off;
  client_body_temp_path $ngx/tmp;
  proxy_temp_path $ngx/tmp;
  fastcgi_temp_path $ngx/tmp;
  uwsgi_temp_path $ngx/tmp;
  scgi_temp_path $ngx/tmp;
  types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
  server {
    listen $srv:8082;
    location /live/ {
      root $ngx/hls;
      add_header Cache-Control no-cache;
    }
  }
}
CONF
progress "nginx-rtmp: pulls the origin's stream, hls_fragment ${fragment}s; RTMP :1937, HLS http://$srv:8082/live/bench.m3u8"
"${run[@]}" server -- nginx -c "$ngx/nginx.conf" -p "$ngx" -g 'daemon off; error_log stderr;' >"$out/nginx.log" 2>&1 &
nginx_pid=$!
pids+=("$nginx_pid")
wait_tcp server 1937 8082 || die "nginx did not start: $(tail -1 "$out/nginx.log")"

long=$((duration + 3 * (cpu_duration + 40) + 600))
trace() { # trace FILE VIEWERS
  cat >"$1" <<EOF
# livetrace v1; $2 viewers for the whole run ($me)
broadcast_id,t_s,region,viewers,arrivals,departures
b,0,*,$2,$2,0
b,$long,*,$2,0,0
EOF
}
trace "$work/one.csv" 1
# A viewer that keeps the edge's pull up for the whole run (the CPU baselines need it).
RUST_LOG=warn "${run[@]}" server -- "$load" replay --trace "$work/one.csv" --target "*=$srv:1936" \
  --stream live/bench --speed 1 >"$out/keeper.log" 2>&1 &
pids+=($!)
# Viewers join a broadcast that has been on for a while: the playlist lists at least the
# segments an HLS player starts back from (or the window is as full as it gets).
listed() { grep -c '^#EXTINF' "$ngx/hls/live/bench.m3u8" 2>/dev/null || true; }
want=$hls_start
progress "waiting for nginx's playlist to list $want segments"
for _ in $(seq $((2 * fragment * (want + 3)))); do
  [ "$(listed)" -ge "$want" ] 2>/dev/null && break
  sleep 0.5
done
[ "$(listed)" -ge "$want" ] 2>/dev/null ||
  die "nginx's playlist lists $(listed) segments after $((fragment * (want + 3))) s (see $out/nginx.log)"

# --- Delay phase.
viewer_args=(--speed 1 --duration "${duration}s" --warmup 10s --player-buffer "$player_buffer"
  --buffer-sweep "0.5,1,2,4,6,9" --hls-start-segments "$hls_start")
vpids=()
vnames=()
progress "delay phase: $viewers viewers per protocol (rtmp, flv at the edge; hls at nginx) + 3 local probes, ${duration} s"
for probe in origin:1935 edge:1936 nginx:1937; do
  RUST_LOG=warn "${run[@]}" server -- "$load" replay --trace "$work/one.csv" \
    --target "*=$srv:${probe#*:}" --stream live/bench --protocol rtmp "${viewer_args[@]}" \
    --report "$out/viewers/probe-${probe%%:*}.json" >"$out/viewers/probe-${probe%%:*}.log" 2>&1 &
  pids+=($!)
  vpids+=($!)
  vnames+=("probe-${probe%%:*}")
done
# Viewer j of every protocol starts together; the j's spread over one fragment, so the HLS
# viewers poll at different phases of the segment cycle.
stagger="$(python3 -c "print(round($fragment / $viewers, 3))")"
for j in $(seq "$viewers"); do
  for p in "${protocols[@]}"; do
    case "$p" in
      hls) target="*=$srv:1937:8082" ;;
      *) target="*=$srv:1936:8081" ;;
    esac
    RUST_LOG=warn "${run[@]}" "v$p-$j" -- "$load" replay --trace "$work/one.csv" --target "$target" \
      --stream live/bench --protocol "$p" "${viewer_args[@]}" \
      --report "$out/viewers/v$p-$j.json" >"$out/viewers/v$p-$j.log" 2>&1 &
    pids+=($!)
    vpids+=($!)
    vnames+=("v$p-$j")
  done
  [ "$j" -eq "$viewers" ] || sleep "$stagger"
done
t0=$(date +%s)
next_report=0
while :; do
  running=0
  for p in "${vpids[@]}"; do kill -0 "$p" 2>/dev/null && running=$((running + 1)); done
  [ "$running" -gt 0 ] || break
  kill -0 "$pub" 2>/dev/null || die "the publisher exited: $(tail -1 "$out/publish.log")"
  el=$(($(date +%s) - t0))
  if [ "$el" -ge "$next_report" ]; then
    progress "t=${el}s: $running/${#vpids[@]} viewers playing"
    next_report=$((el - el % 10 + 10))
  fi
  [ "$el" -le $((duration + 60)) ] || die "viewers still running $el s after start: see $out/viewers/*.log"
  sleep 1
done
failed=()
for k in "${!vpids[@]}"; do wait "${vpids[k]}" || failed+=("${vnames[k]}"); done
[ ${#failed[@]} -eq 0 ] || progress "viewers that exited with an error: ${failed[*]} (see their logs)"

# --- CPU phase.
cpu_rows="$out/cpu/rows.txt"
: >"$cpu_rows"
if [ "$cpu_viewers" -gt 0 ]; then
  trace "$work/many.csv" "$cpu_viewers"
  for p in "${protocols[@]}"; do
    case "$p" in
      hls) target="*=$srv:1937:8082" server_pid=$nginx_pid server_name=nginx ;;
      *) target="*=$srv:1936:8081" server_pid=$edge server_name=surge-edge ;;
    esac
    idle=10
    c0=$(cpu_seconds "$server_pid")
    sleep "$idle"
    c1=$(cpu_seconds "$server_pid")
    progress "CPU phase, $p: $cpu_viewers viewers of $server_name (on the server node, no WAN), ${cpu_duration} s after a 10 s ramp"
    RUST_LOG=warn "${run[@]}" server -- "$load" replay --trace "$work/many.csv" --target "$target" \
      --stream live/bench --protocol "$p" --speed 1 --duration "$((cpu_duration + 15))s" \
      --hls-start-segments "$hls_start" --no-preflight \
      --report "$out/cpu/$p.json" >"$out/cpu/$p.log" 2>&1 &
    lp=$!
    pids+=("$lp")
    sleep 10
    c2=$(cpu_seconds "$server_pid")
    sleep "$cpu_duration"
    c3=$(cpu_seconds "$server_pid")
    wait "$lp" || progress "the $p CPU viewers exited with an error (see $out/cpu/$p.log)"
    echo "$p $server_name $idle $c0 $c1 $cpu_duration $c2 $c3" >>"$cpu_rows"
  done
fi
load_end="$(cut -d' ' -f1-3 /proc/loadavg)"

progress "results"
python3 - "$out" "$viewers" "$duration" "$rate" "$rtt" "$up_rate" "$up_delay" "$bitrate" "$gop" \
  "$fragment" "$player_buffer" "$hls_start" "$cpu_viewers" "$load_start" "$load_end" <<'PY'
import json, os, sys, datetime, platform

(out, viewers, duration, rate, rtt, up_rate, up_delay, bitrate, gop, fragment, player_buffer,
 hls_start, cpu_viewers, load_start, load_end) = sys.argv[1:16]
viewers = int(viewers)


def load(name):
    path = os.path.join(out, "viewers", name + ".json")
    return json.load(open(path)) if os.path.exists(path) else None


def median(v):
    v = sorted(x for x in v if x is not None)
    if not v:
        return None
    m = len(v) // 2
    return v[m] if len(v) % 2 else (v[m - 1] + v[m]) / 2


def sub(a, b):
    return None if a is None or b is None else a - b


probes = {k: load("probe-" + k) for k in ("origin", "edge", "nginx")}
probe_ms = {k: (r["qoe"]["delivery_latency_ms"]["p50"] if r else None) for k, r in probes.items()}
upload = probe_ms["origin"]
rows = {}
for p in ("rtmp", "flv", "hls"):
    reps = [r for r in (load(f"v{p}-{j}") for j in range(1, viewers + 1)) if r]
    q = [r["qoe"] for r in reps]
    row = {
        "viewers_ok": len(reps),
        "viewers": viewers,
        "e2e_ms_p50": median([x["playback_latency_ms"]["p50"] for x in q]),
        "e2e_ms_p99": max((x["playback_latency_ms"]["p99"] for x in q if x["playback_latency_ms"]["p99"] is not None), default=None),
        "delivery_ms_p50": median([x["delivery_latency_ms"]["p50"] for x in q]),
        "client_buffer_ms": median([x["buffering_delay_ms"]["p50"] for x in q]),
        "join_ms_p50": median([x["join_time_ms"]["p50"] for x in q]),
        "stalls": sum(x["stalls"] for x in q),
        "errors": sum(r.get("errors", 0) for r in reps),
        "upload_ms": upload,
    }
    if p == "hls":
        h = [r["hls"] for r in reps if r.get("hls")]
        hop = sub(probe_ms["nginx"], upload)
        row["relay_hops_ms"] = hop
        row["chunking_ms"] = median([x["chunking_ms"]["mean"] for x in h])
        row["segment_s"] = median([x["segment_duration_s_mean"] for x in h])
        raw_poll = median([x["polling_ms"]["mean"] for x in h])
        row["polling_ms_measured"] = raw_poll
        row["polling_ms"] = sub(sub(raw_poll, upload), hop)
        row["last_mile_ms"] = median([x["download_ms"]["mean"] for x in h])
        row["playlist_fetches"] = sum(x["playlist_fetches"] for x in h)
        row["playlists_unchanged"] = sum(x["playlists_unchanged"] for x in h)
        row["segments_missed"] = sum(x["segments_missed"] for x in h)
    else:
        row["relay_hops_ms"] = sub(probe_ms["edge"], upload)
        row["chunking_ms"] = 0.0
        row["polling_ms"] = 0.0
        row["last_mile_ms"] = sub(row["delivery_ms_p50"], probe_ms["edge"])
    parts = [row[k] for k in ("upload_ms", "relay_hops_ms", "chunking_ms", "polling_ms", "last_mile_ms", "client_buffer_ms")]
    row["sum_of_parts_ms"] = None if any(x is None for x in parts) else sum(parts)
    rows[p] = row

cpu = []
rows_file = os.path.join(out, "cpu", "rows.txt")
for line in open(rows_file) if os.path.exists(rows_file) else []:
    p, server, idle, c0, c1, dur, c2, c3 = line.split()
    idle, dur = float(idle), float(dur)
    idle_rate = (float(c1) - float(c0)) / idle
    busy_rate = (float(c3) - float(c2)) / dur
    n = int(cpu_viewers)
    rep_path = os.path.join(out, "cpu", p + ".json")
    rep = json.load(open(rep_path)) if os.path.exists(rep_path) else {}
    cpu.append({
        "protocol": p, "server": server, "viewers": n,
        "viewers_peak": rep.get("viewers_peak"), "errors": rep.get("errors"),
        "idle_cpu_percent": round(idle_rate * 100, 2),
        "cpu_percent": round(busy_rate * 100, 2),
        "cpu_s_per_viewer_minute": round((busy_rate - idle_rate) * 60 / n, 5),
        "cpu_s_per_viewer_minute_total": round(busy_rate * 60 / n, 5),
        "goodput_mbps": rep.get("qoe", {}).get("goodput_mbps"),
    })

results = {
    "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "host": {"cpus": os.cpu_count(), "loadavg_start": load_start, "loadavg_end": load_end,
             "kernel": platform.release()},
    "config": {"viewers_per_protocol": viewers, "duration_s": int(duration), "viewer_rate": rate,
               "rtt_ms": int(rtt), "broadcaster_rate": up_rate, "broadcaster_delay_ms": int(up_delay),
               "bitrate_kbps": int(bitrate), "gop_s": int(gop), "hls_fragment_s": int(fragment),
               "player_buffer_s": float(player_buffer), "hls_start_segments": int(hls_start)},
    "probes_delivery_ms_p50": probe_ms,
    "delay": rows,
    "cpu": cpu,
    "paper": {"rtmp_e2e_s": 1.4, "hls_e2e_s": 11.7, "hls_client_buffer_s": 6.9,
              "hls_chunking_s": 3.0, "hls_polling_s": 1.2, "hls_cdn_hop_s": 0.3},
}
json.dump(results, open(os.path.join(out, "results.json"), "w"), indent=2)


def s(x):
    return "-" if x is None else f"{x / 1000:.2f}"


names = {"rtmp": "Surge RTMP (push)", "flv": "Surge HTTP-FLV (push)", "hls": "nginx-rtmp HLS (polling)"}
lines = [
    f"{bitrate} kbit/s, 30 fps, {gop} s GOP; viewers {rate} access, {rtt} ms RTT; broadcaster "
    f"{up_rate}, {up_delay} ms one way; player pre-buffer {player_buffer} s; HLS {fragment} s "
    f"fragments, players start {hls_start} segments back; {viewers} viewers per protocol, {duration} s",
    "",
    "| seconds | end to end p50 | p99 | upload | relay hops | chunking | polling | last mile | client buffer | sum of parts | paper |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
]
paper = {"rtmp": "1.4", "flv": "-", "hls": "11.7 (buffer 6.9, chunking 3, polling 1.2, CDN 0.3)"}
for p, r in rows.items():
    chunk = s(r["chunking_ms"])
    if p == "hls" and r.get("segment_s"):
        chunk += f" (segments {r['segment_s']:.2f} s)"
    lines.append(
        f"| {names[p]} ({r['viewers_ok']}/{r['viewers']}) | {s(r['e2e_ms_p50'])} | {s(r['e2e_ms_p99'])} | {s(r['upload_ms'])} "
        f"| {s(r['relay_hops_ms'])} | {chunk} | {s(r['polling_ms'])} | {s(r['last_mile_ms'])} "
        f"| {s(r['client_buffer_ms'])} | {s(r['sum_of_parts_ms'])} | {paper[p]} |")
h = rows["hls"]
lines += ["", f"HLS polling: {h.get('playlist_fetches')} playlist fetches ({h.get('playlists_unchanged')} unchanged), "
          f"{h.get('segments_missed')} segments missed; stalls: " +
          ", ".join(f"{p} {r['stalls']}" for p, r in rows.items()) +
          "; join p50 s: " + ", ".join(f"{p} {s(r['join_ms_p50'])}" for p, r in rows.items())]
if cpu:
    lines += ["", "| server CPU | viewers | CPU % idle (stream, no viewers) | CPU % with viewers | CPU-s per viewer-minute (above idle) | incl. idle |",
              "|---|---|---|---|---|---|"]
    for c in cpu:
        lines.append(f"| {c['server']} ({c['protocol']}) | {c['viewers_peak']}/{c['viewers']} | {c['idle_cpu_percent']} | {c['cpu_percent']} "
                     f"| {c['cpu_s_per_viewer_minute']:.4f} | {c['cpu_s_per_viewer_minute_total']:.4f} |")
text = "\n".join(lines) + "\n"
open(os.path.join(out, "results.md"), "w").write(text)
print(text, end="")
PY
finished=1
progress "done: $out/results.json (load average at start $load_start, at end $load_end)"
