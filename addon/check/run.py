"""A check's run: bucket after bucket, every side's listing (`SpreadListing`: a page prefetched,
a few directories listed at once; the tombstones' `ListingStream`) fed into the merge, each row
classified as it comes. A row the listings decide costs nothing more; a row that needs a HEAD or
its tombstone's body, or that `--repair` acts on, goes to a bounded queue, where `jobs` workers
ask, classify and repair. Memory holds two pages per listing (a few listings per side) and the
queue, whatever the number of keys or differences.

A side that cannot be asked (unreachable, an error answer, a listing in another order than the
others') stops the run: `CannotCompare`, with what and where. A repair that fails is counted
and said, and the run goes on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Protocol

from addon.check.differences import Difference, Needs, bucket_differences, classify
from addon.check.repairs import Repairs
from addon.check.sides import CountingClient, Sides, Unreachable, head, listed, tombstone_prefix
from addon.migration.together import run_together
from addon.namespace.bucket_listing import MAX_LISTING, BucketList
from addon.namespace.listing_join import Merge, Need, NotSorted, OrderConflict, Row
from addon.namespace.listing_spread import SpreadListing
from addon.namespace.listing_stream import Listed, ListingStream
from addon.namespace.tombstones import TombstoneError, Tombstones
from addon.upstream.backend_client import BackendError

_YIELD_EVERY = 200  # rows between two looks at the network (a page is 1,000 keys)


class CannotCompare(Exception):
    """The comparison cannot be made (a side unreachable, listings in different orders)."""


class Output(Protocol):
    def difference(self, bucket: str, difference: Difference, outcome: str, left: bool) -> None:
        """One difference, once handled: what a repair did (or ""), and whether it is left."""

    def say(self, line: str) -> None: ...


@dataclass
class Tally:
    repair: str  # what --repair does about these (the same for one backend and kind)
    count: int = 0
    bytes: int = 0


@dataclass
class Report:
    """What the run has found and done so far (the progress line reads it as it goes)."""

    started: float = field(default_factory=time.monotonic)
    bucket: str = ""  # the one being compared
    buckets: int = 0  # compared so far
    keys: int = 0  # rows: distinct keys over every side
    found: dict[tuple[str, str, str], Tally] = field(default_factory=dict)  # bucket, backend, kind
    left: int = 0  # differences the config says should not be, not repaired
    repaired: int = 0
    failed: int = 0
    nowhere: list[str] = field(default_factory=list)  # buckets asked for that no backend has

    @property
    def differences(self) -> int:
        return sum(t.count for t in self.found.values())


@dataclass
class Run:
    client: CountingClient
    sides: Sides
    tombstones: Tombstones | None
    repairs: Repairs
    output: Output
    report: Report
    prefix: str = ""
    repair: bool = False
    jobs: int = 8
    parser: Executor | None = None  # where listing pages are parsed (other processes)

    async def run(self, buckets: Sequence[str] = ()) -> None:
        queue: asyncio.Queue[tuple[str, Row] | None] = asyncio.Queue(maxsize=self.jobs * 4)
        workers = [asyncio.ensure_future(self._work(queue)) for _ in range(self.jobs)]
        tasks = [*workers, asyncio.ensure_future(self._compare(buckets, queue))]
        await run_together(tasks)

    async def _compare(self, buckets: Sequence[str], queue: asyncio.Queue) -> None:
        for bucket in buckets or await self._buckets():
            await self._bucket(bucket, queue)
            self.report.buckets += 1
        for _ in range(self.jobs):
            await queue.put(None)  # each worker's last

    async def _buckets(self) -> list[str]:
        """Every bucket any compared backend has, but the proxy's own."""
        found = BucketList()
        for backend in self.sides.backends:
            try:
                async with self.client.request(backend, "GET", None) as reply:
                    body = await reply.read(MAX_LISTING)
            except BackendError as e:
                raise CannotCompare(f"{backend.name} ({backend.endpoint}): {e}") from None
            if reply.status != 200:
                raise CannotCompare(f"{backend.name} answered {reply.status} to ListBuckets")
            found.add(body)
        return sorted(set(found.buckets) - self.sides.own_buckets())

    async def _bucket(self, bucket: str, queue: asyncio.Queue) -> None:
        self.report.bucket = bucket
        streams: list[ListingStream | SpreadListing] = [
            SpreadListing(self.client, b, bucket, self.prefix, self.parser)
            for b in self.sides.backends
        ]
        if self.sides.layout.tombstones:
            meta, under = self.sides.primary.meta_bucket, tombstone_prefix(bucket)
            stones = ListingStream(
                self.client, self.sides.primary, meta, under + self.prefix, len(under), self.parser
            )
            streams.append(stones)
        merge = Merge(self.sides.names)
        try:
            firsts = await asyncio.gather(*(self._page(s) for s in streams))
            for side, (entries, last) in enumerate(firsts):
                merge.add(side, entries, last)
            if await self._bucket_level(bucket, [not s.missing for s in streams]):
                await self._rows(bucket, merge, streams, queue)
        except (OrderConflict, NotSorted) as e:
            raise CannotCompare(f"cannot compare {bucket}: {e}") from None
        finally:
            for stream in streams:
                stream.close()

    async def _bucket_level(self, bucket: str, has: list[bool]) -> bool:
        """The bucket's own differences (a created bucket at once); False when no backend has
        it."""
        if not any(has[: len(self.sides.backends)]):
            self.report.nowhere.append(bucket)
            return False
        for difference in bucket_differences(has, self.sides.layout):
            await self._handle(bucket, difference)
        return True

    async def _rows(
        self,
        bucket: str,
        merge: Merge,
        streams: list[ListingStream | SpreadListing],
        queue: asyncio.Queue,
    ) -> None:
        while (step := merge.next()) is not None:
            if isinstance(step, Need):
                entries, last = await self._page(streams[step.side])
                merge.add(step.side, entries, last)
                continue
            row = step
            if step.unsure:
                settled = merge.settle(await self._ask(bucket, step))
                if settled is None:
                    continue  # the merge took the other order: the next row afresh
                row = settled
            self.report.keys += 1
            if not self.report.keys % _YIELD_EVERY:
                await asyncio.sleep(0)  # the next pages come in while rows are worked on
            found = classify(row, self.sides.layout)
            if isinstance(found, Needs) or (self.repair and any(map(self.repairs.can, found))):
                await queue.put((bucket, row))
            else:
                for difference in found:
                    self._record(bucket, difference, "")

    async def _page(self, stream: ListingStream | SpreadListing) -> tuple[list[Listed], bool]:
        try:
            return await stream.next()
        except BackendError as e:
            where = f"{stream.backend.name} ({stream.backend.endpoint})"
            raise CannotCompare(
                str(e) if str(e).startswith(stream.backend.name) else f"{where}: {e}"
            ) from None

    async def _ask(self, bucket: str, row: Row) -> dict[int, Listed | None]:
        """HEADs of the sides a row is unsure of (the tombstone's, in the metaBucket)."""
        backends = self.sides.backends

        async def one(side: int) -> Listed | None:
            if side < len(backends):
                return listed(row.key, await self._head(side, bucket, row.key))
            primary = self.sides.primary
            key = tombstone_prefix(bucket) + row.key
            found = await head(self.client, primary, primary.meta_bucket, key)
            return listed(row.key, found)

        sides = sorted(row.unsure)
        return dict(zip(sides, await asyncio.gather(*map(one, sides)), strict=True))

    async def _head(self, side: int, bucket: str, key: str):  # type: ignore[no-untyped-def]
        try:
            return await head(self.client, self.sides.backends[side], bucket, key)
        except Unreachable as e:
            raise CannotCompare(str(e)) from None

    # --- the workers -----------------------------------------------------------------------------

    async def _work(self, queue: asyncio.Queue[tuple[str, Row] | None]) -> None:
        while (item := await queue.get()) is not None:
            bucket, row = item
            for difference in await self._resolve(bucket, row):
                await self._handle(bucket, difference)

    async def _resolve(self, bucket: str, row: Row) -> list[Difference]:
        """The row's differences, once what the listings could not tell is asked."""
        hides: dict[str, str] | None = None
        heads: dict = {}
        while isinstance(found := classify(row, self.sides.layout, hides, heads), Needs):
            if found.tombstone:
                hides = await self._hides(bucket, row)
            sides = sorted(found.heads)
            answers = await asyncio.gather(*(self._head(s, bucket, row.key) for s in sides))
            heads.update(zip(sides, answers, strict=True))
        return found

    async def _hides(self, bucket: str, row: Row) -> dict[str, str]:
        assert self.tombstones is not None
        tomb = row.entries[len(self.sides.backends)]
        assert tomb is not None
        try:
            return await self.tombstones.hides_of(tombstone_prefix(bucket) + row.key, tomb.etag)
        except (TombstoneError, BackendError) as e:
            raise CannotCompare(
                f"{self.sides.primary.name}'s tombstone of {row.key!r}: {e}"
            ) from None

    async def _handle(self, bucket: str, difference: Difference) -> None:
        """Repair it when asked and able, then report it."""
        outcome = ""
        if self.repair and self.repairs.can(difference):
            try:
                outcome = await self.repairs.act(bucket, difference)
            except Exception as e:  # any repair's failure is said, and the run goes on
                self.report.failed += 1
                outcome = f"failed: {e or type(e).__name__}"
            else:
                if not self.repairs.dry_run:
                    self.report.repaired += 1
        self._record(bucket, difference, outcome)

    def _record(self, bucket: str, difference: Difference, outcome: str) -> None:
        where = (bucket, difference.backend, difference.kind)
        tally = self.report.found.setdefault(where, Tally(difference.repair))
        tally.count += 1
        tally.bytes += difference.size
        repaired = bool(outcome) and not outcome.startswith(("failed", "would"))
        left = self.repairs.wanted(difference) and not repaired
        self.report.left += left
        self.output.difference(bucket, difference, outcome, left)
