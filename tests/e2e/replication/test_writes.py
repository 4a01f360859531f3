"""Replicated writes through the proxy, with an async replica (secondary) and a sync one
(tertiary): what each holds, read back directly with its own keys, when the client has heard
and a few seconds later; what stays on the primary."""

from __future__ import annotations

import os
import time

import pytest
from boto3.s3.transfer import TransferConfig

from tests.support.direct import has_bucket
from tests.support.migration import MIB
from tests.support.replication import (
    body_or_none,
    etag_or_none,
    eventually,
    shared_gateway,
    tags_on,
)

pytestmark = [pytest.mark.e2e, pytest.mark.topologies("moto", "seaweedfs")]


@pytest.fixture(scope="module")
def gateway(backends, run_proxy, tmp_path_factory):
    yield from shared_gateway(backends, run_proxy, tmp_path_factory.mktemp("replicated"))


@pytest.fixture
def client(gateway):
    return gateway.client()


@pytest.fixture
def made(client, backends, bucket):
    """A bucket made through the proxy: on every backend once the async replica has it."""
    client.create_bucket(Bucket=bucket)
    eventually(lambda: has_bucket(backends[1], bucket))
    return bucket


def test_create_bucket_reaches_the_sync_replica_before_the_client_hears(client, backends, bucket):
    client.create_bucket(Bucket=bucket)
    backends[2].client().head_bucket(Bucket=bucket)  # at once
    eventually(lambda: has_bucket(backends[1], bucket))


def test_a_put_is_on_the_sync_replica_at_once_and_on_the_async_one_within_seconds(
    client, backends, made
):
    body = os.urandom(100_000)
    client.put_object(Bucket=made, Key="a/k.bin", Body=body, ContentType="image/png")
    heard = time.monotonic()
    assert body_or_none(backends[2], made, "a/k.bin") == body
    eventually(lambda: body_or_none(backends[1], made, "a/k.bin") == body, seconds=10)
    lag = time.monotonic() - heard
    assert lag < 10
    for replica in backends[1:]:
        head = replica.client().head_object(Bucket=made, Key="a/k.bin")
        assert head["ContentType"] == "image/png"
        assert head["Metadata"]["s3multi-replica"] == backends[0].name


def test_a_copy_is_on_the_sync_replica_at_once(client, backends, made):
    client.put_object(Bucket=made, Key="source", Body=b"copied bytes")
    client.copy_object(Bucket=made, Key="copy", CopySource={"Bucket": made, "Key": "source"})
    assert body_or_none(backends[2], made, "copy") == b"copied bytes"
    eventually(lambda: body_or_none(backends[1], made, "copy") == b"copied bytes")


def test_a_multipart_object_reaches_both_with_the_primarys_etag(client, backends, made):
    body = os.urandom(11 * MIB)
    parts = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    client.upload_fileobj(_Reader(body), made, "big.bin", Config=parts)
    etag = etag_or_none(backends[0], made, "big.bin")
    assert etag is not None and etag.endswith('-3"')
    for replica in backends[1:]:
        eventually(lambda r=replica: etag_or_none(r, made, "big.bin") == etag, seconds=30)
        assert body_or_none(replica, made, "big.bin") == body


def test_deletes_reach_every_replica_before_the_client_hears(client, backends, made):
    for key in ("one", "two", "three"):
        client.put_object(Bucket=made, Key=key, Body=key.encode())
    for replica in backends[1:]:
        eventually(lambda r=replica: body_or_none(r, made, "three") == b"three")
    client.delete_object(Bucket=made, Key="one")
    objects = [{"Key": "two"}, {"Key": "three"}]
    answer = client.delete_objects(Bucket=made, Delete={"Objects": objects})
    assert not answer.get("Errors")
    for replica in backends[1:]:  # the async replica too, at once
        assert [body_or_none(replica, made, k) for k in ("one", "two", "three")] == [None] * 3


def test_tags_reach_the_sync_replica_at_once_and_the_async_one_soon(client, backends, made):
    client.put_object(Bucket=made, Key="k", Body=b"tagged")
    tagging = {"TagSet": [{"Key": "state", "Value": "final"}]}
    client.put_object_tagging(Bucket=made, Key="k", Tagging=tagging)
    assert tags_on(backends[2], made, "k") == [("state", "final")]
    eventually(lambda: tags_on(backends[1], made, "k") == [("state", "final")])
    client.delete_object_tagging(Bucket=made, Key="k")
    assert tags_on(backends[2], made, "k") == []
    eventually(lambda: tags_on(backends[1], made, "k") == [])


def test_bucket_configuration_stays_on_the_primary(client, backends, made):
    client.put_bucket_versioning(Bucket=made, VersioningConfiguration={"Status": "Enabled"})
    assert backends[0].client().get_bucket_versioning(Bucket=made).get("Status") == "Enabled"
    time.sleep(1)
    for replica in backends[1:]:
        assert replica.client().get_bucket_versioning(Bucket=made).get("Status") is None


class _Reader:
    """A file object over bytes, without seek(): boto3 reads it part by part."""

    def __init__(self, body: bytes) -> None:
        self.body, self.at = body, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self.body) if size < 0 else self.at + size
        piece, self.at = self.body[self.at : end], min(end, len(self.body))
        return piece
