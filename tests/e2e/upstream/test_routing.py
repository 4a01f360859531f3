"""End to end: writes land on the primary only, reads fall back, ListBuckets merges.

Each test puts or reads through the proxy with boto3 and looks at every backend directly (out of
band, with the backend's own keys) to see where the bytes are.
"""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
from botocore.exceptions import ClientError

from tests.support.clients import s3_client
from tests.support.direct import has_bucket, has_object, put_direct
from tests.support.raw_http import Request, fetch, send
from tests.support.root_keys import ROOT_ACCESS, ROOT_SECRET
from tests.support.signing import sigv4
from tests.support.topologies import TOPOLOGIES

pytestmark = [pytest.mark.e2e, pytest.mark.topologies(*TOPOLOGIES)]


def error_code(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    return excinfo.value.response["Error"]["Code"]


def status(excinfo: pytest.ExceptionInfo[ClientError]) -> int:
    return excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_put_lands_on_primary_only_and_reads_back(proxy, backends, bucket):
    primary, secondary, tertiary = backends
    client = proxy.client()
    client.create_bucket(Bucket=bucket)
    body = os.urandom(1024 * 1024 + 7)
    key = "dir/a b+c%d/ü.bin"
    client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/octet-stream")

    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    assert primary.client().get_object(Bucket=bucket, Key=key)["Body"].read() == body
    assert not has_bucket(secondary, bucket)
    assert not has_bucket(tertiary, bucket)


def test_object_only_on_second_backend_is_served_by_get_range_and_head(proxy, backends, bucket):
    primary, secondary, _ = backends
    body = os.urandom(300_000)
    primary.client().create_bucket(Bucket=bucket)
    put_direct(secondary, bucket, "warm.bin", body)
    client = proxy.client()

    assert client.get_object(Bucket=bucket, Key="warm.bin")["Body"].read() == body
    ranged = client.get_object(Bucket=bucket, Key="warm.bin", Range="bytes=1000-1999")
    assert ranged["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert ranged["Body"].read() == body[1000:2000]
    assert client.head_object(Bucket=bucket, Key="warm.bin")["ContentLength"] == len(body)
    assert not has_object(primary, bucket, "warm.bin")  # a read copies nothing back


def put_cold_on_the_tertiary(backends, bucket: str) -> None:
    """cold.txt on the tertiary alone; the bucket on all three."""
    primary, secondary, tertiary = backends
    primary.client().create_bucket(Bucket=bucket)
    secondary.client().create_bucket(Bucket=bucket)
    put_direct(tertiary, bucket, "cold.txt", b"from the cold tier")


def test_object_only_on_third_of_three_backends_is_served(proxy, backends, bucket):
    put_cold_on_the_tertiary(backends, bucket)
    client = proxy.client()

    assert client.get_object(Bucket=bucket, Key="cold.txt")["Body"].read() == b"from the cold tier"
    assert client.head_object(Bucket=bucket, Key="cold.txt")["ContentLength"] == 18
    assert "answered by tertiary" in proxy.log()


def test_repeated_fallback_reads_are_served_and_no_backend_is_taken_for_broken(
    proxy, backends, bucket
):
    """Ten GET and HEAD pairs of an object only the tertiary has: each is served by the tertiary,
    after a 404 of the primary and of the secondary, with no backend taken for broken (over
    keep-alive backends, a HEAD's 404 is acted on only once its end of message is in)."""
    put_cold_on_the_tertiary(backends, bucket)
    client = proxy.client()

    for _ in range(10):
        assert client.get_object(Bucket=bucket, Key="cold.txt")["Body"].read() == (
            b"from the cold tier"
        )
        assert client.head_object(Bucket=bucket, Key="cold.txt")["ContentLength"] == 18
    lines = [line for line in proxy.log().splitlines() if f"/{bucket}/cold.txt via" in line]
    assert len(lines) == 20
    assert all(line.endswith("answered by tertiary") for line in lines), lines
    assert not [line for line in lines if "broken" in line]


def test_bucket_only_on_a_fallback_is_listed_and_read(proxy, backends, bucket):
    _, secondary, _ = backends
    put_direct(secondary, bucket, "k1", b"one")
    put_direct(secondary, bucket, "k2", b"two")
    client = proxy.client()

    client.head_bucket(Bucket=bucket)
    listed = client.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in listed["Contents"]] == ["k1", "k2"]
    assert [o["Key"] for o in client.list_objects(Bucket=bucket)["Contents"]] == ["k1", "k2"]
    assert client.get_object(Bucket=bucket, Key="k2")["Body"].read() == b"two"


@pytest.mark.parametrize("listing", ["list_objects", "list_objects_v2"])
def test_a_delimited_listing_pages_one_entry_at_a_time_each_prefix_once(
    proxy, backends, bucket, listing
):
    """As S3 pages it: max-keys counts common prefixes too, and each comes once (moto itself
    returns every prefix on the first page, whatever max-keys says)."""
    for key in ["a/1", "a/2", "a/3", "b/1", "c", "d/x/y"]:
        put_direct(backends[0], bucket, key, b"x")

    pages = [
        (
            [p["Prefix"] for p in page.get("CommonPrefixes", [])],
            [o["Key"] for o in page.get("Contents", [])],
        )
        for page in proxy.client()
        .get_paginator(listing)
        .paginate(Bucket=bucket, Delimiter="/", PaginationConfig={"PageSize": 1})
    ]
    assert all(len(prefixes) + len(keys) == 1 for prefixes, keys in pages), pages
    assert [p for prefixes, _ in pages for p in prefixes] == ["a/", "b/", "d/"]
    assert [k for _, keys in pages for k in keys] == ["c"]


def test_missing_object_is_404_no_such_key(proxy, backends, bucket):
    for server in backends:
        server.client().create_bucket(Bucket=bucket)
    client = proxy.client()

    with pytest.raises(ClientError) as got:
        client.get_object(Bucket=bucket, Key="nowhere")
    assert (status(got), error_code(got)) == (404, "NoSuchKey")
    with pytest.raises(ClientError) as headed:
        client.head_object(Bucket=bucket, Key="nowhere")
    assert status(headed) == 404


def test_missing_bucket_is_404_no_such_bucket(proxy, bucket):
    with pytest.raises(ClientError) as got:
        proxy.client().list_objects_v2(Bucket=bucket)
    assert (status(got), error_code(got)) == (404, "NoSuchBucket")


def test_delete_of_a_fallback_only_object_never_touches_the_fallback(proxy, backends, bucket):
    primary, secondary, _ = backends
    primary.client().create_bucket(Bucket=bucket)
    put_direct(secondary, bucket, "keep.txt", b"still here")
    client = proxy.client()

    client.delete_object(Bucket=bucket, Key="keep.txt")
    client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "keep.txt"}]})

    assert secondary.client().get_object(Bucket=bucket, Key="keep.txt")["Body"].read() == (
        b"still here"
    )


