"""What the tests of `s3-multi check` share: the config (a primary keeping tombstones, a
fallback, a replica), running the command, and placing objects on one backend directly (never
through the proxy, unless a test says so): many at once, multipart, marked as the proxy's copies
on a replica."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from addon.local.servers import S3Server
from tests.support.direct import has_bucket
from tests.support.processes import REPO, VENV_BIN, child_env
from tests.support.proxy import backend_entry

META = "s3multi-meta-check"
MIB = 1024 * 1024
# As the proxy marks what it copies to a replica, and names the copy's original.
MARK = {"s3multi-replica": "primary"}


def check_config(
    path: Path,
    servers: Sequence[S3Server | str],
    *,
    replica: bool = True,
    migrate: str = "off",
    meta: str = META,
) -> Path:
    """primary (tombstones in `meta`), then a fallback (`migrate`), then with `replica` the
    third server as an async replica; a str is an endpoint where nothing listens."""
    entries = []
    for i, server in enumerate(servers):
        entry = backend_entry(i, server)
        if i == 0:
            entry["metaBucket"] = meta
        elif i == 1:
            entry["migrate"] = migrate
        elif replica:
            entry["replicate"] = "async"
        entries.append(entry)
    path.write_text(json.dumps({"backends": entries}))
    return path


@dataclass
class Checked:
    status: int
    out: str
    err: str

    def differences(self) -> set[tuple[str, str, str, str]]:
        """(bucket, key, kind, backend) of each JSON line but the summary."""
        found = set()
        for record in self.records():
            found.add((record["bucket"], record["key"], record["kind"], record["backend"]))
        return found

    def records(self) -> list[dict]:
        lines = [json.loads(line) for line in self.out.splitlines() if line.startswith("{")]
        return [r for r in lines if "summary" not in r]

    @property
    def summary(self) -> dict:
        last = json.loads(self.out.splitlines()[-1])
        return last["summary"]


def check_command(config: Path, *args: str) -> list[str]:
    return [str(VENV_BIN / "s3-multi"), "check", "--config", str(config), *args]


def run_check(config: Path, *args: str, timeout: float = 300) -> Checked:
    done = subprocess.run(
        check_command(config, *args),
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=REPO,
        timeout=timeout,
    )
    return Checked(done.returncode, done.stdout, done.stderr)


def start_check(config: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        check_command(config, *args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=child_env(),
        cwd=REPO,
    )


def ensure_bucket(server: S3Server, bucket: str) -> None:
    if not has_bucket(server, bucket):
        server.client().create_bucket(Bucket=bucket)


def put_many(server: S3Server, bucket: str, objects: dict[str, bytes], **described) -> None:
    """The objects on `server` alone, 16 at a time (the bucket made there if need be)."""
    ensure_bucket(server, bucket)
    s3 = server.client()

    def put(item: tuple[str, bytes]) -> None:
        s3.put_object(Bucket=bucket, Key=item[0], Body=item[1], **described)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, objects.items()))


def put_multipart(server: S3Server, bucket: str, key: str, parts: Iterable[bytes]) -> str:
    """A multipart upload of `parts`, in that layout; its ETag."""
    ensure_bucket(server, bucket)
    s3 = server.client()
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    done = []
    for number, body in enumerate(parts, 1):
        part = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=body)
        done.append({"PartNumber": number, "ETag": part["ETag"]})
    answer = s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": done}
    )
    return answer["ETag"]


def listing(server: S3Server, bucket: str) -> dict[str, str]:
    """Key -> ETag of the whole bucket on `server` ({} without the bucket)."""
    if not has_bucket(server, bucket):
        return {}
    found: dict[str, str] = {}
    for page in server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket):
        found.update({o["Key"]: o["ETag"] for o in page.get("Contents", [])})
    return found


def tombstones_of(server: S3Server, bucket: str, meta: str = META) -> dict[str, str]:
    """The bucket's tombstones in the primary's metaBucket: key -> the tombstone's ETag."""
    prefix = f"tombstones/{bucket}/"
    return {
        k.removeprefix(prefix): e for k, e in listing(server, meta).items() if k.startswith(prefix)
    }
