"""A request aimed at a backend gets the signature's headers as Headers.update would set them."""

from __future__ import annotations

import pytest
from mitmproxy.http import Headers

from addon.upstream.retarget import _with_signature

SIGNATURE = {"X-Amz-Date": "20260101T000000Z", "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"} | {
    "Authorization": "AWS4-HMAC-SHA256 Credential=AK/20260101/us-east-1/s3/aws4_request, ..."
}


@pytest.mark.parametrize(
    "headers",
    [
        [("Content-Type", "text/plain"), ("X-Amz-Meta-A", "1"), ("X-Amz-Meta-A", "2")],
        [("x-amz-date", "old"), ("Range", "bytes=0-1"), ("X-AMZ-DATE", "older")],  # replaced
        [("authorization", "theirs"), ("Content-Length", "3")],
        [],
    ],
)
def test_the_same_fields_in_the_same_order_as_headers_update(headers):
    expected = Headers([(k.encode(), v.encode()) for k, v in headers])
    expected.update(SIGNATURE)
    assert _with_signature(headers, SIGNATURE) == list(expected.fields)
