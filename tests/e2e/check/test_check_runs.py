"""`s3-multi check` as a run: a --repair killed part-way and run again to the same end; a repair
beside clients writing and deleting through the proxy, which it never undoes; a backend that
cannot be reached (exit 2, named); backends that list in different orders (exit 2, said, when
their keys make it matter)."""

from __future__ import annotations

import random
import signal
import threading
import time

import pytest
from botocore.exceptions import ClientError

from tests.support.check import (
    check_config,
    ensure_bucket,
    listing,
    put_many,
    run_check,
    start_check,
    tombstones_of,
)
from tests.support.processes import dead_endpoint

pytestmark = pytest.mark.e2e
SEAWEEDFS_KEYS = ["logs/2026", "logs/2026-01", "logs/2026.x", "logs/2026/a", "logs/2026/b/c"]


def deleted_through(proxy, backends, bucket: str, keys: list[str]) -> None:
    """Tombstones that hide nothing any more: the keys deleted through the proxy while the
    fallback had them, then gone from the fallback."""
    primary, warm = backends[:2]
    content = {k: b"deleted" for k in keys}
    put_many(primary, bucket, content)
    put_many(warm, bucket, content)
    client = proxy.client()
    for key in keys:
        client.delete_object(Bucket=bucket, Key=key)
    for key in keys:
        warm.client().delete_object(Bucket=bucket, Key=key)


@pytest.mark.slow
@pytest.mark.topologies("seaweedfs")  # one kind: resuming is the check's (moto: 3x as slow)
def test_a_repair_killed_part_way_resumes_to_the_same_end(backends, run_proxy, bucket, tmp_path):
    primary, warm, _ = backends
    config = check_config(tmp_path / "c.json", backends[:2], replica=False)
    old = {f"old/{i:04d}": random.Random(i).randbytes(200) for i in range(600)}
    put_many(warm, bucket, old)
    ensure_bucket(primary, bucket)
    pruned = [f"pruned/{i:03d}" for i in range(100)]
    deleted_through(run_proxy(config), backends, bucket, pruned)
    assert tombstones_of(primary, bucket).keys() == set(pruned)

    first = start_check(config, "--repair", "--migrate", "--jobs", "2", "--bucket", bucket)
    try:
        deadline = time.monotonic() + 120
        while len(listing(primary, bucket)) < 100:
            assert first.poll() is None, "the repair ended before it could be interrupted"
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        first.send_signal(signal.SIGKILL)  # nothing of it can tidy up
        first.wait()
    copied = len(listing(primary, bucket))
    prunable = len(tombstones_of(primary, bucket))
    assert 0 < copied < len(old)

    second = run_check(config, "--json", "--repair", "--migrate", "--bucket", bucket)
    assert second.status == 0, second.out + second.err
    outcomes = [(r["kind"], r["outcome"]) for r in second.records()]
    assert outcomes.count(("not-migrated", "copied to the primary")) == len(old) - copied
    assert outcomes.count(("tombstone-prunable", "pruned")) == prunable
    assert len(outcomes) == len(old) - copied + prunable

    on_primary = listing(primary, bucket)
    assert on_primary == listing(warm, bucket)
    assert tombstones_of(primary, bucket) == {}
    third = run_check(config, "--json", "--bucket", bucket)
    assert third.status == 0 and third.differences() == set()


@pytest.mark.topologies("moto", "seaweedfs")
def test_a_repair_beside_clients_never_undoes_their_writes_or_deletes(
    backends, run_proxy, bucket, tmp_path
):
    primary, warm, _ = backends
    config = check_config(tmp_path / "c.json", backends[:2], replica=False)
    proxy = run_proxy(config)
    old = {f"k/{i:04d}": b"the fallback's" for i in range(200)}
    put_many(warm, bucket, old)
    ensure_bucket(primary, bucket)
    keys = list(old)
    rewritten, deleted = set(keys[::4]), set(keys[1::4])
    done = threading.Event()

    def client_work() -> None:
        client = proxy.client()
        for key in keys:
            if key in rewritten:
                client.put_object(Bucket=bucket, Key=key, Body=b"the client's")
            elif key in deleted:
                client.delete_object(Bucket=bucket, Key=key)
        done.set()

    writer = threading.Thread(target=client_work)
    writer.start()
    repaired = run_check(config, "--repair", "--migrate", "--bucket", bucket)
    writer.join()
    assert done.is_set()
    assert "failed" not in repaired.out, repaired.out

    client = proxy.client()
    for key in rewritten:
        assert primary.client().get_object(Bucket=bucket, Key=key)["Body"].read() == b"the client's"
    for key in deleted:
        with pytest.raises(ClientError) as gone:
            client.get_object(Bucket=bucket, Key=key)
        assert gone.value.response["Error"]["Code"] == "NoSuchKey", key
    # Whatever the race left, a second repair finishes it, and a check agrees.
    run_check(config, "--repair", "--migrate", "--bucket", bucket)
    final = run_check(config, "--json", "--bucket", bucket)
    assert final.status == 0, final.out
    assert {kind for _, _, kind, _ in final.differences()} <= {"tombstoned"}


