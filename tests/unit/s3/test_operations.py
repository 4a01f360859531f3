"""addon.operations: path-style paths to bucket and key; S3 requests to an operation and route."""

from __future__ import annotations

import itertools
import random

import pytest

from addon.s3.operations import (
    SUBRESOURCES,
    TABLE,
    Operation,
    Route,
    Scope,
    Target,
    classify,
    parse_path,
    parse_virtual,
    subresource,
    virtual_bucket,
)

P, F, ALL = Route.PRIMARY, Route.FALLBACK, Route.ALL


def named(operation: Operation | None) -> tuple[str, Route] | None:
    return None if operation is None else (operation.name, operation.route)


WRITE_METHODS = ("PUT", "POST", "DELETE")

# --- parse_path ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "bucket", "key"),
    [
        pytest.param("/", None, None, id="service-root"),
        pytest.param("", None, None, id="empty"),
        pytest.param("/bucket", "bucket", None, id="bucket-only"),
        pytest.param("/bucket/", "bucket", None, id="bucket-slash"),
        pytest.param("/bucket/key.txt", "bucket", "key.txt", id="key"),
        pytest.param("/bucket/a/b/c.txt", "bucket", "a/b/c.txt", id="key-with-slashes"),
        pytest.param("/bucket/dir/", "bucket", "dir/", id="trailing-slash-kept"),
        pytest.param("/bucket//key", "bucket", "/key", id="empty-segment-kept"),
        pytest.param("/bucket/my%20file.txt", "bucket", "my file.txt", id="percent-20"),
        pytest.param("/bucket/a%2Bb", "bucket", "a+b", id="percent-2B"),
        pytest.param("/bucket/a+b", "bucket", "a+b", id="raw-plus-is-plus"),
        pytest.param("/bucket/100%25", "bucket", "100%", id="percent-25"),
        pytest.param("/bucket/a%2Fb", "bucket", "a/b", id="encoded-slash"),
        pytest.param("/bucket/%C3%A9t%C3%A9/%E6%97%A5", "bucket", "été/日", id="utf8"),
        pytest.param("/bucket/(x)!*'", "bucket", "(x)!*'", id="raw-reserved"),
    ],
)
def test_parse_path(path: str, bucket: str | None, key: str | None) -> None:
    assert parse_path(path) == Target(bucket, key)


@pytest.mark.parametrize(
    ("path", "scope"),
    [
        ("/", Scope.SERVICE),
        ("/bucket", Scope.BUCKET),
        ("/bucket/", Scope.BUCKET),
        ("/bucket/k", Scope.OBJECT),
        ("/bucket/dir/", Scope.OBJECT),
    ],
)
def test_target_scope(path: str, scope: Scope) -> None:
    assert parse_path(path).scope is scope


# --- classify: a table of real S3 requests ------------------------------------------------------

