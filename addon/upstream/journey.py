"""One request's way over its candidate backends: a decision core with no I/O.

Fed what each backend did (answered with a status and headers, then maybe a body; could not be
reached; broke), it says what happens next: hand that answer to the client, read its small body
first, ask the next backend, or answer with an S3 error instead. The proxy's plumbing does the
I/O (`exchange`, `addon.mitm`); this only decides, like h11's state machine or this
project's `aws_chunked.AwsChunkedUpload`.

The not-found rule: a 404 whose error code is NoSuchKey or NoSuchBucket, or any 404 to an
operation whose 404 can only mean that (`Operation.miss_by_status`: GET/HEAD of an object or a
bucket, listings), sends a read to the next backend. It is decided on status and code, never on
message text (backends word messages differently). A 404 about a sub-resource of something that
exists on this backend (NoSuchTagSet, NoSuchBucketPolicy, ...) is that backend's answer:
serving the sub-resource from another backend would mix two different objects. When every
backend misses, the client gets the most specific answer: NoSuchKey if any backend has the
bucket, NoSuchBucket only when none has it.

With tombstones (the primary's metaBucket), a read the primary missed reads the key's tombstone
before the fallbacks, and a fallback's answer that is a copy the tombstone hides is a miss. What
a tombstone hides is the namespace's rule (`addon.namespace.hiding.hidden`, the one every path
asks), handed in as `hiding` by whoever builds the journey: the journey sits below the
namespace and must not import it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from addon.config.settings import Backend
from addon.s3.errors import S3Error, error_code
from addon.s3.log_text import printable
from addon.s3.operations import Operation, Route, Target

NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket"})
ERROR_BODY_LIMIT = 64 * 1024  # an S3 error is a few hundred bytes; more is a broken backend
# (what the tombstone hides: fallback name -> ETag, the fallback, the ETag its answer names) ->
# whether that answer is a copy the tombstone hides; `addon.namespace.hiding.hidden`.
HidingRule = Callable[[Mapping[str, str], str, str | None], bool]


def _short(reason: str, most: int = 120) -> str:
    """A reason for one log line: mitmproxy quotes a garbage answer's bytes in its message."""
    return reason if len(reason) <= most else reason[:most] + "..."


# --- what to do next ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """Hand this backend's answer to the client."""


@dataclass(frozen=True)
class InspectBody:
    """Read the answer's body, at most `limit` bytes, without passing it on; then `body()`."""

    limit: int = ERROR_BODY_LIMIT


@dataclass(frozen=True)
class AskNext:
    """Send the request to `backend` instead."""

    backend: Backend


@dataclass(frozen=True)
class Replace:
    """Answer the client with this error instead of any backend's answer."""

    error: S3Error


@dataclass(frozen=True)
class Consult:
    """Before asking a fallback: read the key's tombstone on the primary (a GET, its answer
    given to `headers` and `body` like any other)."""


Verdict = Answer | InspectBody | AskNext | Replace | Consult


@dataclass
class Attempt:
    backend: Backend
    started: float
    status: int | None = None
    ms: float | None = None
    note: str = ""  # what went wrong, when the backend gave no usable answer
    candidate: int = 0  # its place among the candidates (0: the primary)
    what: str = ""  # "tombstone": the lookup of the key's tombstone, not the request itself
    missed: bool = False  # it did not have the key (or the bucket)

    def __str__(self) -> str:
        result = self.note or str(self.status)
        name = f"{self.backend.name} {self.what}" if self.what else self.backend.name
        return f"{name} {result} {self.ms or 0:.0f}ms"


