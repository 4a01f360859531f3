"""`s3-multi check` over three real backends (primary, fallback, replica): every kind of
difference planted among a few thousand identical keys (multipart objects, copies made by
copy-on-read, a fallback's older versions, keys the two listing orders disagree on), and the
report names exactly the planted ones, asking HEADs and tombstones only where the listings
cannot tell; --repair --dry-run writes nothing; --repair then check agrees."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.check import (
    MARK,
    MIB,
    check_config,
    ensure_bucket,
    listing,
    put_many,
    put_multipart,
    run_check,
    tombstones_of,
)
from tests.support.migration import wait_for_object

pytestmark = [pytest.mark.e2e, pytest.mark.topologies("moto", "seaweedfs")]
IDENTICAL = 2000
SOURCE = "s3multi-source-etag"


@dataclass
class Scene:
    buckets: tuple[str, str, str]  # the main one, one on the primary alone, one on the fallback
    expected: set[tuple[str, str, str, str]]  # (bucket, key, kind, backend)
    keys: int  # distinct keys over every backend
    heads: int  # rows only a HEAD of the replica's copy can tell
    tombstone_reads: int  # tombstones whose key another backend lists

    def args(self) -> list[str]:
        return [arg for bucket in self.buckets for arg in ("--bucket", bucket)]


def plant(backends, proxy, base: str, identical: int = IDENTICAL) -> Scene:
    """Everything a check can find, on the backends directly (and through the proxy for what
    only the proxy does: deletes that leave tombstones, copies made on read)."""
    primary, warm, dr = backends
    main, spare, elsewhere = base, f"{base}-spare", f"{base}-elsewhere"
    rng = random.Random(7)
    expected: set[tuple[str, str, str, str]] = set()

    def want(keys, kind: str, backend: str, bucket: str = main) -> None:
        expected.update((bucket, key, kind, backend) for key in keys)

    def body(size: int = 300) -> bytes:
        return rng.randbytes(size)

    for server in backends:
        ensure_bucket(server, main)
    # What agrees: the replica holds the primary's objects, a fallback older versions of some.
    same = {f"same/{i:05d}.bin": body(rng.randrange(1, 3000)) for i in range(identical)}
    same |= {"logs/2026/a": body(), "logs/2026-01": body()}  # byte and path order disagree
    put_many(primary, main, same)
    put_many(dr, main, same)
    put_many(warm, main, {k: b"an older version" for k in list(same)[:100]})
    parts = [body(5 * MIB), body(1024)]
    for server in (primary, dr):  # the same part layout: the same ETag
        put_multipart(server, main, "mp/same.bin", parts)
    etag = put_multipart(primary, main, "mp/copied.bin", parts)
    dr.client().put_object(  # copied in another layout, naming its source: the same object
        Bucket=main,
        Key="mp/copied.bin",
        Body=b"".join(parts),
        Metadata={**MARK, SOURCE: etag.strip('"')},
    )
    read = {f"read/{i:02d}.txt": body() for i in range(20)}
    put_many(warm, main, read)
    for key, content in read.items():  # copied to the primary on read, then to the replica
        assert proxy.client().get_object(Bucket=main, Key=key)["Body"].read() == content
        copied = wait_for_object(primary, main, key)
        dr.client().put_object(
            Bucket=main, Key=key, Body=content, Metadata={**MARK, SOURCE: copied["ETag"]}
        )

    # What differs, each kind.
    old = {f"old/{i:02d}.txt": body() for i in range(20)}
    put_many(warm, main, old)
    want(old, "not-migrated", warm.name)
    own = {f"dr-own/{i}.txt": body() for i in range(5)}  # the replica's data from before
    put_many(dr, main, own)
    want(own, "not-migrated", dr.name)
    new = {f"new/{i}.txt": body() for i in range(10)}
    put_many(primary, main, new)
    want(new, "replica-missing", dr.name)
    sized = {f"behind/size/{i}": body(100) for i in range(5)}
    put_many(primary, main, sized)
    put_many(dr, main, {k: body(120) for k in sized})
    other = {f"behind/md5/{i}": body(100) for i in range(5)}
    put_many(primary, main, other)
    put_many(dr, main, {k: body(100) for k in other})
    put_multipart(primary, main, "mp/behind.bin", parts)
    dr.client().put_object(Bucket=main, Key="mp/behind.bin", Body=body(5 * MIB + 1024))
    want([*sized, *other, "mp/behind.bin"], "replica-behind", dr.name)
    extra = {f"extra/{i}.txt": body() for i in range(5)}
    put_many(dr, main, extra, Metadata=MARK)
    want(extra, "replica-extra", dr.name)
    deleted = {f"deleted/{i}.txt": body() for i in range(5)}
    pruned = {f"pruned/{i}.txt": body() for i in range(5)}
    for server in backends:
        put_many(server, main, deleted)
    for server in (primary, warm):
        put_many(server, main, pruned)
    client = proxy.client()
    for key in [*deleted, *pruned]:
        client.delete_object(Bucket=main, Key=key)
    for key in pruned:
        warm.client().delete_object(Bucket=main, Key=key)
    want(deleted, "tombstoned", warm.name)
    want(deleted, "tombstoned", dr.name)
    want(pruned, "tombstone-prunable", primary.name)

    put_many(primary, spare, {"alone.txt": body()})
    want([""], "bucket-missing", dr.name, spare)
    want(["alone.txt"], "replica-missing", dr.name, spare)
    put_many(warm, elsewhere, {"kept.txt": body()})
    want([""], "bucket-not-on-primary", warm.name, elsewhere)
    want(["kept.txt"], "not-migrated", warm.name, elsewhere)

    main_keys = {*same, "mp/same.bin", "mp/copied.bin", "mp/behind.bin", *read, *old, *own}
    main_keys |= {*new, *sized, *other, *extra, *deleted, *pruned}
    return Scene(
        (main, spare, elsewhere),
        expected,
        keys=len(main_keys) + 2,
        heads=len(own) + len(extra) + 2,  # each replica-only key; two multipart ETags
        tombstone_reads=len(deleted),  # pruned keys: no other backend lists them
    )


@pytest.fixture(scope="module")
def planted(backends, run_proxy, tmp_path_factory):
    """The scene with IDENTICAL keys, for the tests that only read it."""
    path = tmp_path_factory.mktemp("check")
    config = check_config(path / "c.json", backends, migrate="on-read")
    return config, plant(backends, planter(run_proxy, path, backends), f"c-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def scene_of_its_own(backends, run_proxy, bucket, tmp_path):
    """A scene of its own, with fewer identical keys, for a test that repairs it."""
    config = check_config(tmp_path / "c.json", backends, migrate="on-read")
    return config, plant(backends, planter(run_proxy, tmp_path, backends), bucket, identical=200)


def planter(run_proxy, path: Path, backends):
    """The proxy the scene is planted through: the check's backends with no replica, so that
    what it plants on the third backend stays as planted (a replica would get the deletes)."""
    return run_proxy(check_config(path / "plant.json", backends, migrate="on-read", replica=False))


def snapshot(backends, scene: Scene) -> list[dict[str, str]]:
    """Every key and ETag of the scene's buckets on each backend, and the tombstones."""
    shots = [listing(server, b) for server in backends for b in scene.buckets]
    return [*shots, *(tombstones_of(backends[0], b) for b in scene.buckets)]


