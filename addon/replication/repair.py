"""The repair job: make a replica's key equal the primary's, never the wrong way round.

`make_equal` is what every path that brings a replica up to date runs: the replicator's jobs
(after a client's write), the outbox drain (after a miss), reconciliation (after a listing
comparison). It looks at both sides, acts on `plan`'s answer, and then looks at the primary
again (the post-check): if the primary changed meanwhile (another ETag, a key deleted or written
again), it runs again, up to RUNS times. Why that converges: every write to the replica is
conditional on the replica state it was planned against (a condition that fails is a run
again), and the last job to write a replica key has read the primary after every primary write
it could race with, or its post-check sees the newer one. Hence:

- a replica's older copy never overwrites a newer one (the landing condition);
- a repair never brings back a key deleted since: the delete reached the replica before its
  client heard (`replica_writes`), a copy planned before it lands only on the state it planned
  on, and the post-check removes a copy the primary no longer has. A job that cannot reach the
  primary for its post-check removes a copy it created: the replica then lags, it does not
  resurrect;
- concurrent writes to one key end with the same bytes on both sides.

The I/O is a `Sides` (`sides.BackendSides` over the backends; the tests' is in memory), so the
interleavings of jobs and client writes can be enumerated without servers.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Protocol

from addon.replication.plan import ABSENT, BUCKET, TAGS, Copy, CopyTags, Delete, Done, Head, plan

RUNS = 3  # a key still changing after that many runs goes to the outbox
PRIMARY, REPLICA = "primary", "replica"


class Conflict(Exception):
    """The replica's key is not in the state the action was planned on (a condition failed)."""


class Changed(Exception):
    """The primary's object changed while it was being copied."""


class NoBucket(Exception):
    """The replica lacks the bucket."""


class SideFailed(Exception):
    """A side could not be asked: `side` (PRIMARY, REPLICA), `kind` (unreachable, timeout,
    broken, status, differs)."""

    def __init__(self, side: str, kind: str, message: str) -> None:
        super().__init__(f"{side}: {message}")
        self.side, self.kind = side, kind


class Unsettled(Exception):
    """The key kept changing for RUNS runs, or a post-check could not be made."""


@dataclass(frozen=True)
class Job:
    """Make the replica's `key` of `bucket` what the primary's is (`op`: plan's OBJECT, DELETE,
    TAGS, or BUCKET with key "")."""

    op: str
    bucket: str
    key: str = ""


class Sides(Protocol):
    """The primary and one replica, as a repair sees them."""

    async def head(self, side: str, bucket: str, key: str) -> Head | None: ...

    async def copy(
        self, bucket: str, key: str, primary: Head, condition: tuple[tuple[str, str], ...]
    ) -> str:
        """Copy the primary's object (the one HEADed) to the replica; its ETag there. Raises
        Changed, Conflict, NoBucket or SideFailed."""
        ...

    async def delete(self, bucket: str, key: str, etag: str) -> None:
        """DELETE the replica's copy If-Match `etag`. Raises Conflict or SideFailed."""
        ...

    async def copy_tags(self, bucket: str, key: str) -> tuple[tuple[str, str], ...]:
        """The primary's tags onto the replica's copy; the tags copied."""
        ...

    async def tags(self, bucket: str, key: str) -> tuple[tuple[str, str], ...]:
        """The primary's tags now."""
        ...

    async def create_bucket(self, bucket: str) -> None: ...


async def make_equal(sides: Sides, job: Job) -> str:
    """Bring the replica's key to the primary's state; what was done last ("copied",
    "deleted", "tags", or plan's Done reasons). Raises SideFailed, Unsettled."""
    if job.op == BUCKET:
        await sides.create_bucket(job.bucket)
        return "bucket"
    for _ in range(RUNS):
        primary, replica = await asyncio.gather(
            sides.head(PRIMARY, job.bucket, job.key), sides.head(REPLICA, job.bucket, job.key)
        )
        action = plan(job.op, primary, replica)
        try:
            done = await _act(sides, job, action, primary)
        except (Conflict, Changed):
            continue
        except NoBucket:
            await sides.create_bucket(job.bucket)
            continue
        if done:
            return done
    raise Unsettled(f"still changing after {RUNS} runs")


async def _act(sides: Sides, job: Job, action: object, primary: Head | None) -> str:
    """Carry out `action`, then the post-check; "" when the primary changed meanwhile (run
    again)."""
    match action:
        case Done(why):
            return why
        case Delete(etag):
            await sides.delete(job.bucket, job.key, etag)
            after = await sides.head(PRIMARY, job.bucket, job.key)
            return "deleted" if after is None else ""
        case Copy(condition):
            assert primary is not None
            etag = await sides.copy(job.bucket, job.key, primary, condition)
            try:
                after = await sides.head(PRIMARY, job.bucket, job.key)
            except SideFailed:
                if condition == ABSENT:
                    # Not known to be the primary's any more: a lagging replica, not a key
                    # brought back.
                    with contextlib.suppress(Conflict):
                        await sides.delete(job.bucket, job.key, etag)
                raise
            return "copied" if after is not None and after.etag == primary.etag else ""
        case CopyTags():
            assert primary is not None
            copied = await sides.copy_tags(job.bucket, job.key)
            after = await sides.head(PRIMARY, job.bucket, job.key)
            if after is None or after.etag != primary.etag:
                return ""
            return TAGS if await sides.tags(job.bucket, job.key) == copied else ""
    raise AssertionError(f"no such action: {action}")
