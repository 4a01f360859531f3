"""Request bodies that are not in hand when the request starts (`backend_client.request`):
sent as they come, UNSIGNED-PAYLOAD (their hash is not known ahead), their length known."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Streamed:
    """A request body sent piece by piece as it comes (another answer's body), of `length`."""

    pieces: AsyncIterator[bytes]
    length: int


class Outlet(Protocol):
    """Where a `Pushed` body goes: `write` sends at once (never waits), returns the bytes still
    to send; `drained` waits until those are few (asyncio's low-water mark)."""

    def write(self, data: bytes) -> int: ...
    async def drained(self) -> None: ...


@dataclass(frozen=True)
class Pushed:
    """A body its producer writes itself as it comes (a tee's): `push` gets the `Outlet` once
    the head is sent, returns once the body is whole."""

    push: Callable[[Outlet], Awaitable[None]]
    length: int
