"""What every signature form checks the same way: the signing keys, the clock, the result.

SigV4 (`client_auth`), SigV2 (`sigv2`) and browser forms (`post_auth`) differ in what they sign,
not in these. A SigV4 credential's scope is checked here for all three; a form reports its
mistakes as a presigned URL does (QUERY).
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


class HeaderIndex:
    """A request's headers by name, in one pass over mitmproxy's fields: what mitmproxy's
    Headers answers (names without case, repeated values folded with ", ", each name once in
    iteration, as first spelled), where each of its lookups scans every field again."""

    __slots__ = ("_names", "_values")

    def __init__(self, fields: Iterable[tuple[bytes, bytes]]) -> None:
        values: dict[bytes, list[str]] = {}
        names: list[str] = []
        for name, value in fields:
            lowered = name.lower()
            text = value.decode("utf-8", "surrogateescape")
            found = values.get(lowered)
            if found is None:
                values[lowered] = [text]
                names.append(name.decode("utf-8", "surrogateescape"))
            else:
                found.append(text)
        self._values, self._names = values, names

    @classmethod
    def of(cls, headers: HeaderLookup) -> HeaderLookup:
        """An index of mitmproxy's Headers; any other lookup as it is."""
        fields = getattr(headers, "fields", None)
        return headers if fields is None else cls(fields)

    @overload
    def get(self, name: str, /) -> str | None: ...
    @overload
    def get(self, name: str, default: str, /) -> str: ...
    def get(self, name: str, default: str | None = None, /) -> str | None:
        found = self._values.get(name.encode("utf-8", "surrogateescape").lower())
        return ", ".join(found) if found else default

    def get_all(self, name: str) -> list[str]:
        return list(self._values.get(name.encode("utf-8", "surrogateescape").lower(), ()))

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)


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


class Flavor:
    """Header auth and query auth report the same mistakes under different codes."""

    def __init__(self, code: str, prefix: str) -> None:
        self.code, self.prefix = code, prefix

    def malformed(self, detail: str, **extra: str) -> S3Error:
        return S3Error(self.code, f"{self.prefix}{detail}", extra=extra)


HEADER = Flavor("AuthorizationHeaderMalformed", "The authorization header is malformed; ")
QUERY = Flavor(
    "AuthorizationQueryParametersError", "Error parsing the X-Amz-Credential parameter; "
)


def credential_scope(
    flavor: Flavor, credential: str, timestamp: str, region: str
) -> tuple[str, str, str, str, str]:
    """`AK/date/region/s3/aws4_request` checked against the request's timestamp and the proxy's
    region: access key, date, region, service, terminal."""
    parts = credential.split("/")
    if len(parts) != 5:
        raise flavor.malformed(
            'the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/'
            'aws4_request".'
        )
    access, date, claimed, service, terminal = parts
    if not access:
        raise flavor.malformed("a non-empty Access Key (AKID) must be provided in the credential.")
    if date != timestamp[:8]:
        raise flavor.malformed("Invalid credential date. Date is not the same as X-Amz-Date.")
    if claimed != region:
        raise flavor.malformed(
            f"the region '{claimed}' is wrong; expecting '{region}'", Region=region
        )
    if service != "s3":
        raise flavor.malformed(f'incorrect service "{service}". This endpoint belongs to "s3".')
    if terminal != "aws4_request":
        raise flavor.malformed(
            f'incorrect terminal "{terminal}". This endpoint uses "aws4_request".'
        )
    return access, date, claimed, service, terminal


def unsupported_algorithm(algorithm: str) -> S3Error:
    if algorithm.startswith("AWS4-ECDSA"):
        return S3Error("NotImplemented", "SigV4a (AWS4-ECDSA-P256-SHA256) is not supported.")
    return S3Error("InvalidArgument", f"Unsupported Authorization Type: {algorithm}")


def query_algorithm(algorithm: str) -> None:
    """A presigned URL's (or a form's) X-Amz-Algorithm: SigV4's, or S3's refusal."""
    if algorithm != sigv4.ALGORITHM:
        if algorithm.startswith("AWS4-ECDSA"):
            raise unsupported_algorithm(algorithm)
        raise S3Error(
            "AuthorizationQueryParametersError", 'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"'
        )


def query_timestamp(timestamp: str) -> float:
    """A presigned URL's (or a form's) X-Amz-Date as epoch seconds, or S3's refusal."""
    request_time = parse_timestamp(timestamp)
    if request_time is None:
        raise S3Error(
            "AuthorizationQueryParametersError",
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"",
        )
    return request_time


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
