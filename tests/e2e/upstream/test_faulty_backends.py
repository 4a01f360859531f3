"""The test equipment itself: each fake backend and misbehaving client does what its name says.

Talked to directly with raw sockets, no proxy (the stalled upload's signature is checked
against a real moto server).
"""

from __future__ import annotations

import re
import socket
import threading
import time
import tracemalloc
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator

import pytest

from tests.support import faulty_backends as fb
from tests.support import faulty_clients as fc

QUIET = 0.5  # seconds of silence that count as "nothing more comes"


def connect(fake: fb.FakeBackend) -> socket.socket:
    return socket.create_connection(("127.0.0.1", fake.port), timeout=5)


def request(method: str, path: str, body: bytes = b"") -> bytes:
    length = f"Content-Length: {len(body)}\r\n" if body else ""
    return f"{method} {path} HTTP/1.1\r\nHost: fake\r\n{length}\r\n".encode() + body


def read_for(conn: socket.socket, seconds: float = QUIET) -> tuple[bytes, bool]:
    """What arrives until `seconds` pass without a byte; whether the peer closed."""
    conn.settimeout(seconds)
    received = b""
    while True:
        try:
            data = conn.recv(65536)
        except TimeoutError:
            return received, False
        if not data:
            return received, True
        received += data


def read_answer(conn: socket.socket, method: str = "GET") -> tuple[bytes, bytes]:
    """One complete answer framed by Content-Length (no body to HEAD): head, body."""
    conn.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)\r\ncontent-length: (\d+)", head)
    assert length is not None, head
    if method != "HEAD":
        while len(body) < int(length[1]):
            body += conn.recv(65536)
    return head, body


