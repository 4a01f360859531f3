"""Deadlines: a backend that does not answer or stalls, and a client that stops sending its
body, are given up on in bounded time (connecting: `addon.mitm.connect_timeouts`).

- One request's phases (`Deadline`): the client's body (`clientTimeout`, the longest pause
  within it), the backend's answer (`responseTimeout`, from the request sent to the answer's
  headers) and the answer's body (`idleTimeout`, the longest pause). Each is one asyncio timer,
  cheap and cancelled when its phase ends; a piece of body only records the time, and a timer
  that fires after activity re-arms itself for the rest. An expiry is injected into the flow's
  connection (`addon.mitm.policy.DeadlinePassed`), where the flow's policy decides: skip a hung
  fallback, answer 503 for a hung primary, break a transfer already under way, or answer the
  stalled client 400 RequestTimeout.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable

from mitmproxy import http

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
        if flow is not None and flow.live and not answered(flow):
            self.inject(flow, self.phase)


def answered(flow: http.HTTPFlow) -> bool:
    """The flow's answer went out whole (or it failed): a deadline has nothing left to act on,
    and an event injected into a connection whose request has ended breaks mitmproxy's HTTP/1
    layer (it looks for the request's stream, and there is none)."""
    return flow.error is not None or (
        flow.response is not None and flow.response.timestamp_end is not None
    )