# (operation name, method, path, query keys, x-amz-copy-source present, route)
REQUESTS = [
    ("ListBuckets", "GET", "/", [], False, ALL),
    ("ListBuckets", "GET", "/", ["max-buckets", "x-id"], False, ALL),
    ("ListObjects", "GET", "/bucket", [], False, F),
    ("ListObjects", "GET", "/bucket", ["prefix", "delimiter", "marker", "max-keys"], False, F),
    ("ListObjectsV2", "GET", "/bucket", ["list-type"], False, F),
    ("ListObjectsV2", "GET", "/bucket", ["list-type", "prefix", "continuation-token"], False, F),
    ("ListObjectsV2", "GET", "/bucket/", ["list-type", "encoding-type"], False, F),
    ("HeadBucket", "HEAD", "/bucket", [], False, F),
    ("GetBucketLocation", "GET", "/bucket", ["location"], False, F),
    ("GetObject", "GET", "/bucket/key", [], False, F),
    ("GetObject", "GET", "/bucket/key", ["x-id"], False, F),
    ("GetObject", "GET", "/bucket/key", ["response-content-type", "response-expires"], False, F),
    ("GetObject", "GET", "/bucket/key", ["partNumber"], False, F),
    ("HeadObject", "HEAD", "/bucket/key", [], False, F),
    ("HeadObject", "HEAD", "/bucket/key", ["x-id"], False, F),
    ("HeadObject", "HEAD", "/bucket/key", ["partNumber"], False, F),
    ("HeadObject", "HEAD", "/bucket/dir/", [], False, F),
    ("GetObjectTagging", "GET", "/bucket/key", ["tagging"], False, F),
    ("GetObjectAcl", "GET", "/bucket/key", ["acl"], False, F),
    ("GetObjectAttributes", "GET", "/bucket/key", ["attributes"], False, F),
    ("GetBucketTagging", "GET", "/bucket", ["tagging"], False, F),
    ("GetBucketPolicy", "GET", "/bucket", ["policy"], False, F),
    ("GetBucketAcl", "GET", "/bucket", ["acl"], False, F),
    ("GetBucketCors", "GET", "/bucket", ["cors"], False, F),
    ("GetBucketLifecycleConfiguration", "GET", "/bucket", ["lifecycle"], False, F),
    ("GetBucketVersioning", "GET", "/bucket", ["versioning"], False, F),
    ("GetBucketPolicyStatus", "GET", "/bucket", ["policyStatus"], False, F),
    # Writes
    ("PutObject", "PUT", "/bucket/key", [], False, P),
    ("PutObject", "PUT", "/bucket/key", ["x-id"], False, P),
    ("PutObject", "PUT", "/bucket/dir/", [], False, P),
    ("CopyObject", "PUT", "/bucket/key", ["x-id"], True, P),
    ("DeleteObject", "DELETE", "/bucket/key", [], False, P),
    ("DeleteObject", "DELETE", "/bucket/key", ["x-id"], False, P),
    ("DeleteObjects", "POST", "/bucket", ["delete"], False, P),
    ("CreateBucket", "PUT", "/bucket", [], False, P),
    ("DeleteBucket", "DELETE", "/bucket", [], False, P),
    ("PutBucketTagging", "PUT", "/bucket", ["tagging"], False, P),
    ("DeleteBucketTagging", "DELETE", "/bucket", ["tagging"], False, P),
    ("PutBucketPolicy", "PUT", "/bucket", ["policy"], False, P),
    ("DeleteBucketPolicy", "DELETE", "/bucket", ["policy"], False, P),
    ("PutBucketAcl", "PUT", "/bucket", ["acl"], False, P),
    ("PutBucketCors", "PUT", "/bucket", ["cors"], False, P),
    ("DeleteBucketCors", "DELETE", "/bucket", ["cors"], False, P),
    ("PutBucketLifecycleConfiguration", "PUT", "/bucket", ["lifecycle"], False, P),
    ("PutBucketVersioning", "PUT", "/bucket", ["versioning"], False, P),
    ("PutObjectAcl", "PUT", "/bucket/key", ["acl"], False, P),
    ("PutObjectTagging", "PUT", "/bucket/key", ["tagging"], False, P),
    ("DeleteObjectTagging", "DELETE", "/bucket/key", ["tagging"], False, P),
    ("PostObject", "POST", "/bucket", [], False, P),
    # Multipart, every step
    ("CreateMultipartUpload", "POST", "/bucket/key", ["uploads"], False, P),
    ("CreateMultipartUpload", "POST", "/bucket/key", ["uploads", "x-id"], False, P),
    ("UploadPart", "PUT", "/bucket/key", ["partNumber", "uploadId"], False, P),
    ("UploadPart", "PUT", "/bucket/key", ["partNumber", "uploadId", "x-id"], False, P),
    ("UploadPartCopy", "PUT", "/bucket/key", ["partNumber", "uploadId"], True, P),
    ("ListParts", "GET", "/bucket/key", ["uploadId"], False, P),
    ("ListParts", "GET", "/bucket/key", ["uploadId", "max-parts"], False, P),
    ("CompleteMultipartUpload", "POST", "/bucket/key", ["uploadId"], False, P),
    ("AbortMultipartUpload", "DELETE", "/bucket/key", ["uploadId"], False, P),
    ("AbortMultipartUpload", "DELETE", "/bucket/key", ["uploadId", "x-id"], False, P),
    ("ListMultipartUploads", "GET", "/bucket", ["uploads"], False, P),
    ("ListMultipartUploads", "GET", "/bucket", ["uploads", "prefix", "key-marker"], False, P),
    # Versioning lives on the primary only
    ("GetObject", "GET", "/bucket/key", ["versionId"], False, P),
    ("GetObject", "GET", "/bucket/key", ["versionId", "response-content-type"], False, P),
    ("HeadObject", "HEAD", "/bucket/key", ["versionId"], False, P),
    ("DeleteObject", "DELETE", "/bucket/key", ["versionId"], False, P),
    ("ListObjectVersions", "GET", "/bucket", ["versions"], False, P),
    ("ListObjectVersions", "GET", "/bucket", ["versions", "prefix", "key-marker"], False, P),
]


