# Shared helpers for the benchmark scripts (sourced).

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() {
  for _ in $(seq 200); do
    (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  return 1
}

# A process and its children (nginx master + worker).
proc_tree() {
  local p
  for p in "$@"; do
    echo "$p"
    pgrep -P "$p" || true
  done
}

# CPU seconds (user + system) used so far by the given processes and their children.
cpu_seconds() {
  local tck total=0 p
  tck=$(getconf CLK_TCK)
  for p in $(proc_tree "$@"); do
    [ -r "/proc/$p/stat" ] || continue
    # Fields 14 and 15 (utime, stime), counted after the ")" that ends the command name.
    total=$((total + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
  done
  python3 -c "print($total / $tck)"
}

# Resident memory (KiB) of the given processes and their children.
rss_kib() {
  local total=0 p v
  for p in $(proc_tree "$@"); do
    v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

# Writes a step trace: 0 to N viewers over RAMP seconds (default 5), then N until SECONDS.
flat_trace() {
  local file=$1 region=$2 viewers=$3 seconds=$4 ramp=${5:-5}
  {
    echo "# livetrace v1; flat $viewers viewers for $seconds s (benchmark step)"
    echo "broadcast_id,t_s,region,viewers"
    echo "bench,0,$region,0"
    echo "bench,$ramp,$region,$viewers"
    echo "bench,$seconds,$region,$viewers"
  } >"$file"
}

nginx_conf() {
  local dir=$1 port=$2 pull=${3:-}
  mkdir -p "$dir/logs"
  local pull_line=""
  [ -n "$pull" ] && pull_line="pull $pull;"
  cat >"$dir/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
worker_processes 1;
worker_rlimit_nofile 100000;
pid $dir/nginx.pid;
events { worker_connections 60000; }
rtmp { server { listen 127.0.0.1:$port; chunk_size 4096; application live { live on; $pull_line } } }
CONF
}

# SRS, the peer on efficiency: $SRS_BIN, by default the build in ../shared/peers/ (7.0.18,
# RTMP and HTTP-FLV). Prints its path, or fails with a line saying how to give one.
srs_bin() {
  local bin=${SRS_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/../shared/peers/srs}
  if [ ! -x "$bin" ]; then
    echo "no SRS binary at $bin: set SRS_BIN to an SRS 7 build (RTMP and HTTP-FLV)" >&2
    return 1
  fi
  echo "$bin"
}

# An SRS configuration in $1/srs.conf: RTMP on $2 and HTTP-FLV on $3 (loopback), GOP cache
# on, as many connections as the open-file limit allows. $4: `low-latency` (every message
# written at once: `tcp_nodelay on; min_latency on; mw_latency 0`, what SRS documents for low
# latency) or `default` (SRS's own defaults: merged writes of about 350 ms). The file is
# printed into the benchmark's results by the caller.
srs_conf() {
  local dir=$1 rtmp=$2 http=$3 mode=$4 vhost="" play=""
  mkdir -p "$dir/html"
  if [ "$mode" = low-latency ]; then
    vhost="tcp_nodelay on; min_latency on;"
    play="mw_latency 0; mw_msgs 0;"
  fi
  # SRS refuses to start when max_connections (+ its own files) passes the open-file limit.
  local conns=$(($(ulimit -n) - 1000))
  cat >"$dir/srs.conf" <<CONF
listen 127.0.0.1:$rtmp;
max_connections $conns;
daemon off;
srs_log_tank console;
srs_log_level warn;
pid $dir/srs.pid;
http_server { enabled on; listen 127.0.0.1:$http; dir $dir/html; }
vhost __defaultVhost__ {
    $vhost
    play { gop_cache on; $play }
    http_remux { enabled on; mount [vhost]/[app]/[stream].flv; }
}
CONF
}

# Common start of a benchmark: creates $OUT (made absolute), raises the open-file limit,
# builds the release binaries, and kills every pid appended to `pids` when the script exits.
bench_prepare() {
  mkdir -p "$OUT"
  OUT=$(cd "$OUT" && pwd)
  ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
  cargo build -q --release -p surge-relay -p surge-load
  pids=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}

# Starts relay $1 on free loopback ports, pinned to $RELAY_CORE, and a
# 600 kbps / 30 fps / 2 s-GOP `surge-load publish` of live/$2 into it, pinned to $LOAD_CORE,
# with `--duration forever` (the default is 60 s): it publishes until bench_cleanup kills it.
# Fills the caller's associative arrays port[$1], http[$1] (empty for nginx) and pid[$1],
# and appends both processes to `pids`. Uses $relay_bin, $load_bin and $OUT.
# Relays: surge (defaults), surge-batched (--max-write-delay $BATCH_DELAY, default 100ms: the
# latency budget), surge-nagle (--viewer-tcp-nodelay false, TCP as nginx-rtmp
# leaves it), surge-pertask (--fanout-tasks 0: one writer task per viewer), surge-flv (the
# defaults, its viewers over HTTP-FLV: see relay_protocol), nginx;
# surge-edge and surge-edge-verify: an edge pulling from an origin that signs the stream
# (--sign-key; the origin runs on $LOAD_CORE, the publisher publishes to it), the edge
# without and with --verify-key (signed frames checked off and on, the same signed stream);
# srs (low-latency settings) and srs-default (SRS's merged writes): see srs_conf.
start_relay_with_publisher() {
  local r=$1 stream=$2
  port[$r]=$(free_port)
  local publish_port=${port[$r]}
  case $r in
    surge-edge | surge-edge-verify)
      signing_keys
      local origin_port
      origin_port=$(free_port)
      taskset -c "$LOAD_CORE" "$relay_bin" --rtmp-listen "127.0.0.1:$origin_port" \
        --http-listen "127.0.0.1:$(free_port)" --tier origin --sign-key "$OUT/keys/sign.pem" \
        >"$OUT/$r-origin.log" 2>&1 &
      pids+=($!)
      wait_port "$origin_port"
      publish_port=$origin_port
      local verify=()
      [ "$r" = surge-edge-verify ] && verify=(--verify-key "$OUT/keys/verify.pem")
      http[$r]=$(free_port)
      taskset -c "$RELAY_CORE" "$relay_bin" --rtmp-listen "127.0.0.1:${port[$r]}" \
        --http-listen "127.0.0.1:${http[$r]}" --max-viewers 100000 --tier edge \
        --upstream "rtmp://127.0.0.1:$origin_port/live" "${verify[@]}" >"$OUT/$r-relay.log" 2>&1 &
      ;;
    surge | surge-batched | surge-nagle | surge-pertask | surge-flv)
      local extra=()
      [ "$r" = surge-batched ] && extra=(--max-write-delay "${BATCH_DELAY:-100ms}")
      [ "$r" = surge-nagle ] && extra=(--viewer-tcp-nodelay false)
      [ "$r" = surge-pertask ] && extra=(--fanout-tasks 0)
      http[$r]=$(free_port)
      taskset -c "$RELAY_CORE" "$relay_bin" --rtmp-listen "127.0.0.1:${port[$r]}" \
        --http-listen "127.0.0.1:${http[$r]}" --max-viewers 100000 "${extra[@]}" >"$OUT/$r-relay.log" 2>&1 &
      ;;
    nginx)
      http[$r]=""
      nginx_conf "$OUT/nginx" "${port[$r]}"
      taskset -c "$RELAY_CORE" nginx -c "$OUT/nginx/nginx.conf" -p "$OUT/nginx" \
        -g 'daemon off; error_log stderr;' >"$OUT/nginx.log" 2>&1 &
      ;;
    srs | srs-default)
      local bin mode=low-latency
      bin=$(srs_bin) || exit 2
      [ "$r" = srs-default ] && mode=default
      http[$r]=$(free_port)
      srs_conf "$OUT/$r" "${port[$r]}" "${http[$r]}" "$mode"
      # SRS resolves its relative paths against its working directory.
      (cd "$OUT/$r" && exec taskset -c "$RELAY_CORE" "$bin" -c "$OUT/$r/srs.conf") >"$OUT/$r.log" 2>&1 &
      ;;
    *) echo "unknown relay $r (surge|surge-batched|surge-nagle|surge-pertask|surge-flv|surge-edge|surge-edge-verify|nginx|srs|srs-default)" >&2; exit 2 ;;
  esac
  pid[$r]=$!
  pids+=("${pid[$r]}")
  wait_port "${port[$r]}"
  taskset -c "$LOAD_CORE" "$load_bin" publish --url "rtmp://127.0.0.1:$publish_port/live/$stream" \
    --bitrate-kbps 600 --fps 30 --gop-seconds 2 --duration forever >"$OUT/publish-$r.log" 2>&1 &
  pids+=($!)
}

# The protocol relay $1's viewers play with: flv for surge-flv (the same relay as surge, so
# one run sets RTMP and HTTP-FLV viewers side by side), $PROTOCOL (default rtmp) otherwise.
relay_protocol() {
  case $1 in
    surge-flv) echo flv ;;
    *) echo "${PROTOCOL:-rtmp}" ;;
  esac
}

# An Ed25519 key pair for signed frames in $OUT/keys (sign.pem, verify.pem), made once.
signing_keys() {
  [ -s "$OUT/keys/verify.pem" ] && return 0
  mkdir -p "$OUT/keys"
  openssl genpkey -algorithm ed25519 -out "$OUT/keys/sign.pem" 2>/dev/null
  openssl pkey -in "$OUT/keys/sign.pem" -pubout -out "$OUT/keys/verify.pem"
}
