#!/usr/bin/env bash
# End-to-end: the README's run command itself, bounded. `scripts/demo` with the debug build on a
# free API port and its own loopback octets (SURGE_DEMO_FIRST_OCTET, apart from the tests'
# 40-194 and the demo's default 210): surge-operator local runs the demo Stream, and a
# 300-viewer Facebook-Live crowd at 60x (40 s of wall time: the ramp and the peak) plays
# through each region's playback Service stand-in (a Ready edge behind it answers as the
# region's locator), while the operator scales edges up and down.
# Checks: the demo exits 0; the reports and the operator timeline were written; viewers played
# (peak near --viewers, frames, no errors, none refused); the operator scaled some region's
# edges above its minimum while the crowd was there (desired and Ready, from
# operator-timeline.jsonl) and more than one edge of that region served viewers (the locator
# saw the new edges); and nothing the demo started is left: no relay pid it recorded, no
# address it printed.
set -euo pipefail
cd "$(dirname "$0")/../.."

viewers=300
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() {
  echo "50-demo: $*" >&2
  [ -f "$work/report.json" ] && jq -c '{viewers_peak, viewer_sessions, startup_ms, lag_ms, stall_ratio, errors, refused: .details.refused, overflow: .details.overflow, error_kinds: .details.error_kinds}' "$work/report.json" >&2
  [ -f "$work/operator-timeline.jsonl" ] && tail -3 "$work/operator-timeline.jsonl" >&2
  for log in "$work"/*.log; do echo "--- $log" >&2; tail -5 "$log" >&2; done
  exit 1
}

cargo build -q -p surge-operator -p surge-relay -p surge-load
start=$(date +%s)
SURGE_DEMO_FIRST_OCTET=${SURGE_DEMO_FIRST_OCTET:-240} scripts/demo --free-ports --build debug \
  --viewers "$viewers" --speed 60 --duration 40s --hold 0 --out "$work" >"$work/demo.out" 2>&1 \
  || { tail -40 "$work/demo.out" >&2; fail "scripts/demo failed"; }
echo "50-demo: scripts/demo returned after $(($(date +%s) - start)) s"

report=$work/report.json timeline=$work/operator-timeline.jsonl
[ -s "$report" ] || fail "no JSON report"
grep -q '<svg' "$work/report.html" || fail "the HTML report has no plots"
[ -s "$timeline" ] || fail "no operator timeline"
grep -q '==> summary' "$work/demo.out" || fail "the demo printed no summary"

# Viewers played: the replay scales the trace's peak to --viewers; through the locators nobody
# was refused (edges hold 200 each and the operator scales ahead of the crowd), no errors.
jq -e --argjson v "$viewers" '.viewers_peak >= ($v * 0.8) and .viewers_peak <= $v' "$report" >/dev/null \
  || fail "viewers_peak is not within 80-100% of $viewers"
jq -e '.errors == 0' "$report" >/dev/null || fail "viewer errors"
jq -e '.details.refused == 0' "$report" >/dev/null || fail "viewers were refused"
jq -e '.details.frames > 10000 and .details.frames_missing == 0' "$report" >/dev/null \
  || fail "viewers missed frames (gaps in the publisher's frame counter) or got too few"
jq -e '.startup_ms.p99 > 0 and .startup_ms.p99 < 1000 and .lag_ms.p99 < 500' "$report" >/dev/null \
  || fail "startup p99 not under 1 s or lag p99 not under 500 ms"

# The operator scaled: some region had more edges desired and Ready than its minimum while the
# crowd was there, and more than one of its edges served viewers at the region's peak.
scaled=$(jq -rs '[.[] | .regions | to_entries[]
    | select(.value.edges_desired > .value.min_edges and .value.edges_ready > .value.min_edges) | .key]
  | unique | join(" ")' "$timeline")
[ -n "$scaled" ] || fail "no region's edges went above its minimum (operator-timeline.jsonl)"
spread=$(jq -r --arg r "$scaled" '.details.by_region | to_entries[]
  | select(.key as $k | $r | split(" ") | index($k))
  | select(.value.relays_at_peak.relays | keys | map(sub("^[a-z]+://"; "") | sub(":[0-9]+$"; "")) | unique | length >= 2)
  | .key' "$report")
[ -n "$spread" ] || fail "regions $scaled scaled, but their viewers stayed on one edge (a locator that does not see new edges?)"

# Nothing is left: no relay the operator ran, no address the demo printed.
for pid in $(jq -r '.pids[]' "$timeline" | sort -u); do
  if kill -0 "$pid" 2>/dev/null && grep -qa surge-relay "/proc/$pid/cmdline" 2>/dev/null; then
    fail "relay pid $pid still runs after the demo ended"
  fi
done
# (127.0.0.1:8000 is the browser player's suggested address, which the demo does not start.)
addrs=$(grep -oE '(127\.[0-9]+\.[0-9]+\.[0-9]+):[0-9]+' "$work/demo.out" | grep -vx '127.0.0.1:8000' | sort -u)
[ -n "$addrs" ] || fail "the demo printed no addresses"
for a in $addrs; do
  if (exec 3<>"/dev/tcp/${a%:*}/${a#*:}") 2>/dev/null; then fail "$a still answers after the demo ended"; fi
done
echo "50-demo: ok (scaled: $scaled; $(jq -c '{viewers_peak, viewer_sessions, refused: .details.refused, overflow: .details.overflow, startup_p99: .startup_ms.p99, lag_p99: .lag_ms.p99, errors}' "$report"))"
