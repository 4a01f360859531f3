"""In-sync certificates against real servers (moto, SeaweedFS): renewed into the replica's own
metaBucket only while the replica's backlog is empty, taken back when a miss appears during the
renewal, revoked, and read by another process as trusted or not. The backlog is scripted here
(the replication's outbox will be the real one); the certificate's I/O is the proxy's own
client."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from addon.config.settings import Backend
from addon.replication.certificates import KEY, VALID_FOR, Certificate, Certificates
from addon.upstream.backend_client import BackendClient
from addon.upstream.health import Health
from tests.support.direct import has_object

pytestmark = pytest.mark.topologies("moto", "seaweedfs-fallbacks")


class Backlog:
    """The answers `empty` gives, one per call (the last one repeats); the calls counted."""

    def __init__(self, *answers: bool) -> None:
        self.answers = list(answers)
        self.asked = 0

    async def empty(self, replica: str) -> bool:
        self.asked += 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


@pytest.fixture
def pair(backends):
    """(primary, replica) as a config makes them; the replica's metaBucket is new each test."""
    primary, replica = backends[0], backends[1]
    meta = f"s3multi-cert-{uuid.uuid4().hex[:8]}"

    def backend(server, index, **fields) -> Backend:
        return Backend(
            index, server.name, server.access, server.secret, server.endpoint,
            use_path_style=True, **fields,
        )  # fmt: skip

    return (
        backend(primary, 0, meta_bucket="s3multi-meta"),
        backend(replica, 1, meta_bucket=meta, replicate="async"),
        replica,
    )


def certificates(primary: Backend, replica: Backend, backlog) -> Certificates:
    return Certificates(
        primary, (replica,), BackendClient(), Health([primary.name, replica.name]), backlog
    )


def test_renewed_while_the_backlog_is_empty_and_read_as_trusted_elsewhere(pair):
    primary, replica, server = pair

    async def scenario() -> None:
        holder = certificates(primary, replica, Backlog(True))
        assert await holder.renew(replica)  # its metaBucket made on the way
        stored = server.client().get_object(Bucket=replica.meta_bucket, Key=KEY)["Body"].read()
        body = json.loads(stored)
        who = (body["primary"], body["replica"], body["by"])
        assert who == (primary.name, replica.name, holder.instance)
        written = Certificate.parse(stored)
        assert written is not None and written.until - written.issued == pytest.approx(VALID_FOR)
        reader = certificates(primary, replica, Backlog(False))
        assert not reader.certified(replica)
        await reader.read(replica)
        assert reader.certified(replica) and reader.serving() == (replica,)

    asyncio.run(scenario())


def test_nothing_is_written_while_the_backlog_is_not_empty(pair):
    primary, replica, server = pair
    backlog = Backlog(False)
    assert not asyncio.run(certificates(primary, replica, backlog).renew(replica))
    assert backlog.asked == 1
    assert not _bucket(server, replica)  # nothing written: not even its metaBucket made


def test_a_miss_during_the_renewal_takes_the_certificate_back(pair):
    """D3: the second look at the backlog finds an entry: the certificate just written goes."""
    primary, replica, server = pair

    async def scenario() -> None:
        assert await certificates(primary, replica, Backlog(True)).renew(replica)
        assert has_object(server, replica.meta_bucket, KEY)
        holder = certificates(primary, replica, Backlog(True, False))
        assert not await holder.renew(replica)
        assert not has_object(server, replica.meta_bucket, KEY)
        reader = certificates(primary, replica, Backlog(False))
        await reader.read(replica)
        assert not reader.certified(replica)

    asyncio.run(scenario())


def test_a_revocation_by_etag_spares_a_newer_certificate(pair):
    primary, replica, server = pair

    async def scenario() -> None:
        first = certificates(primary, replica, Backlog(True))
        assert await first.renew(replica)
        old_etag = server.client().head_object(Bucket=replica.meta_bucket, Key=KEY)["ETag"]
        assert await certificates(primary, replica, Backlog(True)).renew(replica)
        await first.revoke(replica, old_etag)  # not the one there now: kept
        assert has_object(server, replica.meta_bucket, KEY)
        await first.revoke(replica)  # a miss recorded: whichever it is, gone
        assert not has_object(server, replica.meta_bucket, KEY)

    asyncio.run(scenario())


def test_a_certificate_for_another_primary_is_never_trusted(pair):
    primary, replica, _ = pair

    async def scenario() -> None:
        assert await certificates(primary, replica, Backlog(True)).renew(replica)
        other = Backend(0, "another-primary", "AK", "SK", "http://127.0.0.1:1")
        reader = certificates(other, replica, Backlog(False))
        await reader.read(replica)
        assert not reader.certified(replica)

    asyncio.run(scenario())


def _bucket(server, replica: Backend) -> bool:
    names = [b["Name"] for b in server.client().list_buckets()["Buckets"]]
    return replica.meta_bucket in names