def test_tagging_a_fallback_only_object_goes_to_the_primary(proxy, backends, bucket):
    primary, secondary, _ = backends
    primary.client().create_bucket(Bucket=bucket)
    put_direct(secondary, bucket, "tagged.txt", b"x")
    client = proxy.client()

    with pytest.raises(ClientError) as got:
        client.put_object_tagging(
            Bucket=bucket, Key="tagged.txt", Tagging={"TagSet": [{"Key": "t", "Value": "v"}]}
        )
    assert error_code(got) == "NoSuchKey"  # the primary's answer: it has no such object
    tags = secondary.client().get_object_tagging(Bucket=bucket, Key="tagged.txt")["TagSet"]
    assert tags == []
    assert not has_object(primary, bucket, "tagged.txt")


def test_a_404_about_a_sub_resource_is_the_answer(proxy, backends, bucket):
    """NoSuchTagSet: the bucket exists here; another backend's tags are another bucket's."""
    primary, secondary, _ = backends
    primary.client().create_bucket(Bucket=bucket)
    secondary.client().create_bucket(Bucket=bucket)
    secondary.client().put_bucket_tagging(
        Bucket=bucket, Tagging={"TagSet": [{"Key": "tier", "Value": "warm"}]}
    )
    with pytest.raises(ClientError) as got:
        proxy.client().get_bucket_tagging(Bucket=bucket)
    assert (status(got), error_code(got)) == (404, "NoSuchTagSet")


def test_sub_resource_of_a_fallback_only_bucket_is_read_from_the_fallback(proxy, backends, bucket):
    _, secondary, _ = backends
    secondary.client().create_bucket(Bucket=bucket)
    secondary.client().put_bucket_tagging(
        Bucket=bucket, Tagging={"TagSet": [{"Key": "tier", "Value": "warm"}]}
    )
    tags = proxy.client().get_bucket_tagging(Bucket=bucket)["TagSet"]
    assert tags == [{"Key": "tier", "Value": "warm"}]


def test_sub_resource_of_a_fallback_only_object_is_read_from_the_fallback(proxy, backends, bucket):
    """The primary's 404 body says NoSuchKey (its bucket exists): the proxy reads it to decide."""
    primary, secondary, _ = backends
    primary.client().create_bucket(Bucket=bucket)
    put_direct(secondary, bucket, "warm.txt", b"tagged on the secondary")
    secondary.client().put_object_tagging(
        Bucket=bucket, Key="warm.txt", Tagging={"TagSet": [{"Key": "tier", "Value": "warm"}]}
    )
    tags = proxy.client().get_object_tagging(Bucket=bucket, Key="warm.txt")["TagSet"]
    assert tags == [{"Key": "tier", "Value": "warm"}]
    assert f"GetObjectTagging /{bucket}/warm.txt via [primary 404" in proxy.log()


def test_list_buckets_merges_every_backend_once_sorted(proxy, backends, bucket):
    primary, secondary, tertiary = backends
    shared, second_only, third_only = f"{bucket}-b", f"{bucket}-c", f"{bucket}-a"
    primary.client().create_bucket(Bucket=shared)
    secondary.client().create_bucket(Bucket=shared)
    secondary.client().create_bucket(Bucket=second_only)
    tertiary.client().create_bucket(Bucket=third_only)

    answer = proxy.client().list_buckets()
    names = [b["Name"] for b in answer["Buckets"]]
    assert names == sorted(set(names))
    assert [n for n in names if n.startswith(bucket)] == [third_only, shared, second_only]
    assert "Owner" in answer and answer["Owner"]["ID"]


