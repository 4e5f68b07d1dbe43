"""The shell scripts `safeship init` writes: the hooks its safeship.yaml names, and the
alerting check. Each runs as written; the hooks say what to replace with a real deploy."""

from __future__ import annotations

from safeship.scaffold.setup import Setup

_VARIABLES = """\
# safeship sets, for every hook:
#   SAFESHIP_VERSION        the version being rolled out     SAFESHIP_DEPLOYMENT_ID  its id
#   SAFESHIP_SERVICE        the service                      SAFESHIP_ENVIRONMENT    where to
#   SAFESHIP_CANARY_SLOT    the slot the new version goes into (no traffic yet: weight 0)
#   SAFESHIP_CANARY_ADDRESS where that slot is
#   SAFESHIP_STABLE_SLOT, SAFESHIP_STABLE_ADDRESS, SAFESHIP_STABLE_VERSION  what serves today
#   SAFESHIP_WEIGHT         the canary's weight when the hook runs
#   SAFESHIP_BIN            the safeship executable running the rollout
# A non-zero exit stops the rollout (rolled_back, reason hook_failed) with this script's
# last lines of output in the record: `safeship rollout explain ID`."""

PRE_ROLLOUT_PROCESS = f"""\
#!/usr/bin/env bash
# Pre-rollout hook (hooks.pre_rollout in safeship.yaml): start $SAFESHIP_VERSION in the
# canary slot and return once it listens. The rollout's smoke tests and metrics come next.
#
{_VARIABLES}
#
# As written it starts safeship's sample service (`safeship demo service`), so the whole
# pipeline works before your service does: replace the marked block with your own start
# (a systemd unit, a container published on $SAFESHIP_CANARY_ADDRESS, ...). The process
# id is kept in $SLOT_DIR/<slot>.pid (default .safeship/slots) for on-rollback.sh, its
# output in <slot>.log. SAMPLE_ERROR_RATE=0.2 deploys a faulty version to watch a rollback.
set -euo pipefail

: "${{SAFESHIP_CANARY_SLOT:?run this as a safeship hook: SAFESHIP_CANARY_SLOT is not set}}"
: "${{SAFESHIP_CANARY_ADDRESS:?the router knows no address for slot $SAFESHIP_CANARY_SLOT}}"
dir="${{SLOT_DIR:-.safeship/slots}}"
mkdir -p "$dir"
pidfile="$dir/$SAFESHIP_CANARY_SLOT.pid"
log="$dir/$SAFESHIP_CANARY_SLOT.log"

host="${{SAFESHIP_CANARY_ADDRESS%:*}}"
port="${{SAFESHIP_CANARY_ADDRESS##*:}}"
listening() {{ (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }}

# Whatever ran in this slot before (the version before last, or a rolled-back canary).
"$(dirname "$0")/on-rollback.sh"
if listening; then
  echo "something still listens on $SAFESHIP_CANARY_ADDRESS that $pidfile does not name:" \
    "stop it (the first stable version started by hand?) and record new ones there" >&2
  exit 1
fi

# --- REPLACE with your deployment: run $SAFESHIP_VERSION on $SAFESHIP_CANARY_ADDRESS -------
safeship="${{SAFESHIP:-${{SAFESHIP_BIN:-safeship}}}}"
command -v "$safeship" >/dev/null 2>&1 || {{
  echo "safeship is not on PATH: set SAFESHIP=/path/to/safeship" >&2
  exit 1
}}
nohup "$safeship" demo service \\
  --listen "$SAFESHIP_CANARY_ADDRESS" \\
  --service "$SAFESHIP_SERVICE" \\
  --environment "$SAFESHIP_ENVIRONMENT" \\
  --version "$SAFESHIP_VERSION" \\
  --track canary \\
  --error-rate "${{SAMPLE_ERROR_RATE:-0}}" \\
  </dev/null >"$log" 2>&1 &
echo $! >"$pidfile"
# --- end of REPLACE ----------------------------------------------------------------------

# Ready when the address accepts connections and the process still runs (at most 30 s);
# a process that died says why.
for _ in $(seq 300); do
  if listening && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "$SAFESHIP_VERSION listening in slot $SAFESHIP_CANARY_SLOT at $SAFESHIP_CANARY_ADDRESS"
    exit 0
  fi
  if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "$SAFESHIP_VERSION exited; the end of its log ($log):" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
  sleep 0.1
done
echo "$SAFESHIP_VERSION did not listen at $SAFESHIP_CANARY_ADDRESS within 30 s; see $log" >&2
exit 1
"""

