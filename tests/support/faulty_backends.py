"""Fake S3 backends that misbehave, for end-to-end tests of what the proxy does with them.

Each fake listens on a free port of 127.0.0.1 from `with Fake(...) as fake:` until the block
ends, then closes its listener and every connection it holds. It counts the connections it
accepted and records every request head it read (`fake.requests`), with how much of the body
arrived, so a test can assert what the proxy sent: that a PUT never reached it, or did not
arrive whole.

Every request is read whole first (head, then the body by Content-Length or chunked), then
answered. A path given in `answers` is answered like S3 would for GET and HEAD (200 with the
bytes, or 404 NoSuchKey for None), so a fake can sit in a chain of backends and serve some keys
normally; everything else gets the fake's fault. A fake has the `name`, `access`, `secret` and
`endpoint` that tests/support/proxy.py `write_config` takes from a backend.

`Blackhole` is different: it never accepts; connecting to it hangs (SYNs dropped) until the
client gives up. See its docstring for why that works on loopback.
"""

from __future__ import annotations

import contextlib
import hashlib
import select
import socket
import struct
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Self

MIB = 1024 * 1024
_MAX_HEAD = MIB  # a request head longer than this closes the connection: the fake stays small
_PIECE = 64 * 1024

_NO_SUCH_KEY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
    b"<Message>The specified key does not exist.</Message></Error>"
)
GARBAGE = bytes(range(256))[::-1] * 4  # no "HTTP/" anywhere, and not text


@dataclass
class Received:
    """One request as the fake read it."""

    method: str
    target: str  # path and query, as sent
    headers: dict[str, str]  # lower-case names; the last value of a repeated header
    body_bytes: int = 0  # payload bytes received so far (chunk framing not counted)
    complete: bool = False  # the whole body arrived

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]


