"""End to end: SigV4 presigned URLs made by boto3 and by `aws s3 presign`, fetched over plain HTTP.

A presigned URL carries the root key's signature in its query; the proxy verifies it and sends
the backend a request signed with that backend's own key. The backends are moto servers in
auth mode, which know nothing of the root key (they refuse a presigned URL outright): every
successful fetch below is a request the proxy re-signed. Each test reads the backends directly
to see where the bytes are.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.support.clients import s3_client
from tests.support.direct import has_bucket, has_object, put_direct
from tests.support.processes import aws_cli
from tests.support.raw_http import Answer, fetch
from tests.support.root_keys import ROOT_ACCESS, ROOT_SECRET
from tests.support.signing import clock
from tests.support.topologies import TOPOLOGIES

pytestmark = [pytest.mark.e2e, pytest.mark.topologies(*TOPOLOGIES)]

WEEK = 7 * 24 * 3600
EXPIRED = "Request has expired."
OVER_A_WEEK = (
    "X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires "
    "must be less than 604800 seconds"
)
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your key and signing method."
)


def upload(url: str, body: bytes) -> Answer:
    # moto stores an empty object for a form content type: say what the bytes are.
    return fetch(url, "PUT", body, headers=(("Content-Type", "application/octet-stream"),))


def presigner(proxy):
    """boto3 makes SigV2 URLs for custom endpoints unless told otherwise: SigV4 here."""
    return s3_client(proxy.endpoint, signature_version="s3v4")


def presign(proxy, method: str, bucket: str, key: str, expires: int = 600, **params) -> str:
    url = presigner(proxy).generate_presigned_url(
        method, Params={"Bucket": bucket, "Key": key, **params}, ExpiresIn=expires
    )
    assert "X-Amz-Signature=" in url and f"X-Amz-Expires={expires}" in url, url
    return url


def assert_error(fetched: Answer, status: int, code: str, message: str, resource: str) -> dict:
    assert fetched.status == status, fetched.body
    assert fetched.headers["Content-Type"] == "application/xml"
    error = fetched.error()
    assert (error["Code"], error["Message"]) == (code, message), error
    assert error["Resource"] == resource
    assert error["RequestId"] == fetched.headers["x-amz-request-id"]
    return error


def aws_presign(proxy, tmp_path: Path, uri: str, expires: int) -> str:
    """`aws s3 presign` as a user runs it, with a config that asks for SigV4 (s3v4)."""
    config = tmp_path / "aws-config"
    config.write_text("[default]\ns3 =\n    signature_version = s3v4\n")
    args = ("--endpoint-url", proxy.endpoint, "s3", "presign", uri, "--expires-in", str(expires))
    url = aws_cli(*args, AWS_CONFIG_FILE=str(config)).decode().strip()
    assert url.startswith(proxy.endpoint) and "X-Amz-Signature=" in url, url
    return url


def test_get_and_head_of_an_object_on_the_primary(proxy, backends, bucket):
    body = bytes(range(256)) * 1000
    put_direct(backends[0], bucket, "on-primary.bin", body)

    got = fetch(presign(proxy, "get_object", bucket, "on-primary.bin"))
    assert (got.status, got.body) == (200, body)
    head = fetch(presign(proxy, "head_object", bucket, "on-primary.bin"), "HEAD")
    assert head.status == 200 and head.body == b""
    assert head.headers["Content-Length"] == str(len(body))
    assert f"GetObject /{bucket}/on-primary.bin via [primary 200" in proxy.log()


def test_get_and_head_of_an_object_only_on_a_fallback(proxy, backends, bucket):
    body = b"only the secondary has this\n" * 1000
    put_direct(backends[1], bucket, "warm.txt", body)

    got = fetch(presign(proxy, "get_object", bucket, "warm.txt"))
    assert (got.status, got.body) == (200, body)
    head = fetch(presign(proxy, "head_object", bucket, "warm.txt"), "HEAD")
    assert head.status == 200 and head.headers["Content-Length"] == str(len(body))
    assert re.search(
        rf"GetObject /{bucket}/warm.txt via \[primary 404 \d+ms, secondary 200", proxy.log()
    )
    assert not has_bucket(backends[0], bucket)  # a read copies nothing back


def test_put_lands_on_the_primary_only(proxy, backends, bucket):
    proxy.client().create_bucket(Bucket=bucket)
    body = bytes(range(256)) * 4096 + b"presigned upload"

    put = upload(presign(proxy, "put_object", bucket, "up.bin"), body)
    assert put.status == 200, put.body
    assert backends[0].client().get_object(Bucket=bucket, Key="up.bin")["Body"].read() == body
    assert not has_bucket(backends[1], bucket) and not has_bucket(backends[2], bucket)
    assert fetch(presign(proxy, "get_object", bucket, "up.bin")).body == body


@pytest.mark.topologies("seaweedfs-primary")  # moto does not store it (see upload)
def test_a_put_sent_as_a_form_stores_its_bytes(proxy, backends, bucket):
    """`curl -d @file URL` sends a form Content-Type: the body is still the object."""
    proxy.client().create_bucket(Bucket=bucket)
    body = b"a=1&b=2&looks=like+a%20form"
    url = presign(proxy, "put_object", bucket, "form.txt")
    put = fetch(url, "PUT", body, headers=(("Content-Type", "application/x-www-form-urlencoded"),))
    assert put.status == 200, put.body
    stored = backends[0].client().get_object(Bucket=bucket, Key="form.txt")
    assert stored["Body"].read() == body
    assert stored["ContentType"] == "application/x-www-form-urlencoded"


def test_query_parameters_other_than_the_signature_reach_the_backend(proxy, backends, bucket):
    put_direct(backends[0], bucket, "dir/a.txt", b"a")
    put_direct(backends[0], bucket, "other.txt", b"o")
    client = presigner(proxy)

    listing = fetch(
        client.generate_presigned_url(
            "list_objects_v2", Params={"Bucket": bucket, "Prefix": "dir/"}, ExpiresIn=600
        )
    )
    assert listing.status == 200, listing.body
    keys = [e.text for e in ET.fromstring(listing.body).iter() if e.tag.endswith("Key")]
    assert keys == ["dir/a.txt"]
    typed = fetch(presign(proxy, "get_object", bucket, "other.txt", ResponseContentType="text/x-o"))
    assert (typed.status, typed.body) == (200, b"o")
    assert typed.headers["Content-Type"] == "text/x-o"


def test_a_week_is_accepted(proxy, backends, bucket):
    put_direct(backends[0], bucket, "k", b"for a week")
    assert fetch(presign(proxy, "get_object", bucket, "k", expires=WEEK)).body == b"for a week"
    put = upload(presign(proxy, "put_object", bucket, "w", expires=WEEK), b"weekly")
    assert put.status == 200, put.body
    assert backends[0].client().get_object(Bucket=bucket, Key="w")["Body"].read() == b"weekly"


def test_a_week_and_a_second_is_refused(proxy, backends, bucket):
    proxy.client().create_bucket(Bucket=bucket)
    for method, send in (("get_object", fetch), ("put_object", lambda url: upload(url, b"x"))):
        url = presign(proxy, method, bucket, "k", expires=WEEK + 1)  # boto3 does not refuse it
        refused = send(url)
        error = assert_error(
            refused, 400, "AuthorizationQueryParametersError", OVER_A_WEEK, f"/{bucket}/k"
        )
        assert ROOT_SECRET not in str(error)
    assert not any(has_object(server, bucket, "k") for server in backends)


def test_an_expired_url_is_access_denied(proxy, backends, bucket):
    put_direct(backends[0], bucket, "k", b"too late")
    with clock(-2 * 3600):  # signed two hours ago
        get = presign(proxy, "get_object", bucket, "k", expires=3600)
        head = presign(proxy, "head_object", bucket, "k", expires=3600)
        put = presign(proxy, "put_object", bucket, "new", expires=3600)

    error = assert_error(fetch(get), 403, "AccessDenied", EXPIRED, f"/{bucket}/k")
    assert error["X-Amz-Expires"] == "3600" and error["Expires"] and error["ServerTime"]
    refused_head = fetch(head, "HEAD")
    assert (refused_head.status, refused_head.body) == (403, b"")
    assert_error(upload(put, b"too late"), 403, "AccessDenied", EXPIRED, f"/{bucket}/new")
    assert not any(has_object(server, bucket, "new") for server in backends)


def test_a_tampered_key_path_is_signature_does_not_match(proxy, backends, bucket):
    put_direct(backends[0], bucket, "mine.txt", b"mine")
    put_direct(backends[0], bucket, "yours.txt", b"yours")

    url = presign(proxy, "get_object", bucket, "mine.txt")
    tampered = fetch(url.replace("/mine.txt?", "/yours.txt?"))
    error = assert_error(tampered, 403, "SignatureDoesNotMatch", MISMATCH, f"/{bucket}/yours.txt")
    assert error["AWSAccessKeyId"] == ROOT_ACCESS
    url = presign(proxy, "put_object", bucket, "allowed.txt")
    refused = upload(url.replace("/allowed.txt?", "/yours.txt?"), b"overwritten")
    assert_error(refused, 403, "SignatureDoesNotMatch", MISMATCH, f"/{bucket}/yours.txt")
    assert backends[0].client().get_object(Bucket=bucket, Key="yours.txt")["Body"].read() == (
        b"yours"
    )
    assert not any(has_object(server, bucket, "allowed.txt") for server in backends)


@pytest.mark.slow
def test_aws_cli_presign_reads_from_primary_and_fallback(proxy, backends, bucket, tmp_path):
    put_direct(backends[0], bucket, "hot.txt", b"on the primary\n")
    put_direct(backends[1], bucket, "warm.txt", b"on the secondary\n")

    for key, body in (("hot.txt", b"on the primary\n"), ("warm.txt", b"on the secondary\n")):
        url = aws_presign(proxy, tmp_path, f"s3://{bucket}/{key}", 600)
        got = fetch(url)
        assert (got.status, got.body) == (200, body)
    week = aws_presign(proxy, tmp_path, f"s3://{bucket}/hot.txt", WEEK)
    assert fetch(week).body == b"on the primary\n"
    over = aws_presign(proxy, tmp_path, f"s3://{bucket}/hot.txt", WEEK + 1)
    assert_error(
        fetch(over), 400, "AuthorizationQueryParametersError", OVER_A_WEEK, f"/{bucket}/hot.txt"
    )


def test_backends_never_see_the_root_key(proxy, backends, bucket):
    """The URL that the proxy serves is refused by the backend itself: the proxy re-signs."""
    put_direct(backends[0], bucket, "k", b"re-signed")
    url = presign(proxy, "get_object", bucket, "k")
    assert fetch(url).body == b"re-signed"

    direct = fetch(url.replace(proxy.endpoint, backends[0].endpoint))
    assert direct.status != 200 and b"re-signed" not in direct.body
    log = proxy.log()
    assert f"GetObject /{bucket}/k via [primary 200" in log
    assert ROOT_SECRET not in log
