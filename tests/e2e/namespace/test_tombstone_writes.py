"""Tombstones off the write path, on each kind of primary: a write through the proxy is one
request to the primary and none to its metaBucket (a metaBucket that fails does not fail a
write); what a delete hid stays hidden after the key is written again (the new object served
meanwhile), whether the key then goes through the proxy or on the primary directly; a PUT and a
DELETE of one key racing never bring the fallback's copy back; the pruner keeps a tombstone
written after it reviewed the key's, and refuses to prune on a primary that ignores If-Match.

Between the proxy (and the commands) and the primary sits a relay (tests/support/relay.py) that
counts what the primary receives, and answers or holds back what a test says."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError

from addon.namespace.tombstones import key_of
from tests.support.direct import has_object, put_direct
from tests.support.processes import REPO, VENV_BIN, child_env
from tests.support.relay import Passed, Relay
from tests.support.topologies import EACH_PRIMARY

pytestmark = [pytest.mark.e2e, pytest.mark.topologies(*EACH_PRIMARY)]
META = "s3multi-meta-writes"
OLD, NEW = b"a fallback's copy, deleted through the proxy", b"written again through the proxy"
ROUNDS = 90  # keys raced, each by one PUT and one DELETE


@pytest.fixture(scope="module")
def relayed(backends, run_proxy, tmp_path_factory):
    """The relay in front of the primary, and a proxy (and its config, for the commands) that
    reach the primary through it."""
    with Relay(backends[0]) as relay:
        servers = [relay, *backends[1:]]
        entries = [
            {"name": s.name, "access": s.access, "secret": s.secret, "endpoint": s.endpoint,
             "usePathStyle": True}
            for s in servers
        ]  # fmt: skip
        entries[0]["metaBucket"] = META
        path = tmp_path_factory.mktemp("writes") / "c.json"
        path.write_text(json.dumps({"backends": entries}))
        yield relay, run_proxy(path), path
        relay.reset()


@pytest.fixture
def relay(relayed):
    relay = relayed[0]
    relay.reset()
    yield relay
    relay.reset()


def to_meta(request: Passed) -> bool:
    return request.bucket == META


def missing(call) -> bool:
    """True if the call through the proxy fails with NoSuchKey (or a HEAD's 404)."""
    try:
        call()
    except ClientError as e:
        error = e.response
        assert error["Error"].get("Code") in ("NoSuchKey", "404"), error
        return True
    return False


def tombstones(config, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "s3-multi"), "tombstones", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=REPO,
        timeout=120,
    )


def deleted_with_a_fallback_copy(client, backends, bucket: str, *keys: str) -> None:
    """The bucket on the primary; each key on the secondary only, then deleted through the
    proxy: a tombstone hides it."""
    backends[0].client().create_bucket(Bucket=bucket)
    for key in keys:
        put_direct(backends[1], bucket, key, OLD)
        client.delete_object(Bucket=bucket, Key=key)
        assert has_object(backends[0], META, key_of(bucket, key))


# --- one request per write ------------------------------------------------------------------------


