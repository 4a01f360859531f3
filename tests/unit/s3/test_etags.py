"""addon.s3.etags: one ETag comparison, whatever form a backend or a listing gives it in."""

from __future__ import annotations

import pytest

from addon.s3.etags import md5_of, normal_etag, same_etag

MD5 = "9b2cf535f27731c974343645a3985328"


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (f'"{MD5}"', MD5, True),  # a header's quotes, a source-ETag's none
        (MD5.upper(), f'"{MD5}"', True),  # hex case
        (f'W/"{MD5}"', MD5, True),  # a weak validator's prefix
        (f' "{MD5}" ', MD5, True),
        (f'"{MD5}-2"', f"{MD5.upper()}-2", True),
        (f"{MD5}-2", MD5, False),  # another part layout is another object
        (f"{MD5}-2", f"{MD5}-3", False),
        ('"opaque-Etag"', "opaque-etag", False),  # not MD5-shaped: compared exactly
        ('"opaque-Etag"', "opaque-Etag", True),
        (None, MD5, False),
        (MD5, None, False),
    ],
)
def test_same_etag(a, b, same):
    assert same_etag(a, b) is same
    assert same_etag(b, a) is same


def test_normal_etag_and_md5_of():
    assert normal_etag(f'"{MD5.upper()}"') == MD5
    assert md5_of(f'"{MD5.upper()}"') == MD5
    assert md5_of(f'"{MD5}-2"') is None  # a multipart ETag is no MD5 of the bytes
    assert md5_of('"opaque"') is None