def wait_for(condition: Callable[[], object], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


FAKES = [
    fb.Hang,
    fb.StallAfterHeaders,
    fb.Garbage,
    fb.InvalidStatus,
    fb.ShortBody,
    fb.Reset,
    fb.HugeNotFound,
    fb.HugeBucketList,
    fb.SlowDrip,
]


@pytest.mark.parametrize("fake_type", FAKES, ids=lambda t: t.name)
def test_each_fake_answers_the_keys_it_is_given_like_s3(fake_type: type[fb.FakeBackend]) -> None:
    answers = {"/b/here": b"hello", "/b/gone": None}
    with fake_type(answers=answers) as fake, connect(fake) as conn:
        conn.sendall(request("GET", "/b/here?x=1"))
        head, body = read_answer(conn)
        assert head.startswith(b"HTTP/1.1 200 OK") and body == b"hello"
        conn.sendall(request("HEAD", "/b/here"))  # the same connection: kept alive
        head, body = read_answer(conn, "HEAD")
        assert head.startswith(b"HTTP/1.1 200 OK") and b"Content-Length: 5" in head
        conn.sendall(request("GET", "/b/gone"))
        head, body = read_answer(conn)
        assert head.startswith(b"HTTP/1.1 404") and b"<Code>NoSuchKey</Code>" in body
        assert fake.connections == 1
        assert [(r.method, r.target) for r in fake.requests] == [
            ("GET", "/b/here?x=1"),
            ("HEAD", "/b/here"),
            ("GET", "/b/gone"),
        ]


def test_hang_reads_the_request_and_never_answers() -> None:
    with fb.Hang() as fake, connect(fake) as conn:
        conn.sendall(request("PUT", "/b/k", b"x" * 5000))
        assert read_for(conn) == (b"", False)
        (put,) = fake.requests
        assert (put.method, put.path, put.body_bytes, put.complete) == ("PUT", "/b/k", 5000, True)
        fake.stop()
        assert read_for(conn) == (b"", True)  # stopping closes what it holds


def test_hang_counts_a_body_that_does_not_arrive_whole() -> None:
    with fb.Hang() as fake, connect(fake) as conn:
        conn.sendall(request("PUT", "/b/k", b"x" * 5000)[:-1000])
        wait_for(lambda: fake.requests and fake.requests[0].body_bytes == 4000)
        assert not fake.requests[0].complete


def test_a_chunked_body_is_counted_without_its_framing() -> None:
    with fb.Hang() as fake, connect(fake) as conn:
        head = b"PUT /b/k HTTP/1.1\r\nHost: fake\r\nTransfer-Encoding: chunked\r\n\r\n"
        conn.sendall(head + b"5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\n\r\n")
        wait_for(lambda: fake.requests and fake.requests[0].complete)
        assert fake.requests[0].body_bytes == 8


def test_stall_sends_headers_and_part_of_the_body_then_nothing() -> None:
    with fb.StallAfterHeaders(length=100_000, sent=1000) as fake, connect(fake) as conn:
        conn.sendall(request("GET", "/b/k"))
        received, closed = read_for(conn)
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK") and b"Content-Length: 100000" in head
        assert (len(body), closed) == (1000, False)


def test_garbage_is_not_http_and_ends_with_a_close() -> None:
    with fb.Garbage() as fake, connect(fake) as conn:
        conn.sendall(request("GET", "/b/k"))
        assert read_for(conn) == (fb.GARBAGE, True)
    assert b"HTTP" not in fb.GARBAGE


def test_invalid_status_is_a_well_framed_answer_with_status_99999() -> None:
    with fb.InvalidStatus() as fake, connect(fake) as conn:
        conn.sendall(request("GET", "/b/k"))
        head, body = read_answer(conn)
        assert head.split(b"\r\n")[0] == b"HTTP/1.1 99999 X"
        assert body == b"invalid status"


def test_short_body_closes_before_its_content_length() -> None:
    with fb.ShortBody(length=10_000, sent=3000) as fake, connect(fake) as conn:
        conn.sendall(request("GET", "/b/k"))
        received, closed = read_for(conn)
        head, _, body = received.partition(b"\r\n\r\n")
        assert b"Content-Length: 10000" in head
        assert (len(body), closed) == (3000, True)


def test_reset_answers_the_request_with_rst() -> None:
    with fb.Reset() as fake, connect(fake) as conn:
        conn.sendall(request("GET", "/b/k"))
        with pytest.raises(ConnectionResetError):
            read_for(conn)
        assert len(fake.requests) == 1


def test_reset_after_part_of_an_answer_is_a_backend_killed_mid_transfer() -> None:
    start = fb.head("200 OK", {"Content-Length": 10_000}) + b"x" * 100
    with fb.Reset(first=start) as fake, connect(fake) as conn:
        conn.sendall(request("GET", "/b/k"))
        conn.settimeout(5)
        received = b""
        with pytest.raises(ConnectionResetError):
            while data := conn.recv(65536):
                received += data
        # What arrived before the RST is the start of the answer (or nothing, if the RST won).
        assert start.startswith(received)


def test_huge_not_found_is_a_no_such_key_of_exactly_its_size_made_as_it_is_sent() -> None:
    size = 32 * fb.MIB
    with fb.HugeNotFound(size=size) as fake, connect(fake) as conn:
        conn.sendall(request("GET", "/b/k"))
        first = b""
        while len(first.partition(b"\r\n\r\n")[2]) < 64:
            first += conn.recv(65536)
        head, _, start = first.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 404") and f"Content-Length: {size}".encode() in head
        assert start.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey')
        tracemalloc.start()
        try:
            length, last = len(start), b""
            for data in drain_answer(conn, size - len(start)):
                length, last = length + len(data), (last + data)[-64:]
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert length == size and last.endswith(b"</Message></Error>")
        assert peak < fb.MIB  # the fake never holds the body (nor does this reader)


def drain_answer(conn: socket.socket, count: int) -> Iterator[bytes]:
    conn.settimeout(10)
    while count > 0:
        data = conn.recv(min(count, 65536))
        assert data, "closed before the end of the body"
        count -= len(data)
        yield data


def test_huge_bucket_list_is_a_valid_listing_of_at_most_its_size() -> None:
    with fb.HugeBucketList(size=fb.MIB) as fake, connect(fake) as conn:
        conn.sendall(request("GET", "/"))
        head, body = read_answer(conn)
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert fb.MIB - 200 < len(body) <= fb.MIB
        root = ET.fromstring(body)
        ns = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}
        names = [e.text for e in root.findall("s3:Buckets/s3:Bucket/s3:Name", ns)]
        assert len(names) == len(set(names)) == fake.buckets > 10_000
        assert names[0] == "bucket-0000000000"


def test_slow_drip_sends_a_normal_answer_a_byte_at_a_time() -> None:
    interval = 0.01
    with fb.SlowDrip(body=b"drip", interval=interval) as fake, connect(fake) as conn:
        started = time.monotonic()
        conn.sendall(request("GET", "/b/k"))
        pieces = []
        while not (b"".join(pieces).endswith(b"drip")):
            pieces.append(conn.recv(65536))
        elapsed = time.monotonic() - started
    answer = b"".join(pieces)
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"\r\n\r\ndrip")
    assert len(pieces) > len(answer) / 2  # it arrives in pieces, mostly of one byte
    assert elapsed >= len(answer) * interval * 0.9


