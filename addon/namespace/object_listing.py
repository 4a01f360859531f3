"""ListObjects (v1 and v2) over every backend that has the bucket, answered by the proxy.

What reads serve, listings show: the page is the merge (`listing_merge`) of each backend's own
listing, asked in the form that is right everywhere (ListObjectsV2 with StartAfter and
`encoding-type=url`, whatever the client asked), with S3's semantics rebuilt (`listing_pages`):
Prefix, Delimiter and CommonPrefixes, MaxKeys (keys and prefixes together), Marker and NextMarker
(v1; NextMarker only with a delimiter), ContinuationToken (v2: opaque, signed with a key derived
from the root secret, so that any instance with the same config takes any other's), StartAfter,
EncodingType=url, FetchOwner, KeyCount.

A backend that has the bucket but cannot be listed fails the whole listing (503): a listing
silently missing keys would make `aws s3 sync --delete` delete the user's files. A backend's S3
error meant for the client (a 4xx: a bucket policy's AccessDenied) is the answer as it is, as a
read's would be.
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
    Refusal,
    Tokens,
    page_of,
    parse_page,
    render,
)
from addon.namespace.tombstones import TombstoneError, Tombstones
from addon.s3.errors import S3Error, error_response
from addon.s3.log_text import printable
from addon.upstream.backend_client import BackendClient, BackendError
from addon.upstream.journey import Attempt

MAX_PAGE = 8 * 1024 * 1024  # 1,000 keys of 1,024 bytes, with their fields, are about 2 MB


@dataclass
class ListingMerge:
    """One ListObjects request, answered from every backend's own listing."""

    request_id: str
    request: ListingRequest
    backends: tuple[Backend, ...]
    tokens: Tokens
    tombstones: Tombstones | None = None  # what deletes through the proxy hide
    attempts: list[Attempt] = field(default_factory=list)
    answered_by: str = "all"  # or the backend whose error is the answer, or the proxy's error

    async def answer(self, client: BackendClient) -> http.Response:
        self.attempts = [Attempt(b, time.monotonic()) for b in self.backends]
        merge = Merge(
            len(self.backends),
            self.request.start,
            self.request.max_keys,
            after_prefix=self.request.starts_after_prefix,
        )
        try:
            while not merge.complete:
                asked = merge.needs()
                wanted = merge.max_keys - len(merge.emitted)
                pages = await asyncio.gather(
                    *(self._page(client, i, merge.start_after(i), wanted) for i in asked)
                )
                for i, page in zip(asked, pages, strict=True):
                    if page is None:
                        merge.absent(i)
                    else:
                        merge.add(i, await self._without_deleted(client, i, page))
                merge.advance()
        except Refusal as refusal:
            self.answered_by = self.backends[refusal.backend].name
            headers = {"Content-Type": "application/xml", "x-amz-request-id": self.request_id}
            return http.Response.make(refusal.status, refusal.body, headers)
        except S3Error as e:
            return self.error(e)
        except TombstoneError as e:
            message = f"The tombstones of deleted keys cannot be read: {e}"
            return self.error(S3Error("ServiceUnavailable", message))
        if merge.nowhere:
            return self.error(S3Error("NoSuchBucket", extra={"BucketName": self.request.bucket}))
        return http.Response.make(
            200,
            render(self.request, merge, self.tokens),
            {"Content-Type": "application/xml", "x-amz-request-id": self.request_id},
        )

    async def _page(
        self, client: BackendClient, index: int, start_after: str | None, wanted: int
    ) -> Page | None:
        """The backend's next page, None if it does not have the bucket; raises its Refusal (its
        error for the client), or the S3Error that fails the listing when it cannot be had."""
        attempt = self.attempts[index]
        query = self.request.backend_query(start_after, wanted)
        try:
            async with client.request(
                attempt.backend, "GET", self.request.bucket, query=query
            ) as reply:
                attempt.status = reply.status
                body = await reply.read(MAX_PAGE)
            return page_of(index, reply.status, body, start_after)
        except (BackendError, ValueError) as e:
            attempt.note = f"failed: {e}"
            message = f"Backend {attempt.backend.name} cannot be listed."
            raise S3Error("ServiceUnavailable", message) from None
        finally:
            attempt.ms = (time.monotonic() - attempt.started) * 1000

    async def _without_deleted(self, client: BackendClient, index: int, page: Page) -> Page:
        """A fallback's page without the copies tombstones hide (a copy written since, another
        ETag, shows), and without the common prefixes that then hold nothing."""
        if self.tombstones is None or index == 0:
            return page
        keys = [e.name for e in page.entries if not e.prefix]
        hides = await self.tombstones.hiding(self.request.bucket, keys)
        kept = []
        for entry in page.entries:
            if entry.prefix:
                if await self._holds_something(client, index, entry.name):
                    kept.append(entry)
            elif _shows(entry, hides, self.backends[index].name):
                kept.append(entry)
        return Page(kept, page.truncated)

    async def _holds_something(self, client: BackendClient, index: int, prefix: str) -> bool:
        """Whether a fallback's common prefix has a key that no tombstone hides (its keys are
        looked at only if tombstones are under it)."""
        assert self.tombstones is not None
        bucket, backend = self.request.bucket, self.backends[index]
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

    def error(self, error: S3Error) -> http.Response:
        self.answered_by = "proxy"
        return error_response(error, "GET", f"/{self.request.bucket}", self.request_id)

    def summary(self) -> str:
        tried = ", ".join(str(a) for a in self.attempts)
        name = "ListObjectsV2" if self.request.v2 else "ListObjects"
        return (
            f"{name} /{printable(self.request.bucket)} via [{tried}] answered by {self.answered_by}"
        )


def _shows(entry: Entry, hides: dict[str, dict[str, str]], backend: str) -> bool:
    """A fallback's key shows unless its tombstone hides that very copy (`hiding`)."""
    return not hidden(hides.get(entry.name), backend, dict(entry.fields).get("ETag"))
