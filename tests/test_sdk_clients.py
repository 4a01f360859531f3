"""SDKs of other languages through the proxy, each telling the story of tests/client_scenario.py
over HTTP and over HTTPS (trusting mitmproxy's CA): Go (the AWS SDK for Go v2 and minio-go v7,
built offline from Debian's packages)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.client_scenario import Scenario
from tests.conftest import child_env

HERE = Path(__file__).resolve().parent
GOCODE = Path("/usr/share/gocode/src/github.com")
GO_PACKAGES = "golang-go golang-github-aws-aws-sdk-go-v2-dev golang-github-minio-minio-go-v7-dev"
STORY = "bucket, put/get, list, head, fallback read, 21 MiB multipart"


def over_both(*clients: tuple[str, str, str]) -> list:
    """(id, client name, how) -> one test over HTTP and one over HTTPS, each a table row."""
    return [
        pytest.param(
            key,
            https,
            id=f"{key}-{'https' if https else 'http'}",
            marks=pytest.mark.client(name, f"{'HTTPS' if https else 'HTTP'}: {how}"),
        )
        for key, name, how in clients
        for https in (False, True)
    ]


def run_client(command: list[str], scenario: Scenario) -> dict:
    """A client program's report; the secondary has its object before the program starts."""
    scenario.place_warm()
    done = subprocess.run(
        command, capture_output=True, text=True, env=child_env(**scenario.env()), timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- Go ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def go_clients(tmp_path_factory) -> Path:
    """tests/go/s3clients, built offline against Debian's Go packages (no module downloads)."""
    go = shutil.which("go")
    sources = [GOCODE / "aws/aws-sdk-go-v2/service/s3", GOCODE / "minio/minio-go/v7"]
    if go is None or not all(s.is_dir() for s in sources):
        pytest.skip(f"Go or its S3 packages not installed: apt-get install -y {GO_PACKAGES}")
    workdir = tmp_path_factory.mktemp("go")
    binary = workdir / "s3clients"
    done = subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=HERE / "go" / "s3clients",
        capture_output=True,
        text=True,
        env=child_env(GO111MODULE="off", GOPATH=f"{workdir}:/usr/share/gocode"),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return binary


@pytest.mark.parametrize(
    ("client", "https"),
    over_both(
        ("aws-sdk-go-v2", "AWS SDK for Go v2", f"{STORY} (manager), presign, delete"),
        ("minio-go", "minio-go v7", f"{STORY}, presign, delete"),
        (
            "minio-go-trailing",
            "minio-go v7",
            f"TrailingHeaders (crc32c trailers, aws-chunked): {STORY}, presign, delete",
        ),
    ),
)
def test_go(go_clients, proxy, backends, bucket, tmp_path, client, https):
    scenario = Scenario.prepare(proxy, backends, bucket, tmp_path, https)
    scenario.check(run_client([str(go_clients), client], scenario))
