# Shared settings and helpers for scripts/k8s/*. Sourced, never run.
# shellcheck disable=SC2034  # the variables are used by the scripts that source this file
#
# Versions: Kubernetes comes from scripts/k8s/gomod/go.mod (the single place to change it),
# helm and kwok are pinned here. Binaries are cached per Kubernetes version in
#   ${XDG_CACHE_HOME:-$HOME/.cache}/surge/k8s/v<version>/bin
# State of a running cluster lives in $SURGE_K8S_DIR (default: <repo>/.k8s).

K8S_SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$K8S_SCRIPTS/../.." && pwd)"
GOMOD_DIR="$K8S_SCRIPTS/gomod"

HELM_VERSION="v3.19.5"
KWOK_VERSION="v0.7.0"
# Oldest Go that builds the pinned Kubernetes (its go.mod says go 1.24.0).
GO_MIN_MINOR=24

k8s_version() {
  sed -n 's/^require k8s.io\/kubernetes \(v[0-9.]*\)$/\1/p' "$GOMOD_DIR/go.mod"
}
K8S_VERSION="$(k8s_version)"

K8S_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/surge/k8s/$K8S_VERSION"
K8S_BIN="$K8S_CACHE/bin"
SURGE_K8S_DIR="${SURGE_K8S_DIR:-$REPO_ROOT/.k8s}"

# The binaries `up` needs, all found in $K8S_BIN once `build` has run.
K8S_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubectl helm kwok etcd)

# die MESSAGE: the one-line error every script ends with on failure.
die() {
  echo "$(basename "$0"): error: $*" >&2
  exit 1
}

log() {
  echo "$(basename "$0"): $*" >&2
}

# now_ms: wall clock in milliseconds, for the timings the scripts report.
now_ms() {
  date +%s%3N
}
