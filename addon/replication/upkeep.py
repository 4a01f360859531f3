"""The background work for one replica in one process, on the proxy's event loop.

Every process looks at the replica's outbox every LOOK_EVERY seconds (a listing of its batch
names: how many entries wait, how old the oldest is), for readiness and the lag metric. One
process, the holder of the replica's lease (`lease`), also does the work:

- **Drains the outbox** while the replica answers: oldest batch first, each distinct entry
  repaired (`repair.make_equal`, JOBS_AT_ONCE at a time), those still failing written to a new
  batch, then the old batch removed. A holder killed mid-batch leaves it for the next holder,
  who repairs it again (harmless).
- **Reconciles** (`reconcile`): when it takes the lease, and every reconcileInterval seconds.

So a miss lasts at most until the replica answers again plus one drain (the holder polls every
TICK seconds), and what a killed process held only in memory is found by the next holder's
reconciliation: at its start, or within reconcileInterval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from addon.replication.lease import RENEW, Lease
from addon.replication.outbox import Entry, Outbox, batch_count, batch_time
from addon.replication.repair import Job
from addon.replication.replicator import DURABLE_WAIT, JOBS_AT_ONCE, ReplicaJobs
from addon.upstream.backend_client import BackendError

log = logging.getLogger(__name__)
TICK = 2.0
LOOK_EVERY = 5.0
BEHIND_AFTER = 10.0  # seconds of lag after which readiness says the replica is behind
DRAIN_BACKOFF = 60.0


class Upkeep:
    def __init__(
        self,
        jobs: ReplicaJobs,
        outbox: Outbox,
        lease: Lease,
        reconcile_every: float,
        reconcile: Callable[[], Awaitable[None]],
    ) -> None:
        self.jobs = jobs
        self.outbox = outbox
        self.lease = lease
        self.reconcile_every = reconcile_every
        self.reconcile = reconcile
        self.batches: list[str] = []  # the outbox's batch names, at the last look
        self.looked = 0.0
        self.next_reconcile: float | None = None  # monotonic; None: at the next lease taken
        self.next_drain = 0.0  # monotonic
        self.failed_drains = 0  # drains in a row that kept entries
        self._reconciling: asyncio.Task | None = None
        self._tasks: list[asyncio.Task] = []
        self._changed = asyncio.Event()  # the replica went down or came back: look at the lease
        jobs.liveness.listeners.append(lambda up: self._changed.set())

    @property
    def name(self) -> str:
        return self.jobs.replica.name

    # --- state, for readiness and metrics -----------------------------------------------------

    @property
    def outbox_entries(self) -> int:
        return sum(batch_count(n) for n in self.batches)

    def lag(self) -> float:
        """Seconds the oldest thing to do for this replica has waited (0: nothing)."""
        ages = [0.0]
        oldest_job = self.jobs.oldest()
        if oldest_job is not None:
            ages.append(time.monotonic() - oldest_job)
        if self.batches and (at := batch_time(self.batches[0])) is not None:
            ages.append(time.time() - at)
        return max(ages)

    @property
    def behind(self) -> bool:
        return bool(self.batches) or self.outbox.unwritten > 0 or self.lag() > BEHIND_AFTER

    # --- the loops -----------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [
            asyncio.ensure_future(self._keep_lease()),
            asyncio.ensure_future(self._work()),
        ]

    async def _keep_lease(self) -> None:
        """Hold the lease while the replica answers this process: one that cannot reach it
        lets it go, for a process that can (if any) to do the work."""
        while True:
            was = self.lease.held
            if not self.jobs.liveness.up:
                await self.lease.release()
            elif await self.lease.hold() and not was:
                log.info("replication: this process now does the upkeep of %s", self.name)
                if self.reconcile_every > 0:
                    self.next_reconcile = time.monotonic()  # a holder's first reconciliation
            elif was and not self.lease.held:
                log.info("replication: the upkeep of %s went to another process", self.name)
                self._stop_reconciling()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), RENEW)
            self._changed.clear()

    async def _work(self) -> None:
        while True:
            try:
                await self._round()
            except (BackendError, ValueError) as e:
                log.warning("replication: upkeep of %s: %s", self.name, e)
            await asyncio.sleep(TICK)

    async def _round(self) -> None:
        holder = self.lease.held
        if holder or time.monotonic() - self.looked >= LOOK_EVERY:
            await self.look()
        if not holder or not self.jobs.liveness.up:
            return
        if self.batches and time.monotonic() >= self.next_drain:
            kept = await self._drain_outbox()
            # Entries that keep failing while the replica answers (an error it answers for that
            # key) are tried again less and less often, DRAIN_BACKOFF seconds at most.
            self.failed_drains = self.failed_drains + 1 if kept else 0
            pause = min(DRAIN_BACKOFF, TICK * 2**self.failed_drains) if kept else 0.0
            self.next_drain = time.monotonic() + pause
        due = self.next_reconcile
        reconciling = self._reconciling is not None and not self._reconciling.done()
        if due is not None and time.monotonic() >= due and not reconciling:
            self.next_reconcile = time.monotonic() + self.reconcile_every
            self._reconciling = asyncio.ensure_future(self.reconcile())

    async def look(self) -> None:
        self.batches, _ = await self.outbox.batches(self.name)
        self.looked = time.monotonic()

    async def _drain_outbox(self) -> int:
        """Repair the outbox's batches in order; how many entries are kept for later."""
        kept = 0
        for name in list(self.batches):
            if not (self.lease.held and self.jobs.liveness.up):
                return kept
            failed = await self._drain_batch(name)
            if failed is None:
                return kept + 1
            kept += failed
        await self.look()
        return kept

    async def _drain_batch(self, name: str) -> int | None:
        """One batch repaired, what failed written to a new batch, then the batch removed; how
        many entries failed (None: they could not be written, the batch stays)."""
        entries = await self.outbox.read(name)
        failed: dict[Job, str] = {}
        if entries is not None:
            unique = list(dict.fromkeys(Job(e.op, e.bucket, e.key) for e in entries))
            failed = await self._repair(unique)
            if failed:
                kept = [Entry(j.op, j.bucket, j.key, why) for j, why in failed.items()]
                if not await self.outbox.record(self.name, kept, DURABLE_WAIT):
                    return None  # the old batch stays: nothing is lost
            done = len(unique) - len(failed)
            log.info(
                "replication: outbox of %s: %d repaired, %d kept", self.name, done, len(failed)
            )
        await self.outbox.remove(name)
        return len(failed)

    async def _repair(self, jobs: list[Job]) -> dict[Job, str]:
        """Each job run once, JOBS_AT_ONCE at a time; those that failed, and why."""
        limit = asyncio.Semaphore(JOBS_AT_ONCE)
        failed: dict[Job, str] = {}

        async def one(job: Job) -> None:
            async with limit:
                why = await self.jobs.try_once(job) if self.jobs.liveness.up else "down"
                if why:
                    failed[job] = why

        await asyncio.gather(*(one(j) for j in jobs))
        return failed

    def _stop_reconciling(self) -> None:
        if self._reconciling is not None:
            self._reconciling.cancel()

    async def stop(self) -> None:
        """The loops stopped, the lease given back (the next holder takes over at once)."""
        self._stop_reconciling()
        for task in self._tasks:
            task.cancel()
        running = [t for t in [*self._tasks, self._reconciling] if t is not None]
        for task in running:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.lease.release()
