#!/usr/bin/env bash
# Prepares a job-API fake started by object_emulator.sh for the executor conformance suite:
#   exec_fake_setup.sh cloudrun|k8s|ecs <emulator dir> <ork-worker path>
# maps the image "ork-worker" to the local ork-worker; for Cloud Run creates the job
# projects/conformance/locations/local/jobs/conformance (maxRetries 0), for ECS the cluster "conformance" and the
# Fargate task definition "conformance-worker" (container "worker").
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 cloudrun|k8s|ecs <emulator dir> <ork-worker>" >&2; exit 2; }
kind=$1 dir=$2 worker=$3
ep=$(cat "$dir/endpoint")
post() { curl -sf -X POST -H 'Content-Type: application/json' "$ep$1" -d "$2" >/dev/null; }
post /_fake/images "{\"ork-worker\": [\"$worker\"]}"
if [ "$kind" = cloudrun ]; then
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    "$ep/v2/projects/conformance/locations/local/jobs?jobId=conformance" \
    -d '{"template": {"taskCount": 1, "template": {"containers": [{"name": "worker", "image": "ork-worker"}], "maxRetries": 0, "timeout": "3600s"}}}')
  [ "$code" = 200 ] || [ "$code" = 409 ] || { if [ "$kind" = ecs ]; then
  ecs() {
    curl -sf -X POST -H 'Content-Type: application/x-amz-json-1.1' \
      -H "X-Amz-Target: AmazonEC2ContainerServiceV20141113.$1" "$ep/" -d "$2" >/dev/null
  }
  ecs CreateCluster '{"clusterName": "conformance"}'
  ecs RegisterTaskDefinition '{"family": "conformance-worker", "requiresCompatibilities": ["FARGATE"],
    "networkMode": "awsvpc", "cpu": "256", "memory": "512",
    "containerDefinitions": [{"name": "worker", "image": "ork-worker", "essential": true}]}'
fi
echo "exec_fake_setup: creating the job: HTTP $code" >&2; exit 1; }
fi
if [ "$kind" = ecs ]; then
  ecs() {
    curl -sf -X POST -H 'Content-Type: application/x-amz-json-1.1' \
      -H "X-Amz-Target: AmazonEC2ContainerServiceV20141113.$1" "$ep/" -d "$2" >/dev/null
  }
  ecs CreateCluster '{"clusterName": "conformance"}'
  ecs RegisterTaskDefinition '{"family": "conformance-worker", "requiresCompatibilities": ["FARGATE"],
    "networkMode": "awsvpc", "cpu": "256", "memory": "512",
    "containerDefinitions": [{"name": "worker", "image": "ork-worker", "essential": true}]}'
fi
echo "exec_fake_setup: $kind at $ep runs $worker"
