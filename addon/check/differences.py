"""What a key's row says is wrong, no I/O: `classify` gives each difference with its meaning and
what `--repair` does about it, or what it must know first (`Needs`: the tombstone's body, a
HEAD of some copies), where the listings cannot tell.

What the config says the backends should be: a replica (`replicate: sync|async`) holds the
primary's current object of every key, and nothing the primary lacks that the proxy copied
there; a fallback holds what it holds (reads fall back to it; a key it has and the primary
lacks is served from it until migrated, unless a delete through the proxy hid that copy); a
tombstone stays while a copy it hides is still there. So:

- `not-migrated`: the primary lacks the key, and a fallback (or a replica's own copy, not
  marked as the proxy's) has one no tombstone hides: the first such, which reads serve.
  `--repair --migrate`: the migration's copy to the primary.
- `tombstoned`: the primary lacks the key, and a backend still holds a copy a delete through
  the proxy hid. `--repair`: removed from a replica; a fallback is never written.
- `tombstone-prunable`: every copy the tombstone hides is gone. `--repair`: the tombstone
  removed, If-Match its ETag.
- `replica-missing`: the primary has the key, a replica lacks it. `--repair`: copied.
- `replica-behind`: the replica's copy is another object: another size, another MD5, or (same
  size, an ETag that is no MD5) a HEAD whose ETag and source ETag are not the primary's.
  `--repair`: copied.
- `replica-extra`: the primary lacks the key, and a replica has a copy the proxy made there
  (x-amz-meta-s3multi-replica): a delete it missed. `--repair`: removed.
- `bucket-missing`: a replica lacks a bucket the primary has (its keys are then each
  `replica-missing`). `--repair`: created.
- `bucket-not-on-primary`: a backend has a bucket the primary lacks (a fallback's, not migrated
  yet; or one left on a replica by a DeleteBucket, which goes to the primary only). Reported; its
  keys are classified as any other.

A faithful copy is never reported: equal ETags (normalised: quotes, case; a multipart ETag
equal with its part count), or a copy whose x-amz-meta-s3multi-source-etag is the primary's
ETag. A fallback holding another object under a key the primary has is normal (the primary
serves it) and not reported. Whether a tombstone hides a copy is `hiding.hidden`'s to say, the
one rule every path asks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from addon.namespace.hiding import Hides, hidden
from addon.namespace.listing_join import Listed, Row
from addon.s3.etags import md5_of, same_etag

PRIMARY, FALLBACK, REPLICA = "primary", "fallback", "replica"

NOT_MIGRATED = "not-migrated"
TOMBSTONED = "tombstoned"
PRUNABLE = "tombstone-prunable"
REPLICA_MISSING = "replica-missing"
REPLICA_BEHIND = "replica-behind"
REPLICA_EXTRA = "replica-extra"
BUCKET_MISSING = "bucket-missing"
BUCKET_ELSEWHERE = "bucket-not-on-primary"

# What `--repair` does (the `repair` of a Difference).
COPY = "copy"  # the replica's key made the primary's (the replica repair job)
DELETE = "delete"  # the replica's copy removed (the same job: the primary lacks the key)
PRUNE = "prune"  # the tombstone removed, If-Match its ETag
MIGRATE = "migrate"  # copied to the primary as `s3-multi migrate` does (only with --migrate)
CREATE = "create"  # the bucket created on the replica (the replica repair job)
NOTHING = ""


@dataclass(frozen=True)
class Side:
    """A compared backend, by its name and its role in the config."""

    name: str
    role: str  # PRIMARY, FALLBACK or REPLICA


@dataclass(frozen=True)
class Layout:
    """What the sides of a row are: the primary, the other backends compared (in config
    order), and with `tombstones` a last side, the tombstones' listing."""

    sides: tuple[Side, ...]
    tombstones: bool
    uncompared: frozenset[str] = frozenset()  # backends of the config left out (--from)

    @property
    def others(self) -> range:
        return range(1, len(self.sides))


@dataclass(frozen=True)
class Head:
    """What a HEAD says of a copy beyond its listing."""

    etag: str
    size: int
    source_etag: str | None = None  # x-amz-meta-s3multi-source-etag: the copy's original
    marked: bool = False  # x-amz-meta-s3multi-replica: a copy the proxy made on a replica


@dataclass(frozen=True)
class Needs:
    """What `classify` must be given before it can tell."""

    tombstone: bool = False  # the tombstone's body (what it hides)
    heads: frozenset[int] = frozenset()  # sides whose copy to HEAD


@dataclass(frozen=True)
class Difference:
    kind: str
    key: str
    backend: str  # the backend it is about (the primary's name for a tombstone)
    size: int  # the bytes concerned (those a repair would copy, or the copy in question)
    etag: str  # of the copy in question (of the primary's object for a missing one)
    detail: str
    repair: str  # what --repair does: COPY, DELETE, PRUNE, MIGRATE or NOTHING


def classify(
    row: Row,
    layout: Layout,
    hides: Hides | None = None,
    heads: Mapping[int, Head | None] | None = None,
) -> list[Difference] | Needs:
    """The differences of one key's row; `hides` is what its tombstone hides once read, `heads`
    the HEADs asked for (None: the copy was gone)."""
    entries = row.entries
    primary = entries[0]
    if (
        primary is not None
        and entries.count(primary) == len(layout.sides)
        and (not layout.tombstones or entries[-1] is None)
    ):
        return []  # every side lists the primary's object (its ETag and size): most rows
    heads = heads or {}
    tomb = entries[len(layout.sides)] if layout.tombstones else None
    elsewhere = any(entries[i] is not None for i in layout.others)
    if tomb is not None and hides is None and (elsewhere or layout.uncompared):
        return Needs(tombstone=True)
    if primary is not None:
        found = _replicas(row, layout, primary, heads)
    else:
        found = _without_primary(row, layout, hides or {}, heads)
    if isinstance(found, Needs):
        return found
    if tomb is not None and _prunable(row, layout, hides):
        found.append(
            Difference(PRUNABLE, row.key, layout.sides[0].name, tomb.size, tomb.etag, "", PRUNE)
        )
    return found


