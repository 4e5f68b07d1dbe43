"""Text from outside is redacted whole before it is shortened for a message.

Before, the clients cut a server's answer to 120 or 200 characters and redacted what was
left: a credential the cut went through was no form of any secret any more, and its first
part showed (`... got glsa_PARTIAL`). Here each client meets a server that answers with
padding, then the credential its request carried, for paddings that put a cut anywhere
within it, and no first part of the credential (6 characters or more) may show.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from safeship.child import ChildProcess
from safeship.config import Hook, PrometheusSettings, PushgatewaySettings
from safeship.errors import RouterError, SafeshipError
from safeship.grafana.client import GrafanaClient
from safeship.metrics import DeploymentMetrics
from safeship.metrics.push import push_or_warn
from safeship.prometheus.client import PrometheusClient
from safeship.redact import MASK, shown
from safeship.rollout.hooks import run_hook
from safeship.routers.local import LocalRouter
from safeship.testing import MemoryStore
from safeship.testing_http import LoopbackDouble

# Distinct from every other test's secrets: none of them may be remembered by an earlier test.
TOKEN = "glsa_CUTCANARY_T0KEN_5e1d7a93"
PASSWORD = "cutcanary-Passw0rd_81fc2b"
# A cut at 120, 200 or 500 characters falls within the credential for some of these.
PADDINGS = [*range(80, 210, 3), *range(440, 500, 3)]


class QuotingServer(LoopbackDouble):
    """Answers every request `status` with `padding` characters, then the credential the
    request carried: as sent (a bearer token, HTTP Basic's base64) or, with `decoded`,
    HTTP Basic's password. `body` turns that text into the body (JSON, for one)."""

    def __init__(
        self,
        status: int = 500,
        content_type: str = "text/plain",
        body: Callable[[str], str] = str,
    ) -> None:
        super().__init__()
        self.status, self.content_type, self.body = status, content_type, body
        self.padding = 0
        self.decoded = False

    def handler(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                scheme, _, credential = self.headers.get("Authorization", "").partition(" ")
                if scheme == "Basic" and double.decoded:
                    credential = base64.b64decode(credential).decode().partition(":")[2]
                text = double.body("x" * double.padding + credential).encode()
                if self.command in ("POST", "PUT"):
                    self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(double.status)
                self.send_header("Content-Type", double.content_type)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            do_POST = do_PUT = do_GET

        return Handler


def first_parts(credential: str) -> list[str]:
    return [credential[:n] for n in range(6, len(credential) + 1)]


def assert_no_first_part(message: str, *credentials: str) -> None:
    shows = [part for c in credentials for part in first_parts(c) if part in message]
    assert not shows, f"{shows[-1]!r} shows in {message!r}"


def each_padding(server: QuotingServer, attempt: Callable[[], str], *credentials: str) -> None:
    """`attempt()` (the message it ends with) at each padding, with the credential quoted as
    sent and decoded; the answer must reach the message."""
    for decoded in (False, True):
        server.decoded = decoded
        for padding in PADDINGS:
            server.padding = padding
            message = attempt()
            assert_no_first_part(message, *credentials)
        assert "x" * 60 in message, message


def basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def server() -> Iterator[QuotingServer]:
    with QuotingServer() as double:
        yield double


def failure(call: Callable[[], object], error: type[Exception] = SafeshipError) -> str:
    with pytest.raises(error) as caught:
        call()
    return str(caught.value)


def test_grafana_client_errors_never_show_part_of_a_credential(server: QuotingServer) -> None:
    """`dashboards versions`: `... HTTP 500 xxx...glsa_PARTIAL` before."""
    with GrafanaClient(server.url, TOKEN, retries=0) as client:
        each_padding(server, lambda: failure(lambda: client.versions("d")), TOKEN)
    url = server.url.replace("://", f"://grafuser:{PASSWORD}@")
    with GrafanaClient(url, None, retries=0) as client:
        each_padding(server, lambda: failure(client.health), PASSWORD, basic("grafuser", PASSWORD))


@pytest.mark.parametrize(
    ("status", "content_type", "body", "checks"),
    [
        (500, "text/plain", str, True),  # a body that is not JSON
        (200, "application/json", lambda text: f'"{text}"', True),  # not Prometheus' answer
        # Prometheus' answer, but not a query's: only a query fails on it.
        (200, "application/json", lambda text: f'{{"status":"success","data":"{text}"}}', False),
    ],
)
@pytest.mark.parametrize("auth", ["bearer", "basic", "url"])
def test_prometheus_client_errors_never_show_part_of_a_credential(
    status: int, content_type: str, body: Callable[[str], str], checks: bool, auth: str
) -> None:
    """`check` (its build-info call) and every query: the answer was cut to 120 characters,
    then redacted."""
    with QuotingServer(status, content_type, body) as server:
        settings = {
            "bearer": {"url": server.url, "bearer_token": {"env": "CUT_SECRET"}},
            "basic": {
                "url": server.url,
                "basic_auth": {"username": "promuser", "password": {"env": "CUT_SECRET"}},
            },
            "url": {"url": server.url.replace("://", f"://promuser:{PASSWORD}@")},
        }[auth]
        secret = TOKEN if auth == "bearer" else PASSWORD
        client = PrometheusClient(
            PrometheusSettings.model_validate({**settings, "retries": 0}),
            environ={"CUT_SECRET": secret},
        )
        with client:
            each_padding(
                server,
                lambda: failure(lambda: client.query("up")),
                secret,
                basic("promuser", secret),
            )
            if checks:
                each_padding(
                    server, lambda: failure(client.buildinfo), secret, basic("promuser", secret)
                )


@pytest.mark.parametrize("status", [500, 200])  # an error, and an answer that is not JSON
@pytest.mark.parametrize("auth", ["token", "url"])
def test_local_router_errors_never_show_part_of_a_credential(status: int, auth: str) -> None:
    """`router status` and `rollout --json`'s "error": the answer was cut to 200, then shown."""
    with QuotingServer(status) as server:
        if auth == "token":
            router, credentials = LocalRouter(server.url, admin_token=TOKEN), (TOKEN,)
        else:
            admin = server.url.replace("://", f"://admin:{PASSWORD}@")
            router, credentials = LocalRouter(admin), (PASSWORD, basic("admin", PASSWORD))
        try:
            each_padding(server, lambda: failure(router.get_weight, RouterError), *credentials)
            each_padding(server, lambda: router.health().detail, *credentials)
        finally:
            router.close()


def test_a_failed_push_never_shows_part_of_a_credential(server: QuotingServer) -> None:
    """The Pushgateway's answer was cut to 200 characters in the push warning."""
    settings = PushgatewaySettings(url=server.url.replace("://", f"://ci:{PASSWORD}@"))
    metrics = DeploymentMetrics(CollectorRegistry(), MemoryStore(), service="checkout")

    def attempt() -> str:
        warning = push_or_warn(settings, metrics, "production")
        assert warning is not None
        return warning

    each_padding(server, attempt, PASSWORD, basic("ci", PASSWORD))


def test_a_smoke_test_detail_is_redacted_before_it_is_cut_for_the_store() -> None:
    """The detail kept was the exception's text cut to 500 characters, not redacted at all."""
    store = MemoryStore()
    metrics = DeploymentMetrics(CollectorRegistry(), store, service="checkout")
    for padding in PADDINGS:
        with (
            pytest.raises(RuntimeError),
            metrics.track_smoke_test("production", "d1", "api"),
        ):
            raise RuntimeError("x" * padding + f" http://deploy:{PASSWORD}@api.test/health")
    details = [record.detail for record in store.smoke_tests(deployment_id="d1")]
    assert len(details) == len(PADDINGS)
    for detail in details:
        assert len(detail) <= 500
        assert_no_first_part(detail, PASSWORD)
        assert "http://deploy:***@api.test" in detail or detail.endswith("...")


def test_shown_redacts_the_whole_text_then_keeps_its_start_or_its_end() -> None:
    text = "a" * 195 + TOKEN + "z" * 300
    assert shown(text, [TOKEN], 200) == "a" * 195 + MASK[:2] + "..."
    assert shown(text, [TOKEN], 305, tail=True) == "..." + MASK[1:] + "z" * 300
    assert shown(f"short {TOKEN}", [TOKEN]) == f"short {MASK}"
    assert len(shown("x" * 1000, limit=120)) == 120


def test_a_hooks_output_is_redacted_before_its_tail_is_kept() -> None:
    """The end of a failing hook's output is what is stored: a cut through a secret at its
    start may not leave the secret's last part."""
    for padding in [*range(1976, 2000, 3), 2100]:
        script = f"import sys; sys.stderr.write({PASSWORD!r} + 'x' * {padding}); sys.exit(1)"
        hook = Hook(command=(sys.executable, "-c", script))
        detail = run_hook("pre_rollout", 0, hook, {}, [PASSWORD]).detail
        shows = [PASSWORD[-n:] for n in range(6, len(PASSWORD) + 1) if PASSWORD[-n:] in detail]
        assert not shows, (padding, detail[:40])
    assert detail == "exit 1: ..." + "x" * 1997


def test_a_childs_stderr_tail_is_redacted_before_it_is_cut() -> None:
    """A child's stderr was read cut to its last bytes, then shown: a URL whose start the cut
    dropped (the `http://u:` that marks user-info) showed the rest of its password."""
    for padding in range(1965, 1998, 4):
        script = f"import sys; sys.stderr.write('http://u:{PASSWORD}@h/' + 'x' * {padding})"
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 - the ChildProcess owns and closes it
        process = subprocess.Popen([sys.executable, "-c", script], stderr=stderr)
        process.wait()
        child = ChildProcess(process, stderr, {})
        tail = child.stderr_tail(2000)
        child.stop(1)
        shows = [PASSWORD[-n:] for n in range(6, len(PASSWORD) + 1) if PASSWORD[-n:] in tail]
        assert not shows, (padding, tail[:40])
        assert tail.endswith("x" * 1900)
