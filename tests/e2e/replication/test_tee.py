"""The streamed tee of a PutObject to a sync replica, on real processes: two SeaweedFS servers of
the module's own, each behind a relay that counts what it receives. The client's object goes to
the primary and to the replica at once (the replica gets a PUT of the body, the primary no GET
for a copy), in bounded memory at 256 MiB (under 1 MB of RSS measured, the replica pacing the
client); a replica slower than the client paces it and keeps its tee; a body refused on its way
lands nowhere; a replica killed while its PUT streams never fails the client, and is repaired
once it is back; concurrent writes of one key end equal on both sides."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import replace

import pytest

from tests.support.aws_chunked_reference import signed_chunk_upload
from tests.support.direct import has_bucket, has_object
from tests.support.proxy import peak_rss
from tests.support.raw_http import Connection, send
from tests.support.relay import Relay
from tests.support.replication import etag_or_none, eventually, replicated_config
from tests.support.restartable import kill, restart, restartable_seaweeds

pytestmark = pytest.mark.e2e
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def servers():
    with restartable_seaweeds(["tee-main", "tee-dr"], quick=True) as pair:
        yield pair


@pytest.fixture(scope="module")
def relays(servers):
    with Relay(servers[0]) as primary, Relay(servers[1]) as replica:
        yield primary, replica


@pytest.fixture(scope="module")
def gateway(relays, run_proxy, tmp_path_factory):
    primary, replica = relays
    path = tmp_path_factory.mktemp("tee") / "c.json"
    settings = {"reconcileInterval": 0}
    proxy = run_proxy(replicated_config(path, primary, [(replica, "sync")], settings))
    yield proxy
    proxy.stop()


@pytest.fixture
def made(gateway, servers, relays, bucket):
    gateway.client().create_bucket(Bucket=bucket)
    assert has_bucket(servers[1], bucket)
    for relay in relays:
        relay.clear()
    return bucket


def _hash_on(server, bucket: str, key: str) -> str:
    digest = hashlib.sha256()
    body = server.client().get_object(Bucket=bucket, Key=key)["Body"]
    for piece in iter(lambda: body.read(MIB), b""):
        digest.update(piece)
    return digest.hexdigest()


def _file(path, size: int) -> str:
    """A file of `size` random bytes; its SHA-256."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(size // MIB):
            piece = os.urandom(MIB)
            digest.update(piece)
            out.write(piece)
    return digest.hexdigest()


def _put_of(bucket: str, key: str):
    return lambda r: r.method == "PUT" and r.bucket == bucket and r.key == key and not r.query


def _get_of(bucket: str, key: str):
    return lambda r: r.method == "GET" and r.bucket == bucket and r.key == key


@pytest.mark.slow
def test_a_256_mib_put_streams_to_the_replica_in_bounded_memory(
    gateway, servers, relays, made, tmp_path
):
    size = 256 * MIB
    path = tmp_path / "big"
    sha = _file(path, size)
    before = gateway.rss_mb()
    with peak_rss(gateway) as peak, path.open("rb") as body:
        gateway.client().put_object(Bucket=made, Key="big", Body=body)
    assert peak[0] - before < 40, f"RSS grew from {before:.0f} MB to {peak[0]:.0f} MB"
    assert _hash_on(servers[0], made, "big") == sha
    assert _hash_on(servers[1], made, "big") == sha  # at once: the client heard after it
    primary, replica = relays
    [teed] = replica.passed(_put_of(made, "big"))  # the replica got the body itself ...
    assert teed.headers["content-length"] == str(size)
    assert teed.headers["x-amz-meta-s3multi-replica"] == servers[0].name
    assert not primary.passed(_get_of(made, "big"))  # ... not a copy read from the primary
    assert etag_or_none(servers[0], made, "big") == etag_or_none(servers[1], made, "big")


