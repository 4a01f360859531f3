"""aws-chunked bodies and their signatures, written from AWS's published rules and apart from
addon/s3/aws_chunked.py, so that the tests and the addon are two independent implementations.

AWS: "Signature calculations for the Authorization header: transferring payload in multiple
chunks" and "... including trailing headers" (sigv4-streaming.html, sigv4-streaming-trailers.html).
Each chunk's string to sign is

    AWS4-HMAC-SHA256-PAYLOAD \\n timestamp \\n scope \\n previous signature \\n
    sha256("") \\n sha256(chunk data)

and the trailer's, after the final zero-size chunk,

    AWS4-HMAC-SHA256-TRAILER \\n timestamp \\n scope \\n previous signature \\n
    sha256(trailer lines, each "name:value\\n")

signed with the request's SigV4 signing key; the first "previous" is the request's signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass, field, replace

from tests.support.raw_http import Request
from tests.support.root_keys import REGION, ROOT_SECRET
from tests.support.signing import sigv4

# x-amz-content-sha256 of each form (AWS's names).
UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _signing_key(secret: str, date: str, region: str) -> bytes:
    """SigV4's key: HMAC chain over the date, region, service and terminal."""
    key = f"AWS4{secret}".encode()
    for part in (date, region, "s3", "aws4_request"):
        key = _hmac(key, part)
    return key


@dataclass
class ChunkSigner:
    """The signature chain of one upload: each signature is the next one's "previous"."""

    secret: str = field(repr=False)
    timestamp: str  # the request's X-Amz-Date
    region: str
    previous: str  # the seed: the request's own signature

    @classmethod
    def seeded_by(
        cls, request: Request, secret: str = ROOT_SECRET, region: str = REGION
    ) -> ChunkSigner:
        """The chain of a request signed by header SigV4: its X-Amz-Date and signature."""
        seed = re.search(r"Signature=([0-9a-f]{64})", request.header("Authorization"))
        assert seed, request.header("Authorization")
        return cls(secret, request.header("X-Amz-Date"), region, seed[1])

    def chunk(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        return self._sign("AWS4-HMAC-SHA256-PAYLOAD", EMPTY_SHA256, digest)

    def trailer(self, lines: bytes) -> str:
        return self._sign("AWS4-HMAC-SHA256-TRAILER", hashlib.sha256(lines).hexdigest())

    def _sign(self, algorithm: str, *hashes: str) -> str:
        date = self.timestamp[:8]
        scope = f"{date}/{self.region}/s3/aws4_request"
        text = "\n".join([algorithm, self.timestamp, scope, self.previous, *hashes])
        key = _signing_key(self.secret, date, self.region)
        self.previous = hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
        return self.previous


def _wrong(signature: str) -> str:
    """Another 64 hex digits: well formed, and wrong."""
    return hashlib.sha256(signature.encode()).hexdigest()


def encode(
    chunks: list[bytes],
    *,
    signer: ChunkSigner | None = None,
    trailers: list[tuple[str, str]] | None = None,
    final: bool = True,
    wrong_signature_at: int | None = None,
    wrong_trailer_signature: bool = False,
) -> bytes:
    """The aws-chunked body of `chunks`, then (with `final`) the zero-size chunk.

    With `signer`, every chunk carries its chunk-signature, and trailers their
    x-amz-trailer-signature. `trailers` (name, value) follow the final chunk. To forge:
    `wrong_signature_at` is the index of a chunk (the final one counts) whose signature is
    replaced by a wrong one, `wrong_trailer_signature` replaces the trailer's; the chain goes on
    from the right ones, as a forger's would.
    """
    body = bytearray()
    for index, piece in enumerate([*chunks, b""] if final else chunks):
        size = f"{len(piece):x}"
        if signer is not None:
            signature = signer.chunk(piece)
            signature = _wrong(signature) if index == wrong_signature_at else signature
            size += f";chunk-signature={signature}"
        body += f"{size}\r\n".encode() + piece
        if piece or trailers is None:
            body += b"\r\n"
            continue
        body += b"".join(f"{name}:{value}\r\n".encode() for name, value in trailers)
        if signer is not None:
            signature = signer.trailer(b"".join(f"{n}:{v}\n".encode() for n, v in trailers))
            signature = _wrong(signature) if wrong_trailer_signature else signature
            body += f"x-amz-trailer-signature:{signature}\r\n".encode()
        body += b"\r\n"
    return bytes(body)


def signed_chunk_upload(
    port: int, path: str, data: bytes, chunk: int = 64 * 1024, trailer: bool = False
) -> Request:
    """A STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER] request as the Java and Go SDKs send it:
    Content-Length signed too, so the framing's length is known before the signatures are."""
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    trailers = None
    if trailer:
        trailers = [
            ("x-amz-checksum-sha256", base64.b64encode(hashlib.sha256(data).digest()).decode())
        ]
    # The framing's length does not depend on the signatures' values, only on their count.
    placeholder = ChunkSigner("", "00000000T000000Z", REGION, "0" * 64)
    headers = [
        ("Host", f"127.0.0.1:{port}"),
        ("Content-Encoding", "aws-chunked"),
        ("Content-Type", "application/octet-stream"),
        ("Content-Length", str(len(encode(pieces, signer=placeholder, trailers=trailers)))),
        ("x-amz-decoded-content-length", str(len(data))),
    ]
    if trailer:
        headers.append(("x-amz-trailer", "x-amz-checksum-sha256"))
    request = sigv4(
        Request("PUT", path, headers=tuple(headers)),
        payload_hash=SIGNED_TRAILER if trailer else SIGNED,
    )
    body = encode(pieces, signer=ChunkSigner.seeded_by(request), trailers=trailers)
    assert str(len(body)) == request.header("Content-Length")
    return replace(request, body=body)
