"""NginxRouter against a fake nginx binary and a fake status server.

The fake binary is a small Python script: `-t` accepts the include file
unless the test asked it to refuse (printing nginx's own kind of message),
and `-s reload` "loads" the include file by copying it where the fake
status server reads it, which answers with the JSON the loaded file returns,
as the status server nginx would run from that file.
"""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safeship.config import NginxRouterSettings
from safeship.errors import RouterError
from safeship.routers import build_router, nginx
from safeship.routers.interface import Slot, Slots
from safeship.routers.nginx import NginxRouter, _nginx_message

SLOTS = {"blue": "10.0.0.5:8080", "green": "10.0.0.6:8080"}

FAKE_NGINX = """\
import json, shutil, sys
from pathlib import Path

here = Path(__file__).parent
with (here / "calls.jsonl").open("a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if "-t" in sys.argv:
    refusal = here / "refuse"
    if refusal.exists():
        sys.stderr.write(refusal.read_text())
        sys.exit(1)
elif sys.argv[-2:] == ["-s", "reload"]:
    if (here / "ignore-reload").exists():
        sys.exit(0)  # signalled, but the new configuration never starts
    shutil.copy(here / "app.conf", here / "loaded.conf")
"""

_RETURN = re.compile(r"return 200 '(.*)\\n';")


class FakeStatus:
    """Answers `GET /safeship/app` with the JSON of the include file nginx "loaded"."""

    def __init__(self, loaded: Path) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                match = _RETURN.search(loaded.read_text()) if loaded.exists() else None
                if self.path != "/safeship/app" or match is None:
                    self.send_error(404)
                    return
                body = match.group(1).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.listen = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Fake:
    """The fake nginx's folder: include file, what it loaded, and its calls."""

    def __init__(self, root: Path, status: FakeStatus) -> None:
        self.root = root
        self.binary = root / "nginx"
        self.binary.write_text(f"#!{sys.executable}\n{FAKE_NGINX}")
        self.binary.chmod(0o755)
        self.include = root / "app.conf"
        self.loaded = root / "loaded.conf"
        self.status = status

    def calls(self) -> list[list[str]]:
        log = self.root / "calls.jsonl"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    def forget_calls(self) -> None:
        (self.root / "calls.jsonl").unlink(missing_ok=True)

    def refuse(self, message: str) -> None:
        (self.root / "refuse").write_text(message)

    def ignore_reload(self) -> None:
        (self.root / "ignore-reload").touch()

    def settings(self, **overrides: Any) -> NginxRouterSettings:
        fields: dict[str, Any] = {
            "include_file": str(self.include),
            "slots": SLOTS,
            "status_listen": self.status.listen,
            "binary": str(self.binary),
            "config_file": str(self.root / "nginx.conf"),
            "prefix": str(self.root),
            "state_file": str(self.root / "state" / "nginx.json"),
            "timeout": 2.0,
        }
        return NginxRouterSettings(**(fields | overrides))

    def router(self, **overrides: Any) -> NginxRouter:
        router = build_router(self.settings(**overrides))
        assert isinstance(router, NginxRouter)
        return router


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fake]:
    # The fake has no old workers to outlast: the first new answer is the last word.
    monkeypatch.setattr(nginx, "_SETTLE", 0.0)
    status = FakeStatus(tmp_path / "loaded.conf")
    yield Fake(tmp_path, status)
    status.close()


def server_lines(text: str) -> list[str]:
    return [line.split("#")[0].strip() for line in text.splitlines() if "server 10." in line]


def status_of(text: str) -> dict[str, Any]:
    match = _RETURN.search(text)
    assert match is not None, text
    status: dict[str, Any] = json.loads(match.group(1))
    return status


@pytest.mark.parametrize(
    ("weight", "lines"),
    [
        (10, ["server 10.0.0.5:8080 weight=90;", "server 10.0.0.6:8080 weight=10;"]),
        (0, ["server 10.0.0.5:8080 weight=100;", "server 10.0.0.6:8080 down;"]),
        (100, ["server 10.0.0.5:8080 down;", "server 10.0.0.6:8080 weight=100;"]),
    ],
)
def test_weight_becomes_server_lines_and_zero_is_down(
    fake: Fake, weight: int, lines: list[str]
) -> None:
    router = fake.router()
    text = router.render({"blue": 100 - weight, "green": weight}, "blue", "abc123")
    assert server_lines(text) == lines  # both servers stay in the block
    assert "upstream app {" in text
    assert "zone safeship_app 64k;" in text
    assert f"listen {fake.status.listen};" in text
    assert "location = /safeship/app {" in text
    assert status_of(text) == {
        "upstream": "app",
        "generation": "abc123",
        "stable": "blue",
        "weights": {"blue": 100 - weight, "green": weight},
    }


