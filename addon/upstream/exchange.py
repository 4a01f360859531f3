"""One client request forwarded in-flow: the journey's decisions carried out on the flow.

`Exchange` is the policy (`addon.mitm.policy`) that mitmproxy's wrapped internals call for the
flow: each time mitmproxy reaches a point that decides something (an answer's headers, a 404's
body, a failed connection, a broken answer), it asks the `Journey` and carries out the verdict on
the request, re-aiming it with `retarget.aim` when the next backend is to be asked.

Three kinds of extra work hang on an exchange, chosen by the gateway
(`addon.gateway.after_steps`): after-steps, run once the primary has answered and before the
client hears (tombstones, a bucket taken on, a copy from a fallback), a tap that also takes the
answer's bytes on their way to the client (a copy on read), and a body tap that takes the
request's object bytes on their way to the primary (the replicas' tee). None is known here beyond
these protocols.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, cast

from mitmproxy import http
from mitmproxy.connection import Client

from addon.mitm import connect_timeouts, drains
from addon.mitm.policy import (
    ANSWER,
    ANSWER_BODY,
    CLIENT_BODY,
    PASS,
    RETRY,
    AbortUpload,
    HeldHead,
    Pass,
    ReadBody,
    Retry,
)
from addon.s3.errors import S3Error, error_response
from addon.s3.log_text import printable
from addon.upstream import retarget, uploads
from addon.upstream.deadlines import Deadline
from addon.upstream.journey import (
    Answer,
    AskNext,
    Consult,
    InspectBody,
    Journey,
    Replace,
    Verdict,
)

log = logging.getLogger(__name__)

# Run once the primary has answered, before the client hears; may replace the answer. Returns
# what it did, for the flow's summary ("" for nothing).
AfterStep = Callable[[http.HTTPFlow], Awaitable[str]]


class Tap(Protocol):
    """Someone else taking the answer's bytes as they go to the client."""

    def feed(self, data: bytes) -> None: ...
    def delivered(self, response: http.Response) -> None: ...
    def cut(self) -> None: ...


class Taps(Protocol):
    """Who may tap an answer, once its headers are in and it is the client's."""

    def tap(self, journey: Journey, response: http.Response) -> Tap | None: ...


