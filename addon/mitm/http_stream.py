"""mitmproxy's `HttpStream`, wrapped: where a managed flow's policy (`policy`) is asked.

An S3 gateway needs things that mitmproxy 12 gives no hook for (the package's README says why
each one, and what to re-check on an upgrade). Each wrap:

- `make_server_connection`: `before_connect` may answer instead of connecting (a refusal: the
  body was never read); a failed connection goes to `connect_failed`, which re-aims the request
  (a sick fallback is skipped) or gives the answer. mitmproxy would send its HTML 502.
- `state_wait_for_response_headers`: `response_headers` decides before the `responseheaders`
  hook runs: pass the answer on, read its (small, capped) body first and ask `response_body`,
  send the request again to the re-aimed upstream, or replace the answer. An intermediate answer
  never reaches any addon. Only bodiless requests are sent again (asserted).
- `handle_protocol_error`: an upstream that breaks before its answer reached the client
  (garbage, reset, a short body read whole) goes to `response_broken` (re-aim or answer); once
  the answer is streaming, the client's transfer is broken as mitmproxy does, so that a cut
  body never looks complete.
- `state_stream_request_body`: a request `stream` callable may raise `AbortUpload(response)`;
  the upstream connection is closed before the body completes and the response is sent.
- `_handle_event`: a `DeadlinePassed` event, injected by the addon's timers, reaches the
  stream's policy (mitmproxy routes injected events to the stream, but only WebSocket and TCP
  layers take them).

When the client is still sending a body nobody will read, the answer says `Connection: close`
and our side of the connection is half-closed after it (HTTP/1), or the stream is reset after it
(HTTP/2, the connection's other streams go on); what the client still sends is discarded.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from mitmproxy import http
from mitmproxy.proxy.commands import CloseConnection, CloseTcpConnection
from mitmproxy.proxy.layers.http import (
    ErrorCode,
    GetHttpConnection,
    HttpLayer,
    HttpResponseHeadersHook,
    HttpStream,
    RequestEndOfMessage,
    RequestHeaders,
    ResponseData,
    ResponseEndOfMessage,
    ResponseProtocolError,
    SendHttp,
)
from mitmproxy.proxy.layers.http._http1 import Http1Client

from addon.mitm.policy import (
    ANSWER_BODY,
    CLIENT_BODY,
    AbortUpload,
    DeadlinePassed,
    Pass,
    Policy,
    ReadBody,
    Retry,
    policy_of,
)

Commands = Generator[Any, Any, Any]

_original_make_server_connection = HttpStream.make_server_connection
_original_state_wait_for_response_headers = HttpStream.state_wait_for_response_headers
_original_handle_protocol_error = HttpStream.handle_protocol_error
_original_state_stream_request_body = HttpStream.state_stream_request_body
_original_handle_event = HttpStream._handle_event


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


def _make_server_connection(self: HttpStream) -> Commands:
    policy = policy_of(self.flow)
    if policy is None:
        return (yield from _original_make_server_connection(self))
    answer = policy.before_connect(self.flow)
    while answer is None:
        failed, value = yield from _run_until(
            _original_make_server_connection(self),
            lambda command, reply: isinstance(command, GetHttpConnection) and bool(reply[1]),
        )
        if not failed:
            return value
        decision = policy.connect_failed(self.flow, value[1])
        if isinstance(decision, http.Response):
            answer = decision
        # else re-aimed: connect to the next upstream (nothing was sent yet)
    yield from _answer(self, answer)
    return False


def _state_wait_for_response_headers(self: HttpStream, event: Any) -> Commands:
    policy = policy_of(self.flow)
    if policy is None:
        return (yield from _original_state_wait_for_response_headers(self, event))
    self.flow.response = event.response
    decision = policy.response_headers(self.flow)
    if isinstance(decision, Pass):
        return (yield from _original_state_wait_for_response_headers(self, event))
    if isinstance(decision, ReadBody):
        self.server_state = _body_reader(self, policy, decision.limit)
    elif event.end_stream:
        # Its end of message still comes (at once): act then, the connection stays reusable.
        self.server_state = _at_end(self, decision)
    else:
        yield from _act(self, decision, body_pending=True)
    return None


def _at_end(self: HttpStream, decision: Any) -> Callable[[Any], Commands]:
    """A server state that waits for the end of an answer that has no body, then acts."""

    def state_end_of_answer(event: Any) -> Commands:
        if isinstance(event, ResponseEndOfMessage):
            yield from _act(self, decision, body_pending=False)

    return state_end_of_answer


def _body_reader(self: HttpStream, policy: Policy, limit: int) -> Callable[[Any], Commands]:
    """A server state that reads an answer's body without passing it on, up to `limit`."""
    body = bytearray()

    def state_read_answer_body(event: Any) -> Commands:
        if isinstance(event, ResponseData):
            body.extend(event.data)
            if len(body) > limit:
                decision = policy.response_broken(self.flow, f"an error body over {limit} bytes")
                yield from _act(self, decision, body_pending=True)
        elif isinstance(event, ResponseEndOfMessage):
            yield from _decide_on_body(self, policy, bytes(body))
        # Trailers of an answer we do not pass on are dropped.

    return state_read_answer_body


def _decide_on_body(self: HttpStream, policy: Policy, body: bytes) -> Commands:
    assert self.flow.response is not None
    self.flow.response.data.content = body
    decision = policy.response_body(self.flow, body)
    if isinstance(decision, Pass):
        yield from _deliver(self)
    else:
        yield from _act(self, decision, body_pending=False)


