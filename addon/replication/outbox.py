"""The outbox: what a replica missed, kept durably in the primary's metaBucket until repaired.

A miss (the replica was down, slow, answered an error, or a job kept failing) is an `Entry`:
"this key of this replica may differ from the primary". The repair reads the primary's state
when it runs (`repair.make_equal`), so an entry needs no version and repairing it twice is
harmless. Entries are written in immutable batches, one object per flush, never rewritten:

    replication/outbox/<replica>/<yyyymmddTHHMMSS.fffZ>-<instance>-<seq>-<count>.json
    {"v": 1, "replica": "dr", "by": "<instance>", "at": "2026-12-07T18:20:01.123Z",
     "entries": [{"op": "object", "bucket": "photos", "key": "a.jpg", "why": "timeout"}, ...]}

Names sort by time, so the oldest batch lists first, and carry their entry count, so a listing
says how much is pending without reading a batch. Only the replica's lease holder drains a
replica's outbox (`service`): it repairs a batch's entries, writes those still failing to a new
batch, then removes the old one; a holder killed mid-batch leaves it for the next.

Writing is a group commit: entries collect, and a flush writes them all at once, at the latest
FLUSH_AFTER seconds after the first, at once when someone waits for them to be durable (a sync
write or a delete, before its client hears; concurrent waiters share one flush), or at
BATCH_MOST entries. A replica that is down costs one PUT per flush, not one per write. If the
flush fails, the entries stay in memory and are tried again; the waiters are told (the client
still gets its answer: the primary decided).
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

from addon.replication.meta_store import PREFIX, MetaStore
from addon.replication.plan import OPS
from addon.upstream.backend_client import BackendError

log = logging.getLogger(__name__)
OUTBOX = PREFIX + "outbox/"
FLUSH_AFTER = 0.2  # seconds an entry waits for others to share its batch
BATCH_MOST = 1000
_RETRY_PAUSES = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)  # after a failed flush; the last one repeats


@dataclass(frozen=True)
class Entry:
    op: str  # plan.OPS
    bucket: str
    key: str = ""
    why: str = ""  # for diagnostics: what failed


def stamp(at: float) -> str:
    """A batch name's time: UTC, milliseconds, sorting as it reads."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}Z"


def batch_time(name: str) -> float | None:
    """When a batch was written, from its name (None: not a batch's name)."""
    base = name.rpartition("/")[2]
    try:
        whole = time.strptime(base[:15], "%Y%m%dT%H%M%S")
        return calendar.timegm(whole) + int(base[16:19]) / 1000
    except ValueError:
        return None


def batch_count(name: str) -> int:
    """How many entries a batch holds, from its name."""
    count = name.rpartition("-")[2].removesuffix(".json")
    return int(count) if count.isdigit() else 0


class Outbox:
    """One process's writer of batches, and the reader the lease holder drains with."""

    def __init__(self, store: MetaStore, instance: str) -> None:
        self.store = store
        self.instance = instance
        self._seq = itertools.count(1)
        self._pending: dict[str, list[Entry]] = {}
        self._waiters: list[asyncio.Future[bool]] = []
        self._wake = asyncio.Event()  # something to write
        self._hurry = asyncio.Event()  # ... now: someone waits
        self._urgent = False
        self._task: asyncio.Task | None = None
        self._failures = 0
        # Told each replica's name a miss is added for (its in-sync certificate is revoked).
        self.listeners: list[Callable[[str], None]] = []

    @property
    def unwritten(self) -> int:
        return sum(len(entries) for entries in self._pending.values())

    def unwritten_for(self, replica: str) -> int:
        return len(self._pending.get(replica, ()))

    def add(
        self, replica: str, entries: Iterable[Entry], urgent: bool = False
    ) -> asyncio.Future[bool]:
        """Entries to write; the future is True once they are durable, False if that failed
        (they stay and are tried again). `urgent`: someone waits, flush now."""
        self._pending.setdefault(replica, []).extend(entries)
        for listener in self.listeners:
            listener(replica)
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._urgent = self._urgent or urgent or self.unwritten >= BATCH_MOST
        self._wake.set()
        if self._urgent:
            self._hurry.set()
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._flusher())
        return waiter

    async def record(self, replica: str, entries: Iterable[Entry], timeout: float) -> bool:
        """Write now and wait, `timeout` seconds at most: whether they are durable."""
        waiter = self.add(replica, entries, urgent=True)
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            return False

    async def _flusher(self) -> None:
        while True:
            await self._wake.wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._hurry.wait(), FLUSH_AFTER)
            self._wake.clear()
            self._hurry.clear()
            self._urgent = False
            if await self.flush():
                self._failures = 0
                continue
            pause = _RETRY_PAUSES[min(self._failures, len(_RETRY_PAUSES) - 1)]
            self._failures += 1
            await asyncio.sleep(pause)
            self._wake.set()

    async def flush(self) -> bool:
        """Write every pending entry; whether all are durable now."""
        pending, waiters = self._pending, self._waiters
        self._pending, self._waiters = {}, []
        failed: dict[str, list[Entry]] = {}
        for replica, entries in pending.items():
            for start in range(0, len(entries), BATCH_MOST):
                chunk = entries[start : start + BATCH_MOST]
                if not await self._write(replica, chunk):
                    failed.setdefault(replica, []).extend(chunk)
        for replica, entries in failed.items():  # before what came meanwhile: order is kept
            self._pending[replica] = entries + self._pending.get(replica, [])
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(not failed)
        return not failed

    async def _write(self, replica: str, entries: list[Entry]) -> bool:
        at = time.time()
        name = (
            f"{OUTBOX}{replica}/{stamp(at)}-{self.instance}-{next(self._seq)}-{len(entries)}.json"
        )
        document = {
            "v": 1,
            "replica": replica,
            "by": self.instance,
            "at": stamp(at),
            "entries": [asdict(e) for e in entries],
        }
        try:
            answer = await self.store.put(name, json.dumps(document).encode())
            if answer.status == 200:
                if self._failures:
                    log.info("replication: the outbox of %s is written again", replica)
                return True
            problem = f"{self.store.primary.name} answered {answer.status} {answer.code}"
        except BackendError as e:
            problem = str(e)
        if not self._failures:
            log.warning(
                "replication: %d misses of %s not written to the outbox (%s); kept in memory "
                "and tried again",
                len(entries),
                replica,
                problem,
            )
        return False

    # --- the lease holder's side -----------------------------------------------------------------

    async def batches(self, replica: str, most: int = 1000) -> tuple[list[str], bool]:
        """The replica's batches, oldest first; whether there are more."""
        return await self.store.names(f"{OUTBOX}{replica}/", most)

    async def read(self, name: str) -> list[Entry] | None:
        """A batch's entries (None: gone since it was listed)."""
        answer = await self.store.get(name)
        if answer.status == 404:
            return None
        if answer.status != 200:
            raise BackendError(f"{self.store.primary.name} answered {answer.status} to {name}")
        try:
            raw = json.loads(answer.body)["entries"]
            entries = [Entry(str(e["op"]), str(e["bucket"]), str(e.get("key", ""))) for e in raw]
        except (ValueError, KeyError, TypeError):
            log.error("replication: %s is unreadable; left as it is", name)
            raise BackendError(f"unreadable outbox batch {name}") from None
        return [e for e in entries if e.op in OPS]

    async def remove(self, name: str) -> None:
        answer = await self.store.delete(name)
        if answer.status not in (200, 204, 404):
            raise BackendError(f"{self.store.primary.name} answered {answer.status} to a DELETE")

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
