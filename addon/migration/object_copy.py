"""An object streamed from one backend onto another, in bounded memory at any size: one PUT, or
a multipart upload in a given part layout, two parts in flight.

The migration writes through here (a fallback's object onto the primary, `copier`), and so does
replication (the primary's object onto a replica, `addon.replication`). Whoever copies decides
the landing condition, the part layout and the last look before landing; this makes sure of the
rest:

- **Landing.** The write that makes the object appear (the PUT, or CompleteMultipartUpload)
  carries the caller's condition (`If-None-Match: *`, `If-Match: <ETag>`). Just before it (the
  last bytes of a PUT are held back until then) every byte has been checked against the source
  (`Tally.check`) and the caller's `may_land` is awaited: it raises Abandoned to stop the copy.
  A condition the target refuses (412; 404 NoSuchKey for If-Match on a key gone, as moto says;
  409 for a concurrent write) is Abandoned too: the key changed meanwhile.
- **Layout.** None: one PUT. Else the part sizes, in order: copying a multipart object in the
  source's own layout gives the copy the source's ETag.
- **Verified.** The target's answer must carry the ETag of what was sent (the MD5, or the MD5 of
  the parts' MD5s and -N); a target whose ETags are something else is read back and hashed
  instead, and a copy that is not what was sent is removed again.
- **Nothing left behind.** A multipart upload that fails is aborted (again after a pause, if the
  target fails the abort).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from addon.config.settings import Backend
from addon.migration.source import Abandoned, Copied, CopyFailed, Source, Tally
from addon.namespace.object_meta import delete_if_match
from addon.s3 import sigv4
from addon.s3 import xml as s3_xml
from addon.s3.errors import error_code
from addon.s3.etags import same_etag
from addon.upstream.backend_client import BackendClient, BackendError
from addon.upstream.request_bodies import Streamed

log = logging.getLogger(__name__)

_MAX_ANSWER = 64 * 1024
_ABORT_PAUSES = (0.0, 0.3, 1.0)  # s, before each try: a last part has long arrived by then
# What a target answers to a landing condition that no longer holds.
_CHANGED = {412: "", 409: "ConditionalRequestConflict", 404: "NoSuchKey"}

Headers = Sequence[tuple[str, str]]


@dataclass
class ObjectCopy:
    """Writes copies onto `target`; one per copier (its client's event loop)."""

    client: BackendClient
    target: Backend

    async def land(
        self,
        source: Source,
        pieces: AsyncIterator[bytes],
        headers: Headers,
        condition: Headers,
        layout: Sequence[int] | None,
        may_land: Callable[[], Awaitable[None]],
    ) -> Copied:
        """Copy `source`, whose bytes are `pieces`, to the same bucket and key on the target,
        with `headers` (what describes it) and landing under `condition`. Raises Abandoned when
        it must not land, CopyFailed when it cannot; nothing of it stays on the target then.
        BackendError and the like from the target are the caller's to catch."""
        tally = Tally(source, pieces)

        async def checked() -> None:
            await tally.check()
            await may_land()

        if layout is None:
            etag = await self._put(source, headers, condition, tally, checked)
        else:
            etag = await self._multipart(source, headers, condition, layout, tally, checked)
        copied = Copied(etag, source.size, tally.md5.hexdigest())
        await self._verify(source, copied, tally)
        return copied

    async def _put(
        self,
        source: Source,
        headers: Headers,
        condition: Headers,
        tally: Tally,
        may_land: Callable[[], Awaitable[None]],
    ) -> str:
        if source.size == 0:
            await may_land()
        body = Streamed(tally.take(source.size, may_land), source.size)
        async with self.client.request(
            self.target,
            "PUT",
            source.bucket,
            sigv4.key_path(source.key),
            headers=[*headers, *condition],
            body=body if source.size else b"",
        ) as reply:
            answer = await reply.read(_MAX_ANSWER)
        return self._written(reply.status, answer, reply.header("etag"))

    async def _multipart(
        self,
        source: Source,
        headers: Headers,
        condition: Headers,
        layout: Sequence[int],
        tally: Tally,
        may_land: Callable[[], Awaitable[None]],
    ) -> str:
        path = sigv4.key_path(source.key)
        async with self.client.request(
            self.target, "POST", source.bucket, path, "uploads=", headers
        ) as reply:
            answer = await reply.read(_MAX_ANSWER)
        if reply.status != 200:
            code = error_code(answer) or ""
            raise CopyFailed(f"{self.target.name} answered {reply.status} {code}".strip(), code)
        upload = s3_xml.text(s3_xml.root(answer, "InitiateMultipartUploadResult"), "UploadId")
        query = sigv4.canonical_query([("uploadId", upload)])
        try:
            etags = await self._parts(source, upload, layout, tally)
            await may_land()
            parts = "".join(
                f"<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
                for n, etag in enumerate(etags, 1)
            )
            document = f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()
            async with self.client.request(
                self.target, "POST", source.bucket, path, query, condition, body=document
            ) as reply:
                answer = await reply.read(_MAX_ANSWER)
            # S3 may answer 200 and an Error in the body, once the parts are being put together.
            status = 500 if reply.status == 200 and error_code(answer) else reply.status
            etag = None
            if status == 200:
                result = s3_xml.root(answer, "CompleteMultipartUploadResult")
                etag = s3_xml.text(result, "ETag")
            return self._written(status, answer, etag)
        except BaseException:
            await self._abort(source, upload, query)
            raise

    async def _abort(self, source: Source, upload: str, query: str) -> None:
        """Abort the upload, again after a pause if the target fails to: a part it is still
        taking in may hold the upload (S3 says an abort may take more than one). Gone (404) is
        aborted."""
        for pause in _ABORT_PAUSES:
            await asyncio.sleep(pause)
            with contextlib.suppress(BackendError, OSError):
                async with self.client.request(
                    self.target, "DELETE", source.bucket, sigv4.key_path(source.key), query
                ) as reply:
                    await reply.read(_MAX_ANSWER)
                if reply.status in (200, 204, 404):
                    return
        log.warning(
            "could not abort the multipart upload %s of %s/%s on %s: its parts stay there",
            upload,
            source.bucket,
            source.key,
            self.target.name,
        )

    async def _parts(
        self, source: Source, upload: str, layout: Sequence[int], tally: Tally
    ) -> list[str]:
        """Each part in turn; a part's bytes go while the part before waits for its answer,
        so the source's bytes never wait on a round trip (two parts in flight at most)."""
        if sum(layout) != source.size:
            raise CopyFailed(f"a layout of {sum(layout)} bytes for {source.size}")
        sent: list[asyncio.Task[str]] = []
        try:
            for number, length in enumerate(layout, 1):
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
            self.target,
            "PUT",
            source.bucket,
            sigv4.key_path(source.key),
            query,
            body=Streamed(body, length),
        ) as reply:
            answer = await reply.read(_MAX_ANSWER)
        if reply.status != 200:
            code = error_code(answer) or ""
            raise CopyFailed(f"{self.target.name} answered {reply.status} {code}".strip(), code)
        return reply.header("etag") or ""

    async def _verify(self, source: Source, copied: Copied, tally: Tally) -> None:
        """The target holds what was sent: its ETag says so, or its bytes read back do."""
        if same_etag(copied.etag, tally.etag):
            return
        read_back = hashlib.md5()
        async with self.client.request(
            self.target, "GET", source.bucket, sigv4.key_path(source.key)
        ) as reply:
            async for piece in reply.pieces():
                read_back.update(piece)
        if reply.status != 200 or read_back.hexdigest() != copied.md5:
            await self.remove(source.bucket, source.key, copied.etag)
            raise CopyFailed(f"the copy on {self.target.name} is not what was sent")

    async def remove(self, bucket: str, key: str, etag: str) -> None:
        """The copy off the target, if it is still there unchanged (no one else's write)."""
        await delete_if_match(self.client, self.target, bucket, key, etag)

    def _written(self, status: int, answer: bytes, etag: str | None) -> str:
        code = error_code(answer) or ""
        if status in _CHANGED and _CHANGED[status] in ("", code):
            where = "the primary" if self.target.index == 0 else self.target.name
            raise Abandoned(f"the key was written on {where} meanwhile")
        if status != 200 or not etag:
            raise CopyFailed(f"{self.target.name} answered {status} {code}".strip(), code)
        return etag


async def _drawn(pieces: AsyncIterator[bytes], done: asyncio.Event) -> AsyncIterator[bytes]:
    """`pieces`, and `done` set once the last of them has been taken."""
    async for piece in pieces:
        yield piece
    done.set()
