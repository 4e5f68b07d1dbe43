"""The commented safeship.yaml `safeship init` writes: the chosen setup, every default shown.

Written as text, not dumped from the models, so each setting can say what it does
and how to override it; a test loads every combination through the real loader.
"""

from __future__ import annotations

import json

import yaml

from safeship.config import DEFAULT_METRICS_PORT, thresholds_for
from safeship.rules.definitions import number
from safeship.scaffold.setup import Setup

HOOKS_DIR = "deploy"
PRE_ROLLOUT = f"./{HOOKS_DIR}/pre-rollout.sh"
ON_ROLLBACK = f"./{HOOKS_DIR}/on-rollback.sh"
ROUTER_ADMIN = "http://127.0.0.1:8081"


def scalar(text: str) -> str:
    """`text` as a YAML string: quoted when YAML would read it as something else
    (`yes`, `no`, `null`, `1.0`, `0x10`), so that `--env no` stays the environment "no"."""
    plain = yaml.safe_load(text) if text else None
    return text if plain == text else json.dumps(text)


def _header(setup: Setup) -> str:
    return f"""\
# safeship.yaml for {setup.service}: written by `safeship init`, yours to edit.
# Check it: safeship config validate; everything at once: safeship check.
# Editors: `safeship config schema > safeship.schema.json` and point yaml-language-server
# at it. `${{VAR}}` and `${{VAR:-default}}` come from the environment: keep secrets there.
version: 1
service: {scalar(setup.service)}
"""


def _environments(setup: Setup) -> str:
    lines = [
        "",
        "environments:                       # `safeship rollout --env NAME`; each may override",
    ]
    lines += [f"  {scalar(env)}: {{}}" for env in setup.environments]
    return "\n".join(lines) + "\n"


_CANARY = """
canary:
  steps: [10, 50, 100]              # percent of traffic; env CANARY_STEPS="10,50,100"
  hold: 300                         # seconds per step (or 5m); env CANARY_WAIT_TIME
  warmup: 10                        # after each weight change, kept out of the analysis
  interval: 10                      # analyse every 10 s during a hold
  min_requests: 100                 # per version per window, before any verdict
  # The checks default to an anytime-valid error-rate test and a latency test against
  # the stable version: `safeship config show` prints them with every other default.
"""


def _router(setup: Setup) -> str:
    blue, green = setup.slot_addresses
    if setup.router == "local":
        return f"""
router:
  type: local                       # safeship's own proxy: run it apart from rollouts,
  # safeship router serve --listen 127.0.0.1:8080 --admin 127.0.0.1:8081 \\
  #   --stable http://{blue} --canary http://{green} --state-file .safeship/router.json
  admin_url: ${{SAFESHIP_ROUTER_ADMIN:-{ROUTER_ADMIN}}}
  slots:                            # the proxy's two upstreams; promotion swaps which is stable
    blue: {blue}
    green: {green}
"""
    if setup.router == "nginx":
        return f"""
router:
  type: nginx                       # weights of two servers of one upstream, in a file of its own:
  # nginx.conf includes include_file inside http {{}} and proxies to the upstream; create the
  # file before nginx first starts (see the nginx section of safeship's README).
  upstream: {scalar(setup.service.replace(".", "_"))}
  include_file: /etc/nginx/safeship/{setup.service}.conf
  slots:                            # the first is stable at first
    blue: {blue}
    green: {green}
  status_listen: 127.0.0.1:8089     # loopback only: it tells anyone the weights
  state_file: .safeship/nginx-router.json
"""
    if setup.router == "haproxy":
        return f"""
router:
  type: haproxy                     # weights of two servers of one backend, by the Runtime API
  socket: /run/haproxy/admin.sock   # `stats socket ... level admin` in haproxy.cfg (or host:port)
  backend: {scalar(setup.service.replace(".", "_"))}
  slots: [blue, green]              # the backend's two servers
  state_file: .safeship/haproxy-router.json
"""
    return f"""
router:
  type: kubernetes
  # Gateway API: the weights of two backendRefs (Services) of rule 0 of an HTTPRoute.
  # Also: mode: istio (a VirtualService), smi (a TrafficSplit), replicas (pod counts).
  mode: gateway-api
  namespace: default
  name: {scalar(setup.service)}                      # the HTTPRoute
  rule: 0
  slots: [{setup.service}-blue, {setup.service}-green]
  # Unset: in-cluster service account inside a pod, else $KUBECONFIG / ~/.kube/config.
"""


