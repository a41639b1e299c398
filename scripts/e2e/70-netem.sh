#!/usr/bin/env bash
# End-to-end: the emulated WAN (scripts/netem) measured, with real relays across it (about
# 30 s once built). Checks:
# - bad input gets one line on stderr, a non-zero exit and leaves no namespace and no state:
#   a delay without a unit, a bad rate, an existing namespace name (which stays untouched),
#   tc or nft missing from PATH, a missing surge-netem, a proxy that fails after the
#   namespaces were made; at run time a malformed or unknown link;
# - wan3 comes up as 7 namespaces of this run; a second run coexists and outlives the first;
# - round trips through every kind of link (80 ms, 200 ms, two hops, jittered viewer links)
#   are twice the configured one-way delay within a few ms, and a new connection's first
#   reply costs two round trips (the emulated handshake);
# - downloads through the 2 and 20 Mbit/s viewer access links take what the cap implies;
# - a surge-relay origin in us-east, an edge in eu-west pulling from it across the 80 ms
#   link, viewers (surge-load replay) in viewer-20m playing from the edge: every frame
#   arrives, lag rises over viewers at the origin by the route's one-way delay (80 + 5 ms);
#   a 2 s stall of the us-east-eu-west link shows as a ~2 s lag spike and player stalls
#   there and nowhere else; a relay hop inside us-east (an edge beside the origin) is
#   measured against the origin;
# - `down` removes exactly this run's namespaces, and the processes in them.
set -euo pipefail
cd "$(dirname "$0")/../.."
t_start=$(date +%s)

cargo build -q -p surge-netem -p surge-relay -p surge-load
target="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/debug"
relay="$target/surge-relay"
load="$target/surge-load"
export SURGE_NETEM_BIN="$target/surge-netem"
netem="$SURGE_NETEM_BIN"

id="e$$"
work=$(mktemp -d)
state="$work/net"
state2="$work/net2"
pids=()
fail() {
  echo "70-netem: $*" >&2
  exit 1
}
ours() { ip netns list | awk '{print $1}' | grep "^surgenet-$1-" || true; }
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/netem/down --state "$state" >/dev/null 2>&1 || true
  scripts/netem/down --state "$state2" >/dev/null 2>&1 || true
  ip netns del "surgenet-${id}x-eu-west" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# refused NAME RUN_ID EXPECTED CMD...: CMD must exit non-zero with exactly one line on
# stderr containing EXPECTED, nothing on stdout, and leave no namespace of RUN_ID and no
# state file behind.
refused() {
  local name="$1" run="$2" expected="$3" rc=0
  shift 3
  "$@" >"$work/out" 2>"$work/err" || rc=$?
  [ "$rc" -ne 0 ] || fail "$name: exit 0"
  [ ! -s "$work/out" ] || fail "$name: printed on stdout: $(head -3 "$work/out")"
  [ "$(wc -l <"$work/err")" -eq 1 ] || fail "$name: $(wc -l <"$work/err") lines on stderr: $(cat "$work/err")"
  grep -qF -- "$expected" "$work/err" || fail "$name: '$expected' not in: $(cat "$work/err")"
  [ -z "$(ours "$run")" ] || fail "$name: left namespaces behind: $(ours "$run")"
  [ ! -e "$work/bad/state" ] || fail "$name: left a state file"
  echo "  refused ($name): $(cat "$work/err")"
}

echo "== bad input"
printf 'node a\nnode b\nlink ab a b delay=80\n' >"$work/no-unit.topo"
refused "delay without a unit" "${id}a" "line 3: link ab: delay: \`80\` needs a unit" \
  scripts/netem/up --topology "$work/no-unit.topo" --state "$work/bad" --id "${id}a"
printf 'node a\nnode b\nlink ab a b delay=fast\n' >"$work/bad-delay.topo"
refused "malformed delay" "${id}a" "delay:" \
  scripts/netem/up --topology "$work/bad-delay.topo" --state "$work/bad" --id "${id}a"
printf 'node a rate=2mbps\n' >"$work/bad-rate.topo"
refused "malformed rate" "${id}a" "rate: \`2mbps\` is not a rate" \
  scripts/netem/up --topology "$work/bad-rate.topo" --state "$work/bad" --id "${id}a"
