"""A client's request head, bounded in size and in time, before it goes anywhere.

mitmproxy reads a request head of any size for as long as the client drips it ("FIXME: protect
against header size DoS" in its source). As an endpoint (reverse mode) a head over
`HeadLimits.max_bytes`, or still unfinished `HeadLimits.seconds` after its first byte, is answered
with the addon's S3 error and the connection closed. No hook sees a head before it is complete, so
this wraps mitmproxy's private `Http1Server.read_headers`; `install` (in `addon.mitm.install`,
which checks mitmproxy's version) is given where the limits in force are read, so that a reload
changes the addon's limits, never this module.

The connection ends the way a careful server ends it: the answer says `Connection: close`, our
side is half-closed after it, and what the client still sends is read and dropped (never kept)
until it closes, for LINGER_SECONDS or LINGER_BYTES at most, then the connection is closed. A
client that writes its whole head before reading (blocking sends) would otherwise block for ever
on a server that stopped reading, or, on a plain close with its bytes unread, get a reset that
can destroy the answer before it reads it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from mitmproxy import http
from mitmproxy.connection import ConnectionState
from mitmproxy.net.http import http1
from mitmproxy.proxy.commands import CloseConnection, CloseTcpConnection, RequestWakeup, SendData
from mitmproxy.proxy.events import DataReceived, Wakeup
from mitmproxy.proxy.layers.http._http1 import Http1Server
from mitmproxy.proxy.mode_specs import ReverseMode

Commands = Generator[Any, Any, Any]


@dataclass(frozen=True)
class HeadLimits:
    """What a client's request head may take (the addon's, from its config)."""

    max_bytes: int = 24 * 1024
    seconds: float = 20.0
    # The answer, given the reason (TOO_LARGE or TOO_SLOW) and the client's address.
    refuse: Callable[[str, Any], http.Response] = lambda reason, peer: http.Response.make(400)


TOO_LARGE, TOO_SLOW = "too large", "too slow"
# After a refusal, what a client still sends is dropped for this long and this much at most: time
# for a client blocked in sending its head (a 64 MiB header goes in well under a second on a
# LAN) to finish and read the answer.
LINGER_SECONDS = 5.0
LINGER_BYTES = 128 * 1024 * 1024


_head_started: WeakKeyDictionary[Http1Server, float] = WeakKeyDictionary()


_original_read_headers = Http1Server.read_headers


def _defaults() -> HeadLimits:
    return HeadLimits()


_limits_in_force: Callable[[], HeadLimits] = _defaults  # set by `install`, read per head


def read_headers(self: Http1Server, event: Any) -> Commands:
    if not isinstance(event, DataReceived) or not isinstance(
        self.context.client.proxy_mode, ReverseMode
    ):
        return (yield from _original_read_headers(self, event))
    started = _head_started.setdefault(self, time.monotonic())
    yield from _original_read_headers(self, event)
    if self.state != self.read_headers:
        _head_started.pop(self, None)  # the head is in: the next one is timed from its start
        return None
    # The head has not ended: all that is buffered is head.
    limits = _limits_in_force()
    reason = None
    if len(self.buf) > limits.max_bytes:
        reason = TOO_LARGE
    elif time.monotonic() - started > limits.seconds:
        reason = TOO_SLOW
    if reason is not None:
        answer = limits.refuse(reason, self.conn.peername)
        yield SendData(self.conn, http1.assemble_response(answer))
        yield from _linger(self)
    return None


def _linger(self: Http1Server) -> Commands:
    """Half-close after the answer, drop what the client still sends, close when it closes or
    the linger's bounds pass. Nothing more of this connection is read as HTTP."""
    yield CloseTcpConnection(self.conn, half_close=True)
    timer = RequestWakeup(LINGER_SECONDS)
    yield timer
    left = LINGER_BYTES

    def state_lingering(event: Any) -> Commands:
        nonlocal left
        if isinstance(event, DataReceived):
            left -= len(event.data)
            _drop(self)
            if left > 0:
                return
        elif isinstance(event, Wakeup) and event.command is not timer:
            return
        # The client closed, or the bounds passed: close (a plain close, unread bytes or not).
        self.state = self.done
        if self.conn.state is not ConnectionState.CLOSED:
            yield CloseConnection(self.conn)

    _drop(self)
    self.state = state_lingering


def _drop(self: Http1Server) -> None:
    """What the connection has buffered (mitmproxy appends every piece it reads) goes."""
    self.buf.maybe_extract_at_most(len(self.buf))


def install(limits: Callable[[], HeadLimits]) -> None:
    """Bound every reverse-mode request head by `limits()`, read as each head arrives."""
    global _limits_in_force
    _limits_in_force = limits
    Http1Server.read_headers = read_headers  # type: ignore[method-assign]
