"""Uploads end to end: every aws-chunked form, HTTPS clients, checksums, refusals in bounded memory.

Objects are read back from the primary directly, byte for byte: chunk framing stored inside an
object is the classic failure of S3 proxies.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import socket
import threading
import time

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from addon import sigv4
from addon.aws_chunked import ChunkChain
from addon.sigv4 import signing_key
from tests.conftest import EACH_PRIMARY, ROOT_ACCESS, ROOT_SECRET, aws_cli, write_config
from tests.test_routing import has_bucket, has_object

pytestmark = pytest.mark.topologies(*EACH_PRIMARY)

MIB = 1024 * 1024


def capture_payload_hashes(client) -> list[str]:
    """The x-amz-content-sha256 of every request the boto3 client sends."""
    seen: list[str] = []

    def before_send(request, **_):
        seen.append(request.headers.get("x-amz-content-sha256", b"").decode())

    client.meta.events.register("before-send.s3", before_send)
    return seen


def signed_chunk_upload(
    port: int, path: str, data: bytes, chunk: int = 64 * 1024, trailer: bool = False
) -> tuple[dict[str, str], bytes]:
    """A STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER] request as the Java and Go SDKs send it."""
    form = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" + ("-TRAILER" if trailer else "")
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    framed_length = sum(len(f"{len(p):x};chunk-signature=") + 64 + 4 + len(p) for p in pieces)
    framed_length += len("0;chunk-signature=") + 64 + 2
    trailer_line = b""
    if trailer:
        digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
        trailer_line = f"x-amz-checksum-sha256:{digest}\r\n".encode()
        framed_length += len(trailer_line) + len("x-amz-trailer-signature:") + 64 + 2 + 2
    else:
        framed_length += 2
    headers = {
        "Content-Encoding": "aws-chunked",
        "Content-Type": "application/octet-stream",
        "Content-Length": str(framed_length),
        "x-amz-decoded-content-length": str(len(data)),
    }
    if trailer:
        headers["x-amz-trailer"] = "x-amz-checksum-sha256"
    host = f"127.0.0.1:{port}"
    signed = sigv4.sign_headers(
        access=ROOT_ACCESS,
        secret=ROOT_SECRET,
        region="us-east-1",
        method="PUT",
        host=host,
        path=sigv4.canonical_path(path),
        query="",
        headers=list(headers.items()),
        signed_headers=[h.lower() for h in headers],
        payload_hash=form,
    )
    timestamp = signed["X-Amz-Date"]
    seed = signed["Authorization"].rpartition("Signature=")[2]
    chain = ChunkChain(
        signing_key(ROOT_SECRET, timestamp[:8], "us-east-1"),
        timestamp,
        f"{timestamp[:8]}/us-east-1/s3/aws4_request",
        seed,
    )
    body = b"".join(
        f"{len(p):x};chunk-signature={chain.chunk(p)}\r\n".encode() + p + b"\r\n" for p in pieces
    )
    body += f"0;chunk-signature={chain.chunk(b'')}\r\n".encode()
    if trailer:
        canonical = trailer_line.replace(b"\r", b"")
        body += trailer_line + f"x-amz-trailer-signature:{chain.trailer(canonical)}\r\n".encode()
    body += b"\r\n"
    assert len(body) == framed_length
    return {**headers, **signed}, body


def send(port: int, method: str, path: str, headers: dict[str, str], body: bytes):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("trailer", [False, True], ids=["signed", "signed-trailer"])
@pytest.mark.client("Java/Go SDK, MinIO client style", "signed aws-chunked uploads (built by hand)")
def test_signed_chunk_upload_is_stored_without_framing(proxy, backends, bucket, trailer):
    primary = backends[0]
    primary.client().create_bucket(Bucket=bucket)
    data = os.urandom(300_000)
    headers, body = signed_chunk_upload(proxy.port, f"/{bucket}/chunked", data, trailer=trailer)

    status, answer = send(proxy.port, "PUT", f"/{bucket}/chunked", headers, body)
    assert status == 200, answer
    assert primary.client().get_object(Bucket=bucket, Key="chunked")["Body"].read() == data
    assert not has_bucket(backends[1], bucket)


def test_a_forged_chunk_stores_nothing(proxy, backends, bucket):
    primary = backends[0]
    primary.client().create_bucket(Bucket=bucket)
    data = os.urandom(200_000)
    headers, body = signed_chunk_upload(proxy.port, f"/{bucket}/forged", data)
    forged = bytearray(body)
    forged[len(body) // 2] ^= 0xFF  # a byte of the second chunk

    status, answer = send(proxy.port, "PUT", f"/{bucket}/forged", headers, bytes(forged))
    assert status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in answer
    assert not has_object(primary, bucket, "forged")


def test_a_truncated_chunked_body_stores_nothing(proxy, backends, bucket):
    primary = backends[0]
    primary.client().create_bucket(Bucket=bucket)
    data = os.urandom(200_000)
    headers, body = signed_chunk_upload(proxy.port, f"/{bucket}/short", data)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as sock:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall(
            f"PUT /{bucket}/short HTTP/1.1\r\nHost: 127.0.0.1:{proxy.port}\r\n{head}\r\n".encode()
        )
        sock.sendall(body[:-1000])
        sock.shutdown(socket.SHUT_WR)  # the client gives up half-way
        sock.recv(65536)
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
    headers = {"Content-Type": "text/plain", "Content-Length": str(len(sent_body))}
    headers.update(
        sigv4.sign_headers(
            access=ROOT_ACCESS,
            secret=ROOT_SECRET,
            region="us-east-1",
            method="PUT",
            host=f"127.0.0.1:{proxy.port}",
            path=f"/{bucket}/tampered",
            query="",
            headers=list(headers.items()),
            signed_headers=["content-type"],
            payload_hash=payload_hash,
        )
    )
    status, answer = send(proxy.port, "PUT", f"/{bucket}/tampered", headers, sent_body)
    assert status == 400 and b"<Code>XAmzContentSHA256Mismatch</Code>" in answer
    assert not has_object(primary, bucket, "tampered")


@pytest.mark.topologies("moto")  # refused by the proxy: no backend takes part
def test_a_refused_1_gib_upload_is_not_read_into_memory(backends, run_proxy, tmp_path, bucket):
    proxy = run_proxy(write_config(tmp_path / "c.json", backends[:1]))
    before = proxy.rss_mb()
    size = 1024 * MIB
    piece = bytes(MIB)
    peak = before
    answer = b""

    def watch(stop: threading.Event) -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, proxy.rss_mb())
            time.sleep(0.02)

    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(stop,))
    watcher.start()
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as sock:
            sock.sendall(
                f"PUT /{bucket}/huge HTTP/1.1\r\nHost: 127.0.0.1:{proxy.port}\r\n"
                f"Content-Length: {size}\r\nContent-Type: application/octet-stream\r\n\r\n".encode()
            )
            sent = 0
            try:
                while sent < size:
                    sock.sendall(piece)
                    sent += len(piece)
            except OSError:
                pass  # the proxy answered and closed its side; the rest is not wanted
            sock.settimeout(10)
            answer = sock.recv(65536)
    finally:
        stop.set()
        watcher.join()
    assert answer.startswith(b"HTTP/1.1 403"), answer[:200]
    assert b"<Code>AccessDenied</Code>" in answer
    assert peak - before < 100, f"RSS grew from {before:.0f} MB to {peak:.0f} MB"
    assert not has_object(backends[0], bucket, "huge")


def test_presigned_put_is_not_a_way_around_the_signature(proxy, backends, bucket):
    """A PUT with a body but a broken presigned signature is refused and stores nothing."""
    backends[0].client().create_bucket(Bucket=bucket)
    presigner = boto3.client(
        "s3",
        endpoint_url=proxy.endpoint,
        region_name="us-east-1",
        aws_access_key_id=ROOT_ACCESS,
        aws_secret_access_key=ROOT_SECRET,
        config=Config(signature_version="s3v4"),
    )
    url = presigner.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=60
    )
    path = url.split(str(proxy.port), 1)[1].replace("X-Amz-Signature=", "X-Amz-Signature=0")
    status, answer = send(proxy.port, "PUT", path, {"Content-Type": "text/plain"}, b"x" * 10)
    assert status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in answer
    with pytest.raises(ClientError):
        backends[0].client().head_object(Bucket=bucket, Key="p")
