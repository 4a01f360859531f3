"""The k-way merge-join of sorted listings, no I/O: one row per key over every side (for
`s3-multi check`: the primary, the other backends, the tombstones), holding one page per side
whatever the number of keys. Here rather than in `addon.check` so that every layer that compares
listings (the replicas' reconciliation too) joins them by this one rule.

Two orders are met: S3 lists keys in byte order (Python's order of str: code points and UTF-8
bytes sort alike); SeaweedFS in path-segment order, as `key.split("/")` sorts (`logs/2026/a`
before `logs/2026-01`). They disagree only on a pair whose first difference is a "/" in one key
and a character below it (space, `!` to `.`) in the other, so a listing shows its order only
when two such keys come one after the other in it. The merge starts in byte order and takes the
order a side shows while no side has shown the other one; sides that show both orders cannot be
joined in bounded memory (what one lists first, the other may list a million keys later):
`OrderConflict`.

A row never says that a side lacks a key it has. A side whose next key (its head) comes after
the row's key lacks it for sure, unless the two orders disagree on that pair and the side has
shown no order yet: a later page may still hold the key. The row is then `unsure` of those
sides; the caller asks them (a HEAD) and `settle`s it. Absent: the row stands. Present: the side
lists in the other order; the merge takes that order (nothing was consumed, so the next row is
computed afresh) or, when a side has shown this one, stops.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from addon.namespace.listing_stream import Listed

BYTES = "S3 byte order"
PATHS = "path-segment order (as SeaweedFS lists)"


@dataclass(frozen=True, slots=True)
class Need:
    """The side's page is used up: `add` its next one."""

    side: int


class Row(NamedTuple):
    """One key: each side's entry (None where it lacks the key), in the order of the sides. A
    NamedTuple for the reason `Listed` is one: one per key."""

    key: str
    entries: tuple[Listed | None, ...]
    unsure: frozenset[int] = frozenset()  # sides to ask before the row stands (`settle`)


class OrderConflict(Exception):
    """Sides list in different orders."""


class NotSorted(Exception):
    """A side lists keys in neither order (or one twice)."""


def disagree(a: str, b: str) -> bool:
    """Whether byte order and path-segment order put `a` and `b` the other way round."""
    return a != b and (a < b) != (a.split("/") < b.split("/"))


def _segments(key: str) -> list[str]:
    return key.split("/")


class Merge:
    """Feed each side's pages with `add` when `next` says `Need`; `next` gives the rows."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)  # of the sides, for messages
        self.order = BYTES
        self.shown: list[str | None] = [None] * len(names)  # the order each side has shown
        self._pages: list[deque[Listed]] = [deque() for _ in names]
        self._done = [False] * len(names)
        self._last: list[str | None] = [None] * len(names)  # the last key added, per side
        self._pending: Row | None = None
        self._switched_at: str | None = None

    def add(self, side: int, entries: Iterable[Listed], done: bool) -> None:
        """The side's next page, in the order it was listed; `done` when it was the last."""
        last = self._last[side]
        page = self._pages[side]
        for entry in entries:
            if last is not None:
                self._look(side, last, entry.key)
            last = entry.key
            page.append(entry)
        self._last[side] = last
        self._done[side] = done

    def next(self) -> Row | Need | None:
        """The next row (consumed unless it is `unsure`: then `settle` it first), the side
        whose page is needed, or None once every side is done."""
        if self._pending is not None:
            raise RuntimeError("settle the unsure row first")
        pages, done = self._pages, self._done
        heads = [page[0] if page else None for page in pages]
        for side, head in enumerate(heads):
            if head is None and not done[side]:
                return Need(side)
        keys = [h.key for h in heads if h is not None]
        if not keys:
            return None
        key = min(keys) if self.order == BYTES else min(keys, key=_segments)
        entries = tuple(h if h is not None and h.key == key else None for h in heads)
        unsure: frozenset[int] = frozenset()
        if len(keys) > len(entries) - entries.count(None):  # a side whose head is another key
            unsure = frozenset(
                side
                for side, head in enumerate(heads)
                if head is not None
                and head.key != key
                and self.shown[side] is None
                and disagree(head.key, key)
            )
        row = Row(key, entries, unsure)
        if unsure:
            self._pending = row
            return row
        for side, entry in enumerate(entries):
            if entry is not None:
                pages[side].popleft()
        return row

    def settle(self, found: Mapping[int, Listed | None]) -> Row | None:
        """What the unsure sides of the pending row said (a HEAD each): the row as it stands,
        or None when the merge changed its order (ask `next` again)."""
        row = self._pending
        if row is None:
            raise RuntimeError("no unsure row to settle")
        self._pending = None
        present = {side: entry for side, entry in found.items() if entry is not None}
        if not present:
            row = Row(row.key, row.entries)
        elif self._switched_at == row.key:
            # Asked twice, in both orders: the copy was written while the listings passed.
            entries = tuple(present.get(side, e) for side, e in enumerate(row.entries))
            row = Row(row.key, entries)
        else:
            side = min(present)
            why = f"a HEAD found {row.key!r}, which its listing had passed; or it was written since"
            self._take(side, _other(self.order), why)
            self._switched_at = row.key
            return None
        self._consume(row)
        return row

    def _consume(self, row: Row) -> None:
        for side, entry in enumerate(row.entries):
            page = self._pages[side]
            if entry is not None and page and page[0] is entry:
                page.popleft()

    def _look(self, side: int, a: str, b: str) -> None:
        """Two keys the side listed one after the other: the order they show, if any."""
        by_bytes = a < b
        by_paths = a.split("/") < b.split("/") if "/" in a or "/" in b else by_bytes
        if by_bytes == by_paths:
            if not by_bytes:
                raise NotSorted(f"{self.names[side]} lists {a!r} before {b!r}")
            return
        shown = BYTES if by_bytes else PATHS
        if self.shown[side] not in (None, shown):
            raise NotSorted(
                f"{self.names[side]} lists in neither order ({a!r} before {b!r}, and "
                f"earlier in {self.shown[side]})"
            )
        self._take(side, shown, f"it lists {a!r} before {b!r}")

    def _take(self, side: int, order: str, why: str) -> None:
        """The side lists in `order`: the merge takes it, unless another side showed the other."""
        self.shown[side] = order if self.shown[side] is None else self.shown[side]
        if order == self.order:
            return
        others = [s for s, shown in enumerate(self.shown) if shown == self.order]
        if others:
            raise OrderConflict(
                f"{self.names[side]} lists keys in {order} ({why}), "
                f"{self.names[others[0]]} in {self.order}: listings in different orders "
                "cannot be compared side by side"
            )
        self.order = order


def _other(order: str) -> str:
    return PATHS if order == BYTES else BYTES
