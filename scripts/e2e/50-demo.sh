#!/usr/bin/env bash
# End-to-end: the README's run command itself, bounded. `scripts/demo` on free ports with the
# debug build, a 60-viewer Facebook-Live crowd at 120x (the hour-long trace in 30 s), no hold.
# Checks: the demo exits 0, the crowd reached the edge through origin -> reflector -> edge
# (viewer peak and sessions as the trace file gives them), viewers got every frame without
# errors or stalls, startup and lag within what the product promises on loopback, the reports
# were written, and every process the demo started is gone once it returns (its ports are free).
set -euo pipefail
cd "$(dirname "$0")/../.."

viewers=60
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() {
  echo "50-demo: $*" >&2
  [ -f "$work/report.json" ] && jq -c '{viewers_peak, viewer_sessions, startup_ms, lag_ms, stall_ratio, errors, frames: .details.frames, frames_missing: .details.frames_missing}' "$work/report.json" >&2
  for log in "$work"/*.log; do echo "--- $log" >&2; tail -5 "$log" >&2; done
  exit 1
}

cargo build -q -p surge-relay -p surge-load
start=$(date +%s)
scripts/demo --free-ports --build debug --viewers "$viewers" --speed 120 --duration 45s \
  --hold 0 --out "$work" >"$work/demo.out" 2>&1 || { cat "$work/demo.out" >&2; fail "scripts/demo failed"; }
echo "50-demo: scripts/demo returned after $(($(date +%s) - start)) s"

report=$work/report.json
[ -s "$report" ] || fail "no JSON report"
grep -q '<svg' "$work/report.html" || fail "the HTML report has no plots"

# What the trace file promises: peak viewers is --viewers (the replay scales the trace's peak
# total, summed over regions per time step, to it), and about as many sessions as the trace's
# arrivals scaled the same way.
read -r trace_peak trace_arrivals < <(awk -F, '!/^#/ && $1 != "broadcast_id" && $3 != "*" {
    total[$2] += $4; arrivals += $5 }
  END { for (t in total) if (total[t] > peak) peak = total[t]; print peak + 0, arrivals + 0 }' \
  load-gen/traces/facebook.csv)
[ "${trace_peak:-0}" -gt 0 ] || fail "cannot read the peak from load-gen/traces/facebook.csv"
expected_sessions=$(( trace_arrivals * viewers / trace_peak ))
jq -e --argjson v "$viewers" '.viewers_peak >= ($v * 0.9) and .viewers_peak <= $v' "$report" >/dev/null \
  || fail "viewers_peak is not within 90-100% of $viewers"
jq -e --argjson s "$expected_sessions" '.viewer_sessions >= ($s * 0.8) and .viewer_sessions <= ($s * 1.2 + 5)' \
  "$report" >/dev/null || fail "viewer_sessions far from the trace's $expected_sessions"

# What viewers get: no errors, no stalls; first keyframe from the edge's GOP cache and frames
# through two relay hops on loopback (promises: startup p99 < 1 s, lag p99 < 500 ms, with a
# busy 2-core machine's margin).
jq -e '.errors == 0' "$report" >/dev/null || fail "viewer errors"
jq -e '.details.frames > 10000 and .details.frames_missing == 0' "$report" >/dev/null \
  || fail "viewers missed frames (gaps in the publisher's frame counter) or got too few"
jq -e '.stall_ratio == 0' "$report" >/dev/null || fail "viewers stalled"
jq -e '.startup_ms.p99 > 0 and .startup_ms.p99 < 1000' "$report" >/dev/null || fail "startup p99 not under 1 s"
jq -e '.lag_ms.p50 > 0 and .lag_ms.p99 < 500' "$report" >/dev/null || fail "lag p99 not under 500 ms"

# The demo cleans up after itself: none of its six ports still answers.
ports=$(grep -o '127\.0\.0\.1:[0-9]*' "$work/demo.out" | cut -d: -f2 | sort -u)
[ -n "$ports" ] || fail "the demo printed no addresses"
for port in $ports; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then fail "port $port still open after the demo ended"; fi
done
echo "50-demo: ok ($(jq -c '{viewers_peak, viewer_sessions, startup_ms, lag_ms, stall_ratio, errors}' "$report"))"
