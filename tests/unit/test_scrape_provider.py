"""ScrapeProvider against fake `/metrics` endpoints whose counters move between scrapes."""

from __future__ import annotations

import math
from collections.abc import Iterator

import httpx
import pytest

from safeship.errors import ConfigError, ProviderError
from safeship.providers.interface import Window
from safeship.providers.scrape import ScrapeProvider

CANARY = "http://127.0.0.1:9002/metrics"
BASELINE = "http://127.0.0.1:9001/metrics"
LE = ("0.05", "0.1", "0.25", "+Inf")


def exposition(
    ok: float,
    errors: float,
    buckets: tuple[float, ...],
    service: str = "checkout",
    status_error: str = "500",
    metadata: bool = True,
) -> str:
    """Text in the demo service's format for one service; `buckets` are cumulative per LE.

    Without `metadata` (no HELP/TYPE lines) it can follow another service's text.
    """
    labels = f'environment="prod",service="{service}",track="stable",version="1"'
    lines = [
        "# HELP http_requests_total Requests.",
        "# TYPE http_requests_total counter",
        f'http_requests_total{{{labels},status="200"}} {ok}',
        f'http_requests_total{{{labels},status="{status_error}"}} {errors}',
        "# HELP http_request_duration_seconds Latency.",
        "# TYPE http_request_duration_seconds histogram",
    ]
    if not metadata:
        lines = [line for line in lines if not line.startswith("#")]
    lines += [
        f'http_request_duration_seconds_bucket{{{labels},le="{le}"}} {count}'
        for le, count in zip(LE, buckets, strict=True)
    ]
    lines += [
        f"http_request_duration_seconds_count{{{labels}}} {buckets[-1]}",
        f"http_request_duration_seconds_sum{{{labels}}} 1.5",
    ]
    return "\n".join(lines) + "\n"


class FakeTargets:
    """What each URL serves right now; a value that is an exception is raised instead."""

    def __init__(self) -> None:
        self.bodies: dict[str, str | httpx.Response | Exception] = {
            CANARY: exposition(0, 0, (0, 0, 0, 0)),
            BASELINE: exposition(0, 0, (0, 0, 0, 0)),
        }
        self.requested: list[str] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url.copy_with(userinfo=b""))
        self.requested.append(url)
        body = self.bodies[url]
        if isinstance(body, Exception):
            raise body
        if isinstance(body, httpx.Response):
            return body
        return httpx.Response(200, text=body)


@pytest.fixture
def targets() -> FakeTargets:
    return FakeTargets()


@pytest.fixture
def provider(targets: FakeTargets) -> Iterator[ScrapeProvider]:
    p = ScrapeProvider(CANARY, BASELINE, transport=httpx.MockTransport(targets.handle))
    yield p
    p.close()


def test_deltas_of_requests_errors_and_buckets(
    targets: FakeTargets, provider: ScrapeProvider
) -> None:
    targets.bodies[CANARY] = exposition(100, 10, (50, 90, 105, 110))
    targets.bodies[BASELINE] = exposition(200, 2, (150, 190, 200, 202))
    provider.window_opened(1000.0)
    targets.bodies[CANARY] = exposition(180, 30, (60, 140, 200, 210))
    targets.bodies[BASELINE] = exposition(300, 3, (230, 285, 300, 303))

    m = provider.measure(Window(1000.0, 1060.0))

    assert m.window == Window(1000.0, 1060.0)
    assert (m.canary.requests, m.canary.errors) == (100, 20)
    assert m.canary.error_ratio == pytest.approx(0.2)
    assert m.canary.latency_buckets == ((0.05, 10), (0.1, 50), (0.25, 95), (float("inf"), 100))
    assert (m.baseline.requests, m.baseline.errors) == (101, 1)
    assert m.baseline.latency_buckets == ((0.05, 80), (0.1, 95), (0.25, 100), (float("inf"), 101))
    assert set(m.queries) == {"canary", "baseline"}
    assert m.queries["canary"].startswith(f"scrape {CANARY} sum(http_requests_total")
    assert 'status=~"5.."' in m.queries["canary"]
    assert m.queries["baseline"].startswith(f"scrape {BASELINE} ")


