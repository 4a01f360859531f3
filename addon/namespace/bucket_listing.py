"""ListBuckets across backends: each bucket name once, sorted by name, with an Owner.

The proxy answers it itself: it asks every backend at once (`backend_client`) and merges. A
backend that is down or answers something else is skipped (logged), so one sick backend does
not hide the others' buckets; if none answers, the client gets a 503. A backend marked down is
not asked at all; with the primary marked down, the flow's comment says it is a failover.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from addon.config.settings import Backend
from addon.s3 import xml as s3_xml
from addon.s3.errors import S3Error, error_response
from addon.upstream.attempts import Attempt
from addon.upstream.backend_client import BackendClient, BackendError
from addon.upstream.health import MAX_LISTING

if TYPE_CHECKING:  # imported where used: the commands (check, migrate) never need it
    from mitmproxy import http

log = logging.getLogger(__name__)


@dataclass
class BucketList:
    """Buckets gathered so far; the first backend to name a bucket keeps it (primary first)."""

    owner_id: str = ""
    owner_name: str = ""
    buckets: dict[str, str] = field(default_factory=dict)  # name -> creation date

    def add(self, body: bytes) -> None:
        """Add one backend's ListAllMyBucketsResult; raises ValueError when it is not one."""
        document = s3_xml.root(body, "ListAllMyBucketsResult")
        if not self.owner_id:
            owner = s3_xml.child(document, "Owner")
            if owner is not None:
                self.owner_id = s3_xml.text(owner, "ID")
                self.owner_name = s3_xml.text(owner, "DisplayName")
        buckets = s3_xml.child(document, "Buckets")
        for bucket in buckets if buckets is not None else ():
            name = s3_xml.text(bucket, "Name")
            if name:
                self.buckets.setdefault(name, s3_xml.text(bucket, "CreationDate"))

    def render(self) -> bytes:
        items = "".join(
            f"<Bucket><Name>{s3_xml.escape(name)}</Name>"
            f"<CreationDate>{s3_xml.escape(date)}</CreationDate></Bucket>"
            for name, date in sorted(self.buckets.items())
        )
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<ListAllMyBucketsResult xmlns="{s3_xml.S3_NS}">'
            f"<Owner><ID>{s3_xml.escape(self.owner_id)}</ID>"
            f"<DisplayName>{s3_xml.escape(self.owner_name)}</DisplayName></Owner>"
            f"<Buckets>{items}</Buckets></ListAllMyBucketsResult>"
        ).encode()


@dataclass
class BucketsMerge:
    """One ListBuckets request, answered from every backend's list."""

    request_id: str
    query: str  # canonical
    backends: tuple[Backend, ...]
    hidden: frozenset[str] = frozenset()  # the proxy's own buckets (metaBuckets): never listed
    shown: Callable[[str], bool] = lambda bucket: True  # the buckets the client may see
    attempts: list[Attempt] = field(default_factory=list)
    down: frozenset[str] = frozenset()  # backends marked down: not asked

    async def answer(self, client: BackendClient) -> http.Response:
        self.attempts = [
            Attempt(b, time.monotonic(), skipped=b.name in self.down) for b in self.backends
        ]
        bodies = await asyncio.gather(*(self._ask(client, a) for a in self.attempts))
        merged = BucketList()
        for attempt, body in zip(self.attempts, bodies, strict=True):
            if body is None:
                continue
            try:
                merged.add(body)
            except ValueError as e:
                attempt.note = "bad listing"
                log.warning(
                    "backend %s: ListBuckets answer unreadable: %s", attempt.backend.name, e
                )
        merged.buckets = {
            n: d for n, d in merged.buckets.items() if n not in self.hidden and self.shown(n)
        }
        if all(a.note or a.skipped or a.status != 200 for a in self.attempts):
            error = S3Error("ServiceUnavailable", "No backend could list its buckets.")
            return error_response(error, "GET", "/", self.request_id)
        from mitmproxy import http  # see the imports above

        return http.Response.make(
            200,
            merged.render(),
            {"Content-Type": "application/xml", "x-amz-request-id": self.request_id},
        )

    async def _ask(self, client: BackendClient, attempt: Attempt) -> bytes | None:
        name = attempt.backend.name
        if attempt.skipped:
            return None
        try:
            async with client.request(attempt.backend, "GET", None, query=self.query) as reply:
                attempt.status = reply.status
                body = await reply.read(MAX_LISTING)
        except BackendError as e:
            attempt.note = "unreachable"
            log.warning("backend %s: ListBuckets failed: %s", name, e)
            return None
        finally:
            attempt.ms = (time.monotonic() - attempt.started) * 1000
        if reply.status != 200:
            log.warning("backend %s: ListBuckets answered %s", name, reply.status)
            return None
        return body

    def summary(self) -> str:
        tried = ", ".join(str(a) for a in self.attempts)
        primary = self.backends[0].name
        failover = f" (failover: {primary} down)" if primary in self.down else ""
        return f"ListBuckets / via [{tried}] answered by all{failover}"
