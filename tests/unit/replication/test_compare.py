"""addon.replication.compare: the two-way merge-join of listings, fed as pages of any size come:
its rows are the union of both key sets, in order, each with what each side listed; it holds
no more than a page of each side; a side out of the order asked for is refused."""

from __future__ import annotations

import random

import pytest

from addon.replication.compare import Listed, OutOfOrder, Row, TwoWay, byte_order, path_order

KEYS = ["a", "a-b", "a.b", "a/b", "a/b/c", "a0", "b", "logs/2026", "logs/2026-01", "logs/2026/x"]


def _run(primary: list[Listed], replica: list[Listed], rng: random.Random, order) -> list[Row]:
    join, rows, fed = TwoWay(order), [], [0, 0]
    sides = (primary, replica)
    most_held = 0
    while not join.finished:
        for side in join.needs():
            size = rng.randint(1, 4)
            page = sides[side][fed[side] : fed[side] + size]
            fed[side] += len(page)
            join.add(side, page, done=fed[side] == len(sides[side]))
        most_held = max(most_held, sum(len(b) for b in join._buffered))
        rows.extend(join.rows())
    assert most_held <= 8  # a page of each side, at most
    return rows


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("order", [byte_order, path_order], ids=["bytes", "paths"])
def test_rows_are_the_union_in_order_with_each_sides_entry(seed, order):
    rng = random.Random(seed)
    universe = KEYS + [f"k{rng.randint(0, 50)}" for _ in range(20)]
    primary_keys = sorted({k for k in universe if rng.random() < 0.6}, key=order)
    replica_keys = sorted({k for k in universe if rng.random() < 0.6}, key=order)
    primary = [Listed(k, f'"{len(k)}"', len(k)) for k in primary_keys]
    replica = [Listed(k, f'"{len(k) % 3}"', len(k)) for k in replica_keys]
    rows = _run(primary, replica, rng, order)
    assert [r.key for r in rows] == sorted(set(primary_keys) | set(replica_keys), key=order)
    for row in rows:
        assert row.primary == next((e for e in primary if e.key == row.key), None)
        assert row.replica == next((e for e in replica if e.key == row.key), None)


def test_a_row_differs_when_a_side_lacks_the_key_or_has_another_object():
    same = Listed("k", '"9b2cf535f27731c974343645a3985328"', 3)
    assert not Row("k", same, Listed("k", "9B2CF535F27731C974343645A3985328", 3)).differs
    assert Row("k", same, None).differs and Row("k", None, same).differs
    assert Row("k", same, Listed("k", same.etag, 4)).differs
    assert Row("k", same, Listed("k", '"0cc175b9c0f1b6a831c399e269772661"', 3)).differs


def test_a_side_listing_in_another_order_is_refused():
    """SeaweedFS lists a/b before a-b (path order); in byte order a-b comes first."""
    join = TwoWay(byte_order)
    join.add(TwoWay.PRIMARY, [Listed("a/b", "", 0)])
    with pytest.raises(OutOfOrder):
        join.add(TwoWay.PRIMARY, [Listed("a-b", "", 0)])
    join = TwoWay(path_order)
    join.add(TwoWay.PRIMARY, [Listed("a/b", "", 0), Listed("a-b", "", 0)])
