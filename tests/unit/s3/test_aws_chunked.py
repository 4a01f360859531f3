"""The aws-chunked transducer, fed like mitmproxy feeds it: arbitrary pieces, then the end."""

from __future__ import annotations

import base64
import datetime
import hashlib
import os
import random
import re
import zlib
from unittest import mock

import pytest

from addon.s3.aws_chunked import (
    SIGNED,
    SIGNED_TRAILER,
    UNSIGNED_TRAILER,
    AwsChunkedUpload,
)
from addon.s3.body_checks import PayloadHashCheck
from addon.s3.content_encoding import decoded_headers
from addon.s3.errors import S3Error
from addon.s3.sigv4 import ChunkChain, signing_key
from addon.upstream.uploads import stream_callable
from tests.support import aws_chunked_reference as reference
from tests.support.raw_http import Request
from tests.support.root_keys import ROOT_SECRET
from tests.support.signing import sigv4

TIMESTAMP, REGION = "20130524T000000Z", "us-east-1"
SCOPE = "20130524/us-east-1/s3/aws4_request"
CLIENT_SECRET, BACKEND_SECRET = "client-secret", "backend-secret"
CLIENT_SEED, BACKEND_SEED = "a" * 64, "b" * 64

# AWS's published example (sigv4-streaming.html): 66560 bytes of "a" in chunks of 64 KiB and
# 1 KiB, then the final chunk, each with the signature AWS gives.
EXAMPLE_ACCESS, EXAMPLE_SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
EXAMPLE_SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
EXAMPLE_CHUNKS = [b"a" * 65536, b"a" * 1024]
EXAMPLE_SIGNATURES = [
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
]


def chain(secret: str, seed: str) -> ChunkChain:
    """The addon's chain, as the transducer under test is given it."""
    return ChunkChain(signing_key(secret, "20130524", REGION), TIMESTAMP, SCOPE, seed)


def reference_chain(secret: str, seed: str) -> reference.ChunkSigner:
    """The tests' own chain (tests/support), to sign what the client sends and check what the
    backend gets."""
    return reference.ChunkSigner(secret, TIMESTAMP, REGION, seed)


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def crc32_trailer(data: bytes) -> list[tuple[str, str]]:
    return [("x-amz-checksum-crc32", crc32_b64(data))]


def split(data: bytes, sizes: list[int]) -> list[bytes]:
    chunks, start = [], 0
    for size in sizes:
        chunks.append(data[start : start + size])
        start += size
    return chunks


def signed_body(chunks: list[bytes], trailers: list[tuple[str, str]] | None = None) -> bytes:
    """What a Java/Go SDK sends: each chunk signed on the client's chain, then the final one."""
    return reference.encode(
        chunks, signer=reference_chain(CLIENT_SECRET, CLIENT_SEED), trailers=trailers
    )


def unsigned_body(chunks: list[bytes], trailers: list[tuple[str, str]]) -> bytes:
    return reference.encode(chunks, trailers=trailers)


def feed(upload, body: bytes, seed: int = 0) -> bytes:
    """Feed in random pieces, as bytes arrive from the network."""
    rng, out, pos = random.Random(seed), bytearray(), 0
    while pos < len(body):
        size = rng.choice([1, 7, 100, 4096, 70_000])
        out += upload.feed(body[pos : pos + size])
        pos += size
    return bytes(out + upload.finish())


def new_upload(form: str, length: int, trailers=(), decode=False, client=True) -> AwsChunkedUpload:
    return AwsChunkedUpload(
        form,
        length,
        tuple(trailers),
        client=chain(CLIENT_SECRET, CLIENT_SEED) if client and form != UNSIGNED_TRAILER else None,
        backend=None if decode or form == UNSIGNED_TRAILER else chain(BACKEND_SECRET, BACKEND_SEED),
        decode=decode,
    )


def parse_signed(body: bytes) -> tuple[list[tuple[bytes, str]], bytes]:
    """(chunk data, signature) pairs including the final empty chunk, and what follows it."""
    chunks, pos = [], 0
    while True:
        end = body.index(b"\r\n", pos)
        size_text, _, extension = body[pos:end].partition(b";")
        size = int(size_text, 16)
        signature = extension.partition(b"=")[2].decode()
        chunks.append((body[end + 2 : end + 2 + size], signature))
        pos = end + 2 + size + (2 if size else 0)
        if size == 0:
            return chunks, body[pos:]


