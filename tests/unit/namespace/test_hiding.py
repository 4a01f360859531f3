"""addon.namespace.hiding: which copies a tombstone hides. One table, run through `hidden` and
through each path's own decision (the read fallback's journey, the merged listing, a copy from a
fallback, copy-on-read, the drain, the tombstone pruner, the delete's look for a landed copy):
every path must give every row the table's verdict, whatever form the ETags come in."""

from __future__ import annotations

import json

import pytest

from addon.config.settings import Backend
from addon.migration.copier import deleted
from addon.migration.listed import DELETED, Listed, skip_reason
from addon.migration.source import Source
from addon.namespace.fallback_copy import offers_source
from addon.namespace.hiding import hidden
from addon.namespace.listing_merge import Entry
from addon.namespace.object_listing import _shows
from addon.namespace.tombstone_command import still_there
from addon.namespace.tombstones import landed_copy
from addon.s3.operations import classify, parse_path
from addon.upstream.journey import Answer, AskNext, Consult, InspectBody, Journey, Replace

MD5 = "9b2cf535f27731c974343645a3985328"
OTHER = "0cc175b9c0f1b6a831c399e269772661"
OPAQUE = "Opaque-Etag-Of-Some-Server"
PRIMARY = Backend(0, "primary", "AK0", "secret-0", "http://10.0.0.1:9000")

# A fallback's copy of a deleted key: (what the tombstone hides, the fallback whose answer it is,
# the ETag that answer names, hidden?). Recorded ETags are as the delete's HEAD got them
# (quoted); answers come as headers (quoted), as listings give them once the XML parser decoded
# `&quot;` or SeaweedFS's `&#34;` (quoted), or unquoted, in upper case, weak, from other servers.
FALLBACK_ROWS = [
    ({"warm": f'"{MD5}"'}, "warm", f'"{MD5}"', True),  # the very copy the delete hid
    ({"warm": f'"{MD5}"'}, "warm", MD5, True),  # unquoted answer
    ({"warm": MD5}, "warm", f'"{MD5}"', True),  # unquoted record
    ({"warm": f'"{MD5}"'}, "warm", f'"{MD5.upper()}"', True),  # upper-case hex
    ({"warm": f'"{MD5.upper()}"'}, "warm", MD5, True),
    ({"warm": f'"{MD5}"'}, "warm", f'W/"{MD5}"', True),  # a weak ETag from some HTTP stack
    ({"warm": f'"{MD5}-2"'}, "warm", f'"{MD5}-2"', True),  # a multipart copy
    ({"warm": f'"{MD5}-2"'}, "warm", f"{MD5.upper()}-2", True),
    ({"warm": f'"{MD5}-2"'}, "warm", f'"{MD5}"', False),  # same parts in one PUT: another copy
    ({"warm": f'"{MD5}"'}, "warm", f'"{MD5}-2"', False),
    ({"warm": f'"{MD5}-2"'}, "warm", f'"{MD5}-3"', False),  # another part layout
    ({"warm": f'"{MD5}"'}, "warm", f'"{OTHER}"', False),  # a copy written there since
    ({"warm": f'"{OPAQUE}"'}, "warm", OPAQUE, True),  # opaque ETags: only the quotes go
    ({"warm": f'"{OPAQUE}"'}, "warm", f'"{OPAQUE.lower()}"', False),  # their case is theirs
    ({"warm": f'"{MD5}"'}, "warm", None, True),  # an answer that names no ETag
    ({"warm": f'"{MD5}"'}, "warm", "", True),  # an empty one
    ({"warm": f'"{MD5}"', "cold": f'"{OTHER}"'}, "cold", f'"{OTHER}"', True),
    ({"warm": f'"{MD5}"'}, "cold", f'"{MD5}"', False),  # a fallback the tombstone does not name
    ({"warm": f'"{MD5}"'}, "cold", None, False),
    ({}, "warm", f'"{MD5}"', False),  # no tombstone
    (None, "warm", None, False),
    ({"dr": "*"}, "dr", f'"{OTHER}"', True),  # a replica that missed the delete: any copy
    ({"dr": "*"}, "dr", f'"{MD5}-2"', True),
    ({"dr": "*"}, "dr", None, True),
    ({"dr": "*"}, "warm", f'"{MD5}"', False),
]

# A copy the proxy made on the primary (copy-on-read, the drain) of a fallback's copy, naming it
# in x-amz-meta-s3multi-source-etag (stored unquoted): (hides, the copy's own ETag, its source
# ETag, hidden?).
LANDED_ROWS = [
    ({"warm": f'"{MD5}"'}, f'"{OTHER}-3"', MD5, True),  # a copy in parts of a hidden copy
    ({"warm": f'"{MD5}"'}, f'"{MD5}"', f'"{MD5}"', True),
    ({"warm": f'"{MD5}"'}, f'"{MD5}"', MD5.upper(), True),
    ({"warm": MD5, "cold": f'"{OTHER}-2"'}, f'"{OTHER}"', f"{OTHER}-2", True),
    ({"warm": f'"{MD5}"'}, f'"{OTHER}"', OTHER, False),  # a copy of something else
    ({"warm": f'"{MD5}"'}, f'"{MD5}"', None, False),  # a client's write of the same bytes
    ({}, f'"{OTHER}"', MD5, False),
    ({"dr": "*"}, f'"{OTHER}"', OTHER, False),  # "*" is no copy's ETag
    ({"dr": "*"}, f'"{OTHER}"', "*", False),
]


