"""The GitHub Actions deploy workflow `safeship init` writes: one job per environment, in
order, each a rollout through safeship's action that rolls itself back."""

from __future__ import annotations

from safeship import __version__
from safeship.scaffold.setup import Setup

WORKFLOW_FILE = ".github/workflows/deploy.yml"
ACTION = f"safeship/safeship@v{__version__}"
CHECKOUT = "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1"
CACHE_RESTORE = "actions/cache/restore@27d5ce7f107fe9357f9df03efb73ab90386fccae # v5.0.5"
CACHE_SAVE = "actions/cache/save@27d5ce7f107fe9357f9df03efb73ab90386fccae # v5.0.5"


def _job(setup: Setup, env: str, previous: str | None) -> str:
    runner = "ubuntu-24.04" if setup.kubernetes else "self-hosted"
    key = f"safeship-history-{env}-${{{{ github.run_id }}}}-${{{{ github.run_attempt }}}}"
    needs = f"\n    needs: deploy-{previous}" if previous else ""
    text = f"""
  deploy-{env}:
    name: Deploy to {env}{needs}
    runs-on: {runner}
    timeout-minutes: 60
    environment: {env}
    # One rollout per environment at a time, never cancelled: a cancelled rollout would
    # leave the canary at its weight until someone resumes or aborts it.
    concurrency:
      group: safeship-deploy-{env}
      cancel-in-progress: false
    steps:
      - uses: {CHECKOUT}
        with:
          persist-credentials: false
      - name: Restore the rollout history
        if: env.SAFESHIP_STORE_URL == ''
        uses: {CACHE_RESTORE}
        with:
          path: .safeship/history.db
          key: {key}
          restore-keys: safeship-history-{env}-
      - name: Roll out to {env}
        id: rollout
        uses: {ACTION}
        with:
          command: rollout
          environment: {env}
          store-url: ${{{{ env.SAFESHIP_STORE_URL }}}}
"""
    if setup.prometheus:
        text += f"""      - name: Push deployment metrics
        if: always()
        uses: {ACTION}
        with:
          command: metrics push
          args: --env {env}
          store-url: ${{{{ env.SAFESHIP_STORE_URL }}}}
"""
    text += f"""      - name: Save the rollout history
        if: always() && env.SAFESHIP_STORE_URL == ''
        uses: {CACHE_SAVE}
        with:
          path: .safeship/history.db
          key: {key}
"""
    return text


def render(setup: Setup) -> str:
    where = (
        "a runner with access to the cluster"
        if setup.kubernetes
        else "a self-hosted runner that reaches the router and the slots"
    )
    header = f"""\
# Deploy {setup.service}: {", then ".join(setup.environments)}, each a progressive canary that
# rolls itself back (written by `safeship init`). Each job runs on {where}.
# Pin the safeship action to its release's commit sha (zizmor: unpinned-uses).
# Settings it reads: secret SAFESHIP_STORE_URL (PostgreSQL; without it the SQLite history
# is carried between runs in the Actions cache){
        ", variables PROMETHEUS_URL and PUSHGATEWAY_URL" if setup.prometheus else ""
    }{", GRAFANA_URL and secret GRAFANA_API_KEY" if setup.grafana else ""}.
# Give the last environment required reviewers in the repository's settings.
name: deploy

on:
  push:
    branches: [main]
  workflow_dispatch:

permissions:
  contents: read

env:
  SAFESHIP_STORE_URL: ${{{{ secrets.SAFESHIP_STORE_URL }}}}
"""
    if setup.prometheus:
        header += """  PROMETHEUS_URL: ${{ vars.PROMETHEUS_URL }}
  PUSHGATEWAY_URL: ${{ vars.PUSHGATEWAY_URL }}
"""
    if setup.grafana:
        header += """  GRAFANA_URL: ${{ vars.GRAFANA_URL }}
  GRAFANA_API_KEY: ${{ secrets.GRAFANA_API_KEY }}
"""
    jobs = "\njobs:"
    previous = None
    for env in setup.environments:
        jobs += _job(setup, env, previous)
        previous = env
    return header + jobs
