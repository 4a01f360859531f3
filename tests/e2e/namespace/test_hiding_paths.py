"""One hiding rule on real servers: keys deleted through the proxy, one a single PUT and one a
multipart upload, stay hidden on every path that could bring a fallback's copy back (a read, a
listing, a copy whose source they are, copy-on-read, the drain of `s3-multi migrate`, the
pruner), with the ETags in the forms the servers give: the quoted header ETag the delete's HEAD
recorded, moto's listing ETag, SeaweedFS's `&#34;` listing form; and with the tombstone's ETags
in another form (unquoted, upper case) than the answers'. A key the delete did not touch stays
visible on every path."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess

import pytest
from botocore.exceptions import ClientError

from addon.migration.copier import Migrator
from addon.migration.source import Abandoned, Source
from addon.namespace.tombstones import Tombstones, key_of
from addon.upstream.backend_client import BackendClient
from tests.support.direct import has_object, put_direct
from tests.support.migration import META, MIB, backend, migrating_config
from tests.support.processes import REPO, VENV_BIN, child_env

pytestmark = [pytest.mark.e2e, pytest.mark.topologies("moto", "seaweedfs-fallbacks")]
GONE = ("gone.txt", "gone.bin")  # deleted through the proxy: a single PUT, a multipart upload
FORMS = {
    "recorded": lambda etag: etag,  # as the delete's HEAD got it
    "unquoted-upper": lambda etag: etag.strip('"').upper(),  # as another writer might put it
}


@pytest.fixture(scope="module")
def setup(backends, run_proxy, tmp_path_factory):
    path = migrating_config(tmp_path_factory.mktemp("hiding") / "c.json", backends, "off")
    return path, run_proxy(path)


def code(call) -> str:
    """The S3 error code (or, for a HEAD, the status) a call through the proxy failed with."""
    with pytest.raises(ClientError) as failed:
        call()
    error = failed.value.response
    return error["Error"].get("Code") or str(error["ResponseMetadata"]["HTTPStatusCode"])


def command(*args: str) -> str:
    done = subprocess.run(
        [str(VENV_BIN / "s3-multi"), *args],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def place(backends, bucket: str) -> None:
    """On the secondary: gone.txt (one PUT), gone.bin (two parts, an ETag ending in -2) and
    kept.txt; the bucket on the primary, empty."""
    backends[0].client().create_bucket(Bucket=bucket)
    put_direct(backends[1], bucket, "gone.txt", b"a copy a delete hides")
    put_direct(backends[1], bucket, "kept.txt", b"never deleted")
    s3 = backends[1].client()
    upload = s3.create_multipart_upload(Bucket=bucket, Key="gone.bin")["UploadId"]
    parts = []
    for number, body in enumerate((os.urandom(5 * MIB), b"the last part"), 1):
        answer = s3.upload_part(
            Bucket=bucket, Key="gone.bin", UploadId=upload, PartNumber=number, Body=body
        )
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
    s3.complete_multipart_upload(
        Bucket=bucket, Key="gone.bin", UploadId=upload, MultipartUpload={"Parts": parts}
    )
    assert s3.head_object(Bucket=bucket, Key="gone.bin")["ETag"].endswith('-2"')


def reform(primary, bucket: str, form) -> dict[str, str]:
    """Each tombstone's ETags put in `form`; the ETag each hides (as written), by key."""
    meta = primary.client()
    recorded = {}
    for key in GONE:
        stored = meta.get_object(Bucket=META, Key=key_of(bucket, key))["Body"].read()
        document = json.loads(stored)
        document["hides"] = {name: form(etag) for name, etag in document["hides"].items()}
        put_direct(primary, META, key_of(bucket, key), json.dumps(document).encode())
        recorded[key] = next(iter(document["hides"].values()))
    return recorded


def copy_on_read(backends, bucket: str, key: str) -> str:
    """The copier, as copy-on-read runs it, given a fallback's GET of `key`: what became of it."""
    primary = backend(backends[0], 0, meta_bucket=META)
    secondary = backend(backends[1], 1)
    got = backends[1].client().get_object(Bucket=bucket, Key=key)
    body = got["Body"].read()
    headers = [("content-length", str(len(body))), ("etag", got["ETag"])]
    source = Source.of(secondary, bucket, key, headers)
    assert source is not None

    async def pieces():
        yield body

    async def run() -> str:
        client = BackendClient()
        try:
            migrator = Migrator(client, primary, Tombstones(primary, (secondary,), client))
            await migrator.copy(source, pieces())
            return "copied"
        except Abandoned as e:
            return str(e)
        finally:
            client.close()

    return asyncio.run(run())


@pytest.mark.parametrize("form", list(FORMS))
def test_every_path_hides_what_a_delete_hid(setup, backends, bucket, form):
    config, proxy = setup
    primary, secondary, _ = backends
    place(backends, bucket)
    client = proxy.client()
    for key in GONE:
        client.delete_object(Bucket=bucket, Key=key)
    recorded = reform(primary, bucket, FORMS[form])

    for key in GONE:  # the read fallback
        assert code(lambda k=key: client.get_object(Bucket=bucket, Key=k)) == "NoSuchKey"
        assert code(lambda k=key: client.head_object(Bucket=bucket, Key=k)) == "404"
    listed = client.list_objects_v2(Bucket=bucket)  # the merged listing
    assert [o["Key"] for o in listed["Contents"]] == ["kept.txt"]
    for key in GONE:  # a copy whose source only a fallback has
        copied = lambda k=key: client.copy_object(  # noqa: E731
            Bucket=bucket, Key=f"copy-of-{k}", CopySource={"Bucket": bucket, "Key": k}
        )
        assert code(copied) == "NoSuchKey"
    client.copy_object(
        Bucket=bucket, Key="copy-of-kept.txt", CopySource={"Bucket": bucket, "Key": "kept.txt"}
    )
    assert copy_on_read(backends, bucket, "gone.txt") == "the key was deleted meanwhile"
    drained = command("migrate", "--config", str(config), "--bucket", bucket)  # the drain
    assert "skipped: 2 deleted (tombstone)" in drained, drained
    assert not any(has_object(primary, bucket, key) for key in GONE)
    assert has_object(primary, bucket, "kept.txt")  # copied by the drain
    reviewed = command("tombstones", "--config", str(config))  # the pruner
    for key in GONE:
        assert f"{bucket}/{key}: hides {secondary.name} {recorded[key]}" in reviewed
    assert has_object(secondary, bucket, "gone.txt") and has_object(secondary, bucket, "gone.bin")
