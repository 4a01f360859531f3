"""Deletes that stick: a key deleted through the proxy is gone for GET, HEAD and listings on
every instance over the same backends, though a fallback still has its copy (writes never
touch a fallback); a copy written there since shows again; a write through the proxy is served
and leaves the tombstone; the proxy's own bucket is nobody's; `s3-multi tombstones --prune`."""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest
from botocore.exceptions import ClientError

from tests.support.direct import client as direct
from tests.support.direct import has_object, put_direct
from tests.support.processes import VENV_BIN, aws_cli, child_env

pytestmark = pytest.mark.e2e
META = "s3multi-meta"


def config(path, backends, meta: str = META):
    entries = [
        {"name": s.name, "access": s.access, "secret": s.secret, "endpoint": s.endpoint,
         "usePathStyle": True}
        for s in backends
    ]  # fmt: skip
    if meta:
        entries[0]["metaBucket"] = meta
    path.write_text(json.dumps({"backends": entries}))
    return path


@pytest.fixture(scope="module")
def two_instances(backends, run_proxy, tmp_path_factory):
    """Two proxies over the same three backends, as behind a load balancer."""
    path = config(tmp_path_factory.mktemp("tomb") / "c.json", backends)
    return run_proxy(path), run_proxy(path)


def code(call) -> str:
    with pytest.raises(ClientError) as failed:
        call()
    return failed.value.response["Error"].get("Code") or str(
        failed.value.response["ResponseMetadata"]["HTTPStatusCode"]
    )


def test_a_delete_through_one_instance_sticks_on_the_other(two_instances, backends, bucket):
    one, other = two_instances
    primary, secondary, tertiary = backends
    put_direct(primary, bucket, "k.txt", b"on the primary")
    put_direct(secondary, bucket, "k.txt", b"an old copy on the secondary")
    put_direct(tertiary, bucket, "k.txt", b"an older copy on the tertiary")

    one.client().delete_object(Bucket=bucket, Key="k.txt")

    reader = other.client()
    assert code(lambda: reader.get_object(Bucket=bucket, Key="k.txt")) == "NoSuchKey"
    assert code(lambda: reader.head_object(Bucket=bucket, Key="k.txt")) == "404"
    assert "Contents" not in reader.list_objects_v2(Bucket=bucket)
    assert "Contents" not in reader.list_objects(Bucket=bucket)
    # Writes never touch a fallback: their copies are still there, hidden.
    assert has_object(secondary, bucket, "k.txt") and has_object(tertiary, bucket, "k.txt")
    stored = direct(primary).get_object(Bucket=META, Key=f"tombstones/{bucket}/k.txt")
    etags = {
        s.name: direct(s).head_object(Bucket=bucket, Key="k.txt")["ETag"]
        for s in (secondary, tertiary)
    }
    body = json.loads(stored["Body"].read())
    assert body["hides"] == etags and set(body) == {"hides", "at", "nonce"}
    assert f"GetObject /{bucket}/k.txt via [primary 404" in other.log()
    assert "primary tombstone 200" in other.log() and "secondary deleted (tombstone)" in other.log()


def test_a_copy_written_to_a_fallback_after_the_delete_shows_again(two_instances, backends, bucket):
    one, other = two_instances
    primary, secondary, _ = backends
    direct(primary).create_bucket(Bucket=bucket)
    put_direct(secondary, bucket, "k.txt", b"before the delete")
    one.client().delete_object(Bucket=bucket, Key="k.txt")
    assert code(lambda: other.client().get_object(Bucket=bucket, Key="k.txt")) == "NoSuchKey"

    put_direct(secondary, bucket, "k.txt", b"written there since")
    got = other.client().get_object(Bucket=bucket, Key="k.txt")["Body"].read()
    assert got == b"written there since"
    listed = other.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in listed] == ["k.txt"]


def test_a_write_through_the_proxy_is_served_and_leaves_the_tombstone(
    two_instances, backends, bucket
):
    """The tombstone is read only when the primary misses: it never hides the new object, and
    stays for when the key goes again."""
    one, other = two_instances
    primary, secondary, _ = backends
    direct(primary).create_bucket(Bucket=bucket)
    put_direct(secondary, bucket, "k.txt", b"old")
    one.client().delete_object(Bucket=bucket, Key="k.txt")
    assert has_object(primary, META, f"tombstones/{bucket}/k.txt")

    other.client().put_object(Bucket=bucket, Key="k.txt", Body=b"new")
    assert has_object(primary, META, f"tombstones/{bucket}/k.txt")
    assert one.client().get_object(Bucket=bucket, Key="k.txt")["Body"].read() == b"new"
    assert f"PutObject /{bucket}/k.txt via [primary 200" in other.log()


