"""addon.replication.plan: the repair's decision from the two HEADs, row by row of its table."""

from __future__ import annotations

import pytest

from addon.replication.plan import (
    ABSENT,
    DELETE,
    OBJECT,
    TAGS,
    Copy,
    CopyTags,
    Delete,
    Done,
    Head,
    plan,
)

MD5 = '"9b2cf535f27731c974343645a3985328"'
OTHER = '"0cc175b9c0f1b6a831c399e269772661"'
PARTS = '"0cc175b9c0f1b6a831c399e269772661-3"'
TYPE = (("content-type", "text/plain"),)

P = Head(MD5, 10, described=TYPE)
COPY = Head(MD5, 10, source_etag=MD5.strip('"'), marked=True, described=TYPE)
LAID_OUT_OTHERWISE = Head(PARTS, 10, source_etag=MD5.strip('"'), marked=True, described=TYPE)
OLD = Head(OTHER, 10, marked=True, described=TYPE)
OWN = Head(OTHER, 10, described=TYPE)  # the replica's own, from before it was a replica


@pytest.mark.parametrize(
    ("op", "primary", "replica", "action"),
    [
        (OBJECT, None, None, Done("absent")),
        (OBJECT, None, COPY, Delete(MD5)),  # deleted on the primary: the proxy's copy goes
        (OBJECT, None, OWN, Done("kept")),  # the replica's own data stays
        (DELETE, None, OWN, Delete(OTHER)),  # ... unless deleted through the proxy
        (OBJECT, P, None, Copy(ABSENT)),
        (OBJECT, P, OLD, Copy((("if-match", OTHER),))),
        (OBJECT, P, OWN, Copy((("if-match", OTHER),))),  # the primary's version wins
        (OBJECT, P, COPY, Done("equal")),
        (OBJECT, P, LAID_OUT_OTHERWISE, Done("equal")),  # told by its source ETag
        (OBJECT, P, Head(MD5.upper(), 10, described=TYPE), Done("equal")),  # ETag forms
        (OBJECT, P, Head(MD5, 10, described=()), Copy((("if-match", MD5),))),  # re-described
        (OBJECT, P, Head(MD5, 10, described=TYPE, tag_count=2), CopyTags()),
        (TAGS, P, COPY, CopyTags()),
        (DELETE, P, None, Copy(ABSENT)),  # written again since the delete: the primary decides
    ],
)
def test_plan(op, primary, replica, action):
    assert plan(op, primary, replica) == action


def test_a_head_leaves_out_what_only_a_copy_carries():
    """The source ETag and the marker are the copy's, not the object's description."""
    original = Head.of([("ETag", MD5), ("Content-Length", "10"), ("Content-Type", "text/plain")])
    copy = Head.of(
        [
            ("etag", MD5),
            ("content-length", "10"),
            ("content-type", "text/plain"),
            ("x-amz-meta-s3multi-source-etag", MD5.strip('"')),
            ("x-amz-meta-s3multi-replica", "primary"),
            ("x-amz-tagging-count", "1"),
        ]
    )
    assert copy.described == original.described == TYPE
    assert (copy.marked, copy.source_etag, copy.tag_count) == (True, MD5.strip('"'), 1)
    assert copy.copy_of(original) and not original.marked
