"""Requests the proxy makes itself (merged listings and the like): one place, asynchronous.

A client request that the proxy answers on its own (ListBuckets over every backend, ...) needs
requests of its own to the backends. They run on mitmproxy's event loop, so they must never
block it: asyncio streams, with h11 (mitmproxy's own HTTP/1 parser, installed with it) for the
protocol. Connections are kept alive and reused per backend address; every request is signed
with the backend's keys by the same code as forwarded requests (`backends.locate`, `sign`).
Bodies are read with a limit: a backend that sends more than an answer can be is broken. What
each request found (an answer, or a failure and its kind) is told to the process's `health`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import h11

from addon.config.settings import Backend
from addon.s3 import sigv4
from addon.upstream import backends
from addon.upstream.request_bodies import Pushed, Streamed

if TYPE_CHECKING:
    from addon.upstream.health import Reporter

_READ_SIZE = 65536
_IDLE_PER_ADDRESS = 8
_NEVER_SIGNED = frozenset({"expect", "transfer-encoding", "user-agent", "x-amzn-trace-id"})


UNREACHABLE, TIMEOUT, BROKEN = "unreachable", "timeout", "broken"


class BackendError(Exception):
    """The backend could not be reached, timed out, or answered something unusable; `kind`
    says which (UNREACHABLE: no connection; TIMEOUT: no answer in time; BROKEN: the rest);
    `at_once`: the connection failed at once (refused: nothing listens there)."""

    def __init__(self, message: str, kind: str = BROKEN, at_once: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.at_once = at_once
        self.reported = False  # told to health already


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0
    read: float = 30.0  # between two pieces of an answer


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.h11 = h11.Connection(our_role=h11.CLIENT)

    async def send(self, *events: h11.Event) -> None:
        # One write for all: a head and its end of message are one send(), not two.
        self.writer.write(b"".join(self.h11.send(event) or b"" for event in events))
        await self.writer.drain()

    async def next_event(self, timeout: float) -> h11.Event:
        while True:
            event = self.h11.next_event()
            if event is h11.PAUSED:
                raise BackendError("the backend sent more than one answer")
            if event is not h11.NEED_DATA:
                assert isinstance(event, h11.Event)
                return event
            try:
                data = await asyncio.wait_for(self.reader.read(_READ_SIZE), timeout)
            except TimeoutError:
                raise BackendError(f"no data for {timeout:g}s", TIMEOUT) from None
            self.h11.receive_data(data)

    def write(self, data: bytes) -> int:
        if self.writer.is_closing():
            raise BackendError("the connection closed", BROKEN)
        self.writer.write(self.h11.send(h11.Data(data=data)) or b"")
        return self.writer.transport.get_write_buffer_size()

    async def drained(self) -> None:
        try:
            await self.writer.drain()
        except OSError as e:
            raise BackendError(f"the connection broke: {e}", BROKEN) from None

    @property
    def reusable(self) -> bool:
        return self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE

    def close(self) -> None:
        self.writer.close()


@dataclass
class Reply:
    """A backend's answer; its body is read with `read` (once)."""

    status: int
    headers: list[tuple[str, str]]
    _connection: _Connection = field(repr=False)
    _timeout: float = field(repr=False)
    on_error: Callable[[BackendError], None] | None = field(default=None, repr=False)

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    async def read(self, limit: int) -> bytes:
        """The whole body; BackendError when it is longer than `limit`."""
        body = bytearray()
        async for piece in self.pieces():
            body += piece
            if len(body) > limit:
                raise BackendError(f"an answer body over {limit} bytes")
        return bytes(body)

    async def pieces(self) -> AsyncIterator[bytes]:
        """The body as it comes (a copy streams it on, in bounded memory)."""
        while True:
            try:
                try:
                    event = await self._connection.next_event(self._timeout)
                except (OSError, h11.ProtocolError) as e:
                    raise BackendError(str(e) or type(e).__name__) from None
                if not isinstance(event, h11.Data | h11.EndOfMessage):
                    raise BackendError(f"unexpected {type(event).__name__} in the answer body")
            except BackendError as e:
                if self.on_error is not None:
                    self.on_error(e)
                raise
            if isinstance(event, h11.EndOfMessage):
                return
            yield bytes(event.data)


