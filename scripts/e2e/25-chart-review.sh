#!/usr/bin/env bash
# The chart as a platform team reviews it, on a real control plane (scripts/k8s):
#
#  1. Chart, without a cluster: helm lint --strict with default, custom (ci/custom-values.yaml)
#     and subchart (`global`) values; kubeVersion refuses Kubernetes 1.29; the schema refuses
#     a bad relay.allowedImages entry; the renders carry the relay defaults as operator flags
#     (--allowed-relay-images defaults to the chart's relay repository) and the RBAC rules.
#  2. Every rendered object (CRD included; the ServiceMonitor left out, its CRD is the
#     Prometheus Operator's) passes the API server's validation: server-side apply with
#     --dry-run=server, default and custom values.
#  3. helm install (operator scaled to 0) with chart-wide relay tolerations and pull secrets;
#     the operator binary runs here with the Deployment's own arguments as the chart's
#     ServiceAccount (so the chart's RBAC is what it has; PDB verbs checked with can-i); the
#     chart's ValidatingAdmissionPolicy refuses its patches of other pods, and of relay pods
#     beyond the pod-deletion-cost / advertise-host annotations.
#  4. A namespace labelled pod-security.kubernetes.io/enforce=restricted (the PodSecurity
#     admission plugin is on in kube-apiserver by default; a pod without a securityContext is
#     refused there first): a Stream with an origin, two us-east edges and a reflector tree in
#     ap-south gets every relay pod admitted and Running, each with the restricted contexts,
#     the chart's tolerations and pull secret.
#  5. PodDisruptionBudgets: one per tier, owned by the Stream; origin maxUnavailable 0 (an
#     eviction of the origin pod is refused: dry-run Eviction → 429), edges 10% (an edge may
#     be evicted), reflectors 1; the disruption controller's status agrees.
#  6. Spread: reflector and edge Deployments spread over zones then nodes with the tier's own
#     labels; us-east's two edges run in its two zones.
#  7. A Stream naming an image outside the allowlist is refused: Ready=False InvalidSpec naming
#     spec.relay.image, a Warning event, nothing built. A hostPort Stream's edge pods are
#     refused by the restricted namespace (the documented exception).
#  8. Service settings: a Stream's ingest and per-region playback annotations, labels,
#     externalTrafficPolicy and loadBalancerClass land on its Services (a region's over the
#     Stream-wide ones); on ClusterIP Services the API server refuses them naming the fields.
#
# With SURGE_KUBECONFIG (an existing cluster) it uses its own release and namespaces and
# removes them afterwards (the CRD only if it installed it). Bounded by a watchdog (4 min).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"
export SURGE_K8S_POD_PREFIX="${SURGE_K8S_POD_PREFIX:-127.$((120 + $$ % 60))}"
# shellcheck source=scripts/k8s/e2e.sh
source scripts/k8s/e2e.sh

NAME=25-chart-review
NS="surge-review-$$"
RELEASE=surge
RELEASE_NS=surge-system
WORK="$(mktemp -d "${TMPDIR:-/tmp}/surge-chart-review.XXXXXX")"
OPERATOR_PID=""
WATCHDOG_PID=""
NS_CREATED=0
RELEASE_NS_CREATED=0
CRD_CREATED=0
t0="$(now_ms)"

step() { echo "$NAME: $*"; }
fail() {
  echo "$NAME: FAIL: $*" >&2
  if [ -s "$WORK/operator.log" ]; then
    echo "--- last operator log lines" >&2
    tail -n 20 "$WORK/operator.log" >&2
  fi
  exit 1
}

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
  stop_pid "$OPERATOR_PID"
  stop_pid "$WATCHDOG_PID"
  if [ "$K8S_E2E_EXTERNAL" -eq 1 ]; then
    [ "$NS_CREATED" -eq 0 ] || kubectl delete namespace "$NS" --wait=false >/dev/null 2>&1
    helm uninstall "$RELEASE" -n "$RELEASE_NS" >/dev/null 2>&1
    [ "$RELEASE_NS_CREATED" -eq 0 ] || kubectl delete namespace "$RELEASE_NS" --wait=false >/dev/null 2>&1
    [ "$CRD_CREATED" -eq 0 ] || kubectl delete crd streams.surge.dev --wait=false >/dev/null 2>&1
  fi
  rm -f "$WORK/kubeconfig" "$WORK/sa-kubeconfig"
  k8s_e2e_stop "$status"
  if [ "$status" -eq 0 ]; then
    rm -rf "$WORK"
  else
    echo "$NAME: logs kept in $WORK" >&2
  fi
  exit "$status"
}
trap cleanup EXIT