def test_wrong_root_secret_is_refused_and_reaches_no_backend(proxy, backends, bucket):
    bad = proxy.client(secret="not-the-root-secret")
    with pytest.raises(ClientError) as created:
        bad.create_bucket(Bucket=bucket)
    assert (status(created), error_code(created)) == (403, "SignatureDoesNotMatch")

    backends[0].client().create_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as put:
        bad.put_object(Bucket=bucket, Key="x", Body=b"never stored")
    assert error_code(put) == "SignatureDoesNotMatch"
    assert [has_bucket(s, bucket) for s in backends] == [True, False, False]
    assert not has_object(backends[0], bucket, "x")
    assert ROOT_SECRET not in proxy.log()


@pytest.mark.topologies("moto")  # refused by the proxy: no backend takes part
def test_unknown_access_key_is_refused(proxy):
    with pytest.raises(ClientError) as got:
        proxy.client(access="AKIDONTEXIST").list_buckets()
    assert (status(got), error_code(got)) == (403, "InvalidAccessKeyId")


@pytest.mark.topologies("moto")  # refused by the proxy: no backend takes part
def test_unsigned_request_gets_an_s3_xml_error(proxy, bucket):
    answer = fetch(f"{proxy.endpoint}/{bucket}/k")
    assert answer.status == 403
    assert answer.headers["Content-Type"] == "application/xml"
    error = answer.error()
    assert error["Code"] == "AccessDenied"
    assert error["Resource"] == f"/{bucket}/k"
    assert error["RequestId"] == answer.headers["x-amz-request-id"]


@pytest.mark.topologies("moto")  # refused by the proxy: no backend takes part
def test_refused_head_has_no_body(proxy, bucket):
    answer = fetch(f"{proxy.endpoint}/{bucket}", "HEAD")
    assert answer.status == 403
    assert answer.headers["x-amz-request-id"]
    assert (answer.body, answer.trailing) == (b"", b"")


def test_backends_do_not_accept_the_root_keys(backends):
    """The proxy must re-sign: forwarding the client's signature would fail at every backend."""
    with pytest.raises(ClientError) as got:
        s3_client(backends[0].endpoint, ROOT_ACCESS, ROOT_SECRET).list_buckets()
    assert error_code(got) == "InvalidAccessKeyId"


def test_debug_log_names_every_backend_tried(proxy, backends, bucket):
    put_direct(backends[1], bucket, "logged.txt", b"x")
    proxy.client().get_object(Bucket=bucket, Key="logged.txt")
    line = next(line for line in proxy.log().splitlines() if f"GetObject /{bucket}/logged" in line)
    assert "via [primary 404" in line
    assert ", secondary 200" in line
    assert line.endswith("answered by secondary")


def test_a_write_into_a_bucket_only_a_fallback_has_lands_on_the_primary(proxy, backends, bucket):
    """One namespace: the bucket exists (the secondary has it), so a write into it must not fail
    for good; the primary takes the bucket on, and the client's retry lands there."""
    primary, secondary, _ = backends
    put_direct(secondary, bucket, "old.txt", b"from before the migration")
    client = proxy.client()  # botocore retries a 503 once (max_attempts=1 in legacy mode)
    client.put_object(Bucket=bucket, Key="new.txt", Body=b"written through the proxy")

    assert primary.client().get_object(Bucket=bucket, Key="new.txt")["Body"].read() == (
        b"written through the proxy"
    )
    assert not has_object(secondary, bucket, "new.txt")
    assert "bucket created on the primary, to be retried" in proxy.log()


def test_a_streamed_write_into_a_bucket_only_a_fallback_has_is_never_sent_again_bodiless(
    proxy, backends, bucket
):
    """A body that streamed past (chunked, no Content-Length) is gone too: the client is told to
    retry, never answered with a bodiless copy of its write (an empty object)."""
    primary, secondary, _ = backends
    put_direct(secondary, bucket, "old.txt", b"from before the migration")
    data = os.urandom(300 * 1024)
    headers = (("Host", f"127.0.0.1:{proxy.port}"), ("Content-Type", "application/octet-stream"))
    unsigned = sigv4(
        Request("PUT", f"/{bucket}/big", headers=headers), payload_hash="UNSIGNED-PAYLOAD"
    )
    request = replace(unsigned.add("Transfer-Encoding", "chunked"), body=chunked(data, 64 * 1024))
    answer = send(proxy.port, request)

    assert answer.status == 503, answer.body
    assert answer.error()["Code"] == "ServiceUnavailable"
    assert not has_object(primary, bucket, "big")
    assert send(proxy.port, request).status == 200  # the retry lands, whole
    assert primary.client().get_object(Bucket=bucket, Key="big")["Body"].read() == data


def chunked(data: bytes, size: int) -> bytes:
    """`data` in HTTP/1.1 chunks of `size` (Transfer-Encoding: chunked)."""
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
