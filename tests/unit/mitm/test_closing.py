"""What `addon.mitm.closing` relies on in asyncio's socket transport, on real sockets of
127.0.0.1 (no process): a peer that answers before reading what we send and closes resets the
connection on our next write; asyncio would then drop the answer already received, the wrapped
transport delivers it, then an end of stream."""

from __future__ import annotations

import asyncio
import socket
import threading

from addon.mitm import closing

ANSWER = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\nearly"


def _answers_before_reading(listener: socket.socket) -> None:
    conn, _ = listener.accept()
    conn.recv(64)  # part of the request; the rest stays unread
    conn.sendall(ANSWER)
    conn.close()  # with unread bytes: the kernel resets the connection


async def _write_until_it_fails(heard: bool) -> tuple[bytes, BaseException | None]:
    """Write to such a peer until the transport gives up; then what the reader gets."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        peer = threading.Thread(target=_answers_before_reading, args=(listener,))
        peer.start()
        reader, writer = await asyncio.open_connection(*listener.getsockname())
        if heard:
            closing._heard_before_failing(writer.transport)
        writer.write(b"PUT /b/k HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n")
        await asyncio.sleep(0.2)  # the answer and the reset are in: nothing read them yet
        while not writer.transport.is_closing():
            writer.write(b"u" * 65536)
            await asyncio.sleep(0.01)
        peer.join()
        received, error = b"", None
        try:
            while piece := await reader.read(65536):
                received += piece
        except OSError as e:
            error = e
        writer.close()
        return received, error


def test_an_answer_received_before_a_failed_write_is_delivered_then_the_stream_ends():
    assert asyncio.run(_write_until_it_fails(heard=True)) == (ANSWER, None)


def test_without_it_asyncio_loses_that_answer():
    """Why closing exists: the same peer, asyncio's own transport."""
    received, error = asyncio.run(_write_until_it_fails(heard=False))
    assert received == b"" and isinstance(error, ConnectionResetError | BrokenPipeError)
