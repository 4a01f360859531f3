"""Uploads end to end: every aws-chunked form, HTTPS clients, checksums, refusals in bounded memory.

Objects are read back from the primary directly, byte for byte: chunk framing stored inside an
object is the classic failure of S3 proxies.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import replace

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from tests.support.aws_chunked_reference import signed_chunk_upload
from tests.support.clients import s3_client
from tests.support.direct import has_bucket, has_object
from tests.support.processes import aws_cli
from tests.support.proxy import peak_rss, write_config
from tests.support.raw_http import Connection, Request, fetch, send
from tests.support.signing import sigv4
from tests.support.topologies import EACH_PRIMARY

pytestmark = [pytest.mark.e2e, pytest.mark.topologies(*EACH_PRIMARY)]

MIB = 1024 * 1024


def capture_payload_hashes(client) -> list[str]:
    """The x-amz-content-sha256 of every request the boto3 client sends."""
    seen: list[str] = []

    def before_send(request, **_):
        seen.append(request.headers.get("x-amz-content-sha256", b"").decode())

    client.meta.events.register("before-send.s3", before_send)
    return seen


@pytest.mark.parametrize("trailer", [False, True], ids=["signed", "signed-trailer"])
@pytest.mark.client("Java/Go SDK, MinIO client style", "signed aws-chunked uploads (built by hand)")
def test_signed_chunk_upload_is_stored_without_framing(proxy, backends, bucket, trailer):
    primary = backends[0]
    primary.client().create_bucket(Bucket=bucket)
    data = os.urandom(300_000)
    upload = signed_chunk_upload(proxy.port, f"/{bucket}/chunked", data, trailer=trailer)

    answer = send(proxy.port, upload)
    assert answer.status == 200, answer.body
    assert primary.client().get_object(Bucket=bucket, Key="chunked")["Body"].read() == data
    assert not has_bucket(backends[1], bucket)


def test_a_forged_chunk_stores_nothing(proxy, backends, bucket):
    primary = backends[0]
    primary.client().create_bucket(Bucket=bucket)
    data = os.urandom(200_000)
    upload = signed_chunk_upload(proxy.port, f"/{bucket}/forged", data)
    forged = bytearray(upload.body)
    forged[len(forged) // 2] ^= 0xFF  # a byte of the second chunk

    answer = send(proxy.port, replace(upload, body=bytes(forged)))
    assert (answer.status, answer.error()["Code"]) == (403, "SignatureDoesNotMatch")
    assert not has_object(primary, bucket, "forged")


def test_a_truncated_chunked_body_stores_nothing(proxy, backends, bucket):
    primary = backends[0]
    primary.client().create_bucket(Bucket=bucket)
    data = os.urandom(200_000)
    upload = signed_chunk_upload(proxy.port, f"/{bucket}/short", data)
    with Connection(proxy.port, timeout=30) as connection:
        connection.write(upload.head() + upload.body[:-1000])
        connection.end_writing()  # the client gives up half-way
        connection.read_until_closed()
    time.sleep(0.5)
    assert not has_object(primary, bucket, "short")


@pytest.mark.client("boto3", "HTTPS: put_object (aws-chunked with CRC32 trailer)")
def test_boto3_over_https_uses_the_trailer_form_and_reads_back(proxy, backends, bucket):
    client = proxy.client(https=True)
    sent = capture_payload_hashes(client)
    client.create_bucket(Bucket=bucket)
    data = os.urandom(3 * MIB + 5)

    client.put_object(Bucket=bucket, Key="over-https", Body=data)
    assert "STREAMING-UNSIGNED-PAYLOAD-TRAILER" in sent
    assert client.get_object(Bucket=bucket, Key="over-https")["Body"].read() == data
    stored = (
        backends[0].client().get_object(Bucket=bucket, Key="over-https", ChecksumMode="ENABLED")
    )
    assert stored["Body"].read() == data
    assert stored["ChecksumCRC32"]  # the trailing checksum reached the backend


@pytest.mark.client("boto3", "HTTPS: upload_file / download_file, multipart")
def test_boto3_multipart_upload_over_https(proxy, backends, bucket, tmp_path):
    client = proxy.client(https=True)
    client.create_bucket(Bucket=bucket)
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(12 * MIB + 1))
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)

    client.upload_file(str(source), bucket, "multi.bin", Config=config)
    stored = backends[0].client().get_object(Bucket=bucket, Key="multi.bin")
    assert stored["ETag"].strip('"').endswith("-3")
    assert stored["Body"].read() == source.read_bytes()
    target = tmp_path / "back.bin"
    client.download_file(bucket, "multi.bin", str(target))
    assert target.read_bytes() == source.read_bytes()


@pytest.mark.slow
@pytest.mark.client("aws CLI", "HTTPS: mb, cp (20 MiB multipart), s3api")
def test_aws_cli_over_https(proxy, backends, bucket, tmp_path):
    def aws(*args: str) -> bytes:
        return aws_cli("--endpoint-url", proxy.https_endpoint, *args, AWS_CA_BUNDLE=proxy.ca_file)

    source = tmp_path / "cli.bin"
    source.write_bytes(os.urandom(20 * MIB))  # multipart with the CLI's defaults
    aws("s3", "mb", f"s3://{bucket}")
    aws("s3", "cp", str(source), f"s3://{bucket}/cli.bin")
    aws("s3", "cp", f"s3://{bucket}/cli.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == source.read_bytes()
    assert backends[0].client().get_object(Bucket=bucket, Key="cli.bin")["Body"].read() == (
        source.read_bytes()
    )
    head = json.loads(aws("s3api", "head-object", "--bucket", bucket, "--key", "cli.bin"))
    assert head["ContentLength"] == 20 * MIB


def test_a_backend_without_checksums_gets_the_plain_object(backends, run_proxy, tmp_path, bucket):
    primary = backends[0]
    proxy = run_proxy(write_config(tmp_path / "c.json", [primary], disableChecksum=True))
    client = proxy.client(https=True)
    sent = capture_payload_hashes(client)
    client.create_bucket(Bucket=bucket)
    data = os.urandom(2 * MIB)

    client.put_object(Bucket=bucket, Key="plain", Body=data, ContentEncoding="gzip")
    assert "STREAMING-UNSIGNED-PAYLOAD-TRAILER" in sent
    stored = primary.client().get_object(Bucket=bucket, Key="plain", ChecksumMode="ENABLED")
    assert stored["Body"].read() == data
    assert "ChecksumCRC32" not in stored  # neither header nor trailer reached it
    # The client sent Content-Encoding "gzip,aws-chunked": the decoded body is gzip only. (moto
    # would drop aws-chunked itself; SeaweedFS stores what it is sent.)
    assert stored["ContentEncoding"] == "gzip"


@pytest.mark.topologies("seaweedfs-primary")  # moto does not check Content-MD5
def test_a_body_that_does_not_match_its_content_md5_is_refused_by_the_primary(
    proxy, backends, bucket
):
    proxy.client().create_bucket(Bucket=bucket)
    wrong = base64.b64encode(hashlib.md5(b"what was meant").digest()).decode()
    with pytest.raises(ClientError) as got:
        proxy.client().put_object(Bucket=bucket, Key="md5", Body=b"what was sent", ContentMD5=wrong)
    assert got.value.response["Error"]["Code"] == "BadDigest"
    assert not has_object(backends[0], bucket, "md5")


def test_a_body_that_does_not_match_its_signed_hash_stores_nothing(proxy, backends, bucket):
    primary = backends[0]
    primary.client().create_bucket(Bucket=bucket)
    signed_body, sent_body = b"what was signed" * 1000, b"what was sent!!" * 1000
    payload_hash = hashlib.sha256(signed_body).hexdigest()
    headers = (("Host", f"127.0.0.1:{proxy.port}"), ("Content-Type", "text/plain"))
    signed = sigv4(
        Request("PUT", f"/{bucket}/tampered", headers=headers), payload_hash=payload_hash
    )
    tampered = replace(signed.add("Content-Length", str(len(sent_body))), body=sent_body)
    answer = send(proxy.port, tampered)
    assert (answer.status, answer.error()["Code"]) == (400, "XAmzContentSHA256Mismatch")
    assert not has_object(primary, bucket, "tampered")


@pytest.mark.topologies("moto")  # refused by the proxy: no backend takes part
@pytest.mark.slow
def test_a_refused_1_gib_upload_is_not_read_into_memory(backends, run_proxy, tmp_path, bucket):
    proxy = run_proxy(write_config(tmp_path / "c.json", backends[:1]))
    before = proxy.rss_mb()
    size, piece = 1024 * MIB, bytes(MIB)
    fields = (
        ("Host", f"127.0.0.1:{proxy.port}"),
        ("Content-Length", str(size)),
        ("Content-Type", "application/octet-stream"),
    )
    unsigned = Request("PUT", f"/{bucket}/huge", headers=fields)
    with peak_rss(proxy) as peak, Connection(proxy.port, timeout=30) as connection:
        connection.write(unsigned.head())
        sent = 0
        # Until the proxy answers and closes its side: the rest is not wanted.
        while sent < size and connection.write(piece):
            sent += len(piece)
        answer = connection.answer("PUT")
    assert (answer.status, answer.error()["Code"]) == (403, "AccessDenied")
    assert peak[0] - before < 100, f"RSS grew from {before:.0f} MB to {peak[0]:.0f} MB"
    assert not has_object(backends[0], bucket, "huge")


def test_presigned_put_is_not_a_way_around_the_signature(proxy, backends, bucket):
    """A PUT with a body but a broken presigned signature is refused and stores nothing."""
    backends[0].client().create_bucket(Bucket=bucket)
    presigner = s3_client(proxy.endpoint, signature_version="s3v4")
    url = presigner.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=60
    )
    broken = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    answer = fetch(broken, "PUT", b"x" * 10, headers=(("Content-Type", "text/plain"),))
    assert (answer.status, answer.error()["Code"]) == (403, "SignatureDoesNotMatch")
    assert not has_object(backends[0], bucket, "p")
