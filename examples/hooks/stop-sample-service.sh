#!/usr/bin/env bash
# Stop the sample service process in the canary slot (an on_rollback hook, and the first
# step of deploy-sample-service.sh): the slot takes no traffic after a rollback.
#
# Reads the pid that deploy-sample-service.sh left in $SAFESHIP_SLOT_DIR/<slot>.pid;
# nothing there is nothing to stop.
set -euo pipefail

: "${SAFESHIP_CANARY_SLOT:?run this as a safeship hook: SAFESHIP_CANARY_SLOT is not set}"
pidfile="${SAFESHIP_SLOT_DIR:-.safeship/slots}/$SAFESHIP_CANARY_SLOT.pid"
[[ -f $pidfile ]] || exit 0
pid="$(cat "$pidfile")"
if kill "$pid" 2>/dev/null; then
  # SIGTERM lets it finish its requests; it has 5 s before SIGKILL.
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
fi
rm -f "$pidfile"
