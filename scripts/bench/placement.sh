#!/usr/bin/env bash
# Placement benchmark: the same flash crowd replayed with real viewers against four edges of
# one region, (a) `random`: each viewer session picks an edge at random, as a Kubernetes
# Service does per connection (the load generator's target pool; the edges have no
# locator), and (b) `locator`: every viewer goes through one edge's locator (HTTP-FLV 302,
# RTMP /api/v1/locate), which places it on the least-loaded edge and overflows to the origin
# when every edge is past its high mark. One run of each per trace, side by side.
#
# Usage: scripts/bench/placement.sh          (defaults below; override with env vars)
#   TRACES="facebook twitch"  (shipped traces, load-gen/traces/NAME.csv; every region of the
#     trace is folded into one region, `bench`)
#   MODES="random locator"  EDGES=4  EDGE_MAX_VIEWERS=550  PEAK=2000 (viewers at the trace's
#   peak: --max-viewers of the replay)  SPEED=30  DURATION=120s  PROTOCOL=flv
#   OUT=target/bench/placement-<time>
# Output: $OUT/results.md, $OUT/results.csv, and per run the replay JSON/HTML reports and logs.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/bench/lib.sh

TRACES=${TRACES:-"facebook twitch"}
MODES=${MODES:-"random locator"}
EDGES=${EDGES:-4}
EDGE_MAX_VIEWERS=${EDGE_MAX_VIEWERS:-550}
PEAK=${PEAK:-2000}
SPEED=${SPEED:-30}
DURATION=${DURATION:-120s}
PROTOCOL=${PROTOCOL:-flv}
OUT=${OUT:-target/bench/placement-$(date -u +%Y%m%dT%H%M%SZ)}

bench_prepare
relay_bin=${RELAY_BIN:-target/release/surge-relay}
load_bin=target/release/surge-load

# One region, `bench`: the trace's regions summed per sample.
one_region_trace() {
  python3 - "$1" "$2" <<'EOF'
import csv, sys
src, dst = sys.argv[1], sys.argv[2]
rows = {}
header = None
with open(src) as f:
    lines = [l for l in f if not l.startswith('#')]
for r in csv.DictReader(lines):
    t = int(float(r['t_s']))
    acc = rows.setdefault((r['broadcast_id'], t), [0, 0, 0])
    acc[0] += int(r['viewers'])
    acc[1] += int(r.get('arrivals') or 0)
    acc[2] += int(r.get('departures') or 0)
with open(dst, 'w') as f:
    f.write(f"# livetrace v1; every region of {src} folded into one (placement benchmark)\n")
    f.write("broadcast_id,t_s,region,viewers,arrivals,departures\n")
    for (b, t), (v, a, d) in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        f.write(f"{b},{t},bench,{v},{a},{d}\n")
EOF
}

# Starts an origin with a publisher and $EDGES edges; with `locator`, each edge places
# viewers over the others and the origin. Sets origin_http, edge_rtmp[], edge_http[] and
# appends every pid to run_pids.
start_region() {
  local mode=$1 dir=$2
  local origin_rtmp
  origin_rtmp=$(free_port)
  origin_http=$(free_port)
  "$relay_bin" --rtmp-listen "127.0.0.1:$origin_rtmp" --http-listen "127.0.0.1:$origin_http" \
    --region us --max-viewers 100000 --shutdown-grace 1s >"$dir/origin.log" 2>&1 &
  run_pids+=($!)
  wait_port "$origin_rtmp"
  "$load_bin" publish --url "rtmp://127.0.0.1:$origin_rtmp/live/crowd" --bitrate-kbps 600 \
    --fps 30 --gop-seconds 2 --duration forever >"$dir/publish.log" 2>&1 &
  run_pids+=($!)
  edge_rtmp=() edge_http=()
  local i peers=""
  for i in $(seq "$EDGES"); do
    edge_rtmp+=("$(free_port)")
    edge_http+=("$(free_port)")
  done
  for i in "${edge_http[@]}"; do peers+="127.0.0.1:$i,"; done
  peers+="127.0.0.1:$origin_http"
  for i in $(seq 0 $((EDGES - 1))); do
    local extra=()
    [ "$mode" = locator ] && extra=(--placement-peer "$peers")
    "$relay_bin" --rtmp-listen "127.0.0.1:${edge_rtmp[$i]}" \
      --http-listen "127.0.0.1:${edge_http[$i]}" --tier edge --region bench \
      --upstream "rtmp://127.0.0.1:$origin_rtmp/live" --prewarm live/crowd \
      --max-viewers "$EDGE_MAX_VIEWERS" --shutdown-grace 1s "${extra[@]}" \
      >"$dir/edge$i.log" 2>&1 &
    run_pids+=($!)
  done
  for i in "${edge_rtmp[@]}"; do wait_port "$i"; done
  # Edges pulling, locators with a first view of their peers.
  sleep 4
}

