"""The proxy's own status, answered before authentication, on paths no bucket can have.

    GET /-/healthy   200: the process serves requests (liveness)
    GET /-/ready     200 "ready" or "degraded"; 503 "not ready" or "draining" (readiness)
    GET /-/metrics   Prometheus' text format (see `metrics`)

A bucket's name starts with a letter or a digit, so a path-style `/-/...` never addresses one;
a virtual-hosted request (Host: bucket.DOMAIN) is S3 whatever its path (`-/ready` is a key
there). HEAD gets the same status without a body.

Ready: the primary answers a ListBuckets signed with its keys (200), so writes and reads can
work; a fallback that does not makes the proxy "degraded", named in the body, still ready (reads
of what only it has miss). Each backend is asked at most once every `TTL` seconds per process,
however many health checkers ask, and checkers asking meanwhile share that one probe. Bodies are
JSON and name backends, never an endpoint or a key; what went wrong is logged when a backend's
state changes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from mitmproxy import http

from addon.config.settings import Backend
from addon.namespace.bucket_listing import MAX_LISTING
from addon.ops import metrics
from addon.s3.operations import virtual_bucket
from addon.upstream.backend_client import BackendClient, BackendError

log = logging.getLogger(__name__)
LIVE, READY, METRICS = "/-/healthy", "/-/ready", "/-/metrics"
TTL = 2.0  # seconds a probe's result is reused
PROBE_TIMEOUT = 3.0  # a backend that has not answered by then is down, for readiness


def asked(request: http.Request, domains: Sequence[str]) -> str | None:
    """The status path this request asks for, or None (an S3 request)."""
    path = request.path.partition("?")[0]
    if path not in (LIVE, READY, METRICS) or request.method not in ("GET", "HEAD"):
        return None
    if virtual_bucket(request.host_header or "", domains) is not None:
        return None
    return path


@dataclass
class _Probe:
    up: bool
    detail: dict[str, object]


class Readiness:
    """The backends' state as readiness sees it, each probed at most once per TTL."""

    def __init__(self, backends: Sequence[Backend], client: BackendClient) -> None:
        self.backends = tuple(backends)
        self.client = client
        self._probes: dict[int, asyncio.Task[_Probe]] = {}  # by backend index: the last probe
        self._probed_at: dict[int, float] = {}  # ... and when it ended
        self._was_up: dict[str, bool] = {}

    async def state(self) -> tuple[bool, dict[str, object]]:
        """(ready, the body's fields)."""
        # Shielded: a checker that gives up must not cancel the probes the others wait for.
        probes = await asyncio.gather(*(asyncio.shield(self._probe_of(b)) for b in self.backends))
        primary, *fallbacks = probes
        if not primary.up:
            status = "not ready"
        else:
            status = "ready" if all(p.up for p in fallbacks) else "degraded"
        return primary.up, {"status": status, "backends": [p.detail for p in probes]}

    def check_at_start(self) -> None:
        """Once, as the proxy starts: a primary that does not answer is said at once, in one
        line naming it and why, by a task of its own (the start never waits for it). The proxy
        starts anyway (the primary may come up later); the line is readiness' own, so its next
        probes say nothing more until the primary is up again, and it counts as one of them."""
        self._probe_of(self.backends[0], starting=True)

    def _probe_of(self, backend: Backend, starting: bool = False) -> asyncio.Task[_Probe]:
        """The backend's probe: the one running, or one that ended under TTL ago, or a new one."""
        task = self._probes.get(backend.index)
        stale = time.monotonic() - self._probed_at.get(backend.index, 0.0) > TTL
        if task is None or (task.done() and stale):
            task = asyncio.get_running_loop().create_task(self._probe(backend, starting))
            self._probes[backend.index] = task
        return task

    async def _probe(self, backend: Backend, starting: bool = False) -> _Probe:
        role = "primary" if backend.index == 0 else "fallback"
        detail: dict[str, object] = {"name": backend.name, "role": role}
        started = time.monotonic()
        problem = ""
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                # max-buckets: one bucket is enough to know (S3 honours it; others list all).
                query = "max-buckets=1"
                async with self.client.request(backend, "GET", None, query=query) as reply:
                    await reply.read(MAX_LISTING)
            detail["status"] = reply.status
            if reply.status != 200:
                problem = f"ListBuckets answered {reply.status}"
        except TimeoutError:
            problem = f"no answer within {PROBE_TIMEOUT:g}s"
        except BackendError as e:
            problem = f"unreachable: {e}"
        detail["ms"] = round((time.monotonic() - started) * 1000)
        up = not problem
        detail["up"] = up
        if self._was_up.get(backend.name, True) != up:
            if up:
                log.info("s3-multi: backend %s is up again", backend.name)
            elif starting:
                log.warning(
                    "s3-multi: the primary, %s (%s), does not answer at start: %s; starting "
                    "anyway (/-/ready says not ready until it does)",
                    backend.name,
                    backend.endpoint,
                    problem,
                )
            else:
                log.warning("s3-multi: backend %s is down for readiness: %s", backend.name, problem)
        self._was_up[backend.name] = up
        self._probed_at[backend.index] = time.monotonic()
        return _Probe(up, detail)


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