@pytest.mark.parametrize("down", [0, 1], ids=["the primary", "a fallback"])
def test_a_backend_that_cannot_be_reached_is_named_and_the_exit_is_2(
    backends, bucket, tmp_path, down
):
    servers: list = list(backends[:2])
    servers[down] = dead_endpoint()
    config = check_config(tmp_path / "c.json", servers, replica=False)
    ensure_bucket(backends[1 - down], bucket)
    for args in ((), ("--json",)):
        checked = run_check(config, *args, "--bucket", bucket, timeout=60)
        assert checked.status == 2, checked.out + checked.err
        assert f"s3-multi: down-{down} ({servers[down]}): " in checked.err
    assert checked.summary["exit"] == 2 and f"down-{down}" in checked.summary["error"]


def test_a_bucket_no_backend_has_is_an_error(backends, bucket, tmp_path):
    config = check_config(tmp_path / "c.json", backends)
    checked = run_check(config, "--bucket", bucket)
    assert checked.status == 2
    assert f"no backend has the bucket {bucket}" in checked.err


def test_a_backend_not_in_the_config_is_refused(backends, tmp_path):
    config = check_config(tmp_path / "c.json", backends)
    checked = run_check(config, "--from", "nowhere")
    assert checked.status == 2 and "no backend named 'nowhere'" in checked.err


def test_listings_in_different_orders_are_compared_until_their_keys_make_it_matter(
    moto_servers, seaweedfs_servers, bucket, tmp_path
):
    """moto lists in S3 byte order, SeaweedFS in path-segment order: keys both orders agree on
    compare; keys they put the other way round stop the check (exit 2), said."""
    pair = [moto_servers[0], seaweedfs_servers[1]]
    config = check_config(tmp_path / "c.json", pair, replica=False)
    agreeing = {f"photos/{i:03d}.jpg": b"x" for i in range(50)}
    for server in pair:
        put_many(server, bucket, agreeing)
    put_many(pair[1], bucket, {"photos/zz.jpg": b"y"})
    checked = run_check(config, "--json", "--bucket", bucket)
    assert checked.status == 0, checked.err
    assert checked.differences() == {(bucket, "photos/zz.jpg", "not-migrated", pair[1].name)}

    for server in pair:
        put_many(server, bucket, {k: b"z" for k in SEAWEEDFS_KEYS})
    refused = run_check(config, "--bucket", bucket)
    assert refused.status == 2
    assert f"cannot compare {bucket}: " in refused.err
    assert f"{pair[1].name} lists keys in path-segment order" in refused.err
    assert f"{pair[0].name} in S3 byte order" in refused.err


@pytest.mark.topologies("moto", "seaweedfs")
def test_directories_listed_at_once_give_the_rows_of_one_listing(backends, bucket, tmp_path):
    """A bucket whose first level is directories only is listed a directory at a time, several
    at once, in the order the backend lists them: directories whose names the two orders put
    the other way round (`a/`, `a-b/`, `a.c/`) give the rows one listing gives, each planted
    difference once; a bucket of keys alone is its one delimited listing."""
    config = check_config(tmp_path / "c.json", backends[:2], meta="", replica=False)
    primary, warm = backends[:2]
    both = {f"{d}/{i:02d}": b"same" for d in ("a", "a-b", "a.c", "a/z") for i in range(5)}
    put_many(primary, bucket, both)
    put_many(warm, bucket, both)
    only = ["a/only", "a-b/only", "a.c/z/only", "a/z/only"]
    put_many(warm, bucket, {k: b"only here" for k in only})
    checked = run_check(config, "--json", "--bucket", bucket)
    assert checked.status == 0, checked.err
    assert checked.differences() == {(bucket, k, "not-migrated", warm.name) for k in only}
    assert checked.summary["keys"] == len(both) + len(only)
    # The plan and one listing per directory (a/, a-b/, a.c/).
    assert checked.summary["requests"][primary.name] == {"listings": 4}
    assert checked.summary["requests"][warm.name] == {"listings": 4}

    flat = f"{bucket}-flat"
    put_many(primary, flat, {"k1": b"1", "k2": b"2"})
    put_many(warm, flat, {"k2": b"2", "k3": b"3"})
    checked = run_check(config, "--json", "--bucket", flat)
    assert checked.status == 0, checked.err
    assert checked.differences() == {(flat, "k3", "not-migrated", warm.name)}
    assert checked.summary["requests"][primary.name] == {"listings": 1}
