#!/usr/bin/env bash
# Soak with viewer churn: an origin and an edge pulling from it (release builds), a publisher,
# and viewers (RTMP and HTTP-FLV, half each) that come and go in cycles of CYCLE seconds —
# up to VIEWERS over a quarter of the cycle, a hold of a sixth, all gone over the next
# quarter, then nobody for the rest (a third: far longer than the edge's --upstream-linger of
# 2 s, so its pull to the origin stops and starts again every cycle). Every SAMPLE seconds the script records both
# relays' resident memory and open file descriptors and the viewers on each; at the end of
# each empty stretch (a trough) the edge must hold nothing for the stream: no viewers, no
# pull at the origin.
# It reports, over the troughs after the first: the slope of RSS (KiB per hour) and of open
# descriptors, and checks (exit 1 when one fails, naming it):
#   - open descriptors at every trough within 2 of the first trough's, on both relays;
#   - the edge's RSS at the last trough at most 10 % + 4 MiB above the first trough's;
#   - no leaked pull: at every trough the origin serves 0 viewers; at every peak exactly 1
#     (the edge's one pull, however many viewers the edge has).
#
# Usage: scripts/bench/soak.sh [--duration 30m] [--out DIR]
#        (env: VIEWERS=300 CYCLE=60 SAMPLE=2 RELAY_CORE=0 LOAD_CORE=1 PROFILE=release)
# The test suite runs a 3-minute form on debug builds (scripts/e2e/80-soak.sh, PROFILE=debug);
# the 30-minute run is by hand.
# Output: DIR/samples.csv, DIR/troughs.csv, DIR/summary.txt (and the relays' logs).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/bench/lib.sh

DURATION=30m
OUT=""
while [ $# -gt 0 ]; do
  case $1 in
    --duration) DURATION=${2:?--duration needs a value like 3m or 1800s}; shift 2 ;;
    --out) OUT=${2:?--out needs a directory}; shift 2 ;;
    -h | --help) awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; exit 0 ;;
    *) echo "soak.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case $DURATION in
  *m) seconds=$((${DURATION%m} * 60)) ;;
  *s) seconds=${DURATION%s} ;;
  *) seconds=$DURATION ;;
esac
[[ $seconds =~ ^[0-9]+$ ]] && [ "$seconds" -gt 0 ] || { echo "soak.sh: --duration $DURATION is not a duration (e.g. 3m, 180s)" >&2; exit 2; }
VIEWERS=${VIEWERS:-300}
CYCLE=${CYCLE:-60}
SAMPLE=${SAMPLE:-2}
RELAY_CORE=${RELAY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
OUT=${OUT:-target/bench/soak-$(date -u +%Y%m%dT%H%M%SZ)}
cycles=$((seconds / CYCLE))
[ "$cycles" -ge 3 ] || { echo "soak.sh: --duration must hold at least 3 cycles of $CYCLE s" >&2; exit 2; }

PROFILE=${PROFILE:-release}
case $PROFILE in
  release) bench_prepare ;;
  debug)
    # bench_prepare's set-up on the debug builds the other tests already made.
    mkdir -p "$OUT"
    OUT=$(cd "$OUT" && pwd)
    ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    cargo build -q -p surge-relay -p surge-load
    pids=()
    trap bench_cleanup EXIT
    ;;
  *) echo "soak.sh: PROFILE must be release or debug" >&2; exit 2 ;;
esac
relay_bin=target/$PROFILE/surge-relay
load_bin=target/$PROFILE/surge-load

origin_rtmp=$(free_port) origin_http=$(free_port) edge_rtmp=$(free_port) edge_http=$(free_port)
taskset -c "$LOAD_CORE" "$relay_bin" --rtmp-listen "127.0.0.1:$origin_rtmp" --http-listen "127.0.0.1:$origin_http" \
  --tier origin >"$OUT/origin.log" 2>&1 &
