"""A journey's vocabulary: what it records of each backend it tried (`Attempt`), what it says
happens next (the verdicts, carried out by `exchange`), and the hiding rule it is handed."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from addon.config.settings import Backend
from addon.s3.errors import S3Error

ERROR_BODY_LIMIT = 64 * 1024  # an S3 error is a few hundred bytes; more is a broken backend
# (what the tombstone hides: fallback name -> ETag, the fallback, the ETag its answer names) ->
# whether that answer is a copy the tombstone hides; `addon.namespace.hiding.hidden`. Asked
# with ANY_COPY for the ETag: whether whatever copy the fallback holds is hidden (a replica that
# missed the delete), so that it need not be asked at all.
HidingRule = Callable[[Mapping[str, str], str, str | None], bool]
ANY_COPY = "*"


def short(reason: str, most: int = 120) -> str:
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
    candidate: int = 0  # the backend's place in the config (0: the primary)
    what: str = ""  # "tombstone": the lookup of the key's tombstone, not the request itself
    missed: bool = False  # it did not have the key (or the bucket)
    skipped: bool = False  # marked down, or its every copy hidden: not tried

    def __str__(self) -> str:
        if self.skipped:
            return f"{self.backend.name} {self.note or 'down'} (skipped)"
        result = self.note or str(self.status)
        name = f"{self.backend.name} {self.what}" if self.what else self.backend.name
        return f"{name} {result} {self.ms or 0:.0f}ms"


def who_answered(attempts: list[Attempt], by_proxy: bool, cause: str, replicas: bool) -> str:
    """Who answered, after these `attempts`: the last backend tried, or the proxy (its own
    error, a backend's failure, a tombstone's verdict, the outage rules: `by_proxy`; the primary
    while failing over for `cause`). A miss everywhere is "(not found anywhere)", unless it was a
    certified replica's 404 (`replicas`)."""
    last = next((a for a in reversed(attempts) if not a.skipped), None)
    if last is None or last.note or last.what or by_proxy or (last.candidate == 0 and cause):
        by = "proxy"
    elif last.missed and not replicas:
        by = last.backend.name + " (not found anywhere)"
    else:
        by = last.backend.name
    return f"{by} (failover: {cause})" if cause else by
