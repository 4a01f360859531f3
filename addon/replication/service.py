"""One proxy process's replication, whole: the replicas' job queues (`replicator`), the outbox
writer (`outbox`), the background work per replica (`upkeep`: leases, outbox drains,
reconciliation), started with the addon and stopped by its SIGTERM drain.

Built by the gateway's setup when the config has replicas (`Config.replicas`); the gateway's
rules give its queues to the after-steps of client writes (`replica_writes`), and the proxy's
own writes to the primary (copies on read, bucket adoption, ...) reach it through `own_write`.
Everything runs on the proxy's event loop and never blocks it: every request is the proxy's
own asynchronous client's (`addon.upstream.backend_client`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

from addon.config.settings import Backend, Config
from addon.replication.lease import Lease
from addon.replication.liveness import Liveness
from addon.replication.meta_store import MetaStore
from addon.replication.outbox import Outbox
from addon.replication.reconcile import Reconciler
from addon.replication.repair import Job
from addon.replication.replicator import Observer, ReplicaJobs, Unobserved
from addon.replication.sides import BackendSides
from addon.replication.upkeep import Upkeep
from addon.s3.errors import S3Error
from addon.upstream.backend_client import BackendClient, BackendError

log = logging.getLogger(__name__)
STATE_EVERY = 2.0  # seconds between two reports of pending and lag to the observer
FLUSH_WAIT = 5.0  # seconds a stop waits at most for the outbox to take what is left


def instance_name() -> str:
    """This process, for record names and diagnostics: host, pid, start time in ms."""
    return f"{socket.gethostname()}-{os.getpid()}-{int(time.time() * 1000)}"


class Replication:
    def __init__(
        self, config: Config, client: BackendClient, observer: Observer | None = None
    ) -> None:
        self.primary: Backend = config.backends[0]
        self.observer = observer or Unobserved()
        self.instance = instance_name()
        store = MetaStore(client, self.primary)
        self.outbox = Outbox(store, self.instance)
        self.jobs: dict[str, ReplicaJobs] = {}
        self.upkeeps: dict[str, Upkeep] = {}
        for replica in config.replicas:
            sides = BackendSides(client, self.primary, replica)
            jobs = ReplicaJobs(sides, Liveness(client, replica), self.outbox, self.observer)
            reconciler = Reconciler(jobs)
            self.jobs[replica.name] = jobs
            self.upkeeps[replica.name] = Upkeep(
                jobs,
                self.outbox,
                Lease(store, replica.name, self.instance),
                config.reconcile_interval,
                reconciler.run,
            )
        self._reporting: asyncio.Task | None = None

    def own_write(self, what: str, bucket: str, key: str) -> None:
        """The proxy wrote this to the primary itself (`addon.namespace.own_writes`): a job for
        every replica, sync ones included (no client waits for it)."""
        for jobs in self.jobs.values():
            jobs.put(Job(what, bucket, key))

    def start(self) -> None:
        """The background work, on the running event loop (once)."""
        if self._reporting is not None:
            return
        for upkeep in self.upkeeps.values():
            upkeep.start()
        self._reporting = asyncio.ensure_future(self._report())
        names = ", ".join(f"{j.replica.name} ({j.replica.replicate})" for j in self.jobs.values())
        log.info("replication: %s -> %s (instance %s)", self.primary.name, names, self.instance)

    async def _report(self) -> None:
        while True:
            for name, upkeep in self.upkeeps.items():
                self.observer.state(name, self.pending(name), upkeep.lag(), upkeep.jobs.liveness.up)
            await asyncio.sleep(STATE_EVERY)

    def pending(self, name: str) -> int:
        """What this process knows is still to do for a replica: its jobs, its misses not yet
        written, and for the lease holder the outbox's entries."""
        upkeep = self.upkeeps[name]
        waiting = upkeep.jobs.pending + self.outbox.unwritten_for(name)
        return waiting + (upkeep.outbox_entries if upkeep.lease.held else 0)

    async def empty(self, replica: str) -> bool:
        """Nothing is pending for `replica` (the certificates' `Backlog`): no job of this
        process, no miss unwritten, no batch in the outbox (every process's misses)."""
        upkeep = self.upkeeps.get(replica)
        if upkeep is None or upkeep.jobs.pending or self.outbox.unwritten_for(replica):
            return False
        try:
            names, _ = await self.outbox.batches(replica, most=1)
        except (BackendError, S3Error):
            return False
        return not names

    def status(self) -> dict[str, dict[str, object]]:
        """Per replica, what readiness shows."""
        return {
            name: {
                "mode": upkeep.jobs.replica.replicate,
                "up": upkeep.jobs.liveness.up,
                "pending": self.pending(name) + (0 if upkeep.lease.held else upkeep.outbox_entries),
                "lag_seconds": round(upkeep.lag(), 1),
                "behind": upkeep.behind,
            }
            for name, upkeep in self.upkeeps.items()
        }

    async def stop(self, seconds: float) -> int:
        """Stop: the jobs running waited for (`seconds` at most), the rest written to the
        outbox, the leases given back. How many jobs went to the outbox."""
        deadline = time.monotonic() + seconds
        if self._reporting is not None:
            self._reporting.cancel()
        for upkeep in self.upkeeps.values():
            await upkeep.stop()
        left = 0
        for jobs in self.jobs.values():
            left += await jobs.drain(max(0.0, deadline - time.monotonic()))
            jobs.liveness.close()
        try:
            async with asyncio.timeout(max(FLUSH_WAIT, deadline - time.monotonic())):
                while not await self.outbox.flush():
                    await asyncio.sleep(0.5)
        except TimeoutError:
            log.warning(
                "replication: %d misses could not be written to the outbox before stopping; "
                "the next reconciliation finds them",
                self.outbox.unwritten,
            )
        self.outbox.close()
        return left
