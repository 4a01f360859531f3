"""One request's way over its candidate backends: a decision core with no I/O.

Fed what each backend did (answered with a status and headers, then maybe a body; could not be
reached; broke), it says what happens next: hand that answer to the client, read its small body
first, ask the next backend, or answer with an S3 error instead. The proxy's plumbing does the
I/O (`exchange`, `addon.mitm`); this only decides, like h11's state machine or this
project's `aws_chunked.AwsChunkedUpload`.

The not-found rule: a 404 whose code is NoSuchKey or NoSuchBucket, or any 404 to an operation
whose 404 can only mean that (`Operation.miss_by_status`), sends a read to the next backend,
decided on status and code, never on message text. A 404 about a sub-resource (NoSuchTagSet,
...) is that backend's answer: serving it from another backend would mix two objects. When
every backend misses: NoSuchKey if any backend has the bucket, NoSuchBucket only when none has.

With tombstones (a metaBucket), a read the primary missed reads the key's tombstone first, and a
fallback's answer that is a copy it hides is a miss (`hiding`: `addon.namespace.hiding.hidden`,
handed in: the namespace is above). Backends marked down (`Outlook`) are not tried: a fallback is
skipped like one that lacks the key; a down primary, or a read it cannot answer, follows
`failover`'s rules. Attempts are reported to `health`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from addon.config.settings import Backend
from addon.s3.errors import S3Error, error_code
from addon.s3.log_text import printable
from addon.s3.operations import Operation, Route, Target
from addon.upstream import failover
from addon.upstream.attempts import (
    ANY_COPY,
    Answer,
    AskNext,
    Attempt,
    Consult,
    HidingRule,
    InspectBody,
    Replace,
    Verdict,
    short,
    who_answered,
)
from addon.upstream.health import Outlook, Reporter

NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket"})


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
    outlook: Outlook = field(default_factory=Outlook)  # down backends, certified replicas
    health: Reporter | None = None  # told each attempt's outcome
    cause: str = ""  # why a read is failing over ("main down"); "" while it is not
    mode: str = ""  # failover.REPLICAS or FALLBACKS while failing over
    by_proxy: bool = False  # the outage rules answered with an error of the proxy's
    everyone: tuple[Backend, ...] = ()  # the candidates, before failing over changed them

    def start(self) -> Backend | S3Error:
        """The first backend to ask, or the error to answer at once (the primary is down)."""
        primary = self.candidates[0]
        if not self.outlook.is_down(primary):
            return self.begin()
        self.begin(skip=True)
        refused = failover.write_refused(primary.name)  # at once, without trying it
        if not self.reads:
            return refused
        verdict = self._fail_over(f"{primary.name} down", refused)
        return verdict.backend if isinstance(verdict, AskNext) else verdict.error

    def begin(self, skip: bool = False) -> Backend:
        """The next candidate (the primary first): tried now, or with `skip` noted as skipped."""
        backend = self.candidates[self.position]
        self.attempts.append(Attempt(backend, self.clock(), candidate=backend.index, skipped=skip))
        self.position += 1
        return backend

    def _ask_next(self) -> AskNext | Replace:
        """The next candidate not marked down and not holding only hidden copies (a replica
        that missed the key's delete); none left: the others' "not found" (or 503)."""
        while self.has_next:
            backend = self.begin()
            if self._hidden(backend, ANY_COPY):
                self.current.note, self.current.missed = "deleted (tombstone)", True
            elif not self.outlook.is_down(backend):
                return AskNext(backend)
            self.current.skipped = True
        if self.mode:
            self.by_proxy = True
            return Replace(failover.exhausted(self.candidates[0].name, self.mode))
        return Replace(self._not_found())

    @property
    def _at_primary_with_more(self) -> bool:  # (and one not marked down to ask after it)
        return self.current.candidate == 0 and self._any_left

    @property
    def _any_left(self) -> bool:
        return any(not self.outlook.is_down(b) for b in self.candidates[self.position :])

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
        if self.health is not None:
            self.health.answered(attempt.backend.name)  # a 5xx too: it marks nothing down
        if attempt.what == "tombstone":
            return InspectBody() if status == 200 else self._consulted(status, b"")
        if attempt.candidate > 0 and status < 400 and self._hidden(attempt.backend, etag):
            attempt.note = "deleted (tombstone)"
            verdict = self._missed("NoSuchKey")  # never this answer: it is the deleted copy
            return Replace(self._not_found()) if isinstance(verdict, Answer) else verdict
        if self.reads and status >= 500 and self._next_on_5xx:
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
        attempt = self.current
        if attempt.what == "tombstone":
            return self._consulted(attempt.status or 0, body)
        if (attempt.status or 0) >= 500:
            if attempt.candidate == 0 and not self.mode and self.outlook.failover:
                cause = f"{attempt.backend.name} {attempt.status}"
                return self._fail_over(cause, failover.unavailable(cause))
            return self._ask_next()
        code = error_code(body)
        if self.operation.miss_by_status or code in NOT_FOUND_CODES:
            return self._missed(code)
        return Answer()

    def unreachable(self, reason: str, at_once: bool = False) -> AskNext | Replace:
        """No connection; `at_once`: it failed at once (refused), not by timing out."""
        return self._failed("unreachable", "Backend {} is unreachable.", reason, at_once)

    def broken(self, reason: str) -> AskNext | Replace:
        """The backend's answer is unusable (garbage, an invalid status, an oversized error)."""
        note = f"broken: {short(reason)}"
        return self._failed(note, "Backend {} sent an invalid answer.", note)

    def timed_out(self, reason: str) -> AskNext | Replace:
        """The backend did not answer, or stalled in its answer, within its timeout."""
        note = f"timed out: {reason}"
        return self._failed(note, "Backend {} did not answer in time.", note)

    def refused(self, code: str) -> None:
        """The proxy refused the request on its way (a bad chunk signature, a wrong hash)."""
        self.refusal = code
        self.current.note = f"refused: {code}"
        self.current.ms = self._elapsed(self.current)

    # --- rules -----------------------------------------------------------------------------------

    def _missed(self, code: str | None) -> Verdict:
        self.miss_codes.append(code)
        self.current.missed = True
        if self.mode == failover.REPLICAS:
            # A certified replica's 404: the answer, unless a fallback may hold a deleted copy.
            others = failover.others(self.everyone)
            then = failover.replica_missed(self.everyone[0].name, others, bool(self.hiding))
            if then is not None:
                return self._follow(then)
        elif self.mode:
            return self._ask_next()  # a fallback's miss in failover: never a 404 (the end: 503)
        elif self.hiding and self.target.key is not None and self._at_primary_with_more:
            # A tombstone may hide this key's fallback copies.
            primary = self.current.backend
            self.attempts.append(Attempt(primary, self.clock(), what="tombstone"))
            return Consult()
        elif self.has_next:
            return self._ask_next()
        most_specific = self._not_found()
        # The last backend's own answer, unless an earlier one knew more (it had the bucket).
        if self.method == "HEAD" or most_specific.code == code:
            return Answer()
        return Replace(most_specific)

    def _consulted(self, status: int, body: bytes) -> Verdict:
        """The tombstone lookup's answer: none (404), or the copies it hides (200)."""
        if status == 404:
            return self._ask_next()
        try:
            hides = json.loads(body)["hides"] if status == 200 else None
        except (ValueError, KeyError, TypeError):
            hides = None
        if not isinstance(hides, dict):
            # Unreadable: the key may have been deleted, so no fallback copy can be served.
            self.current.note = f"unreadable ({status})"
            return Replace(S3Error("ServiceUnavailable", "The key's tombstone cannot be read."))
        self.hides = {str(k): str(v) for k, v in hides.items()}
        return self._ask_next()

    def _hidden(self, backend: Backend, etag: str | None) -> bool:
        """Whether this fallback answer is a copy the key's tombstone hides."""
        return self.hiding is not None and self.hiding(self.hides, backend.name, etag)

    def _failed(
        self, note: str, message: str, reason: str = "", at_once: bool = False
    ) -> AskNext | Replace:
        """The current backend failed (`message`: the client's error, "{}" for its name)."""
        attempt = self.current
        attempt.note, attempt.ms = note, self._elapsed(attempt)
        if self.health is not None:
            self.health.failed(attempt.backend.name, reason or note, at_once)
        error = S3Error("ServiceUnavailable", message.format(attempt.backend.name))
        primary = attempt.candidate == 0 and not self.mode  # a tombstone lookup is its too
        if primary and self.reads and not attempt.what:
            return self._fail_over(f"{attempt.backend.name} {note.partition(':')[0]}", error)
        if primary or not self.reads:
            return Replace(error)  # the primary's answer is the only one a write may have
        return self._ask_next()  # a sick fallback is skipped like one that lacks the key

    # --- failover ----------------------------------------------------------------------------

    def _fail_over(self, cause: str, error: S3Error) -> AskNext | Replace:
        """The primary cannot answer this read: `failover`'s rules decide, else `error` it is."""
        then = failover.plan(self.outlook, self.candidates, bool(self.hiding))
        if then is None:
            return Replace(error)
        self.cause = cause
        return self._follow(then)

    def _follow(self, then: failover.Failover) -> AskNext | Replace:
        if then.refusal is not None:
            self.by_proxy = True
            return Replace(then.refusal)
        self.mode = then.mode
        self.everyone = self.everyone or self.candidates
        self.candidates = (*self.candidates[: self.position], *then.backends)
        return self._ask_next()

    @property
    def _next_on_5xx(self) -> bool:
        """A read's 5xx: read its body, then ask on (else the 5xx is the answer). The primary's
        fails over to a certified replica only: a 5xx is an answer (503 SlowDown under load)."""
        if self.current.candidate == 0 and not self.mode and self.outlook.failover:
            return True
        return (self.fallback_on_5xx or self.mode == failover.REPLICAS) and self._any_left

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
        replicas = self.mode == failover.REPLICAS
        return who_answered(self.attempts, self.by_proxy, self.cause, replicas)
