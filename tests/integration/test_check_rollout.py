"""`safeship check` finds what would break a rollout before one starts.

Against a real local proxy in front of two real sample services: a router
whose canary slot already has traffic, hook commands that cannot start, and a
scrape `match` that selects nothing at the /metrics of the router's slots.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from safeship.cli.main import main
from safeship.demo.service import start_service
from safeship.routers.local import LocalRouter, start_local_proxy

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Stack:
    admin_url: str
    stable: str  # host:port of the stable slot, `blue`
    canary: str  # host:port of the canary slot, `green`


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """The proxy and both sample services, shared: a test that moves a weight puts it back."""
    with (
        start_service("127.0.0.1:0", "checkout", "production", "v1", "stable") as stable,
        start_service("127.0.0.1:0", "checkout", "production", "v2", "canary") as canary,
        start_local_proxy("127.0.0.1:0", "127.0.0.1:0", stable.url, canary.url) as proxy,
    ):
        yield Stack(
            proxy.admin_url, stable.url.removeprefix("http://"), canary.url.removeprefix("http://")
        )


@pytest.fixture(autouse=True)
def _no_outside_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("PROMETHEUS_URL", "GITHUB_ACTIONS", "SAFESHIP_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def config(stack: Stack, extra: str = "", admin_url: str | None = None) -> str:
    return (
        "service: checkout\n"
        "environments:\n  production: {}\n"
        "router:\n  type: local\n"
        f"  admin_url: {admin_url or stack.admin_url}\n"
        f"  slots: {{blue: '{stack.stable}', green: '{stack.canary}'}}\n"
        "provider:\n  type: scrape\n  match: {service: checkout}\n"
        f"{extra}"
    )


def check(text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`safeship check` on `text` as ./safeship.yaml: its exit code and what it printed."""
    Path("safeship.yaml").write_text(text)
    code = main(["check"])
    printed = capsys.readouterr()
    return code, printed.out + printed.err


