"""The merge-join of sorted listings (`addon.namespace.listing_join`): random key sets on 2
to 4 sides, each listed in S3 byte order or SeaweedFS's path-segment order, in pages of random
sizes, with a HEAD answered from the side's own keys wherever a row is unsure. Whatever the
orders, a row never says a side lacks a key it has: the rows are the union of the keys, each
once, with each side's entry; or, for sides listing in different orders with keys those orders
disagree on, the merge stops (OrderConflict) before any wrong row. One page per side is held
at a time."""

from __future__ import annotations

import itertools
import random

import pytest

from addon.namespace.listing_join import (
    BYTES,
    PATHS,
    Listed,
    Merge,
    Need,
    NotSorted,
    OrderConflict,
    Row,
    disagree,
)

# Keys on which the two orders disagree often: "/" beside characters below it.
ALPHABET = ["a", "b", "-", ".", "/", "0"]
SEAWEEDFS_KEYS = [
    "logs/2026",
    "logs/2026-01",
    "logs/2026.x",
    "logs/2026/a",
    "logs/2026/b/c",
    "logs/2026+",
    "logs/2027",
]


def in_order(keys, order: str) -> list[str]:
    return sorted(keys) if order == BYTES else sorted(keys, key=lambda k: k.split("/"))


def side(keys, order: str, rng: random.Random | None = None) -> list[Listed]:
    """A side's listing in `order`; ETags and sizes of its own (so entries tell sides apart)."""
    tag = rng.random() if rng else 0
    return [Listed(k, f"etag-{k}-{tag}", len(k)) for k in in_order(keys, order)]


def merged(sides: list[list[Listed]], rng: random.Random, most: int = 5):
    """Run the merge to its end as a run does: pages of 1 to `most` keys, a HEAD per unsure
    side answered from that side's keys. The rows, the HEADs asked, the largest page held."""
    merge = Merge([f"side{i}" for i in range(len(sides))])
    cursors = [0] * len(sides)
    have = [{e.key: e for e in listed} for listed in sides]
    rows: list[Row] = []
    heads = 0
    held = 0
    while True:
        step = merge.next()
        if step is None:
            return rows, heads, held, merge
        if isinstance(step, Need):
            start = cursors[step.side]
            page = sides[step.side][start : start + rng.randint(1, most)]
            cursors[step.side] = start + len(page)
            merge.add(step.side, page, cursors[step.side] == len(sides[step.side]))
            held = max(held, len(page))
            continue
        row: Row | None = step
        if step.unsure:
            heads += len(step.unsure)
            row = merge.settle({s: have[s].get(step.key) for s in step.unsure})
        if row is not None:
            rows.append(row)


def assert_right(rows: list[Row], sides: list[list[Listed]]) -> None:
    """Each key of any side once, with exactly each side's entry."""
    have = [{e.key: e for e in listed} for listed in sides]
    union = set().union(*(h.keys() for h in have))
    assert sorted(r.key for r in rows) == sorted(union)
    for row in rows:
        assert row.entries == tuple(h.get(row.key) for h in have), row.key
        assert not row.unsure


def random_keys(rng: random.Random, count: int) -> set[str]:
    return {"".join(rng.choices(ALPHABET, k=rng.randint(1, 6))) for _ in range(count)}


@pytest.mark.parametrize("order", [BYTES, PATHS])
@pytest.mark.parametrize("seed", range(150))
def test_sides_listing_alike_give_every_key_once_with_each_sides_entry(seed, order):
    rng = random.Random(seed)
    common = random_keys(rng, rng.randint(0, 40))
    sides = [
        side(common | random_keys(rng, rng.randint(0, 10)), order, rng)
        for _ in range(rng.randint(2, 4))
    ]
    rows, _, held, merge = merged(sides, rng)
    assert_right(rows, sides)
    assert held <= 5  # one page per side, never more
    if any(disagree(a.key, b.key) for s in sides for a, b in itertools.pairwise(s)):
        assert merge.order == order


@pytest.mark.parametrize("seed", range(200))
def test_sides_listing_in_different_orders_give_the_right_rows_or_stop(seed):
    """Never a wrong row: whatever it gave before stopping is right too."""
    rng = random.Random(seed)
    keys = random_keys(rng, rng.randint(0, 30))
    sides = [
        side({k for k in keys if rng.random() < 0.8}, rng.choice([BYTES, PATHS]), rng)
        for _ in range(rng.randint(2, 4))
    ]
    have = [{e.key: e for e in listed} for listed in sides]
    merge_rows: list[Row] = []
    try:
        rows, _, _, _ = merged(sides, rng)
        merge_rows = rows
        assert_right(rows, sides)
    except OrderConflict:
        pass
    for row in merge_rows:
        assert row.entries == tuple(h.get(row.key) for h in have)


