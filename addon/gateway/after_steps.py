"""What else a forwarded request sets off, chosen by a declared rule (`RULES`).

Each rule names a piece of the one namespace, when it applies to a request, and what it adds to
the request's `Exchange`: an after-step (run once the primary has answered, before the client
hears; it may replace the answer), the lookup of the key's tombstone, or a tap on the answer. The
rules are read in order; every rule that applies adds its part, in that order.

A browser form upload (PostObject) names its key in its form, not its path: its rules are
applied once the form is read and accepted (`form_uploads.FormGate`), with `Asked.key` the
form's key. By then its body is under way, so what they add can only be after-steps: it counts
as an object write, as a PutObject does, wherever the rules name the operations they take.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from mitmproxy import http

from addon.config.settings import Backend
from addon.migration.copy_on_read import ReadCopier
from addon.namespace.adoption import NOT_ADOPTED, WRITES, AdoptBucket
from addon.namespace.after_write import BURIES, AfterDelete
from addon.namespace.fallback_copy import CopyFromFallback
from addon.namespace.own_writes import OwnWrite, nobody
from addon.namespace.tombstones import Tombstones, lookup
from addon.replication.replica_writes import DELETES, REPLICATED, ReplicaDeletes, ReplicatedWrite
from addon.replication.replicator import ReplicaJobs
from addon.replication.tee import tees_for
from addon.s3.operations import Route
from addon.upstream.backend_client import BackendClient
from addon.upstream.exchange import Exchange

COPIES = ("CopyObject", "UploadPartCopy")


@dataclass(frozen=True)
class Wiring:
    """What the parts draw on: the backends, the proxy's own client, the namespace's state."""

    backends: tuple[Backend, ...]
    client: BackendClient  # the proxy's own requests
    tombstones: Tombstones | None  # None: no metaBucket, deletes do not stick
    copier: ReadCopier | None  # None: no fallback migrates on read
    replicas: Mapping[str, ReplicaJobs] = field(default_factory=dict)  # their job queues
    own_write: OwnWrite = nobody  # who hears of the proxy's own writes to the primary

    @property
    def primary(self) -> Backend:
        return self.backends[0]

    @property
    def fallbacks(self) -> tuple[Backend, ...]:
        return self.backends[1:]


@dataclass(frozen=True)
class Asked:
    """The request, classified: what the rules decide on."""

    operation: str
    route: Route
    method: str  # upper case
    bucket: str | None
    key: str | None
    headers: http.Headers
    query: Sequence[tuple[str, str]]

    @property
    def reads(self) -> bool:
        return self.route is Route.FALLBACK

    @property
    def versioned(self) -> bool:
        return any(name == "versionId" for name, _ in self.query)


@dataclass(frozen=True)
class Rule:
    what: str
    applies: Callable[[Wiring, Asked], bool]
    add: Callable[[Wiring, Asked, Exchange], None]


def _copies_on_read(wiring: Wiring, asked: Asked, exchange: Exchange) -> None:
    assert wiring.copier is not None
    exchange.taps = wiring.copier.for_read(
        asked.operation, asked.method, asked.bucket, asked.key, asked.headers, asked.query
    )


def _adopt_bucket(wiring: Wiring, asked: Asked, exchange: Exchange) -> None:
    step = AdoptBucket(
        wiring.client, wiring.primary, wiring.fallbacks, exchange.plan, wiring.own_write
    )
    exchange.after.append(step)


def _copy_from_fallback(wiring: Wiring, asked: Asked, exchange: Exchange) -> None:
    part = asked.operation == "UploadPartCopy"
    step = CopyFromFallback(
        wiring.client, wiring.primary, wiring.fallbacks, exchange.plan, part, wiring.tombstones
    )
    exchange.after.append(step)


def _tombstone_lookup(wiring: Wiring, asked: Asked, exchange: Exchange) -> None:
    assert wiring.tombstones is not None and asked.bucket and asked.key is not None
    exchange.tombstone = lookup(wiring.tombstones.meta_bucket, asked.bucket, asked.key)


def _replica_deletes(wiring: Wiring, asked: Asked, exchange: Exchange) -> None:
    assert asked.bucket is not None
    step = ReplicaDeletes(wiring.replicas, asked.operation, asked.bucket, asked.key or "")
    exchange.after.append(step)
    exchange.whole_body = asked.operation == "DeleteObjects"  # the keys it deleted


def _bury_after_delete(wiring: Wiring, asked: Asked, exchange: Exchange) -> None:
    assert wiring.tombstones is not None and asked.bucket is not None
    replicas = next((s for s in exchange.after if isinstance(s, ReplicaDeletes)), None)
    known = replicas.known if replicas is not None else None
    step = AfterDelete(wiring.tombstones, asked.operation, asked.bucket, asked.key, known)
    exchange.after.append(step)
    exchange.whole_body = asked.operation == "DeleteObjects"  # the keys it deleted


def _replicated_write(wiring: Wiring, asked: Asked, exchange: Exchange) -> None:
    assert asked.bucket is not None
    tees = None
    if asked.operation == "PutObject" and exchange.body_tap is None:  # the body streams to them
        tees = exchange.body_tap = tees_for(wiring.replicas, exchange.plan, asked.key or "")
    step = ReplicatedWrite(wiring.replicas, asked.operation, asked.bucket, asked.key or "", tees)
    exchange.after.append(step)


RULES: tuple[Rule, ...] = (
    Rule(
        "a whole read that a migrate: on-read fallback serves is copied to the primary",
        lambda w, a: w.copier is not None and a.reads,
        _copies_on_read,
    ),
    Rule(
        "a write to a bucket only a fallback has: the primary takes the bucket on",
        lambda w, a: (
            len(w.backends) > 1
            and a.bucket is not None
            and a.method in WRITES
            and a.operation not in NOT_ADOPTED
        ),
        _adopt_bucket,
    ),
    Rule(
        "a copy whose source only a fallback has is read there",
        lambda w, a: len(w.backends) > 1 and a.operation in COPIES,
        _copy_from_fallback,
    ),
    Rule(
        "a read the primary misses consults the key's tombstone before the fallbacks",
        lambda w, a: (
            w.tombstones is not None and a.bucket is not None and a.reads and a.key is not None
        ),
        _tombstone_lookup,
    ),
    Rule(
        "a delete goes to every replica before the client hears (what missed it: the outbox)",
        lambda w, a: (
            bool(w.replicas) and a.bucket is not None and a.operation in DELETES and not a.versioned
        ),
        _replica_deletes,
    ),
    Rule(
        "a delete buries the fallbacks' copies (a replica that missed it: whatever copy it holds; "
        "other writes never touch tombstones)",
        lambda w, a: (
            w.tombstones is not None
            and a.bucket is not None
            and a.operation in BURIES
            and not a.versioned
        ),
        _bury_after_delete,
    ),
    Rule(
        "a replicated write reaches the replicas: a sync one before the client hears, an async "
        "one after it; a PutObject's body is streamed to them as it comes (bucket configuration "
        "stays on the primary)",
        lambda w, a: (
            bool(w.replicas)
            and a.bucket is not None
            and a.operation in REPLICATED
            and not a.versioned
        ),
        _replicated_write,
    ),
)


def attach(wiring: Wiring, asked: Asked, exchange: Exchange) -> None:
    """Add to `exchange` what every rule that applies to `asked` adds."""
    for rule in RULES:
        if rule.applies(wiring, asked):
            rule.add(wiring, asked, exchange)
