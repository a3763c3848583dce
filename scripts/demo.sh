#!/usr/bin/env bash
# The main job on embedded defaults: set up, start `fargo server` (SQLite state, the local
# registry, this one host), then drive one Fargate task with the aws CLI: it starts, gets a
# private IP, serves HTTP, logs, and stops.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

PORT=${FARGO_PORT:-4680}
REGISTRY_PORT=${FARGO_REGISTRY_PORT:-5000}
STATE=${FARGO_STATE:-$(mktemp -d /tmp/fargo-demo.XXXXXX)}
export FARGO_ENDPOINT=http://127.0.0.1:$PORT
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
aws() { command aws --endpoint-url "$FARGO_ENDPOINT" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "fargo server --port $PORT --state-dir $STATE"
fargo server --port "$PORT" --state-dir "$STATE" --registry-port "$REGISTRY_PORT" \
  >"$STATE/server.log" 2>&1 &
SERVER=$!
cleanup() {
  kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null || true
  fargo purge --state-dir "$STATE" >/dev/null 2>&1 || true
}
trap cleanup EXIT
for _ in $(seq 100); do curl -sf "$FARGO_ENDPOINT/fargo/health" >/dev/null && break; sleep 0.1; done
cat "$STATE/server.log"

step 'eval "$(fargo credentials --state-dir '"$STATE"')"   # the access key the server made'
eval "$(fargo credentials --state-dir "$STATE")"
echo "AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID"

step "build a busybox image and push it to the local registry (127.0.0.1:$REGISTRY_PORT)"
python3 -m tests.imagebuild "127.0.0.1:$REGISTRY_PORT" busybox:latest

step "aws ecs register-task-definition (web: busybox httpd on 8080, 0.25 vCPU / 0.5 GB)"
cat >"$STATE/web.json" <<JSON
{"family": "web", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"],
 "cpu": "256", "memory": "512",
 "containerDefinitions": [{"name": "web", "image": "127.0.0.1:$REGISTRY_PORT/busybox:latest",
   "portMappings": [{"containerPort": 8080}],
   "command": ["sh", "-c", "echo serving on port 8080; trap 'echo got SIGTERM, bye; exit 0' TERM; httpd -f -v -p 8080 -h /www & wait"]}]}
JSON
aws ecs register-task-definition --cli-input-json "file://$STATE/web.json" \
  --query 'taskDefinition.taskDefinitionArn' --output text

step "aws ec2 describe-subnets"
aws ec2 describe-subnets --query 'Subnets[].[SubnetId,AvailabilityZone,CidrBlock]' --output text
SUBNET=$(aws ec2 describe-subnets --query 'Subnets[0].SubnetId' --output text)

step "aws ecs run-task --launch-type FARGATE --task-definition web"
TASK=$(aws ecs run-task --launch-type FARGATE --task-definition web \
  --network-configuration "awsvpcConfiguration={subnets=[$SUBNET]}" \
  --query 'tasks[0].taskArn' --output text)
echo "$TASK"
for _ in $(seq 300); do
  STATUS=$(aws ecs describe-tasks --tasks "$TASK" --query 'tasks[0].lastStatus' --output text)
  [ "$STATUS" = RUNNING ] || [ "$STATUS" = STOPPED ] && break
  sleep 0.1
done
aws ecs describe-tasks --tasks "$TASK" --output table \
  --query 'tasks[0].{status:lastStatus,cpu:cpu,memory:memory,ip:attachments[0].details[?name==`privateIPv4Address`]|[0].value,mac:attachments[0].details[?name==`macAddress`]|[0].value,eni:attachments[0].details[?name==`networkInterfaceId`]|[0].value}'
IP=$(aws ecs describe-tasks --tasks "$TASK" \
  --query 'tasks[0].attachments[0].details[?name==`privateIPv4Address`]|[0].value' --output text)

step "curl http://$IP:8080/"
curl -sS --max-time 5 --retry 10 --retry-connrefused "http://$IP:8080/"  # httpd may still be binding

step "fargo logs ${TASK##*/}"
fargo logs "${TASK##*/}" --timestamps

step "aws ecs stop-task"
aws ecs stop-task --task "$TASK" --reason "demo finished" --query 'task.desiredStatus' --output text
for _ in $(seq 400); do
  STATUS=$(aws ecs describe-tasks --tasks "$TASK" --query 'tasks[0].lastStatus' --output text)
  [ "$STATUS" = STOPPED ] && break
  sleep 0.1
done
aws ecs describe-tasks --tasks "$TASK" --output table \
  --query 'tasks[0].{status:lastStatus,stopCode:stopCode,reason:stoppedReason,exitCode:containers[0].exitCode}'

step "fargo logs ${TASK##*/} (after the stop: the logs outlive the task)"
fargo logs "${TASK##*/}"
