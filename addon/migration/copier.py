"""Copies of a fallback's object onto the primary that never win against a client.

Both ways of migrating write through here: copy-on-read (`copy_on_read`: the bytes a client is
reading from a fallback, teed) and the drain (`drain`, `s3-multi migrate`: the bytes of
a GET of its own). The object is streamed in bounded memory at any size: one PUT, or from
MULTIPART_FROM on a multipart upload in parts of at least PART_SIZE, two parts in flight.

- **Conditional.** The write that makes the object appear (the PUT, or CompleteMultipartUpload)
  says `If-None-Match: *`: a key written meanwhile stays the client's (412, the copy is dropped).
  Just before it (the last bytes of a PUT are held back until then), the copy looks again: a HEAD
  of the key on the primary, for a primary that ignores If-None-Match (a window of one round trip
  there), and the key's tombstone: a key deleted meanwhile is not brought back.
- **A delete racing the copy.** After it landed the copy reads the key's tombstone once more and
  removes itself if a delete hid its source meanwhile; the delete does the converse
  (`tombstones.bury`), so whichever comes second sees the other.
- **Verified.** The bytes are counted against the source's length and, when the source's ETag
  is an MD5 (a single-part upload's), hashed against it; until then the last step is not taken.
  The primary's answer must carry the ETag of what was sent (the MD5, or the MD5 of the parts'
  MD5s); a primary whose ETags are something else is read back and hashed instead.
- **Described.** Content headers, user metadata and tags go with it, and the source's ETag as
  x-amz-meta-s3multi-source-etag, by which a drain tells a copy that is current.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from addon.config.settings import Backend
from addon.migration.source import (
    MIB,
    Abandoned,
    Copied,
    CopyFailed,
    Source,
    Tally,
    part_sizes,
)
from addon.namespace.adoption import create_bucket
from addon.namespace.object_meta import SOURCE_ETAG, delete_if_match, tagging_header, tags_of
from addon.namespace.tombstones import TombstoneError, Tombstones
from addon.s3 import sigv4
from addon.s3 import xml as s3_xml
from addon.s3.errors import S3Error, error_code
from addon.s3.etags import same_etag
from addon.upstream.backend_client import BackendClient, BackendError, Streamed

log = logging.getLogger(__name__)

MULTIPART_FROM = 64 * MIB  # a smaller object goes in one PUT
_MAX_ANSWER = 64 * 1024
_ABORT_PAUSES = (0.0, 0.3, 1.0)  # s, before each try: a last part has long arrived by then


@dataclass
class Migrator:
    """Writes copies to the primary; one per proxy or drain (its client's event loop)."""

    client: BackendClient
    primary: Backend
    tombstones: Tombstones | None = None

    async def copy(
        self, source: Source, pieces: AsyncIterator[bytes], create_bucket_first: bool = False
    ) -> Copied:
        """Copy `source`, whose bytes are `pieces`, to the primary. Raises Abandoned when it
        must not land, CopyFailed when it cannot; nothing of it stays on the primary then."""
        try:
            if create_bucket_first:
                await create_bucket(self.client, self.primary, source.bucket)
            headers = await self._headers(source)
            tally = Tally(source, pieces)
            if source.size >= MULTIPART_FROM:
                etag = await self._multipart(source, headers, tally)
            else:
                etag = await self._put(source, headers, tally)
            copied = Copied(etag, source.size, tally.md5.hexdigest())
            await self._verify(source, copied, tally)
            await self._still_wanted(source, copied)
        except (BackendError, S3Error, TombstoneError, ValueError) as e:
            raise CopyFailed(str(e)) from None
        return copied

    async def _headers(self, source: Source) -> list[tuple[str, str]]:
        tags = []
        if source.tag_count:
            tags = await tags_of(self.client, source.backend, source.bucket, source.key)
        kept = [(k, v) for k, v in source.described if k != SOURCE_ETAG]
        return [*kept, (SOURCE_ETAG, source.etag.strip('"')), *tagging_header(tags)]

    async def _may_land(self, source: Source, tally: Tally) -> None:
        """Just before the copy appears: every byte checked, the key still free and not
        deleted meanwhile."""
        await tally.check()
        await asyncio.gather(self._key_free(source), self._not_deleted(source))

    async def _key_free(self, source: Source) -> None:
        async with self.client.request(
            self.primary, "HEAD", source.bucket, sigv4.key_path(source.key)
        ) as head:
            await head.read(0)
        if head.status == 200:
            raise Abandoned("the key was written on the primary meanwhile")
        if head.status != 404:
            raise CopyFailed(f"{self.primary.name} answered {head.status} to a HEAD")

    async def _not_deleted(self, source: Source) -> None:
        if await self._hidden(source):
            raise Abandoned("the key was deleted meanwhile")

    async def _hidden(self, source: Source) -> bool:
        if self.tombstones is None:
            return False
        hides = await self.tombstones.hides(source.bucket, source.key)
        hidden = hides.get(source.backend.name)
        return hidden is not None and same_etag(hidden, source.etag)

    async def _put(self, source: Source, headers: list[tuple[str, str]], tally: Tally) -> str:
        if source.size == 0:
            await self._may_land(source, tally)
        body = Streamed(tally.take(source.size, lambda: self._may_land(source, tally)), source.size)
        async with self.client.request(
            self.primary,
            "PUT",
            source.bucket,
            sigv4.key_path(source.key),
            headers=[*headers, ("if-none-match", "*")],
            body=body if source.size else b"",
        ) as reply:
            answer = await reply.read(_MAX_ANSWER)
        return _written(self.primary, reply.status, answer, reply.header("etag"))

    async def _multipart(self, source: Source, headers: list[tuple[str, str]], tally: Tally) -> str:
        path = sigv4.key_path(source.key)
        async with self.client.request(
            self.primary, "POST", source.bucket, path, "uploads=", headers
        ) as reply:
            answer = await reply.read(_MAX_ANSWER)
        if reply.status != 200:
            raise CopyFailed(f"{self.primary.name} answered {reply.status} {error_code(answer)}")
        upload = s3_xml.text(s3_xml.root(answer, "InitiateMultipartUploadResult"), "UploadId")
        query = sigv4.canonical_query([("uploadId", upload)])
        try:
            etags = await self._parts(source, upload, tally)
            await self._may_land(source, tally)
            parts = "".join(
                f"<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
                for n, etag in enumerate(etags, 1)
            )
            document = f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()
            async with self.client.request(
                self.primary,
                "POST",
                source.bucket,
                path,
                query,
                [("if-none-match", "*")],
                body=document,
            ) as reply:
                answer = await reply.read(_MAX_ANSWER)
            # S3 may answer 200 and an Error in the body, once the parts are being put together.
            status = 500 if reply.status == 200 and error_code(answer) else reply.status
            etag = None
            if status == 200:
                result = s3_xml.root(answer, "CompleteMultipartUploadResult")
                etag = s3_xml.text(result, "ETag")
            return _written(self.primary, status, answer, etag)
        except BaseException:
            await self._abort(source, upload, query)
            raise

    async def _abort(self, source: Source, upload: str, query: str) -> None:
        """Abort the upload, again after a pause if the primary fails to: a part it is still
        taking in may hold the upload (S3 says an abort may take more than one). Gone (404) is
        aborted."""
        for pause in _ABORT_PAUSES:
            await asyncio.sleep(pause)
            with contextlib.suppress(BackendError, OSError):
                async with self.client.request(
                    self.primary, "DELETE", source.bucket, sigv4.key_path(source.key), query
                ) as reply:
                    await reply.read(_MAX_ANSWER)
                if reply.status in (200, 204, 404):
                    return
        log.warning(
            "could not abort the multipart upload %s of %s/%s on %s: its parts stay there",
            upload,
            source.bucket,
            source.key,
            self.primary.name,
        )

    async def _parts(self, source: Source, upload: str, tally: Tally) -> list[str]:
        """Each part in turn; a part's bytes go while the part before waits for its answer,
        so the source's bytes never wait on a round trip (two parts in flight at most)."""
        sent: list[asyncio.Task[str]] = []
        try:
            for number, length in enumerate(part_sizes(source.size), 1):
                if len(sent) >= 2:
                    await sent[-2]
                drawn = asyncio.Event()
                query = sigv4.canonical_query([("partNumber", str(number)), ("uploadId", upload)])
                body = _drawn(tally.take(length), drawn)
                sent.append(asyncio.ensure_future(self._part(source, query, body, length)))
                waiting = asyncio.ensure_future(drawn.wait())
                await asyncio.wait([sent[-1], waiting], return_when=asyncio.FIRST_COMPLETED)
                waiting.cancel()
                if sent[-1].done():
                    sent[-1].result()  # its failure, if it failed before its bytes were sent
            return [await task for task in sent]
        finally:
            for task in sent:
                task.cancel()
            await asyncio.gather(*sent, return_exceptions=True)  # each failure is seen

    async def _part(
        self, source: Source, query: str, body: AsyncIterator[bytes], length: int
    ) -> str:
        async with self.client.request(
            self.primary,
            "PUT",
            source.bucket,
            sigv4.key_path(source.key),
            query,
            body=Streamed(body, length),
        ) as reply:
            answer = await reply.read(_MAX_ANSWER)
        if reply.status != 200:
            raise CopyFailed(f"{self.primary.name} answered {reply.status} {error_code(answer)}")
        return reply.header("etag") or ""

    async def _verify(self, source: Source, copied: Copied, tally: Tally) -> None:
        """The primary holds what was sent: its ETag says so, or its bytes read back do."""
        if same_etag(copied.etag, tally.etag):
            return
        read_back = hashlib.md5()
        async with self.client.request(
            self.primary, "GET", source.bucket, sigv4.key_path(source.key)
        ) as reply:
            async for piece in reply.pieces():
                read_back.update(piece)
        if reply.status != 200 or read_back.hexdigest() != copied.md5:
            await self.remove(source, copied)
            raise CopyFailed("the copy on the primary is not what was sent")

    async def _still_wanted(self, source: Source, copied: Copied) -> None:
        """A delete that came while the copy landed: the copy goes (see tombstones)."""
        if await self._hidden(source):
            await self.remove(source, copied)
            raise Abandoned("the key was deleted while the copy landed")

    async def remove(self, source: Source, copied: Copied) -> None:
        """The copy off the primary, if it is still there unchanged (not a client's write)."""
        await delete_if_match(self.client, self.primary, source.bucket, source.key, copied.etag)


def _written(primary: Backend, status: int, answer: bytes, etag: str | None) -> str:
    if status == 412:
        raise Abandoned("the key was written on the primary meanwhile")
    if status != 200 or not etag:
        raise CopyFailed(f"{primary.name} answered {status} {error_code(answer) or ''}".strip())
    return etag


async def _drawn(pieces: AsyncIterator[bytes], done: asyncio.Event) -> AsyncIterator[bytes]:
    """`pieces`, and `done` set once the last of them has been taken."""
    async for piece in pieces:
        yield piece
    done.set()