origin=$!
pids+=("$origin")
taskset -c "$RELAY_CORE" "$relay_bin" --rtmp-listen "127.0.0.1:$edge_rtmp" --http-listen "127.0.0.1:$edge_http" \
  --tier edge --upstream "rtmp://127.0.0.1:$origin_rtmp/live" --upstream-linger 2s --max-viewers 100000 \
  >"$OUT/edge.log" 2>&1 &
edge=$!
pids+=("$edge")
wait_port "$origin_rtmp"
wait_port "$edge_rtmp"
taskset -c "$LOAD_CORE" "$load_bin" publish --url "rtmp://127.0.0.1:$origin_rtmp/live/soak" \
  --bitrate-kbps 600 --fps 30 --gop-seconds 2 --duration forever >"$OUT/publish.log" 2>&1 &
pids+=($!)
sleep 2

# The churn: per cycle, up over a quarter, hold a sixth, down over a quarter, then empty.
up=$((CYCLE / 4)) hold=$((CYCLE / 6))
{
  echo "# livetrace v1; soak: $cycles cycles of $CYCLE s, 0 -> $VIEWERS -> 0 viewers"
  echo "broadcast_id,t_s,region,viewers"
  for c in $(seq 0 $((cycles - 1))); do
    t=$((c * CYCLE))
    echo "soak,$t,soak,0"
    echo "soak,$((t + up)),soak,$VIEWERS"
    echo "soak,$((t + up + hold)),soak,$VIEWERS"
    echo "soak,$((t + 2 * up + hold)),soak,0"
  done
  echo "soak,$((cycles * CYCLE)),soak,0"
} >"$OUT/churn.csv"

RUST_LOG=warn taskset -c "$LOAD_CORE" "$load_bin" replay --trace "$OUT/churn.csv" \
  --target "*=127.0.0.1:$edge_rtmp:$edge_http" --stream live/soak --protocol mix --speed 1 \
  --report "$OUT/replay.json" >"$OUT/replay.out" 2>&1 &
replay=$!
pids+=("$replay")

# viewers of live/soak at a relay (its /api/v1/streams), 0 when it has none.
viewers_at() {
  curl -s --max-time 2 "http://127.0.0.1:$1/api/v1/streams" | python3 -c '
import json, sys
try:
    streams = json.load(sys.stdin).get("streams", [])
except ValueError:
    streams = []
print(sum(sum(s.get("viewers", {}).values()) for s in streams if s.get("name") == "soak"))'
}
fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }

echo "t_s,edge_viewers,origin_viewers,edge_rss_kib,edge_fds,origin_rss_kib,origin_fds" >"$OUT/samples.csv"
t0=$(date +%s)
echo "soak: $cycles cycles of $CYCLE s, up to $VIEWERS viewers; samples every $SAMPLE s in $OUT/samples.csv" >&2
while kill -0 "$replay" 2>/dev/null; do
  t=$(($(date +%s) - t0))
  echo "$t,$(viewers_at "$edge_http"),$(viewers_at "$origin_http"),$(rss_kib "$edge"),$(fds "$edge"),$(rss_kib "$origin"),$(fds "$origin")" >>"$OUT/samples.csv"
  if [ $((t % 30)) -lt "$SAMPLE" ]; then
    echo "  t=${t}s: $(tail -1 "$OUT/samples.csv")" >&2
  fi
  sleep "$SAMPLE"
done
kill -0 "$edge" 2>/dev/null || { echo "soak: the edge exited during the run (see $OUT/edge.log)" >&2; exit 1; }

python3 - "$OUT" "$CYCLE" "$up" "$hold" "$cycles" <<'PY'
import csv, sys
out, cycle, up, hold, cycles = sys.argv[1], *map(int, sys.argv[2:])
rows = [{k: int(v) for k, v in r.items()} for r in csv.DictReader(open(f"{out}/samples.csv"))]
# The replay's clock and the samples' differ by a second or two: a trough is the last sample
# well inside each empty stretch (4 s after it begins, past the 2 s linger, to 4 s before the
# next cycle), a peak the last sample well inside each hold.
def last_in(t_start, t_end):
    inside = [r for r in rows if t_start <= r["t_s"] < t_end]
    return inside[-1] if inside else None
