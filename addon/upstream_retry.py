"""In-flow retry: let an addon send a finished flow's request again, to another upstream.

mitmproxy has no supported way to answer a client from a second upstream after the first one
answered (see README, "How fallback works"). Probing every backend first costs a round trip on
every hit; buffering the fallback's answer costs the object's size in memory. So we wrap two
private methods of mitmproxy's `HttpStream`, for flows that opt in with `flow.metadata[MANAGED]`:

- `send_response`: after the `response` hook of a response that was read whole (not streamed),
  if the addon set `flow.metadata[RESEND]` (having re-targeted `flow.request`), the request is
  sent again on the same stream instead of the response. The next upstream's answer runs the
  `responseheaders` and `response` hooks as usual and may be streamed.
- `make_server_connection`: when the upstream cannot be reached, instead of mitmproxy's HTML 502
  the `response` hook sees a placeholder 502 and `flow.metadata[UNREACHABLE]` (the reason), and
  may re-target and resend, or replace the response with its own error.

Only bodiless requests are resent (their body, if any, was read whole). Private API: the exact
mitmproxy version is pinned and `install` refuses any other; tests/test_upstream_retry.py fails
loudly when the wrapped methods change.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import mitmproxy.version
from mitmproxy import http
from mitmproxy.proxy.commands import CloseTcpConnection
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
MANAGED = "s3multi.managed"
RESEND = "s3multi.resend"
UNREACHABLE = "s3multi.unreachable"

_original_send_response = HttpStream.send_response
_original_make_server_connection = HttpStream.make_server_connection

Commands = Generator[Any, Any, Any]


def _send_response(self: HttpStream, already_streamed: bool = False) -> Commands:
    if already_streamed or not self.flow.metadata.get(MANAGED):
        return (yield from _original_send_response(self, already_streamed))
    inner = _original_send_response(self, already_streamed)
    reply = None
    while True:
        try:
            command = inner.send(reply)
        except StopIteration as done:
            return done.value
        reply = yield command
        if isinstance(command, HttpResponseHook) and self.flow.metadata.pop(RESEND, False):
            inner.close()  # the response is dropped: nothing of it was sent to the client
            return (yield from _resend(self))


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


def _make_server_connection(self: HttpStream) -> Commands:
    if not self.flow.metadata.get(MANAGED):
        return (yield from _original_make_server_connection(self))
    inner = _original_make_server_connection(self)
    reply = None
    while True:
        try:
            command = inner.send(reply)
        except StopIteration as done:
            return done.value
        reply = yield command
        if isinstance(command, GetHttpConnection) and reply[1]:
            inner.close()  # instead of mitmproxy's error path: let the addon decide
            self.flow.metadata[UNREACHABLE] = reply[1]
            self.flow.response = http.Response.make(502, b"", {"Connection": "close"})
            yield from self.send_response()
            if self.client_state != self.state_done:
                # An upload still on its way: nobody will read its body. Answer, then close our
                # side so the client reads the answer instead of waiting on a half-done request;
                # mitmproxy discards what the client still sends.
                yield CloseTcpConnection(self.context.client, half_close=True)
            return False


def install() -> None:
    """Wrap the two methods; idempotent. Refuses a mitmproxy version it was not tested with."""
    if mitmproxy.version.VERSION != SUPPORTED_MITMPROXY:
        raise RuntimeError(
            f"s3-multi's fallback wraps mitmproxy internals tested with mitmproxy "
            f"{SUPPORTED_MITMPROXY} only; this is mitmproxy {mitmproxy.version.VERSION}. "
            f"Install mitmproxy=={SUPPORTED_MITMPROXY}."
        )
    HttpStream.send_response = _send_response  # type: ignore[method-assign]
    HttpStream.make_server_connection = _make_server_connection  # type: ignore[method-assign]
