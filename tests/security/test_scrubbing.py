"""Focused checks of the scrubbing fixes the end-to-end leak search led to.

Each names the leak it closes; `test_no_secret_leaks.py` finds them end to end.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest

from safeship.config import Hook, PrometheusSettings, parse_config, redacted, secret_values
from safeship.errors import SafeshipError
from safeship.prometheus.client import PrometheusClient
from safeship.rollout.hooks import run_hook
from safeship.routers.local_proxy import RouteTable, StateFile

TOKEN = "glsa_CANARY_TOKEN_7f3a9e"
FILE_SECRET = "CANARY_FILE_SECRET_5b1c"
STORE_PASSWORD = "CANARY/PASS@91c2"  # percent-encoded in the URL


@pytest.fixture
def config_text(tmp_path: Path) -> str:
    secret_file = tmp_path / "password"
    secret_file.write_text(FILE_SECRET + "\n")
    return f"""
service: a
prometheus:
  url: http://127.0.0.1:9
  basic_auth: {{username: u, password: {{file: {secret_file}}}}}
store: {{url: "postgresql://deployer:CANARY%2FPASS%4091c2@db:5432/h"}}
grafana: {{url: "http://127.0.0.1:3", token: {{env: GRAFANA_SECRET}}}}
"""


def test_secret_values_know_secret_refs_and_url_passwords(config_text: str) -> None:
    """Before: only `${VAR}` values were known, so a SecretRef's value went unscrubbed."""
    config = parse_config(config_text, env={"GRAFANA_SECRET": TOKEN})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRAFANA_SECRET", TOKEN)
        known = secret_values(config)
        # An environment's settings carry the whole config's secrets (Grafana's too).
        in_env = secret_values(config.for_environment("production"))
        shown = json.dumps(redacted(config))
    assert {TOKEN, FILE_SECRET, STORE_PASSWORD, "CANARY%2FPASS%4091c2"} <= known
    assert {TOKEN, FILE_SECRET, STORE_PASSWORD} <= in_env
    assert TOKEN not in shown
    assert "CANARY%2FPASS" not in shown


def test_an_unreadable_secret_ref_is_no_error_for_scrubbing(config_text: str) -> None:
    config = parse_config(config_text, env={})
    assert TOKEN not in secret_values(config)  # GRAFANA_SECRET is not set: nothing to scrub


