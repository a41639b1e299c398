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
# - the operator replaces the relay: the killed pid is gone from the fleet and every region's
#   planned edges and reflectors are Ready within 10 s (the same size, unless the planner
#   scaled down meanwhile);
# - nothing the demo started is left running.
# About 90 s on 2 cores.
set -euo pipefail
# shellcheck source=scripts/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init 75-chaos-kill-edge

SURGE_DEMO_FIRST_OCTET=${SURGE_DEMO_FIRST_OCTET:-196} e2e_demo --duration 40s --fault kill-edge@20
killed=$(jq -s '.[0].viewers' "$faults") pid=$(jq -s '.[0].pid' "$faults")
[ "$killed" -ge 5 ] || fail "the killed edge had only $killed viewers"

jq -e --argjson k "$killed" '.details.reconnects.count >= ($k * 0.8)' "$report" >/dev/null \
  || fail "fewer than 80 % of the killed edge's $killed viewers came back"
jq -e '.details.reconnects.max_ms < 2000' "$report" >/dev/null \
  || fail "a viewer took 2 s or more to play again after the kill"
# Nobody else is cut by the kill: from 5 s before it to 3 s after (the replay's timeline, one
# point a second, cumulative disconnects; the kill placed on it by wall-clock time) viewers
# lost their relay only once, at once (within two points: a kill just before a second ends
# splits its disconnects over two), and no more of them than the killed edge had.
# (Scale-downs later may drain loaded edges: not this fault.)
jq -e --slurpfile f "$faults" '
  ($f[0].unix_s - .details.started_unix_s) as $at | ($f[0].viewers) as $k
  | [.timeline[] | select(.t_s >= $at - 5 and .t_s <= $at + 3) | .disconnects] as $d
  | ($d | length) > 2
    and ([range(2; $d | length) | $d[.] - $d[. - 2]] | max) >= ($k * 0.8)
    and ($d[-1] - $d[0]) <= $k + 3' "$report" >/dev/null \
  || fail "the kill cut other viewers than the killed edge's $killed (or its own were not cut at once)"
jq -e '.errors == 0' "$report" >/dev/null || fail "viewers had errors"
jq -e '.details.frames_out_of_order == 0' "$report" >/dev/null \
  || fail "frames were delivered twice or out of order"

# The fleet (the operator timeline, one sample a second): once the killed pid left it, every
# region's plan Ready within 10 s (the relay replaced, or a scale-down planned meanwhile met).
fleet_back "$pid" 10 || fail "the fleet did not return to plan within 10 s of the kill"
no_relay_left
echo "75-chaos-kill-edge: ok ($(jq -c --argjson k "$killed" '{killed_edge_viewers: $k, reconnects: .details.reconnects, disconnects: .details.disconnects, errors, frame_gap_max_ms: .details.frame_gap_max_ms, out_of_order: .details.frames_out_of_order}' "$report"))"