@dataclass
class Journey:
    operation: Operation
    method: str
    target: Target
    candidates: tuple[Backend, ...]
    fallback_on_5xx: bool = False  # a read answered 5xx asks the next backend (config)
    hiding: HidingRule | None = None  # deletes leave tombstones (a metaBucket): what they hide
    clock: Callable[[], float] = time.monotonic
    attempts: list[Attempt] = field(default_factory=list)
    miss_codes: list[str | None] = field(default_factory=list)
    refusal: str = ""  # set when the proxy refused the request after it was sent on
    hides: dict[str, str] = field(default_factory=dict)  # fallback name -> ETag its tombstone hides
    position: int = 0  # the next candidate

    def begin(self) -> Backend:
        """The next backend to send the request to (the primary first)."""
        backend = self.candidates[self.position]
        self.attempts.append(Attempt(backend, self.clock(), candidate=self.position))
        self.position += 1
        return backend

    @property
    def current(self) -> Attempt:
        return self.attempts[-1]

    @property
    def has_next(self) -> bool:
        return self.position < len(self.candidates)

    @property
    def reads(self) -> bool:
        return self.operation.route is Route.FALLBACK

    # --- events ----------------------------------------------------------------------------------

    def headers(self, status: int, delete_marker: bool = False, etag: str | None = None) -> Verdict:
        """The backend answered with `status` (its headers are in, its body may follow)."""
        attempt = self.current
        attempt.status, attempt.ms = status, self._elapsed(attempt)
        if not 100 <= status <= 599:
            return self.broken(f"invalid status {status}")
        if attempt.what == "tombstone":
            return InspectBody() if status == 200 else self._consulted(status, b"")
        if attempt.candidate > 0 and status < 400 and self._hidden(attempt.backend, etag):
            attempt.note = "deleted (tombstone)"
            verdict = self._missed("NoSuchKey")  # never this answer: it is the deleted copy
            return Replace(self._not_found()) if isinstance(verdict, Answer) else verdict
        if self.reads and status >= 500 and self.fallback_on_5xx and self.has_next:
            return InspectBody()  # then the next backend (its body is not wanted)
        if not (self.reads and status == 404) or delete_marker:
            # A delete marker is S3's own tombstone on a versioned bucket: the key was deleted
            # there, so it is the answer, headers and all.
            return Answer()
        if self.method == "HEAD":
            return self._missed(None)  # no body, so no code to tell the cases apart
        return InspectBody()

    def body(self, body: bytes) -> Verdict:
        """The whole body of the answer that `headers` asked to read."""
        if self.current.what == "tombstone":
            return self._consulted(self.current.status or 0, body)
        if (self.current.status or 0) >= 500:
            return AskNext(self.begin())
        code = error_code(body)
        if self.operation.miss_by_status or code in NOT_FOUND_CODES:
            return self._missed(code)
        return Answer()

    def unreachable(self, reason: str) -> AskNext | Replace:
        return self._failed("unreachable", f"Backend {self.current.backend.name} is unreachable.")

    def broken(self, reason: str) -> AskNext | Replace:
        """The backend's answer is unusable (garbage, an invalid status, an oversized error)."""
        name = self.current.backend.name
        return self._failed(f"broken: {_short(reason)}", f"Backend {name} sent an invalid answer.")

    def timed_out(self, reason: str) -> AskNext | Replace:
        """The backend did not answer, or stalled in its answer, within its timeout."""
        name = self.current.backend.name
        return self._failed(f"timed out: {reason}", f"Backend {name} did not answer in time.")

    def refused(self, code: str) -> None:
        """The proxy refused the request on its way (a bad chunk signature, a wrong hash)."""
        self.refusal = code
        self.current.note = f"refused: {code}"
        self.current.ms = self._elapsed(self.current)

    # --- rules -----------------------------------------------------------------------------------

    def _missed(self, code: str | None) -> Verdict:
        self.miss_codes.append(code)
        self.current.missed = True
        if self.has_next and self.current.candidate == 0 and self._consults:
            primary = self.current.backend
            self.attempts.append(Attempt(primary, self.clock(), what="tombstone"))
            return Consult()
        if self.has_next:
            return AskNext(self.begin())
        most_specific = self._not_found()
        # The last backend's own answer, unless an earlier one knew more (it had the bucket).
        if self.method == "HEAD" or most_specific.code == code:
            return Answer()
        return Replace(most_specific)

    @property
    def _consults(self) -> bool:
        """A tombstone may hide this key's fallback copies."""
        return self.hiding is not None and self.target.key is not None

    def _consulted(self, status: int, body: bytes) -> Verdict:
        """The tombstone lookup's answer: none (404), or the copies it hides (200)."""
        if status == 404:
            return AskNext(self.begin())
        try:
            hides = json.loads(body)["hides"] if status == 200 else None
        except (ValueError, KeyError, TypeError):
            hides = None
        if not isinstance(hides, dict):
            # Unreadable: the key may have been deleted, so no fallback copy can be served.
            self.current.note = f"unreadable ({status})"
            return Replace(S3Error("ServiceUnavailable", "The key's tombstone cannot be read."))
        self.hides = {str(k): str(v) for k, v in hides.items()}
        return AskNext(self.begin())

    def _hidden(self, backend: Backend, etag: str | None) -> bool:
        """Whether this fallback answer is a copy the key's tombstone hides."""
        return self.hiding is not None and self.hiding(self.hides, backend.name, etag)

    def _failed(self, note: str, message: str) -> AskNext | Replace:
        attempt = self.current
        attempt.note, attempt.ms = note, self._elapsed(attempt)
        if not (self.reads and attempt.candidate > 0):
            # The primary's answer is the only one a write may have, and a read served by a
            # fallback while the primary is down could be stale: the client is told.
            return Replace(S3Error("ServiceUnavailable", message))
        if self.has_next:  # a sick fallback is skipped like one that does not have the key
            return AskNext(self.begin())
        return Replace(self._not_found())

    def _not_found(self) -> S3Error:
        """What one S3 would say: NoSuchKey if any backend has the bucket (its 404 said
        NoSuchKey, or said nothing), NoSuchBucket only when none has it."""
        if self.target.key is not None and any(c != "NoSuchBucket" for c in self.miss_codes):
            return S3Error("NoSuchKey", extra={"Key": self.target.key})
        return S3Error("NoSuchBucket", extra={"BucketName": self.target.bucket or ""})

    def _elapsed(self, attempt: Attempt) -> float:
        return attempt.ms if attempt.ms is not None else (self.clock() - attempt.started) * 1000

    # --- what happened ---------------------------------------------------------------------------

    def summary(self, resource: str) -> str:
        """One line: operation, each backend tried (status, ms), which one answered."""
        tried = ", ".join(str(a) for a in self.attempts)
        where = printable(resource)
        return f"{self.operation.name} {where} via [{tried}] answered by {self.answered_by}"

    @property
    def answered_by(self) -> str:
        last = self.attempts[-1] if self.attempts else None
        if last is None or last.note:
            return "proxy"
        if last.missed:
            return last.backend.name + " (not found anywhere)"
        return last.backend.name