(
  trap 'kill "$nap" 2>/dev/null; exit 0' TERM
  sleep 240 &
  nap=$!
  wait "$nap"
  echo "$NAME: FAIL: watchdog: still running after 4 minutes" >&2
  kill -TERM $$
) &
WATCHDOG_PID=$!

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

step "building surge-operator"
cargo build -q -p surge-operator 2>&1 | tail -n 20
OPERATOR="$ROOT/target/debug/surge-operator"
[ -x "$OPERATOR" ] || fail "no $OPERATOR"
export PATH="$K8S_BIN:$PATH"
command -v helm >/dev/null || fail "helm not found (scripts/k8s/build provides it)"
CHART=charts/surge
CUSTOM=charts/surge/ci/custom-values.yaml

# --- 1. chart, no cluster ------------------------------------------------------------------
step "helm lint --strict: default, custom and subchart (global) values"
helm lint --strict "$CHART" >"$WORK/lint.txt" 2>&1 || { cat "$WORK/lint.txt"; fail "helm lint"; }
helm lint --strict "$CHART" -f "$CUSTOM" >>"$WORK/lint.txt" 2>&1 || { cat "$WORK/lint.txt"; fail "helm lint (custom)"; }
helm lint --strict "$CHART" --set global.imageRegistry=registry.example --set-json 'global.labels={"team":"media"}' \
  >>"$WORK/lint.txt" 2>&1 || { cat "$WORK/lint.txt"; fail "helm lint with global values (as a subchart)"; }
if helm template s "$CHART" --kube-version 1.29.9 >"$WORK/old.txt" 2>&1; then
  fail "the chart renders for Kubernetes 1.29 (kubeVersion must need 1.30: preStop sleep)"
fi
grep -q 'requires kubeVersion' "$WORK/old.txt" || fail "1.29 refused for another reason: $(cat "$WORK/old.txt")"
helm template s "$CHART" --kube-version 1.30.0 >/dev/null || fail "the chart refuses Kubernetes 1.30"
if helm template s "$CHART" --set-json 'relay.allowedImages=["two images"]' >"$WORK/bad.txt" 2>&1; then
  fail "values.schema.json accepted a relay.allowedImages entry with a space"
fi
grep -q 'allowedImages' "$WORK/bad.txt" || fail "the schema error does not name relay.allowedImages: $(cat "$WORK/bad.txt")"

helm template "$RELEASE" "$CHART" -n "$RELEASE_NS" >"$WORK/default.yaml" || fail "helm template (defaults)"
helm template "$RELEASE" "$CHART" -n "$RELEASE_NS" -f "$CUSTOM" >"$WORK/custom.yaml" || fail "helm template (custom)"
grep -qx -- '            - --allowed-relay-images=ghcr.io/surge-dev/surge-relay' "$WORK/default.yaml" \
  || fail "the default render does not limit relay images to the chart's repository"
for flag in --allowed-relay-images=registry.example/surge-relay --relay-image-pull-secrets=regcred \
  '"--relay-tolerations=' '"--relay-topology-spread-constraints=' '"--relay-affinity='; do
  grep -qF -- "$flag" "$WORK/custom.yaml" || fail "the custom render lacks $flag"
done
grep -q 'poddisruptionbudgets' "$WORK/default.yaml" || fail "RBAC lacks poddisruptionbudgets"
python3 - "$WORK/default.yaml" <<'EOF' || fail "RBAC wider than the operator needs"
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
rules = [(tuple(r.get("apiGroups", [])), tuple(r["resources"]), set(r["verbs"]))
         for d in docs if d["kind"] in ("ClusterRole", "Role") for r in d["rules"]]
verbs = {}
for groups, resources, v in rules:
    for res in resources:
        verbs.setdefault(res, set()).update(v)
