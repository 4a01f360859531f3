"""A client's connection is kept or closed on its own terms: a backend that closes after every
answer (moto does) does not close the client's, while the proxy's own `Connection: close` (a
drain) still does."""

from __future__ import annotations

import signal
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