def test_a_hook_printing_a_secret_ref_value_is_scrubbed(
    config_text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a failing hook that printed $GRAFANA_SECRET (inherited) stored it verbatim."""
    monkeypatch.setenv("GRAFANA_SECRET", TOKEN)
    settings = parse_config(config_text).for_environment("production")
    script = "import os, sys; print(os.environ['GRAFANA_SECRET'], sys.argv[1]); sys.exit(2)"
    hook = Hook(command=(sys.executable, "-c", script, FILE_SECRET))
    result = run_hook("post_promotion", 0, hook, {}, secret_values(settings))
    assert not result.passed
    assert TOKEN not in result.detail
    assert FILE_SECRET not in result.detail
    assert "***" in result.detail


@pytest.mark.parametrize(
    ("status", "content_type", "body"),
    [
        (500, "text/plain", "proxy error, request had {auth}"),
        (401, "application/json", '{{"status": "error", "errorType": "x", "error": "{auth}"}}'),
        (
            400,
            "application/json",
            '{{"status": "error", "errorType": "bad_data", "error": "{auth}"}}',
        ),
    ],
)
@pytest.mark.parametrize("auth", ["bearer", "basic", "url"])
def test_prometheus_errors_do_not_quote_the_credentials_back(
    status: int, content_type: str, body: str, auth: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a proxy that quoted the request's credentials had them printed."""
    secret = "CANARY_PROM_CRED_3c9d"
    monkeypatch.setenv("PROM_SECRET", secret)
    settings = {
        "bearer": {"url": "http://prom:9090", "bearer_token": {"env": "PROM_SECRET"}},
        "basic": {
            "url": "http://prom:9090",
            "basic_auth": {"username": "u", "password": {"env": "PROM_SECRET"}},
        },
        "url": {"url": f"http://u:{secret}@prom:9090"},
    }[auth]

    def answer(request: httpx.Request) -> httpx.Response:
        text = body.format(auth=f"credentials {secret}")
        return httpx.Response(status, headers={"Content-Type": content_type}, text=text)

    client = PrometheusClient(
        PrometheusSettings.model_validate({**settings, "retries": 0}),
        transport=httpx.MockTransport(answer),
    )
    with client, pytest.raises(SafeshipError) as caught:
        client.query("up")
    assert secret not in str(caught.value)
    assert "credentials ***" in str(caught.value)


def test_the_local_proxy_admin_api_does_not_show_upstream_passwords() -> None:
    """Before: GET /weights answered the upstream URLs with their user-info."""
    table = RouteTable(
        canary_weight=10,
        upstreams={"stable": "http://u:CANARY_UP_PW_0f0f@s:1", "canary": "http://c:2"},
    )
    snapshot = table.snapshot()
    assert "CANARY_UP_PW_0f0f" not in json.dumps(snapshot)
    assert snapshot["stable"] == "http://u:***@s:1"
    assert table.config()["stable"] == "http://u:CANARY_UP_PW_0f0f@s:1"  # routing keeps it


def test_the_grafana_token_from_its_environment_variable_is_scrubbed_too() -> None:
    """Before: with no grafana.token, the client's GRAFANA_API_KEY was unknown to scrubbing."""
    config = parse_config('service: a\ngrafana: {url: "http://127.0.0.1:3"}\n', env={})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRAFANA_API_KEY", TOKEN)
        assert TOKEN in secret_values(config.for_environment("production"))


def test_the_local_proxy_state_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    """Before: 0644, with the upstream URLs' credentials in it."""
    state = StateFile(tmp_path / "router.json")
    state.save({"canary_weight": 0, "stable": "http://u:pw@s:1", "canary": "http://c:2"})
    assert (tmp_path / "router.json").stat().st_mode & 0o777 == 0o600


# --- every form a secret is printed in (a review's reproductions) ---------------------

SECRET = "glpat-A&b/c+D=9xyz"


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("http://h/api?client_secret=QWERTYUIOP123&x=1", "QWERTYUIOP123"),
        ("http://h/api?auth_token=abcdEFGH1234xyz", "abcdEFGH1234xyz"),
        ("https://h/o?X-Amz-Signature=0a1b2c3d4e&X-Amz-Date=1", "0a1b2c3d4e"),
        ("http://h/cb#access_token=tok3n-in-fragment", "tok3n-in-fragment"),
        ("http://admin:pa?ss#word1@127.0.0.1:18999/x", "pa?ss#word1"),
        ("Authorization: Negotiate YIIGhgYGKwYBBQUCoIIGejCCBnag", "YIIGhgYGKwYBBQUCoIIGejCCBnag"),
        ('{"Authorization": ["Bearer X12345678"]}', "X12345678"),
        ("('authorization', 'Bearer X12345678')", "X12345678"),
        (
            "Authorization: AWS4-HMAC-SHA256 Credential=AKID/2020, Signature=abcdef0123",
            "abcdef0123",
        ),
        ("Proxy-Authorization: Basic dXNlcjpzZWNyZXQ=", "dXNlcjpzZWNyZXQ="),
    ],
)
def test_credentials_no_one_named_are_still_masked(text: str, hidden: str) -> None:
    from safeship.redact import redact_text

    assert hidden not in redact_text(text)


@pytest.mark.parametrize(
    "form",
    [
        SECRET.encode().hex(),
        "glpat-A%26b%2fc%2bD%3d9xyz",  # %xx in lower case
        json.dumps(SECRET).replace("&", "\\u0026")[1:-1],  # Go's JSON escapes
        __import__("base64").b64encode(b"x" + SECRET.encode()).decode(),  # base64, offset 1
        __import__("base64").b64encode(b"tok:" + SECRET.encode()).decode(),  # offset 1 of 3
        __import__("base64").b64encode(b"ab" + SECRET.encode()).decode(),  # offset 2
    ],
)
def test_a_known_secret_is_masked_in_every_common_encoding(form: str) -> None:
    import base64

    from safeship.redact import redact_text

    shown = redact_text(f"before {form} after", [SECRET])
    raw = SECRET.encode()
    # No run of 8 characters that only the secret decides survives, in any alignment.
    leftovers = {form[i : i + 8] for i in range(len(form) - 7)} & {
        b[i : i + 8]
        for b in (
            raw.hex(),
            *(base64.b64encode(bytes(k) + raw).decode()[4 if k else 0 :] for k in range(3)),
        )
        for i in range(len(b) - 11)
    }
    assert not any(chunk in shown for chunk in leftovers), shown
    assert "***" in shown


def test_an_error_anywhere_is_scrubbed_of_the_secrets_the_cli_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from safeship.cli.main import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SS_PW", "p w+d/x==secret")
    (tmp_path / "safeship.yaml").write_text(
        "service: a\nprometheus: {url: 'http://u:${SS_PW}@127.0.0.1:9', retries: 0, timeout: 0.5}\n"
    )
    code = main(["check", "prometheus"])
    out, err = capsys.readouterr()
    assert code in (0, 1, 2, 3)
    assert "p w+d" not in out + err
    assert "x==secret" not in out + err
