"""What a wrapped `HttpStream` does with a policy's decision (`http_stream` asks; this acts):
pass an answer on to the client, send the request again to the re-aimed upstream, answer in an
upstream's place, and let go of an upstream whose answer is not wanted."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from mitmproxy import http
from mitmproxy.proxy.commands import CloseConnection, CloseTcpConnection
from mitmproxy.proxy.layers.http import (
    ErrorCode,
    HttpLayer,
    HttpResponseHeadersHook,
    HttpStream,
    RequestEndOfMessage,
    RequestHeaders,
    ResponseProtocolError,
    SendHttp,
)
from mitmproxy.proxy.layers.http._http1 import Http1Client

from addon.mitm.policy import Retry

Commands = Generator[Any, Any, Any]


def act(self: HttpStream, decision: Any, body_pending: bool) -> Commands:
    """Carry out a Retry or a replacing Response for an answer the client has not seen."""
    if body_pending:
        # The rest of this answer is not wanted: drop its connection rather than read it.
        yield from detach_upstream(self)
    if isinstance(decision, Retry):
        yield from resend(self)
    else:
        assert isinstance(decision, http.Response), decision
        yield from answer(self, decision)


def still_sending(self: HttpStream) -> bool:
    """Whether the client's request body is still on its way."""
    return self.client_state != self.state_done


def deliver(self: HttpStream) -> Commands:
    """Hand `flow.response`, complete, to the client: both response hooks run, as they do for
    a response an addon set in the `request` hook (mitmproxy's own emulation)."""
    yield HttpResponseHeadersHook(self.flow)
    if (yield from self.check_killed(True)):
        return
    yield from self.send_response()


def resend(self: HttpStream) -> Commands:
    request = self.flow.request
    assert not request.raw_content and self.client_state == self.state_done, (
        "only a bodiless request that has been received whole is sent again"
    )
    self.flow.response = None
    server = self.context.server
    if server.connected and server.address == (request.host, request.port):
        # The same upstream again (a tombstone lookup on the primary): its connection is still
        # finishing the last answer, so it must not be handed this request; a new one is.
        yield from detach_upstream(self)
    if not (yield from self.make_server_connection()):
        return
    yield SendHttp(RequestHeaders(self.stream_id, request, True), self.context.server)
    yield SendHttp(RequestEndOfMessage(self.stream_id), self.context.server)
    self.server_state = self.state_wait_for_response_headers


_DETACHED = -1  # HTTP/1 and HTTP/2 stream ids are positive


def detach_upstream(self: HttpStream) -> Commands:
    """Close this stream's upstream connection and hear no more from it.

    Its HTTP/1 client layer would report the close (or the rest of a broken answer) as an error
    of this stream, which by then may be waiting for another upstream. mitmproxy's own
    MessageInjected routing finds that layer the same way (HttpLayer._handle_event).
    """
    server = self.context.server
    parent = self.context.layers[self.context.layers.index(self) - 1]
    assert isinstance(parent, HttpLayer)
    stack = parent.connections.get(server)
    client = stack.context.layers[-1] if stack is not None else None
    if isinstance(client, Http1Client) and client.stream_id == self.stream_id:
        # No stream has this id: what the layer still reports (it may be in the middle of
        # reading this very answer) is dropped by HttpLayer, which finds no stream for it.
        client.stream_id = _DETACHED
    yield CloseConnection(server)


def answer_reached_client(self: HttpStream) -> bool:
    """Whether the client has (part of) an answer, or the stream is over: too late to re-aim."""
    over = (self.state_stream_response_body, self.state_done, self.state_errored)
    return self.server_state in over


def answer(self: HttpStream, response: http.Response) -> Commands:
    """Send the policy's response in place of an upstream's; leaves the upstream out of it."""
    sending = still_sending(self)
    if sending and not self.flow.request.is_http2:
        response.headers["Connection"] = "close"  # we close after it: the client must know
    self.flow.response = response
    yield from deliver(self)
    if sending:
        # A body is still on its way and nobody will read it.
        self.client_state = self.state_errored
        if self.flow.request.is_http2:
            yield SendHttp(
                ResponseProtocolError(self.stream_id, "request refused", ErrorCode.CANCEL),
                self.context.client,
            )
        else:
            yield CloseTcpConnection(self.context.client, half_close=True)
