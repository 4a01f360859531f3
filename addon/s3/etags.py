"""ETags as S3 means them: one comparison for every place that asks "the same object?".

An ETag comes quoted in headers (`"9b2c..."`), as an XML entity in some listings (decoded by
the parser), sometimes unquoted (our own x-amz-meta-s3multi-source-etag), with a `W/` prefix
from some HTTP stacks, and in upper-case hex from others. A single-part upload's ETag is the
MD5 of its bytes (32 hex digits); a multipart upload's is the MD5 of its parts' MD5s and `-N`,
the part count: another part layout is another ETag, even for the same bytes. Other ETags
(SSE-KMS, some servers) are opaque and compared exactly.
"""

from __future__ import annotations

import re

_MD5_SHAPED = re.compile(r"[0-9a-fA-F]{32}(-[0-9]+)?")
_MD5 = re.compile(r"[0-9a-f]{32}")


def normal_etag(etag: str) -> str:
    """The ETag without spaces, a `W/` prefix or its quotes; an MD5-shaped value (32 hex digits,
    an optional -N) in lower case; any other value as it is."""
    value = etag.strip()
    if value.startswith("W/"):
        value = value[2:]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return value.lower() if _MD5_SHAPED.fullmatch(value) else value


def same_etag(a: str | None, b: str | None) -> bool:
    """Both present and the same once normalised."""
    return a is not None and b is not None and normal_etag(a) == normal_etag(b)


def md5_of(etag: str) -> str | None:
    """The MD5 an ETag is (a single-part upload's, unencrypted or SSE-S3), else None."""
    value = normal_etag(etag)
    return value if _MD5.fullmatch(value) else None
