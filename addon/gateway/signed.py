"""A client's request once its signature holds (`Signed`), and the checks of S3's limits and
of a copy's source that the router makes before choosing backends; `resource` names a request
in S3's errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from addon.auth.checks import Verified
from addon.gateway.after_steps import COPIES, Asked
from addon.namespace.fallback_copy import source_of
from addon.s3.errors import S3Error
from addon.s3.operations import Operation, Target

if TYPE_CHECKING:
    from mitmproxy import http


@dataclass(frozen=True)
class Signed:
    """A client's request whose signature holds: what it addresses and asks."""

    method: str  # upper case
    raw_path: str
    virtual: str | None  # the bucket its Host names (virtual-hosted), else None
    target: Target
    query: list[tuple[str, str]]  # without the parameters that carried a presigned signature
    verified: Verified
    headers: http.Headers
    form: bytes | None = None  # a browser form upload's boundary: its form is its signature


def asked(signed: Signed, operation: Operation) -> Asked:
    """The request as the after-step rules see it."""
    target = signed.target
    return Asked(
        operation.name,
        operation.route,
        signed.method,
        target.bucket,
        target.key,
        signed.headers,
        signed.query,
    )


MAX_HEADER_SECTION = 8192  # S3's: the header fields and the query together
MAX_KEY_BYTES = 1024


def check_size(request: http.Request) -> None:
    """S3's limit on a request's header section, before anything else is looked at."""
    size = len(request.path.partition("?")[2])
    size += sum(len(k) + len(v) + 4 for k, v in request.headers.items(multi=True))
    if size > MAX_HEADER_SECTION:
        raise S3Error(
            "RequestHeaderSectionTooLarge", extra={"MaxSizeAllowed": str(MAX_HEADER_SECTION)}
        )


def check_key(target: Target) -> None:
    """S3's limit on a key's length, in bytes."""
    key_bytes = len((target.key or "").encode("utf-8", "surrogateescape"))
    if key_bytes > MAX_KEY_BYTES:
        raise S3Error(
            "KeyTooLongError",
            extra={"Size": str(key_bytes), "MaxSizeAllowed": str(MAX_KEY_BYTES)},
        )


def copied_bucket(operation: str, headers: http.Headers) -> str | None:
    """The bucket a copy reads from (None for other operations); a source that names no bucket
    and key is refused, as S3 refuses it: it could not be checked."""
    if operation not in COPIES:
        return None
    source = source_of(headers.get("x-amz-copy-source", ""))
    if source is None:
        raise S3Error(
            "InvalidArgument",
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
            extra={"ArgumentName": "x-amz-copy-source"},
        )
    return source[0]


def resource(target: Target) -> str:
    """The Resource S3 names in its errors: /bucket/key."""
    return "/" + "/".join(p for p in (target.bucket, target.key) if p is not None)