def test_the_addons_chain_matches_the_aws_documentation_example():
    key = signing_key(EXAMPLE_SECRET, "20130524", REGION)
    example = ChunkChain(key, TIMESTAMP, SCOPE, EXAMPLE_SEED)
    assert [example.chunk(c) for c in [*EXAMPLE_CHUNKS, b""]] == EXAMPLE_SIGNATURES


def test_the_tests_reference_matches_the_aws_documentation_example():
    """botocore signs the example's request to AWS's seed; the reference chains and frames the
    example's body to AWS's chunk signatures and Content-Length."""
    example = Request(
        "PUT",
        "/examplebucket/chunkObject.txt",
        headers=(
            ("Host", "s3.amazonaws.com"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("Content-Encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", "66560"),
            ("Content-Length", "66824"),
        ),
    )
    with mock.patch(
        "botocore.auth.get_current_datetime", return_value=datetime.datetime(2013, 5, 24)
    ):
        signed = sigv4(
            example, payload_hash=reference.SIGNED, access=EXAMPLE_ACCESS, secret=EXAMPLE_SECRET
        )
    assert signed.header("Authorization").endswith(f"Signature={EXAMPLE_SEED}")

    body = reference.encode(
        EXAMPLE_CHUNKS, signer=reference.ChunkSigner.seeded_by(signed, EXAMPLE_SECRET)
    )
    chunks, rest = parse_signed(body)
    assert [signature for _, signature in chunks] == EXAMPLE_SIGNATURES
    assert (len(body), rest) == (66824, b"\r\n")


@pytest.mark.parametrize("sizes", [[65536, 65536, 1000], [8192], [0]])
def test_signed_chunks_are_verified_and_signed_again_for_the_backend(sizes):
    data = os.urandom(sum(sizes))
    out = feed(new_upload(SIGNED, len(data)), signed_body(split(data, sizes) if data else []))

    chunks, rest = parse_signed(out)
    backend = reference_chain(BACKEND_SECRET, BACKEND_SEED)
    assert [signature for _, signature in chunks] == [backend.chunk(c) for c, _ in chunks]
    assert b"".join(c for c, _ in chunks) == data
    assert rest == b"\r\n"
    assert len(out) == len(signed_body(split(data, sizes) if data else []))  # sizes unchanged


def test_signed_trailer_is_verified_and_signed_again():
    data = os.urandom(20_000)
    upload = new_upload(SIGNED_TRAILER, len(data), ["x-amz-checksum-crc32"])
    out = feed(upload, signed_body(split(data, [10_000, 10_000]), crc32_trailer(data)))

    chunks, rest = parse_signed(out)
    assert b"".join(c for c, _ in chunks) == data
    trailer_line, signature_line, end = rest.split(b"\r\n", 2)
    assert trailer_line == f"x-amz-checksum-crc32:{crc32_b64(data)}".encode()
    name, _, signature = signature_line.decode().partition(":")
    assert name == "x-amz-trailer-signature"
    backend = reference_chain(BACKEND_SECRET, chunks[-1][1])
    assert signature == backend.trailer(trailer_line + b"\n")
    assert end == b"\r\n"


def test_unsigned_trailer_passes_through_unchanged():
    data = os.urandom(50_000)
    body = unsigned_body(split(data, [16384, 16384, 17232]), crc32_trailer(data))
    assert feed(new_upload(UNSIGNED_TRAILER, len(data), ["x-amz-checksum-crc32"]), body) == body


# What minio-go 7.0.46 (Debian's) sends with `TrailingHeaders: true`: the last part (16 bytes) of
# an FPutObject multipart upload, captured off the wire from a recording server; signed with the
# tests' root keys over HTTP, unsigned over HTTPS. Its trailer lines end in "\n\r\n".
MINIO_GO_TIMESTAMP = "20261201T202157Z"
MINIO_GO_SEED = "be9d7f9d99f0f2dd0eeaa97904a773d6f3e94a0f14e5788b1ef013710a42baec"  # its Signature=
MINIO_GO_SIGNED = (
    b"10;chunk-signature=5db10e7b51577e20653a6005756e65d115a509f391542e2e4436ab00b86a5f59\r\n"
    b"minio-go trailer\r\n"
    b"0;chunk-signature=68709fbbfcf3d9353aa37378f8563de67387f9ff45da7847c87030101ff38244\r\n"
    b"x-amz-checksum-crc32c:b9M91Q==\n\r\n"
    b"x-amz-trailer-signature:b768481225520e8f7f85a6cf5093fa44bd0a74daccdbaf20a91ed67976b8308e\r\n"
    b"\r\n"
)
MINIO_GO_UNSIGNED = b"10\r\nminio-go trailer\r\n0\r\nx-amz-checksum-crc32c:b9M91Q==\n\r\n\r\n"
SIGNATURE = re.compile(rb"(?<=chunk-signature=)[0-9a-f]{64}|(?<=trailer-signature:)[0-9a-f]{64}")


def test_minio_go_signed_trailer_is_re_signed_at_its_own_length():
    """The client's Content-Length is forwarded: one byte less and the backend waits for ever."""
    date = MINIO_GO_TIMESTAMP[:8]

    def addon_chain(secret: str, seed: str) -> ChunkChain:
        scope = f"{date}/{REGION}/s3/aws4_request"
        return ChunkChain(signing_key(secret, date, REGION), MINIO_GO_TIMESTAMP, scope, seed)

    upload = AwsChunkedUpload(
        SIGNED_TRAILER,
        16,
        ("x-amz-checksum-crc32c",),
        client=addon_chain(ROOT_SECRET, MINIO_GO_SEED),
        backend=addon_chain(BACKEND_SECRET, BACKEND_SEED),
        decode=False,
    )
    out = feed(upload, MINIO_GO_SIGNED)

    assert len(out) == len(MINIO_GO_SIGNED) == 312  # minio-go's Content-Length
    assert SIGNATURE.sub(b"*", out) == SIGNATURE.sub(b"*", MINIO_GO_SIGNED)  # framing as sent
    (data, first), (_, final) = parse_signed(out)[0]
    assert data == b"minio-go trailer"
    expected = reference.ChunkSigner(BACKEND_SECRET, MINIO_GO_TIMESTAMP, REGION, BACKEND_SEED)
    assert first == expected.chunk(b"minio-go trailer")
    assert final == expected.chunk(b"")
    trailer = SIGNATURE.findall(out)[-1].decode()
    assert trailer == expected.trailer(b"x-amz-checksum-crc32c:b9M91Q==\n")


def test_minio_go_unsigned_trailer_passes_through_unchanged():
    upload = new_upload(UNSIGNED_TRAILER, 16, ["x-amz-checksum-crc32c"])
    assert feed(upload, MINIO_GO_UNSIGNED) == MINIO_GO_UNSIGNED


@pytest.mark.parametrize("form", [UNSIGNED_TRAILER, SIGNED_TRAILER])
def test_decoding_for_a_backend_without_checksums_gives_the_plain_object(form):
    data = os.urandom(30_000)
    chunks, trailer = split(data, [10_000, 20_000]), crc32_trailer(data)
    body = (
        signed_body(chunks, trailer) if form == SIGNED_TRAILER else unsigned_body(chunks, trailer)
    )
    assert feed(new_upload(form, len(data), ["x-amz-checksum-crc32"], decode=True), body) == data


def test_a_wrong_crc32_is_bad_digest_and_the_final_chunk_is_never_released():
    data = os.urandom(9000)
    body = unsigned_body([data], crc32_trailer(b"other"))
    upload = new_upload(UNSIGNED_TRAILER, len(data), ["x-amz-checksum-crc32"])
    released = upload.feed(body[:-4])
    with pytest.raises(S3Error) as raised:
        upload.feed(body[-4:])
    assert (raised.value.code, raised.value.message) == (
        "BadDigest",
        "The CRC32 you specified did not match the calculated checksum.",
    )
    assert b"\r\n0\r\n" not in released


def test_a_forged_chunk_is_refused_before_it_is_forwarded():
    data = os.urandom(16384)
    body = bytearray(signed_body(split(data, [8192, 8192])))
    body[200] ^= 1  # inside the first chunk's data
    upload = new_upload(SIGNED, len(data))
    with pytest.raises(S3Error) as raised:
        upload.feed(bytes(body))
    assert raised.value.code == "SignatureDoesNotMatch"


def test_a_short_body_is_an_incomplete_body():
    data = os.urandom(20_000)
    body = signed_body(split(data, [10_000, 10_000]))
    upload = new_upload(SIGNED, len(data))
    upload.feed(body[:15_000])
    with pytest.raises(S3Error) as raised:
        upload.finish()
    assert (raised.value.code, raised.value.status) == ("IncompleteBody", 400)


def test_fewer_bytes_than_declared_is_an_incomplete_body():
    data = os.urandom(10_000)
    upload = new_upload(SIGNED, len(data) + 1)
    with pytest.raises(S3Error) as raised:
        feed(upload, signed_body([data]))
    assert raised.value.code == "IncompleteBody"


def test_more_bytes_than_declared_is_refused():
    data = os.urandom(10_000)
    with pytest.raises(S3Error):
        feed(new_upload(SIGNED, len(data) - 1), signed_body([data]))


def test_only_the_last_chunk_may_be_small():
    data = os.urandom(9000)
    with pytest.raises(S3Error) as raised:
        feed(new_upload(SIGNED, len(data)), signed_body(split(data, [100, 8900])))
    assert raised.value.code == "InvalidChunkSizeError"


def test_a_trailer_not_announced_is_malformed():
    data = os.urandom(100)
    body = unsigned_body([data], [("x-amz-checksum-sha256", crc32_b64(data))])
    with pytest.raises(S3Error) as raised:
        feed(new_upload(UNSIGNED_TRAILER, len(data), ["x-amz-checksum-crc32"]), body)
    assert raised.value.code == "MalformedTrailerError"


def test_a_forged_trailer_signature_is_refused():
    data = os.urandom(100)
    body = signed_body([data], crc32_trailer(data)).replace(
        b"x-amz-trailer-signature:", b"x-amz-trailer-signature:0"
    )
    body = body[: body.rindex(b"\r\n\r\n") - 1] + b"\r\n\r\n"  # keep 64 hex digits
    with pytest.raises(S3Error) as raised:
        feed(new_upload(SIGNED_TRAILER, len(data), ["x-amz-checksum-crc32"]), body)
    assert raised.value.code == "SignatureDoesNotMatch"


def test_data_after_the_final_chunk_is_refused():
    data = os.urandom(100)
    upload = new_upload(SIGNED, len(data))
    upload.feed(signed_body([data]))
    with pytest.raises(S3Error):
        upload.feed(b"x")


def test_payload_hash_check_holds_the_last_byte_until_the_hash_matches():
    body = os.urandom(1000)
    check = PayloadHashCheck(hashlib.sha256(body).hexdigest())
    assert check.feed(body[:600]) + check.feed(body[600:]) == body[:-1]
    assert check.finish() == body[-1:]


def test_payload_hash_mismatch_releases_nothing_more():
    check = PayloadHashCheck(hashlib.sha256(b"expected").hexdigest())
    assert check.feed(b"tampered") == b"tampere"
    with pytest.raises(S3Error) as raised:
        check.finish()
    assert raised.value.code == "XAmzContentSHA256Mismatch"


def test_decoded_headers_describe_the_plain_object():
    headers = [
        ("Content-Encoding", "aws-chunked,gzip"),
        ("Transfer-Encoding", "chunked"),
        ("x-amz-decoded-content-length", "5"),
        ("x-amz-trailer", "x-amz-checksum-crc32"),
        ("Content-Type", "text/plain"),
    ]
    assert decoded_headers(headers, 5) == [
        ("Content-Encoding", "gzip"),
        ("Content-Type", "text/plain"),
        ("Content-Length", "5"),
    ]


def test_the_stream_callable_never_hands_mitmproxy_an_empty_piece():
    """An empty piece would go upstream as the zero-size chunk that ends a chunked body."""
    data = os.urandom(20_000)
    body = signed_body(split(data, [10_000, 10_000]))
    seen = []
    stream = stream_callable(
        new_upload(SIGNED, len(data)), on_error=lambda e: e, on_data=lambda: seen.append(1)
    )
    pieces = [stream(body[i : i + 100]) for i in range(0, len(body), 100)] + [stream(b"")]
    assert all(piece for out in pieces for piece in out)
    assert len(seen) == len(pieces)  # every piece counts as the client still sending
    assert b"".join(piece for out in pieces for piece in out).count(b";chunk-signature=") == 3
