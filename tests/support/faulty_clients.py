"""Clients that misbehave, for end-to-end tests of what the proxy does with them.

Each sends raw bytes to 127.0.0.1:port and reports what came back (`Outcome`): the answer's
status and head, the start of its body, how much of the request went out before the server
answered or closed, and how long that took. Large requests are generated piece by piece while
they are sent, never held whole; sending stops as soon as an answer arrives.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import select
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

MIB = 1024 * 1024
_PIECE = 64 * 1024
_BODY_START = 1024  # bytes of the answer's body kept in an Outcome


@dataclass
class Outcome:
    """What a misbehaving client saw."""

    status: int | None  # None: no answer (or not HTTP)
    head: bytes  # the answer's head (all bytes received when no head ended)
    body_start: bytes
    sent: int  # bytes of the request that went out
    seconds: float  # until the answer's head, the close, or the timeout
    closed: bool  # the server closed (or reset) the connection

    @property
    def answered(self) -> bool:
        return self.status is not None


def _status(head: bytes) -> int | None:
    parts = head.split(b"\r\n", 1)[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return None
    return int(parts[1])


def send(port: int, pieces: Iterable[bytes], timeout: float = 20.0) -> Outcome:
    """Send `pieces` on one connection while reading the answer; stop sending once it comes.

    Waits `timeout` seconds at most for the answer's head (and then its body's first bytes);
    the connection is left open after the last piece, never half-closed.
    """
    started = time.monotonic()
    conn = socket.create_connection(("127.0.0.1", port), timeout=5)
    answered = threading.Event()
    sent = [0]

    def sender() -> None:
        with contextlib.suppress(OSError):  # the server closed or reset: stop sending
            for piece in pieces:
                if answered.is_set():
                    return
                conn.sendall(piece)
                sent[0] += len(piece)

    thread = threading.Thread(target=sender, daemon=True)
    with conn:
        conn.settimeout(None)
        thread.start()
        received, closed, head_at = _read_answer(conn, started + timeout)
        answered.set()
        with contextlib.suppress(OSError):  # already reset
            conn.shutdown(socket.SHUT_RDWR)  # wakes the sender if it is blocked
        thread.join(timeout=10)
    head, end, body = received.partition(b"\r\n\r\n")
    return Outcome(
        status=_status(head) if end else None,
        head=head,
        body_start=body[:_BODY_START],
        sent=sent[0],
        seconds=(head_at or time.monotonic()) - started,
        closed=closed,
    )


def send_then_read(port: int, pieces: Iterable[bytes], timeout: float = 10.0) -> Outcome:
    """Send every piece with blocking sends, as a simple client does, then read the answer.

    Nothing is read before the last piece went out: a server that stops reading leaves this
    client blocked in its send (`timeout` seconds at most, then it gives up); a server that
    closes with the request unread resets the connection, which may destroy its answer.
    """
    started = time.monotonic()
    sent, head_at, received, closed = 0, None, b"", False
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.settimeout(timeout)
        try:
            for piece in pieces:
                conn.sendall(piece)
                sent += len(piece)
        except OSError:  # reset, or blocked past the timeout: read what came anyway
            pass
        conn.settimeout(None)
        received, closed, head_at = _read_answer(conn, started + timeout)
    head, end, body = received.partition(b"\r\n\r\n")
    return Outcome(
        status=_status(head) if end else None,
        head=head,
        body_start=body[:_BODY_START],
        sent=sent,
        seconds=(head_at or time.monotonic()) - started,
        closed=closed,
    )


def _read_answer(conn: socket.socket, deadline: float) -> tuple[bytes, bool, float | None]:
    """Bytes received until the head and _BODY_START of body, the close, or the deadline;
    whether the server closed; when the head was complete."""
    received, head_at = b"", None
    while (left := deadline - time.monotonic()) > 0:
        if head_at is not None and len(received) >= received.find(b"\r\n\r\n") + _BODY_START:
            return received, False, head_at
        ready, _, _ = select.select([conn], [], [], min(left, 0.5) if head_at else left)
        if not ready:
            if head_at is not None:  # a head and a body that stops: enough to tell
                return received, False, head_at
            continue
        try:
            data = conn.recv(_PIECE)
        except ConnectionResetError:
            data = b""
        if not data:
            return received, True, head_at
        received += data
        if head_at is None and b"\r\n\r\n" in received:
            head_at = time.monotonic()
    return received, False, head_at


def _request_head(
    port: int, line: Iterable[bytes], headers: Iterable[bytes] = ()
) -> Iterator[bytes]:
    yield from line
    yield f"\r\nHost: 127.0.0.1:{port}\r\n".encode()
    yield from headers
    yield b"\r\n"


def _filler(size: int, byte: bytes = b"a") -> Iterator[bytes]:
    piece = byte * _PIECE
    for start in range(0, size, _PIECE):
        yield piece[: min(_PIECE, size - start)]


def huge_header_head(port: int, mib: float, path: str = "/bucket/key") -> Iterator[bytes]:
    """The head of GET `path` with one header (X-Huge) of `mib` MiB, piece by piece."""
    header = itertools.chain([b"X-Huge: "], _filler(int(mib * MIB)), [b"\r\n"])
    return _request_head(port, [f"GET {path} HTTP/1.1".encode()], header)


def huge_url_head(port: int, mib: float, bucket: str = "bucket") -> Iterator[bytes]:
    """The head of GET /bucket/aaaa... with a key of `mib` MiB, piece by piece."""
    line = itertools.chain([f"GET /{bucket}/".encode()], _filler(int(mib * MIB)), [b" HTTP/1.1"])
    return _request_head(port, line)


def unparsable_upload(port: int, mib: float) -> Iterator[bytes]:
    """A PUT whose Content-Length is not a number (no server can frame its body), followed by
    `mib` MiB of body anyway."""
    head = f"PUT /bucket/key HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: abc\r\n\r\n"
    return itertools.chain([head.encode()], _filler(int(mib * MIB)))


def huge_header(port: int, mib: float, path: str = "/bucket/key", timeout: float = 20.0) -> Outcome:
    """GET `path` with one header (X-Huge) of `mib` MiB."""
    return send(port, huge_header_head(port, mib, path), timeout)


def huge_url(port: int, mib: float, bucket: str = "bucket", timeout: float = 20.0) -> Outcome:
    """GET /bucket/aaaa... with a key of `mib` MiB."""
    return send(port, huge_url_head(port, mib, bucket), timeout)


def upload_body(length: int) -> Iterator[bytes]:
    """The body `stalled_upload` sends (some of): `length` bytes of a fixed pattern."""
    return _filler(length, b"u")


def signed_put(port: int, bucket: str, key: str, length: int, access: str, secret: str) -> bytes:
    """The head of PUT /bucket/key of `length` bytes of `upload_body`, SigV4-signed (the
    payload's real SHA-256) with these keys for us-east-1."""
    digest = hashlib.sha256()
    for piece in upload_body(length):
        digest.update(piece)
    request = AWSRequest(
        "PUT",
        f"http://127.0.0.1:{port}/{bucket}/{key}",
        headers={"Content-Length": str(length), "X-Amz-Content-SHA256": digest.hexdigest()},
    )
    SigV4Auth(Credentials(access, secret), "s3", "us-east-1").add_auth(request)
    # botocore signs the Host the URL implies; it does not add the header itself.
    headers = [("Host", f"127.0.0.1:{port}"), *request.headers.items()]
    fields = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return f"PUT /{bucket}/{key} HTTP/1.1\r\n{fields}\r\n".encode()


def stalled_upload(
    port: int,
    bucket: str,
    key: str,
    access: str,
    secret: str,
    length: int = MIB,
    sent: int = MIB // 4,
    timeout: float = 20.0,
) -> Outcome:
    """A signed PUT of `length` bytes that sends `sent` of them, then nothing (connection open).

    With `sent` == `length` it is a complete, valid upload."""
    head = signed_put(port, bucket, key, length, access, secret)
    return send(port, itertools.chain([head], _take(upload_body(length), sent)), timeout)


def _take(pieces: Iterable[bytes], count: int) -> Iterator[bytes]:
    for piece in pieces:
        if count <= 0:
            return
        yield piece[:count]
        count -= len(piece)


@dataclass
class Drip:
    """One slowloris connection."""

    conn: socket.socket
    sent: int = 0
    answer: bytes = b""  # what the server sent back, if anything
    closed_after: float | None = None  # seconds from the start until the server closed


@dataclass
class Slowloris:
    """`connections` connections to 127.0.0.1:port, each sending a request head that never
    ends, one byte every `interval` seconds, from `with Slowloris(...) as attack:` on."""

    port: int
    connections: int = 32
    interval: float = 1.0
    drips: list[Drip] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._drip, daemon=True)
        self._started = 0.0

    @property
    def open(self) -> int:
        """Connections the server has not closed."""
        return sum(d.closed_after is None for d in self.drips)

    def head_bytes(self) -> Iterator[int]:
        """The endless head: a request line, then header lines without an end."""
        yield from f"GET /bucket/key HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n".encode()
        for i in itertools.count():
            yield from f"X-Drip-{i}: a\r\n".encode()

    def __enter__(self) -> Self:
        self._started = time.monotonic()
        for _ in range(self.connections):
            conn = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            conn.setblocking(False)
            self.drips.append(Drip(conn))
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)
        for drip in self.drips:
            drip.conn.close()

    def _drip(self) -> None:
        bytes_out = self.head_bytes()
        while True:
            byte = bytes([next(bytes_out)])
            for drip in self.drips:
                if drip.closed_after is None:
                    self._step(drip, byte)
            if self._stopping.wait(self.interval):
                return

    def _step(self, drip: Drip, byte: bytes) -> None:
        try:
            while select.select([drip.conn], [], [], 0)[0]:
                data = drip.conn.recv(_PIECE)
                if not data:
                    raise ConnectionResetError
                drip.answer += data
            drip.conn.send(byte)
            drip.sent += 1
        except OSError:
            drip.closed_after = time.monotonic() - self._started
