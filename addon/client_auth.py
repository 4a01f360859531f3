"""Client authentication: is this request signed with the proxy's root keys?

Checks run in the order a careful S3 server runs them, so that a client gets the error S3 would
give it. Nothing here knows about mitmproxy: the caller passes the request's parts.
"""

from __future__ import annotations

import calendar
import hmac
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from addon import sigv4
from addon.errors import S3Error

MAX_SKEW_SECONDS = 15 * 60
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
# Payload hashes whose body is not a plain copy of the object; issue #3 covers them.
STREAMING_PREFIX = "STREAMING-"
_AUTH_PARTS = re.compile(r"\s*(Credential|SignedHeaders|Signature)\s*=\s*([^,\s]*)\s*")


class HeaderLookup(Protocol):
    def get(self, name: str, default: str | None = None, /) -> str | None: ...
    def get_all(self, name: str) -> list[str]: ...
    def keys(self): ...


@dataclass(frozen=True)
class RootKeys:
    access: str
    secret: str = field(repr=False)


@dataclass(frozen=True)
class Verified:
    """What a verified request told us, needed to forward it."""

    signed_headers: tuple[str, ...]
    payload_hash: str


def _malformed(detail: str) -> S3Error:
    return S3Error(
        "AuthorizationHeaderMalformed", f"The authorization header is malformed; {detail}"
    )


def _parse_timestamp(value: str | None) -> float | None:
    try:
        return calendar.timegm(time.strptime(value or "", sigv4.TIMESTAMP_FORMAT))
    except ValueError:
        return None


def _raw(text: str) -> bytes:
    """Bytes for a constant-time compare; mitmproxy keeps undecodable bytes as surrogates."""
    return text.encode("utf-8", "surrogateescape")


def _iso(epoch: float) -> str:
    return time.strftime(sigv4.TIMESTAMP_FORMAT, time.gmtime(epoch))


class HeaderAuth:
    """Verifies `Authorization: AWS4-HMAC-SHA256 ...` requests against the root keys."""

    def __init__(self, root: RootKeys, region: str, clock: Callable[[], float] = time.time):
        self.root = root
        self.region = region
        self.clock = clock

    def verify(
        self,
        method: str,
        raw_path: str,
        raw_query: str,
        headers: HeaderLookup,
        host: str | None = None,
    ) -> Verified:
        """`host` is the Host header or, for HTTP/2, the :authority (default: headers' host)."""
        authorization = headers.get("authorization")
        if authorization is None:
            raise S3Error("AccessDenied")
        algorithm, _, params = authorization.strip().partition(" ")
        if algorithm == "AWS":
            raise S3Error(
                "InvalidRequest",
                "The authorization mechanism you have provided is not supported. "
                "Please use AWS4-HMAC-SHA256.",
            )
        if algorithm.startswith("AWS4-ECDSA"):
            raise S3Error("NotImplemented", "SigV4a (AWS4-ECDSA-P256-SHA256) is not supported.")
        if algorithm != sigv4.ALGORITHM:
            raise S3Error("InvalidArgument", f"Unsupported Authorization Type: {algorithm}")

        timestamp = headers.get("x-amz-date") or headers.get("date")
        request_time = _parse_timestamp(timestamp)
        if request_time is None:
            raise S3Error(
                "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header."
            )
        now = self.clock()
        if abs(now - request_time) > MAX_SKEW_SECONDS:
            raise S3Error(
                "RequestTimeTooSkewed",
                extra={
                    "RequestTime": timestamp or "",
                    "ServerTime": _iso(now),
                    "MaxAllowedSkewMilliseconds": str(MAX_SKEW_SECONDS * 1000),
                },
            )

        credential, signed_headers, signature = self._parse_params(params)
        access, date, region, service, terminal = self._parse_credential(credential)
        if date != (timestamp or "")[:8]:
            raise _malformed("Invalid credential date. Date is not the same as X-Amz-Date.")
        if region != self.region:
            raise S3Error(
                "AuthorizationHeaderMalformed",
                f"The authorization header is malformed; the region '{region}' is wrong; "
                f"expecting '{self.region}'",
                extra={"Region": self.region},
            )
        if service != "s3":
            raise _malformed(f'incorrect service "{service}". This endpoint belongs to "s3".')
        if terminal != "aws4_request":
            raise _malformed(f'incorrect terminal "{terminal}". This endpoint uses "aws4_request".')
        if not hmac.compare_digest(_raw(access), _raw(self.root.access)):
            raise S3Error("InvalidAccessKeyId", extra={"AWSAccessKeyId": access})

        unsigned = sorted(
            name.lower()
            for name in {*headers.keys(), "host"}
            if (name.lower().startswith("x-amz-") or name.lower() == "host")
            and name.lower() not in signed_headers
        )
        if unsigned:
            raise S3Error(
                "AccessDenied",
                "There were headers present in the request which were not signed",
                extra={"HeadersNotSigned": ", ".join(unsigned)},
            )

        payload_hash = headers.get("x-amz-content-sha256")
        if payload_hash is None:
            raise S3Error(
                "InvalidRequest",
                "Missing required header for this request: x-amz-content-sha256",
            )
        if not (
            _HEX_SHA256.fullmatch(payload_hash)
            or payload_hash == sigv4.UNSIGNED_PAYLOAD
            or payload_hash.startswith(STREAMING_PREFIX)
        ):
            raise S3Error(
                "InvalidArgument",
                "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
                " or a valid sha256 value.",
                extra={"ArgumentName": "x-amz-content-sha256", "ArgumentValue": payload_hash},
            )

        signed_values = [
            (name, value) for name in signed_headers for value in headers.get_all(name)
        ]
        if not all(value.isascii() for _, value in signed_values):
            # What S3 signs is bytes; a value that is not plain text cannot be canonicalised the
            # way the client did, so it cannot match.
            raise S3Error("SignatureDoesNotMatch", extra={"AWSAccessKeyId": access})
        expected = sigv4.compute_signature(
            secret=self.root.secret,
            region=region,
            timestamp=timestamp or "",
            method=method,
            host=host if host is not None else headers.get("host") or "",
            path=sigv4.canonical_path(raw_path),
            query=sigv4.canonical_query(sigv4.query_pairs(raw_query)),
            headers=signed_values,
            signed_headers=signed_headers,
            payload_hash=payload_hash,
        )
        if not hmac.compare_digest(_raw(expected), _raw(signature)):
            raise S3Error("SignatureDoesNotMatch", extra={"AWSAccessKeyId": access})
        return Verified(signed_headers=tuple(signed_headers), payload_hash=payload_hash)

    @staticmethod
    def _parse_params(params: str) -> tuple[str, Sequence[str], str]:
        found: dict[str, str] = {}
        for part in params.split(","):
            match = _AUTH_PARTS.fullmatch(part)
            if match is None or match[1] in found:
                raise _malformed(f"unexpected element '{part.strip()}'.")
            found[match[1]] = match[2]
        for name in ("Credential", "SignedHeaders", "Signature"):
            if not found.get(name):
                raise _malformed(f"missing {name}.")
        signed = found["SignedHeaders"].lower().split(";")
        return found["Credential"], signed, found["Signature"]

    @staticmethod
    def _parse_credential(credential: str) -> tuple[str, str, str, str, str]:
        parts = credential.split("/")
        if len(parts) != 5:
            raise _malformed(
                'the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/'
                'aws4_request".'
            )
        if not parts[0]:
            raise _malformed("a non-empty Access Key (AKID) must be provided in the credential.")
        return parts[0], parts[1], parts[2], parts[3], parts[4]
