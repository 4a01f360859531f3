"""One story for the SDKs of other languages (Go, C++, Rust, Ruby), told the same way by each
client's program through the proxy, then checked here from the client's report and on every
backend directly.

The client, in this order: creates the bucket; puts `small.txt` (SMALL) and `gone.txt`;
uploads `WORKDIR/large.bin` (21 MiB, multipart) as `large.bin`; reads `small.txt` back and
downloads `large.bin` to `WORKDIR/large.back`; lists the bucket; HEADs `small.txt`; reads
`warm.txt`, which only the secondary has; presigns a GET of `small.txt` where it can; deletes
`gone.txt`. Its report: `{"small", "listed", "size", "warm", "presigned"}`.
"""

from __future__ import annotations

import hashlib
import os
import re
import ssl
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tests.support.direct import has_bucket, has_object, put_direct
from tests.support.files import file_sha256
from tests.support.proxy import Proxy
from tests.support.root_keys import ROOT_ACCESS, ROOT_SECRET

MIB = 1024 * 1024
SMALL = "small object, read back byte for byte"
WARM = b"only the secondary has this"
LARGE_SIZE = 21 * MIB + 7


@dataclass
class Scenario:
    proxy: Proxy
    backends: list
    bucket: str
    workdir: Path
    https: bool

    @classmethod
    def prepare(cls, proxy: Proxy, backends: list, bucket: str, workdir: Path, https: bool):
        """The large file to upload."""
        with (workdir / "large.bin").open("wb") as f:
            for _ in range(LARGE_SIZE // MIB):
                f.write(os.urandom(MIB))
            f.write(os.urandom(LARGE_SIZE % MIB))
        return cls(proxy, backends, bucket, workdir, https)

    def place_warm(self) -> None:
        """The object only the secondary has (in a bucket of the same name)."""
        put_direct(self.backends[1], self.bucket, "warm.txt", WARM)

    @property
    def endpoint(self) -> str:
        return self.proxy.https_endpoint if self.https else self.proxy.endpoint

    @property
    def ca_file(self) -> str | None:
        return self.proxy.ca_file if self.https else None

    def env(self) -> dict[str, str]:
        """The settings a client program reads from its environment."""
        env = {
            "ENDPOINT": self.endpoint,
            "ACCESS": ROOT_ACCESS,
            "SECRET": ROOT_SECRET,
            "BUCKET": self.bucket,
            "WORKDIR": str(self.workdir),
            "SMALL": SMALL,
        }
        return {**env, "CA_FILE": self.ca_file} if self.ca_file else env

    def check(self, report: dict, presigns: bool = True) -> None:
        """What the client saw, then where the bytes are on each backend."""
        primary, secondary, tertiary = self.backends
        assert report["small"] == SMALL
        assert report["size"] == len(SMALL)
        # Listed: every backend's keys, the secondary's warm.txt too (gone.txt is deleted later).
        assert report["listed"] == ["gone.txt", "large.bin", "small.txt", "warm.txt"]
        assert report["warm"] == WARM.decode()
        large = self.workdir / "large.bin"
        assert file_sha256(self.workdir / "large.back") == file_sha256(large)
        if presigns:
            context = ssl.create_default_context(cafile=self.ca_file) if self.https else None
            with urllib.request.urlopen(report["presigned"], timeout=10, context=context) as got:
                assert got.read() == SMALL.encode()

        stored = primary.client().get_object(Bucket=self.bucket, Key="large.bin")
        parts = re.search(r'-(\d+)"$', stored["ETag"])
        assert parts and int(parts[1]) > 1, stored["ETag"]  # a multipart upload
        digest = hashlib.sha256()
        for piece in stored["Body"].iter_chunks(MIB):
            digest.update(piece)
        assert digest.hexdigest() == file_sha256(large)  # no framing stored
        small = primary.client().get_object(Bucket=self.bucket, Key="small.txt")
        assert small["Body"].read() == SMALL.encode()
        assert not has_object(primary, self.bucket, "gone.txt")
        listing = secondary.client().list_objects_v2(Bucket=self.bucket)
        assert [o["Key"] for o in listing["Contents"]] == ["warm.txt"]  # no write reached it
        assert not has_bucket(tertiary, self.bucket)


class StoryClient(Protocol):
    """A client driven in this process (pyarrow, obstore): the steps of the story."""

    def create_bucket(self) -> None: ...
    def put(self, key: str, body: bytes) -> None: ...
    def upload(self, key: str, path: Path) -> None: ...  # multipart
    def get(self, key: str) -> bytes: ...
    def download(self, key: str, path: Path) -> None: ...
    def list(self) -> list[str]: ...
    def size(self, key: str) -> int: ...  # HEAD
    def presign(self, key: str) -> str | None: ...  # None: the client cannot
    def delete(self, key: str) -> None: ...


def tell(client: StoryClient, scenario: Scenario) -> dict:
    """The story, told by a client in this process; its report. The secondary gets its object
    once the client has made the bucket (see test_sdk_clients: pyarrow checks first)."""
    workdir = scenario.workdir
    client.create_bucket()
    scenario.place_warm()
    client.put("small.txt", SMALL.encode())
    client.put("gone.txt", b"to be deleted")
    client.upload("large.bin", workdir / "large.bin")
    report: dict = {"small": client.get("small.txt").decode()}
    client.download("large.bin", workdir / "large.back")
    report["listed"] = sorted(client.list())
    report["size"] = client.size("small.txt")
    report["warm"] = client.get("warm.txt").decode()
    report["presigned"] = client.presign("small.txt")
    client.delete("gone.txt")
    return report
