"""What a key's row means (`addon.check.differences.classify`), as a table: each kind of
difference, each faithful copy that must not be reported, and the HEADs and tombstone reads
asked for exactly where the listings cannot tell."""

from __future__ import annotations

import pytest

from addon.check.differences import (
    BUCKET_ELSEWHERE,
    BUCKET_MISSING,
    COPY,
    CREATE,
    DELETE,
    FALLBACK,
    MIGRATE,
    NOT_MIGRATED,
    NOTHING,
    PRIMARY,
    PRUNABLE,
    PRUNE,
    REPLICA,
    REPLICA_BEHIND,
    REPLICA_EXTRA,
    REPLICA_MISSING,
    TOMBSTONED,
    Head,
    Layout,
    Needs,
    Side,
    bucket_differences,
    classify,
)
from addon.namespace.listing_join import Listed, Row

MD5_A = '"' + "a" * 32 + '"'
MD5_A_BARE_UPPER = "A" * 32  # the same ETag, as x-amz-meta or another server gives it
MD5_B = '"' + "b" * 32 + '"'
PARTS_2 = '"' + "c" * 32 + '-2"'
PARTS_3 = '"' + "c" * 32 + '-3"'
OPAQUE = '"kms-0001"'
OPAQUE_OTHER = '"kms-0002"'
TOMB = '"' + "7" * 32 + '"'

SIDES = (
    Side("main", PRIMARY),
    Side("warm", FALLBACK),
    Side("cold", FALLBACK),
    Side("dr", REPLICA),
)
LAYOUT = Layout(SIDES, tombstones=True)
NAMES = [s.name for s in SIDES] + ["tombstones"]


def row(key: str = "k", **copies: tuple[str, int]) -> Row:
    """A row with the named sides' copies as (ETag, size); `tombstones` for the tombstone."""
    return Row(key, tuple(_listed(key, copies.get(n)) for n in NAMES))


def _listed(key: str, copy: tuple[str, int] | None) -> Listed | None:
    return None if copy is None else Listed(key, copy[0], copy[1])


def kinds(found) -> list[tuple[str, str, str]]:
    assert not isinstance(found, Needs), found
    return [(d.kind, d.backend, d.repair) for d in found]


@pytest.mark.parametrize(
    ("copies", "expected"),
    [
        ({"main": (MD5_A, 10)}, [(REPLICA_MISSING, "dr", COPY)]),
        ({"main": (MD5_A, 10), "dr": (MD5_A_BARE_UPPER, 10)}, []),
        ({"main": (MD5_A, 10), "dr": (MD5_A, 11)}, [(REPLICA_BEHIND, "dr", COPY)]),
        ({"main": (MD5_A, 10), "dr": (MD5_B, 10)}, [(REPLICA_BEHIND, "dr", COPY)]),
        ({"main": (PARTS_2, 10), "dr": (PARTS_2, 10)}, []),  # the same part layout
        ({"main": (PARTS_2, 10), "dr": (PARTS_3, 12)}, [(REPLICA_BEHIND, "dr", COPY)]),
        # A fallback's other object under a key the primary has is what fallbacks hold.
        ({"main": (MD5_A, 10), "warm": (MD5_B, 3), "dr": (MD5_A, 10)}, []),
    ],
    ids=[
        "replica lacks it",
        "equal ETags, quoted or bare, any case",
        "another size",
        "another MD5",
        "same multipart ETag",
        "another size, multipart",
        "fallback's other version",
    ],
)
def test_what_the_listings_tell_about_a_key_the_primary_has(copies, expected):
    assert kinds(classify(row(**copies), LAYOUT)) == expected


@pytest.mark.parametrize(
    ("primary", "replica", "head", "expected"),
    [
        (PARTS_2, MD5_B, Head(MD5_B, 10, source_etag=PARTS_2.strip('"'), marked=True), []),
        (PARTS_2, PARTS_3, Head(PARTS_3, 10, source_etag=PARTS_2), []),
        (PARTS_2, MD5_B, Head(MD5_B, 10), [(REPLICA_BEHIND, "dr", COPY)]),
        (OPAQUE, OPAQUE_OTHER, Head(OPAQUE_OTHER, 10), [(REPLICA_BEHIND, "dr", COPY)]),
        (OPAQUE, OPAQUE_OTHER, Head(OPAQUE, 10), []),  # written again meanwhile: equal now
        (OPAQUE, OPAQUE_OTHER, None, [(REPLICA_MISSING, "dr", COPY)]),  # gone meanwhile
    ],
    ids=[
        "copy in another layout names its source",
        "multipart in another layout names its source",
        "no source: another object",
        "opaque ETags, no source",
        "HEAD finds the primary's ETag",
        "HEAD finds it gone",
    ],
)
def test_equal_sizes_with_an_etag_that_is_no_md5_are_asked_by_a_head(
    primary, replica, head, expected
):
    listed = row(main=(primary, 10), dr=(replica, 10))
    assert classify(listed, LAYOUT) == Needs(heads=frozenset({3}))
    assert kinds(classify(listed, LAYOUT, heads={3: head})) == expected


def test_a_key_only_fallbacks_have_is_not_migrated_from_the_one_reads_serve():
    found = classify(row(warm=(MD5_A, 5), cold=(MD5_B, 7)), LAYOUT)
    assert kinds(found) == [(NOT_MIGRATED, "warm", MIGRATE)]
    assert found[0].size == 5  # type: ignore[index]


