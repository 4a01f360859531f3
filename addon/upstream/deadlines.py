"""Deadlines: a backend that does not connect, does not answer or stalls, and a client that
stops sending its body, are given up on in bounded time.

- Connecting: mitmproxy opens upstream connections without a timeout (a dropped SYN waits for
  the kernel, about two minutes). `ConnectTimeouts` runs in mitmproxy's `server_connect` hook,
  which runs inside the task that is about to connect, and cancels that task when the backend's
  `connectTimeout` passes before the TCP connection is up; mitmproxy reports the cancellation as
  a failed connection (its message is ours). It never cancels a task that is still queued for
  mitmproxy's per-address connection limit or one that is connected.
- One request's phases (`Deadline`): the client's body (`clientTimeout`, the longest pause
  within it), the backend's answer (`responseTimeout`, from the request sent to the answer's
  headers) and the answer's body (`idleTimeout`, the longest pause). Each is one asyncio timer,
  cheap and cancelled when its phase ends; a piece of body only records the time, and a timer
  that fires after activity re-arms itself for the rest. An expiry is injected into the flow's
  connection (`upstream_control.DeadlinePassed`), where the flow's policy decides: skip a hung
  fallback, answer 503 for a hung primary, break a transfer already under way, or answer the
  stalled client 400 RequestTimeout.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Iterable
from weakref import WeakKeyDictionary

from mitmproxy import connection, http
from mitmproxy.proxy.server_hooks import ServerConnectionHookData

from addon.config.settings import Backend
from addon.upstream import backends

log = logging.getLogger(__name__)

Injector = Callable[[http.HTTPFlow, str], None]


class Deadline:
    """The current deadline of one flow: at most one timer at a time."""

    def __init__(self, flow: http.HTTPFlow, inject: Injector) -> None:
        # Weakly: the flow's Exchange holds this, and is held by registries keyed weakly by the
        # flow; a strong reference back would keep every flow alive.
        self.flow = weakref.ref(flow)
        self.inject = inject
        self.phase = ""
        self.seconds = 0.0
        self.last = 0.0  # when the phase started, or the last piece of body arrived
        self._timer: asyncio.TimerHandle | None = None

    def start(self, phase: str, seconds: float) -> None:
        """Replace the current deadline with `phase`, `seconds` from now."""
        self.stop()
        self.phase, self.seconds, self.last = phase, seconds, time.monotonic()
        self._timer = asyncio.get_running_loop().call_later(seconds, self._fire)

    def touch(self) -> None:
        """Activity: an idle deadline counts from now."""
        self.last = time.monotonic()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        rest = self.last + self.seconds - time.monotonic()
        if rest > 0.001:
            self._timer = asyncio.get_running_loop().call_later(rest, self._fire)
            return
        self._timer = None
        flow = self.flow()
        if flow is not None and flow.live:
            self.inject(flow, self.phase)


class ConnectTimeouts:
    """Each backend's connectTimeout, for mitmproxy's own upstream connections."""

    def __init__(self, backend_list: Iterable[Backend]) -> None:
        self.backends = tuple(backend_list)
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
        task.cancel(f"no connection within {timeout:g}s")

    def _timeout(self, address: tuple[str, int] | None) -> float | None:
        if address is None:
            return None
        timeouts = [b.connect_timeout for b in self.backends if backends.serves(b, address)]
        return max(timeouts) if timeouts else None
