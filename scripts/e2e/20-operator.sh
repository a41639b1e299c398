#!/usr/bin/env bash
# End-to-end test of surge-operator on a real control plane (scripts/k8s: kube-apiserver,
# controller-manager, scheduler built from source; kwok fake nodes in us-east, eu-west and
# ap-south whose pod IPs are loopback addresses).
#
#  1. helm lint + helm template (default and custom values) of charts/surge.
#  2. helm install the chart with the operator Deployment scaled to 0 (kwok runs no
#     containers), then run the operator binary here with the Deployment's own arguments,
#     authenticated as the chart's ServiceAccount (a `kubectl create token` kubeconfig), so
#     the chart's RBAC is what it gets.
#  3. examples/stream.yaml (three regions): per-region Deployments and Services with the
#     right nodeSelectors, pods on that region's nodes, status Ready with tiers filled,
#     `kubectl get streams` columns, metrics, events, leader election (a second operator waits),
#     /readyz (200 "leading" on the leader, 200 "standby" on the waiting replica).
#  4. invalid Streams are rejected by the API server naming the field.
#  5. spec edits converge (min/max change, a region removed then added back).
#  6. a restarted operator changes nothing (Deployment generations unchanged).
#  7. deleting the Stream removes every child (owner references + garbage collector).
#  7b. a region with more edges than the fan-out gets two reflector levels, chained right;
#      children of reflectors choose their parent by room (--parent-peer/--sibling-peer over
#      headless Services).
#  7c. a failed reconcile (the API server refuses the operator's status write) is reported as a
#      Warning ReconcileError event naming the refusal, counted in /metrics and retried; the
#      Stream reconciles once the cause is gone.
#  7d. an object the API server refuses (a ResourceQuota allowing no Services) makes the Stream
#      Ready=False and Degraded=True with reason ApplyFailed naming the Service, a Degraded
#      event and a growing surge_operator_apply_errors_total; with the quota gone it is Ready.
#  7e. placement: a Stream with exposure hostPort gets an edge on host ports advertising the
#      node's IP, a headless peers Service, --placement-peer/--overflow/--max-egress-mbps and a
#      status locator URL; its node's surge.dev/external-host annotation becomes the edge
#      pod's surge.dev/advertise-host (read by --advertise-host-file from a Downward API
#      volume), and goes when the node's annotation does; once its LoadBalancer Service has an
#      ingress IP (status patched here), the region's published endpoints use that IP.
#  7f. publish keys: a Stream with spec.publish.keySecretRef mounts the Secret into the origin
#      (a Secret volume, --publish-keys-file), not into the edge; the key is in no pod spec.
#  7g. signed frames (on by default): the operator generates the Secret <stream>-signing-key
#      (owned by the Stream, removed with it; openssl reads its key), publishes its public key
#      in status.integrity and the <stream>-verify-keys ConfigMap; the origin runs with
#      --sign-key, the edge with --verify-key, from mounted files; no key in any pod spec.
#  7h. external upstreams: a Stream switched from an origin to spec.upstream loses its origin
#      Deployment, Service and PodDisruptionBudget; its edge pulls from the URLs in order and
#      verifies with spec.integrity.trustedKeys; the status has no ingest and lists the URLs.
#  8. scaling loop: `surge-operator pods` runs a real surge-relay at each relay pod's IP with
#     the pod's own arguments (Service names resolved to pod IPs through its hosts file),
#     ffmpeg publishes to the origin relay (the runner projects the key Secret and ConfigMap
#     as files: the origin signs, the edge verifies with no failure counted); /metrics and /api/v1/streams answer on a relay's
#     admin port (the probes' port, which no Service lists) and 404 on its playback port and
#     through the playback Service's port; real HTTP-FLV viewers join an edge relay at a
#     steady pace; the operator's scraper reads the counts and the planner adds
#     edges while the first edge still has room (ahead of the crowd, not in reaction to a
#     full edge). With viewers kept on the edges (one loaded, one with a single viewer, one
#     empty) it scales back down to one edge, removing the least-loaded edges first
#     (pod-deletion-cost), one or several per step; the loaded edge stays. On the test's own cluster a
#     missing surge-relay (with --prewarm) or ffmpeg fails the test; with SURGE_KUBECONFIG
#     the loop is skipped with a message (it needs the local cluster's loopback pod IPs).
#  8b. the API server goes away for 20 s (scripts/k8s/outage) under that live stream: every
#     relay goes on serving, the edge's viewers stay and get bytes, the pod runner keeps its
#     relays; once it is back the operator (restarted if it gave up its lease, as by design)
#     resumes with no pod replaced, no Deployment changed and no scale event.
#
# The Streams live in a namespace of the test's own (surge-e2e-<pid>), created and deleted by
# the test. With SURGE_KUBECONFIG (an existing cluster) the chart is also installed under a
# release and namespace of its own (surge-e2e-<pid>), the operator watches only the test's
# namespace (so it never touches other Streams there), and the CRD is removed afterwards
# only if the test installed it.
#
# Bounded: every wait has a timeout and a watchdog ends the script after 12 minutes; an EXIT
# trap stops every process it started and takes the cluster down.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"
# Pod networks of this test's private cluster (not the default 127.10, so a concurrent smoke
# test on the same machine never hands out the same pod IPs).
export SURGE_K8S_POD_PREFIX="${SURGE_K8S_POD_PREFIX:-127.$((40 + $$ % 80))}"
source scripts/k8s/e2e.sh

NAME=20-operator
WORK="$(mktemp -d "${TMPDIR:-/tmp}/surge-operator-e2e.XXXXXX")"
# Helm release (also the name of its ServiceAccount, Deployment and Lease) and its namespace;
# an existing cluster gets names of this run's own (set after k8s_e2e_start).
RELEASE=surge
RELEASE_NS=surge-system
# Namespace of the test's Streams.
NS="surge-e2e-$$"
NS_CREATED=0
RELEASE_NS_CREATED=0
CRD_CREATED=0
# ValidatingAdmissionPolicy (and binding) of section 7c; removed by the EXIT trap if still there.
FREEZE_POLICY="surge-e2e-$$-freeze-status"
FREEZE_CREATED=0
# ResourceQuota of section 7d (in the test's namespace); removed by the EXIT trap if still there.
QUOTA=surge-e2e-no-services
QUOTA_CREATED=0
t_start=$SECONDS

step() { echo "$NAME: [$((SECONDS - t_start))s] $*"; }
fail() {
  echo "$NAME: FAIL: $*" >&2
  if [ -f "$WORK/operator.log" ]; then
    echo "$NAME: last operator log lines:" >&2
    tail -n 30 "$WORK/operator.log" >&2 || true
  fi
  exit 1
}

OPERATOR_PID=""
STANDBY_PID=""
FFMPEG_PID=""
WATCHDOG_PID=""
LEASES_PID=""
PODS_PID=""  # surge-operator pods: a surge-relay per relay pod of section 8
OUTAGE_PID="" # scripts/k8s/outage of section 8b (stopped before it can restart anything)
declare -a VIEWER_PIDS=()

stop_pid() {
  local pid="$1"
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$?
  set +e
  stop_pid "$OUTAGE_PID"
  for pid in "${VIEWER_PIDS[@]}"; do stop_pid "$pid"; done
  stop_pid "$FFMPEG_PID"
  # It stops every relay it started (SIGTERM, SIGKILL after its --stop-grace).
  stop_pid "$PODS_PID"
  stop_pid "$STANDBY_PID"
  stop_pid "$OPERATOR_PID"
  stop_pid "$LEASES_PID"
  stop_pid "$WATCHDOG_PID"
  if [ "$FREEZE_CREATED" -eq 1 ]; then
    kubectl delete validatingadmissionpolicybinding,validatingadmissionpolicy "$FREEZE_POLICY" \
      --ignore-not-found >/dev/null 2>&1
  fi
  if [ "$QUOTA_CREATED" -eq 1 ]; then
    kubectl -n "$NS" delete resourcequota "$QUOTA" --ignore-not-found >/dev/null 2>&1
  fi
  if [ "$K8S_E2E_EXTERNAL" -eq 1 ]; then
    # Only what this run created: its namespaces, its release, the CRD if it installed it.
    if [ "$NS_CREATED" -eq 1 ]; then
      kubectl delete namespace "$NS" --wait=true --timeout=90s >/dev/null 2>&1 \
        || echo "$NAME: namespace $NS is still being deleted" >&2
    fi
    helm uninstall "$RELEASE" -n "$RELEASE_NS" >/dev/null 2>&1
    if [ "$RELEASE_NS_CREATED" -eq 1 ]; then
      kubectl delete namespace "$RELEASE_NS" --wait=false >/dev/null 2>&1
    fi
    if [ "$CRD_CREATED" -eq 1 ]; then
      kubectl delete crd streams.surge.dev --wait=false >/dev/null 2>&1
    fi
  fi
  # The copy of the kubeconfig holds the cluster's credentials; never keep it.
  rm -f "$WORK/kubeconfig"
  k8s_e2e_stop "$status"
  if [ "$status" -eq 0 ]; then
    rm -rf "$WORK"
  else
    echo "$NAME: logs kept in $WORK" >&2
  fi
  exit "$status"
}
trap cleanup EXIT

