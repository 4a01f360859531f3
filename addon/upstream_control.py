"""Control of the upstream side of a flow that mitmproxy's public API does not give an addon.

An S3 gateway needs four things that mitmproxy 12 cannot do through hooks:

- fall back: answer the client from a second upstream after the first one answered
  (see README, "How fallback works"); probing first costs a round trip on every hit, buffering
  the fallback's answer costs the object's size in memory;
- answer an unreachable upstream with the addon's own error, not mitmproxy's HTML 502;
- refuse a request with a body at once, without reading the body into memory first (a response
  set in `requestheaders` makes mitmproxy buffer the whole body before sending it);
- abort an upload half-way (bad chunk signature, wrong payload hash) so that the upstream, which
  has not received the whole body, stores nothing, and the client gets the addon's error.

So we wrap three private methods of mitmproxy's `HttpStream`, for flows that opt in with
`control(flow)`; the `Control` it returns is how the addon and the wrapped methods talk (kept
beside the flow, not in `flow.metadata`, which mitmproxy deep-copies when it saves a flow):

- `send_response`: for a response read whole (not streamed), if the addon set `resend`
  (having re-targeted `flow.request`) in the `responseheaders` hook, or in the `response` hook
  once the body told it, the request is sent again on the same stream instead of the response
  (and, when decided at the headers, without a `response` hook). The next upstream's answer
  runs the `responseheaders` and `response` hooks as usual and may stream. Only bodiless
  requests are resent (a body, if any, was read whole).
- `make_server_connection`: with `answer` set (a Response), no connection is made and that
  response is sent; with `check_body` set, a body read whole is first given to that callable,
  which may rewrite it or return the Response to send instead; when the upstream cannot be
  reached, the `response` hook sees a placeholder 502 and `unreachable` (the reason), and may
  re-target and resend, or replace it.
- `state_stream_request_body`: a request `stream` callable may raise `AbortUpload(response)`;
  the upstream connection is closed before the body completes and the response is sent.

When the client is still sending a body nobody will read, our side of the connection is closed
after the answer (half-close), so the client reads the answer instead of waiting; what it still
sends is discarded, never buffered.

Private API: the exact mitmproxy version is pinned and `install` refuses any other;
tests/test_upstream_control.py fails loudly when the wrapped methods change.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

import mitmproxy.version
from mitmproxy import http
from mitmproxy.proxy.commands import CloseConnection, CloseTcpConnection
from mitmproxy.proxy.layers.http import (
    GetHttpConnection,
    HttpResponseHook,
    HttpStream,
    RequestData,
    RequestEndOfMessage,
    RequestHeaders,
    SendHttp,
)

SUPPORTED_MITMPROXY = "12.3.1"

_original_send_response = HttpStream.send_response
_original_make_server_connection = HttpStream.make_server_connection
_original_state_stream_request_body = HttpStream.state_stream_request_body

Commands = Generator[Any, Any, Any]


@dataclass
class Control:
    """What the addon asks of one flow's upstream side, and what it is told back."""

    resend: bool = False  # send the (re-targeted) request again instead of this response
    answer: http.Response | None = None  # send this instead of connecting upstream
    check_body: Callable[[http.Request], http.Response | None] | None = None
    unreachable: str | None = None  # set here: why the upstream could not be reached


_controls: WeakKeyDictionary[http.HTTPFlow, Control] = WeakKeyDictionary()


def control(flow: http.HTTPFlow) -> Control:
    """The flow's control, created on first use: from then on the flow is managed here."""
    return _controls.setdefault(flow, Control())


def control_of(flow: http.HTTPFlow) -> Control | None:
    return _controls.get(flow)


