#!/usr/bin/env bash
# What a burst of joins costs a relay with TLS and without: HTTP-FLV against HTTPS-FLV
# viewers, RTMP against RTMPS publishers, all joining within BURST_OVER. One surge-relay
# pinned to RELAY_CORE serves plain and TLS listeners side by side (the same process, the
# same 600 kbps / 30 fps / 2 s-GOP stream from one publisher); `surge-load burst`, pinned to
# LOAD_CORE, opens the burst. For each burst the relay's CPU time (user + system, from
# /proc) is read before and after: CPU ms per join. Viewers close right after their first
# video frame (--hold 0s), so the figure is the join itself — accept, TLS handshake, the
# HTTP request, the cached group of frames written (encrypted with TLS) — not minutes of
# playback. CPU is the relay's threads' run time (/proc/PID/task/*/schedstat) around the
# burst, less its idle rate (serving the publisher) over the same window. Publishers each publish their own stream with a publish key, then leave.
# Plain and TLS runs alternate, REPEATS times; the table gives medians.
# Certificates: a test CA made here; CERT_KINDS "ec" (P-256 ECDSA) and/or "rsa" (2048 bit,
# still the most common web certificate) — the server's signature is most of a handshake.
# Neither nginx-rtmp (no TLS, no HTTP-FLV) nor the SRS build in ../shared/peers (built
# without SSL) can serve these, so the comparison is surge with TLS against surge without.
#
# Usage: scripts/bench/tls-burst.sh   (env: VIEWERS="200 1000" PUBLISHERS=100 BURST_OVER=1s
#        REPEATS=3 CERT_KINDS="ec rsa" RELAY_CORE=0 LOAD_CORE=1 OUT=target/bench/tls-burst-<time>)
# Output: $OUT/results.md and each burst's report ($OUT/<name>.json).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/bench/lib.sh

case "${1:-}" in
  -h | --help) awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; exit 0 ;;
  "") ;;
  *) echo "tls-burst.sh takes no arguments (settings are environment variables; see --help)" >&2; exit 2 ;;
esac

VIEWERS=${VIEWERS:-"200 1000"}
PUBLISHERS=${PUBLISHERS:-100}
BURST_OVER=${BURST_OVER:-1s}
REPEATS=${REPEATS:-3}
CERT_KINDS=${CERT_KINDS:-"ec rsa"}
RELAY_CORE=${RELAY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
OUT=${OUT:-target/bench/tls-burst-$(date -u +%Y%m%dT%H%M%SZ)}

bench_prepare
relay_bin=target/release/surge-relay
load_bin=target/release/surge-load

# A test CA and a certificate of kind $1 for 127.0.0.1 signed by it, in $OUT/certs/$1/.
make_certs() {
  local kind=$1 d="$OUT/certs/$1"
  mkdir -p "$d"
  local key_args=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
  [ "$kind" = rsa ] && key_args=(-newkey rsa:2048)
  (
    cd "$d"
    openssl req -x509 "${key_args[@]}" -nodes -keyout ca.key -out ca.pem -days 2 \
      -subj "/CN=surge-bench-ca-$kind" 2>/dev/null
    openssl req "${key_args[@]}" -nodes -keyout server.key -out server.csr \
      -subj /CN=127.0.0.1 2>/dev/null
    echo "subjectAltName=IP:127.0.0.1" >san.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
      -out server.pem -days 2 -extfile san.ext 2>/dev/null
  )
}

echo "bench-key" >"$OUT/publish-keys"
{
  echo "# machine: $(nproc) cores, $(awk '/model name/ {$1=$2=$3=""; print; exit}' /proc/cpuinfo | sed 's/^ *//'), kernel $(uname -r); relay on core $RELAY_CORE, surge-load burst on core $LOAD_CORE"
  echo "# bursts over $BURST_OVER, medians of $REPEATS runs; CPU = the relay's threads' run time (schedstat) around the burst, less its idle rate"
  echo
  echo "| certificate | connections | burst | joined | join p50 ms | join p99 ms | TLS handshake p50 ms | relay CPU ms per join | TLS / plain CPU |"
  echo "|---|---|---|---|---|---|---|---|---|"
} >"$OUT/results.md"

# The median of the numbers on stdin.
median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }

# CPU nanoseconds the relay's threads have run so far (schedstat: finer than /proc's ticks).
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {print s + 0}'; }

# The relay's CPU ns per second of wall time while idle (serving the publisher only): taken
# off each burst's window so the figure is the joins' own cost.
idle_rate() {
  local c0 c1
  c0=$(cpu_ns "$relay_pid"); sleep 3; c1=$(cpu_ns "$relay_pid")
  python3 -c "print(($c1 - $c0) / 3)"
}

# One burst: $1 name, then burst arguments. Prints the relay's CPU ms per join and leaves
# the report.
run_burst() {
  local name=$1
  shift
  local c0 c1 t0 t1
  t0=$(date +%s.%N)
  c0=$(cpu_ns "$relay_pid")
  RUST_LOG=warn taskset -c "$LOAD_CORE" "$load_bin" burst "$@" --report "$OUT/$name.json" \
    >"$OUT/$name.out" 2>&1 || true
  # Closing connections still costs the relay a little: let it finish.
  sleep 1
  c1=$(cpu_ns "$relay_pid")
  t1=$(date +%s.%N)
  python3 - "$OUT/$name.json" "$c0" "$c1" "$t0" "$t1" "$idle" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
c0, c1, t0, t1, idle = map(float, sys.argv[2:])
print(max(c1 - c0 - idle * (t1 - t0), 0) / 1e6 / max(r["joined"], 1))
PY
}

field() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); v=r; [v := (v or {}).get(k) for k in sys.argv[2].split(".")]; print("-" if v is None else (round(v, 1) if isinstance(v, float) else v))' "$1" "$2"; }

for kind in $CERT_KINDS; do
  make_certs "$kind"
  certs="$OUT/certs/$kind"
  ports=() ; for _ in 1 2 3 4; do ports+=("$(free_port)"); done
  rtmp=${ports[0]} http=${ports[1]} rtmps=${ports[2]} https=${ports[3]}
  taskset -c "$RELAY_CORE" "$relay_bin" --rtmp-listen "127.0.0.1:$rtmp" --http-listen "127.0.0.1:$http" \
    --rtmps-listen "127.0.0.1:$rtmps" --https-listen "127.0.0.1:$https" \
    --tls-cert "$certs/server.pem" --tls-key "$certs/server.key" \
    --publish-keys-file "$OUT/publish-keys" --max-viewers 100000 >"$OUT/relay-$kind.log" 2>&1 &
  relay_pid=$!
  pids+=("$relay_pid")
  wait_port "$rtmp"
  wait_port "$https"
  taskset -c "$LOAD_CORE" "$load_bin" publish --url "rtmp://127.0.0.1:$rtmp/live/cam?key=bench-key" \
    --bitrate-kbps 600 --fps 30 --gop-seconds 2 --duration forever >"$OUT/publish-$kind.log" 2>&1 &
  publisher=$!
  pids+=("$publisher")
  sleep 4
  idle=$(idle_rate)
  echo "$kind: the relay idles at $(python3 -c "print(f'{$idle / 1e6:.1f}')") CPU ms per second" >&2

  rows=()
  for n in $VIEWERS; do rows+=("viewers $n"); done
  rows+=("publishers $PUBLISHERS")
  for row in "${rows[@]}"; do
    set -- $row
    what=$1 n=$2
    declare -A cpu=()
    for rep in $(seq "$REPEATS"); do
      for tls in plain tls; do
        name="$kind-$what-$n-$tls-$rep"
        if [ "$what" = viewers ]; then
          url="http://127.0.0.1:$http/live/cam.flv"
          [ "$tls" = tls ] && url="https://127.0.0.1:$https/live/cam.flv"
          args=(--url "$url" --count "$n" --over "$BURST_OVER" --hold 0s)
        else
          url="rtmp://127.0.0.1:$rtmp/live/burst-$rep-{n}?key=bench-key"
          [ "$tls" = tls ] && url="rtmps://127.0.0.1:$rtmps/live/burst-tls-$rep-{n}?key=bench-key"
          args=(--url "$url" --count "$n" --over "$BURST_OVER" --hold 1s)
        fi
        [ "$tls" = tls ] && args+=(--ca-file "$certs/ca.pem")
        printf '%s: %s %s x%s, run %s ... ' "$kind" "$tls" "$what" "$n" "$rep" >&2
        c=$(run_burst "$name" "${args[@]}")
        cpu[$tls]+="$c "
        echo "$(field "$OUT/$name.json" joined)/$n joined, join p99 $(field "$OUT/$name.json" join_ms.p99) ms, relay $(printf '%.2f' "$c") CPU ms each" >&2
      done
    done
    for tls in plain tls; do
      med_cpu=$(echo "${cpu[$tls]}" | tr ' ' '\n' | grep . | median)
      joins=$(for rep in $(seq "$REPEATS"); do field "$OUT/$kind-$what-$n-$tls-$rep.json" joined; done | median)
      p50=$(for rep in $(seq "$REPEATS"); do field "$OUT/$kind-$what-$n-$tls-$rep.json" join_ms.p50; done | median)
      p99=$(for rep in $(seq "$REPEATS"); do field "$OUT/$kind-$what-$n-$tls-$rep.json" join_ms.p99; done | median)
      hs="-"
      [ "$tls" = tls ] && hs=$(for rep in $(seq "$REPEATS"); do field "$OUT/$kind-$what-$n-$tls-$rep.json" tls_ms.p50; done | median)
      label="HTTP-FLV viewers"
      [ "$what" = publishers ] && label="RTMP publishers"
      [ "$tls" = tls ] && label="${label/HTTP-FLV/HTTPS-FLV}" && label="${label/RTMP /RTMPS }"
      ratio="-"
      if [ "$tls" = tls ]; then
        plain_cpu=$(echo "${cpu[plain]}" | tr ' ' '\n' | grep . | median)
        ratio=$(python3 -c "print(f'{$med_cpu / max($plain_cpu, 1e-9):.2f}x')")
      fi
      echo "| $kind | $n $label | $BURST_OVER | $joins | $p50 | $p99 | $hs | $(printf '%.2f' "$med_cpu") | $ratio |" >>"$OUT/results.md"
    done
    unset cpu
  done
  kill "$publisher" "$relay_pid" 2>/dev/null || true
  wait "$publisher" "$relay_pid" 2>/dev/null || true
done

echo >&2
cat "$OUT/results.md"