# Watchdog: the whole test is bounded even if a command hangs.
# (Its sleep is a child it kills when stopped, so nothing outlives the test.)
(
  trap 'kill "$nap" 2>/dev/null; exit 0' TERM
  sleep 720 &
  nap=$!
  wait "$nap"
  echo "$NAME: FAIL: watchdog: still running after 12 minutes" >&2
  kill -TERM $$
) &
WATCHDOG_PID=$!

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("0.0.0.0", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_until DESCRIPTION SECONDS COMMAND...: polls COMMAND every second.
wait_until() {
  local desc="$1" limit="$2"
  shift 2
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$end" ] || fail "timed out after ${limit}s waiting for: $desc"
    sleep 1
  done
}

# --- 0. binaries -------------------------------------------------------------------------
step "building surge-operator and surge-relay"
cargo build -q -p surge-operator -p surge-relay 2>&1 | tail -n 20
OPERATOR="$ROOT/target/debug/surge-operator"
RELAY="$ROOT/target/debug/surge-relay"
[ -x "$OPERATOR" ] || fail "no $OPERATOR"
# What the scaling loop (section 8) lacks, if anything.
MISSING=""
if [ ! -x "$RELAY" ] || ! "$RELAY" --help 2>/dev/null | grep -q -- '--prewarm'; then
  MISSING="$RELAY (with --prewarm)"
fi
command -v ffmpeg >/dev/null || MISSING="${MISSING:+$MISSING and }ffmpeg"

# On the test's own cluster (no SURGE_KUBECONFIG, see scripts/k8s/e2e.sh) the scaling loop
# always runs: fail now, before the cluster is up, rather than skip it later.
if [ -z "${SURGE_KUBECONFIG:-}" ] && [ -n "$MISSING" ]; then
  fail "the scaling loop needs $MISSING (scripts/install-deps installs ffmpeg; cargo builds the relay)"
fi

step "bringing the cluster up"
k8s_e2e_start
command -v helm >/dev/null || fail "helm not found (scripts/k8s/build provides it)"
if [ "$K8S_E2E_EXTERNAL" -eq 1 ]; then
  RELEASE="surge-e2e-$$"
  RELEASE_NS="surge-e2e-$$-system"
fi

# Every kubectl call without -n targets the test's namespace: a private copy of the
# kubeconfig (credentials inlined) whose context has that namespace.
kubectl config view --raw --minify --flatten >"$WORK/kubeconfig" || fail "cannot read the kubeconfig"
chmod 600 "$WORK/kubeconfig"
export KUBECONFIG="$WORK/kubeconfig"
kubectl config set-context --current --namespace="$NS" >/dev/null
kubectl create namespace "$NS" >/dev/null || fail "cannot create namespace $NS"
NS_CREATED=1
# Pods need the namespace's default ServiceAccount (ServiceAccount admission).
for _ in $(seq 1 100); do
  kubectl -n "$NS" get serviceaccount default >/dev/null 2>&1 && break
  sleep 0.1
done
step "Streams go to namespace $NS; release $RELEASE in $RELEASE_NS"

# kwok renews node heartbeats only about once a minute and, unless started with
# --node-lease-duration-seconds, keeps no node Leases; the node-lifecycle controller then
# marks every node NotReady (and every pod Ready=False) about a minute after `up`. When the
# cluster has no node Leases, this test renews them itself (see
# /work/notes/operator-to-k8s-env.md in the project notes).
renew_node_leases() {
  local nodes nap=""
  trap 'kill $nap 2>/dev/null; exit 0' TERM
  nodes="$(kubectl get nodes -o jsonpath='{.items[*].metadata.name}')"
  while true; do
    local now items=""
    now="$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)"
    for node in $nodes; do
      items+="{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\",\"metadata\":{\"name\":\"$node\",\"namespace\":\"kube-node-lease\"},\"spec\":{\"holderIdentity\":\"$node\",\"leaseDurationSeconds\":40,\"renewTime\":\"$now\"}},"
    done
    echo "{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[${items%,}]}" \
      | kubectl apply --server-side --force-conflicts --field-manager=e2e-node-heartbeat -f - >/dev/null 2>&1 || true
    sleep 8 &
    nap=$!
    wait "$nap" || true
  done
}
if [ "$K8S_E2E_EXTERNAL" -eq 0 ] && [ -z "$(kubectl get lease -n kube-node-lease -o name 2>/dev/null)" ]; then
  step "the cluster keeps no node Leases: renewing them from the test"
  renew_node_leases &
  LEASES_PID=$!
fi

# --- 1. chart ------------------------------------------------------------------------------
step "helm lint and helm template (default and custom values)"
helm lint --strict charts/surge >"$WORK/lint.txt" || { cat "$WORK/lint.txt"; fail "helm lint"; }
helm lint --strict charts/surge -f charts/surge/ci/custom-values.yaml >>"$WORK/lint.txt" \
  || { cat "$WORK/lint.txt"; fail "helm lint (custom values)"; }
helm template surge charts/surge -n "$RELEASE_NS" >"$WORK/default.yaml" || fail "helm template (defaults)"
helm template surge charts/surge -n "$RELEASE_NS" -f charts/surge/ci/custom-values.yaml >"$WORK/custom.yaml" \
  || fail "helm template (custom values)"
for kind in ServiceAccount ClusterRole ClusterRoleBinding Role RoleBinding Service Deployment; do
  grep -q "^kind: $kind\$" "$WORK/default.yaml" || fail "default render lacks a $kind"
done
grep -q '^kind: ServiceMonitor$' "$WORK/custom.yaml" || fail "custom render lacks the ServiceMonitor"
grep -q -- '--relay-http-port=18080' "$WORK/custom.yaml" || fail "custom render ignores relay.httpPort"
grep -q -- '--relay-admin-port=19090' "$WORK/custom.yaml" || fail "custom render ignores relay.adminPort"
grep -q -- '--namespace=streams' "$WORK/custom.yaml" || fail "custom render ignores operator.watchNamespace"
if helm template surge charts/surge --set operator.scrapeInterval=soon >/dev/null 2>&1; then
  fail "values.schema.json accepted operator.scrapeInterval=soon"
fi

# --- 2. install, ServiceAccount kubeconfig, operator -------------------------------------
RELAY_HTTP_PORT="$(free_port)"
RELAY_RTMP_PORT="$(free_port)"
RELAY_ADMIN_PORT="$(free_port)"
step "helm install (operator Deployment scaled to 0; relay ports rtmp $RELAY_RTMP_PORT, http $RELAY_HTTP_PORT, admin $RELAY_ADMIN_PORT)"
HELM_EXTRA=()
if [ "$K8S_E2E_EXTERNAL" -eq 1 ]; then
  # The operator must not reconcile the cluster's other Streams.
  HELM_EXTRA+=(--set "operator.watchNamespace=$NS")
  kubectl get namespace "$RELEASE_NS" >/dev/null 2>&1 || RELEASE_NS_CREATED=1
  kubectl get crd streams.surge.dev >/dev/null 2>&1 || CRD_CREATED=1
fi
helm install "$RELEASE" charts/surge -n "$RELEASE_NS" --create-namespace --wait --timeout 60s \
  --set operator.replicas=0 "${HELM_EXTRA[@]}" \
  --set relay.httpPort="$RELAY_HTTP_PORT" --set relay.rtmpPort="$RELAY_RTMP_PORT" \
  --set relay.adminPort="$RELAY_ADMIN_PORT" \
  --set operator.scrapeInterval=1s >"$WORK/install.txt" || { cat "$WORK/install.txt"; fail "helm install"; }
kubectl get crd streams.surge.dev >/dev/null || fail "the chart did not install the Stream CRD"
kubectl wait --for=condition=Established crd/streams.surge.dev --timeout=30s >/dev/null

SA_KUBECONFIG="$WORK/sa-kubeconfig"
server="$(kubectl config view --raw --minify --flatten -o jsonpath='{.clusters[0].cluster.server}')"
ca="$(kubectl config view --raw --minify --flatten -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')"
token="$(kubectl -n "$RELEASE_NS" create token "$RELEASE" --duration=1h)"
cat >"$SA_KUBECONFIG" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: {server: "$server", certificate-authority-data: "$ca"}
users:
- name: surge
  user: {token: "$token"}
contexts:
- name: surge
  context: {cluster: e2e, user: surge, namespace: $RELEASE_NS}
current-context: surge
EOF
chmod 600 "$SA_KUBECONFIG"
sa() { kubectl --kubeconfig "$SA_KUBECONFIG" "$@"; }
[ "$(sa auth whoami -o jsonpath='{.status.userInfo.username}')" = "system:serviceaccount:$RELEASE_NS:$RELEASE" ] \
  || fail "the token kubeconfig is not the chart's ServiceAccount"
[ "$(sa auth can-i watch streams.surge.dev -n "$NS")" = yes ] || fail "ServiceAccount cannot watch streams"
for verb in list update delete; do
  [ "$(sa auth can-i "$verb" secrets -n "$NS" || true)" = no ] || fail "ServiceAccount may $verb secrets (RBAC too wide)"
done
[ "$(sa auth can-i delete pods -n "$NS" || true)" = no ] || fail "ServiceAccount may delete pods (RBAC too wide)"
[ "$(sa auth can-i get nodes)" = yes ] || fail "ServiceAccount cannot read nodes (hostPort edges' external host)"
[ "$(sa auth can-i patch nodes || true)" = no ] || fail "ServiceAccount may patch nodes (RBAC too wide)"
step "the ServiceAccount's RBAC is least-privilege (Secrets get/create only, no pod deletion, nodes read-only)"

# The operator's arguments are the chart Deployment's own.
mapfile -t OP_ARGS < <(kubectl -n "$RELEASE_NS" get deploy "$RELEASE" -o json | jq -r '.spec.template.spec.containers[0].args[]')
[ "${OP_ARGS[0]}" = run ] || fail "unexpected operator args: ${OP_ARGS[*]}"
# Here the operator listens on a free loopback port instead of the chart's metrics address,
# and logs text.
filtered=()
for a in "${OP_ARGS[@]}"; do
  case "$a" in
    --metrics-addr=*) ;;
    --log-format=*) filtered+=(--log-format=text) ;;
    *) filtered+=("$a") ;;
  esac
done
OP_ARGS=("${filtered[@]}")
METRICS_PORT="$(free_port)"

