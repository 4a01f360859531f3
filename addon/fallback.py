"""The not-found rule: which backend answers mean "not here, ask the next backend".

Decided on status and error code, never on message text (backends word their messages
differently). A 404 about a sub-resource of something that exists on this backend (NoSuchTagSet,
NoSuchBucketPolicy, NoSuchUpload, NoSuchVersion, ...) is that backend's answer: serving the
sub-resource from another backend would mix two different objects.
"""

from __future__ import annotations

import re

NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket"})
# Reads whose 404 can only say that the bucket or key is missing: decided on the status alone,
# before the body arrives (their versioned forms go to the primary only, so no NoSuchVersion).
_PLAIN_READS = frozenset({"GetObject", "HeadObject", "HeadBucket", "ListObjects", "ListObjectsV2"})
_CODE = re.compile(rb"<Code>\s*([^<\s]+)\s*</Code>")


def error_code(body: bytes) -> str | None:
    """The Code element of an S3 XML error body, or None.

    A search rather than an XML parse: it runs on every 404 and must not care about namespaces.
    """
    match = _CODE.search(body)
    return match[1].decode("ascii", "replace") if match else None


def not_found_by_status(method: str, operation: str, status: int) -> bool:
    """A "not found" that needs no body to tell: any 404 to HEAD or to a plain read."""
    return status == 404 and (method.upper() == "HEAD" or operation in _PLAIN_READS)


def is_not_found(method: str, status: int, body: bytes) -> bool:
    if status != 404:
        return False
    if method.upper() == "HEAD":
        return True  # a HEAD answer has no body, so no code to tell the cases apart
    return error_code(body) in NOT_FOUND_CODES