def head(status: str, headers: Mapping[str, str | int] | None = None) -> bytes:
    """A response head: `status` is the status line's tail ("200 OK", "99999 X")."""
    fields = (headers or {}).items()
    lines = [f"HTTP/1.1 {status}", *(f"{name}: {value}" for name, value in fields)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def s3_answer(method: str, body: bytes | None) -> bytes:
    """A normal S3 answer to GET or HEAD: 200 with `body`, or 404 NoSuchKey for None."""
    if body is None:
        status, content_type, payload = "404 Not Found", "application/xml", _NO_SUCH_KEY
        extra: dict[str, str | int] = {}
    else:
        status, content_type, payload = "200 OK", "application/octet-stream", body
        extra = {"ETag": f'"{hashlib.md5(body).hexdigest()}"'}
    headers = {"Content-Type": content_type, "Content-Length": len(payload), **extra}
    return head(status, headers) + (b"" if method == "HEAD" else payload)


class _Reader:
    """Buffered reads from one connection; b"" / None at end of stream."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.buffer = b""

    def _fill(self) -> bool:
        data = self.conn.recv(_PIECE)
        self.buffer += data
        return bool(data)

    def until(self, marker: bytes, limit: int) -> bytes | None:
        """Bytes up to and including `marker`; None when the stream ends or `limit` is passed."""
        while (end := self.buffer.find(marker)) < 0:
            if len(self.buffer) > limit or not self._fill():
                return None
        data, self.buffer = self.buffer[: end + len(marker)], self.buffer[end + len(marker) :]
        return data

    def discard(self, count: int) -> Iterator[int]:
        """Read and drop `count` bytes, yielding the size of each piece; stops at end of stream."""
        while count > 0:
            if not self.buffer and not self._fill():
                return
            piece = min(count, len(self.buffer))
            self.buffer = self.buffer[piece:]
            count -= piece
            yield piece


def _parse_head(data: bytes) -> Received | None:
    lines = data.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return None
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return Received(parts[0], parts[1], headers)


class _Listening:
    """What a test and `write_config` see of any fake: a name, keys, an endpoint."""

    name = "fake"
    access = "AKFAKEBACKEND"
    secret = "fake-backend-secret"

    def __init__(self, name: str | None = None, backlog: int | None = None) -> None:
        if name is not None:
            self.name = name
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=backlog)
        self.port: int = self.listener.getsockname()[1]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        self.listener.close()


class FakeBackend(_Listening):
    """Reads requests and answers those in `answers`; subclasses say how to misbehave."""

    reads_body = True  # False: the body is left unread, for `misbehave` to answer before it

    def __init__(
        self, answers: Mapping[str, bytes | None] | None = None, name: str | None = None
    ) -> None:
        super().__init__(name)
        self.answers = dict(answers or {})
        self.connections = 0
        self.requests: list[Received] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Self:
        self._start(self._accept)
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._threads:
            self._threads[0].join()  # the accepting thread: no connection is added after this
        with self._lock:
            for conn in self._open:
                with contextlib.suppress(OSError):  # already closed by the peer
                    conn.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv or send
        for thread in self._threads[1:]:  # those accepted while stopping too
            thread.join(timeout=10)
        super().stop()

    def misbehave(self, conn: socket.socket, request: Received) -> bool:
        """Answer `request` (read whole) in this fake's way; True if the connection can serve
        the next request."""
        raise NotImplementedError

    def hold(self) -> None:
        """Keep the connection as it is until the fake stops."""
        self.stopping.wait()

    def _start(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            ready, _, _ = select.select([self.listener], [], [], 0.05)
            if not ready:
                continue
            conn, _ = self.listener.accept()
            with self._lock:
                self.connections += 1
                self._open.add(conn)
            self._start(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        reader = _Reader(conn)
        try:
            while not self.stopping.is_set():
                data = reader.until(b"\r\n\r\n", _MAX_HEAD)
                request = _parse_head(data) if data else None
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                if self.reads_body and not self._read_body(reader, request):
                    return
                if request.path in self.answers:
                    conn.sendall(s3_answer(request.method, self.answers[request.path]))
                elif not self.misbehave(conn, request):
                    return
        except OSError:
            pass  # the peer went away, or the fake is stopping
        finally:
            with self._lock:
                self._open.discard(conn)
            conn.close()

    def _read_body(self, reader: _Reader, request: Received) -> bool:
        """Read (and drop) the body; False when the stream ended first."""
        if request.headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                line = reader.until(b"\r\n", 4096)
                if line is None:
                    return False
                size = int(line.split(b";")[0], 16)
                expected = size + 2  # the chunk and its CRLF
                got = sum(reader.discard(expected))
                request.body_bytes += min(got, size)
                if got < expected:
                    return False
                if size == 0:  # no trailers are sent by the proxy
                    break
        else:
            length = int(request.headers.get("content-length", "0"))
            for piece in reader.discard(length):
                request.body_bytes += piece
            if request.body_bytes < length:
                return False
        request.complete = True
        return True


class Hang(FakeBackend):
    """Accepts, reads the request, never answers."""

    name = "hang"

    def misbehave(self, conn: socket.socket, request: Received) -> bool:
        self.hold()
        return False


class _PartialBody(FakeBackend):
    """Answers the head (`status`, Content-Length `length`) and only `sent` bytes of the body."""

    stalls = False  # then keep the connection open; else close it

    def __init__(
        self, status: str = "200 OK", length: int = MIB, sent: int = _PIECE, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.status, self.length, self.sent = status, length, sent

    def misbehave(self, conn: socket.socket, request: Received) -> bool:
        conn.sendall(head(self.status, {"Content-Length": self.length}))
        if request.method != "HEAD":
            conn.sendall(b"b" * self.sent)
        if self.stalls:
            self.hold()
        return False


class StallAfterHeaders(_PartialBody):
    """Answers the head and part of the body, then stalls: nothing more, the connection open."""

    name = "stall"
    stalls = True


class ShortBody(_PartialBody):
    """Answers the head and part of the body, then closes: shorter than its Content-Length."""

    name = "short-body"


class Garbage(FakeBackend):
    """Answers `data` (not HTTP) and closes."""

    name = "garbage"

    def __init__(self, data: bytes = GARBAGE, **kwargs) -> None:
        super().__init__(**kwargs)
        self.data = data

    def misbehave(self, conn: socket.socket, request: Received) -> bool:
        conn.sendall(self.data)
        return False


class InvalidStatus(FakeBackend):
    """Answers a well-framed response whose status line is `HTTP/1.1 <status>`."""

    name = "invalid-status"

    def __init__(self, status: str = "99999 X", body: bytes = b"invalid status", **kwargs) -> None:
        super().__init__(**kwargs)
        self.status, self.body = status, body

    def misbehave(self, conn: socket.socket, request: Received) -> bool:
        headers = {"Content-Type": "text/plain", "Content-Length": len(self.body)}
        conn.sendall(head(self.status, headers) + (b"" if request.method == "HEAD" else self.body))
        return True


class Reset(FakeBackend):
    """Sends `first` (nothing by default: right after the request), then resets the connection
    (RST, not FIN): a backend killed mid-transfer looks like this with `first` a partial answer."""

    name = "reset"

    def __init__(self, first: bytes = b"", **kwargs) -> None:
        super().__init__(**kwargs)
        self.first = first

    def misbehave(self, conn: socket.socket, request: Received) -> bool:
        conn.sendall(self.first)
        # Linger on, zero seconds: close() discards what is unsent and answers with RST.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return False


class AnswerBeforeBody(FakeBackend):
    """Reads a request's head only, answers it at once (`status`, an S3 error with `code`) and
    closes: what the client still sends is never read (the kernel resets the connection), as a
    server does that refuses an upload before taking its body."""

    name = "answers-early"
    reads_body = False

    def __init__(
        self, status: str = "500 Internal Server Error", code: str = "InternalError", **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.status = status
        self.body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>The backend's own message.</Message></Error>"
        ).encode()

    def misbehave(self, conn: socket.socket, request: Received) -> bool:
        headers = {"Content-Type": "application/xml", "Content-Length": len(self.body)}
        conn.sendall(head(self.status, headers) + self.body)
        return False


class _Generated(FakeBackend):
    """Answers a large body made piece by piece as it is sent, never held whole."""

    status = "200 OK"

    def __init__(self, size: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.size = size

    def pieces(self) -> Iterator[bytes]:
        raise NotImplementedError

    def misbehave(self, conn: socket.socket, request: Received) -> bool:
        headers = {"Content-Type": "application/xml", "Content-Length": self.length}
        conn.sendall(head(self.status, headers))
        if request.method != "HEAD":
            for piece in self.pieces():
                conn.sendall(piece)
        return True

    @property
    def length(self) -> int:
        raise NotImplementedError


class HugeNotFound(_Generated):
    """Answers 404 NoSuchKey whose Message is padded to make the body `size` bytes."""

    name = "huge-404"
    status = "404 Not Found"
    _START = b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code><Message>'
    _END = b"</Message></Error>"

    def __init__(self, size: int = 128 * MIB, **kwargs) -> None:
        super().__init__(max(size, len(self._START) + len(self._END)), **kwargs)

    @property
    def length(self) -> int:
        return self.size

    def pieces(self) -> Iterator[bytes]:
        yield self._START
        padding = self.size - len(self._START) - len(self._END)
        filler = b"p" * _PIECE
        for start in range(0, padding, _PIECE):
            yield filler[: min(_PIECE, padding - start)]
        yield self._END


class HugeBucketList(_Generated):
    """Answers a ListAllMyBucketsResult of about `size` bytes (at most): as many buckets as
    fit, named bucket-0000000000, bucket-0000000001, ..."""

    name = "huge-list"
    _START = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<Owner><ID>fake-owner</ID><DisplayName>fake</DisplayName></Owner><Buckets>"
    )
    _END = b"</Buckets></ListAllMyBucketsResult>"
    _ENTRY = (
        "<Bucket><Name>bucket-{:010d}</Name>"
        "<CreationDate>2025-01-01T00:00:00.000Z</CreationDate></Bucket>"
    )
    _ENTRY_LENGTH = len(_ENTRY.format(0))
    _BATCH = 1000

    def __init__(self, size: int = 256 * MIB, **kwargs) -> None:
        super().__init__(size, **kwargs)

    @property
    def buckets(self) -> int:
        return max(0, self.size - len(self._START) - len(self._END)) // self._ENTRY_LENGTH

    @property
    def length(self) -> int:
        return len(self._START) + self.buckets * self._ENTRY_LENGTH + len(self._END)

    def pieces(self) -> Iterator[bytes]:
        yield self._START
        for first in range(0, self.buckets, self._BATCH):
            last = min(first + self._BATCH, self.buckets)
            yield "".join(self._ENTRY.format(i) for i in range(first, last)).encode()
        yield self._END


class SlowDrip(FakeBackend):
    """Answers a normal 200 with `body`, head and body, one byte every `interval` seconds."""

    name = "slow-drip"

    def __init__(self, body: bytes = b"drip", interval: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.body, self.interval = body, interval

    def misbehave(self, conn: socket.socket, request: Received) -> bool:
        for byte in s3_answer(request.method, self.body):
            if self.stopping.wait(self.interval):
                return False
            conn.sendall(bytes([byte]))
        return True


class LateAnswer(FakeBackend):
    """Lacks every key (a GET or HEAD: 404 NoSuchKey at once) and answers anything else 200 with
    `etag`, `delay` seconds late: a primary slow to take a copy's PUT."""

    name = "late"

    def __init__(self, etag: str, delay: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.etag, self.delay = etag, delay

    def misbehave(self, conn: socket.socket, request: Received) -> bool:
        if request.method in ("GET", "HEAD"):
            conn.sendall(s3_answer(request.method, None))
            return True
        if self.stopping.wait(self.delay):
            return False
        conn.sendall(head("200 OK", {"ETag": f'"{self.etag}"', "Content-Length": 0}))
        return True


class Blackhole(_Listening):
    """A port where connect() hangs: the kernel drops the SYNs, as for a host that is gone.

    A listener with `listen(0)` that never accepts has room for one connection in its accept
    queue (Linux admits backlog + 1). Once one connection fills it, the kernel drops every
    further SYN instead of answering, so a client's connect() retries until its own timeout
    (the kernel's is about 130 s with tcp_syn_retries=6). Loopback only, no root, no firewall.
    Nothing is ever accepted, so there is nothing to count.
    """

    name = "blackhole"

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name, backlog=0)
        self.fillers: list[socket.socket] = []
        while self._connects_now():
            pass

    def _connects_now(self) -> bool:
        """Connect one more filler; False (and that filler dropped) once connecting hangs."""
        if len(self.fillers) > 16:
            self.stop()
            raise RuntimeError("the accept queue does not fill: this kernel answers every SYN")
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", self.port))
        _, writable, _ = select.select([], [filler], [], 0.5)
        if writable and filler.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
            self.fillers.append(filler)
            return True
        filler.close()
        return False

    def stop(self) -> None:
        for filler in self.fillers:
            filler.close()
        super().stop()
