#!/usr/bin/env bash
# Access-bandwidth sweep (issue #18, item 2): join time and stalls against the viewer's access
# bandwidth, on an emulated network (scripts/netem), as in the Periscope QoE study (Siekkinen
# et al., IMC 2016: "2 Mbps appears to be the key boundary for access network bandwidth below
# which startup latency and video stalling clearly increase").
#
# One netem run: an `origin` node (unlimited access) runs a surge-relay origin and a
# `surge-load publish` publisher; for each rate of RATES, VIEWERS_PER_RATE viewer nodes whose
# access link is capped at that rate (tc tbf, both directions) each run ONE viewer
# (`surge-load replay`, one viewer for DURATION seconds), so no viewer shares its cap. Every
# viewer node reaches the origin over its own emulated link (DELAY one way). All rates run at
# the same time (the origin's access is unlimited, so they do not compete for bandwidth; they
# do share the machine's CPU). Viewers of a rate start spread over one GOP (2 s), so their
# joins sample different positions in the GOP.
#
# Stream: synthetic H.264 at 1200 kbit/s video, 30 fps, 2 s GOP, 640x368 (`surge-load publish`
# makes video only, at any --bitrate-kbps). 1.2 Mbit/s is issue #18's stand-in for a typical
# Periscope stream (~1 Mbit/s of video plus the audio the synthetic stream lacks); the study's
# own bitrate distribution is not checked here. Change it with --bitrate-kbps.
#
# Protocol: HTTP-FLV by default (what browsers play); --protocol rtmp (or mix) for RTMP.
#
# Per rate the script reports join time p50/p90 (request -> first played frame, over the
# viewers of the rate), stalls (total), stall ratio (mean over viewers), playback latency p50
# (median of the viewers' p50s), goodput (mean per viewer: media payload kbit/s over its run), and
# the stall ratio per player buffer size (--buffer-sweep) for every rate, with join time and
# playback latency per size for SWEEP_RATE (default 2mbit).
# All of it, with every viewer's figures, goes to OUT/results.json (and results.md); every
# viewer's surge-load report is in OUT/viewers/.
#
# Needs root, iproute2, nftables, python3 and cargo (or --bin-dir). Run --help for flags.
set -euo pipefail
cd "$(dirname "$0")/../.."

me="access-bandwidth"
die() {
  echo "$me: error: $*" >&2
  exit 1
}
progress() { echo "$me: [$(date -u +%H:%M:%S)] $*"; }

