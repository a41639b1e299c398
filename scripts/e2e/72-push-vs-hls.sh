#!/usr/bin/env bash
# End-to-end: push against polling on the emulated WAN, the short form of
# scripts/bench/push-vs-hls.sh (about 75 s once built): one viewer per protocol (surge RTMP
# and HTTP-FLV from an edge, HLS from a real nginx-rtmp `hls on` with 3 s fragments) behind
# 5 Mbit/s, 80 ms RTT links, for 30 s, no CPU phase. Checks:
# - bad input gets one line on stderr and a non-zero exit;
# - the HLS viewer read the publisher's timing SEIs out of nginx's MPEG-TS segments (its
#   frames are stamped and it measured chunking, polling and download per frame);
# - HLS's end-to-end delay exceeds push's by a wide margin (more than 3 s and twice it),
#   while every viewer played without errors.
set -euo pipefail
cd "$(dirname "$0")/../.."
t_start=$(date +%s)
fail() {
  echo "72-push-vs-hls: $*" >&2
  exit 1
}

cargo build -q -p surge-netem -p surge-relay -p surge-load
target="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/debug"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

rc=0
scripts/bench/push-vs-hls.sh --viewers 0 >"$work/out" 2>"$work/err" || rc=$?
[ "$rc" -ne 0 ] || fail "--viewers 0: exit 0"
if [ "$(wc -l <"$work/err")" -ne 1 ] || ! grep -q "must be an integer" "$work/err"; then
  fail "--viewers 0: expected one clear line, got: $(cat "$work/err")"
fi

scripts/bench/push-vs-hls.sh --bin-dir "$target" --viewers 1 --duration 30 --cpu-viewers 0 \
  --id "ph$$" --out "$work/out-run" >"$work/log" 2>&1 || {
  tail -20 "$work/log" >&2
  tail -5 "$work/out-run/nginx.log" >&2 || true
  fail "the benchmark failed"
}
cat "$work/out-run/results.md"
python3 - "$work/out-run" <<'PY' || fail "checks failed (results in the log above)"
import json, os, sys
out = sys.argv[1]
r = json.load(open(os.path.join(out, "results.json")))
d = r["delay"]
for p in ("rtmp", "flv", "hls"):
    assert d[p]["viewers_ok"] == 1, f"{p}: no report"
    assert d[p]["errors"] == 0, f"{p}: {d[p]['errors']} errors"
    assert d[p]["e2e_ms_p50"] is not None, f"{p}: no playback latency"
v = json.load(open(os.path.join(out, "viewers", "vhls-1.json")))
h = v["hls"]
assert h["segments"] >= 5, f"HLS viewer fetched {h['segments']} segments"
assert h["chunking_ms"]["mean"] is not None and h["polling_ms"]["mean"] is not None, \
    "HLS viewer found no timing SEI in nginx's TS segments"
det = v["details"]
assert det["frames"] > 100, f"the HLS viewer got {det['frames']} frames"
assert det["frames_without_timing_sei"] == 0, f"{det['frames_without_timing_sei']} HLS frames without a timing SEI"
push = max(d["rtmp"]["e2e_ms_p50"], d["flv"]["e2e_ms_p50"])
hls = d["hls"]["e2e_ms_p50"]
assert hls > push + 3000 and hls > 2 * push, f"HLS {hls:.0f} ms against push {push:.0f} ms"
print(f"HLS {hls / 1000:.1f} s end to end against push {push / 1000:.1f} s")
PY
echo "72-push-vs-hls: ok ($(($(date +%s) - t_start)) s)"
