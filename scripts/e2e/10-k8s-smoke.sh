#!/usr/bin/env bash
# Smoke test of the local Kubernetes control plane (scripts/k8s): first the clear-error paths
# (build without Go, build with an unreachable module proxy, up with its port taken: one error
# line, non-zero exit, nothing left running), then brings a cluster up, checks the helm
# version (v3 >= 3.7) and the version stamp, schedules a Deployment onto the eu-west fake nodes and checks
# the pods run there with loopback IPs from their node's podCIDR, installs a helm chart and
# sees its objects, uninstalls it and sees the garbage collector remove its pods, then
# brings the cluster down (also when a step fails) and checks nothing is left running.
#
# With SURGE_KUBECONFIG set, it runs against that cluster instead (scripts/k8s/e2e.sh), in a
# namespace of its own that it deletes afterwards; that cluster needs nodes labelled
# topology.kubernetes.io/region=eu-west.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/k8s/e2e.sh
source scripts/k8s/e2e.sh

NS="surge-smoke-$$"
TIMEOUT=90s
t0="$(now_ms)"
ERRDIR="$(mktemp -d "${TMPDIR:-/tmp}/surge-smoke-errors.XXXXXX")"
PORT_HOLDER_PID=""

step() { echo "10-k8s-smoke: $*"; }
fail() { echo "10-k8s-smoke: FAIL: $*" >&2; exit 1; }

cleanup() {
  local status=$?
  [ -z "$PORT_HOLDER_PID" ] || kill "$PORT_HOLDER_PID" 2>/dev/null || true
  # Go makes module cache directories read-only; make them removable first.
  chmod -R u+w "$ERRDIR" 2>/dev/null || true
  rm -rf "$ERRDIR"
  if [ "$K8S_E2E_EXTERNAL" -eq 1 ]; then
    kubectl delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
  fi
  k8s_e2e_stop "$status"
  exit "$status"
}
trap cleanup EXIT

# --- clear errors --------------------------------------------------------------------------
# expect_error WHAT OUT ERR RC TEXT: the command failed (RC != 0), printed nothing on stdout,
# and its stderr has exactly one error line, the last one, holding TEXT (lines before it are
# progress messages such as "build: downloading ...").
expect_error() {
  local what="$1" out="$2" err="$3" rc="$4" text="$5" errors
  [ "$rc" -ne 0 ] || fail "$what: exited 0"
  [ ! -s "$out" ] || fail "$what: printed on stdout: $(cat "$out")"
  errors="$(grep -c ': error: ' "$err" || true)"
  [ "$errors" -eq 1 ] || fail "$what: $errors error lines instead of one: $(cat "$err")"
  tail -n 1 "$err" | grep -q ': error: ' || fail "$what: the error is not the last line: $(cat "$err")"
  grep -qF -- "$text" "$err" || fail "$what: the error does not say '$text': $(cat "$err")"
  step "$what: exit $rc, one line: $(grep ': error: ' "$err")"
}

# PATH without any directory holding a go binary; directories that hold other tools too
# (e.g. /usr/bin with Debian's golang-go) are replaced by a directory of links to all but go.
nogo_path=""
mkdir -p "$ERRDIR/nogo-bin"
IFS=: read -r -a path_dirs <<<"$PATH"
for d in "${path_dirs[@]}"; do
  [ -n "$d" ] && [ -d "$d" ] || continue
  if [ -e "$d/go" ]; then
    find "$d" -maxdepth 1 \( -type f -o -type l \) ! -name go ! -name gofmt \
      -exec ln -sf -t "$ERRDIR/nogo-bin" {} + 2>/dev/null || true
    d="$ERRDIR/nogo-bin"
  fi
  case ":$nogo_path:" in *":$d:"*) ;; *) nogo_path="${nogo_path:+$nogo_path:}$d" ;; esac
