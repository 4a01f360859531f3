"""The proxy's own writes to the primary reach the replicas too: a copy on read, a bucket taken
on from a fallback, and the copies of `s3-multi migrate` (a command of its own: through the
outbox, repaired by the running proxy). The secondary is a `migrate: on-read` fallback, the
tertiary an async replica."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.support.direct import has_bucket, put_direct
from tests.support.processes import REPO, VENV_BIN, child_env
from tests.support.replication import (
    META,
    SHARED_BACKENDS,
    body_or_none,
    eventually,
    stop_handing_over,
)

pytestmark = [pytest.mark.e2e, pytest.mark.topologies("moto")]


@pytest.fixture(scope="module")
def config(backends, tmp_path_factory):
    primary, fallback, replica = backends
    entries = []
    for server, fields in (
        (primary, {"metaBucket": META}),
        (fallback, {"migrate": "on-read"}),
        (replica, {"replicate": "async"}),
    ):
        entry = {"name": server.name, "access": server.access, "secret": server.secret}
        entries.append({**entry, "endpoint": server.endpoint, "usePathStyle": True, **fields})
    path = tmp_path_factory.mktemp("own") / "c.json"
    path.write_text(json.dumps({"backends": entries, **SHARED_BACKENDS}))
    return path


@pytest.fixture(scope="module")
def gateway(config, run_proxy):
    """No reconciliation (SHARED_BACKENDS): what reaches the replica comes by the way under
    test only. Stopped with the module, its replication with it."""
    proxy = run_proxy(config)
    yield proxy
    stop_handing_over(proxy)


def test_a_copy_on_read_reaches_the_replica(gateway, backends, bucket):
    put_direct(backends[0], bucket, "placeholder", b"")
    put_direct(backends[1], bucket, "old.txt", b"only the fallback had it")
    body = gateway.client().get_object(Bucket=bucket, Key="old.txt")["Body"].read()
    assert body == b"only the fallback had it"
    eventually(lambda: body_or_none(backends[0], bucket, "old.txt") == body)
    eventually(lambda: body_or_none(backends[2], bucket, "old.txt") == body)


def test_a_bucket_taken_on_from_a_fallback_reaches_the_replica(gateway, backends, bucket):
    put_direct(backends[1], bucket, "old.txt", b"old")
    gateway.client().put_object(Bucket=bucket, Key="new.txt", Body=b"new")
    eventually(lambda: has_bucket(backends[2], bucket))
    eventually(lambda: body_or_none(backends[2], bucket, "new.txt") == b"new")


def test_the_copies_of_s3_multi_migrate_reach_the_replica(gateway, config, backends, bucket):
    put_direct(backends[0], bucket, "placeholder", b"")
    for i in range(5):
        put_direct(backends[1], bucket, f"m{i}", b"%d" % i)
    done = subprocess.run(
        [str(VENV_BIN / "s3-multi"), "migrate", "--config", str(config), "--bucket", bucket],
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(),
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for i in range(5):
        eventually(lambda i=i: body_or_none(backends[2], bucket, f"m{i}") == b"%d" % i)
