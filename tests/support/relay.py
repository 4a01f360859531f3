"""A relay in front of a real backend, between it and the proxy (or a command): it passes every
request on unchanged and notes it (`requests`), so a test can count what the backend received;
and it can answer chosen requests itself (`answer`: an S3 error, or a success it did not
check), hold them back for a while (`delay`), or until the test lets them go (`gate`), or
take their bodies slowly (`throttle`).

The relay quacks like the backend it is in front of for tests/support/proxy.py `write_config`
(`name`, `access`, `secret`, and its own `endpoint`): a SigV4 signature covers the Host header
as the proxy sent it, and the relay passes the request on byte for byte, so the backend checks
the signature the proxy made for the relay's address.

HTTP/1.1 as the proxy's own client and mitmproxy speak it to backends: one request at a time on
a connection; bodies framed by Content-Length or chunked; answers by Content-Length, chunked, or
the connection's end. asyncio, in a thread of its own, on a free port of 127.0.0.1, from
`with Relay(server) as relay:` until the block ends.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from addon.local.servers import S3Server


@dataclass(frozen=True)
class Passed:
    """One request as the relay read its head (path-style: /bucket/key?query)."""

    method: str
    target: str
    headers: dict[str, str]  # lower-case names

    @property
    def bucket(self) -> str:
        return self.target.partition("?")[0].lstrip("/").partition("/")[0]

    @property
    def key(self) -> str:
        return self.target.partition("?")[0].lstrip("/").partition("/")[2]

    @property
    def query(self) -> str:
        return self.target.partition("?")[2]


Match = Callable[[Passed], bool]


@dataclass
class Gate:
    """Requests that match wait here until `release()`; `arrived` is set when the first came."""

    match: Match
    arrived: threading.Event = field(default_factory=threading.Event)
    _open: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    def release(self) -> None:
        assert self._loop is not None and self._open is not None
        self._loop.call_soon_threadsafe(self._open.set)


class Relay:
    def __init__(self, upstream: S3Server) -> None:
        self.upstream = upstream
        self.name, self.access, self.secret = upstream.name, upstream.access, upstream.secret
        host, _, port = upstream.endpoint.removeprefix("http://").partition(":")
        self._upstream_at = (host, int(port or 80))
        self.requests: list[Passed] = []
        self._answers: list[tuple[Match, int]] = []
        self._delays: list[tuple[Match, float]] = []
        self._rates: list[tuple[Match, float]] = []
        self._gates: list[Gate] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._tasks: set[asyncio.Task] = set()
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self):
        return self.upstream.client()  # the backend itself, asked directly

    # --- what the test asks of it ----------------------------------------------------------------

    def answer(self, match: Match, status: int = 500) -> None:
        """Answer the requests that match with this status (and, if it is an error, an S3
        error's body) instead of passing them on."""
        with self._lock:
            self._answers.append((match, status))

    def delay(self, match: Match, seconds: float) -> None:
        with self._lock:
            self._delays.append((match, seconds))

    def throttle(self, match: Match, bytes_per_second: float) -> None:
        """Read the bodies of the requests that match at this rate at most."""
        with self._lock:
            self._rates.append((match, bytes_per_second))

    def gate(self, match: Match) -> Gate:
        gate = Gate(match)
        gate._loop = self._loop
        gate._open = asyncio.Event()
        with self._lock:
            self._gates.append(gate)
        return gate

    def passed(self, match: Match = lambda request: True) -> list[Passed]:
        """The requests noted so far that match."""
        with self._lock:
            return [r for r in self.requests if match(r)]

    def clear(self) -> None:
        """Forget the requests noted so far (the rules stay)."""
        with self._lock:
            self.requests.clear()

    def reset(self) -> None:
        """Forget the requests noted so far and every rule (gates are let go)."""
        with self._lock:
            self.requests.clear()
            self._answers.clear()
            self._delays.clear()
            self._rates.clear()
            gates, self._gates = self._gates, []
        for gate in gates:
            gate.release()

    # --- running ---------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self._thread.start()
        self._ready.wait(10)
        assert self.port, "the relay did not start"
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for gate in self._gates:
            gate.release()
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._accepted, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await server.wait_closed()

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while (head := await _read_head(reader)) is not None:
                request = _parse(head)
                with self._lock:
                    self.requests.append(request)
                    answers = [s for m, s in self._answers if m(request)]
                    delays = [d for m, d in self._delays if m(request)]
                    gates = [g for g in self._gates if g.match(request)]
                    rate = min([r for m, r in self._rates if m(request)], default=0.0)
                for gate in gates:
                    gate.arrived.set()
                    assert gate._open is not None
                    await gate._open.wait()
                if delays:
                    await asyncio.sleep(max(delays))
                if answers:
                    await _body(reader, request.headers, None)  # read, not passed on
                    writer.write(_answer(answers[0]))
                    await writer.drain()
                    continue
                if upstream is None:
                    upstream = await asyncio.open_connection(*self._upstream_at)
                if not await _exchange(head, request, reader, writer, *upstream, rate):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        except asyncio.CancelledError:
            return  # the relay stops (asyncio's streams log a connection task that ends cancelled)
        finally:
            self._tasks.discard(task)
            writer.close()
            if upstream is not None:
                upstream[1].close()


async def _exchange(
    head: bytes,
    request: Passed,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
    rate: float = 0.0,
) -> bool:
    """One request passed on (its body at `rate` bytes/s at most, if given) and its answer passed
    back; whether the connection goes on."""
    up_writer.write(head)
    sending = asyncio.ensure_future(_body(reader, request.headers, up_writer, rate=rate))
    try:
        while True:  # interim answers (100 Continue) first
            answer = await _read_head(up_reader)
            if answer is None:
                return False
            writer.write(answer)
            status = int(answer.split(b" ", 2)[1])
            if status >= 200:
                break
        headers = _parse(answer).headers
        if request.method == "HEAD" or status in (204, 304):
            framed = True
        else:
            framed = await _body(up_reader, headers, writer, until_closed=True)
        await writer.drain()
        await sending
        return framed
    finally:
        sending.cancel()


async def _read_head(reader: asyncio.StreamReader) -> bytes | None:
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if e.partial:
            raise
        return None


def _parse(head: bytes) -> Passed:
    first, *lines = head.decode("latin-1").split("\r\n")
    method, target, _ = [*first.split(" ", 2), "", ""][:3]
    headers = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return Passed(method, target, headers)


async def _body(
    reader: asyncio.StreamReader,
    headers: dict[str, str],
    to: asyncio.StreamWriter | None,
    until_closed: bool = False,
    rate: float = 0.0,
) -> bool:
    """Copy (or with `to` None, read away) a body framed by `headers`, at `rate` bytes/s at most
    if given; whether it was framed (False: it ran to the connection's end)."""

    async def put(data: bytes) -> None:
        if to is not None:
            to.write(data)
            await to.drain()
        if rate:
            await asyncio.sleep(len(data) / rate)

    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            line = await reader.readuntil(b"\r\n")
            await put(line)
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
                    await put(trailer)
                await put(b"\r\n")
                return True
            await put(await reader.readexactly(size + 2))
    if "content-length" in headers:
        left = int(headers["content-length"])
        while left:
            piece = await reader.read(min(left, 64 * 1024))
            if not piece:
                raise asyncio.IncompleteReadError(b"", left)
            left -= len(piece)
            await put(piece)
        return True
    if until_closed:
        while piece := await reader.read(64 * 1024):
            await put(piece)
        return False
    return True  # a request without a body


def _answer(status: int) -> bytes:
    body = b""
    if status >= 300:
        body = (
            b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
            b"<Message>The relay answers this request itself.</Message></Error>"
        )
    head = f"HTTP/1.1 {status} Relay\r\n"
    if status != 204:
        head += f"Content-Type: application/xml\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body
