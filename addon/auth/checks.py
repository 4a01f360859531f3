"""What every signature form checks the same way: the signing keys, the clock, the result.

SigV4 (`client_auth`) and SigV2 (`sigv2`) differ in their canonical strings, not in these.
"""

from __future__ import annotations

import calendar
import email.utils
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol, overload

from addon.s3 import sigv4
from addon.s3.errors import S3Error

MAX_SKEW_SECONDS = 15 * 60
_ISO_BASIC = re.compile(r"(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z")


class HeaderLookup(Protocol):
    """What verification reads of a request's headers (mitmproxy's Headers has it all)."""

    @overload
    def get(self, name: str, /) -> str | None: ...
    @overload
    def get(self, name: str, default: str, /) -> str: ...
    def get_all(self, name: str) -> list[str]: ...
    def __iter__(self) -> Iterator[str]: ...


@dataclass(frozen=True)
class Key:
    """An access key and its secret: the root keys, or a gateway user's (`addon.auth.users`)."""

    access: str
    secret: str = field(repr=False)


class KeyTable[K: Key]:
    """Every key that clients may sign with, by access key.

    An access key is no secret (it travels in clear in every request, and S3 itself says
    InvalidAccessKeyId), so it is looked up by value; signatures are compared in constant time.
    """

    def __init__(self, keys: Iterable[K]) -> None:
        self._keys: Mapping[str, K] = {key.access: key for key in keys}

    def find(self, access: str) -> K:
        key = self._keys.get(access)
        if key is None:
            raise S3Error("InvalidAccessKeyId", extra={"AWSAccessKeyId": access})
        return key

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} keys)"


@dataclass(frozen=True)
class Verified:
    """What a verified request told us, needed to forward it."""

    signed_headers: tuple[str, ...]
    payload_hash: str
    # Query parameters that carried the signature (presigned URLs): never forwarded.
    auth_params: frozenset[str] = frozenset()
    # Signed streaming uploads: the chain the client's chunk signatures must follow.
    chunks: sigv4.ChunkChain | None = field(default=None, compare=False, repr=False)
    access: str = ""  # the access key that signed it: whose rights apply


def raw(text: str) -> bytes:
    """Bytes for a constant-time compare; mitmproxy keeps undecodable bytes as surrogates."""
    return text.encode("utf-8", "surrogateescape")


def signature_mismatch(access: str) -> S3Error:
    return S3Error("SignatureDoesNotMatch", extra={"AWSAccessKeyId": access})


def iso(epoch: float) -> str:
    return time.strftime(sigv4.TIMESTAMP_FORMAT, time.gmtime(epoch))


def parse_timestamp(value: str | None) -> float | None:
    """YYYYMMDDTHHMMSSZ as epoch seconds (by hand: strptime is slow on every request)."""
    match = _ISO_BASIC.fullmatch(value or "")
    if match is None:
        return None
    year, month, day, hour, minute, second = map(int, match.groups())
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        return None
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))


def parse_http_date(value: str) -> float | None:
    """SigV2 dates: RFC 1123 (Date) or, as some clients send x-amz-date, ISO 8601 basic."""
    iso_time = parse_timestamp(value)
    if iso_time is not None:
        return iso_time
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def check_date(shown: str, request_time: float | None, now: float) -> None:
    """A header-signed request's date: present, valid, and within the allowed clock skew."""
    if request_time is None:
        raise S3Error(
            "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header."
        )
    if abs(now - request_time) > MAX_SKEW_SECONDS:
        raise S3Error(
            "RequestTimeTooSkewed",
            extra={
                "RequestTime": shown,
                "ServerTime": iso(now),
                "MaxAllowedSkewMilliseconds": str(MAX_SKEW_SECONDS * 1000),
            },
        )


def expired(now: float, expires: float, extra: dict[str, str] | None = None) -> S3Error | None:
    """The refusal of a presigned URL past its expiry, or None."""
    if now <= expires:
        return None
    return S3Error(
        "AccessDenied",
        "Request has expired.",
        extra={**(extra or {}), "Expires": iso(expires), "ServerTime": iso(now)},
    )
