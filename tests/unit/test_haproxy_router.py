"""HaproxyRouter against a fake HAProxy Runtime API served on a unix socket."""

from __future__ import annotations

import json
import re
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from safeship.config import HaproxyRouterSettings
from safeship.errors import RouterError
from safeship.routers import build_router
from safeship.routers.haproxy import HaproxyRouter
from safeship.routers.interface import Slot, Slots


class FakeRuntimeApi:
    """Answers `set weight`, `get weight` and `show servers state` like HAProxy 2.6."""

    def __init__(self, path: Path, backend: str = "app") -> None:
        self.path = path
        self.backend = backend
        self.weights = {"blue": 100, "green": 0}
        self.commands: list[str] = []
        self.frozen = False  # accept `set weight` but change nothing (a confirmation mismatch)
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(8)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with conn:
                data = b""
                while not data.endswith(b"\n") and (chunk := conn.recv(4096)):
                    data += chunk
                command = data.decode().strip()
                self.commands.append(command)
                conn.sendall(self._answer(command).encode())

    def _server_of(self, target: str) -> str | None:
        backend, _, server = target.partition("/")
        if backend != self.backend:
            return "No such backend.\n"
        if server not in self.weights:
            return "No such server.\n"
        return None

    def _answer(self, command: str) -> str:
        words = command.split()
        if words[:2] == ["get", "weight"] and len(words) == 3:
            error = self._server_of(words[2])
            if error:
                return error
            return f"{self.weights[words[2].split('/')[1]]} (initial 100)\n"
        if words[:2] == ["set", "weight"] and len(words) == 4:
            error = self._server_of(words[2])
            if error:
                return error
            if not self.frozen:
                self.weights[words[2].split("/")[1]] = int(words[3])
            return "\n"
        if words[:3] == ["show", "servers", "state"]:
            # HAProxy 2.6's format, its columns cut after srv_port (the parser maps by name).
            header = "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_port"
            rows = [
                f"3 {self.backend} {i} {name} 127.0.0.1 2 {9001 + i - 1}"
                for i, name in enumerate(("blue", "green"), start=1)
            ]
            return "1\n" + "\n".join([header, *rows]) + "\n"
        return "Unknown command: '" + command + "'\n"

    def sets(self) -> list[str]:
        return [c for c in self.commands if c.startswith("set ")]

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # Unix socket paths are limited to ~108 bytes; tmp_path can be longer.
    path = Path(tempfile.mkdtemp(prefix="hap"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def api(short_dir: Path) -> Iterator[FakeRuntimeApi]:
    fake = FakeRuntimeApi(short_dir / "admin.sock")
    yield fake
    fake.close()


def router_for(api: FakeRuntimeApi, tmp_path: Path, backend: str = "app") -> HaproxyRouter:
    settings = HaproxyRouterSettings(
        socket=str(api.path),
        backend=backend,
        state_file=str(tmp_path / "state" / "haproxy.json"),
        timeout=1.0,
    )
    router = build_router(settings)
    assert isinstance(router, HaproxyRouter)
    return router


def test_set_weight_sets_both_servers_and_reads_back(api: FakeRuntimeApi, tmp_path: Path) -> None:
    router = router_for(api, tmp_path)
    assert router.slots() == Slots(Slot("blue", "127.0.0.1:9001"), Slot("green", "127.0.0.1:9002"))
    router.set_weight(10)
    assert api.weights == {"blue": 90, "green": 10}
    assert router.get_weight() == 10
    # Raise before lowering: both servers never sit at zero together.
    assert api.sets() == ["set weight app/green 10", "set weight app/blue 90"]
    api.commands.clear()
    router.set_weight(100)
    assert api.sets() == ["set weight app/green 100", "set weight app/blue 0"]
    assert router.get_weight() == 100
    api.commands.clear()
    router.set_weight(100)  # idempotent: nothing to change
    assert api.sets() == []
    assert router.health().ok


def test_rollback_sets_canary_to_zero(api: FakeRuntimeApi, tmp_path: Path) -> None:
    router = router_for(api, tmp_path)
    router.set_weight(50)
    router.promote(router.slots().stable.name)  # a rollback
    assert api.weights == {"blue": 100, "green": 0}
    assert router.get_weight() == 0
    router.promote(router.slots().stable.name)  # a rollback
    assert api.weights == {"blue": 100, "green": 0}


def test_confirmation_mismatch_is_a_router_error(api: FakeRuntimeApi, tmp_path: Path) -> None:
    router = router_for(api, tmp_path)
    api.frozen = True
    with pytest.raises(
        RouterError, match=r"backend app: set weight of green to 10, but HAProxy reports 0"
    ):
        router.set_weight(10)


def test_unknown_backend_is_a_router_error(api: FakeRuntimeApi, tmp_path: Path) -> None:
    router = router_for(api, tmp_path, backend="web")
    with pytest.raises(RouterError, match=r"backend web.*No such backend"):
        router.set_weight(10)
    health = router.health()
    assert not health.ok
    assert "No such backend" in health.detail


def test_missing_socket_is_a_router_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.sock"
    router = HaproxyRouter(str(path), state_file=tmp_path / "s.json", timeout=0.5)
    with pytest.raises(RouterError, match=re.escape(f"{path}") + ".*backend app"):
        router.set_weight(10)
    with pytest.raises(RouterError, match=re.escape(str(path))):
        router.get_weight()
    health = router.health()
    assert not health.ok
    assert str(path) in health.detail


def test_refused_tcp_socket_is_a_router_error(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    router = HaproxyRouter(f"127.0.0.1:{port}", state_file=tmp_path / "s.json", timeout=0.5)
    with pytest.raises(RouterError, match=re.escape(f"127.0.0.1:{port}")):
        router.get_weight()


def test_both_weights_zero_is_not_a_weight(api: FakeRuntimeApi, tmp_path: Path) -> None:
    api.weights = {"blue": 0, "green": 0}
    with pytest.raises(RouterError, match="weight 0"):
        router_for(api, tmp_path).get_weight()


def test_promote_swaps_the_stable_slot(api: FakeRuntimeApi, tmp_path: Path) -> None:
    router = router_for(api, tmp_path)
    router.set_weight(50)
    router.promote("green")
    assert api.weights == {"blue": 0, "green": 100}
    state = json.loads(router.state_file.read_text())
    assert state["stable"] == "green"
    assert (router.slots().stable.name, router.slots().canary.name) == ("green", "blue")
    assert router.get_weight() == 0  # the new canary slot (blue) gets nothing

    router.promote("green")  # a repeat (a resumed promotion) never swaps back
    assert api.weights == {"blue": 0, "green": 100}
    assert json.loads(router.state_file.read_text())["stable"] == "green"

    # The next rollout deploys into blue; promoting it swaps back.
    router.set_weight(10)
    assert api.weights == {"blue": 10, "green": 90}
    router.promote("blue")
    assert api.weights == {"blue": 100, "green": 0}
    assert json.loads(router.state_file.read_text())["stable"] == "blue"


def test_bad_state_file_is_a_router_error(api: FakeRuntimeApi, tmp_path: Path) -> None:
    router = router_for(api, tmp_path)
    router.state_file.parent.mkdir(parents=True)
    router.state_file.write_text('{"stable": "red"}')
    with pytest.raises(RouterError, match="state file"):
        router.set_weight(10)


@pytest.mark.parametrize("weight", [-1, 101, True, 1.5])
def test_weight_out_of_range_is_refused(
    api: FakeRuntimeApi, tmp_path: Path, weight: object
) -> None:
    with pytest.raises(ValueError, match="0 to 100"):
        router_for(api, tmp_path).set_weight(weight)  # type: ignore[arg-type]
    assert api.commands == []


def test_an_answer_is_redacted_before_it_is_cut(
    api: FakeRuntimeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: cut to 200 characters, then shown: a URL cut before its `@` showed the first
    part of its password."""
    password = "hpcut-Passw0rd_7d1c"
    router = router_for(api, tmp_path)
    for padding in range(150, 200, 4):
        answer = f"{'x' * padding} http://u:{password}@h/\n"
        monkeypatch.setattr(api, "_answer", lambda _command, answer=answer: answer)
        with pytest.raises(RouterError, match="answered") as caught:
            router.get_weight()
        assert password[:6] not in str(caught.value), padding
