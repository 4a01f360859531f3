"""HeaderIndex answers what mitmproxy's Headers answers, for every lookup verification makes."""

from __future__ import annotations

import pytest
from mitmproxy.http import Headers

from addon.auth.checks import HeaderIndex

FIELDS = [
    [(b"Host", b"h:1"), (b"X-Amz-Date", b"20260101T000000Z")],
    [(b"X-Amz-Meta-A", b"1"), (b"x-amz-meta-a", b"2"), (b"X-AMZ-META-A", b"3")],  # repeated
    [(b"Content-Type", b"text/plain"), (b"content-type", b"")],  # an empty repeat
    [(b"X-Amz-Meta-Caf\xc3\xa9", b"cr\xc3\xa8me"), (b"X-Bad", b"\xff\xfe")],  # not ASCII
    [],
]
NAMES = ["host", "HOST", "x-amz-date", "x-amz-meta-a", "content-type", "x-amz-meta-café", "x-bad"]


@pytest.mark.parametrize("fields", FIELDS)
def test_get_get_all_and_iteration_as_mitmproxy_headers(fields):
    headers, index = Headers(fields), HeaderIndex(fields)
    for name in [*NAMES, "absent"]:
        assert index.get(name) == headers.get(name), name
        assert index.get(name, "default") == headers.get(name, "default"), name
        assert index.get_all(name) == headers.get_all(name), name
    assert list(index) == list(headers)


def test_of_indexes_mitmproxy_headers_and_leaves_other_lookups_as_they_are():
    assert isinstance(HeaderIndex.of(Headers(host="h")), HeaderIndex)
    other = Headers(host="h").items  # anything without .fields
    assert HeaderIndex.of(other) is other  # type: ignore[arg-type]
