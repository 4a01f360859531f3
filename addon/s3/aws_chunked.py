"""The aws-chunked stream transducer: verify a client's streaming upload while forwarding it.

`Content-Encoding: aws-chunked` bodies frame the object in chunks:

    STREAMING-UNSIGNED-PAYLOAD-TRAILER         hex-size CRLF data CRLF ... 0 CRLF trailer CRLF
    STREAMING-AWS4-HMAC-SHA256-PAYLOAD         hex-size;chunk-signature=SIG CRLF data CRLF ... 0;...
    STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER as above, then trailer and x-amz-trailer-signature

Signatures chain from the request's own signature, so a chunk signed with the root key means
nothing to a backend: each chunk is verified against the client's chain and signed again on the
backend's chain. Everything else of the client's framing is forwarded byte for byte (size lines
as written, trailer lines with whatever line ends the client used, as AWS accepts them), and a
signature is always 64 hex digits: the re-framed body is exactly as long as the client's, so the
Content-Length the client announced stays true. For a backend without checksums the body is
decoded to the plain object instead.

Memory: an unsigned chunk streams through; a signed chunk is held until its signature is checked
(one chunk, capped). The last byte forwarded is only released once every check has passed, so a
backend never receives a complete body that we refuse: closing its connection then leaves
nothing stored. `payload`, if set, is given the object's bytes once decoded (and verified).
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Callable

from addon.s3 import sigv4
from addon.s3.body_checks import CHECKSUMS
from addon.s3.errors import S3Error

UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
FORMS = (UNSIGNED_TRAILER, SIGNED, SIGNED_TRAILER)

MIN_CHUNK = 8192  # every chunk but the last
MAX_CHUNK = 64 * 1024 * 1024  # what we hold in memory for one signed chunk
_MAX_LINE = 4096


def _malformed_trailer() -> S3Error:
    return S3Error(
        "MalformedTrailerError",
        "The request contained trailing data that was not well-formed or did not conform to our "
        "published schema.",
    )


class AwsChunkedUpload:
    """Feed it the client's body as it arrives; it returns what to send to the backend.

    `client` verifies the client's chunk signatures (None for the unsigned form); `backend`
    signs the forwarded chunks (None: forward the decoded object, without framing or trailer).
    Raises S3Error on the first thing S3 would refuse.
    """

    def __init__(
        self,
        form: str,
        decoded_length: int,
        trailer_names: tuple[str, ...],
        client: sigv4.ChunkChain | None,
        backend: sigv4.ChunkChain | None,
        decode: bool,
    ) -> None:
        self.signed = form != UNSIGNED_TRAILER
        self.trailing = form != SIGNED
        self.decoded_length = decoded_length
        self.trailer_names = trailer_names
        self.client = client
        self.backend = backend
        self.decode = decode
        self.checksums = {
            name: factory() for name in trailer_names if (factory := CHECKSUMS[name][1])
        }
        self.buffer = bytearray()
        self.state = self._size_line
        self.size_line = b""  # the current chunk's, as the client wrote it
        self.remaining = 0  # bytes of the current chunk still to come
        self.chunk = bytearray()  # a signed chunk, held until its signature is checked
        self.chunk_signature = ""
        self.received = 0  # decoded bytes so far
        self.last_size = MIN_CHUNK
        self.held = b""  # the last byte forwarded, released when the body is complete
        self.done = False
        # Told each piece of the object as it is decoded (a signed chunk once it is verified).
        self.payload: Callable[[bytes], None] | None = None

    def feed(self, data: bytes) -> bytes:
        if self.done and data:
            raise S3Error("InvalidRequest", "Unexpected data after the final chunk.")
        self.buffer += data
        out = bytearray(self.held)
        while self.buffer and not self.done:
            if not self.state(out):
                break  # needs more input
        if self.done:
            self.held = b""
            return bytes(out)
        # Until every check has passed, the backend must not have a complete request: a body
        # cut short before its final chunk has all its Content-Length bytes already.
        self.held = bytes(out[-1:])
        return bytes(out[:-1])

    def finish(self) -> bytes:
        """The body ended: anything missing is an incomplete body."""
        if not self.done:
            raise S3Error("IncompleteBody", "The request body terminated unexpectedly")
        return b""

    # --- states: each consumes from self.buffer, appends to out, returns False to wait ----------

    def _line(self) -> bytes | None:
        end = self.buffer.find(b"\r\n")
        if end < 0:
            if len(self.buffer) > _MAX_LINE:
                raise S3Error("InvalidRequest", "Malformed aws-chunked framing: line too long.")
            return None
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 2]
        return line

    def _size_line(self, out: bytearray) -> bool:
        line = self._line()
        if line is None:
            return False
        self.size_line = line
        size_text, _, extensions = line.partition(b";")
        try:
            size = int(size_text, 16)
        except ValueError:
            raise S3Error("InvalidRequest", "Malformed aws-chunked framing.") from None
        if self.signed:
            name, _, signature = extensions.partition(b"=")
            if name.strip() != b"chunk-signature" or len(signature) != 64:
                raise S3Error(
                    "InvalidRequest", "Malformed aws-chunked framing: no chunk-signature."
                )
            self.chunk_signature = signature.decode("ascii", "replace")
        if size > MAX_CHUNK:
            raise S3Error("InvalidRequest", f"Chunks of more than {MAX_CHUNK} bytes are refused.")
        if size and self.last_size < MIN_CHUNK:
            raise S3Error(
                "InvalidChunkSizeError",
                "Only the last chunk is allowed to have a size less than 8192 bytes",
            )
        self.last_size = size
        self.received += size
        if self.received > self.decoded_length:
            raise S3Error(
                "InvalidRequest", "The chunks are longer than x-amz-decoded-content-length."
            )
        if size == 0:
            self._check_signature(b"")
            self.state = self._trailer if self.trailing else self._final_crlf
            return True
        self.remaining = size
        self.state = self._data
        if not self.signed and not self.decode:
            out += line + b"\r\n"
        return True

    def _data(self, out: bytearray) -> bool:
        piece = bytes(self.buffer[: self.remaining])
        del self.buffer[: len(piece)]
        self.remaining -= len(piece)
        for checksum in self.checksums.values():
            checksum.update(piece)
        if self.signed:
            self.chunk += piece
        else:
            out += piece
            if self.payload is not None:
                self.payload(piece)
        if self.remaining == 0:
            self.state = self._data_crlf
        return True

    def _data_crlf(self, out: bytearray) -> bool:
        if len(self.buffer) < 2:
            return False
        if self.buffer[:2] != b"\r\n":
            raise S3Error("InvalidRequest", "Malformed aws-chunked framing: chunk not terminated.")
        del self.buffer[:2]
        if self.signed:
            data = bytes(self.chunk)
            self.chunk.clear()
            self._check_signature(data)
            out += data if self.decode else self._signed_line(data) + data
            if self.payload is not None:
                self.payload(data)
        if not self.decode:
            out += b"\r\n"
        self.state = self._size_line
        return True

    def _final_crlf(self, out: bytearray) -> bool:
        """After the final chunk of the signed form without trailer: an empty line."""
        line = self._line()
        if line is None:
            return False
        if line:
            raise S3Error("InvalidRequest", "Malformed aws-chunked framing after the final chunk.")
        self._complete()
        if not self.decode:
            out += self._signed_line(b"") + b"\r\n"
        return True

    def _trailer(self, out: bytearray) -> bool:
        """Trailing headers up to an empty line; needs them whole before anything is released."""
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > _MAX_LINE:
                raise _malformed_trailer()
            return False
        if self.buffer.startswith(b"\r\n"):  # no trailer lines at all
            lines, consumed = [], 2
        else:
            lines, consumed = bytes(self.buffer[:end]).split(b"\r\n"), end + 4
        del self.buffer[:consumed]
        trailers, signature = self._parse_trailers(lines)
        canonical = b"".join(f"{name}:{value}\n".encode() for name, value in trailers)
        if self.client is not None and not hmac.compare_digest(
            self.client.trailer(canonical).encode(), (signature or "").encode()
        ):
            raise S3Error("SignatureDoesNotMatch")
        self._check_checksums(trailers)
        self._complete()
        if self.decode:
            return True
        out += self._signed_line(b"") if self.signed else self.size_line + b"\r\n"
        if self.signed and self.backend is not None:
            lines = [self._resigned_trailer(line, canonical) for line in lines]
        out += b"".join(line + b"\r\n" for line in lines) + b"\r\n"
        return True

    # --- checks --------------------------------------------------------------------------------

    def _parse_trailers(self, lines: list[bytes]) -> tuple[list[tuple[str, str]], str | None]:
        malformed = _malformed_trailer()
        trailers, signature = [], None
        for raw in lines:
            name, sep, value = raw.decode("ascii", "replace").partition(":")
            name, value = name.strip().lower(), value.strip()
            if not sep:
                raise malformed
            if name == "x-amz-trailer-signature" and self.signed:
                signature = value
            elif name in self.trailer_names:
                trailers.append((name, value))
            else:
                raise malformed
        if sorted(n for n, _ in trailers) != sorted(self.trailer_names):
            raise malformed
        return trailers, signature

    def _check_checksums(self, trailers: list[tuple[str, str]]) -> None:
        for name, value in trailers:
            checksum = self.checksums.get(name)
            if checksum is None:
                continue
            if base64.b64encode(checksum.digest()).decode() != value:
                algorithm = CHECKSUMS[name][0]
                raise S3Error(
                    "BadDigest",
                    f"The {algorithm} you specified did not match the calculated checksum.",
                )

    def _check_signature(self, data: bytes) -> None:
        if self.signed and self.client is not None:
            expected = self.client.chunk(data)
            if not hmac.compare_digest(expected.encode(), self.chunk_signature.encode()):
                raise S3Error("SignatureDoesNotMatch")

    def _complete(self) -> None:
        if self.received != self.decoded_length:
            raise S3Error(
                "IncompleteBody",
                "You did not provide the number of bytes specified by the "
                "x-amz-decoded-content-length HTTP header",
            )
        self.done = True

    def _signed_line(self, data: bytes) -> bytes:
        """The client's size line with the backend's signature in place of its own (the last
        64 bytes, as `_size_line` checked)."""
        assert self.backend is not None
        return self.size_line[:-64] + self.backend.chunk(data).encode() + b"\r\n"

    def _resigned_trailer(self, line: bytes, canonical: bytes) -> bytes:
        """A trailer line as the client wrote it; the signature line with the backend's signature
        in place of the client's (verified by then, so 64 hex digits too)."""
        name, sep, value = line.partition(b":")
        if name.strip().lower() != b"x-amz-trailer-signature":
            return line
        assert self.backend is not None
        signature = self.backend.trailer(canonical).encode()
        return name + sep + value.replace(value.strip(), signature)
