# Cluster set-up for end-to-end scripts. Source it, never run it:
# shellcheck disable=SC2034  # K8S_E2E_EXTERNAL is read by the e2e scripts
#
#   source "$(dirname "$0")/../k8s/e2e.sh"
#   trap k8s_e2e_stop EXIT      # (call k8s_e2e_stop from your own EXIT trap if you have one)
#   k8s_e2e_start               # exports KUBECONFIG and PATH (kubectl, helm, ...)
#
# By default each e2e script gets a private cluster (scripts/k8s/up with its own state
# directory under /tmp), so tests never touch a cluster a developer started in .k8s/, and
# k8s_e2e_stop takes it down again (scripts/k8s/down), also when the test fails.
#
# With SURGE_KUBECONFIG=/path/to/kubeconfig the tests use that existing cluster instead:
# nothing is started or stopped, K8S_E2E_EXTERNAL=1 is set, and tests must clean up what
# they create (use a namespace of their own).

# shellcheck source=scripts/k8s/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

K8S_E2E_EXTERNAL=0
K8S_E2E_STARTED=0

k8s_e2e_start() {
  export PATH="$K8S_BIN:$PATH"
  if [ -n "${SURGE_KUBECONFIG:-}" ]; then
    [ -f "$SURGE_KUBECONFIG" ] || die "SURGE_KUBECONFIG=$SURGE_KUBECONFIG does not exist"
    export KUBECONFIG="$SURGE_KUBECONFIG"
    K8S_E2E_EXTERNAL=1
    command -v kubectl >/dev/null || die "kubectl not found: run scripts/k8s/build or put kubectl on PATH"
    kubectl get --raw /readyz >/dev/null || die "the cluster of SURGE_KUBECONFIG=$SURGE_KUBECONFIG is not reachable"
    log "using the existing cluster of SURGE_KUBECONFIG=$SURGE_KUBECONFIG"
    return 0
  fi
  export SURGE_K8S_DIR
  SURGE_K8S_DIR="$(mktemp -d "${TMPDIR:-/tmp}/surge-k8s-e2e.XXXXXX")"
  K8S_E2E_STARTED=1
  "$K8S_SCRIPTS/up" || return 1
  export KUBECONFIG="$SURGE_K8S_DIR/kubeconfig"
}

# k8s_e2e_stop [STATUS]: stops the private cluster. After a failure (STATUS, or else the exit
# status seen by an EXIT trap, is non-zero) it keeps the cluster's logs and says where.
k8s_e2e_stop() {
  local status="${1:-$?}"
  if [ "$K8S_E2E_STARTED" -eq 1 ]; then
    K8S_E2E_STARTED=0
    if [ "$status" -ne 0 ]; then
      "$K8S_SCRIPTS/down" --keep-logs || true
      log "test failed; cluster logs kept in $SURGE_K8S_DIR/logs"
    else
      "$K8S_SCRIPTS/down" || true
    fi
  fi
  return 0
}
