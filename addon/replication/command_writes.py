"""The writes a command makes to the primary itself (`s3-multi migrate`'s copies), for the
replicas: a command has no replicator of its own, so each write becomes an outbox entry for
every replica, written in batches as it goes; the running proxies' lease holders repair them
(within seconds when a proxy runs, else when one starts)."""

from __future__ import annotations

import asyncio
import logging

from addon.config.settings import Config
from addon.replication.meta_store import MetaStore
from addon.replication.outbox import Entry, Outbox
from addon.replication.service import instance_name
from addon.upstream.backend_client import BackendClient

log = logging.getLogger(__name__)
CLOSE_WAIT = 30.0  # seconds the command waits at its end for the last batch to be written


class OutboxWrites:
    def __init__(self, config: Config, client: BackendClient, why: str) -> None:
        self.replicas = [r.name for r in config.replicas]
        self.outbox = Outbox(MetaStore(client, config.backends[0]), instance_name())
        self.why = why

    def __call__(self, what: str, bucket: str, key: str) -> None:
        for replica in self.replicas:
            self.outbox.add(replica, [Entry(what, bucket, key, self.why)])

    async def close(self) -> None:
        try:
            async with asyncio.timeout(CLOSE_WAIT):
                while not await self.outbox.flush():
                    await asyncio.sleep(1)
        except TimeoutError:
            log.error(
                "%d copies could not be written to the replicas' outbox: the proxies' next "
                "reconciliation finds them",
                self.outbox.unwritten,
            )
        self.outbox.close()


def for_migrate(config: Config, client: BackendClient) -> OutboxWrites | None:
    """`s3-multi migrate`'s hearing: None without replicas."""
    return OutboxWrites(config, client, "copied by s3-multi migrate") if config.replicas else None
