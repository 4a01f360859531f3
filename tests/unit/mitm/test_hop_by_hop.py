"""The client's copy of an upstream's answer loses the hop-by-hop headers; the upstream
connection's original keeps them (it still closes when the backend said so)."""

from __future__ import annotations

from mitmproxy import http
from mitmproxy.proxy.layers.http import ResponseHeaders

from addon.mitm.hop_by_hop import for_client


def answer(*headers: tuple[str, str]) -> ResponseHeaders:
    """An answer's head as mitmproxy reads it from a backend (no body yet)."""
    fields = http.Headers([(k.encode(), v.encode()) for k, v in headers])
    response = http.Response(b"HTTP/1.1", 200, b"OK", fields, None, None, 0.0, None)
    return ResponseHeaders(1, response, end_stream=False)


def test_connection_the_fields_it_names_and_the_fixed_ones_go_framing_and_the_rest_stay():
    event = answer(
        ("Content-Length", "5"),
        ("Connection", "close, X-Backend-Hint"),
        ("X-Backend-Hint", "h"),
        ("Keep-Alive", "timeout=5"),
        ("Proxy-Connection", "keep-alive"),
        ("Upgrade", "h2c"),
        ("TE", "trailers"),
        ("Trailer", "x-amz-checksum-crc32"),
        ("ETag", '"abc"'),
    )
    client = for_client(event)
    assert list(client.response.headers.items()) == [
        ("Content-Length", "5"),
        ("Trailer", "x-amz-checksum-crc32"),
        ("ETag", '"abc"'),
    ]
    assert (client.stream_id, client.end_stream) == (1, False)
    assert event.response.headers["Connection"] == "close, X-Backend-Hint"  # the original's


def test_framing_stays_whatever_connection_names():
    event = answer(("Transfer-Encoding", "chunked"), ("Connection", "Transfer-Encoding, close"))
    assert list(for_client(event).response.headers.items()) == [("Transfer-Encoding", "chunked")]


def test_an_answer_without_them_is_passed_as_it_is():
    event = answer(("Content-Length", "0"), ("ETag", '"abc"'))
    assert for_client(event) is event
