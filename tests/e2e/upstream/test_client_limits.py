"""Clients that send what no SDK sends: heads that never end or do not fit, keys too long. Each
gets S3's answer in bounded time and bounded memory, and the proxy goes on serving."""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import pytest

from tests.support import faulty_clients
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
