"""What a gateway user may do: the right each S3 operation needs, the rights of each role.

Every operation of the table (`addon.s3.operations`) needs one right on the bucket it addresses:
list, read or write. Roles grant rights (readonly: read and list; user and admin: all three), a
user's `buckets` globs limit them to the buckets that match. A copy also needs read on its
source bucket. Pure decisions, no I/O: `check` raises S3's AccessDenied before anything is sent.
"""

from __future__ import annotations

import enum
import fnmatch
from dataclasses import dataclass

from addon.auth.checks import Key
from addon.s3.errors import S3Error


class Right(enum.Enum):
    LIST = "list"
    READ = "read"
    WRITE = "write"


class Role(enum.Enum):
    ADMIN = "admin"  # every right (the root keys' role)
    USER = "user"  # every right, on its buckets
    READONLY = "readonly"  # read and list, on its buckets


GRANTS: dict[Role, frozenset[Right]] = {
    Role.ADMIN: frozenset(Right),
    Role.USER: frozenset(Right),
    Role.READONLY: frozenset({Right.READ, Right.LIST}),
}

LISTS = frozenset(
    {
        "ListBuckets",
        "ListObjects",
        "ListObjectsV2",
        "ListObjectVersions",
        "ListMultipartUploads",
        "ListParts",
    }
)
# POSTs that change nothing: S3 selects from an object (IAM's s3:GetObject).
_READS_BY_POST = frozenset({"SelectObjectContent"})


def needs(operation: str) -> Right:
    """The right an operation needs on its bucket. Get*, Head* and SelectObjectContent read (an
    object, a bucket, any sub-resource: acl, policy, tagging, ...); the listings list; every
    other operation writes, and so does one this module does not know: nothing unknown is let
    through as a read."""
    if operation in LISTS:
        return Right.LIST
    if operation.startswith(("Get", "Head")) or operation in _READS_BY_POST:
        return Right.READ
    return Right.WRITE


@dataclass(frozen=True)
class User(Key):
    """A key clients sign with, and what it may do."""

    role: Role
    buckets: tuple[str, ...] = ()  # globs (fnmatch, case-sensitive); () for every bucket

    def sees(self, bucket: str) -> bool:
        return not self.buckets or any(fnmatch.fnmatchcase(bucket, g) for g in self.buckets)

    def may(self, right: Right, bucket: str | None) -> bool:
        """`bucket` None: the service itself (ListBuckets, which shows only what it sees)."""
        return right in GRANTS[self.role] and (bucket is None or self.sees(bucket))


def check(user: User, operation: str, bucket: str | None, copy_source: str | None = None) -> None:
    """Raise AccessDenied unless `user` may perform `operation` on `bucket` and, for a copy,
    read its source bucket `copy_source`."""
    right = needs(operation)
    if not user.may(right, bucket):
        raise denied(user, right, bucket)
    if copy_source is not None and not user.may(Right.READ, copy_source):
        raise denied(user, Right.READ, copy_source)


def denied(user: User, right: Right, bucket: str | None) -> S3Error:
    """S3's AccessDenied, saying which key lacks which right (the client's own access key)."""
    where = f" bucket {bucket}" if bucket is not None else ""
    return S3Error(
        "AccessDenied",
        f"Access Denied: {user.access} ({user.role.value}) may not {right.value}{where}.",
    )