stop_region() {
  local p
  for p in "${run_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${run_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  run_pids=()
}
trap 'stop_region; bench_cleanup' EXIT

echo "trace,mode,viewers_peak,sessions,refused,overflow,edges_max_over_mean,startup_p99_ms,lag_p99_ms,errors" >"$OUT/results.csv"
for trace in $TRACES; do
  one_region_trace "load-gen/traces/$trace.csv" "$OUT/$trace-one-region.csv"
  for mode in $MODES; do
    dir="$OUT/$trace-$mode"
    mkdir -p "$dir"
    run_pids=()
    start_region "$mode" "$dir"
    targets=()
    if [ "$mode" = locator ]; then
      targets=(--target "bench=http://127.0.0.1:${edge_http[0]}")
    else
      for i in $(seq 0 $((EDGES - 1))); do
        targets+=(--target "bench=127.0.0.1:${edge_rtmp[$i]}:${edge_http[$i]}")
      done
    fi
    echo "== $trace, $mode: replaying (peak $PEAK viewers, $EDGES edges of $EDGE_MAX_VIEWERS, speed $SPEED, at most $DURATION)"
    "$load_bin" replay --trace "$OUT/$trace-one-region.csv" "${targets[@]}" --stream live/crowd \
      --max-viewers "$PEAK" --speed "$SPEED" --duration "$DURATION" --protocol "$PROTOCOL" \
      --report "$dir/replay.json" --html "$dir/replay.html" >"$dir/replay.out" 2>"$dir/replay.log" ||
      { echo "replay failed, see $dir/replay.log" >&2; exit 1; }
    tail -n 3 "$dir/replay.out"
    stop_region
    python3 - "$dir/replay.json" "$trace" "$mode" "${edge_http[*]}" "${edge_rtmp[*]}" >>"$OUT/results.csv" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
bench = r['details']['by_region']['bench']
at_peak = bench.get('relays_at_peak', {}).get('relays', {})
# Edges only: the origin takes overflow, not a share of the crowd.
edges = zip(sys.argv[4].split(), sys.argv[5].split())
counts = [at_peak.get(f"http://127.0.0.1:{h}", 0) + at_peak.get(f"rtmp://127.0.0.1:{r}", 0)
          for h, r in edges]
mean = sum(counts) / len(counts)
spread = f"{max(counts) / mean:.2f} ({'/'.join(map(str, counts))})" if mean else "-"
print(','.join(str(x) for x in [
    sys.argv[2], sys.argv[3], r['viewers_peak'], r['viewer_sessions'], bench['refused'],
    bench['overflow'], spread, r['startup_ms']['p99'], r['lag_ms']['p99'], r['errors']]))
EOF
  done
done

{
  echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)  "
  echo "command: TRACES=\"$TRACES\" MODES=\"$MODES\" EDGES=$EDGES EDGE_MAX_VIEWERS=$EDGE_MAX_VIEWERS PEAK=$PEAK SPEED=$SPEED DURATION=$DURATION PROTOCOL=$PROTOCOL scripts/bench/placement.sh  "
  echo
  echo "| trace | mode | viewers peak | sessions | refused | overflow | edges max/mean at peak (viewers per edge) | startup p99 ms | lag p99 ms | errors |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  tail -n +2 "$OUT/results.csv" | awk -F, '{printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1,$2,$3,$4,$5,$6,$7,$8,$9,$10}'
} >"$OUT/results.md"
cat "$OUT/results.md"
echo "results in $OUT"
