"""SDKs of other languages through the proxy, each telling the story of
tests/support/client_scenario.py over HTTP and over HTTPS (trusting mitmproxy's CA): Go (the AWS
SDK for Go v2 and minio-go v7, built offline from Debian's packages), C++ (the AWS SDK for C++
inside pyarrow's S3FileSystem), Rust (the object_store crate inside obstore) and Ruby (the AWS
SDK for Ruby v3, Debian's)."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.client_scenario import MIB, Scenario, tell
from tests.support.processes import child_env
from tests.support.root_keys import ROOT_ACCESS, ROOT_SECRET

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
    """go/s3clients here, built offline against Debian's Go packages (no module downloads)."""
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


# --- Ruby --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client", "https"),
    over_both(("ruby", "AWS SDK for Ruby v3", f"{STORY} (upload_file), presign, delete")),
)
def test_ruby(proxy, backends, bucket, tmp_path, client, https):
    ruby = shutil.which("ruby")
    gem = [ruby, "-e", 'require "aws-sdk-s3"']
    if ruby is None or subprocess.run(gem, capture_output=True).returncode != 0:
        pytest.skip("ruby or aws-sdk-s3 not installed: apt-get install -y ruby-aws-sdk-s3")
    scenario = Scenario.prepare(proxy, backends, bucket, tmp_path, https)
    scenario.check(run_client([ruby, str(HERE / "ruby" / "aws_sdk_s3.rb")], scenario))


# --- C++: the AWS SDK for C++ inside pyarrow ---------------------------------------------------


class Pyarrow:
    """pyarrow's S3FileSystem: files and directories, so no presign."""

    def __init__(self, scenario: Scenario) -> None:
        from pyarrow import fs

        self.fs = fs
        self.s3 = fs.S3FileSystem(
            access_key=ROOT_ACCESS,
            secret_key=ROOT_SECRET,
            region="us-east-1",
            scheme="https" if scenario.https else "http",
            endpoint_override=scenario.endpoint.split("://")[1],
            tls_ca_file_path=scenario.ca_file,
            allow_bucket_creation=True,
            retry_strategy=fs.AwsStandardS3RetryStrategy(max_attempts=1),
        )
        self.bucket = scenario.bucket

    def create_bucket(self) -> None:
        self.s3.create_dir(self.bucket)

    def put(self, key: str, body: bytes) -> None:
        with self.s3.open_output_stream(f"{self.bucket}/{key}") as out:
            out.write(body)

    def upload(self, key: str, path: Path) -> None:
        with path.open("rb") as source, self.s3.open_output_stream(f"{self.bucket}/{key}") as out:
            shutil.copyfileobj(source, out, MIB)

    def get(self, key: str) -> bytes:
        with self.s3.open_input_stream(f"{self.bucket}/{key}") as source:
            return source.read()

    def download(self, key: str, path: Path) -> None:
        with self.s3.open_input_stream(f"{self.bucket}/{key}") as source, path.open("wb") as out:
            shutil.copyfileobj(source, out, MIB)

    def list(self) -> list[str]:
        infos = self.s3.get_file_info(self.fs.FileSelector(self.bucket, recursive=True))
        return [info.base_name for info in infos]

    def size(self, key: str) -> int:
        return self.s3.get_file_info(f"{self.bucket}/{key}").size

    def presign(self, key: str) -> None:
        return None

    def delete(self, key: str) -> None:
        self.s3.delete_file(f"{self.bucket}/{key}")


@pytest.mark.parametrize(
    ("client", "https"),
    over_both(("pyarrow", "AWS SDK for C++ (pyarrow S3FileSystem)", f"{STORY}, delete")),
)
def test_cpp_through_pyarrow(proxy, backends, bucket, tmp_path, client, https):
    pytest.importorskip("pyarrow.fs", reason="pyarrow not installed: pip install -e '.[dev]'")
    scenario = Scenario.prepare(proxy, backends, bucket, tmp_path, https)
    scenario.check(tell(Pyarrow(scenario), scenario), presigns=False)


@pytest.mark.client(
    "AWS SDK for C++ (pyarrow S3FileSystem)", "HTTP: create_dir of a bucket only a fallback has"
)
def test_pyarrow_writes_into_a_bucket_only_a_fallback_has(proxy, backends, bucket, tmp_path):
    """pyarrow's create_dir asks HeadBucket first: a bucket only a fallback has is there (one
    namespace), so it creates nothing; its write, answered NoSuchBucket by the primary, makes
    the proxy create the bucket there and answer 503, and the SDK's retry lands."""
    pytest.importorskip("pyarrow.fs", reason="pyarrow not installed: pip install -e '.[dev]'")
    scenario = Scenario(proxy, backends, bucket, tmp_path, https=False)
    scenario.place_warm()  # the bucket is on the secondary only, as during a migration
    client = Pyarrow(scenario)
    client.create_bucket()
    client.put("new.txt", b"to the primary")
    assert backends[0].client().get_object(Bucket=bucket, Key="new.txt")["Body"].read() == (
        b"to the primary"
    )


# --- Rust: the object_store crate inside obstore -----------------------------------------------


class Obstore:
    """obstore's S3Store. object_store has no bucket operations: boto3 makes the bucket."""

    def __init__(self, scenario: Scenario) -> None:
        import obstore
        from obstore.store import S3Store

        self.obstore = obstore
        client_options: dict = {"allow_http": not scenario.https}
        if scenario.ca_file:
            client_options["root_certificate"] = Path(scenario.ca_file).read_text()
        self.store = S3Store(
            scenario.bucket,
            endpoint=scenario.endpoint,
            access_key_id=ROOT_ACCESS,
            secret_access_key=ROOT_SECRET,
            region="us-east-1",
            virtual_hosted_style_request=False,
            client_options=client_options,
            retry_config={"max_retries": 0},
        )
        self.scenario = scenario

    def create_bucket(self) -> None:
        self.scenario.proxy.client(https=self.scenario.https).create_bucket(
            Bucket=self.scenario.bucket
        )

    def put(self, key: str, body: bytes) -> None:
        self.obstore.put(self.store, key, body)

    def upload(self, key: str, path: Path) -> None:
        self.obstore.put(self.store, key, path, use_multipart=True)

    def get(self, key: str) -> bytes:
        return bytes(self.obstore.get(self.store, key).bytes())

    def download(self, key: str, path: Path) -> None:
        with path.open("wb") as out:
            for piece in self.obstore.get(self.store, key).stream():
                out.write(piece)

    def list(self) -> list[str]:
        return [meta["path"] for page in self.obstore.list(self.store) for meta in page]

    def size(self, key: str) -> int:
        return self.obstore.head(self.store, key)["size"]

    def presign(self, key: str) -> str:
        return self.obstore.sign(self.store, "GET", key, timedelta(minutes=5))

    def delete(self, key: str) -> None:
        self.obstore.delete(self.store, key)


@pytest.mark.parametrize(
    ("client", "https"),
    over_both(("obstore", "object_store for Rust (obstore)", f"{STORY}, sign, delete")),
)
def test_rust_through_obstore(proxy, backends, bucket, tmp_path, client, https):
    pytest.importorskip("obstore", reason="obstore not installed: pip install -e '.[dev]'")
    scenario = Scenario.prepare(proxy, backends, bucket, tmp_path, https)
    scenario.check(tell(Obstore(scenario), scenario))
