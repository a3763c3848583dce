#!/usr/bin/env bash
# The main job on embedded defaults: set up, start `fargo server` (SQLite state, the local
# registry, this one host), then drive an ECS service behind an internal ALB with the aws CLI:
# its tasks start across two zones with private IPs, are registered in the load balancer's
# target group, serve HTTP through it, log to CloudWatch Logs (awslogs), show their CPU and
# memory in CloudWatch, scale out, are replaced when one dies, and scale to zero before the
# service and the load balancer are deleted; then an EKS cluster with a Fargate profile, reached
# with `aws eks update-kubeconfig` and kubectl, runs a Deployment that rolls out, scales and
# rolls again; then what it all cost, per second.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

PORT=${FARGO_PORT:-4680}
REGISTRY_PORT=${FARGO_REGISTRY_PORT:-5000}
STATE=${FARGO_STATE:-$(mktemp -d /tmp/fargo-demo.XXXXXX)}
export FARGO_ENDPOINT=http://127.0.0.1:$PORT
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
aws() { command aws --endpoint-url "$FARGO_ENDPOINT" "$@"; }
# `aws logs tail` is the CLI v2's (Debian's, at /usr/bin/aws); pip's v1 has no tail.
aws2() { /usr/bin/aws --endpoint-url "$FARGO_ENDPOINT" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "fargo server --port $PORT --state-dir $STATE --metrics-interval 5"
fargo server --port "$PORT" --state-dir "$STATE" --registry-port "$REGISTRY_PORT" --metrics-interval 5 \
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

step "aws ecs register-task-definition (web: busybox httpd on 8080, 0.25 vCPU / 0.5 GB, logs to /ecs/web)"
cat >"$STATE/web.json" <<JSON
{"family": "web", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"],
 "cpu": "256", "memory": "512",
 "executionRoleArn": "arn:aws:iam::000000000000:role/ecsTaskExecutionRole",
 "containerDefinitions": [{"name": "web", "image": "127.0.0.1:$REGISTRY_PORT/busybox:latest",
   "portMappings": [{"containerPort": 8080}],
   "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/web",
     "awslogs-region": "us-east-1", "awslogs-stream-prefix": "ecs", "awslogs-create-group": "true"}},
   "command": ["sh", "-c", "mkdir -p /tmp/www; echo hello from \$(hostname) > /tmp/www/index.html; echo serving on port 8080; trap 'echo got SIGTERM, bye; exit 0' TERM; httpd -f -v -p 8080 -h /tmp/www & wait"]}]}
JSON
aws ecs register-task-definition --cli-input-json "file://$STATE/web.json" \
  --query 'taskDefinition.taskDefinitionArn' --output text

step "aws ec2 describe-subnets"
aws ec2 describe-subnets --query 'Subnets[].[SubnetId,AvailabilityZone,CidrBlock]' --output text
SUBNETS=$(aws ec2 describe-subnets --query 'Subnets[0:2].SubnetId' --output text | tr '\t' ,)

VPC=$(aws ec2 describe-vpcs --query 'Vpcs[0].VpcId' --output text)
step "aws elbv2 create-target-group / create-load-balancer / create-listener (an internal ALB on HAProxy)"
TG=$(aws elbv2 create-target-group --name web --protocol HTTP --port 8080 --vpc-id "$VPC" \
  --target-type ip --health-check-path / --health-check-interval-seconds 5 --health-check-timeout-seconds 2 \
  --healthy-threshold-count 2 --query 'TargetGroups[0].TargetGroupArn' --output text)
aws elbv2 modify-target-group-attributes --target-group-arn "$TG" \
  --attributes Key=deregistration_delay.timeout_seconds,Value=5 >/dev/null