start_operator() {
  local port="$1" log="$2" id="$3"
  env KUBECONFIG="$SA_KUBECONFIG" POD_NAMESPACE="$RELEASE_NS" POD_NAME="$id" RUST_LOG=info,kube=warn \
    "$OPERATOR" "${OP_ARGS[@]}" --metrics-addr "127.0.0.1:$port" >>"$log" 2>&1 &
  echo $!
}
metric() { curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
ok_reconciles() { metric 'surge_operator_reconciles_total{result="ok"}'; }
ok_reconciles_reach() { [ "$(ok_reconciles)" -ge "$1" ]; }
# await_reconciles N WHY: waits until N more reconciles have succeeded than when called. With
# a single Stream (as in every section that uses it) reconciled every second, one at a time,
# N >= 2 means a whole reconcile started after the call: what the test set up before it has
# been acted on. Negative checks observe such a window instead of sleeping.
await_reconciles() {
  local from
  from="$(ok_reconciles)"
  [[ "$from" =~ ^[0-9]+$ ]] || fail "/metrics lacks the successful reconcile count"
  wait_until "$1 more successful reconciles ($2)" 60 ok_reconciles_reach $((from + $1))
}
# /readyz (the chart's readinessProbe): 200 for the leader and for a standby too, since a
# rolling update starts the new replica while the old one still holds the Lease; the body
# names the role.
readyz_is() { # PORT "CODE BODY"
  local code
  code="$(curl -s -o "$WORK/readyz.body" -w '%{http_code}' "http://127.0.0.1:$1/readyz")" || return 1
  [ "$code $(tr -d '\n' <"$WORK/readyz.body")" = "$2" ]
}
readyz_of() { curl -s -w ' (HTTP %{http_code})' "http://127.0.0.1:$1/readyz" | tr -d '\n'; }

step "starting the operator as the ServiceAccount (args: ${OP_ARGS[*]:1})"
OPERATOR_PID="$(start_operator "$METRICS_PORT" "$WORK/operator.log" e2e-a)"
operator_healthy() {
  kill -0 "$OPERATOR_PID" 2>/dev/null || fail "the operator exited"
  curl -sf "http://127.0.0.1:$METRICS_PORT/healthz"
}
wait_until "operator /healthz" 30 operator_healthy
wait_until "operator leads" 30 grep -q "became leader" "$WORK/operator.log"
wait_until "operator /readyz: 200 leading" 30 readyz_is "$METRICS_PORT" "200 leading"

# --- 3. the example Stream -----------------------------------------------------------------
step "kubectl apply -f examples/stream.yaml (in namespace $NS)"
# The example names namespace default; here it goes to the test's namespace.
sed "s/^  namespace: default\$/  namespace: $NS/" examples/stream.yaml | kubectl apply -f - >/dev/null
REGIONS=(us-east eu-west ap-south)
deploy_ready() { # NAME REPLICAS
  [ "$(kubectl get deploy "$1" -o jsonpath='{.spec.replicas}/{.status.readyReplicas}')" = "$2/$2" ]
}
wait_until "origin Deployment ready" 60 deploy_ready final-origin 1
wait_until "us-east edges ready" 60 deploy_ready final-us-east-edge 2
wait_until "eu-west edges ready" 60 deploy_ready final-eu-west-edge 1
wait_until "ap-south edges ready" 60 deploy_ready final-ap-south-edge 1

check_region_placement() { # STREAM: every relay pod runs on a node of its region
  local stream="$1"
  kubectl get pods -l "surge.dev/stream=$stream" -o json \
    | jq -r '.items[] | [.metadata.name, .metadata.labels["surge.dev/region"], .spec.nodeName] | @tsv' \
    | while IFS=$'\t' read -r pod region node; do
        [ -n "$node" ] || fail "pod $pod is not scheduled"
        node_region="$(kubectl get node "$node" -o jsonpath='{.metadata.labels.topology\.kubernetes\.io/region}')"
        [ "$node_region" = "$region" ] || fail "pod $pod (region $region) runs on $node in $node_region"
      done
}
for region in "${REGIONS[@]}"; do
  sel="$(kubectl get deploy "final-$region-edge" -o jsonpath='{.spec.template.spec.nodeSelector.topology\.kubernetes\.io/region}')"
  [ "$sel" = "$region" ] || fail "final-$region-edge nodeSelector is '$sel'"
  kubectl get service "final-$region-edge" >/dev/null || fail "no playback Service in $region"
  args="$(kubectl get deploy "final-$region-edge" -o jsonpath='{.spec.template.spec.containers[0].args}')"
  for want in "\"--region\",\"$region\"" '"--tier","edge"' '"--prewarm","live/final"' \
    "\"--upstream\",\"rtmp://final-origin.$NS.svc.cluster.local:$RELAY_RTMP_PORT/live\""; do
    grep -qF -- "$want" <<<"$args" || fail "final-$region-edge args lack $want: $args"
  done
  # Behind Services (the default exposure) an edge is no locator: a redirect would name a pod IP.
  ! grep -qF -- '--placement-peer' <<<"$args" || fail "final-$region-edge is a locator behind a Service: $args"
done
[ "$(kubectl get deploy final-origin -o jsonpath='{.spec.template.spec.nodeSelector.topology\.kubernetes\.io/region}')" = us-east ] \
  || fail "origin not pinned to us-east"
kubectl get service final-origin >/dev/null || fail "no ingest Service"
check_region_placement final
step "Deployments, Services, nodeSelectors and pod placement are right in all three regions"

stream_ready() { [ "$(kubectl get stream "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]; }
wait_until "Stream final Ready" 60 stream_ready final
status="$(kubectl get stream final -o json)"
[ "$(jq '.status.regions | length' <<<"$status")" = 3 ] || fail "status.regions: $(jq -c .status.regions <<<"$status")"
[ "$(jq '[.status.regions[].tiers[] | select(.tier == "edge")] | length' <<<"$status")" = 3 ] || fail "edge tiers missing in status"
[ "$(jq '.status.origin.ready' <<<"$status")" = 1 ] || fail "status.origin: $(jq -c .status.origin <<<"$status")"
[ "$(jq -r '.status.edges' <<<"$status")" = 4/4 ] || fail "status.edges = $(jq -r .status.edges <<<"$status")"
jq -e '.status.endpoints.ingest | startswith("rtmp://final-origin.\($ns).svc")' --arg ns "$NS" <<<"$status" >/dev/null || fail "no ingest endpoint"
[ "$(jq '.status.endpoints.playback | length' <<<"$status")" = 3 ] || fail "playback endpoints missing"
[ "$(jq '.status.observedGeneration' <<<"$status")" = "$(jq '.metadata.generation' <<<"$status")" ] || fail "observedGeneration lags"
# No relay processes run yet: the operator reports them unreachable instead of failing.
[ "$(jq -r '.status.conditions[] | select(.type=="Degraded") | .reason' <<<"$status")" = RelaysUnreachable ] \
  || fail "expected Degraded/RelaysUnreachable while no relay answers"

kubectl get streams >"$WORK/get-streams.txt"
header="$(head -n 1 "$WORK/get-streams.txt")"
for col in NAME VIEWERS GROWTH/MIN EDGES READY AGE; do
  grep -qw -- "$col" <<<"$header" || fail "kubectl get streams lacks column $col: $header"
done
read -r n viewers growth edges ready _ < <(grep '^final ' "$WORK/get-streams.txt")
[ "$n $viewers $growth $edges $ready" = "final 0 0 4/4 True" ] || fail "kubectl get streams row: $(cat "$WORK/get-streams.txt")"
kubectl get st final >/dev/null || fail "short name st does not work"
step "status Ready, tiers filled; kubectl get streams: $(tr -s ' ' <"$WORK/get-streams.txt" | tail -n 1)"

# /metrics (names from operator/src/metrics.rs; prometheus-client adds _total to counters).
curl -s "http://127.0.0.1:$METRICS_PORT/metrics" >"$WORK/metrics.txt" || fail "GET /metrics failed"
[ -n "$(metric 'surge_operator_reconciles_total{result="ok"}')" ] || fail "/metrics lacks reconcile counts"
[[ "$(metric surge_operator_reconcile_errors_total)" =~ ^[0-9]+$ ]] \
  || fail "/metrics lacks the reconcile error counter: $(grep reconcile_errors "$WORK/metrics.txt")"
buckets="$(grep -c '^surge_operator_reconcile_duration_seconds_bucket{le="' "$WORK/metrics.txt" || true)"
[ "$buckets" -ge 2 ] || fail "the reconcile duration histogram has $buckets buckets"
grep -q '^surge_operator_reconcile_duration_seconds_bucket{le="+Inf"} ' "$WORK/metrics.txt" \
  || fail "the reconcile duration histogram lacks its +Inf bucket"
duration_count="$(metric surge_operator_reconcile_duration_seconds_count)"
[[ "$duration_count" =~ ^[0-9]+$ ]] && [ "$duration_count" -gt 0 ] \
  || fail "reconcile duration histogram count is '$duration_count', expected > 0"
[ "$(metric 'surge_operator_relays_desired{namespace="'"$NS"'",stream="final",region="us-east",tier="edge"}')" = 2 ] \
  || fail "/metrics lacks per-Stream desired relays"
[ "$(metric 'surge_operator_relays_ready{namespace="'"$NS"'",stream="final",region="us-east",tier="edge"}')" = 2 ] \
  || fail "/metrics lacks per-Stream ready relays: $(grep relays_ready "$WORK/metrics.txt")"
for region in "${REGIONS[@]}"; do
  [ "$(metric 'surge_operator_viewers{namespace="'"$NS"'",stream="final",region="'"$region"'"}')" = 0 ] \
    || fail "/metrics lacks the viewers gauge of final in $region: $(grep '^surge_operator_viewers' "$WORK/metrics.txt")"
done
step "/metrics: reconcile errors counter, duration histogram ($buckets buckets, count $duration_count), relays desired/ready and viewers per Stream"
kubectl get events.events.k8s.io -n "$NS" --field-selector regarding.name=final -o jsonpath='{.items[*].reason}' \
  | grep -qw Degraded || fail "no Degraded event recorded for final"

step "a second operator waits on the Lease instead of acting"
STANDBY_PORT="$(free_port)"
STANDBY_PID="$(start_operator "$STANDBY_PORT" "$WORK/standby.log" e2e-b)"
wait_until "standby operator waiting" 30 grep -q "another replica leads" "$WORK/standby.log"
grep -q "controller running" "$WORK/standby.log" && fail "the standby operator started its controller"
readyz_is "$STANDBY_PORT" "200 standby" || fail "standby /readyz: $(readyz_of "$STANDBY_PORT"), expected 200 standby"
readyz_is "$METRICS_PORT" "200 leading" || fail "leader /readyz: $(readyz_of "$METRICS_PORT"), expected 200 leading"
step "/readyz: standby 200 'standby', leader 200 'leading'"
holder="$(kubectl -n "$RELEASE_NS" get lease "$RELEASE" -o jsonpath='{.spec.holderIdentity}')"
[[ "$holder" == e2e-a-* ]] || fail "lease holder is '$holder'"
stop_pid "$STANDBY_PID"
STANDBY_PID=""

# --- 4. invalid Streams ------------------------------------------------------------------
step "invalid Streams are rejected by the API server with the field named"
reject() { # EXPECTED-TEXT YAML [MORE-TEXT]: the rejection has a line holding both texts
  local out
  if out="$(kubectl apply -f - 2>&1 <<<"$2")"; then fail "accepted an invalid Stream: $2"; fi
  grep -F -- "$1" <<<"$out" | grep -qF -- "${3:-$1}" || fail "rejection does not say '$1' ${3:+and '$3' }in one line: $out"
  echo "    rejected: $(grep -o 'spec[^ ]*: Invalid value.*' <<<"$out" | head -n 1)"
}
bad_head='apiVersion: surge.dev/v1alpha1
kind: Stream
metadata: {name: bad, namespace: '"$NS"'}
spec:
  origin: {region: us-east}'
reject "spec.regions[0].minEdges: Invalid value" "$bad_head
  regions: [{name: eu-west, minEdges: 5, maxEdges: 2}]"
reject "spec.regions: Invalid value" "$bad_head
  regions: [{name: eu-west}, {name: eu-west}]" "region names must be unique"
reject "spec.regions: Invalid value" "$bad_head
  regions: []"
reject "spec.tree.fanout" "$bad_head
  regions: [{name: eu-west}]
  tree: {fanout: 1}"
reject "spec.tree.viewersPerEdge" "$bad_head
  regions: [{name: eu-west}]
  tree: {viewersPerEdge: 0}"
reject "spec.tree.edgeEgressMbps" "$bad_head
  regions: [{name: eu-west}]
  tree: {edgeEgressMbps: 0}"
reject "spec.placement.overflow: Invalid value" "$bad_head
  regions: [{name: eu-west}]
  placement: {overflow: [tierAbove, mars]}" "overflow entries must be tierAbove or the name of a region"
reject "spec.publish.keySecretRef.name" "$bad_head
  regions: [{name: eu-west}]
  publish: {keySecretRef: {name: Not_A_Secret}}"
# spec.upstream: each entry named, credentials never repeated in the refusal.
up_head='apiVersion: surge.dev/v1alpha1
kind: Stream
metadata: {name: bad, namespace: '"$NS"'}
spec:
  regions: [{name: eu-west}]'
reject "spec.upstream[1]: Invalid value" "$up_head
  integrity: {enabled: false}
  upstream: [rtmp://a.example/live, 'rtmp://user:s3cret@b.example/live']" "must not carry credentials"
if kubectl apply -f - 2>&1 <<<"$up_head
  integrity: {enabled: false}
  upstream: ['rtmp://user:s3cret@b.example/live']" | grep -q s3cret; then
  fail "a refused spec.upstream entry is repeated (credentials and all) in the API server's answer"
fi
reject "spec.upstream[0]: Invalid value" "$up_head
  integrity: {enabled: false}
  upstream: [rtmp://a.example:70000/live]" "the port must be 1-65535"
reject "spec.upstream[0]: Invalid value" "$up_head
  integrity: {enabled: false}
  upstream: [http://a.example/live]" "must be an rtmp:// or rtmps:// URL"
reject "spec.origin: Invalid value" "$up_head
  integrity: {enabled: false}
  origin: {region: eu-west}
  upstream: [rtmp://a.example/live]" "origin must be left out with upstream"
reject "spec.integrity: Invalid value" "$up_head
  upstream: [rtmp://a.example/live]" "integrity.trustedKeys"

# --- 5. spec edits converge ----------------------------------------------------------------
step "edit: us-east minEdges 2 -> 3 (maxEdges 5), ap-south removed"
kubectl patch stream final --type json -p '[
  {"op": "replace", "path": "/spec/regions/0/minEdges", "value": 3},
  {"op": "replace", "path": "/spec/regions/0/maxEdges", "value": 5},
  {"op": "remove", "path": "/spec/regions/2"}]' >/dev/null
gone() { ! kubectl get "$1" "$2" >/dev/null 2>&1; }
wait_until "us-east edges 3" 60 deploy_ready final-us-east-edge 3
wait_until "ap-south Deployment deleted" 60 gone deploy final-ap-south-edge
wait_until "ap-south Service deleted" 60 gone service final-ap-south-edge
edges_are() { [ "$(kubectl get stream final -o jsonpath='{.status.edges}')" = "$1" ]; }
wait_until "status edges 4/4" 30 edges_are 4/4
step "edit: ap-south added back with minEdges 2"
kubectl patch stream final --type json -p '[
  {"op": "add", "path": "/spec/regions/-", "value": {"name": "ap-south", "minEdges": 2, "maxEdges": 4}}]' >/dev/null
wait_until "ap-south edges 2" 60 deploy_ready final-ap-south-edge 2
wait_until "status edges 6/6" 30 edges_are 6/6
wait_until "Stream final Ready again" 30 stream_ready final
check_region_placement final
kubectl get events.events.k8s.io -n "$NS" --field-selector regarding.name=final -o jsonpath='{.items[*].reason}' \
  | grep -qw ScaledUp || fail "no ScaledUp event for the minEdges change"

# --- 6. restart changes nothing ------------------------------------------------------------
generations() { kubectl get deploy,svc -l surge.dev/stream=final -o jsonpath='{range .items[*]}{.kind}/{.metadata.name} generation={.metadata.generation}{"\n"}{end}' | sort; }
before="$(generations)"
step "restarting the operator ($(wc -l <<<"$before") children)"
stop_pid "$OPERATOR_PID"
grep -q "released leadership" "$WORK/operator.log" || fail "the operator did not release its lease on SIGTERM"
OPERATOR_PID="$(start_operator "$METRICS_PORT" "$WORK/operator.log" e2e-c)"
wait_until "restarted operator /healthz" 30 operator_healthy
wait_until "restarted operator leads (/readyz 200 leading)" 30 readyz_is "$METRICS_PORT" "200 leading"
reconciled_twice() { [ "$(metric 'surge_operator_reconciles_total{result="ok"}')" -ge 3 ]; }
wait_until "restarted operator reconciled 3 times" 60 reconciled_twice
after="$(generations)"
[ "$before" = "$after" ] || fail "the restarted operator changed children:
before:
$before
after:
$after"
step "restarted operator reconciled and changed nothing (every Deployment and Service generation equal)"

# --- 7. deletion ---------------------------------------------------------------------------
step "deleting the Stream"
kubectl delete stream final --wait=true --timeout=30s >/dev/null
no_children() { [ -z "$(kubectl get deploy,svc,rs,pods -l surge.dev/stream=final -o name 2>/dev/null)" ]; }
wait_until "every child of final deleted" 90 no_children
# The page is read whole before grep: `curl | grep -q` under pipefail fails when grep stops
# early and curl gets SIGPIPE on a long page.
final_metrics_gone() { local m; m=$(curl -s "http://127.0.0.1:$METRICS_PORT/metrics") && ! grep -q 'stream="final"' <<<"$m"; }
wait_until "the operator stops reporting metrics of the deleted Stream" 30 final_metrics_gone
step "garbage collector removed every Deployment, Service, ReplicaSet and pod of final; its metrics are gone"

# --- 7b. reflector tiers ------------------------------------------------------------------
step "a region with more edges than the fan-out gets reflector tiers"
kubectl apply -f - >/dev/null <<EOF
apiVersion: surge.dev/v1alpha1
kind: Stream
metadata: {name: deep, namespace: $NS}
spec:
  origin: {region: us-east}
  regions: [{name: ap-south, minEdges: 5, maxEdges: 10}]
  tree: {fanout: 2}
EOF
# 5 edges, fan-out 2: level 1 has 3 reflectors (feeding the edges), level 2 has 2 (fed by the
# origin). The tree at maxEdges (10) has a third level: laid out from the start with no relays,
# so the pod templates stay the same as the plan grows; level 2 passes over it to the origin.
wait_until "deep edges ready" 60 deploy_ready deep-ap-south-edge 5
wait_until "deep reflector level 1 ready" 60 deploy_ready deep-ap-south-reflector-1 3
wait_until "deep reflector level 2 ready" 60 deploy_ready deep-ap-south-reflector-2 2
upstreams() {
  kubectl get deploy "$1" -o json | jq -r '.spec.template.spec.containers[0].args as $a
    | [range(0; $a | length) | select($a[.] == "--upstream") | $a[. + 1] | sub("rtmp://"; "") | split(".")[0]]
    | join(" ")'
}
[ "$(upstreams deep-ap-south-edge)" = "deep-ap-south-reflector-1 deep-origin" ] || fail "edge upstreams: $(upstreams deep-ap-south-edge)"
[ "$(upstreams deep-ap-south-reflector-1)" = "deep-ap-south-reflector-2 deep-origin" ] || fail "level-1 upstreams: $(upstreams deep-ap-south-reflector-1)"
[ "$(upstreams deep-ap-south-reflector-2)" = "deep-ap-south-reflector-3 deep-origin" ] || fail "level-2 upstreams: $(upstreams deep-ap-south-reflector-2)"
[ "$(upstreams deep-ap-south-reflector-3)" = "deep-origin" ] || fail "level-3 upstreams: $(upstreams deep-ap-south-reflector-3)"
[ "$(kubectl get deploy deep-ap-south-reflector-3 -o jsonpath='{.spec.replicas}')" = "0" ] || fail "level 3 runs relays"
# Children of reflectors choose their parent by room: they poll the level above and their
# siblings through headless Services over every relay of those tiers.
flag_services() {
  kubectl get deploy "$1" -o json | jq -r --arg flag "$2" '.spec.template.spec.containers[0].args as $a
    | [range(0; $a | length) | select($a[.] == $flag) | $a[. + 1] | split(".")[0]] | join(" ")'
}
[ "$(flag_services deep-ap-south-edge --parent-peer)" = "deep-ap-south-reflector-1-peers" ] || fail "edge --parent-peer: $(flag_services deep-ap-south-edge --parent-peer)"
[ "$(flag_services deep-ap-south-edge --sibling-peer)" = "deep-ap-south-peers" ] || fail "edge --sibling-peer: $(flag_services deep-ap-south-edge --sibling-peer)"
[ "$(flag_services deep-ap-south-reflector-1 --parent-peer)" = "deep-ap-south-reflector-2-peers" ] || fail "level-1 --parent-peer: $(flag_services deep-ap-south-reflector-1 --parent-peer)"
[ "$(flag_services deep-ap-south-reflector-2 --parent-peer)" = "deep-ap-south-reflector-3-peers" ] || fail "level-2 --parent-peer: $(flag_services deep-ap-south-reflector-2 --parent-peer)"
[ -z "$(flag_services deep-ap-south-reflector-3 --parent-peer)" ] || fail "level 3 is fed by the origin and has no parent to choose"
for svc in deep-ap-south-reflector-1-peers deep-ap-south-reflector-2-peers deep-ap-south-reflector-3-peers deep-ap-south-peers; do
  [ "$(kubectl get svc "$svc" -o jsonpath='{.spec.clusterIP}/{.spec.publishNotReadyAddresses}')" = "None/true" ] \
    || fail "$svc is not a headless Service publishing not-ready addresses"
done
check_region_placement deep
wait_until "Stream deep Ready" 60 stream_ready deep
tiers="$(kubectl get stream deep -o jsonpath='{range .status.regions[0].tiers[*]}{.tier}{.level}={.ready}/{.desired} {end}')"
[ "$tiers" = "reflector2=2/2 reflector1=3/3 edge0=5/5 " ] || fail "status tiers of deep: '$tiers'"
step "tiers: ${tiers}(edges pull from reflector-1, then the origin; idle level 3 not listed)"
kubectl delete stream deep --wait=true --timeout=30s >/dev/null

# --- 7c. a failed reconcile is reported and retried --------------------------------------
# The cause is real: the API server refuses the operator's status write. (A ResourceQuota
# that forbids the children does not make a reconcile fail: the operator applies what it
# can and reports refused Deployments/Services as Degraded=ApplyFailed with a Degraded event,
# see apply.rs and decide.rs.) A ValidatingAdmissionPolicy, built into kube-apiserver and on by default,
# denies UPDATE of streams/status for the Stream named "blocked" in this test's namespace only
# (which the operator watches in both modes), so nothing else is touched. The reconcile gets
# past observing and applying the children, then write_status fails with 403, the reconcile
# returns the error and error_policy records it and requeues.
step "a reconcile that the API server refuses: ValidatingAdmissionPolicy $FREEZE_POLICY denies the status write of Stream blocked"
FREEZE_CREATED=1
kubectl apply -f - >/dev/null <<EOF || fail "cannot create ValidatingAdmissionPolicy $FREEZE_POLICY"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: $FREEZE_POLICY}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - {apiGroups: [surge.dev], apiVersions: ["*"], operations: [UPDATE], resources: [streams/status], resourceNames: [blocked]}
    # Only so the test can tell when the policy is in force (a dry-run create of this name).
    - {apiGroups: [surge.dev], apiVersions: ["*"], operations: [CREATE], resources: [streams], resourceNames: [blocked-probe]}
  validations:
  - {expression: "false", reason: Forbidden, message: "refused by the surge e2e test"}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: $FREEZE_POLICY}
spec:
  policyName: $FREEZE_POLICY
  validationActions: [Deny]
  matchResources:
    namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: $NS}}