def test_set_weight_tests_reloads_and_reads_back(fake: Fake) -> None:
    router = fake.router()
    assert router.slots() == Slots(Slot("blue", "10.0.0.5:8080"), Slot("green", "10.0.0.6:8080"))
    router.set_weight(10)
    root = str(fake.root)
    conf = str(fake.root / "nginx.conf")
    assert fake.calls() == [
        ["-p", root, "-c", conf, "-t", "-q"],
        ["-p", root, "-c", conf, "-s", "reload"],
    ]
    assert router.get_weight() == 10
    assert server_lines(fake.include.read_text())[1] == "server 10.0.0.6:8080 weight=10;"
    assert router.health().ok

    fake.forget_calls()
    router.set_weight(10)  # the same weights are in force: no test, no reload
    assert fake.calls() == []
    router.set_weight(50)
    assert router.get_weight() == 50
    router.promote(router.slots().stable.name)  # a rollback
    assert router.get_weight() == 0
    assert "server 10.0.0.6:8080 down;" in fake.include.read_text()


def test_each_write_has_a_new_generation(fake: Fake) -> None:
    router = fake.router()
    router.set_weight(10)
    first = status_of(fake.loaded.read_text())["generation"]
    router.set_weight(20)
    second = status_of(fake.loaded.read_text())["generation"]
    assert first != second


def test_refused_config_restores_previous_file_and_says_why(fake: Fake) -> None:
    router = fake.router()
    router.set_weight(10)
    before = fake.include.read_bytes()
    fake.forget_calls()
    fake.refuse(
        'nginx: [emerg] host not found in upstream "10.0.0.6:8080" in '
        f"{fake.include}:5\nnginx: configuration file {fake.root}/nginx.conf test failed\n"
    )
    with pytest.raises(RouterError) as caught:
        router.set_weight(50)
    message = str(caught.value)
    assert f'[emerg] host not found in upstream "10.0.0.6:8080" in {fake.include}:5' in message
    assert "nginx: [emerg]" not in message  # nginx's prefix is trimmed
    assert "-t -q` failed to test the configuration (exit 1)" in message
    assert f"{fake.include} restored to its previous content" in message
    assert fake.include.read_bytes() == before
    assert [call[-2:] for call in fake.calls()] == [["-t", "-q"]]  # never reloaded
    assert router.get_weight() == 10
    assert not list(fake.root.glob(".app.conf.*"))  # no temp file left


def test_refused_first_config_leaves_no_file(fake: Fake) -> None:
    fake.refuse("nginx: [emerg] unexpected end of file\n")
    with pytest.raises(RouterError, match="unexpected end of file"):
        fake.router().set_weight(10)
    assert not fake.include.exists()


def test_unconfirmed_reload_is_an_error_and_restores_the_file(fake: Fake) -> None:
    router = fake.router(timeout=0.3)
    router.set_weight(10)
    before = fake.include.read_bytes()
    fake.ignore_reload()
    with pytest.raises(RouterError, match=r"did not report generation \w+ within 0.3s"):
        router.set_weight(50)
    assert fake.include.read_bytes() == before
    assert router.get_weight() == 10


def test_missing_binary_is_a_router_error_naming_it(fake: Fake) -> None:
    router = fake.router(binary=str(fake.root / "no-nginx"))
    with pytest.raises(RouterError, match=r"nginx binary '.*no-nginx' not found.*router.binary"):
        router.set_weight(10)


def test_unreachable_status_server(fake: Fake) -> None:
    router = fake.router()
    fake.status.close()
    with pytest.raises(RouterError, match=re.escape(router.status_url) + ".*unreachable"):
        router.get_weight()
    health = router.health()
    assert not health.ok
    assert router.status_url in health.detail


