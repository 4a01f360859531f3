"""Backpressure beyond mitmproxy's own writers: a client connection is not read further until
the extra writers of its flows (a replica's tee of an upload) have room too.

mitmproxy's `ConnectionHandler.handle_connection` reads a connection (64 KiB at a time), hands
the bytes to its layers, then awaits `drain_writers`: every transport of the handler (the
client's, the upstreams') drained, so that a slow upstream pauses the reading of the client.
Bytes the addon writes elsewhere (a replica's PUT fed from the client's body) are not among
them: a replica slower than the client would see its bytes pile up in memory.

`add(client, drain)` registers an extra drain for the connections of that client (its
`Client.id`); the wrapped `drain_writers` awaits mitmproxy's own, then each extra one, before
the next read. `discard` takes it off again. A drain must bound its own time (its owner gives
up and cuts its writer when it does not drain in time): a stalled writer never stalls the
client for ever. One that raises is logged and taken off.

Private API: mitmproxy's `ConnectionHandler.drain_writers` (wrapped) and its caller's loop,
fingerprinted in tests/unit/mitm/test_fingerprints.py.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from mitmproxy.connection import Client
from mitmproxy.proxy.server import ConnectionHandler

Drain = Callable[[], Awaitable[None]]

ORIGINAL = ConnectionHandler.drain_writers
_extra: dict[str, list[Drain]] = {}  # client id -> the extra drains of its flows
log = logging.getLogger(__name__)


def add(client: Client, drain: Drain) -> None:
    """From now on, `client`'s connection is read on only once `drain` returned too."""
    _extra.setdefault(client.id, []).append(drain)


def discard(client: Client, drain: Drain) -> None:
    drains = _extra.get(client.id)
    if drains is not None and drain in drains:
        drains.remove(drain)
        if not drains:
            del _extra[client.id]


def registered(client: Client) -> int:
    """How many extra drains `client` has (tests)."""
    return len(_extra.get(client.id, ()))


async def _drain_writers(self: ConnectionHandler) -> None:
    await ORIGINAL(self)
    for drain in list(_extra.get(self.client.id, ())):
        try:
            await drain()
        except Exception:  # a bug of its owner: that writer is not waited for any more
            log.exception("an extra drain failed; it is dropped")
            discard(self.client, drain)


def install() -> None:
    """From now on, mitmproxy waits for the extra drains before reading a connection further."""
    ConnectionHandler.drain_writers = _drain_writers  # type: ignore[method-assign]
