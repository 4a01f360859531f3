"""The outbox and the lease on real servers, in-process: misses written as immutable batches
(concurrent waiters share one flush, a name says its time and count, entries read back), kept
in memory when the metaBucket cannot take them; a lease held by one owner at a time, renewed,
given back, and taken over once expired."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import pytest

from addon.config.settings import Backend
from addon.replication.lease import VALID, Lease
from addon.replication.meta_store import MetaStore
from addon.replication.outbox import OUTBOX, Entry, Outbox, batch_count, batch_time
from addon.upstream.backend_client import BackendClient
from tests.support.migration import backend
from tests.support.processes import dead_endpoint

pytestmark = [pytest.mark.e2e, pytest.mark.topologies("moto", "seaweedfs")]


class CountingClient(BackendClient):
    """Notes the outbox batches PUT (once each: the first is sent again once the metaBucket is
    made)."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: set[str] = set()

    @contextlib.asynccontextmanager
    async def request(self, backend, method, bucket, key_path="", *args, **kwargs):
        if method == "PUT" and key_path.startswith(OUTBOX):
            self.batches.add(key_path)
        async with super().request(backend, method, bucket, key_path, *args, **kwargs) as reply:
            yield reply


def _store(server, client: BackendClient) -> MetaStore:
    return MetaStore(client, backend(server, 0, meta_bucket=f"meta-{uuid.uuid4().hex[:10]}"))


def test_waiters_at_once_share_a_flush_and_the_batches_say_what_they_hold(backends):
    async def run():
        client = CountingClient()
        outbox = Outbox(_store(backends[0], client), "host-1-2")
        entries = [Entry("object", "photos", f"k{i}", "timeout") for i in range(60)]
        written = await asyncio.gather(*(outbox.record("dr", [e], 10) for e in entries))
        names, more = await outbox.batches("dr")
        read = [await outbox.read(n) for n in names]
        outbox.close()
        client.close()
        return written, names, more, read, len(client.batches)

    started = time.time()
    written, names, more, read, puts = asyncio.run(run())
    assert all(written) and not more
    assert puts == len(names) <= 3  # 60 waiters, a few flushes: the first, then the rest at once
    assert sum(batch_count(n) for n in names) == 60
    assert all(started - 1 <= (batch_time(n) or 0) <= time.time() + 1 for n in names)
    keys = [e.key for batch in read for e in batch or []]
    assert sorted(keys) == sorted(f"k{i}" for i in range(60))


def test_a_metabucket_that_cannot_take_them_keeps_the_misses_in_memory():
    async def run():
        client = BackendClient()
        unreachable = backend_at(dead_endpoint())
        outbox = Outbox(MetaStore(client, unreachable), "host-1-2")
        written = await outbox.record("dr", [Entry("object", "b", "k")], 3)
        left = outbox.unwritten
        outbox.close()
        client.close()
        return written, left

    assert asyncio.run(run()) == (False, 1)


def backend_at(endpoint: str) -> Backend:
    return Backend(0, "down", "AKDOWN", "down-secret", endpoint, meta_bucket="meta")


def test_a_lease_has_one_holder_and_is_taken_over_once_expired(backends):
    async def run():
        client = BackendClient()
        store = _store(backends[0], client)
        first = Lease(store, "dr", "first")
        second = Lease(store, "dr", "second")
        later = Lease(store, "dr", "third", clock=lambda: time.time() + VALID + 1)
        steps = [
            await first.hold(),  # free: taken
            await second.hold(),  # held: not taken
            await first.hold(),  # renewed
            await later.hold(),  # expired by then: taken over
            await first.hold(),  # lost
        ]
        await later.release()
        steps.append(await second.hold())  # given back: taken
        client.close()
        return steps

    assert asyncio.run(run()) == [True, False, True, True, False, True]
