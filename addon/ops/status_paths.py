"""The proxy's own status, answered before authentication, on paths no bucket can have.

    GET /-/healthy   200: the process serves requests (liveness)
    GET /-/ready     200 "ready" or "degraded"; 503 "not ready" or "draining" (readiness)
    GET /-/metrics   Prometheus' text format (see `metrics`)

A bucket's name starts with a letter or a digit, so a path-style `/-/...` never addresses one;
a virtual-hosted request (Host: bucket.DOMAIN) is S3 whatever its path (`-/ready` is a key
there). HEAD gets the same status without a body.

Ready: the primary answers a ListBuckets signed with its keys (200) and is not marked down, so
writes and reads can work. "degraded" (200, still ready): a fallback or a replica does not
answer, or a replica is not certified in sync; or the primary is down but `readFailover` is on
and a certified replica answers reads (writes get 503: a balancer must not take every instance
out for that). "not ready" (503): the primary is down otherwise. Each backend is shown with its
role (primary, fallback, replica), whether it is up, and for a replica its mode and whether it
is certified, and (the replication's own) `pending` repairs, `lag_seconds` and whether it is
behind: a replica down or behind (its outbox not empty, or its oldest repair waiting over
10 s) makes the proxy "degraded". The probe is `health.Prober`'s, the one that also ends a
backend's down-marking: each backend is asked at most once every `TTL` seconds per process for
readiness, however many health checkers ask, and checkers asking meanwhile share that one
probe. Bodies are JSON and name backends, never an endpoint or a key; `health` logs each
backend's change of state, and readiness logs a failed probe that health does not count as down
(a 403, a first timeout).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from mitmproxy import http

from addon.config.settings import Backend, Config
from addon.ops import metrics
from addon.replication.certificates import Certificates
from addon.replication.service import Replication
from addon.s3.operations import virtual_bucket
from addon.upstream.health import Probe, Prober

log = logging.getLogger(__name__)
LIVE, READY, METRICS = "/-/healthy", "/-/ready", "/-/metrics"
TTL = 2.0  # seconds a probe's result is reused


def asked(request: http.Request, domains: Sequence[str]) -> str | None:
    """The status path this request asks for, or None (an S3 request)."""
    path = request.path.partition("?")[0]
    if path not in (LIVE, READY, METRICS) or request.method not in ("GET", "HEAD"):
        return None
    if virtual_bucket(request.host_header or "", domains) is not None:
        return None
    return path


class Readiness:
    """The backends' state as readiness sees it, each probed at most once per TTL."""

    def __init__(
        self,
        config: Config,
        prober: Prober,
        certificates: Certificates | None = None,
        replication: Replication | None = None,
    ) -> None:
        self.backends = tuple(config.backends)
        self.read_failover = config.read_failover
        self.prober = prober
        self.certificates = certificates
        self.replication = replication
        self._probes: dict[int, asyncio.Task[Probe]] = {}  # by backend index: the last probe
        self._probed_at: dict[int, float] = {}  # ... and when it ended
        self._said: set[str] = set()  # backends whose failed probe readiness logged

    async def state(self) -> tuple[bool, dict[str, object]]:
        """(ready, the body's fields)."""
        # Shielded: a checker that gives up must not cancel the probes the others wait for.
        probes = await asyncio.gather(*(asyncio.shield(self._probe_of(b)) for b in self.backends))
        details = [self._detail(b, p) for b, p in zip(self.backends, probes, strict=True)]
        serving = [r.name for r in self.certificates.serving()] if self.certificates else []
        if not details[0]["up"]:
            if not (self.read_failover and serving):
                return False, {"status": "not ready", "backends": details}
            return True, {"status": "degraded", "failover": serving, "backends": details}
        behind = any(d["role"] == "replica" and d.get("behind") for d in details)
        status = "ready" if all(d["up"] for d in details) and not behind else "degraded"
        return True, {"status": status, "backends": details}

    def check_at_start(self) -> None:
        """Once, as the proxy starts: a primary that does not answer is said at once, in one
        line naming it and why, by a task of its own (the start never waits for it). The proxy
        starts anyway (the primary may come up later); the line is readiness' own, so its next
        probes say nothing more until the primary is up again, and it counts as one of them."""
        self._probe_of(self.backends[0], starting=True)

    def _probe_of(self, backend: Backend, starting: bool = False) -> asyncio.Task[Probe]:
        """The backend's probe: the one running, or one that ended under TTL ago, or a new one."""
        task = self._probes.get(backend.index)
        stale = time.monotonic() - self._probed_at.get(backend.index, 0.0) > TTL
        if task is None or (task.done() and stale):
            task = asyncio.get_running_loop().create_task(self._probe(backend, starting))
            self._probes[backend.index] = task
        return task

    async def _probe(self, backend: Backend, starting: bool) -> Probe:
        probe = await self.prober.probe(backend)
        self._probed_at[backend.index] = time.monotonic()
        self._log(backend, probe, starting)
        return probe

    def _detail(self, backend: Backend, probe: Probe) -> dict[str, object]:
        role = "primary" if backend.index == 0 else "fallback"
        if backend.replicate != "off":
            role = "replica"
        up = probe.ok and self.prober.health.is_up(backend.name)
        detail: dict[str, object] = {"name": backend.name, "role": role, "up": up}
        if probe.status is not None:
            detail["status"] = probe.status
        detail["ms"] = probe.ms
        if role == "replica":
            detail["mode"] = backend.replicate
            detail["certified"] = bool(self.certificates and self.certificates.certified(backend))
            # Without a metaBucket a replica is never certified: that alone is not "behind".
            detail["behind"] = bool(backend.meta_bucket) and not detail["certified"]
            state = self.replication.status().get(backend.name) if self.replication else None
            if state is not None:  # the replication's own view: repairs pending, lag, liveness
                detail["up"] = bool(up and state["up"])
                detail["behind"] = bool(detail["behind"] or state["behind"])
                detail.update(pending=state["pending"], lag_seconds=state["lag_seconds"])
        return detail

    def _log(self, backend: Backend, probe: Probe, starting: bool) -> None:
        """A failed probe once (health logs its own changes: this is only for a primary that
        does not answer at start, and a probe failing while health does not count the backend
        down, such as a 403 or a first timeout); and when it passes again."""
        name = backend.name
        if probe.ok or name in self._said:
            if probe.ok and name in self._said:
                self._said.discard(name)
                log.info("s3-multi: backend %s passes readiness again", name)
            return
        if starting:
            self._said.add(name)
            log.warning(
                "s3-multi: the primary, %s (%s), does not answer at start: %s; starting "
                "anyway (/-/ready says not ready until it does)",
                name,
                backend.endpoint,
                probe.problem,
            )
        elif self.prober.health.is_up(name):
            self._said.add(name)
            log.warning("s3-multi: backend %s fails readiness: %s", name, probe.problem)