done
! PATH="$nogo_path" command -v go >/dev/null || fail "could not build a PATH without go"
# An empty binary cache (XDG_CACHE_HOME), so build gets past its "all cached" shortcut.
rc=0
env PATH="$nogo_path" XDG_CACHE_HOME="$ERRDIR/xdg-nogo" scripts/k8s/build \
  >"$ERRDIR/nogo.out" 2>"$ERRDIR/nogo.err" || rc=$?
expect_error "build without Go" "$ERRDIR/nogo.out" "$ERRDIR/nogo.err" "$rc" \
  "build: error: Go toolchain not found on PATH"

if command -v go >/dev/null; then
  # A throwaway module cache (nothing cached, so every module must be fetched) and a proxy
  # that refuses connections: the real module and binary caches are not touched.
  rc=0
  env XDG_CACHE_HOME="$ERRDIR/xdg-proxy" GOMODCACHE="$ERRDIR/gomodcache" \
    GOPROXY=http://127.0.0.1:9 GOFLAGS=-mod=mod scripts/k8s/build \
    >"$ERRDIR/proxy.out" 2>"$ERRDIR/proxy.err" || rc=$?
  expect_error "build with an unreachable module proxy" "$ERRDIR/proxy.out" "$ERRDIR/proxy.err" "$rc" \
    "module download failed (GOPROXY=http://127.0.0.1:9)"
elif [ -z "${SURGE_KUBECONFIG:-}" ]; then
  fail "go is not on PATH: cannot check the module-download error"
else
  step "not checked: the module-download error (no go on PATH; SURGE_KUBECONFIG is set)"
fi

if [ -x "$K8S_BIN/kube-apiserver" ]; then
  # A port held by another process, requested for the apiserver.
  python3 -c 'import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print(s.getsockname()[1], flush=True); time.sleep(300)' >"$ERRDIR/held-port" &
  PORT_HOLDER_PID=$!
  for _ in $(seq 1 50); do [ -s "$ERRDIR/held-port" ] && break; sleep 0.1; done
  held="$(cat "$ERRDIR/held-port")"
  [ -n "$held" ] || fail "could not hold a port for the port-clash check"
  clash_dir="$ERRDIR/k8s-clash"
  rc=0
  env SURGE_K8S_DIR="$clash_dir" SURGE_K8S_APISERVER_PORT="$held" scripts/k8s/up \
    >"$ERRDIR/clash.out" 2>"$ERRDIR/clash.err" || rc=$?
  expect_error "up with its apiserver port taken" "$ERRDIR/clash.out" "$ERRDIR/clash.err" "$rc" \
    "up: error: port clash: 127.0.0.1:$held (for kube-apiserver) is already in use"
  [ "$(wc -l <"$ERRDIR/clash.err")" -eq 1 ] || fail "up printed more than its error line: $(cat "$ERRDIR/clash.err")"
  # Nothing of that run may be alive: every process up starts has its state dir in its args.
  if survivors="$(pgrep -a -f -- "$clash_dir")"; then
    fail "processes of the failed up still run: $survivors"
  fi
  [ ! -e "$clash_dir" ] || fail "the failed up left $clash_dir behind: $(find "$clash_dir" | head)"
  kill "$PORT_HOLDER_PID" 2>/dev/null || true
  wait "$PORT_HOLDER_PID" 2>/dev/null || true
  PORT_HOLDER_PID=""
elif [ -z "${SURGE_KUBECONFIG:-}" ]; then
  fail "$K8S_BIN/kube-apiserver is missing: run scripts/k8s/build"
else
  step "not checked: the port-clash error of up (no binaries in $K8S_BIN; SURGE_KUBECONFIG is set)"
fi

step "bringing the cluster up (or connecting to SURGE_KUBECONFIG)"
k8s_e2e_start

