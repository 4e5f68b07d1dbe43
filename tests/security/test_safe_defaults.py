"""Safe by default: loopback servers, verified TLS, safe YAML, no shell built from input.

Each claim is checked on what really happens, not on defaults written in code:
the listening sockets servers actually opened (read from /proc), HTTP clients
pointed at a self-signed HTTPS server, a YAML document that would run a command
if it were loaded unsafely, and a version string that would run a command if a
shell ever saw it.
"""

from __future__ import annotations

import ast
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from safeship.config import (
    HttpSmokeTest,
    KubernetesRouterSettings,
    PrometheusSettings,
    SmokeTest,
    parse_config,
)
from safeship.demo.haproxy_server import HaproxyServer, find_haproxy
from safeship.demo.monitoring import AlertmanagerServer, PushgatewayServer
from safeship.demo.nginx_server import NginxServer, find_nginx
from safeship.demo.postgres_server import PostgresServer, find_postgres_bin
from safeship.demo.sandbox import sandbox
from safeship.errors import ConfigError, SafeshipError
from safeship.grafana.client import GrafanaClient
from safeship.http import make_client
from safeship.metrics import DeploymentMetrics
from safeship.metrics.push import push_metrics
from safeship.prometheus.client import PrometheusClient
from safeship.providers.scrape import ScrapeProvider
from safeship.rollout.hooks import rollout_env, run_hook, run_smoke_test
from safeship.routers.kubernetes.api import DEPLOYMENT, KubeApi
from safeship.routers.local import LocalRouter
from safeship.rules.alertmanager import load_routing_cases
from safeship.rules.lint import RulesFileError, load_rules
from safeship.store import open_store
from safeship.testing_grafana import GrafanaDouble
from safeship.testing_kubernetes import KubernetesApiDouble

pytestmark = pytest.mark.integration

SRC = Path(__file__).resolve().parents[2] / "src" / "safeship"
LOOPBACK = {"127.0.0.1", "::1"}


# --- which addresses processes listen on ---------------------------------------------


def _proc_listeners() -> dict[int, str]:
    """Socket inode -> "address:port" of every listening TCP socket (IPv4 and IPv6)."""
    found: dict[int, str] = {}
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], int(fields[9])
            if state != "0A":  # TCP_LISTEN
                continue
            host_hex, port_hex = local.split(":")
            raw = bytes.fromhex(host_hex)
            # /proc prints each 32-bit word in host (little-endian) order.
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            host = socket.inet_ntop(socket.AF_INET6 if v6 else socket.AF_INET, raw)
            if v6 and host.startswith("::ffff:"):
                host = host.removeprefix("::ffff:")
            found[inode] = f"{host}:{int(port_hex, 16)}"
    return found


