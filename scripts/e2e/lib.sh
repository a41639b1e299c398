# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables are used by the scripts that source this file
# Shared by the chaos end-to-end scripts (sourced, not run: scripts/test runs the numbered
# scripts only). `e2e_init NAME` goes to the repository root and makes the run's directory
# $work, removed at exit unless a check failed; `fail MESSAGE` reports, keeps $work and exits
# 1; `e2e_demo ARGS...` runs `scripts/demo` with the debug build on a generated `steady`
# trace (300 viewers, the same crowd for every fault) with its output in $work; the checks
# read what the demo wrote there (faults.jsonl, report.json, operator-timeline.jsonl).

e2e_init() {
  e2e_name=$1
  cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
  work=$(mktemp -d)
  keep=${SURGE_E2E_KEEP:-false} # true: keep $work after a passing run too
  trap '$keep || rm -rf "$work"' EXIT
  faults=$work/faults.jsonl report=$work/report.json timeline=$work/operator-timeline.jsonl
}

fail() {
  keep=true
  echo "$e2e_name: $* (run kept in $work)" >&2
  [ -f "$work/faults.jsonl" ] && cat "$work/faults.jsonl" >&2
  [ -f "$work/faults.log" ] && cat "$work/faults.log" >&2
  [ -f "$work/report.json" ] && jq -c '{viewers_peak, viewer_sessions, errors, disconnects: .details.disconnects, reconnects: .details.reconnects, frame_gap_max_ms: .details.frame_gap_max_ms, out_of_order: .details.frames_out_of_order, error_kinds: .details.error_kinds}' "$work/report.json" >&2
  [ -f "$work/operator.log" ] && { echo "--- operator.log" >&2; tail -8 "$work/operator.log" >&2; }
  exit 1
}

# e2e_demo ARGS...: scripts/demo --hold 0 on a steady crowd, on free ports, ARGS added.
e2e_demo() {
  cargo build -q -p surge-operator -p surge-relay -p surge-load
  "${CARGO_TARGET_DIR:-target}/debug/surge-load" trace gen --shape steady --seed 7 \
    --out "$work/steady.csv" >/dev/null
  local start
  start=$(date +%s)
  scripts/demo --free-ports --build debug --trace "$work/steady.csv" --viewers 300 --speed 10 \
    --hold 0 --out "$work" "$@" >"$work/demo.out" 2>&1 \
    || { tail -30 "$work/demo.out" >&2; fail "scripts/demo failed"; }
  echo "$e2e_name: scripts/demo returned after $(($(date +%s) - start)) s$($keep && echo "; run kept in $work")"
  [ -s "$faults" ] || fail "no fault was injected"
}

# fault_field N FIELD: FIELD of the Nth fault (0-based) in faults.jsonl.
fault_field() { jq -s -r --argjson n "$1" ".[\$n].$2" "$faults"; }

# fleet_back PID SECONDS: after the pid left the fleet (the operator timeline, one sample a
# second), every region had its planned edges and reflectors Ready within SECONDS: the relay
# replaced, or the plan changed meanwhile (a scale-down may follow the kill) and met.
fleet_back() {
  jq -e -s --argjson k "$1" --argjson within "$2" '
    def plan_met: all(.regions[]; .edges_ready >= .edges_desired
      and .reflectors_ready >= .reflectors_desired);
    (map(.pids | index($k) != null) | rindex(true)) as $last
    | .[$last + 1:] as $after
    | ($after | length) > 0
      and ($after | map(select(plan_met)) | length) > 0
      and (($after | map(select(plan_met)) | first | .t) - ($after | first | .t) <= $within)' \
    "$timeline" >/dev/null
}

# plan_met_within FROM SECONDS: a sample between FROM and FROM + SECONDS (Unix seconds) with
# every region's planned edges and reflectors Ready.
plan_met_within() {
  jq -e -s --argjson from "$1" --argjson within "$2" '
    any(.[]; .unix_s >= $from and .unix_s <= $from + $within
      and all(.regions[]; .edges_ready >= .edges_desired
        and .reflectors_ready >= .reflectors_desired))' "$timeline" >/dev/null
}

# no_relay_left: nothing the demo started runs after it ended: no relay the operator
# reported, and no Service stand-ins' process of this run's log dir.
no_relay_left() {
  local p f
  for p in $(jq -r '.pids[]?' "$timeline" | sort -u); do
    if kill -0 "$p" 2>/dev/null && grep -qa surge-relay "/proc/$p/cmdline" 2>/dev/null; then
      fail "relay pid $p still runs after the demo ended"
    fi
  done
  for f in /proc/[0-9]*/cmdline; do
    if tr '\0' ' ' <"$f" 2>/dev/null | grep -q -- " stand-ins --table $work/"; then
      fail "a Service stand-ins' process ($f) still runs after the demo ended"
    fi
  done
}