want = {
    "streams": {"list", "watch"}, "streams/status": {"patch"},
    "deployments": {"list", "watch", "create", "patch", "delete"},
    "services": {"list", "watch", "create", "patch", "delete"},
    "pods": {"list", "patch"}, "poddisruptionbudgets": {"list", "create", "patch", "delete"},
    "events": {"create", "patch"}, "nodes": {"get"}, "leases": {"create", "get", "update"},
    "secrets": {"get", "create"}, "configmaps": {"create", "patch"},
}
if verbs != want:
    sys.exit(f"RBAC: {verbs} != {want}")
if any("*" in v or "*" in r for _, r, v in rules):
    sys.exit("RBAC has a wildcard")
EOF
python3 - "$WORK/custom.yaml" "$CHART" <<'EOF' || fail "the monitoring objects of the custom render"
import json, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], []).append(d)
chart = sys.argv[2]
pm = by_kind["PodMonitor"][0]["spec"]
assert pm["selector"]["matchLabels"]["app.kubernetes.io/name"] == "surge-relay", pm
assert pm["namespaceSelector"] == {"matchNames": ["live"]}, pm
assert pm["podMetricsEndpoints"][0]["port"] == "admin", pm
rules = yaml.safe_load(open(f"{chart}/monitoring/surge-alerts.rules.yaml"))
pr = by_kind["PrometheusRule"][0]
assert pr["spec"]["groups"] == rules["groups"], "PrometheusRule differs from the rules file"
assert pr["metadata"]["labels"]["release"] == "prometheus"
cm = [c for c in by_kind["ConfigMap"] if c["metadata"]["name"].endswith("-dashboard")][0]
assert cm["metadata"]["labels"]["grafana_dashboard"] == "1", cm["metadata"]
dashboard = json.load(open(f"{chart}/monitoring/surge-dashboard.json"))
assert json.loads(cm["data"]["surge.json"]) == dashboard, "dashboard ConfigMap differs from the JSON"
assert by_kind["ServiceMonitor"][0]["spec"]["endpoints"][0]["honorLabels"] is True
EOF
step "chart: lint, kubeVersion >=1.30, schema, relay flags and RBAC verbs as expected; PodMonitor, PrometheusRule and dashboard ConfigMap as the files say"

# --- 2. the API server validates every rendered object -------------------------------------
step "bringing the cluster up"
k8s_e2e_start
if [ "$K8S_E2E_EXTERNAL" -eq 1 ]; then
  RELEASE="surge-review-$$"
  RELEASE_NS="surge-review-$$-system"
  kubectl get crd streams.surge.dev >/dev/null 2>&1 || CRD_CREATED=1
fi
kubectl config view --raw --minify --flatten >"$WORK/kubeconfig" || fail "cannot read the kubeconfig"
chmod 600 "$WORK/kubeconfig"
export KUBECONFIG="$WORK/kubeconfig"
kubectl create namespace "$NS" >/dev/null || fail "cannot create namespace $NS"
NS_CREATED=1
if ! kubectl get namespace "$RELEASE_NS" >/dev/null 2>&1; then
  kubectl create namespace "$RELEASE_NS" >/dev/null
  RELEASE_NS_CREATED=1
fi

# The ServiceMonitor, PodMonitor and PrometheusRule are left out: their CRDs belong to the
# Prometheus Operator. The dashboard ConfigMap is in.
for values in default custom; do
  extra=()
  [ "$values" = default ] || extra=(-f "$CUSTOM" --set "operator.watchNamespace=$NS")
  helm template "$RELEASE" "$CHART" -n "$RELEASE_NS" --include-crds "${extra[@]}" \
    --set metrics.serviceMonitor.enabled=false --set metrics.podMonitor.enabled=false \
    --set metrics.prometheusRule.enabled=false >"$WORK/dry-$values.yaml" || fail "helm template ($values)"
  kubectl apply --server-side --dry-run=server --field-manager=chart-review -f "$WORK/dry-$values.yaml" \
    >"$WORK/dry-$values.txt" 2>&1 || { cat "$WORK/dry-$values.txt"; fail "the API server refused the $values render"; }
  n="$(grep -c 'serverside-applied (server dry run)' "$WORK/dry-$values.txt" || true)"
  [ "$n" -ge 8 ] || fail "$values render: only $n objects dry-run applied: $(cat "$WORK/dry-$values.txt")"
  step "every object of the $values render passes server-side dry-run ($n objects)"
done

