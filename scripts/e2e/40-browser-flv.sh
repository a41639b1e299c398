#!/usr/bin/env bash
# End-to-end: a viewer in a real browser watches a surge-relay HTTP-FLV stream.
# surge-relay (debug build) takes an ffmpeg RTMP publish (testsrc2 640x360 30 fps + AAC); headless
# Chromium (the Debian package, driven by playwright-core) opens scripts/browser/player.html,
# which plays http://127.0.0.1:PORT/live/browser.flv with mpegts.js. The checks (in
# scripts/browser/flv-playback.test.mjs): frames decoded past 30, picture 640x360 with the colour
# bars of the test pattern, playhead and picture advancing in real time, time to first frame
# reported; a stream that does not exist ends in a player error and a 404, not a hang.
# npm packages are installed from package-lock.json into scripts/browser/node_modules only when
# missing or stale (npm's cache makes a reinstall offline); no browser is downloaded.
# Set SURGE_BROWSER_OUT=DIR to keep the screenshot (DIR/browser-playback.png).
set -euo pipefail
cd "$(dirname "$0")/../.."

name=40-browser-flv
fail() { echo "FAIL $name: $*" >&2; exit 1; }

for tool in node npm ffmpeg curl jq python3; do
  command -v "$tool" >/dev/null || fail "$tool not found (scripts/install-deps installs the Debian packages)"
done
chromium=${CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || fail "$chromium not found (scripts/install-deps installs the chromium package)"

# npm dependencies, pinned by package-lock.json; a stamp with the lock's hash says they are current.
browser_dir=scripts/browser
lock_sum=$(sha256sum "$browser_dir/package-lock.json" | cut -d' ' -f1)
stamp="$browser_dir/node_modules/.surge-lock.sha256"
if [ "$(cat "$stamp" 2>/dev/null)" != "$lock_sum" ]; then
  echo "$name: installing npm packages (npm ci) into $browser_dir/node_modules"
  (cd "$browser_dir" && npm ci --no-audit --no-fund --ignore-scripts --prefer-offline --loglevel=error) \
    || fail "npm ci in $browser_dir failed"
  echo "$lock_sum" >"$stamp"
fi

cargo build -q -p surge-relay
relay=target/debug/surge-relay

work=$(mktemp -d)
out=${SURGE_BROWSER_OUT:-$work}
mkdir -p "$out"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
show_logs() {
  echo "--- relay log (tail)" >&2; tail -20 "$work/relay.log" >&2 || true
  echo "--- ffmpeg log (tail)" >&2; tail -10 "$work/ffmpeg.log" >&2 || true
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 100); do
    (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

rtmp=$(free_port)
http=$(free_port)
"$relay" --rtmp-listen "127.0.0.1:$rtmp" --http-listen "127.0.0.1:$http" --shutdown-grace 1s \
  >"$work/relay.log" 2>&1 &
pids+=($!)
{ wait_port "$rtmp" && wait_port "$http"; } || { show_logs; fail "surge-relay did not listen on $rtmp/$http"; }

width=640
height=360
# -t bounds the publisher even if this script is killed without running its trap.
ffmpeg -hide_banner -nostdin -loglevel error -re \
  -f lavfi -i "testsrc2=size=${width}x${height}:rate=30" -f lavfi -i sine=frequency=440 \
  -c:v libx264 -preset veryfast -tune zerolatency -g 60 -c:a aac -t 90 \
  -f flv "rtmp://127.0.0.1:$rtmp/live/browser" >"$work/ffmpeg.log" 2>&1 &
pids+=($!)

# Wait until the relay holds a keyframe of the stream (its GOP cache is not empty).
ready=0
for _ in $(seq 100); do
  if curl -sf "http://127.0.0.1:$http/api/v1/streams" \
    | jq -e '.streams[] | select(.app == "live" and .name == "browser" and .gop_cache_ms > 0)' >/dev/null; then
    ready=1
    break
  fi
  sleep 0.1
done
[ "$ready" = 1 ] || { show_logs; fail "the published stream never appeared in /api/v1/streams"; }

rc=0
(
  cd "$browser_dir"
  exec timeout 90 node flv-playback.test.mjs \
    --flv "http://127.0.0.1:$http/live/browser.flv" \
    --missing "http://127.0.0.1:$http/live/no-such-stream.flv" \
    --width "$width" --height "$height" --out "$out" --ttff-runs 5
) &
node_pid=$!
pids+=("$node_pid")
wait "$node_pid" || rc=$?
if [ "$rc" -ne 0 ]; then
  [ "$rc" -eq 124 ] && echo "$name: the browser test did not finish within 90 s" >&2
  show_logs
  fail "browser playback checks failed (exit $rc)"
fi
grep -q 'viewer started (http-flv)' "$work/relay.log" || { show_logs; fail "the relay log shows no HTTP-FLV viewer"; }
[ -n "${SURGE_BROWSER_OUT:-}" ] && echo "$name: screenshot kept in $out/browser-playback.png"
echo "PASS $name"
