"""Whether a replica answers, as one process sees it: up until a request to it fails and a
probe confirms it (a ListBuckets, PROBE_TIMEOUT at most), then down, probed every PROBE_EVERY
seconds until it answers again. Each change is logged once and told to whoever listens (the
replicator sends what it holds to the outbox when its replica goes down; the background work
drains the outbox when it comes back).

While a replica is down, nothing waits on it: a sync write does not ask it (a miss at once), an
async job goes straight to the outbox.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from addon.config.settings import Backend
from addon.upstream.backend_client import BackendClient, BackendError

log = logging.getLogger(__name__)
PROBE_TIMEOUT = 3.0
PROBE_EVERY = 2.0


class Liveness:
    def __init__(self, client: BackendClient, replica: Backend) -> None:
        self.client = client
        self.replica = replica
        self.up = True
        self.since = time.monotonic()
        self.listeners: list[Callable[[bool], None]] = []
        self._probing: asyncio.Task | None = None

    async def probe(self) -> bool:
        """Whether the replica answers a signed ListBuckets now."""
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                query = "max-buckets=1"
                async with self.client.request(self.replica, "GET", None, query=query) as reply:
                    await reply.read(1024 * 1024)
            return reply.status == 200
        except (TimeoutError, BackendError):
            return False

    def suspect(self, why: str) -> None:
        """A request to the replica failed: probe it (once at a time), down if it fails."""
        if self._probing is None or self._probing.done():
            self._probing = asyncio.ensure_future(self._confirm(why))

    async def _confirm(self, why: str) -> None:
        if self.up and await self.probe():
            return
        if self.up:
            self._change(False)
            log.warning(
                "replication: replica %s is down (%s); its misses go to the outbox, probing "
                "every %gs",
                self.replica.name,
                why,
                PROBE_EVERY,
            )
        while not await self.probe():
            await asyncio.sleep(PROBE_EVERY)
        down = time.monotonic() - self.since
        self._change(True)
        log.info("replication: replica %s is up again after %.0fs", self.replica.name, down)

    def _change(self, up: bool) -> None:
        self.up, self.since = up, time.monotonic()
        for listener in self.listeners:
            listener(up)

    def close(self) -> None:
        if self._probing is not None:
            self._probing.cancel()