usage() {
  cat <<'EOF'
Usage: scripts/bench/access-bandwidth.sh [options]

Join time and stalls of viewers behind capped access links (scripts/netem), one viewer per
capped node, all rates in one netem run. Options (environment variable in brackets):

  --rates "R1 R2 ..."     access caps, tc units (500kbit, 2mbit, 1.5mbit) [RATES]
                          default: "1mbit 2mbit 5mbit 20mbit" (commas also separate)
  --viewers-per-rate N    capped nodes per rate, one viewer each [VIEWERS_PER_RATE] default 4
  --duration S            seconds each viewer plays (10-3600) [DURATION] default 60
  --bitrate-kbps K        stream's video bitrate, kbit/s [BITRATE_KBPS] default 1200
  --protocol P            flv (HTTP-FLV), rtmp or mix [PROTOCOL] default flv
  --player-buffer S       the player model's pre-buffer, seconds [PLAYER_BUFFER] default 2
  --buffer-sweep LIST     more pre-buffer sizes, seconds [BUFFER_SWEEP] default 0.5,1,2,4,6,9
  --sweep-rate R          rate whose join time and latency per buffer size are tabled
                          [SWEEP_RATE] default 2mbit (the stall ratio per size is tabled for
                          every rate; all of it is in results.json)
  --delay D               one-way delay of each viewer's link to the origin [DELAY] default 20ms
  --out DIR               results directory [OUT] default target/bench/access-bandwidth-<time>
  --id ID                 netem run id (1-12 of a-z0-9) [NETEM_ID] default ab<pid>
  --bin-dir DIR           take surge-relay, surge-load, surge-netem from DIR [SURGE_BIN_DIR]
                          default: build them (cargo build, debug) and use those
  --release               build and use release binaries instead of debug
  -h, --help              this text

Output: a table per rate (join time p50/p90, stalls, stall ratio, playback latency p50,
goodput), the stall ratio per buffer size for every rate, join time and latency per buffer
size for --sweep-rate, OUT/results.json (everything, per viewer too), OUT/results.md (the
tables) and OUT/viewers/*.json (the viewers' surge-load reports).
The netem run is removed on exit (also on failure or Ctrl-C); only processes this script
started are stopped, by pid. Takes about DURATION + 20 s once built.
EOF
}

rates_in="${RATES:-1mbit 2mbit 5mbit 20mbit}"
per_rate="${VIEWERS_PER_RATE:-4}"
duration="${DURATION:-60}"
bitrate="${BITRATE_KBPS:-1200}"
protocol="${PROTOCOL:-flv}"
player_buffer="${PLAYER_BUFFER:-2}"
buffer_sweep="${BUFFER_SWEEP:-0.5,1,2,4,6,9}"
sweep_rate="${SWEEP_RATE:-2mbit}"
delay="${DELAY:-20ms}"
out="${OUT:-}"
id="${NETEM_ID:-ab$$}"
bin_dir="${SURGE_BIN_DIR:-}"
profile=debug
while [ $# -gt 0 ]; do
  case "$1" in
    --rates | --viewers-per-rate | --duration | --bitrate-kbps | --protocol | --player-buffer | \
      --buffer-sweep | --sweep-rate | --delay | --out | --id | --bin-dir)
      [ $# -ge 2 ] || die "$1 needs a value (see --help)"
      case "$1" in
        --rates) rates_in="$2" ;;
        --viewers-per-rate) per_rate="$2" ;;
        --duration) duration="$2" ;;
        --bitrate-kbps) bitrate="$2" ;;
        --protocol) protocol="$2" ;;
        --player-buffer) player_buffer="$2" ;;
        --buffer-sweep) buffer_sweep="$2" ;;
        --sweep-rate) sweep_rate="$2" ;;
        --delay) delay="$2" ;;
        --out) out="$2" ;;
        --id) id="$2" ;;
        --bin-dir) bin_dir="$2" ;;
      esac
      shift 2
      ;;
    --release) profile=release; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

# --- Input, checked before anything is built or created.
read -r -a rates <<<"${rates_in//,/ }"
[ ${#rates[@]} -gt 0 ] || die "--rates is empty"
labels=()
for r in "${rates[@]}"; do
  [[ "$r" =~ ^[0-9]+(\.[0-9]+)?(bit|kbit|mbit|gbit)$ ]] ||
    die "--rates: '$r' is not a rate (a number and bit, kbit, mbit or gbit: 500kbit, 2mbit, 1.5mbit)"
  label="${r//./p}"
  [ ${#label} -le 12 ] || die "--rates: '$r' is too long a spelling (at most 12 characters)"
  for l in "${labels[@]}"; do [ "$l" != "$label" ] || die "--rates: '$r' is given twice"; done
  labels+=("$label")
done
[[ "$per_rate" =~ ^[1-9][0-9]{0,2}$ ]] || die "--viewers-per-rate '$per_rate' must be a positive integer"
[ $((${#rates[@]} * per_rate)) -le 240 ] || die "--rates x --viewers-per-rate is $((${#rates[@]} * per_rate)) viewer nodes (at most 240)"
[[ "$per_rate" -le 99 ]] || die "--viewers-per-rate must be at most 99"
if ! [[ "$duration" =~ ^[0-9]{1,4}$ ]] || [ "$duration" -lt 10 ] || [ "$duration" -gt 3600 ]; then
  die "--duration '$duration' must be whole seconds from 10 to 3600"
fi
if ! [[ "$bitrate" =~ ^[1-9][0-9]{0,5}$ ]] || [ "$bitrate" -gt 100000 ]; then
  die "--bitrate-kbps '$bitrate' must be an integer from 1 to 100000"
fi
case "$protocol" in flv | rtmp | mix) ;; *) die "--protocol '$protocol' must be flv, rtmp or mix" ;; esac
num='[0-9]+(\.[0-9]+)?'
[[ "$player_buffer" =~ ^$num$ ]] || die "--player-buffer '$player_buffer' must be seconds (e.g. 2, 0.5)"
[[ "$buffer_sweep" =~ ^$num(,$num)*$ ]] || die "--buffer-sweep '$buffer_sweep' must be comma-separated seconds (e.g. 0.5,1,2)"
[[ "$delay" =~ ^$num(ms|s)$ ]] || die "--delay '$delay' must be a duration with a unit (20ms, 0.1s)"
[[ "$id" =~ ^[a-z0-9]{1,12}$ ]] || die "--id '$id' must be 1-12 of a-z and 0-9"
sweep_label=""
for i in "${!rates[@]}"; do [ "${rates[i]}" != "$sweep_rate" ] || sweep_label="${labels[i]}"; done
[ -n "$sweep_label" ] || die "--sweep-rate '$sweep_rate' is not one of --rates (${rates[*]})"
for tool in ip:iproute2 tc:iproute2 nft:nftables python3:python3; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || die "${tool%%:*} not found on PATH (Debian package ${tool#*:}; scripts/install-deps installs it)"
done
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
  progress "building surge-relay, surge-load, surge-netem ($profile)"
  flags=()
  [ "$profile" = debug ] || flags=(--release)
  build_log="$(mktemp)"
  if ! cargo build "${flags[@]}" -q -p surge-relay -p surge-load -p surge-netem >"$build_log" 2>&1; then
    msg="$(grep -m1 -E '^error' "$build_log" || tail -1 "$build_log")"
    rm -f "$build_log"
    die "cargo build failed: $msg"
  fi
  rm -f "$build_log"
  bin_dir="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/$profile"
fi
relay="$bin_dir/surge-relay"
load="$bin_dir/surge-load"
export SURGE_NETEM_BIN="$bin_dir/surge-netem"
for r in "${rates[@]}"; do
  bits="$("$SURGE_NETEM_BIN" rate "$r" 2>&1)" || die "--rates: $(sed -n 's/^Error: //p' <<<"$bits" | head -1)"
done

# --- The run.
[ -n "$out" ] || out="target/bench/access-bandwidth-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out/viewers"
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
  # A failed or interrupted run keeps its logs (the relay's, the viewers') for a look.
  if [ "$finished" -eq 0 ]; then
    echo "$me: the run did not finish (exit $rc); its logs are in $out" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

topo="$work/access.topo"
{
  echo "# $me: an origin and, per rate, $per_rate viewer nodes capped at that rate"
  echo "node origin"
  for i in "${!rates[@]}"; do
    for j in $(seq "$per_rate"); do echo "node v${labels[i]}-$j rate=${rates[i]}"; done
  done
  for i in "${!rates[@]}"; do
    for j in $(seq "$per_rate"); do echo "link l${labels[i]}-$j origin v${labels[i]}-$j delay=$delay"; done
  done
} >"$topo"
cp "$topo" "$out/topology.topo"
# What else the machine was doing (the viewers, relay and proxy share its CPUs).
{ date -u; uptime; top -b -n 1 -w 200 | head -20; } >"$out/machine.txt" 2>&1 || true

load_start="$(cut -d' ' -f1-3 /proc/loadavg)"
progress "netem up: id $id, $((${#rates[@]} * per_rate + 1)) nodes (rates: ${rates[*]}; $per_rate viewer nodes each; $delay one way to the origin)"
scripts/netem/up --topology "$topo" --state "$state" --id "$id" >"$work/up.out" 2>&1 ||
  die "netem up failed: $(tail -1 "$work/up.out")"
run=(scripts/netem/run --state "$state")
origin="$(scripts/netem/addr --state "$state" origin)"

progress "origin relay at $origin (RTMP 1935, HTTP-FLV 8080)"
RUST_LOG=warn "${run[@]}" origin -- "$relay" --rtmp-listen "$origin:1935" --http-listen "$origin:8080" \
  --admin-listen "$origin:9090" >"$out/origin.log" 2>&1 &
pids+=($!)
up=0
for _ in $(seq 100); do
  if "${run[@]}" origin -- bash -c "echo >/dev/tcp/$origin/1935 && echo >/dev/tcp/$origin/8080" 2>/dev/null; then
    up=1
    break
  fi
  kill -0 "${pids[0]}" 2>/dev/null || break
  sleep 0.1
done
[ "$up" -eq 1 ] || die "the origin relay did not start: $(tail -1 "$out/origin.log")"

progress "publisher: ${bitrate} kbit/s video, 30 fps, 2 s GOP -> rtmp://$origin:1935/live/bw"
RUST_LOG=warn "${run[@]}" origin -- "$load" publish --url "rtmp://$origin:1935/live/bw" \
  --bitrate-kbps "$bitrate" --fps 30 --gop-seconds 2 --duration forever >"$out/publish.log" 2>&1 &
pub=$!
pids+=("$pub")
sleep 3
kill -0 "$pub" 2>/dev/null || die "the publisher exited: $(tail -1 "$out/publish.log")"

# One viewer per node for the whole run (the trace outlasts --duration).
cat >"$work/trace.csv" <<EOF
# livetrace v1; one viewer for the whole run ($me)
broadcast_id,t_s,region,viewers,arrivals,departures
bw,0,*,1,1,0
bw,$((duration + 600)),*,1,0,0
EOF
progress "viewers: $((${#rates[@]} * per_rate)) ($protocol, player buffer ${player_buffer} s, sweep $buffer_sweep), ${duration} s each"
viewer_pids=()
viewer_names=()
# Spread each rate's viewers over one GOP (2 s): viewer j of every rate starts together.
stagger="$(python3 -c "print(round(2.0 / $per_rate, 3))")"
for j in $(seq "$per_rate"); do
  for i in "${!rates[@]}"; do
    node="v${labels[i]}-$j"
    RUST_LOG=warn "${run[@]}" "$node" -- "$load" replay --trace "$work/trace.csv" \
      --target "*=$origin:1935:8080" --stream live/bw --protocol "$protocol" --speed 1 \
      --duration "${duration}s" --player-buffer "$player_buffer" --buffer-sweep "$buffer_sweep" \
      --report "$out/viewers/$node.json" >"$out/viewers/$node.log" 2>&1 &
    pids+=($!)
    viewer_pids+=($!)
    viewer_names+=("$node")
  done
  [ "$j" -eq "$per_rate" ] || sleep "$stagger"
done

t0=$(date +%s)
next_report=0
while :; do
  running=0
  for p in "${viewer_pids[@]}"; do kill -0 "$p" 2>/dev/null && running=$((running + 1)); done
  [ "$running" -gt 0 ] || break
  kill -0 "$pub" 2>/dev/null || die "the publisher exited during the run: $(tail -1 "$out/publish.log")"
  el=$(($(date +%s) - t0))
  if [ "$el" -ge "$next_report" ]; then
    progress "t=${el}s: $running/${#viewer_pids[@]} viewers playing"
    next_report=$((el - el % 10 + 10))
  fi
  if [ "$el" -gt $((duration + 60)) ]; then
    die "viewers still running $el s after start (expected ${duration} s): see $out/viewers/*.log"
  fi
  sleep 1
done
failed=()
for k in "${!viewer_pids[@]}"; do
  wait "${viewer_pids[k]}" || failed+=("${viewer_names[k]}")
done
[ ${#failed[@]} -eq 0 ] || progress "viewers that exited with an error: ${failed[*]} (see their logs; counted as failed in the tables)"
load_end="$(cut -d' ' -f1-3 /proc/loadavg)"

progress "results"
python3 - "$out" "$duration" "$bitrate" "$protocol" "$player_buffer" "$delay" "$sweep_rate" \
  "$load_start" "$load_end" "$profile" "$per_rate" "${#rates[@]}" "${rates[@]}" "${labels[@]}" <<'PY'
import json, os, sys, datetime, platform

out, duration, bitrate, protocol, player_buffer, delay, sweep_rate, load_start, load_end, profile = sys.argv[1:11]
per_rate = int(sys.argv[11])
n = int(sys.argv[12])
rates = sys.argv[13:13 + n]
labels = sys.argv[13 + n:13 + 2 * n]


def quantile(v, q):
    """Linear interpolation between closest ranks (numpy's default)."""
    v = sorted(x for x in v if x is not None)
    if not v:
        return None
    pos = (len(v) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def mean(v):
    v = [x for x in v if x is not None]
    return sum(v) / len(v) if v else None


def r3(x):
    return None if x is None else round(x, 3)


results = {
    "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "host": {"cpus": os.cpu_count(), "loadavg_start": load_start, "loadavg_end": load_end,
             "kernel": platform.release(), "binaries": profile},
    "config": {"rates": rates, "viewers_per_rate": per_rate, "duration_s": int(duration),
               "bitrate_kbps": int(bitrate), "fps": 30, "gop_s": 2, "protocol": protocol,
               "player_buffer_s": float(player_buffer), "link_delay_one_way": delay},
    "rates": [],
}
for rate, label in zip(rates, labels):
    viewers = []
    for j in range(1, per_rate + 1):
        node = f"v{label}-{j}"
        path = os.path.join(out, "viewers", node + ".json")
        if not os.path.exists(path):
            viewers.append({"node": node, "ok": False})
            continue
        r = json.load(open(path))
        q = r["qoe"]
        viewers.append({
            "node": node, "ok": True,
            "sessions": r.get("viewer_sessions"),
            "errors": r.get("errors"),
            "frames_missing": r.get("details", {}).get("frames_missing"),
            "join_time_ms": q["join_time_ms"]["p50"],
            "startup_ms": r.get("startup_ms", {}).get("p50"),
            "stalls": q["stalls"],
            "stall_ratio": q["stall_ratio"],
            "stalled_s": q["stalled_s"],
            "playback_latency_ms_p50": q["playback_latency_ms"]["p50"],
            "playback_latency_ms_max": q["playback_latency_ms"]["max"],
            "delivery_latency_ms_p50": q["delivery_latency_ms"]["p50"],
            # Payload received over the viewer's run (one viewer per report), and per second
            # of its session (request to end).
            "goodput_kbps": None if q["goodput_mbps"] is None else q["goodput_mbps"] * 1000,
            "goodput_kbps_per_session_s": q["goodput_kbps_per_viewer"],
            "frames_discarded": q["frames_discarded"],
            "by_player_buffer": q["by_player_buffer"],
        })
    ok = [v for v in viewers if v["ok"]]
    joins = [v["join_time_ms"] for v in ok]
    sizes = sorted({row["player_buffer_s"] for v in ok for row in v["by_player_buffer"]})
    sweep = []
    for p in sizes:
        rows = [row for v in ok for row in v["by_player_buffer"] if row["player_buffer_s"] == p]
        sweep.append({
            "player_buffer_s": p,
            "stall_ratio_mean": r3(mean([row["stall_ratio"] for row in rows])),
            "stalls": sum(row["stalls"] for row in rows),
            "join_time_ms_p50": r3(quantile([row["join_time_ms_p50"] for row in rows], 0.5)),
            "playback_latency_ms_p50": r3(quantile([row["playback_latency_ms_p50"] for row in rows], 0.5)),
        })
    results["rates"].append({
        "rate": rate,
        "viewers": len(viewers),
        "viewers_ok": len(ok),
        "viewers_not_joined": sum(1 for v in ok if v["join_time_ms"] is None),
        "join_time_ms_p50": r3(quantile(joins, 0.5)),
        "join_time_ms_p90": r3(quantile(joins, 0.9)),
        "stalls": sum(v["stalls"] for v in ok),
        "stall_ratio_mean": r3(mean([v["stall_ratio"] for v in ok])),
        "stall_ratio_max": r3(max((v["stall_ratio"] for v in ok), default=None)),
        "playback_latency_ms_p50": r3(quantile([v["playback_latency_ms_p50"] for v in ok], 0.5)),
        "goodput_kbps_mean": r3(mean([v["goodput_kbps"] for v in ok])),
        "errors": sum(v["errors"] or 0 for v in ok),
        "by_player_buffer": sweep,
        "per_viewer": viewers,
    })
results["sweep_rate"] = sweep_rate
with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
    f.write("\n")


def fmt(x, d=0):
    return "-" if x is None else f"{x:,.{d}f}"


lines = [
    f"{protocol}, {bitrate} kbit/s video (30 fps, 2 s GOP), player buffer {player_buffer} s, "
    f"{per_rate} viewers per rate (one per capped node), {duration} s each, {delay} one way to the origin",
    "",
    "| access | viewers | join p50 ms | join p90 ms | stalls | stall ratio (mean / max) | playback latency p50 ms | goodput kbit/s | errors |",
    "|---|---|---|---|---|---|---|---|---|",
]
for r in results["rates"]:
    lines.append(
        f"| {r['rate']} | {r['viewers_ok']}/{r['viewers']} | {fmt(r['join_time_ms_p50'])} | {fmt(r['join_time_ms_p90'])} "
        f"| {r['stalls']} | {fmt(r['stall_ratio_mean'], 3)} / {fmt(r['stall_ratio_max'], 3)} "
        f"| {fmt(r['playback_latency_ms_p50'])} | {fmt(r['goodput_kbps_mean'])} | {r['errors']} |")
sizes = [row["player_buffer_s"] for row in results["rates"][0]["by_player_buffer"]]
lines += [
    "",
    "Stall ratio (mean over the rate's viewers) and stalls per player buffer size:",
    "",
    "| player buffer s | " + " | ".join(r["rate"] for r in results["rates"]) + " |",
    "|---|" + "---|" * len(results["rates"]),
]
for k, p in enumerate(sizes):
    cells = []
    for r in results["rates"]:
        row = r["by_player_buffer"][k] if k < len(r["by_player_buffer"]) else None
        cells.append("-" if row is None else f"{fmt(row['stall_ratio_mean'], 3)} ({row['stalls']})")
    lines.append(f"| {p:g} | " + " | ".join(cells) + " |")
s = next(r for r in results["rates"] if r["rate"] == sweep_rate)
lines += [
    "",
    f"Per player buffer size at {sweep_rate} ({s['viewers_ok']} viewers; stall ratio is their mean):",
    "",
    "| player buffer s | stall ratio | stalls | join p50 ms | playback latency p50 ms |",
    "|---|---|---|---|---|",
]
for row in s["by_player_buffer"]:
    lines.append(f"| {row['player_buffer_s']:g} | {fmt(row['stall_ratio_mean'], 3)} | {row['stalls']} "
                 f"| {fmt(row['join_time_ms_p50'])} | {fmt(row['playback_latency_ms_p50'])} |")
text = "\n".join(lines) + "\n"
open(os.path.join(out, "results.md"), "w").write(text)
print(text, end="")
PY
finished=1
progress "done: $out/results.json (load average at start $load_start, at end $load_end)"