def test_the_report_names_exactly_the_planted_differences(backends, planted):
    config, scene = planted
    checked = run_check(config, "--json", *scene.args())
    assert checked.status == 1, checked.err
    assert checked.differences() == scene.expected
    summary = checked.summary
    assert summary["keys"] == scene.keys
    primary, warm, dr = (server.name for server in backends)
    requests = summary["requests"]
    # HEADs only where a listing cannot tell; a tombstone read only where a copy is listed.
    assert requests[dr].get("HEADs") == scene.heads
    assert "HEADs" not in requests[primary] and "HEADs" not in requests[warm]
    assert requests[primary].get("GETs") == scene.tombstone_reads
    assert all("writes" not in counts for counts in requests.values())
    # Left for --repair: all but what a fallback holds beside the primary by design.
    left = {
        (r["bucket"], r["key"], r["kind"], r["backend"]) for r in checked.records() if r["left"]
    }
    normal = {d for d in scene.expected if d[2] in ("not-migrated", "bucket-not-on-primary")}
    normal |= {d for d in scene.expected if d[2] == "tombstoned" and d[3] == warm}
    assert left == scene.expected - normal


def test_people_get_each_difference_and_a_summary_per_bucket_and_backend(backends, planted):
    config, scene = planted
    checked = run_check(config, *scene.args())
    assert checked.status == 1, checked.err
    main = scene.buckets[0]
    dr = backends[2].name
    assert f"{main}/new/0.txt: replica-missing on {dr}" in checked.out
    summary = checked.out[checked.out.index(f"bucket {main}:") :].splitlines()
    counts = {tuple(line.split()[:3]) for line in summary if line.startswith("  ")}
    assert (dr, "replica-missing", "10") in counts
    assert (dr, "replica-behind", "11") in counts
    assert (backends[0].name, "tombstone-prunable", "5") in counts
    assert f"{scene.keys:,} keys compared" in checked.out