def _act(self: HttpStream, decision: Any, body_pending: bool) -> Commands:
    """Carry out a Retry or a replacing Response for an answer the client has not seen."""
    if body_pending:
        # The rest of this answer is not wanted: drop its connection rather than read it.
        yield from _detach_upstream(self)
    if isinstance(decision, Retry):
        yield from _resend(self)
    else:
        assert isinstance(decision, http.Response), decision
        self.flow.response = decision
        yield from _deliver(self)


def _deliver(self: HttpStream) -> Commands:
    """Hand `flow.response`, complete, to the client: both response hooks run, as they do for
    a response an addon set in the `request` hook (mitmproxy's own emulation)."""
    yield HttpResponseHeadersHook(self.flow)
    if (yield from self.check_killed(True)):
        return
    yield from self.send_response()


def _resend(self: HttpStream) -> Commands:
    request = self.flow.request
    assert not request.raw_content and self.client_state == self.state_done, (
        "only a bodiless request that has been received whole is sent again"
    )
    self.flow.response = None
    server = self.context.server
    if server.connected and server.address == (request.host, request.port):
        # The same upstream again (a tombstone lookup on the primary): its connection is still
        # finishing the last answer, so it must not be handed this request; a new one is.
        yield from _detach_upstream(self)
    if not (yield from self.make_server_connection()):
        return
    yield SendHttp(RequestHeaders(self.stream_id, request, True), self.context.server)
    yield SendHttp(RequestEndOfMessage(self.stream_id), self.context.server)
    self.server_state = self.state_wait_for_response_headers


def _handle_protocol_error(self: HttpStream, event: Any) -> Commands:
    policy = policy_of(self.flow) if hasattr(self, "flow") else None
    if (
        policy is None
        or not isinstance(event, ResponseProtocolError)
        or _answer_reached_client(self)
    ):
        return (yield from _original_handle_protocol_error(self, event))
    yield from _detach_upstream(self)  # it would report its own close as one more error
    decision = policy.response_broken(self.flow, event.message)
    yield from _act(self, decision, body_pending=False)


_DETACHED = -1  # HTTP/1 and HTTP/2 stream ids are positive


def _detach_upstream(self: HttpStream) -> Commands:
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


def _handle_event(self: HttpStream, event: Any) -> Commands:
    if isinstance(event, DeadlinePassed):
        return (yield from _deadline_passed(self, event))
    return (yield from _original_handle_event(self, event))


def _deadline_passed(self: HttpStream, event: DeadlinePassed) -> Commands:
    """A timer of the addon expired: act on it if the flow is still where the timer was for."""
    flow = event.flow
    policy = policy_of(flow) if isinstance(flow, http.HTTPFlow) else None
    if policy is None or getattr(self, "flow", None) is not flow:
        return  # the stream moved on to another request of the connection
    phase = event.message
    receiving = (self.state_stream_request_body, self.state_consume_request_body)
    if phase == CLIENT_BODY and self.client_state in receiving:
        if self.client_state == self.state_stream_request_body:
            yield from _detach_upstream(self)  # it has part of a body: it must store nothing
        answer = policy.deadline_passed(self.flow, phase)
        assert isinstance(answer, http.Response), "a stalled client is answered, not re-aimed"
        yield from _answer(self, answer)
    elif phase == ANSWER_BODY and self.server_state == self.state_stream_response_body:
        # The client has the headers and part of the body: break its transfer.
        yield from _detach_upstream(self)
        error = ResponseProtocolError(self.stream_id, phase, ErrorCode.GENERIC_SERVER_ERROR)
        yield from _original_handle_protocol_error(self, error)
    elif phase != CLIENT_BODY and not _answer_reached_client(self):
        yield from _detach_upstream(self)
        yield from _act(self, policy.deadline_passed(self.flow, phase), body_pending=False)


def _answer_reached_client(self: HttpStream) -> bool:
    """Whether the client has (part of) an answer, or the stream is over: too late to re-aim."""
    over = (self.state_stream_response_body, self.state_done, self.state_errored)
    return self.server_state in over


def _answer(self: HttpStream, response: http.Response) -> Commands:
    """Send the policy's response in place of an upstream's; leaves the upstream out of it."""
    still_sending = self.client_state != self.state_done
    if still_sending and not self.flow.request.is_http2:
        response.headers["Connection"] = "close"  # we close after it: the client must know
    self.flow.response = response
    yield from _deliver(self)
    if still_sending:
        # A body is still on its way and nobody will read it.
        self.client_state = self.state_errored
        if self.flow.request.is_http2:
            yield SendHttp(
                ResponseProtocolError(self.stream_id, "request refused", ErrorCode.CANCEL),
                self.context.client,
            )
        else:
            yield CloseTcpConnection(self.context.client, half_close=True)


def _state_stream_request_body(self: HttpStream, event: Any) -> Commands:
    try:
        return (yield from _original_state_stream_request_body(self, event))
    except AbortUpload as abort:
        # The upstream has not seen the end of the body: closing its connection now means it
        # stores nothing. Its "server disconnected" is then ignored (the stream is answered).
        yield CloseConnection(self.context.server)
        yield from _answer(self, abort.response)


WRAPPED = {
    "_handle_event": _handle_event,
    "make_server_connection": _make_server_connection,
    "state_wait_for_response_headers": _state_wait_for_response_headers,
    "handle_protocol_error": _handle_protocol_error,
    "state_stream_request_body": _state_stream_request_body,
}
ORIGINALS = {
    "_handle_event": _original_handle_event,
    "make_server_connection": _original_make_server_connection,
    "state_wait_for_response_headers": _original_state_wait_for_response_headers,
    "handle_protocol_error": _original_handle_protocol_error,
    "state_stream_request_body": _original_state_stream_request_body,
}
