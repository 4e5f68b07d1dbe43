#!/usr/bin/env bash
# Install the Debian packages the integration tests start for real (Prometheus,
# promtool, Pushgateway, Alertmanager's amtool, HAProxy, nginx, PostgreSQL 15 and
# Chromium for the report's rendering test), when this machine
# has apt and we are root. Elsewhere it only says what is missing: the tests then
# skip, or fail under SAFESHIP_REQUIRE_INTEGRATION=1.
set -euo pipefail

# binary=package
wanted=(
  "prometheus=prometheus"
  "promtool=prometheus"
  "prometheus-pushgateway=prometheus-pushgateway"
  "amtool=prometheus-alertmanager"
  "prometheus-alertmanager=prometheus-alertmanager"
  "haproxy=haproxy"
  "nginx=nginx-light"
  "/usr/lib/postgresql/15/bin/initdb=postgresql-15"
  "chromium=chromium"
)

missing=()
for pair in "${wanted[@]}"; do
  binary=${pair%%=*}
  package=${pair#*=}
  # haproxy and nginx live in /usr/sbin, which not every user's PATH holds.
  command -v "$binary" >/dev/null 2>&1 || [ -x "/usr/sbin/$binary" ] || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "not installed (integration tests that need them will skip): ${missing[*]}" >&2
  echo "install with: sudo apt-get install ${missing[*]}" >&2
fi