def _id(row: tuple) -> str:
    name, method, path, keys, copy, _ = row
    return f"{name}:{method} {path}?{'&'.join(keys)}{' +copy' if copy else ''}"


@pytest.mark.parametrize("row", REQUESTS, ids=[_id(r) for r in REQUESTS])
def test_classify(row: tuple) -> None:
    name, method, path, keys, copy_source, route = row
    assert named(classify(method, parse_path(path), keys, copy_source)) == (name, route)


def test_classify_takes_the_method_in_any_case() -> None:
    assert named(classify("get", parse_path("/bucket/key"), [])) == ("GetObject", F)


def test_classify_ignores_query_key_order() -> None:
    target = parse_path("/bucket/key")
    assert classify("PUT", target, ["uploadId", "partNumber"]) == classify(
        "PUT", target, ["partNumber", "uploadId"]
    )


def test_classify_accepts_any_iterable_of_query_keys() -> None:
    keys = (k for k in ["partNumber", "uploadId"])
    assert named(classify("PUT", parse_path("/bucket/key"), keys)) == ("UploadPart", P)


def test_unknown_subresource_is_the_plain_operation_on_that_path() -> None:
    """GET /bucket/key?policy is not an S3 operation; S3 answers it as GetObject."""
    assert named(classify("GET", parse_path("/bucket/key"), ["policy"])) == ("GetObject", F)


def test_copy_source_does_not_rename_a_read() -> None:
    assert named(classify("GET", parse_path("/bucket/key"), [], True)) == ("GetObject", F)


@pytest.mark.parametrize(
    ("method", "path", "keys"),
    [
        ("PATCH", "/bucket/key", []),
        ("PATCH", "/bucket", []),
        ("OPTIONS", "/bucket/key", []),
        ("POST", "/bucket/key", []),  # POST on an object needs uploads, uploadId, restore, select
        ("PUT", "/", []),
        ("DELETE", "/", []),
        ("HEAD", "/", []),
    ],
)
def test_no_such_s3_operation_is_none(method: str, path: str, keys: list[str]) -> None:
    assert classify(method, parse_path(path), keys) is None


# --- properties over the whole table -----------------------------------------------------------


def test_every_write_row_routes_primary() -> None:
    writes = {k: op for k, op in TABLE.items() if k[0] in WRITE_METHODS}
    assert writes  # the table does list writes
    assert {k: op for k, op in writes.items() if op.route is not P} == {}


def test_only_get_and_head_rows_fall_back() -> None:
    falling = {k for k, op in TABLE.items() if op.route is F}
    assert falling
    assert {k for k in falling if k[0] not in ("GET", "HEAD")} == set()


