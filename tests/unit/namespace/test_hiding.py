"""addon.namespace.hiding: which copies a tombstone hides. Each path that serves, lists, copies
or keeps a fallback's copy asks this one function (see the path tests for each)."""

from __future__ import annotations

import pytest

from addon.namespace.hiding import hidden

MD5 = "9b2cf535f27731c974343645a3985328"
OTHER = "0cc175b9c0f1b6a831c399e269772661"
HIDES = {"warm": f'"{MD5}"', "cold": f'"{OTHER}-2"'}


@pytest.mark.parametrize(
    ("backend", "etag", "source", "verdict"),
    [
        ("warm", f'"{MD5}"', None, True),  # the very copy the delete hid
        ("warm", MD5.upper(), None, True),  # in another form
        ("warm", None, None, True),  # an answer that names no ETag (a sub-resource's)
        ("warm", f'"{OTHER}"', None, False),  # a copy written there since
        ("cold", f'"{OTHER}-2"', None, True),
        ("cold", f'"{OTHER}"', None, False),  # same bytes in one part: another copy
        ("hot", f'"{MD5}"', None, False),  # a backend the tombstone does not name
        ("primary", f'"{OTHER}"', MD5, True),  # a copy the proxy made of a hidden copy
        ("primary", f'"{OTHER}"', f'"{MD5}"', True),
        ("primary", f'"{OTHER}"', OTHER, False),  # a copy of something else
    ],
)
def test_hidden(backend, etag, source, verdict):
    assert hidden(HIDES, backend, etag, source) is verdict


@pytest.mark.parametrize("hides", [None, {}])
def test_no_tombstone_hides_nothing(hides):
    assert not hidden(hides, "warm", None)
    assert not hidden(hides, "warm", f'"{MD5}"', MD5)
