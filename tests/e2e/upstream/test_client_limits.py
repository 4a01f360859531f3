"""Clients that send what no SDK sends: heads that never end or do not fit, keys too long. Each
gets S3's answer in bounded time and bounded memory, and the proxy goes on serving."""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import pytest

from tests.support import faulty_clients
from tests.support.proxy import peak_rss
from tests.support.raw_http import Request, send
from tests.support.signing import sigv4

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def strict_proxy(backends, run_proxy, tmp_path_factory):
    """The proxy with a short client timeout (2 s) in front of the three backends."""
    path = tmp_path_factory.mktemp("limits") / "c.json"
    entries = [
        {"name": s.name, "access": s.access, "secret": s.secret, "endpoint": s.endpoint,
         "usePathStyle": True}
        for s in backends
    ]  # fmt: skip
    path.write_text(json.dumps({"backends": entries, "clientTimeout": 2}))
    return run_proxy(path)


def test_slowloris_connections_are_closed_after_the_client_timeout(strict_proxy):
    with faulty_clients.Slowloris(strict_proxy.port, connections=32, interval=0.5) as attack:
        deadline = time.monotonic() + 15
        while attack.open and time.monotonic() < deadline:
            time.sleep(0.5)
        assert attack.open == 0
        assert all(drip.closed_after is not None and drip.closed_after < 8 for drip in attack.drips)
        assert all(b"<Code>RequestTimeout</Code>" in drip.answer for drip in attack.drips)
    assert strict_proxy.client().list_buckets()["Buckets"] is not None  # still serving


@pytest.mark.parametrize("mib", [1, 64])
def test_a_huge_header_is_refused_without_reading_it(strict_proxy, mib):
    before = strict_proxy.rss_mb()
    outcome = faulty_clients.huge_header(strict_proxy.port, mib)
    assert outcome.status == 400 and outcome.seconds < 5
    assert b"<Code>RequestHeaderSectionTooLarge</Code>" in outcome.body_start
    # It stopped reading: what went out beyond the limit sits in loopback socket buffers.
    assert outcome.sent < 16 * 1024 * 1024
    assert strict_proxy.rss_mb() - before < 20


@pytest.mark.parametrize("head", ["url", "header"])
def test_a_client_that_sends_its_whole_oversized_head_before_reading_gets_the_refusal(
    strict_proxy, head
):
    """A simple client writes its whole request (a 16 MiB URL, a 64 MiB header) with blocking
    sends and only then reads: the proxy reads on and discards the rest, so the send completes
    and the refusal, sent once and never reset away, is there to read."""
    port = strict_proxy.port
    if head == "url":
        pieces, size = faulty_clients.huge_url_head(port, 16), 16 * faulty_clients.MIB
    else:
        pieces, size = faulty_clients.huge_header_head(port, 64), 64 * faulty_clients.MIB
    with peak_rss(strict_proxy) as peak:
        before = peak[0]
        outcome = faulty_clients.send_then_read(port, pieces, timeout=10)
    assert outcome.sent > size  # every byte went out: the proxy read them all
    assert outcome.status == 400 and outcome.seconds < 2
    assert b"<Code>RequestHeaderSectionTooLarge</Code>" in outcome.body_start
    assert b"connection: close" in outcome.head.lower()
    assert outcome.closed  # and then the proxy closed
    assert peak[0] - before < 20  # what it discarded was never kept
    assert strict_proxy.client().list_buckets()["Buckets"] is not None  # still serving


def test_a_client_that_floods_after_an_unparsable_head_is_closed_not_left_hanging(strict_proxy):
    """mitmproxy answers a head it cannot parse (its 400) and closes, often from the task of a
    hook while the client's next bytes wait for it: the close must happen then too, or the
    client, blocked in its send, waits for ever on a connection nobody reads."""
    pieces = faulty_clients.unparsable_upload(strict_proxy.port, 32)
    outcome = faulty_clients.send_then_read(strict_proxy.port, pieces, timeout=10)
    assert outcome.closed and outcome.seconds < 2
    assert outcome.status in (400, None)  # None: the reset of its unread bytes came first
    assert strict_proxy.client().list_buckets()["Buckets"] is not None  # still serving


def test_a_huge_url_is_refused_and_not_echoed(strict_proxy):
    outcome = faulty_clients.huge_url(strict_proxy.port, 16)
    assert outcome.status == 400 and b"RequestHeaderSectionTooLarge" in outcome.body_start
    assert len(outcome.head) + len(outcome.body_start) < 4096


def signed(proxy, method: str, path: str, *headers: tuple[str, str]) -> Request:
    host = ("Host", f"127.0.0.1:{proxy.port}")
    return sigv4(Request(method, path, headers=(host, *headers))).with_length()


def test_a_header_section_over_s3s_limit_is_refused(strict_proxy):
    request = signed(strict_proxy, "GET", "/bucket/key", ("x-amz-meta-big", "m" * 9000))
    answer = send(strict_proxy.port, request)
    assert answer.status == 400
    assert answer.error()["Code"] == "RequestHeaderSectionTooLarge"
    assert answer.error()["MaxSizeAllowed"] == "8192"


def test_a_key_over_1024_bytes_is_key_too_long(strict_proxy, bucket):
    key = quote("é" * 513)  # 1026 bytes of UTF-8
    answer = send(strict_proxy.port, signed(strict_proxy, "PUT", f"/{bucket}/{key}"))
    assert answer.status == 400
    error = answer.error()
    assert (error["Code"], error["Size"], error["MaxSizeAllowed"]) == (
        "KeyTooLongError",
        "1026",
        "1024",
    )