def test_only_get_service_reaches_all_backends() -> None:
    assert [k for k, op in TABLE.items() if op.route is ALL] == [("GET", Scope.SERVICE, "")]


def test_table_methods_are_upper_case_s3_methods() -> None:
    assert {k[0] for k in TABLE} <= {"GET", "HEAD", "PUT", "POST", "DELETE"}


# Every query-key combination a write could carry: none, each sub-resource alone, each with
# versionId or uploadId, and keys the table does not know.
_KEY_SETS = [
    [],
    ["unknown-subresource"],
    ["x-id", "partNumber"],
    *([s] for s in SUBRESOURCES),
    *([s, "versionId"] for s in SUBRESOURCES),
    *([s, "uploadId", "partNumber"] for s in SUBRESOURCES),
]


@pytest.mark.parametrize("method", [*WRITE_METHODS, "put", "Post", "delete"])
def test_no_write_classifies_to_a_fallback_or_all_route(method: str) -> None:
    """Through classify, with every sub-resource, copy or not: a write is PRIMARY or refused."""
    wrong = []
    for path, keys, copy in itertools.product(
        ["/", "/bucket", "/bucket/key", "/bucket/dir/"], _KEY_SETS, [False, True]
    ):
        op = classify(method, parse_path(path), keys, copy)
        if op is not None and op.route is not P:
            wrong.append((path, keys, copy, op))
    assert wrong == []


# Reads of an object's sub-resources with a versionId address one version, like a versioned
# GetObject, and version ids belong to the primary (ListObjectVersions is PRIMARY).
@pytest.mark.parametrize(
    ("sub", "name"),
    [
        ("tagging", "GetObjectTagging"),
        ("acl", "GetObjectAcl"),
        ("attributes", "GetObjectAttributes"),
        ("retention", "GetObjectRetention"),
        ("legal-hold", "GetObjectLegalHold"),
    ],
)
def test_versioned_object_subresource_read_routes_primary(sub: str, name: str) -> None:
    op = classify("GET", parse_path("/bucket/key"), [sub, "versionId"])
    assert op == Operation(name, P)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("bkt.s3.test", "bkt"),
        ("bkt.s3.test:7070", "bkt"),
        ("my.dotted.bkt.S3.Test:7070", "my.dotted.bkt"),
        ("s3.test:7070", None),
        ("127.0.0.1:7070", None),
        ("bkt.other.test", None),
        ("[::1]:7070", None),
    ],
)
def test_virtual_bucket_from_host(host, expected):
    assert virtual_bucket(host, ["s3.test"]) == expected


def test_a_virtual_hosted_path_is_all_key():
    assert parse_virtual("bkt", "/dir/a%20b") == Target("bkt", "dir/a b")
    assert parse_virtual("bkt", "/") == Target("bkt", None)


def test_only_plain_reads_miss_by_status() -> None:
    """A 404 to these can only mean a missing bucket or key; any other read's 404 is told by
    its code (NoSuchTagSet is an answer, NoSuchKey a miss)."""
    by_status = {op.name for op in TABLE.values() if op.miss_by_status}
    assert by_status == {"GetObject", "HeadObject", "HeadBucket", "ListObjects", "ListObjectsV2"}
    versioned = classify("GET", parse_path("/bucket/key"), ["versionId"])
    assert versioned is not None and not versioned.miss_by_status


def test_the_subresource_is_the_first_in_the_table_s_order_that_the_query_names():
    """Found by a lookup per query key, not by a scan of every subresource per request."""
    rng = random.Random(7)
    pool = [*SUBRESOURCES, "x-id", "prefix", "max-keys", "partNumber"]
    for _ in range(2000):
        keys = rng.sample(pool, rng.randint(0, 5))
        first = next((s for s in SUBRESOURCES if s in keys), "")
        assert subresource(keys) == first, keys
