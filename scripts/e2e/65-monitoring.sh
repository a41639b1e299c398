#!/usr/bin/env bash
# End-to-end: monitoring a platform team can use, against a real Prometheus (about 1.5 min).
#  1. Without a cluster: `promtool check rules` and `promtool test rules` on the chart's alerts
#     (charts/surge/monitoring/surge-alerts.rules.yaml and its unit tests); the dashboard's
#     structure (scripts/monitoring/check-dashboard.py: datasource variable, unique panel ids,
#     grid, targets, variables), and the checker refusing four broken copies; every dashboard
#     expression parsed by promtool.
#  2. A running Stream: `scripts/demo --prometheus` (surge-operator local, a 300-viewer
#     Facebook-Live crowd at 60x for 40 s, the operator scaling edges) with Debian's Prometheus
#     scraping the operator and every relay each second. While it runs on after the replay:
#     every target found and up; every dashboard expression, run over the replay, returns data
#     without error; the alert rules evaluate without error on the real series (rule health
#     ok) and none fires; the scaling shows in Prometheus (edges desired above the minimum,
#     viewers and forecast, the build info of operator and relays).
# SURGE_MONITORING_SHOTS=DIR also saves screenshots of Prometheus' graph page of the run
# (headless Chromium) there, as in README's Monitoring section.
set -euo pipefail
cd "$(dirname "$0")/../.."