def test_a_write_is_one_request_to_the_primary_and_none_to_its_meta_bucket(
    relay, relayed, backends, bucket
):
    _, proxy, _ = relayed
    client = proxy.client()
    deleted_with_a_fallback_copy(client, backends, bucket, "k.txt", "copied.txt", "parts.bin")

    def sent(call) -> list[tuple[str, str, str]]:
        relay.clear()
        call()
        time.sleep(0.2)  # anything the write set off after its answer would be in by now
        return [(r.method, r.bucket, r.key) for r in relay.passed()]

    put = lambda: client.put_object(Bucket=bucket, Key="k.txt", Body=NEW)  # noqa: E731
    assert sent(put) == [("PUT", bucket, "k.txt")]
    fresh = lambda: client.put_object(Bucket=bucket, Key="never-deleted", Body=NEW)  # noqa: E731
    assert sent(fresh) == [("PUT", bucket, "never-deleted")]
    source = {"Bucket": bucket, "Key": "k.txt"}
    copy = lambda: client.copy_object(Bucket=bucket, Key="copied.txt", CopySource=source)  # noqa: E731
    assert sent(copy) == [("PUT", bucket, "copied.txt")]
    upload = client.create_multipart_upload(Bucket=bucket, Key="parts.bin")["UploadId"]
    part = client.upload_part(
        Bucket=bucket, Key="parts.bin", UploadId=upload, PartNumber=1, Body=NEW
    )
    parts = {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
    complete = lambda: client.complete_multipart_upload(  # noqa: E731
        Bucket=bucket, Key="parts.bin", UploadId=upload, MultipartUpload=parts
    )
    assert sent(complete) == [("POST", bucket, "parts.bin")]
    for key in ("k.txt", "copied.txt", "parts.bin"):
        assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == NEW
        assert has_object(backends[0], META, key_of(bucket, key))  # stays, hiding nothing here


def test_a_meta_bucket_that_fails_does_not_fail_a_write(relay, relayed, backends, bucket):
    _, proxy, _ = relayed
    client = proxy.client()
    deleted_with_a_fallback_copy(client, backends, bucket, "k.txt")
    relay.answer(to_meta, 500)
    client.put_object(Bucket=bucket, Key="k.txt", Body=NEW)
    client.copy_object(Bucket=bucket, Key="copy.txt", CopySource={"Bucket": bucket, "Key": "k.txt"})
    assert backends[0].client().get_object(Bucket=bucket, Key="copy.txt")["Body"].read() == NEW
    # A delete still needs it: a delete that did not stick must not look as if it had.
    with pytest.raises(ClientError) as failed:
        client.delete_object(Bucket=bucket, Key="k.txt")
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503


# --- what a delete hid stays hidden ---------------------------------------------------------------


def test_a_key_written_again_is_served_and_deleting_it_again_hides_the_copy_again(
    relay, relayed, backends, bucket
):
    _, proxy, _ = relayed
    client = proxy.client()
    deleted_with_a_fallback_copy(client, backends, bucket, "k.txt")
    client.put_object(Bucket=bucket, Key="k.txt", Body=NEW)
    assert client.get_object(Bucket=bucket, Key="k.txt")["Body"].read() == NEW
    assert [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]] == ["k.txt"]

    client.delete_object(Bucket=bucket, Key="k.txt")
    assert missing(lambda: client.get_object(Bucket=bucket, Key="k.txt"))
    assert missing(lambda: client.head_object(Bucket=bucket, Key="k.txt"))
    assert "Contents" not in client.list_objects_v2(Bucket=bucket)
    assert has_object(backends[1], bucket, "k.txt")  # the fallback's copy, hidden


def test_a_key_deleted_through_the_proxy_stays_deleted_when_written_again_and_deleted_directly(
    relay, relayed, backends, bucket
):
    """Written again through the proxy, then deleted on the primary directly (not through the
    proxy): the fallback's copy that the first delete hid stays hidden."""
    _, proxy, _ = relayed
    client = proxy.client()
    deleted_with_a_fallback_copy(client, backends, bucket, "k.txt")
    client.put_object(Bucket=bucket, Key="k.txt", Body=NEW)
    backends[0].client().delete_object(Bucket=bucket, Key="k.txt")
    assert missing(lambda: client.get_object(Bucket=bucket, Key="k.txt"))
    assert "Contents" not in client.list_objects_v2(Bucket=bucket)