LB=$(aws elbv2 create-load-balancer --name web --type application --scheme internal \
  --subnets ${SUBNETS//,/ } --query 'LoadBalancers[0].LoadBalancerArn' --output text)
aws elbv2 create-listener --load-balancer-arn "$LB" --protocol HTTP --port 80 \
  --default-actions "Type=forward,TargetGroupArn=$TG" --query 'Listeners[0].ListenerArn' --output text
aws elbv2 describe-load-balancers --load-balancer-arns "$LB" --output table \
  --query 'LoadBalancers[0].{name:LoadBalancerName,dns:DNSName,state:State.Code,addresses:join(`, `,AvailabilityZones[].LoadBalancerAddresses[0].PrivateIPv4Address)}'
LB_IP=$(aws elbv2 describe-load-balancers --load-balancer-arns "$LB" \
  --query 'LoadBalancers[0].AvailabilityZones[0].LoadBalancerAddresses[0].PrivateIPv4Address' --output text)

step "aws ecs create-service --service-name web --desired-count 2 --load-balancers … (across two zones)"
aws ecs create-service --service-name web --task-definition web --desired-count 2 \
  --launch-type FARGATE --network-configuration "awsvpcConfiguration={subnets=[$SUBNETS]}" \
  --load-balancers "targetGroupArn=$TG,containerName=web,containerPort=8080" \
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

step "aws elbv2 describe-target-health (HAProxy's own checks)"
for _ in $(seq 150); do
  [ "$(aws elbv2 describe-target-health --target-group-arn "$TG" \
    --query 'length(TargetHealthDescriptions[?TargetHealth.State==`healthy`])' --output text)" = 2 ] && break
  sleep 0.2
done
aws elbv2 describe-target-health --target-group-arn "$TG" --output table \
  --query 'TargetHealthDescriptions[].{target:Target.Id,port:Target.Port,state:TargetHealth.State}'

step "curl http://$LB_IP/ (the load balancer, 4 times)"
for _ in 1 2 3 4; do curl -sS --max-time 5 "http://$LB_IP/"; done

TASK=$(aws ecs list-tasks --service-name web --query 'taskArns[0]' --output text)
step "aws logs describe-log-streams --log-group-name /ecs/web (awslogs: PREFIX/CONTAINER/TASK-ID)"
sleep 1  # the shipper's pass is every 250 ms
aws logs describe-log-streams --log-group-name /ecs/web --output table \
  --query 'logStreams[].{stream:logStreamName,lastEvent:lastEventTimestamp}'
step "aws logs get-log-events --log-stream-name ecs/web/${TASK##*/}"
aws logs get-log-events --log-group-name /ecs/web --log-stream-name "ecs/web/${TASK##*/}" \
  --start-from-head --query 'events[].message' --output text | tr '\t' '\n'
if [ -x /usr/bin/aws ]; then
  step "aws logs tail /ecs/web --since 10m --filter-pattern '?serving ?SIGTERM' (CLI v2)"
  aws2 logs tail /ecs/web --since 10m --filter-pattern '?serving ?SIGTERM'
fi
step "fargo logs ${TASK##*/} (the same output, read by fargo's own path)"
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

step "aws cloudwatch get-metric-statistics AWS/ECS CPUUtilization and MemoryUtilization (service web)"
for metric in CPUUtilization MemoryUtilization; do
  echo "$metric (percent of what the tasks reserved, per minute):"
  aws cloudwatch get-metric-statistics --namespace AWS/ECS --metric-name "$metric" \
    --dimensions Name=ClusterName,Value=default Name=ServiceName,Value=web \
    --statistics Average Maximum --period 60 \
    --start-time "$(date -u -d '-10 min' +%FT%TZ)" --end-time "$(date -u -d '+1 min' +%FT%TZ)" \
    --query 'sort_by(Datapoints,&Timestamp)[].[Timestamp,Average,Maximum]' --output text
done
step "curl http://127.0.0.1:$PORT/metrics (Prometheus, per task)"
curl -sS "http://127.0.0.1:$PORT/metrics" | grep -E '^fargo_task_(cpu|memory)' | head -6 || true

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
aws elbv2 delete-listener --listener-arn "$(aws elbv2 describe-listeners --load-balancer-arn "$LB" \
  --query 'Listeners[0].ListenerArn' --output text)"
aws elbv2 delete-load-balancer --load-balancer-arn "$LB"
aws elbv2 delete-target-group --target-group-arn "$TG"

step "fargo logs ${TASK##*/} (after the stop: the logs outlive the task)"
fargo logs "${TASK##*/}"

step "aws ecs run-task --platform-version 1.4.0-gvisor (a kernel of its own: gVisor's, not the host's $(uname -r))"
GTASK=$(aws ecs run-task --task-definition web --launch-type FARGATE --platform-version 1.4.0-gvisor \
  --network-configuration "awsvpcConfiguration={subnets=[${SUBNETS%%,*}]}" \
  --overrides '{"containerOverrides": [{"name": "web", "command": ["sh", "-c", "uname -r; dmesg | head -2"]}]}' \
  --query 'tasks[0].taskArn' --output text)
aws ecs wait tasks-stopped --tasks "$GTASK"
aws ecs describe-tasks --tasks "$GTASK" --query 'tasks[0].[platformVersion,lastStatus,containers[0].exitCode]' \
  --output text
fargo logs "${GTASK##*/}"

step "aws eks create-cluster demo, create-fargate-profile web (pods of namespace web run on Fargate)"
aws eks create-cluster --name demo --role-arn arn:aws:iam::000000000000:role/eks \
  --resources-vpc-config "subnetIds=$SUBNETS" --query 'cluster.status' --output text
aws eks create-fargate-profile --cluster-name demo --fargate-profile-name web \
  --pod-execution-role-arn arn:aws:iam::000000000000:role/pods --selectors namespace=web \
  --subnets ${SUBNETS//,/ } --query 'fargateProfile.status' --output text
for _ in $(seq 100); do
  [ "$(aws eks describe-fargate-profile --cluster-name demo --fargate-profile-name web \
      --query 'fargateProfile.status' --output text)" = ACTIVE ] && break
  sleep 0.1
done

step "aws eks update-kubeconfig --name demo (kubectl then authenticates with aws eks get-token)"
export KUBECONFIG="$STATE/kubeconfig"
aws2 eks update-kubeconfig --name demo --kubeconfig "$KUBECONFIG"
kubectl auth whoami

step "kubectl create namespace web; kubectl create deployment hello --replicas 2 (busybox httpd)"
kubectl create namespace web
kubectl create deployment hello -n web --replicas 2 --port 8080 \
  --image "127.0.0.1:$REGISTRY_PORT/busybox:latest" -- \
  sh -c 'mkdir -p /tmp/www; echo hello from $(hostname) > /tmp/www/index.html; echo serving; httpd -f -v -p 8080 -h /tmp/www'
kubectl rollout status deployment/hello -n web --timeout 120s

step "kubectl get deployments,replicasets,pods -o wide (each pod on a Fargate node of its own)"
kubectl get deployments,replicasets,pods -n web -o wide

step "kubectl scale deployment/hello --replicas 3; kubectl rollout status"
kubectl scale deployment/hello -n web --replicas 3
kubectl rollout status deployment/hello -n web --timeout 120s

step "kubectl set env deployment/hello GREETING=hi (a rolling update), then kubectl rollout history"
kubectl set env deployment/hello -n web GREETING=hi
kubectl rollout status deployment/hello -n web --timeout 120s
kubectl rollout history deployment/hello -n web

POD=$(kubectl get pods -n web -o jsonpath='{.items[0].metadata.name}')
step "kubectl exec $POD -- wget -qO- http://127.0.0.1:8080/ ; kubectl logs deployment/hello"
kubectl exec -n web "$POD" -- wget -qO- http://127.0.0.1:8080/
kubectl logs -n web deployment/hello --tail 5

step "kubectl top pods (from fargo's metrics sampler)"
kubectl top pods -n web || true

step "kubectl expose deployment/hello --port 80 --target-port 8080 (a ClusterIP; its EndpointSlice holds the ready pods)"
kubectl expose deployment hello -n web --port 80 --target-port 8080
for _ in $(seq 150); do
  [ "$(kubectl get endpointslices -n web -l kubernetes.io/service-name=hello \
      -o jsonpath='{range .items[*].endpoints[?(@.conditions.ready==true)]}x{end}')" = xxx ] && break
  sleep 0.2
done
kubectl get service,endpointslices -n web -o wide

step "from a pod: cluster DNS (its resolv.conf), then wget http://hello/ through the ClusterIP"
kubectl exec -n web "$POD" -- cat /etc/resolv.conf
for _ in 1 2 3; do kubectl exec -n web "$POD" -- wget -qO- http://hello/; done
kubectl exec -n web "$POD" -- wget -qO- http://hello.web.svc.cluster.local/
CIP=$(kubectl get service hello -n web -o jsonpath='{.spec.clusterIP}')
echo "from the host, http://$CIP/ says: $(curl -sS --max-time 5 "http://$CIP/")"

step "kubectl create ingress hello --class alb (the AWS Load Balancer Controller's way: an internal ALB, ip targets)"
kubectl create ingress hello -n web --class alb --rule '/*=hello:80' \
  --annotation alb.ingress.kubernetes.io/scheme=internal \
  --annotation alb.ingress.kubernetes.io/target-type=ip \
  --annotation alb.ingress.kubernetes.io/healthcheck-interval-seconds=5 \
  --annotation alb.ingress.kubernetes.io/healthcheck-timeout-seconds=2 \
  --annotation alb.ingress.kubernetes.io/healthy-threshold-count=2
for _ in $(seq 150); do
  HOST=$(kubectl get ingress hello -n web -o jsonpath='{.status.loadBalancer.ingress[0].hostname}')
  [ -n "$HOST" ] && break
  sleep 0.2
done
kubectl get ingress -n web
ALB=$(aws elbv2 describe-load-balancers --query "LoadBalancers[?DNSName=='$HOST'].LoadBalancerArn | [0]" --output text)
aws elbv2 describe-load-balancers --load-balancer-arns "$ALB" --output table \
  --query 'LoadBalancers[0].{name:LoadBalancerName,dns:DNSName,scheme:Scheme,state:State.Code}'
KTG=$(aws elbv2 describe-target-groups --load-balancer-arn "$ALB" --query 'TargetGroups[0].TargetGroupArn' --output text)
for _ in $(seq 200); do
  [ "$(aws elbv2 describe-target-health --target-group-arn "$KTG" \
    --query 'length(TargetHealthDescriptions[?TargetHealth.State==`healthy`])' --output text)" = 3 ] && break
  sleep 0.2
done
aws elbv2 describe-target-health --target-group-arn "$KTG" --output table \
  --query 'TargetHealthDescriptions[].{pod_ip:Target.Id,port:Target.Port,state:TargetHealth.State}'
ALB_IP=$(aws elbv2 describe-load-balancers --load-balancer-arns "$ALB" \
  --query 'LoadBalancers[0].AvailabilityZones[0].LoadBalancerAddresses[0].PrivateIPv4Address' --output text)
step "curl http://$ALB_IP/ (the Ingress's ALB, 4 times)"
for _ in 1 2 3 4; do curl -sS --max-time 5 "http://$ALB_IP/"; done

step "kubectl delete namespace web (its Deployment, pods, Service and Ingress go, and the ALB with them)"
kubectl delete namespace web --timeout 120s
aws elbv2 describe-load-balancers --query 'length(LoadBalancers)' --output text

step "aws ce get-cost-and-usage --granularity DAILY --group-by USAGE_TYPE (per second, one-minute minimum)"
aws ce get-cost-and-usage --time-period "Start=$(date -u +%F),End=$(date -u -d tomorrow +%F)" \
  --granularity DAILY --metrics UnblendedCost UsageQuantity --group-by Type=DIMENSION,Key=USAGE_TYPE \
  --query 'ResultsByTime[].Groups[].[Keys[0],Metrics.UsageQuantity.Amount,Metrics.UnblendedCost.Amount]' --output text
step "fargo cost --since 1h"
fargo cost --since 1h