# --- 3. install; the operator runs as the chart's ServiceAccount ---------------------------
step "helm install (operator scaled to 0; chart-wide relay tolerations and pull secret)"
helm install "$RELEASE" "$CHART" -n "$RELEASE_NS" --wait --timeout 60s \
  --set operator.replicas=0 --set operator.scrapeInterval=1s --set relay.imagePullSecrets[0]=chart-pull \
  --set-json 'relay.tolerations=[{"key":"media","operator":"Exists","effect":"NoSchedule"}]' \
  >"$WORK/install.txt" || { cat "$WORK/install.txt"; fail "helm install"; }
kubectl wait --for=condition=Established crd/streams.surge.dev --timeout=30s >/dev/null

server="$(kubectl config view --raw --minify --flatten -o jsonpath='{.clusters[0].cluster.server}')"
ca="$(kubectl config view --raw --minify --flatten -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')"
token="$(kubectl -n "$RELEASE_NS" create token "$RELEASE" --duration=1h)"
cat >"$WORK/sa-kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: review
  cluster: {server: "$server", certificate-authority-data: "$ca"}
users:
- name: surge
  user: {token: "$token"}
contexts:
- name: surge
  context: {cluster: review, user: surge, namespace: $RELEASE_NS}
current-context: surge
EOF
chmod 600 "$WORK/sa-kubeconfig"
sa() { kubectl --kubeconfig "$WORK/sa-kubeconfig" "$@"; }
for verb in create patch delete list; do
  [ "$(sa auth can-i "$verb" poddisruptionbudgets.policy -n "$NS")" = yes ] || fail "the ServiceAccount may not $verb PDBs"
done
[ "$(sa auth can-i list nodes 2>/dev/null || true)" = no ] || fail "the ServiceAccount may list nodes (it only gets them by name)"
# Secrets: get and create only (signing keys); never list, watch, update or delete.
[ "$(sa auth can-i get secrets -n "$NS")" = yes ] || fail "the ServiceAccount cannot read a Stream's signing key"
for verb in list watch update delete; do
  [ "$(sa auth can-i "$verb" secrets -n "$NS" || true)" = no ] || fail "the ServiceAccount may $verb Secrets"
done
[ "$(sa auth can-i update deployments -n "$NS" || true)" = no ] || fail "the ServiceAccount may update Deployments"

# Pod patches: RBAC allows them on any pod; the chart's ValidatingAdmissionPolicy narrows them
# to the operator's two annotations on relay pods. A bystander pod (in the release namespace,
# which enforces no Pod Security level) must become unpatchable once the policy is in force.
kubectl -n "$RELEASE_NS" run bystander --image=pause --restart=Never >/dev/null
# The operator's own kind of request: a merge patch, sent as it sends it (kubectl patch would
# GET the pod first, which the ServiceAccount may not). sa_patch NAMESPACE POD JSON.
echo "$ca" | base64 -d >"$WORK/ca.crt"
sa_patch() {
  curl -sS --cacert "$WORK/ca.crt" -X PATCH -H "Authorization: Bearer $token" \
    -H "Content-Type: application/merge-patch+json" \
    "$server/api/v1/namespaces/$1/pods/$2" -d "$3"
}
annotation() { printf '{"metadata":{"annotations":{"%s":"%s"}}}' "$1" "$2"; }
# patch_refused NAMESPACE POD JSON: the API server refused it, for the policy's reason.
patch_refused() {
  local out
  out="$(sa_patch "$@")"
  [ "$(jq -r .code <<<"$out")" = 403 ] && grep -q "$POLICY_TEXT" <<<"$out"
}
POLICY_TEXT='may only change its own relay pods'
wait_until "the pod-patch policy refusing the operator's patch of a bystander pod" 30 \
  patch_refused "$RELEASE_NS" bystander "$(annotation surge.dev/advertise-host x)"
step "the ServiceAccount's pod patches are limited to relay pods (a bystander pod refused)"

mapfile -t OP_ARGS < <(kubectl -n "$RELEASE_NS" get deploy "$RELEASE" -o json | jq -r '.spec.template.spec.containers[0].args[]')
[ "${OP_ARGS[0]}" = run ] || fail "unexpected operator args: ${OP_ARGS[*]}"
args=()
for a in "${OP_ARGS[@]}"; do
  case "$a" in
    --metrics-addr=* | --log-format=*) ;;
    *) args+=("$a") ;;
  esac
