"""What `--repair` does about a difference, by the same code the proxy uses for it, so a repair
is as safe while the proxy serves as the proxy's own work and never the wrong way round:

- a replica's key (missing, behind, a copy of a deleted key) and a bucket a replica lacks: the
  replication's repair job (`ReplicaRepair`: it reads the primary's current state, writes
  the replica conditionally and looks at the primary again afterwards);
- a prunable tombstone: `Tombstones.forget`, If-Match the ETag that was listed, so a tombstone
  written since stays (once the primary is seen to honour the condition, as `s3-multi
  tombstones --prune` makes sure);
- with `--migrate`, a key the primary lacks: the drain's copy of one object (`Drain.one`), which
  reads the primary and the tombstone again and lands with If-None-Match.

What the primary lacks is otherwise left to `s3-multi migrate`; a fallback is never written.
A repair acts on the state it finds, so a second run after an interrupted one does what is left.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from addon.check.differences import (
    COPY,
    CREATE,
    DELETE,
    MIGRATE,
    PRUNE,
    TOMBSTONED,
    Difference,
)
from addon.check.sides import Sides, tombstone_prefix
from addon.config.settings import Backend
from addon.namespace.tombstones import Tombstones
from addon.replication.plan import BUCKET as BUCKET_JOB
from addon.replication.plan import DELETE as DELETE_JOB
from addon.replication.plan import OBJECT as OBJECT_JOB
from addon.upstream.backend_client import BackendClient

if TYPE_CHECKING:
    from addon.migration.drain import Drain

# The machinery of the repairs themselves (the replication's repair job, the drain's copy) is
# imported when a repair runs: a check without --repair never needs it, and it is a good part
# of the command's start-up.


class ReplicaRepair(Protocol):
    """Make `replica`'s `key` of `bucket` what the primary's is now (op "object"), remove any
    copy of a key deleted through the proxy (op "delete"), or create the bucket (op "bucket",
    key ""): the replication's repair job. Returns what it did; raises when it could not."""

    async def __call__(self, op: str, bucket: str, key: str, replica: Backend) -> str: ...


def replication_repair(client: BackendClient, primary: Backend) -> ReplicaRepair:
    """The replication's own repair job (`make_equal`), the one the proxy runs after a
    client's write, from the outbox and in reconciliation."""

    async def repair(op: str, bucket: str, key: str, replica: Backend) -> str:
        from addon.replication.repair import Job, make_equal
        from addon.replication.sides import BackendSides

        return await make_equal(BackendSides(client, primary, replica), Job(op, bucket, key))

    return repair


@dataclass
class Repairs:
    client: BackendClient
    sides: Sides
    fallbacks: tuple[Backend, ...]  # every backend after the primary, in config order
    tombstones: Tombstones | None
    replica: ReplicaRepair | None  # None: replicas' differences are reported and left
    say: Callable[[str], None]
    migrate: bool = False
    dry_run: bool = False
    _drain: Drain | None = field(default=None, init=False)
    _adopted: set[str] = field(default_factory=set, init=False)
    _honoured: asyncio.Future[None] | None = field(default=None, init=False)

    def wanted(self, difference: Difference) -> bool:
        """Whether the config says it should not be so (and `--repair` is for it): what makes
        a check exit 1. A key not migrated is the fallbacks' normal state unless --migrate."""
        repair = difference.repair
        return repair in (COPY, DELETE, PRUNE, CREATE) or (repair == MIGRATE and self.migrate)

    def can(self, difference: Difference) -> bool:
        """Whether this run can carry the repair out."""
        if not self.wanted(difference):
            return False
        if difference.repair in (COPY, DELETE, CREATE):
            return self.replica is not None
        return difference.repair != PRUNE or self.tombstones is not None

    async def act(self, bucket: str, difference: Difference) -> str:
        """Repair it (`can` says it can); what was done, for the report."""
        d = difference
        if self.dry_run:
            return f"would {_VERB[d.repair]}"
        if d.repair in (COPY, DELETE, CREATE):
            assert self.replica is not None
            op = (
                DELETE_JOB
                if d.kind == TOMBSTONED
                else BUCKET_JOB
                if d.repair == CREATE
                else OBJECT_JOB
            )
            return await self.replica(op, bucket, d.key, self._backend(d.backend))
        if d.repair == PRUNE:
            assert self.tombstones is not None
            await self._conditions()
            removed = await self.tombstones.forget(tombstone_prefix(bucket) + d.key, d.etag)
            return "pruned" if removed else "kept: written again or gone since it was listed"
        return await self._migrate(bucket, d)

    async def _migrate(self, bucket: str, d: Difference) -> str:
        from addon.migration.drain import Drain, Listed, Report
        from addon.migration.source import Abandoned
        from addon.namespace.adoption import create_bucket

        if self._drain is None:
            primary = self.sides.primary
            self._drain = Drain(
                self.client, primary, self.fallbacks, (), Report(), self.say, self.tombstones
            )
        if bucket not in self._adopted:
            await create_bucket(self.client, self.sides.primary, bucket)
            self._adopted.add(bucket)
        listed = Listed(self._backend(d.backend), bucket, d.key, d.size, d.etag)
        try:
            skipped = await self._drain.one(listed)
        except Abandoned:
            return "not copied: written or deleted meanwhile"
        if skipped:
            return f"not copied: {skipped}"
        replicas = [b for b in self.fallbacks if b.replicate != "off"]
        if self.replica is None or not replicas:
            return "copied to the primary"
        # The copy is a write of the primary's: the replicas get it as they get the proxy's.
        for replica in replicas:
            await self.replica(OBJECT_JOB, bucket, d.key, replica)
        return "copied to the primary and its replicas"

    def _conditions(self) -> asyncio.Future[None]:
        """That the primary honours DELETE If-Match, as `s3-multi tombstones --prune` makes sure
        before it prunes (else a tombstone written since could go): asked once per run."""
        from addon.namespace.tombstone_command import check_conditions

        if self._honoured is None:
            self._honoured = asyncio.ensure_future(
                check_conditions(self.client, self.sides.primary)
            )
        return self._honoured

    def _backend(self, name: str) -> Backend:
        return next(b for b in self.fallbacks if b.name == name)


_VERB = {
    COPY: "copy the primary's object",
    DELETE: "delete it",
    PRUNE: "prune it",
    MIGRATE: "copy it to the primary",
    CREATE: "create the bucket",
}
