"""One namespace as the tools that find objects by listing see it: every object a read serves
is listed, copied and synced, wherever it is; deletes stick (with a metaBucket)."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.support.direct import client as direct
from tests.support.direct import has_object, put_direct
from tests.support.processes import aws_cli, rclone

pytestmark = pytest.mark.e2e

SPREAD = {  # key -> (backend index, bytes)
    "top.txt": (0, b"on the primary"),
    "dir/warm.txt": (1, b"on the secondary"),
    "dir/sub/cold.txt": (2, b"on the tertiary"),
    "dir/both.txt": (2, b"an older copy on the tertiary"),
}


@pytest.fixture
def spread_bucket(backends, bucket):
    direct(backends[0]).create_bucket(Bucket=bucket)
    for key, (index, body) in SPREAD.items():
        put_direct(backends[index], bucket, key, body)
    put_direct(backends[0], bucket, "dir/both.txt", b"the primary's copy")
    return bucket


def expected() -> dict[str, bytes]:
    return {k: b for k, (_, b) in SPREAD.items()} | {"dir/both.txt": b"the primary's copy"}


def files(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.client("aws CLI", "ls, cp --recursive, sync over objects on every backend")
def test_aws_cli_sees_every_object(proxy, spread_bucket, tmp_path):
    listed = aws_cli(
        "--endpoint-url", proxy.endpoint, "s3", "ls", f"s3://{spread_bucket}", "--recursive"
    )
    assert sorted(line.split()[-1] for line in listed.decode().splitlines()) == sorted(expected())
    aws_cli(
        "--endpoint-url",
        proxy.endpoint,
        "s3",
        "cp",
        f"s3://{spread_bucket}/",
        str(tmp_path / "cp"),
        "--recursive",
    )
    assert files(tmp_path / "cp") == expected()
    aws_cli(
        "--endpoint-url",
        proxy.endpoint,
        "s3",
        "sync",
        f"s3://{spread_bucket}",
        str(tmp_path / "sync"),
    )
    assert files(tmp_path / "sync") == expected()


@pytest.mark.client("rclone", "lsf, copy over objects on every backend")
def test_rclone_sees_every_object(proxy, spread_bucket, tmp_path):
    run = rclone(proxy.endpoint, tmp_path)
    listed = run("lsf", "-R", "--files-only", f"gw:{spread_bucket}").decode().split()
    assert sorted(listed) == sorted(expected())
    run("copy", f"gw:{spread_bucket}", str(tmp_path / "copy"))
    assert files(tmp_path / "copy") == expected()


def test_aws_s3_sync_delete_through_the_proxy_sticks(backends, run_proxy, tmp_path, bucket):
    """A sync that deletes what the source lacks deletes through the proxy: the fallback copies
    it leaves are hidden by tombstones, and a second sync has nothing left to do."""
    entries = [
        {"name": s.name, "access": s.access, "secret": s.secret, "endpoint": s.endpoint,
         "usePathStyle": True}
        for s in backends
    ]  # fmt: skip
    entries[0]["metaBucket"] = "s3multi-meta-sync"
    (tmp_path / "c.json").write_text(json.dumps({"backends": entries}))
    proxy = run_proxy(tmp_path / "c.json")
    direct(backends[0]).create_bucket(Bucket=bucket)
    put_direct(backends[1], bucket, "stale.txt", b"to be removed")
    source = tmp_path / "source"
    source.mkdir()
    (source / "kept.txt").write_bytes(b"kept")
    # sync re-uploads a file newer than the object; listings give whole seconds, so a file
    # written in the second of its upload would look newer. An hour old, it never does.
    an_hour_ago = time.time() - 3600
    os.utime(source / "kept.txt", (an_hour_ago, an_hour_ago))
    endpoint = ("--endpoint-url", proxy.endpoint)
    aws_cli(*endpoint, "s3", "sync", str(source), f"s3://{bucket}", "--delete")
    listed = aws_cli(*endpoint, "s3", "ls", f"s3://{bucket}", "--recursive").decode()
    assert [line.split()[-1] for line in listed.splitlines()] == ["kept.txt"]
    assert has_object(backends[1], bucket, "stale.txt")  # still there, hidden
    again = aws_cli(*endpoint, "s3", "sync", str(source), f"s3://{bucket}", "--delete")
    assert again == b""
