"""What a repair does to make a replica's key equal the primary's: a decision with no I/O.

A repair job (`repair`) looks at the key on both sides (a HEAD each) and asks `plan`, which
answers from those two looks alone:

| primary | replica | action |
|---|---|---|
| absent | absent | done |
| absent | a copy the proxy made (marked), or any copy for a delete | delete it, If-Match its ETag |
| absent | the replica's own (unmarked: from before it was a replica) | keep it |
| present | absent | copy, landing with If-None-Match: * |
| present | another object, or the same bytes described otherwise | copy, If-Match its ETag |
| present | the same (ETag, or its source ETag), tag counts differ or a tags job | copy the tags |
| present | the same | done |

"The same" is the primary's ETag, or a copy that names it as its source
(x-amz-meta-s3multi-source-etag). Every write to the replica is conditional on the replica state
it was planned against: a copy planned against an older state never lands over a newer one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from addon.namespace.object_meta import REPLICA_MARK, SOURCE_ETAG, described
from addon.s3.etags import same_etag

# What a job is about (its `op`, as the outbox records it).
OBJECT = "object"  # the key's object: written, copied, or gone
DELETE = "delete"  # the key was deleted through the proxy: any copy of it goes from the replica
TAGS = "tags"  # the key's tags
BUCKET = "bucket"  # the bucket: created
OPS = (OBJECT, DELETE, TAGS, BUCKET)

ABSENT = (("if-none-match", "*"),)
_OURS = (SOURCE_ETAG, REPLICA_MARK)  # what a copy carries that the original does not


@dataclass(frozen=True)
class Head:
    """What a HEAD of the key says, as far as a repair needs it."""

    etag: str
    size: int
    source_etag: str | None = None  # the ETag of the object it was copied from
    marked: bool = False  # a copy the proxy made on a replica
    described: tuple[tuple[str, str], ...] = ()  # content headers, user metadata (not ours)
    tag_count: int = 0

    @classmethod
    def of(cls, headers: Iterable[tuple[str, str]]) -> Head:
        pairs = [(k.lower(), v) for k, v in headers]
        lookup = dict(pairs)
        length, count = lookup.get("content-length", "0"), lookup.get("x-amz-tagging-count", "0")
        return cls(
            lookup.get("etag", ""),
            int(length) if length.isdigit() else 0,
            lookup.get(SOURCE_ETAG),
            REPLICA_MARK in lookup,
            tuple(sorted((k, v) for k, v in described(pairs) if k not in _OURS)),
            int(count) if count.isdigit() else 0,
        )

    def copy_of(self, primary: Head) -> bool:
        """Whether this (a replica's) is the primary's object: its ETag, or its copy."""
        return same_etag(self.etag, primary.etag) or same_etag(self.source_etag, primary.etag)


@dataclass(frozen=True)
class Done:
    why: str  # "equal", "absent", "kept" (the replica's own)


@dataclass(frozen=True)
class Copy:
    """Copy the primary's object, landing under `condition` (the replica state planned on)."""

    condition: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Delete:
    etag: str  # the replica's copy's: If-Match


@dataclass(frozen=True)
class CopyTags:
    pass


Action = Done | Copy | Delete | CopyTags


def landing_on(replica: Head | None) -> tuple[tuple[str, str], ...]:
    """The condition a write to the replica carries, planned against its state `replica`: it
    lands only if no other write came between (412 otherwise)."""
    return ABSENT if replica is None else (("if-match", replica.etag),)


def plan(op: str, primary: Head | None, replica: Head | None) -> Action:
    """The action that makes the replica's key what the primary's is (see the table above)."""
    if primary is None:
        if replica is None:
            return Done("absent")
        if op == DELETE or replica.marked or replica.source_etag is not None:
            return Delete(replica.etag)
        return Done("kept")
    if replica is None or not replica.copy_of(primary) or replica.described != primary.described:
        return Copy(landing_on(replica))
    if op == TAGS or replica.tag_count != primary.tag_count:
        return CopyTags()
    return Done("equal")
