"""What the proxy counts, in Prometheus' text format (prometheus-client), at `/-/metrics`.

Every client request, once finished: by operation and status, its duration; each backend it
asked (forwarded, or asked by a merged listing): answers by status, time to the answer's head,
errors by kind, body bytes; reads served by a fallback, and by a replica while the primary could
not answer (failover); refusals by S3 error code; requests in flight. Each backend's state as
`health` has it (1 up, 0 marked down). Labels are bounded sets: operations (the operation
table), status codes, error codes, backend names (the config). Never a bucket, a key or anything
else a client chooses.

Several workers (`s3-multi --workers N`) share one directory, `PROMETHEUS_MULTIPROC_DIR`, that
the supervisor makes per run: each worker writes its own files there and any worker answering a
scrape sums them all (prometheus-client's multiprocess mode; its mode is chosen when the library
is imported, so the variable is set before a worker starts). Counts of a worker that died stay
in the sum; its requests in flight leave it (the supervisor calls `mark_process_dead`). In one
process (the default for `mitmdump -s`), the metrics are this module's registry.
"""

from __future__ import annotations

import os
import time
from typing import Any

from mitmproxy import http
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from addon.namespace.bucket_listing import BucketsMerge
from addon.namespace.object_listing import ListingMerge
from addon.upstream.attempts import Attempt
from addon.upstream.exchange import Exchange
from addon.upstream.health import Health
from addon.upstream.journey import Journey

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
# The classic text format, which every Prometheus reads (our names need none of 1.0.0's escaping).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Seconds: small requests take milliseconds, 1 GiB transfers minutes.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_ERRORS = {"unreachable": "unreachable", "broken": "broken", "timed out": "timeout"}

REGISTRY = CollectorRegistry()

