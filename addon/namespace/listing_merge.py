"""One page of a listing merged over backends: a decision core with no I/O.

Each backend lists its own keys in order (S3's: UTF-8 byte order, which is code point order).
The merge takes their pages as they come and gives back the client's page: the union in order,
each name once (a key or a common prefix; for a key, the first backend that has it wins), at
most MaxKeys entries, keys and prefixes together. It never emits past what a backend whose own
page was cut short has shown: an entry further on waits until that backend has been asked for
more (`needs`), so a page never skips a key.

Every backend is asked at least once, even for an empty page (MaxKeys 0): whether any has the
bucket decides between that page and NoSuchBucket (`nowhere`).

A backend is asked for names after a position (`start_after`). After a common prefix, that is
the prefix followed by the highest code point, so that none of its keys (they all roll up into
it) comes again. Entries a tombstone hides are dropped before they are merged (`hidden`).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

MAX_KEYS = 1000  # S3's most per page, and its default
_PAST = "\U0010ffff"  # after every key that starts with a prefix (S3 orders by code point)


class Entry(NamedTuple):
    """A NamedTuple, not a frozen dataclass: a listing makes one per key and backend, and a
    frozen dataclass's __init__ sets each field through object.__setattr__."""

    name: str  # the key, or the common prefix
    prefix: bool  # a common prefix (CommonPrefixes), not a key (Contents)
    backend: int  # the index of the backend it came from (0: the primary)
    fields: tuple[tuple[str, str], ...] = ()  # a key's LastModified, ETag, Size, ...


@dataclass
class Page:
    """One backend's answer to one listing request."""

    entries: list[Entry]
    truncated: bool


@dataclass
class _Stream:
    buffered: deque[Entry] = field(default_factory=deque)
    after: str | None = None  # where the next request starts (the last name it showed)
    after_prefix: bool = False  # ... and that name is a common prefix
    done: bool = False  # everything after `after` has been shown
    asked: bool = False
    absent: bool = False  # it does not have the bucket


class Merge:
    def __init__(
        self,
        backends: int,
        after: str | None,
        max_keys: int,
        hidden: Callable[[Entry], bool] = lambda entry: False,
        after_prefix: bool = False,
    ) -> None:
        self.streams = [_Stream(after=after, after_prefix=after_prefix) for _ in range(backends)]
        self.start = after
        self.max_keys = max(0, min(max_keys, MAX_KEYS))
        self.hidden = hidden
        self.emitted: list[Entry] = []

    def needs(self) -> list[int]:
        """The backends to ask now (and from where: `start_after`), before the page can grow."""
        if len(self.emitted) >= self.max_keys:
            return [i for i, s in enumerate(self.streams) if not s.asked and not s.done]
        return [i for i, s in enumerate(self.streams) if not s.done and not s.buffered]

    def start_after(self, backend: int) -> str | None:
        stream = self.streams[backend]
        if stream.after is not None and stream.after_prefix:
            return stream.after + _PAST
        return stream.after

    def add(self, backend: int, page: Page) -> None:
        """Backend `backend`'s answer to a request from `start_after(backend)`."""
        stream = self.streams[backend]
        shown = stream.after if stream.after_prefix else None
        for entry in page.entries:
            if entry.prefix and entry.name == shown:
                continue  # a backend that ignored the position past its prefix
            stream.after, stream.after_prefix = entry.name, entry.prefix
            if not self.hidden(entry):
                stream.buffered.append(entry)
        stream.asked = True
        stream.done = not page.truncated or not page.entries

    def absent(self, backend: int) -> None:
        """The backend does not have the bucket: it adds nothing."""
        self.streams[backend].done = True
        self.streams[backend].absent = True

    def advance(self) -> None:
        """Emit what can be emitted with the pages in hand."""
        if all(s.done for s in self.streams):
            self._merge_all()
        else:
            self._one_by_one()

    def _one_by_one(self) -> None:
        """Each next name in turn, as long as no backend may still show one before it."""
        while len(self.emitted) < self.max_keys:
            heads = [s.buffered[0] for s in self.streams if s.buffered]
            if not heads:
                return
            first = min(heads, key=lambda e: (e.name, e.backend))
            waiting = [
                s for s in self.streams if not s.done and not s.buffered and s.after is not None
            ]
            if any(first.name > (s.after or "") for s in waiting) or any(
                not s.done and not s.asked for s in self.streams
            ):
                return  # a backend has not shown what comes before it: ask it first
            for stream in self.streams:
                while stream.buffered and stream.buffered[0].name == first.name:
                    stream.buffered.popleft()
            self.emitted.append(first)

    def _merge_all(self) -> None:
        """`advance` when every backend has shown all it will (the usual listing: no page cut
        short): nothing can come before what is buffered, so the buffers are merged in one go,
        in the same order (name, then backend) and keeping the same first of each name."""
        room = self.max_keys - len(self.emitted)
        if room <= 0:
            return
        merged = heapq.merge(*(s.buffered for s in self.streams), key=_order)
        taken: list[Entry] = []
        for entry in merged:
            if taken and entry.name == taken[-1].name:
                continue  # the same name from a later backend: the first one's shows
            if len(taken) == room:
                break
            taken.append(entry)
        if not taken:
            return
        last = taken[-1].name
        for stream in self.streams:  # what was taken, and the later copies of its names, go
            while stream.buffered and stream.buffered[0].name <= last:
                stream.buffered.popleft()
        self.emitted.extend(taken)

    @property
    def complete(self) -> bool:
        """The page is ready: every backend asked, and the page full or nothing more anywhere."""
        if any(not s.asked and not s.done for s in self.streams):
            return False
        return len(self.emitted) >= self.max_keys or not any(
            s.buffered or not s.done for s in self.streams
        )

    @property
    def nowhere(self) -> bool:
        """No backend has the bucket: NoSuchBucket, not an empty page."""
        return all(s.absent for s in self.streams)

    @property
    def truncated(self) -> bool:
        """More names come after this page (or may: a backend cut its own page short)."""
        return any(s.buffered or not s.done for s in self.streams)

    @property
    def last(self) -> str | None:
        """Where the next page starts."""
        return self.emitted[-1].name if self.emitted else self.start


def _order(entry: Entry) -> tuple[str, int]:
    return entry.name, entry.backend