def bucket_differences(has: Sequence[bool], layout: Layout) -> list[Difference]:
    """The bucket-level differences, from which sides have the bucket (`has`, one per backend
    side, the primary first). A fallback without a bucket the primary has is normal: buckets
    are created on the primary."""
    found = []
    for i in layout.others:
        side = layout.sides[i]
        if has[0] and not has[i] and side.role == REPLICA:
            detail = "the primary has the bucket"
            found.append(Difference(BUCKET_MISSING, "", side.name, 0, "", detail, CREATE))
        elif has[i] and not has[0]:
            detail = "the primary lacks the bucket"
            found.append(Difference(BUCKET_ELSEWHERE, "", side.name, 0, "", detail, NOTHING))
    return found


def _replicas(
    row: Row, layout: Layout, primary: Listed, heads: Mapping[int, Head | None]
) -> list[Difference] | Needs:
    found, needed = [], set()
    for i in layout.others:
        side = layout.sides[i]
        if side.role != REPLICA:
            continue  # a fallback's other object under the key is normal: the primary serves
        copy = row.entries[i]
        if copy is not None and not _surely_equal(primary, copy):
            if _surely_other(primary, copy):
                found.append(_behind(row.key, side, primary, copy))
                continue
            if i not in heads:
                needed.add(i)
                continue
            head = heads[i]
            if head is None:
                copy = None  # gone since it was listed
            elif not (
                same_etag(head.etag, primary.etag) or same_etag(head.source_etag, primary.etag)
            ):
                found.append(_behind(row.key, side, primary, copy))
                continue
            else:
                continue
        if copy is None:
            detail = f"the primary has {primary.etag} ({_bytes(primary.size)})"
            found.append(
                Difference(
                    REPLICA_MISSING, row.key, side.name, primary.size, primary.etag, detail, COPY
                )
            )
    return Needs(heads=frozenset(needed)) if needed else found


def _surely_equal(primary: Listed, copy: Listed) -> bool:
    if primary.size != copy.size:
        return False
    return primary.etag == copy.etag or same_etag(primary.etag, copy.etag)


def _surely_other(primary: Listed, copy: Listed) -> bool:
    """Another size, or two MD5s (single-part ETags) that differ: the listing tells."""
    if primary.size != copy.size:
        return True
    return md5_of(primary.etag) is not None and md5_of(copy.etag) is not None


def _behind(key: str, side: Side, primary: Listed, copy: Listed) -> Difference:
    detail = (
        f"the primary has {primary.etag} ({_bytes(primary.size)}), "
        f"{side.name} {copy.etag} ({_bytes(copy.size)})"
    )
    return Difference(REPLICA_BEHIND, key, side.name, primary.size, copy.etag, detail, COPY)


def _without_primary(
    row: Row, layout: Layout, hides: Hides, heads: Mapping[int, Head | None]
) -> list[Difference] | Needs:
    """The primary lacks the key: copies a delete hid, a replica's copy of a deleted key, and
    the copy reads serve (not migrated)."""
    found: list[Difference] = []
    needed = frozenset(
        i
        for i in layout.others
        if layout.sides[i].role == REPLICA
        and row.entries[i] is not None
        and not hidden(hides, layout.sides[i].name, row.entries[i].etag)  # type: ignore[union-attr]
        and i not in heads
    )
    if needed:
        return Needs(heads=needed)
    served: tuple[Side, Listed] | None = None
    for i in layout.others:
        side, copy = layout.sides[i], row.entries[i]
        if copy is None:
            continue
        head = heads.get(i) if side.role == REPLICA else None
        if side.role == REPLICA and i in heads and head is None:
            continue  # gone since it was listed
        source = head.source_etag if head is not None else None
        if hidden(hides, side.name, head.etag if head else copy.etag, source):
            action = DELETE if side.role == REPLICA else NOTHING
            detail = f"{copy.etag} ({_bytes(copy.size)}), hidden by a delete through the proxy"
            found.append(
                Difference(TOMBSTONED, row.key, side.name, copy.size, copy.etag, detail, action)
            )
        elif head is not None and head.marked:
            detail = f"{copy.etag} ({_bytes(copy.size)}), copied there by the proxy"
            found.append(
                Difference(REPLICA_EXTRA, row.key, side.name, copy.size, copy.etag, detail, DELETE)
            )
        elif served is None:
            served = (side, copy)
    if served is not None:
        side, copy = served
        detail = f"{copy.etag} ({_bytes(copy.size)}), served from {side.name}"
        found.append(
            Difference(NOT_MIGRATED, row.key, side.name, copy.size, copy.etag, detail, MIGRATE)
        )
    return found


def _prunable(row: Row, layout: Layout, hides: Hides | None) -> bool:
    """Whether every copy the tombstone hides is gone (hides None: no other backend lists the
    key, and every backend of the config is compared, so none has a copy)."""
    if hides is None:
        return True
    if not hides:
        return False  # removed since it was listed: nothing to prune
    names = {side.name: i for i, side in enumerate(layout.sides)}
    for name in hides:
        if name in layout.uncompared:
            return False  # not looked at: its copy may be there
        i = names.get(name)
        copy = row.entries[i] if i is not None else None  # not in the config: never read
        if copy is not None and hidden(hides, name, copy.etag):
            return False
    return True


def _bytes(n: int) -> str:
    return "1 byte" if n == 1 else f"{n:,} bytes"