@dataclass
class StatusAnswer:
    """A status request, answered by the proxy (the `request` hook)."""

    path: str
    method: str
    readiness: Readiness | None  # None: not configured
    draining: bool
    worker: str  # this process's worker number, "" when it is the only one
    status: int = 0

    async def answer(self) -> http.Response:
        if self.path == METRICS:
            body, content_type = metrics.render()
            self.status = 200
            return self._response(body, content_type)
        fields: dict[str, object] = {"status": "alive"}
        self.status = 200
        if self.path == READY:
            if self.draining:
                self.status, fields = 503, {"status": "draining"}
            elif self.readiness is None:
                self.status, fields = 503, {"status": "not ready", "reason": "not configured"}
            else:
                ready, fields = await self.readiness.state()
                self.status = 200 if ready else 503
        if self.worker:
            fields["worker"] = self.worker
        return self._response(json.dumps(fields).encode() + b"\n", "application/json")

    def _response(self, body: bytes, content_type: str) -> http.Response:
        headers = {"Content-Type": content_type, "Cache-Control": "no-store"}
        if self.method != "HEAD":
            return http.Response.make(self.status, body, headers)
        response = http.Response.make(self.status, b"", headers)
        response.headers["Content-Length"] = str(len(body))  # as GET would have it
        return response

    def summary(self) -> str:
        return f"{self.path} answered by the proxy: {self.status}"
