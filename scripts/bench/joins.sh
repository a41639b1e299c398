#!/usr/bin/env bash
# Joins at a saturated relay, build against build: each build in RELAY_BINS serves a ramp of
# VIEWERS RTMP viewers (0 -> VIEWERS in 5 s, held until STEP_SECONDS) from a fresh process
# pinned to RELAY_CORE, the 600 kbps / 30 fps / 2 s-GOP publisher and the load generator on
# LOAD_CORE; the builds alternate, ROUNDS times, so they see the same machine. Per run:
# startup p50/p99 (the viewer's connect -> its first keyframe, every join of the ramp), lag
# p99 after the ramp, the relay's core use, the kernel's listen-queue overflows during the run
# (each is a SYN dropped and retried a second later), and from the relay's log the viewers'
# handshake_ms and play_ms p99 (connection start -> handshake done, -> play command handled).
#
# Usage: RELAY_BINS="/path/before/surge-relay /path/after/surge-relay" VIEWERS=6000 \
#          ROUNDS=2 STEP_SECONDS=20 OUT=target/bench/joins-<time> scripts/bench/joins.sh
# Output: $OUT/results.csv and per run the replay JSON report and the relay's log.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/bench/lib.sh

RELAY_BINS=${RELAY_BINS:-target/release/surge-relay}
VIEWERS=${VIEWERS:-6000}
ROUNDS=${ROUNDS:-2}
STEP_SECONDS=${STEP_SECONDS:-20}
RELAY_CORE=${RELAY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
OUT=${OUT:-target/bench/joins-$(date -u +%Y%m%dT%H%M%SZ)}
load_bin=${LOAD_BIN:-target/release/surge-load}

bench_prepare

listen_overflows() { awk '/^TcpExt:/ { if (!h) { for (i = 1; i <= NF; i++) n[$i] = i; h = 1 } else print $n["ListenOverflows"] }' /proc/net/netstat; }

# p99 of a numeric log field (key=value) over the relay's "viewer started" lines.
log_p99() {
  python3 - "$1" "$2" <<'PY'
import re, sys
vals = sorted(float(m.group(1)) for line in open(sys.argv[1]) if "viewer started" in line
              for m in [re.search(sys.argv[2] + r"=([0-9.]+)", line)] if m)
print(f"{vals[min(len(vals) - 1, int(0.99 * len(vals)))]:.1f}" if vals else "")
PY
}

trace="$OUT/flat-$VIEWERS.csv"
flat_trace "$trace" bench "$VIEWERS" "$STEP_SECONDS"
echo "round,build,viewers,startup_p50_ms,startup_p99_ms,startup_max_ms,lag_p99_ms,relay_cpu_util,listen_overflows,first_byte_p99_ms,handshake_p99_ms,play_p99_ms,errors" >"$OUT/results.csv"
for round in $(seq "$ROUNDS"); do
  b=0
  for bin in $RELAY_BINS; do
    b=$((b + 1))
    run="r$round-b$b"
    relay_bin=$bin
    declare -A port http pid
    start_relay_with_publisher surge bench
    sleep 3
    over0=$(listen_overflows)
    cpu0=$(cpu_seconds "${pid[surge]}")
    t0=$(date +%s.%N)
    RUST_LOG=warn taskset -c "$LOAD_CORE" "$load_bin" replay --trace "$trace" \
      --target "*=127.0.0.1:${port[surge]}" --stream live/bench --speed 1 --protocol rtmp \
      --warmup 8s --report "$OUT/$run.json" >"$OUT/$run.out" 2>"$OUT/$run.log" || true
    t1=$(date +%s.%N)
    cpu1=$(cpu_seconds "${pid[surge]}")
    over1=$(listen_overflows)
    cp "$OUT/surge-relay.log" "$OUT/$run-relay.log"
    bench_cleanup
    pids=()
    hs=$(log_p99 "$OUT/$run-relay.log" handshake_ms)
    play=$(log_p99 "$OUT/$run-relay.log" play_ms)
    python3 - "$OUT/$run.json" "$round" "$bin" "$VIEWERS" "$cpu0" "$cpu1" "$t0" "$t1" "$((over1 - over0))" "$hs" "$play" >>"$OUT/results.csv" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
rnd, build, n, cpu0, cpu1, t0, t1, over, hs, play = sys.argv[2:]
f = lambda v: "" if v is None else f"{v:.1f}"
util = (float(cpu1) - float(cpu0)) / (float(t1) - float(t0))
print(",".join([rnd, build, n, f(r["startup_ms"]["p50"]), f(r["startup_ms"]["p99"]),
                f(r["details"].get("startup_ms_max")), f(r["lag_ms"]["p99"]), f"{util:.3f}",
                over, f(r["details"]["connect_to_first_byte_ms"]["p99"]), hs, play, str(r.get("errors", ""))]))
PY
    tail -1 "$OUT/results.csv"
  done
done
column -s, -t "$OUT/results.csv"