work=$(mktemp -d)
demo_pid=""
cleanup() {
  if [ -n "$demo_pid" ] && kill -0 "$demo_pid" 2>/dev/null; then
    kill "$demo_pid" 2>/dev/null || true # the demo stops what it started, Prometheus included
    wait "$demo_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "65-monitoring: $*" >&2
  for log in "$work"/demo/*.log "$work/demo.out"; do
    [ -f "$log" ] && { echo "--- $log" >&2; tail -8 "$log" >&2; }
  done
  exit 1
}
step() { echo "65-monitoring: $*"; }

scripts/install-deps
command -v promtool >/dev/null || fail "promtool not found (scripts/install-deps installs prometheus)"
rules=charts/surge/monitoring/surge-alerts.rules.yaml
dashboard=charts/surge/monitoring/surge-dashboard.json

# --- 1. rules and dashboard, statically ----------------------------------------------------
promtool check rules "$rules" >"$work/check.txt" 2>&1 || { cat "$work/check.txt"; fail "promtool check rules"; }
(cd charts/surge/monitoring && promtool test rules surge-alerts.test.yaml) >"$work/test.txt" 2>&1 \
  || { cat "$work/test.txt"; fail "promtool test rules (the alerts' unit tests)"; }
scripts/monitoring/check-dashboard.py "$dashboard" --exprs "$work/exprs.json" \
  --rules "$work/dashboard-rules.json" --rate-interval 5s || fail "the dashboard's structure"
promtool check rules "$work/dashboard-rules.json" >"$work/check2.txt" 2>&1 \
  || { cat "$work/check2.txt"; fail "promtool cannot parse the dashboard's expressions"; }
# The checker fails on what Grafana would not load or would show wrong.
broken() { # name jq-filter expected-message
  jq "$2" "$dashboard" >"$work/broken-$1.json"
  if scripts/monitoring/check-dashboard.py "$work/broken-$1.json" >"$work/broken-$1.txt" 2>&1; then
    fail "check-dashboard.py passed a dashboard with $1"
  fi
  grep -q "$3" "$work/broken-$1.txt" || fail "check-dashboard.py on $1 did not say '$3': $(cat "$work/broken-$1.txt")"
}
broken duplicate-id '.panels[2].id = .panels[1].id' 'is used twice'
broken undefined-variable '.panels[1].targets[0].expr |= sub("\\$stream"; "$strem")' 'undefined variables'
broken fixed-datasource '.panels[1].datasource = {"type": "prometheus", "uid": "abc"}' 'not the ${datasource} variable'
broken overlap '.panels[2].gridPos = .panels[1].gridPos' 'overlaps'
step "rules checked and unit-tested; dashboard structure ok ($(jq length "$work/exprs.json") expressions parsed)"

# --- 2. a running Stream, scraped ----------------------------------------------------------
prom_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
prom=http://127.0.0.1:$prom_port
cargo build -q -p surge-operator -p surge-relay -p surge-load
start=$(date +%s)
hold=30 # Prometheus keeps running this long after the replay, for the queries below
[ -z "${SURGE_MONITORING_SHOTS:-}" ] || hold=120
SURGE_DEMO_FIRST_OCTET=${SURGE_DEMO_FIRST_OCTET:-200} scripts/demo --free-ports --build debug \
  --viewers 300 --speed 60 --duration 40s --hold "$hold" --prometheus "$prom_port" --out "$work/demo" \
  >"$work/demo.out" 2>&1 &
demo_pid=$!
# The replay ends with the demo's summary; Prometheus keeps running through the hold.
replay_start=""
for _ in $(seq 1 240); do
  if [ -z "$replay_start" ] && grep -q '==> replaying' "$work/demo.out" 2>/dev/null; then
    replay_start=$(date +%s)
  fi
  grep -q '==> summary' "$work/demo.out" 2>/dev/null && break
  kill -0 "$demo_pid" 2>/dev/null || fail "scripts/demo --prometheus exited early"
  sleep 0.5
done
grep -q '==> summary' "$work/demo.out" || fail "the demo's replay did not end within 2 minutes"
end=$(date +%s)
step "the demo's replay ended after $((end - start)) s; querying Prometheus over it"

query() { curl -fsS --max-time 10 "$prom/api/v1/$1" "${@:2}"; }

# Every target found through the operator's service discovery, and the operator, up.
query targets >"$work/targets.json" || fail "no /api/v1/targets"
jq -e '[.data.activeTargets[] | select(.labels.job == "surge-operator" and .health == "up")] | length == 1' \
  "$work/targets.json" >/dev/null || fail "the operator is not scraped: $(jq -c '.data.activeTargets' "$work/targets.json")"
relays_up=$(jq '[.data.activeTargets[] | select(.labels.job == "surge-relays" and .health == "up")] | length' "$work/targets.json")
relays_known=$(curl -fsS "$(grep -o 'http://127.0.0.1:[0-9]*/api/v1/streams' "$work/demo.out" | head -1)" \
  | jq '[.[0].relays[] | select(.draining | not)] | length')
[ "$relays_up" -ge 3 ] && [ "$relays_up" -ge "$relays_known" ] \
  || fail "$relays_up relays scraped up, the operator runs $relays_known: $(jq -c '[.data.activeTargets[] | {l: .labels, h: .health, e: .lastError}]' "$work/targets.json")"

# Every dashboard expression returns data over the replay (its variables set to all).
empty=()
for i in $(seq 0 $(($(jq length "$work/exprs.json") - 1))); do
  expr=$(jq -r ".[$i].expr" "$work/exprs.json")
  name=$(jq -r ".[$i] | \"\(.panel) \(.refId)\"" "$work/exprs.json")
  query query_range --data-urlencode "query=$expr" --data-urlencode "start=$start" \
    --data-urlencode "end=$end" --data-urlencode "step=2" >"$work/q.json" \
    || fail "Prometheus refused the expression of $name: $expr"
  jq -e '.status == "success"' "$work/q.json" >/dev/null || fail "$name: $(cat "$work/q.json")"
  jq -e '.data.result | length > 0' "$work/q.json" >/dev/null || empty+=("$name: $expr")
done
[ "${#empty[@]}" -eq 0 ] || fail "dashboard expressions without data during the run:$(printf '\n  %s' "${empty[@]}")"
step "$(jq length "$work/exprs.json") dashboard expressions all returned data"

# The alert rules ran on the real series without error, and nothing fires on a healthy run.
query rules >"$work/rules.json" || fail "no /api/v1/rules"
n_rules=$(jq '[.data.groups[].rules[]] | length' "$work/rules.json")
[ "$n_rules" -eq "$(grep -c '^      - alert:' "$rules")" ] || fail "Prometheus loaded $n_rules rules"
jq -e '[.data.groups[].rules[] | select(.health != "ok")] | length == 0' "$work/rules.json" >/dev/null \
  || fail "rules with errors: $(jq -c '[.data.groups[].rules[] | select(.health != "ok") | {name, lastError}]' "$work/rules.json")"
jq -e '[.data.groups[].rules[] | select(.state == "firing")] | length == 0' "$work/rules.json" >/dev/null \
  || fail "alerts fire on a healthy run: $(jq -c '[.data.groups[].rules[] | select(.state == "firing") | {name, alerts}]' "$work/rules.json")"

# The scaling is in Prometheus as it was in the operator.
value() { # PromQL -> the instant value at the end of the run, or "none"
  query query --data-urlencode "query=$1" --data-urlencode "time=$end" \
    | jq -r '.data.result[0].value[1] // "none"'
}
peak_desired=$(value 'max(max_over_time(surge_operator_relays_desired{tier="edge"}[5m]))')
min_edges=$(value 'min(min_over_time(surge_operator_relays_desired{tier="edge"}[5m]))')
peak_viewers=$(value 'max_over_time(sum(surge_operator_viewers)[5m:1s])')
relay_viewers=$(value 'max_over_time(sum(surge_relay_viewers{tier="edge"})[5m:1s])')
build=$(value 'count(count by (component) (surge_build_info{version!=""}))')
step "peak edges desired $peak_desired (min $min_edges), peak viewers $peak_viewers (operator) / $relay_viewers (edges' own series), components with build info $build"
[ "$peak_desired" != none ] && [ "$(jq -n "$peak_desired > $min_edges")" = true ] \
  || fail "no region's edges desired went above the minimum in Prometheus"
[ "$(jq -n "${peak_viewers/none/0} >= 200")" = true ] || fail "peak viewers $peak_viewers (of 300)"
[ "$(jq -n "${relay_viewers/none/0} >= 200")" = true ] || fail "the edges' series peak at $relay_viewers viewers"
[ "$build" = 2 ] || fail "surge_build_info of operator and relay: $build components"

if [ -n "${SURGE_MONITORING_SHOTS:-}" ]; then
  mkdir -p "$SURGE_MONITORING_SHOTS"
  scripts/monitoring/screenshots "$prom" "${replay_start:-$start}" "$end" "$SURGE_MONITORING_SHOTS" \
    || fail "screenshots"
fi
kill "$demo_pid" 2>/dev/null || true
wait "$demo_pid" 2>/dev/null || true
demo_pid=""
step "ok in $(($(date +%s) - start)) s of running"
