"""One process's repair jobs, per replica: a bounded queue, coalesced per key, JOBS_AT_ONCE
running, retried, and spilled to the outbox when they cannot be done here.

- **Coalescing.** A job already waiting is not queued twice; a job for a key whose job is running
  becomes one run more after it (the running one may have read the primary before the write
  that queued the second).
- **Bounded.** At most QUEUE_MOST jobs wait per replica; beyond that, a job goes to the outbox
  (the lease holder's drain repairs it): memory does not grow with a burst of writes.
- **Retries.** A job that fails is tried again after each of RETRY_PAUSES; a failure of the
  replica makes its `Liveness` probe it. Then, or once the replica is down, the job goes to the
  outbox. While the replica is down, every job goes straight there, and those waiting go too.
- **Sync.** `now` runs a job before the client hears (a sync replica), bounded in time; what it
  cannot do is written to the outbox before it returns (durable, if the metaBucket takes it).
- **Tees.** An async replica's tee of a PutObject (`tee`) lands after the client heard, tracked
  here (`follow`): if it does not end equal, the job runs as usual.
- **Drain.** On SIGTERM, `drain` waits for the running jobs (within its time) and writes the rest
  to the outbox.

What happens is told to an `Observer` (the metrics).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable
from typing import Protocol

from addon.config.settings import Backend
from addon.replication.liveness import Liveness
from addon.replication.outbox import Entry, Outbox
from addon.replication.repair import REPLICA, Job, SideFailed, Unsettled, make_equal
from addon.replication.sides import BackendSides
from addon.s3.log_text import printable

log = logging.getLogger(__name__)
QUEUE_MOST = 10_000
JOBS_AT_ONCE = 8
RETRY_PAUSES = (1.0, 2.0, 4.0)
DURABLE_WAIT = 5.0  # seconds a sync write waits at most for its miss to be durable
STREAMED = "streamed"  # a repair's action: the replica took the client's object from the tee


class Observer(Protocol):
    """Who counts what replication does (`addon.ops.metrics`)."""

    def repaired(self, replica: str, action: str) -> None: ...
    def failed(self, replica: str, kind: str) -> None: ...
    def missed(self, replica: str, count: int) -> None: ...
    def state(self, replica: str, pending: int, lag: float, up: bool) -> None: ...


class Unobserved:
    def repaired(self, replica: str, action: str) -> None: ...
    def failed(self, replica: str, kind: str) -> None: ...
    def missed(self, replica: str, count: int) -> None: ...
    def state(self, replica: str, pending: int, lag: float, up: bool) -> None: ...


class ReplicaJobs:
    """The jobs of one replica in this process."""

    def __init__(
        self, sides: BackendSides, liveness: Liveness, outbox: Outbox, observer: Observer
    ) -> None:
        self.sides = sides
        self.liveness = liveness
        self.outbox = outbox
        self.observer = observer
        self.waiting: OrderedDict[Job, float] = OrderedDict()  # job -> when it was queued
        self.running: dict[Job, tuple[float, bool]] = {}  # job -> (since, run again after)
        self.tasks: set[asyncio.Task] = set()
        self.landing: dict[asyncio.Task, tuple[Job, float]] = {}  # tees landing, after the client
        self.stopped = False  # drained: every job goes to the outbox
        liveness.listeners.append(self._changed)

    @property
    def replica(self) -> Backend:
        return self.sides.replica

    @property
    def pending(self) -> int:
        return len(self.waiting) + len(self.running) + len(self.landing)

    def oldest(self) -> float | None:
        """When the oldest job still to do was queued (monotonic), None without any."""
        times = [*self.waiting.values(), *(since for since, _ in self.running.values())]
        times += [since for _, since in self.landing.values()]
        return min(times) if times else None

    def put(self, job: Job, first: bool = False) -> None:
        """Queue a job (`first`: ahead of the others, a multipart object's copy)."""
        if self.stopped or not self.liveness.up:
            self.spill([job], "the proxy stopped" if self.stopped else "down")
        elif job in self.running:
            since, _ = self.running[job]
            self.running[job] = (since, True)
        elif job not in self.waiting and len(self.waiting) >= QUEUE_MOST:
            self.spill([job], "queue full")
        else:
            self.waiting.setdefault(job, time.monotonic())
            if first:
                self.waiting.move_to_end(job, last=False)
            self._start()

    def _start(self) -> None:
        while not self.stopped and len(self.tasks) < JOBS_AT_ONCE and self.waiting:
            job, since = self.waiting.popitem(last=False)
            self.running[job] = (since, False)
            task = asyncio.ensure_future(self._run(job))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _run(self, job: Job) -> None:
        try:
            for pause in (*RETRY_PAUSES, None):
                why = await self.try_once(job)
                if not why:
                    return
                if pause is None or not self.liveness.up:
                    self.spill([job], why)
                    return
                await asyncio.sleep(pause)
        finally:
            _, again = self.running.pop(job, (0.0, False))
            if again:
                self.put(job)
            self._start()

    def follow(self, job: Job, landed: Awaitable[str]) -> None:
        """A tee landing after the client heard (an async replica): `landed` says "" when the
        replica is equal by it, else why not, and the job is queued as usual."""
        task = asyncio.ensure_future(self._follow(job, landed))
        self.landing[task] = (job, time.monotonic())
        task.add_done_callback(self._landed)

    async def _follow(self, job: Job, landed: Awaitable[str]) -> None:
        try:
            async with asyncio.timeout(self.replica.response_timeout):
                why = await landed
        except TimeoutError:
            why = "timeout"
        if why:
            where = printable(f"/{job.bucket}/{job.key}")
            log.info(
                "replication: the tee of %s to %s gave way to a job: %s",
                where,
                self.replica.name,
                why,
            )
            self.put(job)
        else:
            self.observer.repaired(self.replica.name, STREAMED)

    def _landed(self, task: asyncio.Task) -> None:
        job, _ = self.landing.pop(task, (None, 0.0))
        if job is None:
            return  # drained: the job went to the outbox
        if task.cancelled():
            self.spill([job], "the proxy stopped")
        elif (error := task.exception()) is not None:  # a bug of ours: the job is run instead
            log.error("replication: a tee to %s failed", self.replica.name, exc_info=error)
            self.put(job)

    async def try_once(self, job: Job) -> str:
        """Run the job once: "" when done, else why not."""
        try:
            done = await make_equal(self.sides, job)
        except SideFailed as e:
            self.observer.failed(self.replica.name, e.kind)
            if e.side == REPLICA:
                self.liveness.suspect(str(e))
            return f"{e.kind}: {e}"
        except Unsettled as e:
            return str(e)
        except Exception as e:  # a bug of ours: said loudly, and the miss kept for later
            log.exception("replication: a job for %s failed", self.replica.name)
            return f"failed: {type(e).__name__}"
        self.observer.repaired(self.replica.name, done)
        return ""

    async def now(self, job: Job, seconds: float) -> bool:
        """Run a job before a client hears, `seconds` at most; a miss is written to the outbox
        first (urgent). Whether the replica is up to date."""
        why = "down"
        if self.liveness.up:
            try:
                async with asyncio.timeout(seconds):
                    why = await self.try_once(job)
            except TimeoutError:
                why = f"timeout: no answer within {seconds:g}s"
                self.observer.failed(self.replica.name, "timeout")
                self.liveness.suspect(why)
            if not why:
                return True
        await self.record([job], why)
        return False

    async def record(self, jobs: list[Job], why: str) -> bool:
        """Misses written to the outbox now, waited for (DURABLE_WAIT at most)."""
        self.observer.missed(self.replica.name, len(jobs))
        entries = [Entry(j.op, j.bucket, j.key, why) for j in jobs]
        return await self.outbox.record(self.replica.name, entries, DURABLE_WAIT)

    def spill(self, jobs: list[Job], why: str) -> None:
        """Jobs this process will not do: to the outbox (grouped with others)."""
        if not jobs:
            return
        self.observer.missed(self.replica.name, len(jobs))
        if len(jobs) > 1 or why not in ("down", "queue full"):
            where = printable(f"/{jobs[0].bucket}/{jobs[0].key}")
            more = f" and {len(jobs) - 1} more" if len(jobs) > 1 else ""
            log.info(
                "replication: %s%s for %s to the outbox: %s", where, more, self.replica.name, why
            )
        self.outbox.add(self.replica.name, [Entry(j.op, j.bucket, j.key, why) for j in jobs])

    def _changed(self, up: bool) -> None:
        if not up:
            waiting, self.waiting = list(self.waiting), OrderedDict()
            self.spill(waiting, "down")

    async def drain(self, seconds: float) -> int:
        """Wait for the running jobs, `seconds` at most, then cancel those left and write
        everything not done to the outbox; how many went there."""
        if self.tasks or self.landing:
            await asyncio.wait({*self.tasks, *self.landing}, timeout=seconds)
        self.stopped = True
        landing, self.landing = self.landing, {}
        left = [*self.waiting, *self.running, *(job for job, _ in landing.values())]
        self.waiting.clear()
        for task in landing:
            task.cancel()
        for task in list(self.tasks):
            task.cancel()
        self.spill(left, "the proxy stopped")
        return len(left)