# helm v3 >= 3.7 (the chart and the operator test rely on it).
helm_version="$(helm version --template '{{.Version}}' 2>/dev/null)" || fail "helm version failed (is helm on PATH?)"
[[ "$helm_version" =~ ^v3\.([0-9]+)\. ]] && [ "${BASH_REMATCH[1]}" -ge 7 ] \
  || fail "helm is '$helm_version', need v3 >= 3.7"
step "helm $helm_version"

if [ "$K8S_E2E_EXTERNAL" -eq 0 ]; then
  server_version="$(kubectl version -o json | jq -r .serverVersion.gitVersion)"
  client_version="$(kubectl version -o json | jq -r .clientVersion.gitVersion)"
  [ "$server_version" = "$K8S_VERSION" ] || fail "/version says '$server_version', expected $K8S_VERSION"
  [ "$client_version" = "$K8S_VERSION" ] || fail "kubectl reports '$client_version', expected $K8S_VERSION"
  step "server and kubectl report $server_version"
  [ "$(kubectl get nodes -l topology.kubernetes.io/region --no-headers | grep -c ' Ready ')" -eq 6 ] \
    || fail "expected 6 Ready nodes with a region label"
  # kwok renews a Lease per node; without them nodes and pods turn NotReady after ~1 minute.
  for _ in $(seq 1 40); do
    [ "$(kubectl get lease -n kube-node-lease --no-headers 2>/dev/null | wc -l)" -ge 6 ] && break
    sleep 0.5
  done
  [ "$(kubectl get lease -n kube-node-lease --no-headers | wc -l)" -ge 6 ] \
    || fail "kwok did not create the node Leases in kube-node-lease (node heartbeats)"
  step "6 node Leases in kube-node-lease (node heartbeats)"
fi

kubectl create namespace "$NS" >/dev/null
# Pods need the namespace's default ServiceAccount (ServiceAccount admission plugin).
for _ in $(seq 1 100); do
  kubectl -n "$NS" get serviceaccount default >/dev/null 2>&1 && break
  sleep 0.1
done

step "RBAC on: the namespace's default ServiceAccount may not list pods; its token authenticates"
[ "$(kubectl auth can-i list pods -n "$NS" --as="system:serviceaccount:$NS:default")" = "no" ] \
  || fail "RBAC is not enforced: the default ServiceAccount may list pods"
[ "$(kubectl auth can-i list pods -n "$NS")" = "yes" ] || fail "the admin may not list pods"
if [ "$K8S_E2E_EXTERNAL" -eq 0 ]; then
  token="$(kubectl -n "$NS" create token default --duration=10m)"
  server="$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
  ca="$SURGE_K8S_DIR/pki/ca.crt"
  review="$(curl -sf --cacert "$ca" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -X POST "$server/apis/authentication.k8s.io/v1/selfsubjectreviews" \
    -d '{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}')" \
    || fail "the ServiceAccount token was not accepted"
  user="$(jq -r .status.userInfo.username <<<"$review")"
  [ "$user" = "system:serviceaccount:$NS:default" ] || fail "token authenticates as '$user'"
  code="$(curl -s -o /dev/null -w '%{http_code}' --cacert "$ca" -H "Authorization: Bearer $token" \
    "$server/api/v1/namespaces/$NS/pods")"
  [ "$code" = "403" ] || fail "listing pods with the ServiceAccount token gave HTTP $code, expected 403"
fi

step "deployment of 3 replicas pinned to region eu-west"
kubectl -n "$NS" apply -f - >/dev/null <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      nodeSelector:
        topology.kubernetes.io/region: eu-west
      containers:
        - name: web
          image: registry.k8s.io/pause:3.10
EOF
kubectl -n "$NS" rollout status deployment/web --timeout="$TIMEOUT" >/dev/null \
  || fail "deployment web did not become available: $(kubectl -n "$NS" get pods -o wide 2>&1 | tail -n +2)"

