#!/usr/bin/env bash
# What the load generator itself costs: one `surge-load replay` process holding VIEWERS
# viewers of a 600 kbps / 30 fps stream from surge-relay (release), relay pinned to
# RELAY_CORE, load generator to LOAD_CORE. Samples the replay process's CPU time over the
# steady part of the run (after the ramp) and prints cores used, CPU per frame and per
# Gbit/s, and the cores 10,000 viewers would need at that cost.
#
# Usage: VIEWERS=2000 SECONDS_=40 RELAY=surge|nginx REPLAY_FLAGS=--delayed-acks scripts/bench/loadgen-cost.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/bench/lib.sh

VIEWERS=${VIEWERS:-2000}
SECONDS_=${SECONDS_:-40}
RAMP=${RAMP:-5}
RELAY=${RELAY:-surge}
RELAY_CORE=${RELAY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
PROTOCOL=${PROTOCOL:-rtmp}
OUT=${OUT:-target/bench/loadgen-cost-$(date -u +%Y%m%dT%H%M%SZ)}

bench_prepare

port=$(free_port)
http=$(free_port)
case $RELAY in
  surge)
    taskset -c "$RELAY_CORE" target/release/surge-relay --rtmp-listen "127.0.0.1:$port" \
      --http-listen "127.0.0.1:$http" --max-viewers 100000 >"$OUT/relay.log" 2>&1 &
    ;;
  nginx)
    nginx_conf "$OUT/nginx" "$port"
    taskset -c "$RELAY_CORE" nginx -c "$OUT/nginx/nginx.conf" -p "$OUT/nginx" \
      -g 'daemon off; error_log stderr;' >"$OUT/relay.log" 2>&1 &
    ;;
esac
pids+=($!)
wait_port "$port"
taskset -c "$RELAY_CORE" target/release/surge-load publish --url "rtmp://127.0.0.1:$port/live/cost" \
  --duration forever >"$OUT/publish.log" 2>&1 &
pids+=($!)
sleep 2

flat_trace "$OUT/trace.csv" cost "$VIEWERS" "$SECONDS_" "$RAMP"
RUST_LOG=warn taskset -c "$LOAD_CORE" target/release/surge-load replay --trace "$OUT/trace.csv" \
  --target "*=127.0.0.1:$port:$http" --stream live/cost --speed 1 --protocol "$PROTOCOL" \
  --report "$OUT/report.json" ${REPLAY_FLAGS:-} >"$OUT/replay.out" 2>"$OUT/replay.log" &
replay=$!
pids+=($replay)
# Steady window: from the end of the ramp (+ preflight and settling) to 3 s before the end.
sleep $((RAMP + 6))
cpu0=$(cpu_seconds "$replay"); t0=$(date +%s.%N)
sleep $((SECONDS_ - RAMP - 10))
cpu1=$(cpu_seconds "$replay"); t1=$(date +%s.%N)
rss=$(rss_kib "$replay")
wait "$replay" || true
python3 - "$OUT/report.json" "$cpu0" "$cpu1" "$t0" "$t1" "$rss" "$VIEWERS" "$RELAY" "$PROTOCOL" <<'PY' | tee "$OUT/result.txt"
import json, sys
rep = json.load(open(sys.argv[1]))
cpu0, cpu1, t0, t1 = map(float, sys.argv[2:6]); rss = int(sys.argv[6]); n = int(sys.argv[7])
cores = (cpu1 - cpu0) / (t1 - t0)
tl = [p for p in rep["timeline"] if t0 - 0 <= p["t_s"]]  # rough: steady points
steady = rep["timeline"][len(rep["timeline"]) // 3 : -3] or rep["timeline"]
fps = sum(p["frames"] for p in steady) / len(steady)
mbps = sum(p["mbps"] for p in steady) / len(steady)
viewers = sum(p["viewers"] for p in steady) / len(steady)
print(f"relay {sys.argv[8]}, protocol {sys.argv[9]}, {n} viewers asked, {viewers:.0f} playing in the steady window")
print(f"load generator: {cores:.3f} cores over {t1 - t0:.0f} s, RSS {rss / 1024:.0f} MiB ({rss / max(viewers, 1):.1f} KiB per viewer)")
print(f"received {mbps:.0f} Mbit/s, {fps:.0f} frames/s -> {cores * 1e6 / max(fps, 1):.2f} us CPU per frame, {cores / max(mbps / 1000, 1e-9):.3f} cores per Gbit/s")
print(f"at this cost 10,000 viewers x 600 kbps (6 Gbit/s, 300,000 frames/s) need {cores / max(viewers, 1) * 10000:.2f} cores")
print(f"errors {rep['errors']}, lag p50 {rep['lag_ms']['p50']} ms p99 {rep['lag_ms']['p99']} ms")
PY
