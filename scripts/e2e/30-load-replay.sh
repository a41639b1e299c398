#!/usr/bin/env bash
# End-to-end: surge-relay (debug build) + `surge-load publish` + `surge-load replay` of a
# tiny two-region trace with half RTMP and half HTTP-FLV viewers, in well under a minute.
# Checks: zero errors, viewer counts follow the trace (connections within max(2, 10%) of
# the trace in >= 90% of one-second samples, and all 30 playing at the plateau), lag
# measured and finite, every frame carries the timing SEI, the HTML report has its plots.
set -euo pipefail
cd "$(dirname "$0")/../.."

cargo build -q -p surge-relay -p surge-load
relay=target/debug/surge-relay
load=target/debug/surge-load

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 100); do
    (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  return 1
}

rtmp=$(free_port)
http=$(free_port)
"$relay" --rtmp-listen "127.0.0.1:$rtmp" --http-listen "127.0.0.1:$http" >"$work/relay.log" 2>&1 &
pids+=($!)
wait_port "$rtmp"
wait_port "$http"

"$load" publish --url "rtmp://127.0.0.1:$rtmp/live/e2e" --duration 60s >"$work/publish.log" 2>&1 &
pids+=($!)

if ! RUST_LOG=warn "$load" replay --trace load-gen/tests/data/tiny.csv \
  --target "*=127.0.0.1:$rtmp:$http" --stream live/e2e --protocol mix --speed 2 \
  --report "$work/report.json" --html "$work/report.html"; then
  echo "replay failed; relay log tail:" >&2
  tail -20 "$work/relay.log" >&2
  exit 1
fi

report="$work/report.json"
fail() { echo "30-load-replay: $*" >&2; jq -c '{viewers_peak, viewer_sessions, startup_ms, lag_ms, errors, details: .details | {disconnects, frames, frames_without_timing_sei, error_kinds}}' "$report" >&2; exit 1; }
[ "$(jq .errors "$report")" = 0 ] || fail "errors in the report"
[ "$(jq .viewer_sessions "$report")" = 39 ] || fail "expected 39 viewer sessions"
peak=$(jq .viewers_peak "$report")
{ [ "$peak" -ge 27 ] && [ "$peak" -le 30 ]; } || fail "viewers_peak $peak not within 27..30"
jq -e '[.timeline[] | ((.viewers + .connecting - .target) | fabs) <= ([2, .target * 0.1] | max)] as $ok
       | ($ok | map(select(.)) | length) * 10 >= ($ok | length) * 9' "$report" >/dev/null \
  || fail "viewer counts do not follow the trace"
jq -e 'any(.timeline[]; .viewers == 30 and .target == 30)' "$report" >/dev/null || fail "never 30 playing"
jq -e '.lag_ms.p50 > 0 and .lag_ms.p50 <= .lag_ms.p99 and .lag_ms.max < 2000' "$report" >/dev/null \
  || fail "lag not measured or not finite"
jq -e '.details.frames > 1000 and .details.frames_without_timing_sei == 0' "$report" >/dev/null \
  || fail "frames missing their timing SEI"
grep -q 'Stall ratio vs player pre-buffer' "$work/report.html" || fail "HTML report incomplete"
echo "30-load-replay: ok ($(jq -c '{viewers_peak, viewer_sessions, startup_ms, lag_ms, stall_ratio, errors}' "$report"))"
