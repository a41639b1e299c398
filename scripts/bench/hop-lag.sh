#!/usr/bin/env bash
# Lag added per hop: origin -> reflector -> edge, with EDGE_VIEWERS viewers at the edge and
# a few probe viewers at the origin and the reflector, all in one replay (one region per
# tier), so the three lag distributions come from the same frames at the same time.
# Added lag per hop = difference of the tiers' lag percentiles.
#
# Usage: scripts/bench/hop-lag.sh        (env: RELAY=surge|nginx EDGE_VIEWERS=1000
#        PROBE_VIEWERS=20 SECONDS_=30 WARMUP_SECONDS=5 RELAY_CORE=0 LOAD_CORE=1
#        INTEGRITY=off|on OUT=target/bench/hop-<time>); lag totals leave out the first
#        WARMUP_SECONDS. INTEGRITY=on (surge only): the origin signs the stream (--sign-key),
#        the reflector and the edge verify what they pull (--verify-key).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/bench/lib.sh

RELAY=${RELAY:-surge}
EDGE_VIEWERS=${EDGE_VIEWERS:-1000}
PROBE_VIEWERS=${PROBE_VIEWERS:-20}
SECONDS_=${SECONDS_:-30}
RELAY_CORE=${RELAY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
INTEGRITY=${INTEGRITY:-off}
OUT=${OUT:-target/bench/hop-$RELAY-$(date -u +%Y%m%dT%H%M%SZ)}
case $INTEGRITY in
  off) ;;
  on) [ "$RELAY" = surge ] || { echo "INTEGRITY=on needs RELAY=surge" >&2; exit 2; } ;;
  *) echo "INTEGRITY must be off or on" >&2; exit 2 ;;
esac

bench_prepare
[ "$INTEGRITY" = on ] && signing_keys
relay_bin=target/release/surge-relay
load_bin=target/release/surge-load

declare -A port
for tier in origin reflector edge; do port[$tier]=$(free_port); done
upstream_of() { case $1 in reflector) echo origin ;; edge) echo reflector ;; esac; }

for tier in origin reflector edge; do
  up=$(upstream_of "$tier")
  case $RELAY in
    surge)
      args=(--rtmp-listen "127.0.0.1:${port[$tier]}" --http-listen "127.0.0.1:$(free_port)" --tier "$tier" --max-viewers 100000)
      [ -n "$up" ] && args+=(--upstream "rtmp://127.0.0.1:${port[$up]}/live")
      if [ "$INTEGRITY" = on ]; then
        if [ -n "$up" ]; then args+=(--verify-key "$OUT/keys/verify.pem"); else args+=(--sign-key "$OUT/keys/sign.pem"); fi
      fi
      taskset -c "$RELAY_CORE" "$relay_bin" "${args[@]}" >"$OUT/$tier.log" 2>&1 &
      ;;
    nginx)
      pull=""
      [ -n "$up" ] && pull="rtmp://127.0.0.1:${port[$up]}/live"
      nginx_conf "$OUT/nginx-$tier" "${port[$tier]}" "$pull"
      taskset -c "$RELAY_CORE" nginx -c "$OUT/nginx-$tier/nginx.conf" -p "$OUT/nginx-$tier" \
        -g 'daemon off; error_log stderr;' >"$OUT/$tier.log" 2>&1 &
      ;;
    *) echo "RELAY must be surge or nginx" >&2; exit 2 ;;
  esac
  pids+=($!)
  wait_port "${port[$tier]}"
done

taskset -c "$LOAD_CORE" "$load_bin" publish --url "rtmp://127.0.0.1:${port[origin]}/live/hop" \
  --bitrate-kbps 600 --fps 30 --gop-seconds 2 --duration forever >"$OUT/publish.log" 2>&1 &
pids+=($!)
sleep 3

trace="$OUT/hop.csv"
{
  echo "# livetrace v1; hop lag: $PROBE_VIEWERS probes at origin and reflector, $EDGE_VIEWERS at the edge"
  echo "broadcast_id,t_s,region,viewers"
  for t in 0 "$SECONDS_"; do
    echo "hop,$t,origin,$PROBE_VIEWERS"
    echo "hop,$t,reflector,$PROBE_VIEWERS"
    echo "hop,$t,edge,$EDGE_VIEWERS"
  done
} >"$trace"

RUST_LOG=warn taskset -c "$LOAD_CORE" "$load_bin" replay --trace "$trace" \
  --target "origin=127.0.0.1:${port[origin]}" --target "reflector=127.0.0.1:${port[reflector]}" \
  --target "edge=127.0.0.1:${port[edge]}" --stream live/hop --speed 1 --warmup "${WARMUP_SECONDS:-5}"s \
  --report "$OUT/report.json" --html "$OUT/report.html" | tee "$OUT/summary.txt"

python3 - "$OUT/report.json" "$RELAY" "$EDGE_VIEWERS" "$INTEGRITY" <<'PY' | tee "$OUT/results.md"
import json, sys
rep = json.load(open(sys.argv[1])); relay = sys.argv[2]
tiers = rep["details"]["by_region"]
print(f"relay {relay}, signed frames {sys.argv[4]}, {sys.argv[3]} viewers at the edge; errors {rep['errors']}, disconnects {rep['details']['disconnects']}")
print()
print("| tier | viewers | lag p50 ms | lag p99 ms | added p50 ms | added p99 ms |")
print("|---|---|---|---|---|---|")
prev = None
for t in ["origin", "reflector", "edge"]:
    lag = tiers[t]["lag_ms"]
    add50 = add99 = ""
    if prev and lag["p50"] is not None and prev["p50"] is not None:
        add50 = f'{lag["p50"] - prev["p50"]:.2f}'
        add99 = f'{lag["p99"] - prev["p99"]:.2f}'
    print(f'| {t} | {tiers[t]["viewers_peak"]} | {lag["p50"]:.2f} | {lag["p99"]:.2f} | {add50} | {add99} |')
    prev = lag
PY
echo "results in $OUT"
