"""What a read may be answered with while the primary cannot answer it: the outage rules, no I/O.

The primary cannot answer a read when it is marked down (`health`), or when this request's
attempt found it unreachable, timed out or broken; a 5xx too, but only when a certified replica
can take the read (a 5xx is the primary's answer, such as 503 SlowDown under load, and it stays
the answer otherwise). Then, with `readFailover` on:

1. Replicas certified in sync (`Outlook.failover`: up, certificate valid) are asked in config
   order; the first one's answer is the answer, a hit or a 404. It got every delete made through
   the proxy before that delete's client heard, so its 404 is authoritative; a non-replica
   fallback might still hold a copy of a key deleted through the proxy, whose tombstone is on the
   primary: with such fallbacks and a metaBucket, a replica's 404 becomes a 503. A replica that
   fails is skipped for the next.
2. No certified replica, and a metaBucket: 503 (the tombstones, which say what was deleted, are
   on the primary). No metaBucket (deletes never stick): the non-replica fallbacks are asked as
   always; a hit is served, and a miss is a 503, never a 404: only the primary can say a key
   does not exist.
3. No tombstone lookup, no copy on read, no bucket taken on: they all need the primary.

Writes are never failed over: with the primary marked down they are answered 503 at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from addon.config.settings import Backend
from addon.s3.errors import S3Error
from addon.upstream.health import Outlook

REPLICAS, FALLBACKS = "replicas", "fallbacks"


@dataclass(frozen=True)
class Failover:
    """Where a read goes while the primary cannot answer: `mode` REPLICAS or FALLBACKS and the
    backends to ask in order, or `refusal` (the error to answer instead)."""

    mode: str = ""
    backends: tuple[Backend, ...] = ()
    refusal: S3Error | None = None


def plan(outlook: Outlook, backends: tuple[Backend, ...], meta: bool) -> Failover | None:
    """Rules 1 and 2 for a read over `backends` (the primary first); `meta`: the primary keeps
    tombstones (a metaBucket is set). None: no failover at all (`readFailover` off, or a
    metaBucket and no replica configured): the primary's own error, as without this feature."""
    if not outlook.read_failover:
        return None
    if outlook.failover:
        return Failover(REPLICAS, outlook.failover)
    if not meta:
        return Failover(FALLBACKS, others(backends))
    if all(b.replicate == "off" for b in backends):
        return None
    message = (
        f"Backend {backends[0].name} is down and no replica is certified in sync to answer reads."
    )
    return Failover(refusal=unavailable(message))


def others(backends: tuple[Backend, ...]) -> tuple[Backend, ...]:
    """The fallbacks that are not replicas."""
    return tuple(b for b in backends[1:] if b.replicate == "off")


def replica_missed(primary: str, others: tuple[Backend, ...], meta: bool) -> Failover | None:
    """After a certified replica's 404: None when that 404 is the answer; else where to go.
    `others`: the read's fallbacks that are not replicas."""
    if not others:
        return None
    if meta:
        message = f"Backend {primary} is down; a fallback's copy cannot be checked against deletes."
        return Failover(refusal=unavailable(message))
    return Failover(FALLBACKS, others)


def exhausted(primary: str, mode: str) -> S3Error:
    """Nothing left to ask in failover: never a 404, only the primary could say that."""
    if mode == REPLICAS:
        return unavailable(f"Backend {primary} is down and no replica in sync could answer.")
    return unavailable(f"Backend {primary} is down; only it can tell whether this key exists.")


def write_refused(primary: str) -> S3Error:
    return unavailable(f"Backend {primary} is down.")


def unavailable(message: str) -> S3Error:
    return S3Error("ServiceUnavailable", message)
