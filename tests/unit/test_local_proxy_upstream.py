"""How the local proxy joins a request target to an upstream: by parts, never by pasting.

The proxy once built `upstream + target` as one string, so a target could move the host
(and the upstream's password) anywhere; these pin the join and the credentials down.
"""

from __future__ import annotations

import base64

import pytest

from safeship.routers.local_proxy import Upstream, parse_upstream


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


@pytest.mark.parametrize(
    ("upstream", "target", "url"),
    [
        ("http://127.0.0.1:9001", "/orders?id=7", "http://127.0.0.1:9001/orders?id=7"),
        ("http://127.0.0.1:9001/base", "/x?q=%20+&z", "http://127.0.0.1:9001/base/x?q=%20+&z"),
        ("https://u:pw@[::1]:8443", "/a%2Fb", "https://[::1]:8443/a%2Fb"),
        # Targets that read like an authority stay paths on the upstream's host.
        ("http://127.0.0.1:9001", "//evil.example:1/x", "http://127.0.0.1:9001//evil.example:1/x"),
        (
            "http://u:pw@127.0.0.1:9001",
            "/@evil.example:1/",
            "http://127.0.0.1:9001/@evil.example:1/",
        ),
    ],
)
def test_a_target_keeps_the_upstream_host_and_its_own_path_and_query(
    upstream: str, target: str, url: str
) -> None:
    built = Upstream.parse(upstream).url_for(target)

    assert str(built) == url
    assert built.user is None  # credentials never travel in a URL


@pytest.mark.parametrize(
    ("upstream", "authorization"),
    [
        ("http://127.0.0.1:9001", None),
        ("http://proxyuser:S3cret@127.0.0.1:9001", basic("proxyuser:S3cret")),
        ("http://deploy@127.0.0.1:9001", basic("deploy:")),
        ("http://deploy:p%40ss%2Fw%3Ard@127.0.0.1:9001", basic("deploy:p@ss/w:rd")),  # decoded
        ("http://deploy:pässwörd@127.0.0.1:9001", basic("deploy:pässwörd")),  # UTF-8
    ],
)
def test_the_upstream_credentials_become_its_basic_authorization(
    upstream: str, authorization: str | None
) -> None:
    assert Upstream.parse(upstream).authorization == authorization


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:99999", "http://user%3Aname:pw@127.0.0.1:1"], ids=["port", "colon"]
)
def test_an_upstream_that_cannot_be_used_is_refused_when_given_without_its_password(
    url: str,
) -> None:
    with pytest.raises(ValueError, match=r"^canary is not a usable URL") as refused:
        parse_upstream(url, "canary")

    assert "pw" not in str(refused.value)