def test_buckets_are_summed_across_series_and_sorted_with_inf_last(
    targets: FakeTargets, provider: ScrapeProvider
) -> None:
    provider.window_opened(0.0)
    targets.bodies[CANARY] = exposition(3, 1, (1, 2, 3, 4)) + exposition(
        5, 0, (2, 3, 4, 5), service="cart", metadata=False
    )

    m = provider.measure(Window(0.0, 60.0))

    assert (m.canary.requests, m.canary.errors) == (9, 1)
    assert m.canary.latency_buckets == ((0.05, 3), (0.1, 5), (0.25, 7), (float("inf"), 9))


def test_match_keeps_only_series_with_those_labels(targets: FakeTargets) -> None:
    both = exposition(10, 5, (1, 2, 3, 15)) + exposition(
        1000, 500, (100, 200, 300, 1500), service="cart", metadata=False
    )
    targets.bodies[CANARY] = targets.bodies[BASELINE] = both
    p = ScrapeProvider(
        CANARY,
        BASELINE,
        transport=httpx.MockTransport(targets.handle),
        match={"service": "checkout"},
    )
    try:
        p.window_opened(0.0)
        doubled = exposition(20, 10, (2, 4, 6, 30)) + exposition(
            2000, 1000, (200, 400, 600, 3000), service="cart", metadata=False
        )
        targets.bodies[CANARY] = doubled
        m = p.measure(Window(0.0, 60.0))
    finally:
        p.close()

    assert (m.canary.requests, m.canary.errors) == (15, 5)
    assert m.canary.latency_buckets[-1] == (float("inf"), 15)
    assert (m.baseline.requests, m.baseline.errors) == (0, 0)
    assert 'service="checkout"' in m.queries["canary"]


def test_error_status_regex_is_matched_against_the_whole_status(targets: FakeTargets) -> None:
    p = ScrapeProvider(
        CANARY,
        BASELINE,
        transport=httpx.MockTransport(targets.handle),
        error_status_regex="5..|429",
    )
    try:
        p.window_opened(0.0)
        targets.bodies[CANARY] = exposition(10, 4, (0, 0, 0, 14), status_error="429")
        targets.bodies[BASELINE] = exposition(10, 4, (0, 0, 0, 14), status_error="4290")
        m = p.measure(Window(0.0, 60.0))
    finally:
        p.close()

    assert m.canary.errors == 4
    assert m.baseline.errors == 0


def test_a_counter_reset_keeps_the_window_and_counts_what_came_after_it(
    targets: FakeTargets, provider: ScrapeProvider
) -> None:
    targets.bodies[CANARY] = exposition(500, 5, (100, 200, 300, 505))
    provider.window_opened(0.0)
    targets.bodies[CANARY] = exposition(540, 9, (110, 220, 330, 549))
    assert provider.measure(Window(0.0, 10.0)).canary.errors == 4
    targets.bodies[CANARY] = exposition(3, 2, (1, 2, 3, 5))  # restarted: counting from zero

    m = provider.measure(Window(0.0, 20.0))

    # 44 requests (4 errors) before the restart, 5 (2 errors) after: nothing read as success.
    assert (m.canary.requests, m.canary.errors, m.canary.resets) == (49, 6, 1)
    assert m.canary.latency_buckets[-1] == (math.inf, 49)
    targets.bodies[CANARY] = exposition(13, 4, (5, 10, 15, 17))
    later = provider.measure(Window(0.0, 30.0))
    assert (later.canary.requests, later.canary.errors, later.canary.resets) == (61, 8, 1)


def test_every_restart_of_a_crash_loop_is_counted(
    targets: FakeTargets, provider: ScrapeProvider
) -> None:
    targets.bodies[CANARY] = exposition(50, 5, (10, 20, 30, 55))
    provider.window_opened(0.0)
    for life in range(3):
        targets.bodies[CANARY] = exposition(20, 2, (5, 10, 15, 22))
        provider.measure(Window(0.0, 10.0 * life + 1))
        targets.bodies[CANARY] = exposition(30, 3, (10, 20, 30, 33))
        m = provider.measure(Window(0.0, 10.0 * life + 2))
    assert m.canary.resets == 3
    assert m.canary.errors == 3 * 3
    assert m.baseline.resets == 0


