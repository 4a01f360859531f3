"""addon.migration on real servers, in-process: the copy never lands over a client's write or
a delete, however they interleave with it, and never lands bytes that do not check out; a
delete removes a copy that landed behind it. The interleavings are made exact by running the
client's write or delete right after a given request of the copy's (`Interleaved`)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os

import pytest

from addon.migration import copier, object_copy
from addon.migration import source as copy_source
from addon.migration.copier import Migrator
from addon.migration.source import Abandoned, CopyFailed, Source, part_sizes
from addon.namespace.tombstones import Tombstones, key_of
from addon.upstream.backend_client import BackendClient, BackendError
from tests.support.direct import put_direct
from tests.support.migration import META, MIB, backend, head_or_none, stored_sha256

pytestmark = pytest.mark.e2e


class Interleaved(BackendClient):
    """A BackendClient that runs `after(method, backend name, key path, query, status)` once
    each request of the copy's is answered, before the copy goes on; a request `lose(method,
    query)` is true of fails as a lost connection does, without reaching the backend."""

    def __init__(self, after, lose) -> None:
        super().__init__()
        self.after = after
        self.lose = lose

    @contextlib.asynccontextmanager
    async def request(self, backend, method, bucket, key_path="", query="", *args, **kwargs):
        if self.lose(method, query):
            raise BackendError("the connection was lost")
        async with super().request(
            backend, method, bucket, key_path, query, *args, **kwargs
        ) as reply:
            yield reply
        self.after(method, backend.name, key_path, query, reply.status)


async def pieces(body: bytes, size: int = MIB):
    for start in range(0, len(body), size):
        yield body[start : start + size]


def copy(
    backends, bucket: str, key: str, body: bytes, after=None, sent: bytes | None = None, lose=None
):
    """Copy `body`, placed on the secondary, to the primary through a Migrator; `sent` is what
    the copy reads instead (bytes that are not the source's)."""
    primary, secondary = backend(backends[0], 0, meta_bucket=META), backend(backends[1], 1)
    put_direct(backends[0], bucket, "placeholder", b"")  # the bucket on the primary too
    put_direct(backends[1], bucket, key, body)
    head = backends[1].client().head_object(Bucket=bucket, Key=key)
    headers = [("content-length", str(len(body))), ("etag", head["ETag"])]
    source = Source.of(secondary, bucket, key, headers)
    assert source is not None

    async def run():
        client = Interleaved(after or (lambda *answered: None), lose or (lambda *sent: False))
        try:
            migrator = Migrator(client, primary, Tombstones(primary, (secondary,), client))
            return await migrator.copy(source, pieces(body if sent is None else sent))
        finally:
            client.close()

    return asyncio.run(run())


@pytest.fixture
def small_parts(monkeypatch):
    """Multipart from 5 MiB on, in 5 MiB parts (S3's least), so that a few MiB take parts."""
    monkeypatch.setattr(copy_source, "PART_SIZE", 5 * MIB)
    monkeypatch.setattr(copier, "MULTIPART_FROM", 5 * MIB)


@pytest.fixture(params=["one PUT", "multipart"])
def shape(request):
    if request.param == "multipart":
        request.getfixturevalue("small_parts")
    return request.param


def test_part_sizes_hold_any_object_in_10000_parts() -> None:
    assert part_sizes(64 * MIB) == [16 * MIB] * 4
    assert part_sizes(40 * MIB + 1) == [16 * MIB, 16 * MIB, 8 * MIB + 1]
    huge = part_sizes(5 * 1024**4)  # 5 TiB, S3's largest object
    assert len(huge) <= 10_000 and sum(huge) == 5 * 1024**4 and huge[0] % MIB == 0


@pytest.mark.topologies("moto", "seaweedfs-primary")
def test_a_copy_lands_with_the_bytes_and_the_etag_of_what_was_sent(backends, bucket, shape):
    body = os.urandom(12 * MIB + 3)
    copied = copy(backends, bucket, "k.bin", body)
    assert stored_sha256(backends[0], bucket, "k.bin") == hashlib.sha256(body).hexdigest()
    stored = backends[0].client().head_object(Bucket=bucket, Key="k.bin")
    assert stored["ETag"] == copied.etag
    assert stored["ETag"].endswith('-3"') if shape == "multipart" else "-" not in stored["ETag"]
    assert copied.md5 == hashlib.md5(body).hexdigest()


@pytest.mark.topologies("moto", "seaweedfs-primary")
def test_a_write_after_the_last_look_still_wins(backends, bucket, shape):
    """The client's PUT lands between the copy's HEAD (the key is free) and its last step:
    the conditional write (If-None-Match: *) is what stops the copy."""
    primary = backends[0]

    def after(method, name, key_path, query, status):
        if (method, name, key_path, status) == ("HEAD", primary.name, "k.bin", 404):
            primary.client().put_object(Bucket=bucket, Key="k.bin", Body=b"the client's")

    with pytest.raises(Abandoned, match="written on the primary meanwhile"):
        copy(backends, bucket, "k.bin", os.urandom(11 * MIB), after)
    assert primary.client().get_object(Bucket=bucket, Key="k.bin")["Body"].read() == (
        b"the client's"
    )
    assert not primary.client().list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_a_delete_while_the_copy_lands_removes_it(backends, bucket, shape):
    """Another instance's delete wrote its tombstone just after the copy landed (and had not
    yet looked for the copy): the copy sees the tombstone and removes itself."""
    primary = backends[0]

    def after(method, name, key_path, query, status):
        # The PUT of the object, or the CompleteMultipartUpload: what makes it appear.
        complete = method == "POST" and query.startswith("uploadId")
        landed = (method, query) == ("PUT", "") or complete
        if landed and name == primary.name and key_path == "k.bin" and status == 200:
            etag = backends[1].client().head_object(Bucket=bucket, Key="k.bin")["ETag"]
            tombstone = json.dumps({"hides": {backends[1].name: etag}})
            put_direct(primary, META, key_of(bucket, "k.bin"), tombstone.encode())

    with pytest.raises(Abandoned, match="deleted while the copy landed"):
        copy(backends, bucket, "k.bin", os.urandom(11 * MIB), after)
    assert head_or_none(primary, bucket, "k.bin") is None


@pytest.mark.parametrize("fault", ["other bytes", "too few", "too many"])
def test_bytes_that_are_not_the_sources_never_land(backends, bucket, shape, fault):
    body = os.urandom(11 * MIB)
    sent = {
        "other bytes": body[:-1] + bytes([body[-1] ^ 1]),
        "too few": body[:-1],
        "too many": body + b"!",
    }[fault]
    with pytest.raises(CopyFailed):
        copy(backends, bucket, "k.bin", body, sent=sent)
    assert head_or_none(backends[0], bucket, "k.bin") is None
    assert not backends[0].client().list_multipart_uploads(Bucket=bucket).get("Uploads")


@pytest.mark.parametrize("lost", [1, len(object_copy._ABORT_PAUSES)])
def test_an_abort_that_fails_is_tried_again(backends, bucket, small_parts, lost, caplog):
    """A failed multipart copy is aborted again when an abort fails (S3 says one may not
    suffice); when every try fails, the log names the upload left on the primary."""
    aborts = []

    def lose(method, query):
        if method != "DELETE" or "uploadId=" not in query:
            return False
        aborts.append(query)
        return len(aborts) <= lost

    with pytest.raises(CopyFailed):
        copy(backends, bucket, "k.bin", os.urandom(11 * MIB), sent=b"too few", lose=lose)
    uploads = backends[0].client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    if lost < len(object_copy._ABORT_PAUSES):
        assert (len(aborts), uploads) == (lost + 1, [])
    else:
        assert len(aborts) == lost and [u["Key"] for u in uploads] == ["k.bin"]
        assert f"could not abort the multipart upload {uploads[0]['UploadId']}" in caplog.text


def test_a_delete_removes_a_copy_that_landed_behind_it(backends, bucket):
    """The converse: the copy landed after the delete reached the primary and before the copy
    could see the tombstone; the delete, once its tombstone is written, finds the copy."""
    primary_server, secondary_server = backends[0], backends[1]
    put_direct(secondary_server, bucket, "landed.txt", b"old")
    put_direct(secondary_server, bucket, "client.txt", b"old")
    etag = secondary_server.client().head_object(Bucket=bucket, Key="landed.txt")["ETag"]
    put_direct(primary_server, bucket, "placeholder", b"")
    primary_server.client().put_object(
        Bucket=bucket, Key="landed.txt", Body=b"old", Metadata={"s3multi-source-etag": etag}
    )
    primary_server.client().put_object(Bucket=bucket, Key="client.txt", Body=b"a new one")
    primary, secondary = backend(primary_server, 0, meta_bucket=META), backend(secondary_server, 1)

    async def bury():
        client = BackendClient()
        try:
            tombstones = Tombstones(primary, (secondary,), client)
            await tombstones.bury(bucket, ["landed.txt", "client.txt"])
        finally:
            client.close()

    asyncio.run(bury())
    assert head_or_none(primary_server, bucket, "landed.txt") is None
    assert head_or_none(primary_server, bucket, "client.txt") is not None  # a client's write
