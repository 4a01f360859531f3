"""The client connections this process serves as an endpoint: at most `maxClientConnections` at
once, and none kept idle past `clientIdleTimeout` (the config's, read as they are needed, so
that a reload changes them).

A connection opened beyond the bound is not refused at once: its first request is answered
503 SlowDown with a message naming the bound (a TLS client could not read an answer before its
handshake), `Connection: close`, and the connection closes after it. The counting and the
closing are `addon.mitm.client_conns`'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from mitmproxy import connection, http

from addon.config.settings import Config
from addon.mitm.client_conns import ClientConnections
from addon.s3.errors import S3Error

_UNCONFIGURED = Config(backends=())  # the settings' defaults, until a config is read


class ClientLimits:
    def __init__(self, config: Callable[[], Config | None]) -> None:
        self._config = config  # the one in force, None before one is read
        self.connections = ClientConnections()
        self._closing_idle: asyncio.Task | None = None

    def config(self) -> Config:
        return self._config() or _UNCONFIGURED

    def start(self) -> None:
        """Begin closing idle connections (the addon's `running`)."""
        idle = lambda: self.config().client_idle_timeout  # noqa: E731
        closing = self.connections.keep_closing_idle(idle)
        self._closing_idle = asyncio.get_running_loop().create_task(closing)

    def stop(self) -> None:
        if self._closing_idle is not None:
            self._closing_idle.cancel()

    def connected(self, client: connection.Client) -> None:
        self.connections.connected(client, self.config().max_client_connections)

    def disconnected(self, client: connection.Client) -> None:
        self.connections.disconnected(client)

    def started(self, flow: http.HTTPFlow) -> S3Error | None:
        """A request begins: the error to refuse it with when its connection is beyond the
        bound (then closed after the answer)."""
        self.connections.started(flow.client_conn)
        if not self.connections.over_limit(flow.client_conn):
            return None
        limit = self.config().max_client_connections
        return S3Error(
            "SlowDown",
            f"This endpoint serves at most {limit} connections at once "
            "(maxClientConnections); please reduce your request rate.",
        )

    def ended(self, flow: http.HTTPFlow) -> None:
        self.connections.ended(flow.client_conn)