REQUESTS = Counter(
    "s3multi_requests",
    "Client requests finished, by S3 operation and the status the client got "
    "('error': no complete answer; operation 'unknown': refused before it was classified).",
    ["operation", "status"],
    registry=REGISTRY,
)
DURATION = Histogram(
    "s3multi_request_duration_seconds",
    "From a client request's head to the end of its answer, by S3 operation.",
    ["operation"],
    buckets=_BUCKETS,
    registry=REGISTRY,
)
BACKEND_REQUESTS = Counter(
    "s3multi_backend_requests",
    "Requests to each backend, by the status it answered ('none': no answer, see errors).",
    ["backend", "status"],
    registry=REGISTRY,
)
BACKEND_LATENCY = Histogram(
    "s3multi_backend_latency_seconds",
    "From a request sent to a backend to its answer's head.",
    ["backend"],
    buckets=_BUCKETS,
    registry=REGISTRY,
)
BACKEND_ERRORS = Counter(
    "s3multi_backend_errors",
    "Backends that gave no usable answer: unreachable, broken (garbage, reset), timeout.",
    ["backend", "error"],
    registry=REGISTRY,
)
BACKEND_BYTES = Counter(
    "s3multi_backend_bytes",
    "Body bytes of forwarded requests: 'received' from the backend that answered (as passed on "
    "to the client), 'sent' to it (the request's Content-Length, once it answered).",
    ["backend", "direction"],
    registry=REGISTRY,
)
FALLBACK_HITS = Counter(
    "s3multi_fallback_hits",
    "Reads the primary did not have, served by this fallback.",
    ["backend"],
    registry=REGISTRY,
)
FAILOVER_READS = Counter(
    "s3multi_failover_reads",
    "Reads (GET, HEAD, listings) the primary could not answer, answered by this backend.",
    ["backend"],
    registry=REGISTRY,
)
BACKEND_UP = Gauge(
    "s3multi_backend_up",
    "1 while the backend is up, 0 while it is marked down (requests skip it); in several "
    "workers, the lowest of the live workers'.",
    ["backend"],
    registry=REGISTRY,
    multiprocess_mode="livemin",
)
REFUSALS = Counter(
    "s3multi_refusals",
    "Requests the proxy refused itself, by S3 error code (SignatureDoesNotMatch, ...).",
    ["reason"],
    registry=REGISTRY,
)
IN_FLIGHT = Gauge(
    "s3multi_in_flight_requests",
    "Client requests between their head and the end of their answer.",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
WORKERS = Gauge(
    "s3multi_processes",
    "Proxy processes alive (workers of s3-multi --workers, or 1).",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
WORKERS.set(1)
REPLICATION_PENDING = Gauge(
    "s3multi_replication_pending",
    "Repairs a replica waits for: jobs queued in each process, misses not yet in the outbox, and "
    "the outbox's entries (counted by the process that drains it).",
    ["replica"],
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
REPLICATION_LAG = Gauge(
    "s3multi_replication_lag_seconds",
    "How long the oldest repair a replica waits for has waited (0: it is up to date).",
    ["replica"],
    registry=REGISTRY,
    multiprocess_mode="livemax",
)
REPLICA_UP = Gauge(
    "s3multi_replica_up",
    "1 while a replica answers, 0 while it is down (the least of every process's view).",
    ["replica"],
    registry=REGISTRY,
    multiprocess_mode="livemin",
)
REPLICATION_FAILURES = Counter(
    "s3multi_replication_failures",
    "Requests of replication that failed, by replica and kind: unreachable, timeout, broken, "
    "status (an error answered).",
    ["replica", "error"],
    registry=REGISTRY,
)
REPLICATION_REPAIRS = Counter(
    "s3multi_replication_repairs",
    "Repair jobs done, by replica and what they found to do: copied, deleted, tags, bucket, "
    "equal (nothing), absent, kept (the replica's own data).",
    ["replica", "action"],
    registry=REGISTRY,
)
REPLICATION_MISSES = Counter(
    "s3multi_replication_misses",
    "Keys a replica missed and the outbox took, to be repaired in the background.",
    ["replica"],
    registry=REGISTRY,
)


class ReplicationMetrics:
    """What replication does (`addon.replication.replicator.Observer`), counted here."""

    def repaired(self, replica: str, action: str) -> None:
        REPLICATION_REPAIRS.labels(replica, action).inc()

    def failed(self, replica: str, kind: str) -> None:
        REPLICATION_FAILURES.labels(replica, kind).inc()

    def missed(self, replica: str, count: int) -> None:
        REPLICATION_MISSES.labels(replica).inc(count)

    def state(self, replica: str, pending: int, lag: float, up: bool) -> None:
        REPLICATION_PENDING.labels(replica).set(pending)
        REPLICATION_LAG.labels(replica).set(lag)
        REPLICA_UP.labels(replica).set(1 if up else 0)


_CHILDREN: dict[tuple[object, tuple[str, ...]], Any] = {}


def _labelled(metric: Any, *labels: str) -> Any:
    """`metric.labels(*labels)`, kept: prometheus-client checks, locks and looks up on every
    call; the child is the same object, and labels are bounded sets (see above)."""
    child = _CHILDREN.get((metric, labels))
    if child is None:
        child = _CHILDREN[(metric, labels)] = metric.labels(*labels)
    return child


def refused(reason: str) -> None:
    _labelled(REFUSALS, reason).inc()


def watch(health: Health, names: list[str]) -> None:
    """Keep `s3multi_backend_up` as `health` has it, from now on."""
    for name in names:
        BACKEND_UP.labels(name).set(1 if health.is_up(name) else 0)
    health.listeners.append(lambda name, up: BACKEND_UP.labels(name).set(1 if up else 0))


def observe(flow: http.HTTPFlow, started: Exchange | BucketsMerge | ListingMerge | None) -> None:
    """Count a client request that has finished (answered, or failed)."""
    status = "error" if flow.error or flow.response is None else str(flow.response.status_code)
    operation = "unknown"
    attempts: list[Attempt] = []
    if isinstance(started, Exchange):
        operation, attempts = started.journey.operation.name, started.journey.attempts
        _forwarded(flow, started)
        if started.journey.refusal:  # found on the way (a bad chunk, a wrong hash)
            refused(started.journey.refusal)
    elif isinstance(started, BucketsMerge):
        operation, attempts = "ListBuckets", started.attempts
    elif isinstance(started, ListingMerge):
        operation = "ListObjectsV2" if started.request.v2 else "ListObjects"
        attempts = started.attempts
        if started.failover_by:
            _labelled(FAILOVER_READS, started.failover_by).inc()
    _labelled(REQUESTS, operation, status).inc()
    end = (flow.response.timestamp_end if flow.response else None) or time.time()
    _labelled(DURATION, operation).observe(max(0.0, end - flow.request.timestamp_start))
    for attempt in attempts:
        _attempt(attempt)


def _attempt(attempt: Attempt) -> None:
    if attempt.skipped:
        return  # marked down: never asked
    name = attempt.backend.name
    kind = next((k for prefix, k in _ERRORS.items() if attempt.note.startswith(prefix)), None)
    if kind is not None:
        _labelled(BACKEND_ERRORS, name, kind).inc()
    answered = attempt.status is not None and kind != "broken"
    _labelled(BACKEND_REQUESTS, name, str(attempt.status) if answered else "none").inc()
    if answered and attempt.ms is not None:
        _labelled(BACKEND_LATENCY, name).observe(attempt.ms / 1000)


def _forwarded(flow: http.HTTPFlow, exchange: Exchange) -> None:
    """Bytes, fallback hits and failover reads of a request forwarded in-flow."""
    last = exchange.journey.current if exchange.journey.attempts else None
    if last is None or last.note or last.status is None or flow.response is None:
        return  # answered by the proxy (an error), or by no one
    name = last.backend.name
    received = exchange.relayed + len(flow.response.raw_content or b"")
    _labelled(BACKEND_BYTES, name, "received").inc(received)
    length = flow.request.headers.get("content-length", "")
    if length.isdigit():
        _labelled(BACKEND_BYTES, name, "sent").inc(int(length))
    if _served_in_failover(exchange.journey):
        _labelled(FAILOVER_READS, name).inc()
    elif last.candidate > 0 and not last.missed and last.status < 400:
        _labelled(FALLBACK_HITS, name).inc()


def _served_in_failover(journey: Journey) -> bool:
    """The client got the answer of a backend asked because the primary could not answer."""
    last = journey.current
    return bool(journey.cause) and not journey.by_proxy and last.candidate > 0


def render() -> tuple[bytes, str]:
    """The text a scrape gets, and its Content-Type: every worker's sum in multiprocess mode."""
    directory = os.environ.get(MULTIPROCESS_DIR)
    if not directory:
        return generate_latest(REGISTRY), CONTENT_TYPE
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    return generate_latest(registry), CONTENT_TYPE
