"""Copy-on-read: a whole GET that a `migrate: on-read` fallback serves lands on the primary too,
described as it was, from the bytes the client got; it never wins against a client's write or
delete, and reads that are not the whole object (Range, HEAD) copy nothing."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading

import pytest

from addon.config.settings import Backend
from addon.migration import copy_on_read
from addon.migration.copier import Migrator
from addon.migration.copy_on_read import CopyTasks, ReadCopier, Tee
from addon.migration.source import Source
from addon.upstream.backend_client import BackendClient
from tests.support.direct import has_bucket, has_object, put_direct
from tests.support.migration import (
    MIB,
    backend,
    head_or_none,
    migrating_config,
    stored_sha256,
    wait_for_line,
    wait_for_object,
)
from tests.support.proxy import peak_rss

pytestmark = pytest.mark.e2e
RSS_BOUND_MB = 150  # as tests/e2e/upstream/test_multipart.py holds plain transfers to


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def migrating(backends, run_proxy, tmp_path_factory):
    """The proxy over the three backends, both fallbacks copying on read."""
    return run_proxy(migrating_config(tmp_path_factory.mktemp("cor") / "c.json", backends))


def on_secondary(backends, bucket: str, key: str, body: bytes, **described) -> dict:
    """The object on the secondary alone (the bucket on the primary too); its HEAD there."""
    primary, secondary, _ = backends
    for server in (primary, secondary):
        if not has_bucket(server, bucket):
            server.client().create_bucket(Bucket=bucket)
    secondary.client().put_object(Bucket=bucket, Key=key, Body=body, **described)
    return secondary.client().head_object(Bucket=bucket, Key=key)


@pytest.mark.topologies("moto", "seaweedfs-primary", "seaweedfs-fallbacks")
@pytest.mark.parametrize("size", [1000, 3 * MIB + 7], ids=["1 KB whole", "3 MiB streamed"])
def test_a_whole_read_from_the_fallback_lands_on_the_primary(migrating, backends, bucket, size):
    primary, secondary, _ = backends
    body = os.urandom(size)
    source = on_secondary(
        backends,
        bucket,
        "dir/warm.bin",
        body,
        ContentType="application/x-warm",
        ContentEncoding="identity",
        CacheControl="max-age=60",
        ContentDisposition='attachment; filename="warm.bin"',
        Metadata={"tier": "warm"},
        Tagging="source=secondary&kind=warm",
    )

    got = migrating.client().get_object(Bucket=bucket, Key="dir/warm.bin")
    assert got["Body"].read() == body  # the client's bytes, as ever

    copy = wait_for_object(primary, bucket, "dir/warm.bin")
    assert stored_sha256(primary, bucket, "dir/warm.bin") == sha(body)
    described = ("ContentType", "ContentEncoding", "CacheControl", "ContentDisposition")
    assert {k: copy.get(k) for k in described} == {k: source.get(k) for k in described}
    assert copy["Metadata"] == {"tier": "warm", "s3multi-source-etag": source["ETag"].strip('"')}
    tags = primary.client().get_object_tagging(Bucket=bucket, Key="dir/warm.bin")["TagSet"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [
        ("kind", "warm"),
        ("source", "secondary"),
    ]
    assert has_object(secondary, bucket, "dir/warm.bin")  # the source stays
    line = wait_for_line(migrating.log, f"/{bucket}/dir/warm.bin copied from secondary")
    assert f"({size} bytes" in line
    read = wait_for_line(migrating.log, f"/{bucket}/dir/warm.bin via")
    assert read.endswith("answered by secondary; copying to primary")

    again = migrating.client().get_object(Bucket=bucket, Key="dir/warm.bin")
    assert again["Body"].read() == body
    line = wait_for_line(migrating.log, f"/{bucket}/dir/warm.bin via [primary 200")
    assert line.endswith("answered by primary")  # the next read is the primary's


def test_a_bucket_only_the_fallback_has_is_made_on_the_primary(migrating, backends, bucket):
    primary, secondary, _ = backends
    put_direct(secondary, bucket, "only-here.txt", b"the old store's")
    assert migrating.client().get_object(Bucket=bucket, Key="only-here.txt")["Body"].read() == (
        b"the old store's"
    )
    wait_for_object(primary, bucket, "only-here.txt")
    assert primary.client().get_object(Bucket=bucket, Key="only-here.txt")["Body"].read() == (
        b"the old store's"
    )


def test_a_fallback_without_migrate_is_not_copied(backends, run_proxy, tmp_path, bucket):
    primary = backends[0]
    proxy = run_proxy(migrating_config(tmp_path / "c.json", backends, migrate="off"))
    on_secondary(backends, bucket, "stays.txt", b"left where it is")
    assert proxy.client().get_object(Bucket=bucket, Key="stays.txt")["Body"].read() == (
        b"left where it is"
    )
    line = next(x for x in proxy.log().splitlines() if f"/{bucket}/stays.txt via" in x)
    assert line.endswith("answered by secondary")
    assert head_or_none(primary, bucket, "stays.txt") is None


def test_range_head_and_overridden_reads_copy_nothing(migrating, backends, bucket):
    primary = backends[0]
    body = os.urandom(300_000)
    on_secondary(backends, bucket, "partial.bin", body)
    client = migrating.client()
    ranged = client.get_object(Bucket=bucket, Key="partial.bin", Range="bytes=10-99")
    assert ranged["Body"].read() == body[10:100]
    assert client.head_object(Bucket=bucket, Key="partial.bin")["ContentLength"] == len(body)
    overridden = client.get_object(
        Bucket=bucket, Key="partial.bin", ResponseContentType="text/plain"
    )
    assert overridden["Body"].read() == body
    # A whole read of another key copies: once it has landed, the reads before it would have.
    on_secondary(backends, bucket, "control.bin", b"copied")
    client.get_object(Bucket=bucket, Key="control.bin")["Body"].read()
    wait_for_line(migrating.log, f"/{bucket}/control.bin copied from secondary")
    assert head_or_none(primary, bucket, "partial.bin") is None
    lines = [x for x in migrating.log().splitlines() if f"/{bucket}/partial.bin" in x]
    assert len(lines) == 3 and not any("copying" in x for x in lines), lines


class SlowReader:
    """A GET through the proxy read a MiB at a time, paused after the first until `go` is
    set: the fallback's answer (and so the copy) cannot end before the reader goes on."""

    def __init__(self, client, bucket: str, key: str) -> None:
        self.answer = client.get_object(Bucket=bucket, Key=key)
        self.first = self.answer["Body"].read(MIB)
        self.go = threading.Event()
        self.rest = b""
        self.thread = threading.Thread(target=self._read)
        self.thread.start()

    def _read(self) -> None:
        self.go.wait(60)
        self.rest = self.answer["Body"].read()

    def finish(self) -> bytes:
        self.go.set()
        self.thread.join(60)
        return self.first + self.rest


