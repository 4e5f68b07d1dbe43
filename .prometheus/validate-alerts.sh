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
