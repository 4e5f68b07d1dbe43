"""Config values an adversarial review found crashing a command or leaking a secret: each is
refused when the config loads, at its line, exit 2, without quoting a secret."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from safeship.cli.main import main
from safeship.config import SecretRef, http_url, parse_config
from safeship.errors import ConfigError

PASSWORD = "Hunter2-Prometheus-Read-Pw-2026"


@pytest.fixture(autouse=True)
def _quiet_logger() -> Iterator[None]:
    logger = logging.getLogger("safeship")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


def problems(text: str, **env: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "f.yaml", env=env)
    shown = "\n".join([str(caught.value), *caught.value.problems])
    assert PASSWORD not in shown
    for value in env.values():
        if len(value) >= 8:
            assert value not in shown
    return caught.value.problems


def test_a_merge_from_a_scalar_is_located_and_never_quotes_the_line() -> None:
    found = problems(
        f'service: a\nprometheus:\n  url: "https://deploy:{PASSWORD}@prom.example.com:9090"\n'
        "  <<: 5\n"
    )
    assert found == [
        "f.yaml:3: prometheus: expected a mapping or list of mappings for merging, but found scalar"
    ]


@pytest.mark.parametrize(
    ("text", "env", "problem"),
    [
        ("service: !!bool abc\n", {}, "f.yaml:1: service: the value cannot be read as bool"),
        ("service: a\ncanary: {hold: !!timestamp abc}\n", {},
         "f.yaml:2: canary.hold: the value cannot be read as timestamp"),
        ("service: a\ncanary: {hold: !!int 0x}\n", {},
         "f.yaml:2: canary.hold: the value cannot be read as int"),
        ("service: a\ncanary:\n  hold: ${HOLD}\n", {"HOLD": "2026-13-45"},
         "f.yaml:3: canary.hold: the interpolated value cannot be read as timestamp"),
        ("service: a\ncanary:\n  hold: ${HOLD}\n", {"HOLD": "2001-12-14t21:59:43.10-99:99"},
         "f.yaml:3: canary.hold: the interpolated value cannot be read as timestamp"),
        ("service: a\ncanary:\n  hold: ${HOLD}\n", {"HOLD": "9" * 5000},
         "f.yaml:3: canary.hold: the interpolated value is a number too large to read"),
    ],
)  # fmt: skip
def test_values_their_tag_cannot_build_are_located_errors(
    text: str, env: dict[str, str], problem: str
) -> None:
    (found,) = problems(text, **env)
    assert found.startswith(problem)


@pytest.mark.parametrize(
    "setting",
    [
        "router: {type: local, timeout: 1e300}",
        "prometheus: {timeout: 1e300}",
        "grafana: {timeout: 1e300}",
        "pushgateway: {timeout: 1e300}",
        "provider: {type: scrape, timeout: 1e300}",
        "prometheus: {scrape_interval: 1e15}",
        "canary: {interval: 1e15}",
        "hooks: {on_rollback: [{command: ['true'], timeout: 1e300}]}",
        "smoke_tests: [{name: s, command: ['true'], timeout: 1e300}]",
        "canary: {hold: 1e300, allow_long_holds: true}",
    ],
)
def test_durations_have_an_upper_bound(setting: str) -> None:
    (found,) = problems(f"service: a\n{setting}\n")
    assert "less than or equal" in found or "longer than a year" in found


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:1/a\\0b", "control character"),
        ("http://127.0.0.1:1/a\\tb", "control character"),
        ("http://a..b:1/", "empty label"),
        ("http://xn--:1/", "is not a valid URL"),
        (f"http://deploy:pass word-{PASSWORD}@h:9090", "space"),
        (f"http://deploy:{PASSWORD}#x@h:9090", "percent-encoded"),
    ],
)
def test_urls_the_http_client_cannot_use_are_refused_at_load(url: str, problem: str) -> None:
    (found,) = problems(f'service: a\nprometheus: {{url: "{url}"}}\n')
    assert found.startswith("f.yaml:2: prometheus.url: ")
    assert problem in found


def test_a_url_with_a_lone_surrogate_is_refused() -> None:
    # What os.environ makes of a byte that is not UTF-8, were it to reach a URL.
    with pytest.raises(ValueError, match="surrogate"):
        http_url("http://127.0.0.1:1/\ud800")


@pytest.mark.parametrize(
    ("setting", "problem"),
    [
        ('alerting: {runbook_url: "https://wiki:S3cretWikiPw@wiki.example.com/{alertname}"}',
         "carries a user, password or token"),
        ('alerting: {runbook_url: "javascript:alert(1)"}', "is not an http(s) URL"),
        ("alerting: {alertmanager: {ticket: {type: webhook, url: 'ftp:/ /bad'}}}",
         "is not an http(s) URL"),
        ("alerting: {alertmanager: {repeat_interval: banana}}", "is not a duration"),
        ('alerting: {runbook_url: "https://wiki/?token=S3cretWikiPw&{alertname}"}',
         "carries a user, password or token"),
        ('alerting: {runbook_url: "https://wiki/{alertname}{{ $labels.x }}{{"}', "holds {{ or }}"),
        ("alerting: {alertmanager: {repeat_interval: 99999999999999999999y}}",
         "longer than a year"),
    ],
)  # fmt: skip
def test_alerting_urls_and_durations_are_checked_at_load(setting: str, problem: str) -> None:
    (found,) = problems(f"service: a\n{setting}\n")
    assert problem in found
    assert "S3cretWikiPw" not in found


def test_environment_variables_cannot_expand_an_alias_past_the_limit() -> None:
    text = 'service: a\nx: &a "' + "${BIG}" * 36000 + '"\ny: [' + ",".join(["*a"] * 99) + "]\n"
    started = time.process_time()
    (found,) = problems(text, BIG="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin")
    assert time.process_time() - started < 1.0
    assert "environment variables expand the config beyond 1048576 bytes" in found


def test_a_secret_file_that_is_not_utf8_is_named_never_a_traceback(tmp_path: Path) -> None:
    secret = tmp_path / "latin1.secret"
    secret.write_bytes(b"caf\xe4")
    with pytest.raises(ConfigError, match=r"latin1.secret is not UTF-8 text"):
        SecretRef(file=secret).reveal()


@pytest.mark.parametrize("device", ["/dev/zero", "fifo"])
def test_a_secret_or_config_that_is_no_regular_file_is_refused_without_reading_it(
    device: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = Path(device)
    if device == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path)  # opening it would block until someone writes
    with pytest.raises(ConfigError, match="is not a regular file"):
        SecretRef(file=path).reveal()
    assert main(["--config", str(path), "config", "validate"]) == 2
    assert "is not a regular file" in capsys.readouterr().err
    assert main(["rules", "lint", str(path)]) != 0
    out, err = capsys.readouterr()
    assert "is not a regular file" in out + err


def test_config_validate_never_shows_an_interpolated_secret_a_validator_quotes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "slots.yaml"
    config.write_text(
        'service: a\nrouter: {type: local, slots: {blue: "${BLUE}", green: "127.0.0.1:2"}}\n'
    )
    monkeypatch.setenv("BLUE", f"deploy:{PASSWORD}@10.0.0.5")
    for args in ([], ["--json"]):
        assert main(["--config", str(config), "config", "validate", *args]) == 2
        out, err = capsys.readouterr()
        assert "slot 'blue'" in out + err
        assert PASSWORD not in out + err
        if args:
            assert json.loads(out)["valid"] is False


def test_a_grafana_url_from_a_flag_is_checked_like_the_configs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GRAFANA_API_KEY", "x")
    url = "http://admin:S3cretPart#more@127.0.0.1:3000"
    assert main(["dashboards", "versions", "--url", url, "foo"]) == 2
    err = capsys.readouterr().err
    assert "the Grafana URL is not a valid URL" in err
    assert "S3cretPart" not in err


def test_simulate_refuses_hours_of_looks(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", "--trials", "100000"])
    assert code == 2
    assert "lower --trials or the hold" in capsys.readouterr().err


def test_a_url_host_dns_cannot_have_is_refused_at_load() -> None:
    (found,) = problems(f'service: a\nprometheus: {{url: "http://{"a" * 64}.b:9090"}}\n')
    assert "label is longer than 63 characters" in found
