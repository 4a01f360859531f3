"""Multipart uploads and copies: every step on the primary, objects byte for byte, large bodies
streamed through the proxy in bounded memory (its RSS is sampled while they pass)."""

from __future__ import annotations

import hashlib
import os

import pytest
from botocore.exceptions import ClientError

from tests.support.direct import has_bucket, put_direct
from tests.support.files import file_sha256
from tests.support.processes import aws_cli
from tests.support.proxy import peak_rss, write_config
from tests.support.topologies import EACH_PRIMARY

pytestmark = [pytest.mark.e2e, pytest.mark.topologies(*EACH_PRIMARY)]

MIB = 1024 * 1024
RSS_BOUND_MB = 150


@pytest.mark.client("boto3", "every multipart step")
def test_multipart_steps_all_go_to_the_primary(proxy, backends, bucket):
    primary, secondary, _ = backends
    client = proxy.client()
    client.create_bucket(Bucket=bucket)
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(MIB + 3)]

    upload = client.create_multipart_upload(Bucket=bucket, Key="mp.bin")["UploadId"]
    etags = [
        client.upload_part(Bucket=bucket, Key="mp.bin", UploadId=upload, PartNumber=n, Body=part)[
            "ETag"
        ]
        for n, part in enumerate(parts, 1)
    ]
    listed = client.list_parts(Bucket=bucket, Key="mp.bin", UploadId=upload)["Parts"]
    assert [p["ETag"] for p in listed] == etags
    uploads = client.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [u["UploadId"] for u in uploads] == [upload]
    done = client.complete_multipart_upload(
        Bucket=bucket,
        Key="mp.bin",
        UploadId=upload,
        MultipartUpload={"Parts": [{"ETag": e, "PartNumber": n} for n, e in enumerate(etags, 1)]},
    )
    assert done["ETag"].strip('"').endswith("-3")
    assert primary.client().get_object(Bucket=bucket, Key="mp.bin")["Body"].read() == b"".join(
        parts
    )
    assert not has_bucket(secondary, bucket)


def test_abort_removes_the_upload(proxy, bucket):
    client = proxy.client()
    client.create_bucket(Bucket=bucket)
    upload = client.create_multipart_upload(Bucket=bucket, Key="gone")["UploadId"]
    client.upload_part(Bucket=bucket, Key="gone", UploadId=upload, PartNumber=1, Body=b"x")
    client.abort_multipart_upload(Bucket=bucket, Key="gone", UploadId=upload)
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    with pytest.raises(ClientError) as got:
        client.list_parts(Bucket=bucket, Key="gone", UploadId=upload)
    assert got.value.response["Error"]["Code"] == "NoSuchUpload"  # not a fallback reason


@pytest.mark.client("boto3", "CopyObject, UploadPartCopy")
def test_copy_object_and_upload_part_copy_on_the_primary(proxy, backends, bucket):
    client = proxy.client()
    client.create_bucket(Bucket=bucket)
    source = os.urandom(6 * MIB)
    client.put_object(Bucket=bucket, Key="src", Body=source)

    client.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "src"})
    upload = client.create_multipart_upload(Bucket=bucket, Key="pc")["UploadId"]
    first = client.upload_part_copy(
        Bucket=bucket,
        Key="pc",
        UploadId=upload,
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "src"},
        CopySourceRange=f"bytes=0-{5 * MIB - 1}",
    )["CopyPartResult"]["ETag"]
    second = client.upload_part(
        Bucket=bucket, Key="pc", UploadId=upload, PartNumber=2, Body=b"tail"
    )["ETag"]
    client.complete_multipart_upload(
        Bucket=bucket,
        Key="pc",
        UploadId=upload,
        MultipartUpload={
            "Parts": [{"ETag": first, "PartNumber": 1}, {"ETag": second, "PartNumber": 2}]
        },
    )
    primary = backends[0].client()
    assert primary.get_object(Bucket=bucket, Key="copy")["Body"].read() == source
    assert primary.get_object(Bucket=bucket, Key="pc")["Body"].read() == source[: 5 * MIB] + b"tail"


def test_copy_of_a_fallback_only_source_is_written_to_the_primary(proxy, backends, bucket):
    """A copy is a write, so its result is the primary's, whichever backend holds the source."""
    primary, secondary, _ = backends
    primary.client().create_bucket(Bucket=bucket)
    put_direct(secondary, bucket, "warm", b"only on the secondary")
    proxy.client().copy_object(
        Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "warm"}
    )
    assert primary.client().get_object(Bucket=bucket, Key="copy")["Body"].read() == (
        b"only on the secondary"
    )
    with pytest.raises(ClientError):
        secondary.client().head_object(Bucket=bucket, Key="copy")