# Someone else's namespace with the name a run would take: refused, and left as it was.
ip netns add "surgenet-${id}x-eu-west"
refused "existing namespace" "${id}x-nothing" "surgenet-${id}x-eu-west already exists" \
  scripts/netem/up --preset wan3 --state "$work/bad" --id "${id}x"
[ "$(ours "${id}x")" = "surgenet-${id}x-eu-west" ] || fail "the existing namespace was touched: $(ours "${id}x")"
ip netns del "surgenet-${id}x-eu-west"
# PATH without tc (or nft): only what the scripts need before their tool check.
for missing in tc nft; do
  mkdir -p "$work/path-$missing"
  for tool in dirname basename ip tc nft; do
    [ "$tool" = "$missing" ] || ln -sf "$(command -v "$tool")" "$work/path-$missing/$tool"
  done
  refused "no $missing on PATH" "${id}a" "$missing not found on PATH" \
    env PATH="$work/path-$missing" "$BASH" scripts/netem/up --preset wan3 --state "$work/bad" --id "${id}a"
done
refused "no surge-netem" "${id}a" "SURGE_NETEM_BIN=$work/nope is not an executable" \
  env SURGE_NETEM_BIN="$work/nope" scripts/netem/up --preset wan3 --state "$work/bad" --id "${id}a"
# A proxy that dies at start, after every namespace and veth exists: all of it is removed.
# shellcheck disable=SC2016  # $1 and $@ belong to the generated script
printf '#!/bin/sh\nif [ "$1" = proxy ]; then echo "proxy: refusing to start" >&2; exit 3; fi\nexec %s "$@"\n' \
  "$netem" >"$work/broken-netem"
chmod +x "$work/broken-netem"
refused "proxy fails at start" "${id}a" "the proxy exited at start: proxy: refusing to start" \
  env SURGE_NETEM_BIN="$work/broken-netem" scripts/netem/up --preset wan3 --state "$work/bad" --id "${id}a"

echo "== up"
scripts/netem/up --preset wan3 --state "$state" --id "$id" >"$work/up.out" ||
  fail "up failed: $(cat "$work/up.out")"
cat "$work/up.out"
[ "$(ours "$id" | wc -l)" -eq 7 ] || fail "expected 7 namespaces, got: $(ours "$id")"
refused "state in use" "${id}q" "already records run $id" \
  scripts/netem/up --preset wan3 --state "$state" --id "${id}q"
printf 'node a\nnode b\nlink ab a b delay=1ms\n' >"$work/two.topo"
scripts/netem/up --topology "$work/two.topo" --state "$state2" --id "${id}s" >/dev/null || fail "a second run did not come up"
refused "link delay without a unit" "${id}q" "delay: \`80\` needs a unit" \
  scripts/netem/link --state "$state" us-east-eu-west --delay 80
refused "unknown link" "${id}q" "unknown link \`nowhere\`" \
  scripts/netem/link --state "$state" nowhere --delay 80ms
addr() { scripts/netem/addr --state "$state" "$1"; }
# Not a function: a backgrounded `"${run[@]}" ...` has the command's own pid in $! (run execs
# ip netns exec, which execs the command), so the kills below reach it.
run=(scripts/netem/run --state "$state")
us=$(addr us-east) eu=$(addr eu-west)

echo "== round trips (configured one-way delays doubled)"
"${run[@]}" us-east -- "$netem" serve --listen "$us:7000" 2>/dev/null &
pids+=($!)
"${run[@]}" eu-west -- "$netem" serve --listen "$eu:7000" 2>/dev/null &
pids+=($!)
for _ in $(seq 50); do
  "${run[@]}" eu-west -- bash -c "echo >/dev/tcp/$eu/7000" 2>/dev/null &&
    "${run[@]}" us-east -- bash -c "echo >/dev/tcp/$us/7000" 2>/dev/null && break
  sleep 0.1
done
# from to expected-rtt-ms jitter-ms(one way, summed over the route)
probes=(
  "eu-west us-east 160 0"
  "ap-south us-east 400 0"
  "viewer-20m us-east 170 0"
  "viewer-2m eu-west 60 10"
  "viewer-5m eu-west 30 3"
)
probe_pids=()
for p in "${probes[@]}"; do
  read -r from to _ _ <<<"$p"
  "${run[@]}" "$from" -- "$netem" rtt --connect "$(addr "$to"):7000" --count 8 --interval 20ms \
    >"$work/rtt-$from-$to.json" 2>"$work/rtt-$from-$to.err" &
  probe_pids+=($!)