done
METRICS_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
env KUBECONFIG="$WORK/sa-kubeconfig" POD_NAMESPACE="$RELEASE_NS" POD_NAME=review RUST_LOG=info,kube=warn \
  "$OPERATOR" "${args[@]}" --metrics-addr "127.0.0.1:$METRICS_PORT" --log-format text >"$WORK/operator.log" 2>&1 &
OPERATOR_PID=$!
step "operator running as the ServiceAccount (pid $OPERATOR_PID): ${args[*]:1}"

# --- 4. restricted namespace ---------------------------------------------------------------
kubectl label namespace "$NS" pod-security.kubernetes.io/enforce=restricted \
  pod-security.kubernetes.io/enforce-version=latest >/dev/null
# Pods need the namespace's default ServiceAccount.
wait_until "the default ServiceAccount of $NS" 20 kubectl -n "$NS" get serviceaccount default
if kubectl -n "$NS" run plain --image=pause --restart=Never --dry-run=server >"$WORK/plain.txt" 2>&1; then
  fail "a pod without a securityContext was admitted: PodSecurity admission is not enforcing"
fi
grep -q 'violates PodSecurity "restricted:latest"' "$WORK/plain.txt" \
  || fail "the plain pod was refused for another reason: $(cat "$WORK/plain.txt")"
step "namespace $NS enforces restricted (a plain pod is refused)"

cat >"$WORK/review.yaml" <<EOF
apiVersion: surge.dev/v1alpha1
kind: Stream
metadata:
  name: review
  namespace: $NS
spec:
  origin:
    region: us-east
  regions:
    - name: us-east
      minEdges: 2
      maxEdges: 4
    - name: ap-south
      minEdges: 5
      maxEdges: 5
  tree:
    fanout: 2
EOF
kubectl apply -f "$WORK/review.yaml" >/dev/null
deployments() { kubectl -n "$NS" get deploy -l surge.dev/stream=review -o json; }
# The tiers the Stream's status plans (origin, then each region's from the top reflector level
# down to the edges): "deployment replicas" lines. A reflector level laid out for maxEdges
# that runs no relay now is a Deployment of 0 replicas the status leaves out.
planned_tiers() {
  kubectl -n "$NS" get stream review -o json \
    | jq -r '.status | ([.origin] + [.regions[].tiers[]]) | .[] | select(. != null) | "\(.deployment) \(.desired)"' | sort
}
all_available() {
  local d want
  d="$(deployments)"
  want="$(planned_tiers)"
  [ -n "$want" ] && [ "$want" = "$(jq -r '.items[] | select(.spec.replicas > 0) | "\(.metadata.name) \(.spec.replicas)"' <<<"$d" | sort)" ] \
    && jq -e '[.items[] | (.status.availableReplicas // 0) == .spec.replicas] | all' <<<"$d"
}
end=$((SECONDS + 60))
until all_available >/dev/null 2>&1; do
  if [ "$SECONDS" -ge "$end" ]; then
    kubectl -n "$NS" get events --field-selector reason=FailedCreate -o jsonpath='{range .items[*]}{.message}{"\n"}{end}' \
      | sed 's/pods "[^"]*"/pods/' | sort -u | head -n 3 >&2
    fail "the Stream's relay Deployments did not all become available in the restricted namespace"
  fi
  sleep 1
done
pods="$(kubectl -n "$NS" get pods -l surge.dev/stream=review -o json)"
NPODS="$(planned_tiers | awk '{ n += $2 } END { print n }')"
[ "$(jq '.items | length' <<<"$pods")" -eq "$NPODS" ] || fail "expected $NPODS relay pods, got $(jq '.items | length' <<<"$pods")"
planned_tiers | grep -q '^review-ap-south-reflector-1 ' || fail "the Stream has no reflector tier: $(planned_tiers | xargs)"
jq -e '.items | all(.status.phase == "Running")' <<<"$pods" >/dev/null || fail "not every relay pod is Running"
bad="$(jq -r '.items[] | select(
    .spec.securityContext.runAsNonRoot != true or .spec.securityContext.runAsUser != 65532
    or .spec.securityContext.seccompProfile.type != "RuntimeDefault"
    or (.spec.containers[0].securityContext | .allowPrivilegeEscalation != false
        or .readOnlyRootFilesystem != true or .capabilities.drop != ["ALL"])
    or .spec.imagePullSecrets != [{"name": "chart-pull"}]
    or ([.spec.tolerations[] | select(.key == "media")] | length) != 1
  ) | .metadata.name' <<<"$pods")"