EOF
# Policies take effect shortly after they are created (the API server's informers); wait until
# this one refuses requests, so the operator can never write blocked's status before it does.
freeze_in_force() {
  local out
  out="$(kubectl create --dry-run=server -o name -f - 2>&1 <<EOF
apiVersion: surge.dev/v1alpha1
kind: Stream
metadata: {name: blocked-probe, namespace: $NS}
spec:
  origin: {region: us-east}
  regions: [{name: eu-west}]
EOF
)" && return 1
  grep -qF "ValidatingAdmissionPolicy '$FREEZE_POLICY'" <<<"$out"
}
wait_until "ValidatingAdmissionPolicy $FREEZE_POLICY in force" 30 freeze_in_force
errors_before="$(metric surge_operator_reconcile_errors_total)"
[[ "$errors_before" =~ ^[0-9]+$ ]] || fail "/metrics lacks surge_operator_reconcile_errors_total"
# A small valid Stream: origin in us-east, one eu-west edge (at most 2).
apply_small_stream() {
  kubectl apply -f - >/dev/null <<EOF
apiVersion: surge.dev/v1alpha1
kind: Stream
metadata: {name: $1, namespace: $NS}
spec:
  origin: {region: us-east}
  regions: [{name: eu-west, minEdges: 1, maxEdges: 2}]
EOF
}
apply_small_stream blocked
reconcile_error_note() {
  kubectl get events.events.k8s.io -n "$NS" --field-selector regarding.name=blocked -o json \
    | jq -r '[.items[] | select(.type == "Warning" and .reason == "ReconcileError" and .regarding.kind == "Stream")][0].note // empty'
}
has_reconcile_error() { [ -n "$(reconcile_error_note)" ]; }
wait_until "a Warning ReconcileError event on Stream blocked" 30 has_reconcile_error
note="$(reconcile_error_note)"
# The note is the operator's error text: "Kubernetes API: <the API server's message> (403 Forbidden)".
for want in 'Kubernetes API: ' 'streams.surge.dev "blocked" is forbidden' \
  "ValidatingAdmissionPolicy '$FREEZE_POLICY' with binding '$FREEZE_POLICY' denied request" '(403 Forbidden)'; do
  grep -qF -- "$want" <<<"$note" || fail "the ReconcileError note lacks '$want': $note"
done
grep -qF 'Status {' <<<"$note" && fail "the ReconcileError note carries a debug dump instead of the API server's message: $note"
errors_grew() { [ "$(metric surge_operator_reconcile_errors_total)" -gt "$errors_before" ]; }
wait_until "surge_operator_reconcile_errors_total above $errors_before" 30 errors_grew
step "ReconcileError event: ${note:0:200}..."
# The failure is the status write: the children were applied, the status was never written.
wait_until "blocked origin Deployment ready (applied before the refused status write)" 60 deploy_ready blocked-origin 1
wait_until "blocked edge Deployment ready" 60 deploy_ready blocked-eu-west-edge 1
[ -z "$(kubectl get stream blocked -o jsonpath='{.status}')" ] \
  || fail "Stream blocked has a status although every status write is refused: $(kubectl get stream blocked -o jsonpath='{.status}')"
retried() { [ "$(metric surge_operator_reconcile_errors_total)" -ge $((errors_before + 2)) ]; }
wait_until "the failed reconcile retried (and failing again)" 30 retried
errors_blocked="$(metric surge_operator_reconcile_errors_total)"
step "reconcile errors $errors_before -> $errors_blocked while refused (retried); children applied, status unwritten"

step "removing the cause (the policy binding): the operator's next retry succeeds"
kubectl delete validatingadmissionpolicybinding "$FREEZE_POLICY" >/dev/null
wait_until "Stream blocked Ready after the cause is gone" 60 stream_ready blocked
status="$(kubectl get stream blocked -o json)"
[ "$(jq -r '.status.edges' <<<"$status")" = 1/1 ] || fail "blocked status.edges = $(jq -r .status.edges <<<"$status")"
[ "$(jq '.status.observedGeneration' <<<"$status")" = "$(jq '.metadata.generation' <<<"$status")" ] \
  || fail "blocked observedGeneration lags"
# Once recovered, reconciles (every scrape interval, 1 s here) stop failing: three more
# succeed and none fails meanwhile.
errors_recovered="$(metric surge_operator_reconcile_errors_total)"
await_reconciles 3 "of Stream blocked after recovery"
[ "$(metric surge_operator_reconcile_errors_total)" = "$errors_recovered" ] \
  || fail "reconciles still fail after the cause is gone ($errors_recovered -> $(metric surge_operator_reconcile_errors_total))"
