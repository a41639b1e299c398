#!/usr/bin/env bash
# Chaos, short form: SIGKILL the origin while a crowd watches. `scripts/demo --fault
# kill-origin@20` with the debug build: `surge-operator local` runs the demo Stream, a steady
# crowd of 300 real viewers (a generated `steady` trace at 10x for 45 s) plays through each
# region's locator, and 20 s in the origin gets SIGKILL: the publisher's connection and every
# edge's pull break at once.
# Checks:
# - the origin fed edges with viewers (100 at least);
# - the publisher (`surge-load publish`, which retries like an OBS or ffmpeg wrapper) started
#   a second session through the ingest, and the operator replaced the origin: its pid gone
#   from the fleet and every region's plan Ready within 10 s;
# - the edges' viewers stay connected through the outage: from the kill to 14 s after it no
#   more disconnects than viewers the origin itself served (overflow placed there), and
#   viewer errors for at most 3 % of the crowd (a viewer joining during the outage is told
#   by its locator that the stream is not found, HTTP 404: nothing upstream has it);
# - frames flow again: the longest frame gap in that window stays under 6 s (measured
#   2.5-2.6 s: the publisher back 1.8 s after the kill, the edges pulling 0.5-0.8 s later;
#   7.2-8.5 s while every "stream not found" from the replacement grew the edges' backoff,
#   docs/RELIABILITY.md), and the last 3 s of the replay deliver at least half the frames of
#   the 3 s before the kill;
# - no frame delivered twice or out of order, nothing the demo started left running.
# Prints the outage: publisher back, frames flowing again (1 s points), longest gap, stalls.
# About 75 s on 2 cores.
set -euo pipefail
# shellcheck source=scripts/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init 77-chaos-kill-origin

SURGE_DEMO_FIRST_OCTET=${SURGE_DEMO_FIRST_OCTET:-176} e2e_demo --duration 60s --fault kill-origin@40
kill_unix=$(fault_field 0 unix_s)
[ "$(fault_field 0 tier)" = origin ] || fail "the fault did not hit the origin"
[ "$(fault_field 0 all_edge_viewers)" -ge 100 ] || fail "the origin's edges had too few viewers"

# The publisher's second session: its log line's time, less the kill's.
second=$(grep -m1 'publishing to .*session=2' "$work/publish.log" | cut -d' ' -f1) \
  || fail "the publisher did not publish again after the kill"
publisher_back=$(jq -n --arg t "$second" --argjson k "$kill_unix" \
  '($t | sub("\\.[0-9]+Z$"; "Z") | fromdate) + ($t | capture("(?<f>\\.[0-9]+)Z$").f | tonumber) - $k
   | . * 100 | round / 100')
fleet_back "$(fault_field 0 pid)" 10 || fail "the fleet did not return to plan within 10 s of the kill"

# What the viewers saw, on the replay's timeline (one point a second; the kill placed on it by
# wall clock): from the point before the kill to 14 s after it.
w=$(jq -c --slurpfile f "$faults" '
  ($f[0]) as $x | ($x.unix_s - .details.started_unix_s) as $at
  | ([.timeline[] | select(.t_s <= $at)]) as $before | ($before | last) as $pre
  | [.timeline[] | select(.t_s > $at and .t_s <= $at + 14)] as $w
  | ([$pre.placement[]?.relays | to_entries[] | select(.key as $k | $x.addresses | index($k)) | .value]
      | add // 0) as $own
  | ($before[-3:] | map(.frames) | add) as $frames_before
  | {at_s: ($at * 10 | round / 10), points: ($w | length), origin_viewers: $own,
     disconnects: ($w[-1].disconnects - $pre.disconnects), errors: ($w[-1].errors - $pre.errors),
     reconnects: ($w[-1].reconnects - $pre.reconnects),
     frame_gap_max_ms: ($w | map(.frame_gap_max_ms) | max),
     frames_back_after_s: ($w | max_by(.frame_gap_max_ms) | .t_s - $at | . * 10 | round / 10),
     stalls: ($w[-1].stalls - $pre.stalls), viewers_before: $pre.viewers,
     frames_last_3s: (.timeline[-3:] | map(.frames) | add), frames_before_3s: $frames_before}' "$report")
echo "77-chaos-kill-origin: publisher back after ${publisher_back} s; $w"
jq -e '.points >= 12' <<<"$w" >/dev/null || fail "the replay's timeline misses the outage: $w"
jq -e '.errors <= .viewers_before * 0.03' <<<"$w" >/dev/null \
  || fail "more than 3 % of the viewers had errors during the outage: $w"
jq -e '.disconnects <= .origin_viewers' <<<"$w" >/dev/null \
  || fail "viewers of the edges were cut by the origin's death: $w"
jq -e '.frame_gap_max_ms < 6000' <<<"$w" >/dev/null || fail "frames did not resume within 6 s: $w"
jq -e '.frames_last_3s * 2 >= .frames_before_3s' <<<"$w" >/dev/null \
  || fail "frames did not flow again to the crowd after the outage: $w"
jq -e '.details.frames_out_of_order == 0' "$report" >/dev/null \
  || fail "frames were delivered twice or out of order"
no_relay_left
echo "77-chaos-kill-origin: ok ($(jq -c '{disconnects: .details.disconnects, reconnects: .details.reconnects, errors, error_kinds: .details.error_kinds, frame_gap_max_ms: .details.frame_gap_max_ms, out_of_order: .details.frames_out_of_order}' "$report"))"
