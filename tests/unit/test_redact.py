"""The forms a known secret is printed in by real tools, each masked by `redact_text`.

Each test prints a secret the way one tool does and checks that no piece of it the
secret alone decides is left: a failing hook's stderr is stored and shown as it is.
"""

from __future__ import annotations

import base64
import html
import json
import shlex
import subprocess
import textwrap
import urllib.parse
from collections.abc import Callable

import httpx
import pytest

from safeship.redact import (
    _MIN_SCRUB_LENGTH,
    MASK,
    basic_credential_forms,
    environment_secrets,
    redact_text,
    secret_forms,
)

# 70 characters: its base64 (96 characters) wraps at 76 and at 64 columns.
LONG = "xoxb-CANARY-LONG-TOKEN-7f3a9e-0123456789-abcdefghijklmnopqrstuvwxyz-ZZ"


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line]


def test_gnu_base64_wrapped_at_76_columns_is_masked() -> None:
    """`printf '%s' "$TOKEN" | base64`: GNU base64 (and Python's encodebytes) wrap at 76."""
    printed = base64.encodebytes(LONG.encode()).decode()
    assert len(_lines(printed)) == 2
    shown = redact_text(f"hook said:\n{printed}", [LONG])
    assert all(line not in shown for line in _lines(printed)), shown
    assert shown.count(MASK) == 2


def test_openssl_base64_wrapped_at_64_columns_is_masked() -> None:
    """`openssl base64` wraps at 64 columns."""
    printed = "\n".join(textwrap.wrap(base64.b64encode(LONG.encode()).decode(), 64))
    assert len(_lines(printed)) == 2
    shown = redact_text(printed, [LONG])
    assert all(line not in shown for line in _lines(printed)), shown


def test_wrapped_base64_of_the_secret_and_echos_newline_is_masked() -> None:
    """`echo "$TOKEN" | base64` encodes a newline too: all but its last group is the secret's."""
    printed = base64.encodebytes(LONG.encode() + b"\n").decode()
    shown = redact_text(printed, [LONG])
    first, last = _lines(printed)
    assert first not in shown
    assert last[:-4] not in shown, shown


def test_wrapped_base64_of_user_and_secret_is_masked() -> None:
    """`printf '%s' "deploy:$TOKEN" | base64`: each wrapped line is a credential's piece."""
    for width in (64, 76):
        encoded = base64.b64encode(f"deploy:{LONG}".encode()).decode()
        printed = "\n".join(textwrap.wrap(encoded, width))
        shown = redact_text(printed, basic_credential_forms("deploy", LONG))
        assert all(line not in shown for line in _lines(printed)), (width, shown)


def test_url_safe_base64_of_user_and_secret_is_masked() -> None:
    """The URL-safe alphabet (`-_` for `+/`), as JWT-style tools print credentials."""
    secret = "pa>>w?rd~~~"
    standard = base64.b64encode(f"deploy:{secret}".encode()).decode()
    urlsafe = base64.urlsafe_b64encode(f"deploy:{secret}".encode()).decode()
    assert standard != urlsafe
    for printed in (urlsafe, urlsafe.rstrip("=")):
        shown = redact_text(f"token={printed};", basic_credential_forms("deploy", secret))
        assert shown == f"token={MASK};", shown


def test_url_safe_base64_after_an_unknown_prefix_is_masked_where_the_secret_decides() -> None:
    """`deploy:$TOKEN` in the URL-safe alphabet, for a user safeship was never told: as in
    the standard alphabet, the characters only the secret decides are masked."""
    secret = "pa>>w?rd~~~-Passw0rd"
    printed = base64.urlsafe_b64encode(f"deploy:{secret}".encode()).decode()
    assert any(c in printed for c in "-_")
    shown = redact_text(printed, [secret])
    # "deploy:" is 7 bytes: after the first group, the groups of `:` + the secret line up.
    inner = base64.urlsafe_b64encode(b":" + secret.encode()).decode()[4:-4]
    assert MASK in shown
    assert all(inner[i : i + 8] not in shown for i in range(len(inner) - 7)), shown


def test_bash_xtrace_quoting_of_a_secret_with_a_quote_is_masked() -> None:
    """`set -x` prints `--password 'it'\\''s-Db-Passw0rd'`: neither half may show."""
    secret = "it's-Db-Passw0rd"
    printed = "+ psql --password 'it'\\''s-Db-Passw0rd' -h db"
    shown = redact_text(printed, [secret])
    assert "Passw0rd" not in shown, shown
    assert shown == f"+ psql --password '{MASK}' -h db"


def test_python_shlex_quoting_of_a_secret_with_a_quote_is_masked() -> None:
    """shlex.quote gives `'it'"'"'s-Db-Passw0rd'`."""
    secret = "it's-Db-Passw0rd"
    shown = redact_text(f"running: psql --password {shlex.quote(secret)}", [secret])
    assert "Passw0rd" not in shown, shown
    assert MASK in shown