troughs = [last_in(c * cycle + 2 * up + hold + 4, (c + 1) * cycle - 4) for c in range(cycles)]
peaks = [last_in(c * cycle + up + 2, c * cycle + up + hold - 2) for c in range(cycles)]
troughs = [t for t in troughs if t]
peaks = [p for p in peaks if p]
with open(f"{out}/troughs.csv", "w") as f:
    f.write("t_s,edge_viewers,origin_viewers,edge_rss_kib,edge_fds,origin_rss_kib,origin_fds\n")
    for t in troughs:
        f.write(",".join(str(t[k]) for k in ["t_s", "edge_viewers", "origin_viewers", "edge_rss_kib", "edge_fds", "origin_rss_kib", "origin_fds"]) + "\n")

def slope(key):
    pts = [(t["t_s"], t[key]) for t in troughs[1:]]
    if len(pts) < 2:
        return 0.0
    n = len(pts); mx = sum(p[0] for p in pts) / n; my = sum(p[1] for p in pts) / n
    den = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / den * 3600 if den else 0.0

failures = []
if len(troughs) < cycles or not peaks:
    failures.append(f"sampled {len(troughs)} troughs of {cycles} and {len(peaks)} peaks: samples came too slowly")
if not troughs:
    print("\n".join(failures)); sys.exit(1)
first, last = troughs[0], troughs[-1]
for t in troughs:
    for relay in ["edge", "origin"]:
        if abs(t[f"{relay}_fds"] - first[f"{relay}_fds"]) > 2:
            failures.append(f"{relay} open descriptors at t={t['t_s']}s: {t[f'{relay}_fds']} (first trough {first[f'{relay}_fds']})")
    if t["edge_viewers"] != 0 or t["origin_viewers"] != 0:
        failures.append(f"trough t={t['t_s']}s not empty: edge {t['edge_viewers']} viewers, origin {t['origin_viewers']} (a leaked pull or viewer)")
for p in peaks:
    if p["origin_viewers"] != 1:
        failures.append(f"peak t={p['t_s']}s: the origin serves {p['origin_viewers']} pulls (expected the edge's one)")
limit = first["edge_rss_kib"] * 1.10 + 4096
if last["edge_rss_kib"] > limit:
    failures.append(f"edge RSS grew: {last['edge_rss_kib']} KiB at the last trough against {first['edge_rss_kib']} at the first (limit {limit:.0f})")
summary = [
    f"cycles {cycles} of {cycle} s, troughs sampled {len(troughs)}, peaks {len(peaks)}, peak edge viewers {max((p['edge_viewers'] for p in peaks), default=0)}",
    f"edge RSS at troughs (KiB): {[t['edge_rss_kib'] for t in troughs]}; slope after the first {slope('edge_rss_kib'):+.0f} KiB/h",
    f"edge open fds at troughs: {[t['edge_fds'] for t in troughs]}; slope {slope('edge_fds'):+.1f}/h",
    f"origin RSS at troughs (KiB): {[t['origin_rss_kib'] for t in troughs]}; slope {slope('origin_rss_kib'):+.0f} KiB/h",
    f"origin open fds at troughs: {[t['origin_fds'] for t in troughs]}; slope {slope('origin_fds'):+.1f}/h",
    f"pulls at the origin at peaks: {[p['origin_viewers'] for p in peaks]}",
]
summary += [f"FAIL: {f}" for f in failures] or ["all checks passed"]
open(f"{out}/summary.txt", "w").write("\n".join(summary) + "\n")
print("\n".join(summary))
sys.exit(1 if failures else 0)
PY
