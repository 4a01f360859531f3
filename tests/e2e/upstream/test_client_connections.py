"""A client's connection is kept or closed on its own terms: a backend that closes after every
answer (moto does) does not close the client's, while the proxy's own `Connection: close` (a
drain) still does. Connections idle past `clientIdleTimeout` are closed, and those beyond
`maxClientConnections` are answered 503 SlowDown and closed."""

from __future__ import annotations

import select
import signal
import socket
import time

import pytest

from tests.support.direct import put_direct
from tests.support.proxy import write_config
from tests.support.raw_http import Connection, Request, send
from tests.support.signing import sigv4

pytestmark = pytest.mark.e2e
MIB = 1024 * 1024


def signed(port: int, method: str, path: str, body: bytes = b"") -> Request:
    request = Request(method, path, headers=(("Host", f"127.0.0.1:{port}"),), body=body)
    return sigv4(request).with_length()


def test_a_backend_that_closes_after_every_answer_does_not_close_the_clients_connection(
    proxy, backends, bucket
):
    primary, _, tertiary = backends
    put_direct(primary, bucket, "here", b"on the primary")
    put_direct(tertiary, bucket, "there", b"on the tertiary")
    # The backends close their connection after each answer, and say so.
    direct = send(primary.port, Request("GET", "/", headers=(("Host", "x"),)))
    assert direct.headers["Connection"] == "close"
    port = proxy.port
    requests = [
        (signed(port, "GET", f"/{bucket}/here"), 200, b"on the primary"),
        (signed(port, "HEAD", f"/{bucket}/here"), 200, b""),
        (signed(port, "GET", f"/{bucket}/there"), 200, b"on the tertiary"),  # after two 404s
        (signed(port, "GET", f"/{bucket}/nowhere"), 404, None),
        (signed(port, "PUT", f"/{bucket}/put", b"written"), 200, b""),
    ]
    with Connection(port) as connection:
        for i in range(100):
            request, status, body = requests[i % len(requests)]
            answer = connection.exchange(request)
            assert (answer.status, "Connection" in answer.headers) == (status, False), i
            assert body is None or answer.body == body
    # One connection, never closed: a closed one would have failed the next exchange.


def test_the_proxys_own_connection_close_still_closes_while_draining(
    backends, run_proxy, tmp_path, bucket
):
    """During a drain, an answer says `Connection: close` and the connection ends after it."""
    put_direct(backends[0], bucket, "large", b"l" * (16 * MIB))
    put_direct(backends[0], bucket, "small", b"small")
    proxy = run_proxy(write_config(tmp_path / "c.json", backends[:2]), "s3multi_drain_timeout=30")
    with Connection(proxy.port) as kept:
        first = kept.exchange(signed(proxy.port, "GET", f"/{bucket}/small"))
        assert (first.status, "Connection" in first.headers) == (200, False)
        body = proxy.client().get_object(Bucket=bucket, Key="large")["Body"]
        body.read(MIB)  # in flight: the drain waits for it
        proxy.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while "draining" not in proxy.log():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        during = kept.exchange(signed(proxy.port, "GET", f"/{bucket}/small"))
        assert (during.status, during.body) == (200, b"small")
        assert during.headers["Connection"] == "close"
        assert kept.read_until_closed() == b""  # and the proxy closed it
        body.read()
    assert proxy.process.wait(timeout=15) == 0


def wait_for_no_connection(proxy) -> None:
    """Until the proxy's log shows every client connection so far ended (one at least)."""
    deadline = time.monotonic() + 5
    while True:
        log = proxy.log()
        ended = log.count("client disconnect")
        if ended and log.count("client connect") == ended:
            return
        assert time.monotonic() < deadline, "client connections still open"
        time.sleep(0.05)


def closed_by_the_proxy(connection: socket.socket) -> bool:
    """Whether the proxy has closed `connection` (its end of stream is there to read)."""
    if not select.select([connection], [], [], 0)[0]:
        return False
    try:
        return connection.recv(1) == b""
    except ConnectionResetError:
        return True


def test_idle_client_connections_are_closed_and_busy_ones_are_not(
    backends, run_proxy, tmp_path, bucket
):
    large = bytes(range(256)) * (32 * 1024)  # 8 MiB
    put_direct(backends[0], bucket, "large", large)
    config = write_config(tmp_path / "c.json", backends[:1], {"clientIdleTimeout": 1})
    proxy = run_proxy(config)
    port = proxy.port
    silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(25)]
    after_a_request = []
    for _ in range(25):
        connection = Connection(port)
        assert connection.exchange(signed(port, "GET", f"/{bucket}/nowhere")).status == 404
        after_a_request.append(connection._sock)
    # A download read slowly, for longer than the idle timeout: in flight, so never idle.
    download = proxy.client().get_object(Bucket=bucket, Key="large")["Body"]
    received, started = download.read(MIB), time.monotonic()
    while piece := download.read(MIB):
        received += piece
        time.sleep(0.4)
    assert received == large and time.monotonic() - started > 2
    idle = silent + after_a_request
    deadline = time.monotonic() + 2
    while not all(closed_by_the_proxy(c) for c in idle):
        assert time.monotonic() < deadline, "idle connections still open"
        time.sleep(0.1)
    for connection in idle:
        connection.close()
    # Still serving, on a new connection.
    assert send(port, signed(port, "GET", f"/{bucket}/nowhere")).status == 404


def test_connections_beyond_the_bound_get_slow_down_and_are_closed(
    backends, run_proxy, tmp_path, bucket
):
    put_direct(backends[0], bucket, "k", b"kept")
    config = write_config(tmp_path / "c.json", backends[:1], {"maxClientConnections": 4})
    proxy = run_proxy(config)
    port = proxy.port
    get = signed(port, "GET", f"/{bucket}/k")
    wait_for_no_connection(proxy)  # the start-up probe's is over
    kept = [Connection(port) for _ in range(4)]
    for connection in kept:
        assert connection.exchange(get).status == 200
    with Connection(port) as beyond:
        answer = beyond.exchange(get)
        assert (answer.status, answer.error()["Code"]) == (503, "SlowDown")
        assert "at most 4 connections at once (maxClientConnections)" in answer.error()["Message"]
        assert answer.headers["Connection"] == "close"
        assert beyond.read_until_closed() == b""
    for connection in kept:  # those within the bound go on
        assert connection.exchange(get).body == b"kept"
    kept.pop().__exit__()
    deadline = time.monotonic() + 5  # the proxy hears of the close: there is room again
    while (answer := send(port, get)).status != 200:
        assert time.monotonic() < deadline, answer.status
        time.sleep(0.1)
    assert answer.body == b"kept"
    for connection in kept:
        connection.__exit__()