def test_blackhole_connect_hangs_until_the_client_gives_up() -> None:
    with fb.Blackhole() as hole:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            socket.create_connection(("127.0.0.1", hole.port), timeout=1)
        assert time.monotonic() - started >= 0.9
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", hole.port), timeout=1)


def test_a_stopped_fake_refuses_connections_and_counts_each_one() -> None:
    with fb.InvalidStatus() as fake:
        for _ in range(3):
            with connect(fake) as conn:
                conn.sendall(request("GET", "/b/k"))
                read_answer(conn)
    assert (fake.connections, len(fake.requests)) == (3, 3)
    with pytest.raises(ConnectionRefusedError):
        connect(fake)


# --- misbehaving clients ----------------------------------------------------------------------


class HeadSink:
    """Accepts one connection, reads one request head without keeping it, answers 200."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.head_bytes = 0
        self.first_line_bytes = 0
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn, self.listener:
            tail, line_open = b"", True
            while not tail.endswith(b"\r\n\r\n"):
                data = conn.recv(65536)
                if line_open and b"\r\n" in data:
                    self.first_line_bytes += data.index(b"\r\n")
                    line_open = False
                elif line_open:
                    self.first_line_bytes += len(data)
                self.head_bytes += len(data)
                tail = (tail + data)[-4:]
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def test_huge_header_sends_one_header_of_that_many_mebibytes() -> None:
    sink = HeadSink()
    outcome = fc.huge_header(sink.port, 3)
    sink.thread.join(timeout=10)
    assert (outcome.status, outcome.body_start) == (200, b"ok")
    assert outcome.sent == sink.head_bytes > 3 * fb.MIB
    assert sink.head_bytes - 3 * fb.MIB < 100  # request line, Host, the header's name


def test_huge_url_sends_a_request_line_of_that_many_mebibytes() -> None:
    sink = HeadSink()
    outcome = fc.huge_url(sink.port, 2)
    sink.thread.join(timeout=10)
    assert outcome.status == 200 and outcome.sent == sink.head_bytes
    assert 2 * fb.MIB < sink.first_line_bytes < 2 * fb.MIB + 30


def test_a_huge_request_stops_when_the_server_closes_without_reading_it() -> None:
    # The fake reads at most 1 MiB of head, then closes: the client stops, it does not hang.
    with fb.InvalidStatus() as fake:
        outcome = fc.huge_header(fake.port, 64, timeout=10)
    assert outcome.closed and not outcome.answered
    assert outcome.sent < 64 * fb.MIB and outcome.seconds < 10


def test_stalled_upload_sends_part_of_a_body_then_waits_with_the_connection_open() -> None:
    with fb.Hang() as fake:
        outcome = fc.stalled_upload(fake.port, "b", "k", "AK", "SK", 100_000, 30_000, timeout=1)
        (put,) = fake.requests
        assert (put.method, put.target, put.headers["content-length"]) == ("PUT", "/b/k", "100000")
        assert (put.body_bytes, put.complete) == (30_000, False)
    assert not outcome.answered and not outcome.closed and outcome.seconds >= 1


@pytest.mark.e2e  # a moto server checks the signature
def test_stalled_upload_is_signed_so_that_s3_stores_it_when_it_is_sent_whole(backends) -> None:
    server = backends[0]
    bucket, key, length = f"t-{uuid.uuid4().hex[:12]}", "whole.bin", 300_000
    server.client().create_bucket(Bucket=bucket)
    outcome = fc.stalled_upload(
        server.port, bucket, key, server.access, server.secret, length, length
    )
    assert outcome.status == 200, outcome.head
    stored = server.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    assert stored == b"".join(fc.upload_body(length))


def test_slowloris_drips_an_endless_head_on_each_connection() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    with listener, fc.Slowloris(listener.getsockname()[1], connections=3, interval=0.05) as attack:
        accepted = [listener.accept()[0] for _ in range(3)]
        time.sleep(0.5)
        head = f"GET /bucket/key HTTP/1.1\r\nHost: 127.0.0.1:{attack.port}\r\nX-Drip-0: a\r\n"
        for conn in accepted:
            conn.setblocking(False)
            received = conn.recv(65536)  # about one byte per 0.05 s: 10 in 0.5 s
            assert 2 <= len(received) <= 12 and head.encode().startswith(received)
        accepted[0].sendall(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
        accepted[0].close()
        wait_for(lambda: attack.open == 2)
        assert attack.drips[0].answer.startswith(b"HTTP/1.1 408")
        for conn in accepted[1:]:
            conn.close()
        wait_for(lambda: attack.open == 0)
