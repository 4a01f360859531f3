"""The drain behind `s3-multi migrate`: every object a fallback has and the primary lacks, copied
to the primary through the same code as copy-on-read (`copier`), `jobs` at a time.

Each listed object is what a read would serve, or it is left: a key on the primary stays the
primary's (a copy made before, by copy-on-read or an earlier run, is told by its source ETag,
and counted done: so a second run resumes where the first stopped); a key a tombstone hides was
deleted; a key an earlier fallback has is served from there. Everything else is copied, under
the conditional writes that make it safe while the proxy serves traffic. With `delete_source`,
the fallback's object is deleted once its copy on the primary is verified (If-Match its ETag,
so a copy changed since is kept).

Listing and copying go together, through a bounded queue: memory does not grow with the
number of objects, and the total is known once the listing is done.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from addon.config.settings import Backend
from addon.migration.copier import Migrator
from addon.migration.listed import ALREADY, CHANGED, PRIMARYS, Listed, list_objects, skip_reason
from addon.migration.source import Abandoned, CopyFailed, Source
from addon.migration.together import run_together
from addon.namespace.adoption import create_bucket
from addon.namespace.bucket_listing import MAX_LISTING, BucketList
from addon.namespace.object_meta import SOURCE_ETAG, delete_if_match
from addon.namespace.own_writes import OwnWrite, nobody
from addon.namespace.tombstones import TombstoneError, Tombstones
from addon.s3 import sigv4
from addon.s3.errors import S3Error, error_code
from addon.s3.etags import md5_of, same_etag
from addon.upstream.backend_client import BackendClient, BackendError, Reply

_MAX_ANSWER = 64 * 1024


@dataclass
class Report:
    """What the drain has done so far (the progress line reads it as it goes)."""

    listed: int = 0
    listed_bytes: int = 0
    listing_done: bool = False
    copied: int = 0
    copied_bytes: int = 0
    moved: int = 0  # bytes streamed so far, copies under way included
    passed: int = 0  # bytes of the objects skipped or failed (and those a dry run would copy)
    skipped: Counter[str] = field(default_factory=Counter)
    failed: int = 0
    deleted: int = 0  # from the fallbacks (delete_source)
    started: float = field(default_factory=time.monotonic)

    @property
    def done(self) -> int:
        return self.copied + self.skipped.total() + self.failed


@dataclass
class Drain:
    client: BackendClient
    primary: Backend
    fallbacks: tuple[Backend, ...]  # all of them, in order (a read asks them so)
    sources: tuple[Backend, ...]  # those drained
    report: Report
    say: Callable[[str], None]  # a line for the user (a failure, what a dry run would do)
    tombstones: Tombstones | None = None
    dry_run: bool = False
    delete_source: bool = False
    jobs: int = 8
    landed: OwnWrite = nobody  # told of each copy made (the replicas' outbox)

    def __post_init__(self) -> None:
        self.migrator = Migrator(self.client, self.primary, self.tombstones, self.landed)

    async def run(self, buckets: list[str] | None = None) -> None:
        queue: asyncio.Queue[Listed | None] = asyncio.Queue(maxsize=self.jobs * 4)
        tasks = [asyncio.ensure_future(self._work(queue)) for _ in range(self.jobs)]
        tasks.append(asyncio.ensure_future(self._list_all(buckets, queue)))
        await run_together(tasks)

    # --- listing ---------------------------------------------------------------------------------

    async def _list_all(self, buckets: list[str] | None, queue: asyncio.Queue) -> None:
        for source in self.sources:
            for bucket in buckets or await self._buckets(source):
                await self._list(source, bucket, queue)
        self.report.listing_done = True
        for _ in range(self.jobs):
            await queue.put(None)  # each worker's last

    async def _buckets(self, source: Backend) -> list[str]:
        async with self.client.request(source, "GET", None) as reply:
            body = await reply.read(MAX_LISTING)
        if reply.status != 200:
            raise BackendError(f"{source.name} answered {reply.status} to ListBuckets")
        found = BucketList()
        found.add(body)
        return sorted(b for b in found.buckets if b != self.primary.meta_bucket)

    async def _list(self, source: Backend, bucket: str, queue: asyncio.Queue) -> None:
        first = True
        async for listed in list_objects(self.client, source, bucket):
            if first:
                first = False
                await self._bucket_on_primary(bucket)
            self.report.listed += 1
            self.report.listed_bytes += listed.size
            await queue.put(listed)

    async def _bucket_on_primary(self, bucket: str) -> None:
        async with self.client.request(self.primary, "HEAD", bucket) as head:
            await head.read(0)
        if head.status == 404 and self.dry_run:
            self.say(f"would create the bucket {bucket} on {self.primary.name}")
        elif head.status == 404:
            await create_bucket(self.client, self.primary, bucket)

    # --- one object ------------------------------------------------------------------------------

    async def _work(self, queue: asyncio.Queue[Listed | None]) -> None:
        while (listed := await queue.get()) is not None:
            try:
                skipped = await self.one(listed)
            except Abandoned:
                skipped = CHANGED
            except (CopyFailed, BackendError, TombstoneError, S3Error, ValueError) as e:
                self.report.failed += 1
                self.report.passed += listed.size
                self.say(f"failed: {listed.where} from {listed.backend.name}: {e}")
                continue
            if skipped:
                self.report.skipped[skipped] += 1
                self.report.passed += listed.size

    async def one(self, listed: Listed) -> str:
        """Copies (or verifies) one object; returns why it was skipped, "" when copied."""
        on_primary = await self._head(self.primary, listed)
        if on_primary is not None:
            source_etag = on_primary.header(SOURCE_ETAG)
            if source_etag is None or not same_etag(source_etag, listed.etag):
                return PRIMARYS
            if self.delete_source and not self.dry_run:
                await self._verify_earlier_copy(listed, on_primary)
                await self._delete_source(listed)
            return ALREADY
        hides = {}
        if self.tombstones is not None:
            hides = await self.tombstones.hides(listed.bucket, listed.key)
        earlier = self.fallbacks[: self.fallbacks.index(listed.backend)]
        heads = await asyncio.gather(*(self._head(b, listed) for b in earlier))
        found = [
            (b.name, h.header("etag")) for b, h in zip(earlier, heads, strict=True) if h is not None
        ]
        if skipped := skip_reason(listed, hides, found):
            return skipped
        if self.dry_run:
            self.say(f"would copy {listed.where} ({listed.size} bytes) from {listed.backend.name}")
            self.report.copied += 1
            self.report.copied_bytes += listed.size
            self.report.passed += listed.size
            return ""
        await self._copy(listed)
        if self.delete_source:
            await self._delete_source(listed)
        return ""

    async def _copy(self, listed: Listed) -> None:
        path = sigv4.key_path(listed.key)
        async with self.client.request(listed.backend, "GET", listed.bucket, path) as reply:
            if reply.status != 200:
                body = await reply.read(_MAX_ANSWER)
                code = error_code(body) or ""
                raise CopyFailed(f"the GET was answered {reply.status} {code}".strip())
            source = Source.of(listed.backend, listed.bucket, listed.key, reply.headers)
            if source is None:
                raise CopyFailed("the GET's answer has no Content-Length or ETag")
            moved = 0

            async def counted() -> AsyncIterator[bytes]:
                nonlocal moved
                async for piece in reply.pieces():
                    moved += len(piece)
                    self.report.moved += len(piece)
                    yield piece

            try:
                await self.migrator.copy(source, counted())
            except BaseException:
                self.report.moved -= moved
                raise
        self.report.copied += 1
        self.report.copied_bytes += source.size

    async def _verify_earlier_copy(self, listed: Listed, on_primary: Reply) -> None:
        """A copy this drain did not just make is verified before its source goes: ETags
        that are both the MD5 of the bytes and equal say it; otherwise both are read."""
        md5 = md5_of(on_primary.header("etag") or "")
        if md5 is not None and md5 == md5_of(listed.etag):
            return
        source, copy = await asyncio.gather(
            self._md5(listed.backend, listed), self._md5(self.primary, listed)
        )
        if source != copy:
            raise CopyFailed(f"the copy on {self.primary.name} is not the source's bytes")

    async def _md5(self, backend: Backend, listed: Listed) -> str:
        digest = hashlib.md5()
        async with self.client.request(
            backend, "GET", listed.bucket, sigv4.key_path(listed.key)
        ) as reply:
            if reply.status != 200:
                raise CopyFailed(f"{backend.name} answered {reply.status} to a GET")
            async for piece in reply.pieces():
                digest.update(piece)
        return digest.hexdigest()

    async def _delete_source(self, listed: Listed) -> None:
        """If-Match the listed ETag; a HEAD first, for a fallback that ignores If-Match (a
        window of one round trip there)."""
        found = await self._head(listed.backend, listed)
        if found is not None and same_etag(found.header("etag") or "", listed.etag):
            status, answer = await delete_if_match(
                self.client, listed.backend, listed.bucket, listed.key, listed.etag
            )
            if status in (200, 204):
                self.report.deleted += 1
                return
            if status != 412:
                code = error_code(answer) or ""
                raise CopyFailed(f"the source's DELETE was answered {status} {code}".strip())
        self.say(f"kept: {listed.where} on {listed.backend.name} changed since it was listed")

    async def _head(self, backend: Backend, listed: Listed) -> Reply | None:
        async with self.client.request(
            backend, "HEAD", listed.bucket, sigv4.key_path(listed.key)
        ) as reply:
            await reply.read(0)
        if reply.status == 200:
            return reply
        if reply.status != 404:
            raise CopyFailed(f"{backend.name} answered {reply.status} to a HEAD")
        return None