def test_a_dry_run_says_what_it_would_do_and_writes_nothing(backends, planted):
    config, scene = planted
    before = snapshot(backends, scene)
    checked = run_check(config, "--repair", "--migrate", "--dry-run", *scene.args())
    assert checked.status == 1, checked.err
    main = scene.buckets[0]
    assert f"{main}/pruned/0.txt: tombstone-prunable on {backends[0].name} -> would prune" in (
        checked.out
    )
    assert f"{main}/old/00.txt: not-migrated on {backends[1].name}" in checked.out
    assert "-> would copy it to the primary" in checked.out
    assert snapshot(backends, scene) == before


def test_repair_makes_them_agree_and_a_second_run_finds_only_what_the_config_allows(
    backends, scene_of_its_own
):
    """--repair --migrate: tombstones pruned, the fallback's keys migrated, the replica made the
    primary's by the replication's repair job (copies, deletes, the bucket); a second check
    finds only what a fallback holds by design (a copy a delete hid: a fallback is never
    written) and exits 0."""
    config, scene = scene_of_its_own
    primary, warm, dr = backends
    repaired = run_check(config, "--repair", "--migrate", *scene.args())
    assert "failed" not in repaired.out, repaired.out
    main = scene.buckets[0]
    assert tombstones_of(primary, main).keys() == {f"deleted/{i}.txt" for i in range(5)}
    on_primary = listing(primary, main)
    for key, etag in listing(warm, main).items():
        if key.startswith("old/"):
            assert on_primary[key] == etag
    assert listing(primary, scene.buckets[2]) == listing(warm, scene.buckets[2])
    for bucket in scene.buckets:  # the replica holds every key the primary holds, no other
        assert listing(dr, bucket).keys() == listing(primary, bucket).keys(), bucket

    again = run_check(config, "--json", *scene.args())
    kinds = {(kind, backend) for _, _, kind, backend in again.differences()}
    assert kinds <= {("tombstoned", warm.name)}, kinds
    assert again.status == 0, again.out


def test_without_a_metabucket_there_are_no_tombstones_to_compare(backends, bucket, tmp_path):
    config = check_config(tmp_path / "c.json", backends, meta="", replica=False)
    primary, warm, tertiary = backends
    put_many(primary, bucket, {"a": b"1"})
    put_many(tertiary, bucket, {"a": b"an older version", "b": b"2"})
    checked = run_check(config, "--json", "--bucket", bucket)
    assert checked.status == 0, checked.err
    assert checked.differences() == {(bucket, "b", "not-migrated", tertiary.name)}
    assert checked.summary["requests"][primary.name] == {"listings": 1}  # no tombstones listed
    assert warm.name in checked.summary["requests"]
