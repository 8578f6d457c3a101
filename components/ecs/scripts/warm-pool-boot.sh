#!/bin/bash
# Every boot of a warm-pool GPU host (cloud-init per-boot; the first boot calls it from user
# data). Entering the pool (Warmed:*): pull the images the tasks run, by their exact digests,
# onto the root volume. Then, entering or leaving the pool, complete the EC2_INSTANCE_LAUNCHING
# lifecycle hook so Auto Scaling proceeds without waiting out its heartbeat.
# /etc/modelfleet/warm-pool.env (written by the user data) sets REGION, HOOK and IMAGES;
# MODELFLEET_WARM_POOL_ENV names another file (the tests run this script against fakes).
set -euo pipefail

# shellcheck source=/dev/null
. "${MODELFLEET_WARM_POOL_ENV:-/etc/modelfleet/warm-pool.env}"

IMDS=${MODELFLEET_IMDS:-http://169.254.169.254}

log() { echo "modelfleet-warm-pool: $*" | systemd-cat -t modelfleet-warm-pool -p info || true; }

imds() {
  local token
  token=$(curl -sf -X PUT "${IMDS}/latest/api/token" \
    -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')
  curl -sf -H "X-aws-ec2-metadata-token: ${token}" \
    "${IMDS}/latest/meta-data/$1"
}

# The AWS CLI pulls the registry password and completes the hook; install it where the AMI
# does not carry it.
if ! command -v aws >/dev/null 2>&1; then
  dnf install -y -q awscli-2
fi

instance=$(imds instance-id)
# The target steady state: Warmed:Stopped entering the pool, InService leaving it (or launched
# directly), https://docs.aws.amazon.com/autoscaling/ec2/userguide/retrieving-target-lifecycle-state-through-imds.html.
state=$(imds autoscaling/target-lifecycle-state || echo unknown)
log "instance ${instance}, target lifecycle state ${state}"

if [[ $state == Warmed:* ]]; then
  systemctl start docker
  # One login per registry host (the stack's ECR: engine cache, sidecar, fetcher).
  declare -A logged_in=()
  for image in ${IMAGES}; do
    host=${image%%/*}
    if [[ $host == *.dkr.ecr.*.amazonaws.com && -z ${logged_in[$host]:-} ]]; then
      aws ecr get-login-password --region "$REGION" |
        docker login --username AWS --password-stdin "$host" >/dev/null
      logged_in[$host]=1
    fi
    if docker pull --quiet "$image" >/dev/null; then
      log "pulled ${image}"
    else
      # The instance still serves: its first task pulls what is missing.
      log "could not pull ${image}; the first task on this host pulls it"
    fi
  done
fi

group=$(aws autoscaling describe-auto-scaling-instances --region "$REGION" \
  --instance-ids "$instance" --query 'AutoScalingInstances[0].AutoScalingGroupName' \
  --output text)
aws autoscaling complete-lifecycle-action --region "$REGION" \
  --auto-scaling-group-name "$group" --lifecycle-hook-name "$HOOK" \
  --instance-id "$instance" --lifecycle-action-result CONTINUE
log "completed ${HOOK} for ${instance} in ${group}"
