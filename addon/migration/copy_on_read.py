"""Copy-on-read: a full GET that a `migrate: on-read` fallback serves is also written to the
primary, from the same bytes as they go to the client (a tee), through `copier`.

Which reads: GetObject without Range, partNumber, versionId, SSE-C or response-* overrides
(those change what the answer says about the object), answered 200 by such a fallback. HEAD
never: it has no bytes to copy.

The client never waits for the copy: the answer's stream callable (`Exchange.relay`) hands each
piece to a bounded tee (PIPE_BUDGET bytes waiting at most) and returns at once; the copy runs as
a task of its own on the proxy's event loop. If the primary falls behind (the tee is full: a
client reading faster than the primary writes), the copy takes the bytes queued, then reads the
rest from the fallback itself (a ranged GET, If-Match the ETag: the same object), once the
client has its bytes (at most REST_WAIT seconds later: the primary is kept waiting meanwhile):
reading both at once would double the bytes this process moves while the client waits, and
halve the client's speed on a busy machine. If the primary
fails, or the client's transfer does not complete before that, the copy is dropped (a multipart
upload aborted) and logged; the client's transfer goes on untouched. At most MAX_COPIES run at
once in a process; a read beyond that is served without one (the next read of the key copies
it). A drain (SIGTERM) waits for the copies running (`CopyTasks.wait`), and cuts short those
still running at its timeout, aborting their multipart uploads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from mitmproxy import http

from addon.migration.copier import Migrator
from addon.migration.source import MIB, Abandoned, CopyFailed, Source
from addon.s3 import sigv4
from addon.s3.log_text import printable
from addon.upstream.journey import Journey

log = logging.getLogger(__name__)
PIPE_BUDGET = 8 * MIB
# Seconds a copy that fell behind waits for the client's transfer to end before reading the
# rest; under the time S3 servers let a request body pause (AWS: about 20 s).
REST_WAIT = 10.0
MAX_COPIES = 8
ABORT_WAIT = 5.0  # seconds for copies cut short to abort their multipart uploads
_SSE_C = "x-amz-server-side-encryption-customer-algorithm"
_NOT_WHOLE = frozenset({"partNumber", "versionId"})


class Dropped(CopyFailed):
    """The tee stopped: the client's transfer did not complete, or the rest could not be read."""