def _descendants(pid: int) -> set[int]:
    children: dict[int, set[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, set()).add(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), set()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def listening(pids: set[int]) -> dict[int, list[str]]:
    """pid -> the TCP addresses it listens on."""
    sockets = _proc_listeners()
    out: dict[int, list[str]] = {}
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inode = int(target[8:-1])
                if inode in sockets:
                    out.setdefault(pid, []).append(sockets[inode])
    return out


def assert_loopback_only(pids: set[int], expected_at_least: int) -> None:
    found = listening(pids)
    addresses = [a for group in found.values() for a in group]
    assert len(addresses) >= expected_at_least, found
    exposed = [a for a in addresses if a.rpartition(":")[0] not in LOOPBACK]
    assert not exposed, f"listening beyond loopback: {exposed} (all: {found})"


def _need(found: object, package: str) -> None:
    if found is None:
        message = f"not installed: apt-get install {package}"
        if os.environ.get("SAFESHIP_REQUIRE_INTEGRATION") == "1":
            pytest.fail(message)
        pytest.skip(message)


def test_the_listen_address_parser_reads_proc_right() -> None:
    with socket.socket() as inside, socket.socket() as everywhere:
        inside.bind(("127.0.0.1", 0))
        inside.listen()
        everywhere.bind(("0.0.0.0", 0))  # the negative control
        everywhere.listen()
        found = listening({os.getpid()})[os.getpid()]
        assert f"127.0.0.1:{inside.getsockname()[1]}" in found
        assert f"0.0.0.0:{everywhere.getsockname()[1]}" in found


def test_every_server_safeship_and_its_harness_start_listens_on_loopback(tmp_path: Path) -> None:
    """The demo sandbox (services, local router, load), the test servers and the doubles."""
    _need(find_haproxy(), "haproxy")
    _need(find_nginx(), "nginx-light")
    _need(find_postgres_bin(), "postgresql")
    me = os.getpid()
    with (
        sandbox(
            rps=20, store_url=f"sqlite:///{tmp_path / 'h.db'}", metrics_source="prometheus"
        ) as box,
        PushgatewayServer(),
        AlertmanagerServer("route: {receiver: x}\nreceivers: [{name: x}]\n"),
        PostgresServer(),
        HaproxyServer({"blue": box.stable.listen, "green": box.stable.listen}),
        NginxServer({"blue": box.stable.listen, "green": box.stable.listen}),
        GrafanaDouble(),
        KubernetesApiDouble(),
    ):
        # sandbox: Prometheus, stable service, router (listen, admin); six servers; two doubles
        assert_loopback_only({me} | _descendants(me), expected_at_least=12)


def _serve_ready(args: list[str], cwd: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "safeship", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc, proc.stdout.readline()
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_metrics_serve_and_router_serve_default_to_loopback(tmp_path: Path) -> None:
    """No address given: `metrics serve` and `router serve` (bare ports) bind 127.0.0.1 only."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "safeship.yaml"
    config.write_text(
        f"service: a\nmetrics: {{port: {port}}}\nstore: {{url: 'sqlite:///{tmp_path}/h.db'}}\n"
    )
    for proc, line in _serve_ready(["--config", str(config), "metrics", "serve"], tmp_path):
        assert line.startswith(f"serving http://127.0.0.1:{port}/"), line
        assert_loopback_only({proc.pid}, expected_at_least=1)
    router = ["router", "serve", "--listen", "0", "--admin", "0"]
    upstream = "http://127.0.0.1:9"
    for proc, line in _serve_ready([*router, "--stable", upstream, "--canary", upstream], tmp_path):
        assert line.startswith("ready listen=127.0.0.1:"), line
        assert "admin=127.0.0.1:" in line, line
        assert_loopback_only({proc.pid}, expected_at_least=2)


def test_the_demo_service_binds_only_where_told(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "safeship.demo.service", "--listen", "127.0.0.1:0"),
            *("--service", "a", "--environment", "e", "--version", "v", "--track", "stable"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert "listen=127.0.0.1:" in proc.stdout.readline()
        assert_loopback_only({proc.pid}, expected_at_least=1)
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


# --- TLS verification ---------------------------------------------------------------


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on loopback whose certificate no default trust store accepts."""
    root = tmp_path_factory.mktemp("tls")
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            body = b'{"status": "success", "data": {}}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_PUT = do_POST = do_GET

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert
    finally:
        server.shutdown()
        server.server_close()


VERIFY_FAILED = "CERTIFICATE_VERIFY_FAILED"


def test_make_client_verifies_tls_and_trusts_only_the_given_ca(
    self_signed: tuple[str, Path],
) -> None:
    url, cert = self_signed
    with make_client(url, timeout=5) as client, pytest.raises(httpx.ConnectError) as caught:
        client.get("/")
    assert VERIFY_FAILED in str(caught.value)
    with make_client(url, timeout=5, ca_file=cert) as client:
        assert client.get("/").status_code == 200  # the positive control: the server works


def test_every_http_client_safeship_builds_refuses_a_self_signed_certificate(
    self_signed: tuple[str, Path], tmp_path: Path
) -> None:
    url, _ = self_signed
    failures: dict[str, str] = {}

    def refused(name: str, call: Any) -> None:
        try:
            result = call()
        except (SafeshipError, OSError, httpx.HTTPError) as exc:
            failures[name] = f"{exc!r} {exc}"
            return
        failures[name] = f"no error: {result!r}"

    prometheus = PrometheusClient(PrometheusSettings(url=url, retries=0, timeout=5))
    refused("prometheus", prometheus.healthy)
    prometheus.close()
    grafana = GrafanaClient(url, "token", timeout=5, retries=0)
    refused("grafana", grafana.health)
    grafana.close()
    local = LocalRouter(url)
    refused("local router", lambda: local.health().detail)
    local.close()
    scrape = ScrapeProvider(f"{url}/metrics", f"{url}/metrics", timeout=5)
    refused("scrape provider", scrape.ready)
    smoke = SmokeTest(name="s", http=HttpSmokeTest(url=f"{url}/healthz", timeout=5))
    refused("smoke test", lambda: run_smoke_test(smoke, {}).detail)
    store = open_store(f"sqlite:///{tmp_path / 'h.db'}")
    try:
        metrics = DeploymentMetrics(CollectorRegistry(), store, service="a")
        refused("pushgateway", lambda: push_metrics(url, metrics, "e", timeout=5))
    finally:
        store.close()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: k, cluster: {{server: '{url}'}}}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
    kube = KubeApi(
        KubernetesRouterSettings(
            mode="replicas", slots=("blue", "green"), kubeconfig=str(kubeconfig), timeout=5
        )
    )
    refused("kubernetes", lambda: kube.get(DEPLOYMENT, "app"))
    kube.close()
    not_verified = {n: f for n, f in failures.items() if VERIFY_FAILED not in f}
    assert not not_verified, not_verified
    assert len(failures) == 7


# --- YAML ----------------------------------------------------------------------------

EXPLOIT = "!!python/object/apply:os.system ['touch {marker}']"


def test_src_never_loads_yaml_unsafely() -> None:
    unsafe = ("yaml.load(", "yaml.Loader", "unsafe_load", "UnsafeLoader", "FullLoader", "full_load")
    found = [
        f"{path.relative_to(SRC)}:{n}: {line.strip()}"
        for path in SRC.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if any(word in line for word in unsafe)
    ]
    assert not found, found


@pytest.mark.parametrize(
    "document",
    [
        "service: a\nhooks: {pre_rollout: [{command: " + EXPLOIT + "}]}\n",
        "service: " + EXPLOIT + "\n",
        EXPLOIT + "\n",
        "service: !!python/name:os.system ''\n",
        "service: a\n!!python/name:os.system k: 1\n",
        "service: a\nstore: !!python/object/new:os.system {args: ['touch {marker}']}\n",
    ],
)
def test_a_python_or_other_non_plain_yaml_tag_in_the_config_is_a_config_error(
    document: str, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(ConfigError) as caught:
        parse_config(document.replace("{marker}", str(marker)))
    assert "YAML tag" in "\n".join(caught.value.problems), caught.value.problems
    assert not marker.exists()


def test_other_yaml_inputs_refuse_python_tags(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.yml"
    evil.write_text("groups: " + EXPLOIT.format(marker=marker) + "\n")
    with pytest.raises(RulesFileError):
        load_rules(evil)
    with pytest.raises((SafeshipError, ValueError)):
        load_routing_cases(evil)
    assert not marker.exists()


# --- shell ---------------------------------------------------------------------------

# The one place a shell may run: a hook or smoke test whose config says `shell: true`
# (a string command is refused without it).
SHELL_ALLOWED = {
    ("rollout/hooks.py", "shell"),
    ("rollout/hooks.py", "hook.shell"),
    ("rollout/hooks.py", "test.shell"),
}


def _calls(tree: ast.AST) -> Iterator[ast.Call]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _name(func: ast.expr) -> str:
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def test_src_builds_no_shell_command() -> None:
    """No os.system/os.popen; no subprocess call with a string command or shell= other than
    the hook runner's `shell=shell` (the config's explicit choice)."""
    problems = []
    for path in SRC.rglob("*.py"):
        where = str(path.relative_to(SRC))
        for call in _calls(ast.parse(path.read_text())):
            name = _name(call.func)
            if name in ("os.system", "os.popen", "os.execl", "os.spawnl", "commands.getoutput"):
                problems.append(f"{where}:{call.lineno}: {name}")
            for keyword in call.keywords:
                if keyword.arg != "shell":
                    continue
                value = keyword.value
                if isinstance(value, ast.Constant) and value.value is False:
                    continue
                if (where, ast.unparse(value)) in SHELL_ALLOWED:
                    continue
                problems.append(f"{where}:{call.lineno}: shell={ast.unparse(value)}")
            if name.startswith("subprocess.") and call.args:
                first = call.args[0]
                if isinstance(first, ast.Constant | ast.JoinedStr | ast.BinOp):
                    problems.append(f"{where}:{call.lineno}: {name}({ast.unparse(first)}, ...)")
    assert not problems, problems


@pytest.mark.parametrize("shell", [True, False])
def test_a_hostile_version_reaches_a_hook_as_data_never_as_code(
    shell: bool, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    out = tmp_path / "seen"
    version = f"$(touch {marker})`touch {marker}`;touch {marker}"
    hook_config = (
        {"command": f'printf %s "$SAFESHIP_VERSION" > {out}', "shell": True}
        if shell
        else {
            "command": [
                sys.executable,
                "-c",
                f"import os; open({str(out)!r}, 'w').write(os.environ['SAFESHIP_VERSION'])",
            ]
        }
    )
    config = parse_config("service: a\n", env={}).hooks.model_validate(
        {"pre_rollout": [hook_config]}
    )
    env = rollout_env(
        deployment_id=f"d;touch {marker}", service="a", environment="e", version=version, weight=0
    )
    result = run_hook("pre_rollout", 0, config.pre_rollout[0], env)
    assert result.passed, result.detail
    time.sleep(0.05)
    assert not marker.exists()
    assert out.read_text() == version


def test_urllib_default_context_verifies(self_signed: tuple[str, Path]) -> None:
    """What prometheus_client's push handler uses: urllib's default HTTPS verification."""
    url, _ = self_signed
    with pytest.raises(OSError, match=VERIFY_FAILED):
        urllib.request.urlopen(url, timeout=5)


# --- admin and metrics listeners: loopback unless meant, and then a token -------------


def _proxy(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "safeship", "router", "serve", "--listen", "127.0.0.1:0"]
    command += ["--stable", "http://127.0.0.1:9", "--canary", "http://127.0.0.1:9", *args]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize("admin", ["0.0.0.0:0", "[::]:0", "example.org:8081"])
def test_router_serve_refuses_an_admin_api_beyond_loopback_unless_meant(admin: str) -> None:
    # Before: `--admin 0.0.0.0:PORT` listened on every interface, without authentication.
    refused = _proxy("--admin", admin)
    _, err = refused.communicate(timeout=30)
    assert refused.returncode == 2
    assert "is not a loopback address" in err
    assert "--allow-remote" in err
    no_token = _proxy("--admin", admin, "--allow-remote")
    _, err = no_token.communicate(timeout=30)
    assert no_token.returncode == 2
    assert "--allow-remote needs a token" in err


def test_an_admin_api_beyond_loopback_answers_only_its_token(tmp_path: Path) -> None:
    token_file = tmp_path / "admin-token"
    token_file.write_text("s3cret-admin-token\n")
    proxy = _proxy("--admin", "0.0.0.0:0", "--allow-remote", "--admin-token-file", str(token_file))
    try:
        assert proxy.stdout is not None
        ready = proxy.stdout.readline()
        assert ready.startswith("ready ")
        port = ready.split("admin=")[1].strip().rsplit(":", 1)[1]
        admin = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{admin}/healthz").status_code == 200  # says nothing: open
        bare = {"Authorization": "s3cret-admin-token"}  # no scheme: refused
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}, bare):
            assert httpx.get(f"{admin}/weights", headers=headers).status_code == 401
            put = httpx.put(f"{admin}/weights", json={"canary_weight": 100}, headers=headers)
            assert put.status_code == 401
        lower = {"Authorization": "bearer s3cret-admin-token"}  # the scheme is case-blind
        assert httpx.get(f"{admin}/weights", headers=lower).status_code == 200
        router = LocalRouter(admin, admin_token="s3cret-admin-token")
        try:
            router.set_weight(30)
            assert router.get_weight() == 30
        finally:
            router.close()
        without = LocalRouter(admin)
        try:
            with pytest.raises(SafeshipError, match="401"):
                without.get_weight()
        finally:
            without.close()
    finally:
        proxy.terminate()
        proxy.communicate(timeout=30)


def test_a_token_from_the_environment_guards_a_loopback_admin_api_too() -> None:
    proxy = _proxy("--admin", "127.0.0.1:0", env={"SAFESHIP_ADMIN_TOKEN": "env-token-1234"})
    try:
        assert proxy.stdout is not None
        port = proxy.stdout.readline().split("admin=")[1].strip().rsplit(":", 1)[1]
        assert httpx.get(f"http://127.0.0.1:{port}/weights").status_code == 401
        ok = httpx.get(
            f"http://127.0.0.1:{port}/weights", headers={"Authorization": "Bearer env-token-1234"}
        )
        assert ok.status_code == 200
    finally:
        proxy.terminate()
        proxy.communicate(timeout=30)


def test_metrics_serve_stays_on_loopback_unless_meant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from safeship.cli.main import main

    monkeypatch.chdir(tmp_path)
    store = f"sqlite:///{tmp_path / 'history.db'}"
    (tmp_path / "safeship.yaml").write_text(f"service: a\nstore: {{url: '{store}'}}\n")
    assert main(["metrics", "serve", "--address", "0.0.0.0", "--port", "0"]) == 2
    assert "add --allow-remote" in capsys.readouterr().err
    with pytest.raises(ConfigError) as refused:
        parse_config("service: a\nmetrics: {address: 0.0.0.0}\n", "safeship.yaml", env={})
    assert "set allow_remote: true" in refused.value.problems[0]
    meant = parse_config(
        "service: a\nmetrics: {address: 0.0.0.0, allow_remote: true}\n", "safeship.yaml", env={}
    )
    assert meant.metrics.address == "0.0.0.0"


def test_a_loopback_admin_api_refuses_a_host_that_is_not_loopback() -> None:
    # DNS rebinding: a web page whose name now resolves to 127.0.0.1 sends its own Host.
    proxy = _proxy("--admin", "127.0.0.1:0")
    try:
        assert proxy.stdout is not None
        port = proxy.stdout.readline().split("admin=")[1].strip().rsplit(":", 1)[1]
        admin = f"http://127.0.0.1:{port}"
        rebound = {"Host": f"attacker.example:{port}"}
        put = httpx.put(f"{admin}/weights", json={"canary_weight": 100}, headers=rebound)
        assert put.status_code == 403
        assert httpx.get(f"{admin}/weights").json()["canary_weight"] == 0
        for host in (f"localhost:{port}", f"LOCALHOST:{port}", f"127.0.0.1:{port}", "[::1]"):
            assert httpx.get(f"{admin}/weights", headers={"Host": host}).status_code == 200
    finally:
        proxy.terminate()
        proxy.communicate(timeout=30)
