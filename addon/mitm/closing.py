"""How connections end: a close mitmproxy orders is carried out whenever the order comes, and an
upstream that resets while we still write to it is heard first.

mitmproxy's `ConnectionHandler.handle_connection` reads a connection in a loop and, when its task
is cancelled (a `CloseConnection` command, the inactivity timeout), closes the socket on its way
out. It expects the cancellation inside the read or the drain it guards; but between them it
waits for the handler's event lock, and that lock is often queued for: a hook's completion (with
mitmproxy's eager tasks) waits there too. A close ordered from such a hook (an answer sent, a
refusal while the client still sends) cancels the task right there: the cancellation escapes the
loop without its ending, so the socket is never closed nor read again. The client, still sending,
blocks for ever, and the connection's buffers stay.

`_handle_connection` finishes what mitmproxy's ending does in that case: the connection marked
closed, its layers told, the socket closed, the transport let go.

An upstream may answer before it has read the whole request and close (an upload it refuses at
once): the bytes we still send reset the connection. asyncio then closes the socket at once
(its transport's `_fatal_error`), and the answer, already in the socket's receive buffer, is
lost: the client would get a 503 of ours for the backend's own error. For upstream connections
(`hear_upstream_out`, from the `server_connected` hook, before anything is sent on them), what
the socket still holds (up to SALVAGE_BYTES) is read before such a failure and handed to the
connection as if read, followed by an ordinary end of stream rather than the error (an asyncio
stream reader given an error drops what it holds unread, the answer read a moment before the
reset among it): the answer goes on to the client, whole, and nothing is written any more.

Private API: mitmproxy's `ConnectionHandler.handle_connection` and `transports` and the
proxyserver's `connections`, fingerprinted in tests/unit/mitm/test_fingerprints.py; asyncio's
selector transport's `_fatal_error`, `_force_close`, `_conn_lost` and `_sock` (Python's, not
mitmproxy's), whose behaviour tests/unit/mitm/test_closing.py checks on real sockets.
"""

from __future__ import annotations

import asyncio
from typing import Any

from mitmproxy import ctx
from mitmproxy.connection import Connection, ConnectionState
from mitmproxy.proxy import events
from mitmproxy.proxy.server import ConnectionHandler
from mitmproxy.proxy.server_hooks import ServerConnectionHookData

_original_handle_connection = ConnectionHandler.handle_connection
SALVAGE_BYTES = 1024 * 1024  # an answer's head and an error body fit many times over


async def _handle_connection(self: ConnectionHandler, connection: Connection) -> None:
    try:
        await _original_handle_connection(self, connection)
    except asyncio.CancelledError:
        io = self.transports.get(connection)
        if io is None:
            raise  # mitmproxy's own ending ran: the socket is closed
        # Cancelled while waiting for the event lock: mitmproxy's ending, done here.
        connection.state = ConnectionState.CLOSED
        try:
            await self.server_event(events.ConnectionClosed(connection))
        finally:
            if io.writer is not None:
                io.writer.close()
            self.transports.pop(connection, None)
        raise


def hear_upstream_out(data: ServerConnectionHookData) -> None:
    """mitmproxy's `server_connected` hook: from now on, a write (or read) that fails on this
    upstream connection first delivers what the socket still holds, then ends the stream as if
    the upstream had closed after it. Run before anything is sent on it."""
    handler = ctx.master.addons.get("proxyserver").connections.get(data.client.id)
    io = handler.transports.get(data.server) if handler is not None else None
    if io is not None and io.writer is not None:
        _heard_before_failing(io.writer.transport)


def _heard_before_failing(transport: Any) -> None:
    fail = transport._fatal_error

    def _fatal_error(exc: BaseException, message: str = "Fatal error on transport") -> None:
        protocol = transport.get_protocol()
        if not isinstance(exc, OSError) or transport._conn_lost or protocol is None:
            return fail(exc, message)
        left = _what_is_left(transport._sock)
        if left:
            protocol.data_received(left)
        # An end of stream, not the error: a stream reader given an error drops what it holds
        # unread (the answer, read a moment before the reset). mitmproxy ends the connection
        # alike on either.
        transport._force_close(None)
        return None

    transport._fatal_error = _fatal_error


def _what_is_left(sock: Any) -> bytes:
    """What a non-blocking socket holds now, up to SALVAGE_BYTES."""
    pieces: list[bytes] = []
    size = 0
    while size < SALVAGE_BYTES:
        try:
            piece = sock.recv(65536)
        except OSError:  # nothing more now (BlockingIOError), or the reset itself
            break
        if not piece:
            break
        pieces.append(piece)
        size += len(piece)
    return b"".join(pieces)


def install() -> None:
    """From now on, a cancelled connection's socket is closed whatever the cancel interrupted."""
    ConnectionHandler.handle_connection = _handle_connection  # type: ignore[method-assign]


ORIGINAL = _original_handle_connection
