#!/usr/bin/env bash
# Chaos, short form: SIGKILL the busiest edge while a crowd watches. `scripts/demo --fault
# kill-edge@20` with the debug build: `surge-operator local` runs the demo Stream, a steady
# crowd of 300 real viewers (a generated `steady` trace at 10x for 40 s) plays through each
# region's locator, and 20 s in the edge with the most viewers gets SIGKILL.
# Checks (the targets of the chaos suite for a killed relay):
# - its viewers come back: reconnects >= 80 % of the viewers it had, each back to playing
#   within 2 s of its last frame (through the region's locator: the service stand-in, then an
#   edge's redirect), and nobody else is cut (the disconnects around the kill are its viewers
#   only), no viewer errors;
# - no frame is delivered twice or out of order within a session;
# - the operator replaces the relay: the killed pid is gone from the fleet and the fleet is
#   back to at least its size before the kill within 10 s;
# - nothing the demo started is left running.
# About 90 s on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."

work=$(mktemp -d)
keep=false
trap '$keep || rm -rf "$work"' EXIT

fail() {
  keep=true
  echo "75-chaos-kill-edge: $* (run kept in $work)" >&2
  [ -f "$work/faults.jsonl" ] && cat "$work/faults.jsonl" >&2
  [ -f "$work/report.json" ] && jq -c '{viewers_peak, viewer_sessions, errors, disconnects: .details.disconnects, reconnects: .details.reconnects, frame_gap_max_ms: .details.frame_gap_max_ms, out_of_order: .details.frames_out_of_order, error_kinds: .details.error_kinds}' "$work/report.json" >&2
  [ -f "$work/operator.log" ] && { echo "--- operator.log" >&2; tail -8 "$work/operator.log" >&2; }
  exit 1
}

cargo build -q -p surge-operator -p surge-relay -p surge-load
target/debug/surge-load trace gen --shape steady --seed 7 --out "$work/steady.csv" >/dev/null
start=$(date +%s)
SURGE_DEMO_FIRST_OCTET=${SURGE_DEMO_FIRST_OCTET:-196} scripts/demo --free-ports --build debug \
  --trace "$work/steady.csv" --viewers 300 --speed 10 --duration 40s --hold 0 \
  --fault kill-edge@20 --out "$work" >"$work/demo.out" 2>&1 \
  || { tail -30 "$work/demo.out" >&2; fail "scripts/demo failed"; }
echo "75-chaos-kill-edge: scripts/demo returned after $(($(date +%s) - start)) s"

faults=$work/faults.jsonl report=$work/report.json timeline=$work/operator-timeline.jsonl
[ -s "$faults" ] || { cat "$work/faults.log" >&2 2>/dev/null || true; fail "no fault was injected"; }
killed=$(jq -s '.[0].viewers' "$faults") pid=$(jq -s '.[0].pid' "$faults")
[ "$killed" -ge 5 ] || fail "the killed edge had only $killed viewers"

jq -e --argjson k "$killed" '.details.reconnects.count >= ($k * 0.8)' "$report" >/dev/null \
  || fail "fewer than 80 % of the killed edge's $killed viewers came back"
jq -e '.details.reconnects.max_ms < 2000' "$report" >/dev/null \
  || fail "a viewer took 2 s or more to play again after the kill"
# Nobody else is cut by the kill: over the 10 s around it (the replay's timeline, one point a
# second, cumulative disconnects) viewers lost their relay only once, in one step, and no more
# of them than the killed edge had. (Scale-downs later may drain loaded edges: not this fault.)
jq -e --slurpfile f "$faults" '
  ($f[0].after_s) as $at | ($f[0].viewers) as $k
  | [.timeline[] | select(.t_s >= $at - 5 and .t_s <= $at + 5) | .disconnects] as $d
  | ($d | length) > 2
    and ([range(1; $d | length) | $d[.] - $d[. - 1]] | max) >= ($k * 0.8)
    and ($d[-1] - $d[0]) <= $k + 3' "$report" >/dev/null \
  || fail "the kill cut other viewers than the killed edge's $killed (or its own were not cut at once)"
jq -e '.errors == 0' "$report" >/dev/null || fail "viewers had errors"
jq -e '.details.frames_out_of_order == 0' "$report" >/dev/null \
  || fail "frames were delivered twice or out of order"

# The fleet (the operator timeline, one sample a second): the size while the killed pid was
# in it, then, after it left, back to that size within 10 s.
before=$(jq -s --argjson k "$pid" '[.[] | select(.pids | index($k))] | last | .relays' "$timeline")
[ "$before" != null ] || fail "the killed pid $pid was never in the operator's timeline"
jq -e -s --argjson k "$pid" --argjson n "$before" '
  (map(.pids | index($k) != null) | rindex(true)) as $last
  | .[$last + 1:] | map(select(.pids | index($k) == null)) as $after
  | ($after | length) > 0 and ($after | map(select(.relays >= $n)) | length) > 0
    and (($after | map(select(.relays >= $n)) | first | .t) - ($after | first | .t) <= 10)' \
  "$timeline" >/dev/null || fail "the fleet did not return to $before relays within 10 s of the kill"

for p in $(jq -r '.pids[]?' "$timeline" | sort -u); do
  if kill -0 "$p" 2>/dev/null && grep -qa surge-relay "/proc/$p/cmdline" 2>/dev/null; then
    fail "relay pid $p still runs after the demo ended"
  fi
done
echo "75-chaos-kill-edge: ok ($(jq -c --argjson k "$killed" '{killed_edge_viewers: $k, reconnects: .details.reconnects, disconnects: .details.disconnects, errors, frame_gap_max_ms: .details.frame_gap_max_ms, out_of_order: .details.frames_out_of_order}' "$report"))"