[ -z "$bad" ] || fail "relay pods without the restricted contexts or the chart's scheduling: $bad"
kubectl -n "$NS" get events --field-selector reason=FailedCreate -o name | grep -q . \
  && fail "a ReplicaSet could not create pods: $(kubectl -n "$NS" get events --field-selector reason=FailedCreate -o jsonpath='{.items[0].message}')"
step "$NPODS relay pods ($(planned_tiers | xargs)) admitted by restricted and Running, with the chart's tolerations and pull secret"

edge_pod="$(kubectl -n "$NS" get pods -l surge.dev/stream=review,surge.dev/region=us-east,surge.dev/tier=edge -o jsonpath='{.items[0].metadata.name}')"
[ "$(sa_patch "$NS" "$edge_pod" "$(annotation controller.kubernetes.io/pod-deletion-cost 7)" | jq -r .kind)" = Pod ] \
  || fail "the ServiceAccount may not set pod-deletion-cost on a relay pod"
POLICY_TEXT='may only set the controller.kubernetes.io/pod-deletion-cost'
patch_refused "$NS" "$edge_pod" "$(annotation example.com/other x)" || fail "the ServiceAccount set another annotation on a relay pod"
patch_refused "$NS" "$edge_pod" '{"metadata":{"labels":{"surge.dev/tier":"origin"}}}' || fail "the ServiceAccount relabelled a relay pod"
step "on relay pods the ServiceAccount may set pod-deletion-cost, not other annotations or labels"

# --- 5. PodDisruptionBudgets ---------------------------------------------------------------
pdbs="$(kubectl -n "$NS" get pdb -l surge.dev/stream=review -o json)"
[ "$(jq -r '[.items[].metadata.name] | sort | join(" ")' <<<"$pdbs")" = \
  "$(jq -r '[.items[].metadata.name] | sort | join(" ")' <<<"$(deployments)")" ] \
  || fail "PDBs $(jq -r '[.items[].metadata.name] | join(" ")' <<<"$pdbs") are not one per Deployment"
expect_pdb() {
  local name="$1" max="$2"
  jq -e --arg n "$name" --argjson m "$max" \
    '.items[] | select(.metadata.name == $n) | .spec.maxUnavailable == $m
       and .metadata.ownerReferences[0].kind == "Stream"
       and .metadata.ownerReferences[0].name == "review"' <<<"$pdbs" >/dev/null \
    || fail "PDB $name: want maxUnavailable $max owned by the Stream, got $(jq -c --arg n "$name" '.items[] | select(.metadata.name == $n) | .spec' <<<"$pdbs")"
}
expect_pdb review-origin 0
expect_pdb review-us-east-edge '"10%"'
expect_pdb review-ap-south-edge '"10%"'
for reflector in $(planned_tiers | awk '/-reflector-/ { print $1 }'); do
  expect_pdb "$reflector" 1
done
allowed() { kubectl -n "$NS" get pdb "$1" -o jsonpath='{.status.expectedPods}/{.status.disruptionsAllowed}'; }
wait_until "the disruption controller's status of review-origin (1 pod, 0 allowed)" 30 \
  bash -c "[ \"\$(kubectl -n $NS get pdb review-origin -o jsonpath='{.status.expectedPods}/{.status.disruptionsAllowed}')\" = 1/0 ]"
wait_until "review-us-east-edge: one disruption allowed" 30 \
  bash -c "[ \"\$(kubectl -n $NS get pdb review-us-east-edge -o jsonpath='{.status.disruptionsAllowed}')\" = 1 ]"
evict() {
  local pod="$1"
  printf '{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"%s","namespace":"%s"},"deleteOptions":{"dryRun":["All"]}}' \
    "$pod" "$NS" >"$WORK/eviction.json"
  kubectl create --raw "/api/v1/namespaces/$NS/pods/$pod/eviction" -f "$WORK/eviction.json" 2>&1
}
origin_pod="$(kubectl -n "$NS" get pods -l surge.dev/stream=review,surge.dev/tier=origin -o jsonpath='{.items[0].metadata.name}')"
out="$(evict "$origin_pod" || true)"
grep -q "violate the pod's disruption budget" <<<"$out" || fail "evicting the origin was not refused by its PDB: $out"
out="$(evict "$edge_pod")" || fail "evicting one us-east edge (dry run) was refused: $out"
step "PDBs: origin $(allowed review-origin) (eviction refused: disruption budget), us-east edges $(allowed review-us-east-edge) (eviction allowed), reflectors 1, edges 10%"

