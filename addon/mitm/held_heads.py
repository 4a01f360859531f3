"""A streamed request whose head waits for the first bytes of its body: the wrap of
`HttpStream.start_request_stream`.

mitmproxy sends a streamed request's head upstream before it reads any of its body. A browser
form upload cannot go that way: its fields decide what the backend is sent, Content-Length
included. So when the flow's policy gives a `HeldHead`, nothing is sent yet: the body is read in
a client state of our own (`state_read_body_head`) and fed to the HeldHead until it says what
goes first; then mitmproxy's own `start_request_stream` connects (the wrapped
`make_server_connection`: the policy may still answer instead) and sends the now final head, and
the body streams on in mitmproxy's `state_stream_request_body`. A refusal while the head is held
(`AbortUpload`) is answered with no upstream at all. The client timeout applies as to any body
(`reading`, for `http_stream`'s deadline).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from mitmproxy.proxy.layers.http import (
    HttpStream,
    RequestData,
    RequestEndOfMessage,
    RequestTrailers,
    SendHttp,
)

from addon.mitm import stream_actions as actions
from addon.mitm.policy import AbortUpload, HeldHead, policy_of

Commands = Generator[Any, Any, Any]

ORIGINAL = HttpStream.start_request_stream
_STATE = "state_read_body_head"


def reading(self: HttpStream) -> bool:
    """Whether the stream is reading a held head (the client is sending its body)."""
    return getattr(self.client_state, "__name__", "") == _STATE


def start_request_stream(self: HttpStream) -> Commands:
    """mitmproxy's own, unless the flow's policy holds the head: then the body is read first."""
    policy = policy_of(self.flow)
    head = policy.held_head(self.flow) if policy is not None else None
    if head is None:
        return (yield from ORIGINAL(self))
    self.client_state = _head_reader(self, head)
    return None


def _head_reader(self: HttpStream, head: HeldHead) -> Callable[[Any], Commands]:
    """A client state that reads the body until `head` decides what goes first; then mitmproxy's
    own start of a streamed request, and its streaming state for the rest."""

    def state_read_body_head(event: Any) -> Commands:
        if isinstance(event, RequestTrailers):
            self.flow.request.trailers = event.trailers  # sent after the body, as mitmproxy does
            return
        end = isinstance(event, RequestEndOfMessage)
        try:
            first = head.feed(b"" if end else event.data)
        except AbortUpload as abort:
            yield from actions.answer(self, abort.response)  # nothing was sent anywhere
            return
        if first is None:
            assert not end, "a HeldHead decides or refuses at the end of the body"
            return
        yield from ORIGINAL(self)  # connects, sends the head
        if self.client_state != self.state_stream_request_body:
            return  # no upstream: the policy answered
        for data in first:
            yield SendHttp(RequestData(self.stream_id, data), self.context.server)
        if end:
            yield from self.state_stream_request_body(event)

    assert state_read_body_head.__name__ == _STATE
    return state_read_body_head
