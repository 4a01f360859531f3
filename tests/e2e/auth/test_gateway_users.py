"""End to end: gateway users beside the root keys, through the proxy as its users run it.

A read-only user reads (a fallback's object too), lists, and is refused every write; a
bucket-scoped user sees and touches its buckets only; presigned URLs and aws-chunked uploads are
verified with the user's own secret; a reload changes rights on a connection that stays open, by
the option (mitmweb's options API) and by the users object polled in the metaBucket; a bad users
file is one clear line. After each refusal the backends are read directly: nothing was written.
The proxy's log never holds a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import replace

import pytest
import yaml
from botocore.exceptions import ClientError

from addon.auth.checks import Key
from addon.auth.rights import Role
from addon.auth.users import Users
from addon.config.settings import load_config
from addon.local.servers import free_port
from addon.ops.users_source import UsersSource
from addon.upstream.backend_client import BackendClient
from tests.support import direct, signing
from tests.support.clients import s3_client
from tests.support.direct import has_bucket, has_object, put_direct
from tests.support.processes import VENV_BIN, aws_cli, aws_cli_run
from tests.support.proxy import (
    WEB_PASSWORD,
    Proxy,
    mitmdump_command,
    refused_to_start,
    start_mitmweb,
    write_config,
)
from tests.support.raw_http import Answer, Connection, Request, fetch
from tests.support.root_keys import ROOT_ACCESS, ROOT_SECRET

pytestmark = pytest.mark.e2e

READER = ("reader", "reader-secret-do-not-log")
WRITER = ("writer", "writer-secret-do-not-log")
SCOPED = ("scoped", "scoped-secret-do-not-log")
SECRETS = (ROOT_SECRET, READER[1], WRITER[1], SCOPED[1])
ROOT = Key(ROOT_ACCESS, ROOT_SECRET)
TAG = uuid.uuid4().hex[:8]  # the scoped user's buckets: TAG-mine-*
MINE, ALSO_MINE, OTHER = f"{TAG}-mine-a", f"{TAG}-mine-b", f"{TAG}-other"


def user(keys: tuple[str, str], role: str, **fields: object) -> dict[str, object]:
    return {"access": keys[0], "secret": keys[1], "role": role, **fields}


USERS = [
    user(READER, "readonly"),
    user(WRITER, "user"),
    user(SCOPED, "user", buckets=[f"{TAG}-mine-*"]),
]


@pytest.fixture(scope="module")
def gateway(backends, run_proxy, tmp_path_factory) -> Proxy:
    """The proxy with a users file (YAML) named by a relative path in its config."""
    folder = tmp_path_factory.mktemp("users")
    (folder / "users.yaml").write_text(yaml.safe_dump({"users": USERS}))
    config = write_config(folder / "c.json", backends, settings={"users": "users.yaml"})
    return run_proxy(config)


def as_user(proxy: Proxy, keys: tuple[str, str], **kw):
    return s3_client(proxy.endpoint, *keys, **kw)


def refused(call: Callable[[], object], message: str | None = None) -> None:
    """`call` is answered 403 AccessDenied (with `message`, when given)."""
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 403, error
    assert error["Error"]["Code"] in ("AccessDenied", "403"), error  # HEAD: no body
    if message is not None:
        assert error["Error"]["Message"] == message


def assert_no_secret_in(proxy: Proxy, backends) -> None:
    log = proxy.log()
    assert all(secret not in log for secret in SECRETS)
    assert all(server.secret not in log for server in backends)


# --- rights -------------------------------------------------------------------------------------


@pytest.mark.topologies("moto", "seaweedfs-fallbacks")  # a fallback of each kind serves reads
def test_a_readonly_user_reads_and_lists_and_is_refused_every_write(gateway, backends, bucket):
    primary, secondary, _ = backends
    root = gateway.client()
    root.create_bucket(Bucket=bucket)
    root.put_object(Bucket=bucket, Key="on-primary.txt", Body=b"primary bytes")
    put_direct(secondary, bucket, "on-fallback.txt", b"fallback bytes")
    upload = root.create_multipart_upload(Bucket=bucket, Key="root-upload.bin")["UploadId"]
    acl_before = direct.client(primary).get_object_acl(Bucket=bucket, Key="on-primary.txt")

    reader = as_user(gateway, READER)
    assert reader.get_object(Bucket=bucket, Key="on-primary.txt")["Body"].read() == b"primary bytes"
    fallback = reader.get_object(Bucket=bucket, Key="on-fallback.txt")
    assert fallback["Body"].read() == b"fallback bytes"
    assert reader.head_object(Bucket=bucket, Key="on-fallback.txt")["ContentLength"] == 14
    reader.head_bucket(Bucket=bucket)
    listed = [o["Key"] for o in reader.list_objects_v2(Bucket=bucket)["Contents"]]
    assert {"on-primary.txt", "on-fallback.txt"} <= set(listed)
    assert bucket in [b["Name"] for b in reader.list_buckets()["Buckets"]]
    assert reader.get_object_acl(Bucket=bucket, Key="on-primary.txt")["Grants"]
    uploads = reader.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [u["UploadId"] for u in uploads] == [upload]
    reader.list_parts(Bucket=bucket, Key="root-upload.bin", UploadId=upload)

    source = {"Bucket": bucket, "Key": "on-primary.txt"}
    part = {"Bucket": bucket, "Key": "root-upload.bin", "UploadId": upload, "PartNumber": 1}
    writes = {
        "PutObject": lambda: reader.put_object(Bucket=bucket, Key="new.txt", Body=b"x"),
        "DeleteObject": lambda: reader.delete_object(Bucket=bucket, Key="on-primary.txt"),
        "DeleteObjects": lambda: reader.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": "on-primary.txt"}]}
        ),
        "CopyObject": lambda: reader.copy_object(Bucket=bucket, Key="copy.txt", CopySource=source),
        "CreateMultipartUpload": lambda: reader.create_multipart_upload(Bucket=bucket, Key="mp"),
        "UploadPart": lambda: reader.upload_part(**part, Body=b"part"),
        "UploadPartCopy": lambda: reader.upload_part_copy(**part, CopySource=source),
        "CompleteMultipartUpload": lambda: reader.complete_multipart_upload(
            Bucket=bucket,
            Key="root-upload.bin",
            UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"x"'}]},
        ),
        "AbortMultipartUpload": lambda: reader.abort_multipart_upload(
            Bucket=bucket, Key="root-upload.bin", UploadId=upload
        ),
        "PutObjectAcl": lambda: reader.put_object_acl(
            Bucket=bucket, Key="on-primary.txt", ACL="public-read"
        ),
        "PutBucketAcl": lambda: reader.put_bucket_acl(Bucket=bucket, ACL="public-read"),
        "PutObjectTagging": lambda: reader.put_object_tagging(
            Bucket=bucket, Key="on-primary.txt", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]}
        ),
        "DeleteBucket": lambda: reader.delete_bucket(Bucket=bucket),
    }
    for call in writes.values():
        refused(call, f"Access Denied: reader (readonly) may not write bucket {bucket}.")
    refused(
        lambda: reader.create_bucket(Bucket=f"{bucket}-new"),
        f"Access Denied: reader (readonly) may not write bucket {bucket}-new.",
    )

    # Nothing of it reached a backend: read them directly.
    stored = direct.client(primary).get_object(Bucket=bucket, Key="on-primary.txt")
    assert stored["Body"].read() == b"primary bytes"
    for key in ("new.txt", "copy.txt", "mp"):
        assert not any(has_object(server, bucket, key) for server in backends), key
    assert not any(has_bucket(server, f"{bucket}-new") for server in backends)
    assert (
        direct.client(primary).get_object_acl(Bucket=bucket, Key="on-primary.txt")["Grants"]
        == (acl_before["Grants"])
    )
    tags = direct.client(primary).get_object_tagging(Bucket=bucket, Key="on-primary.txt")
    assert tags["TagSet"] == []
    parts = direct.client(primary).list_parts(Bucket=bucket, Key="root-upload.bin", UploadId=upload)
    assert parts.get("Parts", []) == []  # the upload is still there, without a part
    assert_no_secret_in(gateway, backends)


def test_a_refused_upload_is_answered_before_its_body_is_read(gateway, bucket):
    """The same bounded refusal as a bad signature: no 100 Continue, 1 GiB announced, none sent."""
    gateway.client().create_bucket(Bucket=bucket)
    head = Request(
        "PUT",
        f"/{bucket}/huge.bin",
        "",
        (("Host", f"127.0.0.1:{gateway.port}"), ("Expect", "100-continue")),
    )
    raw = signing.sigv4(head, payload_hash="UNSIGNED-PAYLOAD", access=READER[0], secret=READER[1])
    raw = raw.set("Content-Length", str(1024**3))
    with Connection(gateway.port) as connection:
        answer = connection.exchange(replace(raw, expect_continue=True))
    assert answer.status == 403 and not answer.first_line.startswith(b"HTTP/1.1 100")
    assert answer.error()["Code"] == "AccessDenied"
    assert answer.headers["Connection"] == "close"


def test_a_bucket_scoped_user_sees_and_touches_only_its_buckets(gateway, backends):
    primary = backends[0]
    root = gateway.client()
    for name in (MINE, OTHER):
        root.create_bucket(Bucket=name)
    root.put_object(Bucket=MINE, Key="a.txt", Body=b"mine")
    root.put_object(Bucket=OTHER, Key="secret.txt", Body=b"not for scoped")

    scoped = as_user(gateway, SCOPED)
    scoped.create_bucket(Bucket=ALSO_MINE)
    assert has_bucket(primary, ALSO_MINE)
    names = [b["Name"] for b in scoped.list_buckets()["Buckets"]]
    assert {MINE, ALSO_MINE} <= set(names) and OTHER not in names
    assert all(name.startswith(f"{TAG}-mine-") for name in names), names  # its own only
    assert {MINE, OTHER} <= {b["Name"] for b in root.list_buckets()["Buckets"]}
    assert scoped.get_object(Bucket=MINE, Key="a.txt")["Body"].read() == b"mine"
    scoped.put_object(Bucket=ALSO_MINE, Key="b.txt", Body=b"written by scoped")
    scoped.copy_object(
        Bucket=ALSO_MINE, Key="a-copy.txt", CopySource={"Bucket": MINE, "Key": "a.txt"}
    )
    stored = direct.client(primary).get_object(Bucket=ALSO_MINE, Key="a-copy.txt")
    assert stored["Body"].read() == b"mine"

    stolen = {"Bucket": OTHER, "Key": "secret.txt"}
    denied = f"Access Denied: scoped (user) may not read bucket {OTHER}."
    refused(lambda: scoped.get_object(**stolen), denied)
    refused(lambda: scoped.head_object(**stolen))
    refused(lambda: scoped.head_bucket(Bucket=OTHER))
    refused(lambda: scoped.list_objects_v2(Bucket=OTHER))
    refused(lambda: scoped.get_bucket_acl(Bucket=OTHER))
    refused(lambda: scoped.copy_object(Bucket=MINE, Key="stolen.txt", CopySource=stolen), denied)
    upload = scoped.create_multipart_upload(Bucket=MINE, Key="stolen.bin")["UploadId"]
    refused(
        lambda: scoped.upload_part_copy(
            Bucket=MINE, Key="stolen.bin", UploadId=upload, PartNumber=1, CopySource=stolen
        ),
        denied,
    )
    scoped.abort_multipart_upload(Bucket=MINE, Key="stolen.bin", UploadId=upload)
    refused(lambda: scoped.put_object(Bucket=OTHER, Key="x.txt", Body=b"x"))
    refused(lambda: scoped.delete_object(**stolen))
    refused(lambda: scoped.delete_bucket(Bucket=OTHER))
    refused(lambda: scoped.create_bucket(Bucket=f"{TAG}-elsewhere"))

    other = direct.client(primary).get_object(**stolen)
    assert other["Body"].read() == b"not for scoped"
    assert not has_object(primary, MINE, "stolen.txt") and not has_object(primary, OTHER, "x.txt")
    assert not any(has_bucket(server, f"{TAG}-elsewhere") for server in backends)
    assert_no_secret_in(gateway, backends)


@pytest.mark.client("aws CLI", "gateway users: a bucket-scoped and a read-only key")
def test_the_aws_cli_with_user_keys(gateway, backends):
    primary, mine = backends[0], f"{TAG}-mine-cli"
    gateway.client().create_bucket(Bucket=mine)
    gateway.client().create_bucket(Bucket=OTHER + "-cli")
    gateway.client().put_object(Bucket=mine, Key="cli.txt", Body=b"read by the aws CLI\n")
    endpoint = ["--endpoint-url", gateway.endpoint]

    def keys(pair: tuple[str, str]) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": pair[0], "AWS_SECRET_ACCESS_KEY": pair[1]}

    listing = aws_cli("s3", "ls", *endpoint, **keys(SCOPED)).decode()
    assert mine in listing and OTHER not in listing
    assert all(f" {TAG}-mine-" in line for line in listing.splitlines()), listing
    read = aws_cli("s3", "cp", f"s3://{mine}/cli.txt", "-", *endpoint, **keys(READER))
    assert read == b"read by the aws CLI\n"
    written = aws_cli_run(
        "s3", "cp", "-", f"s3://{mine}/by-reader.txt", *endpoint, stdin=b"no", **keys(READER)
    )
    assert written.returncode != 0 and b"AccessDenied" in written.stderr
    assert not has_object(primary, mine, "by-reader.txt")
    aws_cli("s3", "cp", "-", f"s3://{mine}/by-scoped.txt", *endpoint, stdin=b"yes", **keys(SCOPED))
    stored = direct.client(primary).get_object(Bucket=mine, Key="by-scoped.txt")
    assert stored["Body"].read() == b"yes"
    assert_no_secret_in(gateway, backends)


# --- signatures with a user's secret ------------------------------------------------------------


@pytest.mark.parametrize("version", ["s3", "s3v4"], ids=["sigv2", "sigv4"])
def test_presigned_urls_are_verified_with_the_users_secret(gateway, backends, bucket, version):
    primary = backends[0]
    gateway.client().create_bucket(Bucket=bucket)
    gateway.client().put_object(Bucket=bucket, Key="shared.txt", Body=b"presigned read")
    reader = as_user(gateway, READER, signature_version=version)
    writer = as_user(gateway, WRITER, signature_version=version)

    def url(client, method: str, key: str) -> str:
        params = {"Bucket": bucket, "Key": key}
        return client.generate_presigned_url(method, Params=params, ExpiresIn=300)

    assert fetch(url(reader, "get_object", "shared.txt")).body == b"presigned read"
    put = fetch(url(reader, "put_object", "by-reader.txt"), "PUT", b"refused")
    assert put.status == 403 and put.error()["Code"] == "AccessDenied"
    assert not has_object(primary, bucket, "by-reader.txt")
    # Another key's secret does not make a user's URL.
    forged = url(
        as_user(gateway, (READER[0], WRITER[1]), signature_version=version),
        "get_object",
        "shared.txt",
    )
    assert fetch(forged).error()["Code"] == "SignatureDoesNotMatch"

    assert (
        fetch(url(writer, "put_object", "by-writer.txt"), "PUT", b"presigned write").status == 200
    )
    stored = direct.client(primary).get_object(Bucket=bucket, Key="by-writer.txt")
    assert stored["Body"].read() == b"presigned write"


def test_aws_chunked_uploads_are_verified_with_the_users_secret(gateway, backends, bucket):
    """boto3 over HTTPS sends aws-chunked bodies with a CRC32 trailer; the corpus
    (test_auth_corpus.py, run with a user's key) covers the signed-chunk forms."""
    primary = backends[0]
    gateway.client().create_bucket(Bucket=bucket)
    body = bytes(range(256)) * 1000
    writer = s3_client(gateway.https_endpoint, *WRITER, verify=gateway.ca_file)
    writer.put_object(Bucket=bucket, Key="chunked.bin", Body=body)
    assert (
        direct.client(primary).get_object(Bucket=bucket, Key="chunked.bin")["Body"].read() == body
    )
    reader = s3_client(gateway.https_endpoint, *READER, verify=gateway.ca_file)
    refused(lambda: reader.put_object(Bucket=bucket, Key="by-reader.bin", Body=body))
    assert not has_object(primary, bucket, "by-reader.bin")


# --- reloads ------------------------------------------------------------------------------------


def signed_as(keys: tuple[str, str], port: int, method: str, path: str, query: str = "") -> Request:
    raw = Request(method, path, query, (("Host", f"127.0.0.1:{port}"),))
    return signing.sigv4(raw, access=keys[0], secret=keys[1])


class Session:
    """One keep-alive connection of the writer's. Listings are answered by the proxy itself
    (merged), so they keep it open whatever a backend says (moto closes every connection: a
    forwarded answer says so to the client)."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.connection = Connection(proxy.port)

    def close(self) -> None:
        self.connection.__exit__()

    def status(self, method: str, path: str, query: str = "") -> int:
        raw = signed_as(WRITER, self.proxy.port, method, path, query)
        return self.connection.exchange(raw).status

    def lists(self, bucket: str) -> int:
        return self.status("GET", f"/{bucket}", "list-type=2")

    def buckets(self) -> list[str]:
        raw = signed_as(WRITER, self.proxy.port, "GET", "/")
        body = self.connection.exchange(raw).body.decode()
        return [part.partition("</Name>")[0] for part in body.split("<Name>")[1:]]


def set_options(web_port: int, **options: str) -> Answer:
    """mitmweb's options API, as its options editor calls it (the XSRF token is the client's
    own: tornado compares the cookie with the header)."""
    return fetch(
        f"http://127.0.0.1:{web_port}/options",
        "PUT",
        json.dumps(options).encode(),
        headers=(
            ("Authorization", f"Bearer {WEB_PASSWORD}"),
            ("Cookie", "_mitmproxy_xsrf=users-test"),
            ("X-XSRFToken", "users-test"),
            ("Content-Type", "application/json"),
        ),
    )


def test_setting_the_users_option_again_changes_rights_on_a_live_connection(
    backends, tmp_path, bucket
):
    primary, ours, theirs = backends[0], f"{bucket}-a", f"{bucket}-b"
    users = tmp_path / "users.json"

    def publish(role: str, buckets: list[str], **extra: str) -> None:
        users.write_text(json.dumps({"users": [user(WRITER, role, buckets=buckets, **extra)]}))

    publish("readonly", [ours])
    proxy, web_port = start_mitmweb(backends, tmp_path, f"s3multi_users={users}")
    try:
        for name in (ours, theirs):
            proxy.client().create_bucket(Bucket=name)
        proxy.client().put_object(Bucket=ours, Key="k.txt", Body=b"to delete")
        session = Session(proxy)
        with contextlib.closing(session):
            assert (session.lists(ours), session.lists(theirs)) == (200, 403)
            assert session.buckets() == [ours]
            assert session.status("DELETE", f"/{ours}/k.txt") == 403

            publish("user", [theirs])
            assert set_options(web_port, s3multi_users=str(users)).status == 200
            assert (session.lists(ours), session.lists(theirs)) == (403, 200)
            assert session.buckets() == [theirs]

            publish("user", [ours], rol="x")
            bad = set_options(web_port, s3multi_users=str(users))
            assert bad.status == 400
            expected = f"{users}: users[0] (\"writer\"): unknown field 'rol', did you mean 'role'?"
            assert expected in bad.body.decode(), bad.body
            assert (session.lists(ours), session.lists(theirs)) == (403, 200)  # the old table

            publish("user", [ours])
            assert set_options(web_port, s3multi_users=str(users)).status == 200
            assert session.status("DELETE", f"/{ours}/k.txt") == 204
    finally:
        proxy.stop()
    assert not has_object(primary, ours, "k.txt")
    assert_no_secret_in(proxy, backends)


def wait_for(check: Callable[[], bool], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not within the time the poll should take"
        time.sleep(0.2)


def test_a_users_object_in_the_meta_bucket_is_polled_by_every_instance(
    backends, run_proxy, tmp_path, bucket
):
    primary, ours, theirs = backends[0], f"{bucket}-a", f"{bucket}-b"
    meta = f"meta-{uuid.uuid4().hex[:8]}"
    direct.client(primary).create_bucket(Bucket=meta)

    def publish(text: str) -> None:
        direct.client(primary).put_object(Bucket=meta, Key="users.yaml", Body=text.encode())

    def users(role: str, buckets: str) -> str:
        fields = f"access: writer, secret: {WRITER[1]}, role: {role}, buckets: [{buckets}]"
        return f"users:\n  - {{{fields}}}\n"

    publish(users("user", ours))
    settings = {"users": f"s3://{meta}/users.yaml", "usersPoll": 0.3}
    config = write_config(tmp_path / "c.json", backends, settings=settings, metaBucket=meta)
    instances = [run_proxy(config), run_proxy(config)]
    for name in (ours, theirs):
        instances[0].client().create_bucket(Bucket=name)

    sessions = [Session(proxy) for proxy in instances]
    for session in sessions:
        wait_for(lambda s=session: s.lists(ours) == 200)  # 503 until the first look
        assert session.lists(theirs) == 403
    publish(users("user", theirs))
    for session in sessions:  # every instance, on its open connection
        wait_for(lambda s=session: s.lists(theirs) == 200)
        assert session.lists(ours) == 403 and session.buckets() == [theirs]

    publish(users("boss", ours))
    line = (
        f's3://{meta}/users.yaml: users[0] ("writer"): role: must be one of admin, user, '
        "readonly, got 'boss'; the users in use stay"
    )
    for session in sessions:
        wait_for(lambda s=session: line in s.proxy.log())
        assert (session.lists(ours), session.lists(theirs)) == (403, 200)
    time.sleep(1)  # three more looks: a bad version is told once, not at every poll
    assert all(proxy.log().count(line) == 1 for proxy in instances)

    # No client reads the users object, nor copies it out, root keys included.
    root = instances[0].client()
    refused(lambda: root.get_object(Bucket=meta, Key="users.yaml"))
    source = {"Bucket": meta, "Key": "users.yaml"}
    refused(lambda: root.copy_object(Bucket=theirs, Key="stolen.yaml", CopySource=source))
    assert not has_object(primary, theirs, "stolen.yaml")
    assert meta not in [b["Name"] for b in root.list_buckets()["Buckets"]]
    for session in sessions:
        session.close()
        assert_no_secret_in(session.proxy, backends)


def test_a_reload_looks_at_the_users_object_at_once(backends, tmp_path, caplog):
    """What SIGHUP does for an object (`UsersSource.reload`), against the real primary: look
    now, not at the next poll (an hour away here); an unchanged object is not read again."""
    meta = f"meta-{uuid.uuid4().hex[:8]}"
    direct.client(backends[0]).create_bucket(Bucket=meta)

    def publish(role: str) -> None:
        text = yaml.safe_dump({"users": [user(WRITER, role)]})
        direct.client(backends[0]).put_object(Bucket=meta, Key="users.yaml", Body=text.encode())

    config = write_config(tmp_path / "c.json", backends, metaBucket=meta)
    primary = load_config(config).backends[0]
    installed: list[Users] = []

    async def until(count: int) -> None:
        for _ in range(100):
            if len(installed) >= count:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{len(installed)} tables installed, not {count}")

    async def scenario() -> None:
        client = BackendClient()
        absent = UsersSource(f"s3://{meta}/absent.yaml", ROOT, installed.append, client, primary)
        absent.load()
        await asyncio.to_thread(publish, "user")
        source = UsersSource(
            f"s3://{meta}/users.yaml", ROOT, installed.append, client, primary, every=3600
        )
        source.load()
        await until(1)
        await asyncio.to_thread(publish, "readonly")
        source.reload()
        await until(2)
        source.reload()  # nothing new: a 304, nothing installed
        await asyncio.sleep(0.5)
        absent.close()
        source.close()
        client.close()

    asyncio.run(scenario())
    assert [table.find(WRITER[0]).role for table in installed] == [Role.USER, Role.READONLY]
    assert (
        f"s3-multi: s3://{meta}/absent.yaml: primary answered 404 (NoSuchKey); the users in use "
        "stay" in caplog.text
    )
    assert WRITER[1] not in caplog.text


# --- bad users files ----------------------------------------------------------------------------


def test_a_bad_users_file_stops_both_commands_with_one_clear_line(backends, tmp_path):
    users = tmp_path / "users.yaml"
    users.write_text(yaml.safe_dump({"users": [user(READER, "readonly", buckets="all")]}))
    config = write_config(tmp_path / "c.json", backends)
    port = free_port()
    expected = (
        f'{users}: users[0] ("reader"): buckets: must be a list of bucket names or globs, '
        "got a string"
    )
    runs = {
        "s3-multi": [
            str(VENV_BIN / "s3-multi"),
            *("--config", str(config), "--users", str(users), "--port", f"127.0.0.1:{port}"),
        ],
        "mitmdump": [
            *mitmdump_command(config, port, tmp_path / "mitmproxy"),
            *("--set", f"s3multi_users={users}"),
        ],
    }
    for output in refused_to_start(runs).values():
        assert expected in output, output
        assert all(secret not in output for secret in SECRETS)