def test_a_put_racing_a_delete_never_brings_the_fallback_copy_back(
    relay, relayed, backends, bucket
):
    """ROUNDS keys, each on the secondary, each raced by a PUT and a DELETE through the proxy
    (8 keys at a time, the two requests of a key let go together; for a third of the keys the
    PUT goes 20 ms later, for a third the DELETE: so both orders happen). Whatever order the primary
    took them in, the key then reads as the primary has it: the new object, or NoSuchKey when
    the delete came last there; never the fallback's copy, in reads or listings. The relay holds
    the metaBucket's DELETEs back 0.2 s, as a slow link would: this proxy sends none; one that
    removed the key's tombstone after a write lost the race whenever that came last."""
    _, proxy, _ = relayed
    client = proxy.client()
    client.create_bucket(Bucket=bucket)
    keys = [f"race/{i:03d}" for i in range(ROUNDS)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: put_direct(backends[1], bucket, k, OLD), keys))
    relay.delay(lambda r: to_meta(r) and r.method == "DELETE", 0.2)
    writer, deleter = proxy.client(), proxy.client()

    def race(key: str) -> None:
        start = threading.Barrier(2)
        late = int(key[-3:]) % 3  # 0: neither, 1: the PUT, 2: the DELETE

        def put() -> None:
            start.wait()
            time.sleep(0.02 if late == 1 else 0)
            writer.put_object(Bucket=bucket, Key=key, Body=NEW)

        def delete() -> None:
            start.wait()
            time.sleep(0.02 if late == 2 else 0)
            deleter.delete_object(Bucket=bucket, Key=key)

        both = [threading.Thread(target=put), threading.Thread(target=delete)]
        for thread in both:
            thread.start()
        for thread in both:
            thread.join()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(race, keys))

    on_primary = {k for k in keys if has_object(backends[0], bucket, k)}
    assert 0 < len(on_primary) < len(keys)  # both orders happened
    listed = {
        o["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])
    }
    assert listed == on_primary
    for key in keys:
        if key in on_primary:
            assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == NEW, key
        else:
            assert missing(lambda k=key: client.get_object(Bucket=bucket, Key=k)), key


# --- the pruner -----------------------------------------------------------------------------------


def test_the_pruner_keeps_a_tombstone_written_after_it_reviewed_the_keys(
    relay, relayed, backends, bucket
):
    """The pruner found the key's copy gone and is about to remove its tombstone (the relay
    holds that DELETE); meanwhile the same bytes are put on the fallback again and the key is
    deleted through the proxy again: a new tombstone, hiding the same copy (the same ETag). The
    pruner's removal names the tombstone it reviewed, and the new one stays."""
    _, proxy, config = relayed
    client = proxy.client()
    deleted_with_a_fallback_copy(client, backends, bucket, "k.txt")
    tomb = key_of(bucket, "k.txt")
    reviewed = backends[0].client().head_object(Bucket=META, Key=tomb)["ETag"]
    backends[1].client().delete_object(Bucket=bucket, Key="k.txt")  # it hides nothing now
    gate = relay.gate(lambda r: to_meta(r) and r.method == "DELETE" and r.key == tomb)
    pruner = subprocess.Popen(
        [str(VENV_BIN / "s3-multi"), "tombstones", "--config", str(config), "--prune"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=child_env(),
        cwd=REPO,
    )
    try:
        assert gate.arrived.wait(60), "the pruner never came to remove the tombstone"
        put_direct(backends[1], bucket, "k.txt", OLD)
        client.delete_object(Bucket=bucket, Key="k.txt")
        written = backends[0].client().head_object(Bucket=META, Key=tomb)["ETag"]
        assert written != reviewed  # the nonce: the same copies hidden, another body
        gate.release()
        output, _ = pruner.communicate(timeout=60)
    finally:
        gate.release()
        if pruner.poll() is None:
            pruner.kill()
            pruner.wait()
    assert pruner.returncode == 0, output
    assert f"{bucket}/k.txt: hides nothing: written again or gone since it was read, kept" in (
        output
    )
    assert backends[0].client().head_object(Bucket=META, Key=tomb)["ETag"] == written
    assert missing(lambda: client.get_object(Bucket=bucket, Key="k.txt"))
    assert "Contents" not in client.list_objects_v2(Bucket=bucket)


def test_the_pruner_refuses_on_a_primary_that_ignores_if_match(relay, relayed, backends, bucket):
    """The relay answers 204 to a DELETE If-Match with a wrong ETag, as a primary that ignores
    the condition would: the pruner says so and removes nothing."""
    _, proxy, config = relayed
    client = proxy.client()
    deleted_with_a_fallback_copy(client, backends, bucket, "k.txt")
    backends[1].client().delete_object(Bucket=bucket, Key="k.txt")
    relay.answer(lambda r: r.method == "DELETE" and "if-match" in r.headers, 204)
    done = tombstones(config, "--prune")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "ignores If-Match on DELETE" in done.stderr
    assert has_object(backends[0], META, key_of(bucket, "k.txt"))