class AbortUpload(Exception):
    """Raised by a request `stream` callable: stop the upload and send `response` instead."""

    def __init__(self, response: http.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _run_until(inner: Commands, stop: Callable[[Any, Any], bool]) -> Commands:
    """Run mitmproxy's generator `inner`, passing its commands out and the replies back in,
    until `stop(command, reply)` holds: then `inner` is dropped and (True, reply) returned;
    else (False, what `inner` returned)."""
    reply = None
    while True:
        try:
            command = inner.send(reply)
        except StopIteration as done:
            return False, done.value
        reply = yield command
        if stop(command, reply):
            inner.close()
            return True, reply


def _take_resend(ctl: Control) -> bool:
    resend, ctl.resend = ctl.resend, False
    return resend


def _send_response(self: HttpStream, already_streamed: bool = False) -> Commands:
    ctl = _controls.get(self.flow)
    if already_streamed or ctl is None:
        return (yield from _original_send_response(self, already_streamed))
    if _take_resend(ctl):  # decided at the response's headers
        return (yield from _resend(self))
    # Decided in the response hook: the response is dropped before any of it is sent.
    resend, value = yield from _run_until(
        _original_send_response(self, already_streamed),
        lambda command, _: isinstance(command, HttpResponseHook) and _take_resend(ctl),
    )
    return (yield from _resend(self)) if resend else value


def _resend(self: HttpStream) -> Commands:
    self.flow.response = None
    if not (yield from self.make_server_connection()):
        return
    content = self.flow.request.raw_content or b""
    yield SendHttp(
        RequestHeaders(self.stream_id, self.flow.request, not content), self.context.server
    )
    if content:
        yield SendHttp(RequestData(self.stream_id, content), self.context.server)
    yield SendHttp(RequestEndOfMessage(self.stream_id), self.context.server)
    self.server_state = self.state_wait_for_response_headers


def _answer(self: HttpStream, response: http.Response) -> Commands:
    """Send the addon's response in place of an upstream's; leaves the upstream out of it."""
    self.flow.response = response
    yield from self.send_response()
    if self.client_state != self.state_done:
        # A body is still on its way and nobody will read it: answer, then close our side so
        # the client reads the answer instead of waiting; mitmproxy discards what still comes.
        self.client_state = self.state_errored
        yield CloseTcpConnection(self.context.client, half_close=True)


def _make_server_connection(self: HttpStream) -> Commands:
    ctl = _controls.get(self.flow)
    if ctl is None:
        return (yield from _original_make_server_connection(self))
    answer, ctl.answer = ctl.answer, None
    check, ctl.check_body = ctl.check_body, None
    if answer is None and check is not None:
        answer = check(self.flow.request)
    if answer is not None:
        yield from _answer(self, answer)
        return False
    # A failed connection leaves mitmproxy's error path (HTML 502) to the addon's response hook.
    failed, value = yield from _run_until(
        _original_make_server_connection(self),
        lambda command, reply: isinstance(command, GetHttpConnection) and bool(reply[1]),
    )
    if not failed:
        return value
    ctl.unreachable = value[1]
    yield from _answer(self, http.Response.make(502, b"", {"Connection": "close"}))
    return False


def _state_stream_request_body(self: HttpStream, event: Any) -> Commands:
    try:
        return (yield from _original_state_stream_request_body(self, event))
    except AbortUpload as abort:
        # The upstream has not seen the end of the body: closing its connection now means it
        # stores nothing. Its "server disconnected" is then ignored (the stream is answered).
        yield CloseConnection(self.context.server)
        yield from _answer(self, abort.response)


def install() -> None:
    """Wrap the methods; idempotent. Refuses a mitmproxy version it was not tested with."""
    if mitmproxy.version.VERSION != SUPPORTED_MITMPROXY:
        raise RuntimeError(
            f"s3-multi wraps mitmproxy internals tested with mitmproxy "
            f"{SUPPORTED_MITMPROXY} only; this is mitmproxy {mitmproxy.version.VERSION}. "
            f"Install mitmproxy=={SUPPORTED_MITMPROXY}."
        )
    HttpStream.send_response = _send_response  # type: ignore[method-assign]
    HttpStream.make_server_connection = _make_server_connection  # type: ignore[method-assign]
    HttpStream.state_stream_request_body = _state_stream_request_body  # type: ignore[method-assign]