class BackendClient:
    """Keeps the idle connections; one per proxy process (mitmproxy's event loop)."""

    def __init__(self, ca_file: str | None = None, timeouts: Timeouts = Timeouts()) -> None:
        self.ca_file = ca_file
        self.timeouts = timeouts
        self.health: Reporter | None = None  # told what each request found (`health`)
        self._idle: dict[tuple[str, str, int, bool], list[_Connection]] = {}
        self._contexts: dict[bool, ssl.SSLContext] = {}  # by whether it skips verification

    @contextlib.asynccontextmanager
    async def request(
        self,
        backend: Backend,
        method: str,
        bucket: str | None,
        key_path: str = "",
        query: str = "",
        headers: Sequence[tuple[str, str]] = (),
        body: bytes | Streamed | Pushed = b"",
        signed_headers: Sequence[str] | None = None,
    ) -> AsyncIterator[Reply]:
        """Send a signed request to `backend`; yields its answer (headers in, body unread).
        Every header is signed unless `signed_headers` names those to sign (a client's request
        sent again: its other headers may be changed on the way, as they were not signed).
        A `Streamed` or `Pushed` body is sent as it comes (UNSIGNED-PAYLOAD: its hash is not
        known ahead).
        Raises BackendError when it cannot be had."""
        location = backends.locate(backend, bucket, key_path, query)
        if isinstance(body, Streamed | Pushed):
            payload_hash, length = sigv4.UNSIGNED_PAYLOAD, body.length
        else:
            payload_hash, length = hashlib.sha256(body).hexdigest(), len(body)
        sent = [*headers, ("content-length", str(length))] if length else list(headers)
        if signed_headers is None:  # all but what botocore never signs (proxies rewrite them)
            names = [n.lower() for n, _ in sent if n.lower() not in _NEVER_SIGNED]
        else:
            names = list(signed_headers)
        signed = backends.sign(backend, method, location, sent, names, payload_hash)
        head = [("host", location.authority), *sent, *signed.headers.items()]
        address = (location.scheme, location.host, location.port, backend.ssl_skip_verify)
        try:
            connection = await self._connection(address)
        except BackendError as e:
            self._failed(backend, e)
            raise
        try:
            try:
                reply = await self._exchange(connection, method, location.path, head, body)
            except BackendError as e:
                self._failed(backend, e)
                raise
            if self.health is not None:
                self.health.answered(backend.name)
            reply.on_error = lambda e: self._failed(backend, e)
            yield reply
        finally:
            self._release(address, connection)

    def _failed(self, backend: Backend, error: BackendError) -> None:
        """Tell `health` once (an error of a streamed body's source was told as the source's)."""
        if self.health is not None and not error.reported:
            reason = f"{error.kind}: {error}" if error.kind != UNREACHABLE else str(error)
            self.health.failed(backend.name, reason, at_once=error.at_once)
        error.reported = True

    async def _exchange(
        self,
        connection: _Connection,
        method: str,
        target: str,
        head: list[tuple[str, str]],
        body: bytes | Streamed | Pushed,
    ) -> Reply:
        try:
            request = h11.Request(method=method, target=target, headers=head)
            if isinstance(body, Streamed):
                await connection.send(request)
                async for piece in body.pieces:
                    await connection.send(h11.Data(data=piece))
                await connection.send(h11.EndOfMessage())
            elif isinstance(body, Pushed):
                await connection.send(request)
                await body.push(connection)
                await connection.send(h11.EndOfMessage())
            elif body:  # a request in hand is one write: one system call, not three
                await connection.send(request, h11.Data(data=body), h11.EndOfMessage())
            else:
                await connection.send(request, h11.EndOfMessage())
            answer = await connection.next_event(self.timeouts.read)
        except (OSError, h11.ProtocolError) as e:
            raise BackendError(str(e) or type(e).__name__) from None
        if not isinstance(answer, h11.Response):
            raise BackendError(f"unexpected {type(answer).__name__} instead of an answer")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in answer.headers]
        return Reply(answer.status_code, headers, connection, self.timeouts.read)

    async def _connection(self, address: tuple[str, str, int, bool]) -> _Connection:
        idle = self._idle.get(address)
        while idle:
            connection = idle.pop()
            if not connection.writer.is_closing() and not connection.reader.at_eof():
                return connection
            connection.close()
        scheme, host, port, skip_verify = address
        context = self._tls(skip_verify) if scheme == "https" else None
        try:
            opening = asyncio.open_connection(
                host, port, ssl=context, server_hostname=host if context else None
            )
            reader, writer = await asyncio.wait_for(opening, self.timeouts.connect)
        except TimeoutError:
            message = f"no connection within {self.timeouts.connect:g}s"
            raise BackendError(message, UNREACHABLE) from None
        except OSError as e:
            raise BackendError(str(e) or type(e).__name__, UNREACHABLE, at_once=True) from None
        return _Connection(reader, writer)

    def _tls(self, skip_verify: bool) -> ssl.SSLContext:
        """One context per kind, kept: making one loads every trusted CA (tens of ms of CPU),
        which each new connection paid."""
        context = self._contexts.get(skip_verify)
        if context is None:
            context = self._contexts[skip_verify] = ssl.create_default_context(cafile=self.ca_file)
            if skip_verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
        return context

    def _release(self, address: tuple[str, str, int, bool], connection: _Connection) -> None:
        if connection.reusable:
            connection.h11.start_next_cycle()
            idle = self._idle.setdefault(address, [])
            if len(idle) < _IDLE_PER_ADDRESS:
                idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