kubectl delete validatingadmissionpolicy "$FREEZE_POLICY" >/dev/null
FREEZE_CREATED=0
kubectl delete stream blocked --wait=true --timeout=30s >/dev/null
step "Stream blocked recovered: Ready, edges 1/1, observedGeneration current, no further reconcile errors"

# --- 7d. a refused apply is not Ready -----------------------------------------------------
# A ResourceQuota that allows no Services makes the API server refuse (403 "exceeded quota")
# every Service the operator applies for Stream capped. The reconcile goes on (the Deployments
# are applied and their relays become Ready), but viewers cannot reach relays without their
# Services: Ready=False and Degraded=True, both ApplyFailed naming the Service, a Degraded
# Warning event, and surge_operator_apply_errors_total{kind="Service"} grows.
step "a refused apply: ResourceQuota $QUOTA allows no Services in $NS"
QUOTA_CREATED=1
kubectl apply -f - >/dev/null <<EOF || fail "cannot create ResourceQuota $QUOTA"
apiVersion: v1
kind: ResourceQuota
metadata: {name: $QUOTA, namespace: $NS}
spec:
  hard: {count/services: "0"}
EOF
# kube-controller-manager's quota controller fills in status.hard; until then the quota
# admission plugin cannot account for the namespace.
quota_in_force() {
  [ "$(kubectl get resourcequota "$QUOTA" -o json | jq -r '.status.hard["count/services"] // empty')" = 0 ]
}
wait_until "ResourceQuota $QUOTA status.hard set (quota controller)" 30 quota_in_force
SVC_ERRORS='surge_operator_apply_errors_total{kind="Service"}'
apply_errors_before="$(metric "$SVC_ERRORS")"
[[ "$apply_errors_before" =~ ^[0-9]+$ ]] || fail "/metrics lacks $SVC_ERRORS"
apply_small_stream capped
condition_of() { # STREAM TYPE FIELD (status, reason or message)
  kubectl get stream "$1" -o json \
    | jq -r --arg t "$2" --arg f "$3" '[.status.conditions[]? | select(.type == $t)][0][$f] // empty'
}
ready_is() { # STREAM STATUS REASON
  [ "$(condition_of "$1" Ready status)/$(condition_of "$1" Ready reason)" = "$2/$3" ]
}
wait_until "Stream capped Ready=False reason ApplyFailed" 30 ready_is capped False ApplyFailed
# The relays behind the refused Services become Ready: Ready=False is about the Services alone.
wait_until "capped origin Deployment ready (applied although its Service was refused)" 60 deploy_ready capped-origin 1
wait_until "capped edge Deployment ready" 60 deploy_ready capped-eu-west-edge 1
# A status written by a reconcile that saw every relay Ready must still say Ready=False, and
# so must the next reconciles.
relays_ready_in_status() {
  [ "$(kubectl get stream capped -o jsonpath='{.status.origin.ready}/{.status.edges}')" = 1/1/1 ]
}
wait_until "capped status counts the origin and the edge Ready" 30 relays_ready_in_status
ready_is capped False ApplyFailed \
  || fail "Stream capped is $(condition_of capped Ready status)/$(condition_of capped Ready reason) with its Services refused and every relay Ready: $(condition_of capped Ready message)"
await_reconciles 3 "of Stream capped with every relay Ready"
ready_is capped False ApplyFailed \
  || fail "Stream capped became $(condition_of capped Ready status)/$(condition_of capped Ready reason) with its Services still refused: $(condition_of capped Ready message)"
message="$(condition_of capped Ready message)"
for want in 'not fully in place' 'Service capped-origin: ' 'exceeded quota'; do
  grep -qF -- "$want" <<<"$message" || fail "the Ready message of capped lacks '$want': $message"
done
[ "$(condition_of capped Degraded status)/$(condition_of capped Degraded reason)" = True/ApplyFailed ] \
  || fail "Stream capped Degraded is $(condition_of capped Degraded status)/$(condition_of capped Degraded reason)"
[ -z "$(kubectl get service -l surge.dev/stream=capped -o name)" ] \
  || fail "Services of capped exist despite the quota: $(kubectl get service -l surge.dev/stream=capped -o name)"
degraded_note() {
  kubectl get events.events.k8s.io -n "$NS" --field-selector regarding.name=capped -o json \
    | jq -r '[.items[] | select(.type == "Warning" and .reason == "Degraded" and .regarding.kind == "Stream")][0].note // empty'
}
has_degraded_event() { degraded_note | grep -qF 'exceeded quota'; }
wait_until "a Warning Degraded event on capped naming the quota" 30 has_degraded_event
apply_errors_grew() { [ "$(metric "$SVC_ERRORS")" -gt "$apply_errors_before" ]; }
wait_until "$SVC_ERRORS above $apply_errors_before" 30 apply_errors_grew
step "capped: Ready=False ApplyFailed (${message:0:160}...), Degraded=True ApplyFailed, Degraded event, $SVC_ERRORS $apply_errors_before -> $(metric "$SVC_ERRORS")"

step "deleting ResourceQuota $QUOTA: the Services are applied and capped becomes Ready"
kubectl delete resourcequota "$QUOTA" >/dev/null
QUOTA_CREATED=0
wait_until "Stream capped Ready=True reason TreeReady" 60 ready_is capped True TreeReady
for svc in capped-origin capped-eu-west-edge; do
  kubectl get service "$svc" >/dev/null 2>&1 || fail "Service $svc missing after the quota is gone"
done
[ "$(condition_of capped Degraded reason)" != ApplyFailed ] || fail "capped still Degraded=ApplyFailed"
kubectl delete stream capped --wait=true --timeout=30s >/dev/null
step "capped recovered: Ready=True TreeReady, Services capped-origin and capped-eu-west-edge exist"

# --- 7e. placement: edges on host ports, locator URLs, a load balancer's address -----------
step "placement: Stream placed (eu-west, exposure hostPort, LoadBalancer playback, edgeEgressMbps 100 at 2500 kbit/s)"
kubectl apply -f - >/dev/null <<EOF
apiVersion: surge.dev/v1alpha1
kind: Stream
metadata: {name: placed, namespace: $NS}
spec:
  bitrateKbps: 2500
  origin: {region: eu-west}
  regions: [{name: eu-west, minEdges: 1, maxEdges: 2}]
  tree: {edgeEgressMbps: 100}
  playback: {serviceType: LoadBalancer}
  placement: {exposure: hostPort, overflow: [tierAbove]}
EOF
wait_until "placed edge ready" 60 deploy_ready placed-eu-west-edge 1
arg_of() { # DEPLOYMENT FLAG: the flag's values, space-separated
  kubectl get deploy "$1" -o json | jq -r --arg f "$2" '.spec.template.spec.containers[0].args as $a
    | [range(0; $a | length) | select($a[.] == $f) | $a[. + 1]] | join(" ")'
}
# Peers are polled on their admin port.
PEER="placed-eu-west-peers.$NS.svc.cluster.local:$RELAY_ADMIN_PORT"
ABOVE="placed-origin-peers.$NS.svc.cluster.local:$RELAY_ADMIN_PORT"
# The region's edges, then the tier above (no reflectors here: the origin) for tierAbove.
[ "$(arg_of placed-eu-west-edge --placement-peer)" = "$PEER $ABOVE" ] || fail "edge peers: '$(arg_of placed-eu-west-edge --placement-peer)'"
[ "$(arg_of placed-eu-west-edge --overflow)" = tier-above ] || fail "edge overflow: '$(arg_of placed-eu-west-edge --overflow)'"
# 100 Mbit/s at 2500 kbit/s: 40 viewers per edge, --max-viewers twice that.
[ "$(arg_of placed-eu-west-edge --max-egress-mbps)" = 100 ] || fail "edge egress: '$(arg_of placed-eu-west-edge --max-egress-mbps)'"
[ "$(arg_of placed-eu-west-edge --max-viewers)" = 80 ] || fail "edge max viewers: '$(arg_of placed-eu-west-edge --max-viewers)'"
[ -z "$(arg_of placed-origin --placement-peer)" ] || fail "the origin is a locator: $(arg_of placed-origin --placement-peer)"
# The origin takes the edges' overflow: exposed on node ports two above the relay's, advertised.
origin_exposed="$(kubectl get deploy placed-origin -o json | jq -r '.spec.template.spec.containers[0]
  | [.ports[] | "\(.name)=\(.containerPort)/\(.hostPort)"] | join(" ")')"
# The admin port never on a host port.
[ "$origin_exposed" = "rtmp=$RELAY_RTMP_PORT/$((RELAY_RTMP_PORT + 2)) http=$RELAY_HTTP_PORT/$((RELAY_HTTP_PORT + 2)) admin=$RELAY_ADMIN_PORT/null" ] \
  || fail "origin host ports: '$origin_exposed'"
[ "$(arg_of placed-origin --advertise-rtmp-port) $(arg_of placed-origin --advertise-http-port)" = "$((RELAY_RTMP_PORT + 2)) $((RELAY_HTTP_PORT + 2))" ] \
  || fail "origin advertised ports: '$(arg_of placed-origin --advertise-rtmp-port) $(arg_of placed-origin --advertise-http-port)'"
origin_peers="$(kubectl get service placed-origin-peers -o jsonpath='{.spec.clusterIP} {.spec.selector.surge\.dev/tier}')"
[ "$origin_peers" = "None origin" ] || fail "peers Service placed-origin-peers: '$origin_peers'"
exposed="$(kubectl get deploy placed-eu-west-edge -o json | jq -r '.spec.template.spec.containers[0]
  | ([.ports[] | "\(.name)=\(.containerPort)/\(.hostPort)"] | join(" ")) + " "
    + ([.env[]? | select(.name == "SURGE_ADVERTISE_HOST") | .valueFrom.fieldRef.fieldPath] | join(""))')"
[ "$exposed" = "rtmp=$RELAY_RTMP_PORT/$RELAY_RTMP_PORT http=$RELAY_HTTP_PORT/$RELAY_HTTP_PORT admin=$RELAY_ADMIN_PORT/null status.hostIP" ] \
  || fail "edge host ports / advertised host: '$exposed'"
headless="$(kubectl get service placed-eu-west-peers -o jsonpath='{.spec.clusterIP} {.spec.publishNotReadyAddresses} {.spec.selector.surge\.dev/tier}')"
[ "$headless" = "None true edge" ] || fail "peers Service placed-eu-west-peers: '$headless'"
# The pods run on eu-west nodes, the edge with its host ports (the scheduler honours them).
check_region_placement placed
locate_of() { kubectl get stream placed -o jsonpath='{.status.endpoints.playback[0].locate}'; }
locate_is() { [ "$(locate_of)" = "$1" ]; }
IN_CLUSTER="http://placed-eu-west-edge.$NS.svc.cluster.local:$RELAY_HTTP_PORT/api/v1/locate?app=live&stream=placed"
wait_until "placed status names the locator URL $IN_CLUSTER" 60 locate_is "$IN_CLUSTER"
step "placed: edge on host ports advertising status.hostIP, peers $PEER $ABOVE (headless), origin on host ports +2 for overflow, status locate $IN_CLUSTER"
# The edge reads the host its node names from a Downward API file of its pod's annotation,
# which the operator sets from the node (surge.dev/external-host, else its ExternalIP).
[ "$(arg_of placed-eu-west-edge --advertise-host-file)" = /etc/surge-pod/advertise-host ] \
  || fail "edge --advertise-host-file: '$(arg_of placed-eu-west-edge --advertise-host-file)'"
pod_info="$(kubectl get deploy placed-eu-west-edge -o json | jq -r '.spec.template.spec
  | ([.volumes[]? | select(.downwardAPI) | .downwardAPI.items[] | "\(.path)=\(.fieldRef.fieldPath)"] | join(" "))
    + " " + ([.containers[0].volumeMounts[]? | .mountPath] | join(" "))')"
# (/etc/surge-verify: the trusted signing keys, as every edge has.)
[ "$pod_info" = "advertise-host=metadata.annotations['surge.dev/advertise-host'] /etc/surge-pod /etc/surge-verify" ] \
  || fail "edge Downward API volume / mount: '$pod_info'"
