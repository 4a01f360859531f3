"""An object being copied: what it is (`Source`), how a copy of it can fail, how it
is cut into parts, and its bytes on their way (`Tally`: counted, hashed, cut to length).

Hashing is most of what a copy costs the process: large pieces are hashed in a thread (hashlib
lets go of the GIL), so that the event loop relays the client's bytes meanwhile.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from addon.config.settings import Backend
from addon.namespace.object_meta import described
from addon.s3.etags import md5_of

MIB = 1024 * 1024
_THREAD_HASH_FROM = 64 * 1024  # fewer bytes are hashed at once: a thread costs more
_HASH_BATCH = 1024 * 1024  # pieces are hashed once this many bytes of them have gone on
PART_SIZE = 16 * MIB
_MAX_PARTS = 10_000  # S3's


class Abandoned(Exception):
    """The copy must not land: the key was written or deleted meanwhile."""


class CopyFailed(Exception):
    """The copy could not be made: the target failed, or the bytes did not check out. `code`:
    the S3 error code the target answered, if any (NoSuchBucket: create the bucket first)."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Source:
    """The object copied (a fallback's, or the primary's for a replica), as its GET answered."""

    backend: Backend
    bucket: str
    key: str
    size: int
    etag: str
    described: tuple[tuple[str, str], ...]  # content headers and user metadata
    tag_count: int

    @classmethod
    def of(
        cls, backend: Backend, bucket: str, key: str, headers: Iterable[tuple[str, str]]
    ) -> Source | None:
        """From a full GET's answer headers; None without the length or the ETag."""
        pairs = list(headers)
        lookup = {k.lower(): v for k, v in pairs}
        length, etag = lookup.get("content-length", ""), lookup.get("etag", "")
        if not length.isdigit() or not etag:
            return None
        count = lookup.get("x-amz-tagging-count", "0")
        return cls(
            backend,
            bucket,
            key,
            int(length),
            etag,
            tuple(described(pairs)),
            int(count) if count.isdigit() else 0,
        )

    @property
    def where(self) -> str:
        return f"/{self.bucket}/{self.key}"


@dataclass(frozen=True)
class Copied:
    etag: str  # the copy's, on the target
    size: int
    md5: str  # of its bytes, hex


def part_sizes(size: int) -> list[int]:
    """The parts of a multipart copy: PART_SIZE, more when 10,000 of them would not hold it."""
    part = max(PART_SIZE, -(-size // _MAX_PARTS // MIB) * MIB)
    sizes = [part] * (size // part)
    return [*sizes, size % part] if size % part else sizes


class Tally:
    """The source's bytes on their way: counted and hashed, cut into the lengths asked for."""

    def __init__(self, source: Source, pieces: AsyncIterator[bytes]) -> None:
        self.source = source
        self._pieces = pieces
        self._held = b""
        self.count = 0
        self.md5 = hashlib.md5()
        self.part_md5s: list[bytes] = []

    async def take(
        self, length: int, before_last: Callable[[], Awaitable[None]] | None = None
    ) -> AsyncIterator[bytes]:
        """The next `length` bytes as they come; `before_last` is awaited before the last
        piece goes (it may raise, and the piece never goes)."""
        part = None if length == self.source.size else hashlib.md5()  # one part: the whole's
        hashes = (self.md5,) if part is None else (self.md5, part)
        hashing: asyncio.Future[None] | None = None
        batch: list[bytes] = []  # pieces gone on, not hashed yet
        batched = 0
        remaining = length
        while remaining:
            piece = self._held or await self._next()
            piece, self._held = piece[:remaining], piece[remaining:]
            remaining -= len(piece)
            self.count += len(piece)
            batch.append(piece)
            batched += len(piece)
            if batched >= _HASH_BATCH or not remaining:
                if hashing is not None:
                    await hashing  # in order: the batch before was hashed while it went
                hashing = _hashed(hashes, batch)
                batch, batched = [], 0
            if not remaining:
                if hashing is not None:
                    await hashing
                if before_last is not None:
                    await before_last()
            yield piece
        self.part_md5s.append((part or self.md5).digest())

    async def check(self) -> None:
        """Every byte of the source came, and no more, and they are the source's."""
        more = self._held or await anext(self._pieces, b"")
        if more:
            raise CopyFailed(f"the source sent more than its {self.source.size} bytes")
        md5 = md5_of(self.source.etag)
        if md5 is not None and md5 != self.md5.hexdigest():
            raise CopyFailed("the bytes read do not hash to the source's ETag")

    async def _next(self) -> bytes:
        while True:
            piece = await anext(self._pieces, None)
            if piece is None:
                raise CopyFailed(f"the source ended after {self.count} of {self.source.size} bytes")
            if piece:
                return piece

    @property
    def etag(self) -> str:
        """The ETag S3 gives what was sent: its MD5, or for parts the MD5 of theirs, -N."""
        if len(self.part_md5s) <= 1:
            return self.md5.hexdigest()
        joined = hashlib.md5(b"".join(self.part_md5s)).hexdigest()
        return f"{joined}-{len(self.part_md5s)}"


def _hashed(
    hashes: Sequence[hashlib._Hash], pieces: Sequence[bytes]
) -> asyncio.Future[None] | None:
    """`pieces` added to each hash: a few bytes now (None), more in a thread (hashlib lets go
    of the GIL), so that the event loop relays the client's bytes meanwhile: hashing twice is
    most of what a copy costs the process. Pieces come as the client's answer is read (64 KiB at
    most, from mitmproxy) and are hashed in batches (_HASH_BATCH): one thread hop per batch."""
    if sum(map(len, pieces)) < _THREAD_HASH_FROM:
        _update(hashes, pieces)
        return None
    return asyncio.ensure_future(asyncio.to_thread(_update, hashes, pieces))


def _update(hashes: Sequence[hashlib._Hash], pieces: Sequence[bytes]) -> None:
    for h in hashes:
        for piece in pieces:
            h.update(piece)
