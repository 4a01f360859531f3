"""A connection mitmproxy is told to close is closed, whenever the order comes.

mitmproxy's `ConnectionHandler.handle_connection` reads a connection in a loop and, when its task
is cancelled (a `CloseConnection` command, the inactivity timeout), closes the socket on its way
out. It expects the cancellation inside the read or the drain it guards; but between them it
waits for the handler's event lock, and that lock is often queued for: a hook's completion (with
mitmproxy's eager tasks) waits there too. A close ordered from such a hook (an answer sent, a
refusal while the client still sends) cancels the task right there: the cancellation escapes the
loop without its ending, so the socket is never closed nor read again. The client, still sending,
blocks for ever, and the connection's buffers stay.

`_handle_connection` finishes what mitmproxy's ending does in that case: the connection marked
closed, its layers told, the socket closed, the transport let go. Private API, fingerprinted in
tests/unit/mitm/test_fingerprints.py.
"""

from __future__ import annotations

import asyncio

from mitmproxy.connection import Connection, ConnectionState
from mitmproxy.proxy import events
from mitmproxy.proxy.server import ConnectionHandler

_original_handle_connection = ConnectionHandler.handle_connection


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


def install() -> None:
    """From now on, a cancelled connection's socket is closed whatever the cancel interrupted."""
    ConnectionHandler.handle_connection = _handle_connection  # type: ignore[method-assign]


ORIGINAL = _original_handle_connection
