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
# call PATH BODY [extra curl args]: POST JSON to the fake, failing on an HTTP error.
call() { curl -sf -X POST -H 'Content-Type: application/json' "${@:3}" "$ep$1" -d "$2" >/dev/null; }
call /_fake/images "{\"ork-worker\": [\"$worker\"]}"
if [ "$kind" = cloudrun ]; then
  # A 409 (the job exists: a fixture run before) is fine when the job is there.
  call "/v2/projects/conformance/locations/local/jobs?jobId=conformance" \
    '{"template": {"taskCount": 1, "template": {"containers": [{"name": "worker", "image": "ork-worker"}], "maxRetries": 0, "timeout": "3600s"}}}' ||
    curl -sf "$ep/v2/projects/conformance/locations/local/jobs/conformance" >/dev/null
fi
if [ "$kind" = ecs ]; then
  ecs() { call / "$2" -H "X-Amz-Target: AmazonEC2ContainerServiceV20141113.$1"; }
  ecs CreateCluster '{"clusterName": "conformance"}'
  ecs RegisterTaskDefinition '{"family": "conformance-worker", "requiresCompatibilities": ["FARGATE"],
    "networkMode": "awsvpc", "cpu": "256", "memory": "512",
    "containerDefinitions": [{"name": "worker", "image": "ork-worker", "essential": true}]}'
fi
echo "exec_fake_setup: $kind at $ep runs $worker"
