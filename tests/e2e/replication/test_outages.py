"""Replicas and proxies that fail, on real processes: a SeaweedFS replica of the test's own,
killed and started again (it keeps its objects), and proxies SIGKILLed. The primary decides:
clients' writes succeed throughout, readiness and metrics say the replica is down or behind,
and once it answers again every key is equal on both sides without a client doing anything,
from the outbox, or from reconciliation when the misses were in a killed proxy's memory."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

import pytest

from addon.replication.outbox import OUTBOX
from tests.support.processes import REPO, VENV_BIN, child_env
from tests.support.replication import META, eventually, listed, replicated_config
from tests.support.restartable import kill, pause, restart, restartable_seaweed, resume
from tests.support.status import sample, status

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def primary():
    """A primary of this module's own: a replica mirrors every bucket the primary has, and the
    session's servers hold every other suite's."""
    with restartable_seaweed("main") as server:
        yield server


@pytest.fixture
def replica(bucket):
    """A replica of this test's own: no other test's proxy holds its lease or its outbox."""
    with restartable_seaweed(f"dr-{bucket[2:]}") as server:
        yield server


@pytest.fixture
def run_proxy(run_proxy):
    """Proxies stopped at the end of the test (the session's run_proxy keeps them)."""
    started = []

    def run(*args):
        started.append(run_proxy(*args))
        return started[-1]

    yield run
    for proxy in started:
        proxy.stop()


def _config(tmp_path, primary, replica, mode="async", **settings):
    return replicated_config(tmp_path / f"c-{mode}.json", primary, [(replica, mode)], settings)


def _ready(proxy) -> dict:
    answer = status(proxy.port, "/-/ready")
    assert answer.status == 200, answer.body
    return json.loads(answer.body)


def _replica_state(proxy) -> dict:
    return next(b for b in _ready(proxy)["backends"] if b.get("role") == "replica")


def _down(state: dict) -> dict | None:
    return state if not state["up"] else None


def _metric(proxy, name: str, **labels: str) -> float:
    return sample(status(proxy.port, "/-/metrics").body.decode(), name, **labels)


def _outbox(primary, replica) -> list[str]:
    answer = primary.client().list_objects_v2(Bucket=META, Prefix=f"{OUTBOX}{replica.name}/")
    return [o["Key"] for o in answer.get("Contents", [])]


def _equal(primary, replica, bucket) -> bool:
    return listed(primary, bucket) == listed(replica, bucket)


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_a_replica_killed_during_writes_is_repaired_once_it_is_back(
    primary, replica, run_proxy, tmp_path, bucket, mode
):
    proxy = run_proxy(_config(tmp_path, primary, replica, mode, reconcileInterval=0))
    client = proxy.client()
    client.create_bucket(Bucket=bucket)
    slowest = [0.0]

    def write(start: int, stop: int) -> None:
        for i in range(start, stop):
            began = time.monotonic()
            client.put_object(Bucket=bucket, Key=f"k{i:03d}", Body=os.urandom(2000))
            if i % 7 == 0:
                client.delete_object(Bucket=bucket, Key=f"k{i - 3:03d}")
            slowest[0] = max(slowest[0], time.monotonic() - began)

    write(0, 30)
    writer = threading.Thread(target=write, args=(30, 150))
    writer.start()
    kill(replica)
    writer.join()
    assert slowest[0] < 10  # a replica that fails slows a write by one attempt at most

    state = eventually(lambda: _down(_replica_state(proxy)))
    assert _ready(proxy)["status"] == "degraded"
    assert state["mode"] == mode and state["pending"] + len(_outbox(primary, replica)) > 0
    assert _metric(proxy, "s3multi_replica_up", replica=replica.name) == 0
    kinds = ("unreachable", "broken", "timeout")  # a pooled connection breaks, a new one is refused
    failures = "s3multi_replication_failures_total"
    assert sum(_metric(proxy, failures, replica=replica.name, error=kind) for kind in kinds) > 0
    eventually(lambda: _outbox(primary, replica))  # the misses are kept durably

    back = restart(replica)
    answered = time.monotonic()
    eventually(lambda: _equal(primary, replica, bucket), seconds=60)
    repaired = time.monotonic() - answered
    print(f"\n{mode}: replica answered after {back:.1f}s, every key equal {repaired:.1f}s later")
    eventually(lambda: _ready(proxy)["status"] == "ready", seconds=30)
    assert not _outbox(primary, replica)
    eventually(lambda: _metric(proxy, "s3multi_replica_up", replica=replica.name) == 1)
    eventually(lambda: _metric(proxy, "s3multi_replication_lag_seconds", replica=replica.name) == 0)


def test_a_proxy_killed_with_misses_in_the_outbox_leaves_them_to_the_next(
    primary, replica, run_proxy, tmp_path, bucket
):
    config = _config(tmp_path, primary, replica, reconcileInterval=0)
    first = run_proxy(config)
    first.client().create_bucket(Bucket=bucket)
    eventually(lambda: bucket in [b["Name"] for b in replica.client().list_buckets()["Buckets"]])
    kill(replica)
    for i in range(20):
        first.client().put_object(Bucket=bucket, Key=f"k{i}", Body=b"%d" % i)
    eventually(lambda: sum(int(n.rsplit("-", 1)[1][:-5]) for n in _outbox(primary, replica)) >= 20)
    first.process.kill()  # SIGKILL: nothing more of it
    first.process.wait()
    restart(replica)
    assert not _equal(primary, replica, bucket)
    run_proxy(config)  # no reconciliation: the outbox alone repairs
    eventually(lambda: _equal(primary, replica, bucket), seconds=90)
    eventually(lambda: not _outbox(primary, replica))


def test_a_proxy_killed_with_jobs_in_memory_is_covered_by_reconciliation(
    primary, replica, run_proxy, tmp_path, bucket
):
    """The replica hangs (SIGSTOP): the jobs wait on it, in memory, when the proxy is killed.
    The next proxy to take the replica's lease (once the killed one's expired) reconciles at
    once. (The tees' PUTs the killed proxy had let go sit in the hung replica's socket and may
    land when it resumes: the replica being equal proves nothing until it reconciled.)"""
    config = _config(tmp_path, primary, replica)
    first = run_proxy(config)
    first.client().create_bucket(Bucket=bucket)
    eventually(lambda: bucket in [b["Name"] for b in replica.client().list_buckets()["Buckets"]])
    pause(replica)
    try:
        for i in range(20):
            first.client().put_object(Bucket=bucket, Key=f"k{i}", Body=b"%d" % i)
        time.sleep(1)
        assert not _outbox(primary, replica)  # the misses are nowhere but in its memory
        first.process.kill()
        first.process.wait()
    finally:
        resume(replica)
    assert not _equal(primary, replica, bucket)
    second = run_proxy(config)
    eventually(lambda: f"replication: reconciled {replica.name}" in second.log(), seconds=90)
    eventually(lambda: _equal(primary, replica, bucket), seconds=90)


def test_a_drained_proxy_hands_its_jobs_to_the_outbox(
    primary, replica, run_proxy, tmp_path, bucket
):
    """SIGTERM: the jobs that cannot finish within the drain go to the outbox before the exit;
    the next proxy repairs them from there."""
    config = _config(tmp_path, primary, replica, reconcileInterval=0)
    first = run_proxy(config, "s3multi_drain_timeout=2")
    first.client().create_bucket(Bucket=bucket)
    eventually(lambda: bucket in [b["Name"] for b in replica.client().list_buckets()["Buckets"]])
    pause(replica)
    try:
        for i in range(10):
            first.client().put_object(Bucket=bucket, Key=f"k{i}", Body=b"%d" % i)
        first.process.terminate()
        first.process.wait(timeout=30)
        assert _outbox(primary, replica)
    finally:
        resume(replica)
    assert "replication jobs left to the outbox" in first.log()
    run_proxy(config)
    eventually(lambda: _equal(primary, replica, bucket), seconds=90)


def test_a_delete_the_replica_missed_hides_its_copy_until_repaired(
    primary, replica, run_proxy, tmp_path, bucket
):
    """The replica is down when a key is deleted: the client's delete succeeds, the outbox keeps
    the miss and the tombstone names the replica with "*". Back up, the replica still holds the
    key until the repair: a proxy reading it as a fallback does not serve it meanwhile. Once
    repaired, the pruner removes the tombstone."""
    replicating = _config(tmp_path, primary, replica, reconcileInterval=0)
    first = run_proxy(replicating)
    first.client().create_bucket(Bucket=bucket)
    first.client().put_object(Bucket=bucket, Key="k", Body=b"to be deleted")
    eventually(lambda: _equal(primary, replica, bucket) and listed(replica, bucket))
    kill(replica)
    first.client().delete_object(Bucket=bucket, Key="k")
    tombstone = primary.client().get_object(Bucket=META, Key=f"tombstones/{bucket}/k")
    assert json.loads(tombstone["Body"].read())["hides"] == {replica.name: "*"}
    first.process.kill()  # no repair for now
    first.process.wait()
    restart(replica)
    assert "k" in listed(replica, bucket)

    reading = _config(tmp_path, primary, replica, mode="off")  # the replica as a fallback
    reader = run_proxy(reading).client()
    with pytest.raises(reader.exceptions.NoSuchKey):
        reader.get_object(Bucket=bucket, Key="k")
    assert "Contents" not in reader.list_objects_v2(Bucket=bucket)

    run_proxy(replicating)
    eventually(lambda: "k" not in listed(replica, bucket), seconds=60)
    pruned = subprocess.run(
        [str(VENV_BIN / "s3-multi"), "tombstones", "--config", str(reading), "--prune"],
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(),
        cwd=REPO,
    )
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    listing = primary.client().list_objects_v2(Bucket=META, Prefix=f"tombstones/{bucket}/")
    assert "Contents" not in listing
