"""A lease in the primary's metaBucket: which process does a replica's background work (drains
its outbox, reconciles it), so that several processes (workers, instances behind a balancer)
do not all do it.

    replication/lease/<replica>.json   {"owner": "<instance>", "until": <epoch s>, "nonce": "..."}

Taken with `PUT If-None-Match: *` when there is none, taken over with `PUT If-Match <its ETag>`
once expired, renewed by its holder with `PUT If-Match <its own ETag>` (every RENEW seconds,
valid for VALID), given back with `DELETE If-Match`. A process that loses a race gets 412 (or
404, from a server that answers so for If-Match on a key gone) and is not the holder. Nothing's
correctness depends on it, only economy: every repair is idempotent and conditional, so two
holders at once (clocks skewed, a holder paused past its lease) only do the work twice.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable

from addon.replication.meta_store import PREFIX, MetaStore
from addon.upstream.backend_client import BackendError

log = logging.getLogger(__name__)
LEASES = PREFIX + "lease/"
VALID = 30.0  # seconds
RENEW = 10.0


class Lease:
    def __init__(
        self, store: MetaStore, name: str, owner: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.key = f"{LEASES}{name}.json"
        self.owner = owner
        self.clock = clock
        self.etag = ""  # ours, while we hold it

    @property
    def held(self) -> bool:
        return bool(self.etag)

    async def hold(self) -> bool:
        """Renew it if we hold it, else take it if it is free or expired: whether we hold it.
        A primary that cannot be asked: not held (the work waits)."""
        try:
            if self.etag and await self._put((("if-match", self.etag),)):
                return True
            self.etag = ""
            found = await self.store.get(self.key)
            if found.status == 404:
                return await self._put((("if-none-match", "*"),))
            if found.status != 200:
                return False
            if self._until(found.body) > self.clock():
                return False
            return await self._put((("if-match", found.etag),))
        except BackendError as e:
            log.debug("lease %s not held: %s", self.key, e)
            self.etag = ""
            return False

    async def release(self) -> None:
        if not self.etag:
            return
        etag, self.etag = self.etag, ""
        try:
            await self.store.delete(self.key, if_match=etag)
        except BackendError as e:
            log.debug("lease %s not given back (it expires): %s", self.key, e)

    async def _put(self, condition: tuple[tuple[str, str], ...]) -> bool:
        document = {
            "owner": self.owner,
            "until": self.clock() + VALID,
            "nonce": secrets.token_hex(8),
        }
        answer = await self.store.put(self.key, json.dumps(document).encode(), condition)
        if answer.status == 200 and answer.etag:
            self.etag = answer.etag
            return True
        self.etag = ""
        return False

    @staticmethod
    def _until(body: bytes) -> float:
        try:
            return float(json.loads(body)["until"])
        except (ValueError, KeyError, TypeError):
            return 0.0  # unreadable: expired
