"""Requests signed once (SigV4, path style) and the few HTTP/1.1 exchanges the benchmark makes."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from addon.s3.sigv4 import UNSIGNED_PAYLOAD
from tests.benchmark.suite import Request, sigv4

BUCKET = "bench"
BLOCK = 1024 * 1024  # large bodies are written and read in blocks of this size


@dataclass(frozen=True)
class Keys:
    """What a client signs with for one endpoint."""

    access: str
    secret: str = field(repr=False)
    region: str = "us-east-1"


def wire(request: Request) -> bytes:
    return request.head() + request.body


def sign(
    keys: Keys,
    method: str,
    port: int,
    key: str = "",
    *,
    query: str = "",
    body: bytes = b"",
    content_length: int | None = None,
    extra: tuple[tuple[str, str], ...] = (),
) -> Request:
    """`method` on /bench/`key` at 127.0.0.1:`port`, signed now by botocore (SigV4, valid for
    15 minutes).

    A `body` is sent whole and signed by its hash; `content_length` alone announces a body
    streamed later, unsigned (UNSIGNED-PAYLOAD). `extra` headers are sent unsigned.
    """
    path = f"/{BUCKET}/{key}" if key else f"/{BUCKET}"
    length = len(body) if body else content_length
    headers = [("Host", f"127.0.0.1:{port}")]
    if length is not None:
        headers.append(("Content-Type", "application/octet-stream"))
    streamed = content_length is not None and not body
    signed = sigv4(
        Request(method, path, query, tuple(headers), body),
        payload_hash=UNSIGNED_PAYLOAD if streamed else None,
        access=keys.access,
        secret=keys.secret,
        region=keys.region,
    )
    for name, value in extra:
        signed = signed.add(name, value)
    return signed if length is None else signed.add("Content-Length", str(length))


def tampered(request: Request) -> Request:
    """The same request with the last hex digit of its signature changed."""
    return request.auth(lambda value: value[:-1] + ("0" if value[-1] != "0" else "1"))


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return status, headers


def body_length(method: str, status: int, headers: dict[str, str]) -> int | None:
    """Bytes of body to read; None for a chunked body."""
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return 0
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return None
    return int(headers.get("content-length", "0"))


def client_tls() -> ssl.SSLContext:
    """HTTPS as the benchmark's clients speak it: the proxy's certificate is not checked (wrk
    does not either); what is measured is the encryption, not trust."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class BlockingConnection:
    """One keep-alive connection with plain blocking sockets: fast enough for large bodies;
    HTTPS with `tls`."""

    def __init__(self, port: int, tls: bool = False) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.sock = client_tls().wrap_socket(sock) if tls else sock
        self.buffer = bytearray(BLOCK)
        self.pending = b""

    def close(self) -> None:
        self.sock.close()

    def read_head(self) -> tuple[int, dict[str, str]]:
        data = bytearray(self.pending)
        while (end := data.find(b"\r\n\r\n")) < 0:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed before the response head")
            data += chunk
        self.pending = bytes(data[end + 4 :])
        return parse_head(bytes(data[: end + 4]))

    def read_body(self, length: int, sink: Callable[[memoryview], Any] | None = None) -> int:
        """Read `length` bytes, handing each piece to `sink`; returns the count read."""
        got = min(len(self.pending), length)
        if sink and got:
            sink(memoryview(self.pending)[:got])
        self.pending = self.pending[got:]
        view = memoryview(self.buffer)
        while got < length:
            n = self.sock.recv_into(view, min(len(view), length - got))
            if n == 0:
                break
            if sink:
                sink(view[:n])
            got += n
        return got

    def put(self, head: Request, pieces: Iterable[bytes | memoryview]) -> int:
        """Send `head`, then its body piece by piece; the answer's status."""
        self.sock.sendall(head.head())
        for piece in pieces:
            self.sock.sendall(piece)
        status, headers = self.read_head()
        self.read_body(body_length(head.method, status, headers) or 0)
        return status

    def get(
        self, request: Request, sink: Callable[[memoryview], Any] | None
    ) -> tuple[int, int, int]:
        """Send `request`, hand the answer's body to `sink` as it comes: status, length, got."""
        self.sock.sendall(wire(request))
        status, headers = self.read_head()
        length = body_length(request.method, status, headers)
        if length is None:
            raise ConnectionError("unexpected chunked answer")
        return status, length, self.read_body(length, sink)

    def exchange(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        """Send a whole request; the answer with its body (for small answers)."""
        self.sock.sendall(wire(request))
        status, headers = self.read_head()
        length = body_length(request.method, status, headers)
        if length is None:
            return status, headers, self.read_chunked()
        parts: list[bytes] = []
        self.read_body(length, lambda piece: parts.append(bytes(piece)))
        return status, headers, b"".join(parts)

    def read_chunked(self) -> bytes:
        """A chunked body, whole (rclone sends listings so)."""
        body = bytearray()
        while True:
            size = int(self._line().split(b";")[0], 16)
            if size == 0:
                while self._line():  # trailer fields, up to the empty line
                    pass
                return bytes(body)
            end = len(body) + size
            self.read_body(size + 2, body.extend)  # the data and its CRLF
            del body[end:]

    def _line(self) -> bytes:
        data = bytearray(self.pending)
        while (end := data.find(b"\r\n")) < 0:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed within a chunked body")
            data += chunk
        self.pending = bytes(data[end + 2 :])
        return bytes(data[:end])


def one_request(
    port: int, request: Request, tls: bool = False
) -> tuple[int, dict[str, str], bytes]:
    connection = BlockingConnection(port, tls)
    try:
        return connection.exchange(request)
    finally:
        connection.close()


def stream_put(port: int, head: Request, pieces: Iterable[bytes | memoryview]) -> int:
    connection = BlockingConnection(port)
    try:
        return connection.put(head, pieces)
    finally:
        connection.close()


def stream_get(
    port: int, request: Request, sink: Callable[[memoryview], Any]
) -> tuple[int, int, int]:
    connection = BlockingConnection(port)
    try:
        return connection.get(request, sink)
    finally:
        connection.close()