@pytest.mark.slow
@pytest.mark.client("aws CLI", "cp of 100 MiB (concurrent parts)")
def test_aws_cli_multipart_of_100_mib(proxy, backends, bucket, tmp_path):
    source = tmp_path / "big.bin"
    with source.open("wb") as f:
        for _ in range(100):
            f.write(os.urandom(MIB))
    proxy.client().create_bucket(Bucket=bucket)
    aws_cli("--endpoint-url", proxy.endpoint, "s3", "cp", str(source), f"s3://{bucket}/big.bin")
    stored = backends[0].client().get_object(Bucket=bucket, Key="big.bin")
    assert stored["ETag"].strip('"').endswith("-13")  # 8 MiB parts, sent concurrently
    digest = hashlib.sha256()
    for piece in stored["Body"].iter_chunks(MIB):
        digest.update(piece)
    assert digest.hexdigest() == hashlib.sha256(source.read_bytes()).hexdigest()


class Zeros:
    """A file-like body of `size` bytes that never exists in memory at once."""

    def __init__(self, size: int) -> None:
        self.size, self.position = size, 0

    def read(self, n: int = -1) -> bytes:
        n = self.size - self.position if n < 0 else min(n, self.size - self.position)
        self.position += n
        return bytes(n)

    def seek(self, position: int, whence: int = 0) -> int:
        self.position = {0: position, 1: self.position + position, 2: self.size + position}[whence]
        return self.position

    def tell(self) -> int:
        return self.position


@pytest.mark.slow
def test_256_mib_put_get_and_fallback_get_stay_in_bounded_memory(
    backends, run_proxy, tmp_path, bucket
):
    primary, secondary, _ = backends
    proxy = run_proxy(write_config(tmp_path / "c.json", [primary, secondary]))
    client = proxy.client()
    size = 256 * MIB
    client.create_bucket(Bucket=bucket)
    secondary.client().create_bucket(Bucket=bucket)
    secondary.client().put_object(Bucket=bucket, Key="warm", Body=Zeros(size), ContentLength=size)

    def download(key: str) -> int:
        received = 0
        for piece in client.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(MIB):
            received += len(piece)
        return received

    with peak_rss(proxy) as put_peak:
        client.put_object(Bucket=bucket, Key="big", Body=Zeros(size), ContentLength=size)
    with peak_rss(proxy) as get_peak:
        assert download("big") == size
    with peak_rss(proxy) as fallback_peak:
        assert download("warm") == size
    peaks = {"PUT": put_peak[0], "GET": get_peak[0], "fallback GET": fallback_peak[0]}
    assert all(mb < RSS_BOUND_MB for mb in peaks.values()), peaks
    assert primary.client().head_object(Bucket=bucket, Key="big")["ContentLength"] == size


# On SeaweedFS only: moto keeps objects in Python memory, which made this the suite's slowest
# test (570 s against SeaweedFS's 60 s on this machine under load); the proxy's part is the same.
@pytest.mark.topologies("seaweedfs-primary")
@pytest.mark.slow
@pytest.mark.client("aws CLI", "cp of 1 GiB (128 concurrent parts)")
def test_aws_cli_multipart_of_1_gib(proxy, backends, bucket, tmp_path):
    """128 concurrent 8 MiB parts through the proxy; read back whole and compared by hash."""
    source = tmp_path / "gib.bin"
    block = os.urandom(MIB)
    with source.open("wb") as f:
        for i in range(1024):
            f.write(i.to_bytes(4, "big") + block[4:])  # no two MiB alike
    aws = ("--endpoint-url", proxy.endpoint, "s3", "cp")
    proxy.client().create_bucket(Bucket=bucket)
    aws_cli(*aws, str(source), f"s3://{bucket}/gib.bin")
    back = tmp_path / "gib.back"
    aws_cli(*aws, f"s3://{bucket}/gib.bin", str(back))
    assert backends[0].client().head_object(Bucket=bucket, Key="gib.bin")["ETag"].endswith('-128"')
    assert file_sha256(back) == file_sha256(source)
    source.unlink()
    back.unlink()
