#!/usr/bin/env bash
# End-to-end: `scripts/demo --compare`, bounded. The same Facebook-Live crowd (800 real
# viewers at 20x for 60 s: the quiet start, the ramp and the first minutes of the peak) plays
# twice through the demo Stream's locators: under surge-operator local --policy surge, then
# --policy hpa (the HorizontalPodAutoscaler's default behaviour on the viewers metric).
# Checks, from OUT/compare.json: both runs played the crowd; surge refused no viewer and its
# viewers had no errors; hpa's shortfall (viewer-seconds refused plus served by overflow) is
# larger than surge's, by a margin (the HPA reacts to a 30 s old metric and steps at most x2
# per 15 s sync, so the ramp outruns its edges; surge scales ahead of it); compare.html has
# the plots; nothing either run started is left running. About 2.5 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."

viewers=${SURGE_COMPARE_VIEWERS:-800} speed=${SURGE_COMPARE_SPEED:-20} duration=${SURGE_COMPARE_DURATION:-60s}
work=$(mktemp -d)
keep=false
trap '$keep || rm -rf "$work"' EXIT

fail() {
  keep=true
  echo "55-demo-compare: $* (runs kept in $work)" >&2
  [ -f "$work/compare.json" ] && jq -c '.runs[] | del(.series, .by_region)' "$work/compare.json" >&2
  for p in surge hpa; do
    [ -f "$work/$p/operator.log" ] && { echo "--- $p/operator.log" >&2; tail -5 "$work/$p/operator.log" >&2; }
  done
  exit 1
}

cargo build -q -p surge-operator -p surge-relay -p surge-load
start=$(date +%s)
SURGE_DEMO_FIRST_OCTET=${SURGE_DEMO_FIRST_OCTET:-225} scripts/demo --compare --free-ports \
  --build debug --viewers "$viewers" --speed "$speed" --duration "$duration" --out "$work" \
  >"$work/demo.out" 2>&1 || { tail -40 "$work/demo.out" >&2; fail "scripts/demo --compare failed"; }
echo "55-demo-compare: scripts/demo --compare returned after $(($(date +%s) - start)) s"

cmp=$work/compare.json
[ -s "$cmp" ] || fail "no compare.json"
grep -q '<svg' "$work/compare.html" || fail "compare.html has no plots"
jq -e '.policies == ["surge", "hpa"]' "$cmp" >/dev/null || fail "compare.json does not hold surge then hpa"

# Both runs played the crowd (peak near --viewers); surge without errors or refusals. (hpa's
# errors are not checked: viewers of an overloaded fleet can time out.)
for p in surge hpa; do
  jq -e --arg p "$p" --argjson v "$viewers" '.runs[$p].peak_viewers >= ($v * 0.8)' "$cmp" >/dev/null \
    || fail "the $p run did not play the crowd (peak viewers below 80% of $viewers)"
done
jq -e '.runs.surge.errors == 0' "$cmp" >/dev/null || fail "surge's viewers had errors"
jq -e '.runs.surge.refused == 0' "$cmp" >/dev/null || fail "surge refused viewers"
# hpa falls behind the ramp: its shortfall exceeds surge's by at least 1,000 viewer-seconds
# and twice over (not a coin flip).
jq -e '.runs.hpa.shortfall_viewer_seconds > ([.runs.surge.shortfall_viewer_seconds * 2, .runs.surge.shortfall_viewer_seconds + 1000] | max)' \
  "$cmp" >/dev/null || fail "hpa's shortfall is not clearly larger than surge's"

# Nothing is left: no relay either run's operator reported.
for p in surge hpa; do
  for pid in $(jq -r '.pids[]' "$work/$p/operator-timeline.jsonl" | sort -u); do
    if kill -0 "$pid" 2>/dev/null && grep -qa surge-relay "/proc/$pid/cmdline" 2>/dev/null; then
      fail "relay pid $pid ($p run) still runs after the demo ended"
    fi
  done
done
# Edges Ready before the crowd is measured for both (levels reached, leads in seconds).
jq -e '[.runs[] | .lead_levels | type == "number"] | all' "$cmp" >/dev/null \
  || fail "compare.json lacks the Ready-before-the-crowd leads"
echo "55-demo-compare: ok ($(jq -c '[.runs[] | {policy, refused, shortfall: .shortfall_viewer_seconds, relay_seconds, levels_late: .lead_levels_late, worst_lead_s: .lead_worst_s}]' "$cmp"))"
