"""Two listings of a bucket compared as they come, with no I/O: the primary's and a replica's,
merge-joined in the order both list in.

Fed one side's entries at a time (`add`, as many as it likes; `done` at its end), it gives the
rows it can (`rows`): a key and what each side listed for it, up to the smallest key that both
unfinished sides have reached. Memory: fed from the side that `needs` more, a page of each side
at most. A side that goes backwards is not in the order asked for (`OutOfOrder`): S3 servers
list in byte order, SeaweedFS in path-segment order (`path_order`), and two sides listing in
different orders cannot be merge-joined.

A small core on purpose: `s3-multi check` gets a k-way one (`addon.check`) that can replace it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from addon.s3.etags import normal_etag


def byte_order(key: str) -> Any:
    return key


def path_order(key: str) -> Any:
    return key.split("/")


Order = Callable[[str], Any]


class OutOfOrder(Exception):
    """A side listed a key before one it had already listed, in this order."""


@dataclass(frozen=True)
class Listed:
    key: str
    etag: str
    size: int


@dataclass(frozen=True)
class Row:
    key: str
    primary: Listed | None
    replica: Listed | None

    @property
    def differs(self) -> bool:
        """Whether the listings say the replica's key is not the primary's: missing on one side,
        or another size or ETag (a copy in another part layout too: a repair looks closer)."""
        p, r = self.primary, self.replica
        if p is None or r is None:
            return True
        return p.size != r.size or normal_etag(p.etag) != normal_etag(r.etag)


class TwoWay:
    PRIMARY, REPLICA = 0, 1

    def __init__(self, order: Order = byte_order) -> None:
        self.order = order
        self._buffered: tuple[deque[Listed], deque[Listed]] = (deque(), deque())
        self._done = [False, False]
        self._last: list[Any] = [None, None]

    def needs(self) -> list[int]:
        """The sides to feed before more rows can come."""
        return [s for s in (0, 1) if not self._done[s] and not self._buffered[s]]

    def add(self, side: int, entries: Iterable[Listed], done: bool = False) -> None:
        for entry in entries:
            position = self.order(entry.key)
            last = self._last[side]
            if last is not None and position <= last:
                raise OutOfOrder(f"{entry.key!r} after a key it comes before")
            self._last[side] = position
            self._buffered[side].append(entry)
        self._done[side] = self._done[side] or done

    @property
    def finished(self) -> bool:
        return all(self._done) and not any(self._buffered)

    def rows(self) -> Iterator[Row]:
        primary, replica = self._buffered
        while True:
            if self.needs():
                return
            if not primary and not replica:
                return
            if primary and replica:
                p, r = self.order(primary[0].key), self.order(replica[0].key)
                if p == r:
                    yield Row(primary[0].key, primary.popleft(), replica.popleft())
                elif p < r:
                    yield Row(primary[0].key, primary.popleft(), None)
                else:
                    yield Row(replica[0].key, None, replica.popleft())
            elif primary:
                yield Row(primary[0].key, primary.popleft(), None)
            else:
                yield Row(replica[0].key, None, replica.popleft())
