"""Reconciliation: the primary's and a replica's listings compared, bucket by bucket, and a repair
job queued for each key where they differ. The safety net under everything else: what a
process killed with jobs in memory never did, writes made around the proxy, bugs.

Run by the replica's lease holder (`upkeep`) when it takes the lease and every
reconcileInterval seconds. Every bucket of the primary (but its metaBucket) is compared with
the replica's (`compare.TwoWay`, fed as the two listings come: memory does not grow with the
keys); a bucket the replica lacks gets a bucket job first. A key that differs gets an `object`
job, which looks closer (`repair.make_equal`): a copy in another part layout is found equal by
its source ETag, a key only the replica has is deleted only if the proxy put it there.

Jobs go into the replica's queue at most JOBS_PER_SECOND, and wait while it is half full: a
reconciliation never crowds out the jobs of client writes. It stops when the replica goes down
(the next one finds what is left). Two listings that are not in the same order (a moto replica
of a SeaweedFS primary: byte order against path order) cannot be compared: that bucket is
skipped and said so.
"""

from __future__ import annotations

import asyncio
import logging
import time

from addon.migration.listed import list_objects
from addon.namespace.bucket_listing import MAX_LISTING, BucketList
from addon.replication.compare import Listed, OutOfOrder, TwoWay, byte_order, path_order
from addon.replication.plan import BUCKET, OBJECT
from addon.replication.repair import Job
from addon.replication.replicator import QUEUE_MOST, ReplicaJobs
from addon.upstream.backend_client import BackendError

log = logging.getLogger(__name__)
JOBS_PER_SECOND = 100


class Stopped(Exception):
    """The replica went down: reconciliation waits for the next one."""


class Reconciler:
    def __init__(self, jobs: ReplicaJobs) -> None:
        self.jobs = jobs
        self.queued = 0
        self.compared = 0

    async def run(self) -> None:
        replica = self.jobs.replica.name
        started = time.monotonic()
        self.queued = self.compared = 0
        try:
            buckets = await self._buckets()
            for bucket in buckets:
                await self.bucket(bucket)
        except (BackendError, ValueError, Stopped) as e:
            log.warning("replication: reconciliation of %s stopped: %s", replica, e)
            return
        log.info(
            "replication: reconciled %s: %d buckets, %d keys compared, %d jobs queued (%.1fs)",
            replica,
            len(buckets),
            self.compared,
            self.queued,
            time.monotonic() - started,
        )

    async def _buckets(self) -> list[str]:
        primary = self.jobs.sides.primary
        async with self.jobs.sides.client.request(primary, "GET", None) as reply:
            body = await reply.read(MAX_LISTING)
        if reply.status != 200:
            raise BackendError(f"{primary.name} answered {reply.status} to ListBuckets")
        found = BucketList()
        found.add(body)
        return sorted(b for b in found.buckets if b != primary.meta_bucket)

    async def bucket(self, bucket: str) -> None:
        """Compare one bucket, in byte order, else in path order (SeaweedFS)."""
        client, replica = self.jobs.sides.client, self.jobs.replica
        async with client.request(replica, "HEAD", bucket) as head:
            await head.read(0)
        if head.status == 404:
            await self._queue(Job(BUCKET, bucket))
        for order in (byte_order, path_order):
            try:
                await self._compare(bucket, TwoWay(order))
                return
            except OutOfOrder:
                continue
        log.warning(
            "replication: %s on %s and %s cannot be compared: they list in different orders",
            bucket,
            self.jobs.sides.primary.name,
            replica.name,
        )

    async def _compare(self, bucket: str, join: TwoWay) -> None:
        sides = self.jobs.sides
        listings = [
            aiter(list_objects(sides.client, sides.primary, bucket)),
            aiter(list_objects(sides.client, sides.replica, bucket)),
        ]
        while not join.finished:
            for side in join.needs():
                found = await anext(listings[side], None)
                if found is None:
                    join.add(side, [], done=True)
                else:
                    join.add(side, [Listed(found.key, found.etag, found.size)])
            for row in join.rows():
                self.compared += 1
                if row.differs:
                    await self._queue(Job(OBJECT, bucket, row.key))

    async def _queue(self, job: Job) -> None:
        """Into the replica's queue, at most JOBS_PER_SECOND, never more than half full."""
        while self.jobs.pending >= QUEUE_MOST // 2:
            await asyncio.sleep(0.1)
        if not self.jobs.liveness.up:
            raise Stopped(f"{self.jobs.replica.name} is down")
        self.jobs.put(job)
        self.queued += 1
        await asyncio.sleep(1 / JOBS_PER_SECOND)
