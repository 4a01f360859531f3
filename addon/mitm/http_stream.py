"""mitmproxy's `HttpStream`, wrapped: where a managed flow's policy (`policy`) is asked.

An S3 gateway needs things that mitmproxy 12 gives no hook for (the package's README says why
each one, and what to re-check on an upgrade). Each wrap:

- `make_server_connection`: `before_connect` may answer instead of connecting (a refusal: the
  body was never read); a failed connection goes to `connect_failed`, which re-aims the request
  (a sick fallback is skipped) or gives the answer. mitmproxy would send its HTML 502.
- `state_wait_for_response_headers`: the answer's hop-by-hop headers are the upstream
  connection's, not the client's (`hop_by_hop`); `response_headers` decides before the
  `responseheaders` hook runs: pass the answer on, read its (small, capped) body first and ask
  `response_body`, send the request again to the re-aimed upstream, or replace the answer. An
  intermediate answer never reaches any addon. Only bodiless requests are sent again (asserted).
  An answer that comes while the client still sends the body (an upload refused early) is read
  whole (EARLY_ANSWER_LIMIT) and given as the proxy's own refusals are: the upstream's own
  error, not a 503 of ours when it closes before reading the rest.
- `handle_protocol_error`: an upstream that breaks before its answer reached the client
  (garbage, reset, a short body read whole) goes to `response_broken` (re-aim or answer); once
  the answer is streaming, the client's transfer is broken as mitmproxy does, so that a cut
  body never looks complete.
- `state_stream_request_body`: a request `stream` callable may raise `AbortUpload(response)`;
  the upstream connection is closed before the body completes and the response is sent.
- `start_request_stream` (`held_heads`): a streamed request whose policy gives a `HeldHead` (a
  browser form: its fields decide the backend's request) is sent once its body's first bytes
  have decided its head.
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
from mitmproxy.proxy.commands import CloseConnection
from mitmproxy.proxy.layers.http import (
    ErrorCode,
    GetHttpConnection,
    HttpStream,
    ResponseData,
    ResponseEndOfMessage,
    ResponseProtocolError,
)

from addon.mitm import held_heads, hop_by_hop
from addon.mitm import stream_actions as actions
from addon.mitm.policy import (
    ANSWER_BODY,
    CLIENT_BODY,
    AbortUpload,
    DeadlinePassed,
    Pass,
    Policy,
    ReadBody,
    policy_of,
)

Commands = Generator[Any, Any, Any]
# An upstream's answer that comes while the client still sends the body is read whole first, up to
# this (an S3 error is a few hundred bytes); a longer one counts as a broken answer.
EARLY_ANSWER_LIMIT = 64 * 1024

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
    yield from actions.answer(self, answer)
    return False


def _state_wait_for_response_headers(self: HttpStream, event: Any) -> Commands:
    policy = policy_of(self.flow)
    if policy is None:
        return (yield from _original_state_wait_for_response_headers(self, event))
    event = hop_by_hop.for_client(event)
    self.flow.response = event.response
    decision = policy.response_headers(self.flow)
    if isinstance(decision, Pass) and actions.still_sending(self):
        # An answer before the whole body went up (an upload refused early; the upstream may
        # close without reading the rest): read it, then give it as the proxy gives its own
        # refusals, saying it closes after it.
        self.server_state = _body_reader(self, policy, EARLY_ANSWER_LIMIT, _deliver_early)
    elif isinstance(decision, Pass):
        return (yield from _original_state_wait_for_response_headers(self, event))
    elif isinstance(decision, ReadBody):
        self.server_state = _body_reader(self, policy, decision.limit, _decide_on_body)
    elif event.end_stream:
        # Its end of message still comes (at once): act then, the connection stays reusable.
        self.server_state = _at_end(self, decision)
    else:
        yield from actions.act(self, decision, body_pending=True)
    return None


def _at_end(self: HttpStream, decision: Any) -> Callable[[Any], Commands]:
    """A server state that waits for the end of an answer that has no body, then acts."""

    def state_end_of_answer(event: Any) -> Commands:
        if isinstance(event, ResponseEndOfMessage):
            yield from actions.act(self, decision, body_pending=False)

    return state_end_of_answer


def _body_reader(
    self: HttpStream, policy: Policy, limit: int, then: Callable[[HttpStream, Policy], Commands]
) -> Callable[[Any], Commands]:
    """A server state that reads an answer's body without passing it on, up to `limit`; then
    `then` (the body is the answer's content by then)."""
    body = bytearray()

    def state_read_answer_body(event: Any) -> Commands:
        if isinstance(event, ResponseData):
            body.extend(event.data)
            if len(body) > limit:
                decision = policy.response_broken(self.flow, f"an error body over {limit} bytes")
                yield from actions.act(self, decision, body_pending=True)
        elif isinstance(event, ResponseEndOfMessage):
            assert self.flow.response is not None
            self.flow.response.data.content = bytes(body)
            yield from then(self, policy)
        # Trailers of an answer we do not pass on are dropped.

    return state_read_answer_body


def _decide_on_body(self: HttpStream, policy: Policy) -> Commands:
    assert self.flow.response is not None
    decision = policy.response_body(self.flow, self.flow.response.raw_content or b"")
    if isinstance(decision, Pass):
        yield from actions.deliver(self)
    else:
        yield from actions.act(self, decision, body_pending=False)


def _deliver_early(self: HttpStream, policy: Policy) -> Commands:
    """The upstream's whole answer, given while the client still sends the body: the upstream
    is done with (it answered without it), the rest of the body goes nowhere."""
    assert self.flow.response is not None
    yield from actions.detach_upstream(self)
    yield from actions.answer(self, self.flow.response)


def _handle_protocol_error(self: HttpStream, event: Any) -> Commands:
    policy = policy_of(self.flow) if hasattr(self, "flow") else None
    if (
        policy is None
        or not isinstance(event, ResponseProtocolError)
        or actions.answer_reached_client(self)
    ):
        return (yield from _original_handle_protocol_error(self, event))
    yield from actions.detach_upstream(self)  # it would report its own close as one more error
    decision = policy.response_broken(self.flow, event.message)
    yield from actions.act(self, decision, body_pending=False)


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
    if phase == CLIENT_BODY and (self.client_state in receiving or held_heads.reading(self)):
        if self.client_state == self.state_stream_request_body:
            yield from actions.detach_upstream(self)  # it has part of a body: it must store nothing
        answer = policy.deadline_passed(self.flow, phase)
        assert isinstance(answer, http.Response), "a stalled client is answered, not re-aimed"
        yield from actions.answer(self, answer)
    elif phase == ANSWER_BODY and self.server_state == self.state_stream_response_body:
        # The client has the headers and part of the body: break its transfer.
        yield from actions.detach_upstream(self)
        error = ResponseProtocolError(self.stream_id, phase, ErrorCode.GENERIC_SERVER_ERROR)
        yield from _original_handle_protocol_error(self, error)
    elif phase != CLIENT_BODY and not actions.answer_reached_client(self):
        yield from actions.detach_upstream(self)
        yield from actions.act(self, policy.deadline_passed(self.flow, phase), body_pending=False)


def _state_stream_request_body(self: HttpStream, event: Any) -> Commands:
    try:
        return (yield from _original_state_stream_request_body(self, event))
    except AbortUpload as abort:
        # The upstream has not seen the end of the body: closing its connection now means it
        # stores nothing. Its "server disconnected" is then ignored (the stream is answered).
        yield CloseConnection(self.context.server)
        yield from actions.answer(self, abort.response)


WRAPPED = {
    "_handle_event": _handle_event,
    "make_server_connection": _make_server_connection,
    "state_wait_for_response_headers": _state_wait_for_response_headers,
    "handle_protocol_error": _handle_protocol_error,
    "state_stream_request_body": _state_stream_request_body,
    "start_request_stream": held_heads.start_request_stream,
}
ORIGINALS = {
    "_handle_event": _original_handle_event,
    "make_server_connection": _original_make_server_connection,
    "state_wait_for_response_headers": _original_state_wait_for_response_headers,
    "handle_protocol_error": _original_handle_protocol_error,
    "state_stream_request_body": _original_state_stream_request_body,
    "start_request_stream": held_heads.ORIGINAL,
}