if [ "$K8S_E2E_EXTERNAL" -eq 0 ]; then
  edge_pod="$(kubectl get pods -l surge.dev/stream=placed,surge.dev/tier=edge -o json \
    | jq -r '[.items[] | select(.metadata.deletionTimestamp == null)][0].metadata.name')"
  edge_node="$(kubectl get pod "$edge_pod" -o jsonpath='{.spec.nodeName}')"
  [ -n "$edge_node" ] || fail "edge pod $edge_pod is not scheduled"
  advertised_is() { # HOST: the edge pod's surge.dev/advertise-host annotation
    [ "$(kubectl get pod "$edge_pod" -o jsonpath='{.metadata.annotations.surge\.dev/advertise-host}')" = "$1" ]
  }
  kubectl annotate node "$edge_node" surge.dev/external-host=198.51.100.9 --overwrite >/dev/null \
    || fail "cannot annotate node $edge_node"
  wait_until "edge pod $edge_pod advertises 198.51.100.9 (node $edge_node's surge.dev/external-host)" 60 \
    advertised_is 198.51.100.9
  kubectl annotate node "$edge_node" surge.dev/external-host- >/dev/null
  # Without the annotation the node's ExternalIP counts; without one the annotation goes (the
  # relay falls back to status.hostIP).
  fallback="$(kubectl get node "$edge_node" -o json \
    | jq -r '[.status.addresses[]? | select(.type == "ExternalIP") | .address][0] // ""')"
  wait_until "edge pod $edge_pod advertises '$fallback' once the node annotation is gone" 60 \
    advertised_is "$fallback"
  step "placed: edge $edge_pod advertised its node's surge.dev/external-host 198.51.100.9, then '$fallback'"
else
  step "placed: edge reads --advertise-host-file (not annotating a node of an existing cluster)"
fi
step "the load balancer of placed-eu-west-edge gets 203.0.113.7 (status patched, as a cloud controller would)"
kubectl patch service placed-eu-west-edge --subresource=status --type=merge \
  -p '{"status":{"loadBalancer":{"ingress":[{"ip":"203.0.113.7"}]}}}' >/dev/null \
  || fail "cannot patch the status of Service placed-eu-west-edge"
EXTERNAL="http://203.0.113.7:$RELAY_HTTP_PORT/api/v1/locate?app=live&stream=placed"
wait_until "placed status names the locator at the load balancer ($EXTERNAL)" 60 locate_is "$EXTERNAL"
played="$(kubectl get stream placed -o jsonpath='{.status.endpoints.playback[0].rtmp} {.status.endpoints.playback[0].httpFlv}')"
[ "$played" = "rtmp://203.0.113.7:$RELAY_RTMP_PORT/live/placed http://203.0.113.7:$RELAY_HTTP_PORT/live/placed.flv" ] \
  || fail "placed playback endpoints: '$played'"
step "placed endpoints at the load balancer: $EXTERNAL, $played"
kubectl delete stream placed --wait=true --timeout=30s >/dev/null

# --- 7f. publish keys: the Secret mounted into the origin only ------------------------------
step "publish keys: Secret keyed-publish, Stream keyed with spec.publish.keySecretRef"
KEY_VALUE="e2e-key-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
kubectl create secret generic keyed-publish --from-literal=broadcaster="$KEY_VALUE" >/dev/null \
  || fail "cannot create Secret keyed-publish"
kubectl apply -f - >/dev/null <<EOF
apiVersion: surge.dev/v1alpha1
kind: Stream
metadata: {name: keyed, namespace: $NS}
spec:
  origin: {region: eu-west}
  regions: [{name: eu-west, minEdges: 1, maxEdges: 1}]
  publish: {keySecretRef: {name: keyed-publish, key: broadcaster}}
EOF
wait_until "keyed origin ready" 60 deploy_ready keyed-origin 1
wait_until "keyed edge ready" 60 deploy_ready keyed-eu-west-edge 1
[ "$(arg_of keyed-origin --publish-keys-file)" = /etc/surge-publish/keys ] \
  || fail "origin --publish-keys-file: '$(arg_of keyed-origin --publish-keys-file)'"
[ -z "$(arg_of keyed-eu-west-edge --publish-keys-file)" ] || fail "the edge gets publish keys"
secret_mounts() { # DEPLOYMENT: its Secret volumes (name:key=path) and mounts (path:readOnly)
  kubectl get deploy "$1" -o json | jq -r '.spec.template.spec
    | ([.volumes[]? | select(.secret) | "\(.secret.secretName):\(.secret.items[0].key)=\(.secret.items[0].path)"] | join(" "))
      + " " + ([.containers[0].volumeMounts[]? | "\(.mountPath):\(.readOnly)"] | join(" "))'
}
# (The signing key, on by default, is mounted too: checked below.)
[ "$(secret_mounts keyed-origin)" = "keyed-publish:broadcaster=keys keyed-signing-key:signing.key=signing.key /etc/surge-publish:true /etc/surge-signing:true" ] \
  || fail "origin Secret volume / mount: '$(secret_mounts keyed-origin)'"
[ "$(secret_mounts keyed-eu-west-edge)" = " /etc/surge-verify:true" ] || fail "edge mounts: '$(secret_mounts keyed-eu-west-edge)'"
keyed_objects=$(kubectl get deploy,pods -l surge.dev/stream=keyed -o json) || fail "cannot list keyed's Deployments and pods"
if grep -qF "$KEY_VALUE" <<<"$keyed_objects"; then
  fail "the publish key appears in a Deployment or pod"
fi
step "keyed: the origin mounts keyed-publish at /etc/surge-publish with --publish-keys-file; the edge has no keys"

# Signed frames, on by default: a generated key Secret owned by the Stream, its public half in
# the status and the verify-keys ConfigMap, --sign-key at the origin, --verify-key at the edge.
has_public_key() { [ -n "$(kubectl get stream keyed -o jsonpath='{.status.integrity.publicKey}')" ]; }
wait_until "keyed status.integrity.publicKey" 30 has_public_key
[ "$(kubectl get secret keyed-signing-key -o jsonpath='{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}')" = Stream/keyed ] \
  || fail "the generated Secret keyed-signing-key is not owned by Stream keyed"
kubectl get secret keyed-signing-key -o jsonpath='{.data.signing\.key}' | base64 -d >"$WORK/keyed-signing.key"
openssl pkey -in "$WORK/keyed-signing.key" -pubout >"$WORK/keyed-signing.pub" || fail "openssl cannot read the generated key"
[ "$(kubectl get stream keyed -o jsonpath='{.status.integrity.publicKey}')" = "$(cat "$WORK/keyed-signing.pub")" ] \
  || fail "status.integrity.publicKey is not the Secret's public key"
[ "$(kubectl get configmap keyed-verify-keys -o jsonpath='{.data.key-0\.pem}')" = "$(cat "$WORK/keyed-signing.pub")" ] \
  || fail "ConfigMap keyed-verify-keys does not hold the public key"
[ "$(arg_of keyed-origin --sign-key)" = /etc/surge-signing/signing.key ] || fail "origin --sign-key: '$(arg_of keyed-origin --sign-key)'"
[ "$(arg_of keyed-eu-west-edge --verify-key)" = /etc/surge-verify/key-0.pem ] || fail "edge --verify-key: '$(arg_of keyed-eu-west-edge --verify-key)'"
[ -z "$(arg_of keyed-eu-west-edge --sign-key)" ] || fail "the edge gets the signing key"
keyed_objects=$(kubectl get deploy,pods -l surge.dev/stream=keyed -o json) || fail "cannot list keyed's Deployments and pods"
if grep -q "BEGIN PRIVATE KEY" <<<"$keyed_objects"; then
  fail "the signing key appears in a Deployment or pod"
fi
step "keyed: generated Secret keyed-signing-key (owned by the Stream; openssl reads it) -> status.integrity.publicKey $(kubectl get stream keyed -o jsonpath='{.status.integrity.keyId}'), ConfigMap keyed-verify-keys; --sign-key at the origin, --verify-key at the edge"
kubectl delete stream keyed --wait=true --timeout=30s >/dev/null
kubectl delete secret keyed-publish >/dev/null
secret_gone() { ! kubectl get secret keyed-signing-key >/dev/null 2>&1; }
wait_until "the garbage collector to delete Secret keyed-signing-key" 30 secret_gone

# --- 7h. external upstreams: an origin-less Stream pulling from another cluster --------------
step "external upstreams: Stream pulled starts with an origin, then names spec.upstream instead"
kubectl apply -f - >/dev/null <<EOF
apiVersion: surge.dev/v1alpha1
kind: Stream
metadata: {name: pulled, namespace: $NS}
spec:
  origin: {region: eu-west}
  regions: [{name: eu-west, minEdges: 1, maxEdges: 1}]
EOF
wait_until "pulled origin ready" 60 deploy_ready pulled-origin 1
has_pdb() { kubectl get pdb pulled-origin >/dev/null 2>&1; }
wait_until "pulled origin PodDisruptionBudget" 30 has_pdb
UP_A="rtmp://origin-a.example.net:1935/live"
UP_B="rtmp://203.0.113.9:19350/ingest"
jq -n --arg a "rtmp://Origin-A.example.net/live" --arg b "$UP_B" --rawfile key "$WORK/keyed-signing.pub" \
  '[{op: "remove", path: "/spec/origin"}, {op: "add", path: "/spec/upstream", value: [$a, $b]},
    {op: "add", path: "/spec/integrity", value: {trustedKeys: [$key]}}]' >"$WORK/pulled-patch.json"
kubectl patch stream pulled --type json --patch-file "$WORK/pulled-patch.json" >/dev/null \
  || fail "cannot switch Stream pulled to spec.upstream"
wait_until "pulled-origin Deployment deleted" 60 gone deploy pulled-origin
wait_until "pulled-origin Service deleted" 60 gone service pulled-origin
wait_until "pulled-origin PodDisruptionBudget deleted" 60 gone pdb pulled-origin
edge_pulls_outside() { [ "$(arg_of pulled-eu-west-edge --upstream)" = "$UP_A $UP_B" ]; }
wait_until "the edge pulls from the external upstreams in order" 60 edge_pulls_outside
[ "$(arg_of pulled-eu-west-edge --verify-key)" = /etc/surge-verify/key-0.pem ] \
  || fail "edge --verify-key: '$(arg_of pulled-eu-west-edge --verify-key)'"
[ -z "$(arg_of pulled-eu-west-edge --sign-key)" ] || fail "the edge signs"
[ "$(kubectl get configmap pulled-verify-keys -o jsonpath='{.data.key-0\.pem}')" = "$(cat "$WORK/keyed-signing.pub")" ] \
  || fail "ConfigMap pulled-verify-keys does not hold spec.integrity.trustedKeys[0]"
upstream_status() {
  kubectl get stream pulled -o json | jq -c '.status | {ingest: .endpoints.ingest, origin, signer: .integrity.signer,
    urls: [.upstream.urls[]?.url], failover: ([.conditions[] | select(.type == "UpstreamFailover") | .reason] | first)}'
}
want_status="$(jq -nc --arg a "$UP_A" --arg b "$UP_B" \
  '{ingest: "", origin: null, signer: "upstream", urls: [$a, $b], failover: "NotConnected"}')"
status_is() { [ "$(upstream_status)" = "$want_status" ]; }
wait_until "pulled status: no ingest or origin, the upstreams listed, verify-only" 30 status_is
step "pulled: origin Deployment, Service and PDB deleted; edge --upstream $UP_A $UP_B, --verify-key; status $(upstream_status)"
kubectl delete stream pulled --wait=true --timeout=30s >/dev/null

# --- 8. scaling loop with real relays ------------------------------------------------------
if [ "$K8S_E2E_EXTERNAL" -eq 1 ]; then
  # The loop starts relay processes on this machine at the pods' IPs, which only works where
  # pod IPs are local loopback addresses (the kwok cluster of scripts/k8s/up).
  step "SKIP scaling loop: SURGE_KUBECONFIG is set, and the loop needs the test's own kwok cluster (it starts surge-relay processes here at the pods' loopback IPs)"
  step "PASS in $((SECONDS - t_start))s (without the scaling loop)"
  exit 0
fi

