#!/usr/bin/env bash
# Slow viewers filling an edge's socket buffers: an origin, an edge pulling from it with the
# relay's default slow-viewer policy, a 600 kbit/s `surge-load publish`, and NORMAL viewers
# on the edge for SECONDS_, once alone and once with SLOW more viewers that read at SLOW_RATE
# once joined (`surge-load replay --slow-viewers SLOW --slow-rate SLOW_RATE`; 0 = stop
# reading). Each case gets fresh relays. Prints, per case: the normal viewers' lag and lost
# frames, what happened to the slow ones, the edge's RSS (before, peak, end; /proc) and what
# the edge logged and counted per viewer.
#
# Usage: scripts/bench/slow-viewers.sh   (env: NORMAL=300 SLOW=100 SLOW_RATE=0 SECONDS_=60
#        PROTOCOL=mix WARMUP_SECONDS=5 PROFILE=release|debug ALONE=1 OUT=target/bench/slow-<time>)
#        ALONE=0 skips the case without slow viewers.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/bench/lib.sh

NORMAL=${NORMAL:-300}
SLOW=${SLOW:-100}
SLOW_RATE=${SLOW_RATE:-0}
SECONDS_=${SECONDS_:-60}
PROTOCOL=${PROTOCOL:-mix}
PROFILE=${PROFILE:-release}
OUT=${OUT:-target/bench/slow-$(date -u +%Y%m%dT%H%M%SZ)}
case $PROFILE in
  release) build=(--release) ;;
  debug) build=() ;;
  *) echo "PROFILE must be release or debug" >&2; exit 2 ;;
esac
[[ $NORMAL =~ ^[0-9]+$ && $SLOW =~ ^[0-9]+$ && $SECONDS_ =~ ^[0-9]+$ ]] ||
  { echo "NORMAL, SLOW and SECONDS_ must be whole numbers" >&2; exit 2; }

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cargo build -q "${build[@]}" -p surge-relay -p surge-load
bin_dir=${CARGO_TARGET_DIR:-target}/$PROFILE
relay_bin=$bin_dir/surge-relay
load_bin=$bin_dir/surge-load
pids=()
trap bench_cleanup EXIT

# One case: fresh origin + edge + publisher, the replay (extra flags: "$@"), RSS sampled
# every second; results in $OUT/$name/.
run_case() {
  local name=$1
  shift
  local dir="$OUT/$name"
  mkdir -p "$dir"
  local o_port o_http e_port e_http
  o_port=$(free_port); o_http=$(free_port); e_port=$(free_port); e_http=$(free_port)
  "$relay_bin" --rtmp-listen "127.0.0.1:$o_port" --http-listen "127.0.0.1:$o_http" \
    --max-viewers 100000 >"$dir/origin.log" 2>&1 &
  local origin=$!
  pids+=("$origin")
  "$relay_bin" --rtmp-listen "127.0.0.1:$e_port" --http-listen "127.0.0.1:$e_http" \
    --max-viewers 100000 --tier edge --upstream "rtmp://127.0.0.1:$o_port/live" >"$dir/edge.log" 2>&1 &
  local edge=$!
  pids+=("$edge")
  wait_port "$o_port"
  wait_port "$e_port"
  "$load_bin" publish --url "rtmp://127.0.0.1:$o_port/live/slow" --bitrate-kbps 600 --fps 30 \
    --gop-seconds 2 --duration forever >"$dir/publish.log" 2>&1 &
  local publisher=$!
  pids+=("$publisher")
  sleep 3
  flat_trace "$dir/trace.csv" eu "$NORMAL" $((SECONDS_ + 30)) 5
  rss_kib "$edge" >"$dir/rss-before"
  (while kill -0 "$edge" 2>/dev/null; do echo "$(date +%s) $(rss_kib "$edge")"; sleep 1; done) >"$dir/rss.txt" &
  local sampler=$!
  RUST_LOG=warn "$load_bin" replay --trace "$dir/trace.csv" --target "*=127.0.0.1:$e_port:$e_http" \
    --stream live/slow --protocol "$PROTOCOL" --speed 1 --duration "${SECONDS_}s" \
    --warmup "${WARMUP_SECONDS:-5}s" --report "$dir/report.json" "$@" | tee "$dir/summary.txt"
  rss_kib "$edge" >"$dir/rss-end"
  curl -s "http://127.0.0.1:$e_http/metrics" >"$dir/metrics.txt" || true
  kill "$sampler" "$publisher" "$edge" "$origin" 2>/dev/null || true
  wait "$sampler" "$publisher" "$edge" "$origin" 2>/dev/null || true
}