def test_status_for_other_slots_is_an_error(fake: Fake) -> None:
    fake.loaded.write_text(
        """return 200 '{"generation":"x","stable":"red","weights":{"red":1,"blue":0}}\\n';"""
    )
    with pytest.raises(RouterError, match=r"not the weights of slots \['blue', 'green'\]"):
        fake.router().get_weight()


def test_promote_swaps_the_stable_slot(fake: Fake) -> None:
    router = fake.router()
    router.set_weight(50)
    router.promote("green")
    assert json.loads(router.state_file.read_text()) == {"stable": "green"}
    assert router.slots() == Slots(Slot("green", "10.0.0.6:8080"), Slot("blue", "10.0.0.5:8080"))
    assert router.get_weight() == 0
    assert server_lines(fake.include.read_text()) == [
        "server 10.0.0.5:8080 down;",
        "server 10.0.0.6:8080 weight=100;",
    ]
    fake.forget_calls()
    router.promote("green")  # a repeat changes nothing
    assert fake.calls() == []
    assert json.loads(router.state_file.read_text())["stable"] == "green"

    router.set_weight(10)  # the next rollout's canary is blue
    assert json.loads(router.state_file.read_text()) == {"stable": "green"}
    assert server_lines(fake.include.read_text()) == [
        "server 10.0.0.5:8080 weight=10;",
        "server 10.0.0.6:8080 weight=90;",
    ]


def test_corrupt_state_file_is_a_router_error(fake: Fake) -> None:
    router = fake.router()
    router.state_file.parent.mkdir(parents=True)
    router.state_file.write_text('{"stable": "red"}')
    with pytest.raises(RouterError, match=r"state file .* must hold"):
        router.set_weight(10)
    assert not router.health().ok


def test_write_initial_needs_no_nginx(fake: Fake) -> None:
    fake.router().write_initial()
    assert server_lines(fake.include.read_text()) == [
        "server 10.0.0.5:8080 weight=100;",
        "server 10.0.0.6:8080 down;",
    ]
    assert fake.calls() == []
    assert fake.include.stat().st_mode & 0o777 == 0o644


def test_nginx_runs_without_a_shell(fake: Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[object, dict[str, object]]] = []
    real_run = subprocess.run

    def spy(command: object, **kwargs: Any) -> Any:
        seen.append((command, kwargs))
        return real_run(command, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(subprocess, "run", spy)
    fake.router().set_weight(10)
    assert len(seen) == 2
    for command, kwargs in seen:
        assert isinstance(command, list)
        assert command[0] == str(fake.binary)
        assert not kwargs.get("shell")
        assert kwargs["timeout"] == 2.0


def test_invalid_weights_and_settings() -> None:
    router = NginxRouter("/tmp/app.conf", SLOTS)
    for weight in (-1, 101, True, 1.5):
        with pytest.raises(ValueError, match="canary weight"):
            router.set_weight(weight)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="exactly two"):
        NginxRouter("/tmp/app.conf", {"blue": "10.0.0.5:80"})
    with pytest.raises(ValueError, match="host:port"):
        NginxRouter("/tmp/app.conf", {"blue": "10.0.0.5:80", "green": "x; evil"})


def test_nginx_message_is_trimmed() -> None:
    assert _nginx_message(b"") == "no message"
    long = _nginx_message(b"nginx: [emerg] " + b"x" * 2000)
    assert long.startswith("[emerg] x")
    assert len(long) == 600
    assert long.endswith("...")


CUT_PASSWORD = "ngcut-Passw0rd_4b9e"


def test_a_status_answer_is_redacted_before_it_is_cut(fake: Fake) -> None:
    """Before: cut to 200 characters, then shown: a URL cut before its `@` showed the first
    part of its password."""
    for padding in range(150, 200, 4):
        fake.loaded.write_text(f"return 200 '{'x' * padding} http://u:{CUT_PASSWORD}@h/\\n';")
        with pytest.raises(RouterError, match="not the weights") as caught:
            fake.router().get_weight()
        assert CUT_PASSWORD[:6] not in str(caught.value), padding


def test_nginx_message_is_redacted_before_it_is_trimmed() -> None:
    for padding in range(560, 600, 4):
        output = b"nginx: [emerg] " + b"x" * padding + f" http://u:{CUT_PASSWORD}@h/".encode()
        assert CUT_PASSWORD[:6] not in _nginx_message(output), padding
