"""What describes an object beside its bytes, when the proxy copies it from one backend to
another: its content headers, its user metadata and its tags.

A copy (`fallback_copy`, `addon.migration`) reads them from the source backend's answer and
writes them with the object on the primary, so the copy is served as the source was.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlencode

from addon.config.settings import Backend
from addon.s3 import sigv4
from addon.s3 import xml as s3_xml
from addon.s3.content_encoding import stored_encoding
from addon.upstream.backend_client import BackendClient

# The headers that describe the object (as S3 stores them with it), beside x-amz-meta-*.
CONTENT = frozenset(
    {
        "content-type",
        "content-encoding",
        "content-language",
        "content-disposition",
        "cache-control",
        "expires",
    }
)
_MAX_ANSWER = 64 * 1024
_MAX_TAGGING = 64 * 1024  # ten tags of S3's largest are under 3 KiB
# A copy to the primary names the source's ETag here: a later drain tells a current copy by it,
# a delete tells a copy of what it deleted.
SOURCE_ETAG = "x-amz-meta-s3multi-source-etag"
# A replica's copy made by the proxy names the primary here: a key the primary no longer has and
# a replica has with it was deleted (a miss); one without it is the replica's own, from before.
REPLICA_MARK = "x-amz-meta-s3multi-replica"


def describes_object(name: str) -> bool:
    """Whether a header (lower case) is part of what S3 stores with the object."""
    return name in CONTENT or name.startswith("x-amz-meta-")


def described(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The headers of an answer that describe its object, to write with a copy of it.

    `aws-chunked` is how a body was sent, not how it is stored: SeaweedFS keeps it in the
    Content-Encoding of objects uploaded that way, and a copy sent plainly must not claim it.
    """
    kept = []
    for name, value in headers:
        lname = name.lower()
        if not describes_object(lname):
            continue
        if lname == "content-encoding":
            value = stored_encoding(value)
            if not value:
                continue
        kept.append((lname, value))
    return kept


async def tags_of(
    client: BackendClient, backend: Backend, bucket: str, key: str
) -> list[tuple[str, str]]:
    """The object's tags on `backend` (none when it will not say)."""
    async with client.request(
        backend, "GET", bucket, sigv4.key_path(key), query="tagging="
    ) as reply:
        body = await reply.read(_MAX_TAGGING)
    if reply.status != 200:
        return []
    document = s3_xml.root(body, "Tagging")
    tag_set = s3_xml.child(document, "TagSet")
    return [
        (s3_xml.text(tag, "Key", strip=False), s3_xml.text(tag, "Value", strip=False))
        for tag in (tag_set if tag_set is not None else [])
    ]


async def delete_if_match(
    client: BackendClient, backend: Backend, bucket: str, key: str, etag: str
) -> tuple[int, bytes]:
    """DELETE the object if it is still the one with this ETag; the status and the answer."""
    headers = [("if-match", etag)]
    async with client.request(
        backend, "DELETE", bucket, sigv4.key_path(key), headers=headers
    ) as reply:
        return reply.status, await reply.read(_MAX_ANSWER)


def tagging_header(tags: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The x-amz-tagging header that gives a written object these tags (none for no tags)."""
    return [("x-amz-tagging", urlencode(tags))] if tags else []
