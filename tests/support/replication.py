"""What the replication tests share: a config with replicas, and looks at what a backend holds
(asked directly, with its own keys)."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from botocore.exceptions import ClientError

from addon.local.servers import S3Server
from tests.support.proxy import Proxy

META = "s3multi-meta-repl"


# The settings of a replicated proxy over the session's shared backends, which every other test
# writes too: no reconciliation, which would copy every bucket of the primary to the replicas
# (and load the machine) for as long as the proxy runs.
SHARED_BACKENDS = {"reconcileInterval": 0}


def replicated_config(
    path: Path,
    primary: S3Server,
    replicas: Sequence[tuple[S3Server, str]],
    settings: dict | None = None,
    **fields,
) -> Path:
    """The primary (keeping its records in META) and each (server, replicate mode) after it;
    `fields` go into every backend, `settings` beside them."""
    entries = []
    for i, (server, mode) in enumerate([(primary, ""), *replicas]):
        entry = {
            "name": server.name,
            "access": server.access,
            "secret": server.secret,
            "endpoint": server.endpoint,
            "usePathStyle": True,
            **fields,
        }
        if i == 0:
            entry["metaBucket"] = META
        elif mode != "off":
            entry["replicate"] = mode
        entries.append(entry)
    path.write_text(json.dumps({"backends": entries, **(settings or {})}))
    return path


def eventually(check: Callable[[], object], seconds: float = 30, every: float = 0.05) -> object:
    """`check()`'s first true value; fails the test after `seconds`, with its last value."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"not so after {seconds}s: {value!r}"
        time.sleep(every)


def body_or_none(server: S3Server, bucket: str, key: str) -> bytes | None:
    """The object's bytes on `server`, None when it has no such key (or bucket)."""
    try:
        return server.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 404, e
        return None


def etag_or_none(server: S3Server, bucket: str, key: str) -> str | None:
    try:
        return server.client().head_object(Bucket=bucket, Key=key)["ETag"]
    except ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 404, e
        return None


def tags_on(server: S3Server, bucket: str, key: str) -> list[tuple[str, str]]:
    tags = server.client().get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
    return sorted((t["Key"], t["Value"]) for t in tags)


def listed(server: S3Server, bucket: str) -> dict[str, str]:
    """Every key of the bucket on `server` and its ETag ({} without the bucket)."""
    found: dict[str, str] = {}
    paginator = server.client().get_paginator("list_objects_v2")
    try:
        for page in paginator.paginate(Bucket=bucket):
            found.update({o["Key"]: o["ETag"] for o in page.get("Contents", [])})
    except ClientError as e:
        assert e.response["Error"]["Code"] == "NoSuchBucket", e
    return found


def stop_handing_over(proxy: Proxy) -> None:
    """Stop a replicated proxy as a service manager does (SIGTERM): its drain writes what it
    holds to the outbox and gives its leases back, so the next proxy on these backends need
    not wait for them to expire."""
    if proxy.process.poll() is None:
        proxy.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proxy.process.wait(timeout=45)
    proxy.stop()


def shared_gateway(backends: Sequence[S3Server], run_proxy, path: Path) -> Iterator[Proxy]:
    """A module's proxy over the session's shared backends: the primary, then an async and a
    sync replica, without reconciliation; stopped with the module, handing its leases over."""
    primary, asynchronous, synchronous = backends
    replicas = [(asynchronous, "async"), (synchronous, "sync")]
    proxy = run_proxy(replicated_config(path / "c.json", primary, replicas, SHARED_BACKENDS))
    yield proxy
    stop_handing_over(proxy)