def test_a_new_process_start_time_is_a_restart_even_when_counters_grew(
    targets: FakeTargets, provider: ScrapeProvider
) -> None:
    started = "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {}\n"
    targets.bodies[CANARY] = exposition(10, 0, (1, 2, 3, 10)) + started.format(1000)
    provider.window_opened(0.0)
    # Restarted and already busier than the last process was: only the start time tells.
    targets.bodies[CANARY] = exposition(15, 5, (1, 2, 3, 20)) + started.format(2000)

    m = provider.measure(Window(0.0, 10.0))

    assert (m.canary.requests, m.canary.errors, m.canary.resets) == (20, 5, 1)


def test_request_series_without_the_error_label_make_errors_unknown(
    targets: FakeTargets,
) -> None:
    coded = exposition(0, 0, (0, 0, 0, 0)).replace('status="', 'code="')
    targets.bodies[CANARY] = coded
    p = ScrapeProvider(CANARY, BASELINE, transport=httpx.MockTransport(targets.handle))
    try:
        p.window_opened(0.0)
        targets.bodies[CANARY] = exposition(210, 210, (0, 0, 0, 420)).replace('status="', 'code="')
        m = p.measure(Window(0.0, 60.0))
    finally:
        p.close()

    assert math.isnan(m.canary.errors)
    assert len(m.problems) == 1
    assert CANARY in m.problems[0]
    assert "`status` label" in m.problems[0]
    assert "provider.error_label" in m.problems[0]


def test_the_error_label_is_configurable(targets: FakeTargets) -> None:
    targets.bodies[CANARY] = exposition(0, 0, (0, 0, 0, 0)).replace('status="', 'code="')
    p = ScrapeProvider(
        CANARY, BASELINE, transport=httpx.MockTransport(targets.handle), error_label="code"
    )
    try:
        p.window_opened(0.0)
        targets.bodies[CANARY] = exposition(200, 10, (0, 0, 0, 210)).replace('status="', 'code="')
        m = p.measure(Window(0.0, 60.0))
    finally:
        p.close()

    assert (m.canary.requests, m.canary.errors, m.problems) == (210, 10, ())


def test_one_series_removed_while_the_others_count_on_is_no_restart(
    targets: FakeTargets, provider: ScrapeProvider
) -> None:
    # A long-lived process drops one series (prometheus_client's Counter.remove): the
    # others' lifetime totals must not be counted again as if the process restarted.
    targets.bodies[CANARY] = exposition(1_000_000, 5000, (1, 2, 3, 1_005_000))
    provider.window_opened(0.0)
    only_errors = exposition(0, 5001, (1, 2, 3, 1_005_101)).replace(
        'http_requests_total{environment="prod",service="checkout",track="stable",version="1",'
        'status="200"} 0\n',
        "",
    )
    targets.bodies[CANARY] = only_errors

    m = provider.measure(Window(0.0, 10.0))

    assert (m.canary.errors, m.canary.resets) == (1, 0)
    assert m.canary.latency_buckets[-1] == (math.inf, 101)


def test_a_series_that_vanished_is_a_reset(targets: FakeTargets, provider: ScrapeProvider) -> None:
    targets.bodies[BASELINE] = exposition(5, 1, (1, 2, 3, 6))
    provider.window_opened(0.0)
    targets.bodies[BASELINE] = "# nothing served since the restart\n"

    m = provider.measure(Window(0.0, 60.0))

    assert (m.baseline.requests, m.baseline.resets) == (0, 1)


def test_a_target_without_the_metric_has_no_requests(
    targets: FakeTargets, provider: ScrapeProvider
) -> None:
    targets.bodies[CANARY] = "# TYPE other_total counter\nother_total 7\n"
    provider.window_opened(0.0)
    targets.bodies[CANARY] = "# TYPE other_total counter\nother_total 9\n"

    m = provider.measure(Window(0.0, 60.0))

    assert (m.canary.requests, m.canary.errors, m.canary.latency_buckets) == (0, 0, ())
    assert m.canary.error_ratio is None


