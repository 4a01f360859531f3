"""The S3 operation table: method + path + sub-resource -> operation and where it is routed.

Pure data and one lookup, no I/O. Reads are listed explicitly; anything not listed as a read is
routed to the primary only, so an operation we do not know can never write to a fallback.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, replace
from urllib.parse import unquote


class Route(enum.Enum):
    PRIMARY = "primary"  # writes, multipart, versioning: the primary backend only
    FALLBACK = "fallback"  # reads: the primary, then each next backend on "not found"
    ALL = "all"  # ListBuckets: every backend, answers merged


class Scope(enum.Enum):
    SERVICE = "service"  # GET /
    BUCKET = "bucket"  # /bucket
    OBJECT = "object"  # /bucket/key


@dataclass(frozen=True)
class Operation:
    name: str
    route: Route
    # A 404 can only say that the bucket or key is missing (not a sub-resource of one that
    # exists), so the status alone means "not found here".
    miss_by_status: bool = False


@dataclass(frozen=True)
class Target:
    """What a request addresses: bucket and key are decoded, None when absent."""

    bucket: str | None
    key: str | None

    @property
    def scope(self) -> Scope:
        if self.bucket is None:
            return Scope.SERVICE
        return Scope.BUCKET if self.key is None else Scope.OBJECT


P, F = Route.PRIMARY, Route.FALLBACK

# Bucket sub-resources with the usual Get/Put/Delete trio: GET reads (falls back on NoSuchBucket),
# PUT and DELETE write.
_BUCKET_CONFIGS = {
    "accelerate": "BucketAccelerateConfiguration",
    "acl": "BucketAcl",
    "analytics": "BucketAnalyticsConfiguration",
    "cors": "BucketCors",
    "encryption": "BucketEncryption",
    "intelligent-tiering": "BucketIntelligentTieringConfiguration",
    "inventory": "BucketInventoryConfiguration",
    "lifecycle": "BucketLifecycleConfiguration",
    "logging": "BucketLogging",
    "metrics": "BucketMetricsConfiguration",
    "notification": "BucketNotificationConfiguration",
    "object-lock": "ObjectLockConfiguration",
    "ownershipControls": "BucketOwnershipControls",
    "policy": "BucketPolicy",
    "publicAccessBlock": "PublicAccessBlock",
    "replication": "BucketReplication",
    "requestPayment": "BucketRequestPayment",
    "tagging": "BucketTagging",
    "versioning": "BucketVersioning",
    "website": "BucketWebsite",
}


def _bucket_config_rows() -> Iterable[tuple[tuple[str, Scope, str], Operation]]:
    for sub, noun in _BUCKET_CONFIGS.items():
        yield ("GET", Scope.BUCKET, sub), Operation(f"Get{noun}", F)
        yield ("PUT", Scope.BUCKET, sub), Operation(f"Put{noun}", P)
        yield ("DELETE", Scope.BUCKET, sub), Operation(f"Delete{noun}", P)


# (method, scope, sub-resource or "" for none) -> operation.
TABLE: dict[tuple[str, Scope, str], Operation] = {
    ("GET", Scope.SERVICE, ""): Operation("ListBuckets", Route.ALL),
    # Buckets
    ("GET", Scope.BUCKET, ""): Operation("ListObjects", F, miss_by_status=True),
    ("GET", Scope.BUCKET, "list-type"): Operation("ListObjectsV2", F, miss_by_status=True),
    ("HEAD", Scope.BUCKET, ""): Operation("HeadBucket", F, miss_by_status=True),
    ("GET", Scope.BUCKET, "location"): Operation("GetBucketLocation", F),
    ("GET", Scope.BUCKET, "policyStatus"): Operation("GetBucketPolicyStatus", F),
    ("PUT", Scope.BUCKET, ""): Operation("CreateBucket", P),
    ("DELETE", Scope.BUCKET, ""): Operation("DeleteBucket", P),
    ("POST", Scope.BUCKET, ""): Operation("PostObject", P),
    ("POST", Scope.BUCKET, "delete"): Operation("DeleteObjects", P),
    # Versioning and multipart live on the primary only (the seed's documented limitations).
    ("GET", Scope.BUCKET, "versions"): Operation("ListObjectVersions", P),
    ("GET", Scope.BUCKET, "uploads"): Operation("ListMultipartUploads", P),
    **dict(_bucket_config_rows()),
    # Objects
    ("GET", Scope.OBJECT, ""): Operation("GetObject", F, miss_by_status=True),
    ("HEAD", Scope.OBJECT, ""): Operation("HeadObject", F, miss_by_status=True),
    ("PUT", Scope.OBJECT, ""): Operation("PutObject", P),
    ("DELETE", Scope.OBJECT, ""): Operation("DeleteObject", P),
    ("GET", Scope.OBJECT, "acl"): Operation("GetObjectAcl", F),
    ("PUT", Scope.OBJECT, "acl"): Operation("PutObjectAcl", P),
    ("GET", Scope.OBJECT, "tagging"): Operation("GetObjectTagging", F),
    ("PUT", Scope.OBJECT, "tagging"): Operation("PutObjectTagging", P),
    ("DELETE", Scope.OBJECT, "tagging"): Operation("DeleteObjectTagging", P),
    ("GET", Scope.OBJECT, "attributes"): Operation("GetObjectAttributes", F),
    ("GET", Scope.OBJECT, "retention"): Operation("GetObjectRetention", F),
    ("PUT", Scope.OBJECT, "retention"): Operation("PutObjectRetention", P),
    ("GET", Scope.OBJECT, "legal-hold"): Operation("GetObjectLegalHold", F),
    ("PUT", Scope.OBJECT, "legal-hold"): Operation("PutObjectLegalHold", P),
    ("GET", Scope.OBJECT, "torrent"): Operation("GetObjectTorrent", F),
    ("POST", Scope.OBJECT, "restore"): Operation("RestoreObject", P),
    ("POST", Scope.OBJECT, "select"): Operation("SelectObjectContent", P),
    ("POST", Scope.OBJECT, "uploads"): Operation("CreateMultipartUpload", P),
    ("PUT", Scope.OBJECT, "uploadId"): Operation("UploadPart", P),
    ("GET", Scope.OBJECT, "uploadId"): Operation("ListParts", P),
    ("POST", Scope.OBJECT, "uploadId"): Operation("CompleteMultipartUpload", P),
    ("DELETE", Scope.OBJECT, "uploadId"): Operation("AbortMultipartUpload", P),
}

# Query keys that select a sub-resource.
SUBRESOURCES: tuple[str, ...] = (
    "uploads",
    "uploadId",
    "list-type",
    "versions",
    "location",
    "policyStatus",
    "delete",
    "attributes",
    "retention",
    "legal-hold",
    "torrent",
    "restore",
    "select",
    *_BUCKET_CONFIGS,
)
_SUBRESOURCE_ORDER = {name: place for place, name in enumerate(SUBRESOURCES)}

# Header-selected variants of a table row: same route, the name a user knows from the S3 docs.
_COPY_VARIANTS = {"PutObject": "CopyObject", "UploadPart": "UploadPartCopy"}


def parse_path(path: str) -> Target:
    """Split a path-style request path (`/bucket/key`, query removed) into bucket and key.

    The key keeps everything after the first slash past the bucket, including empty segments
    and a trailing slash, as S3 does.
    """
    bucket, sep, key = path.lstrip("/").partition("/")
    if not bucket:
        return Target(None, None)
    return Target(unquote(bucket), unquote(key) if sep and key else None)


def virtual_bucket(host_header: str, domains: Iterable[str]) -> str | None:
    """The bucket of a virtual-hosted request (`Host: bucket.<domain>`), or None."""
    host = host_header.lower()
    if not host.endswith("]"):  # not a bare IPv6 literal: drop the port
        host = host.rpartition(":")[0] if ":" in host else host
    for domain in domains:
        if host.endswith("." + domain):
            return host[: -len(domain) - 1]
    return None


def parse_virtual(bucket: str, path: str) -> Target:
    """A virtual-hosted request's path is all key."""
    return Target(bucket, unquote(path[1:]) or None)


def subresource(query_keys: Iterable[str]) -> str:
    """The first of SUBRESOURCES (in its order) that the query names, or ""."""
    found = [key for key in set(query_keys) if key in _SUBRESOURCE_ORDER]
    return min(found, key=_SUBRESOURCE_ORDER.__getitem__) if found else ""


def classify(
    method: str, target: Target, query_keys: Iterable[str], copy_source: bool = False
) -> Operation | None:
    """The operation a request performs, or None when S3 has no such operation."""
    method = method.upper()
    keys = list(query_keys)
    sub = subresource(keys)
    op = TABLE.get((method, target.scope, sub))
    if op is None and sub:
        # An unknown combination such as GET /bucket/key?policy: S3 answers it as the plain
        # operation on that path, so do we.
        op = TABLE.get((method, target.scope, ""))
    if op is None:
        return None
    if copy_source and op.name in _COPY_VARIANTS:
        op = replace(op, name=_COPY_VARIANTS[op.name])
    if "versionId" in keys and op.route is Route.FALLBACK:
        # Versions live on the primary only (the seed's documented limitation): a version id
        # names an object version of the primary, so asking another backend would be a guess.
        op = replace(op, route=Route.PRIMARY, miss_by_status=False)
    return op
