"""addon.replication's repair job on real servers, in-process: make_equal over BackendSides makes
the replica's key what the primary's is (bytes, ETag, description, tags, the marks of a copy),
keeps a multipart object's part layout, deletes only what the proxy put there (or what was
deleted through it), creates a missing bucket, and follows a primary that changes under it."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os

import pytest

from addon.replication.plan import DELETE, OBJECT, TAGS
from addon.replication.repair import Job, make_equal
from addon.replication.sides import BackendSides
from addon.upstream.backend_client import BackendClient
from tests.support.direct import put_direct
from tests.support.migration import MIB, backend, head_or_none, stored_sha256

pytestmark = [pytest.mark.e2e, pytest.mark.topologies("moto", "seaweedfs")]


def repair(backends, job: Job, client: BackendClient | None = None) -> str:
    primary, replica = backend(backends[0], 0), backend(backends[1], 1, replicate="async")

    async def run() -> str:
        own = client or BackendClient()
        try:
            return await make_equal(BackendSides(own, primary, replica), job)
        finally:
            own.close()

    return asyncio.run(run())


def both_buckets(backends, bucket: str) -> None:
    for server in backends[:2]:
        with contextlib.suppress(Exception):
            server.client().create_bucket(Bucket=bucket)


def test_a_copy_carries_the_bytes_the_description_the_tags_and_the_marks(backends, bucket):
    primary, replica = backends[0].client(), backends[1].client()
    both_buckets(backends, bucket)
    body = os.urandom(300_000)
    primary.put_object(
        Bucket=bucket,
        Key="dir/k.bin",
        Body=body,
        ContentType="image/png",
        Metadata={"owner": "ann"},
        Tagging="team=blue&tier=1",
    )
    assert repair(backends, Job(OBJECT, bucket, "dir/k.bin")) == "copied"
    original = primary.head_object(Bucket=bucket, Key="dir/k.bin")
    copy = replica.head_object(Bucket=bucket, Key="dir/k.bin")
    assert stored_sha256(backends[1], bucket, "dir/k.bin") == hashlib.sha256(body).hexdigest()
    assert copy["ETag"] == original["ETag"] and copy["ContentType"] == "image/png"
    assert copy["Metadata"] == {
        "owner": "ann",
        "s3multi-source-etag": original["ETag"].strip('"'),
        "s3multi-replica": backends[0].name,
    }
    tags = replica.get_object_tagging(Bucket=bucket, Key="dir/k.bin")["TagSet"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("team", "blue"), ("tier", "1")]
    assert repair(backends, Job(OBJECT, bucket, "dir/k.bin")) == "equal"  # nothing more to do


def test_a_multipart_object_keeps_its_layout_and_so_its_etag(backends, bucket):
    primary = backends[0].client()
    both_buckets(backends, bucket)
    upload = primary.create_multipart_upload(Bucket=bucket, Key="big")["UploadId"]
    parts = []
    for number, size in enumerate([5 * MIB, 6 * MIB, 123], 1):
        answer = primary.upload_part(
            Bucket=bucket, Key="big", UploadId=upload, PartNumber=number, Body=b"%d" % number * size
        )
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
    primary.complete_multipart_upload(
        Bucket=bucket, Key="big", UploadId=upload, MultipartUpload={"Parts": parts}
    )
    assert repair(backends, Job(OBJECT, bucket, "big")) == "copied"
    etag = primary.head_object(Bucket=bucket, Key="big")["ETag"]
    assert etag.endswith('-3"')
    assert backends[1].client().head_object(Bucket=bucket, Key="big")["ETag"] == etag
    assert stored_sha256(backends[1], bucket, "big") == stored_sha256(backends[0], bucket, "big")


def test_an_older_copy_is_replaced_and_a_deleted_one_removed(backends, bucket):
    both_buckets(backends, bucket)
    put_direct(backends[0], bucket, "k", b"old")
    repair(backends, Job(OBJECT, bucket, "k"))
    put_direct(backends[0], bucket, "k", b"new")
    assert repair(backends, Job(OBJECT, bucket, "k")) == "copied"
    assert backends[1].client().get_object(Bucket=bucket, Key="k")["Body"].read() == b"new"
    backends[0].client().delete_object(Bucket=bucket, Key="k")
    assert repair(backends, Job(OBJECT, bucket, "k")) == "deleted"
    assert head_or_none(backends[1], bucket, "k") is None


def test_the_replicas_own_data_stays_unless_deleted_through_the_proxy(backends, bucket):
    """A key only the replica has, without the proxy's mark, is data from before it was a
    replica: a reconciliation keeps it; a delete through the proxy does not."""
    both_buckets(backends, bucket)
    put_direct(backends[1], bucket, "own", b"from before")
    assert repair(backends, Job(OBJECT, bucket, "own")) == "kept"
    assert head_or_none(backends[1], bucket, "own") is not None
    assert repair(backends, Job(DELETE, bucket, "own")) == "deleted"
    assert head_or_none(backends[1], bucket, "own") is None


def test_a_bucket_the_replica_lacks_is_created(backends, bucket):
    put_direct(backends[0], bucket, "k", b"body")
    assert repair(backends, Job(OBJECT, bucket, "k")) == "copied"
    assert backends[1].client().get_object(Bucket=bucket, Key="k")["Body"].read() == b"body"


def test_tags_changed_on_the_primary_follow(backends, bucket):
    both_buckets(backends, bucket)
    put_direct(backends[0], bucket, "k", b"body")
    repair(backends, Job(OBJECT, bucket, "k"))
    tagging = {"TagSet": [{"Key": "state", "Value": "done"}]}
    backends[0].client().put_object_tagging(Bucket=bucket, Key="k", Tagging=tagging)
    assert repair(backends, Job(TAGS, bucket, "k")) == TAGS
    tags = backends[1].client().get_object_tagging(Bucket=bucket, Key="k")["TagSet"]
    assert tags == tagging["TagSet"]


class WriteDuringCopy(BackendClient):
    """The client's next version lands on the primary while the job reads the primary's."""

    def __init__(self, server, bucket: str) -> None:
        super().__init__()
        self.server, self.bucket, self.done = server, bucket, False

    @contextlib.asynccontextmanager
    async def request(self, backend, method, bucket, key_path="", query="", *args, **kwargs):
        async with super().request(backend, method, bucket, key_path, query, *args, **kwargs) as r:
            if method == "GET" and not self.done:
                self.done = True
                put_direct(self.server, self.bucket, "k", b"the newer version")
            yield r


def test_a_primary_written_during_the_copy_is_copied_again(backends, bucket):
    """The copy of the older version may land; the post-check sees the newer one and runs
    again: the replica ends with the newer version."""
    both_buckets(backends, bucket)
    put_direct(backends[0], bucket, "k", b"the older version")
    client = WriteDuringCopy(backends[0], bucket)
    assert repair(backends, Job(OBJECT, bucket, "k"), client) == "copied"
    body = backends[1].client().get_object(Bucket=bucket, Key="k")["Body"].read()
    assert body == b"the newer version"
