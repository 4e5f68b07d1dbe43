#!/usr/bin/env bash
# Pre-rollout hook: run $SAFESHIP_VERSION of the demo's sample service in the canary slot.
#
# safeship tells a hook which slot the canary goes into and where
# (SAFESHIP_CANARY_SLOT, SAFESHIP_CANARY_ADDRESS); that slot carries no traffic
# yet (the rollout checked its weight is 0), so whatever ran there before (the
# version before last, or a rolled-back canary) is stopped first. The new
# process is left running, its pid in $SAFESHIP_SLOT_DIR/<slot>.pid (default
# .safeship/slots) and its output in <slot>.log. The hook returns once the
# process answers, so the smoke tests and the metrics check that follow see it.
#
# SAMPLE_ERROR_RATE (0 to 1) deploys a faulty version, to watch a rollback.
# Replace the start command with your own deployment (a systemd unit, a
# container on that address, ...): the contract is the address and the version.
set -euo pipefail

: "${SAFESHIP_CANARY_SLOT:?run this as a safeship hook: SAFESHIP_CANARY_SLOT is not set}"
: "${SAFESHIP_CANARY_ADDRESS:?the router knows no address for slot $SAFESHIP_CANARY_SLOT}"
python="${PYTHON:-python3}"
dir="${SAFESHIP_SLOT_DIR:-.safeship/slots}"
mkdir -p "$dir"
pidfile="$dir/$SAFESHIP_CANARY_SLOT.pid"

"$(dirname "$0")/stop-sample-service.sh"

nohup "$python" -m safeship.demo.service \
  --listen "$SAFESHIP_CANARY_ADDRESS" \
  --service "$SAFESHIP_SERVICE" \
  --environment "$SAFESHIP_ENVIRONMENT" \
  --version "$SAFESHIP_VERSION" \
  --track canary \
  --error-rate "${SAMPLE_ERROR_RATE:-0}" \
  </dev/null >"$dir/$SAFESHIP_CANARY_SLOT.log" 2>&1 &
echo $! >"$pidfile"

# Ready when /healthz answers (at most 10 s); a process that died says why in its log.
for _ in $(seq 100); do
  if "$python" -c 'import sys, urllib.request; urllib.request.urlopen(f"http://{sys.argv[1]}/healthz", timeout=1)' \
    "$SAFESHIP_CANARY_ADDRESS" 2>/dev/null; then
    echo "$SAFESHIP_VERSION serving in slot $SAFESHIP_CANARY_SLOT at $SAFESHIP_CANARY_ADDRESS"
    exit 0
  fi
  if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "the sample service exited; its log:" >&2
    tail -n 20 "$dir/$SAFESHIP_CANARY_SLOT.log" >&2
    exit 1
  fi
  sleep 0.1
done
echo "$SAFESHIP_VERSION did not answer at $SAFESHIP_CANARY_ADDRESS within 10 s" >&2
exit 1
