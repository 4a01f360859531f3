"""addon.namespace.listing_merge without a network: backends' pages in, the client's page out,
against a listing worked out here from the union of the backends' keys."""

from __future__ import annotations

import random

import pytest

from addon.namespace.listing_merge import Entry, Merge, Page


def rollup(keys, prefix: str, delimiter: str) -> list[tuple[str, bool]]:
    """S3's listing of `keys` (sorted names; a common prefix once), worked out directly."""
    names: dict[str, bool] = {}
    for key in sorted(keys):
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix) :]
        if delimiter and delimiter in rest:
            names[prefix + rest[: rest.index(delimiter) + len(delimiter)]] = True
        else:
            names[key] = False
    return sorted(names.items())


class FakeBackend:
    """A backend's own listing: keys after a position, cut at `page` entries."""

    def __init__(self, index: int, keys, page: int) -> None:
        self.index, self.keys, self.page = index, sorted(keys), page

    def answer(self, start_after, prefix, delimiter, wanted) -> Page:
        names = rollup(self.keys, prefix, delimiter)
        after = [(n, p) for n, p in names if start_after is None or n > start_after or p]
        # a prefix shows again when keys after start_after are under it
        after = [
            (n, p)
            for n, p in after
            if not p
            or start_after is None
            or any(k.startswith(n) and k > start_after for k in self.keys)
        ]
        cut = after[: min(self.page, wanted)]
        entries = [Entry(n, p, self.index, (("ETag", f"{self.index}-{n}"),)) for n, p in cut]
        return Page(entries, len(after) > len(cut))


def merged(backends, prefix="", delimiter="", max_keys=1000, start=None):
    """All pages through the merge, as a paginating client reads them."""
    pages, after_prefix = [], False
    while True:
        merge = Merge(len(backends), start, max_keys, after_prefix=after_prefix)
        while not merge.complete:
            for i in merge.needs():
                b = backends[i]
                merge.add(i, b.answer(merge.start_after(i), prefix, delimiter, max_keys))
            merge.advance()
        pages.append(merge.emitted)
        if not merge.truncated or not merge.emitted:
            return pages
        start, after_prefix = merge.last, merge.emitted[-1].prefix


@pytest.mark.parametrize("seed", range(12))
def test_random_spreads_merge_to_the_union_in_order(seed):
    rng = random.Random(seed)
    alphabet = ["a", "b", "d1", "d1.txt", "d2/", "é", "z/", "~"]
    keys = {"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 4))) for _ in range(150)}
    spread = [set(), set(), set()]
    for key in keys:
        for i in rng.sample(range(3), rng.randint(1, 3)):
            spread[i].add(key)
    backends = [FakeBackend(i, s, page=rng.choice([1, 3, 50, 1000])) for i, s in enumerate(spread)]
    for prefix, delimiter in [("", ""), ("", "/"), ("d1", "/"), ("a", ""), ("", "1")]:
        expected = rollup(keys, prefix, delimiter)
        for max_keys in (1, 2, 7, 1000):
            pages = merged(backends, prefix, delimiter, max_keys)
            assert all(len(p) <= max_keys for p in pages)
            names = [(e.name, e.prefix) for page in pages for e in page]
            assert names == expected, (prefix, delimiter, max_keys)
            for entry in (e for page in pages for e in page if not e.prefix):
                first = min(i for i in range(3) if entry.name in spread[i])
                assert entry.backend == first  # the first backend that has it wins


def test_a_truncated_backend_holds_back_what_comes_after_its_page():
    slow = FakeBackend(0, ["a", "c", "e"], page=1)
    fast = FakeBackend(1, ["b", "d", "f"], page=1000)
    merge = Merge(2, None, 1000)
    for i in merge.needs():
        merge.add(i, [slow, fast][i].answer(merge.start_after(i), "", "", 1000))
    merge.advance()
    assert [e.name for e in merge.emitted] == ["a"]  # "b" waits: the slow one may have more
    assert merge.needs() == [0] and merge.start_after(0) == "a"


def test_hidden_entries_are_dropped_but_the_position_moves_on():
    backend = FakeBackend(1, ["a", "b", "c"], page=2)
    merge = Merge(1, None, 10, hidden=lambda e: e.name == "b")
    merge.add(0, backend.answer(None, "", "", 10))
    merge.advance()
    assert merge.start_after(0) == "b" and [e.name for e in merge.emitted] == ["a"]


@pytest.mark.parametrize(
    ("max_keys", "answers", "rounds", "emitted", "nowhere"),
    [
        # An empty page still asks every backend once: whether one has the bucket decides
        # between the page and NoSuchBucket (S3 answers max-keys=0 with an empty page).
        (0, [["a"], ["b"]], [[0, 1]], [], False),
        (0, [None, ["b"]], [[0, 1]], [], False),
        (0, [[], None], [[0, 1]], [], False),  # an empty bucket is a bucket
        (0, [None, None], [[0, 1]], [], True),
        (1, [["a"], ["b"]], [[0, 1]], ["a"], False),
        (1, [None, ["b"]], [[0, 1]], ["b"], False),
        (1, [None, None], [[0, 1]], [], True),
        (5, [["a", "c"], ["b"]], [[0, 1]], ["a", "b", "c"], False),
    ],
)
def test_every_backend_is_asked_once_and_none_having_the_bucket_is_nowhere(
    max_keys, answers, rounds, emitted, nowhere
):
    merge = Merge(len(answers), None, max_keys)
    asked = []
    while not merge.complete:
        asked.append(merge.needs())
        for i in asked[-1]:
            if answers[i] is None:
                merge.absent(i)
            else:
                merge.add(i, Page([Entry(n, False, i) for n in answers[i]], False))
        merge.advance()
    assert asked == rounds
    assert [e.name for e in merge.emitted] == emitted
    assert merge.nowhere is nowhere


@pytest.mark.parametrize("seed", range(40))
def test_a_merge_of_complete_listings_in_one_go_is_the_merge_name_by_name(seed):
    """When every backend has shown all it will, `advance` merges the buffers in one go; it
    emits what the name-by-name merge emits and leaves the same behind."""
    rng = random.Random(seed)
    names = [f"k{n:03d}" for n in range(60)] + [f"d{n}/" for n in range(5)]
    backends = rng.randint(1, 4)
    pages = []
    for index in range(backends):
        chosen = sorted(rng.sample(names, rng.randint(0, 30)))
        pages.append(
            Page(
                [Entry(n, n.endswith("/"), index, (("ETag", f"{index}"),)) for n in chosen],
                truncated=False,
            )
        )
    max_keys = rng.choice([0, 1, 5, 20, 1000])
    in_one_go, by_name = Merge(backends, None, max_keys), Merge(backends, None, max_keys)
    for merge in (in_one_go, by_name):
        for index, page in enumerate(pages):
            merge.add(index, Page(list(page.entries), page.truncated))
    for _ in range(2):  # and again: what is left is emitted the same way
        in_one_go.advance()
        by_name._one_by_one()
        assert in_one_go.emitted == by_name.emitted
        assert [list(s.buffered) for s in in_one_go.streams] == [
            list(s.buffered) for s in by_name.streams
        ]
        in_one_go.max_keys = by_name.max_keys = max_keys + 10
