"""LocalRouter against a fake admin API: every failure must surface as a RouterError."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest

from safeship.errors import RouterError, TransientError
from safeship.routers.interface import Slot, Slots
from safeship.routers.local import LocalRouter

ADMIN = "http://127.0.0.1:9999"
Handler = Callable[[httpx.Request], httpx.Response]


def weights_body(weight: int) -> dict[str, object]:
    return {
        "canary_weight": weight,
        "stable": "http://127.0.0.1:1",
        "canary": "http://127.0.0.1:2",
        "requests": {"stable": 0, "canary": 0},
        "upstream_errors": {"stable": 0, "canary": 0},
    }


class FakeAdmin:
    """Answers like the proxy's admin API and records what it was sent."""

    def __init__(self) -> None:
        self.weight = 0
        self.upstreams = {"stable": "http://127.0.0.1:1", "canary": "http://127.0.0.1:2"}
        self.sent: list[tuple[str, str, object]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.sent.append((request.method, request.url.path, body))
        if request.url.path == "/healthz":
            return httpx.Response(200, json={"status": "ok"})
        if request.method == "PUT" and isinstance(body, dict):
            self.weight = body.get("canary_weight", self.weight)
            self.upstreams |= {k: v for k, v in body.items() if k in self.upstreams}
        return httpx.Response(200, json=weights_body(self.weight) | self.upstreams)


@pytest.fixture
def make_router() -> Iterator[Callable[[Handler], LocalRouter]]:
    routers: list[LocalRouter] = []

    def make(handler: Handler) -> LocalRouter:
        router = LocalRouter(ADMIN, transport=httpx.MockTransport(handler))
        routers.append(router)
        return router

    yield make
    for router in routers:
        router.close()


def test_set_weight_puts_and_confirms(make_router: Callable[[Handler], LocalRouter]) -> None:
    admin = FakeAdmin()
    router = make_router(admin)

    router.set_weight(25)

    assert admin.sent == [("PUT", "/weights", {"canary_weight": 25})]
    assert router.get_weight() == 25


def test_promote_sends_all_to_the_slot_then_swaps_the_tracks_at_once(
    make_router: Callable[[Handler], LocalRouter],
) -> None:
    admin = FakeAdmin()
    router = make_router(admin)
    assert router.slots() == Slots(
        Slot("127.0.0.1:1", "127.0.0.1:1"), Slot("127.0.0.1:2", "127.0.0.1:2")
    )
    admin.sent.clear()

    router.promote("127.0.0.1:2")

    assert [(m, path, body) for m, path, body in admin.sent if m == "PUT"] == [
        ("PUT", "/weights", {"canary_weight": 100}),
        # One change: the promoted upstream becomes the stable track with all the traffic.
        (
            "PUT",
            "/upstreams",
            {"stable": "http://127.0.0.1:2", "canary": "http://127.0.0.1:1", "canary_weight": 0},
        ),
    ]
    assert router.slots().stable.name == "127.0.0.1:2"
    admin.sent.clear()
    router.promote("127.0.0.1:2")  # a repeat (a resumed promotion) never swaps back
    assert [body for m, _, body in admin.sent if m == "PUT"] == [{"canary_weight": 0}]
    assert router.slots().stable.name == "127.0.0.1:2"
    router.promote(router.slots().stable.name)  # a rollback
    assert admin.weight == 0


def test_named_slots_must_be_the_proxys_upstreams() -> None:
    named = {"blue": "127.0.0.1:1", "green": "127.0.0.1:2"}
    router = LocalRouter(ADMIN, transport=httpx.MockTransport(FakeAdmin()), slots=named)
    assert router.slots() == Slots(Slot("blue", "127.0.0.1:1"), Slot("green", "127.0.0.1:2"))
    router.promote("green")
    assert router.slots() == Slots(Slot("green", "127.0.0.1:2"), Slot("blue", "127.0.0.1:1"))
    with pytest.raises(RouterError, match="cannot promote 'purple'"):
        router.promote("purple")
    router.close()
    wrong = {"blue": "127.0.0.1:1", "green": "127.0.0.1:3"}
    router = LocalRouter(ADMIN, transport=httpx.MockTransport(FakeAdmin()), slots=wrong)
    with pytest.raises(RouterError, match=r"canary upstream 127.0.0.1:2 is none of the slots"):
        router.slots()
    router.close()


@pytest.mark.parametrize("weight", [-1, 101, True, 12.5, "10"])
def test_set_weight_rejects_out_of_range_without_calling(
    make_router: Callable[[Handler], LocalRouter], weight: object
) -> None:
    admin = FakeAdmin()
    router = make_router(admin)

    with pytest.raises(ValueError, match="0 to 100"):
        router.set_weight(weight)  # type: ignore[arg-type]
    assert admin.sent == []


def test_set_weight_raises_when_router_reports_another_weight(
    make_router: Callable[[Handler], LocalRouter],
) -> None:
    router = make_router(lambda _request: httpx.Response(200, json=weights_body(10)))

    with pytest.raises(RouterError, match=r"asked for canary weight 30, but it reports 10") as info:
        router.set_weight(30)
    assert ADMIN in str(info.value)


def connection_refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def read_timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (lambda _r: httpx.Response(503, text="overloaded"), "HTTP 503: overloaded"),
        (lambda _r: httpx.Response(400, json={"error": "canary_weight bad"}), "canary_weight bad"),
        (lambda _r: httpx.Response(200, text="<html>"), "invalid JSON"),
        (lambda _r: httpx.Response(200, json=[1]), "expected a JSON object"),
        (lambda _r: httpx.Response(200, json={"canary_weight": "x"}), "no valid canary_weight"),
        (connection_refused, "failed: ConnectError"),
        (read_timeout, "timed out after 2.0s"),
    ],
)
def test_failures_raise_router_error_naming_the_admin_url(
    make_router: Callable[[Handler], LocalRouter], handler: Handler, expected: str
) -> None:
    router = make_router(handler)

    for call in (router.get_weight, lambda: router.set_weight(5)):
        with pytest.raises(RouterError) as info:
            call()
        assert ADMIN in str(info.value)
        assert expected in str(info.value)
        assert isinstance(info.value, TransientError)  # the controller retries it


def test_health_ok(make_router: Callable[[Handler], LocalRouter]) -> None:
    health = make_router(FakeAdmin()).health()

    assert health.ok
    assert ADMIN in health.detail


def test_health_reports_unreachable_router_instead_of_raising(
    make_router: Callable[[Handler], LocalRouter],
) -> None:
    health = make_router(connection_refused).health()

    assert not health.ok
    assert ADMIN in health.detail
    assert "connection refused" in health.detail


def test_an_admin_url_password_never_reaches_a_message() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    router = LocalRouter(
        "http://ops:hunter2-secret@127.0.0.1:9", transport=httpx.MockTransport(refused)
    )
    with pytest.raises(RouterError) as caught:
        router.get_weight()
    assert "hunter2-secret" not in str(caught.value)
    assert "http://ops:***@127.0.0.1:9" in str(caught.value)
    assert "hunter2-secret" not in router.health().detail
    router.close()