done
for p in "${probe_pids[@]}"; do wait "$p" || fail "an RTT probe failed: $(cat "$work"/rtt-*.err)"; done
for p in "${probes[@]}"; do
  read -r from to want jitter <<<"$p"
  f="$work/rtt-$from-$to.json"
  read -r p50 lo hi first <<<"$(jq -r '[.rtt_ms.p50, .rtt_ms.min, .rtt_ms.max, .first_reply_ms] | @tsv' "$f")"
  python3 - "$from" "$to" "$want" "$jitter" "$p50" "$lo" "$hi" "$first" <<'PY' || fail "round trip $from -> $to off: $(cat "$f")"
import sys
frm, to = sys.argv[1:3]
want, jitter, p50, lo, hi, first = map(float, sys.argv[3:])
spread = 2 * jitter  # each direction draws delay +- jitter
ok = (want - 3 - spread / 2 <= p50 <= want + 10 + spread / 2
      and lo >= want - spread - 3
      and hi <= want + spread + 40
      and first >= 2 * want - spread - 5)
print(f"  {frm} -> {to}: rtt p50 {p50:.2f} ms (min {lo:.2f}, max {hi:.2f}), configured {want:.0f} +- {spread:.0f}; first reply {first:.1f} ms (2 round trips)")
sys.exit(0 if ok else 1)
PY
done

echo "== access links (tc tbf)"
"${run[@]}" viewer-2m -- "$netem" download --connect "$eu:7000" --bytes 500000 >"$work/dl-2m.json" &
d1=$!
"${run[@]}" viewer-20m -- "$netem" download --connect "$eu:7000" --bytes 2500000 >"$work/dl-20m.json" &
d2=$!
wait "$d1" || fail "the viewer-2m download failed"
wait "$d2" || fail "the viewer-20m download failed"
for cap in 2 20; do
  f="$work/dl-${cap}m.json"
  read -r mbit secs bytes <<<"$(jq -r '[.mbit_per_s, .seconds, .bytes] | @tsv' "$f")"
  python3 - "$cap" "$mbit" "$secs" "$bytes" <<'PY' || fail "download through the ${cap} Mbit/s link off: $(cat "$f")"
import sys
cap, mbit, secs, size = map(float, sys.argv[1:])
at_cap = size * 8 / (cap * 1e6)
print(f"  viewer-{cap:.0f}m: {size / 1e3:.0f} kB in {secs:.2f} s ({mbit:.2f} Mbit/s; the cap alone allows it in {at_cap:.2f} s)")
sys.exit(0 if 0.8 * cap <= mbit <= 1.05 * cap and secs >= at_cap else 1)
PY
done

echo "== relays across the WAN"
"${run[@]}" us-east -- "$relay" --rtmp-listen "$us:1935" --http-listen "$us:8080" --admin-listen "$us:9090" \
  >"$work/origin.log" 2>&1 &
pids+=($!)
# An edge beside the origin (no emulated link between them): the relay hop on its own.
"${run[@]}" us-east -- "$relay" --tier edge --region us-east --rtmp-listen "$us:1936" --http-listen "$us:8081" \
  --admin-listen "$us:9091" --upstream "rtmp://$us:1935/live" >"$work/edge-us.log" 2>&1 &
pids+=($!)
"${run[@]}" eu-west -- "$relay" --tier edge --region eu-west --rtmp-listen "$eu:1935" --http-listen "$eu:8080" \
  --admin-listen "$eu:9090" --upstream "rtmp://$us:1935/live" >"$work/edge-eu.log" 2>&1 &
pids+=($!)
for hp in "us-east $us 1935" "us-east $us 1936" "eu-west $eu 1935"; do
  read -r node host port <<<"$hp"
  for _ in $(seq 100); do
    "${run[@]}" "$node" -- bash -c "echo >/dev/tcp/$host/$port" 2>/dev/null && break
    sleep 0.1
  done
