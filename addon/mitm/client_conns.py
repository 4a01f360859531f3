"""Client connections of an endpoint (reverse mode): counted, and closed once idle.

mitmproxy keeps a client connection for as long as the client does: its `tcp_timeout` (600 s)
counts any quiet time, a request waiting for a slow backend included, so it cannot be short. An
S3 endpoint closes a keep-alive connection that has been idle for a minute (nginx's
keepalive_timeout, S3 itself), and serves a bounded number of connections at once.

`ClientConnections` counts the connections (`connected`, `disconnected`, from the addon's
hooks), which requests are in flight on each (`started`, `ended`), and `close_idle` closes those
that have had no request in flight, received nothing and had nothing left to send for the idle
timeout: it cancels the connection's handler task, as mitmproxy's own inactivity timeout does.
How long a connection has been quiet is mitmproxy's (its handler's `timeout_watchdog`, touched
by every event: a head still arriving counts, the head timeout bounds that); what it has left to
send is its transport's write buffer. Whether a connection is beyond the bound is decided when it
opens (`connected`); the addon refuses its requests. Sidecar (regular mode) connections are left
as mitmproxy keeps them. Private API (the proxyserver's `connections`, a handler's `transports`
and `timeout_watchdog`), fingerprinted in tests/unit/mitm/test_fingerprints.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mitmproxy import connection, ctx
from mitmproxy.proxy.mode_specs import ReverseMode


@dataclass
class _Open:
    client: connection.Client
    over_limit: bool  # opened beyond the bound: its requests are refused, then it is closed
    in_flight: int = 0
    quiet_since: float = field(default_factory=time.time)  # its last request's end, or its start


class ClientConnections:
    """This process's client connections as an endpoint."""

    def __init__(self) -> None:
        self._open: dict[str, _Open] = {}

    @property
    def count(self) -> int:
        return len(self._open)

    def connected(self, client: connection.Client, limit: int) -> None:
        """A new connection: counted, and marked beyond the bound when `limit` are open already."""
        if isinstance(client.proxy_mode, ReverseMode):
            self._open[client.id] = _Open(client, over_limit=len(self._open) >= limit)

    def disconnected(self, client: connection.Client) -> None:
        self._open.pop(client.id, None)

    def over_limit(self, client: connection.Client) -> bool:
        entry = self._open.get(client.id)
        return entry is not None and entry.over_limit

    def started(self, client: connection.Client) -> None:
        """A request's head is in: the connection is not idle until its answer ends."""
        entry = self._open.get(client.id)
        if entry is not None:
            entry.in_flight += 1

    def ended(self, client: connection.Client) -> None:
        entry = self._open.get(client.id)
        if entry is not None:
            entry.in_flight = max(0, entry.in_flight - 1)
            entry.quiet_since = time.time()

    def close_idle(self, idle: float) -> int:
        """Close every connection idle for `idle` seconds; how many were."""
        handlers = ctx.master.addons.get("proxyserver").connections
        now, closed = time.time(), 0
        for entry in list(self._open.values()):
            handler = handlers.get(entry.client.id)
            io = handler.transports.get(entry.client) if handler is not None else None
            if entry.in_flight or io is None or io.handler is None:
                continue
            quiet = now - max(entry.quiet_since, handler.timeout_watchdog.last_activity)
            unsent = io.writer.transport.get_write_buffer_size() if io.writer is not None else 0
            if quiet >= idle and not unsent:
                io.handler.cancel("idle")
                closed += 1
        return closed

    async def keep_closing_idle(self, idle: Callable[[], float]) -> None:
        """Close idle connections for as long as it runs (`idle()`: the timeout in force)."""
        while True:
            await asyncio.sleep(min(1.0, idle() / 4))
            self.close_idle(idle())
