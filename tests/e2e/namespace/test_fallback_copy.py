"""Copies whose source only a fallback has: read there, written to the primary, as S3 answers a
copy; the source on the primary stays one server-side copy."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from botocore.exceptions import ClientError

from tests.support.direct import client as direct
from tests.support.direct import has_object, put_direct

pytestmark = pytest.mark.e2e
MIB = 1024 * 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def warm_source(backends, bucket):
    """A 6 MiB object only the secondary has, with metadata and tags; the bucket on the
    primary too."""
    primary, secondary, _ = backends
    direct(primary).create_bucket(Bucket=bucket)
    direct(secondary).create_bucket(Bucket=bucket)
    body = os.urandom(6 * MIB + 5)
    direct(secondary).put_object(
        Bucket=bucket,
        Key="warm.bin",
        Body=body,
        ContentType="application/x-warm",
        CacheControl="max-age=60",
        Metadata={"tier": "warm"},
        Tagging="source=secondary&kind=warm",
    )
    return body


def test_copy_object_of_a_fallback_only_source_lands_on_the_primary(
    proxy, backends, bucket, warm_source
):
    primary, secondary, _ = backends
    copied = proxy.client().copy_object(
        Bucket=bucket, Key="copy.bin", CopySource={"Bucket": bucket, "Key": "warm.bin"}
    )
    stored = direct(primary).get_object(Bucket=bucket, Key="copy.bin")
    assert sha(stored["Body"].read()) == sha(warm_source)
    assert copied["CopyObjectResult"]["ETag"] == stored["ETag"]
    assert (stored["ContentType"], stored["CacheControl"]) == ("application/x-warm", "max-age=60")
    assert stored["Metadata"] == {"tier": "warm"}
    tags = direct(primary).get_object_tagging(Bucket=bucket, Key="copy.bin")["TagSet"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [
        ("kind", "warm"),
        ("source", "secondary"),
    ]
    assert not has_object(secondary, bucket, "copy.bin")  # writes never touch a fallback
    assert "copied by the proxy from secondary" in proxy.log()


def test_replace_directives_take_the_requests_metadata_and_tags(
    proxy, backends, bucket, warm_source
):
    proxy.client().copy_object(
        Bucket=bucket,
        Key="replaced.bin",
        CopySource={"Bucket": bucket, "Key": "warm.bin"},
        MetadataDirective="REPLACE",
        ContentType="text/plain",
        Metadata={"tier": "hot"},
        TaggingDirective="REPLACE",
        Tagging="copied=yes",
    )
    stored = direct(backends[0]).head_object(Bucket=bucket, Key="replaced.bin")
    assert (stored["ContentType"], stored["Metadata"]) == ("text/plain", {"tier": "hot"})
    tags = direct(backends[0]).get_object_tagging(Bucket=bucket, Key="replaced.bin")["TagSet"]
    assert [(t["Key"], t["Value"]) for t in tags] == [("copied", "yes")]


def test_upload_part_copy_by_ranges_from_a_fallback(proxy, backends, bucket, warm_source):
    client = proxy.client()
    upload = client.create_multipart_upload(Bucket=bucket, Key="parts.bin")["UploadId"]
    half = 5 * MIB
    parts = []
    for number, span in ((1, f"bytes=0-{half - 1}"), (2, f"bytes={half}-{len(warm_source) - 1}")):
        answer = client.upload_part_copy(
            Bucket=bucket,
            Key="parts.bin",
            UploadId=upload,
            PartNumber=number,
            CopySource={"Bucket": bucket, "Key": "warm.bin"},
            CopySourceRange=span,
        )
        parts.append({"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]})
    client.complete_multipart_upload(
        Bucket=bucket, Key="parts.bin", UploadId=upload, MultipartUpload={"Parts": parts}
    )
    stored = direct(backends[0]).get_object(Bucket=bucket, Key="parts.bin")["Body"].read()
    assert sha(stored) == sha(warm_source)


def test_copy_source_conditions_hold_against_the_fallbacks_object(proxy, bucket, warm_source):
    with pytest.raises(ClientError) as failed:
        proxy.client().copy_object(
            Bucket=bucket,
            Key="never.bin",
            CopySource={"Bucket": bucket, "Key": "warm.bin"},
            CopySourceIfMatch='"not-its-etag"',
        )
    assert failed.value.response["Error"]["Code"] == "PreconditionFailed"


def test_a_source_on_the_primary_is_one_server_side_copy(proxy, backends, bucket):
    put_direct(backends[0], bucket, "hot.txt", b"hot")
    proxy.client().copy_object(
        Bucket=bucket, Key="hot-copy.txt", CopySource={"Bucket": bucket, "Key": "hot.txt"}
    )
    assert direct(backends[0]).get_object(Bucket=bucket, Key="hot-copy.txt")["Body"].read() == (
        b"hot"
    )
    line = next(x for x in proxy.log().splitlines() if f"/{bucket}/hot-copy.txt via" in x)
    assert line.endswith("answered by primary")


def test_a_source_nowhere_is_no_such_key(proxy, backends, bucket):
    direct(backends[0]).create_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as failed:
        proxy.client().copy_object(
            Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "nowhere"}
        )
    assert failed.value.response["Error"]["Code"] == "NoSuchKey"


def test_a_tombstoned_source_is_no_such_key(backends, run_proxy, tmp_path, bucket):
    entries = [
        {"name": s.name, "access": s.access, "secret": s.secret, "endpoint": s.endpoint,
         "usePathStyle": True}
        for s in backends
    ]  # fmt: skip
    entries[0]["metaBucket"] = "s3multi-meta-copy"
    (tmp_path / "c.json").write_text(json.dumps({"backends": entries}))
    proxy = run_proxy(tmp_path / "c.json")
    direct(backends[0]).create_bucket(Bucket=bucket)
    put_direct(backends[1], bucket, "gone.txt", b"deleted through the proxy")
    client = proxy.client()
    client.delete_object(Bucket=bucket, Key="gone.txt")
    with pytest.raises(ClientError) as failed:
        client.copy_object(
            Bucket=bucket, Key="copy.txt", CopySource={"Bucket": bucket, "Key": "gone.txt"}
        )
    assert failed.value.response["Error"]["Code"] == "NoSuchKey"
