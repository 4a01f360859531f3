"""Copies of a fallback's object onto the primary that never win against a client.

Both ways of migrating write through here: copy-on-read (`copy_on_read`: the bytes a client is
reading from a fallback, teed) and the drain (`drain`, `s3-multi migrate`: the bytes of
a GET of its own). The object is streamed by `object_copy` in bounded memory at any size: one
PUT, or from MULTIPART_FROM on a multipart upload in parts of at least PART_SIZE.

- **Conditional.** The write that makes the object appear (the PUT, or CompleteMultipartUpload)
  says `If-None-Match: *`: a key written meanwhile stays the client's (412, the copy is dropped).
  Just before it (the last bytes of a PUT are held back until then), the copy looks again: a HEAD
  of the key on the primary, for a primary that ignores If-None-Match (a window of one round trip
  there), and the key's tombstone: a key deleted meanwhile is not brought back.
- **A delete racing the copy.** After it landed the copy reads the key's tombstone once more and
  removes itself if a delete hid its source meanwhile; the delete does the converse
  (`tombstones.bury`), so whichever comes second sees the other.
- **Verified** (`object_copy`). The bytes are counted against the source's length and, when
  the source's ETag is an MD5 (a single-part upload's), hashed against it; until then the last
  step is not taken. The primary's answer must carry the ETag of what was sent; a primary whose
  ETags are something else is read back and hashed instead.
- **Described.** Content headers, user metadata and tags go with it, and the source's ETag as
  x-amz-meta-s3multi-source-etag, by which a drain tells a copy that is current.
- **Heard of.** A copy that landed is told to `landed` (replication brings the replicas up to
  date with it, `addon.namespace.own_writes`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from addon.config.settings import Backend
from addon.migration.object_copy import ObjectCopy
from addon.migration.source import MIB, Abandoned, Copied, CopyFailed, Source, part_sizes
from addon.namespace.adoption import create_bucket
from addon.namespace.hiding import Hides, hidden
from addon.namespace.object_meta import SOURCE_ETAG, tagging_header, tags_of
from addon.namespace.own_writes import OBJECT, OwnWrite, nobody
from addon.namespace.tombstones import TombstoneError, Tombstones
from addon.s3 import sigv4
from addon.s3.errors import S3Error
from addon.upstream.backend_client import BackendClient, BackendError

MULTIPART_FROM = 64 * MIB  # a smaller object goes in one PUT
_FREE = (("if-none-match", "*"),)  # a copy lands where the key is free only


@dataclass
class Migrator:
    """Writes copies to the primary; one per proxy or drain (its client's event loop)."""

    client: BackendClient
    primary: Backend
    tombstones: Tombstones | None = None
    landed: OwnWrite = field(default=nobody)  # told of each copy that landed

    def __post_init__(self) -> None:
        self.writer = ObjectCopy(self.client, self.primary)

    async def copy(
        self, source: Source, pieces: AsyncIterator[bytes], create_bucket_first: bool = False
    ) -> Copied:
        """Copy `source`, whose bytes are `pieces`, to the primary. Raises Abandoned when it
        must not land, CopyFailed when it cannot; nothing of it stays on the primary then."""
        try:
            if create_bucket_first:
                await create_bucket(self.client, self.primary, source.bucket)
            headers = await self._headers(source)
            copied = await self.writer.land(
                source,
                pieces,
                headers,
                _FREE,
                layout(source.size),
                lambda: self._may_land(source),
            )
            await self._still_wanted(source, copied)
        except (BackendError, S3Error, TombstoneError, ValueError) as e:
            raise CopyFailed(str(e)) from None
        self.landed(OBJECT, source.bucket, source.key)
        return copied

    async def _headers(self, source: Source) -> list[tuple[str, str]]:
        tags = []
        if source.tag_count:
            tags = await tags_of(self.client, source.backend, source.bucket, source.key)
        kept = [(k, v) for k, v in source.described if k != SOURCE_ETAG]
        return [*kept, (SOURCE_ETAG, source.etag.strip('"')), *tagging_header(tags)]

    async def _may_land(self, source: Source) -> None:
        """Just before the copy appears (every byte checked): the key still free and not
        deleted meanwhile."""
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
        return deleted(await self.tombstones.hides(source.bucket, source.key), source)

    async def _still_wanted(self, source: Source, copied: Copied) -> None:
        """A delete that came while the copy landed: the copy goes (see tombstones)."""
        if await self._hidden(source):
            await self.remove(source, copied)
            raise Abandoned("the key was deleted while the copy landed")

    async def remove(self, source: Source, copied: Copied) -> None:
        """The copy off the primary, if it is still there unchanged (not a client's write)."""
        await self.writer.remove(source.bucket, source.key, copied.etag)


def deleted(hides: Hides | None, source: Source) -> bool:
    """Whether the key's tombstone (what it hides, read afresh) hides the very copy being copied:
    a delete through the proxy came, and the copy must not land or stay (`hiding`)."""
    return hidden(hides, source.backend.name, source.etag)


def layout(size: int) -> Sequence[int] | None:
    """How the migration cuts a copy: one PUT below MULTIPART_FROM, else parts of PART_SIZE."""
    return None if size < MULTIPART_FROM else part_sizes(size)