def test_a_recursive_remove_sticks_and_listings_drop_empty_prefixes(
    two_instances, backends, bucket
):
    one, other = two_instances
    primary, secondary, tertiary = backends
    direct(primary).create_bucket(Bucket=bucket)
    for key in ("dir/a", "dir/b", "dir/sub/c", "keep.txt"):
        put_direct(tertiary if key.startswith("dir/s") else secondary, bucket, key, key.encode())
    aws_cli("--endpoint-url", one.endpoint, "s3", "rm", f"s3://{bucket}/dir/", "--recursive")

    listed = other.client().list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [o["Key"] for o in listed.get("Contents", [])] == ["keep.txt"]
    assert "CommonPrefixes" not in listed  # dir/ holds nothing any more
    for key in ("dir/a", "dir/b", "dir/sub/c"):
        assert code(lambda k=key: other.client().get_object(Bucket=bucket, Key=k)) == "NoSuchKey"
    assert other.client().get_object(Bucket=bucket, Key="keep.txt")["Body"].read() == b"keep.txt"


def test_the_meta_bucket_is_the_proxys_own(two_instances, backends, bucket):
    one, _ = two_instances
    client = one.client()
    assert META not in [b["Name"] for b in client.list_buckets()["Buckets"]]
    assert code(lambda: client.list_objects_v2(Bucket=META)) == "AccessDenied"
    assert code(lambda: client.put_object(Bucket=META, Key="tombstones/x/y", Body=b"{}")) == (
        "AccessDenied"
    )


def test_without_a_meta_bucket_the_log_says_deletes_do_not_stick(backends, run_proxy, tmp_path):
    proxy = run_proxy(config(tmp_path / "c.json", backends, meta=""))
    warning = "a delete of a key that a fallback still has will not stick"
    deadline = time.monotonic() + 10
    while warning not in proxy.log() and time.monotonic() < deadline:
        time.sleep(0.1)  # the log reaches its file a little after the port opens
    assert warning in proxy.log()


def test_the_tombstones_command_prunes_those_that_hide_nothing(
    two_instances, backends, bucket, tmp_path
):
    one, _ = two_instances
    primary, secondary, _ = backends
    direct(primary).create_bucket(Bucket=bucket)
    for key in ("a.txt", "b.txt", "c.txt", "d.txt"):  # the command pages through them
        put_direct(secondary, bucket, key, b"old")
        one.client().delete_object(Bucket=bucket, Key=key)
    one.client().put_object(Bucket=bucket, Key="d.txt", Body=b"written again")
    path = config(tmp_path / "c.json", backends)

    def tombstones(*args: str) -> list[str]:
        done = subprocess.run(
            [str(VENV_BIN / "s3-multi"), "tombstones", "--config", str(path), *args],
            capture_output=True,
            text=True,
            env=child_env(),
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    def mine(lines: list[str]) -> dict[str, str]:
        return dict(
            line.removeprefix(f"{bucket}/").split(": ", 1)
            for line in lines
            if line.startswith(f"{bucket}/")
        )

    etag = direct(secondary).head_object(Bucket=bucket, Key="c.txt")["ETag"]
    before = tombstones()
    keys = ("a.txt", "b.txt", "c.txt", "d.txt")
    assert mine(before) == {k: f"hides secondary {etag}" for k in keys}
    direct(secondary).delete_object(Bucket=bucket, Key="a.txt")  # a hidden copy goes
    put_direct(secondary, bucket, "b.txt", b"new")  # another is replaced: it shows again anyway
    after = tombstones("--prune")
    assert mine(after) == {
        "a.txt": "hides nothing: pruned",
        "b.txt": "hides nothing: pruned",
        "c.txt": f"hides secondary {etag}",
        "d.txt": f"hides secondary {etag}",  # written again since: kept while its copy is there
    }
    summary = r"\d+ tombstones: \d+ still hide a copy, [1-9]\d* pruned"
    assert re.fullmatch(summary, after[-2])
    assert "even once its key is written again" in after[-1]
    assert not has_object(primary, META, f"tombstones/{bucket}/a.txt")
    assert not has_object(primary, META, f"tombstones/{bucket}/b.txt")
    assert has_object(primary, META, f"tombstones/{bucket}/c.txt")
    listed = one.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in listed] == ["b.txt", "d.txt"]  # b.txt's new copy, d.txt's new one

    direct(secondary).delete_object(Bucket=bucket, Key="d.txt")  # its hidden copy goes: the bound
    assert f"{bucket}/d.txt: hides nothing: pruned" in tombstones("--prune")
    assert not has_object(primary, META, f"tombstones/{bucket}/d.txt")
    assert one.client().get_object(Bucket=bucket, Key="d.txt")["Body"].read() == b"written again"
