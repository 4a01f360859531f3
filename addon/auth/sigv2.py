"""AWS Signature Version 2 for S3, verified with botocore's own HmacV1Auth canonical string.

boto3 and the aws CLI still make SigV2 presigned URLs by default for custom endpoints
(`?AWSAccessKeyId=…&Signature=…&Expires=…`), and s3cmd can sign requests with it, so a gateway
that refuses SigV2 breaks `aws s3 presign` out of the box. Verified here; forwarded with SigV4.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from botocore.auth import HmacV1Auth
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

from addon.auth import checks as auth_checks
from addon.auth.checks import HeaderLookup, Key, KeyTable, Verified
from addon.s3 import sigv4
from addon.s3.errors import S3Error
from addon.s3.operations import SUBRESOURCES

QUERY_KEYS = frozenset({"AWSAccessKeyId", "Signature", "Expires"})
# The sub-resources SigV2's canonical resource signs (botocore's list: AWS's own, plus the ones
# added while SigV2 was current). Any other sub-resource is left out of the signature, so it
# could be added to a signed request by anyone: AWS refuses SigV2 for those operations.
SIGNED_SUBRESOURCES = frozenset(HmacV1Auth.QSAOfInterest)
NOT_SUPPORTED = (
    "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
)


class _Verifier(HmacV1Auth):
    """HmacV1Auth with the Date line taken from the request instead of the clock."""

    def __init__(self, secret: str, date_line: str) -> None:
        super().__init__(Credentials("", secret))
        self._date_line = date_line

    def _get_date(self) -> str:
        return self._date_line


def _covered(name: str) -> bool:
    return name in ("content-md5", "content-type") or name.startswith("x-amz-")


def signed_headers(headers: Iterable[tuple[str, str]]) -> list[str]:
    """The header names SigV2 covers besides Date (lower case)."""
    return sorted({n.lower() for n, _ in headers if _covered(n.lower())})


def signature(
    secret: str,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Iterable[tuple[str, str]],
    date_line: str,
) -> str:
    """The base64 HMAC-SHA1 a client holding `secret` signs this request with.

    `date_line` is the Date header, "" when x-amz-date is used, or Expires for presigned URLs.
    The path is signed as sent (SigV2 does not re-encode it).
    """
    selected = HTTPHeaders()
    for name, value in headers:
        if _covered(name.lower()):
            selected[name.lower()] = value
    if raw_path.count("/") == 1 and raw_path != "/":
        raw_path += "/"  # a bucket's resource is "/bucket/", however the path was sent
    split = urlsplit(f"http://host{raw_path}?{raw_query}")
    verifier = _Verifier(secret, date_line)
    return verifier.sign_string(verifier.canonical_string(method, split, selected))


def policy_signature(secret: str, policy: str) -> str:
    """A browser form's SigV2 signature (its `signature` field): HMAC-SHA1 of the base64 policy,
    as sent, in base64."""
    return _Verifier(secret, "").sign_string(policy)


def unsigned_selectors(query_keys: Iterable[str], selectors: Iterable[str]) -> list[str]:
    """The operation-selecting query keys (`selectors`) present that SigV2 does not sign."""
    present = set(query_keys)
    return sorted(k for k in set(selectors) if k in present and k not in SIGNED_SUBRESOURCES)


def _is_utf8(text: str) -> bool:
    """False for header bytes that were not UTF-8 (mitmproxy keeps them as surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def verify(
    keys: KeyTable[Key],
    now: float,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: HeaderLookup,
    query: Mapping[str, str] | None,
) -> Verified:
    """SigV2, by header (`AWS AK:signature`) or presigned URL (`query`, its parameters).

    Refused, as AWS refuses it, for an operation whose sub-resource SigV2 does not sign:
    otherwise `&legal-hold` added to a presigned upload URL would turn it into another
    operation under the same signature.
    """
    if unsigned_selectors((k for k, _ in sigv4.query_pairs(raw_query)), SUBRESOURCES):
        raise S3Error("InvalidRequest", NOT_SUPPORTED)
    if query is not None:
        access, given = query["AWSAccessKeyId"], query["Signature"]
        date_line = query.get("Expires", "")
        if not date_line.isdigit():
            raise S3Error(
                "AccessDenied",
                "Query-string authentication requires the Signature, Expires and "
                "AWSAccessKeyId parameters",
            )
        if refusal := auth_checks.expired(now, int(date_line)):
            raise refusal
    else:
        access, _, given = (headers.get("authorization") or "")[4:].strip().rpartition(":")
        amz_date = headers.get("x-amz-date")
        date_line = "" if amz_date else headers.get("date") or ""
        shown = amz_date or date_line
        auth_checks.check_date(shown, auth_checks.parse_http_date(shown), now)
    secret = keys.find(access).secret
    header_list = [(n, v) for n in headers for v in headers.get_all(n)]
    if not all(_is_utf8(value) for _, value in header_list):
        # Bytes that are not text cannot be put in the canonical string as the client did.
        raise auth_checks.signature_mismatch(access)
    expected = signature(secret, method, raw_path, raw_query, header_list, date_line)
    if not hmac.compare_digest(expected.encode(), auth_checks.raw(given)):
        raise auth_checks.signature_mismatch(access)
    payload_hash = headers.get("x-amz-content-sha256") or sigv4.UNSIGNED_PAYLOAD
    if not (sigv4.HEX_SHA256.fullmatch(payload_hash) or payload_hash == sigv4.UNSIGNED_PAYLOAD):
        payload_hash = sigv4.UNSIGNED_PAYLOAD  # streaming forms are SigV4 only
    return Verified(
        tuple(signed_headers(header_list)),
        payload_hash,
        QUERY_KEYS if query is not None else frozenset(),
        access=access,
    )
