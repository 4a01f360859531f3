"""Other S3 clients, end to end through the proxy, each as its users run it: make a bucket,
upload small and multipart-sized objects, list, download byte for byte, read an object only a
fallback has, delete, presign where the client can."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import pytest

from tests.support import processes
from tests.support.direct import has_bucket, has_object, put_direct
from tests.support.processes import VENV_BIN, aws_cli, child_env
from tests.support.raw_http import fetch
from tests.support.root_keys import ROOT_ACCESS, ROOT_SECRET
from tests.support.topologies import EACH_PRIMARY

pytestmark = [pytest.mark.e2e, pytest.mark.topologies(*EACH_PRIMARY)]

MIB = 1024 * 1024


def s3cmd_config(tmp_path: Path, proxy) -> Path:
    config = tmp_path / "s3cfg"
    host = f"127.0.0.1:{proxy.port}"
    config.write_text(
        "[default]\n"
        f"access_key = {ROOT_ACCESS}\nsecret_key = {ROOT_SECRET}\n"
        f"host_base = {host}\nhost_bucket = {host}\n"
        "use_https = False\nbucket_location = us-east-1\nsignature_v2 = False\n"
        "multipart_chunk_size_mb = 5\n"
    )
    return config


@pytest.mark.client("s3cmd", "mb, put (multipart), ls, get, sync, signurl, del")
def test_s3cmd(proxy, backends, bucket, tmp_path):
    primary, secondary, _ = backends
    config = s3cmd_config(tmp_path, proxy)

    def s3cmd(*args: str) -> str:
        done = subprocess.run(
            [str(VENV_BIN / "s3cmd"), "-c", str(config), *args],
            capture_output=True,
            text=True,
            env=child_env(),
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    small, large = tmp_path / "small.txt", tmp_path / "large.bin"
    small.write_bytes(b"hello from s3cmd\n")
    large.write_bytes(os.urandom(12 * MIB))  # three 5 MiB parts
    s3cmd("mb", f"s3://{bucket}")
    s3cmd("put", str(small), f"s3://{bucket}/small.txt")
    s3cmd("put", str(large), f"s3://{bucket}/large.bin")
    assert primary.client().get_object(Bucket=bucket, Key="large.bin")["ETag"].endswith('-3"')
    put_direct(secondary, bucket, "warm.txt", b"warm\n")

    listing = s3cmd("ls", f"s3://{bucket}/")
    assert f"s3://{bucket}/small.txt" in listing and f"s3://{bucket}/large.bin" in listing
    s3cmd("get", f"s3://{bucket}/large.bin", str(tmp_path / "large.back"))
    assert (tmp_path / "large.back").read_bytes() == large.read_bytes()
    s3cmd("get", f"s3://{bucket}/warm.txt", str(tmp_path / "warm.back"))
    assert (tmp_path / "warm.back").read_bytes() == b"warm\n"

    sync_dir = tmp_path / "sync"
    sync_dir.mkdir()
    (sync_dir / "a.txt").write_bytes(b"a")
    (sync_dir / "b.txt").write_bytes(b"b")
    s3cmd("sync", f"{sync_dir}/", f"s3://{bucket}/synced/")
    assert has_object(primary, bucket, "synced/a.txt") and has_object(
        primary, bucket, "synced/b.txt"
    )

    url = s3cmd("signurl", f"s3://{bucket}/small.txt", "+300").strip()  # a SigV2 query URL
    answer = fetch(url)
    assert (answer.status, answer.body) == (200, small.read_bytes())

    s3cmd("del", f"s3://{bucket}/small.txt")
    assert not has_object(primary, bucket, "small.txt")
    assert has_object(secondary, bucket, "warm.txt")  # deletes never reach a fallback


@pytest.mark.client(
    "minio-py", "make_bucket, fput_object (multipart), list, get, stat, presign, remove"
)
def test_minio_py(proxy, backends, bucket, tmp_path):
    from minio import Minio

    primary, secondary, _ = backends
    client = Minio(
        f"127.0.0.1:{proxy.port}",
        access_key=ROOT_ACCESS,
        secret_key=ROOT_SECRET,
        secure=False,
        region="us-east-1",
    )
    client.make_bucket(bucket)
    data = os.urandom(12 * MIB)
    source = tmp_path / "m.bin"
    source.write_bytes(data)
    client.fput_object(bucket, "m.bin", str(source), part_size=5 * MIB)  # multipart
    client.put_object(bucket, "small.txt", io.BytesIO(b"minio"), 5)
    put_direct(secondary, bucket, "warm.txt", b"warm from minio's view")

    listed = sorted(o.object_name for o in client.list_objects(bucket))
    assert listed == ["m.bin", "small.txt", "warm.txt"]
    assert client.get_object(bucket, "m.bin").read() == data
    assert client.get_object(bucket, "warm.txt").read() == b"warm from minio's view"
    assert client.stat_object(bucket, "warm.txt").size == len(b"warm from minio's view")
    url = client.presigned_get_object(bucket, "small.txt")
    answer = fetch(url)
    assert (answer.status, answer.body) == (200, b"minio")
    client.remove_object(bucket, "small.txt")
    assert not has_object(primary, bucket, "small.txt")
    assert primary.client().get_object(Bucket=bucket, Key="m.bin")["Body"].read() == data


@pytest.mark.client(
    "rclone", "S3 remote: mkdir, copy (multipart), lsf, check, cat, link, deletefile"
)
def test_rclone(proxy, backends, bucket, tmp_path):
    primary, secondary, _ = backends
    rclone = processes.rclone(proxy.endpoint, tmp_path)

    local = tmp_path / "tree"
    (local / "sub").mkdir(parents=True)
    (local / "small.txt").write_bytes(b"small via rclone")
    (local / "sub" / "large.bin").write_bytes(os.urandom(12 * MIB))  # multipart
    rclone("mkdir", f"gw:{bucket}")
    rclone("copy", str(local), f"gw:{bucket}/tree")
    # rclone finds single objects by listing: a listing shows every backend's keys, so an object
    # only a fallback has, in a bucket the primary has too, is found.
    put_direct(secondary, bucket, "warm.txt", b"warm via rclone")

    assert sorted(rclone("lsf", "-R", f"gw:{bucket}/tree").decode().split()) == [
        "small.txt",
        "sub/",
        "sub/large.bin",
    ]
    rclone("check", str(local), f"gw:{bucket}/tree")  # compares sizes and hashes
    assert rclone("cat", f"gw:{bucket}/warm.txt") == b"warm via rclone"
    stored = primary.client().get_object(Bucket=bucket, Key="tree/sub/large.bin")
    assert stored["Body"].read() == (local / "sub" / "large.bin").read_bytes()
    link = rclone("link", f"gw:{bucket}/tree/small.txt").decode().strip()  # presigned
    answer = fetch(link)
    assert (answer.status, answer.body) == (200, b"small via rclone")
    rclone("deletefile", f"gw:{bucket}/tree/small.txt")
    assert not has_object(primary, bucket, "tree/small.txt")


@pytest.mark.slow
@pytest.mark.client("boto3", "paginators over 1100 keys")
def test_boto3_paginates_a_listing_of_more_than_1000_keys(proxy, backends, bucket):
    primary = backends[0].client()
    primary.create_bucket(Bucket=bucket)
    keys = [f"many/{i:05d}" for i in range(1100)]
    for key in keys:
        primary.put_object(Bucket=bucket, Key=key, Body=b"", ContentType="text/plain")

    pages = list(proxy.client().get_paginator("list_objects_v2").paginate(Bucket=bucket))
    assert len(pages) == 2 and pages[0]["IsTruncated"]
    assert [o["Key"] for page in pages for o in page["Contents"]] == keys
    v1 = list(proxy.client().get_paginator("list_objects").paginate(Bucket=bucket))
    assert sum(len(page["Contents"]) for page in v1) == 1100


@pytest.mark.client("aws CLI", "sync, rm --recursive, rb")
def test_aws_cli_sync_rm_and_rb(proxy, backends, bucket, tmp_path):
    def aws(*args: str) -> str:
        return aws_cli("--endpoint-url", proxy.endpoint, "s3", *args).decode()

    local = tmp_path / "site"
    (local / "css").mkdir(parents=True)
    (local / "index.html").write_text("<h1>hi</h1>")
    (local / "css" / "main.css").write_text("h1 {}")
    aws("mb", f"s3://{bucket}")
    aws("sync", str(local), f"s3://{bucket}/site")
    primary = backends[0]
    assert has_object(primary, bucket, "site/index.html")
    assert has_object(primary, bucket, "site/css/main.css")
    (local / "index.html").write_text("<h1>changed</h1>")
    assert "upload:" in aws("sync", str(local), f"s3://{bucket}/site")  # only what changed
    assert primary.client().get_object(Bucket=bucket, Key="site/index.html")["Body"].read() == (
        b"<h1>changed</h1>"
    )
    aws("rm", f"s3://{bucket}/site", "--recursive")
    assert not has_object(primary, bucket, "site/index.html")
    aws("rb", f"s3://{bucket}")
    assert not has_bucket(primary, bucket)