[ "${ALONE:-1}" = 0 ] || run_case alone
if [ "$SLOW" -gt 0 ]; then
  run_case slow --slow-viewers "$SLOW" --slow-rate "$SLOW_RATE"
fi

python3 - "$OUT" "$NORMAL" "$SLOW" "$SLOW_RATE" "$SECONDS_" "$PROFILE" <<'PY' | tee "$OUT/results.md"
import json, os, re, sys
out, normal, slow, rate, secs, profile = sys.argv[1:]
print(f"{normal} normal viewers for {secs} s on one edge ({profile} build), alone and with {slow} slow viewers at --slow-rate {rate}")
print()
print("| case | normal lag p50 ms | p99 ms | max ms | frames missing | disconnects | edge RSS before / peak / end MiB | slow-viewer closes (rtmp, http) | skips logged | dropped frames |")
print("|---|---|---|---|---|---|---|---|---|---|")
notes = []
for case in ["alone", "slow"]:
    d = os.path.join(out, case)
    if not os.path.exists(os.path.join(d, "report.json")):
        continue
    r = json.load(open(os.path.join(d, "report.json")))
    mib = lambda kib: f"{int(kib) / 1024:.1f}"
    before = open(os.path.join(d, "rss-before")).read().strip()
    end = open(os.path.join(d, "rss-end")).read().strip()
    peak = max([int(l.split()[1]) for l in open(os.path.join(d, "rss.txt")) if len(l.split()) == 2] or [0])
    log = open(os.path.join(d, "edge.log")).read().splitlines()
    rtmp = sum(1 for l in log if "rtmp{conn=" in l and "reason=slow viewer" in l)
    http = sum(1 for l in log if "http connection closed reason=slow viewer" in l)
    skips = sum(1 for l in log if "viewer fell behind" in l)
    metrics = open(os.path.join(d, "metrics.txt")).read()
    dropped = sum(float(m) for m in re.findall(r"^surge_relay_dropped_frames_total\{[^}]*\} (\S+)", metrics, re.M))
    from datetime import datetime
    stamp = lambda l: datetime.fromisoformat(l.split()[0].rstrip("Z")[:26])
    started = [stamp(l) for l in log if "viewer started" in l]
    closes = [stamp(l) for l in log if "reason=slow viewer" in l]
    if started and closes:
        after = sorted((c - started[0]).total_seconds() for c in closes)
        notes.append(f"{case}: slow-viewer closes {after[0]:.1f}-{after[-1]:.1f} s after the first viewer started")
    lag = r["lag_ms"]
    print(f"| {case} | {lag['p50']:.1f} | {lag['p99']:.1f} | {lag['max']:.1f} | {r['details']['frames_missing']} | {r['details']['disconnects']} | {mib(before)} / {mib(peak)} / {mib(end)} | {rtmp}, {http} | {skips} | {dropped:.0f} |")
for n in notes:
    print(n)
s = None
p = os.path.join(out, "slow", "report.json")
if os.path.exists(p):
    s = json.load(open(p)).get("slow_viewers")
if s:
    print()
    print(f"slow viewers: {s['viewers']} at {s['rate']}, joined {s['joined']}, frames {s['frames']} (skipped by the relay {s['frames_skipped']}), "
          f"closed by the relay {s['closed_by_relay']} (seen during the run {s['closed_after_s']['count']}, after p50 {s['closed_after_s']['p50']} s; "
          f"at the final check {s['closed_at_final_check']}), still served at the end {s['still_served_at_final_check']}, "
          f"read {s['kbit_per_s_per_viewer']:.0f} kbit/s each, lag p50 {s['lag_ms']['p50']} ms")
PY
echo "results in $OUT"