pod_ip_of_service() { # SERVICE: IP of a Running pod behind it
  local selector
  selector="$(kubectl get service "$1" -o json | jq -r '.spec.selector | to_entries | map("\(.key)=\(.value)") | join(",")')"
  kubectl get pods -l "$selector" --field-selector status.phase=Running -o jsonpath='{.items[0].status.podIP}'
}

# One edge serves VIEWERS_PER_EDGE; viewers join the first edge at a steady pace, and the ramp
# stops one short of that capacity, so the first edge is never full. The Stream promises to
# plan LEAD_S seconds ahead: the first added edge must come while the viewers are still at
# least LEAD_S of growth away from filling the first edge (AHEAD_OF viewers or fewer). A
# planner that sizes for today's viewers (or forecasts with no lead time) adds an edge only
# when the count (or its fitted level) reaches the capacity, if at all ("Ready before the
# crowd").
VIEWERS_PER_EDGE=10
RAMP_MAX=$((VIEWERS_PER_EDGE - 1))
RAMP_EVERY=2 # seconds between joining viewers: 30 per minute, a flash crowd for this Stream
LEAD_S=10
AHEAD_OF=$((VIEWERS_PER_EDGE - LEAD_S / RAMP_EVERY))
step "Stream scale (eu-west, $VIEWERS_PER_EDGE viewers per edge, 1-3 edges) with a relay process per pod"
kubectl apply -f - >/dev/null <<EOF
apiVersion: surge.dev/v1alpha1
kind: Stream
metadata: {name: scale, namespace: $NS}
spec:
  origin: {region: eu-west}
  regions: [{name: eu-west, minEdges: 1, maxEdges: 3}]
  tree: {fanout: 8, viewersPerEdge: $VIEWERS_PER_EDGE}
  scaling:
    leadTimeSeconds: $LEAD_S
    headroom: 0
    scaleDownStabilizationSeconds: 10
    # Scale-down steps far enough apart for the test to see which pod each one removes.
    scaleDownStepSeconds: 8
    estimationWindowSeconds: 20
    # The ramp (30 viewers per minute) is a "flash crowd" here, so the mode and its event are
    # exercised too.
    flashCrowd: {minGrowthPerMinute: 6, relativeGrowthPerMinute: 0.05, exitAfterSeconds: 10}
EOF
wait_until "scale origin and edge ready" 60 deploy_ready scale-origin 1
wait_until "scale edge ready" 60 deploy_ready scale-eu-west-edge 1
# A surge-relay for each Running relay pod of Stream "scale", at the pod's IP with the pod's
# arguments, stopped when the pod goes (the relays pull from the Services' names, which its
# hosts file resolves to the pods' IPs).
step "surge-operator pods runs the relays of Stream scale (log: $WORK/pods.log)"
"$OPERATOR" pods --namespace "$NS" --selector surge.dev/stream=scale --relay-bin "$RELAY" \
  --log-dir "$WORK/relays" --stop-grace 2s >"$WORK/pods.log" 2>&1 &
PODS_PID=$!
pods_runner_alive() {
  kill -0 "$PODS_PID" 2>/dev/null \
    || fail "surge-operator pods exited: $(tail -n 5 "$WORK/pods.log" | tr '\n' ' ')"
}
ORIGIN_IP="$(pod_ip_of_service scale-origin)"
wait_until "origin relay answering" 30 curl -sf "http://$ORIGIN_IP:$RELAY_ADMIN_PORT/healthz"
pods_runner_alive
step "ffmpeg publishes to the origin relay at $ORIGIN_IP"
ffmpeg -nostdin -loglevel error -re -f lavfi -i testsrc2=size=320x180:rate=25 \
  -c:v libx264 -preset ultrafast -tune zerolatency -g 25 -pix_fmt yuv420p \
  -f flv "rtmp://$ORIGIN_IP:$RELAY_RTMP_PORT/live/scale" >"$WORK/ffmpeg.log" 2>&1 &
