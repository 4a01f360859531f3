"""A mixed S3 workload through the proxy, with an audit of every acknowledged write.

Many clients at once, each in its own thread with its own boto3 client, for a while: PUTs of
their own keys (random bytes, random sizes), GETs of what they wrote (byte for byte), GETs and
HEADs of objects only a fallback has (a third of the reads), DELETEs (a GET afterwards must be
NoSuchKey) and listings of their prefix. Anything unexpected (an exception, other bytes, a key
missing from a listing) is an error. Then, out of band, each backend is read directly: every
acknowledged write is on the primary with exactly its bytes, every deleted key is gone, and no
fallback holds anything that was written through the proxy.

Used by tests/e2e/ops/test_mixed_load.py (briefly, in CI) and by the benchmark (longer).
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from botocore.exceptions import ClientError

from tests.support.direct import client as direct_client
from tests.support.direct import put_direct

FALLBACK_KEYS = 24


@dataclass
class Tally:
    operations: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    written: dict[str, str] = field(default_factory=dict)  # key -> sha256 of what was acked
    deleted: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def error(self, what: str) -> None:
        with self.lock:
            self.errors.append(what)


def seed_fallbacks(backends, bucket: str) -> dict[str, bytes]:
    """Objects only a fallback has (half on the secondary, half on the tertiary)."""
    objects = {}
    for i in range(FALLBACK_KEYS):
        key, body = f"fallback/{i:03}", os.urandom(random.randint(1, 32 * 1024))
        put_direct(backends[1 + i % 2], bucket, key, body)
        objects[key] = body
    return objects


class _Worker:
    def __init__(self, number: int, client, bucket: str, fallbacks: dict[str, bytes], tally):
        self.prefix = f"w{number:03}/"
        self.client, self.bucket, self.fallbacks, self.tally = client, bucket, fallbacks, tally
        self.mine: dict[str, bytes] = {}
        self.gone: list[str] = []
        self.count = 0
        self.random = random.Random(number)

    def step(self) -> None:
        choice = self.random.random()
        if choice < 0.3 or not self.mine:
            self.put()
        elif choice < 0.5:
            self.get_mine()
        elif choice < 0.65:
            self.read_fallback(head=False)
        elif choice < 0.75:
            self.read_fallback(head=True)
        elif choice < 0.85:
            self.delete()
        elif choice < 0.92 and self.gone:
            self.get_deleted()
        else:
            self.list()

    def put(self) -> None:
        self.count += 1
        key = f"{self.prefix}{self.count:05}"
        size = 1024 * 1024 if self.random.random() < 0.02 else self.random.randint(0, 64 * 1024)
        body = os.urandom(size)
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body)
        self.mine[key] = body
        with self.tally.lock:
            self.tally.written[key] = hashlib.sha256(body).hexdigest()
        self.note("PUT")

    def get_mine(self) -> None:
        key = self.random.choice(list(self.mine))
        got = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        if got != self.mine[key]:
            self.tally.error(f"GET {key}: {len(got)} bytes, not the {len(self.mine[key])} put")
        self.note("GET")

    def read_fallback(self, head: bool) -> None:
        key = self.random.choice(list(self.fallbacks))
        if head:
            size = self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"]
            if size != len(self.fallbacks[key]):
                self.tally.error(f"HEAD {key}: length {size}")
            self.note("HEAD fallback")
            return
        got = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        if got != self.fallbacks[key]:
            self.tally.error(f"GET {key} from a fallback: other bytes")
        self.note("GET fallback")

    def delete(self) -> None:
        key = self.random.choice(list(self.mine))
        self.client.delete_object(Bucket=self.bucket, Key=key)
        del self.mine[key]
        self.gone.append(key)
        with self.tally.lock:
            self.tally.written.pop(key, None)
            self.tally.deleted.add(key)
        self.note("DELETE")
        self.get_deleted(key)  # the delete sticks at once

    def get_deleted(self, key: str | None = None) -> None:
        key = key or self.random.choice(self.gone)
        try:
            self.client.get_object(Bucket=self.bucket, Key=key)
            self.tally.error(f"GET {key} after its DELETE: served")
        except ClientError as e:
            if e.response["Error"]["Code"] != "NoSuchKey":
                self.tally.error(f"GET {key} after its DELETE: {e.response['Error']['Code']}")
        self.note("GET deleted")

    def list(self) -> None:
        listed = set()
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        ):
            listed |= {o["Key"] for o in page.get("Contents", [])}
        if listed != set(self.mine):
            self.tally.error(f"LIST {self.prefix}: {len(listed)} keys, {len(self.mine)} expected")
        self.note("LIST")

    def note(self, operation: str) -> None:
        with self.tally.lock:
            self.tally.operations[operation] += 1


def run(proxy, backends, bucket: str, clients: int, seconds: float) -> Tally:
    """The workload for `seconds` with `clients` threads; returns what happened."""
    direct_client(backends[0]).create_bucket(Bucket=bucket)
    fallbacks = seed_fallbacks(backends, bucket)
    tally = Tally()
    deadline = time.monotonic() + seconds
    workers = [_Worker(i, proxy.client(), bucket, fallbacks, tally) for i in range(clients)]

    def loop(worker: _Worker) -> None:
        while time.monotonic() < deadline:
            try:
                worker.step()
            except Exception as e:  # every failure counts, whatever its kind
                tally.error(f"{worker.prefix}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=loop, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tally


def audit(backends, bucket: str, tally: Tally) -> list[str]:
    """What the backends hold that they should not, read directly with their own keys."""
    problems = []
    primary = direct_client(backends[0])
    for key, digest in tally.written.items():
        body = primary.get_object(Bucket=bucket, Key=key)["Body"].read()
        if hashlib.sha256(body).hexdigest() != digest:
            problems.append(f"{key}: the primary holds other bytes than were acknowledged")
    on_primary = set()
    for page in primary.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="w"):
        on_primary |= {o["Key"] for o in page.get("Contents", [])}
    problems += [f"{key}: deleted, still on the primary" for key in tally.deleted & on_primary]
    for server in backends[1:]:
        listed = direct_client(server).list_objects_v2(Bucket=bucket, Prefix="w")
        problems += [f"{o['Key']}: written to {server.name}" for o in listed.get("Contents", [])]
    return problems
