#!/usr/bin/env bash
# Startup at a warm edge: how long a new viewer waits for its first keyframe when it joins a
# relay that already serves the stream to LOAD viewers. Side by side, surge-relay and
# nginx-rtmp (Debian), each pinned to RELAY_CORE, fed by the same 600 kbps / 30 fps /
# 2 s-GOP publisher. For each load, a holding replay keeps LOAD viewers playing while a
# probe replay joins PROBES viewers one by one (spread over PROBE_SECONDS) and reports their
# startup (request -> first keyframe) and connect-to-first-byte.
#
# Usage: scripts/bench/startup.sh     (env: LOADS="0 1000 4000" PROBES=100 PROBE_SECONDS=20
#        RELAYS="surge nginx" RELAY_CORE=0 LOAD_CORE=1 OUT=target/bench/startup-<time>)
# Output: $OUT/results.md (one row per relay and load) and the probe reports.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/bench/lib.sh

LOADS=${LOADS:-"0 1000 4000"}
PROBES=${PROBES:-100}
PROBE_SECONDS=${PROBE_SECONDS:-20}
RELAYS=${RELAYS:-"surge nginx"}
RELAY_CORE=${RELAY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
OUT=${OUT:-target/bench/startup-$(date -u +%Y%m%dT%H%M%SZ)}

bench_prepare
relay_bin=${RELAY_BIN:-target/release/surge-relay}
load_bin=target/release/surge-load

declare -A port http pid
for r in $RELAYS; do start_relay_with_publisher "$r" warm; done
sleep 3

# Probes join at a steady rate and stay: every join lands on a warm relay.
probe_trace="$OUT/probes.csv"
{
  echo "# livetrace v1; $PROBES probe viewers joining one by one over $PROBE_SECONDS s"
  echo "broadcast_id,t_s,region,viewers"
  echo "probe,0,probe,0"
  echo "probe,$PROBE_SECONDS,probe,$PROBES"
  echo "probe,$((PROBE_SECONDS + 2)),probe,$PROBES"
} >"$probe_trace"

{
  echo "| relay | viewers already playing | probes | startup p50 ms | startup p99 ms | startup max ms | connect→first byte p50 ms | p99 ms | errors |"
  echo "|---|---|---|---|---|---|---|---|---|"
} >"$OUT/results.md"

for load in $LOADS; do
  for r in $RELAYS; do
    holder=""
    if [ "$load" -gt 0 ]; then
      hold_seconds=$((PROBE_SECONDS + 20))
      flat_trace "$OUT/hold-$load.csv" hold "$load" "$hold_seconds"
      RUST_LOG=warn taskset -c "$LOAD_CORE" "$load_bin" replay --trace "$OUT/hold-$load.csv" \
        --target "*=127.0.0.1:${port[$r]}" --stream live/warm --speed 1 --report "$OUT/hold-$r-$load.json" \
        >"$OUT/hold-$r-$load.out" 2>&1 &
      holder=$!
      # The ramp (5 s) and settling before the first probe.
      sleep 10
    fi
    RUST_LOG=warn taskset -c "$LOAD_CORE" "$load_bin" replay --trace "$probe_trace" \
      --target "*=127.0.0.1:${port[$r]}" --stream live/warm --speed 1 --report "$OUT/probe-$r-$load.json" \
      >"$OUT/probe-$r-$load.out" 2>&1 || true
    if [ -n "$holder" ]; then
      kill "$holder" 2>/dev/null || true
      wait "$holder" 2>/dev/null || true
      sleep 2
    fi
    python3 - "$OUT/probe-$r-$load.json" "$r" "$load" <<'PY' | tee -a "$OUT/results.md"
import json, sys
rep = json.load(open(sys.argv[1]))
st, d = rep["startup_ms"], rep["details"]
c = d["connect_to_first_byte_ms"]
f = lambda v: "-" if v is None else f"{v:.1f}"
print(f'| {sys.argv[2]} | {sys.argv[3]} | {rep["viewer_sessions"]} | {f(st["p50"])} | {f(st["p99"])} | {f(d["startup_ms_max"])} | {f(c["p50"])} | {f(c["p99"])} | {rep["errors"]} |')
PY
  done
done
echo "results in $OUT"