def test_unreachable_target_raises_with_its_url_but_no_credentials(targets: FakeTargets) -> None:
    targets.bodies[CANARY] = httpx.ConnectError("[Errno 111] Connection refused")
    p = ScrapeProvider(
        "http://scraper:s3cret@127.0.0.1:9002/metrics",
        BASELINE,
        transport=httpx.MockTransport(targets.handle),
    )
    try:
        with pytest.raises(ProviderError) as caught:
            p.window_opened(0.0)
    finally:
        p.close()

    message = str(caught.value)
    assert CANARY in message
    assert "Connection refused" in message
    assert "s3cret" not in message
    assert "scraper" not in message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (httpx.Response(503, text="down"), "HTTP 503"),
        (httpx.Response(200, text="<html>login</html>"), "cannot parse"),
        (
            httpx.Response(200, text='http_request_duration_seconds_bucket{x="1"} 3\n'),
            "no numeric le label",
        ),
    ],
)
def test_bad_answers_raise_with_the_url(
    targets: FakeTargets, provider: ScrapeProvider, body: httpx.Response, expected: str
) -> None:
    targets.bodies[BASELINE] = body

    with pytest.raises(ProviderError, match=expected) as caught:
        provider.window_opened(0.0)

    assert BASELINE in str(caught.value)


def test_a_url_without_a_path_scrapes_metrics(targets: FakeTargets) -> None:
    p = ScrapeProvider(
        "http://127.0.0.1:9002",
        "http://127.0.0.1:9001/",
        transport=httpx.MockTransport(targets.handle),
    )
    try:
        p.window_opened(0.0)
    finally:
        p.close()

    assert targets.requested == [CANARY, BASELINE]


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ConfigError, match="metrics URL"):
        ScrapeProvider("ftp://127.0.0.1/metrics", BASELINE)
    with pytest.raises(ConfigError, match="regex"):
        ScrapeProvider(CANARY, BASELINE, error_status_regex="5..(")


class TestSnapshotSelection:
    def test_the_snapshot_at_the_window_start_is_used(
        self, targets: FakeTargets, provider: ScrapeProvider
    ) -> None:
        targets.bodies[CANARY] = exposition(10, 0, (0, 0, 0, 10))
        provider.window_opened(90.0)
        targets.bodies[CANARY] = exposition(40, 0, (0, 0, 0, 40))
        provider.window_opened(100.0)
        targets.bodies[CANARY] = exposition(100, 0, (0, 0, 0, 100))
        provider.window_opened(110.0)

        assert provider.measure(Window(100.0, 160.0)).canary.requests == 60

    def test_else_the_latest_before_the_window_start(
        self, targets: FakeTargets, provider: ScrapeProvider
    ) -> None:
        targets.bodies[CANARY] = exposition(10, 0, (0, 0, 0, 10))
        provider.window_opened(90.0)
        targets.bodies[CANARY] = exposition(40, 0, (0, 0, 0, 40))
        provider.window_opened(95.0)
        targets.bodies[CANARY] = exposition(70, 0, (0, 0, 0, 70))
        provider.window_opened(105.0)
        targets.bodies[CANARY] = exposition(100, 0, (0, 0, 0, 100))

        m = provider.measure(Window(100.0, 160.0))

        assert m.canary.requests == 60
        assert "snapshot at 95.0" in m.queries["canary"]

    def test_older_snapshots_are_dropped(
        self, targets: FakeTargets, provider: ScrapeProvider
    ) -> None:
        targets.bodies[CANARY] = exposition(10, 0, (0, 0, 0, 10))
        provider.window_opened(90.0)
        targets.bodies[CANARY] = exposition(40, 0, (0, 0, 0, 40))
        provider.window_opened(100.0)
        provider.measure(Window(100.0, 160.0))

        # The snapshot at 90 is gone, so a window starting there has none to use.
        with pytest.raises(ProviderError, match="no opening snapshot"):
            provider.measure(Window(90.0, 150.0))

    def test_without_one_a_snapshot_is_taken_for_the_retry(
        self, targets: FakeTargets, provider: ScrapeProvider
    ) -> None:
        targets.bodies[CANARY] = exposition(10, 0, (0, 0, 0, 10))
        provider.window_opened(200.0)

        with pytest.raises(ProviderError, match="no opening snapshot"):
            provider.measure(Window(100.0, 160.0))

        targets.bodies[CANARY] = exposition(25, 5, (0, 0, 0, 30))
        m = provider.measure(Window(100.0, 160.0))
        assert (m.canary.requests, m.canary.errors) == (20, 5)