@pytest.mark.topologies("moto", "seaweedfs-primary")
@pytest.mark.parametrize(
    ("action", "why"),
    [
        ("put", "the key was written on the primary meanwhile"),
        ("delete", "the key was deleted meanwhile"),
    ],
)
def test_a_client_write_or_delete_during_the_copy_wins(migrating, backends, bucket, action, why):
    primary = backends[0]
    key = f"contested-{action}.bin"
    body = os.urandom(40 * MIB)
    on_secondary(backends, bucket, key, body)
    client = migrating.client()
    reader = SlowReader(client, bucket, key)
    if action == "put":
        client.put_object(Bucket=bucket, Key=key, Body=b"the client's own")
    else:
        client.delete_object(Bucket=bucket, Key=key)
    assert reader.finish() == body  # the reader still gets what it started reading
    line = wait_for_line(migrating.log, f"copy-on-read of /{bucket}/{key} from")
    assert f"abandoned: {why}" in line
    if action == "put":
        stored = primary.client().get_object(Bucket=bucket, Key=key)["Body"].read()
        assert stored == b"the client's own"
    else:
        assert head_or_none(primary, bucket, key) is None
    with pytest.raises(client.exceptions.NoSuchKey):
        client.get_object(Bucket=bucket, Key="deleted.bin")


def test_a_key_deleted_before_the_read_is_not_copied(migrating, backends, bucket):
    on_secondary(backends, bucket, "gone.txt", b"deleted through the proxy")
    client = migrating.client()
    client.delete_object(Bucket=bucket, Key="gone.txt")
    with pytest.raises(client.exceptions.NoSuchKey):
        client.get_object(Bucket=bucket, Key="gone.txt")
    line = next(x for x in migrating.log().splitlines() if f"GetObject /{bucket}/gone.txt" in x)
    assert "copying" not in line
    assert head_or_none(backends[0], bucket, "gone.txt") is None


def copy_through_a_full_tee(backends, source: Source, body: bytes, before=None) -> Tee:
    """A copy whose tee was full before it started (a client far faster than the primary):
    every byte of the answer fed at once, in 256 KiB pieces, into a 1 MiB budget; `before()`
    runs once they are, before the copy."""
    primary = backend(backends[0], 0)
    tee = Tee(source, budget=MIB)
    for start in range(0, len(body), 256 * 1024):
        tee.feed(body[start : start + 256 * 1024])
    tee.feed(b"")
    tee.cut()  # the client's transfer is over: the copy still goes on
    if before is not None:
        before()

    async def run() -> None:
        client = BackendClient()
        try:
            copier = ReadCopier(Migrator(client, primary), CopyTasks())
            await copier.run(tee, create_bucket_first=False)
        finally:
            client.close()

    asyncio.run(run())
    return tee


