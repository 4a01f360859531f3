"""`addon.mitm.drains`: the wrapped `drain_writers` awaits mitmproxy's own drains, then each
extra drain registered for the handler's client; a drain that raises is dropped; `discard`
takes one off. Run on an object with the three attributes mitmproxy's own uses (no socket: the
pacing itself is seen end to end, tests/e2e/replication/test_tee.py)."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

from mitmproxy.connection import Client

from addon.mitm import drains


def _handler(client: Client) -> SimpleNamespace:
    return SimpleNamespace(client=client, transports={}, _drain_lock=asyncio.Lock())


def _client() -> Client:
    return Client(peername=("127.0.0.1", 50000), sockname=("127.0.0.1", 8080))


def test_the_extra_drains_of_the_handlers_client_are_awaited_in_turn():
    client, other = _client(), _client()
    seen: list[str] = []
    gate = asyncio.Event()

    async def slow() -> None:
        await gate.wait()
        seen.append("slow")

    async def quick() -> None:
        seen.append("quick")

    async def elsewhere() -> None:
        seen.append("another client's")

    async def run() -> None:
        drains.add(client, slow)
        drains.add(client, quick)
        drains.add(other, elsewhere)
        draining = asyncio.ensure_future(drains._drain_writers(_handler(client)))
        await asyncio.sleep(0.01)
        assert not draining.done() and seen == []  # the reading waits for the slow one
        gate.set()
        await draining
        assert seen == ["slow", "quick"]

    try:
        asyncio.run(run())
    finally:
        for drain in (slow, quick):
            drains.discard(client, drain)
        drains.discard(other, elsewhere)
    assert drains.registered(client) == drains.registered(other) == 0


def test_a_drain_that_raises_is_dropped_and_logged(caplog):
    client = _client()
    calls: list[int] = []

    async def broken() -> None:
        calls.append(1)
        raise RuntimeError("a bug")

    drains.add(client, broken)
    with caplog.at_level(logging.ERROR, logger=drains.__name__):
        asyncio.run(drains._drain_writers(_handler(client)))
        asyncio.run(drains._drain_writers(_handler(client)))
    assert calls == [1]
    assert drains.registered(client) == 0
    assert "an extra drain failed" in caplog.text


def test_discard_of_what_was_never_added_is_harmless():
    client = _client()

    async def drain() -> None: ...

    drains.discard(client, drain)
    drains.add(client, drain)
    drains.discard(client, drain)
    drains.discard(client, drain)
    assert drains.registered(client) == 0
    asyncio.run(drains._drain_writers(_handler(client)))  # nothing registered: mitmproxy's own
