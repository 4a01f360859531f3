"""What happens to a request body on its way to a backend.

Decided once from the client's headers (`BodyPlan.of`), applied per backend: a body whose
SHA-256 was signed is hashed as it streams; an aws-chunked body is verified chunk by chunk and
re-framed for the backend's keys, or decoded to the plain object for a backend with
`disableChecksum`; any other body streams through untouched. A browser form's body is the other
kind of `Body` (`form_upload.FormPlan`): its head decides the request's (`HeldHead`). A body may
also be tapped (`Tapped`): the object's bytes handed on as they pass every check, to someone who
writes them elsewhere too (a replica's tee).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from addon.auth.checks import HeaderLookup, Verified
from addon.config.settings import Backend
from addon.s3 import aws_chunked, body_checks, sigv4
from addon.s3.content_encoding import decoded_headers
from addon.s3.errors import S3Error

if TYPE_CHECKING:
    from mitmproxy import http  # annotations only: the commands import this module too


class Transducer(Protocol):
    def feed(self, data: bytes) -> bytes: ...
    def finish(self) -> bytes: ...


class Reframing(Transducer, Protocol):
    """A body whose first bytes decide the rest of the request (a form's fields): nothing comes
    out until `head_decided`, and the body then differs in length by `length_change`."""

    @property
    def head_decided(self) -> bool: ...
    @property
    def length_change(self) -> int: ...


class Body(Protocol):
    """What `retarget.aim` asks of a request's body: `BodyPlan`, or a form's."""

    signs_headers: bool  # the request is signed for the backend (a form carries its own)
    holds_head: bool  # its transducer is a Reframing: the request's head waits for it

    def backend_request(
        self, backend: Backend, headers: list[tuple[str, str]]
    ) -> tuple[list[tuple[str, str]], str]: ...
    def transducer(self, backend: Backend, signed: sigv4.Signed | None) -> Transducer | None: ...


@dataclass(frozen=True)
class BodyPlan:
    verified: Verified
    decoded_length: int | None = None  # aws-chunked bodies only
    trailer_names: tuple[str, ...] = ()

    @classmethod
    def of(cls, verified: Verified, headers: HeaderLookup) -> BodyPlan:
        """Refuses, as S3 does, the headers that make a body unacceptable."""
        payload_hash = verified.payload_hash
        empty = headers.get("content-length") == "0"
        if (
            empty
            and sigv4.HEX_SHA256.fullmatch(payload_hash)
            and payload_hash != sigv4.EMPTY_SHA256
        ):
            raise S3Error("XAmzContentSHA256Mismatch")  # no body will come to find it out
        if payload_hash not in aws_chunked.FORMS:
            return cls(verified)
        length = headers.get("x-amz-decoded-content-length")
        if length is None:
            raise S3Error("MissingContentLength", "x-amz-decoded-content-length is required.")
        if not length.isdigit():
            raise S3Error("InvalidArgument", "x-amz-decoded-content-length must be a number.")
        names = tuple(
            n.strip().lower() for n in (headers.get("x-amz-trailer") or "").split(",") if n.strip()
        )
        if payload_hash == aws_chunked.SIGNED and names:
            raise S3Error("InvalidRequest", f"{payload_hash} does not carry a trailer.")
        if payload_hash != aws_chunked.SIGNED and not names:
            raise S3Error("InvalidRequest", "x-amz-trailer is required for a trailing checksum.")
        unknown = [n for n in names if n not in body_checks.CHECKSUMS]
        if unknown or len(names) > 1:
            raise S3Error(
                "InvalidRequest",
                f"The value specified in the x-amz-trailer header is not supported: "
                f"{', '.join(unknown or names)}",
            )
        return cls(verified, int(length), names)

    signs_headers = True
    holds_head = False

    @property
    def chunked(self) -> bool:
        return self.decoded_length is not None

    def decodes_for(self, backend: Backend) -> bool:
        return self.chunked and backend.disable_checksum

    def backend_request(
        self, backend: Backend, headers: list[tuple[str, str]]
    ) -> tuple[list[tuple[str, str]], str]:
        """The headers and payload hash to sign for `backend`."""
        if self.decodes_for(backend):
            assert self.decoded_length is not None
            return decoded_headers(headers, self.decoded_length), sigv4.UNSIGNED_PAYLOAD
        if self.verified.auth_params:  # presigned: the body was never hashed
            return headers, sigv4.UNSIGNED_PAYLOAD
        return headers, self.verified.payload_hash

    def transducer(self, backend: Backend, signed: sigv4.Signed | None) -> Transducer | None:
        """What checks and rewrites the body for `backend`, once its request is signed."""
        assert signed is not None
        payload_hash = self.verified.payload_hash
        if sigv4.HEX_SHA256.fullmatch(payload_hash):
            return body_checks.PayloadHashCheck(payload_hash)
        if not self.chunked:
            return None
        assert self.decoded_length is not None
        decode = self.decodes_for(backend)
        backend_chain = None
        if payload_hash != aws_chunked.UNSIGNED_TRAILER and not decode:
            backend_chain = signed.chunk_chain()
        return aws_chunked.AwsChunkedUpload(
            payload_hash,
            self.decoded_length,
            self.trailer_names,
            client=self.verified.chunks,
            backend=backend_chain,
            decode=decode,
        )


class Passthrough:
    """A body that goes as it is."""

    def feed(self, data: bytes) -> bytes:
        return data

    def finish(self) -> bytes:
        return b""


class HeldHead:
    """`mitm.policy.HeldHead` for a streamed body whose head decides the request's: the body
    goes through the request's `stream` callable as any streamed body does; once the head is
    decided, Content-Length (when the client sent one) takes the body's new length, before the
    request's head is sent."""

    def __init__(
        self,
        request: http.Request,
        body: Reframing,
        stream: Callable[[bytes], Iterable[bytes] | bytes],
    ) -> None:
        self.request, self.body, self.stream = request, body, stream

    def feed(self, data: bytes) -> list[bytes] | None:
        sent = self.stream(data)
        out = [sent] if isinstance(sent, bytes) else list(sent)
        if not self.body.head_decided:
            assert not out
            return None
        length = self.request.headers.get("content-length", "")
        if length.isdigit():
            self.request.headers["content-length"] = str(int(length) + self.body.length_change)
        return out


class BodyTap(Protocol):
    """Someone who takes the object's bytes too, as they come: `feed` must never block."""

    def feed(self, data: bytes) -> None: ...
    def end(self) -> None: ...  # every byte came and every check passed
    def cut(self) -> None: ...  # the body was refused or went nowhere: take nothing of it
    async def drain(self, within: float) -> None: ...  # room for more (`within` s at most)


class Tapped:
    """A transducer whose object bytes also go to `tap`: an aws-chunked decoder hands them over
    as it decodes them (`payload`), any other body's bytes are the object's as they come."""

    def __init__(self, inner: Transducer | None, tap: BodyTap) -> None:
        self.inner = inner or Passthrough()
        self.tap = tap
        self.raw = not isinstance(self.inner, aws_chunked.AwsChunkedUpload)
        if isinstance(self.inner, aws_chunked.AwsChunkedUpload):
            self.inner.payload = tap.feed

    def feed(self, data: bytes) -> bytes:
        try:
            out = self.inner.feed(data)
        except S3Error:
            self.tap.cut()
            raise
        if self.raw:
            self.tap.feed(data)
        return out

    def finish(self) -> bytes:
        try:
            out = self.inner.finish()
        except S3Error:
            self.tap.cut()
            raise
        self.tap.end()
        return out


def stream_callable(
    transducer: Transducer,
    on_error: Callable[[S3Error], Exception],
    on_data: Callable[[], None],
) -> Callable[[bytes], list[bytes]]:
    """mitmproxy's request `stream` callable: called per piece of body, then with b"" at the end.

    `on_data` is told of every piece (the client is still sending). Returns a list: mitmproxy
    sends a returned b"" as a data event of its own, which on a `Transfer-Encoding: chunked`
    upstream is the zero-size chunk that ends the body.
    """

    def stream(data: bytes) -> list[bytes]:
        on_data()
        try:
            out = transducer.feed(data) if data else transducer.finish()
        except S3Error as e:
            raise on_error(e) from None
        return [out] if out else []

    return stream