def test_python_repr_of_a_secret_with_both_quotes_is_masked() -> None:
    """repr escapes `'` once the string holds `"` too: `'it\\'s "pw"'`."""
    secret = 'it\'s "the" Passw0rd'
    printed = repr({"password": secret})
    assert secret not in printed
    shown = redact_text(printed, [secret])
    assert "Passw0rd" not in shown, shown


def test_html_escaped_secret_is_masked() -> None:
    """html.escape (quote=True): `&amp;`, `&lt;`, `&quot;` and `&#x27;`."""
    secret = "a&b<c\"d'Passw0rd"
    for printed in (html.escape(secret), html.escape(secret, quote=False)):
        shown = redact_text(f"<td>{printed}</td>", [secret])
        assert "Passw0rd" not in shown, shown


def test_json_with_escaped_slashes_is_masked() -> None:
    """PHP's json_encode escapes `/` as `\\/`: a Slack webhook URL printed that way."""
    secret = "https://hooks.slack.com/services/T000/B000/CANARY_SLACK_5a6b"
    printed = json.dumps({"url": secret}).replace("/", "\\/")
    shown = redact_text(printed, [secret])
    assert "CANARY_SLACK" not in shown, shown


def test_httpx_partial_percent_encoding_is_masked() -> None:
    """httpx leaves sub-delimiters (`!$&'()*+,;=`) unencoded in a URL's path and query."""
    secret = "ab!c d'(pw)*Passw0rd"
    for url in (f"http://h/hooks/{secret}", f"http://h/x?code={secret}"):
        printed = str(httpx.URL(url))
        assert "ab!c%20d" in printed
        shown = redact_text(printed, [secret])
        assert "Passw0rd" not in shown, shown


def test_json_upper_case_unicode_escapes_are_masked() -> None:
    """`\\u00E9`: some JSON encoders write the hex digits in upper case."""
    secret = "pässwörd-é-Passw0rd"
    printed = json.dumps(secret).replace("\\u00e4", "\\u00E4").replace("\\u00e9", "\\u00E9")
    printed = printed.replace("\\u00f6", "\\u00F6")
    shown = redact_text(printed, [secret])
    assert "Passw0rd" not in shown, shown


def test_no_form_is_shorter_than_the_scrub_minimum() -> None:
    """Masking every short run that a form holds would make output unreadable."""
    for secret in (LONG, LONG[:58], "it's", "é&<'\""):
        assert all(len(form) >= _MIN_SCRUB_LENGTH for form in secret_forms(secret))


@pytest.mark.parametrize(
    "shown",
    [
        lambda v: base64.b32encode(v.encode()).decode(),
        lambda v: html.escape(v).replace("&#x27;", "&#39;").replace("&quot;", "&#34;"),
        lambda v: urllib.parse.quote(urllib.parse.quote(v, safe=""), safe=""),
        lambda v: subprocess.run(["bash", "-c", 'printf %q "$V"'], env={"V": v},
                                 capture_output=True, text=True, check=True).stdout,
    ],
    ids=["base32", "go-html", "url-encoded-twice", "printf-q"],
)  # fmt: skip
def test_more_forms_tools_print(shown: Callable[[str], str]) -> None:
    secret = 'It\'s_"q" &<> /sl/ash LONGSECRET_4f1c'
    assert "LONGSECRET" not in redact_text(f"x {shown(secret)} y", [secret])


def test_secret_named_environment_variables_are_remembered() -> None:
    found = environment_secrets(
        {"GITHUB_TOKEN": "ghp_0123456789abcdef", "DB_PASSWORD": "short", "PORT": "8080123456",
         "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG"}
    )  # fmt: skip
    assert sorted(found) == ["ghp_0123456789abcdef", "wJalrXUtnFEMI/K7MDENG"]


def test_secrets_named_by_their_variables_or_known_by_their_format_are_masked() -> None:
    """A hook that prints PAGERDUTY_ROUTING_KEY, GH_PAT or SLACK_WEBHOOK_URL, or a GitHub,
    GitLab, Slack or AWS token in any variable, shows none of them."""
    from safeship.redact import environment_secrets

    env = {
        "PAGERDUTY_ROUTING_KEY": "R0UTINGkey0123456789",
        "GH_PAT": "patpatpat12345",
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T01/B02/s3cr3tpath",
        "PWD": "/home/me/project",  # the shell's working directory: not a secret
    }
    found = environment_secrets(env)
    assert "/home/me/project" not in found
    printed = " ".join(env.values())
    shown = redact_text(printed, found)
    for name in ("PAGERDUTY_ROUTING_KEY", "GH_PAT", "SLACK_WEBHOOK_URL"):
        assert env[name] not in shown
    assert "s3cr3tpath" not in redact_text(env["SLACK_WEBHOOK_URL"])
    tokens = (
        "ghp_" + "a1" * 18,
        "github_pat_" + "b2" * 30,
        "glpat-" + "c3" * 12,
        "xoxb-123456789012-abcdef",
        "AKIA" + "Z" * 16,
    )
    for token in tokens:
        assert token not in redact_text(f"echo {token}; done"), token