def _provider(setup: Setup) -> str:
    if setup.provider == "scrape":
        return f"""
provider:
  type: scrape                      # reads each version's /metrics directly: no Prometheus needed
  canary_url: "http://{{{{ canary_address }}}}/metrics"
  baseline_url: "http://{{{{ stable_address }}}}/metrics"
  match:                            # the series of this service (`safeship check` lists others)
    service: {scalar(setup.service)}
  error_status: "5.."
"""
    return """
provider:
  type: prometheus                  # canary and baseline told apart by their `version` label
  labels:                           # the series of this service and environment
    service: "{{ service }}"
    environment: "{{ environment }}"
"""


def _smoke_tests(setup: Setup) -> str:
    if not setup.runs_processes:
        return ""
    return """
smoke_tests:                        # against the canary, before any traffic moves
  - name: health
    http:
      url: "http://{{ canary_address }}/healthz"
      expect_status: 200
"""


def _hooks(setup: Setup) -> str:
    text = f"""
hooks:                              # each gets SAFESHIP_* variables: see the scripts
  pre_rollout:                      # put the new version into the canary slot
    - command: ["{PRE_ROLLOUT}"]
      timeout: {120 if setup.runs_processes else 600}
"""
    if setup.runs_processes:
        text += f"""  on_rollback:                      # stop what failed: its slot gets no traffic
    - command: ["{ON_ROLLBACK}"]
"""
    return text


def _monitoring(setup: Setup) -> str:
    text = f"""
store:                              # the rollout history (every decision; DORA figures)
  url: ${{SAFESHIP_STORE_URL:-sqlite:///.safeship/history.db}}

metrics:                            # `safeship metrics serve`, for Prometheus to scrape
  address: 127.0.0.1
  port: {DEFAULT_METRICS_PORT}
"""
    if setup.provider == "prometheus":
        text += """
prometheus:                         # the canary analysis queries it
  url: ${PROMETHEUS_URL:-http://127.0.0.1:9090}
"""
    elif setup.prometheus:
        text += """
prometheus:                         # for `safeship check` only: the analysis scrapes
  url: ${PROMETHEUS_URL:-}          # empty: not checked
"""
    if setup.prometheus:
        text += """

pushgateway:                        # where CI runs push the deployment metrics
  url: ${PUSHGATEWAY_URL:-}         # empty: nothing pushed
"""
    if setup.grafana:
        text += """
grafana:                            # `safeship dashboards push`, and annotations per rollout
  url: ${GRAFANA_URL:-}             # empty: dashboards are not pushed (a warning says so)
  # The service-account token comes from GRAFANA_API_KEY; never write it here.
  dashboards: ["dashboards/*.json"]
"""
    return text


def _alerting(setup: Setup) -> str:
    if not setup.prometheus:
        return ""
    lines = [
        "",
        "alerting:                           # rules generate; alertmanager generate",
        "  runbook_url: https://github.com/safeship/safeship/blob/main/docs/runbooks.md#{alertname}",
        "  environments:                     # the service alerts' limits per environment",
    ]
    for env in setup.environments:
        limits = thresholds_for(env)
        lines.append(
            f"    {scalar(env)}: {{error_rate: {number(limits.error_rate)}, "
            f"latency_p95_seconds: {number(limits.latency_p95_seconds)}, for: {limits.for_}}}"
        )
    lines += [
        "  # slos: availability 99.9% and latency 99% under 0.5 s by default (burn-rate alerts)",
        "  alertmanager:                     # routing by severity; secrets only as file paths",
        "    pager: {type: pagerduty, routing_key_file: /etc/alertmanager/pagerduty-routing-key}",
        "    chat: {type: slack, api_url_file: /etc/alertmanager/slack-api-url, "
        "channel: '#deployments'}",
        "    ticket: {type: webhook, url: 'http://127.0.0.1:9095/alerts'}",
    ]
    return "\n".join(lines) + "\n"


def render(setup: Setup) -> str:
    return "".join(
        (
            _header(setup),
            _environments(setup),
            _CANARY,
            _router(setup),
            _provider(setup),
            _smoke_tests(setup),
            _hooks(setup),
            _monitoring(setup),
            _alerting(setup),
        )
    )
