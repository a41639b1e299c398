# shellcheck shell=bash
# Shared helpers for scripts/netem/*. Sourced, never run.
# shellcheck disable=SC2034  # the variables are used by the scripts that source this file
#
# A run's namespaces are named surgenet-ID-NODE (nodes) and surgenet-ID-wan (the router);
# the state directory's `state` file records them, the proxy's pid and the nodes' addresses.

NETEM_SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$NETEM_SCRIPTS/../.." && pwd)"
NS_PREFIX="surgenet"
# Inside the router namespace (ours alone), so fixed ports cannot collide with anything.
PROXY_PORT=15001
CONTROL_PORT=15000

# die MESSAGE: the one-line error every script ends with on failure.
die() {
  echo "$(basename "$0"): error: $*" >&2
  exit 1
}

log() {
  echo "$(basename "$0"): $*" >&2
}

# need TOOL PACKAGE: a clear line when a command is missing (checked before anything runs).
need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 not found on PATH (Debian package $2; scripts/install-deps installs it)"
}

# netem_bin: the surge-netem binary: $SURGE_NETEM_BIN, else the newest cargo build, else PATH.
netem_bin() {
  if [ -n "${SURGE_NETEM_BIN:-}" ]; then
    [ -x "$SURGE_NETEM_BIN" ] || die "SURGE_NETEM_BIN=$SURGE_NETEM_BIN is not an executable (build: cargo build -p surge-netem)"
    echo "$SURGE_NETEM_BIN"
    return
  fi
  local target="${CARGO_TARGET_DIR:-$REPO_ROOT/target}" best=""
  for b in "$target/debug/surge-netem" "$target/release/surge-netem"; do
    if [ -x "$b" ] && { [ -z "$best" ] || [ "$b" -nt "$best" ]; }; then best="$b"; fi
  done
  [ -n "$best" ] || best="$(command -v surge-netem || true)"
  [ -n "$best" ] || die "surge-netem not found (cargo build -p surge-netem, or set SURGE_NETEM_BIN)"
  echo "$best"
}

# state_get DIR KEY: a value from DIR/state (key=value lines; never sourced).
state_get() {
  local line
  while IFS= read -r line; do
    if [ "${line%%=*}" = "$2" ]; then
      echo "${line#*=}"
      return 0
    fi
  done <"$1/state"
  return 1
}

# state_dir ARG: the --state directory (or $SURGE_NETEM_STATE), which must hold a run.
state_dir() {
  local dir="${1:-${SURGE_NETEM_STATE:-}}"
  [ -n "$dir" ] || die "--state DIR is required (or set SURGE_NETEM_STATE)"
  [ -f "$dir/state" ] || die "no netem run recorded in $dir (scripts/netem/up --state $dir first)"
  echo "$dir"
}

# node_ns DIR NODE: NODE's namespace in the run recorded in DIR.
node_ns() {
  local ns
  ns="$(state_get "$1" "ns.$2")" || die "unknown node '$2' (nodes: $(state_get "$1" nodes))"
  echo "$ns"
}

# control DIR COMMAND...: one command to the run's proxy; prints its reply, fails on error.
control() {
  local dir="$1" router reply
  shift
  router="$(state_get "$dir" router)"
  # shellcheck disable=SC2016  # expanded by the inner bash
  reply="$(ip netns exec "$router" bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "%s\n" "$2" >&3
    IFS= read -r -t 5 line <&3 || exit 1
    printf "%s\n" "$line"' control "$CONTROL_PORT" "$*" 2>/dev/null)" || die "the run's proxy does not answer (see $dir/proxy.log)"
  case "$reply" in
    ok*) echo "${reply#ok }" ;;
    *) die "${reply#error: }" ;;
  esac
}

# tbf_args BITS: tc tbf parameters for an access-link cap: a burst of 20 ms (at least ten
# full-size frames, so a cap still passes TCP's bursts) and a queue of up to 100 ms.
tbf_args() {
  local bits="$1" burst
  burst=$((bits / 8 / 50))
  [ "$burst" -ge 15140 ] || burst=15140
  echo "rate ${bits}bit burst $burst latency 100ms"
}