def test_a_router_ready_for_a_rollout_is_reported_with_its_slots(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = check(config(stack), capsys)
    assert code == 0, out
    assert (
        f"  ok    production router: canary slot green ({stack.canary}) at weight 0, "
        f"stable slot blue ({stack.stable})"
    ) in out


def test_a_canary_slot_with_traffic_fails_as_the_rollout_would_refuse_it(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    router = LocalRouter(stack.admin_url)
    router.set_weight(10)
    try:
        code, out = check(config(stack), capsys)
    finally:
        router.set_weight(0)
        router.close()
    assert code == 1, out
    assert (
        f"  FAIL  production router: the canary slot green ({stack.canary}) has weight 10, "
        "not 0: it serves traffic already, so a new version cannot be deployed into it. "
        "Finish the rollout that left it so (`safeship rollout list`), or set its weight to 0"
    ) in out


def test_an_unreachable_router_warns_with_what_the_rollout_would_say(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = check(config(stack, admin_url="http://127.0.0.1:9"), capsys)
    assert code == 0, out
    assert (
        "  warn  production router: router not ready before the rollout: local router "
        "http://127.0.0.1:9: GET /healthz failed"
    ) in out
    assert "a rollout would stop there (exit 3)" in out


def test_hooks_and_smoke_commands_that_cannot_start_fail_with_where_and_what_to_do(
    stack: Stack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Each fails as the rollout would meet it: from the working directory, or on PATH."""
    Path("stop.sh").write_text("#!/bin/sh\n")  # there, but not executable
    Path("deploy.sh").write_text("#!/bin/sh\n")
    Path("deploy.sh").chmod(0o755)
    hooks = (
        "environments:\n  staging: {}\n  production:\n"
        "    hooks:\n      post_promotion: [{command: [./notify.sh]}]\n"
        "hooks:\n"
        "  pre_rollout:\n"
        "    - command: [./deploy.sh, --slot, green]\n"
        "    - command: [./examples/hooks/deploy.sh]\n"
        "  on_rollback: [{command: ./stop.sh --now, shell: true}]\n"
        "smoke_tests:\n"
        "  - {name: tool, command: [no-such-tool-for-check, ping]}\n"
        "  - {name: shell, command: 'test -n \"$SAFESHIP_VERSION\"', shell: true}\n"
        "  - {name: 'true', command: ['true']}\n"
    )
    text = config(stack).replace("environments:\n  production: {}\n", hooks)
    code, out = check(text, capsys)
    assert code == 1, out
    assert (
        "  ok    staging, production hooks.pre_rollout[0].command: ./deploy.sh is executable" in out
    )
    assert (
        "  FAIL  staging, production hooks.pre_rollout[1].command: ./examples/hooks/deploy.sh "
        f"does not exist in {tmp_path} (commands run from the working directory): fix the path, "
        "or run safeship from the directory it is relative to"
    ) in out
    assert (
        "  FAIL  staging, production hooks.on_rollback[0].command: ./stop.sh is not "
        "executable: chmod +x ./stop.sh"
    ) in out
    assert (
        "  FAIL  production environments.production.hooks.post_promotion[0].command: "
        f"./notify.sh does not exist in {tmp_path}"
    ) in out
    assert (
        "  FAIL  staging, production smoke_tests[0].command: no-such-tool-for-check is not on "
        "PATH: install it, or give its path"
    ) in out
    assert "smoke_tests[1]" not in out  # a shell's first word may be a builtin: not judged
    assert "  ok    staging, production smoke_tests[2].command: true is /" in out


def test_a_scrape_match_that_selects_nothing_fails_listing_the_values_that_exist(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """A typo here passed every check, then paused the rollout after a whole hold."""
    text = config(stack).replace("match: {service: checkout}", "match: {service: checkot}")
    code, out = check(text, capsys)
    assert code == 1, out
    assert (
        f"  FAIL  production baseline scrape: http://{stack.stable}/metrics (slot blue): "
        'http_requests_total: service="checkot" matches nothing; `service` values are: '
        "checkout. Fix provider.match: a rollout would count no requests here"
    ) in out
    # The canary slot may hold something else until the pre_rollout hook deploys into it.
    assert (
        f"  warn  production canary scrape: http://{stack.canary}/metrics (slot green): "
        'http_requests_total: service="checkot" matches nothing'
    ) in out


def test_a_scrape_match_is_diagnosed_label_by_label(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    text = config(stack).replace(
        "match: {service: checkout}", "match: {service: checkout, environment: prod}"
    )
    code, out = check(text, capsys)
    assert code == 1, out
    assert (
        'environment="prod" matches nothing; `environment` values with the other matchers '
        "are: production"
    ) in out
    text = config(stack).replace("match: {service: checkout}", "match: {team: payments}")
    code, out = check(text, capsys)
    assert code == 1, out
    assert (
        "no series of http_requests_total has a label `team` (labels: environment, service, "
        "status, track, version)"
    ) in out


def test_a_scrape_match_that_selects_series_is_ok_on_both_slots(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = check(config(stack), capsys)
    assert code == 0, out
    assert (
        f"  ok    production baseline scrape: http://{stack.stable}/metrics (slot blue): "
        "provider.match selects 2 of 2 request series"
    ) in out
    assert f"  ok    production canary scrape: http://{stack.canary}/metrics (slot green)" in out


def test_scrape_urls_over_the_slots_are_not_checked_without_the_router(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = check(config(stack, admin_url="http://127.0.0.1:9"), capsys)
    assert code == 0, out
    assert (
        "  warn  production scrape: not checked: provider.canary_url and provider.baseline_url "
        "are templates over the router's slots, which the router did not tell (see the router "
        "above)"
    ) in out


def test_an_unreachable_baseline_fails_and_an_unreachable_canary_warns(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before a rollout the canary slot may be empty; the baseline is what it measures."""
    urls = "  canary_url: http://127.0.0.1:9/metrics\n  baseline_url: http://127.0.0.1:9/metrics\n"
    text = config(stack).replace(
        "provider:\n  type: scrape\n", f"provider:\n  type: scrape\n{urls}"
    )
    code, out = check(text, capsys)
    assert code == 1, out
    assert (
        "  FAIL  production baseline scrape: cannot scrape baseline http://127.0.0.1:9/metrics:"
    ) in out
    assert "the rollout measures the stable version there" in out
    assert (
        "  warn  production canary scrape: cannot scrape canary http://127.0.0.1:9/metrics:" in out
    )
    assert "(expected if the canary slot is empty or holds another service until" in out