def test_keys_both_orders_agree_on_are_compared_across_orders_without_a_head():
    keys = [f"photos/{n:03d}.jpg" for n in range(50)] + ["readme.txt", "z/last"]
    rng = random.Random(1)
    sides = [side(keys, BYTES, rng), side(keys[:-3], PATHS, rng), side(keys[5:], BYTES, rng)]
    rows, heads, _, merge = merged(sides, rng)
    assert_right(rows, sides)
    assert heads == 0 and merge.order == BYTES


def test_seaweedfs_against_seaweedfs_is_merged_in_path_order():
    rng = random.Random(2)
    sides = [side(SEAWEEDFS_KEYS, PATHS, rng), side(SEAWEEDFS_KEYS[:4], PATHS, rng)]
    rows, _, _, merge = merged(sides, rng, most=2)
    assert_right(rows, sides)
    assert merge.order == PATHS
    assert [r.key for r in rows] == in_order(SEAWEEDFS_KEYS, PATHS)


def test_a_byte_order_side_and_a_path_order_side_that_show_it_are_refused_by_name():
    merge = Merge(["primary", "warm"])
    merge.add(0, side(SEAWEEDFS_KEYS, BYTES), True)
    with pytest.raises(OrderConflict) as refused:
        merge.add(1, side(SEAWEEDFS_KEYS, PATHS), True)
    message = str(refused.value)
    assert "warm lists keys in path-segment order" in message
    assert "primary in S3 byte order" in message
    assert "'logs/2026/b/c' before 'logs/2026+'" in message


def test_an_unsure_row_asks_the_side_and_a_key_found_there_turns_the_merge_round():
    """The byte-order guess is wrong for a path-order side that has not shown its order in
    the keys it gave so far: the row is unsure, the HEAD finds the key, the merge takes path
    order and nothing was consumed before."""
    merge = Merge(["primary", "warm"])
    merge.add(0, [Listed("a-b", "1", 1)], False)  # its next page brings "a/1"
    merge.add(1, [Listed("a/1", "2", 1)], False)  # its next page brings "a-b"
    row = merge.next()
    assert isinstance(row, Row) and row.key == "a-b" and row.unsure == {1}
    assert merge.settle({1: Listed("a-b", "3", 1)}) is None
    assert merge.order == PATHS
    again = merge.next()
    assert isinstance(again, Row) and again.key == "a/1" and again.unsure == {0}


def test_an_unsure_side_that_lacks_the_key_lets_the_row_stand():
    merge = Merge(["primary", "warm"])
    merge.add(0, [Listed("a-b", "1", 1)], True)
    merge.add(1, [Listed("a/1", "2", 1)], True)
    row = merge.next()
    assert isinstance(row, Row) and row.unsure == {1}
    assert merge.settle({1: None}) == Row("a-b", (Listed("a-b", "1", 1), None))
    assert merge.next() == Row("a/1", (None, Listed("a/1", "2", 1)))
    assert merge.next() is None


def test_a_side_that_shows_its_order_is_not_asked_again():
    """warm has shown byte order: its head after the key means it lacks the key."""
    merge = Merge(["primary", "warm"])
    merge.add(0, [Listed("a-b", "1", 1)], True)
    merge.add(1, [Listed("a-a", "2", 1), Listed("a/1", "2", 1)], True)
    assert merge.shown == [None, BYTES]
    assert merge.next() == Row("a-a", (None, Listed("a-a", "2", 1)))
    assert merge.next() == Row("a-b", (Listed("a-b", "1", 1), None))


def test_a_listing_in_neither_order_stops_the_merge():
    merge = Merge(["primary", "odd"])
    with pytest.raises(NotSorted, match="odd lists 'b' before 'a'"):
        merge.add(1, [Listed("b", "", 0), Listed("a", "", 0)], True)
    with pytest.raises(NotSorted, match="lists 'k' before 'k'"):
        Merge(["twice"]).add(0, [Listed("k", "", 0), Listed("k", "", 0)], True)


def test_the_order_shown_across_a_page_boundary_counts():
    merge = Merge(["primary", "warm"])
    merge.add(1, [Listed("a/1", "", 0)], False)
    merge.add(1, [Listed("a-b", "", 0)], True)  # next to the last key of the page before
    assert merge.shown[1] == PATHS and merge.order == PATHS


def test_an_unsure_row_must_be_settled_before_the_next():
    merge = Merge(["primary", "warm"])
    merge.add(0, [Listed("a-b", "1", 1)], True)
    merge.add(1, [Listed("a/1", "2", 1)], True)
    merge.next()
    with pytest.raises(RuntimeError):
        merge.next()