# --- 6. spread -----------------------------------------------------------------------------
deps="$(deployments)"
bad="$(jq -r '.items[] | select(.metadata.labels["surge.dev/tier"] != "origin") | select(
    [.spec.template.spec.topologySpreadConstraints[]? | [.topologyKey, .whenUnsatisfiable, .maxSkew]]
      != [["topology.kubernetes.io/zone", "ScheduleAnyway", 1], ["kubernetes.io/hostname", "ScheduleAnyway", 1]]
    or ([.spec.template.spec.topologySpreadConstraints[]
         | .labelSelector.matchLabels == (.labelSelector.matchLabels | with_entries(select(.key | startswith("surge.dev/"))))
           and .labelSelector.matchLabels["surge.dev/stream"] == "review"] | all | not)
  ) | .metadata.name' <<<"$deps")"
[ -z "$bad" ] || fail "Deployments without the default spread: $bad"
jq -e '.items[] | select(.metadata.name == "review-origin") | .spec.template.spec.topologySpreadConstraints == null' \
  <<<"$deps" >/dev/null || fail "the origin carries spread constraints"
zones="$(for n in $(jq -r '.items[] | select(.metadata.labels["surge.dev/region"] == "us-east" and .metadata.labels["surge.dev/tier"] == "edge") | .spec.nodeName' <<<"$pods"); do
  kubectl get node "$n" -o jsonpath='{.metadata.labels.topology\.kubernetes\.io/zone}{"\n"}'
done | sort -u | xargs)"
if [ "$K8S_E2E_EXTERNAL" -eq 0 ]; then
  [ "$zones" = "us-east-a us-east-b" ] || fail "us-east's two edges are not in both zones: $zones"
fi
step "spread: reflectors and edges over zones then nodes (tier labels), origin none; us-east edges in zones $zones"

# --- 7. refusals ---------------------------------------------------------------------------
cat >"$WORK/rogue.yaml" <<EOF
apiVersion: surge.dev/v1alpha1
kind: Stream
metadata:
  name: rogue
  namespace: $NS
spec:
  origin:
    region: eu-west
  regions:
    - name: eu-west
  relay:
    image: docker.io/someone/miner:1
EOF
kubectl apply -f "$WORK/rogue.yaml" >/dev/null
ready_reason() { kubectl -n "$NS" get stream rogue -o jsonpath='{.status.conditions[?(@.type=="Ready")].reason}'; }
wait_until "Stream rogue refused (Ready=False InvalidSpec)" 30 bash -c "[ \"\$(kubectl -n $NS get stream rogue -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].reason}')\" = InvalidSpec ]"
msg="$(kubectl -n "$NS" get stream rogue -o jsonpath='{.status.conditions[?(@.type=="Ready")].message}')"
grep -qF 'spec.relay.image' <<<"$msg" && grep -qF 'docker.io/someone/miner:1' <<<"$msg" \
  || fail "the refusal does not name the field and image: $msg"
wait_until "a Warning InvalidSpec event on rogue" 20 bash -c \
  "kubectl get events.events.k8s.io -n $NS --field-selector regarding.name=rogue -o json | jq -e '[.items[] | select(.reason == \"InvalidSpec\" and .type == \"Warning\" and (.note | contains(\"spec.relay.image\")))] | length > 0'"
[ -z "$(kubectl -n "$NS" get deploy,svc,pdb -l surge.dev/stream=rogue -o name)" ] || fail "objects were built for rogue"
step "image outside the allowlist refused: $(ready_reason): $msg"

cat >"$WORK/exposed.yaml" <<EOF
apiVersion: surge.dev/v1alpha1
kind: Stream
metadata:
  name: exposed
  namespace: $NS
spec:
  origin:
    region: eu-west
  regions:
    - name: eu-west
  placement:
    exposure: hostPort
    overflow: []
