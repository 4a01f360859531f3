"""SDKs of other languages: the AWS SDK for JavaScript v3 and the MinIO JavaScript client, driven
by the scripts in tests/e2e/clients/js (installed with
`npm ci --prefix tests/e2e/clients/js`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.direct import has_object, put_direct
from tests.support.processes import child_env
from tests.support.root_keys import ROOT_ACCESS, ROOT_SECRET
from tests.support.topologies import EACH_PRIMARY

pytestmark = [pytest.mark.e2e, pytest.mark.topologies(*EACH_PRIMARY)]

JS = Path(__file__).resolve().parent / "js"
MIB = 1024 * 1024


def run_script(name: str, workdir: Path, **env: str) -> dict:
    node = shutil.which("node")
    assert node, "node is needed for the JavaScript SDK tests"
    assert (JS / "node_modules").is_dir(), (
        "run `npm ci --prefix tests/e2e/clients/js` first (README)"
    )
    done = subprocess.run(
        [node, str(JS / name)],
        capture_output=True,
        text=True,
        env=child_env(ACCESS=ROOT_ACCESS, SECRET=ROOT_SECRET, WORKDIR=str(workdir), **env),
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def large(tmp_path: Path) -> bytes:
    data = os.urandom(12 * MIB + 7)
    (tmp_path / "large.bin").write_bytes(data)
    return data


@pytest.mark.client(
    "AWS SDK for JavaScript v3",
    "PutObject (Buffer, stream), Upload multipart, list, get, presign, delete",
)
def test_aws_sdk_for_javascript_v3(proxy, backends, bucket, tmp_path, large):
    primary, secondary, _ = backends
    put_direct(secondary, bucket, "warm.txt", b"warm for the JS SDK")
    report = run_script("aws-sdk-v3.mjs", tmp_path, ENDPOINT=proxy.endpoint, BUCKET=bucket)

    # Listed: every backend's keys, the secondary's warm.txt too.
    assert report["listed"] == ["buffer.txt", "multipart.bin", "stream.bin", "warm.txt"]
    assert (report["warm"], report["warmLength"]) == ("warm for the JS SDK", 19)
    assert report["presigned"] == "from a Buffer"
    assert (tmp_path / "multipart.back").read_bytes() == large
    direct = primary.client()
    assert direct.get_object(Bucket=bucket, Key="stream.bin")["Body"].read() == large  # no framing
    assert direct.get_object(Bucket=bucket, Key="multipart.bin")["ETag"].endswith('-3"')
    assert not has_object(primary, bucket, "buffer.txt")


@pytest.mark.client(
    "minio-js", "putObject, fPutObject (multipart), list, get, stat, presign, remove"
)
def test_minio_javascript_client(proxy, backends, bucket, tmp_path, large):
    primary, secondary, _ = backends
    put_direct(secondary, bucket, "warm.txt", b"warm for minio-js")
    report = run_script("minio.mjs", tmp_path, PROXY_PORT=str(proxy.port), BUCKET=bucket)

    assert report["listed"] == ["large.bin", "small.txt", "warm.txt"]
    assert (report["warm"], report["warmLength"]) == ("warm for minio-js", 17)
    assert report["presigned"] == "from minio-js"
    assert (tmp_path / "large.back").read_bytes() == large
    assert primary.client().get_object(Bucket=bucket, Key="large.bin")["Body"].read() == large
    assert not has_object(primary, bucket, "small.txt")