FFMPEG_PID=$!
not_degraded() { [ "$(kubectl get stream scale -o jsonpath='{.status.conditions[?(@.type=="Degraded")].status}')" = False ]; }
wait_until "every relay answers the operator's scrape (Degraded=False)" 60 not_degraded
EDGE_POD="$(kubectl get pods -l surge.dev/stream=scale,surge.dev/tier=edge -o jsonpath='{.items[0].metadata.name}')"
EDGE_IP="$(kubectl get pod "$EDGE_POD" -o jsonpath='{.status.podIP}')"
edge_has_stream() { # IP
  curl -sf "http://$1:$RELAY_ADMIN_PORT/api/v1/streams" | jq -e '.streams[] | select(.name == "scale")'
}
wait_until "edge relay pulled the stream" 60 edge_has_stream "$EDGE_IP"
# Signed at the origin, verified at the edge (keys projected from the Secret and ConfigMap).
grep -q -- "--sign-key $WORK/relays/pods/" "$WORK/pods.log" || fail "no relay started with --sign-key from the projected Secret"
grep -q -- "--verify-key $WORK/relays/pods/" "$WORK/pods.log" || fail "no relay started with --verify-key from the projected ConfigMap"
# The admin surface: on the admin port, not on the playback port (the port the playback
# Service forwards to), and no Service of the Stream lists the admin port.
http_code() { curl -s -o /dev/null -w '%{http_code}' "$1"; }
# /readyz answers 200 once the edge holds a keyframe of its prewarmed stream, which may come
# a moment after the stream is listed.
wait_until "the edge Ready (/readyz 200 on the admin port)" 30 curl -sf "http://$EDGE_IP:$RELAY_ADMIN_PORT/readyz"
for path in /metrics /api/v1/streams /healthz /readyz; do
  [ "$(http_code "http://$EDGE_IP:$RELAY_ADMIN_PORT$path")" = 200 ] || fail "$path on the admin port: $(http_code "http://$EDGE_IP:$RELAY_ADMIN_PORT$path")"
  [ "$(http_code "http://$EDGE_IP:$RELAY_HTTP_PORT$path")" = 404 ] || fail "$path on the playback port: $(http_code "http://$EDGE_IP:$RELAY_HTTP_PORT$path"), expected 404"
done
edge_metrics=$(curl -sf "http://$EDGE_IP:$RELAY_ADMIN_PORT/metrics") || fail "GET /metrics on the edge's admin port failed"
grep -q '^surge_relay_' <<<"$edge_metrics" || fail "the admin port's /metrics has no relay metrics"
# The operator labels every relay series with the Stream's namespace and name.
edge_build_info="$(curl -sf "http://$EDGE_IP:$RELAY_ADMIN_PORT/metrics" | grep '^surge_build_info{' || true)"
for want in "surge_namespace=\"$NS\"" 'surge_stream="scale"' 'component="relay"' 'tier="edge"'; do
  grep -qF -- "$want" <<<"$edge_build_info" || fail "the edge's surge_build_info lacks $want: $edge_build_info"
done
playback_ports="$(kubectl get service scale-eu-west-edge -o jsonpath='{.spec.ports[*].port}')"
[[ " $playback_ports " == *" $RELAY_HTTP_PORT "* ]] || fail "playback Service ports: $playback_ports"
service_ports="$(kubectl get services -l surge.dev/stream=scale -o jsonpath='{.items[*].spec.ports[*].port}')"
[[ " $service_ports " != *" $RELAY_ADMIN_PORT "* ]] || fail "a Service lists the admin port $RELAY_ADMIN_PORT: $service_ports"
[ "$(kubectl get pod "$EDGE_POD" -o jsonpath='{.spec.containers[0].readinessProbe.httpGet.port}')" = admin ] \
  || fail "the edge's readiness probe is not on the admin port"
step "admin surface: /metrics, /api/v1/streams, /healthz, /readyz 200 on the relay's admin port $RELAY_ADMIN_PORT, 404 on the playback port $RELAY_HTTP_PORT (the playback Service's); no Service lists the admin port ($service_ports); series labelled surge_namespace, surge_stream"
edge_metrics=$(curl -sf "http://$EDGE_IP:$RELAY_ADMIN_PORT/metrics") || fail "GET /metrics on the edge's admin port failed"
if grep -q '^surge_relay_integrity_failures_total{' <<<"$edge_metrics"; then
  fail "the edge failed to verify the origin's signatures: $(curl -sf "http://$EDGE_IP:$RELAY_ADMIN_PORT/api/v1/streams" | jq -c '.streams[].integrity')"
fi
# The operator's viewer history starts flat, so the ramp below is growth it sees begin.
status_viewers_are() { [ "$(kubectl get stream scale -o jsonpath='{.status.viewers.total}')" = "$1" ]; }
wait_until "status.viewers.total = 0 before the ramp" 30 status_viewers_are 0
await_reconciles 3 "of Stream scale with no viewers"

add_viewer() { # IP
  curl -sN --max-time 400 "http://$1:$RELAY_HTTP_PORT/live/scale.flv" -o /dev/null &
  VIEWER_PIDS+=($!)
}
scaled_up_note() {
  kubectl get events.events.k8s.io -n "$NS" --field-selector regarding.name=scale -o json \
    | jq -r '[.items[] | select(.reason == "ScaledUp")][0].note // empty'
}
replicas_of_edges() { kubectl get deploy scale-eu-west-edge -o jsonpath='{.spec.replicas}'; }
# Past the estimation window (20 s) after the last join the growth has left the operator's
# estimate, so the edge count no longer moves.
SETTLE=25
step "viewers join edge $EDGE_POD ($EDGE_IP), one every ${RAMP_EVERY}s, up to $RAMP_MAX (the edge serves $VIEWERS_PER_EDGE)"
ramp_start=$SECONDS
joined=0
full_since=""
first_up_at="" # viewers joined when the Deployment first went above one edge
while :; do
  replicas="$(replicas_of_edges)"
  [[ "$replicas" =~ ^[0-9]+$ ]] || fail "cannot read the edge Deployment's replicas: '$replicas'"
  if [ -z "$first_up_at" ] && [ "$replicas" -ge 2 ]; then
    first_up_at=$joined
    counted="$(kubectl get stream scale -o jsonpath='{.status.viewers.total}')"
    [ "$joined" -le "$AHEAD_OF" ] \
      || fail "the first edge was added only with $joined viewers joined (operator's count $counted) on an edge for $VIEWERS_PER_EDGE: less than the ${LEAD_S}s lead time ahead of the crowd (at most $AHEAD_OF at this pace); $(scaled_up_note)"
    step "ahead of the crowd: edges 1 -> $replicas with $joined viewers joined (operator's count: $counted, at most $AHEAD_OF allowed) on an edge for $VIEWERS_PER_EDGE"
  fi
  # Up to maxEdges (3), so the count cannot grow behind the test's back afterwards; with at
  # least 3 viewers on the ramp's edge, more than the one the scale-down check adds to another
  # edge (the onset rule may scale up on the very first viewers).
  [ "$replicas" -lt 3 ] || [ "$joined" -lt 3 ] || break
  if [ "$joined" -lt "$RAMP_MAX" ]; then
    if [ $((SECONDS - ramp_start)) -ge $((joined * RAMP_EVERY)) ]; then
      add_viewer "$EDGE_IP"
      joined=$((joined + 1))
      [ "$joined" -lt "$RAMP_MAX" ] || full_since=$SECONDS
    fi
  elif [ $((SECONDS - full_since)) -ge "$SETTLE" ]; then
    [ -n "$first_up_at" ] && break
    fail "no scale-up while viewers grew steadily to $joined on an edge for $VIEWERS_PER_EDGE (operator's count $(kubectl get stream scale -o jsonpath='{.status.viewers.total}'), growth/min $(kubectl get stream scale -o jsonpath='{.status.growthPerMinute}')): the operator sized for today's viewers, not for their growth"
  fi
  sleep 0.5
done
up_to="$replicas"
[ "$joined" -lt "$VIEWERS_PER_EDGE" ] || fail "the ramp overran: $joined viewers"
step "edges 1 -> $up_to while $joined viewers joined; first ScaledUp: $(scaled_up_note)"
wait_until "all $up_to edges Ready" 60 deploy_ready scale-eu-west-edge "$up_to"
relays_for_all_edges() { # a relay answering at every edge pod's IP
  local pods ip
  pods="$(kubectl get pods -l surge.dev/stream=scale,surge.dev/tier=edge -o json)"
  [ "$(jq '.items | length' <<<"$pods")" -eq "$up_to" ] || return 1
  for ip in $(jq -r '.items[].status.podIP // "none"' <<<"$pods"); do
    curl -sf "http://$ip:$RELAY_ADMIN_PORT/healthz" >/dev/null || return 1
  done
}
wait_until "a relay answering for every edge pod" 60 relays_for_all_edges
pods_runner_alive
await_reconciles 2 "after every edge relay is up"
wait_until "every edge relay answers the operator's scrape (Degraded=False)" 60 not_degraded
# Capacity Ready before the crowd: every edge Ready while the viewers still fit on one edge.
[ "$(kubectl get stream scale -o jsonpath='{.status.viewers.total}')" -lt "$VIEWERS_PER_EDGE" ] \
  || fail "the viewers reached the first edge's capacity before the added edges were Ready"
wait_until "status.viewers.total = $joined (scraped from the edge relay)" 60 status_viewers_are "$joined"
viewers_metric_is() { [ "$(metric 'surge_operator_viewers{namespace="'"$NS"'",stream="scale",region="eu-west"}')" = "$1" ]; }
wait_until "/metrics viewers gauge of scale = $joined" 30 viewers_metric_is "$joined"

# Scale-down order. The loads differ: EDGE_POD holds the ramp's viewers, a second edge gets
# one viewer, any third none. Together they fit on one edge, so once the growth is over the
# operator scales down to one edge; whatever each step removes must be the least-loaded edges
# left (pod-deletion-cost, lowest first), and the loaded edge must stay.
mapfile -t OTHER_EDGES < <(kubectl get pods -l surge.dev/stream=scale,surge.dev/tier=edge -o json \
  | jq -r --arg a "$EDGE_POD" '.items[].metadata.name | select(. != $a)' | sort)
LIGHT_POD="${OTHER_EDGES[0]}"
LIGHT_IP="$(kubectl get pod "$LIGHT_POD" -o jsonpath='{.status.podIP}')"
wait_until "edge $LIGHT_POD pulled the stream" 60 edge_has_stream "$LIGHT_IP"
add_viewer "$LIGHT_IP"
light_has_viewer() {
  [ "$(curl -sf "http://$LIGHT_IP:$RELAY_ADMIN_PORT/api/v1/streams" | jq '[.streams[] | select(.name == "scale") | .viewers.flv] | add')" = 1 ]
}
wait_until "one viewer on edge $LIGHT_POD" 30 light_has_viewer
wait_until "status.viewers.total = $((joined + 1))" 30 status_viewers_are $((joined + 1))
# Removal order the operator must produce: no viewers first, then the one viewer.
REMOVAL_ORDER=("${OTHER_EDGES[@]:1}" "$LIGHT_POD")
edge_costs() {
  kubectl get pods -l surge.dev/stream=scale,surge.dev/tier=edge -o json \
    | jq -r '.items[] | "\(.metadata.name) \(.metadata.annotations["controller.kubernetes.io/pod-deletion-cost"] // "none")"'
}
cost_of() { awk -v p="$1" '$1 == p { print $2 }' <<<"$2"; }
costs_follow_loads() { # strictly increasing along REMOVAL_ORDER, then EDGE_POD
  local costs prev="" pod cost
  costs="$(edge_costs)"
  for pod in "${REMOVAL_ORDER[@]}" "$EDGE_POD"; do
    cost="$(cost_of "$pod" "$costs")"
    [[ "$cost" =~ ^-?[0-9]+$ ]] || return 1
    [ -z "$prev" ] || [ "$cost" -gt "$prev" ] || return 1
    prev="$cost"
  done
}
wait_until "pod-deletion-cost rises with the load: ${REMOVAL_ORDER[*]} < $EDGE_POD" 30 costs_follow_loads
step "pod-deletion-cost follows the load ($(edge_costs | tr '\n' ' ')); waiting for the scale-down"

live_edges() {
  kubectl get pods -l surge.dev/stream=scale,surge.dev/tier=edge -o json \
    | jq -r '.items[] | select(.metadata.deletionTimestamp == null) | .metadata.name' | sort
}
removed=0 # how many of REMOVAL_ORDER are gone, in that order
scale_down_end=$((SECONDS + 180))
while :; do
  live="$(live_edges)"
  grep -qx "$EDGE_POD" <<<"$live" || fail "the scale-down removed the loaded edge $EDGE_POD ($joined viewers); edges left: $(tr '\n' ' ' <<<"$live")"
  gone=()
  for pod in "${REMOVAL_ORDER[@]}"; do grep -qx "$pod" <<<"$live" || gone+=("$pod"); done
  if [ "${#gone[@]}" -gt "$removed" ]; then
    # The edges gone must be the least-loaded ones, in order: a step may remove several at
    # once (idle edges, or the planner's collapse rule when the fleet is oversized).
    [ "${gone[*]}" = "${REMOVAL_ORDER[*]:0:${#gone[@]}}" ] \
      || fail "the scale-down removed ${gone[*]} while a less-loaded edge was still there (order expected: ${REMOVAL_ORDER[*]})"
    step "scale-down removed ${gone[*]:$removed} (the least-loaded edges left; ${#gone[@]} of ${#REMOVAL_ORDER[@]} gone)"
    removed="${#gone[@]}"
  fi
  [ "$removed" -lt "${#REMOVAL_ORDER[@]}" ] || break
  [ "$SECONDS" -lt "$scale_down_end" ] || fail "timed out after 180s waiting for the scale-down to one edge; edges: $(tr '\n' ' ' <<<"$live")"
  sleep 0.5
done
edges_are_n() { [ "$(kubectl get deploy scale-eu-west-edge -o jsonpath='{.spec.replicas}')" = "$1" ]; }
wait_until "edge Deployment at 1 replica" 30 edges_are_n 1
[ "$(live_edges)" = "$EDGE_POD" ] || fail "edges left after the scale-down: $(live_edges | tr '\n' ' ')"
reasons="$(kubectl get events.events.k8s.io -n "$NS" --field-selector regarding.name=scale -o jsonpath='{.items[*].reason}')"
grep -qw ScaledUp <<<"$reasons" || fail "no ScaledUp event for scale: $reasons"
grep -qw ScaledDown <<<"$reasons" || fail "no ScaledDown event for scale: $reasons"
grep -qw FlashCrowd <<<"$reasons" || fail "no FlashCrowd event for scale: $reasons"
pods_runner_alive
step "scaled down to the loaded edge $EDGE_POD alone; events: $(tr ' ' '\n' <<<"$reasons" | sort | uniq -c | tr -s ' \n' ' ')"

# --- 8b. the API server goes away under a live stream ----------------------------------------
# kube-apiserver stops for OUTAGE_S (scripts/k8s/outage: SIGTERM, then the same command line
# again), longer than the leader's renew deadline (10 s). What viewers rely on: the relays go
# on serving them (nothing that runs them needs the API), the pod runner (the test's kubelet)
# keeps its relays, and once the API is back the operator resumes without churn: no pod
# replaced, no Deployment changed, no scale event. The leader, unable to renew its Lease,
# exits by design ("so a restart rejoins the election"); the test restarts it as the kubelet
# would.
OUTAGE_S=20
edge_bytes() { curl -sf "http://$EDGE_IP:$RELAY_ADMIN_PORT/metrics" | awk '$1 ~ /^surge_relay_bytes_sent_total/ { s += $2 } END { printf "%d", s }'; }
edge_viewers() { curl -sf "http://$EDGE_IP:$RELAY_ADMIN_PORT/api/v1/streams" | jq '[.streams[] | select(.name == "scale") | .viewers.flv + .viewers.rtmp] | add // 0'; }
relay_pods() { kubectl get pods -l surge.dev/stream=scale -o json | jq -r '.items[] | "\(.metadata.name) \(.metadata.uid) \(.status.podIP)"' | sort; }
deploy_generations() { kubectl get deploy -l surge.dev/stream=scale -o json | jq -r '.items[] | "\(.metadata.name) \(.metadata.generation) \(.spec.replicas)"' | sort; }
scale_events() { kubectl get events.events.k8s.io -n "$NS" --field-selector regarding.name=scale -o json | jq '[.items[] | select(.reason | test("^Scaled")) | .series.count // 1] | add // 0'; }
pods_before="$(relay_pods)"
generations_before="$(deploy_generations)"
events_before="$(scale_events)"
viewers_before="$(edge_viewers)"
[ "$viewers_before" -ge 1 ] || fail "no viewers on edge $EDGE_POD before the outage"
step "the API server goes away for ${OUTAGE_S}s, $viewers_before viewers on edge $EDGE_POD"
scripts/k8s/outage kube-apiserver "$OUTAGE_S" 2>>"$WORK/outage.log" &
OUTAGE_PID=$!
wait_until "the API server stopped" 20 grep -q "stopped; back in" "$WORK/outage.log"
kubectl get --raw /readyz --request-timeout=2s >/dev/null 2>&1 && fail "the API server still answers during its outage"
# Past the leader's renew deadline, while the API is still away: every relay serves.
sleep 12
bytes_a="$(edge_bytes)"
sleep 3
bytes_b="$(edge_bytes)"
[ "$bytes_b" -gt "$bytes_a" ] || fail "edge $EDGE_POD sent nothing for 3 s while the API server was away ($bytes_a -> $bytes_b bytes)"
[ "$(edge_viewers)" = "$viewers_before" ] || fail "edge $EDGE_POD lost viewers while the API server was away: $(edge_viewers) of $viewers_before"
while read -r pod _ ip; do
  curl -sf --max-time 2 "http://$ip:$RELAY_ADMIN_PORT/healthz" >/dev/null || fail "relay of pod $pod ($ip) stopped answering while the API server was away"
done <<<"$pods_before"
pods_runner_alive
step "API server away: every relay answers, edge $EDGE_POD sent $((bytes_b - bytes_a)) bytes in 3 s to its $viewers_before viewers"
wait "$OUTAGE_PID" || fail "scripts/k8s/outage failed: $(tail -n 3 "$WORK/outage.log")"
wait_until "the API server back (/readyz)" 60 kubectl get --raw /readyz --request-timeout=2s
if ! kill -0 "$OPERATOR_PID" 2>/dev/null; then
  grep -q "lost the leader lease" "$WORK/operator.log" \
    || fail "the operator exited during the outage without losing its lease: $(tail -n 3 "$WORK/operator.log" | tr '\n' ' ')"
  step "the operator exited when its Lease could not be renewed (by design); restarted as the kubelet would"
  OPERATOR_PID="$(start_operator "$METRICS_PORT" "$WORK/operator.log" e2e-c)"
  # A new process is a new identity: it takes the Lease once the old holder's renewTime has
  # stood still for a lease duration (15 s), as a replacement pod would.
  wait_until "the restarted operator leading" 60 readyz_is "$METRICS_PORT" "200 leading"
fi
await_reconciles 3 "after the API server came back"
pods_runner_alive
[ "$(relay_pods)" = "$pods_before" ] || fail "relay pods changed across the outage: before: $(tr '\n' ' ' <<<"$pods_before"); after: $(relay_pods | tr '\n' ' ')"
[ "$(deploy_generations)" = "$generations_before" ] || fail "Deployments changed across the outage: before: $(tr '\n' ' ' <<<"$generations_before"); after: $(deploy_generations | tr '\n' ' ')"
[ "$(scale_events)" = "$events_before" ] || fail "scale events after the outage: $events_before -> $(scale_events)"
[ "$(edge_viewers)" = "$viewers_before" ] || fail "edge $EDGE_POD has $(edge_viewers) viewers after the outage, $viewers_before before"
wait_until "status.viewers.total = $viewers_before after the outage" 30 status_viewers_are "$viewers_before"
step "after the outage: same pods (uids), Deployment generations and replicas, no scale event, $viewers_before viewers still on edge $EDGE_POD"

kubectl delete stream scale --wait=true --timeout=30s >/dev/null
step "PASS in $((SECONDS - t_start))s"
