"""Connecting in bounded time: mitmproxy opens upstream connections without a timeout (a
dropped SYN waits for the kernel, about two minutes).

`ConnectTimeouts` runs in mitmproxy's `server_connect` hook, which runs inside the task that is
about to connect, and cancels that task when the address's timeout passes before the TCP
connection is up; mitmproxy reports the cancellation as a failed connection (its message is
ours). It never cancels a task that is still queued for mitmproxy's per-address connection
limit, or one that is connected. It relies on how mitmproxy's `ConnectionHandler.open_connection`
runs the hook and takes a cancellation (fingerprinted), hence its place in this package.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from weakref import WeakKeyDictionary

from mitmproxy import connection
from mitmproxy.proxy.server_hooks import ServerConnectionHookData

_MESSAGE = "no connection within {:g}s"


def timed_out(reason: str) -> bool:
    """Whether a failed connection's reason (mitmproxy's message) is one of our timeouts,
    rather than a failure at once (refused, no route)."""
    return reason.startswith(_MESSAGE.partition("{")[0])


class ConnectTimeouts:
    """A connect timeout per upstream address (`timeout_of`: None for none), for mitmproxy's
    own upstream connections."""

    def __init__(self, timeout_of: Callable[[tuple[str, int]], float | None]) -> None:
        self.timeout_of = timeout_of
        self._timers: WeakKeyDictionary[connection.Server, asyncio.TimerHandle] = (
            WeakKeyDictionary()
        )

    def connecting(self, data: ServerConnectionHookData) -> None:
        """mitmproxy's `server_connect` hook: runs in the task that will connect."""
        timeout = self._timeout(data.server.address)
        task = asyncio.current_task()
        if timeout is None or task is None:
            return
        # Backends speak HTTP/1.1 (an HTTP/2 client's offer is not passed on to them).
        data.server.alpn_offers = (b"http/1.1",)
        loop = asyncio.get_running_loop()
        self._timers[data.server] = loop.call_later(
            timeout, self._expire, data.server, task, timeout
        )

    def done(self, data: ServerConnectionHookData) -> None:
        """`server_connected` and `server_connect_error`: the timer is over either way."""
        timer = self._timers.pop(data.server, None)
        if timer is not None:
            timer.cancel()

    def _expire(self, server: connection.Server, task: asyncio.Task, timeout: float) -> None:
        self._timers.pop(server, None)
        if server.timestamp_tcp_setup is not None or task.done():
            return
        if server.timestamp_start is None:
            # Still queued for mitmproxy's per-address connection limit: not ours to cancel
            # there (mitmproxy would never hear of it); the wait ends with a connect attempt.
            loop = asyncio.get_running_loop()
            self._timers[server] = loop.call_later(1.0, self._expire, server, task, timeout)
            return
        task.cancel(_MESSAGE.format(timeout))

    def _timeout(self, address: tuple[str, int] | None) -> float | None:
        return None if address is None else self.timeout_of(address)