def fallback(name: str) -> Backend:
    return Backend(1, name, "AK1", "secret-1", "http://10.0.0.2:9000")


# --- each path's decision, asked "is this answer a copy the tombstone hides?" ----------------


def by_hidden(hides, backend, etag) -> bool:
    return hidden(hides, backend, etag)


def by_journey(hides, backend, etag) -> bool:
    """A GetObject the primary misses: the tombstone is read (absent: 404), then the fallback
    answers 200 with `etag`: served, or the deleted copy (NoSuchKey instead)."""
    target = parse_path("/bkt/k")
    operation = classify("GET", target, [])
    assert operation is not None
    candidates = (PRIMARY, fallback(backend))
    trip = Journey(operation, "GET", target, candidates, hiding=hidden, clock=lambda: 0.0)
    trip.begin()
    assert trip.headers(404) == InspectBody()
    assert trip.body(b"<Error><Code>NoSuchKey</Code></Error>") == Consult()
    if hides is None:
        assert trip.headers(404) == AskNext(trip.candidates[1])
    else:
        assert trip.headers(200) == InspectBody()
        document = {"hides": hides, "at": "2026-12-07T18:20:01.123Z", "nonce": "5f0c2b9a"}
        consulted = trip.body(json.dumps(document).encode())
        if hides.get(backend) == "*":  # whatever it holds is hidden: not even asked
            assert isinstance(consulted, Replace) and consulted.error.code == "NoSuchKey"
            tried = f"{backend} deleted (tombstone) (skipped)] answered by proxy"
            assert trip.summary("/bkt/k").endswith(tried)
            return True
        assert consulted == AskNext(trip.candidates[1])
    verdict = trip.headers(200, etag=etag)
    if isinstance(verdict, Replace):
        assert verdict.error.code == "NoSuchKey"
        tried = f"{backend} deleted (tombstone) 0ms] answered by proxy"
        assert trip.summary("/bkt/k").endswith(tried)
        return True
    assert verdict == Answer()
    return False


def by_listing(hides, backend, etag) -> bool:
    """A fallback's listing entry, its ETag as the listing gave it (none: no ETag element)."""
    fields = (("ETag", etag),) if etag is not None else ()
    return not _shows(Entry("k", False, 1, fields), {"k": hides} if hides else {}, backend)


def by_fallback_copy(hides, backend, etag) -> bool:
    return not offers_source(hides, backend, 200, etag)


def by_copy_on_read(hides, backend, etag) -> bool:
    source = Source(fallback(backend), "bkt", "k", 1, etag, (), 0)
    return deleted(hides, source)


def by_drain_listed(hides, backend, etag) -> bool:
    """The listed copy itself: DELETED, or copied."""
    reason = skip_reason(Listed(fallback(backend), "bkt", "k", 1, etag), hides, [])
    assert reason in (DELETED, "")
    return reason == DELETED


def by_drain_earlier(hides, backend, etag) -> bool:
    """An earlier fallback's copy: what reads serve (the later one is not copied), or not."""
    later = Listed(fallback("later"), "bkt", "k", 1, f'"{OTHER}0"')
    reason = skip_reason(later, hides, [(backend, etag)])
    assert reason in ("", f"served from {backend}")
    return reason == ""


def by_pruner(hides, backend, etag) -> bool:
    """The fallback's HEAD found this copy: does the tombstone still hide something?"""
    return bool(still_there(hides or {}, {backend: etag}))


PATHS = [
    by_hidden,
    by_journey,
    by_listing,
    by_fallback_copy,
    by_copy_on_read,
    by_drain_listed,
    by_drain_earlier,
    by_pruner,
]


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.__name__.removeprefix("by_"))
@pytest.mark.parametrize(("hides", "backend", "etag", "verdict"), FALLBACK_ROWS)
def test_every_path_hides_the_same_fallback_copies(path, hides, backend, etag, verdict):
    assert path(hides, backend, etag) is verdict


@pytest.mark.parametrize("path", ["hidden", "landed_copy"])
@pytest.mark.parametrize(("hides", "etag", "source", "verdict"), LANDED_ROWS)
def test_a_copy_the_proxy_made_of_a_hidden_copy_is_hidden_through_its_source(
    path, hides, etag, source, verdict
):
    if path == "hidden":
        assert hidden(hides, "primary", etag, source) is verdict
    else:
        assert landed_copy(hides, "primary", 200, etag, source) is verdict
        assert landed_copy(hides, "primary", 404, None, None) is False  # nothing landed


def test_the_primary_is_never_named_so_only_a_source_etag_hides_its_copy():
    hides = {"warm": f'"{MD5}"'}
    assert not landed_copy(hides, "primary", 200, f'"{MD5}"', None)
    assert not landed_copy(hides, "primary", 200, None, None)
