"""A bug in the local proxy's handler is one line in its log, never a traceback.

Nothing a client sends should reach this path (tests/integration/test_local_router.py
sends what used to); it is the last line of defence, so it is driven here by breaking
the handler on purpose, in process.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest
from aiohttp import web

from safeship.routers.local_proxy import LocalProxy, RouteTable, Track, _ProxyServer


async def status_of_a_request_to(proxy: LocalProxy) -> int:
    await proxy.open()
    runner = web.ServerRunner(_ProxyServer(proxy))
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        async with (
            aiohttp.ClientSession() as client,
            client.get(f"http://127.0.0.1:{port}/orders") as response,
        ):
            return response.status
    finally:
        await runner.cleanup()
        await proxy.close()


def test_an_error_of_the_proxy_itself_is_a_500_and_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    table = RouteTable(0, {"stable": "http://127.0.0.1:1", "canary": "http://127.0.0.1:2"})

    def broken() -> Track:
        raise RuntimeError("a bug")

    table.choose = broken  # type: ignore[method-assign]
    caplog.set_level(logging.INFO)

    assert asyncio.run(status_of_a_request_to(LocalProxy(table, None))) == 500

    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert "RuntimeError('a bug')" in record.getMessage()
    assert "a bug in safeship" in record.getMessage()
    assert record.exc_info is None  # the traceback is for debug logging only
    assert table.bad_requests == 0  # not the client's fault