@pytest.mark.topologies("moto", "seaweedfs-fallbacks")
def test_a_primary_behind_the_client_gets_the_rest_from_the_fallback(backends, bucket):
    primary, secondary, _ = backends
    body = os.urandom(3 * MIB + 5)
    head = on_secondary(backends, bucket, "fast.bin", body)
    pairs = [("content-length", str(len(body))), ("etag", head["ETag"])]
    source = Source.of(backend(secondary, 1), bucket, "fast.bin", pairs)
    assert source is not None
    assert copy_through_a_full_tee(backends, source, body).behind
    assert stored_sha256(primary, bucket, "fast.bin") == sha(body)

    # The rest is read If-Match the ETag the client got: an object changed since is not mixed in
    # (the source a multipart upload: its ETag is no MD5 the bytes could be checked against).
    parts = [os.urandom(5 * MIB), os.urandom(MIB)]
    s3 = secondary.client()
    upload = s3.create_multipart_upload(Bucket=bucket, Key="changed.bin")["UploadId"]
    etags = [
        s3.upload_part(Bucket=bucket, Key="changed.bin", UploadId=upload, PartNumber=n, Body=part)
        for n, part in enumerate(parts, 1)
    ]
    done = [{"PartNumber": n, "ETag": e["ETag"]} for n, e in enumerate(etags, 1)]
    s3.complete_multipart_upload(
        Bucket=bucket, Key="changed.bin", UploadId=upload, MultipartUpload={"Parts": done}
    )
    first = b"".join(parts)
    etag = s3.head_object(Bucket=bucket, Key="changed.bin")["ETag"]
    assert etag.endswith('-2"')
    pairs = [("content-length", str(len(first))), ("etag", etag)]
    source = Source.of(backend(secondary, 1), bucket, "changed.bin", pairs)
    assert source is not None

    def overwrite() -> None:
        s3.put_object(Bucket=bucket, Key="changed.bin", Body=os.urandom(len(first)))

    assert copy_through_a_full_tee(backends, source, first, before=overwrite).behind
    assert head_or_none(primary, bucket, "changed.bin") is None


@pytest.mark.slow
def test_copy_on_read_of_256_mib_in_bounded_memory(migrating, backends, bucket):
    primary = backends[0]
    block = os.urandom(MIB)
    size = 256 * MIB
    body = b"".join(i.to_bytes(4, "big") + block[4:] for i in range(256))  # no two MiB alike
    on_secondary(backends, bucket, "large.bin", body)
    client = migrating.client()
    received = hashlib.sha256()
    with peak_rss(migrating) as peak:
        for piece in client.get_object(Bucket=bucket, Key="large.bin")["Body"].iter_chunks(MIB):
            received.update(piece)
        wait_for_line(migrating.log, f"/{bucket}/large.bin copied from secondary", seconds=120)
    assert received.hexdigest() == sha(body)
    copy = wait_for_object(primary, bucket, "large.bin")
    assert copy["ContentLength"] == size and copy["ETag"].endswith('-16"')  # 16 MiB parts
    assert stored_sha256(primary, bucket, "large.bin") == sha(body)
    assert peak[0] < RSS_BOUND_MB, peak


def backend_of_nowhere() -> Backend:
    """A fallback these tests never reach: their `rest` stands for its ranged GET."""
    return Backend(1, "old", "AK", "SK", "http://127.0.0.1:9", use_path_style=True)


def test_a_copy_behind_the_client_reads_the_rest_once_the_client_has_its_bytes():
    """Not both at once: the rest's GET waits for the client's transfer to end (or REST_WAIT)."""
    source = Source.of(backend_of_nowhere(), "b", "k", [("content-length", "40"), ("etag", '"x"')])
    assert source is not None
    asked: list[int] = []

    async def rest(offset: int):
        asked.append(offset)
        yield b"r" * (40 - offset)

    async def run() -> bytes:
        tee = Tee(source, budget=10)
        tee.feed(b"a" * 8)
        tee.feed(b"b" * 8)  # over the budget: behind, not taken
        got = []
        pieces = tee.pieces(5.0, rest)
        got.append(await anext(pieces))
        reading = asyncio.ensure_future(anext(pieces))
        await asyncio.sleep(0.2)
        assert not reading.done() and asked == []  # the client is still being served
        tee.feed(b"c" * 8)
        tee.feed(b"")  # its transfer is over
        got.append(await reading)
        got += [piece async for piece in pieces]
        return b"".join(got)

    assert asyncio.run(run()) == b"a" * 8 + b"r" * 32
    assert asked == [8]


def test_a_copy_behind_a_slow_client_reads_the_rest_after_rest_wait(monkeypatch):
    monkeypatch.setattr(copy_on_read, "REST_WAIT", 0.3)
    source = Source.of(backend_of_nowhere(), "b", "k", [("content-length", "20"), ("etag", '"x"')])
    assert source is not None

    async def rest(offset: int):
        yield b"r" * (20 - offset)

    async def run() -> tuple[bytes, float]:
        tee = Tee(source, budget=10)
        tee.feed(b"a" * 8)
        tee.feed(b"b" * 8)
        began = asyncio.get_running_loop().time()
        body = b"".join([piece async for piece in tee.pieces(5.0, rest)])
        return body, asyncio.get_running_loop().time() - began

    body, waited = asyncio.run(run())  # the client never ends: the primary is not kept waiting
    assert body == b"a" * 8 + b"r" * 12
    assert 0.3 <= waited < 3