class Tee:
    """The bytes of one answer on their way to its copy: queued up to a budget, never blocking
    the one who feeds them (mitmproxy's stream callable)."""

    def __init__(self, source: Source, budget: int = PIPE_BUDGET) -> None:
        self.source = source
        self.budget = budget
        self._chunks: deque[bytes] = deque()
        self._queued = 0
        self._ready = asyncio.Event()
        self.ended = False  # every byte was fed
        self._over = asyncio.Event()  # set: the client's transfer is over, or the tee stopped
        self.behind = False  # the budget was full: the bytes after those queued come otherwise
        self.stopped = ""  # why no more bytes are taken (dropped, or the copy is over)

    def feed(self, data: bytes) -> None:
        """A piece of the answer; b"" at its end."""
        if self.ended or self.stopped:
            return
        if not data:
            self.ended = True
            self._over.set()
        elif self.behind:
            return
        elif self._queued + len(data) > self.budget:
            self.behind = True  # no more taken; those queued still go
        else:
            self._chunks.append(data)
            self._queued += len(data)
        self._ready.set()

    def delivered(self, response: http.Response) -> None:
        """The answer has gone to the client: an answer passed whole is fed now."""
        if not callable(response.stream):
            self.feed(response.raw_content or b"")
            self.feed(b"")

    def stop(self, why: str) -> None:
        """No more bytes are taken, and those waiting are let go."""
        if not self.stopped:
            self.stopped = why
            self._chunks.clear()
            self._queued = 0
            self._ready.set()
            self._over.set()

    def cut(self) -> None:
        """The client's transfer is over: if not every byte came (nor will from elsewhere),
        the copy is dropped."""
        if not self.ended and not self.behind:
            self.stop("the answer did not come whole")
        self._over.set()

    async def _client_done(self, most: float) -> None:
        """Until the client's transfer is over, `most` seconds at most."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._over.wait(), most)
        if self.stopped:
            raise Dropped(self.stopped)

    async def pieces(
        self, idle: float, rest: Callable[[int], AsyncIterator[bytes]]
    ) -> AsyncIterator[bytes]:
        """The bytes as they are fed, then, if the budget was full, `rest(offset)`: those from
        the first that was not taken on. Dropped when the tee is stopped first, or nothing
        comes for `idle` seconds."""
        taken = 0
        while True:
            while self._chunks and not self.stopped:
                chunk = self._chunks.popleft()
                self._queued -= len(chunk)
                taken += len(chunk)
                yield chunk
            if self.stopped:
                raise Dropped(self.stopped)
            if self.behind:  # first: the client's end (`ended`) does not end these pieces
                await self._client_done(REST_WAIT)
                async for piece in rest(taken):
                    yield piece
                return
            if self.ended:
                return
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), idle)
            except TimeoutError:
                raise Dropped(f"no bytes for {idle:g}s") from None


class CopyTasks:
    """Every copy on read running in this process, across reloads (each builds a ReadCopier
    of its own): at most MAX_COPIES at once, and waited for by a drain."""

    def __init__(self) -> None:
        self.running: set[asyncio.Task] = set()

    def start(self, copy: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(copy)
        self.running.add(task)
        task.add_done_callback(self.running.discard)

    @property
    def full(self) -> bool:
        return len(self.running) >= MAX_COPIES

    async def wait(self, seconds: float) -> int:
        """Until every copy running has ended, `seconds` at most; those still running then are
        cancelled (their uploads aborted, ABORT_WAIT seconds at most). How many were cut short."""
        if not self.running:
            return 0
        _, left = await asyncio.wait(set(self.running), timeout=seconds)
        for task in left:
            task.cancel()
        if left:
            await asyncio.wait(left, timeout=ABORT_WAIT)
        return len(left)


@dataclass
class ReadCopier:
    """The proxy's copies on read: which reads may copy, and how a copy runs."""

    migrator: Migrator
    tasks: CopyTasks

    def for_read(
        self,
        operation: str,
        method: str,
        bucket: str | None,
        key: str | None,
        headers: http.Headers,
        query: Sequence[tuple[str, str]],
    ) -> CopyableRead | None:
        """A CopyableRead for a read whose answer, if a fallback serves it, is the whole
        object as stored."""
        if operation != "GetObject" or method != "GET" or bucket is None or key is None:
            return None
        if "range" in headers or _SSE_C in headers:
            return None
        names = {name for name, _ in query}
        if names & _NOT_WHOLE or any(name.startswith("response-") for name in names):
            return None
        return CopyableRead(self, bucket, key)

    async def run(self, tee: Tee, create_bucket_first: bool) -> None:
        source = tee.source
        where = printable(source.where)
        started = time.monotonic()
        try:
            pieces = tee.pieces(source.backend.idle_timeout, partial(self._rest, source))
            await self.migrator.copy(source, pieces, create_bucket_first)
        except Abandoned as e:
            log.info("copy-on-read of %s from %s abandoned: %s", where, source.backend.name, e)
        except CopyFailed as e:
            log.warning("copy-on-read of %s from %s dropped: %s", where, source.backend.name, e)
        except asyncio.CancelledError:
            log.warning(
                "copy-on-read of %s from %s cut short: the proxy stops", where, source.backend.name
            )
            raise
        else:
            ms = (time.monotonic() - started) * 1000
            log.info(
                "copy-on-read: %s copied from %s to %s (%d bytes, %.0f ms)",
                where,
                source.backend.name,
                self.migrator.primary.name,
                source.size,
                ms,
            )
        finally:
            tee.stop("the copy is over")

    async def _rest(self, source: Source, offset: int) -> AsyncIterator[bytes]:
        """The object's bytes from `offset` on, read from its fallback (If-Match: the same
        object, or the copy fails)."""
        log.info(
            "copy-on-read of %s: the primary fell behind the client (%d MiB waiting); the rest "
            "is read from %s",
            printable(source.where),
            PIPE_BUDGET // MIB,
            source.backend.name,
        )
        headers = [("range", f"bytes={offset}-"), ("if-match", source.etag)]
        path = sigv4.key_path(source.key)
        client = self.migrator.client
        async with client.request(
            source.backend, "GET", source.bucket, path, headers=headers
        ) as reply:
            if reply.status != 206:
                raise Dropped(f"{source.backend.name} answered {reply.status} to the rest's GET")
            async for piece in reply.pieces():
                yield piece


@dataclass
class CopyableRead:
    """One read that may be copied (an `exchange.Taps`): started once the answer is known to
    come from a `migrate: on-read` fallback, whole."""

    copier: ReadCopier
    bucket: str
    key: str

    def tap(self, journey: Journey, response: http.Response) -> Tee | None:
        attempt = journey.current
        if attempt.candidate == 0 or attempt.backend.migrate != "on-read" or journey.cause:
            return None  # (in failover, the primary cannot take a copy)
        if response.status_code != 200 or "content-range" in response.headers:
            return None
        pairs = response.headers.items(multi=True)
        source = Source.of(attempt.backend, self.bucket, self.key, pairs)
        if source is None:
            return None
        tasks = self.copier.tasks
        if tasks.full:
            where = printable(source.where)
            log.info("copy-on-read of %s skipped: %d copies running", where, len(tasks.running))
            return None
        tee = Tee(source)
        create_bucket_first = journey.miss_codes[:1] == ["NoSuchBucket"]
        tasks.start(self.copier.run(tee, create_bucket_first))
        return tee