ON_ROLLBACK_PROCESS = f"""\
#!/usr/bin/env bash
# On-rollback hook (hooks.on_rollback in safeship.yaml), and the first step of
# pre-rollout.sh: stop the process in the canary slot. After a rollback the slot takes no
# traffic; stopping it frees the address for the next version.
#
{_VARIABLES}
#
# It stops the process whose id pre-rollout.sh left in $SLOT_DIR/<slot>.pid (SIGTERM,
# then SIGKILL after 5 s); nothing recorded is nothing to stop. Replace it along with
# pre-rollout.sh's start (systemctl stop, docker rm -f, ...).
set -euo pipefail

: "${{SAFESHIP_CANARY_SLOT:?run this as a safeship hook: SAFESHIP_CANARY_SLOT is not set}}"
pidfile="${{SLOT_DIR:-.safeship/slots}}/$SAFESHIP_CANARY_SLOT.pid"
[[ -f $pidfile ]] || exit 0
pid="$(cat "$pidfile")"
if kill "$pid" 2>/dev/null; then
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
fi
rm -f "$pidfile"
"""


def pre_rollout_kubernetes(setup: Setup) -> str:
    return f"""\
#!/usr/bin/env bash
# Pre-rollout hook (hooks.pre_rollout in safeship.yaml): the new version's image into the
# canary slot's Deployment, then wait until its pods are ready. The router moves traffic
# afterwards; a rollback sends the slot no traffic, so nothing needs stopping.
#
{_VARIABLES}
#
# The slots of safeship.yaml are Services of the same names as their Deployments
# ({setup.service}-blue, {setup.service}-green). NAMESPACE (default), IMAGE
# (registry.example.com/{setup.service}), CONTAINER ({setup.service}) and TIMEOUT (300s)
# name what to change; the tag is $SAFESHIP_VERSION. Needs kubectl with access to them.
set -euo pipefail

: "${{SAFESHIP_CANARY_SLOT:?run this as a safeship hook: SAFESHIP_CANARY_SLOT is not set}}"
: "${{SAFESHIP_VERSION:?run this as a safeship hook: SAFESHIP_VERSION is not set}}"
namespace="${{NAMESPACE:-default}}"
deployment="deployment/$SAFESHIP_CANARY_SLOT"
image="${{IMAGE:-registry.example.com/{setup.service}}}:$SAFESHIP_VERSION"

kubectl --namespace "$namespace" set image "$deployment" "${{CONTAINER:-{setup.service}}}=$image"
kubectl --namespace "$namespace" rollout status "$deployment" --timeout "${{TIMEOUT:-300s}}"
"""


VALIDATE_ALERTS = """\
#!/usr/bin/env bash
# Validate the alerting: promtool's checks and unit tests, safeship's lint, the generated
# files up to date with safeship.yaml, Alertmanager's config and every routing case, and
# the list of alerts configured. Run from anywhere; exits 1 on any problem.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null 2>&1; then
  echo "promtool is not installed: apt-get install prometheus (its Debian package)" >&2
  exit 1
fi
safeship=${SAFESHIP:-safeship}
if ! command -v "$safeship" >/dev/null 2>&1; then
  if [ -x .venv/bin/safeship ]; then safeship=.venv/bin/safeship; else
    echo "safeship is not installed: run 'make install' (or pip install .)" >&2
    exit 1
  fi
fi

echo "== promtool check rules --lint=all"
promtool check rules --lint=all .prometheus/alerts.yml
echo "== promtool test rules"
promtool test rules .prometheus/tests/*.yml
echo "== safeship rules lint"
"$safeship" rules lint .prometheus/alerts.yml
echo "== generated files up to date"
"$safeship" rules generate --check
"$safeship" alertmanager generate --check
echo "== alertmanager routing (amtool)"
"$safeship" alertmanager test
echo "== alerts configured"
grep -E '^ *- alert: ' .prometheus/alerts.yml | sed -E 's/^ *- alert: /  /'
"""
