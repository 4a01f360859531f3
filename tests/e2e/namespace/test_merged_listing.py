"""ListObjects through the proxy is the union of every backend's listing: a random spread of
keys over three real backends, overlapping, listed with v1 and v2 at many page sizes, prefixes
and delimiters, against the union worked out here from each backend's own listing."""

from __future__ import annotations

import json
import random

import pytest
from botocore.exceptions import ClientError

from tests.support.direct import client as direct
from tests.support.direct import put_direct
from tests.support.faulty_backends import Garbage

pytestmark = pytest.mark.e2e


def backend_keys(server, bucket: str) -> dict[str, tuple[int, str]]:
    """key -> (size, ETag), as the backend lists it itself."""
    found = {}
    for page in direct(server).get_paginator("list_objects_v2").paginate(Bucket=bucket):
        found |= {o["Key"]: (o["Size"], o["ETag"]) for o in page.get("Contents", [])}
    return found


def expected_listing(backends, bucket: str, prefix: str, delimiter: str):
    """(keys with the first backend's size and ETag, common prefixes), from the backends."""
    union: dict[str, tuple[int, str]] = {}
    for server in backends:
        for key, fields in backend_keys(server, bucket).items():
            union.setdefault(key, fields)
    keys, prefixes = {}, set()
    for key, fields in union.items():
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix) :]
        if delimiter and delimiter in rest:
            prefixes.add(prefix + rest[: rest.index(delimiter) + len(delimiter)])
        else:
            keys[key] = fields
    return keys, sorted(prefixes)


def through_proxy(client, bucket: str, v2: bool, prefix: str, delimiter: str, page: int):
    operation = "list_objects_v2" if v2 else "list_objects"
    keys, prefixes, order = {}, [], []
    pages = client.get_paginator(operation).paginate(
        Bucket=bucket, Prefix=prefix, Delimiter=delimiter, PaginationConfig={"PageSize": page}
    )
    for answer in pages:
        count = len(answer.get("Contents", [])) + len(answer.get("CommonPrefixes", []))
        assert count <= page
        if v2:
            assert answer["KeyCount"] == count
        for o in answer.get("Contents", []):
            assert o["Key"] not in keys, f"{o['Key']} listed twice"
            keys[o["Key"]] = (o["Size"], o["ETag"])
            order.append(o["Key"])
        for p in answer.get("CommonPrefixes", []):
            assert p["Prefix"] not in prefixes, f"{p['Prefix']} listed twice"
            prefixes.append(p["Prefix"])
    assert order == sorted(order)
    return keys, prefixes


@pytest.fixture(scope="module")
def spread(backends):
    """A few hundred keys over the three backends, some on two or three of them (with other
    bytes on each), in a bucket every backend has."""
    bucket = f"t-spread-{random.randrange(10**9)}"
    rng = random.Random(7)
    parts = ["a", "b/", "d1", "d1.txt", "d1/", "é", "photos/", "2024/", "x y", "+"]
    keys = {"".join(rng.choice(parts) for _ in range(rng.randint(1, 4))) for _ in range(400)}
    keys = {k for k in keys if not k.endswith("/")} | {"d1/x", "d1/y/z", "photos/a/b.jpg"}
    for server in backends:
        direct(server).create_bucket(Bucket=bucket)
    for key in sorted(keys):
        for index in rng.sample(range(3), rng.choice([1, 1, 1, 2, 3])):
            put_direct(backends[index], bucket, key, f"{key} on {index}".encode() * (index + 1))
    return bucket


@pytest.mark.parametrize("v2", [True, False], ids=["v2", "v1"])
@pytest.mark.parametrize(
    ("prefix", "delimiter", "page"),
    [("", "", 1000), ("", "", 7), ("", "/", 3), ("d1", "/", 1), ("photos/", "/", 2), ("a", "", 50)],
)
def test_a_merged_listing_is_the_union_of_the_backends(
    proxy, backends, spread, v2, prefix, delimiter, page
):
    expected = expected_listing(backends, spread, prefix, delimiter)
    got = through_proxy(proxy.client(), spread, v2, prefix, delimiter, page)
    assert got[0] == expected[0]
    assert got[1] == expected[1]


def test_every_object_a_read_serves_is_listed(proxy, backends, bucket):
    primary, secondary, tertiary = backends
    direct(primary).create_bucket(Bucket=bucket)
    put_direct(primary, bucket, "hot.txt", b"h")
    put_direct(secondary, bucket, "warm.txt", b"w")
    put_direct(tertiary, bucket, "cold.txt", b"c")
    put_direct(tertiary, bucket, "hot.txt", b"an older copy")
    listed = proxy.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["Size"]) for o in listed] == [
        ("cold.txt", 1),
        ("hot.txt", 1),
        ("warm.txt", 1),
    ]


def test_start_after_and_a_forged_token(proxy, backends, spread):
    client = proxy.client()
    everything = through_proxy(client, spread, True, "", "", 1000)[0]
    start = sorted(everything)[100]
    after = client.list_objects_v2(Bucket=spread, StartAfter=start, MaxKeys=5)
    assert [o["Key"] for o in after["Contents"]] == sorted(everything)[101:106]
    assert after["StartAfter"] == start
    with pytest.raises(ClientError) as forged:
        client.list_objects_v2(Bucket=spread, ContinuationToken="eyJ.forged")
    assert forged.value.response["Error"]["Code"] == "InvalidArgument"