done
"${run[@]}" us-east -- "$load" publish --url "rtmp://$us:1935/live/netem" --duration 40s >"$work/publish.log" 2>&1 &
pids+=($!)
sleep 1
cat >"$work/trace.csv" <<'EOF'
# livetrace v1; two viewers for the whole run
broadcast_id,t_s,region,viewers,arrivals,departures
n,0,eu,2,2,0
n,0,*,2,2,0
n,60,eu,2,0,0
n,60,*,2,0,0
EOF
# A 1 s player buffer: a 2 s stall must run it dry (the default 2 s is as long as the stall).
replay() { # NAME NODE TARGET
  RUST_LOG=warn "${run[@]}" "$2" -- "$load" replay --trace "$work/trace.csv" --target "*=$3" \
    --stream live/netem --speed 1 --duration 14s --player-buffer 1 --report "$work/$1.json" \
    >"$work/$1.log" 2>&1
}
replay direct us-east "$us:1935:8080" &
r1=$!
replay hop us-east "$us:1936:8081" &
r2=$!
replay wan viewer-20m "$eu:1935:8080" &
r3=$!
sleep 7
scripts/netem/link --state "$state" us-east-eu-west --stall 2s >/dev/null
for r in $r1 $r2 $r3; do wait "$r" || fail "a replay failed: $(tail -5 "$work"/{direct,hop,wan}.log)"; done
python3 - "$work/direct.json" "$work/hop.json" "$work/wan.json" <<'PY' || fail "relays across the WAN"
import json, sys
direct, hop, wan = (json.load(open(p)) for p in sys.argv[1:])
ROUTE_MS = 80 + 5  # us-east-eu-west + eu-west-viewer-20m, one way
STALL_MS = 2000
problems = []
for name, r in (("direct", direct), ("hop", hop), ("wan", wan)):
    d = r["details"]
    if r["errors"] or d["frames_missing"] or d["frames"] < 0.8 * 14 * 30 * 2:
        problems.append(f"{name}: errors {r['errors']}, frames {d['frames']}, missing {d['frames_missing']}")
rise = wan["lag_ms"]["p50"] - direct["lag_ms"]["p50"]
hop_ms = hop["lag_ms"]["p50"] - direct["lag_ms"]["p50"]
print(f"  lag p50: origin {direct['lag_ms']['p50']:.2f} ms, edge beside it {hop['lag_ms']['p50']:.2f} ms "
      f"(relay hop {hop_ms:+.2f} ms), eu-west edge from viewer-20m {wan['lag_ms']['p50']:.2f} ms "
      f"(rise {rise:.2f} ms, route {ROUTE_MS} ms one way)")
print(f"  2 s stall of us-east-eu-west: lag max {wan['lag_ms']['max']:.0f} ms and {wan['details']['stalls']} player stalls "
      f"there; origin viewers lag max {direct['lag_ms']['max']:.1f} ms, {direct['details']['stalls']} stalls")
if not ROUTE_MS - 3 <= rise <= ROUTE_MS + 30:
    problems.append(f"lag rose by {rise:.1f} ms, the route is {ROUTE_MS} ms")
if not STALL_MS - 100 <= wan["lag_ms"]["max"] <= STALL_MS + ROUTE_MS + 600:
    problems.append(f"the stall does not show as a ~2 s gap: lag max {wan['lag_ms']['max']}")
if wan["details"]["stalls"] < 1:
    problems.append("no player stall during a 2 s link stall")
for name, r in (("direct", direct), ("hop", hop)):
    if r["details"]["stalls"] or r["lag_ms"]["max"] > 500:
        problems.append(f"{name} viewers (not behind the stalled link) stalled: {r['lag_ms']}")
if hop_ms > 10:
    problems.append(f"a relay hop added {hop_ms:.1f} ms")
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
PY
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()

echo "== down"
scripts/netem/down --state "$state"
[ -z "$(ours "$id")" ] || fail "namespaces left after down: $(ours "$id")"
[ ! -e "$state/state" ] || fail "state file left after down"
[ "$(ours "${id}s" | wc -l)" -eq 3 ] || fail "the other run lost namespaces: $(ours "${id}s")"
scripts/netem/down --state "$state2"
[ -z "$(ours "${id}s")" ] || fail "namespaces left after the second down: $(ours "${id}s")"
scripts/netem/down --state "$state" 2>/dev/null || fail "a second down of the same run failed"
echo "70-netem: ok ($(($(date +%s) - t_start)) s)"
