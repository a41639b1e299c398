#!/usr/bin/env bash
# How long `surge-load simulate --policy all` takes on the goal's workload: a 3-hour,
# 3-region trace peaking at 2 million viewers (the election trace's evening, 21:00-24:00),
# and on the whole 24-hour election trace with a plot. Goal: the 3-hour run under 10 s.
#
# Usage: scripts/bench/simulate-speed.sh        (env: RUNS=5 OUT=target/bench/simulate-speed)
# Output: one line per run (wall seconds, max RSS) and a summary line per workload.
set -euo pipefail
cd "$(dirname "$0")/../.."

RUNS=${RUNS:-5}
OUT=${OUT:-target/bench/simulate-speed}
mkdir -p "$OUT"
cargo build -q --release -p surge-load
bin=target/release/surge-load

# The header, the column line and t_s in [54000, 64800]: 10,801 s x 3 regions (+ total).
three_hours="$OUT/election-3h.csv"
awk -F, 'NR<=2 || ($2>=54000 && $2<=64800)' load-gen/traces/election.csv >"$three_hours"
"$bin" trace check "$three_hours" >/dev/null

time_runs() {
  local name=$1
  shift
  local best="" worst="" t
  for i in $(seq "$RUNS"); do
    /usr/bin/time -f "%e %M" -o "$OUT/time.txt" "$bin" simulate "$@" >"$OUT/$name.txt" 2>"$OUT/$name.log"
    read -r t rss <"$OUT/time.txt"
    echo "$name run $i: ${t} s wall, ${rss} KB max RSS"
    best=$(python3 -c "print(min(float('${best:-$t}'), $t))")
    worst=$(python3 -c "print(max(float('${worst:-$t}'), $t))")
  done
  echo "$name: $RUNS runs, ${best}-${worst} s wall"
}

time_runs "3h-3regions-2M" --trace "$three_hours" --policy all --json "$OUT/3h.json"
time_runs "24h-3regions-2M-with-plot" --trace load-gen/traces/election.csv --policy all \
  --json "$OUT/24h.json" --plot "$OUT/24h.svg"
python3 - "$OUT/3h.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"3-hour trace: {r['duration_s']} s, regions {r['regions']}, peak {r['peak_viewers']:.0f} viewers")
PY
