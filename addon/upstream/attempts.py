"""A journey's vocabulary: what it records of each backend it tried (`Attempt`), what it says
happens next (the verdicts, carried out by `exchange`), and the hiding rule it is handed."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from addon.config.settings import Backend
from addon.s3.errors import S3Error

ERROR_BODY_LIMIT = 64 * 1024  # an S3 error is a few hundred bytes; more is a broken backend
# (what the tombstone hides: fallback name -> ETag, the fallback, the ETag its answer names) ->
# whether that answer is a copy the tombstone hides; `addon.namespace.hiding.hidden`.
HidingRule = Callable[[Mapping[str, str], str, str | None], bool]


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
    skipped: bool = False  # marked down: not tried

    def __str__(self) -> str:
        if self.skipped:
            return f"{self.backend.name} down (skipped)"
        result = self.note or str(self.status)
        name = f"{self.backend.name} {self.what}" if self.what else self.backend.name
        return f"{name} {result} {self.ms or 0:.0f}ms"
