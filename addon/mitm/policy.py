"""What a flow's owner decides where mitmproxy's hooks cannot reach: the policy protocol.

A flow opts in with `manage(flow, policy)`; the wrapped methods of mitmproxy's `HttpStream`
(`http_stream`) then call the policy at each point and carry out what it says: `Pass` the answer
on, `Retry` the request (re-aimed by the policy), `ReadBody` first, or answer with a response of
the policy's; and, for a streamed request whose body decides its head, hold the request's
head until its `HeldHead` says. This module is public to the rest of the addon; `http_stream` is
where the private API is touched.

Policies live beside their flows (a WeakKeyDictionary), not in `flow.metadata`, which mitmproxy
deep-copies when it saves a flow.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Protocol
from weakref import WeakKeyDictionary

from mitmproxy import ctx, http
from mitmproxy.proxy.events import MessageInjected


class Pass:
    """Let mitmproxy go on with this answer as usual (hooks, streaming, to the client)."""


class Retry:
    """Send the request again: the policy has re-aimed it at another upstream."""


PASS, RETRY = Pass(), Retry()

# The deadlines a timer of the addon can report (`DeadlinePassed.message`).
CLIENT_BODY = "the client stopped sending its body"
ANSWER = "no answer in time"
ANSWER_BODY = "the answer's body stalled"


@dataclass
class DeadlinePassed(MessageInjected[str]):
    """Injected into the flow's connection by the addon (mitmproxy's proxyserver.inject_event)
    when one of its timers expires: `message` is CLIENT_BODY, ANSWER or ANSWER_BODY."""


@dataclass(frozen=True)
class ReadBody:
    """Read the answer's body, at most `limit` bytes, without passing it on; then ask again."""

    limit: int


class HeldHead(Protocol):
    """A streamed request whose head waits for the first bytes of its body (a browser form: its
    fields decide what the backend is sent, and so the request's Content-Length)."""

    def feed(self, data: bytes) -> list[bytes] | None:
        """A piece of the body as it comes (b"" at its end): None while the head must wait,
        else what to send right after the request's head (which is final by then). Raises
        AbortUpload to refuse: nothing has been sent anywhere yet."""
        ...


class Policy(Protocol):
    """What a managed flow's owner decides at each point mitmproxy's hooks cannot reach."""

    def held_head(self, flow: http.HTTPFlow) -> HeldHead | None: ...
    def before_connect(self, flow: http.HTTPFlow) -> http.Response | None: ...
    def connect_failed(self, flow: http.HTTPFlow, reason: str) -> Retry | http.Response: ...
    def response_headers(self, flow: http.HTTPFlow) -> Pass | ReadBody | Retry | http.Response: ...
    def response_body(self, flow: http.HTTPFlow, body: bytes) -> Pass | Retry | http.Response: ...
    def response_broken(self, flow: http.HTTPFlow, reason: str) -> Retry | http.Response: ...
    def deadline_passed(self, flow: http.HTTPFlow, phase: str) -> Retry | http.Response: ...


@dataclass(frozen=True)
class AnswerInstead:
    """The policy of a flow answered without connecting anywhere (a refusal)."""

    response: http.Response

    def held_head(self, flow: http.HTTPFlow) -> HeldHead | None:
        return None

    def before_connect(self, flow: http.HTTPFlow) -> http.Response | None:
        return self.response

    def _never(self, *_: object) -> Any:
        raise AssertionError("a flow answered instead of connecting has no upstream")

    connect_failed = response_headers = response_body = response_broken = _never
    deadline_passed = _never


class AbortUpload(Exception):
    """Raised by a request `stream` callable: stop the upload and send `response` instead."""

    def __init__(self, response: http.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


_policies: WeakKeyDictionary[http.HTTPFlow, Policy] = WeakKeyDictionary()


def manage(flow: http.HTTPFlow, policy: Policy) -> None:
    """From now on, `policy` decides for this flow at the points listed above."""
    _policies[flow] = policy


def policy_of(flow: http.HTTPFlow) -> Policy | None:
    return _policies.get(flow)


def inject_deadline(flow: http.HTTPFlow, phase: str) -> None:
    """An expired deadline, into the flow's connection, where its policy acts on it."""
    with contextlib.suppress(ValueError):  # the client has gone: nothing to act on
        ctx.master.addons.get("proxyserver").inject_event(DeadlinePassed(flow, phase))