EOF
kubectl apply -f "$WORK/exposed.yaml" >/dev/null
wait_until "the hostPort edge refused by PodSecurity (FailedCreate naming hostPort)" 30 bash -c \
  "kubectl -n $NS get events --field-selector reason=FailedCreate -o json | jq -e '[.items[] | select(.involvedObject.name | startswith(\"exposed-eu-west-edge\")) | select(.message | contains(\"hostPort\"))] | length > 0'"
step "a hostPort Stream's edge pods are refused by the restricted namespace (documented exception)"

# Service settings per region: ingest and playback annotations, labels, externalTrafficPolicy,
# loadBalancerClass (a class no cloud controller serves, so no real load balancer is made).
cat >"$WORK/lb.yaml" <<EOF
apiVersion: surge.dev/v1alpha1
kind: Stream
metadata:
  name: lb
  namespace: $NS
spec:
  origin:
    region: eu-west
    serviceType: LoadBalancer
    service:
      annotations: {example.com/lb: ingest}
      externalTrafficPolicy: Local
      loadBalancerClass: example.com/ingest-lb
  playback:
    serviceType: LoadBalancer
    service:
      annotations: {example.com/lb: playback, example.com/tier: edge}
      labels: {team: media}
      externalTrafficPolicy: Cluster
      loadBalancerClass: example.com/playback-lb
  regions:
    - name: eu-west
      playbackService:
        annotations: {example.com/lb: eu-west}
        externalTrafficPolicy: Local
        loadBalancerClass: example.com/eu-lb
    - name: us-east
EOF
kubectl apply -f "$WORK/lb.yaml" >/dev/null
# The three checked below by name (idle reflector levels' Services come and go in between).
services_made() { kubectl -n "$NS" get svc lb-origin lb-eu-west-edge lb-us-east-edge >/dev/null 2>&1; }
wait_until "the lb Stream's Services" 30 services_made
svcs="$(kubectl -n "$NS" get svc -l surge.dev/stream=lb -o json)"
svc_fields() {
  jq -c --arg n "$1" '.items[] | select(.metadata.name == $n)
    | [.metadata.annotations["example.com/lb"], .metadata.annotations["example.com/tier"], .metadata.labels.team,
       .spec.externalTrafficPolicy, .spec.loadBalancerClass]' <<<"$svcs"
}
[ "$(svc_fields lb-origin)" = '["ingest",null,null,"Local","example.com/ingest-lb"]' ] \
  || fail "ingest Service settings: $(svc_fields lb-origin)"
[ "$(svc_fields lb-eu-west-edge)" = '["eu-west","edge","media","Local","example.com/eu-lb"]' ] \
  || fail "eu-west playback Service settings (the region's over the Stream's): $(svc_fields lb-eu-west-edge)"
[ "$(svc_fields lb-us-east-edge)" = '["playback","edge","media","Cluster","example.com/playback-lb"]' ] \
  || fail "us-east playback Service settings: $(svc_fields lb-us-east-edge)"
sed -e 's/^  name: lb$/  name: lb-bad/' -e 's/serviceType: LoadBalancer/serviceType: ClusterIP/' "$WORK/lb.yaml" >"$WORK/lb-bad.yaml"
if kubectl apply -f "$WORK/lb-bad.yaml" >"$WORK/lb-bad.txt" 2>&1; then fail "a ClusterIP Stream with loadBalancerClass was accepted"; fi
grep -q 'spec.playback.service.loadBalancerClass' "$WORK/lb-bad.txt" && grep -q 'spec.origin.service.externalTrafficPolicy' "$WORK/lb-bad.txt" \
  || fail "the refusal does not name the fields: $(cat "$WORK/lb-bad.txt")"
step "Service settings: ingest and per-region playback annotations, labels, externalTrafficPolicy, loadBalancerClass applied; refused on ClusterIP naming the fields"

# Everything the operator applied for review (PDBs included) was accepted with the chart's RBAC.
kill -0 "$OPERATOR_PID" 2>/dev/null || fail "the operator exited"
reasons="$(kubectl -n "$NS" get stream review -o jsonpath='{range .status.conditions[*]}{.reason}{" "}{end}')"
grep -q ApplyFailed <<<"$reasons" && fail "review: ApplyFailed: $(kubectl -n "$NS" get stream review -o jsonpath='{.status.conditions[?(@.type=="Degraded")].message}')"
step "passed in $(( ($(now_ms) - t0) / 1000 )) s"