def test_a_slow_replica_paces_the_client_and_keeps_its_tee(gateway, servers, relays, made):
    """The replica takes the body at 8 MB/s, the client could send far faster: without the
    client paced by the replica, the replica would fall the tee's budget behind and be copied
    from the primary instead."""
    size = 24 * MIB
    data = os.urandom(size)
    relays[1].throttle(_put_of(made, "slow"), 8e6)
    try:
        before = gateway.rss_mb()
        with peak_rss(gateway) as peak:
            gateway.client().put_object(Bucket=made, Key="slow", Body=data)
        teed = relays[1].passed(_put_of(made, "slow"))
    finally:
        relays[1].reset()  # (forgets the requests too)
    assert peak[0] - before < 40, f"RSS grew from {before:.0f} MB to {peak[0]:.0f} MB"
    assert len(teed) == 1
    assert not relays[0].passed(_get_of(made, "slow"))  # the tee was not cut
    expected = hashlib.sha256(data).hexdigest()
    assert _hash_on(servers[0], made, "slow") == _hash_on(servers[1], made, "slow") == expected


def test_a_small_put_is_teed_too(gateway, servers, relays, made):
    gateway.client().put_object(Bucket=made, Key="small", Body=b"small body", ContentType="a/b")
    assert servers[1].client().get_object(Bucket=made, Key="small")["Body"].read() == b"small body"
    assert servers[1].client().head_object(Bucket=made, Key="small")["ContentType"] == "a/b"
    assert relays[1].passed(_put_of(made, "small"))
    assert not relays[0].passed(_get_of(made, "small"))


@pytest.mark.parametrize("how", ["truncated", "forged"])
def test_a_bad_body_lands_nowhere(gateway, servers, relays, made, how):
    data = os.urandom(2 * MIB)
    upload = signed_chunk_upload(gateway.port, f"/{made}/bad", data)
    if how == "forged":
        forged = bytearray(upload.body)
        forged[-1000] ^= 0xFF  # a byte of the last chunk: the rest streamed on already
        answer = send(gateway.port, replace(upload, body=bytes(forged)))
        assert (answer.status, answer.error()["Code"]) == (403, "SignatureDoesNotMatch")
    else:
        with Connection(gateway.port, timeout=30) as connection:
            connection.write(upload.head() + upload.body[:-1000])
            connection.end_writing()  # the client gives up just before its end
            connection.read_until_closed()
    assert relays[1].passed(_put_of(made, "bad"))  # the replica's PUT had begun
    time.sleep(1)
    assert not has_object(servers[0], made, "bad")
    assert not has_object(servers[1], made, "bad")


def test_concurrent_streamed_writes_of_one_key_end_equal(gateway, servers, made):
    def write(n: int) -> None:
        client = gateway.client()
        for i in range(4):
            client.put_object(Bucket=made, Key="hot", Body=os.urandom(MIB + n * 1000 + i))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    etag = etag_or_none(servers[0], made, "hot")
    assert etag is not None
    eventually(lambda: etag_or_none(servers[1], made, "hot") == etag, seconds=30)


@pytest.mark.slow
def test_a_replica_killed_mid_tee_is_repaired_once_back(gateway, servers, relays, made, tmp_path):
    size = 64 * MIB
    path = tmp_path / "mid"
    sha = _file(path, size)
    outcome: list[object] = []

    def put() -> None:
        with path.open("rb") as body:
            outcome.append(gateway.client().put_object(Bucket=made, Key="mid", Body=body))

    writer = threading.Thread(target=put)
    writer.start()
    eventually(lambda: relays[1].passed(_put_of(made, "mid")), seconds=30, every=0.01)
    kill(servers[1])
    writer.join(60)
    assert outcome and outcome[0]["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert _hash_on(servers[0], made, "mid") == sha
    restart(servers[1])
    eventually(lambda: has_object(servers[1], made, "mid"), seconds=90)
    assert _hash_on(servers[1], made, "mid") == sha