def test_copies_a_delete_hid_are_tombstoned_and_the_rest_still_served():
    listed = row(warm=(MD5_A, 5), cold=(MD5_B, 7), tombstones=(TOMB, 80))
    assert classify(listed, LAYOUT) == Needs(tombstone=True)
    found = classify(listed, LAYOUT, hides={"warm": MD5_A.strip('"')})
    assert kinds(found) == [(TOMBSTONED, "warm", NOTHING), (NOT_MIGRATED, "cold", MIGRATE)]


def test_a_tombstone_whose_copies_are_gone_is_prunable_without_reading_it():
    """No other backend lists the key: nothing it could hide is there, whether the primary has
    the key again or not."""
    found = classify(row(tombstones=(TOMB, 80)), LAYOUT)
    assert kinds(found) == [(PRUNABLE, "main", PRUNE)]
    assert found[0].size == 80  # type: ignore[index]
    layout = Layout(SIDES[:3], tombstones=True)
    written_again = Row("k", (Listed("k", MD5_A, 1), None, None, Listed("k", TOMB, 80)))
    assert kinds(classify(written_again, layout)) == [(PRUNABLE, "main", PRUNE)]


def test_a_tombstone_stays_while_a_copy_it_hides_is_there_even_under_a_new_write():
    listed = row(main=(MD5_B, 3), warm=(MD5_A, 5), dr=(MD5_B, 3), tombstones=(TOMB, 80))
    assert classify(listed, LAYOUT) == Needs(tombstone=True)
    assert kinds(classify(listed, LAYOUT, hides={"warm": MD5_A})) == []


def test_a_copy_written_since_the_delete_shows_again_and_the_tombstone_can_go():
    listed = row(warm=(MD5_B, 5), tombstones=(TOMB, 80))
    found = classify(listed, LAYOUT, hides={"warm": MD5_A})
    assert kinds(found) == [(NOT_MIGRATED, "warm", MIGRATE), (PRUNABLE, "main", PRUNE)]


def test_a_tombstone_removed_since_it_was_listed_is_left_alone():
    listed = row(warm=(MD5_A, 5), tombstones=(TOMB, 80))
    assert kinds(classify(listed, LAYOUT, hides={})) == [(NOT_MIGRATED, "warm", MIGRATE)]


def test_a_key_a_replica_alone_has_is_asked_whether_the_proxy_copied_it():
    listed = row(dr=(MD5_A, 5))
    assert classify(listed, LAYOUT) == Needs(heads=frozenset({3}))
    marked = Head(MD5_A, 5, source_etag=MD5_A, marked=True)
    assert kinds(classify(listed, LAYOUT, heads={3: marked})) == [(REPLICA_EXTRA, "dr", DELETE)]
    # Its own data, from before it was a replica: a read serves it, as from a fallback (D1).
    own = Head(MD5_A, 5)
    assert kinds(classify(listed, LAYOUT, heads={3: own})) == [(NOT_MIGRATED, "dr", MIGRATE)]
    assert kinds(classify(listed, LAYOUT, heads={3: None})) == []  # gone meanwhile


def test_a_replicas_copy_a_delete_hid_is_removed_without_a_head():
    listed = row(warm=(MD5_B, 2), dr=(MD5_A, 5), tombstones=(TOMB, 80))
    found = classify(listed, LAYOUT, hides={"dr": MD5_A, "warm": MD5_B})
    assert kinds(found) == [(TOMBSTONED, "warm", NOTHING), (TOMBSTONED, "dr", DELETE)]


def test_a_replicas_copy_of_a_hidden_copy_is_hidden_through_its_source():
    listed = row(dr=(MD5_B, 5), tombstones=(TOMB, 80))
    hides = {"warm": MD5_A}
    assert classify(listed, LAYOUT, hides=hides) == Needs(heads=frozenset({3}))
    head = Head(MD5_B, 5, source_etag=MD5_A_BARE_UPPER, marked=True)
    found = classify(listed, LAYOUT, hides=hides, heads={3: head})
    assert kinds(found) == [(TOMBSTONED, "dr", DELETE), (PRUNABLE, "main", PRUNE)]


def test_a_tombstone_naming_a_backend_left_out_is_read_and_never_called_prunable():
    layout = Layout(SIDES[:2], tombstones=True, uncompared=frozenset({"cold", "dr"}))
    listed = Row("k", (None, None, Listed("k", TOMB, 80)))
    assert classify(listed, layout) == Needs(tombstone=True)
    assert kinds(classify(listed, layout, hides={"cold": MD5_A})) == []
    assert kinds(classify(listed, layout, hides={"warm": MD5_A})) == [(PRUNABLE, "main", PRUNE)]
    # A backend no longer in the config: its copies are never read, so they hide nothing.
    assert kinds(classify(listed, layout, hides={"gone": MD5_A})) == [(PRUNABLE, "main", PRUNE)]


def test_without_tombstones_a_row_is_read_from_the_backends_alone():
    layout = Layout(SIDES, tombstones=False)
    listed = Row("k", (None, Listed("k", MD5_A, 1), None, None))
    assert kinds(classify(listed, layout)) == [(NOT_MIGRATED, "warm", MIGRATE)]


@pytest.mark.parametrize(
    ("has", "expected"),
    [
        ([True, True, True, True], []),
        # A fallback without a bucket the primary has: buckets are made on the primary alone.
        ([True, False, False, True], []),
        ([True, True, True, False], [(BUCKET_MISSING, "dr", CREATE)]),
        (
            [False, True, False, True],
            [(BUCKET_ELSEWHERE, "warm", NOTHING), (BUCKET_ELSEWHERE, "dr", NOTHING)],
        ),
    ],
    ids=["everywhere", "fallbacks lack it", "the replica lacks it", "the primary lacks it"],
)
def test_which_backends_have_the_bucket(has, expected):
    assert kinds(bucket_differences(has, LAYOUT)) == expected
