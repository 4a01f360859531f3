"""What the migration tests share: a config whose fallbacks migrate, and looks at what landed on
the primary (asked directly, never through the proxy)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path

from botocore.exceptions import ClientError

from addon.config.settings import Backend
from addon.local.servers import S3Server

META = "s3multi-meta-migrate"
MIB = 1024 * 1024


def migrating_config(
    path: Path, backends: Sequence[S3Server], migrate: str = "on-read", meta: str = META
) -> Path:
    """The servers in this order, the primary keeping tombstones in `meta`, every fallback
    with `migrate`."""
    entries: list[dict[str, object]] = []
    for i, server in enumerate(backends):
        entry: dict[str, object] = {
            "name": server.name,
            "access": server.access,
            "secret": server.secret,
            "endpoint": server.endpoint,
            "usePathStyle": True,
        }
        if i == 0 and meta:
            entry["metaBucket"] = meta
        elif i > 0:
            entry["migrate"] = migrate
        entries.append(entry)
    path.write_text(json.dumps({"backends": entries}))
    return path


def backend(server: S3Server, index: int, **fields) -> Backend:
    """The server as the proxy's config would make it, at `index` in the backends list."""
    return Backend(
        index, server.name, server.access, server.secret, server.endpoint, use_path_style=True,
        **fields,
    )  # fmt: skip


def head_or_none(server: S3Server, bucket: str, key: str) -> dict | None:
    try:
        return server.client().head_object(Bucket=bucket, Key=key)
    except ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 404, e
        return None


def wait_for_object(server: S3Server, bucket: str, key: str, seconds: float = 30) -> dict:
    """The object's HEAD once it is on `server`; fails the test after `seconds`."""
    deadline = time.monotonic() + seconds
    while (head := head_or_none(server, bucket, key)) is None:
        assert time.monotonic() < deadline, f"/{bucket}/{key} not on {server.name} after {seconds}s"
        time.sleep(0.05)
    return head


def stored_sha256(server: S3Server, bucket: str, key: str) -> str:
    """The SHA-256 of the object's bytes on `server`, read in pieces."""
    digest = hashlib.sha256()
    body = server.client().get_object(Bucket=bucket, Key=key)["Body"]
    for piece in body.iter_chunks(MIB):
        digest.update(piece)
    return digest.hexdigest()


def wait_for_line(log, text: str, seconds: float = 30) -> str:
    """The first line of `log()` that contains `text`, once there is one."""
    deadline = time.monotonic() + seconds
    while True:
        found = next((line for line in log().splitlines() if text in line), None)
        if found is not None:
            return found
        assert time.monotonic() < deadline, f"no log line with {text!r} after {seconds}s"
        time.sleep(0.05)
