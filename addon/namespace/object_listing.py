"""ListObjects (v1 and v2) over every backend that has the bucket, answered by the proxy.

What reads serve, listings show: the page is the merge (`listing_merge`) of each backend's own
listing, asked in the form that is right everywhere (ListObjectsV2 with StartAfter and
`encoding-type=url`, whatever the client asked), with S3's semantics rebuilt (`listing_pages`):
Prefix, Delimiter and CommonPrefixes, MaxKeys (keys and prefixes together), Marker and NextMarker
(v1; NextMarker only with a delimiter), ContinuationToken (v2: opaque, signed with a key derived
from the root secret, so that any instance with the same config takes any other's), StartAfter,
EncodingType=url, FetchOwner, KeyCount.

A backend that has the bucket but cannot be listed fails the whole listing (503): a listing
silently missing keys would make `aws s3 sync --delete` delete the user's files; a backend
marked down fails it at once, without being asked. A backend's S3 error meant for the client (a
4xx: a bucket policy's AccessDenied) is the answer as it is, as a read's would be.

While the primary cannot be listed (marked down, or failing now), a replica certified in sync
(`Outlook.failover`) answers alone, marked with the header `x-s3multi-failover: <replica>` and in
the flow's comment; unless a fallback that is not a replica holds the bucket (its keys would be
missing, and it may hold copies of deleted keys whose tombstones are on the primary): then, as
without a certified replica, 503.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from mitmproxy import http

from addon.config.settings import Backend
from addon.namespace.hiding import hidden
from addon.namespace.listing_merge import MAX_KEYS, Entry, Merge, Page
from addon.namespace.listing_pages import (
    ListingRequest,
    OutOfOrder,
    Refusal,
    Tokens,
    page_of,
    parse_page,
    render,
)
from addon.namespace.tombstones import TombstoneError, Tombstones
from addon.s3.errors import S3Error, error_response
from addon.s3.log_text import printable
from addon.upstream import failover
from addon.upstream.attempts import Attempt
from addon.upstream.backend_client import BackendClient, BackendError
from addon.upstream.health import Outlook

MAX_PAGE = 8 * 1024 * 1024  # 1,000 keys of 1,024 bytes, with their fields, are about 2 MB
_FAILED = "failed: "  # an attempt's note: the backend gave no usable page (an outage's kind)


@dataclass
class ListingMerge:
    """One ListObjects request, answered from every backend's own listing."""

    request_id: str
    request: ListingRequest
    backends: tuple[Backend, ...]
    tokens: Tokens
    tombstones: Tombstones | None = None  # what deletes through the proxy hide
    outlook: Outlook = field(default_factory=Outlook)  # down backends, certified replicas
    attempts: list[Attempt] = field(default_factory=list)
    answered_by: str = "all"  # or the backend whose error is the answer, or the proxy's error
    cause: str = ""  # why it failed over ("main down"), "" when it did not

    async def answer(self, client: BackendClient) -> http.Response:
        primary = self.backends[0]
        if self.outlook.is_down(primary):
            self.attempts.append(Attempt(primary, time.monotonic(), skipped=True))
            down = failover.unavailable(f"Backend {primary.name} is down.")
            return await self._fail_over(client, f"{primary.name} down", down)
        try:
            return await self._merged(client, self.backends, self.tombstones)
        except S3Error as e:
            failed = self.attempts[0]
            if failed.note.startswith(_FAILED) and self.outlook.failover:
                reason = failed.note.removeprefix(_FAILED).partition(":")[0]
                return await self._fail_over(client, f"{primary.name} {reason}", e)
            return self.error(e)
        except TombstoneError as e:
            message = f"The tombstones of deleted keys cannot be read: {e}"
            return self.error(S3Error("ServiceUnavailable", message))

    async def _merged(
        self, client: BackendClient, backends: tuple[Backend, ...], tombstones: Tombstones | None
    ) -> http.Response:
        """The listing merged over `backends` (a backend's Refusal is the answer); raises
        S3Error when one cannot be listed."""
        attempts = [Attempt(b, time.monotonic()) for b in backends]
        self.attempts += attempts
        merge = Merge(
            len(backends),
            self.request.start,
            self.request.max_keys,
            after_prefix=self.request.starts_after_prefix,
        )
        try:
            while not merge.complete:
                asked = merge.needs()
                wanted = merge.max_keys - len(merge.emitted)
                pages = await asyncio.gather(
                    *(
                        self._page(client, attempts[i], i, merge.start_after(i), wanted)
                        for i in asked
                    )
                )
                for i, page in zip(asked, pages, strict=True):
                    if page is None:
                        merge.absent(i)
                    else:
                        kept = await self._without_deleted(client, backends, i, page, tombstones)
                        merge.add(i, kept)
                merge.advance()
        except Refusal as refusal:
            self.answered_by = backends[refusal.backend].name
            headers = {"Content-Type": "application/xml", "x-amz-request-id": self.request_id}
            return http.Response.make(refusal.status, refusal.body, headers)
        if merge.nowhere:
            return self.error(S3Error("NoSuchBucket", extra={"BucketName": self.request.bucket}))
        return http.Response.make(
            200,
            render(self.request, merge, self.tokens),
            {"Content-Type": "application/xml", "x-amz-request-id": self.request_id},
        )

    async def _fail_over(self, client: BackendClient, cause: str, error: S3Error) -> http.Response:
        """The primary cannot be listed: a certified replica's listing alone, or 503 (`error`
        when no failover applies)."""
        then = failover.plan(self.outlook, self.backends, self.tombstones is not None)
        if then is None:
            return self.error(error)
        self.cause = cause
        primary = self.backends[0].name
        if then.mode != failover.REPLICAS:
            message = f"Backend {primary} is down and no replica is certified in sync to list."
            return self.error(then.refusal or failover.unavailable(message))
        try:
            holder = await self._held_elsewhere(client)
        except (S3Error, Refusal):
            holder = "a fallback that cannot be listed"
        if holder:
            message = f"Backend {primary} is down and {holder} holds this bucket: it cannot be "
            return self.error(failover.unavailable(message + "listed without the primary."))
        for replica in then.backends:
            try:
                answer = await self._merged(client, (replica,), None)
            except S3Error:
                continue  # the next certified replica
            self.answered_by = replica.name
            answer.headers["x-s3multi-failover"] = replica.name
            return answer
        return self.error(failover.exhausted(primary, failover.REPLICAS))

    async def _held_elsewhere(self, client: BackendClient) -> str:
        """The first fallback that is not a replica and holds the bucket ("": none)."""
        others = failover.others(self.backends)
        attempts = [Attempt(b, time.monotonic()) for b in others]
        self.attempts += attempts
        pages = await asyncio.gather(
            *(self._page(client, a, i + 1, None, 1) for i, a in enumerate(attempts))
        )
        return next((b.name for b, page in zip(others, pages, strict=True) if page), "")

    async def _page(
        self,
        client: BackendClient,
        attempt: Attempt,
        index: int,
        start_after: str | None,
        wanted: int,
    ) -> Page | None:
        """The backend's next page, None if it does not have the bucket; raises its Refusal (its
        error for the client), or the S3Error that fails the listing when it cannot be had (at
        once if it is marked down)."""
        if self.outlook.is_down(attempt.backend):
            attempt.skipped = True
            raise failover.unavailable(f"Backend {attempt.backend.name} is down.")
        query = self.request.backend_query(start_after, wanted)
        try:
            async with client.request(
                attempt.backend, "GET", self.request.bucket, query=query
            ) as reply:
                attempt.status = reply.status
                body = await reply.read(MAX_PAGE)
            return page_of(index, reply.status, body, start_after)
        except OutOfOrder as e:
            attempt.note = f"refused: {e}"  # how it is configured, not an outage
        except BackendError as e:
            attempt.note = f"{_FAILED}{e.kind}: {e}"
        except ValueError as e:
            attempt.note = f"{_FAILED}{e}"  # a 5xx (its status and code), or not S3's answer
        finally:
            attempt.ms = (time.monotonic() - attempt.started) * 1000
        raise failover.unavailable(f"Backend {attempt.backend.name} cannot be listed.")

    async def _without_deleted(
        self,
        client: BackendClient,
        backends: tuple[Backend, ...],
        index: int,
        page: Page,
        tombstones: Tombstones | None,
    ) -> Page:
        """A fallback's page without the copies tombstones hide (a copy written since, another
        ETag, shows), and without the common prefixes that then hold nothing."""
        if tombstones is None or index == 0:
            return page
        keys = [e.name for e in page.entries if not e.prefix]
        hides = await tombstones.hiding(self.request.bucket, keys)
        kept = []
        for entry in page.entries:
            if entry.prefix:
                if await self._holds_something(client, backends[index], index, entry.name):
                    kept.append(entry)
            elif _shows(entry, hides, backends[index].name):
                kept.append(entry)
        return Page(kept, page.truncated)

    async def _holds_something(
        self, client: BackendClient, backend: Backend, index: int, prefix: str
    ) -> bool:
        """Whether a fallback's common prefix has a key that no tombstone hides (its keys are
        looked at only if tombstones are under it)."""
        assert self.tombstones is not None
        bucket = self.request.bucket
        if not await self.tombstones.any_under(bucket, prefix):
            return True
        inner = ListingRequest(True, bucket, prefix=prefix, max_keys=MAX_KEYS)
        start: str | None = None
        while True:
            query = inner.backend_query(start, MAX_KEYS)
            async with client.request(backend, "GET", bucket, query=query) as reply:
                body = await reply.read(MAX_PAGE)
            if reply.status != 200:
                raise TombstoneError(f"{backend.name} answered {reply.status}")
            page = parse_page(index, body)
            hides = await self.tombstones.hiding(bucket, [e.name for e in page.entries])
            if any(_shows(e, hides, backend.name) for e in page.entries):
                return True
            if not page.truncated or not page.entries:
                return False
            start = page.entries[-1].name

    @property
    def failover_by(self) -> str:
        """The replica that answered because the primary could not ("": none)."""
        return self.answered_by if self.cause and self.answered_by != "proxy" else ""

    def error(self, error: S3Error) -> http.Response:
        self.answered_by = "proxy"
        return error_response(error, "GET", f"/{self.request.bucket}", self.request_id)

    def summary(self) -> str:
        tried = ", ".join(str(a) for a in self.attempts)
        name = "ListObjectsV2" if self.request.v2 else "ListObjects"
        by = f"{self.answered_by} (failover: {self.cause})" if self.cause else self.answered_by
        return f"{name} /{printable(self.request.bucket)} via [{tried}] answered by {by}"


def _shows(entry: Entry, hides: dict[str, dict[str, str]], backend: str) -> bool:
    """A fallback's key shows unless its tombstone hides that very copy (`hiding`)."""
    return not hidden(hides.get(entry.name), backend, dict(entry.fields).get("ETag"))
