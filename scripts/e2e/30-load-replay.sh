#!/usr/bin/env bash
# End-to-end: surge-relay (debug build) + `surge-load publish` + `surge-load replay` of a
# tiny two-region trace with half RTMP and half HTTP-FLV viewers, in well under a minute.
# Checks the report against the trace file itself (its `*` total rows, read here, not by
# the load generator) and the README's delivery promises:
# - zero errors and disconnects; sessions = the trace's arrivals; the peak of viewers
#   playing = the trace's peak; in every one-second sample the viewers playing (first
#   keyframe received, not merely connecting) within max(2, 10%) of what the trace asked
#   for at most one start-up promise (500 ms) earlier;
# - no frame missing from any viewer's sequence, every frame timestamped, no stall
#   (1 s player pre-buffer), as many live frames as the viewer-seconds at 30 fps (-10%);
# - promises: start-up p99 < 500 ms (first keyframe from the GOP cache, not the
#   publisher's next one 2 s away) and lag p99 < 250 ms (no queueing at the relay);
# - the HTML report has its plots.
set -euo pipefail
cd "$(dirname "$0")/../.."

cargo build -q -p surge-relay -p surge-load
relay=${CARGO_TARGET_DIR:-target}/debug/surge-relay
load=${CARGO_TARGET_DIR:-target}/debug/surge-load

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 100); do
    (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  return 1
}

rtmp=$(free_port)
http=$(free_port)
"$relay" --rtmp-listen "127.0.0.1:$rtmp" --http-listen "127.0.0.1:$http" >"$work/relay.log" 2>&1 &
pids+=($!)
wait_port "$rtmp"
wait_port "$http"

"$load" publish --url "rtmp://127.0.0.1:$rtmp/live/e2e" --duration 60s >"$work/publish.log" 2>&1 &
pids+=($!)

trace=load-gen/tests/data/tiny.csv
if ! RUST_LOG=warn "$load" replay --trace "$trace" \
  --target "*=127.0.0.1:$rtmp:$http" --stream live/e2e --protocol mix --speed 2 \
  --report "$work/report.json" --html "$work/report.html"; then
  echo "replay failed; relay log tail:" >&2
  tail -20 "$work/relay.log" >&2
  exit 1
fi

report="$work/report.json"
fail() { echo "30-load-replay: $*" >&2; jq -c '{viewers_peak, viewer_sessions, startup_ms, lag_ms, stall_ratio, errors, details: .details | {disconnects, frames, frames_catchup, frames_missing, frames_without_timing_sei, stalls, error_kinds}}' "$report" >&2; exit 1; }
problems=$(python3 - "$trace" "$report" <<'PY'
import csv, json, sys

STARTUP_P99_PROMISE_MS = 500  # first keyframe from the GOP cache (README: a few ms)
LAG_P99_PROMISE_MS = 250      # no queueing at the relay; loopback lag is scheduling noise
PUBLISH_FPS = 30              # `surge-load publish` default

rows = [r for r in csv.reader(l for l in open(sys.argv[1]) if not l.startswith("#"))]
total = sorted((float(r[1]), float(r[3]), float(r[4])) for r in rows[1:] if r[2] == "*")
report = json.load(open(sys.argv[2]))
d = report["details"]
problems = []
def check(ok, what):
    if not ok:
        problems.append(what)

def viewers_at(t):
    if t <= total[0][0]:
        return total[0][1]
    for (t0, v0, _), (t1, v1, _) in zip(total, total[1:]):
        if t <= t1:
            return v0 + (v1 - v0) * (t - t0) / (t1 - t0)
    return total[-1][1]

regions = len(d["regions"])
peak = max(v for _, v, _ in total)
sessions = total[0][1] + sum(a for _, _, a in total[1:])
check(len(total) >= 2, "the trace has no `*` total rows")
check(report["errors"] == 0 and d["disconnects"] == 0, "errors or disconnects")
check(report["viewer_sessions"] == sessions, f"{report['viewer_sessions']} sessions, the trace has {sessions:.0f} arrivals")
check(report["viewers_peak"] == peak, f"peak of {report['viewers_peak']} playing, the trace peaks at {peak:.0f}")
for p in report["timeline"]:
    want = viewers_at(p["trace_t_s"])
    # each region rounds its own share of an interpolated total
    check(abs(p["target"] - want) <= 0.5 * regions, f"replay aimed at {p['target']} where the trace has {want:.1f}")
    # playing: what the trace asked for at most one start-up promise ago, or now
    t0, t1 = p["trace_t_s"] - STARTUP_P99_PROMISE_MS / 1000 * d["speed"], p["trace_t_s"]
    window = [viewers_at(t0), want] + [v for t, v, _ in total if t0 < t < t1]
    low, high = min(window), max(window)
    check(low - max(2, 0.1 * low) <= p["viewers"] <= high + max(2, 0.1 * high), f"{p['viewers']} playing where the trace has {want:.1f} at trace {p['trace_t_s']:.1f} s")
check(d["frames_missing"] == 0, f"{d['frames_missing']} frames missing")
check(d["frames_without_timing_sei"] == 0, "frames without their timing SEI")
check(d["stalls"] == 0 and report["stall_ratio"] == 0, f"{d['stalls']} stalls")
lag, startup = report["lag_ms"], report["startup_ms"]
check(lag["p50"] is not None and lag["p99"] is not None and 0 < lag["p50"] <= lag["p99"], f"lag not measured: {lag}")
check(lag["p99"] is not None and lag["p99"] < LAG_P99_PROMISE_MS, f"lag p99 {lag['p99']} ms breaks the {LAG_P99_PROMISE_MS} ms promise")
check(startup["p99"] is not None and startup["p99"] < STARTUP_P99_PROMISE_MS, f"start-up p99 {startup['p99']} ms breaks the {STARTUP_P99_PROMISE_MS} ms promise")
watched = sum((t1 - t0) * (v0 + v1) / 2 for (t0, v0, _), (t1, v1, _) in zip(total, total[1:])) / d["speed"]
live = d["frames"] - d["frames_catchup"]
check(live >= 0.9 * watched * PUBLISH_FPS, f"{live} live frames for {watched:.0f} viewer-seconds at {PUBLISH_FPS} fps")
print("\n".join(problems))
PY
) || fail "could not check the report"
[ -z "$problems" ] || fail "$problems"
grep -q 'Stall ratio vs pre-buffer (QoE model)' "$work/report.html" || fail "HTML report incomplete"
echo "30-load-replay: ok ($(jq -c '{viewers_peak, viewer_sessions, startup_ms, lag_ms, stall_ratio, errors}' "$report"))"