@pytest.mark.parametrize("max_keys", [1000, 0])
def test_a_bucket_no_backend_has_is_no_such_bucket(proxy, bucket, max_keys):
    for operation in ("list_objects_v2", "list_objects"):
        with pytest.raises(ClientError) as missing:
            getattr(proxy.client(), operation)(Bucket=bucket, MaxKeys=max_keys)
        assert missing.value.response["Error"]["Code"] == "NoSuchBucket"


def test_max_keys_zero_is_an_empty_page_of_a_bucket_only_a_fallback_has(proxy, backends, bucket):
    """S3 answers an empty page, not truncated (ceph/s3-tests' test_bucket_list_maxkeys_zero)."""
    put_direct(backends[2], bucket, "k", b"x")
    client = proxy.client()
    v2 = client.list_objects_v2(Bucket=bucket, MaxKeys=0)
    assert (v2["IsTruncated"], v2["KeyCount"], v2.get("Contents")) == (False, 0, None)
    v1 = client.list_objects(Bucket=bucket, MaxKeys=0)
    assert (v1["IsTruncated"], v1.get("Contents")) == (False, None)


@pytest.mark.parametrize("v2", [True, False], ids=["v2", "v1"])
def test_unreadable_inputs_come_back_as_sent(proxy, backends, bucket, v2):
    """What ceph/s3-tests' *_unreadable tests expect of a boto3 client, which asks
    encoding-type=url and decodes what each version encodes (v1 leaves Prefix as it came)."""
    for key in ("bar", "foo/baz"):
        put_direct(backends[1], bucket, key, b"x")
    client = proxy.client()
    listing = client.list_objects_v2 if v2 else client.list_objects
    start = "StartAfter" if v2 else "Marker"
    for name in ("Prefix", "Delimiter", start):
        answer = listing(Bucket=bucket, **{name: "\n"})
        assert answer[name] == "\n"
        assert [o["Key"] for o in answer.get("Contents", [])] == (
            [] if name == "Prefix" else ["bar", "foo/baz"]
        )


def test_an_empty_continuation_token_is_none(proxy, backends, bucket):
    """As S3 answers ceph/s3-tests' test_bucket_listv2_continuationtoken_empty."""
    put_direct(backends[0], bucket, "a", b"x")
    put_direct(backends[1], bucket, "b", b"x")
    listed = proxy.client().list_objects_v2(Bucket=bucket, ContinuationToken="")
    assert (listed["ContinuationToken"], listed["IsTruncated"]) == ("", False)
    assert [o["Key"] for o in listed["Contents"]] == ["a", "b"]


@pytest.mark.topologies("seaweedfs-primary")
def test_a_backends_s3_error_to_a_listing_is_the_answer(proxy, backends, bucket):
    """A bucket policy denying ListBucket: S3 answers 403 AccessDenied (ceph/s3-tests'
    test_bucket_policy_acl), and so does the proxy, as for a read; not 503 "cannot be listed".
    (On SeaweedFS: moto does not enforce bucket policies.)"""
    primary = backends[0]
    put_direct(primary, bucket, "k", b"x")
    put_direct(backends[1], bucket, "j", b"x")
    statement = {"Effect": "Deny", "Principal": "*", "Action": "s3:ListBucket"}
    statement["Resource"] = f"arn:aws:s3:::{bucket}"
    policy = {"Version": "2012-10-17", "Statement": [statement]}
    direct(primary).put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    try:
        for operation in ("list_objects_v2", "list_objects"):
            with pytest.raises(ClientError) as refused:
                getattr(proxy.client(), operation)(Bucket=bucket)
            response = refused.value.response
            status = response["ResponseMetadata"]["HTTPStatusCode"]
            assert (status, response["Error"]["Code"]) == (403, "AccessDenied")
    finally:
        direct(primary).delete_bucket_policy(Bucket=bucket)
    assert [o["Key"] for o in proxy.client().list_objects_v2(Bucket=bucket)["Contents"]] == [
        "j",
        "k",
    ]


def test_a_backend_that_cannot_be_listed_fails_the_listing(backends, run_proxy, tmp_path, bucket):
    """Never a silently partial listing: `aws s3 sync --delete` would delete what is missing."""
    with Garbage(name="sick") as sick:
        config = tmp_path / "c.json"
        entries = [
            {"name": s.name, "access": s.access, "secret": s.secret, "endpoint": s.endpoint,
             "usePathStyle": True}
            for s in (backends[0], sick)
        ]  # fmt: skip
        config.write_text(json.dumps({"backends": entries}))
        proxy = run_proxy(config)
        put_direct(backends[0], bucket, "k", b"x")
        with pytest.raises(ClientError) as failed:
            proxy.client().list_objects_v2(Bucket=bucket)
    response = failed.value.response
    assert (response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]) == (
        503,
        "ServiceUnavailable",
    )
    assert response["Error"]["Message"] == "Backend sick cannot be listed."


def test_listing_primary_keeps_one_backend_per_page(backends, run_proxy, tmp_path, bucket):
    config = tmp_path / "c.json"
    entries = [
        {"name": s.name, "access": s.access, "secret": s.secret, "endpoint": s.endpoint,
         "usePathStyle": True}
        for s in backends
    ]  # fmt: skip
    config.write_text(json.dumps({"backends": entries, "listing": "primary"}))
    proxy = run_proxy(config)
    put_direct(backends[0], bucket, "hot.txt", b"h")
    put_direct(backends[1], bucket, "warm.txt", b"w")
    listed = proxy.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in listed] == ["hot.txt"]
