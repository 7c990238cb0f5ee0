#!/usr/bin/env bash
# Runs examples/multi-executor against the Cloud Run and Kubernetes fakes (tests/fakes/): starts both, maps the image
# "ork-worker" to the locally built ork-worker, creates the Cloud Run job, writes plugins.yaml, runs the workflow.
# Usage: examples/multi-executor/run.sh [path/to/ork-host] [extra ork-host args...]; WORK=dir keeps state there,
# WORKFLOW=file runs another workflow, EXTRA_PLUGINS=yaml-lines adds plugins.yaml entries (e.g. a docker executor).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
host="${1:-$here/../../build/bin/ork-host}"
shift || true
worker="${ORK_WORKER_BIN:-$(cd "$(dirname "$host")" && pwd)/ork-worker}"
emu="$here/../../tests/support/object_emulator.sh"
WORK="${WORK:-$(mktemp -d /tmp/ork-multi.XXXXXX)}"
mkdir -p "$WORK"
cleanup() { "$emu" stop cloudrun "$WORK/cloudrun" >/dev/null 2>&1 || true; "$emu" stop k8s "$WORK/k8s" >/dev/null 2>&1 || true; }
trap cleanup EXIT
"$emu" start cloudrun "$WORK/cloudrun" >/dev/null
"$emu" start k8s "$WORK/k8s" >/dev/null
CLOUDRUN_ENDPOINT=$(cat "$WORK/cloudrun/endpoint")
K8S_ENDPOINT=$(cat "$WORK/k8s/endpoint")
post() { curl -sf -X POST -H 'Content-Type: application/json' "$1" -d "$2" >/dev/null; }
post "$CLOUDRUN_ENDPOINT/_fake/images" "{\"ork-worker\": [\"$worker\"]}"
post "$K8S_ENDPOINT/_fake/images" "{\"ork-worker:latest\": [\"$worker\"]}"
post "$CLOUDRUN_ENDPOINT/v2/projects/demo/locations/europe-west1/jobs?jobId=ork-worker" \
  '{"template": {"taskCount": 1, "template": {"containers": [{"name": "worker", "image": "ork-worker"}], "maxRetries": 0, "timeout": "600s"}}}'
KUBECONFIG_FILE="$WORK/kubeconfig"
cat >"$KUBECONFIG_FILE" <<KC
apiVersion: v1
kind: Config
current-context: fake
clusters: [{name: fake, cluster: {server: "$K8S_ENDPOINT"}}]
contexts: [{name: fake, context: {cluster: fake, user: ork, namespace: ork}}]
users: [{name: ork, user: {token: not-checked-by-the-fake}}]
KC
sed -e "s|\${WORK}|$WORK|g" -e "s|\${CLOUDRUN_ENDPOINT}|$CLOUDRUN_ENDPOINT|g" \
  -e "s|\${KUBECONFIG_FILE}|$KUBECONFIG_FILE|g" "$here/plugins.yaml" >"$WORK/plugins.yaml"
[ -z "${EXTRA_PLUGINS:-}" ] || printf '%s\n' "$EXTRA_PLUGINS" >>"$WORK/plugins.yaml"
"$host" --plugins "$WORK/plugins.yaml" "$@" run "${WORKFLOW:-$here/workflow.yaml}"
