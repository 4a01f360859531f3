"""Client authentication: is this request signed with a key the proxy knows (root or a user's)?

SigV4 by header (`Authorization: AWS4-HMAC-SHA256 ...`) or presigned URL (`X-Amz-Signature` in
the query), and SigV2 both ways (`addon.auth.sigv2` says why). Checks run in the order a careful
S3 server runs them, so that a client gets the error S3 would give it. Nothing here knows about
mitmproxy: the caller passes the request's parts.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from addon.auth import checks as auth_checks
from addon.auth import sigv2
from addon.auth.checks import (
    HEADER,
    QUERY,
    Flavor,
    HeaderIndex,
    HeaderLookup,
    Key,
    KeyTable,
    Verified,
)
from addon.s3 import aws_chunked, sigv4
from addon.s3.errors import S3Error

MAX_PRESIGN_EXPIRES = 7 * 24 * 3600
_AUTH_PARTS = re.compile(r"\s*(Credential|SignedHeaders|Signature)\s*=\s*([^,\s]*)\s*")
PRESIGN_KEYS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Expires",
)
_SIGNED_STREAMING = (aws_chunked.SIGNED, aws_chunked.SIGNED_TRAILER)


@dataclass(frozen=True)
class _Claim:
    """What the client says it signed, from the Authorization header or the query."""

    access: str
    date: str
    region: str
    service: str
    terminal: str
    timestamp: str
    signed_headers: Sequence[str]
    signature: str


class ClientAuth:
    """Verifies requests against the key table (root and users), by header or presigned URL."""

    def __init__(self, keys: KeyTable[Key], region: str, clock: Callable[[], float] = time.time):
        self.keys = keys  # replaced whole when the users file is reloaded
        self.region = region
        self.clock = clock

    def verify(
        self,
        method: str,
        raw_path: str,
        raw_query: str,
        headers: HeaderLookup,
        host: str | None = None,
        v2_resource: str | None = None,
    ) -> Verified:
        """`host` is the Host header or, for HTTP/2, the :authority (default: headers' host).

        `v2_resource` is the path SigV2 signs: `/bucket/key` also for virtual-hosted requests.
        """
        headers = HeaderIndex.of(headers)  # a dozen lookups follow: one pass, not one each
        v2_path = v2_resource or raw_path
        pairs = sigv4.query_pairs(raw_query)
        query = dict(reversed(pairs))  # the first of repeated keys
        query_auth = any(key in query for key in (*PRESIGN_KEYS, "AWSAccessKeyId", "Signature"))
        if query_auth and headers.get("authorization") is not None:
            raise S3Error(
                "InvalidArgument",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
                "Signature query string parameter or the Authorization header should be specified",
                extra={"ArgumentName": "Authorization"},
            )
        if "AWSAccessKeyId" in query and "Signature" in query:
            return sigv2.verify(self.keys, self.clock(), method, v2_path, raw_query, headers, query)
        if (headers.get("authorization") or "").startswith("AWS "):
            return sigv2.verify(self.keys, self.clock(), method, v2_path, raw_query, headers, None)
        presigned = any(key in query for key in PRESIGN_KEYS)
        if presigned:
            claim, key = self._query_claim(query)
            payload_hash = headers.get("x-amz-content-sha256") or sigv4.UNSIGNED_PAYLOAD
            pairs = [(k, v) for k, v in pairs if k != "X-Amz-Signature"]
        else:
            claim, key = self._header_claim(headers)
            payload_hash = self._payload_hash(headers)
        self._check_headers_signed(claim, headers)

        signed_values = [(n, v) for n in claim.signed_headers for v in headers.get_all(n)]
        if not all(value.isascii() for _, value in signed_values):
            # S3 signs bytes; a value that is not plain text cannot be canonicalised the way the
            # client did, so it cannot match.
            raise auth_checks.signature_mismatch(claim.access)
        parts = sigv4.RequestParts(
            method,
            host if host is not None else headers.get("host") or "",
            sigv4.canonical_path(raw_path),
            sigv4.canonical_query(pairs),
            signed_values,
            claim.signed_headers,
            payload_hash,
        )
        expected = sigv4.compute_signature(key.secret, claim.region, claim.timestamp, parts)
        if not hmac.compare_digest(auth_checks.raw(expected), auth_checks.raw(claim.signature)):
            raise auth_checks.signature_mismatch(claim.access)
        chunks = None
        if payload_hash in _SIGNED_STREAMING:
            chunks = sigv4.ChunkChain.seeded(
                key.secret, claim.region, claim.timestamp, claim.signature
            )
        auth_params = frozenset(PRESIGN_KEYS) if presigned else frozenset()
        return Verified(
            tuple(claim.signed_headers), payload_hash, auth_params, chunks, claim.access
        )

    # --- header auth ---------------------------------------------------------------------------

    def _header_claim(self, headers: HeaderLookup) -> tuple[_Claim, Key]:
        authorization = headers.get("authorization")
        if authorization is None:
            raise S3Error("AccessDenied")
        algorithm, _, params = authorization.strip().partition(" ")
        if algorithm != sigv4.ALGORITHM:
            raise auth_checks.unsupported_algorithm(algorithm)

        timestamp = headers.get("x-amz-date") or headers.get("date") or ""
        auth_checks.check_date(timestamp, auth_checks.parse_timestamp(timestamp), self.clock())
        found: dict[str, str] = {}
        for part in params.split(","):
            match = _AUTH_PARTS.fullmatch(part)
            if match is None or match[1] in found:
                raise HEADER.malformed(f"unexpected element '{part.strip()}'.")
            found[match[1]] = match[2]
        for name in ("Credential", "SignedHeaders", "Signature"):
            if not found.get(name):
                raise HEADER.malformed(f"missing {name}.")
        claim = self._claim(HEADER, found["Credential"], timestamp, found)
        return claim, self.keys.find(claim.access)

    @staticmethod
    def _payload_hash(headers: HeaderLookup) -> str:
        payload_hash = headers.get("x-amz-content-sha256")
        if payload_hash is None:
            raise S3Error(
                "InvalidRequest", "Missing required header for this request: x-amz-content-sha256"
            )
        if payload_hash.startswith("STREAMING-AWS4-ECDSA"):
            raise S3Error("NotImplemented", "SigV4a streaming uploads are not supported.")
        if not (
            sigv4.HEX_SHA256.fullmatch(payload_hash)
            or payload_hash == sigv4.UNSIGNED_PAYLOAD
            or payload_hash in aws_chunked.FORMS
        ):
            raise S3Error(
                "InvalidArgument",
                "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
                " or a valid sha256 value.",
                extra={"ArgumentName": "x-amz-content-sha256", "ArgumentValue": payload_hash},
            )
        return payload_hash

    # --- presigned URLs ------------------------------------------------------------------------

    def _query_claim(self, query: dict[str, str]) -> tuple[_Claim, Key]:
        if not all(query.get(key) for key in PRESIGN_KEYS):
            raise S3Error(
                "AuthorizationQueryParametersError",
                "Query-string authentication version 4 requires the X-Amz-Algorithm, "
                "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and "
                "X-Amz-Expires parameters.",
            )
        auth_checks.query_algorithm(query["X-Amz-Algorithm"])
        timestamp = query["X-Amz-Date"]
        request_time = auth_checks.query_timestamp(timestamp)
        expires = self._expires(query["X-Amz-Expires"])
        claim = self._claim(
            QUERY,
            query["X-Amz-Credential"],
            timestamp,
            {"SignedHeaders": query["X-Amz-SignedHeaders"], "Signature": query["X-Amz-Signature"]},
        )
        now = self.clock()
        if refusal := auth_checks.expired(
            now, request_time + expires, {"X-Amz-Expires": str(expires)}
        ):
            raise refusal
        if request_time > now + auth_checks.MAX_SKEW_SECONDS:
            raise S3Error("AccessDenied", "Request is not valid yet.")
        return claim, self.keys.find(claim.access)

    @staticmethod
    def _expires(value: str) -> int:
        def refuse(message: str) -> S3Error:
            return S3Error("AuthorizationQueryParametersError", message)

        try:
            expires = int(value)
        except ValueError:
            raise refuse("X-Amz-Expires should be a number") from None
        if expires < 0:
            raise refuse("X-Amz-Expires must be non-negative")
        if expires > MAX_PRESIGN_EXPIRES:
            raise refuse(
                "X-Amz-Expires must be less than a week (in seconds); that is, the given "
                "X-Amz-Expires must be less than 604800 seconds"
            )
        return expires

    # --- shared --------------------------------------------------------------------------------

    def _claim(
        self, flavor: Flavor, credential: str, timestamp: str, found: dict[str, str]
    ) -> _Claim:
        access, date, region, service, terminal = auth_checks.credential_scope(
            flavor, credential, timestamp, self.region
        )
        signed = found["SignedHeaders"].lower().split(";")
        return _Claim(
            access, date, region, service, terminal, timestamp, signed, found["Signature"]
        )

    @staticmethod
    def _check_headers_signed(claim: _Claim, headers: HeaderLookup) -> None:
        names = {name.lower() for name in headers} | {"host"}
        unsigned = sorted(
            n
            for n in names
            if (n == "host" or n.startswith("x-amz-")) and n not in claim.signed_headers
        )
        if unsigned:
            raise S3Error(
                "AccessDenied",
                "There were headers present in the request which were not signed",
                extra={"HeadersNotSigned": ", ".join(unsigned)},
            )