@dataclass
class Exchange:
    request_id: str
    resource: str  # /bucket/key, as S3 names it in errors
    plan: retarget.Plan
    journey: Journey
    deadline: Deadline
    client_timeout: float
    tombstone: retarget.Plan | None = None  # the GET of this key's tombstone, if any can be
    # What the primary's answer sets off before the client has it, in order.
    after: list[AfterStep] = field(default_factory=list)
    after_notes: str = ""
    whole_body: bool = False  # read the body whole whatever its size (an after-step needs it)
    transducer: uploads.Transducer | None = field(default=None, repr=False)
    relayed: int = 0  # bytes of the answer's body streamed on to the client
    taps: Taps | None = None  # who may take the answer's bytes too (copy-on-read)
    tap: Tap | None = None  # ... and took them
    instead: http.Response | None = None  # answered at once, without connecting (primary down)
    body_tap: uploads.BodyTap | None = None  # takes the object's bytes too (replicas' tees)
    paced: Client | None = None  # the client connection the body tap's drain is registered for

    # --- the addon's hooks -----------------------------------------------------------------------

    def start(self, flow: http.HTTPFlow) -> None:
        """Aim the request at the first backend and set how its body goes (a small body is
        read whole and given to `check_whole_body` in the `request` hook); or, when the journey
        answers at once, hold its body off: it is never read. A body tapped paces the client's
        connection by its takers too (`mitm.drains`)."""
        request = flow.request
        first = self.journey.start()
        if isinstance(first, S3Error):
            self.instead = self.error(first)
            retarget.hold_off(request)
            return
        self.transducer = retarget.aim(request, first, self.plan)
        if self.body_tap is not None:
            self.transducer = uploads.Tapped(self.transducer, self.body_tap)
            self.paced = flow.client_conn
            drains.add(self.paced, self._drain_tap)
        if request.method in ("PUT", "POST") and request.headers.get("content-length") != "0":
            if not self.whole_body:
                retarget.stream_body(request, self.transducer, self._abort, self.deadline.touch)
            self.deadline.start(CLIENT_BODY, self.client_timeout)

    def sent(self) -> None:
        """The whole request is on its way (the `request` hook): the backend's turn."""
        if self.instead is None:
            self.deadline.start(ANSWER, self.journey.current.backend.response_timeout)

    def relay(self, data: bytes) -> bytes:
        """The answer's `stream` callable: passes the body on, noting that it moves (and
        handing it to a copy on read)."""
        self.deadline.touch()
        self.relayed += len(data)
        if self.tap is not None:
            self.tap.feed(data)
        return data

    def finished(self) -> None:
        self.deadline.stop()
        if self.body_tap is not None:
            self.body_tap.cut()  # (nothing, once it was let land)
        if self.paced is not None:
            drains.discard(self.paced, self._drain_tap)
            self.paced = None
        if self.tap is not None:
            self.tap.cut()

    def check_whole_body(self, request: http.Request) -> http.Response | None:
        """The answer to send instead when a body read whole is refused (a streamed body went
        through the transducer as it came)."""
        if self.transducer is None or request.stream:
            return None
        try:
            retarget.check_whole_body(request, self.transducer)
        except S3Error as e:
            self.journey.refused(e.code)
            return self.error(e)
        return None

    def may_stream(self, response: http.Response) -> bool:
        """Stream the answer's body to the client unless it is small: passing a small body
        whole costs mitmproxy less."""
        if self.after:
            return False  # an after-step may replace it, so it is not sent before
        length = response.headers.get("content-length", "")
        return not (length.isdigit() and int(length) <= retarget.SMALL_BODY)

    async def answered(self, flow: http.HTTPFlow) -> None:
        """The `response` hook: the after-steps run before the client hears (not after an
        answer of the proxy's own, given instead of the primary's)."""
        done = [await step(flow) for step in self.after] if self.instead is None else []
        self.after_notes = "; ".join(d for d in done if d)
        if self.tap is not None and flow.response is not None:
            self.tap.delivered(flow.response)

    def summary(self) -> str:
        copying = f"copying to {self.journey.candidates[0].name}" if self.tap else ""
        notes = [line for line in (self.after_notes, copying) if line]
        return "; ".join([self.journey.summary(self.resource), *notes])

    def error(self, error: S3Error) -> http.Response:
        return error_response(error, self.plan.method, self.resource, self.request_id)

    async def _drain_tap(self) -> None:
        """Between two reads of the client: the body tap's takers given room, for half the
        client's timeout at most (the client's own deadline must not pass meanwhile)."""
        if self.body_tap is not None:
            await self.body_tap.drain(self.client_timeout / 2)

    def _abort(self, error: S3Error) -> Exception:
        self.journey.refused(error.code)
        return AbortUpload(self.error(error))

    # --- mitm.policy.Policy ---------------------------------------------------------------------

    def held_head(self, flow: http.HTTPFlow) -> HeldHead | None:
        """A streamed form upload: its head waits for the form's (`uploads.HeldHead`)."""
        stream = flow.request.stream
        if not (self.plan.body.holds_head and callable(stream)):
            return None
        assert self.transducer is not None
        return uploads.HeldHead(flow.request, cast(uploads.Reframing, self.transducer), stream)

    def before_connect(self, flow: http.HTTPFlow) -> http.Response | None:
        return self.instead

    def connect_failed(self, flow: http.HTTPFlow, reason: str) -> Retry | http.Response:
        attempt = self.journey.current
        log.warning("backend %s unreachable: %s", attempt.backend.name, reason)
        at_once = not connect_timeouts.timed_out(reason)
        verdict = self.journey.unreachable(reason, at_once)
        return self._carry_out(flow, verdict)  # type: ignore[return-value]

    def response_headers(self, flow: http.HTTPFlow) -> Pass | ReadBody | Retry | http.Response:
        response = flow.response
        assert response is not None
        marker = response.headers.get("x-amz-delete-marker", "").lower() == "true"
        etag = response.headers.get("etag")
        verdict = self.journey.headers(response.status_code, delete_marker=marker, etag=etag)
        if isinstance(verdict, Answer) and self.taps is not None:
            self.tap = self.taps.tap(self.journey, response)
        if isinstance(verdict, InspectBody | Answer):
            self.deadline.start(ANSWER_BODY, self.journey.current.backend.idle_timeout)
        if isinstance(verdict, InspectBody):
            return ReadBody(verdict.limit)
        return self._carry_out(flow, verdict)

    def response_body(self, flow: http.HTTPFlow, body: bytes) -> Pass | Retry | http.Response:
        return self._carry_out(flow, self.journey.body(body))  # type: ignore[return-value]

    def response_broken(self, flow: http.HTTPFlow, reason: str) -> Retry | http.Response:
        name = self.journey.current.backend.name
        log.warning("backend %s broke: %s", name, printable(reason[:200]))
        return self._carry_out(flow, self.journey.broken(reason))  # type: ignore[return-value]

    def deadline_passed(self, flow: http.HTTPFlow, phase: str) -> Retry | http.Response:
        if phase == CLIENT_BODY:
            self.journey.refused("RequestTimeout")
            return self.error(S3Error("RequestTimeout"))
        backend = self.journey.current.backend
        if phase == ANSWER:
            reason = f"no answer within {backend.response_timeout:g}s"
        else:
            reason = f"its answer stalled for {backend.idle_timeout:g}s"
        log.warning("backend %s timed out: %s", backend.name, reason)
        return self._carry_out(flow, self.journey.timed_out(reason))  # type: ignore[return-value]

    def _carry_out(self, flow: http.HTTPFlow, verdict: Verdict) -> Pass | Retry | http.Response:
        match verdict:
            case Answer():
                return PASS
            case AskNext(backend):
                retarget.aim(flow.request, backend, self.plan)
                self.deadline.start(ANSWER, backend.response_timeout)
                return RETRY
            case Consult():
                assert self.tombstone is not None
                primary = self.journey.current.backend
                retarget.aim(flow.request, primary, self.tombstone)
                self.deadline.start(ANSWER, primary.response_timeout)
                return RETRY
            case Replace(error):
                return self.error(error)
        raise AssertionError(f"{verdict} cannot be carried out here")
