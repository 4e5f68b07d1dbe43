"""No secret ever appears in anything safeship shows, writes or stores.

Distinctive canary secrets are planted everywhere a config can carry one: the
Grafana token and the Prometheus credentials (through `SecretRef`s, from the
environment and from files), a PostgreSQL store URL with a password, a
Pushgateway URL with user:password, Alertmanager receiver secrets (files),
values interpolated from the environment (`${VAR}`), and hooks and smoke tests
that print every secret they can reach. Then every command of the CLI (taken
from the click group itself, so a new command cannot be missed) runs with them,
as a GitHub Actions step (`$GITHUB_OUTPUT`, `$GITHUB_STEP_SUMMARY`) with
verbose JSON logs, on success paths (a real local stack, a Grafana double, a
real Pushgateway and PostgreSQL) and error paths (closed ports, a Grafana that
answers 401 or 500, a Prometheus behind a proxy that echoes the credentials it
was sent). Everything is then searched for every secret, in its plain,
URL-encoded and JSON-escaped forms: stdout, stderr, the GitHub files, every file
written under the working directory, the served /metrics, and a dump of every
table of the SQLite and PostgreSQL history stores.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import html
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import click
import psycopg
import pytest
from psycopg import sql

from safeship.cli.main import cli
from safeship.demo.load import LoadGenerator
from safeship.demo.monitoring import PushgatewayServer, find_binary
from safeship.demo.postgres_server import PostgresServer, find_postgres_bin
from safeship.demo.service import start_service
from safeship.routers.local import start_local_proxy
from safeship.testing_grafana import GrafanaDouble
from safeship.testing_http import LoopbackDouble

pytestmark = pytest.mark.integration

# --- the canary secrets -------------------------------------------------------------

GRAFANA_TOKEN = "glsa_CANARY_TOKEN_7f3a9e"
PROM_BEARER_ENV = "CANARY_PROM_BEARER_2b8d41"
PROM_BEARER_FILE = "CANARY_PROM_BEARER_FILE_6c1f07"
PROM_BASIC_ENV = "CANARY_PROM_BASICPW_4d7b55"
# Quotes, `&`, `/` and an accent, and long enough (70 bytes) that its base64 wraps: it is
# printed shell-quoted, HTML-escaped, in repr and wrapped base64 by the hooks below.
PROM_BASIC_FILE = 'CANARY_PROM_BASICPW_FILE_it\'s_"quoted"_&_/slashed/_\u00e9_9e2a31_0123456'
PROM_URL_PASSWORD = "CANARY_PROM_URLPW_e41b"
STORE_PASSWORD = "CANARYPASS_91c2"
PUSH_PASSWORD = "CANARY/push@pw_3e5f"  # `/` and `@`: the URL carries it percent-encoded
HOOK_SECRET = "CANARY_HOOK_SECRET_0a9c"
SMOKE_TOKEN = "CANARY_SMOKE_TOKEN_8f6e"
SCRAPE_PASSWORD = "CANARY_SCRAPE_PW_73d0"
CLI_URL_PASSWORD = "CANARY_CLI_URLPW_b5c2"
UPSTREAM_PASSWORD = "CANARY_UPSTREAM_PW_19fa"
ADMIN_PASSWORD = "CANARY_ADMIN_PW_c7e1"  # the local router's admin URL
GRAFANA_URL_PASSWORD = "CANARY_GRAFANA_URLPW_d4e8"  # the rollouts' Grafana URL (Basic)
PAGERDUTY_KEY = "CANARY_PAGERDUTY_KEY_1b3d"
SLACK_URL = "https://hooks.slack.com/services/T000/B000/CANARY_SLACK_5a6b"
SECRETS = {
    "grafana token": GRAFANA_TOKEN,
    "prometheus bearer (env)": PROM_BEARER_ENV,
    "prometheus bearer (file)": PROM_BEARER_FILE,
    "prometheus basic-auth password (env)": PROM_BASIC_ENV,
    "prometheus basic-auth password (file)": PROM_BASIC_FILE,
    "prometheus URL password (interpolated)": PROM_URL_PASSWORD,
    "store password": STORE_PASSWORD,
    "pushgateway password": PUSH_PASSWORD,
    "hook env secret (interpolated)": HOOK_SECRET,
    "smoke test token (interpolated)": SMOKE_TOKEN,
    "scrape URL password (interpolated)": SCRAPE_PASSWORD,
    "command-line URL password": CLI_URL_PASSWORD,
    "router upstream password": UPSTREAM_PASSWORD,
    "router admin URL password": ADMIN_PASSWORD,
    "grafana URL password (interpolated)": GRAFANA_URL_PASSWORD,
    "pagerduty routing key (file)": PAGERDUTY_KEY,
    "slack webhook URL (file)": SLACK_URL,
}
SECRET_ENV = {
    "SS_GRAFANA_TOKEN": GRAFANA_TOKEN,
    "SS_PROM_BEARER": PROM_BEARER_ENV,
    "SS_PROM_BASIC": PROM_BASIC_ENV,
    "SS_PROM_URL_PW": PROM_URL_PASSWORD,
    "SS_HOOK_SECRET": HOOK_SECRET,
    "SS_SMOKE_TOKEN": SMOKE_TOKEN,
    "SS_SCRAPE_PW": SCRAPE_PASSWORD,
    "SS_GRAFANA_URL_PW": GRAFANA_URL_PASSWORD,
}
PUSH_USERINFO = f"pushuser:{urllib.parse.quote(PUSH_PASSWORD, safe='')}"

# A hook / smoke test that prints the secrets it can reach (the environment variables named
# in argv[2], the files argv[3:]) and exits with argv[1]: what a careless deploy script logs.
# It prints only secrets the config refers to: safeship cannot know any other value.
# Each secret goes out in every form a script commonly prints it in: plain, URL-encoded (%XX,
# + and httpx's partial encoding), JSON-escaped (also with `\\/` and upper-case `\\u00E9`),
# base64 (also wrapped as GNU base64 and openssl print it), as the Basic header `curl -v -u
# deploy:$SECRET` shows (also URL-safe), shell-quoted as bash `set -x` and shlex.quote print
# it, in Python's repr and HTML-escaped; and `promuser:$SECRET` (the basic-auth user the
# config names) as `printf %s "promuser:$PW" | base64` wraps it, and URL-safe.
PRINTER = (
    "import base64, html, json, os, pathlib, re, shlex, sys, textwrap, urllib.parse\n"
    "names = sys.argv[2].split(',')\n"
    "values = [os.environ.get(n, '') for n in names]\n"
    "values += [pathlib.Path(p).read_text().strip() for p in sys.argv[3:]]\n"
    "def forms(v):\n"
    "    raw, userpass = v.encode(), f'deploy:{v}'.encode()\n"
    "    basic, known = base64.b64encode(userpass).decode(), f'promuser:{v}'.encode()\n"
    "    escaped = json.dumps(v)\n"
    "    return [v, urllib.parse.quote(v, safe=''), urllib.parse.quote_plus(v),\n"
    "            escaped, base64.b64encode(raw).decode(),\n"
    "            f'> Authorization: Basic {basic}', f'-H \"Authorization: Bearer {v}\"',\n"
    '            urllib.parse.quote(v, safe="!$&\'()*+,;=:@/"),\n'
    "            escaped.replace('/', '\\\\/'),\n"
    "            re.sub(r'\\\\u([0-9a-f]{4})', lambda m: '\\\\u' + m.group(1).upper(), escaped),\n"
    "            base64.encodebytes(raw).decode(),\n"
    "            '\\n'.join(textwrap.wrap(base64.b64encode(raw).decode(), 64)),\n"
    "            base64.urlsafe_b64encode(userpass).decode(),\n"
    "            base64.encodebytes(known).decode(), base64.urlsafe_b64encode(known).decode(),\n"
    '            "+ psql --password \'" + v.replace("\'", "\'\\\\\'\'") + "\'",\n'
    "            shlex.quote(v), repr(v), html.escape(v)]\n"
    "text = ' '.join(f for v in values if v for f in forms(v))\n"
    "print('stdout:', text)\n"
    "print('stderr:', text, file=sys.stderr)\n"
    "sys.exit(int(sys.argv[1]))\n"
)


def _wrapped(encoded: str) -> dict[str, str]:
    """The lines base64 `encoded` is printed in when wrapped at 76 (GNU base64) or 64
    (openssl) columns; none when it fits on one line."""
    return {
        f"line {i // width + 1} at {width} columns": encoded[i : i + width]
        for width in (76, 64)
        if len(encoded) > width
        for i in range(0, len(encoded), width)
    }


def needles(value: str) -> dict[str, str]:
    """The forms a secret can take in output: those `PRINTER` prints (and wrapped base64 of
    any long secret), each as the text the secret alone decides (a quoted form's inside)."""
    encoded = base64.b64encode(value.encode()).decode()
    basic = base64.b64encode(f"deploy:{value}".encode()).decode().rstrip("=")
    escaped = json.dumps(value)[1:-1]
    forms = {
        "plain": value,
        "url-encoded": urllib.parse.quote(value, safe=""),
        "form-encoded": urllib.parse.quote_plus(value),
        "httpx-encoded": urllib.parse.quote(value, safe="!$&'()*+,;=:@/"),
        "json-escaped": escaped,
        "json-escaped with \\/": escaped.replace("/", "\\/"),
        "json-escaped with upper-case hex": re.sub(
            r"\\u([0-9a-f]{4})", lambda m: "\\u" + m.group(1).upper(), escaped
        ),
        "base64": encoded,
        **{f"base64 {where}": line for where, line in _wrapped(encoded).items()},
        "basic-auth header as deploy": basic,
        "url-safe basic-auth header as deploy": basic.translate(str.maketrans("+/", "-_")),
        "shell-quoted (bash set -x)": value.replace("'", "'\\''"),
        "shell-quoted (shlex.quote)": value.replace("'", "'\"'\"'"),
        "python repr": repr(value)[1:-1],
        "html-escaped": html.escape(value),
    }
    return {kind: text for kind, text in forms.items() if kind == "plain" or text != value}


def _basic_forms(value: str) -> dict[str, str]:
    """`promuser:value` (the config's basic-auth user) as a header carries it, URL-safe, and
    in the lines of its wrapped encodings."""
    encoded = base64.b64encode(f"promuser:{value}".encode()).decode()
    return {
        "": encoded,
        " (url-safe)": encoded.translate(str.maketrans("+/", "-_")).rstrip("="),
        **{f" ({where})": line for where, line in _wrapped(encoded).items()},
    }


BASIC_HEADERS = {
    f"basic-auth header of {name}{kind}": text
    for name, value in (("env", PROM_BASIC_ENV), ("file", PROM_BASIC_FILE))
    for kind, text in _basic_forms(value).items()
}


@dataclass(frozen=True)
class Capture:
    """One piece of output: where it came from and its text."""

    where: str
    text: str


def find_leaks(captures: Sequence[Capture]) -> list[str]:
    """Every (capture, secret, form) where a secret shows, with some context."""
    hits = []
    wanted = [
        (f"{name} ({kind})", text)
        for name, value in SECRETS.items()
        for kind, text in needles(value).items()
    ] + list(BASIC_HEADERS.items())
    for capture in captures:
        for what, needle in wanted:
            at = capture.text.find(needle)
            if at >= 0:
                context = capture.text[max(0, at - 100) : at + len(needle) + 40]
                hits.append(f"{what} in {capture.where}: ...{context!r}...")
    return hits


# --- the commands ---------------------------------------------------------------------


def all_commands(command: click.Command = cli, path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every runnable command path: leaves, and groups that run without a subcommand."""
    if not isinstance(command, click.Group):
        return {path}
    found = {path} if path and command.invoke_without_command else set()
    for name, sub in command.commands.items():
        found |= all_commands(sub, (*path, name))
    return found


def command_path(args: Sequence[str]) -> tuple[str, ...]:
    """The command path `args` invokes, resolved against the click tree as click does."""
    command: click.Command = cli
    path: tuple[str, ...] = ()
    tokens = iter(args)
    for token in tokens:
        if token.startswith("-"):
            name = token.split("=", 1)[0]
            option = next((p for p in command.params if name in p.opts), None)
            if (
                isinstance(option, click.Option)
                and not option.is_flag
                and "=" not in token
                and not option.count
            ):
                next(tokens, None)
            continue
        if isinstance(command, click.Group) and token in command.commands:
            command = command.commands[token]
            path = (*path, token)
            continue
        break
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class EchoingPrometheus(LoopbackDouble):
    """A Prometheus behind a proxy that quotes the credentials it received in its errors.

    Health endpoints answer 200; the API answers by path prefix: /p1 a 500 with a
    text body, /p2 a 401 API error, /p3 a 400 bad_data error, each quoting the
    Authorization header (decoded, for basic auth).
    """

    def handler(self) -> type[BaseHTTPRequestHandler]:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    auth += " = " + base64.b64decode(auth[6:]).decode()
                path = urllib.parse.urlsplit(self.path).path
                if path.endswith(("/-/healthy", "/-/ready")):
                    self._reply(200, "text/plain", "Prometheus is Healthy.")
                elif path.startswith("/p1"):
                    self._reply(500, "text/plain", f"upstream error; request had {auth}")
                elif path.startswith("/p2"):
                    body = {"status": "error", "errorType": "unauthorized", "error": auth}
                    self._reply(401, "application/json", json.dumps(body))
                else:
                    body = {"status": "error", "errorType": "bad_data", "error": f"no: {auth}"}
                    self._reply(400, "application/json", json.dumps(body))

            do_POST = do_GET

            def _reply(self, status: int, kind: str, text: str) -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


@dataclass
class World:
    """Where the commands run, what they printed and which commands ran."""

    work: Path
    secrets_dir: Path
    env: dict[str, str]
    captures: list[Capture] = field(default_factory=list)
    covered: set[tuple[str, ...]] = field(default_factory=set)
    results: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _count: int = 0

    def _next(self) -> int:
        with self._lock:
            self._count += 1
            return self._count

    def _env(self, n: int, extra: dict[str, str] | None) -> dict[str, str]:
        gh = self.work / ".gh"
        return {
            **self.env,
            "GITHUB_OUTPUT": str(gh / f"{n:03d}.output"),
            "GITHUB_STEP_SUMMARY": str(gh / f"{n:03d}.summary.md"),
            **(extra or {}),
        }

    def record(self, where: str, args: Sequence[str], stdout: str, stderr: str) -> None:
        with self._lock:
            self.covered.add(command_path(args))
            self.captures.append(Capture(f"stdout of {where}", stdout))
            self.captures.append(Capture(f"stderr of {where}", stderr))

    def run(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 90
    ) -> subprocess.CompletedProcess[str]:
        """`safeship -v ARGS` as a GitHub Actions step; output captured for the search."""
        n = self._next()
        argv = ["-v", *args]
        proc = subprocess.run(
            [sys.executable, "-m", "safeship", *argv],
            cwd=self.work,
            env=self._env(n, env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        where = f"#{n} `safeship {' '.join(argv)}` (exit {proc.returncode})"
        self.record(where, argv, proc.stdout, proc.stderr)
        with self._lock:
            self.results[" ".join(args)] = proc
        return proc

    def serve(
        self, *args: str, ready: Callable[[str], str], env: dict[str, str] | None = None
    ) -> None:
        """A foreground server command: started, `ready(first line)` fetched, stopped."""
        n = self._next()
        argv = ["-v", *args]
        proc = subprocess.Popen(
            [sys.executable, "-m", "safeship", *argv],
            cwd=self.work,
            env=self._env(n, env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        fetched = ""
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            fetched = ready(first)
        finally:
            proc.terminate()
            out, err = proc.communicate(timeout=15)
        where = f"#{n} `safeship {' '.join(argv)}` (served)"
        self.record(where, argv, first + out, err)
        with self._lock:
            self.captures.append(Capture(f"what {where} served", fetched))


def fetch(url: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return str(response.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# --- configs --------------------------------------------------------------------------


def full_config(
    *, echo: str, closed: int, secrets_dir: Path, store: str, grafana: str, pushgateway: str
) -> str:
    """Every secret-bearing setting there is, with Prometheus behind the echoing proxy."""
    names = (
        "SS_GRAFANA_TOKEN,SS_PROM_BEARER,SS_PROM_BASIC,SS_PROM_URL_PW,SS_HOOK_SECRET,DEPLOY_TOKEN"
    )
    printer = json.dumps(
        [sys.executable, "-c", PRINTER, "1", names, str(secrets_dir / "prom_bearer")]
    )
    return f"""
service: checkout
environments:
  production:
    prometheus:
      url: {echo}/p1
      retries: 0
      timeout: 2
      bearer_token: {{env: SS_PROM_BEARER}}
  staging:
    prometheus:
      url: {echo}/p2
      retries: 0
      timeout: 2
      basic_auth: {{username: promuser, password: {{file: {secrets_dir / "prom_basic_pw"}}}}}
  qa:
    prometheus:
      url: {echo}/p3
      retries: 0
      timeout: 2
      bearer_token: {{file: {secrets_dir / "prom_bearer"}}}
  dev:
    prometheus:
      url: http://127.0.0.1:{closed}/dev
      retries: 0
      timeout: 2
      basic_auth: {{username: promuser, password: {{env: SS_PROM_BASIC}}}}
provider: {{type: prometheus}}
prometheus:
  url: "http://promuser:${{SS_PROM_URL_PW}}@127.0.0.1:{closed}"
  retries: 0
  timeout: 2
router: {{type: local, admin_url: "http://admin:{ADMIN_PASSWORD}@127.0.0.1:{closed}", timeout: 1}}
smoke_tests:
  - name: api
    http: {{url: "http://127.0.0.1:{closed}/healthz?access=${{SS_SMOKE_TOKEN}}"}}
  - name: printer
    command: {printer}
hooks:
  pre_rollout:
    - command: {printer}
      env: {{DEPLOY_TOKEN: "${{SS_HOOK_SECRET}}"}}
store: {{url: "{store}"}}
pushgateway: {{url: "{pushgateway}", timeout: 3}}
grafana:
  url: {grafana}
  token: {{env: SS_GRAFANA_TOKEN}}
  retries: 0
  timeout: 3
alerting:
  alertmanager:
    pager: {{type: pagerduty, routing_key_file: {secrets_dir / "pagerduty_key"}}}
    chat: {{type: slack, api_url_file: {secrets_dir / "slack_url"}, channel: "#deploys"}}
    ticket: {{type: webhook, url: "http://127.0.0.1:9095/alerts"}}
"""


def rollout_config(*, admin: str, secrets_dir: Path, store: str, grafana: str) -> str:
    """A real short rollout on the local stack, with hooks and smoke tests printing secrets.

    Scrape and smoke-test URLs follow the slots, with secrets in them.
    """

    names = (
        "SS_GRAFANA_URL_PW,SS_HOOK_SECRET,DEPLOY_TOKEN,SS_SMOKE_TOKEN,SS_SCRAPE_PW,PUSHGATEWAY_URL"
    )

    def printer(code: int) -> str:
        file = str(secrets_dir / "prom_basic_pw")
        return json.dumps([sys.executable, "-c", PRINTER, str(code), names, file])

    return f"""
service: checkout
environments:
  production: {{}}
  smoke:
    smoke_tests:
      - name: prints-secrets-and-fails
        command: {printer(1)}
  paused:
    canary: {{steps: [50, 100], hold: 1.2, warmup: 0.2, interval: 0.4, min_requests: 1000000}}
canary: {{steps: [50, 100], hold: 3, warmup: 0.5, interval: 0.5, min_requests: 30}}
router: {{type: local, admin_url: "{admin.replace("://", f"://admin:{ADMIN_PASSWORD}@")}"}}
provider:
  type: scrape
  canary_url: "http://{{{{ canary_address }}}}/metrics"
  baseline_url: "http://scraper:${{SS_SCRAPE_PW}}@{{{{ stable_address }}}}/metrics"
smoke_tests:
  - name: canary-health
    http:
      url: "http://{{{{ canary_address }}}}/healthz?access=${{SS_SMOKE_TOKEN}}"
      expect_body: ok
  - name: prints-secrets
    command: {printer(0)}
hooks:
  pre_rollout:
    - command: {printer(0)}
      env: {{DEPLOY_TOKEN: "${{SS_HOOK_SECRET}}"}}
  pre_promotion:
    - command: {printer(0)}
  post_promotion:
    - command: {printer(3)}
      env: {{DEPLOY_TOKEN: "${{SS_HOOK_SECRET}}"}}
  on_rollback:
    - command: {printer(4)}
prometheus:
  url: http://127.0.0.1:1
  basic_auth: {{username: promuser, password: {{file: {secrets_dir / "prom_basic_pw"}}}}}
store: {{url: "{store}"}}
grafana:
  url: "{grafana.replace("://", "://grafuser:${SS_GRAFANA_URL_PW}@")}"
  retries: 0
  timeout: 3
"""


# --- the run --------------------------------------------------------------------------


def _base_env(work: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SAFESHIP_", "GITHUB_", "GRAFANA_", "PROMETHEUS_", "PUSHGATEWAY_"))
    }
    return {
        **env,
        **SECRET_ENV,
        "GITHUB_ACTIONS": "true",
        "CI": "true",  # JSON log lines, as in a workflow run
        "SAFESHIP_LOG_FORMAT": "json",
        "HOME": str(work),
    }


def _postgres_with_password(server: PostgresServer) -> str:
    """A role with a password and a database it owns; the URL carries the password.

    The server trusts loopback, so the password is not checked, but every part of
    safeship handles the URL exactly as it would a checked one.
    """
    with psycopg.connect(
        host="127.0.0.1", port=server.port, user=server.user, dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE deployer LOGIN PASSWORD {}").format(sql.Literal(STORE_PASSWORD))
        )
        conn.execute(sql.SQL("CREATE DATABASE secretdb OWNER deployer"))
    return f"postgresql://deployer:{STORE_PASSWORD}@127.0.0.1:{server.port}/secretdb"


def _postgres_dump(url: str) -> list[Capture]:
    captures = []
    with psycopg.connect(url.replace("postgresql://", "postgresql://", 1)) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            )
        ]
        for table in tables:
            rows = conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))
            text = "\n".join(repr(row) for row in rows)
            captures.append(Capture(f"PostgreSQL store table {table}", text))
    return captures


def _sqlite_dump(path: Path) -> list[Capture]:
    captures = []
    with sqlite3.connect(path) as conn:
        tables = [
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        ]
        for table in tables:
            rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
            captures.append(
                Capture(f"SQLite {path.name} table {table}", "\n".join(map(repr, rows)))
            )
    return captures


# Files under the working directory that hold secrets by design: the test's own configs
# (inputs, not output), and the local proxy's state file, which must keep the upstream
# URLs it was given, credentials included, to route the same way after a restart.
NOT_OUTPUT = {"safeship.yaml", "rollout.yaml", "bad.yaml", ".safeship/router.json"}


def _files(root: Path) -> list[Capture]:
    captures = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and str(path.relative_to(root)) not in NOT_OUTPUT:
            text = path.read_bytes().decode("utf-8", errors="replace")
            captures.append(Capture(f"file {path.relative_to(root)}", text))
    return captures


def _paused_id(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 4, proc.stdout + proc.stderr
    deployment_id: str = json.loads(proc.stdout)["deployment_id"]
    return deployment_id


def _rollouts(w: World, grafana: GrafanaDouble, pushgateway_url: str) -> None:
    """Real rollouts on the local stack: promoted, failed smoke test, paused and answered."""
    push = {"PUSHGATEWAY_URL": pushgateway_url}
    with (
        contextlib.ExitStack() as services,
        start_service("127.0.0.1:0", "checkout", "production", "v1", "stable") as stable,
        start_service("127.0.0.1:0", "checkout", "production", "v2", "canary") as canary,
        start_local_proxy("127.0.0.1:0", "127.0.0.1:0", stable.url, canary.url) as proxy,
        LoadGenerator(proxy.url, rps=150),
    ):

        def deploy(version: str) -> None:
            """What a deploy hook does: the new version into the canary slot."""
            started = services.enter_context(
                start_service("127.0.0.1:0", "checkout", "production", version, "canary")
            )
            body = json.dumps({"canary": started.url}).encode()
            request = urllib.request.Request(
                f"{proxy.admin_url}/upstreams", data=body, method="PUT"
            )
            with urllib.request.urlopen(request, timeout=5) as answer:
                assert answer.status == 200

        config = w.work / "rollout.yaml"
        config.write_text(
            rollout_config(
                admin=proxy.admin_url,
                secrets_dir=w.secrets_dir,
                store=f"sqlite:///{w.work / '.safeship' / 'history.db'}",
                grafana=grafana.url,
            )
        )
        c = ("--config", str(config))
        promoted = w.run(*c, "rollout", "--env", "production", "--version", "v2", env=push)
        assert promoted.returncode == 0, promoted.stdout + promoted.stderr
        deploy("v3")
        smoke = w.run(*c, "rollout", "--env", "smoke", "--version", "v3", "--json", env=push)
        assert smoke.returncode == 1, smoke.stdout + smoke.stderr
        w.run(*c, "router", "status", "--env", "production")
        w.run(*c, "router", "status", "--env", "production", "--json")

        deploy("v4")
        first = _paused_id(w.run(*c, "rollout", "--env", "paused", "--version", "v4", "--json"))
        w.run(*c, "rollout", "status")
        w.run(*c, "rollout", "status", first, "--json")
        assert w.run(*c, "rollout", "resume", first, "--json").returncode == 4
        w.run(*c, "rollout", "abort", first)
        deploy("v5")
        second = _paused_id(w.run(*c, "rollout", "--env", "paused", "--version", "v5", "--json"))
        w.run(*c, "rollout", "promote", second, "--json", env=push)

        listed = w.run(*c, "rollout", "list", "--json")
        for record in json.loads(listed.stdout)["deployments"]:
            w.run(*c, "rollout", "explain", record["id"])
            w.run(*c, "rollout", "explain", record["id"], "--json")
        w.run(*c, "rollout", "list")
        w.run(*c, "rollout", "status", "--json")
        w.run(*c, "config", "show", "--env", "smoke")


def _dashboards(w: World, c: tuple[str, ...], bad_token: str, failing: str, closed: int) -> None:
    w.run("dashboards", "generate", "--dir", "dashboards")
    pushed = w.run(*c, "dashboards", "push", "--deployment-id", "dash-1", "--commit", "abc")
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    w.run(*c, "dashboards", "versions", "safeship-deployment-overview")
    w.run(*c, "dashboards", "versions", "safeship-deployment-overview", "--json")
    w.run(*c, "dashboards", "rollback", "--deployment", "dash-1")
    w.run(
        *c, "dashboards", "rollback", "--uid", "safeship-deployment-overview", "--to-version", "1"
    )
    closed_url = f"http://admin:{CLI_URL_PASSWORD}@127.0.0.1:{closed}"
    for url in (bad_token, failing, closed_url):
        w.run(*c, "dashboards", "push", "--url", url, "--strict")
    w.run(*c, "dashboards", "versions", "safeship-deployment-overview", "--url", bad_token)
    w.run(*c, "dashboards", "rollback", "--deployment", "dash-1", "--url", failing)


def _rules_and_alerts(w: World, c: tuple[str, ...], echo: str, closed: int) -> None:
    w.run(*c, "rules", "generate")
    w.run(*c, "rules", "generate", "--check")
    tests = w.work / ".prometheus" / "tests"
    tests.mkdir(parents=True, exist_ok=True)
    (tests / "smoke.yml").write_text(
        "rule_files: [../alerts.yml]\nevaluation_interval: 1m\ntests:\n"
        "  - interval: 1m\n    input_series: []\n    alert_rule_test: []\n"
    )
    w.run(*c, "rules", "test")
    url = f"http://promuser:{CLI_URL_PASSWORD}@127.0.0.1:{closed}"
    w.run(*c, "rules", "lint", ".prometheus/alerts.yml", "--prometheus-url", url, "--json")
    w.run(*c, "--prometheus-url", f"{echo}/p3", "rules", "lint", ".prometheus/alerts.yml")
    w.run(*c, "alertmanager", "generate")
    w.run(*c, "alertmanager", "generate", "--check")
    w.run(*c, "alertmanager", "test")
    w.run("init", "--dir", str(w.work / "fresh-project"), "-y")
    w.run("demo", "service", "--listen", f"127.0.0.1:{closed}")  # no version: usage error


def _checks(w: World, c: tuple[str, ...], echo: str, closed: int) -> None:
    w.run(*c, "check")
    w.run(*c, "check", "prometheus", "--strict", "--json")
    w.run(*c, "check", "prometheus", "--url", f"http://u:{CLI_URL_PASSWORD}@127.0.0.1:{closed}")
    url = f"http://u:{CLI_URL_PASSWORD}@{echo.removeprefix('http://')}/p1"
    w.run("check", "prometheus", "--json", "--url", url)


def _config_commands(w: World, c: tuple[str, ...], bad: Path) -> None:
    w.run(*c, "config", "validate")
    w.run(*c, "config", "validate", "--json")
    w.run("config", "validate", str(bad))
    w.run("config", "validate", "--json", str(bad))
    w.run("--config", str(bad), "config", "show")
    w.run("config", "schema")
    w.run(*c, "config", "show")
    w.run(*c, "config", "show", "--env", "staging")


def _stores_and_metrics(
    w: World, c: tuple[str, ...], pg_url: str, pushgateway: str, closed: int
) -> None:
    closed_pg = f"postgresql://deployer:{STORE_PASSWORD}@127.0.0.1:1/db"
    for store in (closed_pg, pg_url):
        s = ("--store", store)
        w.run(*s, "rollout", "list")
        w.run(*s, "rollout", "explain", "nope")
        w.run(*c, *s, "metrics", "push", "--env", "production", "--strict")
        w.run(*c, *s, "rollout", "--env", "production", "--version", "v9")
        w.run(*c, *s, "dashboards", "push")
    w.run(*c, "metrics", "push", "--env", "production")
    w.run(
        *c,
        "--pushgateway",
        f"http://{PUSH_USERINFO}@127.0.0.1:{closed}",
        "metrics",
        "push",
        "--env",
        "staging",
        "--strict",
    )
    w.run(*c, "--pushgateway", pushgateway, "metrics", "push", "--env", "qa")
    # The full config's router, Prometheus and smoke test are all unreachable.
    w.run(*c, "rollout", "--env", "production", "--version", "v8")
    w.run(*c, "rollout", "--env", "staging", "--version", "v8", "--json")
    w.run(*c, "router", "status", "--env", "dev")
    w.run(*c, "simulate", "--trials", "3", "--json")

    port = free_port()
    w.serve(
        *c,
        "metrics",
        "serve",
        "--port",
        str(port),
        ready=lambda _line: fetch(f"http://127.0.0.1:{port}/metrics"),
    )

    def router_ready(line: str) -> str:
        admin = line.split("admin=")[1].split()[0]
        return fetch(f"http://{admin}/weights") + fetch(f"http://{admin}/healthz")

    upstream = f"http://proxyuser:{UPSTREAM_PASSWORD}@127.0.0.1:{closed}"
    w.serve(
        "router",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--stable",
        upstream,
        "--canary",
        upstream,
        "--state-file",
        str(w.work / ".safeship" / "router.json"),
        ready=router_ready,
    )


def _reports(w: World, c: tuple[str, ...], pg_url: str) -> None:
    for fmt in ("table", "markdown", "json", "html"):
        w.run(*c, "report", "--format", fmt, "--output", f"reports/report.{fmt}")
    w.run(*c, "report")
    w.run("--store", pg_url, "report", "--format", "markdown", "--since", "1d")
    w.run("--store", f"postgresql://deployer:{STORE_PASSWORD}@127.0.0.1:1/db", "report")


def _demos(w: World, pg_url: str) -> None:
    w.run("demo", "--json", "--fault", "error-rate=0.3", "--rps", "100", timeout=120)
    w.run("demo", "--fault", "error-rate=0.3", "--rps", "100", "--store", pg_url, timeout=120)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """Every command run with the secrets; everything they left behind captured."""
    for binary, package in (
        ("prometheus-pushgateway", "prometheus-pushgateway"),
        ("promtool", "prometheus"),
        ("amtool", "prometheus-alertmanager"),
    ):
        if find_binary(binary) is None:
            pytest.fail(f"{binary} is not installed (apt-get install {package})")
    if find_postgres_bin() is None:
        pytest.fail("PostgreSQL is not installed (apt-get install postgresql)")
    root = tmp_path_factory.mktemp("leaks")
    work, secrets_dir = root / "work", root / "secrets"
    (work / ".gh").mkdir(parents=True)
    (work / ".safeship").mkdir()
    secrets_dir.mkdir()
    for name, value in {
        "prom_bearer": PROM_BEARER_FILE,
        "prom_basic_pw": PROM_BASIC_FILE,
        "pagerduty_key": PAGERDUTY_KEY,
        "slack_url": SLACK_URL,
    }.items():
        (secrets_dir / name).write_text(value + "\n")
    closed = free_port()
    w = World(work, secrets_dir, _base_env(work))
    with (
        EchoingPrometheus() as echo,
        GrafanaDouble(
            token=GRAFANA_TOKEN, basic_auth=("grafuser", GRAFANA_URL_PASSWORD)
        ) as grafana,
        GrafanaDouble() as bad_token,
        GrafanaDouble(token=GRAFANA_TOKEN) as failing,
        PushgatewayServer() as pushgateway,
        PostgresServer() as postgres,
    ):
        failing.health_status = 500
        pg_url = _postgres_with_password(postgres)
        pushgateway_url = f"http://{PUSH_USERINFO}@{pushgateway.address}"
        sqlite_url = f"sqlite:///{work / '.safeship' / 'history.db'}"
        config = work / "safeship.yaml"
        config.write_text(
            full_config(
                echo=echo.url,
                closed=closed,
                secrets_dir=secrets_dir,
                store=sqlite_url,
                grafana=grafana.url,
                pushgateway=pushgateway_url,
            )
        )
        bad = work / "bad.yaml"
        bad.write_text(
            'service: "${SS_HOOK_SECRET}!"\ncanary:\n  hold: "${SS_SMOKE_TOKEN}"\n'
            'store: {url: "postgresql://x:${SS_PROM_URL_PW}@h/db"}\n'
            "grafana: {token: {env: SS_GRAFANA_TOKEN}, url: '${SS_PROM_BASIC}'}\n"
        )
        c = ("--config", str(config))
        jobs: list[Callable[[], None]] = [
            lambda: _demos(w, pg_url),
            lambda: (_rollouts(w, grafana, pushgateway_url), _reports(w, c, pg_url)),
            lambda: _config_commands(w, c, bad),
            lambda: _checks(w, c, echo.url, closed),
            lambda: _rules_and_alerts(w, c, echo.url, closed),
            lambda: _dashboards(w, c, bad_token.url, failing.url, closed),
            lambda: _stores_and_metrics(w, c, pg_url, pushgateway_url, closed),
        ]
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            for future in [pool.submit(job) for job in jobs]:
                future.result()
        w.captures.append(
            Capture(
                "Pushgateway /metrics",
                fetch(f"{pushgateway.url}/metrics") + fetch(f"{pushgateway.url}/api/v1/metrics"),
            )
        )
        # The rollouts reach Grafana with their URL's user and password (HTTP Basic).
        assert len(grafana.requests) > 1, "the rollouts' Grafana (Basic auth) was not used"
        assert grafana.unauthorized == 0, "a Grafana call was refused its credentials"
        w.captures.append(Capture("Grafana double's dashboards", json.dumps([grafana.dashboards])))
        w.captures.append(Capture("Grafana double's annotations", json.dumps(grafana.annotations)))
        w.captures.extend(_postgres_dump(pg_url))
    w.captures.extend(_files(work))
    for db in sorted(work.rglob("*.db")):
        w.captures.extend(_sqlite_dump(db))
    return w


# --- the tests ------------------------------------------------------------------------


def test_every_command_of_the_cli_ran(world: World) -> None:
    missing = all_commands() - world.covered
    assert not missing, f"commands never run with the secrets: {sorted(missing)}"


def test_the_runs_reached_the_paths_that_matter(world: World) -> None:
    """The search is only worth something if the secrets were really in play."""
    everything = "\n".join(c.text for c in world.captures)
    # hooks and smoke tests ran and their (scrubbed) output was stored
    assert "prints-secrets-and-fails: exit 1: " in everything
    assert "post_promotion[0]: exit 3: " in everything
    # the credentials reached the servers and the servers' answers reached the output
    assert "HTTP 401" in everything
    assert "upstream error; request had" in everything
    # secrets show masked where they were shown
    assert "***" in everything
    # GitHub outputs and step summaries were written
    gh = [c for c in world.captures if c.where.startswith("file .gh/") and c.text]
    assert any("outcome=" in c.text for c in gh)
    assert any("## safeship rollout" in c.text for c in gh)
    # the stores hold the rollouts
    assert any(c.where.startswith("SQLite history.db table decisions") for c in world.captures)
    assert any(c.where.startswith("PostgreSQL store table") and c.text for c in world.captures)


def test_no_secret_appears_in_any_output_file_or_store(world: World) -> None:
    leaks = find_leaks(world.captures)
    assert not leaks, f"{len(leaks)} secret leak(s):\n" + "\n".join(leaks)


def test_the_search_finds_a_planted_secret() -> None:
    """Self-check: a secret planted in a capture, in any of its forms, is found and located."""
    clean = [Capture("stdout of clean", "nothing to see: user:***@host")]
    assert find_leaks(clean) == []
    for value in (GRAFANA_TOKEN, PUSH_PASSWORD, STORE_PASSWORD):
        for form in needles(value).values():
            planted = [*clean, Capture("stderr of planted", f"error: auth {form} refused")]
            hits = find_leaks(planted)
            assert hits, form
            assert all("in stderr of planted" in hit for hit in hits)
    basic = base64.b64encode(f"promuser:{PROM_BASIC_FILE}".encode()).decode()
    assert find_leaks([Capture("log", f"Authorization: Basic {basic}")])