# region_of NODE / cidr_of NODE
region_of() { kubectl get node "$1" -o jsonpath='{.metadata.labels.topology\.kubernetes\.io/region}'; }
cidr_of() { kubectl get node "$1" -o jsonpath='{.spec.podCIDR}'; }
running=0
while read -r name phase node ip; do
  [ "$phase" = "Running" ] || fail "pod $name is $phase"
  region="$(region_of "$node")"
  [ "$region" = "eu-west" ] || fail "pod $name runs on $node in region '$region', expected eu-west"
  if [ "$K8S_E2E_EXTERNAL" -eq 0 ]; then
    cidr="$(cidr_of "$node")"
    python3 - "$ip" "$cidr" <<'EOF' || fail "pod $name has IP $ip, not a loopback address in its node's podCIDR $cidr"
import ipaddress, socket, sys
ip, cidr = ipaddress.ip_address(sys.argv[1]), ipaddress.ip_network(sys.argv[2])
assert ip in cidr and ip.is_loopback
s = socket.socket()
s.bind((str(ip), 0))  # a test can really listen at the pod's IP
EOF
  fi
  step "pod $name Running on $node ($region), IP $ip"
  running=$((running + 1))
done < <(kubectl -n "$NS" get pods -l app=web --no-headers \
  -o 'custom-columns=N:.metadata.name,P:.status.phase,NODE:.spec.nodeName,IP:.status.podIP')
[ "$running" -eq 3 ] || fail "expected 3 pods of deployment web, found $running"

step "helm install of scripts/k8s/testdata/smoke-chart"
helm install smoke scripts/k8s/testdata/smoke-chart -n "$NS" --wait --timeout "$TIMEOUT" >/dev/null \
  || fail "helm install failed"
[ "$(helm -n "$NS" status smoke -o json | jq -r .info.status)" = "deployed" ] || fail "release smoke is not deployed"
objects="$(kubectl -n "$NS" get configmap,service,deployment -l app.kubernetes.io/instance=smoke \
  --no-headers -o name | sort | tr '\n' ' ')"
[ "$objects" = "configmap/smoke-config deployment.apps/smoke service/smoke " ] \
  || fail "chart objects: got '$objects'"
[ "$(kubectl -n "$NS" get service smoke -o jsonpath='{.spec.clusterIP}')" != "" ] || fail "service smoke has no cluster IP"
[ "$(kubectl -n "$NS" get pods -l app.kubernetes.io/instance=smoke --no-headers | grep -c Running)" -eq 2 ] \
  || fail "the chart's 2 pods are not Running"
step "chart objects present: $objects"

step "helm uninstall; the garbage collector removes the chart's pods"
helm uninstall smoke -n "$NS" --wait --timeout "$TIMEOUT" >/dev/null || fail "helm uninstall failed"
for _ in $(seq 1 300); do
  [ -z "$(kubectl -n "$NS" get pods,replicasets -l app.kubernetes.io/instance=smoke --no-headers -o name)" ] && break
  sleep 0.2
done
[ -z "$(kubectl -n "$NS" get pods,replicasets -l app.kubernetes.io/instance=smoke --no-headers -o name)" ] \
  || fail "pods/replicasets of the uninstalled chart remain"

if [ "$K8S_E2E_EXTERNAL" -eq 0 ]; then
  step "bringing the cluster down"
  pids="$(cat "$SURGE_K8S_DIR"/pids/*.pid | cut -d' ' -f1 | tr '\n' ' ')"
  dir="$SURGE_K8S_DIR"
  k8s_e2e_stop 0
  for pid in $pids; do
    [ ! -e "/proc/$pid" ] || [ "$(cut -d' ' -f3 "/proc/$pid/stat")" = "Z" ] || fail "process $pid still runs after down"
  done
  [ ! -e "$dir" ] || fail "$dir still exists after down"
  SURGE_K8S_DIR="$dir" scripts/k8s/down >/dev/null || fail "a second down failed"
fi
step "PASS in $(( ($(now_ms) - t0) / 1000 )) s"
