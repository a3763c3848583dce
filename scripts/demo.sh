#!/usr/bin/env bash
# The main job on embedded defaults: set up, start `fargo server` (SQLite state, the local
# registry, this one host), then drive an ECS service with the aws CLI: its tasks start across
# two zones with private IPs, serve HTTP, log, scale out, are replaced when one dies, and
# scale to zero before the service is deleted.
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
SUBNETS=$(aws ec2 describe-subnets --query 'Subnets[0:2].SubnetId' --output text | tr '\t' ,)

step "aws ecs create-service --service-name web --desired-count 2 (across two zones)"
aws ecs create-service --service-name web --task-definition web --desired-count 2 \
  --launch-type FARGATE --network-configuration "awsvpcConfiguration={subnets=[$SUBNETS]}" \
  --deployment-configuration 'deploymentCircuitBreaker={enable=true,rollback=true},maximumPercent=200,minimumHealthyPercent=100' \
  --query 'service.{name:serviceName,status:status,desired:desiredCount}' --output table

step "aws ecs wait services-stable --services web"
svc_wait() {  # the CLI's waiter polls every 15 s; the service is usually stable within one
  for _ in $(seq 300); do
    [ "$(aws ecs describe-services --services web --query \
      'length(services[?length(deployments)==`1` && runningCount==desiredCount])' --output text)" = 1 ] && return
    sleep 0.2
  done
}
svc_wait
aws ecs wait services-stable --services web
aws ecs describe-services --services web --output table \
  --query 'services[0].{status:status,desired:desiredCount,running:runningCount,pending:pendingCount,rollout:deployments[0].rolloutState}'
show_tasks() {
  aws ecs describe-tasks --tasks $(aws ecs list-tasks --service-name web --query 'taskArns' --output text) \
    --output table --query 'tasks[].{task:taskArn,status:lastStatus,zone:availabilityZone,ip:attachments[0].details[?name==`privateIPv4Address`]|[0].value,startedBy:startedBy}'
}
show_tasks

step "curl each task of the service"
for IP in $(aws ecs describe-tasks --tasks $(aws ecs list-tasks --service-name web --query 'taskArns' --output text) \
    --query 'tasks[].attachments[0].details[?name==`privateIPv4Address`]|[].value' --output text); do
  echo "http://$IP:8080/ says: $(curl -sS --max-time 5 --retry 10 --retry-connrefused "http://$IP:8080/")"
done

TASK=$(aws ecs list-tasks --service-name web --query 'taskArns[0]' --output text)
step "fargo logs ${TASK##*/}"
fargo logs "${TASK##*/}" --timestamps

step "aws ecs update-service --desired-count 3 (scale out)"
aws ecs update-service --service web --desired-count 3 --query 'service.desiredCount' --output text
svc_wait
show_tasks

step "aws ecs stop-task (a task dies: the service replaces it)"
aws ecs stop-task --task "$TASK" --reason "demo: kill one" --query 'task.desiredStatus' --output text
sleep 1
svc_wait
show_tasks

step "aws ecs describe-services: the service's events, newest first"
aws ecs describe-services --services web --query 'services[0].events[0:8].message' --output text | tr '\t' '\n'

step "aws ecs update-service --desired-count 0, then delete-service"
aws ecs update-service --service web --desired-count 0 --query 'service.desiredCount' --output text
svc_wait
aws ecs delete-service --service web --query 'service.status' --output text
for _ in $(seq 100); do
  [ "$(aws ecs describe-services --services web --query 'services[0].status' --output text)" = INACTIVE ] && break
  sleep 0.2
done
aws ecs describe-services --services web --query 'services[0].status' --output text

step "fargo logs ${TASK##*/} (after the stop: the logs outlive the task)"
fargo logs "${TASK##*/}"
